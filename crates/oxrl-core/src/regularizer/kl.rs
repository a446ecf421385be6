//! KL estimators k1 / k2 / k3 / abs and the straight-through variants k1+ / k3+ — John Schulman,
//! "Approximating KL Divergence" (2020), as used for the KL-to-reference term of RLHF/GRPO.
//!
//! With Δ = logp − logp_ref on tokens sampled from the policy: k1 = Δ; k2 = ½Δ²;
//! k3 = exp(−Δ) + Δ − 1 (−Δ clamped to [−20, 20], result to [−10, 10]); abs = |Δ|;
//! k1+/k3+ = k2 − sg(k2) + sg(k1/k3): the value of k1/k3 with the (unbiased) gradient of k2.
//! CONFIRMED-CODE (verl kl_penalty / kl_penalty_forward).

use anyhow::Result;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KlEstimator {
    #[serde(rename = "k1")]
    K1,
    #[serde(rename = "k2")]
    K2,
    #[serde(rename = "k3")]
    K3,
    #[serde(rename = "abs")]
    Abs,
    #[serde(rename = "k1+")]
    K1Plus,
    #[serde(rename = "k3+")]
    K3Plus,
}

fn k3(delta: &Tensor) -> Result<Tensor> {
    let neg = delta.neg()?.clamp(-20.0, 20.0)?;
    Ok(((neg.exp()? + delta)? - 1.0)?.clamp(-10.0, 10.0)?)
}

/// Per-token KL estimate `[B, R]` from per-token log-probs of the policy and the reference.
pub fn kl_estimate(logp: &Tensor, logp_ref: &Tensor, est: KlEstimator) -> Result<Tensor> {
    let delta = (logp - logp_ref)?;
    let k2 = || -> Result<Tensor> { Ok((delta.sqr()? * 0.5)?) };
    let straight_through = |value: Tensor| -> Result<Tensor> {
        let k2 = k2()?;
        Ok(((&k2 - k2.detach())? + value.detach())?)
    };
    match est {
        KlEstimator::K1 => Ok(delta),
        KlEstimator::K2 => k2(),
        KlEstimator::K3 => k3(&delta),
        KlEstimator::Abs => Ok(delta.abs()?),
        KlEstimator::K1Plus => straight_through(delta.clone()),
        KlEstimator::K3Plus => straight_through(k3(&delta)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::Rng;

    fn val_grad(delta: f64, est: KlEstimator) -> (f64, f64) {
        let d = Device::Cpu;
        let lp = Var::from_tensor(&Tensor::new(&[[delta]], &d).unwrap()).unwrap();
        let r = Tensor::new(&[[0.0f64]], &d).unwrap();
        let k = kl_estimate(lp.as_tensor(), &r, est).unwrap().sum_all().unwrap();
        let g = k.backward().unwrap().get(lp.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()[0];
        (k.to_scalar::<f64>().unwrap(), g)
    }

    #[test]
    fn hand_values_and_gradients() {
        assert!((val_grad(0.5, KlEstimator::K1).0 - 0.5).abs() < 1e-12);
        assert!((val_grad(0.5, KlEstimator::K2).0 - 0.125).abs() < 1e-12);
        assert!((val_grad(0.5, KlEstimator::K3).0 - 0.10653).abs() < 1e-5);
        assert!((val_grad(-0.5, KlEstimator::Abs).0 - 0.5).abs() < 1e-12);
        for est in [
            KlEstimator::K1,
            KlEstimator::K2,
            KlEstimator::K3,
            KlEstimator::Abs,
            KlEstimator::K1Plus,
            KlEstimator::K3Plus,
        ] {
            assert_eq!(val_grad(0.0, est).0, 0.0, "{est:?} at Δ = 0");
        }
        // straight-through: value of k1/k3, gradient of k2 (= Δ)
        let (v, g) = val_grad(0.5, KlEstimator::K3Plus);
        assert!((v - 0.10653).abs() < 1e-5 && (g - 0.5).abs() < 1e-12);
        let (v, g) = val_grad(0.5, KlEstimator::K1Plus);
        assert!((v - 0.5).abs() < 1e-12 && (g - 0.5).abs() < 1e-12);
        // k3 ≥ 0 and ≈ ½Δ² for small Δ
        for d in [-3.0, -0.5, 0.1, 2.0, 30.0] {
            assert!(val_grad(d, KlEstimator::K3).0 >= 0.0);
        }
        assert!((val_grad(0.01, KlEstimator::K3).0 - 0.5e-4).abs() < 1e-6);
        assert!(val_grad(-40.0, KlEstimator::K3).0 <= 10.0);
    }

    #[test]
    fn monte_carlo_means_approach_exact_kl() {
        // π and ref over 4 symbols; samples from π.
        let pi = [0.5f64, 0.25, 0.15, 0.1];
        let rf = [0.25f64, 0.25, 0.25, 0.25];
        let exact: f64 = pi.iter().zip(&rf).map(|(p, q)| p * (p / q).ln()).sum();
        let mut rng = crate::seed::rng(0, "kl-mc", 0);
        let n = 200_000;
        let mut deltas = Vec::with_capacity(n);
        for _ in 0..n {
            let u: f64 = rng.random();
            let mut acc = 0.0;
            let mut k = 3;
            for (i, p) in pi.iter().enumerate() {
                acc += p;
                if u < acc {
                    k = i;
                    break;
                }
            }
            deltas.push(pi[k].ln() - rf[k].ln());
        }
        let d = Device::Cpu;
        let lp = Tensor::from_vec(deltas, (1, n), &d).unwrap();
        let zero = lp.zeros_like().unwrap();
        for est in [KlEstimator::K1, KlEstimator::K3] {
            let m = kl_estimate(&lp, &zero, est).unwrap().mean_all().unwrap().to_scalar::<f64>().unwrap();
            assert!((m - exact).abs() < 0.01 * exact.max(0.1), "{est:?}: {m} vs exact {exact}");
        }
        // k2 is biased
        let m2 = kl_estimate(&lp, &zero, KlEstimator::K2).unwrap().mean_all().unwrap().to_scalar::<f64>().unwrap();
        assert!((m2 - exact).abs() > 0.003);
    }
}
