//! A-GRAE — asymmetric group relative advantage estimation (2026), arXiv 2602.05548.
//!
//! From GRPO advantages A_i (std-normalised within the group, group mean μ_g = group accuracy)
//! and the batch accuracy μ̄ (mean of μ_g over the batch's groups):
//! 1. A_hard = ½·A_i / (√μ_g + ε), A_easy = ½·A_i / (1 − √μ_g + ε);
//!    A'_i = (1 − μ̄)·A_easy + μ̄·A_hard — early training (μ̄ small) leans on easy prompts, later on
//!    hard ones (a curriculum);
//! 2. positive advantages are suppressed while the batch is weak: A'_i ← A'_i·min(1, μ̄/α).
//!
//! Groups with μ_g ∈ {0, 1} have A = 0 and stay 0; negative advantages are never scaled by step 2.
//! Defaults α = 1 (math), ε = 1e-6. CONFIRMED-CODE (Yu7-code/A-GRAE compute_grpo_outcome_advantage).

use super::{check, group_indices, grpo_then, mean, AdvantageEstimator, AdvantageInput, Advantages, EPS};
use anyhow::Result;

pub struct AGrae {
    pub alpha: f64,
}

impl AdvantageEstimator for AGrae {
    fn name(&self) -> &'static str {
        "a_grae"
    }
    fn needs_binary_rewards(&self) -> bool {
        true
    }
    fn compute(&self, input: &AdvantageInput) -> Result<Advantages> {
        check(input)?;
        let s = input.scores();
        let mu_bar = mean(
            &group_indices(input.groups)
                .iter()
                .map(|idx| mean(&idx.iter().map(|&i| s[i]).collect::<Vec<_>>()))
                .collect::<Vec<_>>(),
        );
        let pos_scale = (mu_bar / self.alpha).min(1.0);
        grpo_then(input, |idx, mu, adv| {
            let root = mu.max(0.0).sqrt();
            for &i in idx {
                for a in adv[i].iter_mut() {
                    let hard = 0.5 * *a / (root + EPS);
                    let easy = 0.5 * *a / (1.0 - root + EPS);
                    let v = (1.0 - mu_bar) * easy + mu_bar * hard;
                    *a = if v > 0.0 { v * pos_scale } else { v };
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::outcome;
    use super::*;

    fn run(r: &[f64], groups: &[usize], alpha: f64) -> Vec<f64> {
        let tr = outcome(r, &vec![2; r.len()]);
        let out =
            AGrae { alpha }.compute(&AdvantageInput { token_rewards: &tr, groups, values: None, tasks: None }).unwrap();
        out.advantages.iter().map(|a| a[0]).collect()
    }

    #[test]
    fn hand_example() {
        // G = 4, r = [1,0,0,0] ⇒ μ_g = 0.25 (√ = 0.5), GRPO A = [1.5, −0.5, −0.5, −0.5]. A second
        // group at accuracy 0.75 makes μ̄ = 0.5: A_easy = A_hard = A for the first group, and
        // positives are halved (α = 1).
        let a = run(&[1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0], &[0, 0, 0, 0, 1, 1, 1, 1], 1.0);
        for (x, y) in a[..4].iter().zip([0.75, -0.5, -0.5, -0.5]) {
            assert!((x - y).abs() < 1e-5, "{a:?}");
        }
    }

    #[test]
    fn invariants() {
        // negatives never suppressed; solved and unsolved groups stay 0; group sum ≤ 0 while μ̄ < α
        let r = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        let g = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2];
        let a = run(&r, &g, 1.0);
        assert!(a[4..].iter().all(|&x| x == 0.0));
        let grpo_neg = -0.5; // GRPO advantage of a wrong answer in the first group
                             // μ̄ = (0.25 + 0 + 1)/3; negatives get the curriculum weight only, positives also the scale
        let mu_bar: f64 = (0.25 + 0.0 + 1.0) / 3.0;
        let w = (1.0 - mu_bar) * 0.5 / (1.0 - 0.5) + mu_bar * 0.5 / 0.5;
        assert!((a[1] - grpo_neg * w).abs() < 1e-5);
        assert!((a[0] - 1.5 * w * mu_bar).abs() < 1e-5);
        assert!(a[..4].iter().sum::<f64>() < 0.0);
        // α ≤ μ̄: no suppression, the group stays zero-sum
        let a = run(&r, &g, 0.1);
        assert!(a[..4].iter().sum::<f64>().abs() < 1e-5);
    }
}
