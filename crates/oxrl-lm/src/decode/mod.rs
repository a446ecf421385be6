//! The packed decoder: generation (prefill and decode steps) on weights packed once, with no
//! tensor graph.
//!
//! A decode step of a small model is dozens of tiny operations; run as candle ops each is a
//! graph node, an allocation and a meeting of the thread pool, and each GEMM re-packs its weight
//! matrix (the candle path's profile: weight packing 15 % and thread hand-offs 17 % of batch-64
//! decoding). Here the transformer's weights are packed once ([`gemm::PackedMatrix`]: q/k/v as one
//! product, gate/up as one) and cached in the [`Transformer`] while a fingerprint of every weight's
//! bits is unchanged ([`PackedModel::of`]); a forward runs the whole layer stack for a block of
//! rows on one thread — embedding, RMSNorm, projections, Qwen3's q/k norms, rotary, attention over
//! the cache (grouped-query heads; padding, causal and sliding-window masks), SwiGLU MLP, final
//! norm and LM head — with the batch's rows split evenly over the threads, so the pool meets once
//! per step. A prefill is the same forward with several new tokens per row.
//!
//! It serves [`crate::sampler`] and [`crate::conversation`] for f32 CPU models without LoRA
//! adapters or a latent module. Each row's result depends only on that row (see [`gemm`]), so
//! generation is the same whatever the thread count. It matches the candle forward to f32
//! rounding (tests below: logits within 1e-4 for the Qwen2, Qwen3 and Llama layouts, grouped-query
//! heads, biases, sliding windows, untied heads). `OXRL_DECODE=candle`, or
//! [`Transformer::packed_decode`] = false, keeps generation on candle.

pub mod gemm;

use crate::kernels::attention::softmax_rows;
use crate::kernels::rms_norm::inv_rms;
use crate::kernels::{exp_f32, lane_dot, tree};
use crate::model::{KvCache, Transformer};
use anyhow::{ensure, Result};
use candle_core::{DType, Tensor};
use gemm::PackedMatrix;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

struct PackedLayer {
    ln1: Vec<f32>,
    ln2: Vec<f32>,
    /// q, k and v projections stacked: `[h·hd + 2·g·hd]` outputs.
    qkv: PackedMatrix,
    o: PackedMatrix,
    /// gate and up projections stacked: `[2·ff]` outputs.
    gate_up: PackedMatrix,
    down: PackedMatrix,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    window: Option<usize>,
}

/// A transformer's weights packed for decoding.
pub struct PackedModel {
    d: usize,
    heads: usize,
    kv: usize,
    hd: usize,
    ff: usize,
    vocab: usize,
    eps: f64,
    embed: Vec<f32>,
    layers: Vec<PackedLayer>,
    norm: Vec<f32>,
    lm_head: PackedMatrix,
    /// Rotary tables `[max_pos, hd/2]`.
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// The weights' fingerprint when they were packed.
    fingerprint: u64,
    /// Key/value buffers of a finished generation, reused by the next (no fresh pages to fault
    /// in and zero on every call).
    spare: Mutex<(Vec<f32>, Vec<f32>)>,
}

fn host(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

/// Every tensor the packed decoder reads, in a fixed order.
fn weights(model: &Transformer) -> Vec<&Tensor> {
    let mut all = vec![&model.embed, &model.norm, &model.lm_head];
    for l in &model.layers {
        let a = &l.attn;
        all.extend([&l.ln1, &l.ln2, &a.q, &a.k, &a.v, &a.o, &l.gate, &l.up, &l.down]);
        all.extend([&a.q_b, &a.k_b, &a.v_b, &a.o_b, &a.q_norm, &a.k_norm].into_iter().flatten());
    }
    all
}

/// A 64-bit fingerprint of the bits of every weight the decoder packs (16 interleaved FNV-1a
/// lanes over the f32 bit patterns, then mixed): any change to any weight changes it, except
/// with probability about 2⁻⁶⁴.
fn fingerprint(model: &Transformer) -> Result<u64> {
    let mut lanes = [0x811c_9dc5u32; 16];
    let mut total = 0u64;
    for t in weights(model) {
        let t = t.contiguous()?;
        let (storage, layout) = t.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*storage else { anyhow::bail!("packed decode: CPU weights only") };
        let (a, b) = layout.contiguous_offsets().expect("contiguous");
        let v = &cpu.as_slice::<f32>()?[a..b];
        total = total.wrapping_mul(31).wrapping_add(v.len() as u64);
        let chunks = v.chunks_exact(16);
        for (i, &x) in chunks.remainder().iter().enumerate() {
            lanes[i] = (lanes[i] ^ x.to_bits()).wrapping_mul(0x0100_0193);
        }
        for c in chunks {
            for l in 0..16 {
                lanes[l] = (lanes[l] ^ c[l].to_bits()).wrapping_mul(0x0100_0193);
            }
        }
    }
    let mut h = total ^ 0x9e37_79b9_7f4a_7c15;
    for (i, &l) in lanes.iter().enumerate() {
        // splitmix64 finaliser per lane, position-dependent.
        let mut z = h ^ ((l as u64) << 32 | i as u64);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h = z ^ (z >> 31);
    }
    Ok(h)
}

impl PackedModel {
    /// Whether `model`'s decoding can run here: CPU f32 on the fused path, no LoRA adapters, no
    /// latent module, not switched off.
    pub fn supports(model: &Transformer) -> bool {
        model.packed_decode
            && model.uses_fused_kernels()
            && model.dtype() == DType::F32
            && model.lora.is_none()
            && model.latent.is_none()
    }

    /// The model's packed weights: those packed by an earlier call while every weight is bit for
    /// bit what was packed (the fingerprint matches — weights change once per optimiser step,
    /// generation calls are many), else packed afresh.
    pub fn of(model: &Transformer) -> Result<Arc<Self>> {
        let fp = fingerprint(model)?;
        let mut slot = model.packed.lock().expect("packed-weights lock");
        if let Some(pm) = slot.as_ref().filter(|pm| pm.fingerprint == fp) {
            return Ok(pm.clone());
        }
        let pm = Arc::new(Self::pack(model, fp)?);
        *slot = Some(pm.clone());
        Ok(pm)
    }

    /// Pack `model`'s weights (always afresh; [`Self::of`] reuses them).
    pub fn new(model: &Transformer) -> Result<Self> {
        Self::pack(model, fingerprint(model)?)
    }

    fn pack(model: &Transformer, fingerprint: u64) -> Result<Self> {
        ensure!(Self::supports(model), "the packed decoder needs an f32 CPU model without LoRA or a latent module");
        let cfg = &model.cfg;
        let (d, heads, kv, hd, ff) =
            (cfg.hidden_size, cfg.num_attention_heads, cfg.kv_heads(), cfg.head_dim(), cfg.intermediate_size);
        let pack_layer = |l: &crate::model::Layer| -> Result<PackedLayer> {
            let a = &l.attn;
            let (q, k, v) = (host(&a.q)?, host(&a.k)?, host(&a.v)?);
            let qkv_bias = match (&a.q_b, &a.k_b, &a.v_b) {
                (None, None, None) => None,
                _ => {
                    let part = |b: &Option<Tensor>, n: usize| -> Result<Vec<f32>> {
                        b.as_ref().map_or(Ok(vec![0.0; n]), host)
                    };
                    Some([part(&a.q_b, heads * hd)?, part(&a.k_b, kv * hd)?, part(&a.v_b, kv * hd)?].concat())
                }
            };
            let (gate, up) = (host(&l.gate)?, host(&l.up)?);
            Ok(PackedLayer {
                ln1: host(&l.ln1)?,
                ln2: host(&l.ln2)?,
                qkv: PackedMatrix::stack(&[(&q, heads * hd), (&k, kv * hd), (&v, kv * hd)], d, qkv_bias),
                o: PackedMatrix::new(&host(&a.o)?, d, heads * hd, a.o_b.as_ref().map(host).transpose()?),
                gate_up: PackedMatrix::stack(&[(&gate, ff), (&up, ff)], d, None),
                down: PackedMatrix::new(&host(&l.down)?, d, ff, None),
                q_norm: a.q_norm.as_ref().map(host).transpose()?,
                k_norm: a.k_norm.as_ref().map(host).transpose()?,
                window: l.window,
            })
        };
        let layers = model.layers.par_iter().map(pack_layer).collect::<Result<Vec<_>>>()?;
        Ok(Self {
            d,
            heads,
            kv,
            hd,
            ff,
            vocab: cfg.vocab_size,
            eps: cfg.rms_norm_eps,
            embed: host(&model.embed)?,
            layers,
            norm: host(&model.norm)?,
            lm_head: PackedMatrix::new(&host(&model.lm_head)?, cfg.vocab_size, d, None),
            cos: model.cos_host.iter().map(|&c| c as f32).collect(),
            sin: model.sin_host.iter().map(|&s| s as f32).collect(),
            fingerprint,
            spare: Mutex::new((Vec::new(), Vec::new())),
        })
    }

    /// Hand a finished generation's cache buffers back for the next one (`st` is left empty).
    pub fn recycle(&self, st: &mut DecodeState) {
        *self.spare.lock().expect("spare buffers lock") = (std::mem::take(&mut st.k), std::mem::take(&mut st.v));
        st.rows = 0;
        st.key_pos.clear();
    }

    /// Floats of one row's cache (`[layers, kv heads, capacity, head dim]`).
    fn row_size(&self, cap: usize) -> usize {
        self.layers.len() * self.kv * cap * self.hd
    }

    /// Run `t` new tokens of every row of `st` through the model — a prefill (`t` = the padded
    /// prompt length), a decode step (`t` = 1) or a ragged extension — and return row `i`'s
    /// logits after its new token `last[i]` (`[rows][vocab]`). `tokens` and `pos` are `[rows, t]`
    /// (ids and rotary positions); `valid[i]` is row `i`'s key mask over all `st.len + t`
    /// positions (false: padding, or a finished row's later tokens). New token `τ` attends to the
    /// valid keys up to its own position (causal), inside its layer's window, through the fused
    /// attention kernel's masked softmax (a token that sees no valid key — left padding —
    /// spreads over every key up to it, as the candle path does; nothing reads it).
    pub fn forward(
        &self,
        st: &mut DecodeState,
        tokens: &[u32],
        t: usize,
        pos: &[u32],
        valid: &[&[bool]],
        last: &[usize],
    ) -> Result<Vec<Vec<f32>>> {
        let rows = st.rows;
        ensure!(t > 0, "packed decode: no new tokens");
        ensure!(
            tokens.len() == rows * t && pos.len() == rows * t && valid.len() == rows && last.len() == rows,
            "packed decode: {rows} rows of {t} tokens expected"
        );
        ensure!(last.iter().all(|&j| j < t), "packed decode: a row's last token is past the {t} new ones");
        ensure!(st.len + t <= st.cap, "KV cache overflow: {} + {t} > capacity {}", st.len, st.cap);
        ensure!(
            valid.iter().all(|v| v.len() == st.len + t),
            "packed decode: each key mask needs {} entries",
            st.len + t
        );
        for (&tok, &p) in tokens.iter().zip(pos) {
            ensure!((tok as usize) < self.vocab, "token {tok} is outside the vocabulary of {}", self.vocab);
            ensure!(
                ((p as usize) + 1) * (self.hd / 2) <= self.cos.len(),
                "rotary position {p} is beyond the model's positions"
            );
        }
        for (kp, p) in st.key_pos.iter_mut().zip(pos.chunks(t)) {
            kp.truncate(st.len);
            kp.extend_from_slice(p);
        }
        let mut logits = vec![0f32; rows * self.vocab];
        if rows > 0 {
            // Rows split evenly over the threads. (Fewer rows than threads — batch 1 — run on one:
            // splitting each product's columns over rayon tasks instead measured 2.2 k against
            // 5.0 k tokens/s, the tasks' hand-offs costing more than the second core gives.)
            let per = rows.div_ceil(rayon::current_num_threads().clamp(1, rows));
            let rs = self.row_size(st.cap);
            let (len, cap) = (st.len, st.cap);
            let key_pos = &st.key_pos;
            st.k.par_chunks_mut(per * rs)
                .zip(st.v.par_chunks_mut(per * rs))
                .zip(logits.par_chunks_mut(per * self.vocab))
                .enumerate()
                .for_each(|(c, ((k, v), out))| {
                    let r = c * per..((c + 1) * per).min(rows);
                    let chunk = Chunk {
                        k,
                        v,
                        cap,
                        len,
                        t,
                        tokens: &tokens[r.start * t..r.end * t],
                        pos: &pos[r.start * t..r.end * t],
                        valid: &valid[r.clone()],
                        key_pos: &key_pos[r.clone()],
                        last: &last[r],
                    };
                    // Compiled for AVX-512 / AVX2 where the CPU has them (same bits on each).
                    crate::kernels::simd(
                        #[inline(always)]
                        || self.chunk(chunk, out),
                    )
                });
        }
        st.len += t;
        Ok(logits.chunks(self.vocab.max(1)).map(<[f32]>::to_vec).collect())
    }

    /// One decode step: [`Self::forward`] with one new token per row.
    pub fn step(&self, st: &mut DecodeState, tokens: &[u32], pos: &[u32], valid: &[&[bool]]) -> Result<Vec<Vec<f32>>> {
        self.forward(st, tokens, 1, pos, valid, &vec![0; st.rows])
    }

    /// A block of rows on the calling thread, in groups of at most [`GROUP_TOKENS`] tokens (a
    /// long prefill's activations stay small).
    #[inline(always)]
    fn chunk(&self, c: Chunk, logits: &mut [f32]) {
        let t = c.t;
        let rows = c.valid.len();
        let group = (GROUP_TOKENS / t).max(1);
        let rs = self.row_size(c.cap);
        // The thread's activation buffers, kept between steps (fresh ones fault in and zero new
        // pages on every step: 4-5 % of batch-64 decoding in a profile). Taken out and put back
        // rather than used inside `with`: a closure would not be compiled with this function's
        // target features.
        let mut b = BUFFERS.take();
        let mut g0 = 0;
        while g0 < rows {
            let g1 = (g0 + group).min(rows);
            let sub = Chunk {
                k: &mut c.k[g0 * rs..g1 * rs],
                v: &mut c.v[g0 * rs..g1 * rs],
                tokens: &c.tokens[g0 * t..g1 * t],
                pos: &c.pos[g0 * t..g1 * t],
                valid: &c.valid[g0..g1],
                key_pos: &c.key_pos[g0..g1],
                last: &c.last[g0..g1],
                ..c
            };
            self.group(sub, &mut logits[g0 * self.vocab..g1 * self.vocab], &mut b);
            g0 = g1;
        }
        BUFFERS.set(b);
    }

    /// The whole forward of a group of rows: every layer for their `t` new tokens, then the
    /// final norm and the LM head on each row's last token.
    #[inline(always)]
    fn group(&self, c: Chunk, logits: &mut [f32], b: &mut Buffers) {
        let t = c.t;
        let m = c.tokens.len();
        let (d, h, g, hd, ff) = (self.d, self.heads, self.kv, self.hd, self.ff);
        let (rep, half) = (h / g, hd / 2);
        let nqkv = (h + 2 * g) * hd;
        let rs = self.row_size(c.cap);
        let scale = 1.0 / (hd as f32).sqrt();
        let sized = |v: &mut Vec<f32>, n: usize| {
            v.clear();
            v.resize(n, 0.0);
        };
        let Buffers { x, hn, qkv, ctx, tmp, gu, act, scores, bias } = b;
        sized(x, m * d);
        sized(hn, m * d);
        sized(qkv, m * nqkv);
        sized(ctx, m * h * hd);
        sized(tmp, m * d);
        sized(gu, m * 2 * ff);
        sized(act, m * ff);
        sized(scores, c.len + t);
        sized(bias, c.len + t);
        for (row, &tok) in x.chunks_exact_mut(d).zip(c.tokens) {
            row.copy_from_slice(&self.embed[tok as usize * d..(tok as usize + 1) * d]);
        }
        for (li, layer) in self.layers.iter().enumerate() {
            rms_rows(x, &layer.ln1, self.eps, hn);
            layer.qkv.matmul(hn, m, qkv);
            // Norms, rotary and the cache writes of every new token first; then attention.
            for (i, row) in qkv.chunks_exact_mut(nqkv).enumerate() {
                let (q, rest) = row.split_at_mut(h * hd);
                let (k, v) = rest.split_at_mut(g * hd);
                // (Plain loops: an iterator adaptor's closure is compiled apart from this
                // function and without its target features.)
                if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
                    for x in q.chunks_exact_mut(hd) {
                        rms_in_place(x, qn, self.eps);
                    }
                    for x in k.chunks_exact_mut(hd) {
                        rms_in_place(x, kn, self.eps);
                    }
                }
                let p = c.pos[i] as usize;
                let (cos, sin) = (&self.cos[p * half..(p + 1) * half], &self.sin[p * half..(p + 1) * half]);
                for x in q.chunks_exact_mut(hd) {
                    rope(x, cos, sin);
                }
                for x in k.chunks_exact_mut(hd) {
                    rope(x, cos, sin);
                }
                let (r, tau) = (i / t, i % t);
                for gi in 0..g {
                    let at = r * rs + ((li * g + gi) * c.cap + c.len + tau) * hd;
                    c.k[at..at + hd].copy_from_slice(&k[gi * hd..(gi + 1) * hd]);
                    c.v[at..at + hd].copy_from_slice(&v[gi * hd..(gi + 1) * hd]);
                }
            }
            for i in 0..m {
                let (r, tau) = (i / t, i % t);
                let s = c.len + tau + 1;
                let (kc, vc) = (&c.k[r * rs..(r + 1) * rs], &c.v[r * rs..(r + 1) * rs]);
                // The additive mask of this query (once for all heads): 0 for the valid keys up
                // to it inside the layer's window, −1e9 (the candle path's value) elsewhere.
                let (valid, kpos, qpos) = (c.valid[r], &c.key_pos[r], c.pos[i] as i64);
                for (j, bj) in bias[..s].iter_mut().enumerate() {
                    let seen = valid[j] && layer.window.is_none_or(|w| qpos - (kpos[j] as i64) < w as i64);
                    *bj = if seen { 0.0 } else { -1e9 };
                }
                let q = &qkv[i * nqkv..i * nqkv + h * hd];
                for hh in 0..h {
                    let base = (li * g + hh / rep) * c.cap * hd;
                    // Ask for the next K/V head's keys and values (the next row's first head
                    // after the last) while this one's query heads are scored: each head's cache is a short
                    // stream (a few KiB) that the hardware prefetcher only picks up after its
                    // first misses; batch-64 decoding ran 9-12 % faster with this (one head
                    // ahead measured best; eight ahead no better than none).
                    if hh % rep == 0 {
                        let ahead = r * g + hh / rep + 1;
                        let (nr, ng) = (ahead / g, ahead % g);
                        if nr < m / t {
                            let nb = nr * rs + (li * g + ng) * c.cap * hd;
                            let ns = (c.len + t) * hd;
                            prefetch(&c.k[nb..nb + ns]);
                            prefetch(&c.v[nb..nb + ns]);
                        }
                    }
                    let qh = &q[hh * hd..(hh + 1) * hd];
                    dots(qh, &kc[base..base + s * hd], &mut scores[..s]);
                    softmax_rows(&mut scores[..s], &bias[..s], s, scale);
                    let o = &mut ctx[i * h * hd + hh * hd..i * h * hd + (hh + 1) * hd];
                    weighted_sum(&scores[..s], &vc[base..base + s * hd], o);
                }
            }
            layer.o.matmul(ctx, m, tmp);
            x.iter_mut().zip(tmp.iter()).for_each(|(a, b)| *a += b);
            rms_rows(x, &layer.ln2, self.eps, hn);
            layer.gate_up.matmul(hn, m, gu);
            for (a, row) in act.chunks_exact_mut(ff).zip(gu.chunks_exact(2 * ff)) {
                let (gate, up) = row.split_at(ff);
                for ((o, &gv), &uv) in a.iter_mut().zip(gate).zip(up) {
                    *o = gv * (1.0 / (1.0 + exp_f32(-gv))) * uv;
                }
            }
            layer.down.matmul(act, m, tmp);
            x.iter_mut().zip(tmp.iter()).for_each(|(a, b)| *a += b);
        }
        // Each row's last token only.
        let rows = m / t;
        let last: Vec<f32> =
            (0..rows).flat_map(|r| x[(r * t + c.last[r]) * d..(r * t + c.last[r] + 1) * d].iter().copied()).collect();
        let mut hl = vec![0f32; rows * d];
        rms_rows(&last, &self.norm, self.eps, &mut hl);
        self.lm_head.matmul(&hl, rows, logits);
    }
}

/// A thread's activation buffers (see [`PackedModel::chunk`]).
#[derive(Default)]
struct Buffers {
    x: Vec<f32>,
    hn: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    tmp: Vec<f32>,
    gu: Vec<f32>,
    act: Vec<f32>,
    scores: Vec<f32>,
    bias: Vec<f32>,
}

thread_local! {
    static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::new(Buffers::default());
}

/// Tokens per group of [`PackedModel::chunk`] (small in tests, so that they split groups).
const GROUP_TOKENS: usize = if cfg!(test) { 8 } else { 512 };

/// The rows one thread runs: their cache slices and inputs.
struct Chunk<'a> {
    k: &'a mut [f32],
    v: &'a mut [f32],
    cap: usize,
    len: usize,
    /// New tokens per row.
    t: usize,
    tokens: &'a [u32],
    pos: &'a [u32],
    valid: &'a [&'a [bool]],
    key_pos: &'a [Vec<u32>],
    /// Each row's token whose logits are returned.
    last: &'a [usize],
}

/// `out[j] = q · keys[j]` for consecutive key rows of `q.len()` elements. With a head dimension
/// divisible by 16, four keys at a time in 16 lanes each (independent chains the vector units
/// overlap, the head's query in registers); every key's lanes are summed as [`lane_dot`] sums
/// them, whichever block it falls in.
#[inline(always)]
fn dots(q: &[f32], keys: &[f32], out: &mut [f32]) {
    let hd = q.len();
    if !hd.is_multiple_of(16) {
        for (o, k) in out.iter_mut().zip(keys.chunks_exact(hd)) {
            *o = lane_dot(q, k);
        }
        return;
    }
    let mut blocks = out.chunks_exact_mut(4);
    let mut key_blocks = keys.chunks_exact(4 * hd);
    for (o, k) in (&mut blocks).zip(&mut key_blocks) {
        let (k0, rest) = k.split_at(hd);
        let (k1, rest) = rest.split_at(hd);
        let (k2, k3) = rest.split_at(hd);
        let mut acc = [[0f32; 16]; 4];
        let lanes = |x: &[f32]| -> [f32; 16] { x.try_into().expect("16 lanes") };
        for ((((qc, c0), c1), c2), c3) in q
            .chunks_exact(16)
            .zip(k0.chunks_exact(16))
            .zip(k1.chunks_exact(16))
            .zip(k2.chunks_exact(16))
            .zip(k3.chunks_exact(16))
        {
            let (qc, c) = (lanes(qc), [lanes(c0), lanes(c1), lanes(c2), lanes(c3)]);
            for t in 0..4 {
                for l in 0..16 {
                    acc[t][l] += qc[l] * c[t][l];
                }
            }
        }
        for (ot, a) in o.iter_mut().zip(&acc) {
            *ot = tree(*a, |x, y| x + y);
        }
    }
    for (o, k) in blocks.into_remainder().iter_mut().zip(key_blocks.remainder().chunks_exact(hd)) {
        *o = lane_dot(q, k);
    }
}

/// `o = Σ_j p[j] · values[j]` over consecutive value rows of `o.len()` elements, skipping
/// zero weights; each element summed in key order. The output is kept in registers in pieces of
/// 64 (or 16) elements while the values stream past.
#[inline(always)]
fn weighted_sum(p: &[f32], values: &[f32], o: &mut [f32]) {
    #[inline(always)]
    fn pieces<const W: usize>(p: &[f32], values: &[f32], o: &mut [f32]) {
        let hd = o.len();
        for c in (0..hd).step_by(W) {
            let mut acc = [0f32; W];
            for (&pj, row) in p.iter().zip(values.chunks_exact(hd)) {
                if pj != 0.0 {
                    let v: &[f32; W] = row[c..c + W].try_into().expect("W lanes");
                    for l in 0..W {
                        acc[l] += pj * v[l];
                    }
                }
            }
            o[c..c + W].copy_from_slice(&acc);
        }
    }
    match o.len() {
        hd if hd.is_multiple_of(64) => pieces::<64>(p, values, o),
        hd if hd.is_multiple_of(16) => pieces::<16>(p, values, o),
        hd => {
            o.fill(0.0);
            for (&pj, v) in p.iter().zip(values.chunks_exact(hd)) {
                if pj != 0.0 {
                    o.iter_mut().zip(v).for_each(|(oe, &ve)| *oe += pj * ve);
                }
            }
        }
    }
}

/// Ask for `data`'s cache lines ahead of their use.
#[inline(always)]
fn prefetch(data: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in data.chunks(16) {
        // SAFETY: a prefetch only hints the cache; the address is inside `data`.
        unsafe { std::arch::x86_64::_mm_prefetch(line.as_ptr() as *const i8, std::arch::x86_64::_MM_HINT_T0) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// RMSNorm of every row of `x` into `out`.
#[inline(always)]
fn rms_rows(x: &[f32], w: &[f32], eps: f64, out: &mut [f32]) {
    for (xr, or) in x.chunks_exact(w.len()).zip(out.chunks_exact_mut(w.len())) {
        let r = inv_rms(xr, eps);
        for ((o, &a), &b) in or.iter_mut().zip(xr).zip(w) {
            *o = a * r * b;
        }
    }
}

#[inline(always)]
fn rms_in_place(x: &mut [f32], w: &[f32], eps: f64) {
    let r = inv_rms(x, eps);
    x.iter_mut().zip(w).for_each(|(a, &b)| *a = *a * r * b);
}

/// Rotate-half rotary embedding of one head.
#[inline(always)]
fn rope(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let (x1, x2) = x.split_at_mut(cos.len());
    for (((a, b), &c), &s) in x1.iter_mut().zip(x2.iter_mut()).zip(cos).zip(sin) {
        let (u, w) = (*a, *b);
        *a = u * c - w * s;
        *b = w * c + u * s;
    }
}

/// The packed decoder's KV cache: per row `[layers, kv heads, capacity, head dim]` keys and
/// values (rows contiguous, so threads own disjoint slices), and each cached key's rotary
/// position (for sliding windows).
pub struct DecodeState {
    rows: usize,
    pub len: usize,
    cap: usize,
    /// Cache blocks per row (layers × kv heads) and their head dimension.
    blocks: usize,
    head_dim: usize,
    k: Vec<f32>,
    v: Vec<f32>,
    key_pos: Vec<Vec<u32>>,
}

impl DecodeState {
    /// An empty cache for `rows` sequences of up to `capacity` positions (buffers of an earlier
    /// generation reused: slots are written before they are read, so they need no zeroing).
    pub fn new(pm: &PackedModel, rows: usize, capacity: usize) -> Self {
        let n = rows * pm.row_size(capacity);
        let (mut k, mut v) = std::mem::take(&mut *pm.spare.lock().expect("spare buffers lock"));
        k.resize(n, 0.0);
        v.resize(n, 0.0);
        Self {
            rows,
            len: 0,
            cap: capacity,
            blocks: pm.layers.len() * pm.kv,
            head_dim: pm.hd,
            k,
            v,
            key_pos: vec![Vec::new(); rows],
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Grow the capacity to at least `need` positions (at least doubling), keeping what is
    /// filled.
    pub fn reserve(&mut self, need: usize) {
        if need <= self.cap {
            return;
        }
        let cap = need.max(2 * self.cap);
        let (hd, blocks) = (self.head_dim, self.rows * self.blocks);
        // Every (row, layer, kv head) block of `cap × head_dim` floats moves to its new stride.
        let grow = |old: &[f32]| -> Vec<f32> {
            let mut new = vec![0f32; blocks * cap * hd];
            if hd > 0 {
                for (dst, src) in new.chunks_exact_mut(cap * hd).zip(old.chunks_exact(self.cap * hd)) {
                    dst[..self.len * hd].copy_from_slice(&src[..self.len * hd]);
                }
            }
            new
        };
        self.k = grow(&self.k);
        self.v = grow(&self.v);
        self.cap = cap;
    }

    /// Keep only the given rows (in that order), e.g. to drop finished sequences.
    pub fn keep_rows(&mut self, keep: &[usize]) {
        assert!(keep.iter().all(|&r| r < self.rows), "keep_rows: row out of range");
        let rs = self.k.len() / self.rows.max(1);
        if keep.windows(2).all(|w| w[0] < w[1]) {
            // Increasing: compact in place (each row moves towards the front).
            for (to, &from) in keep.iter().enumerate() {
                self.k.copy_within(from * rs..(from + 1) * rs, to * rs);
                self.v.copy_within(from * rs..(from + 1) * rs, to * rs);
            }
            self.k.truncate(keep.len() * rs);
            self.v.truncate(keep.len() * rs);
        } else {
            let pick = |b: &[f32]| -> Vec<f32> {
                keep.iter().flat_map(|&r| b[r * rs..(r + 1) * rs].iter().copied()).collect()
            };
            self.k = pick(&self.k);
            self.v = pick(&self.v);
        }
        self.key_pos = keep.iter().map(|&r| self.key_pos[r].clone()).collect();
        self.rows = keep.len();
    }
}

/// A generation's cache on whichever path serves its model: the packed decoder's state (models
/// [`PackedModel::supports`]) or candle's KV cache. Shared by the sampler and multi-turn
/// conversations; dropping it hands the packed buffers back for the next generation.
pub enum Cache {
    Candle(KvCache),
    Packed(Arc<PackedModel>, DecodeState),
}

impl Cache {
    /// An empty cache for `rows` sequences of up to `capacity` positions.
    pub fn new(model: &Transformer, rows: usize, capacity: usize) -> Result<Self> {
        Ok(if PackedModel::supports(model) {
            let pm = PackedModel::of(model)?;
            let st = DecodeState::new(&pm, rows, capacity);
            Self::Packed(pm, st)
        } else {
            Self::Candle(KvCache::new(&model.cfg, rows, capacity, model.dtype(), model.device())?)
        })
    }

    /// Keep only the given rows (in that order); keeping none leaves a candle cache as it is
    /// (it is not read again).
    pub fn keep_rows(&mut self, keep: &[usize]) -> Result<()> {
        match self {
            Self::Packed(_, st) => st.keep_rows(keep),
            Self::Candle(cache) if !keep.is_empty() => {
                let idx: Vec<u32> = keep.iter().map(|&i| i as u32).collect();
                if let Some(dev) = cache.k.first().map(|t| t.device().clone()) {
                    cache.keep_rows(&Tensor::new(idx.as_slice(), &dev)?)?;
                }
            }
            Self::Candle(_) => {}
        }
        Ok(())
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        if let Self::Packed(pm, st) = self {
            pm.recycle(st);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::model::{attention_bias, positions, KvCache, Mode};
    use crate::params::ParamStore;
    use candle_core::Device;
    use rand::{Rng, SeedableRng};

    /// A model whose biases and norm weights are random too (they are 0 and 1 at init).
    fn model(cfg: &ModelConfig, seed: u64) -> Result<Transformer> {
        let params = ParamStore::init(cfg, seed, DType::F32, &Device::Cpu)?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        for (name, var) in params.named_vars() {
            if name.ends_with(".bias") || name.ends_with("norm.weight") {
                let n = var.as_tensor().elem_count();
                let base = if name.ends_with(".bias") { 0.0 } else { 1.0 };
                let data: Vec<f32> = (0..n).map(|_| base + rng.random_range(-0.5f32..0.5)).collect();
                var.set(&Tensor::from_vec(data, var.as_tensor().shape(), &Device::Cpu)?)?;
            }
        }
        Transformer::new(cfg.clone(), params)
    }

    fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
        a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    /// Prefill ragged (left-padded) prompts, then decode the same tokens, on the candle path and
    /// on the packed decoder (a row marked finished part-way, rows dropped part-way); the logits
    /// agree after the prefill and at every step.
    fn matches_candle(cfg: &ModelConfig, seed: u64) -> Result<()> {
        matches_model(&model(cfg, seed)?, cfg)
    }

    fn matches_model(m: &Transformer, cfg: &ModelConfig) -> Result<()> {
        assert!(PackedModel::supports(m));
        let dev = Device::Cpu;
        let prompts: Vec<Vec<u32>> = vec![vec![1, 5, 9, 3, 7], vec![2, 8], vec![4, 4, 6, 1, 9, 2, 5], vec![3, 1, 8]];
        let (ids, masks) = crate::sampler::left_pad(&prompts, 0);
        let (b, p) = (prompts.len(), masks[0].len());
        let pos0 = positions(&masks);
        let prefill = |cache: &mut KvCache| -> Result<Vec<Vec<f32>>> {
            let h = m.forward_hidden(
                &Tensor::from_vec(ids.clone(), (b, p), &dev)?,
                &Tensor::from_vec(pos0.concat(), (b, p), &dev)?,
                &attention_bias(&masks, p, &dev, DType::F32)?,
                Some(cache),
                Mode::Infer,
            )?;
            Ok(m.logits(&h.narrow(1, p - 1, 1)?.squeeze(1)?)?.to_vec2()?)
        };
        let cap = p + 8;
        let mut cc = KvCache::new(cfg, b, cap, DType::F32, &dev)?;
        let reference = prefill(&mut cc)?;
        let pm = PackedModel::of(m)?;
        let mut st = DecodeState::new(&pm, b, cap);
        let mrefs: Vec<&[bool]> = masks.iter().map(Vec::as_slice).collect();
        let packed = pm.forward(&mut st, &ids, p, &pos0.concat(), &mrefs, &vec![p - 1; b])?;
        let mut worst = max_diff(&reference, &packed);
        let mut scale = reference.iter().flatten().fold(0f32, |a, x| a.max(x.abs()));
        let mut valid = masks.clone();
        let mut next_pos: Vec<u32> = prompts.iter().map(|x| x.len() as u32).collect();
        let mut live: Vec<usize> = (0..b).collect();
        for step in 0..6 {
            if step == 3 {
                // Drop row 1 (finished) from both.
                let keep = [0usize, 2, 3];
                cc.keep_rows(&Tensor::new(&[0u32, 2, 3], &dev)?)?;
                st.keep_rows(&keep);
                valid = keep.iter().map(|&i| valid[i].clone()).collect();
                next_pos = keep.iter().map(|&i| next_pos[i]).collect();
                live = keep.iter().map(|&i| live[i]).collect();
            }
            let tokens: Vec<u32> = live.iter().map(|&r| ((r * 7 + step * 3) % cfg.vocab_size) as u32).collect();
            for (i, v) in valid.iter_mut().enumerate() {
                // Row 1 has finished at step 1: its later positions are masked, as the sampler does.
                v.push(!(live[i] == 1 && step >= 1));
            }
            let pos = next_pos.clone();
            next_pos.iter_mut().for_each(|x| *x += 1);
            let n = tokens.len();
            let h = m.forward_hidden(
                &Tensor::from_vec(tokens.clone(), (n, 1), &dev)?,
                &Tensor::from_vec(pos.clone(), (n, 1), &dev)?,
                &attention_bias(&valid, 1, &dev, DType::F32)?,
                Some(&mut cc),
                Mode::Infer,
            )?;
            let reference: Vec<Vec<f32>> = m.logits(&h.squeeze(1)?)?.to_vec2()?;
            let vrefs: Vec<&[bool]> = valid.iter().map(Vec::as_slice).collect();
            let packed = pm.step(&mut st, &tokens, &pos, &vrefs)?;
            worst = worst.max(max_diff(&reference, &packed));
            scale = scale.max(reference.iter().flatten().fold(0f32, |a, x| a.max(x.abs())));
        }
        assert!(scale > 0.1, "logits too small to test anything: {scale}");
        assert!(
            worst < 1e-4 * scale.max(1.0),
            "{}: max |packed − candle| = {worst} (logits up to {scale})",
            cfg.model_type
        );
        Ok(())
    }

    fn sized(mut c: ModelConfig) -> ModelConfig {
        c.vocab_size = 37;
        c.initializer_range = 0.1;
        c.max_position_embeddings = 64;
        c
    }

    #[test]
    fn qwen2_layout_matches_the_candle_forward() -> Result<()> {
        // Grouped-query heads (4 / 2), q/k/v biases, tied embeddings.
        matches_candle(&sized(ModelConfig::family("qwen2", 37)?), 1)
    }

    #[test]
    fn qwen3_layout_matches_the_candle_forward() -> Result<()> {
        // Per-head q/k RMSNorms.
        matches_candle(&sized(ModelConfig::family("qwen3", 37)?), 2)
    }

    #[test]
    fn llama_layout_with_untied_head_and_biases_matches_the_candle_forward() -> Result<()> {
        let mut c = sized(ModelConfig::family("llama", 37)?);
        c.tie_word_embeddings = false;
        c.attention_bias = Some(true);
        c.num_key_value_heads = Some(1);
        c.intermediate_size = 100;
        matches_candle(&c, 3)
    }

    #[test]
    fn sliding_window_layers_match_the_candle_forward() -> Result<()> {
        let mut c = sized(ModelConfig::family("qwen2", 37)?);
        c.use_sliding_window = Some(true);
        c.sliding_window = Some(3);
        c.max_window_layers = Some(2);
        assert!(c.window_for_layer(3).is_some() && c.window_for_layer(0).is_none());
        matches_candle(&c, 4)
    }

    /// The rows a thread decodes do not change any row's result: 1 and 3 threads give the same
    /// bits (7 rows: 3 blocks; 2 rows: fewer rows than threads), the second run on recycled
    /// cache buffers full of NaN (slots are written before they are read).
    #[test]
    fn results_do_not_depend_on_the_thread_count() -> Result<()> {
        let cfg = sized(ModelConfig::family("qwen2", 37)?);
        let m = model(&cfg, 5)?;
        let pm = PackedModel::new(&m)?;
        for b in [7, 2] {
            let run = |threads: usize| -> Result<Vec<Vec<Vec<f32>>>> {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
                pool.install(|| {
                    let mut st = DecodeState::new(&pm, b, 4);
                    let mut valid: Vec<Vec<bool>> = vec![vec![]; b];
                    let out = (0..3)
                        .map(|step| {
                            valid.iter_mut().for_each(|v| v.push(true));
                            let tokens: Vec<u32> = (0..b as u32).map(|r| (r * 5 + step * 2) % 37).collect();
                            let pos = vec![step; b];
                            let vr: Vec<&[bool]> = valid.iter().map(Vec::as_slice).collect();
                            pm.step(&mut st, &tokens, &pos, &vr)
                        })
                        .collect::<Result<Vec<_>>>();
                    // The next run reuses these buffers, stale contents and all.
                    pm.recycle(&mut st);
                    out
                })
            };
            let first = run(1)?;
            // Poison the recycled buffers: a slot read before it is written would turn up as NaN.
            let n = b * pm.row_size(4);
            *pm.spare.lock().unwrap() = (vec![f32::NAN; n], vec![f32::NAN; n]);
            assert_eq!(first, run(3)?);
        }
        Ok(())
    }

    /// Packed weights are reused while the weights are unchanged and repacked after any change,
    /// however small; the repacked decoder follows the changed model.
    #[test]
    fn packed_weights_are_reused_until_a_weight_changes() -> Result<()> {
        let cfg = sized(ModelConfig::family("qwen2", 37)?);
        let m = model(&cfg, 7)?;
        let first = PackedModel::of(&m)?;
        assert!(Arc::ptr_eq(&first, &PackedModel::of(&m)?));
        let vars = m.params.named_vars();
        let (_, var) = vars.iter().find(|(n, _)| n.contains("layers.2.mlp.down_proj")).expect("down_proj");
        let mut w = host(var.as_tensor())?;
        w[123] = f32::from_bits(w[123].to_bits() + 1);
        var.set(&Tensor::from_vec(w, var.as_tensor().shape(), &Device::Cpu)?)?;
        let second = PackedModel::of(&m)?;
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(Arc::ptr_eq(&second, &PackedModel::of(&m)?));
        matches_model(&m, &cfg)
    }

    #[test]
    fn bad_steps_are_refused() -> Result<()> {
        let cfg = sized(ModelConfig::family("qwen2", 37)?);
        let m = model(&cfg, 6)?;
        let pm = PackedModel::new(&m)?;
        let mut st = DecodeState::new(&pm, 1, 1);
        let err = pm.step(&mut st, &[40], &[0], &[&[true]]).unwrap_err();
        assert!(err.to_string().contains("outside the vocabulary"), "{err}");
        let err = pm.step(&mut st, &[1], &[0], &[&[true, true]]).unwrap_err();
        assert!(err.to_string().contains("key mask"), "{err}");
        pm.step(&mut st, &[1], &[0], &[&[true]])?;
        let err = pm.step(&mut st, &[1], &[1], &[&[true, true]]).unwrap_err();
        assert!(err.to_string().contains("overflow"), "{err}");
        Ok(())
    }
}
