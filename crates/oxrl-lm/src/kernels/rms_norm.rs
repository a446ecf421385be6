//! Fused RMSNorm: `y = x / sqrt(mean(x²) + ε) · w` over the last dimension.
//!
//! Paper: Zhang & Sennrich, "Root Mean Square Layer Normalization" (NeurIPS 2019).
//!
//! Backward, with `r = 1/sqrt(mean(x²) + ε)` per row, `D` the row length and `ĝ = g ⊙ w`:
//! `dx = r·(ĝ − x·r²·mean(ĝ ⊙ x))`, `dw = Σ_rows g ⊙ x·r`.

use super::{contiguous, lane_dot, simd, tensor, with_data, Elem, LANES};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Rows per parallel task: big enough to amortise scheduling, small enough to balance.
const ROWS_PER_TASK: usize = 64;

pub struct RmsNorm {
    pub eps: f64,
}

/// `1/sqrt(mean(x²) + ε)` of a row (also the packed decoder's, [`crate::decode`], so both
/// normalise with the same arithmetic).
#[inline(always)]
pub(crate) fn inv_rms<T: Elem>(row: &[T], eps: f64) -> T {
    let ss = lane_dot(row, row);
    (ss / T::cast(row.len() as f64) + T::cast(eps)).sqrt().recip()
}

fn forward<T: Elem>(x: &[T], w: &[T], eps: f64) -> Vec<T> {
    let d = w.len();
    let mut y = vec![T::zero(); x.len()];
    y.par_chunks_mut(d * ROWS_PER_TASK).zip(x.par_chunks(d * ROWS_PER_TASK)).for_each(|(yb, xb)| {
        simd(
            #[inline(always)]
            || {
                for (yr, xr) in yb.chunks_mut(d).zip(xb.chunks(d)) {
                    let r = inv_rms(xr, eps);
                    for ((o, &v), &wi) in yr.iter_mut().zip(xr).zip(w) {
                        *o = v * r * wi;
                    }
                }
            },
        )
    });
    y
}

fn backward<T: Elem>(x: &[T], w: &[T], g: &[T], eps: f64) -> (Vec<T>, Vec<T>) {
    let d = w.len();
    let mut dx = vec![T::zero(); x.len()];
    let dw = dx
        .par_chunks_mut(d * ROWS_PER_TASK)
        .zip(x.par_chunks(d * ROWS_PER_TASK))
        .zip(g.par_chunks(d * ROWS_PER_TASK))
        .map(|((dxb, xb), gb)| {
            let mut dw = vec![T::zero(); d];
            simd(
                #[inline(always)]
                || {
                    for ((dxr, xr), gr) in dxb.chunks_mut(d).zip(xb.chunks(d)).zip(gb.chunks(d)) {
                        let (xr, gr, dw) = (&xr[..d], &gr[..d], &mut dw[..d]);
                        let r = inv_rms(xr, eps);
                        // Σ g·w·x in LANES partial sums (as `lane_dot`), beside the dw update.
                        let mut acc = [T::zero(); LANES];
                        let full = d - d % LANES;
                        for (((xc, gc), wc), dwc) in xr[..full]
                            .chunks_exact(LANES)
                            .zip(gr[..full].chunks_exact(LANES))
                            .zip(w[..full].chunks_exact(LANES))
                            .zip(dw[..full].chunks_exact_mut(LANES))
                        {
                            for l in 0..LANES {
                                acc[l] += gc[l] * wc[l] * xc[l];
                                dwc[l] += gc[l] * xc[l] * r;
                            }
                        }
                        for i in full..d {
                            acc[i - full] += gr[i] * w[i] * xr[i];
                            dw[i] += gr[i] * xr[i] * r;
                        }
                        let dot = super::tree(acc, |a, b| a + b);
                        let c = r * r * r * dot / T::cast(d as f64);
                        for i in 0..d {
                            dxr[i] = r * gr[i] * w[i] - xr[i] * c;
                        }
                    }
                },
            );
            dw
        })
        // Partial sums in chunk order, then summed in that order: the same bits on every run
        // (a rayon `reduce` tree depends on work stealing).
        .collect::<Vec<_>>()
        .into_iter()
        .fold(vec![T::zero(); d], |mut a, b| {
            a.iter_mut().zip(&b).for_each(|(x, y)| *x += *y);
            a
        });
    (dx, dw)
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = l2.shape().elem_count();
        if l1.dims().last() != Some(&d) {
            candle_core::bail!("fused-rms-norm: input {:?} vs weight {:?}", l1.dims(), l2.dims());
        }
        let y = match s1 {
            CpuStorage::F32(_) => {
                CpuStorage::F32(forward(contiguous(s1, l1, "rms-norm")?, contiguous(s2, l2, "rms-norm")?, self.eps))
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(forward(contiguous(s1, l1, "rms-norm")?, contiguous(s2, l2, "rms-norm")?, self.eps))
            }
            _ => candle_core::bail!("fused-rms-norm: f32 or f64 only"),
        };
        Ok((y, l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        fn run<T: Elem>(x: &Tensor, w: &Tensor, g: &Tensor, eps: f64) -> Result<(Tensor, Tensor)> {
            let (dx, dw) = with_data::<T, _>(x, "rms-norm", |xs| {
                with_data::<T, _>(w, "rms-norm", |ws| {
                    with_data::<T, _>(g, "rms-norm", |gs| Ok(backward(xs, ws, gs, eps)))
                })
            })?;
            Ok((tensor(dx, x.dims())?, tensor(dw, w.dims())?))
        }
        let (dx, dw) = match x.dtype() {
            candle_core::DType::F32 => run::<f32>(x, w, g, self.eps)?,
            _ => run::<f64>(x, w, g, self.eps)?,
        };
        Ok((Some(dx), Some(dw)))
    }
}

/// Fused RMSNorm of `x` (`[.., D]`) with weight `w` (`[D]`).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op2(w, RmsNorm { eps })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::*;
    use candle_core::{DType, D};

    fn composed(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
        let ms = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        x.broadcast_mul(&(ms + eps).unwrap().sqrt().unwrap().recip().unwrap()).unwrap().broadcast_mul(w).unwrap()
    }

    #[test]
    fn matches_composed_forward_and_backward() {
        // 3 × 70 rows: more than one parallel task, with a ragged last task.
        let x = randn(&[3, 70, 24], 1, DType::F32);
        let w = randn(&[24], 2, DType::F32);
        check_against_composed(
            &[x, w],
            |t| rms_norm(&t[0], &t[1], 1e-6).unwrap(),
            |t| composed(&t[0], &t[1], 1e-6),
            1e-5,
        );
    }

    #[test]
    fn gradients_match_finite_differences() {
        let x = randn(&[2, 3, 5], 3, DType::F64);
        let w = randn(&[5], 4, DType::F64);
        check_finite_differences(&[x, w], |t| rms_norm(&t[0], &t[1], 1e-5).unwrap(), &[0, 1]);
    }

    #[test]
    fn unit_weight_rows_have_unit_rms() {
        let x = randn(&[4, 16], 5, DType::F64);
        let w = Tensor::ones(16, DType::F64, &candle_core::Device::Cpu).unwrap();
        let y = rms_norm(&x, &w, 0.0).unwrap();
        let ms: Vec<f64> = y.sqr().unwrap().mean(D::Minus1).unwrap().to_vec1().unwrap();
        assert!(ms.iter().all(|m| (m - 1.0).abs() < 1e-12), "{ms:?}");
    }
}
