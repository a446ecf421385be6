//! Acrobot-v1 — Sutton, "Generalization in Reinforcement Learning: Successful Examples Using Sparse
//! Coarse Coding" (1996), with Gymnasium's "book" dynamics: two unit links and masses, centres of
//! mass at 0.5, moments of inertia 1, torque ∈ {−1, 0, 1} on the second joint, one RK4 step of
//! dt = 0.2, angles wrapped to [−π, π], velocities clipped to 4π / 9π. Terminates when
//! −cos θ1 − cos(θ1 + θ2) > 1 (reward 0 then, −1 otherwise); 500-step limit. Observation
//! (cos θ1, sin θ1, cos θ2, sin θ2, θ̇1, θ̇2); reset all four in U(−0.1, 0.1).

use super::{uniform, Action, Core, Env, EnvState, Space, Step};
use anyhow::{bail, Result};
use std::f64::consts::PI;

const DT: f64 = 0.2;
const MAX_VEL_1: f64 = 4.0 * PI;
const MAX_VEL_2: f64 = 9.0 * PI;

pub struct Acrobot {
    core: Core,
    /// θ1, θ2, θ̇1, θ̇2
    pub state: [f64; 4],
    max_steps: usize,
}

/// Time derivative of (θ1, θ2, θ̇1, θ̇2) under torque `a` (the book's equations).
fn dsdt(s: [f64; 4], a: f64) -> [f64; 4] {
    let (m1, m2, l1, lc1, lc2, i1, i2, g) = (1.0, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0, 9.8);
    let [theta1, theta2, dtheta1, dtheta2] = s;
    let d1 = m1 * lc1 * lc1 + m2 * (l1 * l1 + lc2 * lc2 + 2.0 * l1 * lc2 * theta2.cos()) + i1 + i2;
    let d2 = m2 * (lc2 * lc2 + l1 * lc2 * theta2.cos()) + i2;
    let phi2 = m2 * lc2 * g * (theta1 + theta2 - PI / 2.0).cos();
    let phi1 = -m2 * l1 * lc2 * dtheta2 * dtheta2 * theta2.sin()
        - 2.0 * m2 * l1 * lc2 * dtheta2 * dtheta1 * theta2.sin()
        + (m1 * lc1 + m2 * l1) * g * (theta1 - PI / 2.0).cos()
        + phi2;
    let ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1 * dtheta1 * theta2.sin() - phi2)
        / (m2 * lc2 * lc2 + i2 - d2 * d2 / d1);
    let ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
    [dtheta1, dtheta2, ddtheta1, ddtheta2]
}

/// One classical Runge–Kutta step of length `dt`.
pub fn rk4(s: [f64; 4], a: f64, dt: f64) -> [f64; 4] {
    let add = |x: [f64; 4], k: [f64; 4], h: f64| std::array::from_fn(|i| x[i] + h * k[i]);
    let k1 = dsdt(s, a);
    let k2 = dsdt(add(s, k1, dt / 2.0), a);
    let k3 = dsdt(add(s, k2, dt / 2.0), a);
    let k4 = dsdt(add(s, k3, dt), a);
    std::array::from_fn(|i| s[i] + dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))
}

fn wrap(mut x: f64) -> f64 {
    while x > PI {
        x -= 2.0 * PI;
    }
    while x < -PI {
        x += 2.0 * PI;
    }
    x
}

impl Acrobot {
    pub fn new(seed: u64) -> Self {
        Self { core: Core::new(seed), state: [0.0; 4], max_steps: 500 }
    }
    fn obs(&self) -> Vec<f32> {
        let [t1, t2, d1, d2] = self.state;
        [t1.cos(), t1.sin(), t2.cos(), t2.sin(), d1, d2].iter().map(|&v| v as f32).collect()
    }
}

impl Env for Acrobot {
    fn name(&self) -> &'static str {
        "acrobot"
    }
    fn observation_space(&self) -> Space {
        let h = [1.0, 1.0, 1.0, 1.0, MAX_VEL_1 as f32, MAX_VEL_2 as f32];
        Space::Box { low: h.iter().map(|v| -v).collect(), high: h.to_vec() }
    }
    fn action_space(&self) -> Space {
        Space::Discrete(3)
    }
    fn max_steps(&self) -> usize {
        self.max_steps
    }
    fn reset(&mut self) -> Vec<f32> {
        for v in self.state.iter_mut() {
            *v = uniform(&mut self.core.rng, -0.1, 0.1);
        }
        self.core.elapsed = 0;
        self.obs()
    }
    fn step(&mut self, action: &Action) -> Result<Step> {
        let a = action.index()?;
        if a > 2 {
            bail!("acrobot: action {a} outside 0..3");
        }
        let ns = rk4(self.state, a as f64 - 1.0, DT);
        self.state = [wrap(ns[0]), wrap(ns[1]), ns[2].clamp(-MAX_VEL_1, MAX_VEL_1), ns[3].clamp(-MAX_VEL_2, MAX_VEL_2)];
        let terminated = -self.state[0].cos() - (self.state[1] + self.state[0]).cos() > 1.0;
        let truncated = self.core.tick(self.max_steps) && !terminated;
        Ok(Step { obs: self.obs(), reward: if terminated { 0.0 } else { -1.0 }, terminated, truncated })
    }
    fn save(&self) -> EnvState {
        self.core.save(self.state.to_vec())
    }
    fn restore(&mut self, state: &EnvState) -> Result<()> {
        let v = self.core.restore(state, 4, "acrobot")?;
        self.state.copy_from_slice(v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hanging_at_rest_is_an_equilibrium_and_energy_is_conserved_without_torque() {
        assert_eq!(rk4([0.0; 4], 0.0, DT).map(|v| (v * 1e12).round()), [0.0; 4]);
        // total energy of the double pendulum (book parameters) is conserved by RK4 to O(dt^5)
        // (mass matrix M = [[d1, d2], [d2, m2·lc2² + I2]], potential from the φ terms)
        let energy = |s: [f64; 4]| {
            let [t1, t2, d1, d2] = s;
            let m11 = 0.25 + (1.0 + 0.25 + t2.cos()) + 2.0;
            let m12 = 0.25 + 0.5 * t2.cos() + 1.0;
            let kin = 0.5 * m11 * d1 * d1 + m12 * d1 * d2 + 0.5 * 1.25 * d2 * d2;
            let pot = -9.8 * (1.5 * t1.cos() + 0.5 * (t1 + t2).cos());
            kin + pot
        };
        let mut s = [0.3, -0.2, 0.0, 0.0];
        let e0 = energy(s);
        for _ in 0..50 {
            s = rk4(s, 0.0, 0.01);
        }
        assert!((energy(s) - e0).abs() < 1e-6, "{} vs {e0}", energy(s));
    }

    #[test]
    fn torque_pumping_swings_up_and_terminates() {
        let mut e = Acrobot::new(0);
        e.reset();
        let mut steps = 0;
        loop {
            // pump energy: torque along the second joint's motion
            let a = if e.state[3] >= 0.0 { 2 } else { 0 };
            let s = e.step(&Action::Discrete(a)).unwrap();
            steps += 1;
            if s.terminated {
                assert_eq!(s.reward, 0.0);
                break;
            }
            assert_eq!(s.reward, -1.0);
            assert!(!s.truncated, "energy pumping should swing up within 500 steps");
        }
        assert!(steps > 10);
    }
}
