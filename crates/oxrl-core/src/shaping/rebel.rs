//! ReBel — "Rewarding Beliefs, Not Actions: Consistency-Guided Credit Assignment for Long-Horizon
//! Agents" (2026): each agent turn states a belief (`<belief>{json}</belief>`: task phase and
//! target, object locations and states, visited and unvisited places, a prediction of the next
//! observation); a ground-truth tracker accumulates the facts the observations revealed.
//!
//! 1. Belief-consistency reward per step
//!    `r_cons = a1·r_state + a2·r_task + a3·r_pred + a4·r_format`:
//!    - r_state: the belief against the tracker with observability masking — only contradictions
//!      of observed facts and observed facts missing from the belief count, per field
//!      `max(0, 1 − (contradictions + misses)/n_known)` (objects, states), visited places by F1
//!      minus 0.1 per false positive, unvisited candidates by the share not already visited;
//!      weights 0.35 / 0.25 / 0.25 / 0.15; the first two steps score a lenient constant;
//!    - r_task: 1 when the belief's phase equals the phase derived from the environment;
//!    - r_pred: the share of the prediction's content unigrams and bigrams found in the next
//!      observation (delayed until it arrives; 0 on the last step);
//!    - r_format: +0.01 for a parseable belief, a penalty otherwise.
//! 2. Episode advantage A_ep: the task outcome normalised within the prompt group (mean-only).
//! 3. Belief-aware grouping: each step's belief reduces to a key (normalised phase and target;
//!    unparseable → "null"); group id = (prompt, key).
//! 4. Step advantage: `R_env_t = γ^(T−1−t)·R_g`, `R_bel_t = r_cons_t + γ·R_bel_{t+1}`, each
//!    centred (or z-scored) within its belief group, singleton groups 0:
//!    `A_step = norm(R_env_t) + norm(R_bel_t)`.
//! 5. `A_t = A_ep + ω·A_step` on the step's action tokens.
//!
//! CONFIRMED from Fateyetian/Rebel (core_rebel.py: grouping, discounted returns, A_total;
//! belief_tracker.py: reward components and weights). The lenient constant of the first two steps
//! and the format penalty are not given in the spec: 0.5 and −0.1 here, both configurable.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// ReBel's settings (spec defaults: ω 0.5, γ 0.95, a = 0.3 / 0.4 / 0.3 / 0.1, mean-only).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rebel {
    pub omega: f64,
    pub gamma: f64,
    pub a_state: f64,
    pub a_task: f64,
    pub a_pred: f64,
    pub a_format: f64,
    /// z-score within groups instead of centring only.
    pub std_norm: bool,
    /// r_state of the first two steps.
    pub lenient: f64,
    /// r_format of an unparseable belief.
    pub format_penalty: f64,
}

impl Default for Rebel {
    fn default() -> Self {
        Self {
            omega: 0.5,
            gamma: 0.95,
            a_state: 0.3,
            a_task: 0.4,
            a_pred: 0.3,
            a_format: 0.1,
            std_norm: false,
            lenient: 0.5,
            format_penalty: -0.1,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TaskBelief {
    pub phase: String,
    pub target: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct StateBelief {
    /// object → location (or "in_hand")
    pub objects: BTreeMap<String, String>,
    /// object → state ("open", "closed", …)
    pub states: BTreeMap<String, String>,
    pub visited: Vec<String>,
    pub unvisited_candidates: Vec<String>,
}

/// One turn's stated belief.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Belief {
    pub task: TaskBelief,
    pub state: StateBelief,
    pub prediction: String,
}

impl Belief {
    /// The belief inside `<belief>…</belief>` of a turn's text, when present and valid JSON.
    pub fn parse(turn: &str) -> Option<Belief> {
        let start = turn.find("<belief>")? + "<belief>".len();
        let end = start + turn[start..].find("</belief>")?;
        serde_json::from_str(turn[start..end].trim()).ok()
    }
}

/// The facts observations have revealed so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tracker {
    pub objects: BTreeMap<String, String>,
    pub states: BTreeMap<String, String>,
    pub visited: BTreeSet<String>,
}

fn norm(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// Contradictions and misses of a belief map against the observed facts, as
/// `max(0, 1 − (contradictions + misses)/n_known)` (1 when nothing is known yet). A belief about
/// an object the tracker never observed is neither.
fn map_score(belief: &BTreeMap<String, String>, known: &BTreeMap<String, String>) -> f64 {
    if known.is_empty() {
        return 1.0;
    }
    let b: HashMap<String, String> = belief.iter().map(|(k, v)| (norm(k), norm(v))).collect();
    let bad = known
        .iter()
        .filter(|(k, v)| match b.get(&norm(k)) {
            Some(bv) => *bv != norm(v),
            None => true,
        })
        .count();
    (1.0 - bad as f64 / known.len() as f64).max(0.0)
}

/// r_state: the weighted field scores (objects 0.35, states 0.25, visited 0.25, unvisited 0.15);
/// `lenient` for the first two steps.
pub fn state_score(belief: &StateBelief, tracker: &Tracker, step: usize, lenient: f64) -> f64 {
    if step < 2 {
        return lenient;
    }
    let objects = map_score(&belief.objects, &tracker.objects);
    let states = map_score(&belief.states, &tracker.states);
    let claimed: BTreeSet<String> = belief.visited.iter().map(|s| norm(s)).collect();
    let truth: BTreeSet<String> = tracker.visited.iter().map(|s| norm(s)).collect();
    let visited = if truth.is_empty() && claimed.is_empty() {
        1.0
    } else {
        let tp = claimed.intersection(&truth).count() as f64;
        let fp = claimed.difference(&truth).count() as f64;
        let (p, r) = (tp / claimed.len().max(1) as f64, tp / truth.len().max(1) as f64);
        let f1 = if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 };
        (f1 - 0.1 * fp).max(0.0)
    };
    let cands: Vec<String> = belief.unvisited_candidates.iter().map(|s| norm(s)).collect();
    let unvisited = if cands.is_empty() {
        1.0
    } else {
        cands.iter().filter(|c| !truth.contains(*c)).count() as f64 / cands.len() as f64
    };
    0.35 * objects + 0.25 * states + 0.25 * visited + 0.15 * unvisited
}

const STOPWORDS: [&str; 16] =
    ["a", "an", "the", "is", "are", "i", "you", "to", "of", "in", "on", "at", "and", "will", "be", "see"];

fn content_words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .collect()
}

/// r_pred: the share of the prediction's content unigrams and bigrams present in the next
/// observation (0 without one, i.e. on the last step, or for an empty prediction).
pub fn prediction_score(prediction: &str, next_obs: Option<&str>) -> f64 {
    let Some(obs) = next_obs else { return 0.0 };
    let (p, o) = (content_words(prediction), content_words(obs));
    let grams = |w: &[String]| -> Vec<String> {
        w.iter().cloned().chain(w.windows(2).map(|x| format!("{} {}", x[0], x[1]))).collect()
    };
    let (pg, og) = (grams(&p), grams(&o));
    if pg.is_empty() {
        return 0.0;
    }
    let seen: BTreeSet<&String> = og.iter().collect();
    pg.iter().filter(|g| seen.contains(g)).count() as f64 / pg.len() as f64
}

/// The consistency reward of one step: `belief` as parsed (None: unparseable), the tracker after
/// the observations so far, the phase the environment implies, and the next observation.
pub fn consistency_reward(
    belief: Option<&Belief>,
    tracker: &Tracker,
    phase: &str,
    next_obs: Option<&str>,
    step: usize,
    c: &Rebel,
) -> f64 {
    let Some(b) = belief else { return c.a_format * c.format_penalty };
    let r_state = state_score(&b.state, tracker, step, c.lenient);
    let r_task = (norm(&b.task.phase) == norm(phase)) as u8 as f64;
    let r_pred = prediction_score(&b.prediction, next_obs);
    c.a_state * r_state + c.a_task * r_task + c.a_pred * r_pred + c.a_format * 0.01
}

/// The belief-aware grouping key: normalised (phase, target), "null" when unparseable.
pub fn belief_key(belief: Option<&Belief>) -> String {
    match belief {
        Some(b) => format!("{}|{}", norm(&b.task.phase), norm(&b.task.target)),
        None => "null".into(),
    }
}

/// One trajectory for the advantage: its prompt, outcome R_g and per-step (key, r_cons).
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectory {
    pub prompt: usize,
    pub outcome: f64,
    pub steps: Vec<(String, f64)>,
}

/// Per-step advantages A_t = A_ep + ω·A_step of every trajectory.
pub fn advantages(trajs: &[Trajectory], c: &Rebel) -> Vec<Vec<f64>> {
    // 2. Episode advantage: the outcome centred (or z-scored) within the prompt group.
    let group_norm = |vals: &[(usize, f64)]| -> Vec<f64> {
        // vals: (group id, value) → normalised value per entry; singleton groups 0.
        let mut groups: HashMap<usize, Vec<f64>> = HashMap::new();
        for &(g, v) in vals {
            groups.entry(g).or_default().push(v);
        }
        vals.iter()
            .map(|&(g, v)| {
                let xs = &groups[&g];
                if xs.len() < 2 {
                    return 0.0;
                }
                let m = xs.iter().sum::<f64>() / xs.len() as f64;
                let sd = (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64).sqrt();
                if c.std_norm {
                    (v - m) / (sd + 1e-6)
                } else {
                    v - m
                }
            })
            .collect()
    };
    let ep = group_norm(&trajs.iter().map(|t| (t.prompt, t.outcome)).collect::<Vec<_>>());
    // 3–4. Discounted returns per step, normalised within (prompt, belief key) groups.
    let mut ids: HashMap<(usize, String), usize> = HashMap::new();
    let (mut env_vals, mut bel_vals) = (Vec::new(), Vec::new());
    for t in trajs {
        let n = t.steps.len();
        let mut r_bel = vec![0.0; n];
        for i in (0..n).rev() {
            r_bel[i] = t.steps[i].1 + if i + 1 < n { c.gamma * r_bel[i + 1] } else { 0.0 };
        }
        for (i, (key, _)) in t.steps.iter().enumerate() {
            let next = ids.len();
            let g = *ids.entry((t.prompt, key.clone())).or_insert(next);
            env_vals.push((g, c.gamma.powi((n - 1 - i) as i32) * t.outcome));
            bel_vals.push((g, r_bel[i]));
        }
    }
    let (env_n, bel_n) = (group_norm(&env_vals), group_norm(&bel_vals));
    let mut k = 0;
    trajs
        .iter()
        .zip(ep)
        .map(|(t, a_ep)| {
            (0..t.steps.len())
                .map(|_| {
                    let a = a_ep + c.omega * (env_n[k] + bel_n[k]);
                    k += 1;
                    a
                })
                .collect()
        })
        .collect()
}

/// The discounted environment returns of one trajectory, `γ^(T−1−t)·R_g`.
pub fn env_returns(outcome: f64, steps: usize, gamma: f64) -> Vec<f64> {
    (0..steps).map(|t| gamma.powi((steps - 1 - t) as i32) * outcome).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> Tracker {
        let mut t = Tracker::default();
        t.objects.insert("apple".into(), "table".into());
        t.states.insert("fridge".into(), "closed".into());
        t.visited.extend(["kitchen".to_string(), "table".to_string()]);
        t
    }

    fn belief(objects: &[(&str, &str)]) -> StateBelief {
        StateBelief {
            objects: objects.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
            states: [("fridge".to_string(), "closed".to_string())].into(),
            visited: vec!["kitchen".into(), "table".into()],
            unvisited_candidates: vec!["garden".into()],
        }
    }

    #[test]
    fn contradictions_cost_and_unobserved_inferences_do_not() {
        let t = tracker();
        let right = state_score(&belief(&[("apple", "table")]), &t, 5, 0.5);
        assert!((right - 1.0).abs() < 1e-12);
        // Spec oracle: apple in fridge contradicts the observed apple on the table.
        let wrong = state_score(&belief(&[("apple", "fridge")]), &t, 5, 0.5);
        assert!((wrong - 0.65).abs() < 1e-12, "{wrong}");
        // A location for an object the tracker never saw: no penalty (observability masking).
        let extra = state_score(&belief(&[("apple", "table"), ("knife", "drawer")]), &t, 5, 0.5);
        assert_eq!(extra, right);
        // An observed fact missing from the belief is penalised like a contradiction.
        assert_eq!(state_score(&belief(&[]), &t, 5, 0.5), wrong);
        // Visited: a false positive costs F1 and 0.1; claiming a visited place as unvisited costs.
        let mut b = belief(&[("apple", "table")]);
        b.visited.push("garden".into());
        let f1 = 2.0 * (2.0 / 3.0) / (2.0 / 3.0 + 1.0);
        assert!((state_score(&b, &t, 5, 0.5) - (0.75 + 0.25 * (f1 - 0.1))).abs() < 1e-12);
        let mut b = belief(&[("apple", "table")]);
        b.unvisited_candidates = vec!["garden".into(), "kitchen".into()];
        assert!((state_score(&b, &t, 5, 0.5) - (0.85 + 0.15 * 0.5)).abs() < 1e-12);
        // The first two steps are lenient.
        assert_eq!(state_score(&belief(&[("apple", "fridge")]), &t, 1, 0.5), 0.5);
    }

    #[test]
    fn prediction_task_and_format_terms() {
        assert_eq!(prediction_score("the fridge is open", Some("You see the fridge is open.")), 1.0);
        // content unigrams fridge, empty + bigram "fridge empty": only "fridge" is observed
        assert!((prediction_score("the fridge is empty", Some("the fridge is closed")) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(prediction_score("anything", None), 0.0, "the last step has no next observation");
        let c = Rebel::default();
        let b: Belief = serde_json::from_str(
            r#"{"task": {"phase": "find", "target": "apple"}, "state": {"objects": {"apple": "table"}, "states": {"fridge": "closed"}, "visited": ["kitchen", "table"]}, "prediction": "fridge closed"}"#,
        )
        .unwrap();
        let t = tracker();
        let r = consistency_reward(Some(&b), &t, "find", Some("the fridge is closed"), 5, &c);
        assert!((r - (0.3 + 0.4 + 0.3 + 0.001)).abs() < 1e-12, "{r}");
        let r2 = consistency_reward(Some(&b), &t, "put", Some("the fridge is closed"), 5, &c);
        assert!((r - r2 - 0.4).abs() < 1e-12, "r_task");
        assert_eq!(consistency_reward(None, &t, "find", None, 5, &c), 0.1 * -0.1);
        assert_eq!(
            Belief::parse(&format!("<belief>{}</belief> go north", r#"{"task": {"phase": "find"}}"#))
                .unwrap()
                .task
                .phase,
            "find"
        );
        assert!(Belief::parse("<belief>{not json</belief>").is_none() && Belief::parse("go north").is_none());
        assert_eq!(belief_key(None), "null");
        assert_eq!(belief_key(Some(&b)), "find|apple");
    }

    #[test]
    fn discounted_returns_and_belief_grouped_advantages() {
        // Spec oracle: R_g = 1, T = 3, γ = 0.95 → [0.9025, 0.95, 1].
        let r = env_returns(1.0, 3, 0.95);
        assert!(r.iter().zip([0.9025, 0.95, 1.0]).all(|(a, b)| (a - b).abs() < 1e-12));
        let c = Rebel::default();
        // Two trajectories of prompt 0 share the key "find|apple" at different steps: those steps
        // are compared with each other; every other key is a singleton (A_step = 0).
        let a =
            Trajectory { prompt: 0, outcome: 1.0, steps: vec![("find|apple".into(), 0.5), ("put|apple".into(), 0.5)] };
        let b = Trajectory {
            prompt: 0,
            outcome: 0.0,
            steps: vec![("explore|room".into(), 0.1), ("explore|hall".into(), 0.2), ("find|apple".into(), 0.3)],
        };
        let adv = advantages(&[a.clone(), b.clone()], &c);
        let (ep_a, ep_b) = (0.5, -0.5);
        // Singletons: the step advantage vanishes.
        assert!(
            (adv[0][1] - ep_a).abs() < 1e-12 && (adv[1][0] - ep_b).abs() < 1e-12 && (adv[1][1] - ep_b).abs() < 1e-12
        );
        // The shared group: R_env a₀ = 0.95, b₂ = 0; R_bel a₀ = 0.5 + 0.95·0.5, b₂ = 0.3.
        let (env_a, env_b) = (0.95, 0.0);
        let (bel_a, bel_b) = (0.5 + 0.95 * 0.5, 0.3);
        let step_a = (env_a - (env_a + env_b) / 2.0) + (bel_a - (bel_a + bel_b) / 2.0);
        assert!((adv[0][0] - (ep_a + 0.5 * step_a)).abs() < 1e-12, "{} vs {}", adv[0][0], ep_a + 0.5 * step_a);
        assert!((adv[1][2] - (ep_b - 0.5 * step_a)).abs() < 1e-12);
        // Another prompt with the same key is a different group.
        let mut other = a.clone();
        other.prompt = 1;
        let adv = advantages(&[a, other], &c);
        assert!(adv.iter().flatten().all(|&x| x.abs() < 1e-12), "identical outcomes, singleton groups");
        // All steps in one group: step-level GRPO over the prompt (centred values sum to 0).
        let one = |o: f64| Trajectory { prompt: 0, outcome: o, steps: vec![("k".into(), 0.2); 3] };
        let adv = advantages(&[one(1.0), one(0.0)], &Rebel { omega: 1.0, ..c });
        // A_ep = ±0.5 on the two trajectories' 3 steps each and the one group's centred step
        // values: everything sums to 0, and the winner's steps all rank above the loser's.
        assert!(adv.iter().flatten().sum::<f64>().abs() < 1e-9);
        assert!(adv[0].iter().all(|a| adv[1].iter().all(|b| a > b)));
    }
}
