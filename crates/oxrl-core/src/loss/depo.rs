//! DePO — decoupled trust regions for discrete tokens and continuous latents, with a closed-form
//! vMF KL — "HyLaR" (2026).
//!
//! ```text
//! L = PPO_dualclip(token positions; ε_low, ε_high, c)
//!   + α·PPO_dualclip(latent positions; ε_lat_low, ε_lat_high, c_lat)
//!   + β_lat·mean_latent κ·(1 − ⟨μ_θ, z⟩)
//! ```
//!
//! each PPO term a token-mean over its own mask (the latent term 0 without latent positions);
//! the latent "log-prob" is the vMF κ⟨μ_θ, z⟩ of the rollout latent z around the current hidden
//! state μ_θ (see `oxrl_lm::latent`), so the latent ratio is exp(κ⟨μ_θ − μ_old, z⟩). The token KL to
//! the reference (k3, β) stays on token positions (the RL step's KL term with the token mask).
//! CONFIRMED-CODE (EthenCheng/HyLaR core_algos.py compute_policy_loss / compute_latent_vmf_kl).

use super::aggregation::{aggregate, AggMode};
use super::ppo_clip::{ppo_clip_loss, PpoClip, PpoMetrics};
use anyhow::Result;
use candle_core::Tensor;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Depo {
    /// α: weight of the latent PPO term.
    pub alpha: f64,
    /// The latent trust region (tighter than the tokens').
    pub latent_clip: PpoClip,
    /// β_lat: weight of the vMF KL between μ_θ and the rollout latent.
    pub vmf_kl_coef: f64,
}

impl Default for Depo {
    fn default() -> Self {
        Self {
            alpha: 0.5,
            latent_clip: PpoClip { eps_low: 0.1, eps_high: 0.1, dual_clip: Some(3.0) },
            vmf_kl_coef: 0.01,
        }
    }
}

/// The latent part of DePO: α·token-mean over `lat_mask` of the latent-clipped PPO loss on the vMF
/// log-probs, plus β_lat·token-mean of `vmf_kl` `[B, R]`. Zero (with zero metrics) when the mask
/// is empty.
pub fn depo_latent_loss(
    lat_logp: &Tensor,
    lat_old: &Tensor,
    adv: &Tensor,
    lat_mask: &Tensor,
    vmf_kl: &Tensor,
    cfg: Depo,
) -> Result<(Tensor, PpoMetrics)> {
    let n = lat_mask.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
    if n == 0.0 {
        return Ok(((lat_logp.sum_all()? * 0.0)?, PpoMetrics::default()));
    }
    let (pg, m) = ppo_clip_loss(lat_logp, lat_old, adv, lat_mask, cfg.latent_clip)?;
    let pg = aggregate(&pg, lat_mask, AggMode::TokenMean, 1.0)?;
    let kl = aggregate(vmf_kl, lat_mask, AggMode::TokenMean, 1.0)?;
    Ok((((pg * cfg.alpha)? + (kl * cfg.vmf_kl_coef)?)?, m))
}

/// The whole DePO loss (token term with `token_clip` + latent term), as the RL step composes it.
#[allow(clippy::too_many_arguments)]
pub fn depo_loss(
    logp: &Tensor,
    old: &Tensor,
    adv: &Tensor,
    tok_mask: &Tensor,
    token_clip: PpoClip,
    lat_logp: &Tensor,
    lat_old: &Tensor,
    lat_mask: &Tensor,
    vmf_kl: &Tensor,
    cfg: Depo,
) -> Result<Tensor> {
    let (tok, _) = ppo_clip_loss(logp, old, adv, tok_mask, token_clip)?;
    let tok = aggregate(&tok, tok_mask, AggMode::TokenMean, 1.0)?;
    let (lat, _) = depo_latent_loss(lat_logp, lat_old, adv, lat_mask, vmf_kl, cfg)?;
    Ok((tok + lat)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn t(v: &[[f32; 3]; 2]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    #[test]
    fn without_latent_positions_it_is_ppo() -> Result<()> {
        let logp = t(&[[-1.0, -0.5, -2.0], [-0.3, -0.9, -1.1]]);
        let old = t(&[[-1.1, -0.4, -2.0], [-0.2, -1.0, -1.5]]);
        let adv = t(&[[1.0, 1.0, 1.0], [-0.5, -0.5, -0.5]]);
        let mask = t(&[[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]);
        let zero = t(&[[0.0; 3], [0.0; 3]]);
        let clip = PpoClip { eps_low: 0.2, eps_high: 0.28, dual_clip: Some(3.0) };
        let d = depo_loss(&logp, &old, &adv, &mask, clip, &logp, &old, &zero, &zero, Depo::default())?;
        let (p, _) = ppo_clip_loss(&logp, &old, &adv, &mask, clip)?;
        let p = aggregate(&p, &mask, AggMode::TokenMean, 1.0)?;
        assert!((d.to_scalar::<f32>()? - p.to_scalar::<f32>()?).abs() < 1e-7);
        Ok(())
    }

    #[test]
    fn latent_clip_is_tighter_than_the_token_clip() -> Result<()> {
        // One token position with ratio 1.15 and one latent position with ratio 1.15, A = +1:
        // the token clip 0.28 still trains, the latent clip 0.1 gives zero gradient.
        let dev = Device::Cpu;
        let r = 1.15f32.ln();
        let lp = Var::from_tensor(&Tensor::new(&[[r, r]], &dev)?)?;
        let old = Tensor::new(&[[0f32, 0.0]], &dev)?;
        let adv = Tensor::new(&[[1f32, 1.0]], &dev)?;
        let tok_mask = Tensor::new(&[[1f32, 0.0]], &dev)?;
        let lat_mask = Tensor::new(&[[0f32, 1.0]], &dev)?;
        let kl = Tensor::new(&[[0f32, 0.0]], &dev)?;
        let clip = PpoClip { eps_low: 0.2, eps_high: 0.28, dual_clip: Some(3.0) };
        let loss = depo_loss(
            lp.as_tensor(),
            &old,
            &adv,
            &tok_mask,
            clip,
            lp.as_tensor(),
            &old,
            &lat_mask,
            &kl,
            Depo::default(),
        )?;
        let g = loss.backward()?.get(lp.as_tensor()).unwrap().to_vec2::<f32>()?;
        assert!(g[0][0] < -1.0, "token ratio 1.15 inside [0.8, 1.28]: gradient −A·ρ = −1.15 ({})", g[0][0]);
        assert_eq!(g[0][1], 0.0, "latent ratio 1.15 outside [0.9, 1.1]: no gradient");
        // Inside the latent region the latent term trains with weight α.
        let r2 = 1.05f32.ln();
        let lp2 = Var::from_tensor(&Tensor::new(&[[r2, r2]], &dev)?)?;
        let loss = depo_loss(
            lp2.as_tensor(),
            &old,
            &adv,
            &tok_mask,
            clip,
            lp2.as_tensor(),
            &old,
            &lat_mask,
            &kl,
            Depo::default(),
        )?;
        let g = loss.backward()?.get(lp2.as_tensor()).unwrap().to_vec2::<f32>()?;
        assert!((g[0][1] + 0.5 * 1.05).abs() < 1e-5, "α·(−A·ρ) = −0.525 ({})", g[0][1]);
        Ok(())
    }

    #[test]
    fn vmf_kl_term_is_weighted_token_mean() -> Result<()> {
        let dev = Device::Cpu;
        let z = Tensor::new(&[[0f32, 0.0, 0.0]], &dev)?;
        let lat_mask = Tensor::new(&[[1f32, 1.0, 0.0]], &dev)?;
        let kl = Tensor::new(&[[0.2f32, 0.4, 9.0]], &dev)?;
        let cfg = Depo { alpha: 0.0, vmf_kl_coef: 0.5, ..Default::default() };
        let (l, _) = depo_latent_loss(&z, &z, &z, &lat_mask, &kl, cfg)?;
        assert!((l.to_scalar::<f32>()? - 0.15).abs() < 1e-6, "0.5·mean(0.2, 0.4)");
        Ok(())
    }
}
