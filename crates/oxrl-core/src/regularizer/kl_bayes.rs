//! KL-regularised RL as Bayesian inference — "RL with KL penalties is better viewed as Bayesian
//! inference" (Korbak, Perez, Buckley, 2022).
//!
//! Maximising J(π) = E_π[r] − β·KL(π‖π₀) is minimising KL(π‖p*) for the posterior
//! p*(x) = π₀(x)·exp(r(x)/β)/Z, Z = Σ π₀ exp(r/β); the optimum is p* itself and J(p*) = β·log Z.
//! β → 0 collapses onto argmax r, β → ∞ stays at π₀. These closed forms are the oracle the
//! KL-penalised objective (the `kl_coef` machinery) is tested against on a toy categorical.

use anyhow::{ensure, Result};

/// The optimum π* ∝ π₀·exp(r/β) of E[r] − β·KL(π‖π₀) over a categorical.
pub fn kl_regularised_optimum(pi0: &[f64], r: &[f64], beta: f64) -> Result<Vec<f64>> {
    ensure!(pi0.len() == r.len() && !r.is_empty(), "prior and rewards must have the same non-zero length");
    ensure!(beta > 0.0, "β must be > 0");
    let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = pi0.iter().zip(r).map(|(&p, &x)| p * ((x - m) / beta).exp()).collect();
    let z: f64 = w.iter().sum();
    Ok(w.into_iter().map(|x| x / z).collect())
}

/// J(π) = E_π[r] − β·KL(π‖π₀).
pub fn kl_regularised_objective(pi: &[f64], pi0: &[f64], r: &[f64], beta: f64) -> f64 {
    pi.iter().zip(pi0).zip(r).map(|((&p, &q), &x)| if p > 0.0 { p * x - beta * p * (p / q).ln() } else { 0.0 }).sum()
}

/// β·log Z, the optimal value of the objective.
pub fn kl_regularised_value(pi0: &[f64], r: &[f64], beta: f64) -> f64 {
    beta * pi0.iter().zip(r).map(|(&p, &x)| p * (x / beta).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor, Var, D};

    #[test]
    fn hand_example_and_limits() -> Result<()> {
        // π₀ = [½, ½], r = [1, 0], β = 1 ⇒ π* = [e/(e+1), 1/(e+1)]
        let p = kl_regularised_optimum(&[0.5, 0.5], &[1.0, 0.0], 1.0)?;
        let e = std::f64::consts::E;
        assert!((p[0] - e / (e + 1.0)).abs() < 1e-12 && (p[0] - 0.731).abs() < 1e-3);
        let pi0 = [0.2, 0.5, 0.3];
        let r = [0.1, 1.0, 0.4];
        // β → 0: collapse onto argmax r; β → ∞: stay at the prior
        let cold = kl_regularised_optimum(&pi0, &r, 1e-3)?;
        assert!(cold[1] > 0.999);
        let hot = kl_regularised_optimum(&pi0, &r, 1e6)?;
        assert!(hot.iter().zip(&pi0).all(|(a, b)| (a - b).abs() < 1e-5));
        // J(π*) = β·log Z, and π* beats nearby distributions
        let beta = 0.5;
        let opt = kl_regularised_optimum(&pi0, &r, beta)?;
        let j = kl_regularised_objective(&opt, &pi0, &r, beta);
        assert!((j - kl_regularised_value(&pi0, &r, beta)).abs() < 1e-12);
        let nudged = [opt[0] + 0.01, opt[1] - 0.01, opt[2]];
        assert!(kl_regularised_objective(&nudged, &pi0, &r, beta) < j);
        Ok(())
    }

    /// Gradient ascent on softmax logits of the exact objective E[r] − β·KL(π‖π₀) reaches π*.
    #[test]
    fn gradient_ascent_reaches_the_posterior() -> Result<()> {
        let dev = Device::Cpu;
        let pi0 = [0.1f64, 0.6, 0.3];
        let r = [1.0f64, 0.0, 0.5];
        let beta = 0.4;
        let logits = Var::from_tensor(&Tensor::zeros(3, candle_core::DType::F64, &dev)?)?;
        let r_t = Tensor::new(&r, &dev)?;
        let logq = Tensor::new(&pi0, &dev)?.log()?;
        for _ in 0..3000 {
            let logp = log_softmax(logits.as_tensor())?;
            let p = logp.exp()?;
            let j = ((&p * &r_t)?.sum_all()? - (((&p * (&logp - &logq)?)?.sum_all()?) * beta)?)?;
            let g = j.neg()?.backward()?;
            let grad = g.get(logits.as_tensor()).unwrap();
            logits.set(&(logits.as_tensor() - (grad * 0.5)?)?)?;
        }
        let got: Vec<f64> = log_softmax(logits.as_tensor())?.exp()?.to_vec1()?;
        let want = kl_regularised_optimum(&pi0, &r, beta)?;
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        Ok(())
    }

    fn log_softmax(x: &Tensor) -> candle_core::Result<Tensor> {
        let m = x.max_keepdim(D::Minus1)?.detach();
        let z = x.broadcast_sub(&m)?;
        z.broadcast_sub(&z.exp()?.sum_keepdim(D::Minus1)?.log()?)
    }
}
