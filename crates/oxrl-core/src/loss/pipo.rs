//! PIPO — policy improvement verification with a sliding-window baseline ("Policy Improvement
//! Reinforcement Learning", 2026).
//!
//! Each iteration checks whether the previous update helped: with J_k the batch's mean reward and
//! a window of the W previous values, Δ_k = J_k − mean(J_{k−W..k−1}). The current policy loss is
//! scaled by max(0, 1 + η·tanh(Δ_k / s)): reinforced after an improvement, suppressed after a
//! regression. INFERRED minimal form (the spec's loss-scaling variant; its alternative — a KL pull
//! toward the previous policy — would need that policy kept in memory).

/// (Δ_k, scale) for the current batch mean `j` given the previous values `history` (oldest
/// first; only the last `window` are used). No history ⇒ (0, 1).
pub fn pipo_scale(history: &[f64], j: f64, window: usize, eta: f64, s: f64) -> (f64, f64) {
    let w = window.max(1).min(history.len());
    if w == 0 {
        return (0.0, 1.0);
    }
    let base = history[history.len() - w..].iter().sum::<f64>() / w as f64;
    let delta = j - base;
    (delta, (1.0 + eta * (delta / s.max(1e-12)).tanh()).max(0.0))
}

/// Append `j` to the history, keeping the last `window` values.
pub fn push_history(history: &mut Vec<f64>, j: f64, window: usize) {
    history.push(j);
    let keep = window.max(1);
    if history.len() > keep {
        history.drain(..history.len() - keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracles() {
        // Constant J ⇒ no modulation (GRPO).
        let (d, sc) = pipo_scale(&[0.4, 0.4, 0.4], 0.4, 3, 0.5, 0.1);
        assert!(d.abs() < 1e-12 && (sc - 1.0).abs() < 1e-12);
        assert_eq!(pipo_scale(&[], 0.9, 3, 0.5, 0.1), (0.0, 1.0));
        // The sign of the modulation follows the sign of Δ.
        let (d, up) = pipo_scale(&[0.2, 0.4], 0.5, 2, 0.5, 0.1);
        assert!((d - 0.2).abs() < 1e-12 && up > 1.0);
        assert!((up - (1.0 + 0.5 * 2f64.tanh())).abs() < 1e-12);
        let (d, down) = pipo_scale(&[0.2, 0.4], 0.1, 2, 0.5, 0.1);
        assert!(d < 0.0 && (0.0..1.0).contains(&down));
        // Window 1 is the one-step difference; only the last W values count.
        assert!((pipo_scale(&[9.0, 0.3], 0.5, 1, 1.0, 0.1).0 - 0.2).abs() < 1e-12);
        // Never negative, even for a large η.
        assert_eq!(pipo_scale(&[1.0], 0.0, 1, 5.0, 0.01).1, 0.0);
        let mut h = vec![];
        for j in [0.1, 0.2, 0.3, 0.4] {
            push_history(&mut h, j, 3);
        }
        assert_eq!(h, vec![0.2, 0.3, 0.4]);
    }
}
