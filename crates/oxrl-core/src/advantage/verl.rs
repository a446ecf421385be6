//! VERL advantage shaping — "Beyond the Exploration-Exploitation Trade-off: A Hidden State
//! Approach for LLM Reasoning in RLVR" (2025).
//!
//! A post-process on any estimator's advantages, from each response's hidden-state effective rank
//! ER_i and its velocity ERV_i (crate::diagnostics::effective_rank) and the batch's acceleration
//! ERA: b_i = w_e·z(ER_i) + w_x·z(ERV_i) with z the batch z-score, w_e = σ(−ERA/τ) (a slowing
//! spread, ERA < 0, shifts weight to exploration) and w_x = 1 − w_e; the response's tokens get
//! A'_{i,t} = A_{i,t} + clip(λ·b_i, −|Ā_i|, |Ā_i|), Ā_i its mean advantage — so shaping never
//! flips an outcome's sign, and zero-advantage responses are untouched.
//! INFERRED: the meta-controller's form (σ(−ERA/τ)), the z-scores and the clip follow the spec's
//! sketch; ER itself is CONFIRMED-DOCS. λ = 0 recovers the base estimator.

/// Per-response shaping bonuses and the exploration weight w_e.
pub fn verl_bonus(mean_adv: &[f64], er: &[f64], erv: &[f64], era: f64, lambda: f64, tau: f64) -> (Vec<f64>, f64) {
    assert!(mean_adv.len() == er.len() && er.len() == erv.len(), "one ER / ERV per response");
    let w_e = 1.0 / (1.0 + (era / tau.max(1e-12)).exp());
    let (ze, zv) = (zscore(er), zscore(erv));
    let bonus = (0..er.len())
        .map(|i| {
            let cap = mean_adv[i].abs();
            (lambda * (w_e * ze[i] + (1.0 - w_e) * zv[i])).clamp(-cap, cap)
        })
        .collect();
    (bonus, w_e)
}

/// Add each response's bonus to every one of its tokens' advantages.
pub fn apply(advantages: &mut [Vec<f64>], bonus: &[f64]) {
    for (a, &b) in advantages.iter_mut().zip(bonus) {
        a.iter_mut().for_each(|x| *x += b);
    }
}

fn zscore(x: &[f64]) -> Vec<f64> {
    let n = x.len().max(1) as f64;
    let m = x.iter().sum::<f64>() / n;
    let sd = (x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n).sqrt();
    x.iter().map(|v| if sd > 1e-12 { (v - m) / sd } else { 0.0 }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracles() {
        let adv = [0.8, -0.5, 0.0, 0.3];
        let er = [3.0, 5.0, 9.0, 1.0];
        let erv = [0.1, -0.2, 0.4, 0.0];
        // λ = 0 recovers the base estimator.
        let (b, _) = verl_bonus(&adv, &er, &erv, 0.0, 0.0, 0.1);
        assert!(b.iter().all(|&x| x == 0.0));
        // Never flips a sign; zero-advantage responses untouched.
        let (b, w) = verl_bonus(&adv, &er, &erv, -0.05, 10.0, 0.1);
        assert!(w > 0.5, "slowing spread (ERA < 0) favours exploration: {w}");
        for (a, x) in adv.iter().zip(&b) {
            assert!(x.abs() <= a.abs() + 1e-12);
            assert!(a * (a + x) >= 0.0);
        }
        assert_eq!(b[2], 0.0);
        // With w_e → 1 the bonus follows ER's z-score: highest ER gets the largest bonus (uncapped).
        let (b, w) = verl_bonus(&[1.0; 4], &er, &erv, -10.0, 0.01, 0.1);
        assert!(w > 0.999);
        let z = zscore(&er);
        for i in 0..4 {
            assert!((b[i] - 0.01 * z[i]).abs() < 1e-6, "{b:?}");
        }
        // ERA > 0 (spreading faster) shifts the weight to ERV (exploitation of the current spread).
        let (_, w) = verl_bonus(&adv, &er, &erv, 0.5, 1.0, 0.1);
        assert!(w < 0.01);
        let mut a = vec![vec![1.0, 2.0], vec![0.5]];
        apply(&mut a, &[0.1, -0.2]);
        assert_eq!(a, vec![vec![1.1, 2.1], vec![0.3]]);
    }
}
