//! MountainCar-v0 and MountainCarContinuous-v0 — Moore, "Efficient Memory-based Learning for Robot
//! Control" (1990), with Gymnasium's constants. Discrete: v' = clip(v + (a − 1)·0.001 −
//! 0.0025·cos 3x, ±0.07), x' = clip(x + v', [−1.2, 0.6]), v' = 0 at the left wall moving left;
//! reward −1 per step; terminates at x ≥ 0.5; 200-step limit. Continuous: force clip(a, ±1)·0.0015,
//! goal x ≥ 0.45, reward 100 on reaching it minus 0.1·a² per step; 999-step limit. Reset
//! x ~ U(−0.6, −0.4), v = 0.

use super::{uniform, Action, Core, Env, EnvState, Space, Step};
use anyhow::{bail, Result};

const MIN_POSITION: f64 = -1.2;
const MAX_POSITION: f64 = 0.6;
const MAX_SPEED: f64 = 0.07;
const GRAVITY: f64 = 0.0025;

fn advance(pos: f64, vel: f64, push: f64) -> (f64, f64) {
    let mut v = (vel + push - GRAVITY * (3.0 * pos).cos()).clamp(-MAX_SPEED, MAX_SPEED);
    let p = (pos + v).clamp(MIN_POSITION, MAX_POSITION);
    if p == MIN_POSITION && v < 0.0 {
        v = 0.0;
    }
    (p, v)
}

fn obs_space() -> Space {
    Space::Box { low: vec![MIN_POSITION as f32, -MAX_SPEED as f32], high: vec![MAX_POSITION as f32, MAX_SPEED as f32] }
}

macro_rules! car_common {
    ($name:literal) => {
        fn name(&self) -> &'static str {
            $name
        }
        fn observation_space(&self) -> Space {
            obs_space()
        }
        fn max_steps(&self) -> usize {
            self.max_steps
        }
        fn reset(&mut self) -> Vec<f32> {
            self.state = [uniform(&mut self.core.rng, -0.6, -0.4), 0.0];
            self.core.elapsed = 0;
            self.obs()
        }
        fn save(&self) -> EnvState {
            self.core.save(self.state.to_vec())
        }
        fn restore(&mut self, state: &EnvState) -> Result<()> {
            let v = self.core.restore(state, 2, $name)?;
            self.state.copy_from_slice(v);
            Ok(())
        }
    };
}

pub struct MountainCar {
    core: Core,
    /// position, velocity
    pub state: [f64; 2],
    max_steps: usize,
}

impl MountainCar {
    pub fn new(seed: u64) -> Self {
        Self { core: Core::new(seed), state: [0.0; 2], max_steps: 200 }
    }
    fn obs(&self) -> Vec<f32> {
        self.state.iter().map(|&v| v as f32).collect()
    }
}

impl Env for MountainCar {
    car_common!("mountain-car");
    fn action_space(&self) -> Space {
        Space::Discrete(3)
    }
    fn step(&mut self, action: &Action) -> Result<Step> {
        let a = action.index()?;
        if a > 2 {
            bail!("mountain-car: action {a} outside 0..3");
        }
        let (p, v) = advance(self.state[0], self.state[1], (a as f64 - 1.0) * 0.001);
        self.state = [p, v];
        let terminated = p >= 0.5 && v >= 0.0;
        let truncated = self.core.tick(self.max_steps) && !terminated;
        Ok(Step { obs: self.obs(), reward: -1.0, terminated, truncated })
    }
}

pub struct MountainCarContinuous {
    core: Core,
    pub state: [f64; 2],
    max_steps: usize,
}

impl MountainCarContinuous {
    pub fn new(seed: u64) -> Self {
        Self { core: Core::new(seed), state: [0.0; 2], max_steps: 999 }
    }
    fn obs(&self) -> Vec<f32> {
        self.state.iter().map(|&v| v as f32).collect()
    }
}

impl Env for MountainCarContinuous {
    car_common!("mountain-car-continuous");
    fn action_space(&self) -> Space {
        Space::Box { low: vec![-1.0], high: vec![1.0] }
    }
    fn step(&mut self, action: &Action) -> Result<Step> {
        let a = action.vector()?;
        anyhow::ensure!(a.len() == 1, "mountain-car-continuous: action has {} values, expected 1", a.len());
        let force = (a[0] as f64).clamp(-1.0, 1.0);
        let (p, v) = advance(self.state[0], self.state[1], force * 0.0015);
        self.state = [p, v];
        let terminated = p >= 0.45 && v >= 0.0;
        let reward = if terminated { 100.0 } else { 0.0 } - 0.1 * (a[0] as f64).powi(2);
        let truncated = self.core.tick(self.max_steps) && !terminated;
        Ok(Step { obs: self.obs(), reward, terminated, truncated })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_step_matches_hand_computation() {
        let mut e = MountainCar::new(0);
        e.reset();
        e.state = [-0.5, 0.0];
        let s = e.step(&Action::Discrete(2)).unwrap();
        let v = 0.001 - 0.0025 * (-1.5f64).cos();
        assert!((e.state[1] - v).abs() < 1e-15);
        assert!((e.state[0] - (-0.5 + v)).abs() < 1e-15);
        assert_eq!(s.reward, -1.0);
        // left wall stops the car
        e.state = [-1.19, -0.05];
        e.step(&Action::Discrete(0)).unwrap();
        assert_eq!(e.state, [MIN_POSITION, 0.0]);
    }

    #[test]
    fn energy_pumping_reaches_the_goal_and_the_limit_truncates() {
        // push in the direction of motion: a known solution in ~100 steps
        let mut e = MountainCar::new(1);
        e.reset();
        let mut done = None;
        for t in 0..200 {
            let a = if e.state[1] >= 0.0 { 2 } else { 0 };
            let s = e.step(&Action::Discrete(a)).unwrap();
            if s.terminated {
                done = Some(t);
                break;
            }
        }
        assert!(done.is_some_and(|t| t < 200));
        // doing nothing never reaches the goal: truncated at step 200
        e.reset();
        for t in 0..200 {
            let s = e.step(&Action::Discrete(1)).unwrap();
            assert!(!s.terminated);
            assert_eq!(s.truncated, t == 199);
        }
    }

    #[test]
    fn continuous_reward_and_goal() {
        let mut e = MountainCarContinuous::new(2);
        e.reset();
        e.state = [0.0, 0.0];
        let s = e.step(&Action::Continuous(vec![0.5])).unwrap();
        assert!((s.reward + 0.025).abs() < 1e-12);
        e.state = [0.44, 0.05];
        let s = e.step(&Action::Continuous(vec![1.0])).unwrap();
        assert!(s.terminated);
        assert!((s.reward - 99.9).abs() < 1e-12);
    }
}
