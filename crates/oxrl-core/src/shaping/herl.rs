//! HeRL — "Experience is the Best Teacher: Motivating Effective Exploration in RL for LLMs"
//! (2025/26): hindsight rubric guidance.
//!
//! For a group that is not fully solved (max_i r_i < threshold) the best-scoring responses (ties
//! broken by the number of satisfied rubric items, at most `candidate_limit`) are shown back to
//! the policy with the lists of satisfied and unmet rubric items, and the policy writes a revision
//! y^he (low temperature). Then:
//!
//! - replacement: up to `replace_top_n` revisions that beat the group's best original score
//!   (falling back to revisions that tie it) overwrite randomly chosen slots of the group — the
//!   group keeps size G — and are marked he_mask = 1;
//! - bonus (potential for improvement under guidance): each revised original i gets
//!   r_i ← r_i + α·(r_i^he − r_i), with its best revision (negative when the revision is worse);
//! - loss: on-policy tokens keep the clipped PPO surrogate; hindsight tokens use the unclipped
//!   shaped importance weight  L = −A·w,  w = ρ/(ρ + γ_s),  ρ = exp(logp_θ − logp_he),  where
//!   logp_he is the sample's log-prob at rollout time (w(1) = ½ at γ_s = 1; dw/dρ = γ_s/(ρ+γ_s)²
//!   is bounded, so off-policy samples cannot blow the update up).
//!
//! Advantages are ordinary GRPO over the mixed group. CONFIRMED from sikelifei/HeRL
//! (ray_trainer.py: trigger, candidate selection, prompt structure, bonus, replacement;
//! core_algos.py "mixpolicy_vanilla"). The spec's last fallback (the best originals when no
//! revision ties the best) is a no-op here: a replaced slot would hold a copy of an original.

use anyhow::Result;
use candle_core::Tensor;

/// HeRL's settings (spec defaults: threshold 1, 16 candidates, 1 replacement, α 0.05, γ_s 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Herl {
    pub threshold: f64,
    pub candidate_limit: usize,
    pub replace_top_n: usize,
    pub bonus: f64,
    pub gamma_s: f64,
}

impl Default for Herl {
    fn default() -> Self {
        Self { threshold: 1.0, candidate_limit: 16, replace_top_n: 1, bonus: 0.05, gamma_s: 1.0 }
    }
}

/// The group needs hindsight guidance: no response reaches the threshold.
pub fn triggered(rewards: &[f64], threshold: f64) -> bool {
    !rewards.is_empty() && rewards.iter().all(|&r| r < threshold)
}

/// Members to revise: those with the group's best score, most satisfied rubric items first
/// (stable in index order), at most `limit`. Empty when the group is not triggered.
pub fn candidates(rewards: &[f64], satisfied: &[usize], h: Herl) -> Vec<usize> {
    assert_eq!(rewards.len(), satisfied.len(), "one rubric count per response");
    if !triggered(rewards, h.threshold) {
        return Vec::new();
    }
    let best = rewards.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut c: Vec<usize> = (0..rewards.len()).filter(|&i| rewards[i] == best).collect();
    c.sort_by_key(|&i| std::cmp::Reverse(satisfied[i]));
    c.truncate(h.candidate_limit);
    c
}

/// Revisions (by index into `revised`, best first) that replace group members: those scoring
/// above the group's best original, else those tying it, at most `top_n`.
pub fn replacements(best_original: f64, revised: &[f64], top_n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..revised.len()).collect();
    order.sort_by(|&a, &b| revised[b].total_cmp(&revised[a]));
    let above: Vec<usize> = order.iter().copied().filter(|&i| revised[i] > best_original).collect();
    let pick =
        if above.is_empty() { order.into_iter().filter(|&i| revised[i] == best_original).collect() } else { above };
    pick.into_iter().take(top_n).collect()
}

/// The bonus-shaped reward of a revised original: r + α·(r^he − r).
pub fn bonus(r: f64, r_he: f64, alpha: f64) -> f64 {
    r + alpha * (r_he - r)
}

/// The shaped importance weight w = ρ/(ρ + γ_s).
pub fn shaped_weight(rho: f64, gamma_s: f64) -> f64 {
    rho / (rho + gamma_s)
}

/// Per-token hindsight loss `[B, R]`: −A·ρ/(ρ + γ_s) with ρ = exp(clamp(logp − logp_he, ±20)).
pub fn hindsight_loss(logp: &Tensor, logp_he: &Tensor, adv: &Tensor, gamma_s: f64) -> Result<Tensor> {
    let rho = (logp - logp_he)?.clamp(-20.0, 20.0)?.exp()?;
    let w = (&rho / (&rho + gamma_s)?)?;
    Ok((adv.neg()? * w)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn solved_groups_are_untouched() {
        let h = Herl::default();
        assert!(candidates(&[0.2, 1.0, 0.5], &[1, 3, 2], h).is_empty());
        assert!(!triggered(&[], 1.0));
        // below a lower threshold nothing is solved "enough"
        assert_eq!(candidates(&[0.2, 0.5, 0.5], &[1, 1, 2], Herl { threshold: 0.6, ..h }), vec![2, 1]);
        assert!(candidates(&[0.2, 0.7], &[1, 2], Herl { threshold: 0.6, ..h }).is_empty());
    }

    #[test]
    fn candidates_are_the_best_with_most_satisfied_items_first() {
        let h = Herl { candidate_limit: 2, ..Default::default() };
        assert_eq!(candidates(&[0.5, 0.2, 0.5, 0.5], &[1, 3, 2, 2], h), vec![2, 3]);
        assert_eq!(candidates(&[0.0, 0.0], &[0, 0], Herl::default()), vec![0, 1]);
    }

    #[test]
    fn replacement_prefers_revisions_that_beat_the_best() {
        assert_eq!(replacements(0.5, &[0.6, 0.9, 0.5], 1), vec![1]);
        assert_eq!(replacements(0.5, &[0.6, 0.9, 0.5], 2), vec![1, 0]);
        assert_eq!(replacements(0.5, &[0.4, 0.5, 0.5], 2), vec![1, 2], "ties when nothing beats it");
        assert!(replacements(0.5, &[0.4, 0.1], 1).is_empty());
        assert!(replacements(0.5, &[0.9], 0).is_empty());
    }

    #[test]
    fn bonus_oracle() {
        assert!((bonus(0.4, 0.9, 0.05) - 0.425).abs() < 1e-12);
        assert!(bonus(0.4, 0.1, 0.05) < 0.4, "a worse revision lowers the reward");
        assert_eq!(bonus(0.4, 0.9, 0.0), 0.4);
    }

    #[test]
    fn shaped_weight_and_its_bounded_gradient() -> Result<()> {
        assert_eq!(shaped_weight(1.0, 1.0), 0.5);
        // dL/dlogp = −A·dw/dρ·ρ, with dw/dρ = γ/(ρ+γ)² = 0.25 at ρ = 1
        let dev = Device::Cpu;
        for (rho, gamma) in [(1.0f64, 1.0f64), (4.0, 1.0), (0.5, 2.0)] {
            let lp = Var::new(&[[rho.ln()]], &dev)?;
            let old = Tensor::new(&[[0.0f64]], &dev)?;
            let adv = Tensor::new(&[[1.0f64]], &dev)?;
            let l = hindsight_loss(lp.as_tensor(), &old, &adv, gamma)?;
            assert!((l.to_vec2::<f64>()?[0][0] + shaped_weight(rho, gamma)).abs() < 1e-12);
            let g = l.sum_all()?.backward()?.get(lp.as_tensor()).unwrap().to_vec2::<f64>()?[0][0];
            let dw_drho = gamma / (rho + gamma).powi(2);
            assert!((g + dw_drho * rho).abs() < 1e-12, "ρ {rho}: {g}");
            if rho == 1.0 && gamma == 1.0 {
                assert_eq!(dw_drho, 0.25);
            }
        }
        // the gradient shrinks for large ρ (bounded update), unlike −A·ρ
        let grad_at = |rho: f64| 1.0 / (rho + 1.0f64).powi(2) * rho;
        assert!(grad_at(100.0) < grad_at(1.0) / 20.0);
        Ok(())
    }
}
