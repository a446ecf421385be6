//! Hierarchical gated reward (HRM) — ChatShopBuddy (2026): reward levels ordered by dependency
//! (e.g. L1 validity/format → L2 correctness → L3 quality → L4 efficiency); a level counts only
//! when every level below it passes its threshold:
//! R = g₁·(w₁s₁ + g₂·(w₂s₂ + g₃·(w₃s₃ + w₄s₄))), g_k = [s_k ≥ θ_k].
//! In general, term k is multiplied by the gates of levels 1..min(k, K−1) (the top level has no
//! gate of its own). INFERRED minimal form from the abstract.

use anyhow::{ensure, Result};

pub fn hierarchical_reward(scores: &[f64], weights: &[f64], thresholds: &[f64]) -> Result<f64> {
    let k = scores.len();
    ensure!(k > 0 && weights.len() == k, "one weight per level");
    ensure!(thresholds.len() + 1 >= k, "a threshold for every level but the last");
    let mut total = 0.0;
    let mut open = true;
    for i in 0..k {
        if i < k - 1 {
            open = open && scores[i] >= thresholds[i];
        }
        if !open {
            break;
        }
        total += weights[i] * scores[i];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracles() -> Result<()> {
        let w = [0.1, 1.0, 0.3, 0.2];
        let th = [1.0, 1.0, 0.5];
        // Failing level 1 ⇒ 0 whatever the higher levels say.
        assert_eq!(hierarchical_reward(&[0.0, 1.0, 1.0, 1.0], &w, &th)?, 0.0);
        // Format passes, wrong answer ⇒ only the format term.
        assert!((hierarchical_reward(&[1.0, 0.0, 1.0, 1.0], &w, &th)? - 0.1).abs() < 1e-12);
        // Correct, quality below its gate ⇒ format + correctness (quality and efficiency gated off).
        assert!((hierarchical_reward(&[1.0, 1.0, 0.4, 1.0], &w, &th)? - (0.1 + 1.0)).abs() < 1e-12);
        // All pass: the nested form g1(w1s1 + g2(w2s2 + g3(w3s3 + w4s4))).
        let r = hierarchical_reward(&[1.0, 1.0, 0.6, 0.5], &w, &th)?;
        assert!((r - (0.1 + 1.0 + 0.3 * 0.6 + 0.2 * 0.5)).abs() < 1e-12);
        // Ordering: every correct response outranks every incorrect one when w₂ exceeds the rest.
        let worst_correct = hierarchical_reward(&[1.0, 1.0, 0.0, 0.0], &w, &th)?;
        let best_wrong = hierarchical_reward(&[1.0, 0.0, 1.0, 1.0], &w, &th)?;
        assert!(worst_correct > best_wrong);
        Ok(())
    }
}
