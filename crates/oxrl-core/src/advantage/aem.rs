//! AEM — adaptive entropy modulation for multi-turn agentic RL (2026).
//!
//! A post-process on any estimator's advantages from each response's surprisal under the
//! rollout policy, S_i = −(1/|o_i|) Σ_t log π_old(o_{i,t}), centred in its group,
//! ŝ_i = S_i − mean_{j∈g} S_j (optionally divided by the group's standard deviation):
//!
//!   A'_{i,t} = A_{i,t} · clip(exp(κ · sign(Ā_i) · ŝ_i), g_min, g_max),   Ā_i = mean_t A_{i,t}.
//!
//! Under a natural-gradient step the entropy drift is ∝ −E[A·ŝ]: a positive advantage on a
//! confident (low-surprisal) response lowers entropy, on a surprising one raises it. κ > 0 boosts
//! rare positives and confident negatives (entropy up while successes are rare); as successes
//! become common the balance moves toward exploitation by itself. The multiplier is positive, so
//! no advantage changes sign; κ = 0 recovers the base estimator.
//! INFERRED from the abstract (arXiv 2605.00425): the functional form g and its clip are the
//! spec's minimal design, not confirmed from code.

use super::{group_centered, group_indices, std_unbiased, EPS};

/// AEM's knobs (`train.aem_*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aem {
    /// κ (0 = off).
    pub kappa: f64,
    pub g_min: f64,
    pub g_max: f64,
    /// Divide the centred surprisal by the group's (unbiased) standard deviation.
    pub std_norm: bool,
}

/// Per-response multipliers g_i.
pub fn aem_scale(mean_adv: &[f64], surprisal: &[f64], groups: &[usize], p: Aem) -> Vec<f64> {
    assert!(mean_adv.len() == surprisal.len() && surprisal.len() == groups.len(), "one surprisal per response");
    let mut rel = group_centered(surprisal, groups);
    if p.std_norm {
        for idx in group_indices(groups) {
            let sd = std_unbiased(&idx.iter().map(|&i| surprisal[i]).collect::<Vec<_>>());
            idx.iter().for_each(|&i| rel[i] /= sd + EPS);
        }
    }
    mean_adv
        .iter()
        .zip(&rel)
        .map(|(&a, &s)| {
            let sign = if a > 0.0 {
                1.0
            } else if a < 0.0 {
                -1.0
            } else {
                0.0
            };
            (p.kappa * sign * s).exp().clamp(p.g_min, p.g_max)
        })
        .collect()
}

/// The response-level surprisal S_i = −mean_t log π_old(o_{i,t}).
pub fn surprisal(logp_old: &[Vec<f64>]) -> Vec<f64> {
    logp_old.iter().map(|r| -r.iter().sum::<f64>() / r.len().max(1) as f64).collect()
}

/// Multiply each response's token advantages by its g_i.
pub fn apply(advantages: &mut [Vec<f64>], scale: &[f64]) {
    for (a, &g) in advantages.iter_mut().zip(scale) {
        a.iter_mut().for_each(|x| *x *= g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracles() {
        let adv = [1.0, -1.0, 0.5, -0.5, 0.0, 0.7];
        let logp = vec![vec![-0.1, -0.1], vec![-0.1], vec![-2.0, -1.0], vec![-3.0], vec![-1.0], vec![-0.5]];
        let s = surprisal(&logp);
        assert_eq!(s, vec![0.1, 0.1, 1.5, 3.0, 1.0, 0.5]);
        let groups = [0, 0, 0, 0, 1, 1];
        // κ = 0 recovers the base estimator
        let p = Aem { kappa: 0.0, g_min: 0.5, g_max: 2.0, std_norm: false };
        assert!(aem_scale(&adv, &s, &groups, p).iter().all(|&g| g == 1.0));
        let g = aem_scale(&adv, &s, &groups, Aem { kappa: 1.0, ..p });
        // group 0 mean surprisal 1.175: ŝ = −1.075, −1.075, 0.325, 1.825
        assert_eq!(g[0], 0.5, "{g:?}"); // confident positive: damped, exp(−1.075) clipped at g_min
        assert!((g[1] - 1.075f64.exp().min(2.0)).abs() < 1e-12); // confident negative: boosted (clipped at 2)
        assert!((g[2] - 0.325f64.exp()).abs() < 1e-9); // rare positive: boosted
        assert!((g[3] - 0.5).abs() < 1e-12); // surprising negative: damped to g_min
        assert_eq!(g[4], 1.0); // zero advantage untouched
                               // group 1 = {4, 5}: ŝ_5 = 0.5 − 0.75 = −0.25 (confident positive: damped)
        assert!((g[5] - (-0.25f64).exp()).abs() < 1e-12);
        // with the std: ŝ_5 / σ, σ = sqrt(((0.25)² · 2) / 1)
        let gs = aem_scale(&adv, &s, &groups, Aem { kappa: 1.0, std_norm: true, g_min: 0.1, ..p });
        let sd = (2.0f64 * 0.0625).sqrt();
        assert!((gs[5] - (-0.25 / (sd + EPS)).exp()).abs() < 1e-9, "{gs:?}");
        // g > 0: signs preserved
        let mut a: Vec<Vec<f64>> = adv.iter().map(|&x| vec![x, x]).collect();
        apply(&mut a, &g);
        for (row, &x) in a.iter().zip(&adv) {
            assert!(row.iter().all(|&y| y * x >= 0.0 && (y == 0.0) == (x == 0.0)));
        }
    }
}
