//! RC-aux's pieces — "Predictive but Not Plannable: Reachability-Correction auxiliary for latent
//! world models" (2026), as in the authors' code (Guang000/RC-aux): the reachability pair generator
//! (positives, temporal hard negatives, random negatives by a fixed-point-free permutation), the
//! linear multi-horizon rollout weights, and the reachability-aware planner cost. The latent world
//! model, the reachability head and the CEM planner that use them are not assembled yet.
//!
//! - For a future offset δ ∈ 1..=D of the goal and a budget b ∈ 1..=D: (δ, b) is a positive when
//!   δ ≤ b and a temporal hard negative when b < δ — D(D+1)/2 and D(D−1)/2 pairs.
//! - Rollout weights for horizon H: w_h ∝ h, normalised to sum 1.
//! - Planner cost: base · max(0.05, 1 − w_plan · p*), p* the best reachability probability along
//!   the predicted rollout; equals base when the head is off (w_plan = 0).

use oxrl_core::seed::Rng;
use rand::Rng as _;

/// A (goal offset δ, budget b) pair.
pub type Pair = (usize, usize);

/// (positives, hard negatives) as (δ, budget) pairs for horizon `d`.
pub fn reachability_pairs(d: usize) -> (Vec<Pair>, Vec<Pair>) {
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    for delta in 1..=d {
        for b in 1..=d {
            if delta <= b {
                pos.push((delta, b));
            } else {
                neg.push((delta, b));
            }
        }
    }
    (pos, neg)
}

/// A random permutation of 0..n with no fixed point (Sattolo's algorithm draws a uniform n-cycle);
/// None for n < 2, when random negatives are skipped.
pub fn derangement(n: usize, rng: &mut Rng) -> Option<Vec<usize>> {
    if n < 2 {
        return None;
    }
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..i);
        p.swap(i, j);
    }
    Some(p)
}

/// Linear rollout weights w_h = h / Σh for h = 1..=H.
pub fn rollout_weights(h: usize) -> Vec<f64> {
    let total = (h * (h + 1) / 2) as f64;
    (1..=h).map(|i| i as f64 / total).collect()
}

/// The reachability-aware planner cost.
pub fn planner_cost(base: f64, p_star: f64, w_plan: f64) -> f64 {
    base * (1.0 - w_plan * p_star).max(0.05)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn pair_generator_matches_the_spec_for_d_3() {
        let (pos, neg) = reachability_pairs(3);
        assert_eq!(pos, vec![(1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3)]);
        assert_eq!(neg, vec![(2, 1), (3, 1), (3, 2)]);
        for d in 1..8 {
            let (p, n) = reachability_pairs(d);
            assert_eq!((p.len(), n.len()), (d * (d + 1) / 2, d * (d - 1) / 2));
        }
    }

    #[test]
    fn random_negatives_never_pair_an_element_with_itself() {
        let mut rng = Rng::seed_from_u64(0);
        for n in 2..30 {
            for _ in 0..20 {
                let p = derangement(n, &mut rng).unwrap();
                let mut sorted = p.clone();
                sorted.sort();
                assert_eq!(sorted, (0..n).collect::<Vec<_>>());
                assert!(p.iter().enumerate().all(|(i, &j)| i != j));
            }
        }
        assert!(derangement(1, &mut rng).is_none());
    }

    #[test]
    fn rollout_weights_and_planner_cost() {
        let w = rollout_weights(4);
        for (a, b) in w.iter().zip([0.1, 0.2, 0.3, 0.4]) {
            assert!((a - b).abs() < 1e-12);
        }
        assert_eq!(planner_cost(2.0, 0.9, 0.0), 2.0, "head off: the base cost");
        for p in [0.0, 0.5, 1.0] {
            for w in [0.35, 1.0, 3.0] {
                assert!(planner_cost(1.0, p, w) >= 0.05);
            }
        }
        assert!((planner_cost(1.0, 1.0, 0.35) - 0.65).abs() < 1e-12);
    }
}
