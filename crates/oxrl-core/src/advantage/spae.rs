//! SPAE — step potential advantage estimation (2026).
//!
//! A response is split into steps at a boundary string. After each step k the policy is probed,
//! gradient-free: with a probe prompt appended (e.g. "answer: "), N short continuations give the
//! confidence Conf_k = (1/N) Σ_n exp(−mean_l H_{n,l}) and the teacher-forced ground truth the
//! correctness Acc_k = mean_m π(y*_m | prefix, probe, y*_{<m}). The step potential
//!
//!   Φ_k = 1.5·Acc·Conf + 0.5·Acc − Conf ∈ [−1, 1]
//!
//! (1: confident and correct; −1: confident and wrong; ½: correct but unsure) and its change
//! ΔΦ_k = Φ_k − Φ_{k−1} (ΔΦ_1 = 0) shape the token advantages of step k:
//!
//!   A_{i,t} = A_outcome,i + λ·ΔΦ_k,
//!
//! and in a correct response whose potential saturates (first k* with Φ_{k*} > τ_sat) every
//! token after step k* loses λ_sat — credit for stopping once the answer is known.
//! Φ, Conf and Acc are CONFIRMED-CODE (cii030/SPAE-RL probe_mechanism_example.py); the advantage
//! composition, λ and the saturation penalty are INFERRED (no training code released).

/// Φ(Acc, Conf).
pub fn potential(acc: f64, conf: f64) -> f64 {
    1.5 * acc * conf + 0.5 * acc - conf
}

/// Conf from the probes' per-token entropies.
pub fn confidence(probe_entropies: &[Vec<f64>]) -> f64 {
    let per: Vec<f64> = probe_entropies
        .iter()
        .map(|h| if h.is_empty() { 1.0 } else { (-h.iter().sum::<f64>() / h.len() as f64).exp() })
        .collect();
    per.iter().sum::<f64>() / per.len().max(1) as f64
}

/// SPAE's knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spae {
    /// λ of the potential-difference shaping.
    pub lambda: f64,
    /// Saturation threshold τ_sat on Φ.
    pub tau_sat: f64,
    /// Penalty λ_sat on the tokens after the saturating step (correct responses).
    pub sat_penalty: f64,
}

/// Token advantages of one response: `adv` per token (the outcome estimator's), `step_ends` the
/// exclusive token end of each step (increasing, the last = the response length), `phi` Φ_k
/// after each step. Returns the shaped advantages and the saturating step, if any.
pub fn shape(adv: &[f64], step_ends: &[usize], phi: &[f64], correct: bool, p: Spae) -> (Vec<f64>, Option<usize>) {
    assert_eq!(step_ends.len(), phi.len(), "one potential per step");
    let sat = if correct { phi.iter().position(|&f| f > p.tau_sat) } else { None };
    let mut out = adv.to_vec();
    let mut start = 0;
    for (k, &end) in step_ends.iter().enumerate() {
        let delta = if k == 0 { 0.0 } else { phi[k] - phi[k - 1] };
        let tail = sat.is_some_and(|s| k > s);
        for a in &mut out[start..end.min(adv.len())] {
            *a += p.lambda * delta - if tail { p.sat_penalty } else { 0.0 };
        }
        start = end;
    }
    (out, sat)
}

/// Exclusive token ends of the steps of a response whose decoded prefixes are `prefix_texts`
/// (`prefix_texts[j]` = the text of tokens 0..=j): a step ends after token j when its prefix
/// ends with `boundary`; the last step ends with the response.
pub fn step_ends(prefix_texts: &[String], boundary: &str) -> Vec<usize> {
    let n = prefix_texts.len();
    let mut ends: Vec<usize> = (0..n).filter(|&j| prefix_texts[j].ends_with(boundary)).map(|j| j + 1).collect();
    ends.dedup();
    if ends.last() != Some(&n) {
        ends.push(n);
    }
    ends
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracles() {
        assert_eq!(potential(1.0, 1.0), 1.0);
        assert_eq!(potential(0.0, 1.0), -1.0);
        assert_eq!(potential(0.0, 0.0), 0.0);
        assert_eq!(potential(1.0, 0.0), 0.5);
        for a in 0..=10 {
            for c in 0..=10 {
                let f = potential(a as f64 / 10.0, c as f64 / 10.0);
                assert!((-1.0..=1.0).contains(&f));
            }
        }
        assert!((confidence(&[vec![0.0, 0.0], vec![(2.0f64).ln()]]) - 0.75).abs() < 1e-12);
        let p = Spae { lambda: 0.0, tau_sat: 0.9, sat_penalty: 0.0 };
        // λ = 0 and no penalty: the outcome advantages unchanged
        let adv = vec![0.5; 6];
        assert_eq!(shape(&adv, &[2, 4, 6], &[0.1, 0.95, 0.99], true, p).0, adv);
        // shaping by ΔΦ per step
        let (a, _) = shape(&adv, &[2, 4, 6], &[0.1, 0.5, 0.2], false, Spae { lambda: 1.0, ..p });
        let want = [0.5, 0.5, 0.9, 0.9, 0.2, 0.2];
        for (x, y) in a.iter().zip(want) {
            assert!((x - y).abs() < 1e-12, "{a:?}");
        }
        // saturation after step 2 of a correct response: its tail loses credit, an otherwise
        // identical response that stopped at saturation does not carry such a tail
        let q = Spae { lambda: 0.0, tau_sat: 0.9, sat_penalty: 0.3 };
        let (long, sat) = shape(&adv, &[2, 4, 6], &[0.3, 0.95, 0.97], true, q);
        assert_eq!(sat, Some(1));
        assert_eq!(&long[4..], &[0.2, 0.2]);
        let (short, _) = shape(&adv[..4], &[2, 4], &[0.3, 0.95], true, q);
        assert!(long[4..].iter().sum::<f64>() / 2.0 < short.iter().sum::<f64>() / 4.0);
        // no saturation penalty for incorrect responses
        assert_eq!(shape(&adv, &[2, 4, 6], &[0.3, 0.95, 0.97], false, q).1, None);
        let texts: Vec<String> =
            ["1", "1+", "1+2,", "1+2,3", "1+2,3,", "1+2,3,x"].iter().map(|s| s.to_string()).collect();
        assert_eq!(step_ends(&texts, ","), vec![3, 5, 6]);
        assert_eq!(step_ends(&texts[..5], ","), vec![3, 5]);
    }
}
