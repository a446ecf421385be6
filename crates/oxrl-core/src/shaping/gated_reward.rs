//! G-RA — gated reward accumulation, "Stabilizing Long-term Multi-turn RL with Gated Rewards"
//! (2025).
//!
//! Direct accumulation (D-RA): R = r_high + Σ_t r_low_t. Gated (G-RA): R = r_high +
//! 1[r_high ≥ δ]·Σ_t r_low_t; per step r̃_t = r_low_t·1[r_high ≥ δ], the terminal step also
//! gets r_high. Generalised priorities: level l accumulates only when every higher-priority
//! level m < l reached its threshold δ_m. An immediate reward is paid once per distinct
//! (action, result) — repeated identical actions in an identical situation do not farm it.
//! INFERRED (abstract + summaries; the dedupe key is our reading of "repeated identical actions").

/// Per-step rewards of an episode under D-RA (`gate` = None) or G-RA (`gate` = Some(δ)): the
/// immediate rewards (zeroed when the gate is shut), with `r_high` added at the last step.
pub fn accumulate(r_high: f64, r_low: &[f64], gate: Option<f64>) -> Vec<f64> {
    let open = gate.is_none_or(|d| r_high >= d);
    let mut out: Vec<f64> = r_low.iter().map(|&r| if open { r } else { 0.0 }).collect();
    match out.last_mut() {
        Some(last) => *last += r_high,
        None => out.push(r_high),
    }
    out
}

/// Generalised priorities: `levels[l]` is level l's reward (highest priority first), summed while
/// every higher level met its threshold `deltas[m]`.
pub fn prioritized(levels: &[f64], deltas: &[f64]) -> f64 {
    let mut total = 0.0;
    for (l, &r) in levels.iter().enumerate() {
        if levels[..l].iter().zip(deltas).all(|(&m, &d)| m >= d) {
            total += r;
        }
    }
    total
}

/// Immediate rewards with repeats removed: a step whose `key` (action and what it led to) was
/// already rewarded in the episode earns 0.
pub fn once_per_key(rewards: &[f64], keys: &[String]) -> Vec<f64> {
    let mut seen = std::collections::HashSet::new();
    rewards.iter().zip(keys).map(|(&r, k)| if seen.insert(k.as_str()) { r } else { 0.0 }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_oracles() {
        let low = [0.5, 0.5, 0.5];
        // r_high below δ: R = r_high whatever the immediate rewards.
        let r = accumulate(0.0, &low, Some(1.0));
        assert_eq!(r, vec![0.0, 0.0, 0.0]);
        assert_eq!(accumulate(-0.5, &[9.0; 4], Some(0.0)).iter().sum::<f64>(), -0.5);
        // r_high ≥ δ: R = r_high + Σ r_low (≥ compares inclusively).
        let r = accumulate(1.0, &low, Some(1.0));
        assert_eq!(r, vec![0.5, 0.5, 1.5]);
        // D-RA always accumulates.
        assert_eq!(accumulate(0.0, &low, None).iter().sum::<f64>(), 1.5);
        assert_eq!(accumulate(0.7, &[], Some(0.5)), vec![0.7]);
    }

    #[test]
    fn farming_pays_under_direct_but_not_gated_accumulation() {
        // A policy that only emits valid no-op calls (12 of them, never succeeding) against one
        // that succeeds in 5 valid calls.
        let farm = [0.05; 12];
        let solve = [0.05; 5];
        let (farm_d, farm_g) = (accumulate(0.0, &farm, None), accumulate(0.0, &farm, Some(1.0)));
        let solve_g: f64 = accumulate(1.0, &solve, Some(1.0)).iter().sum();
        assert!(farm_g.iter().sum::<f64>() < farm_d.iter().sum::<f64>());
        assert!(farm_g.iter().sum::<f64>() < solve_g);
    }

    #[test]
    fn priorities_and_dedupe() {
        // levels: outcome (δ 1), then tests run (δ 0.5), then format.
        assert_eq!(prioritized(&[1.0, 0.5, 0.1], &[1.0, 0.5]), 1.6);
        assert_eq!(prioritized(&[0.0, 0.5, 0.1], &[1.0, 0.5]), 0.0);
        assert_eq!(prioritized(&[1.0, 0.2, 0.1], &[1.0, 0.5]), 1.2);
        let k = |s: &str| s.to_string();
        assert_eq!(once_per_key(&[0.1, 0.1, 0.1, 0.1], &[k("a"), k("b"), k("a"), k("c")]), vec![0.1, 0.1, 0.0, 0.1]);
    }
}
