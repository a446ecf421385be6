//! PPO clipped surrogate with decoupled bounds (clip-higher) and dual clip — "Proximal Policy
//! Optimization Algorithms" (2017); dual clip from "Mastering Complex Control in MOBA Games with Deep
//! Reinforcement Learning" (2019); clip-higher from DAPO (2025).
//!
//! ρ = exp(clamp(logp − logp_old, −20, 20)); L1 = −A·ρ; L2 = −A·clip(ρ, 1−ε_low, 1+ε_high);
//! Lclip = max(L1, L2); with dual clip c > 1, tokens with A < 0 use min(Lclip, −A·c).
//! Metrics: clipfrac = mean[L2 > L1]; clipfrac_lower = mean[(Lclip > −A·c) & A < 0];
//! approx_kl = mean(logp_old − logp). CONFIRMED-CODE (verl compute_policy_loss_vanilla).

use anyhow::Result;
use candle_core::Tensor;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PpoClip {
    pub eps_low: f64,
    pub eps_high: f64,
    /// Dual-clip constant c > 1, or None.
    pub dual_clip: Option<f64>,
}

impl Default for PpoClip {
    fn default() -> Self {
        Self { eps_low: 0.2, eps_high: 0.2, dual_clip: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PpoMetrics {
    pub clipfrac: f64,
    pub clipfrac_lower: f64,
    pub approx_kl: f64,
    pub ratio_mean: f64,
}

fn masked_mean(x: &Tensor, mask: &Tensor) -> Result<f64> {
    let n = mask.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
    let s = (x.to_dtype(mask.dtype())? * mask)?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
    Ok(if n > 0.0 { s / n } else { 0.0 })
}

/// Per-token PPO loss `[B, R]` (unmasked; aggregate with a mode) and its metrics.
pub fn ppo_clip_loss(
    logp: &Tensor,
    logp_old: &Tensor,
    adv: &Tensor,
    mask: &Tensor,
    cfg: PpoClip,
) -> Result<(Tensor, PpoMetrics)> {
    let log_ratio = (logp - logp_old)?.clamp(-20.0, 20.0)?;
    let ratio = log_ratio.exp()?;
    let neg_adv = adv.neg()?;
    let l1 = (&neg_adv * &ratio)?;
    let l2 = (&neg_adv * ratio.clamp(1.0 - cfg.eps_low, 1.0 + cfg.eps_high)?)?;
    let lclip = l1.maximum(&l2)?;
    let clipped_hi = l2.gt(&l1)?;
    let (loss, lower) = match cfg.dual_clip {
        Some(c) => {
            let cap = (&neg_adv * c)?;
            let neg = adv.lt(0.0)?;
            let dual = lclip.minimum(&cap)?;
            let lower = (lclip.gt(&cap)? * &neg)?;
            (neg.where_cond(&dual, &lclip)?, Some(lower))
        }
        None => (lclip, None),
    };
    let metrics = PpoMetrics {
        clipfrac: masked_mean(&clipped_hi, mask)?,
        clipfrac_lower: match lower {
            Some(l) => masked_mean(&l, mask)?,
            None => 0.0,
        },
        approx_kl: masked_mean(&(logp_old - logp)?.detach(), mask)?,
        ratio_mean: masked_mean(&ratio.detach(), mask)?,
    };
    Ok((loss, metrics))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn scalar_case(a: f64, ratio: f64, cfg: PpoClip) -> (f64, f64) {
        let dev = Device::Cpu;
        let logp = Var::from_tensor(&Tensor::new(&[[ratio.ln()]], &dev).unwrap()).unwrap();
        let old = Tensor::new(&[[0.0f64]], &dev).unwrap();
        let adv = Tensor::new(&[[a]], &dev).unwrap();
        let mask = Tensor::new(&[[1.0f64]], &dev).unwrap();
        let (l, _) = ppo_clip_loss(logp.as_tensor(), &old, &adv, &mask, cfg).unwrap();
        let v = l.sum_all().unwrap().to_scalar::<f64>().unwrap();
        let g = l.sum_all().unwrap().backward().unwrap();
        let gv = g.get(logp.as_tensor()).map(|t| t.flatten_all().unwrap().to_vec1::<f64>().unwrap()[0]).unwrap_or(0.0);
        (v, gv)
    }

    #[test]
    fn oracles() {
        let base = PpoClip::default();
        // hand example: A = 2, ρ = 1.5 → −2.4
        assert!((scalar_case(2.0, 1.5, base).0 + 2.4).abs() < 1e-12);
        // clipped regions have zero gradient
        assert_eq!(scalar_case(1.0, 1.3, base).1, 0.0);
        assert_eq!(scalar_case(-1.0, 0.7, base).1, 0.0);
        assert!(scalar_case(1.0, 1.1, base).1 != 0.0);
        // clip-higher: ρ = 1.25 still has gradient with ε_high = 0.28, ρ = 1.3 does not
        let dapo = PpoClip { eps_low: 0.2, eps_high: 0.28, dual_clip: None };
        assert!(scalar_case(1.0, 1.25, dapo).1 != 0.0);
        assert_eq!(scalar_case(1.0, 1.3, dapo).1, 0.0);
        // dual clip: A = −1, ρ = 10, c = 3 → loss 3, zero gradient
        let dual = PpoClip { dual_clip: Some(3.0), ..base };
        let (v, g) = scalar_case(-1.0, 10.0, dual);
        assert!((v - 3.0).abs() < 1e-12 && g == 0.0);
        assert!((scalar_case(-1.0, 10.0, base).0 - 10.0).abs() < 1e-9);
    }

    #[test]
    fn ratio_one_gives_vanilla_policy_gradient() {
        // At ρ = 1 the loss is −mean(A) and ∂L/∂logp = −A (per token, before aggregation).
        let dev = Device::Cpu;
        let lp = [[-0.5f64, -1.2, -0.3], [-2.0, -0.1, -0.7]];
        let logp = Var::from_tensor(&Tensor::new(&lp, &dev).unwrap()).unwrap();
        let old = Tensor::new(&lp, &dev).unwrap();
        let a = [[0.5f64, 0.5, 0.5], [-1.5, -1.5, 0.0]];
        let adv = Tensor::new(&a, &dev).unwrap();
        let mask = Tensor::new(&[[1.0f64, 1.0, 1.0], [1.0, 1.0, 0.0]], &dev).unwrap();
        let (l, m) =
            ppo_clip_loss(logp.as_tensor(), &old, &adv, &mask, PpoClip { dual_clip: Some(3.0), ..Default::default() })
                .unwrap();
        let total = (l * &mask).unwrap().sum_all().unwrap();
        assert!((total.to_scalar::<f64>().unwrap() - (-(0.5 * 3.0) + 3.0)).abs() < 1e-12);
        let g = total.backward().unwrap().get(logp.as_tensor()).unwrap().to_vec2::<f64>().unwrap();
        for i in 0..2 {
            for j in 0..3 {
                let want = if i == 1 && j == 2 { 0.0 } else { -a[i][j] };
                assert!((g[i][j] - want).abs() < 1e-12, "{g:?}");
            }
        }
        assert_eq!((m.clipfrac, m.approx_kl), (0.0, 0.0));
        assert!((m.ratio_mean - 1.0).abs() < 1e-12);
    }
}
