//! RLOO — REINFORCE leave-one-out, "Back to Basics: Revisiting REINFORCE Style Optimization for
//! Learning from Human Feedback in LLMs" (2024).
//!
//! A_i = s_i − (Σ_{j≠i} s_j)/(n−1) = n/(n−1)·(s_i − μ_g); a group of one gets A_i = s_i.
//! CONFIRMED-CODE (verl compute_rloo_outcome_advantage).

use super::{broadcast, check, group_indices, AdvantageEstimator, AdvantageInput, Advantages};
use anyhow::Result;

pub struct Rloo;

impl AdvantageEstimator for Rloo {
    fn name(&self) -> &'static str {
        "rloo"
    }
    fn compute(&self, input: &AdvantageInput) -> Result<Advantages> {
        check(input)?;
        let s = input.scores();
        let mut a = vec![0.0; s.len()];
        for idx in group_indices(input.groups) {
            let n = idx.len();
            let total: f64 = idx.iter().map(|&i| s[i]).sum();
            for &i in &idx {
                a[i] = if n < 2 { s[i] } else { s[i] - (total - s[i]) / (n - 1) as f64 };
            }
        }
        Ok(Advantages { advantages: broadcast(&a, input.token_rewards), returns: None, sample_weight: None })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{outcome, DrGrpo};
    use super::*;

    #[test]
    fn oracles() {
        let tr = outcome(&[1.0, 0.0, 0.0, 0.0], &[1; 4]);
        let g = [0; 4];
        let inp = AdvantageInput { token_rewards: &tr, groups: &g, values: None, tasks: None };
        let a: Vec<f64> = Rloo.compute(&inp).unwrap().advantages.iter().map(|x| x[0]).collect();
        for (x, y) in a.iter().zip([1.0, -1.0 / 3.0, -1.0 / 3.0, -1.0 / 3.0]) {
            assert!((x - y).abs() < 1e-12);
        }
        assert!(a.iter().sum::<f64>().abs() < 1e-12);
        let d = DrGrpo.compute(&inp).unwrap().advantages;
        for (x, y) in a.iter().zip(&d) {
            assert!((x - 4.0 / 3.0 * y[0]).abs() < 1e-12);
        }
    }
}
