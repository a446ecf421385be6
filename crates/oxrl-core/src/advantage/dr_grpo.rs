//! Dr. GRPO — "Understanding R1-Zero-Like Training: A Critical Perspective" (2025).
//!
//! A_i = s_i − μ_g (no division by the group std); pair it with the constant-normaliser loss
//! aggregation `seq-mean-token-sum-norm`. CONFIRMED-CODE (verl norm_adv_by_std_in_grpo=False).

use super::{broadcast, check, AdvantageEstimator, AdvantageInput, Advantages};
use anyhow::Result;

pub struct DrGrpo;

impl AdvantageEstimator for DrGrpo {
    fn name(&self) -> &'static str {
        "dr_grpo"
    }
    fn compute(&self, input: &AdvantageInput) -> Result<Advantages> {
        check(input)?;
        let s = input.scores();
        let a = super::group_centered(&s, input.groups);
        Ok(Advantages { advantages: broadcast(&a, input.token_rewards), returns: None, sample_weight: None })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{outcome, std_unbiased, Grpo, EPS};
    use super::*;

    #[test]
    fn oracles() {
        let r = [1.0, 0.0, 0.0, 1.0, 1.0];
        let tr = outcome(&r, &[2; 5]);
        let g = [0; 5];
        let inp = AdvantageInput { token_rewards: &tr, groups: &g, values: None, tasks: None };
        let a = DrGrpo.compute(&inp).unwrap().advantages;
        let p = 0.6;
        assert!((a[0][0] - (1.0 - p)).abs() < 1e-12 && (a[1][0] + p).abs() < 1e-12);
        // = GRPO × σ_g
        let gr = Grpo.compute(&inp).unwrap().advantages;
        let sigma = std_unbiased(&r);
        for (x, y) in a.iter().zip(&gr) {
            assert!((x[0] - y[0] * (sigma + EPS)).abs() < 1e-9);
        }
        assert!(a.iter().map(|x| x[0]).sum::<f64>().abs() < 1e-12);
    }
}
