//! Decoder-only transformer with Qwen2/Llama tensor names: RMSNorm, rotary position embeddings
//! (rotate-half convention), grouped-query attention, SwiGLU MLP, tied or untied embeddings.
//!
//! On CPU (f32/f64) every layer runs on oxrl's fused differentiable kernels
//! ([`crate::kernels`]: RMSNorm, linear, rotary, attention, SwiGLU — about a dozen autograd nodes
//! per layer). Elsewhere (CUDA, bf16), or with `fused = false`, it runs on composed candle ops,
//! which are the reference the kernels are tested against: candle-nn's own fused `rms_norm`,
//! `softmax_last_dim` and `rope*` drop gradients (see shared notes), so that path uses them only
//! in [`Mode::Infer`].
//!
//! Inputs are batched with explicit per-token positions and an additive attention bias, so
//! sequences of different lengths (left-padded prompts, right-padded responses) share one forward
//! pass; a preallocated [`KvCache`] serves incremental decoding.

use crate::config::ModelConfig;
use crate::kernels::{self, rope::RopeTable};
use crate::params::ParamStore;
use anyhow::Result;
use candle_core::{DType, Device, Tensor, D};

/// Training (composed, differentiable ops) or inference (fused kernels, no gradients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Infer,
}

struct Attention {
    q: Tensor,
    q_b: Option<Tensor>,
    k: Tensor,
    k_b: Option<Tensor>,
    v: Tensor,
    v_b: Option<Tensor>,
    o: Tensor,
    o_b: Option<Tensor>,
}

struct Layer {
    ln1: Tensor,
    attn: Attention,
    ln2: Tensor,
    gate: Tensor,
    up: Tensor,
    down: Tensor,
}

pub struct Transformer {
    pub cfg: ModelConfig,
    pub params: ParamStore,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Tensor,
    cos: Tensor,
    sin: Tensor,
    /// Host rotary tables `[max_pos, head_dim/2]` for the fused kernels.
    cos_host: Vec<f64>,
    sin_host: Vec<f64>,
    /// Use the fused kernels where supported (CPU, f32/f64). On by default; off gives the
    /// composed reference path (benchmarks compare the two).
    pub fused: bool,
}

/// Preallocated key/value cache: per layer `[batch, kv_heads, capacity, head_dim]`; `len` positions
/// are filled. New keys are written in place, never concatenated.
pub struct KvCache {
    k: Vec<Tensor>,
    v: Vec<Tensor>,
    pub len: usize,
    pub capacity: usize,
}

impl KvCache {
    pub fn new(cfg: &ModelConfig, batch: usize, capacity: usize, dtype: DType, device: &Device) -> Result<Self> {
        let shape = (batch, cfg.kv_heads(), capacity, cfg.head_dim());
        let mut k = Vec::with_capacity(cfg.num_hidden_layers);
        let mut v = Vec::with_capacity(cfg.num_hidden_layers);
        for _ in 0..cfg.num_hidden_layers {
            k.push(Tensor::zeros(shape, dtype, device)?);
            v.push(Tensor::zeros(shape, dtype, device)?);
        }
        Ok(Self { k, v, len: 0, capacity })
    }

    pub fn batch(&self) -> usize {
        self.k.first().map(|t| t.dim(0).unwrap_or(0)).unwrap_or(0)
    }

    /// Where `t` new positions go (0 without a cache); errors when they do not fit.
    fn offset_for(cache: Option<&KvCache>, t: usize) -> Result<usize> {
        match cache {
            None => Ok(0),
            Some(c) => {
                anyhow::ensure!(
                    c.len + t <= c.capacity,
                    "KV cache overflow: {} + {t} > capacity {}",
                    c.len,
                    c.capacity
                );
                Ok(c.len)
            }
        }
    }

    /// Keep only the given batch rows (in that order), e.g. to drop finished sequences.
    pub fn keep_rows(&mut self, rows: &Tensor) -> Result<()> {
        for t in self.k.iter_mut().chain(self.v.iter_mut()) {
            *t = t.index_select(rows, 0)?;
        }
        Ok(())
    }
}

fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let (n_in, n_out) = (dims[dims.len() - 1], w.dim(0)?);
    let rows: usize = dims[..dims.len() - 1].iter().product();
    let y = x.reshape((rows, n_in))?.matmul(&w.t()?)?;
    let y = match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    };
    let mut out = dims;
    *out.last_mut().unwrap() = n_out;
    Ok(y.reshape(out)?)
}

fn rms_norm(x: &Tensor, w: &Tensor, eps: f64, mode: Mode) -> Result<Tensor> {
    match mode {
        Mode::Infer => Ok(candle_nn::ops::rms_norm(&x.contiguous()?, w, eps as f32)?),
        Mode::Train => {
            let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
            Ok(x.broadcast_mul(&(ms + eps)?.sqrt()?.recip()?)?.broadcast_mul(w)?)
        }
    }
}

/// Rotary embedding, rotate-half convention: x·cos + rotate_half(x)·sin with per-token cos/sin of
/// shape `[B, 1, T, hd/2]`.
fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let a = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
    let b = (x2.broadcast_mul(cos)? + x1.broadcast_mul(sin)?)?;
    Ok(Tensor::cat(&[a, b], D::Minus1)?)
}

impl Transformer {
    pub fn new(cfg: ModelConfig, params: ParamStore) -> Result<Self> {
        cfg.validate()?;
        let p = |n: &str| params.tensor(n);
        let opt = |n: String| -> Result<Option<Tensor>> {
            params.get(&n).ok().map(|v| Ok(v.as_tensor().clone())).transpose()
        };
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = format!("model.layers.{i}");
            layers.push(Layer {
                ln1: p(&format!("{l}.input_layernorm.weight"))?,
                attn: Attention {
                    q: p(&format!("{l}.self_attn.q_proj.weight"))?,
                    q_b: opt(format!("{l}.self_attn.q_proj.bias"))?,
                    k: p(&format!("{l}.self_attn.k_proj.weight"))?,
                    k_b: opt(format!("{l}.self_attn.k_proj.bias"))?,
                    v: p(&format!("{l}.self_attn.v_proj.weight"))?,
                    v_b: opt(format!("{l}.self_attn.v_proj.bias"))?,
                    o: p(&format!("{l}.self_attn.o_proj.weight"))?,
                    o_b: opt(format!("{l}.self_attn.o_proj.bias"))?,
                },
                ln2: p(&format!("{l}.post_attention_layernorm.weight"))?,
                gate: p(&format!("{l}.mlp.gate_proj.weight"))?,
                up: p(&format!("{l}.mlp.up_proj.weight"))?,
                down: p(&format!("{l}.mlp.down_proj.weight"))?,
            });
        }
        let embed = p("model.embed_tokens.weight")?;
        let lm_head = if cfg.tie_word_embeddings { embed.clone() } else { p("lm_head.weight")? };
        // Rotary tables [max_pos, hd/2], computed in f64 then cast.
        let hd = cfg.head_dim();
        let n = cfg.max_position_embeddings;
        let mut cos_host = Vec::with_capacity(n * hd / 2);
        let mut sin_host = Vec::with_capacity(n * hd / 2);
        for pos in 0..n {
            for i in 0..hd / 2 {
                let inv = 1.0 / cfg.rope_theta.powf(2.0 * i as f64 / hd as f64);
                let a = pos as f64 * inv;
                cos_host.push(a.cos());
                sin_host.push(a.sin());
            }
        }
        let dev = params.device.clone();
        let dt = embed.dtype();
        let cos = Tensor::from_vec(cos_host.clone(), (n, hd / 2), &dev)?.to_dtype(dt)?;
        let sin = Tensor::from_vec(sin_host.clone(), (n, hd / 2), &dev)?.to_dtype(dt)?;
        let norm = p("model.norm.weight")?;
        // OXRL_KERNELS=composed switches every model of the process to the composed reference ops
        // (A/B checks of the fused kernels without a rebuild).
        let fused = std::env::var("OXRL_KERNELS").map(|v| v != "composed").unwrap_or(true);
        Ok(Self { cfg, params, embed, layers, norm, lm_head, cos, sin, cos_host, sin_host, fused })
    }

    pub fn device(&self) -> &Device {
        &self.params.device
    }
    pub fn dtype(&self) -> DType {
        self.embed.dtype()
    }

    /// Whether forward passes take the fused-kernel path.
    pub fn uses_fused_kernels(&self) -> bool {
        self.fused && kernels::supported(&self.embed)
    }

    /// Final hidden states (after the last norm), `[B, T, D]`.
    ///
    /// - `ids`, `positions`: `[B, T]` u32.
    /// - `bias`: additive attention bias `[B, 1, T, S]` (0 = attend, large negative = masked),
    ///   where S = T without a cache and S = cache.len + T with one.
    /// - `cache`: when given, keys/values are written at `cache.len` and `cache.len` advances by T.
    pub fn forward_hidden(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        bias: &Tensor,
        mut cache: Option<&mut KvCache>,
        mode: Mode,
    ) -> Result<Tensor> {
        if self.uses_fused_kernels() {
            return self.forward_hidden_fused(ids, positions, bias, cache, mode);
        }
        let (b, t) = ids.dims2()?;
        let cfg = &self.cfg;
        let (h, kv, hd) = (cfg.num_attention_heads, cfg.kv_heads(), cfg.head_dim());
        let rep = h / kv;
        let offset = KvCache::offset_for(cache.as_deref(), t)?;
        let s = offset + t;
        let pos = positions.flatten_all()?;
        let cos = self.cos.index_select(&pos, 0)?.reshape((b, 1, t, hd / 2))?;
        let sin = self.sin.index_select(&pos, 0)?.reshape((b, 1, t, hd / 2))?;
        let scale = 1.0 / (hd as f64).sqrt();
        let mut x = self.embed.index_select(&ids.flatten_all()?, 0)?.reshape((b, t, cfg.hidden_size))?;
        for (li, layer) in self.layers.iter().enumerate() {
            let a = &layer.attn;
            let hn = rms_norm(&x, &layer.ln1, cfg.rms_norm_eps, mode)?;
            let q = linear(&hn, &a.q, a.q_b.as_ref())?.reshape((b, t, h, hd))?.transpose(1, 2)?;
            let k = linear(&hn, &a.k, a.k_b.as_ref())?.reshape((b, t, kv, hd))?.transpose(1, 2)?;
            let v = linear(&hn, &a.v, a.v_b.as_ref())?.reshape((b, t, kv, hd))?.transpose(1, 2)?;
            let q = rope(&q, &cos, &sin)?; // [b, h, t, hd] contiguous
            let k = rope(&k, &cos, &sin)?;
            let (k, v) = match cache.as_deref_mut() {
                Some(c) => {
                    c.k[li].slice_set(&k, 2, offset)?;
                    c.v[li].slice_set(&v.contiguous()?, 2, offset)?;
                    (c.k[li].narrow(2, 0, s)?, c.v[li].narrow(2, 0, s)?)
                }
                None => (k, v.contiguous()?),
            };
            // Grouped-query attention without repeating K/V: fold the `rep` query heads that share
            // a K/V head into the row dimension.
            let qg = q.reshape((b, kv, rep * t, hd))?;
            let scores = (qg.matmul(&k.t()?)? * scale)?.reshape((b, h, t, s))?;
            let scores = scores.broadcast_add(bias)?;
            let probs = match mode {
                Mode::Infer => candle_nn::ops::softmax_last_dim(&scores)?,
                Mode::Train => candle_nn::ops::softmax(&scores, D::Minus1)?,
            };
            let ctx = probs.reshape((b, kv, rep * t, s))?.matmul(&v)?;
            let ctx = ctx.reshape((b, h, t, hd))?.transpose(1, 2)?.reshape((b, t, h * hd))?;
            x = (x + linear(&ctx, &a.o, a.o_b.as_ref())?)?;
            let hn = rms_norm(&x, &layer.ln2, cfg.rms_norm_eps, mode)?;
            let g = candle_nn::ops::silu(&linear(&hn, &layer.gate, None)?)?;
            let u = linear(&hn, &layer.up, None)?;
            x = (x + linear(&(g * u)?, &layer.down, None)?)?;
        }
        if let Some(c) = cache {
            c.len = s;
        }
        rms_norm(&x, &self.norm, cfg.rms_norm_eps, mode)
    }

    /// [`Self::forward_hidden`] on the fused kernels: activations stay `[B, T, features]` from
    /// the projections through rotary and attention to the output projection, no transposes.
    fn forward_hidden_fused(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        bias: &Tensor,
        mut cache: Option<&mut KvCache>,
        mode: Mode,
    ) -> Result<Tensor> {
        use kernels::{attention::attention, linear::linear, rms_norm::rms_norm, rope::rope, swiglu::swiglu};
        let (b, t) = ids.dims2()?;
        let cfg = &self.cfg;
        let (h, kv, hd) = (cfg.num_attention_heads, cfg.kv_heads(), cfg.head_dim());
        let offset = KvCache::offset_for(cache.as_deref(), t)?;
        let s = offset + t;
        let table =
            RopeTable::gather(&self.cos_host, &self.sin_host, hd / 2, &positions.flatten_all()?.to_vec1::<u32>()?)?;
        // Inference builds no autograd graph: weights are read through detached handles.
        let w = |x: &Tensor| if mode == Mode::Infer { x.detach() } else { x.clone() };
        let wo = |x: &Option<Tensor>| x.as_ref().map(w);
        let eps = cfg.rms_norm_eps;
        let mut x = w(&self.embed).index_select(&ids.flatten_all()?, 0)?.reshape((b, t, cfg.hidden_size))?;
        for (li, layer) in self.layers.iter().enumerate() {
            let a = &layer.attn;
            let hn = rms_norm(&x, &w(&layer.ln1), eps)?;
            let q = rope(&linear(&hn, &w(&a.q), wo(&a.q_b).as_ref())?, &table)?;
            let k = rope(&linear(&hn, &w(&a.k), wo(&a.k_b).as_ref())?, &table)?;
            let v = linear(&hn, &w(&a.v), wo(&a.v_b).as_ref())?;
            let ctx = match cache.as_deref_mut() {
                Some(c) => {
                    let heads = |x: &Tensor| -> Result<Tensor> {
                        Ok(x.reshape((b, t, kv, hd))?.transpose(1, 2)?.contiguous()?)
                    };
                    c.k[li].slice_set(&heads(&k)?, 2, offset)?;
                    c.v[li].slice_set(&heads(&v)?, 2, offset)?;
                    attention(&q, &c.k[li].narrow(2, 0, s)?, &c.v[li].narrow(2, 0, s)?, bias, h, kv, true)?
                }
                None => attention(&q, &k, &v, bias, h, kv, true)?,
            };
            x = (x + linear(&ctx, &w(&a.o), wo(&a.o_b).as_ref())?)?;
            let hn = rms_norm(&x, &w(&layer.ln2), eps)?;
            let g = swiglu(&linear(&hn, &w(&layer.gate), None)?, &linear(&hn, &w(&layer.up), None)?)?;
            x = (x + linear(&g, &w(&layer.down), None)?)?;
        }
        if let Some(c) = cache {
            c.len = s;
        }
        Ok(rms_norm(&x, &w(&self.norm), eps)?)
    }

    /// Logits `[.., V]` from hidden states `[.., D]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        if self.uses_fused_kernels() {
            return Ok(kernels::linear::linear(hidden, &self.lm_head, None)?);
        }
        linear(hidden, &self.lm_head, None)
    }
}

/// Additive attention bias for a batch whose valid tokens are marked in `valid` (`[B][S]`, all
/// rows the same length), for the last `t` query positions: query i (absolute position S−t+i)
/// attends to keys j ≤ S−t+i that are valid. Masked entries are −1e9 (not −inf) so fully masked
/// pad rows stay finite.
pub fn attention_bias<V: AsRef<[bool]>>(valid: &[V], t: usize, device: &Device, dtype: DType) -> Result<Tensor> {
    let b = valid.len();
    let s = valid.first().map(|r| r.as_ref().len()).unwrap_or(0);
    let mut data = vec![0f32; b * t * s];
    for (bi, row) in valid.iter().enumerate() {
        for qi in 0..t {
            let qpos = s - t + qi;
            let base = (bi * t + qi) * s;
            for (kj, &ok) in row.as_ref().iter().enumerate() {
                if kj > qpos || !ok {
                    data[base + kj] = -1e9;
                }
            }
        }
    }
    Ok(Tensor::from_vec(data, (b, 1, t, s), device)?.to_dtype(dtype)?)
}

/// Rotary positions for rows of `valid`: the index of each token among its row's valid tokens
/// (0 for invalid tokens).
pub fn positions<V: AsRef<[bool]>>(valid: &[V]) -> Vec<Vec<u32>> {
    valid
        .iter()
        .map(|row| {
            let mut n = 0u32;
            row.as_ref()
                .iter()
                .map(|&ok| {
                    let p = if ok { n } else { 0 };
                    n += ok as u32;
                    p
                })
                .collect()
        })
        .collect()
}
