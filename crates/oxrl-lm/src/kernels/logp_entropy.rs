//! Fused log-softmax + gather + entropy: for logits `z` (`[.., V]`), chosen tokens `t` and a
//! temperature `τ`, one pass per row gives
//! `logp = z_t/τ − lse(z/τ)` and `H = lse(z/τ) − Σ_j p_j·z_j/τ` with `p = softmax(z/τ)`,
//! returned as `[.., 2]` = (logp, H).
//!
//! The composed version materialises log-softmax, exp, the product and the sum — five `[.., V]`
//! tensors and their gradients. Backward, for upstream gradients `(a, b)`:
//! `∂/∂z_j = (a·(1[j = t] − p_j) − b·p_j·(log p_j + H)) / τ`.

use super::{contiguous, lane_max, simd, tensor, tree, with_data, Elem, LANES};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

const ROWS: usize = 32;

pub struct LogpEntropy {
    pub temperature: f64,
}

/// (log-sum-exp of z/τ, Σ p_j z_j/τ) of one row; the maximum and both sums in
/// [`LANES`] partial results (see there), so the pass vectorises.
#[inline(always)]
fn row_stats<T: Elem>(z: &[T], inv_t: T) -> (T, T) {
    let m = lane_max(z) * inv_t;
    let (mut s, mut sz) = ([T::zero(); LANES], [T::zero(); LANES]);
    let mut chunks = z.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            let zt = c[l] * inv_t;
            let e = (zt - m).vexp();
            s[l] += e;
            sz[l] += e * zt;
        }
    }
    for (l, &v) in chunks.remainder().iter().enumerate() {
        let zt = v * inv_t;
        let e = (zt - m).vexp();
        s[l] += e;
        sz[l] += e * zt;
    }
    let (s, sz) = (tree(s, |a, b| a + b), tree(sz, |a, b| a + b));
    (m + s.ln(), sz / s)
}

fn forward<T: Elem>(z: &[T], targets: &[u32], v: usize, temp: f64) -> Vec<T> {
    let inv_t = T::cast(1.0 / temp);
    let mut out = vec![T::zero(); targets.len() * 2];
    out.par_chunks_mut(2 * ROWS).zip(z.par_chunks(v * ROWS)).zip(targets.par_chunks(ROWS)).for_each(|((o, z), t)| {
        simd(
            #[inline(always)]
            || {
                for ((o, z), &t) in o.chunks_mut(2).zip(z.chunks(v)).zip(t) {
                    let (lse, mean_z) = row_stats(z, inv_t);
                    o[0] = z[t as usize] * inv_t - lse;
                    o[1] = lse - mean_z;
                }
            },
        )
    });
    out
}

/// The backward reuses the forward's output: lse = z_t/τ − logp and H come from `y` (`[.., 2]`),
/// so each row costs one exp pass (the probabilities) instead of recomputing the statistics.
fn backward<T: Elem>(z: &[T], targets: &[u32], y: &[T], g: &[T], v: usize, temp: f64) -> Vec<T> {
    let inv_t = T::cast(1.0 / temp);
    let mut dz = vec![T::zero(); z.len()];
    dz.par_chunks_mut(v * ROWS)
        .zip(z.par_chunks(v * ROWS))
        .zip(targets.par_chunks(ROWS).zip(y.par_chunks(2 * ROWS).zip(g.par_chunks(2 * ROWS))))
        .for_each(|((dz, z), (t, (y, g)))| {
            simd(
                #[inline(always)]
                || {
                    for ((((dz, z), &t), y), g) in
                        dz.chunks_mut(v).zip(z.chunks(v)).zip(t).zip(y.chunks(2)).zip(g.chunks(2))
                    {
                        let (lse, h) = (z[t as usize] * inv_t - y[0], y[1]);
                        let (a, b) = (g[0], g[1]);
                        for (d, &zj) in dz.iter_mut().zip(z) {
                            let lp = zj * inv_t - lse;
                            let p = lp.vexp();
                            *d = (-a * p - b * p * (lp + h)) * inv_t;
                        }
                        dz[t as usize] += a * inv_t;
                    }
                },
            )
        });
    dz
}

impl CustomOp2 for LogpEntropy {
    fn name(&self) -> &'static str {
        "fused-logp-entropy"
    }
    fn cpu_fwd(&self, sz: &CpuStorage, lz: &Layout, st: &CpuStorage, lt: &Layout) -> Result<(CpuStorage, Shape)> {
        let v = *lz.dims().last().unwrap_or(&0);
        if lz.dims()[..lz.dims().len().saturating_sub(1)] != *lt.dims() {
            candle_core::bail!("fused-logp-entropy: logits {:?} vs targets {:?}", lz.dims(), lt.dims());
        }
        let targets = match st {
            CpuStorage::U32(_) => contiguous_u32(st, lt)?,
            _ => candle_core::bail!("fused-logp-entropy: targets must be u32"),
        };
        if let Some(&bad) = targets.iter().find(|&&t| t as usize >= v) {
            candle_core::bail!("fused-logp-entropy: target {bad} outside the vocabulary of {v}");
        }
        let out = match sz {
            CpuStorage::F32(_) => {
                CpuStorage::F32(forward(contiguous(sz, lz, "logp-entropy")?, targets, v, self.temperature))
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(forward(contiguous(sz, lz, "logp-entropy")?, targets, v, self.temperature))
            }
            _ => candle_core::bail!("fused-logp-entropy: f32 or f64 only"),
        };
        let mut shape = lt.dims().to_vec();
        shape.push(2);
        Ok((out, Shape::from(shape)))
    }
    fn bwd(&self, z: &Tensor, t: &Tensor, y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        fn run<T: Elem>(z: &Tensor, t: &[u32], y: &Tensor, g: &Tensor, temp: f64) -> Result<Tensor> {
            let v = z.dims().last().copied().unwrap_or(0);
            let dz = with_data::<T, _>(z, "logp-entropy", |zs| {
                with_data::<T, _>(y, "logp-entropy", |ys| {
                    with_data::<T, _>(g, "logp-entropy", |gs| Ok(backward(zs, t, ys, gs, v, temp)))
                })
            })?;
            tensor(dz, z.dims())
        }
        let t = t.flatten_all()?.to_vec1::<u32>()?;
        let dz = match z.dtype() {
            DType::F32 => run::<f32>(z, &t, y, g, self.temperature)?,
            _ => run::<f64>(z, &t, y, g, self.temperature)?,
        };
        Ok((Some(dz), None))
    }
}

fn contiguous_u32<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [u32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<u32>()?[a..b]),
        None => candle_core::bail!("fused-logp-entropy: targets must be contiguous"),
    }
}

/// `(log p(target), entropy)` of `softmax(logits / temperature)` at every position:
/// logits `[.., V]`, targets `[..]` (u32) → `[.., 2]`.
pub fn logp_entropy(logits: &Tensor, targets: &Tensor, temperature: f64) -> Result<Tensor> {
    logits.contiguous()?.apply_op2(&targets.contiguous()?, LogpEntropy { temperature })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::*;
    use candle_core::{Device, D};

    fn composed(z: &Tensor, t: &Tensor, temp: f64) -> Tensor {
        let lp = candle_nn::ops::log_softmax(&(z / temp).unwrap(), D::Minus1).unwrap();
        let logp = lp.gather(&t.unsqueeze(D::Minus1).unwrap(), D::Minus1).unwrap();
        let h = (lp.exp().unwrap() * &lp).unwrap().sum_keepdim(D::Minus1).unwrap().neg().unwrap();
        Tensor::cat(&[logp, h], D::Minus1).unwrap()
    }

    fn targets(n: usize, v: u32) -> Tensor {
        Tensor::from_vec((0..n as u32).map(|i| (i * 7 + 3) % v).collect::<Vec<_>>(), (n / 5, 5), &Device::Cpu).unwrap()
    }

    #[test]
    fn matches_composed_forward_and_backward() {
        let z = (randn(&[20, 5, 50], 1, DType::F32) * 5.0).unwrap();
        let t = targets(100, 50);
        for temp in [1.0, 0.7] {
            check_against_composed(
                std::slice::from_ref(&z),
                |x| logp_entropy(&x[0], &t, temp).unwrap(),
                |x| composed(&x[0], &t, temp),
                1e-5,
            );
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let z = (randn(&[2, 5, 6], 2, DType::F64) * 2.0).unwrap();
        let t = targets(10, 6).reshape((2, 5)).unwrap();
        check_finite_differences(&[z], |x| logp_entropy(&x[0], &t, 1.3).unwrap(), &[0]);
    }

    #[test]
    fn uniform_logits_give_log_v_entropy() {
        let z = Tensor::zeros((3, 8), DType::F64, &Device::Cpu).unwrap();
        let t = Tensor::new(&[0u32, 3, 7], &Device::Cpu).unwrap();
        let out: Vec<Vec<f64>> = logp_entropy(&z, &t, 1.0).unwrap().to_vec2().unwrap();
        for row in out {
            assert!((row[0] + 8f64.ln()).abs() < 1e-12 && (row[1] - 8f64.ln()).abs() < 1e-12, "{row:?}");
        }
    }
}
