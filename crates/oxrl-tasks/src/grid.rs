//! GRID: a text gridworld agent task (the spec's shared CPU stand-in) — "put the key in the box".
//!
//! An N × N grid holds the agent, a key and a box. The agent sees only its position, the four
//! adjacent cells and what it holds (partial observability), compactly for char-level models:
//! `1,0 k.## on b has k` = at row 1, column 0; north holds the key, east is empty, south and
//! west are walls (`#`; `b` the box); standing on the box; holding the key. With
//! `reveal_goals` the instruction also names the key's and the box's cells. Actions, one per
//! line: `north`, `south`, `east`, `west`, `pick`, `drop`, `open box`. An action that cannot be
//! executed answers "Nothing happens." Dropping the key on the (open) box ends the episode with
//! outcome 1; picking the key and finishing are the two sub-goal reward events (dense rewards).
//! With `closed_box` the box must be opened first (from its cell or next to it).
//!
//! Each problem's meta holds its layout, so [`Task::environment`] rebuilds the start state and
//! [`Task::verify`] replays a transcript's actions. The SFT demonstration is a scripted
//! shortest path (rows first, then columns) with the observations it receives.

use crate::env::{demonstration, observation_line, verify_in, EnvStep, Environment};
use crate::{oxrl_rng::Rng, Problem, Splits, Task, Verdict};
use anyhow::{ensure, Result};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GridConfig {
    /// Grid side N (3..=9).
    pub size: usize,
    /// Turns per episode.
    pub max_turns: usize,
    /// Name the key's and the box's cells in the instruction.
    pub reveal_goals: bool,
    /// The box starts closed (`open box` first).
    pub closed_box: bool,
    /// ReBel's format: every action line starts with the agent's belief,
    /// `<belief>{"task":{"phase":"find key","target":"key"},"prediction":"1,0"}</belief> south`,
    /// and the demonstrations state the true one.
    pub belief: bool,
    /// The belief also states the key's and the box's cells (`state.objects`); off, it is the
    /// phase, its target and the prediction — a third as long.
    pub belief_objects: bool,
    /// VSC-RL's decomposition: the instruction names the first subgoal (`pick up the key`, then
    /// `open the box` when it is closed, then `drop the key in the box`) and the observation
    /// that completes one names the next (`… subgoal: drop the key in the box`).
    pub subgoals: bool,
    pub test_size: usize,
}

impl Default for GridConfig {
    fn default() -> Self {
        Self {
            size: 4,
            max_turns: 16,
            reveal_goals: true,
            closed_box: false,
            belief: false,
            belief_objects: false,
            subgoals: false,
            test_size: 50,
        }
    }
}

type Cell = (usize, usize);

/// One episode's state.
#[derive(Debug, Clone, PartialEq)]
pub struct GridEnv {
    size: usize,
    agent: Cell,
    key: Option<Cell>,
    boxc: Cell,
    open: bool,
    holding: bool,
    done: bool,
    max_turns: usize,
    /// The box started closed (fixes the decomposition).
    closed: bool,
    /// Announce subgoals (VSC-RL) and how many are complete.
    subgoals: bool,
    progress: usize,
}

/// The scripted decomposer: GRID's goal as ordered subgoals.
pub fn subgoal_list(closed_box: bool) -> Vec<&'static str> {
    if closed_box {
        vec!["pick up the key", "open the box", "drop the key in the box"]
    } else {
        vec!["pick up the key", "drop the key in the box"]
    }
}

impl GridEnv {
    fn cell(&self, r: i64, c: i64) -> char {
        let n = self.size as i64;
        if r < 0 || c < 0 || r >= n || c >= n {
            return '#';
        }
        let p = (r as usize, c as usize);
        if self.key == Some(p) {
            'k'
        } else if self.boxc == p {
            'b'
        } else {
            '.'
        }
    }

    /// The observation: position, the four neighbours (north, east, south, west), what is here
    /// and what is held.
    pub fn observe(&self) -> String {
        if self.done {
            return "done".into();
        }
        let (r, c) = (self.agent.0 as i64, self.agent.1 as i64);
        let here = if self.key == Some(self.agent) {
            " on k"
        } else if self.boxc == self.agent {
            " on b"
        } else {
            ""
        };
        let held = if self.holding { " has k" } else { "" };
        let (n, e, s, w) = (self.cell(r - 1, c), self.cell(r, c + 1), self.cell(r + 1, c), self.cell(r, c - 1));
        format!("{r},{c} {n}{e}{s}{w}{here}{held}")
    }

    /// Whether subgoal i of the decomposition holds in the current state.
    fn subgoal_met(&self, i: usize) -> bool {
        match subgoal_list(self.closed)[i] {
            "pick up the key" => self.holding || self.done,
            "open the box" => self.open,
            _ => self.done,
        }
    }

    /// One action's effect, before any subgoal announcement.
    fn act(&mut self, action: &str) -> EnvStep {
        let nothing = |s: &Self| EnvStep {
            observation: format!("Nothing happens. {}", s.observe()),
            reward: 0.0,
            done: false,
            valid: false,
        };
        if self.done {
            return nothing(self);
        }
        let (r, c) = (self.agent.0 as i64, self.agent.1 as i64);
        let mv = match action.trim().to_ascii_lowercase().as_str() {
            "north" => Some((r - 1, c)),
            "south" => Some((r + 1, c)),
            "east" => Some((r, c + 1)),
            "west" => Some((r, c - 1)),
            "pick" => {
                if self.key == Some(self.agent) && !self.holding {
                    self.key = None;
                    self.holding = true;
                    return EnvStep { observation: self.observe(), reward: 1.0, done: false, valid: true };
                }
                return nothing(self);
            }
            "open box" => {
                let near = self.agent.0.abs_diff(self.boxc.0) + self.agent.1.abs_diff(self.boxc.1) <= 1;
                if near && !self.open {
                    self.open = true;
                    return EnvStep { observation: self.observe(), reward: 0.0, done: false, valid: true };
                }
                return nothing(self);
            }
            "drop" => {
                if self.holding && self.agent == self.boxc && self.open {
                    self.holding = false;
                    self.done = true;
                    return EnvStep { observation: self.observe(), reward: 1.0, done: true, valid: true };
                }
                return nothing(self);
            }
            _ => None,
        };
        match mv {
            Some((nr, nc)) if self.cell(nr, nc) != '#' => {
                self.agent = (nr as usize, nc as usize);
                EnvStep { observation: self.observe(), reward: 0.0, done: false, valid: true }
            }
            _ => nothing(self),
        }
    }

    fn from_meta(meta: &serde_json::Value, max_turns: usize) -> Option<Self> {
        let cell = |k: &str| -> Option<Cell> {
            let a = meta.get(k)?.as_array()?;
            Some((a.first()?.as_u64()? as usize, a.get(1)?.as_u64()? as usize))
        };
        Some(Self {
            size: meta.get("size")?.as_u64()? as usize,
            agent: cell("agent")?,
            key: Some(cell("key")?),
            boxc: cell("box")?,
            open: !meta.get("closed")?.as_bool()?,
            closed: meta.get("closed")?.as_bool()?,
            holding: false,
            done: false,
            max_turns,
            subgoals: meta.get("subgoals").and_then(|v| v.as_bool()).unwrap_or(false),
            progress: 0,
        })
    }
}

impl Environment for GridEnv {
    fn step(&mut self, action: &str) -> EnvStep {
        let mut s = self.act(action);
        if self.subgoals {
            let list = subgoal_list(self.closed);
            let before = self.progress;
            while self.progress < list.len() && self.subgoal_met(self.progress) {
                self.progress += 1;
            }
            if self.progress > before && self.progress < list.len() {
                s.observation.push_str(crate::env::SUBGOAL_MARK);
                s.observation.push_str(list[self.progress]);
            }
        }
        s
    }
    fn outcome(&self) -> f64 {
        self.done as u8 as f64
    }
    fn success(&self) -> bool {
        self.done
    }
    fn max_turns(&self) -> usize {
        self.max_turns
    }
    fn max_events(&self) -> usize {
        2
    }
    fn belief_truth(&self, observations: &[String]) -> Option<crate::env::BeliefTruth> {
        let last = observations.last().map_or("", String::as_str);
        Some(crate::env::BeliefTruth { tracker: rebel_tracker(observations), phase: rebel_phase(last).into() })
    }
    fn subgoal_progress(&self) -> Option<usize> {
        self.subgoals.then_some(self.progress)
    }
}

fn cell_text(c: Cell) -> String {
    format!("{},{}", c.0, c.1)
}

/// A belief in ReBel's JSON: the phase and its target, with `objects` the objects' cells (the
/// key `in_hand` once picked; an object left out when unknown), and the predicted next
/// observation.
fn belief_json(holding: bool, objects: Option<[(&str, Option<String>); 2]>, prediction: &str) -> String {
    let (phase, target) = if holding { ("deliver", "box") } else { ("find key", "key") };
    let state = match objects {
        Some(objects) => {
            let o: Vec<String> =
                objects.into_iter().filter_map(|(k, v)| v.map(|v| format!("\"{k}\":\"{v}\""))).collect();
            format!(",\"state\":{{\"objects\":{{{}}}}}", o.join(","))
        }
        None => String::new(),
    };
    format!(
        "<belief>{{\"task\":{{\"phase\":\"{phase}\",\"target\":\"{target}\"}}{state},\"prediction\":\"{prediction}\"}}</belief>"
    )
}

/// The true belief before `action` in `env`: what the instruction (with `reveal_goals`) and the
/// observations so far (`tracker`) say, and the part of the next observation the action decides
/// — the new cell, `has k` after a pick, `done` after the drop.
fn true_belief(env: &GridEnv, tracker: &oxrl_core::shaping::rebel::Tracker, cfg: &GridConfig, action: &str) -> String {
    let known = |name: &str, cell: Option<Cell>| {
        tracker.objects.get(name).cloned().or_else(|| cfg.reveal_goals.then(|| cell.map(cell_text)).flatten())
    };
    let key = if env.holding { Some("in_hand".to_string()) } else { known("key", env.key) };
    let boxc = known("box", Some(env.boxc));
    let mut next = env.clone();
    next.step(action);
    let prediction = if next.done {
        "done".to_string()
    } else if next.holding && !env.holding {
        "has k".to_string()
    } else {
        cell_text(next.agent)
    };
    belief_json(env.holding, cfg.belief_objects.then_some([("key", key), ("box", boxc)]), &prediction)
}

/// The expert's demonstration with a true belief before every action (ReBel's format).
fn belief_demonstration(env: &GridEnv, cfg: &GridConfig) -> String {
    let mut e = env.clone();
    let mut obs = vec![e.observe()];
    let mut out = String::new();
    let actions = expert_actions(env);
    for (i, a) in actions.iter().enumerate() {
        let b = true_belief(&e, &rebel_tracker(&obs), cfg, a);
        let s = e.step(a);
        out.push_str(&format!("{b} {a}\n"));
        if i + 1 < actions.len() {
            out.push_str(&observation_line(&s.observation));
        }
        obs.push(s.observation);
    }
    out
}

/// The scripted expert's actions: to the key (rows, then columns), pick, to the box, open it if
/// closed, drop.
pub fn expert_actions(env: &GridEnv) -> Vec<String> {
    let path = |from: Cell, to: Cell, out: &mut Vec<String>| {
        let (mut r, mut c) = from;
        while r != to.0 {
            out.push(if to.0 < r { "north" } else { "south" }.into());
            r = if to.0 < r { r - 1 } else { r + 1 };
        }
        while c != to.1 {
            out.push(if to.1 < c { "west" } else { "east" }.into());
            c = if to.1 < c { c - 1 } else { c + 1 };
        }
    };
    let mut a = Vec::new();
    let key = env.key.expect("a fresh episode has its key");
    path(env.agent, key, &mut a);
    a.push("pick".into());
    path(key, env.boxc, &mut a);
    if !env.open {
        a.push("open box".into());
    }
    a.push("drop".into());
    a
}

pub struct Grid {
    cfg: GridConfig,
    splits: Splits,
}

impl Grid {
    pub fn new(cfg: GridConfig, seed: u64) -> Result<Self> {
        ensure!((3..=9).contains(&cfg.size), "task.size must be in 3..=9 (got {})", cfg.size);
        ensure!(cfg.belief || !cfg.belief_objects, "task.belief_objects needs task.belief = true");
        // The longest shortest episode: 2·2(N − 1) moves, pick, drop (and open box).
        let need = 4 * cfg.size - 2 + cfg.closed_box as usize;
        ensure!(
            cfg.max_turns >= need,
            "task.max_turns must be >= {need} so every episode is solvable (got {})",
            cfg.max_turns
        );
        let mut t = Self { cfg, splits: Splits { seed, test: vec![], keys: Default::default() } };
        t.splits = Splits::new(seed, t.cfg.test_size, |r| t.make(r));
        Ok(t)
    }

    fn make(&self, rng: &mut Rng) -> (String, Problem) {
        let n = self.cfg.size;
        let mut cells: Vec<Cell> = Vec::new();
        while cells.len() < 3 {
            let p = (rng.random_range(0..n), rng.random_range(0..n));
            if !cells.contains(&p) {
                cells.push(p);
            }
        }
        let (agent, key, boxc) = (cells[0], cells[1], cells[2]);
        let mut meta = serde_json::json!({
            "size": n, "agent": [agent.0, agent.1], "key": [key.0, key.1], "box": [boxc.0, boxc.1],
            "closed": self.cfg.closed_box,
        });
        if self.cfg.subgoals {
            meta["subgoals"] = true.into();
        }
        let env = GridEnv::from_meta(&meta, self.cfg.max_turns).expect("well-formed meta");
        let goals = if self.cfg.reveal_goals {
            format!(" key {},{} box {},{}", key.0, key.1, boxc.0, boxc.1)
        } else {
            String::new()
        };
        let ask = if self.cfg.belief { " state your belief before each action." } else { "" };
        let sub = if self.cfg.subgoals {
            format!("{}{}", crate::env::SUBGOAL_MARK, subgoal_list(self.cfg.closed_box)[0])
        } else {
            String::new()
        };
        let prompt =
            format!("put the key in the box.{goals}{ask}{sub}\n{}", observation_line(&env.observe()).trim_end());
        // The demonstration: each action and the observation it gets (none after the last).
        let solution = if self.cfg.belief {
            belief_demonstration(&env, &self.cfg)
        } else {
            demonstration(&mut env.clone(), &expert_actions(&env))
        };
        let key_s = format!("{n}:{agent:?}{key:?}{boxc:?}");
        (key_s, Problem { id: 0, prompt, answer: "success".into(), solution, meta })
    }
}

impl Task for Grid {
    fn name(&self) -> &str {
        "grid"
    }
    crate::generated_splits!();
    fn verify(&self, problem: &Problem, completion: &str) -> Verdict {
        verify_in(self.environment(problem), completion)
    }
    /// Per turn: the longest action (`open box`) and its newline, after the longest belief.
    fn max_completion_chars(&self) -> usize {
        if self.cfg.belief {
            let c = Some("0,0".to_string());
            let objects = |key: Option<String>| self.cfg.belief_objects.then_some([("key", key), ("box", c.clone())]);
            let longest = [
                belief_json(false, objects(c.clone()), "has k"),
                belief_json(true, objects(Some("in_hand".into())), "0,0"),
            ]
            .into_iter()
            .map(|b| b.len())
            .max()
            .unwrap_or(0);
            longest + 1 + 9
        } else {
            9
        }
    }
    fn environment(&self, problem: &Problem) -> Option<Box<dyn Environment>> {
        GridEnv::from_meta(&problem.meta, self.cfg.max_turns).map(|e| Box::new(e) as Box<dyn Environment>)
    }
}

/// ReBel's ground-truth tracker on GRID (the spec's stand-in): what the observations so far
/// revealed — the visited cells, the key's cell (or `in_hand`) and the box's cell once seen from
/// it or next to it. Observations are GRID's (`r,c NESW[ on k| on b][ has k]`, possibly after
/// "Nothing happens.").
pub fn rebel_tracker(observations: &[String]) -> oxrl_core::shaping::rebel::Tracker {
    let mut t = oxrl_core::shaping::rebel::Tracker::default();
    for o in observations {
        let o = o.trim().trim_start_matches("Nothing happens.").trim();
        let mut parts = o.split_whitespace();
        let (Some(pos), Some(nesw)) = (parts.next(), parts.next()) else { continue };
        let Some((r, c)) =
            pos.split_once(',').and_then(|(r, c)| Some((r.parse::<i64>().ok()?, c.parse::<i64>().ok()?)))
        else {
            continue;
        };
        t.visited.insert(format!("{r},{c}"));
        let near = [(r - 1, c), (r, c + 1), (r + 1, c), (r, c - 1)];
        for (ch, (nr, nc)) in nesw.chars().zip(near) {
            match ch {
                'k' => t.objects.insert("key".into(), format!("{nr},{nc}")),
                'b' => t.objects.insert("box".into(), format!("{nr},{nc}")),
                _ => None,
            };
        }
        if o.contains(" on k") {
            t.objects.insert("key".into(), format!("{r},{c}"));
        }
        if o.contains(" on b") {
            t.objects.insert("box".into(), format!("{r},{c}"));
        }
        if o.contains(" has k") {
            t.objects.insert("key".into(), "in_hand".into());
        }
    }
    t
}

/// The task phase the environment implies after an observation: `deliver` while holding the key,
/// else `find key`.
pub fn rebel_phase(observation: &str) -> &'static str {
    if observation.contains(" has k") {
        "deliver"
    } else {
        "find key"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::replay;

    /// ReBel's stand-in: a scripted agent states beliefs from the tracker with errors injected at
    /// rate p (a contradicted key cell, a wrong phase, a wrong prediction); the consistency reward
    /// falls as p rises, and a claim about a cell the agent never saw is not penalised.
    #[test]
    fn rebel_consistency_falls_with_injected_belief_errors() {
        use oxrl_core::shaping::rebel::{consistency_reward, Belief, Rebel};
        use rand::Rng;
        let t = Grid::new(GridConfig { size: 5, max_turns: 20, test_size: 10, ..Default::default() }, 0).unwrap();
        let c = Rebel::default();
        let mut rng = crate::oxrl_rng::rng(0, "rebel", 0);
        let mut mean_at = |p: f64, unobserved_box: bool| -> f64 {
            let (mut total, mut n) = (0.0, 0usize);
            for i in 0..30 {
                let prob = t.train_problem(i);
                let mut e = GridEnv::from_meta(&prob.meta, 20).unwrap();
                let mut obs = vec![e.observe()];
                for a in expert_actions(&e.clone()) {
                    let next = e.clone().step(&a).observation;
                    let truth = rebel_tracker(&obs);
                    let mut b = Belief::default();
                    b.task.phase = rebel_phase(obs.last().unwrap()).into();
                    b.state.objects = truth.objects.clone();
                    b.state.visited = truth.visited.iter().cloned().collect();
                    b.prediction = next.clone();
                    if unobserved_box && !truth.objects.contains_key("box") {
                        b.state.objects.insert("box".into(), "0,0".into());
                    }
                    if rng.random::<f64>() < p {
                        b.state.objects.insert("key".into(), "9,9".into());
                    }
                    if rng.random::<f64>() < p {
                        b.task.phase = "deliver".into();
                    }
                    if rng.random::<f64>() < p {
                        b.prediction = "9,9 #### on b".into();
                    }
                    let step = obs.len() + 1; // (past the lenient first two steps)
                    total +=
                        consistency_reward(Some(&b), &truth, rebel_phase(obs.last().unwrap()), Some(&next), step, &c);
                    n += 1;
                    obs.push(e.step(&a).observation);
                }
            }
            total / n as f64
        };
        let (r0, r3, r6) = (mean_at(0.0, false), mean_at(0.3, false), mean_at(0.6, false));
        eprintln!("ReBel consistency on GRID: error rate 0 → {r0:.3}, 0.3 → {r3:.3}, 0.6 → {r6:.3}");
        assert!(r0 > r3 + 0.05 && r3 > r6 + 0.05, "{r0:.3} {r3:.3} {r6:.3}");
        assert!((mean_at(0.0, true) - r0).abs() < 1e-12, "unobserved claims are not penalised");
    }

    /// ReBel's format: the belief demonstrations replay to success, every stated belief parses,
    /// and a true belief scores full marks on the task phase and the prediction (a wrong one
    /// does not).
    #[test]
    fn belief_demonstrations_state_true_beliefs() {
        use crate::env::{first_observation, split_belief};
        use oxrl_core::shaping::rebel::{belief_key, consistency_reward, Belief, Rebel};
        let c = Rebel::default();
        for (i, objects) in (0..20).zip([true, false].into_iter().cycle()) {
            let cfg = GridConfig { size: 4, belief: true, belief_objects: objects, test_size: 5, ..Default::default() };
            let t = Grid::new(cfg, 0).unwrap();
            let p = t.train_problem(i);
            assert!(p.prompt.contains("belief"));
            let v = t.verify(&p, &p.solution);
            assert!(v.correct && v.format_ok, "{}\n{}", p.solution, v.detail);
            let env = t.environment(&p).unwrap();
            let mut obs = vec![first_observation(&p.prompt).unwrap().to_string()];
            let lines: Vec<&str> = crate::env::actions(&p.solution);
            let tr = replay(t.environment(&p).unwrap().as_mut(), &p.solution);
            assert_eq!(tr.turns.len(), lines.len());
            for (k, (line, turn)) in lines.iter().zip(&tr.turns).enumerate() {
                assert!(line.len() < t.max_completion_chars(), "{line}");
                let (b, action) = split_belief(line);
                assert_eq!(action, turn.action);
                let b = Belief::parse(b.unwrap()).expect("a demonstrated belief parses");
                let truth = env.belief_truth(&obs).unwrap();
                assert_eq!(b.task.phase, truth.phase);
                assert_eq!(belief_key(Some(&b)), format!("{}|{}", truth.phase, b.task.target));
                let next = (k + 1 < lines.len()).then_some(turn.step.observation.as_str());
                let r = consistency_reward(Some(&b), &truth.tracker, &truth.phase, next, 2, &c);
                let full_pred = if next.is_some() { c.a_pred } else { 0.0 };
                // Objects are all true (or, not stated, all missed once one is known); visited
                // (not stated) scores 0, unvisited (none) 1.
                assert_eq!(b.state.objects.is_empty(), !objects);
                let obj = if objects || truth.tracker.objects.is_empty() { 0.35 } else { 0.0 };
                let want = c.a_state * (obj + 0.25 + 0.15) + c.a_task + full_pred + c.a_format * 0.01;
                assert!((r - want).abs() < 1e-9, "step {k}: {r} vs {want}: {line}");
                let mut wrong = b.clone();
                wrong.prediction = "9,9".into();
                wrong.task.phase = if b.task.phase == "deliver" { "find key".into() } else { "deliver".into() };
                let rw = consistency_reward(Some(&wrong), &truth.tracker, &truth.phase, next, 2, &c);
                assert!((r - rw - c.a_task - full_pred).abs() < 1e-9);
                obs.push(turn.step.observation.clone());
            }
        }
        // Without the flag the format is unchanged; a belief line's action still executes.
        let plain = Grid::new(GridConfig { size: 4, test_size: 5, ..Default::default() }, 0).unwrap();
        let p = plain.train_problem(0);
        assert!(!p.solution.contains("<belief>") && !p.prompt.contains("belief"));
        assert!(Grid::new(GridConfig { belief_objects: true, ..Default::default() }, 0).is_err());
        assert_eq!(split_belief("<belief>{}</belief> north"), (Some("<belief>{}</belief>"), "north"));
        assert_eq!(split_belief(" north "), (None, "north"));
        assert_eq!(split_belief("<belief>{ north"), (None, "<belief>{ north"));
    }

    /// VSC-RL's decomposition: the instruction names the first subgoal, the observation that
    /// completes one names the next, progress counts them in order, and stripping the
    /// announcements gives the plain task's transcript back.
    #[test]
    fn subgoals_are_announced_in_order() {
        use crate::env::without_subgoals;
        for closed in [false, true] {
            let cfg = GridConfig { size: 4, closed_box: closed, subgoals: true, test_size: 5, ..Default::default() };
            let t = Grid::new(cfg.clone(), 0).unwrap();
            let plain = Grid::new(GridConfig { subgoals: false, ..cfg }, 0).unwrap();
            for i in 0..10 {
                let (p, q) = (t.train_problem(i), plain.train_problem(i));
                assert!(p.prompt.lines().next().unwrap().ends_with(" subgoal: pick up the key"), "{}", p.prompt);
                assert!(t.verify(&p, &p.solution).correct);
                assert_eq!(without_subgoals(&p.prompt), q.prompt);
                assert_eq!(without_subgoals(&p.solution), q.solution);
                let announced: Vec<&str> =
                    p.solution.lines().filter_map(|l| l.split_once(" subgoal: ").map(|x| x.1)).collect();
                let want = if closed {
                    vec!["open the box", "drop the key in the box"]
                } else {
                    vec!["drop the key in the box"]
                };
                assert_eq!(announced, want);
                let mut e = t.environment(&p).unwrap();
                assert_eq!(e.subgoal_progress(), Some(0));
                let tr = replay(e.as_mut(), &p.solution);
                assert!(tr.success);
                assert_eq!(e.subgoal_progress(), Some(if closed { 3 } else { 2 }));
                assert_eq!(plain.environment(&q).unwrap().subgoal_progress(), None);
            }
        }
        // A closed box opened before the key is picked: the pick completes two subgoals at once.
        let mut e = env((0, 0), (0, 2), (0, 1), true);
        e.subgoals = true;
        assert!(e.step("open box").observation.find("subgoal").is_none(), "opening first completes nothing yet");
        assert_eq!(e.subgoal_progress(), Some(0));
        e.step("east");
        e.step("east");
        let s = e.step("pick");
        assert!(s.observation.ends_with(" subgoal: drop the key in the box"), "{}", s.observation);
        assert_eq!(e.subgoal_progress(), Some(2));
        assert_eq!(without_subgoals("a subgoal: x\n@b\nc subgoal: y"), "a\n@b\nc");
    }

    fn env(agent: Cell, key: Cell, boxc: Cell, closed: bool) -> GridEnv {
        let meta = serde_json::json!({"size": 4, "agent": [agent.0, agent.1], "key": [key.0, key.1],
                                      "box": [boxc.0, boxc.1], "closed": closed});
        GridEnv::from_meta(&meta, 12).unwrap()
    }

    #[test]
    fn dynamics_observations_and_rewards() {
        let mut e = env((0, 0), (1, 0), (3, 3), false);
        assert_eq!(e.observe(), "0,0 #.k#");
        let s = e.step("north");
        assert!(!s.valid && s.observation.starts_with("Nothing happens."));
        assert!(!e.step("pick").valid, "no key here");
        assert!(e.step("south").valid);
        assert_eq!(e.observe(), "1,0 ...# on k");
        let s = e.step("pick");
        assert!(s.valid && s.reward == 1.0 && e.holding);
        assert!(!e.step("drop").valid, "not at the box");
        for a in ["east", "east", "east", "south", "south"] {
            assert!(e.step(a).valid, "{a}");
        }
        assert_eq!(e.observe(), "3,3 .##. on b has k");
        let s = e.step("drop");
        assert!(s.valid && s.done && s.reward == 1.0 && e.success() && e.outcome() == 1.0);
        // A closed box must be opened first.
        let mut e = env((0, 0), (0, 1), (0, 2), true);
        for a in ["east", "pick", "east"] {
            assert!(e.step(a).valid);
        }
        assert!(!e.step("drop").valid);
        assert!(e.step("open box").valid && e.step("drop").done);
    }

    #[test]
    fn demonstrations_succeed_and_transcripts_replay() {
        for closed in [false, true] {
            let t = Grid::new(GridConfig { closed_box: closed, test_size: 20, ..Default::default() }, 3).unwrap();
            for i in 0..30 {
                let p = t.train_problem(i);
                let v = t.verify(&p, &p.solution);
                assert!(v.correct && v.format_ok && v.reward == 1.0, "{}: {}\n{}", p.prompt, p.solution, v.detail);
                let turns = crate::env::actions(&p.solution).len();
                assert!(turns <= 4 * 4 - 2 + closed as usize && turns >= 2);
            }
            // The observation lines are ignored by the replay; a wrong plan fails.
            let p = &t.test_problems()[0];
            assert!(!t.verify(p, "north\nnorth\n").correct);
            assert!(!t.verify(p, "").format_ok);
        }
        // Held-out layouts never appear in training.
        let t = Grid::new(GridConfig::default(), 1).unwrap();
        let test: std::collections::HashSet<String> = t.test_problems().iter().map(|p| p.meta.to_string()).collect();
        assert!((0..300).all(|i| !test.contains(&t.train_problem(i).meta.to_string())));
    }

    #[test]
    fn replay_stops_at_the_turn_limit_and_at_success() {
        assert!(Grid::new(GridConfig { size: 3, max_turns: 9, ..Default::default() }, 0).is_err());
        let t = Grid::new(GridConfig { size: 3, max_turns: 10, test_size: 5, ..Default::default() }, 0).unwrap();
        let p = t.train_problem(0);
        let mut env = t.environment(&p).unwrap();
        let long = "east\nwest\n".repeat(10);
        let tr = replay(env.as_mut(), &long);
        assert_eq!(tr.turns.len(), 10);
        let mut env = t.environment(&p).unwrap();
        let tr = replay(env.as_mut(), &format!("{}north\n", p.solution));
        assert!(
            tr.success && tr.turns.len() == crate::env::actions(&p.solution).len(),
            "actions after success are ignored"
        );
    }
}
