//! SELF's negative-interference measurement — "The Reasoning Boundary Paradox" (2025); the
//! measurement's exact definition is INFERRED.
//!
//! A fixed probe set (the first `train.interference_probes` held-out problems with their
//! reference solutions) is scored teacher-forced before and after each measured update: ℓ_p is the
//! mean per-token log-likelihood of problem p's solution. Reported:
//! - `interference_frac`: fraction of probes whose likelihood fell (ℓ_after < ℓ_before);
//! - `interference_mean_drop`: mean fall over those probes;
//! - `winner_take_all`: Pearson correlation between the base success proxy exp(ℓ_before) and the
//!   gain ℓ_after − ℓ_before (positive = the rich get richer).

use crate::policy::Policy;
use anyhow::Result;
use oxrl_lm::scorer::{score, ScoreOptions};
use oxrl_tasks::Problem;
use serde_json::{json, Map, Value};

/// Mean per-token log-likelihood of each problem's reference solution under the policy.
pub fn solution_loglik(policy: &Policy, probes: &[Problem]) -> Result<Vec<f64>> {
    if probes.is_empty() {
        return Ok(vec![]);
    }
    let tok = policy.tokenizer.as_ref();
    let prompts = probes.iter().map(|p| crate::policy::prompt_ids(tok, p)).collect::<Result<Vec<_>>>()?;
    let sols = probes.iter().map(|p| oxrl_lm::prompt::encode_response(tok, &p.solution)).collect::<Result<Vec<_>>>()?;
    let s = score(&policy.model, &prompts, &sols, tok.pad_id(), ScoreOptions::default())?;
    let sum = s.logp.sum(1)?.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?;
    Ok(sum.iter().zip(&sols).map(|(l, r)| l / r.len().max(1) as f64).collect())
}

/// The interference metrics from per-probe log-likelihoods before and after an update.
pub fn interference_metrics(before: &[f64], after: &[f64]) -> Map<String, Value> {
    let n = before.len().max(1) as f64;
    let drops: Vec<f64> = before.iter().zip(after).filter(|(b, a)| a < b).map(|(b, a)| b - a).collect();
    let base: Vec<f64> = before.iter().map(|l| l.exp()).collect();
    let gain: Vec<f64> = before.iter().zip(after).map(|(b, a)| a - b).collect();
    let mut m = Map::new();
    m.insert("interference_frac".into(), json!(drops.len() as f64 / n));
    m.insert(
        "interference_mean_drop".into(),
        json!(if drops.is_empty() { 0.0 } else { drops.iter().sum::<f64>() / drops.len() as f64 }),
    );
    m.insert("winner_take_all".into(), json!(oxrl_core::metrics::pearson(&base, &gain)));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_values() {
        // probes 0 and 2 fall by 0.5 and 0.1; 1 and 3 rise
        let before = [-1.0, -2.0, -0.5, -3.0];
        let after = [-1.5, -1.0, -0.6, -2.0];
        let m = interference_metrics(&before, &after);
        assert_eq!(m["interference_frac"], json!(0.5));
        assert!((m["interference_mean_drop"].as_f64().unwrap() - 0.3).abs() < 1e-12);
        // the likely probes lost, the unlikely gained: the rich did not get richer
        assert!(m["winner_take_all"].as_f64().unwrap() < 0.0);
        // rich-get-richer: gains grow with base likelihood
        let m = interference_metrics(&[-0.5, -1.0, -3.0], &[-0.2, -0.8, -2.95]);
        assert!(m["winner_take_all"].as_f64().unwrap() > 0.9);
        assert_eq!(m["interference_frac"], json!(0.0));
        assert_eq!(oxrl_core::metrics::pearson(&[1.0, 1.0], &[0.0, 2.0]), 0.0);
    }
}
