//! Fused scaled-dot-product attention with grouped-query heads and an additive mask:
//! `O_h = softmax(Q_h·K_gᵀ·s + M)·V_g` for query head `h` sharing K/V head `g = h / (H/G)`, with
//! `s = 1/sqrt(head_dim)` and `M` the additive bias (0 = attend, −1e9 = masked) that encodes
//! causality, padding and, with a KV cache, the cached keys.
//!
//! Paper: Vaswani et al., "Attention Is All You Need" (2017); grouped-query heads: Ainslie et
//! al., "GQA: Training Generalized Multi-Query Transformer Models from Multi-Head Checkpoints" (2023).
//!
//! One autograd node instead of ~10 (matmul, scale, mask add, the softmax's five, matmul,
//! reshapes). Q, K, V are read in place with strides — `[B, T, heads·head_dim]` straight from the
//! projections or `[B, heads, S, head_dim]` views of a KV cache — so no transposed copies are made.
//! The forward keeps the probabilities `P` when a gradient is needed; the backward is
//! `dV = Pᵀ·dO`, `dP = dO·Vᵀ`, `dS = P ⊙ (dP − rowsum(P ⊙ dP))·s`, `dQ = dS·K`, `dK = dSᵀ·Q`,
//! summed over the query heads that share a K/V head. Work is split over (batch, K/V head).

use super::{gemm, lane_dot, lane_max, lane_sum, simd, tensor, with_data, Elem, Mat, SendConst, SendPtr};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;
use std::sync::Mutex;

pub struct Attention {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Additive mask `[B, 1, T, S]`, same dtype as Q.
    pub bias: Tensor,
    /// Keep the softmax probabilities for the backward.
    pub save: bool,
    /// The mask is causal (query i at absolute position S − T + i sees no later key), so row
    /// blocks skip the keys after their last row. Rows whose visible keys are all masked (left
    /// padding) keep the full key range, which makes the result identical to the unblocked one.
    pub causal: bool,
    probs: Mutex<Option<CpuStorage>>,
}

/// Element offsets of a `[B, tokens, heads, head_dim]`-like view: (start, batch, head, token strides).
#[derive(Clone, Copy, Debug)]
struct View {
    start: usize,
    b: usize,
    h: usize,
    t: usize,
    tokens: usize,
}

impl View {
    /// Rank 3 `[B, T, heads·hd]` or rank 4 `[B, heads, T, hd]`; the last dimension must be unit-stride.
    fn of(l: &Layout, heads: usize, hd: usize, what: &str) -> Result<Self> {
        let (d, s) = (l.dims(), l.stride());
        match d.len() {
            3 if d[2] == heads * hd && s[2] == 1 => Ok(Self { start: l.start_offset(), b: s[0], h: hd, t: s[1], tokens: d[1] }),
            4 if d[1] == heads && d[3] == hd && s[3] == 1 => {
                Ok(Self { start: l.start_offset(), b: s[0], h: s[1], t: s[2], tokens: d[2] })
            }
            _ => candle_core::bail!(
                "fused-attention: {what} must be [B, T, {heads}·{hd}] or [B, {heads}, T, {hd}], got {d:?} (strides {s:?})"
            ),
        }
    }
    fn at(&self, b: usize, h: usize) -> usize {
        self.start + b * self.b + h * self.h
    }
}

struct Geometry {
    causal: bool,
    batch: usize,
    t: usize,
    s: usize,
    heads: usize,
    kv: usize,
    hd: usize,
    scale: f64,
}

/// Row softmax of `scale·x + bias` in place (also the packed decoder's, [`crate::decode`]).
/// The maximum and the sum run in [`super::LANES`] partial results, so every pass vectorises.
#[inline(always)]
pub(crate) fn softmax_rows<T: Elem>(p: &mut [T], bias: &[T], s: usize, scale: T) {
    for (row, brow) in p.chunks_mut(s).zip(bias.chunks(s)) {
        for (x, &b) in row.iter_mut().zip(brow) {
            *x = *x * scale + b;
        }
        let m = lane_max(row);
        for x in row.iter_mut() {
            *x = (*x - m).vexp();
        }
        let inv = lane_sum(row).recip();
        for x in row.iter_mut() {
            *x *= inv;
        }
    }
}

/// `dst (m×n, row stride dst_rs) = [dst +] a·b` on the calling thread (inside a parallel task).
///
/// # Safety
/// As [`gemm`].
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn mm<T: Elem>(m: usize, n: usize, k: usize, dst: *mut T, dst_rs: usize, acc: bool, a: Mat<T>, b: Mat<T>) {
    gemm(m, n, k, dst, dst_rs as isize, 1, acc, a, b, Parallelism::None)
}

/// Query rows per block of the causal key skipping.
const BLOCK_ROWS: usize = 32;

/// Row blocks `(r0, r1, keys)` of one batch row: block rows attend to the first `keys` keys.
/// Without causality every block sees all S keys; with it, a block sees keys up to its last
/// row's position, unless one of its rows has every visible key masked (then all S, as the
/// unblocked softmax spreads such a row uniformly over every key).
fn key_blocks<T: Elem>(t: usize, s: usize, bias_b: &[T], causal: bool) -> Vec<(usize, usize, usize)> {
    let off = s - t;
    let masked = T::cast(-1e8);
    (0..t)
        .step_by(BLOCK_ROWS)
        .map(|r0| {
            let r1 = (r0 + BLOCK_ROWS).min(t);
            let e = off + r1;
            let dead_row = (r0..r1).any(|i| bias_b[i * s..i * s + off + i + 1].iter().all(|&x| x <= masked));
            (r0, r1, if causal && !dead_row { e } else { s })
        })
        .collect()
}

/// Query rows at or below which (decoding) attention runs as plain dot products and AXPYs: a
/// GEMM call's packing costs more than a 1 × S product.
const DIRECT_MAX_ROWS: usize = 4;

/// `t` query rows of one head without GEMM: scores by dot products, softmax, then `O = P·V` as
/// a sum of scaled value rows. `p` receives the probabilities (`t × s`).
///
/// # Safety
/// `q`, `k`, `v` and `o` must address `t` / `s` / `s` / `t` rows of `hd` elements at the given
/// row strides.
#[allow(clippy::too_many_arguments)]
unsafe fn direct_rows<T: Elem>(
    t: usize,
    s: usize,
    hd: usize,
    q: *const T,
    q_rs: usize,
    k: *const T,
    k_rs: usize,
    v: *const T,
    v_rs: usize,
    bias: &[T],
    scale: T,
    p: &mut [T],
    o: *mut T,
    o_rs: usize,
) {
    for i in 0..t {
        let qi = std::slice::from_raw_parts(q.add(i * q_rs), hd);
        let pr = &mut p[i * s..(i + 1) * s];
        for (j, x) in pr.iter_mut().enumerate() {
            let kj = std::slice::from_raw_parts(k.add(j * k_rs), hd);
            *x = lane_dot(qi, kj);
        }
        softmax_rows(pr, &bias[i * s..(i + 1) * s], s, scale);
        let oi = std::slice::from_raw_parts_mut(o.add(i * o_rs), hd);
        oi.iter_mut().for_each(|x| *x = T::zero());
        for (j, &pj) in pr.iter().enumerate() {
            let vj = std::slice::from_raw_parts(v.add(j * v_rs), hd);
            oi.iter_mut().zip(vj).for_each(|(a, &b)| *a += pj * b);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn forward<T: Elem>(
    g: &Geometry,
    q: &[T],
    qv: View,
    k: &[T],
    kv: View,
    v: &[T],
    vv: View,
    bias: &[T],
    probs: Option<&mut [T]>,
) -> Vec<T> {
    let (t, s, hd) = (g.t, g.s, g.hd);
    let rep = g.heads / g.kv;
    let mut out = vec![T::zero(); g.batch * t * g.heads * hd];
    let ov = View { start: 0, b: t * g.heads * hd, h: hd, t: g.heads * hd, tokens: t };
    let optr = SendPtr(out.as_mut_ptr());
    let pptr = probs.map(|p| SendPtr(p.as_mut_ptr()));
    let (qp, kp, vp) = (SendConst(q.as_ptr()), SendConst(k.as_ptr()), SendConst(v.as_ptr()));
    let scale = T::cast(g.scale);
    (0..g.batch * g.kv).into_par_iter().for_each(|task| {
        let (b, kh) = (task / g.kv, task % g.kv);
        let mut scratch = if pptr.is_none() { vec![T::zero(); t * s] } else { vec![] };
        let bias_b = &bias[b * t * s..(b + 1) * t * s];
        let blocks = key_blocks(t, s, bias_b, g.causal);
        for r in 0..rep {
            let h = kh * rep + r;
            let p: &mut [T] = match pptr {
                // SAFETY: each (b, h) owns its own T×S block of the probability buffer.
                Some(pp) => unsafe { std::slice::from_raw_parts_mut(pp.0.add((b * g.heads + h) * t * s), t * s) },
                None => &mut scratch,
            };
            let (qp, kp, vp, optr) = (qp, kp, vp, optr);
            // SAFETY: offsets of the (b, h) / (b, kh) views inside Q, K, V and O.
            let (q, k, v, o) = unsafe {
                (qp.0.add(qv.at(b, h)), kp.0.add(kv.at(b, kh)), vp.0.add(vv.at(b, kh)), optr.0.add(ov.at(b, h)))
            };
            if t <= DIRECT_MAX_ROWS {
                // SAFETY: the views address elements inside Q/K/V; the task owns rows (b, h) of O.
                unsafe { direct_rows(t, s, hd, q, qv.t, k, kv.t, v, vv.t, bias_b, scale, p, o, ov.t) };
                continue;
            }
            for &(r0, r1, e) in &blocks {
                let rows = r1 - r0;
                let pb = &mut p[r0 * s..r1 * s];
                // SAFETY: the views address elements inside Q/K/V; the task owns rows (b, h) of O.
                unsafe {
                    mm(rows, e, hd, pb.as_mut_ptr(), s, false, Mat::rows(q.add(r0 * qv.t), qv.t), Mat::t(k, kv.t));
                }
                simd(
                    #[inline(always)]
                    || {
                        for (row, brow) in pb.chunks_mut(s).zip(bias_b[r0 * s..r1 * s].chunks(s)) {
                            softmax_rows(&mut row[..e], &brow[..e], e, scale);
                            row[e..].fill(T::zero());
                        }
                    },
                );
                unsafe {
                    mm(rows, hd, e, o.add(r0 * ov.t), ov.t, false, Mat::rows(pb.as_ptr(), s), Mat::rows(v, vv.t));
                }
            }
        }
    });
    out
}

/// Gradients (dQ, dK, dV), each contiguous in its input's shape.
#[allow(clippy::too_many_arguments)]
fn backward<T: Elem>(
    g: &Geometry,
    q: &[T],
    qv: View,
    k: &[T],
    kv: View,
    v: &[T],
    vv: View,
    probs: &[T],
    d_out: &[T],
    bias: &[T],
) -> [Vec<T>; 3] {
    let (t, s, hd) = (g.t, g.s, g.hd);
    let rep = g.heads / g.kv;
    let mut dq = vec![T::zero(); q.len()];
    let mut dk = vec![T::zero(); k.len()];
    let mut dv = vec![T::zero(); v.len()];
    let ov = View { start: 0, b: t * g.heads * hd, h: hd, t: g.heads * hd, tokens: t };
    let (dqp, dkp, dvp) = (SendPtr(dq.as_mut_ptr()), SendPtr(dk.as_mut_ptr()), SendPtr(dv.as_mut_ptr()));
    let (qp, kp, vp, gp) =
        (SendConst(q.as_ptr()), SendConst(k.as_ptr()), SendConst(v.as_ptr()), SendConst(d_out.as_ptr()));
    let scale = T::cast(g.scale);
    (0..g.batch * g.kv).into_par_iter().for_each(|task| {
        let (b, kh) = (task / g.kv, task % g.kv);
        let mut ds = vec![T::zero(); t * s];
        let blocks = key_blocks(t, s, &bias[b * t * s..(b + 1) * t * s], g.causal);
        for r in 0..rep {
            let h = kh * rep + r;
            let p = &probs[(b * g.heads + h) * t * s..(b * g.heads + h + 1) * t * s];
            let (dqp, dkp, dvp, qp, kp, vp, gp) = (dqp, dkp, dvp, qp, kp, vp, gp);
            // SAFETY: offsets of the (b, h) / (b, kh) views inside the inputs and gradients.
            let (q, k, v, dout) = unsafe {
                (qp.0.add(qv.at(b, h)), kp.0.add(kv.at(b, kh)), vp.0.add(vv.at(b, kh)), gp.0.add(ov.at(b, h)))
            };
            let (gq, gk, gv) = unsafe { (dqp.0.add(qv.at(b, h)), dkp.0.add(kv.at(b, kh)), dvp.0.add(vv.at(b, kh))) };
            for &(r0, r1, e) in &blocks {
                let rows = r1 - r0;
                let pb = &p[r0 * s..r1 * s];
                let dsb = &mut ds[r0 * s..r1 * s];
                // SAFETY: the task owns the (b, kh) slices of dK/dV and the (b, h) slices of dQ;
                // dK and dV start at zero and accumulate over heads and row blocks.
                unsafe {
                    let go = Mat::rows(dout.add(r0 * ov.t), ov.t);
                    // dV[..e] += Pᵀ·dO
                    mm(e, hd, rows, gv, vv.t, true, Mat::t(pb.as_ptr(), s), go);
                    // dP = dO·Vᵀ
                    mm(rows, e, hd, dsb.as_mut_ptr(), s, false, go, Mat::t(v, vv.t));
                }
                simd(
                    #[inline(always)]
                    || {
                        for (dsr, pr) in dsb.chunks_mut(s).zip(pb.chunks(s)) {
                            let (dsr, pr) = (&mut dsr[..e], &pr[..e]);
                            let dot = lane_dot(dsr, pr);
                            for (x, &y) in dsr.iter_mut().zip(pr) {
                                *x = y * (*x - dot) * scale;
                            }
                        }
                    },
                );
                unsafe {
                    // dQ = dS·K
                    mm(rows, hd, e, gq.add(r0 * qv.t), qv.t, false, Mat::rows(dsb.as_ptr(), s), Mat::rows(k, kv.t));
                    // dK[..e] += dSᵀ·Q
                    mm(e, hd, rows, gk, kv.t, true, Mat::t(dsb.as_ptr(), s), Mat::rows(q.add(r0 * qv.t), qv.t));
                }
            }
        }
    });
    [dq, dk, dv]
}

impl Attention {
    fn geometry(&self, lq: &Layout, lk: &Layout, lv: &Layout) -> Result<(Geometry, View, View, View)> {
        let (h, kvh, hd) = (self.heads, self.kv_heads, self.head_dim);
        if kvh == 0 || h % kvh != 0 {
            candle_core::bail!("fused-attention: {h} query heads do not group over {kvh} K/V heads");
        }
        let qv = View::of(lq, h, hd, "Q")?;
        let kv = View::of(lk, kvh, hd, "K")?;
        let vv = View::of(lv, kvh, hd, "V")?;
        let batch = lq.dims()[0];
        if lk.dims()[0] != batch || lv.dims()[0] != batch || kv.tokens != vv.tokens {
            candle_core::bail!("fused-attention: Q {:?}, K {:?}, V {:?} disagree", lq.dims(), lk.dims(), lv.dims());
        }
        let (t, s) = (qv.tokens, kv.tokens);
        if self.bias.dims() != [batch, 1, t, s] {
            candle_core::bail!("fused-attention: mask {:?}, expected [{batch}, 1, {t}, {s}]", self.bias.dims());
        }
        let g = Geometry { causal: self.causal, batch, t, s, heads: h, kv: kvh, hd, scale: 1.0 / (hd as f64).sqrt() };
        Ok((g, qv, kv, vv))
    }

    fn fwd_typed<T: Elem>(&self, s: [&CpuStorage; 3], l: [&Layout; 3]) -> Result<(Vec<T>, Geometry)> {
        let (g, qv, kv, vv) = self.geometry(l[0], l[1], l[2])?;
        let (q, k, v) = (T::slice(s[0])?, T::slice(s[1])?, T::slice(s[2])?);
        let out = with_data::<T, _>(&self.bias, "attention mask", |bias| {
            if self.save {
                let mut p = vec![T::zero(); g.batch * g.heads * g.t * g.s];
                let out = forward(&g, q, qv, k, kv, v, vv, bias, Some(&mut p));
                *self.probs.lock().unwrap() = Some(T::storage(p));
                Ok(out)
            } else {
                Ok(forward(&g, q, qv, k, kv, v, vv, bias, None))
            }
        })?;
        Ok((out, g))
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "fused-attention"
    }

    fn cpu_fwd(
        &self,
        sq: &CpuStorage,
        lq: &Layout,
        sk: &CpuStorage,
        lk: &Layout,
        sv: &CpuStorage,
        lv: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (out, g) = match sq {
            CpuStorage::F32(_) => {
                let (o, g) = self.fwd_typed::<f32>([sq, sk, sv], [lq, lk, lv])?;
                (CpuStorage::F32(o), g)
            }
            CpuStorage::F64(_) => {
                let (o, g) = self.fwd_typed::<f64>([sq, sk, sv], [lq, lk, lv])?;
                (CpuStorage::F64(o), g)
            }
            _ => candle_core::bail!("fused-attention: f32 or f64 only"),
        };
        Ok((out, Shape::from((g.batch, g.t, g.heads * g.hd))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _out: &Tensor,
        d_out: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        fn run<T: Elem>(a: &Attention, q: &Tensor, k: &Tensor, v: &Tensor, d_out: &Tensor) -> Result<[Tensor; 3]> {
            let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
            let (lq, lk, lv) =
                (Layout::contiguous(q.dims()), Layout::contiguous(k.dims()), Layout::contiguous(v.dims()));
            let (g, qv, kv, vv) = a.geometry(&lq, &lk, &lv)?;
            let saved = a.probs.lock().unwrap();
            let Some(probs) = saved.as_ref() else {
                candle_core::bail!("fused-attention: backward without saved probabilities (built with save = false)")
            };
            let probs = T::slice(probs)?;
            let [dq, dk, dv] = with_data::<T, _>(&a.bias, "attention mask", |bias| {
                with_data::<T, _>(&q, "attention", |qs| {
                    with_data::<T, _>(&k, "attention", |ks| {
                        with_data::<T, _>(&v, "attention", |vs| {
                            with_data::<T, _>(d_out, "attention", |gs| {
                                Ok(backward(&g, qs, qv, ks, kv, vs, vv, probs, gs, bias))
                            })
                        })
                    })
                })
            })?;
            Ok([tensor(dq, q.dims())?, tensor(dk, k.dims())?, tensor(dv, v.dims())?])
        }
        let [dq, dk, dv] = match q.dtype() {
            DType::F32 => run::<f32>(self, q, k, v, d_out)?,
            _ => run::<f64>(self, q, k, v, d_out)?,
        };
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

/// Attention of `q` (`[B, T, heads·hd]` or `[B, heads, T, hd]`) over `k`, `v` (same forms with
/// the K/V heads and S tokens) under the additive mask `bias` (`[B, 1, T, S]`); returns
/// `[B, T, heads·hd]`.
///
/// `causal`: the caller guarantees the mask hides every key after each query's own position
/// (true for [`crate::model::attention_bias`]); the kernel then skips those keys' work.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
    heads: usize,
    kv_heads: usize,
    causal: bool,
) -> Result<Tensor> {
    let head_dim = q.dims().last().copied().unwrap_or(0) / if q.rank() == 3 { heads.max(1) } else { 1 };
    let save = q.track_op() || k.track_op() || v.track_op();
    let op = Attention { heads, kv_heads, head_dim, bias: bias.contiguous()?, save, causal, probs: Mutex::new(None) };
    q.apply_op3(k, v, op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::*;
    use crate::model::attention_bias;
    use candle_core::{Device, D};

    const B: usize = 3;
    const T: usize = 7;
    const H: usize = 4;
    const KV: usize = 2;
    const HD: usize = 5;

    /// Left-padded rows of different lengths, causal.
    fn mask(dtype: DType) -> Tensor {
        let valid: Vec<Vec<bool>> = [0usize, 2, 4].iter().map(|&pad| (0..T).map(|i| i >= pad).collect()).collect();
        attention_bias(&valid, T, &Device::Cpu, dtype).unwrap()
    }

    fn composed(q: &Tensor, k: &Tensor, v: &Tensor, bias: &Tensor) -> Tensor {
        let (b, t, _) = q.dims3().unwrap();
        let s = k.dim(1).unwrap();
        let q4 = q.reshape((b, t, H, HD)).unwrap().transpose(1, 2).unwrap();
        let idx =
            Tensor::from_vec((0..H as u32).map(|h| h / (H / KV) as u32).collect::<Vec<_>>(), H, &Device::Cpu).unwrap();
        let heads = |x: &Tensor| {
            x.reshape((b, s, KV, HD))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
                .index_select(&idx, 1)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let (k4, v4) = (heads(k), heads(v));
        let scores = (q4.contiguous().unwrap().matmul(&k4.t().unwrap()).unwrap() / (HD as f64).sqrt()).unwrap();
        let p = candle_nn::ops::softmax(&scores.broadcast_add(bias).unwrap(), D::Minus1).unwrap();
        p.matmul(&v4).unwrap().transpose(1, 2).unwrap().reshape((b, t, H * HD)).unwrap()
    }

    #[test]
    fn matches_composed_forward_and_backward() {
        let bias = mask(DType::F32);
        let q = randn(&[B, T, H * HD], 1, DType::F32);
        let k = randn(&[B, T, KV * HD], 2, DType::F32);
        let v = randn(&[B, T, KV * HD], 3, DType::F32);
        check_against_composed(
            &[q, k, v],
            |x| attention(&x[0], &x[1], &x[2], &bias, H, KV, true).unwrap(),
            |x| composed(&x[0], &x[1], &x[2], &bias),
            1e-5,
        );
    }

    /// Finite differences need every query row to see at least one key: a fully masked pad row
    /// sits at −1e9, where an f64 step of 1e-6 is below the rounding, so pad at the end here.
    #[test]
    fn gradients_match_finite_differences() {
        let valid: Vec<Vec<bool>> = [0usize, 2, 4].iter().map(|&pad| (0..T).map(|i| i < T - pad).collect()).collect();
        let bias = attention_bias(&valid, T, &Device::Cpu, DType::F64).unwrap();
        let q = randn(&[B, T, H * HD], 4, DType::F64);
        let k = randn(&[B, T, KV * HD], 5, DType::F64);
        let v = randn(&[B, T, KV * HD], 6, DType::F64);
        check_finite_differences(
            &[q, k, v],
            |x| attention(&x[0], &x[1], &x[2], &bias, H, KV, true).unwrap(),
            &[0, 1, 2],
        );
    }

    /// Long rows (several 32-row blocks) with heavy left padding: the causal block skipping,
    /// including rows whose visible keys are all padding, gives the composed result exactly
    /// (every row, every gradient), as does the unblocked path.
    #[test]
    fn causal_blocks_match_composed() {
        let t = 70;
        let valid: Vec<Vec<bool>> = [0usize, 40, 3].iter().map(|&pad| (0..t).map(|i| i >= pad).collect()).collect();
        let bias = attention_bias(&valid, t, &Device::Cpu, DType::F32).unwrap();
        let q = randn(&[B, t, H * HD], 21, DType::F32);
        let k = randn(&[B, t, KV * HD], 22, DType::F32);
        let v = randn(&[B, t, KV * HD], 23, DType::F32);
        for causal in [true, false] {
            check_against_composed(
                &[q.clone(), k.clone(), v.clone()],
                |x| attention(&x[0], &x[1], &x[2], &bias, H, KV, causal).unwrap(),
                |x| composed(&x[0], &x[1], &x[2], &bias),
                1e-5,
            );
        }
    }

    /// Keys and values read in place from a `[B, KV, capacity, hd]` cache (a strided view), with
    /// queries for only the last 2 positions, give the full forward's last 2 rows.
    #[test]
    fn reads_a_kv_cache_view() {
        let bias = mask(DType::F32);
        let q = randn(&[B, T, H * HD], 7, DType::F32);
        let k = randn(&[B, T, KV * HD], 8, DType::F32);
        let v = randn(&[B, T, KV * HD], 9, DType::F32);
        let full = attention(&q, &k, &v, &bias, H, KV, true).unwrap();
        let cache = |x: &Tensor| {
            let c = Tensor::zeros((B, KV, 16, HD), DType::F32, &Device::Cpu).unwrap();
            c.slice_set(&x.reshape((B, T, KV, HD)).unwrap().transpose(1, 2).unwrap().contiguous().unwrap(), 2, 0)
                .unwrap();
            c.narrow(2, 0, T).unwrap()
        };
        let q_last = q.narrow(1, T - 2, 2).unwrap();
        let bias_last = bias.narrow(2, T - 2, 2).unwrap();
        let part = attention(&q_last, &cache(&k), &cache(&v), &bias_last, H, KV, true).unwrap();
        let d = max_abs_diff(&part, &full.narrow(1, T - 2, 2).unwrap());
        assert!(d < 1e-6, "cache view differs: {d:e}");
    }
}
