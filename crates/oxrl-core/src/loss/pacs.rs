//! PACS — "Implicit Actor Critic Coupling via a Supervised Learning Framework for RLVR" (2025).
//!
//! Replaces the PPO surrogate with a supervised objective on the verifiable outcome:
//! 1. implicit reward per response ψ_i = β·Σ_t m_{i,t}(logp_{i,t} − logp_old_{i,t}) ("sum" score),
//!    or ψ_i = β·Σ_t m·logp / |o_i| ("mean-logp" score);
//! 2. group centring, RLOO by default: ψ̂_i = ψ_i − Σ_{j≠i} ψ_j / (G − 1);
//! 3. class-balanced binary cross-entropy with logits against the reward s_i ∈ {0, 1}:
//!    L = −mean_i w_i [s_i·log σ(ψ̂_i) + (1 − s_i)·log(1 − σ(ψ̂_i))], where in a group holding both
//!    labels w = G / (2·count of that label), and w = 1 in a single-label group.
//!
//! ∂L/∂θ = −Σ_i w_i (s_i − σ(ψ̂_i)) ∇ψ̂_i / B: a policy gradient whose advantage is the critic
//! σ(ψ̂)'s prediction error. At the first inner step ψ = 0, so the loss is the w-weighted log 2.
//! Defaults β = 1, RLOO centring, balanced weights. CONFIRMED-CODE (ritzz-ai/PACS
//! pacs_core_algos.py, pacs_actor.py).

use crate::advantage::group_indices;
use anyhow::{ensure, Result};
use candle_core::{DType, Tensor, D};

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PacsScore {
    /// β·Σ (logp − logp_old) over the response (reward_method "1").
    Sum,
    /// β·mean logp over the response (reward_method "2").
    MeanLogp,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacs {
    pub beta: f64,
    pub score: PacsScore,
    /// RLOO centring of ψ within the group (otherwise raw ψ).
    pub rloo: bool,
    /// Class-balanced weights per group.
    pub balanced: bool,
}

impl Default for Pacs {
    fn default() -> Self {
        Self { beta: 1.0, score: PacsScore::Sum, rloo: true, balanced: true }
    }
}

/// log(1 + eˣ), stable for any x: max(x, 0) + log(1 + e^−|x|).
fn softplus(x: &Tensor) -> Result<Tensor> {
    Ok((x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
}

/// The PACS loss of a batch of whole groups: `logp`, `logp_old`, `mask` are `[B, R]`; `rewards`
/// (0 or 1) and `groups` have one entry per response. Returns (loss, mean σ(ψ̂) "critic").
pub fn pacs_loss(
    logp: &Tensor,
    logp_old: &Tensor,
    mask: &Tensor,
    rewards: &[f64],
    groups: &[usize],
    cfg: Pacs,
) -> Result<(Tensor, f64)> {
    let b = rewards.len();
    ensure!(
        groups.len() == b && logp.dim(0)? == b,
        "pacs: {b} rewards, {} groups, {} rows",
        groups.len(),
        logp.dim(0)?
    );
    let dev = logp.device();
    let dt = logp.dtype();
    let psi = match cfg.score {
        PacsScore::Sum => ((logp - logp_old)? * mask)?.sum(D::Minus1)?,
        PacsScore::MeanLogp => ((logp * mask)?.sum(D::Minus1)? / mask.sum(D::Minus1)?.clamp(1.0, f64::MAX)?)?,
    };
    let psi = (psi * cfg.beta)?;
    // Centring and weights as constant matrices/vectors over the batch.
    let mut center = vec![0f64; b * b];
    let mut w = vec![1f64; b];
    for idx in group_indices(groups) {
        let g = idx.len();
        for &i in &idx {
            center[i * b + i] = 1.0;
            if cfg.rloo && g > 1 {
                for &j in &idx {
                    if j != i {
                        center[i * b + j] = -1.0 / (g - 1) as f64;
                    }
                }
            }
        }
        if cfg.balanced {
            let pos = idx.iter().filter(|&&i| rewards[i] >= 0.5).count();
            let neg = g - pos;
            if pos > 0 && neg > 0 {
                for &i in &idx {
                    w[i] = g as f64 / (2.0 * if rewards[i] >= 0.5 { pos } else { neg } as f64);
                }
            }
        }
    }
    let center = Tensor::from_vec(center, (b, b), dev)?.to_dtype(dt)?;
    let psi_hat = center.matmul(&psi.unsqueeze(1)?)?.squeeze(1)?;
    let s =
        Tensor::from_vec(rewards.iter().map(|&r| (r >= 0.5) as u8 as f64).collect::<Vec<_>>(), b, dev)?.to_dtype(dt)?;
    let w = Tensor::from_vec(w, b, dev)?.to_dtype(dt)?;
    // −[s·log σ(x) + (1−s)·log(1−σ(x))] = s·softplus(−x) + (1−s)·softplus(x)
    let bce = ((&s * softplus(&psi_hat.neg()?)?)? + ((1.0 - &s)? * softplus(&psi_hat)?)?)?;
    let loss = ((bce * w)?.sum_all()? / b as f64)?;
    let critic = sigmoid(&psi_hat)?.to_dtype(DType::F64)?.mean_all()?.to_scalar::<f64>()?;
    Ok((loss, critic))
}

/// σ(x) from tensor ops (no candle-nn dependency in the core crate).
fn sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok((x.neg()?.exp()? + 1.0)?.recip()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Single-token responses with logp_old = 0, so ψ = β·logp.
    fn setup(psi: &[f64]) -> (Var, Tensor, Tensor) {
        let dev = Device::Cpu;
        let n = psi.len();
        let logp = Var::from_tensor(&Tensor::from_vec(psi.to_vec(), (n, 1), &dev).unwrap()).unwrap();
        (logp, Tensor::zeros((n, 1), DType::F64, &dev).unwrap(), Tensor::ones((n, 1), DType::F64, &dev).unwrap())
    }

    #[test]
    fn hand_example() -> Result<()> {
        // G = 2, s = [1, 0], ψ = [0.2, −0.2], RLOO ⇒ ψ̂ = [0.4, −0.4]; weights [1, 1];
        // L = −½[log σ(0.4) + log(1 − σ(−0.4))] = −log σ(0.4) = 0.5130
        let (lp, old, m) = setup(&[0.2, -0.2]);
        let (l, _) = pacs_loss(lp.as_tensor(), &old, &m, &[1.0, 0.0], &[0, 0], Pacs::default())?;
        assert!((l.to_scalar::<f64>()? - 0.5130).abs() < 1e-4, "{}", l.to_scalar::<f64>()?);
        Ok(())
    }

    #[test]
    fn at_psi_zero_the_loss_is_weighted_log2_and_pushes_by_label() -> Result<()> {
        // group of 4 with one correct: weights 4/2 = 2 for the correct, 4/6 for the others (mean 1)
        let (lp, old, m) = setup(&[0.0; 4]);
        let r = [1.0, 0.0, 0.0, 0.0];
        let (l, critic) = pacs_loss(lp.as_tensor(), &old, &m, &r, &[0; 4], Pacs::default())?;
        assert!((l.to_scalar::<f64>()? - 2f64.ln()).abs() < 1e-12);
        assert!((critic - 0.5).abs() < 1e-12);
        // gradient descent raises the correct response's log-likelihood and lowers the others'
        let g = l.backward()?.get(lp.as_tensor()).unwrap().flatten_all()?.to_vec1::<f64>()?;
        assert!(g[0] < 0.0 && g[1..].iter().all(|&x| x > 0.0), "{g:?}");
        // an all-correct group still gets a gradient (unlike GRPO), but relative: centred ψ̂ sums to 0
        let (lp, old, m) = setup(&[0.3, -0.1, 0.5]);
        let (l, _) = pacs_loss(lp.as_tensor(), &old, &m, &[1.0; 3], &[0; 3], Pacs::default())?;
        let g = l.backward()?.get(lp.as_tensor()).unwrap().flatten_all()?.to_vec1::<f64>()?;
        assert!(g.iter().any(|&x| x.abs() > 1e-6));
        Ok(())
    }

    #[test]
    fn gradient_matches_finite_differences() -> Result<()> {
        let psi = [0.7, -0.3, 0.1, 1.2, -0.5, 0.4];
        let r = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0];
        let groups = [0, 0, 0, 1, 1, 1];
        let cfg = Pacs { beta: 1.7, ..Default::default() };
        let loss = |p: &[f64]| -> f64 {
            let (lp, old, m) = setup(p);
            pacs_loss(lp.as_tensor(), &old, &m, &r, &groups, cfg).unwrap().0.to_scalar::<f64>().unwrap()
        };
        let (lp, old, m) = setup(&psi);
        let (l, _) = pacs_loss(lp.as_tensor(), &old, &m, &r, &groups, cfg)?;
        let g = l.backward()?.get(lp.as_tensor()).unwrap().flatten_all()?.to_vec1::<f64>()?;
        for i in 0..psi.len() {
            let (mut a, mut b) = (psi.to_vec(), psi.to_vec());
            a[i] += 1e-6;
            b[i] -= 1e-6;
            let fd = (loss(&a) - loss(&b)) / 2e-6;
            assert!((fd - g[i]).abs() < 1e-7, "{i}: {} vs {fd}", g[i]);
        }
        Ok(())
    }
}
