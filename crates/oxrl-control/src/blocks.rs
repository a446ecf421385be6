//! Building blocks shared by the control-latent techniques (specs/control-latent.md, "Shared
//! building blocks"): EMA targets live in [`crate::nn::Params::ema_from`]; here the expectile
//! loss, advantage-weighted-regression weights, the normalised L2 distance and the diagonal
//! Gaussian KL, each on tensors.
//!
//! - `expectile_loss(u, τ) = |τ − 1[u < 0]|·u²` (τ = 0.5 gives ½·MSE) — IQL, "Offline Reinforcement
//!   Learning with Implicit Q-Learning" (2022).
//! - `awr_weight(A, β, clip) = min(exp(β·A), clip)`, detached — "Advantage-Weighted Regression"
//!   (2019).
//! - `normalized_l2(a, b) = ‖a/‖a‖ − b/‖b‖‖² = 2 − 2·cos(a, b)` — SPR / BYOL.
//! - `gaussian_kl(μq, σq, μp, σp) = Σ log(σp/σq) + (σq² + (μq − μp)²)/(2σp²) − ½` over the last dim.

use anyhow::Result;
use candle_core::{Tensor, D};

/// Elementwise expectile loss of residuals `u` (u = target − prediction).
pub fn expectile_loss(u: &Tensor, tau: f64) -> Result<Tensor> {
    let neg = u.lt(0.0)?.to_dtype(u.dtype())?;
    // |τ − 1[u<0]| = τ + (1 − 2τ)·1[u<0]
    let w = ((neg * (1.0 - 2.0 * tau))? + tau)?;
    Ok((w * u.sqr()?)?)
}

/// Expectile loss of residuals `diff` whose asymmetric weight follows the sign of a separate
/// advantage: |τ − 1[adv < 0]|·diff² (GCIVL / SAW weight each value head by the sign of the
/// target-network advantage, not of its own residual). With adv = diff it is [`expectile_loss`].
pub fn expectile_loss_signed(adv: &Tensor, diff: &Tensor, tau: f64) -> Result<Tensor> {
    let neg = adv.lt(0.0)?.to_dtype(diff.dtype())?;
    let w = ((neg * (1.0 - 2.0 * tau))? + tau)?;
    Ok((w * diff.sqr()?)?)
}

/// AWR weights min(exp(β·A), clip), detached from the graph.
pub fn awr_weight(adv: &Tensor, beta: f64, clip: f64) -> Result<Tensor> {
    Ok((adv.detach() * beta)?.exp()?.clamp(0.0, clip)?)
}

/// Row-wise ‖a/‖a‖ − b/‖b‖‖² for (B × d) inputs (ε on the norms), shape (B).
pub fn normalized_l2(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let an = a.broadcast_div(&(a.sqr()?.sum_keepdim(D::Minus1)?.sqrt()? + 1e-8)?)?;
    let bn = b.broadcast_div(&(b.sqr()?.sum_keepdim(D::Minus1)?.sqrt()? + 1e-8)?)?;
    Ok((an - bn)?.sqr()?.sum(D::Minus1)?)
}

/// KL(N(μq, σq²) ‖ N(μp, σp²)) summed over the last dimension.
pub fn gaussian_kl(mu_q: &Tensor, sd_q: &Tensor, mu_p: &Tensor, sd_p: &Tensor) -> Result<Tensor> {
    let var_q = sd_q.sqr()?;
    let var_p = sd_p.sqr()?;
    let t = ((sd_p.log()? - sd_q.log()?)? + ((var_q + (mu_q - mu_p)?.sqr()?)? / (var_p * 2.0)?)?)?;
    Ok((t - 0.5)?.sum(D::Minus1)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn v1(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    }

    #[test]
    fn expectile_half_is_half_mse_and_asymmetric_otherwise() {
        let u = Tensor::new(&[-2.0f32, -0.5, 0.0, 1.0, 3.0], &Device::Cpu).unwrap();
        let half = v1(&expectile_loss(&u, 0.5).unwrap());
        for (h, x) in half.iter().zip([-2.0f32, -0.5, 0.0, 1.0, 3.0]) {
            assert!((h - 0.5 * x * x).abs() < 1e-6);
        }
        let l = v1(&expectile_loss(&u, 0.9).unwrap());
        assert!((l[0] - 0.1 * 4.0).abs() < 1e-6 && (l[4] - 0.9 * 9.0).abs() < 1e-5);
    }

    #[test]
    fn expectile_regression_finds_mean_at_half_and_near_max_at_high_tau() {
        // minimise Σ expectile(q − v) over a constant v by gradient descent
        let q = Tensor::new(&[0.0f32, 1.0, 2.0, 7.0], &Device::Cpu).unwrap();
        let fit = |tau: f64| {
            let v = Var::new(&[0.0f32], &Device::Cpu).unwrap();
            for _ in 0..4000 {
                let l = expectile_loss(&q.broadcast_sub(v.as_tensor()).unwrap(), tau).unwrap().mean_all().unwrap();
                let g = l.backward().unwrap();
                let gv = g.get(v.as_tensor()).unwrap();
                v.set(&(v.as_tensor() - (gv * 0.2).unwrap()).unwrap()).unwrap();
            }
            v1(v.as_tensor())[0]
        };
        assert!((fit(0.5) - 2.5).abs() < 1e-3);
        let hi = fit(0.99);
        assert!(hi > 6.0 && hi < 7.0, "{hi}");
    }

    #[test]
    fn signed_expectile_follows_the_advantage_sign_not_the_residual() {
        // hand-computed batch: adv signs (+, −), residuals (−1, 2), τ = 0.7
        let d = Device::Cpu;
        let adv = Tensor::new(&[0.5f32, -0.1], &d).unwrap();
        let diff = Tensor::new(&[-1.0f32, 2.0], &d).unwrap();
        let l = v1(&expectile_loss_signed(&adv, &diff, 0.7).unwrap());
        assert!((l[0] - 0.7).abs() < 1e-6 && (l[1] - 0.3 * 4.0).abs() < 1e-6, "{l:?}");
        // the residual-signed version weighs them the other way round
        let own = v1(&expectile_loss(&diff, 0.7).unwrap());
        assert!((own[0] - 0.3).abs() < 1e-6 && (own[1] - 0.7 * 4.0).abs() < 1e-6);
    }

    #[test]
    fn awr_weights_are_clipped_and_detached() {
        let a = Var::new(&[0.0f32, 1.0, 10.0], &Device::Cpu).unwrap();
        let w = awr_weight(a.as_tensor(), 3.0, 100.0).unwrap();
        let wv = v1(&w);
        assert!((wv[0] - 1.0).abs() < 1e-6 && (wv[1] - 3f32.exp()).abs() < 1e-3 && wv[2] == 100.0);
        let g = (w * a.as_tensor()).unwrap().sum_all().unwrap().backward().unwrap();
        // d/da (w·a) with w detached is w itself
        assert_eq!(v1(g.get(a.as_tensor()).unwrap()), wv);
    }

    #[test]
    fn normalized_l2_oracles() {
        let d = Device::Cpu;
        let a = Tensor::new(&[[1.0f32, 2.0, 3.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], &d).unwrap();
        let b = Tensor::new(&[[5.0f32, 10.0, 15.0], [-3.0, 0.0, 0.0], [0.0, 0.0, 7.0]], &d).unwrap();
        let l = v1(&normalized_l2(&a, &b).unwrap());
        assert!(l[0].abs() < 1e-6, "parallel at any positive scale: {}", l[0]);
        assert!((l[1] - 4.0).abs() < 1e-6, "antiparallel: {}", l[1]);
        assert!((l[2] - 2.0).abs() < 1e-6, "orthogonal: {}", l[2]);
    }

    #[test]
    fn gaussian_kl_oracles() {
        let d = Device::Cpu;
        let z = Tensor::new(&[[0.0f32, 0.0]], &d).unwrap();
        let o = Tensor::new(&[[1.0f32, 1.0]], &d).unwrap();
        assert!(v1(&gaussian_kl(&z, &o, &z, &o).unwrap())[0].abs() < 1e-7);
        assert!((v1(&gaussian_kl(&z, &o, &o, &o).unwrap())[0] - 1.0).abs() < 1e-6, "0.5 per dim × 2");
        // KL(N(0, 2²) ‖ N(0, 1)) = −log 2 + 4/2 − 1/2
        let two = Tensor::new(&[[2.0f32]], &d).unwrap();
        let kl = v1(&gaussian_kl(
            &z.narrow(1, 0, 1).unwrap(),
            &two,
            &z.narrow(1, 0, 1).unwrap(),
            &o.narrow(1, 0, 1).unwrap(),
        )
        .unwrap())[0];
        assert!((kl - (1.5 - 2f32.ln())).abs() < 1e-6);
    }
}
