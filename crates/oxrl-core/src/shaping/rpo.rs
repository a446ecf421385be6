//! RPO — rubric-conditioned binary preference reward ("Auto-Rubric as Reward", 2026).
//!
//! A judge compares a candidate y with a competitor y′ on each item k of a prompt-specific rubric
//! (weights w_k) and returns win_k ∈ [0, 1] (1: y better, ½: tie). y wins in one presentation
//! order when Σ_k w_k·win_k > ½·Σ_k w_k. The judge is asked in both orders (y first, then y′
//! first) and the binary reward requires agreement:
//!
//!   r(y) = 1[y wins with y first] · 1[y wins with y′ first],
//!
//! so a judge's position bias yields 0, identical candidates (all ties) yield 0, and for a
//! consistent judge swapping y and y′ flips the decision. r feeds the group advantage (GRPO).
//! INFERRED from the abstract (arXiv, 2026): the weighted-majority rule, the agreement rule and
//! the competitor (the prompt's greedy answer, or a peer of the group) are the spec's minimal
//! design.

/// Does the first candidate win by the weighted rubric majority? `wins[k]` = win of that
/// candidate on item k.
pub fn rubric_decision(wins: &[f64], weights: &[f64]) -> bool {
    assert_eq!(wins.len(), weights.len(), "one win per rubric item");
    let total: f64 = weights.iter().sum();
    wins.iter().zip(weights).map(|(v, w)| v * w).sum::<f64>() > 0.5 * total
}

/// The binary reward of y from both orders: `y_first[k]` = win of y over y′ with y presented
/// first; `other_first[k]` = win of y′ over y with y′ presented first.
pub fn rpo_reward(y_first: &[f64], other_first: &[f64], weights: &[f64]) -> f64 {
    let y_wins_second: Vec<f64> = other_first.iter().map(|v| 1.0 - v).collect();
    (rubric_decision(y_first, weights) && rubric_decision(&y_wins_second, weights)) as u8 as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracles() {
        let w = [2.0, 1.0, 0.5];
        assert!(rubric_decision(&[1.0, 0.0, 0.0], &w)); // 2 > 1.75
        assert!(!rubric_decision(&[0.0, 1.0, 1.0], &w)); // 1.5
        assert!(rubric_decision(&[0.5, 1.0, 1.0], &w)); // 2.5
                                                        // a consistent judge: y better on the main item in both orders → 1, and swapping → 0
        let y_over = [1.0, 0.5, 0.0];
        let other_over = [0.0, 0.5, 1.0]; // the same judgement seen from y′
        assert_eq!(rpo_reward(&y_over, &other_over, &w), 1.0);
        assert_eq!(rpo_reward(&other_over, &y_over, &w), 0.0, "antisymmetry");
        // identical candidates: all ties → 0
        assert_eq!(rpo_reward(&[0.5; 3], &[0.5; 3], &w), 0.0);
        // position bias (the first presented always wins) → disagreement → 0 for both
        assert_eq!(rpo_reward(&[1.0; 3], &[1.0; 3], &w), 0.0);
        // the reward is binary
        for a in [0.0, 0.3, 0.5, 1.0] {
            for b in [0.0, 0.7, 1.0] {
                let r = rpo_reward(&[a, b, a], &[b, a, b], &w);
                assert!(r == 0.0 || r == 1.0);
            }
        }
    }
}
