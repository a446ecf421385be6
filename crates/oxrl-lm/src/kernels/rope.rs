//! Fused rotary position embedding, rotate-half convention (GPT-NeoX / Llama / Qwen2):
//! for each head, with `x = [x₁, x₂]` split in halves and per-token angles `θ`,
//! `y = [x₁·cos θ − x₂·sin θ, x₂·cos θ + x₁·sin θ]`.
//!
//! Paper: Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding" (2021).
//!
//! The rotation is orthogonal, so the backward is the same kernel rotating by −θ.

use super::{contiguous, simd, Elem};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Arc;

/// Per-token cos/sin rows (`[tokens, head_dim/2]`), shared by every layer of one forward pass.
pub struct RopeTable {
    pub half: usize,
    cos32: Vec<f32>,
    sin32: Vec<f32>,
    cos64: Vec<f64>,
    sin64: Vec<f64>,
}

impl RopeTable {
    /// Rows of `cos`/`sin` (each `[max_pos, half]`, f64) picked by token positions.
    pub fn gather(cos: &[f64], sin: &[f64], half: usize, positions: &[u32]) -> Result<Arc<Self>> {
        let n = cos.len() / half.max(1);
        let mut c = Vec::with_capacity(positions.len() * half);
        let mut s = Vec::with_capacity(positions.len() * half);
        for &p in positions {
            let p = p as usize;
            if p >= n {
                candle_core::bail!("rotary position {p} is beyond the model's {n} positions");
            }
            c.extend_from_slice(&cos[p * half..(p + 1) * half]);
            s.extend_from_slice(&sin[p * half..(p + 1) * half]);
        }
        Ok(Arc::new(Self {
            half,
            cos32: c.iter().map(|&v| v as f32).collect(),
            sin32: s.iter().map(|&v| v as f32).collect(),
            cos64: c,
            sin64: s,
        }))
    }

    pub fn tokens(&self) -> usize {
        self.cos64.len() / self.half.max(1)
    }
}

trait Table: Elem {
    fn rows(t: &RopeTable) -> (&[Self], &[Self]);
}
impl Table for f32 {
    fn rows(t: &RopeTable) -> (&[f32], &[f32]) {
        (&t.cos32, &t.sin32)
    }
}
impl Table for f64 {
    fn rows(t: &RopeTable) -> (&[f64], &[f64]) {
        (&t.cos64, &t.sin64)
    }
}

pub struct Rope {
    pub table: Arc<RopeTable>,
    /// Rotate by −θ (the backward).
    pub inverse: bool,
}

fn apply<T: Table>(x: &[T], table: &RopeTable, inverse: bool) -> Vec<T> {
    let half = table.half;
    let (cos, sin) = T::rows(table);
    let row = x.len() / table.tokens();
    let mut y = vec![T::zero(); x.len()];
    let sign = if inverse { -T::one() } else { T::one() };
    y.par_chunks_mut(row * 16).zip(x.par_chunks(row * 16)).enumerate().for_each(|(blk, (yb, xb))| {
        simd(
            #[inline(always)]
            || {
                for (r, (yr, xr)) in yb.chunks_mut(row).zip(xb.chunks(row)).enumerate() {
                    let tok = blk * 16 + r;
                    let (c, s) = (&cos[tok * half..(tok + 1) * half], &sin[tok * half..(tok + 1) * half]);
                    for (yh, xh) in yr.chunks_mut(2 * half).zip(xr.chunks(2 * half)) {
                        let (x1, x2) = xh.split_at(half);
                        let (y1, y2) = yh.split_at_mut(half);
                        for i in 0..half {
                            let si = sign * s[i];
                            y1[i] = x1[i] * c[i] - x2[i] * si;
                            y2[i] = x2[i] * c[i] + x1[i] * si;
                        }
                    }
                }
            },
        )
    });
    y
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "fused-rope"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let n = l.shape().elem_count();
        let toks = self.table.tokens();
        if toks == 0 || !n.is_multiple_of(toks) || !(n / toks).is_multiple_of(2 * self.table.half) {
            candle_core::bail!("fused-rope: input {:?} does not split into {toks} tokens of whole heads", l.dims());
        }
        let y = match s {
            CpuStorage::F32(_) => CpuStorage::F32(apply(contiguous(s, l, "rope")?, &self.table, self.inverse)),
            CpuStorage::F64(_) => CpuStorage::F64(apply(contiguous(s, l, "rope")?, &self.table, self.inverse)),
            _ => candle_core::bail!("fused-rope: f32 or f64 only"),
        };
        Ok((y, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let inv = Rope { table: self.table.clone(), inverse: !self.inverse };
        Ok(Some(g.contiguous()?.apply_op1_no_bwd(&inv)?))
    }
}

/// Rotate every head of `x` (`[B, T, heads·head_dim]` or `[B, T, heads, head_dim]`, tokens in the
/// table's order).
pub fn rope(x: &Tensor, table: &Arc<RopeTable>) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Rope { table: table.clone(), inverse: false })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::*;
    use candle_core::{DType, Device, D};

    /// Tables for `[max_pos, half]` and the composed rotate-half reference.
    fn tables(max_pos: usize, half: usize) -> (Vec<f64>, Vec<f64>) {
        let mut c = vec![];
        let mut s = vec![];
        for p in 0..max_pos {
            for i in 0..half {
                let a = p as f64 / 10000f64.powf(2.0 * i as f64 / (2 * half) as f64);
                c.push(a.cos());
                s.push(a.sin());
            }
        }
        (c, s)
    }

    fn composed(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
        // x [B, T, H, hd]; cos/sin [B, T, 1, half]
        let half = x.dim(D::Minus1).unwrap() / 2;
        let x1 = x.narrow(D::Minus1, 0, half).unwrap();
        let x2 = x.narrow(D::Minus1, half, half).unwrap();
        let a = (x1.broadcast_mul(cos).unwrap() - x2.broadcast_mul(sin).unwrap()).unwrap();
        let b = (x2.broadcast_mul(cos).unwrap() + x1.broadcast_mul(sin).unwrap()).unwrap();
        Tensor::cat(&[a, b], D::Minus1).unwrap()
    }

    fn setup(dtype: DType) -> (Tensor, Arc<RopeTable>, Tensor, Tensor) {
        let (b, t, h, half) = (2, 20, 3, 4);
        let (c, s) = tables(64, half);
        // Positions like a left-padded batch: row 0 starts at 0, row 1 has 5 pad slots at 0.
        let pos: Vec<u32> = (0..t as u32).chain((0..t as u32).map(|i| i.saturating_sub(5))).collect();
        let table = RopeTable::gather(&c, &s, half, &pos).unwrap();
        let pick = |v: &[f64]| {
            let rows: Vec<f64> =
                pos.iter().flat_map(|&p| v[p as usize * half..(p as usize + 1) * half].to_vec()).collect();
            Tensor::from_vec(rows, (b, t, 1, half), &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
        };
        (randn(&[b, t, h, 2 * half], 11, dtype), table, pick(&c), pick(&s))
    }

    #[test]
    fn matches_composed_forward_and_backward() {
        let (x, table, cos, sin) = setup(DType::F32);
        check_against_composed(&[x], |t| rope(&t[0], &table).unwrap(), |t| composed(&t[0], &cos, &sin), 1e-5);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let (x, table, _, _) = setup(DType::F64);
        let x = x.narrow(1, 0, 20).unwrap();
        check_finite_differences(&[x], |t| rope(&t[0], &table).unwrap(), &[0]);
    }

    #[test]
    fn inverse_undoes_the_rotation() {
        let (x, table, _, _) = setup(DType::F64);
        let y = rope(&x, &table).unwrap();
        let back = y.apply_op1_no_bwd(&Rope { table, inverse: true }).unwrap();
        assert!(max_abs_diff(&back, &x) < 1e-12);
    }
}
