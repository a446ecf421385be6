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
use crate::lora::{Adapter, LoraStore, MODULES};
use crate::params::ParamStore;
use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var, D};
use std::sync::{Arc, Mutex};

/// Training (composed, differentiable ops) or inference (fused kernels, no gradients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Infer,
}

#[derive(Clone)]
pub(crate) struct Attention {
    pub(crate) q: Tensor,
    pub(crate) q_b: Option<Tensor>,
    pub(crate) k: Tensor,
    pub(crate) k_b: Option<Tensor>,
    pub(crate) v: Tensor,
    pub(crate) v_b: Option<Tensor>,
    pub(crate) o: Tensor,
    pub(crate) o_b: Option<Tensor>,
    /// Qwen3's per-head RMSNorm weights on queries and keys (`[head_dim]`).
    pub(crate) q_norm: Option<Tensor>,
    pub(crate) k_norm: Option<Tensor>,
}

#[derive(Clone)]
pub(crate) struct Layer {
    pub(crate) ln1: Tensor,
    pub(crate) attn: Attention,
    pub(crate) ln2: Tensor,
    pub(crate) gate: Tensor,
    pub(crate) up: Tensor,
    pub(crate) down: Tensor,
    /// Sliding-window span of this layer's attention, if any.
    pub(crate) window: Option<usize>,
    /// LoRA adapters by projection, in [`MODULES`] order (q, k, v, o, gate, up, down).
    lora: [Option<Adapter>; 7],
}

impl Layer {
    /// Every tensor of the layer that is a trainable variable (base weights in full fine-tuning,
    /// adapter matrices under LoRA).
    fn variables(&self) -> Vec<Tensor> {
        let a = &self.attn;
        let mut all = vec![&self.ln1, &a.q, &a.k, &a.v, &a.o, &self.ln2, &self.gate, &self.up, &self.down];
        all.extend([&a.q_b, &a.k_b, &a.v_b, &a.o_b, &a.q_norm, &a.k_norm].into_iter().flatten());
        for ad in self.lora.iter().flatten() {
            all.push(&ad.a);
            all.push(&ad.b);
        }
        all.into_iter().filter(|t| t.is_variable()).cloned().collect()
    }
}

/// Gradients of layer parameters computed inside checkpointed layers' backward passes, merged
/// into the main gradient store by [`Transformer::backward`].
type SideGrads = Arc<Mutex<Vec<(Tensor, Tensor)>>>;

/// Layers recomputed by checkpointed backward passes (process-wide; tests read it).
pub static RECOMPUTED_LAYERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub struct Transformer {
    pub cfg: ModelConfig,
    /// The base weights. Under LoRA they are frozen: the forward reads detached copies of them.
    pub params: ParamStore,
    /// LoRA adapters, when attached ([`Self::with_lora`]).
    pub lora: Option<Arc<LoraStore>>,
    /// Latent-reasoning module (Coconut segments or HRPO gated inputs), when attached.
    pub latent: Option<Arc<crate::latent::LatentModule>>,
    pub(crate) embed: Tensor,
    pub(crate) layers: Vec<Layer>,
    pub(crate) norm: Tensor,
    pub(crate) lm_head: Tensor,
    cos: Tensor,
    sin: Tensor,
    /// Host rotary tables `[max_pos, head_dim/2]` for the fused kernels.
    pub(crate) cos_host: Vec<f64>,
    pub(crate) sin_host: Vec<f64>,
    /// Use the fused kernels where supported (CPU, f32/f64). On by default; off gives the
    /// composed reference path (benchmarks compare the two).
    pub fused: bool,
    /// Decode with the packed decoder ([`crate::decode`]) where it applies (f32 CPU models
    /// without LoRA or a latent module). On by default; `OXRL_DECODE=candle` turns it off for
    /// every model of the process.
    pub packed_decode: bool,
    /// The packed decoder's weights, reused while the weights are unchanged.
    pub(crate) packed: Mutex<Option<Arc<crate::decode::PackedModel>>>,
    /// Gradient checkpointing: in [`Mode::Train`] each layer keeps only its input and recomputes
    /// its activations in the backward pass.
    pub checkpointing: bool,
    side_grads: SideGrads,
}

/// Preallocated key/value cache: per layer `[batch, kv_heads, capacity, head_dim]`; `len` positions
/// are filled. New keys are written in place, never concatenated. The rotary position of every
/// cached key is kept for sliding-window layers.
pub struct KvCache {
    pub(crate) k: Vec<Tensor>,
    pub(crate) v: Vec<Tensor>,
    key_pos: Vec<Vec<u32>>,
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
        Ok(Self { k, v, key_pos: vec![Vec::new(); batch], len: 0, capacity })
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

    /// Grow the capacity to at least `need` positions (at least doubling), keeping what is filled.
    pub fn reserve(&mut self, need: usize) -> Result<()> {
        if need <= self.capacity {
            return Ok(());
        }
        let capacity = need.max(2 * self.capacity);
        for t in self.k.iter_mut().chain(self.v.iter_mut()) {
            let (b, h, _, d) = t.dims4()?;
            let bigger = Tensor::zeros((b, h, capacity, d), t.dtype(), t.device())?;
            if self.len > 0 {
                bigger.slice_set(&t.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
            }
            *t = bigger;
        }
        self.capacity = capacity;
        Ok(())
    }

    /// Keep only the given batch rows (in that order), e.g. to drop finished sequences.
    pub fn keep_rows(&mut self, rows: &Tensor) -> Result<()> {
        for t in self.k.iter_mut().chain(self.v.iter_mut()) {
            *t = t.index_select(rows, 0)?;
        }
        let idx = rows.to_vec1::<u32>()?;
        self.key_pos = idx.iter().map(|&i| self.key_pos[i as usize].clone()).collect();
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

/// Rotary angles of one forward pass, in the form its path uses.
#[derive(Clone)]
enum Rotary {
    Fused(Arc<RopeTable>),
    /// cos/sin `[B, 1, T, hd/2]`.
    Composed(Tensor, Tensor),
}

/// Everything a layer needs besides its weights, shared by all layers of one forward pass.
#[derive(Clone)]
struct Pass {
    /// (query heads, key/value heads, head dim, RMSNorm ε).
    heads: (usize, usize, usize),
    eps: f64,
    b: usize,
    t: usize,
    offset: usize,
    rot: Rotary,
    bias: Tensor,
    /// `bias` plus the sliding-window mask, for layers with a window (by span).
    window_bias: Vec<(usize, Tensor)>,
    mode: Mode,
    fused: bool,
    /// LoRA dropout: probability and the key of this pass's masks (same key on recomputation).
    dropout: Option<(f64, u64)>,
}

impl Pass {
    fn lin(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        // Inference builds no autograd graph: weights are read through detached handles.
        let (w, b) = match self.mode {
            Mode::Infer => (w.detach(), b.map(|b| b.detach())),
            Mode::Train => (w.clone(), b.cloned()),
        };
        if self.fused {
            Ok(kernels::linear::linear(x, &w, b.as_ref())?)
        } else {
            linear(x, &w, b.as_ref())
        }
    }

    fn norm(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let eps = self.eps;
        if self.fused {
            let w = if self.mode == Mode::Infer { w.detach() } else { w.clone() };
            Ok(kernels::rms_norm::rms_norm(x, &w, eps)?)
        } else {
            rms_norm(x, w, eps, self.mode)
        }
    }

    /// A projection with its LoRA adapter: `x·Wᵀ + b + (α/r)·drop(x)·Aᵀ·Bᵀ`.
    fn proj(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>, ad: Option<&Adapter>, key: u64) -> Result<Tensor> {
        let y = self.lin(x, w, b)?;
        let Some(ad) = ad else { return Ok(y) };
        let xd = match (self.mode, self.dropout) {
            (Mode::Train, Some((p, k))) if p > 0.0 => {
                crate::lora::dropout(x, p, oxrl_core::seed::derive(k, "lora", key))?
            }
            _ => x.clone(),
        };
        let low = self.lin(&xd, &ad.a, None)?;
        Ok((y + (self.lin(&low, &ad.b, None)? * ad.scale)?)?)
    }

    fn bias_for(&self, window: Option<usize>) -> &Tensor {
        window.and_then(|w| self.window_bias.iter().find(|(s, _)| *s == w)).map(|(_, t)| t).unwrap_or(&self.bias)
    }

    /// One decoder layer. `li` is the layer index, `cache` its key/value slots.
    fn layer(&self, li: usize, layer: &Layer, x: &Tensor, cache: Option<(&mut Tensor, &mut Tensor)>) -> Result<Tensor> {
        let (b, t) = (self.b, self.t);
        let (h, kv, hd) = self.heads;
        let s = self.offset + t;
        let a = &layer.attn;
        let key = |m: usize| (li * MODULES.len() + m) as u64;
        let hn = self.norm(x, &layer.ln1)?;
        let mut q = self.proj(&hn, &a.q, a.q_b.as_ref(), layer.lora[0].as_ref(), key(0))?;
        let mut k = self.proj(&hn, &a.k, a.k_b.as_ref(), layer.lora[1].as_ref(), key(1))?;
        let v = self.proj(&hn, &a.v, a.v_b.as_ref(), layer.lora[2].as_ref(), key(2))?;
        if let (Some(qn), Some(kn)) = (&a.q_norm, &a.k_norm) {
            q = self.norm(&q.reshape((b, t, h, hd))?, qn)?.reshape((b, t, h * hd))?;
            k = self.norm(&k.reshape((b, t, kv, hd))?, kn)?.reshape((b, t, kv * hd))?;
        }
        let bias = self.bias_for(layer.window);
        let ctx = match &self.rot {
            Rotary::Fused(table) => {
                use kernels::{attention::attention, rope::rope};
                let q = rope(&q, table)?;
                let k = rope(&k, table)?;
                match cache {
                    Some((ck, cv)) => {
                        let heads = |x: &Tensor| -> Result<Tensor> {
                            Ok(x.reshape((b, t, kv, hd))?.transpose(1, 2)?.contiguous()?)
                        };
                        ck.slice_set(&heads(&k)?, 2, self.offset)?;
                        cv.slice_set(&heads(&v)?, 2, self.offset)?;
                        attention(&q, &ck.narrow(2, 0, s)?, &cv.narrow(2, 0, s)?, bias, h, kv, true)?
                    }
                    None => attention(&q, &k, &v, bias, h, kv, true)?,
                }
            }
            Rotary::Composed(cos, sin) => {
                let rep = h / kv;
                let scale = 1.0 / (hd as f64).sqrt();
                let q = rope(&q.reshape((b, t, h, hd))?.transpose(1, 2)?, cos, sin)?; // [b, h, t, hd]
                let k = rope(&k.reshape((b, t, kv, hd))?.transpose(1, 2)?, cos, sin)?;
                let v = v.reshape((b, t, kv, hd))?.transpose(1, 2)?;
                let (k, v) = match cache {
                    Some((ck, cv)) => {
                        ck.slice_set(&k, 2, self.offset)?;
                        cv.slice_set(&v.contiguous()?, 2, self.offset)?;
                        (ck.narrow(2, 0, s)?, cv.narrow(2, 0, s)?)
                    }
                    None => (k, v.contiguous()?),
                };
                // Grouped-query attention without repeating K/V: fold the `rep` query heads that
                // share a K/V head into the row dimension.
                let qg = q.reshape((b, kv, rep * t, hd))?;
                let scores = (qg.matmul(&k.t()?)? * scale)?.reshape((b, h, t, s))?;
                let scores = scores.broadcast_add(bias)?;
                let probs = match self.mode {
                    Mode::Infer => candle_nn::ops::softmax_last_dim(&scores)?,
                    Mode::Train => candle_nn::ops::softmax(&scores, D::Minus1)?,
                };
                let ctx = probs.reshape((b, kv, rep * t, s))?.matmul(&v)?;
                ctx.reshape((b, h, t, hd))?.transpose(1, 2)?.reshape((b, t, h * hd))?
            }
        };
        let x = (x + self.proj(&ctx, &a.o, a.o_b.as_ref(), layer.lora[3].as_ref(), key(3))?)?;
        let hn = self.norm(&x, &layer.ln2)?;
        let g = self.proj(&hn, &layer.gate, None, layer.lora[4].as_ref(), key(4))?;
        let u = self.proj(&hn, &layer.up, None, layer.lora[5].as_ref(), key(5))?;
        let act = if self.fused { kernels::swiglu::swiglu(&g, &u)? } else { (candle_nn::ops::silu(&g)? * u)? };
        Ok((x + self.proj(&act, &layer.down, None, layer.lora[6].as_ref(), key(6))?)?)
    }
}

/// Gradient checkpointing of one layer, on any device and dtype: the layer's output `y` is
/// computed outside the graph (its activations are freed at once) and joined to the graph by
/// this op, whose forward copies `y` and whose backward recomputes the layer with a graph,
/// backpropagates through it, returns the input gradient and leaves the parameter gradients in
/// `side`.
struct Checkpointed {
    pass: Pass,
    li: usize,
    layer: Layer,
    side: SideGrads,
}

impl candle_core::CustomOp2 for Checkpointed {
    fn name(&self) -> &'static str {
        "checkpointed-layer"
    }
    fn cpu_fwd(
        &self,
        _: &candle_core::CpuStorage,
        _: &candle_core::Layout,
        y: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::CpuStorage as C;
        let (a, b) =
            l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("non-contiguous layer output".into()))?;
        let out = match y {
            C::F32(v) => C::F32(v[a..b].to_vec()),
            C::F64(v) => C::F64(v[a..b].to_vec()),
            C::BF16(v) => C::BF16(v[a..b].to_vec()),
            C::F16(v) => C::F16(v[a..b].to_vec()),
            _ => candle_core::bail!("checkpointed layer: floating-point activations only"),
        };
        Ok((out, l.shape().clone()))
    }
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &candle_core::Layout,
        y: &candle_core::CudaStorage,
        l: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, candle_core::Shape)> {
        use candle_core::backend::BackendStorage;
        Ok((y.try_clone(l)?, l.shape().clone()))
    }
    fn bwd(
        &self,
        x: &Tensor,
        _y: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let err = |e: anyhow::Error| candle_core::Error::Msg(format!("checkpointed layer: {e:#}"));
        RECOMPUTED_LAYERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let xv = Var::from_tensor(&x.detach())?;
        let y = self.pass.layer(self.li, &self.layer, xv.as_tensor(), None).map_err(err)?;
        let grads = (y * g.detach())?.sum_all()?.backward()?;
        let mut side = self.side.lock().expect("side gradients lock");
        for v in self.layer.variables() {
            if let Some(gv) = grads.get(&v) {
                side.push((v, gv.clone()));
            }
        }
        Ok((grads.get(xv.as_tensor()).cloned(), None))
    }
}

impl Transformer {
    pub fn new(cfg: ModelConfig, params: ParamStore) -> Result<Self> {
        cfg.validate()?;
        oxrl_core::threads::resolve_once();
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
                    q_norm: opt(format!("{l}.self_attn.q_norm.weight"))?,
                    k_norm: opt(format!("{l}.self_attn.k_norm.weight"))?,
                },
                ln2: p(&format!("{l}.post_attention_layernorm.weight"))?,
                gate: p(&format!("{l}.mlp.gate_proj.weight"))?,
                up: p(&format!("{l}.mlp.up_proj.weight"))?,
                down: p(&format!("{l}.mlp.down_proj.weight"))?,
                window: cfg.window_for_layer(i),
                lora: Default::default(),
            });
        }
        let embed = p("model.embed_tokens.weight")?;
        let lm_head = if cfg.tie_word_embeddings { embed.clone() } else { p("lm_head.weight")? };
        // Rotary tables [max_pos, hd/2], computed in f64 then cast.
        let hd = cfg.head_dim();
        let n = cfg.max_position_embeddings;
        let inv = cfg.rope_inv_freq()?;
        let mut cos_host = Vec::with_capacity(n * hd / 2);
        let mut sin_host = Vec::with_capacity(n * hd / 2);
        for pos in 0..n {
            for f in &inv {
                let a = pos as f64 * f;
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
        Ok(Self {
            cfg,
            params,
            lora: None,
            latent: None,
            embed,
            layers,
            norm,
            lm_head,
            cos,
            sin,
            cos_host,
            sin_host,
            fused,
            packed_decode: std::env::var("OXRL_DECODE").map(|v| v != "candle").unwrap_or(true),
            packed: Mutex::new(None),
            checkpointing: false,
            side_grads: Default::default(),
        })
    }

    /// Attach LoRA adapters: the base weights are frozen (read detached, so no gradient is ever
    /// computed for them) and the adapters become the trainable parameters.
    pub fn with_lora(mut self, store: LoraStore) -> Result<Self> {
        self.freeze_base();
        for (li, l) in self.layers.iter_mut().enumerate() {
            for (m, slot) in l.lora.iter_mut().enumerate() {
                *slot = store.adapter(li, MODULES[m])?;
            }
        }
        self.lora = Some(Arc::new(store));
        Ok(self)
    }

    /// Read every base weight through a detached handle.
    fn freeze_base(&mut self) {
        let det = |t: &mut Tensor| *t = t.detach();
        det(&mut self.embed);
        det(&mut self.lm_head);
        det(&mut self.norm);
        for l in &mut self.layers {
            for t in [&mut l.ln1, &mut l.ln2, &mut l.gate, &mut l.up, &mut l.down] {
                det(t);
            }
            let a = &mut l.attn;
            for t in [&mut a.q, &mut a.k, &mut a.v, &mut a.o] {
                det(t);
            }
            for t in
                [&mut a.q_b, &mut a.k_b, &mut a.v_b, &mut a.o_b, &mut a.q_norm, &mut a.k_norm].into_iter().flatten()
            {
                det(t);
            }
        }
    }

    /// The model without its adapters, sharing the base weights (no copy): the KL reference of a
    /// LoRA run (frozen like the base it shares).
    pub fn base_view(&self) -> Result<Self> {
        let mut m = Self::new(self.cfg.clone(), self.params.clone())?;
        m.fused = self.fused;
        m.packed_decode = self.packed_decode;
        if self.lora.is_some() {
            m.freeze_base();
        }
        if let Some(l) = &self.latent {
            m.latent = Some(Arc::new(l.deep_clone()?));
        }
        Ok(m)
    }

    /// The parameters an optimiser trains: the adapters under LoRA, else every base weight.
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        let mut v = match &self.lora {
            Some(l) => l.named_vars(),
            None => self.params.named_vars(),
        };
        if let Some(l) = &self.latent {
            v.extend(l.named_vars());
        }
        v
    }

    /// Backpropagate `loss`, including the parameter gradients of checkpointed layers.
    pub fn backward(&self, loss: &Tensor) -> Result<GradStore> {
        let mut grads = loss.backward()?;
        let side = std::mem::take(&mut *self.side_grads.lock().expect("side gradients lock"));
        for (v, g) in side {
            let g = match grads.remove(&v) {
                Some(prev) => (prev + g)?,
                None => g,
            };
            grads.insert(&v, g);
        }
        Ok(grads)
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
        cache: Option<&mut KvCache>,
        mode: Mode,
    ) -> Result<Tensor> {
        self.forward_hidden_with(ids, positions, bias, cache, mode, None)
    }

    /// [`Self::forward_hidden`] with continuous input vectors (latent-reasoning mode):
    /// `inputs = (vectors [B, T, D], mask [B, T])` go through the attached latent module, which
    /// replaces (Coconut) or mixes into (HRPO) the token embeddings where the mask is 1.
    pub fn forward_hidden_with(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        bias: &Tensor,
        mut cache: Option<&mut KvCache>,
        mode: Mode,
        inputs: Option<(&Tensor, &Tensor)>,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let cfg = &self.cfg;
        let hd = cfg.head_dim();
        let offset = KvCache::offset_for(cache.as_deref(), t)?;
        let s = offset + t;
        let fused = self.uses_fused_kernels();
        let pos_host = positions.to_vec2::<u32>()?;
        let rot = if fused {
            let flat: Vec<u32> = pos_host.concat();
            Rotary::Fused(RopeTable::gather(&self.cos_host, &self.sin_host, hd / 2, &flat)?)
        } else {
            let pos = positions.flatten_all()?;
            Rotary::Composed(
                self.cos.index_select(&pos, 0)?.reshape((b, 1, t, hd / 2))?,
                self.sin.index_select(&pos, 0)?.reshape((b, 1, t, hd / 2))?,
            )
        };
        let window_bias = if self.layers.iter().any(|l| l.window.is_some()) {
            // Key positions (cached ones and this pass's), for sliding-window layers.
            if let Some(c) = cache.as_deref_mut() {
                if c.key_pos.len() != b {
                    c.key_pos = vec![Vec::new(); b];
                }
                for (row, p) in c.key_pos.iter_mut().zip(&pos_host) {
                    row.truncate(offset);
                    row.extend_from_slice(p);
                }
            }
            let key_pos: &[Vec<u32>] = cache.as_deref().map_or(&pos_host, |c| &c.key_pos);
            self.window_biases(bias, &pos_host, key_pos)?
        } else {
            Vec::new()
        };
        let dropout = match (&self.lora, mode) {
            (Some(l), Mode::Train) if l.config.dropout > 0.0 => Some((l.config.dropout, l.next_dropout_key())),
            _ => None,
        };
        let pass = Pass {
            heads: (cfg.num_attention_heads, cfg.kv_heads(), hd),
            eps: cfg.rms_norm_eps,
            b,
            t,
            offset,
            rot,
            bias: bias.clone(),
            window_bias,
            mode,
            fused,
            dropout,
        };
        let w = |x: &Tensor| if mode == Mode::Infer { x.detach() } else { x.clone() };
        let mut x = w(&self.embed).index_select(&ids.flatten_all()?, 0)?.reshape((b, t, cfg.hidden_size))?;
        if let Some((v, m)) = inputs {
            let Some(l) = &self.latent else { anyhow::bail!("input vectors given to a model without a latent module") };
            x = l.inputs(&x, v, m, mode == Mode::Infer)?;
        }
        let checkpoint = self.checkpointing && mode == Mode::Train && cache.is_none();
        for (li, layer) in self.layers.iter().enumerate() {
            x = if checkpoint {
                // The op must be tracked for its backward to run even when nothing before it
                // is trainable (frozen embeddings under LoRA).
                let input = if x.track_op() { x } else { Var::from_tensor(&x)?.as_tensor().clone() };
                // The same ops as the recomputation (so dropout masks and rounding agree); the
                // graph they build is dropped with the detached output.
                let y = pass.layer(li, layer, &input.detach(), None)?.detach();
                let op = Checkpointed { pass: pass.clone(), li, layer: layer.clone(), side: self.side_grads.clone() };
                input.apply_op2(&y, op)?
            } else {
                let slot = cache.as_deref_mut().map(|c| {
                    let (k, v) = (&mut c.k[li], &mut c.v[li]);
                    (k, v)
                });
                pass.layer(li, layer, &x, slot)?
            };
        }
        if let Some(c) = cache {
            c.len = s;
        }
        pass.norm(&x, &self.norm)
    }

    /// `bias` plus each distinct sliding-window mask (key j hidden from query i when
    /// pos(i) − pos(j) ≥ window), by window span.
    fn window_biases(&self, bias: &Tensor, q_pos: &[Vec<u32>], key_pos: &[Vec<u32>]) -> Result<Vec<(usize, Tensor)>> {
        let (b, t, s) = (q_pos.len(), q_pos.first().map_or(0, |r| r.len()), key_pos.first().map_or(0, |r| r.len()));
        let mut out: Vec<(usize, Tensor)> = Vec::new();
        for w in self.layers.iter().filter_map(|l| l.window) {
            if out.iter().any(|(span, _)| *span == w) {
                continue;
            }
            let mut data = vec![0f32; b * t * s];
            for bi in 0..b {
                for qi in 0..t {
                    for kj in 0..s {
                        if q_pos[bi][qi] as i64 - key_pos[bi][kj] as i64 >= w as i64 {
                            data[(bi * t + qi) * s + kj] = -1e9;
                        }
                    }
                }
            }
            let extra = Tensor::from_vec(data, (b, 1, t, s), bias.device())?.to_dtype(bias.dtype())?;
            out.push((w, (bias + extra)?));
        }
        Ok(out)
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
