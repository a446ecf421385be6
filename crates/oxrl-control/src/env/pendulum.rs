//! Pendulum-v1 — the classic inverted-pendulum swing-up, with Gymnasium's constants: max speed 8,
//! max torque 2, dt 0.05, g 10, m 1, l 1. Cost θ_n² + 0.1·θ̇² + 0.001·u² with θ_n the angle wrapped
//! to [−π, π); θ̇' = clip(θ̇ + (3g/(2l)·sin θ + 3/(ml²)·u)·dt, ±8); θ' = θ + θ̇'·dt. Observation
//! (cos θ, sin θ, θ̇); never terminates; 200-step limit; reset θ ~ U(−π, π), θ̇ ~ U(−1, 1).

use super::{uniform, Action, Core, Env, EnvState, Space, Step};
use anyhow::Result;
use std::f64::consts::PI;

pub const MAX_SPEED: f64 = 8.0;
pub const MAX_TORQUE: f64 = 2.0;
const DT: f64 = 0.05;
const G: f64 = 10.0;
const M: f64 = 1.0;
const L: f64 = 1.0;

pub struct Pendulum {
    core: Core,
    /// θ, θ̇
    pub state: [f64; 2],
    max_steps: usize,
}

/// Wrap an angle to [−π, π) (Python's modulo semantics).
pub fn angle_normalize(x: f64) -> f64 {
    (x + PI).rem_euclid(2.0 * PI) - PI
}

impl Pendulum {
    pub fn new(seed: u64) -> Self {
        Self { core: Core::new(seed), state: [0.0; 2], max_steps: 200 }
    }
    fn obs(&self) -> Vec<f32> {
        let [th, thdot] = self.state;
        vec![th.cos() as f32, th.sin() as f32, thdot as f32]
    }
}

impl Env for Pendulum {
    fn name(&self) -> &'static str {
        "pendulum"
    }
    fn observation_space(&self) -> Space {
        Space::Box { low: vec![-1.0, -1.0, -MAX_SPEED as f32], high: vec![1.0, 1.0, MAX_SPEED as f32] }
    }
    fn action_space(&self) -> Space {
        Space::Box { low: vec![-MAX_TORQUE as f32], high: vec![MAX_TORQUE as f32] }
    }
    fn max_steps(&self) -> usize {
        self.max_steps
    }
    fn reset(&mut self) -> Vec<f32> {
        self.state = [uniform(&mut self.core.rng, -PI, PI), uniform(&mut self.core.rng, -1.0, 1.0)];
        self.core.elapsed = 0;
        self.obs()
    }
    fn step(&mut self, action: &Action) -> Result<Step> {
        let a = action.vector()?;
        anyhow::ensure!(a.len() == 1, "pendulum: action has {} values, expected 1", a.len());
        let u = (a[0] as f64).clamp(-MAX_TORQUE, MAX_TORQUE);
        let [th, thdot] = self.state;
        let cost = angle_normalize(th).powi(2) + 0.1 * thdot * thdot + 0.001 * u * u;
        let new_thdot =
            (thdot + (3.0 * G / (2.0 * L) * th.sin() + 3.0 / (M * L * L) * u) * DT).clamp(-MAX_SPEED, MAX_SPEED);
        self.state = [th + new_thdot * DT, new_thdot];
        let truncated = self.core.tick(self.max_steps);
        Ok(Step { obs: self.obs(), reward: -cost, terminated: false, truncated })
    }
    fn save(&self) -> EnvState {
        self.core.save(self.state.to_vec())
    }
    fn restore(&mut self, state: &EnvState) -> Result<()> {
        let v = self.core.restore(state, 2, "pendulum")?;
        self.state.copy_from_slice(v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_and_dynamics_match_hand_computation() {
        let mut e = Pendulum::new(0);
        e.reset();
        e.state = [PI / 2.0, 1.0];
        let s = e.step(&Action::Continuous(vec![5.0])).unwrap(); // clipped to 2
        let cost = (PI / 2.0).powi(2) + 0.1 + 0.001 * 4.0;
        assert!((s.reward + cost).abs() < 1e-12);
        let thdot = 1.0 + (15.0 + 3.0 * 2.0) * 0.05; // 2.05
        assert!((e.state[1] - thdot).abs() < 1e-12);
        assert!((e.state[0] - (PI / 2.0 + thdot * 0.05)).abs() < 1e-12);
        assert!((s.obs[2] - thdot as f32).abs() < 1e-6);
        assert!(!s.terminated && !s.truncated);
    }

    #[test]
    fn angle_wraps_like_python_modulo() {
        assert!((angle_normalize(3.0 * PI / 2.0) + PI / 2.0).abs() < 1e-12);
        assert!((angle_normalize(-3.0 * PI / 2.0) - PI / 2.0).abs() < 1e-12);
        assert_eq!(angle_normalize(0.0), 0.0);
        assert!((angle_normalize(PI) + PI).abs() < 1e-12);
    }

    #[test]
    fn speed_is_clipped_and_episode_truncates_at_200() {
        let mut e = Pendulum::new(1);
        e.reset();
        for i in 0..200 {
            let s = e.step(&Action::Continuous(vec![2.0])).unwrap();
            assert!(e.state[1].abs() <= MAX_SPEED);
            assert_eq!(s.truncated, i == 199);
        }
    }
}
