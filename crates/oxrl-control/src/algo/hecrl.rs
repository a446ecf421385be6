//! HECRL's test-time subgoal selection — "Hierarchical Entity-centric RL with Factored Subgoal
//! Diffusion" (2026), as in the authors' code (DanHrmti/HECRL): every `every` environment steps
//! (at most `max_subgoals` times, then the final goal), draw candidate subgoals, discard those the
//! low level cannot reach (V(s, c) < `competence_radius`, in value units of −1 per step), pick the
//! candidate with the highest V(c, g), and head for g itself when V(s, g) beats every candidate.
//!
//! The paper's generator is a conditional diffusion model over entity sets; here candidates are
//! states drawn uniformly from the offline dataset (the spec's nonparametric stand-in), and the low
//! level is the goal-conditioned agent ([`super::gcivl`]) acting toward the chosen subgoal.

use serde::{Deserialize, Serialize};

/// `[gc.subgoals]` — HECRL's defaults are 256 candidates, every 25 steps, 32 subgoals, radius −30.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubgoalConfig {
    /// Use subgoal selection when acting (evaluation); off = the flat policy.
    pub enabled: bool,
    pub candidates: usize,
    pub every: usize,
    pub max_subgoals: usize,
    pub competence_radius: f64,
}

impl Default for SubgoalConfig {
    fn default() -> Self {
        Self { enabled: false, candidates: 256, every: 25, max_subgoals: 32, competence_radius: -30.0 }
    }
}

/// What to head for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The final goal.
    Goal,
    /// Candidate `i`.
    Subgoal(usize),
}

/// The selection rule on values: `v_s_c[i]` = V(s, c_i), `v_c_g[i]` = V(c_i, g), `v_s_g` = V(s, g).
/// Candidates with V(s, c) < radius are filtered; among the rest the first with the highest V(c, g)
/// wins; the goal wins when V(s, g) exceeds it (or nothing survives the filter).
pub fn select(v_s_c: &[f32], v_c_g: &[f32], v_s_g: f32, radius: f32) -> Target {
    let mut best: Option<(usize, f32)> = None;
    for (i, (&sc, &cg)) in v_s_c.iter().zip(v_c_g).enumerate() {
        if sc < radius {
            continue;
        }
        if best.is_none_or(|(_, b)| cg > b) {
            best = Some((i, cg));
        }
    }
    match best {
        Some((i, b)) if b >= v_s_g => Target::Subgoal(i),
        _ => Target::Goal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_rule_on_a_hand_built_value_table() {
        // candidate 0 is the best toward g but unreachable (filtered); 1 and 3 tie → first index
        let v_s_c = [-50.0, -10.0, -5.0, -20.0];
        let v_c_g = [-1.0, -8.0, -12.0, -8.0];
        assert_eq!(select(&v_s_c, &v_c_g, -40.0, -30.0), Target::Subgoal(1));
        // the goal is chosen when V(s, g) exceeds every surviving candidate
        assert_eq!(select(&v_s_c, &v_c_g, -7.0, -30.0), Target::Goal);
        // nothing reachable → the goal
        assert_eq!(select(&[-40.0, -35.0], &[0.0, 0.0], -90.0, -30.0), Target::Goal);
        // a filtered candidate is never chosen, whatever its value toward g
        for v in [0.0f32, 10.0, 1e6] {
            assert_ne!(select(&[-31.0, -1.0], &[v, -50.0], -60.0, -30.0), Target::Subgoal(0));
        }
    }
}
