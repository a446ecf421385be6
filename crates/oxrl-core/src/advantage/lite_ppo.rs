//! Lite PPO — "Part I: Tricks or Traps? A Deep Dive into RL for LLM Reasoning" (2025).
//!
//! c_i = s_i − μ_g (group-mean centring), A_i = c_i / (σ_batch + ε) with σ_batch the unbiased std of
//! the raw scores over the whole batch (switch `centered_std` uses the std of the centred values
//! instead, the option the sources leave open). Use with vanilla PPO clipping and `token-mean`
//! aggregation. CONFIRMED-DOCS (ROLL "LitePPO"; AReaL adv_norm mean_level=group, std_level=batch).

use super::{broadcast, check, std_unbiased, AdvantageEstimator, AdvantageInput, Advantages, EPS};
use anyhow::Result;

pub struct LitePpo {
    pub centered_std: bool,
}

impl AdvantageEstimator for LitePpo {
    fn name(&self) -> &'static str {
        "lite_ppo"
    }
    fn compute(&self, input: &AdvantageInput) -> Result<Advantages> {
        check(input)?;
        let s = input.scores();
        let c = super::group_centered(&s, input.groups);
        let sigma = std_unbiased(if self.centered_std { &c } else { &s });
        let a: Vec<f64> = c.iter().map(|x| x / (sigma + EPS)).collect();
        Ok(Advantages { advantages: broadcast(&a, input.token_rewards), returns: None, sample_weight: None })
    }
}

#[cfg(test)]
mod tests {
    use super::super::outcome;
    use super::*;

    #[test]
    fn oracles() {
        // group 0 has {0,1}; groups 1 and 2 are constant
        let r = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0];
        let g = [0, 0, 1, 1, 2, 2];
        let tr = outcome(&r, &[2; 6]);
        let a: Vec<f64> = LitePpo { centered_std: false }
            .compute(&AdvantageInput { token_rewards: &tr, groups: &g, values: None, tasks: None })
            .unwrap()
            .advantages
            .iter()
            .map(|x| x[0])
            .collect();
        let sb = std_unbiased(&r);
        assert!((a[0] - 0.5 / (sb + EPS)).abs() < 1e-12, "c/σ_batch, not c/σ_group");
        assert!((a[0] + a[1]).abs() < 1e-12);
        assert_eq!(&a[2..], &[0.0; 4]);
        // every group divided by the same scalar
        let r = [3.0, 1.0, 0.0, 2.0, 5.0, 5.0, 9.0];
        let g = [0, 0, 1, 1, 2, 2, 2];
        let tr = outcome(&r, &[1; 7]);
        let inp = AdvantageInput { token_rewards: &tr, groups: &g, values: None, tasks: None };
        let a = LitePpo { centered_std: false }.compute(&inp).unwrap().advantages;
        let d = super::super::DrGrpo.compute(&inp).unwrap().advantages;
        let ratios: Vec<f64> = a.iter().zip(&d).filter(|(_, y)| y[0].abs() > 1e-9).map(|(x, y)| x[0] / y[0]).collect();
        assert!(ratios.windows(2).all(|w| (w[0] - w[1]).abs() < 1e-9));
        // all equal rewards: zero everywhere
        let tr = outcome(&[2.0; 4], &[1; 4]);
        let z = LitePpo { centered_std: false }
            .compute(&AdvantageInput { token_rewards: &tr, groups: &[0, 0, 1, 1], values: None, tasks: None })
            .unwrap();
        assert!(z.advantages.iter().all(|x| x[0] == 0.0));
    }
}
