//! A 2-D reaching task — the spec's CPU stand-in for ZPRL's policy steering: a point in the square
//! [−1, 1]² moves by 0.1·a per step (a ∈ [−1, 1]², positions clipped to the square) toward a goal
//! drawn uniformly in [−0.7, 0.7]²; the start is uniform in the square. Observation
//! (x, y, goal_x, goal_y); reward −‖p − g‖ after every step; the episode ends (terminated, a
//! success) once ‖p − g‖ < 0.05; 50-step limit.
//!
//! [`expert_action`] is the scripted demonstrator: a proportional controller toward goal + bias with
//! Gaussian action noise. A non-zero bias is the "small systematic error" of an imitation policy
//! that ZPRL's latent steering (or an action residual) has to correct online.

use super::{uniform, Action, Core, Env, EnvState, Space, Step};
use anyhow::Result;
use rand_distr::{Distribution, StandardNormal};

pub const STEP_SCALE: f64 = 0.1;
pub const SUCCESS_RADIUS: f64 = 0.05;
pub const MAX_STEPS: usize = 50;
const GOAL_RANGE: f64 = 0.7;

pub struct Reach {
    core: Core,
    /// x, y, goal x, goal y
    pub state: [f64; 4],
    success: bool,
}

impl Reach {
    pub fn new(seed: u64) -> Self {
        Self { core: Core::new(seed), state: [0.0; 4], success: false }
    }
    fn obs(&self) -> Vec<f32> {
        self.state.iter().map(|&v| v as f32).collect()
    }
    fn distance(&self) -> f64 {
        ((self.state[0] - self.state[2]).powi(2) + (self.state[1] - self.state[3]).powi(2)).sqrt()
    }
}

impl Env for Reach {
    fn name(&self) -> &'static str {
        "reach"
    }
    fn observation_space(&self) -> Space {
        Space::Box { low: vec![-1.0; 4], high: vec![1.0; 4] }
    }
    fn action_space(&self) -> Space {
        Space::Box { low: vec![-1.0; 2], high: vec![1.0; 2] }
    }
    fn max_steps(&self) -> usize {
        MAX_STEPS
    }
    fn reset(&mut self) -> Vec<f32> {
        self.core.elapsed = 0;
        self.success = false;
        let rng = &mut self.core.rng;
        self.state = [
            uniform(rng, -1.0, 1.0),
            uniform(rng, -1.0, 1.0),
            uniform(rng, -GOAL_RANGE, GOAL_RANGE),
            uniform(rng, -GOAL_RANGE, GOAL_RANGE),
        ];
        self.obs()
    }
    fn step(&mut self, action: &Action) -> Result<Step> {
        let a = action.vector()?;
        anyhow::ensure!(a.len() == 2, "reach: action has {} values, expected 2", a.len());
        for (p, &v) in self.state[..2].iter_mut().zip(a) {
            *p = (*p + (v as f64).clamp(-1.0, 1.0) * STEP_SCALE).clamp(-1.0, 1.0);
        }
        let dist = self.distance();
        self.success = dist < SUCCESS_RADIUS;
        let truncated = self.core.tick(MAX_STEPS) && !self.success;
        Ok(Step { obs: self.obs(), reward: -dist, terminated: self.success, truncated })
    }
    fn success(&self) -> Option<bool> {
        Some(self.success)
    }
    fn save(&self) -> EnvState {
        self.core.save_flagged(&self.state, self.success)
    }
    fn restore(&mut self, state: &EnvState) -> Result<()> {
        let (v, success) = self.core.restore_flagged(state, 4, "reach")?;
        self.state.copy_from_slice(v);
        self.success = success;
        Ok(())
    }
}

/// The scripted demonstrator: head for goal + `bias` at full speed, slowing down proportionally
/// within one step of it, plus N(0, `noise`²) on each action component; clipped to [−1, 1].
pub fn expert_action(obs: &[f32], bias: [f64; 2], noise: f64, rng: &mut oxrl_core::seed::Rng) -> Vec<f32> {
    (0..2)
        .map(|i| {
            let want = (obs[2 + i] as f64 + bias[i] - obs[i] as f64) / STEP_SCALE;
            let n: f64 = StandardNormal.sample(rng);
            (want.clamp(-1.0, 1.0) + noise * n).clamp(-1.0, 1.0) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn unbiased_expert_reaches_the_goal_and_a_biased_one_stops_beside_it() {
        let mut rng = oxrl_core::seed::Rng::seed_from_u64(0);
        for (bias, reaches) in [([0.0, 0.0], true), ([0.15, -0.1], false)] {
            let mut env = Reach::new(3);
            let mut wins = 0;
            for _ in 0..20 {
                let mut o = env.reset();
                loop {
                    let a = expert_action(&o, bias, 0.0, &mut rng);
                    let s = env.step(&Action::Continuous(a)).unwrap();
                    o = s.obs;
                    assert!(o.iter().all(|v| (-1.0..=1.0).contains(v)));
                    if s.terminated || s.truncated {
                        wins += s.terminated as usize;
                        assert!(s.terminated == env.success().unwrap());
                        break;
                    }
                }
            }
            assert_eq!(wins == 20, reaches, "bias {bias:?}: {wins} of 20");
            if !reaches {
                assert_eq!(wins, 0);
                // it settles at goal + bias
                assert!((env.distance() - 0.15f64.hypot(0.1)).abs() < 1e-6, "{}", env.distance());
            }
        }
    }

    #[test]
    fn reward_is_minus_the_distance_and_state_round_trips() {
        let mut e = Reach::new(1);
        e.reset();
        e.state = [0.0, 0.0, 0.3, 0.4];
        let s = e.step(&Action::Continuous(vec![1.0, 0.0])).unwrap();
        assert!((s.reward + (0.2f64.powi(2) + 0.4f64.powi(2)).sqrt()).abs() < 1e-12);
        let saved = e.save();
        let a = e.step(&Action::Continuous(vec![0.3, -0.7])).unwrap();
        e.restore(&saved).unwrap();
        assert_eq!(e.step(&Action::Continuous(vec![0.3, -0.7])).unwrap(), a);
        assert!(e.step(&Action::Continuous(vec![0.3])).is_err());
    }
}
