//! f-DVL value losses — "Dual RL: Unification and New Methods for Reinforcement and Imitation
//! Learning" (Sikchi et al., 2024), as in the authors' code (hari-sikchi/DVL). Each is a loss on
//! the residual x = min(Q̄1, Q̄2)(s, a) − V(s) that replaces IQL's expectile:
//!
//! - chi-square: λ·max(x + x²/4, 0) − (1 − λ)·x
//! - total variation: λ·max(x, 0) − (1 − λ)·x (its constant minimiser is the (2λ − 1)/λ quantile)
//! - reverse KL / Gumbel (XQL): e^z − z − 1 with z = min(x/λ, max_clip) (clipped above only, as
//!   the reference's `jnp.minimum`: a residual far below V keeps its gradient −(1 − e^z)/λ ≈ −1/λ
//!   that pulls V down), evaluated as e^{z − m} − z·e^{−m} − e^{−m} with m = max(max_batch z, −1)
//!   detached, which is the same loss scaled by e^{−m} and stays finite where e^z would overflow.

use anyhow::{bail, Result};
use candle_core::Tensor;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueLoss {
    /// IQL's expectile regression with τ.
    Expectile(f64),
    ChiSquare(f64),
    TotalVariation(f64),
    Gumbel {
        lambda: f64,
        max_clip: f64,
    },
}

impl ValueLoss {
    pub fn parse(kind: &str, expectile: f64, lambda: f64, max_clip: f64) -> Result<Self> {
        Ok(match kind {
            "expectile" => Self::Expectile(expectile),
            "chi_square" | "chi-square" => Self::ChiSquare(lambda),
            "total_variation" | "tv" => Self::TotalVariation(lambda),
            "gumbel" | "reverse_kl" => Self::Gumbel { lambda, max_clip },
            _ => bail!("unknown value loss {kind:?} (expectile, chi_square, total_variation, gumbel)"),
        })
    }

    /// Mean loss over residuals x = target − V.
    pub fn mean(&self, x: &Tensor) -> Result<Tensor> {
        let per = match *self {
            Self::Expectile(tau) => crate::blocks::expectile_loss(x, tau)?,
            Self::ChiSquare(l) => ((((x.sqr()? * 0.25)? + x)?.relu()? * l)? - (x * (1.0 - l))?)?,
            Self::TotalVariation(l) => ((x.relu()? * l)? - (x * (1.0 - l))?)?,
            Self::Gumbel { lambda, max_clip } => {
                let z = (x / lambda)?.minimum(max_clip)?;
                let m = (z.max_all()?.to_scalar::<f32>()? as f64).max(-1.0);
                let em = (-m).exp();
                (((z.clone() - m)?.exp()? - (z * em)?)? - em)?
            }
        };
        Ok(per.mean_all()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }
    fn val(l: ValueLoss, v: &[f32]) -> f32 {
        l.mean(&t(v)).unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn chi_square_is_zero_on_its_band_at_lambda_one_with_slope_minus_one_minus_lambda_otherwise() {
        for x in [-4.0f32, -3.0, -1.5, -0.2, 0.0] {
            assert!(val(ValueLoss::ChiSquare(1.0), &[x]).abs() < 1e-6, "{x}");
        }
        let x = Var::new(&[-2.0f32], &Device::Cpu).unwrap();
        let g = ValueLoss::ChiSquare(0.8).mean(x.as_tensor()).unwrap().backward().unwrap();
        assert!((g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap()[0] + 0.2).abs() < 1e-6);
        assert!(val(ValueLoss::ChiSquare(1.0), &[2.0]) > 0.0);
    }

    /// Minimise the mean loss of a constant V over fixed Q samples on a fine grid.
    fn argmin_v(l: ValueLoss, q: &[f32]) -> Vec<f32> {
        let grid: Vec<f32> = (0..=400).map(|i| -1.0 + i as f32 * 0.01).collect();
        let losses: Vec<f32> = grid.iter().map(|v| val(l, &q.iter().map(|x| x - v).collect::<Vec<_>>())).collect();
        let best = losses.iter().cloned().fold(f32::INFINITY, f32::min);
        grid.iter().zip(&losses).filter(|(_, l)| **l <= best + 1e-6).map(|(v, _)| *v).collect()
    }

    #[test]
    fn total_variation_fits_the_quantile() {
        // Q = {0, 1, 2, 3}, λ = 0.8: P(Q > V) = 0.25 → every V in [2, 3] is optimal
        let opt = argmin_v(ValueLoss::TotalVariation(0.8), &[0.0, 1.0, 2.0, 3.0]);
        assert!((opt.first().unwrap() - 2.0).abs() < 0.011 && (opt.last().unwrap() - 3.0).abs() < 0.011, "{opt:?}");
    }

    #[test]
    fn chi_square_fits_rise_with_lambda() {
        let q = [0.0f32, 0.5, 1.0, 2.0, 3.0];
        let fits: Vec<f32> = [0.6, 0.8, 0.95].iter().map(|&l| argmin_v(ValueLoss::ChiSquare(l), &q)[0]).collect();
        assert!(fits[0] < fits[1] && fits[1] < fits[2], "{fits:?}");
        let mean = q.iter().sum::<f32>() / 5.0;
        assert!(fits[0] > mean - 0.5 && fits[2] <= 3.0 + 1e-3, "{fits:?}");
    }

    #[test]
    fn gumbel_is_nonnegative_zero_at_zero_and_finite_when_exp_would_overflow() {
        let g = ValueLoss::Gumbel { lambda: 1.0, max_clip: 5.0 };
        assert!(val(g, &[0.0]).abs() < 1e-7);
        for x in [-3.0f32, -0.5, 0.7, 2.0] {
            // a single sample: m = max(z, −1), loss (e^z − z − 1)·e^{−m} ≥ 0
            let want = ((x as f64).exp() - x as f64 - 1.0) * (-(x as f64).max(-1.0)).exp();
            assert!((val(g, &[x]) as f64 - want).abs() < 1e-5, "{x}");
            assert!(val(g, &[x]) >= 0.0);
        }
        let big = ValueLoss::Gumbel { lambda: 0.01, max_clip: 5.0 };
        assert!(val(big, &[1e4, 3.0]).is_finite());
        assert!(val(big, &[-1e4, 3.0]).is_finite());
        // clipped above only: V far above the target (x ≪ 0) is still pulled down, V far below
        // it (x ≫ λ·max_clip) gets no gradient
        let grad = |x: f32| {
            let v = Var::new(0f32, &Device::Cpu).unwrap();
            let resid = (Tensor::new(&[x], &Device::Cpu).unwrap().broadcast_sub(v.as_tensor())).unwrap();
            let l = g.mean(&resid).unwrap();
            l.backward().unwrap().get(v.as_tensor()).map(|t| t.to_scalar::<f32>().unwrap()).unwrap_or(0.0)
        };
        assert!(grad(-50.0) > 0.5, "dL/dV at x = −50: {}", grad(-50.0));
        assert_eq!(grad(50.0), 0.0);
        assert!((88.0f32 * 2.0).exp().is_infinite(), "raw e^z would overflow in f32");
    }
}
