//! CartPole-v1 — Barto, Sutton & Anderson, "Neuronlike adaptive elements that can solve difficult
//! learning control problems" (1983), with Gymnasium's constants and Euler integration:
//! g 9.8, cart 1.0 kg, pole 0.1 kg, half-length 0.5, force ±10, τ 0.02; terminates at |θ| > 12° or
//! |x| > 2.4; reward 1 per step (the terminating step included); 500-step limit; reset state
//! uniform in ±0.05.

use super::{uniform, Action, Core, Env, EnvState, Space, Step};
use anyhow::{bail, Result};

const GRAVITY: f64 = 9.8;
const MASS_CART: f64 = 1.0;
const MASS_POLE: f64 = 0.1;
const TOTAL_MASS: f64 = MASS_CART + MASS_POLE;
const LENGTH: f64 = 0.5;
const POLEMASS_LENGTH: f64 = MASS_POLE * LENGTH;
const FORCE_MAG: f64 = 10.0;
const TAU: f64 = 0.02;
const THETA_THRESHOLD: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
const X_THRESHOLD: f64 = 2.4;

pub struct CartPole {
    core: Core,
    /// x, ẋ, θ, θ̇
    pub state: [f64; 4],
    max_steps: usize,
}

impl CartPole {
    pub fn new(seed: u64) -> Self {
        Self { core: Core::new(seed), state: [0.0; 4], max_steps: 500 }
    }
    fn obs(&self) -> Vec<f32> {
        self.state.iter().map(|&v| v as f32).collect()
    }
}

/// One Euler step of the cart-pole dynamics under a horizontal force.
pub fn dynamics(s: [f64; 4], force: f64) -> [f64; 4] {
    let [x, x_dot, theta, theta_dot] = s;
    let (sin, cos) = theta.sin_cos();
    let temp = (force + POLEMASS_LENGTH * theta_dot * theta_dot * sin) / TOTAL_MASS;
    let theta_acc = (GRAVITY * sin - cos * temp) / (LENGTH * (4.0 / 3.0 - MASS_POLE * cos * cos / TOTAL_MASS));
    let x_acc = temp - POLEMASS_LENGTH * theta_acc * cos / TOTAL_MASS;
    [x + TAU * x_dot, x_dot + TAU * x_acc, theta + TAU * theta_dot, theta_dot + TAU * theta_acc]
}

impl Env for CartPole {
    fn name(&self) -> &'static str {
        "cartpole"
    }
    fn observation_space(&self) -> Space {
        let h = [X_THRESHOLD as f32 * 2.0, f32::INFINITY, THETA_THRESHOLD as f32 * 2.0, f32::INFINITY];
        Space::Box { low: h.iter().map(|v| -v).collect(), high: h.to_vec() }
    }
    fn action_space(&self) -> Space {
        Space::Discrete(2)
    }
    fn max_steps(&self) -> usize {
        self.max_steps
    }
    fn reset(&mut self) -> Vec<f32> {
        for v in self.state.iter_mut() {
            *v = uniform(&mut self.core.rng, -0.05, 0.05);
        }
        self.core.elapsed = 0;
        self.obs()
    }
    fn step(&mut self, action: &Action) -> Result<Step> {
        let a = action.index()?;
        if a > 1 {
            bail!("cartpole: action {a} outside 0..2");
        }
        self.state = dynamics(self.state, if a == 1 { FORCE_MAG } else { -FORCE_MAG });
        let [x, _, theta, _] = self.state;
        let terminated =
            !(-X_THRESHOLD..=X_THRESHOLD).contains(&x) || !(-THETA_THRESHOLD..=THETA_THRESHOLD).contains(&theta);
        let truncated = self.core.tick(self.max_steps) && !terminated;
        Ok(Step { obs: self.obs(), reward: 1.0, terminated, truncated })
    }
    fn save(&self) -> EnvState {
        self.core.save(self.state.to_vec())
    }
    fn restore(&mut self, state: &EnvState) -> Result<()> {
        let v = self.core.restore(state, 4, "cartpole")?;
        self.state.copy_from_slice(v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_step_matches_hand_computed_dynamics() {
        // From rest, push right: θ̈ = (0 − 1·(10/1.1)) / (0.5·(4/3 − 0.1/1.1)) = −14.634…;
        // ẍ = 10/1.1 − 0.05·θ̈/1.1 = 9.7571…; Euler: x' = 0, ẋ' = 0.02·ẍ, θ̇' = 0.02·θ̈.
        let s = dynamics([0.0; 4], 10.0);
        let theta_acc = -(10.0 / 1.1) / (0.5 * (4.0 / 3.0 - 0.1 / 1.1));
        let x_acc = 10.0 / 1.1 - 0.05 * theta_acc / 1.1;
        assert_eq!(s[0], 0.0);
        assert!((s[1] - 0.02 * x_acc).abs() < 1e-12);
        assert!((s[3] - 0.02 * theta_acc).abs() < 1e-12);
        assert!((theta_acc + 14.634146341463415).abs() < 1e-9);
    }

    #[test]
    fn terminates_on_angle_and_truncates_at_500() {
        let mut e = CartPole::new(3);
        e.reset();
        // always pushing right topples the pole within a few dozen steps
        let mut n = 0;
        loop {
            n += 1;
            let s = e.step(&Action::Discrete(1)).unwrap();
            assert_eq!(s.reward, 1.0);
            if s.terminated {
                break;
            }
            assert!(n < 100);
        }
        // a balanced state held by restoring it runs into the time limit
        e.reset();
        for i in 0..500 {
            e.state = [0.0; 4];
            let s = e.step(&Action::Discrete(i % 2)).unwrap();
            assert_eq!(s.truncated, i == 499, "step {i}");
            assert!(!s.terminated);
        }
    }

    #[test]
    fn same_seed_same_resets_and_save_restore_continues_exactly() {
        let (mut a, mut b) = (CartPole::new(7), CartPole::new(7));
        assert_eq!(a.reset(), b.reset());
        a.step(&Action::Discrete(0)).unwrap();
        let saved = a.save();
        let next_a = (a.step(&Action::Discrete(1)).unwrap(), a.reset());
        let mut c = CartPole::new(99);
        c.restore(&saved).unwrap();
        let next_c = (c.step(&Action::Discrete(1)).unwrap(), c.reset());
        assert_eq!(next_a, next_c);
        assert!(c.step(&Action::Discrete(2)).is_err());
    }
}
