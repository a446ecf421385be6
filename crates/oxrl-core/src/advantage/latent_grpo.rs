//! Latent-GRPO — GRPO for latent (continuous) reasoning (2026): three fixes on top of GRPO.
//!
//! 1. Invalid-sample masking: rollouts judged off-manifold (non-finite latents, a latent norm
//!    outside the range seen on the SFT distribution, or an unparseable answer) get A = 0 and are
//!    left out of their group's mean and standard deviation.
//! 2. One-sided exploration noise on some samples' latents (the rest keep the deterministic path
//!    as anchors) — in the sampler (`oxrl_lm::latent::one_sided_noise`).
//! 3. Correct-path first-token selection: of a group's correct latent paths only the one whose
//!    first answer token is most probable keeps its (positive) advantage; the other correct
//!    paths get A = 0 rather than being averaged into an invalid "mean" latent.
//!
//! INFERRED (the spec's minimal forms from the abstract).

use super::{group_indices, mean, std_unbiased, EPS};

/// Whether a latent norm lies within the calibrated range [lo/margin, hi·margin].
pub fn norm_in_range(norm: f64, range: (f64, f64), margin: f64) -> bool {
    norm.is_finite() && norm >= range.0 / margin && norm <= range.1 * margin
}

/// GRPO advantages over each group's valid members only; invalid samples get 0.
pub fn masked_grpo(scores: &[f64], groups: &[usize], valid: &[bool]) -> Vec<f64> {
    let mut a = vec![0.0; scores.len()];
    for idx in group_indices(groups) {
        let members: Vec<usize> = idx.into_iter().filter(|&i| valid[i]).collect();
        let r: Vec<f64> = members.iter().map(|&i| scores[i]).collect();
        let (mu, sigma) = if r.len() < 2 { (0.0, 1.0) } else { (mean(&r), std_unbiased(&r)) };
        for &i in &members {
            a[i] = (scores[i] - mu) / (sigma + EPS);
        }
    }
    a
}

/// Keep the positive advantage of only one correct path per group — the one with the highest
/// first-answer-token log-probability (ties: the first); the other correct paths get 0. Returns
/// how many advantages were zeroed.
pub fn select_first_token(adv: &mut [f64], groups: &[usize], correct: &[bool], first_logp: &[f64]) -> usize {
    let mut zeroed = 0;
    for idx in group_indices(groups) {
        let good: Vec<usize> = idx.into_iter().filter(|&i| correct[i] && adv[i] > 0.0).collect();
        let Some(&best) = good.iter().max_by(|&&a, &&b| first_logp[a].total_cmp(&first_logp[b]).then(b.cmp(&a))) else {
            continue;
        };
        for &i in &good {
            if i != best {
                adv[i] = 0.0;
                zeroed += 1;
            }
        }
    }
    zeroed
}

#[cfg(test)]
mod tests {
    use super::super::{grpo::Grpo, outcome, AdvantageEstimator, AdvantageInput};
    use super::*;

    fn grpo(r: &[f64], g: &[usize]) -> Vec<f64> {
        let tr = outcome(r, &vec![2; r.len()]);
        let out = Grpo.compute(&AdvantageInput { token_rewards: &tr, groups: g, values: None, tasks: None }).unwrap();
        out.advantages.iter().map(|a| a[0]).collect()
    }

    #[test]
    fn all_valid_reduces_to_grpo() {
        let r = [1.0, 0.0, 0.0, 1.0, 0.5, 0.2, 0.9];
        let g = [0, 0, 0, 0, 1, 1, 1];
        let a = masked_grpo(&r, &g, &[true; 7]);
        for (x, y) in a.iter().zip(grpo(&r, &g)) {
            assert!((x - y).abs() < 1e-9);
        }
    }

    #[test]
    fn invalid_samples_get_zero_and_leave_the_statistics_alone() {
        // Group 0: an invalid sample with an extreme reward changes nothing for the others.
        let r = [1.0, 0.0, 0.0, 1.0, 100.0];
        let g = [0; 5];
        let valid = [true, true, true, true, false];
        let a = masked_grpo(&r, &g, &valid);
        assert_eq!(a[4], 0.0);
        for (x, y) in a[..4].iter().zip(grpo(&r[..4], &g[..4])) {
            assert!((x - y).abs() < 1e-9, "{a:?}");
        }
        // A group with one valid member: μ = 0, σ = 1 as GRPO's group of one.
        let a = masked_grpo(&[0.7, 0.2], &[0, 0], &[true, false]);
        assert!((a[0] - 0.7 / (1.0 + EPS)).abs() < 1e-9 && a[1] == 0.0);
    }

    #[test]
    fn selection_keeps_the_most_confident_correct_path() {
        let g = [0, 0, 0, 0, 1, 1];
        let correct = [true, true, false, true, true, false];
        let mut a = masked_grpo(&[1.0, 1.0, 0.0, 1.0, 1.0, 0.0], &g, &[true; 6]);
        let neg = (a[2], a[5]);
        let zeroed = select_first_token(&mut a, &g, &correct, &[-0.9, -0.2, -3.0, -0.5, -1.0, -0.1]);
        assert_eq!(zeroed, 2);
        assert!(a[1] > 0.0 && a[0] == 0.0 && a[3] == 0.0, "{a:?}");
        assert!(a[4] > 0.0, "a single correct path is kept");
        assert_eq!((a[2], a[5]), neg, "incorrect paths untouched");
    }

    #[test]
    fn norm_range() {
        assert!(norm_in_range(5.0, (4.0, 6.0), 1.0));
        assert!(!norm_in_range(7.0, (4.0, 6.0), 1.0) && norm_in_range(7.0, (4.0, 6.0), 1.5));
        assert!(!norm_in_range(f64::NAN, (4.0, 6.0), 10.0));
    }
}
