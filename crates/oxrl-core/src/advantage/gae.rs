//! Generalised Advantage Estimation for PPO with a value head — "High-Dimensional Continuous Control
//! Using Generalized Advantage Estimation" (2016); "Proximal Policy Optimization Algorithms" (2017).
//!
//! δ_t = r_t + γ·V_{t+1} − V_t (V after the last token = 0); A_t = δ_t + γλ·A_{t+1};
//! returns R_t = A_t + V_t (value targets); advantages are then whitened over the batch's valid
//! tokens (verl compute_gae_advantage_return).

use super::{check, whiten, AdvantageEstimator, AdvantageInput, Advantages};
use anyhow::{bail, Result};

pub struct Gae {
    pub gamma: f64,
    pub lambda: f64,
}

impl Gae {
    /// Raw (unwhitened) advantages and returns.
    pub fn raw(&self, rewards: &[f64], values: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let n = rewards.len();
        let (mut adv, mut ret) = (vec![0.0; n], vec![0.0; n]);
        let mut last = 0.0;
        for t in (0..n).rev() {
            let next_v = if t + 1 < n { values[t + 1] } else { 0.0 };
            let delta = rewards[t] + self.gamma * next_v - values[t];
            last = delta + self.gamma * self.lambda * last;
            adv[t] = last;
            ret[t] = last + values[t];
        }
        (adv, ret)
    }
}

impl AdvantageEstimator for Gae {
    fn name(&self) -> &'static str {
        "gae"
    }
    fn needs_groups(&self) -> bool {
        false
    }
    fn needs_values(&self) -> bool {
        true
    }
    fn compute(&self, input: &AdvantageInput) -> Result<Advantages> {
        check(input)?;
        let Some(values) = input.values else { bail!("gae needs value estimates (a value head)") };
        let mut advs = Vec::with_capacity(values.len());
        let mut rets = Vec::with_capacity(values.len());
        for (r, v) in input.token_rewards.iter().zip(values) {
            if r.len() != v.len() {
                bail!("gae: {} rewards but {} values for a response", r.len(), v.len());
            }
            let (a, ret) = self.raw(r, v);
            advs.push(a);
            rets.push(ret);
        }
        whiten(&mut advs);
        Ok(Advantages { advantages: advs, returns: Some(rets), sample_weight: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_example_and_limits() {
        let g = Gae { gamma: 0.9, lambda: 0.8 };
        let (a, r) = g.raw(&[0.0, 0.0, 1.0], &[0.5, 0.6, 0.7]);
        // δ = [0 + .9·.6 − .5, 0 + .9·.7 − .6, 1 − .7] = [.04, .03, .3]
        let d = [0.04, 0.03, 0.3];
        let a2 = d[2];
        let a1 = d[1] + 0.72 * a2;
        let a0 = d[0] + 0.72 * a1;
        for (x, y) in a.iter().zip([a0, a1, a2]) {
            assert!((x - y).abs() < 1e-12);
        }
        assert!((r[0] - (a0 + 0.5)).abs() < 1e-12);
        // λ = 1: A_t + V_t = discounted return; λ = 0: A_t = δ_t
        let (a, r) = Gae { gamma: 0.9, lambda: 1.0 }.raw(&[0.0, 0.0, 1.0], &[0.5, 0.6, 0.7]);
        assert!((r[0] - 0.81).abs() < 1e-12 && (a[0] - 0.31).abs() < 1e-12);
        let (a, _) = Gae { gamma: 0.9, lambda: 0.0 }.raw(&[0.0, 0.0, 1.0], &[0.5, 0.6, 0.7]);
        for (x, y) in a.iter().zip(d) {
            assert!((x - y).abs() < 1e-12);
        }
        let tr = vec![vec![0.0, 1.0]];
        assert!(g.compute(&AdvantageInput { token_rewards: &tr, groups: &[0], values: None, tasks: None }).is_err());
    }
}
