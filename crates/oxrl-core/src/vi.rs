//! Programmable variational inference — "Probabilistic Programming with Programmable Variational
//! Inference" (genjax.vi, 2024), as a small API: an expectation E_{z~q}[f(z)] is turned into a
//! *surrogate* scalar whose value estimates it and whose gradient (w.r.t. q's parameters and f's)
//! is unbiased, by an estimator chosen per random choice:
//!
//! - REINFORCE: z ~ q detached; surrogate f(z) + sg(f(z) − b)·(log q(z) − sg(log q(z))) — value
//!   f(z), gradient ∇f + (f − b)∇log q (the baseline b reduces variance, never biases);
//! - reparameterisation: z = g(λ, ε), ε from a fixed base; surrogate f(g(λ, ε));
//! - enumeration (finite support): Σ_z q(z)·f(z), exact.
//!
//! Objectives are ordinary functions of such expectations: the ELBO E_q[log p(x, z) − log q(z)]
//! and IWAE_K = E[log (1/K) Σ_k exp(log p(x, z_k) − log q(z_k))] (IWAE_1 = ELBO, non-decreasing
//! in K, ≤ log p(x)). RL is the special case REINFORCE on trajectories; KL-regularised RL is the
//! ELBO with log p = R/β + log π_ref.
//! From the abstract and the standard VI identities (genjax's code not inspected).

use anyhow::{bail, Result};
use candle_core::{Tensor, D};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// A variational family over one random choice (a batch of `n` independent draws).
pub trait Dist {
    /// `n` draws `[n]`, detached (for REINFORCE).
    fn sample(&self, n: usize, rng: &mut dyn rand::RngCore) -> Result<Tensor>;
    /// `n` reparameterised draws `[n]` carrying the graph to the parameters.
    fn rsample(&self, _n: usize, _rng: &mut dyn rand::RngCore) -> Result<Tensor> {
        bail!("this distribution has no reparameterisation")
    }
    /// log q(z) elementwise.
    fn log_prob(&self, z: &Tensor) -> Result<Tensor>;
    /// The finite support `[m]`, for enumeration.
    fn support(&self) -> Result<Tensor> {
        bail!("this distribution has no finite support")
    }
}

/// N(μ, σ²) with μ and log σ scalar tensors (trainable or not).
pub struct Normal {
    pub mu: Tensor,
    pub log_sigma: Tensor,
}

impl Dist for Normal {
    fn sample(&self, n: usize, rng: &mut dyn rand::RngCore) -> Result<Tensor> {
        Ok(self.rsample(n, rng)?.detach())
    }
    fn rsample(&self, n: usize, rng: &mut dyn rand::RngCore) -> Result<Tensor> {
        let eps: Vec<f64> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
        let eps = Tensor::new(eps, self.mu.device())?.to_dtype(self.mu.dtype())?;
        Ok(eps.broadcast_mul(&self.log_sigma.exp()?)?.broadcast_add(&self.mu)?)
    }
    fn log_prob(&self, z: &Tensor) -> Result<Tensor> {
        let s = self.log_sigma.exp()?;
        let u = z.broadcast_sub(&self.mu)?.broadcast_div(&s)?;
        let c = 0.5 * (2.0 * std::f64::consts::PI).ln();
        Ok(((u.sqr()? * -0.5)? - c)?.broadcast_sub(&self.log_sigma)?)
    }
}

/// Bernoulli(p) on {0, 1} with p a scalar tensor in (0, 1).
pub struct Bernoulli {
    pub p: Tensor,
}

impl Dist for Bernoulli {
    fn sample(&self, n: usize, rng: &mut dyn rand::RngCore) -> Result<Tensor> {
        let p = self.p.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        let z: Vec<f64> = (0..n).map(|_| (rng.random::<f64>() < p) as u8 as f64).collect();
        Ok(Tensor::new(z, self.p.device())?.to_dtype(self.p.dtype())?)
    }
    fn log_prob(&self, z: &Tensor) -> Result<Tensor> {
        let one_minus = self.p.affine(-1.0, 1.0)?;
        Ok((z.broadcast_mul(&self.p.log()?)? + z.affine(-1.0, 1.0)?.broadcast_mul(&one_minus.log()?)?)?)
    }
    fn support(&self) -> Result<Tensor> {
        Ok(Tensor::new(&[0.0f64, 1.0], self.p.device())?.to_dtype(self.p.dtype())?)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Estimator {
    /// Score function with a constant baseline.
    Reinforce {
        baseline: f64,
    },
    Reparam,
    Enumerate,
}

/// The surrogate of E_{z~q}[f(z)] over `n` draws (ignored by enumeration); `f` maps `[n]` draws
/// to `[n]` values and may depend on parameters itself.
pub fn expect(
    f: &dyn Fn(&Tensor) -> Result<Tensor>,
    q: &dyn Dist,
    est: Estimator,
    n: usize,
    rng: &mut dyn rand::RngCore,
) -> Result<Tensor> {
    Ok(match est {
        Estimator::Reinforce { baseline } => {
            let z = q.sample(n, rng)?;
            let fz = f(&z)?;
            let lq = q.log_prob(&z)?;
            let score = (&lq - lq.detach())?;
            (&fz + ((fz.detach() - baseline)? * score)?)?.mean_all()?
        }
        Estimator::Reparam => f(&q.rsample(n, rng)?)?.mean_all()?,
        Estimator::Enumerate => {
            let z = q.support()?;
            (q.log_prob(&z)?.exp()? * f(&z)?)?.sum_all()?
        }
    })
}

/// ELBO surrogate: E_q[log p(x, z) − log q(z)] with `log_joint(z)` = log p(x, z).
pub fn elbo(
    log_joint: &dyn Fn(&Tensor) -> Result<Tensor>,
    q: &dyn Dist,
    est: Estimator,
    n: usize,
    rng: &mut dyn rand::RngCore,
) -> Result<Tensor> {
    expect(&|z| Ok((log_joint(z)? - q.log_prob(z)?)?), q, est, n, rng)
}

/// IWAE_K with reparameterised draws, averaged over `n` independent K-sets.
pub fn iwae(
    log_joint: &dyn Fn(&Tensor) -> Result<Tensor>,
    q: &dyn Dist,
    k: usize,
    n: usize,
    rng: &mut dyn rand::RngCore,
) -> Result<Tensor> {
    let z = q.rsample(n * k, rng)?;
    let w = (log_joint(&z)? - q.log_prob(&z)?)?.reshape((n, k))?;
    let m = w.max_keepdim(D::Minus1)?.detach();
    let lse = (w.broadcast_sub(&m)?.exp()?.sum_keepdim(D::Minus1)?.log()? + m)?;
    Ok(((lse - (k as f64).ln())?).mean_all()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::SeedableRng;

    fn scalar(x: f64) -> Var {
        Var::new(x, &Device::Cpu).unwrap()
    }

    /// One gradient estimate of d/dμ E[z²] under N(μ, 1).
    fn grad_estimate(est: Estimator, mu: f64, rng: &mut rand_chacha::ChaCha8Rng) -> f64 {
        let m = scalar(mu);
        let q = Normal { mu: m.as_tensor().clone(), log_sigma: Tensor::new(0.0f64, &Device::Cpu).unwrap() };
        let s = expect(&|z| Ok(z.sqr()?), &q, est, 1, rng).unwrap();
        s.backward().unwrap().get(m.as_tensor()).unwrap().to_scalar::<f64>().unwrap()
    }

    #[test]
    fn reinforce_and_reparam_are_unbiased_and_reparam_has_lower_variance() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mu = 0.7;
        let stats = |est: Estimator, rng: &mut rand_chacha::ChaCha8Rng| {
            let g: Vec<f64> = (0..20000).map(|_| grad_estimate(est, mu, rng)).collect();
            let m = g.iter().sum::<f64>() / g.len() as f64;
            let v = g.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / g.len() as f64;
            (m, v, (v / g.len() as f64).sqrt())
        };
        let (mr, vr, ser) = stats(Estimator::Reinforce { baseline: 0.0 }, &mut rng);
        let (mp, vp, sep) = stats(Estimator::Reparam, &mut rng);
        assert!((mr - 2.0 * mu).abs() < 4.0 * ser, "REINFORCE {mr} vs {}", 2.0 * mu);
        assert!((mp - 2.0 * mu).abs() < 4.0 * sep, "reparam {mp} vs {}", 2.0 * mu);
        assert!(vp < vr, "reparam variance {vp} < REINFORCE {vr}");
        // a baseline keeps REINFORCE unbiased
        let (mb, _, seb) = stats(Estimator::Reinforce { baseline: 1.0 + mu * mu }, &mut rng);
        assert!((mb - 2.0 * mu).abs() < 4.0 * seb);
    }

    #[test]
    fn enumeration_is_exact() {
        let p = scalar(0.3);
        let q = Bernoulli { p: p.as_tensor().clone() };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let s = expect(&|z| Ok(z.clone()), &q, Estimator::Enumerate, 0, &mut rng).unwrap();
        assert!((s.to_scalar::<f64>().unwrap() - 0.3).abs() < 1e-12);
        let g = s.backward().unwrap().get(p.as_tensor()).unwrap().to_scalar::<f64>().unwrap();
        assert!((g - 1.0).abs() < 1e-12, "d/dp E[z] = 1 exactly: {g}");
        assert!(q.rsample(1, &mut rng).is_err(), "no reparameterisation for a Bernoulli");
    }

    #[test]
    fn iwae_bounds_on_the_conjugate_gaussian() -> Result<()> {
        // z ~ N(0, 1), x | z ~ N(z, 1): log p(x) = log N(x; 0, 2); q = N(0.3, 0.8²) (not the posterior)
        let x = 1.2f64;
        let c = 0.5 * (2.0 * std::f64::consts::PI).ln();
        let log_joint = |z: &Tensor| -> Result<Tensor> {
            let prior = ((z.sqr()? * -0.5)? - c)?;
            let lik = (((z.affine(-1.0, x))?.sqr()? * -0.5)? - c)?;
            Ok((prior + lik)?)
        };
        let log_px = -0.5 * x * x / 2.0 - 0.5 * (2.0 * std::f64::consts::PI * 2.0).ln();
        let q = Normal { mu: Tensor::new(0.3f64, &Device::Cpu)?, log_sigma: Tensor::new(0.8f64.ln(), &Device::Cpu)? };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let n = 4000;
        let e = elbo(&log_joint, &q, Estimator::Reparam, n, &mut rng)?.to_scalar::<f64>()?;
        let mut prev = f64::NEG_INFINITY;
        for k in [1usize, 4, 16, 64] {
            let v = iwae(&log_joint, &q, k, n, &mut rng)?.to_scalar::<f64>()?;
            assert!(v <= log_px + 0.01, "IWAE_{k} {v} ≤ log p(x) {log_px}");
            assert!(v >= prev - 0.01, "non-decreasing in K: {prev} -> {v}");
            if k == 1 {
                assert!((v - e).abs() < 0.05, "IWAE_1 ≈ ELBO: {v} vs {e}");
            }
            prev = v;
        }
        assert!(log_px - prev < 0.01, "IWAE_64 approaches log p(x): {prev} vs {log_px}");
        assert!(log_px - e > 0.02, "the ELBO of a non-posterior q is strictly below");
        // ELBO gradient by REINFORCE and by reparameterisation agree in expectation
        let mu = Var::new(0.3f64, &Device::Cpu)?;
        let g = |est| -> Result<f64> {
            let q = Normal { mu: mu.as_tensor().clone(), log_sigma: Tensor::new(0.8f64.ln(), &Device::Cpu)? };
            let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(9);
            let s = elbo(&log_joint, &q, est, 40000, &mut r)?;
            Ok(s.backward()?.get(mu.as_tensor()).unwrap().to_scalar::<f64>()?)
        };
        // analytic: d/dμ ELBO = d/dμ E[−z²/2 − (x − z)²/2] = −μ + (x − μ) = x − 2μ
        let want = x - 2.0 * 0.3;
        assert!((g(Estimator::Reparam)? - want).abs() < 0.02);
        assert!((g(Estimator::Reinforce { baseline: 0.0 })? - want).abs() < 0.1);
        Ok(())
    }
}
