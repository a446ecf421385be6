//! SEELE — "Staying in the Sweet Spot: Responsive Reasoning Evolution via Capability-Adaptive
//! Hint Scaffolding" (2025): per-problem hint ratios chosen so rollout accuracy sits near 50 %.
//!
//! A hint is the first ⌊h·|s|⌋ tokens of the reference solution appended to the prompt (no
//! loss on it; the reward reads hint + continuation). Accuracy as a function of h follows a
//! 3-parameter logistic item-response curve P(h) = c + (1 − c)·σ(a·(h − b)); after each rollout
//! round the difficulty b of each problem is fitted by maximum likelihood over all its (h,
//! outcome) pairs (a and c shared), and the next ratio inverts the curve at the target:
//! h = b + ln((acc* − c)/(1 − acc*))/a, clamped to [0, 1] (0 when acc* ≤ c). All-right or
//! all-wrong histories move h by ∓0.25 instead. INFERRED (the parameterisation is the spec's).

/// P(correct | h) under the 3PL curve.
pub fn irt(h: f64, a: f64, b: f64, c: f64) -> f64 {
    c + (1.0 - c) / (1.0 + (-a * (h - b)).exp())
}

/// The hint ratio at which the curve reaches `target`, clamped to [0, 1]; 0 when the floor c
/// already reaches it.
pub fn invert(target: f64, a: f64, b: f64, c: f64) -> f64 {
    if target <= c {
        return 0.0;
    }
    (b + ((target - c) / (1.0 - target)).ln() / a).clamp(0.0, 1.0)
}

/// Maximum-likelihood difficulty b of one problem from its (h, correct) observations, with a
/// and c fixed (golden-section search on the concave log-likelihood over b ∈ [−2, 3]).
pub fn fit_b(obs: &[(f64, bool)], a: f64, c: f64) -> f64 {
    let ll = |b: f64| -> f64 {
        obs.iter()
            .map(|&(h, y)| {
                let p = irt(h, a, b, c).clamp(1e-9, 1.0 - 1e-9);
                if y {
                    p.ln()
                } else {
                    (1.0 - p).ln()
                }
            })
            .sum()
    };
    let (mut lo, mut hi) = (-2.0f64, 3.0f64);
    let g = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..100 {
        let (x1, x2) = (hi - g * (hi - lo), lo + g * (hi - lo));
        if ll(x1) < ll(x2) {
            lo = x1;
        } else {
            hi = x2;
        }
    }
    (lo + hi) / 2.0
}

/// The next round's hint ratio of a problem from its observations so far (the last one's h is
/// the current ratio).
pub fn next_ratio(obs: &[(f64, bool)], target: f64, a: f64, c: f64) -> f64 {
    let Some(&(h_now, _)) = obs.last() else { return 0.0 };
    if obs.iter().all(|o| o.1) {
        return (h_now - 0.25).clamp(0.0, 1.0);
    }
    if obs.iter().all(|o| !o.1) {
        return (h_now + 0.25).clamp(0.0, 1.0);
    }
    invert(target, a, fit_b(obs, a, c), c)
}

/// The hint: the first ⌊h·n⌋ of `n` solution tokens (token-boundary convention).
pub fn hint_len(h: f64, n: usize) -> usize {
    ((h.clamp(0.0, 1.0) * n as f64).floor() as usize).min(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inversion_oracles() {
        assert!((irt(0.4, 10.0, 0.4, 0.0) - 0.5).abs() < 1e-12);
        assert!((invert(0.5, 10.0, 0.4, 0.0) - 0.4).abs() < 1e-12);
        assert!((invert(0.5, 10.0, 0.4, 0.2) - 0.3489).abs() < 1e-4);
        assert_eq!(invert(0.5, 10.0, 0.4, 0.6), 0.0, "the floor already reaches the target");
        assert_eq!(invert(0.5, 10.0, 5.0, 0.0), 1.0, "clamped");
    }

    #[test]
    fn fit_is_monotone_in_failures_and_edges_step() {
        let obs = |fails: usize| -> Vec<(f64, bool)> {
            let mut o: Vec<(f64, bool)> = (0..8).map(|i| (0.3, i >= fails)).collect();
            o.extend((0..8).map(|i| (0.6, i >= fails / 2)));
            o
        };
        let (b2, b5) = (fit_b(&obs(2), 10.0, 0.0), fit_b(&obs(5), 10.0, 0.0));
        assert!(b5 > b2, "more failures -> harder ({b2:.3} vs {b5:.3})");
        assert!(next_ratio(&obs(5), 0.5, 10.0, 0.0) > next_ratio(&obs(2), 0.5, 10.0, 0.0));
        // The MLE of one h with k of n right solves P(h) = k/n.
        let one: Vec<(f64, bool)> = (0..8).map(|i| (0.5, i < 2)).collect();
        assert!((irt(0.5, 10.0, fit_b(&one, 10.0, 0.0), 0.0) - 0.25).abs() < 1e-6);
        // Solved 8/8 at h = 0 -> stays at 0; all wrong -> +0.25.
        assert_eq!(next_ratio(&[(0.0, true); 8], 0.5, 10.0, 0.0), 0.0);
        assert_eq!(next_ratio(&[(0.5, false); 8], 0.5, 10.0, 0.0), 0.75);
        assert_eq!(hint_len(0.5, 7), 3);
        assert_eq!(hint_len(1.0, 7), 7);
    }
}
