//! HECRL's test-time subgoal selection — "Hierarchical Entity-centric RL with Factored Subgoal
//! Diffusion" (2026), as in the authors' code (DanHrmti/HECRL): every `every` environment steps
//! (at most `max_subgoals` times, then the final goal), draw candidate subgoals, discard those the
//! low level cannot reach (V(s, c) < `competence_radius`, in value units of −1 per step), pick the
//! candidate with the highest V(c, g), and head for g itself when V(s, g) beats every candidate.
//!
//! The paper's generator is a conditional diffusion model; `diffusion` is one over the flat
//! (state, waypoint, goal) triple ([`super::subgoal_diffusion`], trained alongside the agent
//! whenever it is the configured generator). Two nonparametric stand-ins also generate candidates:
//! `dataset` — states drawn uniformly from the offline dataset
//! (the spec's stand-in); `factored` (INFERRED: the factored generator's structure without the
//! network) — the current state with a subset of its entities set to their goal values, every
//! non-empty subset once (entities are consecutive `entity_dims`-sized groups of the goal's
//! entries), so each candidate finishes some objects and leaves the others where they are. The low
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
    /// `dataset` (uniform dataset states), `factored` (subsets of entities moved to the goal) or
    /// `diffusion` (a conditional DDPM trained with the agent).
    pub generator: String,
    /// Diffusion: denoising steps, hidden units, and the waypoint offset k (w = s_{t+k}).
    pub diffusion_steps: usize,
    pub diffusion_hidden: usize,
    pub waypoint_k: usize,
    /// Goal entries per entity for the `factored` generator (2 for (x, y) entities).
    pub entity_dims: usize,
}

impl Default for SubgoalConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            candidates: 256,
            every: 25,
            max_subgoals: 32,
            competence_radius: -30.0,
            generator: "dataset".into(),
            entity_dims: 2,
            diffusion_steps: 10,
            diffusion_hidden: 256,
            waypoint_k: 25,
        }
    }
}

impl SubgoalConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.enabled && (self.candidates == 0 || self.every == 0) {
            anyhow::bail!("gc.subgoals: candidates and every must be positive");
        }
        if !["dataset", "factored", "diffusion"].contains(&self.generator.as_str()) {
            anyhow::bail!("gc.subgoals.generator: {:?} is not one of dataset, factored, diffusion", self.generator);
        }
        if self.diffusion_steps == 0 || self.diffusion_hidden == 0 || self.waypoint_k == 0 {
            anyhow::bail!("gc.subgoals: diffusion_steps, diffusion_hidden and waypoint_k must be positive");
        }
        if self.entity_dims == 0 {
            anyhow::bail!("gc.subgoals.entity_dims must be positive");
        }
        Ok(())
    }
}

/// The most entities the `factored` generator enumerates subsets of (2^12 − 1 candidates).
pub const MAX_FACTORED_ENTITIES: usize = 12;

/// The `factored` generator: for every non-empty subset of the goal's entities (consecutive
/// `entity_dims` entries of `goal_indices`), state `s` with those entities' entries set to the
/// goal's — 2^E − 1 candidate states, subsets in binary order (entity 0 alone first); E ≤
/// [`MAX_FACTORED_ENTITIES`] (checked when the agent is built).
pub fn factored_candidates(s: &[f32], g: &[f32], goal_indices: &[usize], entity_dims: usize) -> Vec<Vec<f32>> {
    let entities = goal_indices.len() / entity_dims.max(1);
    (1u32..(1 << entities))
        .map(|mask| {
            let mut c = s.to_vec();
            for e in 0..entities {
                if mask & (1 << e) != 0 {
                    for k in e * entity_dims..(e + 1) * entity_dims {
                        c[goal_indices[k]] = g[k];
                    }
                }
            }
            c
        })
        .collect()
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
        // the factored generator: state (agent, box 0, box 1) with goals for the two boxes
        let s = [0.0, 0.0, 1.0, 1.0, 2.0, 2.0];
        let g = [5.0, 5.0, 4.0, 4.0];
        let c = factored_candidates(&s, &g, &[2, 3, 4, 5], 2);
        assert_eq!(
            c,
            vec![
                vec![0.0, 0.0, 5.0, 5.0, 2.0, 2.0],
                vec![0.0, 0.0, 1.0, 1.0, 4.0, 4.0],
                vec![0.0, 0.0, 5.0, 5.0, 4.0, 4.0]
            ]
        );
        // a filtered candidate is never chosen, whatever its value toward g
        for v in [0.0f32, 10.0, 1e6] {
            assert_ne!(select(&[-31.0, -1.0], &[v, -50.0], -60.0, -30.0), Target::Subgoal(0));
        }
    }
}
