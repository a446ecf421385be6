//! Action distributions on tensors: categorical over logits, diagonal Gaussian, and SAC's
//! tanh-squashed Gaussian with its change-of-variables correction. Sampling draws its noise from
//! the caller's seeded RNG on the host, so runs are reproducible.

use anyhow::Result;
use candle_core::{Device, Tensor, D};
use oxrl_core::seed::Rng;
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};

/// log-softmax of (B × n) logits.
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    Ok(candle_core::Tensor::log_sum_exp(logits, D::Minus1).and_then(|lse| logits.broadcast_sub(&lse.unsqueeze(1)?))?)
}

/// σ(x) = 1 / (1 + e^{−x}), elementwise.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok((x.neg()?.exp()? + 1.0)?.recip()?)
}

/// Binary cross-entropy of logits against targets y ∈ [0, 1], mean over the entries, stable for
/// any logit: max(l, 0) − l·y + log(1 + e^{−|l|}) = −[y·log σ(l) + (1 − y)·log σ(−l)].
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let l = ((logits.relu()? - (logits * targets)?)? + (logits.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    Ok(l.mean_all()?)
}

/// Log-probabilities of chosen actions (B) under (B × n) logits.
pub fn categorical_log_prob(logits: &Tensor, actions: &Tensor) -> Result<Tensor> {
    let lp = log_softmax(logits)?;
    Ok(lp.gather(&actions.unsqueeze(1)?, 1)?.squeeze(1)?)
}

/// Entropy (B) of categorical distributions with (B × n) logits.
pub fn categorical_entropy(logits: &Tensor) -> Result<Tensor> {
    let lp = log_softmax(logits)?;
    Ok((lp.exp()? * &lp)?.sum(D::Minus1)?.neg()?)
}

/// Sample one action per row of (B × n) logits.
pub fn categorical_sample(logits: &Tensor, rng: &mut Rng) -> Result<Vec<usize>> {
    let lp = log_softmax(logits)?.to_vec2::<f32>()?;
    Ok(lp
        .iter()
        .map(|row| {
            let u: f64 = rng.random();
            let mut acc = 0.0;
            for (i, l) in row.iter().enumerate() {
                acc += (*l as f64).exp();
                if u < acc {
                    return i;
                }
            }
            row.len() - 1
        })
        .collect())
}

/// Row-wise argmax; ties go to the lowest index.
pub fn argmax_rows(x: &Tensor) -> Result<Vec<usize>> {
    Ok(x.to_vec2::<f32>()?
        .iter()
        .map(|r| {
            let mut best = 0;
            for (i, v) in r.iter().enumerate() {
                if *v > r[best] {
                    best = i;
                }
            }
            best
        })
        .collect())
}

/// Standard normal noise of a given shape.
pub fn normal_noise(shape: (usize, usize), rng: &mut Rng, dev: &Device) -> Result<Tensor> {
    let v: Vec<f32> = (0..shape.0 * shape.1).map(|_| StandardNormal.sample(rng)).collect();
    Ok(Tensor::from_vec(v, shape, dev)?)
}

const LOG_2PI: f64 = 1.8378770664093453;

/// Log-density (B) of actions under a diagonal Gaussian (mean B × d, log_std B × d or 1 × d).
pub fn gaussian_log_prob(mean: &Tensor, log_std: &Tensor, x: &Tensor) -> Result<Tensor> {
    let z = (x - mean)?.broadcast_div(&log_std.exp()?)?;
    let per = ((z.sqr()? * -0.5)?.broadcast_sub(log_std)? - 0.5 * LOG_2PI)?;
    Ok(per.sum(D::Minus1)?)
}

/// Entropy (B) of a diagonal Gaussian: Σ (½·log 2πe + log σ).
pub fn gaussian_entropy(log_std: &Tensor, batch: usize) -> Result<Tensor> {
    let per = (log_std + 0.5 * (LOG_2PI + 1.0))?.sum(D::Minus1)?;
    Ok(if per.rank() == 0 || per.dims1()? != batch { per.reshape(())?.broadcast_as(batch)?.contiguous()? } else { per })
}

/// SAC's squashed sample: u = μ + σ·ε, a = tanh(u), log π(a) = log N(u) − Σ log(1 − tanh(u)² + ε).
/// Returns (a, log π(a)); gradients flow through μ and σ (reparameterisation).
pub fn tanh_gaussian_sample(mean: &Tensor, log_std: &Tensor, noise: &Tensor) -> Result<(Tensor, Tensor)> {
    let u = (mean + (log_std.exp()? * noise)?)?;
    let a = u.tanh()?;
    let logp = (gaussian_log_prob(mean, log_std, &u)? - tanh_correction(&a)?)?;
    Ok((a, logp))
}

/// Σ log(1 − a² + 1e-6) over the last dimension for squashed actions a = tanh(u).
pub fn tanh_correction(a: &Tensor) -> Result<Tensor> {
    Ok(((a.sqr()?.neg()? + (1.0 + 1e-6))?.log()?).sum(D::Minus1)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn categorical_log_prob_entropy_and_sampling_frequencies() {
        let d = Device::Cpu;
        let logits = Tensor::new(&[[0.0f32, (3f32).ln()], [0.0, 0.0]], &d).unwrap();
        let lp =
            categorical_log_prob(&logits, &Tensor::new(&[1u32, 0], &d).unwrap()).unwrap().to_vec1::<f32>().unwrap();
        assert!((lp[0] - 0.75f32.ln()).abs() < 1e-6 && (lp[1] - 0.5f32.ln()).abs() < 1e-6);
        let h = categorical_entropy(&logits).unwrap().to_vec1::<f32>().unwrap();
        assert!((h[1] - 2f32.ln()).abs() < 1e-6);
        assert!((h[0] + 0.25 * 0.25f32.ln() + 0.75 * 0.75f32.ln()).abs() < 1e-6);
        let mut rng = Rng::seed_from_u64(0);
        let one = logits.narrow(0, 0, 1).unwrap();
        let n = 4000;
        let ones = (0..n).filter(|_| categorical_sample(&one, &mut rng).unwrap()[0] == 1).count();
        assert!((ones as f64 / n as f64 - 0.75).abs() < 0.03);
        assert_eq!(argmax_rows(&Tensor::new(&[[1.0f32, 1.0, 0.0]], &d).unwrap()).unwrap(), vec![0]);
    }

    #[test]
    fn gaussian_log_prob_matches_closed_form() {
        let d = Device::Cpu;
        let mean = Tensor::new(&[[1.0f32, -1.0]], &d).unwrap();
        let log_std = Tensor::new(&[[0.0f32, (2f32).ln()]], &d).unwrap();
        let x = Tensor::new(&[[2.0f32, -1.0]], &d).unwrap();
        let lp = gaussian_log_prob(&mean, &log_std, &x).unwrap().to_vec1::<f32>().unwrap()[0];
        let want = (-0.5 - 0.5 * LOG_2PI) + (-(2f64).ln() - 0.5 * LOG_2PI);
        assert!((lp as f64 - want).abs() < 1e-5);
        let h = gaussian_entropy(&log_std, 1).unwrap().to_vec1::<f32>().unwrap()[0];
        assert!((h as f64 - (LOG_2PI + 1.0 + 2f64.ln())).abs() < 1e-5);
    }

    #[test]
    fn tanh_correction_is_the_log_jacobian() {
        // log π(a) = log N(u) − log|da/du|, da/du = 1 − tanh²(u)
        let d = Device::Cpu;
        let mean = Tensor::new(&[[0.3f32]], &d).unwrap();
        let log_std = Tensor::new(&[[-0.5f32]], &d).unwrap();
        let eps = Tensor::new(&[[0.7f32]], &d).unwrap();
        let (a, lp) = tanh_gaussian_sample(&mean, &log_std, &eps).unwrap();
        let u = 0.3f64 + (-0.5f64).exp() * 0.7;
        assert!((a.to_vec2::<f32>().unwrap()[0][0] as f64 - u.tanh()).abs() < 1e-6);
        let want = -0.5 * 0.49 - (-0.5) - 0.5 * LOG_2PI - (1.0 - u.tanh().powi(2) + 1e-6).ln();
        assert!((lp.to_vec1::<f32>().unwrap()[0] as f64 - want).abs() < 1e-5);
    }
}
