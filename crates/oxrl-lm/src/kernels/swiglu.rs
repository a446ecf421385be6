//! Fused SwiGLU gate: `y = silu(g) · u` with `silu(g) = g·σ(g)`.
//!
//! Paper: Shazeer, "GLU Variants Improve Transformer" (2020).
//!
//! Backward: `du = dy · silu(g)`, `dg = dy · u · σ(g)·(1 + g·(1 − σ(g)))`.

use super::{contiguous, simd, tensor, with_data, Elem};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

const CHUNK: usize = 4096;

pub struct SwiGlu;

#[inline(always)]
fn sigmoid<T: Elem>(x: T) -> T {
    T::one() / (T::one() + (-x).vexp())
}

fn forward<T: Elem>(g: &[T], u: &[T]) -> Vec<T> {
    let mut y = vec![T::zero(); g.len()];
    y.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(u.par_chunks(CHUNK)).for_each(|((y, g), u)| {
        simd(
            #[inline(always)]
            || {
                for ((o, &a), &b) in y.iter_mut().zip(g).zip(u) {
                    *o = a * sigmoid(a) * b;
                }
            },
        )
    });
    y
}

fn backward<T: Elem>(g: &[T], u: &[T], dy: &[T]) -> (Vec<T>, Vec<T>) {
    let mut dg = vec![T::zero(); g.len()];
    let mut du = vec![T::zero(); g.len()];
    dg.par_chunks_mut(CHUNK)
        .zip(du.par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)).zip(dy.par_chunks(CHUNK)))
        .for_each(|((dg, du), ((g, u), dy))| {
            simd(
                #[inline(always)]
                || {
                    let n = g.len();
                    let (dg, du, u, dy) = (&mut dg[..n], &mut du[..n], &u[..n], &dy[..n]);
                    for i in 0..n {
                        let s = sigmoid(g[i]);
                        du[i] = dy[i] * g[i] * s;
                        dg[i] = dy[i] * u[i] * s * (T::one() + g[i] * (T::one() - s));
                    }
                },
            )
        });
    (dg, du)
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "fused-swiglu"
    }
    fn cpu_fwd(&self, sg: &CpuStorage, lg: &Layout, su: &CpuStorage, lu: &Layout) -> Result<(CpuStorage, Shape)> {
        if lg.shape() != lu.shape() {
            candle_core::bail!("fused-swiglu: gate {:?} vs up {:?}", lg.dims(), lu.dims());
        }
        let y = match sg {
            CpuStorage::F32(_) => {
                CpuStorage::F32(forward(contiguous(sg, lg, "swiglu")?, contiguous(su, lu, "swiglu")?))
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(forward(contiguous(sg, lg, "swiglu")?, contiguous(su, lu, "swiglu")?))
            }
            _ => candle_core::bail!("fused-swiglu: f32 or f64 only"),
        };
        Ok((y, lg.shape().clone()))
    }
    fn bwd(&self, g: &Tensor, u: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        fn run<T: Elem>(g: &Tensor, u: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
            let (dg, du) = with_data::<T, _>(g, "swiglu", |gs| {
                with_data::<T, _>(u, "swiglu", |us| with_data::<T, _>(dy, "swiglu", |ds| Ok(backward(gs, us, ds))))
            })?;
            Ok((tensor(dg, g.dims())?, tensor(du, u.dims())?))
        }
        let (dg, du) = match g.dtype() {
            DType::F32 => run::<f32>(g, u, dy)?,
            _ => run::<f64>(g, u, dy)?,
        };
        Ok((Some(dg), Some(du)))
    }
}

/// `silu(gate) · up`, elementwise.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::*;

    #[test]
    fn matches_composed_forward_and_backward() {
        let g = (randn(&[5, 2000], 1, DType::F32) * 4.0).unwrap();
        let u = randn(&[5, 2000], 2, DType::F32);
        check_against_composed(
            &[g, u],
            |t| swiglu(&t[0], &t[1]).unwrap(),
            |t| (candle_nn::ops::silu(&t[0]).unwrap() * &t[1]).unwrap(),
            1e-5,
        );
    }

    #[test]
    fn gradients_match_finite_differences() {
        let g = (randn(&[3, 4], 3, DType::F64) * 3.0).unwrap();
        let u = randn(&[3, 4], 4, DType::F64);
        check_finite_differences(&[g, u], |t| swiglu(&t[0], &t[1]).unwrap(), &[0, 1]);
    }
}
