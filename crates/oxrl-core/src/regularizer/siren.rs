//! SIREN — selective entropy regularization (2025).
//!
//! An entropy term restricted twice:
//! 1. *Top-p (action) mask*: at position t the smallest set V_t of tokens whose probability mass
//!    reaches p (membership from the detached distribution); the entropy of the distribution
//!    renormalised to V_t, H^p_t = −Σ_{v∈V_t} p̃_v log p̃_v, p̃ = softmax of the logits in V_t — so
//!    logits outside V_t get no gradient from it (the long tail is never inflated).
//! 2. *Peak-entropy (state) mask*: only the positions whose rollout-time entropy is in the batch's
//!    top ρ fraction (the high-entropy "forking" tokens), M_t ∈ {0, 1}.
//! 3. *Self-anchoring*: instead of maximising H^p, a penalty on its deviation from a detached
//!    anchor, added as λ·L_ent to the policy loss:
//!    - `initial` (default): L = mean_M relu(H₀ − H^p_t)², H₀ = the masked mean H^p of the first
//!      RL update (the policy's own starting point): low entropy is raised toward H₀, never past.
//!    - `batch`: L = mean_M (H^p_t − sg(H̄))², H̄ the masked batch mean (the spec's literal form).
//!    - `none`: L = −mean_M H^p_t, a plain (selective) entropy bonus; with p → 1 and ρ = 1 it is
//!      the plain entropy bonus.
//!
//! INFERRED from the abstract (arXiv 2509.25133): the self-anchored formula and the thresholds
//! (p = 0.95, ρ = 0.2, λ = 0.01) are design choices; `initial` is ours (a bounded, one-sided
//! form of "push toward, not past, the anchor").

use anyhow::{bail, Result};
use candle_core::{DType, Tensor, D};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Anchor {
    /// One-sided, to the entropy of the first update (the value once known).
    Initial(Option<f64>),
    /// Two-sided, to the detached batch mean.
    Batch,
    /// No anchor: an entropy bonus.
    None,
}

impl Anchor {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "initial" => Anchor::Initial(None),
            "batch" => Anchor::Batch,
            "none" => Anchor::None,
            other => bail!("unknown SIREN anchor `{other}` (initial, batch, none)"),
        })
    }
}

/// Membership (1/0) of each token of `probs` (`[n, v]` rows) in its row's top-p set: tokens
/// in order of decreasing probability (ties by id) until their mass reaches p (at least one).
/// Only the head of each row is ordered: the k most probable tokens are partially selected
/// (O(v)), sorted, and k doubles until they hold mass p — a peaked row never sorts its tail.
pub fn top_p_members(probs: &[f32], v: usize, p: f64) -> Vec<f32> {
    let mut out = vec![0f32; probs.len()];
    let mut order: Vec<usize> = Vec::with_capacity(v);
    for (row, m) in probs.chunks(v).zip(out.chunks_mut(v)) {
        let desc = |a: &usize, b: &usize| row[*b].total_cmp(&row[*a]).then(a.cmp(b));
        order.clear();
        order.extend(0..v);
        let mut k = 16.min(v);
        loop {
            if k < v {
                order.select_nth_unstable_by(k - 1, desc);
            }
            order[..k].sort_unstable_by(desc);
            let mut mass = 0.0f64;
            let mut end = None;
            for (j, &i) in order[..k].iter().enumerate() {
                mass += row[i] as f64;
                if mass >= p {
                    end = Some(j + 1);
                    break;
                }
            }
            if let Some(e) = end.or((k == v).then_some(v)) {
                order[..e].iter().for_each(|&i| m[i] = 1.0);
                break;
            }
            k = (2 * k).min(v);
        }
    }
    out
}

/// H^p at every position of `logits` (`[B, R, V]`, already temperature-scaled), `[B, R]`, with
/// gradients into the logits of each position's top-p set only.
pub fn top_p_entropy(logits: &Tensor, p: f64) -> Result<Tensor> {
    let (b, r, v) = logits.dims3()?;
    let probs = log_softmax(&logits.detach().to_dtype(DType::F32)?)?.exp()?;
    let members = top_p_members(&probs.flatten_all()?.to_vec1::<f32>()?, v, p);
    let keep = Tensor::from_vec(members, (b, r, v), logits.device())?.to_dtype(DType::U8)?;
    let neg = Tensor::full(-1e30f32, (b, r, v), logits.device())?.to_dtype(logits.dtype())?;
    let masked = keep.where_cond(logits, &neg)?;
    let logp = log_softmax(&masked)?;
    // Σ over V_t only (outside it p̃ = 0 exactly, and 0 · (−1e30) must not be formed).
    let plogp = keep.where_cond(&(logp.exp()? * &logp)?, &logp.zeros_like()?)?;
    Ok(plogp.sum(D::Minus1)?.neg()?)
}

fn log_softmax(x: &Tensor) -> Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?;
    Ok(shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)?)
}

/// The peak-entropy mask: 1 where a token's entropy is at or above the (1 − ρ)-quantile of all
/// tokens' entropies in the batch (ρ = 1 keeps every token).
pub fn peak_mask(entropy: &[Vec<f64>], rho: f64) -> Vec<Vec<f64>> {
    let mut all: Vec<f64> = entropy.iter().flatten().copied().collect();
    if all.is_empty() {
        return entropy.to_vec();
    }
    all.sort_by(f64::total_cmp);
    let keep = ((rho * all.len() as f64).ceil() as usize).clamp(1, all.len());
    let thr = all[all.len() - keep];
    entropy.iter().map(|r| r.iter().map(|&h| (h >= thr) as u8 as f64).collect()).collect()
}

/// The SIREN term L_ent (add λ·L_ent to the loss) over the positions of `mask` (peak ∧ valid),
/// and the masked mean H^p (detached) for the `initial` anchor and the metrics.
pub fn siren_loss(hp: &Tensor, mask: &Tensor, anchor: Anchor) -> Result<(Tensor, f64)> {
    let n = mask.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    let masked = (hp * mask)?;
    let mean_h = if n > 0.0 { masked.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()? / n } else { 0.0 };
    let denom = n.max(1.0);
    let loss = match anchor {
        Anchor::None => (masked.sum_all()? / -denom)?,
        Anchor::Batch => ((hp - mean_h)?.sqr()? * mask)?.sum_all()?.affine(1.0 / denom, 0.0)?,
        Anchor::Initial(h0) => {
            let h0 = h0.unwrap_or(mean_h);
            (hp.affine(-1.0, h0)?.relu()?.sqr()? * mask)?.sum_all()?.affine(1.0 / denom, 0.0)?
        }
    };
    Ok((loss, mean_h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn logits() -> Var {
        // two positions over 4 tokens
        Var::new(&[[[2.0f64, 1.0, 0.0, -3.0], [0.5, 0.4, 0.3, 0.2]]], &Device::Cpu).unwrap()
    }

    #[test]
    fn top_p_entropy_oracles() -> Result<()> {
        let z = logits();
        // p = 1: the plain entropy
        let h = top_p_entropy(z.as_tensor(), 1.0)?.to_vec2::<f64>()?;
        let full = |row: &[f64]| {
            let m = row.iter().cloned().fold(f64::MIN, f64::max);
            let zs: f64 = row.iter().map(|x| (x - m).exp()).sum();
            -row.iter().map(|x| ((x - m).exp() / zs) * ((x - m) - zs.ln())).sum::<f64>()
        };
        assert!((h[0][0] - full(&[2.0, 1.0, 0.0, -3.0])).abs() < 1e-9);
        assert!((h[0][1] - full(&[0.5, 0.4, 0.3, 0.2])).abs() < 1e-9);
        // p = 0.8 on row 0 (probs ≈ .66, .24, .09, .003): the set is {0, 1} → entropy of softmax(2, 1)
        let h = top_p_entropy(z.as_tensor(), 0.8)?;
        assert!((h.to_vec2::<f64>()?[0][0] - full(&[2.0, 1.0])).abs() < 1e-9);
        // tokens outside the top-p set get exactly zero gradient
        let g = h.sum_all()?.backward()?;
        let g = g.get(z.as_tensor()).unwrap().to_vec3::<f64>()?;
        assert_eq!(g[0][0][2], 0.0);
        assert_eq!(g[0][0][3], 0.0);
        assert!(g[0][0][0] != 0.0);
        // row 1 is near uniform: its set needs all four at p = 0.8 (.29 + .26 + .24 = .79 < .8)
        assert!(g[0][1].iter().all(|&x| x != 0.0), "{g:?}");
        // finite-difference check of one in-set logit
        let eps = 1e-6;
        let f = |d: f64| -> f64 {
            let zz = Tensor::new(&[[[2.0 + d, 1.0, 0.0, -3.0], [0.5, 0.4, 0.3, 0.2]]], &Device::Cpu).unwrap();
            top_p_entropy(&zz, 0.8).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
        };
        assert!(((f(eps) - f(-eps)) / (2.0 * eps) - g[0][0][0]).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn partial_selection_matches_a_full_sort() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let v = 300;
        for sharp in [0.1f32, 1.0, 5.0] {
            let logits: Vec<f32> = (0..4 * v).map(|_| rng.random_range(-1.0f32..1.0) * sharp * 4.0).collect();
            let mut probs = Vec::with_capacity(logits.len());
            for row in logits.chunks(v) {
                let m = row.iter().cloned().fold(f32::MIN, f32::max);
                let z: f32 = row.iter().map(|x| (x - m).exp()).sum();
                probs.extend(row.iter().map(|x| (x - m).exp() / z));
            }
            for p in [0.3, 0.9, 0.999, 1.0] {
                let got = top_p_members(&probs, v, p);
                for (row, m) in probs.chunks(v).zip(got.chunks(v)) {
                    let mut idx: Vec<usize> = (0..v).collect();
                    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
                    let (mut mass, mut want) = (0.0f64, vec![0f32; v]);
                    for &i in &idx {
                        want[i] = 1.0;
                        mass += row[i] as f64;
                        if mass >= p {
                            break;
                        }
                    }
                    assert_eq!(m, &want[..], "sharpness {sharp}, p {p}");
                }
            }
        }
    }

    #[test]
    fn masks_and_anchors() -> Result<()> {
        let ent = vec![vec![0.1, 2.0, 0.5], vec![3.0, 0.2]];
        // ρ = 0.4 of 5 tokens → the 2 highest
        assert_eq!(peak_mask(&ent, 0.4), vec![vec![0.0, 1.0, 0.0], vec![1.0, 0.0]]);
        assert_eq!(peak_mask(&ent, 1.0), vec![vec![1.0; 3], vec![1.0; 2]]);
        let dev = Device::Cpu;
        let hp = Var::new(&[[1.0f64, 2.0, 4.0]], &dev)?;
        let mask = Tensor::new(&[[1.0f64, 1.0, 0.0]], &dev)?;
        // bonus: −mean over the mask; positions outside the peak mask get zero gradient
        let (l, mean_h) = siren_loss(hp.as_tensor(), &mask, Anchor::None)?;
        assert_eq!(mean_h, 1.5);
        assert_eq!(l.to_scalar::<f64>()?, -1.5);
        let g = l.backward()?.get(hp.as_tensor()).unwrap().to_vec2::<f64>()?;
        assert_eq!(g, vec![vec![-0.5, -0.5, 0.0]]);
        // batch anchor: mean (h − 1.5)² = 0.25; gradient pulls toward the mean from both sides
        let (l, _) = siren_loss(hp.as_tensor(), &mask, Anchor::Batch)?;
        assert!((l.to_scalar::<f64>()? - 0.25).abs() < 1e-12);
        let g = l.backward()?.get(hp.as_tensor()).unwrap().to_vec2::<f64>()?;
        assert_eq!(g, vec![vec![-0.5, 0.5, 0.0]]);
        // initial anchor H₀ = 1.8: only the position below it is pushed up (never past)
        let (l, _) = siren_loss(hp.as_tensor(), &mask, Anchor::Initial(Some(1.8)))?;
        assert!((l.to_scalar::<f64>()? - 0.64 / 2.0).abs() < 1e-12);
        let g = l.backward()?.get(hp.as_tensor()).unwrap().to_vec2::<f64>()?;
        assert!((g[0][0] + 0.8).abs() < 1e-12 && g[0][1] == 0.0 && g[0][2] == 0.0);
        assert!(Anchor::parse("sometimes").is_err());
        Ok(())
    }
}
