//! CalibRL — distribution-aware advantage weighting with a LeakyReLU expert-anchored loss (2026).
//!
//! With one expert (ground-truth) response per prompt and its log-probs under the rollout policy
//! e_t (position-wise), each on-policy token gets the guided term
//! `g_t = |A_i| · LeakyReLU(z_t, 0.5)`, `z_t = −(2c_i − 1)·(logp_{i,t} − e_t)`, c_i = [r_i > 0.1],
//! added to the PPO loss as `coef · agg(g)` (coef 0.1). Correct samples are pulled up with full
//! force while below the expert baseline and half force above it; incorrect ones pushed down with
//! full force while above it and half force below — the direction never flips. |A_i| = |r − μ_g|
//! is large for rare outcomes (a correct answer in a hard group, a wrong one in an easy group).
//! CONFIRMED-CODE (zhh6425/CalibRL compute_mix_policy_loss "expert-guided"). INFERRED detail:
//! tokens past the expert response's length have no baseline and carry no guided loss.

use anyhow::Result;
use candle_core::{Device, Tensor};

/// Per-token guided loss `[B, R]` (zero where the caller's masks are zero): `logp` (with grad),
/// `expert_logp` `[B, R]` (no grad), `correct` and `adv_abs` per response.
pub fn calibrl_guided(
    logp: &Tensor,
    expert_logp: &Tensor,
    correct: &[bool],
    adv_abs: &[f64],
    slope: f64,
) -> Result<Tensor> {
    let dev: &Device = logp.device();
    let dt = logp.dtype();
    let b = correct.len();
    let sign: Vec<f64> = correct.iter().map(|&c| if c { 1.0 } else { -1.0 }).collect();
    let sign = Tensor::from_vec(sign, (b, 1), dev)?.to_dtype(dt)?;
    let weight = Tensor::from_vec(adv_abs.to_vec(), (b, 1), dev)?.to_dtype(dt)?;
    let z = (logp - expert_logp)?.broadcast_mul(&sign)?.neg()?;
    let leaky = (z.relu()? - (z.neg()?.relu()? * slope)?)?;
    Ok(leaky.broadcast_mul(&weight)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Var};

    fn grad(logp: f64, e: f64, correct: bool, a: f64) -> f64 {
        let dev = Device::Cpu;
        let lp = Var::from_tensor(&Tensor::new(&[[logp]], &dev).unwrap()).unwrap();
        let ex = Tensor::new(&[[e]], &dev).unwrap();
        let g = calibrl_guided(lp.as_tensor(), &ex, &[correct], &[a], 0.5).unwrap();
        let gr = g.sum_all().unwrap().backward().unwrap();
        gr.get(lp.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()[0]
    }

    #[test]
    fn gradient_oracles() {
        // correct sample: −|A| below the expert baseline, −0.5|A| above it (descent raises logp)
        assert!((grad(-3.0, -2.0, true, 0.8) + 0.8).abs() < 1e-12);
        assert!((grad(-1.0, -2.0, true, 0.8) + 0.4).abs() < 1e-12);
        // incorrect: +|A| above the baseline, +0.5|A| below (descent lowers logp); never flips
        assert!((grad(-1.0, -2.0, false, 0.8) - 0.8).abs() < 1e-12);
        assert!((grad(-3.0, -2.0, false, 0.8) - 0.4).abs() < 1e-12);
        // |A| = 0 (all-equal group): no guided loss at all
        assert_eq!(grad(-3.0, -2.0, true, 0.0), 0.0);
    }

    #[test]
    fn values() -> Result<()> {
        let dev = Device::Cpu;
        let lp = Tensor::new(&[[-3.0f64, -1.0], [-1.0, -3.0]], &dev)?;
        let e = Tensor::new(&[[-2.0f64, -2.0], [-2.0, -2.0]], &dev)?;
        let g: Vec<Vec<f64>> =
            calibrl_guided(&lp, &e, &[true, false], &[1.0, 2.0], 0.5)?.to_dtype(DType::F64)?.to_vec2()?;
        // correct: z = −(logp − e) = [1, −1] → [1, −0.5]; incorrect: z = logp − e = [1, −1] → 2·[1, −0.5]
        assert_eq!(g, vec![vec![1.0, -0.5], vec![2.0, -1.0]]);
        Ok(())
    }
}
