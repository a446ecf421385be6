//! Goal-conditioned offline data: trajectory bookkeeping and the hindsight goal sampler of GCIVL /
//! HER-style relabelling (OGBench's GCDataset), plus the "navigate" dataset generator for the point
//! maze.
//!
//! Goals are dataset row indices drawn from a mixture: the current state (p_cur), a future state of
//! the same trajectory (p_traj; geometric offset with p = 1 − γ or uniform over the rest of the
//! trajectory, clipped at its end), or a random dataset state (p_rand). Success is exactly
//! "goal index == t": reward 0 and mask 0 there, −1 and 1 otherwise. Relabelled goals never cross a
//! trajectory boundary.

use crate::dataset::Dataset;
use crate::env::point_maze::{navigator_action, Layout, PointMaze, SUCCESS_RADIUS};
use crate::env::{Action, Env};
use anyhow::{bail, Result};
use oxrl_core::seed::Rng;
use rand::seq::IndexedRandom;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// A goal-sampling mixture.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GoalMix {
    pub p_cur: f64,
    pub p_traj: f64,
    pub p_rand: f64,
    /// Geometric future offsets (p = 1 − γ) instead of uniform over the rest of the trajectory.
    pub geometric: bool,
}

impl GoalMix {
    pub fn validate(&self, what: &str) -> Result<()> {
        let s = self.p_cur + self.p_traj + self.p_rand;
        if self.p_cur < 0.0 || self.p_traj < 0.0 || self.p_rand < 0.0 || (s - 1.0).abs() > 1e-6 {
            bail!("{what}: p_cur + p_traj + p_rand must be non-negative and sum to 1 (got {s})");
        }
        Ok(())
    }
}

/// For every row, the index of the last row of its trajectory.
pub fn trajectory_ends(d: &Dataset) -> Vec<usize> {
    let n = d.len();
    let mut ends = vec![n.saturating_sub(1); n];
    let mut end = n.saturating_sub(1);
    for i in (0..n).rev() {
        if d.terminals[i] || d.timeouts[i] {
            end = i;
        }
        ends[i] = end;
    }
    ends
}

/// Draw a goal row for transition row `t`.
pub fn sample_goal(t: usize, ends: &[usize], mix: &GoalMix, gamma: f64, rng: &mut Rng) -> usize {
    let u: f64 = rng.random();
    if u < mix.p_cur {
        return t;
    }
    if u < mix.p_cur + mix.p_traj {
        let end = ends[t];
        if end <= t {
            return t;
        }
        let off = if mix.geometric { geometric(1.0 - gamma, rng) } else { rng.random_range(1..=end - t) };
        return (t + off).min(end);
    }
    rng.random_range(0..ends.len())
}

/// A Geometric(p) draw on {1, 2, …} (mean 1/p).
pub fn geometric(p: f64, rng: &mut Rng) -> usize {
    let u: f64 = rng.random::<f64>().max(1e-300);
    ((u.ln() / (1.0 - p).ln()).floor() as usize) + 1
}

/// Reward and mask for (row t, goal row g): success exactly when g == t.
pub fn reward_mask(t: usize, g: usize) -> (f32, f32) {
    if t == g {
        (0.0, 0.0)
    } else {
        (-1.0, 1.0)
    }
}

/// A "navigate" dataset for a point maze: a noisy navigator walks to random target cells, picking a
/// new one on arrival, in episodes of `episode_length` steps. Observations are (x, y, target x,
/// target y); reward −1 per step and 0 when within the success radius of the target.
pub fn collect_navigate(maze: &str, steps: usize, episode_length: usize, noise: f64, seed: u64) -> Result<Dataset> {
    if episode_length == 0 || steps == 0 {
        bail!("navigate: steps and episode_length must be positive");
    }
    let mut env = PointMaze::new(maze, oxrl_core::seed::derive(seed, "navigate-env", 0))?;
    let layout: Layout = env.layout.clone();
    let cells = layout.free_cells();
    let mut rng = oxrl_core::seed::rng(seed, "navigate", 0);
    let centre = |c: (i64, i64), rng: &mut Rng| {
        (c.0 as f64 + 0.5 + rng.random_range(-0.2..0.2), c.1 as f64 + 0.5 + rng.random_range(-0.2..0.2))
    };
    let mut d = Dataset::new(4, 2);
    let mut t = 0;
    while t < steps {
        let start = centre(*cells.choose(&mut rng).unwrap(), &mut rng);
        let mut target = centre(*cells.choose(&mut rng).unwrap(), &mut rng);
        env.set(start, target);
        for k in 0..episode_length.min(steps - t) {
            let pos = (env.state[0], env.state[1]);
            let obs = [pos.0 as f32, pos.1 as f32, target.0 as f32, target.1 as f32];
            let a = navigator_action(&layout, pos, target, noise, &mut rng);
            env.state[2] = target.0;
            env.state[3] = target.1;
            let s = env.step(&Action::Continuous(a.to_vec()))?;
            let last = k + 1 == episode_length || t + 1 == steps;
            let r = if s.terminated { 0.0 } else { -1.0 };
            // on arrival, the next target is part of the next observation
            let near =
                ((s.obs[0] as f64 - target.0).powi(2) + (s.obs[1] as f64 - target.1).powi(2)).sqrt() < SUCCESS_RADIUS;
            if near {
                target = centre(*cells.choose(&mut rng).unwrap(), &mut rng);
            }
            let next = [s.obs[0], s.obs[1], target.0 as f32, target.1 as f32];
            d.push(&obs, &a, r, &next, false, last);
            // the env's own time limit does not apply to navigate episodes
            env.set((env.state[0], env.state[1]), target);
            t += 1;
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn toy() -> Dataset {
        // three trajectories of lengths 4, 3, 5
        let mut d = Dataset::new(1, 1);
        let mut i = 0.0;
        for len in [4, 3, 5] {
            for k in 0..len {
                d.push(&[i], &[0.0], -1.0, &[i + 1.0], false, k + 1 == len);
                i += 1.0;
            }
        }
        d
    }

    #[test]
    fn relabelled_goals_stay_in_their_trajectory_and_current_goals_are_successes() {
        let d = toy();
        let ends = trajectory_ends(&d);
        assert_eq!(ends, vec![3, 3, 3, 3, 6, 6, 6, 11, 11, 11, 11, 11]);
        let mut rng = Rng::seed_from_u64(0);
        let starts = [0, 0, 0, 0, 4, 4, 4, 7, 7, 7, 7, 7];
        for geometric in [false, true] {
            let mix = GoalMix { p_cur: 0.0, p_traj: 1.0, p_rand: 0.0, geometric };
            for _ in 0..2000 {
                let t = rng.random_range(0..12);
                let g = sample_goal(t, &ends, &mix, 0.9, &mut rng);
                assert!(g >= t && g <= ends[t] && g >= starts[t], "t {t} goal {g}");
                if t < ends[t] {
                    assert!(g > t, "future goals are strictly ahead");
                }
            }
        }
        let cur = GoalMix { p_cur: 1.0, p_traj: 0.0, p_rand: 0.0, geometric: true };
        for t in 0..12 {
            let g = sample_goal(t, &ends, &cur, 0.99, &mut rng);
            assert_eq!(reward_mask(t, g), (0.0, 0.0), "p_cur = 1: every reward is success");
        }
        assert_eq!(reward_mask(2, 3), (-1.0, 1.0));
        assert!(GoalMix { p_cur: 0.5, p_traj: 0.6, p_rand: 0.0, geometric: true }.validate("x").is_err());
    }

    #[test]
    fn geometric_offsets_have_mean_one_over_one_minus_gamma() {
        let mut rng = Rng::seed_from_u64(1);
        let n = 200_000;
        let mean = (0..n).map(|_| geometric(1.0 - 0.99, &mut rng) as f64).sum::<f64>() / n as f64;
        assert!((mean - 100.0).abs() < 1.5, "{mean}");
        assert!((0..1000).all(|_| geometric(0.5, &mut rng) >= 1));
    }

    #[test]
    fn navigate_dataset_is_valid_and_reaches_targets() {
        let d = collect_navigate("umaze", 3000, 1000, 0.5, 0).unwrap();
        d.validate().unwrap();
        assert_eq!(d.len(), 3000);
        assert_eq!(d.timeouts.iter().filter(|&&t| t).count(), 3);
        let reached = d.rewards.iter().filter(|&&r| r == 0.0).count();
        assert!(reached >= 20, "the noisy navigator reaches its targets: {reached}");
        // positions stay in free cells
        let l = Layout::named("umaze").unwrap();
        for i in 0..d.len() {
            let o = d.obs(i);
            let c = Layout::cell(o[0] as f64, o[1] as f64);
            assert!(!l.is_wall(c.0, c.1));
        }
    }
}
