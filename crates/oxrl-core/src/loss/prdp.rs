//! PRDP — "Proximal Reward Difference Prediction for Large-Scale Reward Finetuning of Diffusion
//! Models" (2024), in the LM setting: the policy regresses reward differences of response pairs.
//!
//! For every pair (a, b) of responses to the same prompt, the implicit reward difference is
//! Δr̂ = β·Σ_t [clip(log π_θ/π_old)(a_t) − clip(log π_θ/π_old)(b_t)] (per-token log-ratios clipped
//! to [−ε, ε]: the proximal trust region around the rollout policy), and the loss is the mean
//! squared error (Δr̂ − (r_a − r_b))² over all pairs. Perfect prediction makes π_θ the maximiser
//! of the KL-regularised objective, π* ∝ π_old·exp(r/β). INFERRED (clip constants and the LM
//! mapping — sum over response tokens in place of denoising steps — are ours).

use anyhow::{ensure, Result};
use candle_core::{Tensor, D};

/// The PRDP loss over the rows of `logp` / `logp_old` `[B, R]` (masked by `mask`) with scalar
/// `rewards` and prompt `groups`; returns (loss, number of pairs). Zero (and 0 pairs) when no
/// group has two members.
pub fn prdp_loss(
    logp: &Tensor,
    logp_old: &Tensor,
    mask: &Tensor,
    rewards: &[f64],
    groups: &[usize],
    beta: f64,
    eps: f64,
) -> Result<(Tensor, usize)> {
    let b = logp.dim(0)?;
    ensure!(
        rewards.len() == b && groups.len() == b,
        "prdp: {b} rows, {} rewards, {} groups",
        rewards.len(),
        groups.len()
    );
    let ratio = (logp - logp_old.to_dtype(logp.dtype())?)?.clamp(-eps, eps)?;
    // β·Σ_t clipped log-ratio per response.
    let s = ((ratio * mask.to_dtype(logp.dtype())?)?.sum(D::Minus1)? * beta)?;
    let (mut ia, mut ib, mut target) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..b {
        for j in i + 1..b {
            if groups[i] == groups[j] {
                ia.push(i as u32);
                ib.push(j as u32);
                target.push((rewards[i] - rewards[j]) as f32);
            }
        }
    }
    if ia.is_empty() {
        return Ok(((s.sum_all()? * 0.0)?, 0));
    }
    let dev = logp.device();
    let n = ia.len();
    let sa = s.index_select(&Tensor::new(ia.as_slice(), dev)?, 0)?;
    let sb = s.index_select(&Tensor::new(ib.as_slice(), dev)?, 0)?;
    let t = Tensor::from_vec(target, n, dev)?.to_dtype(s.dtype())?;
    let err = ((sa - sb)? - t)?;
    Ok((err.sqr()?.mean_all()?, n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn t2(v: &[[f64; 2]]) -> Tensor {
        Tensor::from_vec(v.concat(), (v.len(), 2), &Device::Cpu).unwrap()
    }

    #[test]
    fn at_the_old_policy_the_loss_is_the_reward_variance_of_pairs() -> Result<()> {
        let lp = t2(&[[-1.0, -2.0], [-0.5, -0.1], [-3.0, -0.2], [-0.4, -0.4]]);
        let mask = t2(&[[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 1.0]]);
        let r = [1.0, 0.0, 0.5, 2.0];
        let (l, n) = prdp_loss(&lp, &lp, &mask, &r, &[0, 0, 0, 1], 0.5, 0.2)?;
        assert_eq!(n, 3);
        let want = (1.0 + 0.25 + 0.25) / 3.0;
        assert!((l.to_scalar::<f64>()? - want).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn antisymmetric_in_the_pair_order() -> Result<()> {
        let lp = t2(&[[-1.0, -2.0], [-0.5, -0.1]]);
        let old = t2(&[[-1.1, -1.9], [-0.4, -0.3]]);
        let mask = t2(&[[1.0, 1.0], [1.0, 1.0]]);
        let (a, _) = prdp_loss(&lp, &old, &mask, &[1.0, 0.0], &[0, 0], 2.0, 1.0)?;
        let lp2 = t2(&[[-0.5, -0.1], [-1.0, -2.0]]);
        let old2 = t2(&[[-0.4, -0.3], [-1.1, -1.9]]);
        let (b, _) = prdp_loss(&lp2, &old2, &mask, &[0.0, 1.0], &[0, 0], 2.0, 1.0)?;
        assert!((a.to_scalar::<f64>()? - b.to_scalar::<f64>()?).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn minimising_recovers_the_kl_regularised_optimum() -> Result<()> {
        // A one-token categorical "LM" over 4 tokens; each token is one response of a group of
        // all four. Minimising PRDP over the logits (no clip) gives log π − log π_old = r/β + c.
        let dev = Device::Cpu;
        let old = [0.1f64, 0.2, 0.3, 0.4];
        let r = [1.0f64, 0.0, 0.5, -0.5];
        let beta = 2.0;
        let logits = Var::from_tensor(&Tensor::new(&old.map(f64::ln), &dev)?)?;
        let lp_old = Tensor::new(&old.map(f64::ln), &dev)?.unsqueeze(1)?;
        let mask = Tensor::ones((4, 1), DType::F64, &dev)?;
        for _ in 0..3000 {
            let x = logits.as_tensor();
            let lp = x.broadcast_sub(&x.exp()?.sum_keepdim(0)?.log()?)?.unsqueeze(1)?;
            let (l, _) = prdp_loss(&lp, &lp_old, &mask, &r, &[0; 4], beta, 1e9)?;
            let g = l.backward()?;
            let gr = g.get(logits.as_tensor()).unwrap();
            logits.set(&(logits.as_tensor() - (gr * 0.1)?)?)?;
        }
        let e = logits.as_tensor().exp()?;
        let p: Vec<f64> = e.broadcast_div(&e.sum_keepdim(0)?)?.to_vec1()?;
        let z: f64 = (0..4).map(|i| old[i] * (r[i] / beta).exp()).sum();
        for i in 0..4 {
            let want = old[i] * (r[i] / beta).exp() / z;
            assert!((p[i] - want).abs() < 1e-4, "token {i}: {} vs {want}", p[i]);
        }
        Ok(())
    }

    #[test]
    fn the_clip_bounds_the_log_ratios() -> Result<()> {
        let lp = t2(&[[0.0, 0.0], [-5.0, -5.0]]);
        let old = t2(&[[-5.0, -5.0], [0.0, 0.0]]);
        let mask = t2(&[[1.0, 1.0], [1.0, 1.0]]);
        // Δr̂ = β·(2·0.1 − 2·(−0.1)) = 0.4 with β = 1, target 0.
        let (l, _) = prdp_loss(&lp, &old, &mask, &[0.0, 0.0], &[0, 0], 1.0, 0.1)?;
        assert!((l.to_scalar::<f64>()? - 0.16).abs() < 1e-12);
        Ok(())
    }
}
