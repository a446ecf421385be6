//! GUI-Libra success-adaptive negative scaling (2026), arXiv 2602.22190 — INFERRED.
//!
//! GRPO advantages, then every negative advantage is scaled by s(p_g) = clip(p_g/τ, s_min, 1)
//! where p_g is the group's success rate: when few samples succeed, a "wrong" answer may be an
//! unverified-but-valid one, so its negative signal is trusted less. Positive advantages are
//! untouched. Defaults τ = 1, s_min = 0 (s = p_g). The paper's other two parts are the reference
//! KL term (`train.kl_coef`, the "KL trust region") and GUI-specific action-aware SFT.
//! INFERRED from the abstract and summaries; the authors' RL code was not inspected.

use super::{check, grpo_then, AdvantageEstimator, AdvantageInput, Advantages};
use anyhow::Result;

pub struct GuiLibra {
    pub tau: f64,
    pub min_scale: f64,
}

impl GuiLibra {
    /// s(p) = clip(p/τ, s_min, 1).
    pub fn scale(&self, success: f64) -> f64 {
        (success / self.tau).clamp(self.min_scale, 1.0)
    }
}

impl AdvantageEstimator for GuiLibra {
    fn name(&self) -> &'static str {
        "gui_libra"
    }
    fn needs_binary_rewards(&self) -> bool {
        true
    }
    fn compute(&self, input: &AdvantageInput) -> Result<Advantages> {
        check(input)?;
        let s = input.scores();
        grpo_then(input, |idx, _, adv| {
            let k = self.scale(idx.iter().filter(|&&i| s[i] >= 0.5).count() as f64 / idx.len() as f64);
            for &i in idx {
                adv[i].iter_mut().filter(|a| **a < 0.0).for_each(|a| *a *= k);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::outcome;
    use super::*;

    fn run(r: &[f64], tau: f64, min_scale: f64) -> Vec<f64> {
        let tr = outcome(r, &vec![2; r.len()]);
        let g = vec![0; r.len()];
        let out = GuiLibra { tau, min_scale }
            .compute(&AdvantageInput { token_rewards: &tr, groups: &g, values: None, tasks: None })
            .unwrap();
        out.advantages.iter().map(|a| a[0]).collect()
    }

    #[test]
    fn oracles() {
        // r = [1,0,0,0]: GRPO [1.5, −0.5, −0.5, −0.5], p = 0.25 ⇒ negatives × 0.25, positive untouched
        let a = run(&[1.0, 0.0, 0.0, 0.0], 1.0, 0.0);
        for (x, y) in a.iter().zip([1.5, -0.125, -0.125, -0.125]) {
            assert!((x - y).abs() < 1e-5, "{a:?}");
        }
        // τ = 0.25: p/τ = 1 ⇒ plain GRPO; s_min floors the scale
        let a = run(&[1.0, 0.0, 0.0, 0.0], 0.25, 0.0);
        assert!((a[1] + 0.5).abs() < 1e-5);
        let a = run(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 1.0, 0.5);
        let grpo = run_grpo(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert!((a[1] - 0.5 * grpo[1]).abs() < 1e-9 && (a[0] - grpo[0]).abs() < 1e-12);
        // the negative scale is monotone in the success rate
        let l = GuiLibra { tau: 0.7, min_scale: 0.1 };
        let s: Vec<f64> = (0..=10).map(|i| l.scale(i as f64 / 10.0)).collect();
        assert!(s.windows(2).all(|w| w[0] <= w[1]) && s[0] == 0.1 && s[10] == 1.0);
        // all-success group: no negatives exist
        assert!(run(&[1.0; 4], 1.0, 0.0).iter().all(|&x| x >= 0.0));
    }

    fn run_grpo(r: &[f64]) -> Vec<f64> {
        use super::super::Grpo;
        let tr = outcome(r, &vec![2; r.len()]);
        let g = vec![0; r.len()];
        Grpo.compute(&AdvantageInput { token_rewards: &tr, groups: &g, values: None, tasks: None })
            .unwrap()
            .advantages
            .iter()
            .map(|a| a[0])
            .collect()
    }
}
