//! A multi-entity push gridworld — the spec's CPU stand-in for HECRL: on a 6 × 6 grid an agent
//! pushes N ∈ {1, 2, 3} boxes onto N target cells (Sokoban rules: moving into a box pushes it one
//! cell if the cell beyond is inside the grid and free of boxes, otherwise nothing moves). The
//! observation is the set of entity feature vectors (x, y, type) — agent (type 0), boxes (1),
//! targets (2) — flattened in that order; reward −1 per step and 0 on the step that covers every
//! target (which terminates); 100·N-step limit. Boxes and targets start on interior cells so every
//! box can be pushed in both axes. [`pusher_action`] is the scripted noisy pusher for datasets.
//!
//! The goal-conditioned variants `push-N-gc` (for GCIVL / HECRL) observe (state, goal) instead:
//! the state is the agent's and the boxes' (x, y), the goal the target cells' (x, y) — what a goal
//! says of a state is where its boxes are (`gc.goal_indices`), wherever the agent stands.

use super::{Action, Core, Env, EnvState, Space, Step};
use anyhow::{bail, Result};
use rand::Rng as _;
use std::collections::VecDeque;

pub const SIDE: i64 = 6;
const MOVES: [(i64, i64); 4] = [(0, -1), (0, 1), (-1, 0), (1, 0)];

pub struct PushGrid {
    core: Core,
    pub n: usize,
    name: &'static str,
    /// Observe (agent, boxes | targets) coordinates without type tags (the `-gc` variants).
    goal_obs: bool,
    pub agent: (i64, i64),
    pub boxes: Vec<(i64, i64)>,
    pub targets: Vec<(i64, i64)>,
    max_steps: usize,
}

fn inside(p: (i64, i64)) -> bool {
    (0..SIDE).contains(&p.0) && (0..SIDE).contains(&p.1)
}

impl PushGrid {
    pub fn new(n: usize, seed: u64) -> Result<Self> {
        Self::with_layout(n, false, seed)
    }

    /// The goal-conditioned variant: observations (agent, boxes | targets) as plain coordinates.
    pub fn goal_conditioned(n: usize, seed: u64) -> Result<Self> {
        Self::with_layout(n, true, seed)
    }

    fn with_layout(n: usize, goal_obs: bool, seed: u64) -> Result<Self> {
        let name = match (n, goal_obs) {
            (1, false) => "push-1",
            (2, false) => "push-2",
            (3, false) => "push-3",
            (1, true) => "push-1-gc",
            (2, true) => "push-2-gc",
            (3, true) => "push-3-gc",
            _ => bail!("push gridworld: 1 to 3 boxes (got {n})"),
        };
        Ok(Self {
            core: Core::new(seed),
            n,
            name,
            goal_obs,
            agent: (0, 0),
            boxes: vec![(0, 0); n],
            targets: vec![(0, 0); n],
            max_steps: 100 * n,
        })
    }

    pub fn solved(&self) -> bool {
        self.targets.iter().all(|t| self.boxes.contains(t))
    }

    fn obs(&self) -> Vec<f32> {
        if self.goal_obs {
            return std::iter::once(self.agent)
                .chain(self.boxes.iter().copied())
                .chain(self.targets.iter().copied())
                .flat_map(|p| [p.0 as f32, p.1 as f32])
                .collect();
        }
        let mut o = vec![self.agent.0 as f32, self.agent.1 as f32, 0.0];
        for b in &self.boxes {
            o.extend([b.0 as f32, b.1 as f32, 1.0]);
        }
        for t in &self.targets {
            o.extend([t.0 as f32, t.1 as f32, 2.0]);
        }
        o
    }

    /// Apply a move with the push rule.
    pub fn apply(&mut self, a: usize) {
        let (dx, dy) = MOVES[a];
        let next = (self.agent.0 + dx, self.agent.1 + dy);
        if !inside(next) {
            return;
        }
        if let Some(i) = self.boxes.iter().position(|&b| b == next) {
            let beyond = (next.0 + dx, next.1 + dy);
            if !inside(beyond) || self.boxes.contains(&beyond) {
                return;
            }
            self.boxes[i] = beyond;
        }
        self.agent = next;
    }
}

impl Env for PushGrid {
    fn name(&self) -> &'static str {
        self.name
    }
    fn observation_space(&self) -> Space {
        let d = if self.goal_obs { 2 * (1 + 2 * self.n) } else { 3 * (1 + 2 * self.n) };
        Space::Box { low: vec![0.0; d], high: vec![SIDE as f32; d] }
    }
    fn action_space(&self) -> Space {
        Space::Discrete(4)
    }
    fn max_steps(&self) -> usize {
        self.max_steps
    }
    fn reset(&mut self) -> Vec<f32> {
        loop {
            let mut used: Vec<(i64, i64)> = Vec::new();
            let draw = |interior: bool, used: &mut Vec<(i64, i64)>, rng: &mut oxrl_core::seed::Rng| loop {
                let (lo, hi) = if interior { (1, SIDE - 1) } else { (0, SIDE) };
                let p = (rng.random_range(lo..hi), rng.random_range(lo..hi));
                if !used.contains(&p) {
                    used.push(p);
                    return p;
                }
            };
            let rng = &mut self.core.rng;
            let boxes: Vec<_> = (0..self.n).map(|_| draw(true, &mut used, rng)).collect();
            let targets: Vec<_> = (0..self.n).map(|_| draw(true, &mut used, rng)).collect();
            let agent = draw(false, &mut used, rng);
            self.boxes = boxes;
            self.targets = targets;
            self.agent = agent;
            if !self.solved() {
                break;
            }
        }
        self.core.elapsed = 0;
        self.obs()
    }
    fn step(&mut self, action: &Action) -> Result<Step> {
        let a = action.index()?;
        if a > 3 {
            bail!("{}: action {a} outside 0..4", self.name);
        }
        self.apply(a);
        let done = self.solved();
        let truncated = self.core.tick(self.max_steps) && !done;
        Ok(Step { obs: self.obs(), reward: if done { 0.0 } else { -1.0 }, terminated: done, truncated })
    }
    fn success(&self) -> Option<bool> {
        Some(self.solved())
    }
    fn save(&self) -> EnvState {
        let mut v = vec![self.agent.0 as f64, self.agent.1 as f64];
        for p in self.boxes.iter().chain(&self.targets) {
            v.extend([p.0 as f64, p.1 as f64]);
        }
        self.core.save(v)
    }
    fn restore(&mut self, state: &EnvState) -> Result<()> {
        let v = self.core.restore(state, 2 + 4 * self.n, self.name)?.to_vec();
        self.agent = (v[0] as i64, v[1] as i64);
        for i in 0..self.n {
            self.boxes[i] = (v[2 + 2 * i] as i64, v[3 + 2 * i] as i64);
            self.targets[i] = (v[2 + 2 * self.n + 2 * i] as i64, v[3 + 2 * self.n + 2 * i] as i64);
        }
        Ok(())
    }
}

/// First move of a shortest agent path from `from` to `to` that avoids boxes (None if unreachable
/// or already there).
fn path_move(from: (i64, i64), to: (i64, i64), boxes: &[(i64, i64)]) -> Option<usize> {
    if from == to || !inside(to) || boxes.contains(&to) {
        return None;
    }
    let mut prev = std::collections::HashMap::new();
    let mut q = VecDeque::from([to]);
    prev.insert(to, to);
    // search backwards from the destination so the first step is read off directly
    while let Some(c) = q.pop_front() {
        for (a, (dx, dy)) in MOVES.iter().enumerate() {
            let n = (c.0 - dx, c.1 - dy);
            if n == from {
                return Some(a);
            }
            if inside(n) && !boxes.contains(&n) && !prev.contains_key(&n) {
                prev.insert(n, c);
                q.push_back(n);
            }
        }
    }
    None
}

/// The scripted pusher: take the first box not on its target (box i ↔ target i) with a push that
/// is not blocked by another box, walk around the boxes to the cell behind it and push it along x,
/// then y; with probability `epsilon` (or when no push is possible) a random move.
pub fn pusher_action(env: &PushGrid, epsilon: f64, rng: &mut oxrl_core::seed::Rng) -> usize {
    if rng.random::<f64>() < epsilon {
        return rng.random_range(0..4);
    }
    for i in 0..env.n {
        let (b, t) = (env.boxes[i], env.targets[i]);
        if b == t {
            continue;
        }
        // candidate pushes: along x first, then y; skip one whose destination holds a box
        let mut pushes = Vec::new();
        if b.0 != t.0 {
            let dx = (t.0 - b.0).signum();
            pushes.push((if dx > 0 { 3 } else { 2 }, (b.0 - dx, b.1), (b.0 + dx, b.1)));
        }
        if b.1 != t.1 {
            let dy = (t.1 - b.1).signum();
            pushes.push((if dy > 0 { 1 } else { 0 }, (b.0, b.1 - dy), (b.0, b.1 + dy)));
        }
        for (dir, behind, dest) in pushes {
            if env.boxes.contains(&dest) {
                continue;
            }
            if env.agent == behind {
                return dir;
            }
            if let Some(a) = path_move(env.agent, behind, &env.boxes) {
                return a;
            }
        }
    }
    rng.random_range(0..4)
}

/// The scripted pusher acting on an observation (the entity list holds the whole state): either
/// layout — typed entities (3 + 6N values) or the `-gc` coordinates (2 + 4N values).
pub fn pusher_from_obs(obs: &[f32], epsilon: f64, rng: &mut oxrl_core::seed::Rng) -> Result<usize> {
    let (n, stride) = match obs.len() {
        9 => (1, 3),
        15 => (2, 3),
        21 => (3, 3),
        6 => (1, 2),
        10 => (2, 2),
        14 => (3, 2),
        l => bail!("pusher: {l} values are not a push-gridworld observation of 1 to 3 boxes"),
    };
    let mut e = PushGrid::new(n, 0)?;
    let at = |k: usize| (obs[stride * k] as i64, obs[stride * k + 1] as i64);
    e.agent = at(0);
    e.boxes = (0..n).map(|i| at(1 + i)).collect();
    e.targets = (0..n).map(|i| at(1 + n + i)).collect();
    Ok(pusher_action(&e, epsilon, rng))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn pushes_follow_sokoban_rules() {
        let mut e = PushGrid::new(2, 0).unwrap();
        e.reset();
        e.agent = (1, 2);
        e.boxes = vec![(2, 2), (4, 2)];
        e.targets = vec![(3, 2), (0, 0)];
        e.apply(3); // push box 0 right
        assert_eq!((e.agent, e.boxes[0]), ((2, 2), (3, 2)));
        e.apply(3); // box 0 would hit box 1: nothing moves
        assert_eq!((e.agent, e.boxes[0]), ((2, 2), (3, 2)));
        e.boxes = vec![(5, 3), (4, 4)];
        e.agent = (4, 3);
        e.apply(3); // box against the wall: blocked
        assert_eq!((e.agent, e.boxes[0]), ((4, 3), (5, 3)));
        // observation: agent, boxes, targets as (x, y, type)
        let o = e.obs();
        assert_eq!(o.len(), 15);
        assert_eq!(&o[..3], &[4.0, 3.0, 0.0]);
        assert_eq!(&o[3..6], &[5.0, 3.0, 1.0]);
        assert_eq!(&o[9..12], &[3.0, 2.0, 2.0]);
    }

    #[test]
    fn the_scripted_pusher_solves_most_episodes_and_success_terminates() {
        let mut rng = oxrl_core::seed::Rng::seed_from_u64(0);
        for n in [1, 2] {
            let mut e = PushGrid::new(n, n as u64).unwrap();
            let mut solved = 0;
            for _ in 0..20 {
                e.reset();
                for _ in 0..e.max_steps() {
                    let a = pusher_action(&e, 0.1, &mut rng);
                    let s = e.step(&Action::Discrete(a)).unwrap();
                    if s.terminated {
                        assert_eq!(s.reward, 0.0);
                        solved += 1;
                        break;
                    }
                    if s.truncated {
                        break;
                    }
                }
            }
            assert!(solved >= 16, "{n} boxes: {solved}/20");
        }
    }

    #[test]
    fn the_pusher_reads_the_whole_state_from_the_observation() {
        let mut rng = oxrl_core::seed::Rng::seed_from_u64(3);
        let mut e = PushGrid::new(3, 5).unwrap();
        for _ in 0..20 {
            let o = e.reset();
            let (mut r1, mut r2) = (oxrl_core::seed::Rng::seed_from_u64(9), oxrl_core::seed::Rng::seed_from_u64(9));
            assert_eq!(pusher_from_obs(&o, 0.0, &mut r1).unwrap(), pusher_action(&e, 0.0, &mut r2));
            e.apply(rng.random_range(0..4));
        }
        assert!(pusher_from_obs(&[0.0; 12], 0.0, &mut rng).is_err());
        // the goal-conditioned layout carries the same state as plain coordinates
        let mut g = PushGrid::goal_conditioned(3, 5).unwrap();
        for _ in 0..20 {
            let o = g.reset();
            assert_eq!(o.len(), 14);
            assert_eq!(&o[..2], &[g.agent.0 as f32, g.agent.1 as f32]);
            assert_eq!(&o[8..10], &[g.targets[0].0 as f32, g.targets[0].1 as f32]);
            let (mut r1, mut r2) = (oxrl_core::seed::Rng::seed_from_u64(9), oxrl_core::seed::Rng::seed_from_u64(9));
            assert_eq!(pusher_from_obs(&o, 0.0, &mut r1).unwrap(), pusher_action(&g, 0.0, &mut r2));
            g.apply(rng.random_range(0..4));
        }
    }
}
