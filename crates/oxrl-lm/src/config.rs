//! Model configuration in the Hugging Face `config.json` shape: the Qwen2 / Qwen2.5, Qwen3 and
//! Llama families (attention biases, tied embeddings, rope theta and scaling, GQA, explicit head
//! dimension, per-head q/k norms, sliding-window attention). Keys oxrl does not model are kept in
//! [`ModelConfig::extra`] so a loaded `config.json` is written back unchanged.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One token id or several (Llama 3 and Qwen2.5-Instruct list several end-of-sequence ids).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub fn ids(&self) -> Vec<u32> {
        match self {
            TokenIds::One(i) => vec![*i],
            TokenIds::Many(v) => v.clone(),
        }
    }
    pub fn first(&self) -> Option<u32> {
        self.ids().first().copied()
    }
}

/// Rotary frequency scaling (`rope_scaling` in `config.json`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    /// Positions divided by `factor` ("linear", position interpolation).
    Linear { factor: f64 },
    /// Llama 3.1's wavelength-dependent smoothing.
    Llama3 { factor: f64, low_freq_factor: f64, high_freq_factor: f64, original_max_position_embeddings: f64 },
}

/// The architectures the built-in transformer implements (`architectures[0]`, `model_type`).
pub const SUPPORTED: [(&str, &str); 3] =
    [("Qwen2ForCausalLM", "qwen2"), ("Qwen3ForCausalLM", "qwen3"), ("LlamaForCausalLM", "llama")];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    #[serde(default = "default_arch")]
    pub architectures: Vec<String>,
    #[serde(default = "default_model_type")]
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Llama's switch for q/k/v/o biases; Qwen2 always has q/k/v biases and no such key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_bias: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<TokenIds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default = "default_dtype")]
    pub torch_dtype: String,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    /// `{"type"/"rope_type": "linear" | "llama3", "factor": …}`; null = plain RoPE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<serde_json::Value>,
    /// Sliding-window attention span (Qwen2: used when `use_sliding_window`, on layers from
    /// `max_window_layers` on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_sliding_window: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_window_layers: Option<usize>,
    /// Every other key of `config.json`, written back unchanged.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn default_arch() -> Vec<String> {
    vec!["Qwen2ForCausalLM".into()]
}
fn default_model_type() -> String {
    "qwen2".into()
}
fn default_max_pos() -> usize {
    2048
}
fn default_theta() -> f64 {
    10000.0
}
fn default_eps() -> f64 {
    1e-6
}
fn default_dtype() -> String {
    "float32".into()
}
fn default_init_range() -> f64 {
    0.02
}

impl ModelConfig {
    /// The built-in tiny model: Qwen2-shaped, 4 layers, d=128, GQA with 4 query and 2 key/value
    /// heads, tied embeddings; about 0.8 M parameters for the 100-symbol char vocabulary.
    pub fn tiny(vocab_size: usize) -> Self {
        Self {
            architectures: default_arch(),
            model_type: default_model_type(),
            vocab_size,
            hidden_size: 128,
            intermediate_size: 384,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            num_key_value_heads: Some(2),
            head_dim: None,
            max_position_embeddings: 512,
            rope_theta: 10000.0,
            rms_norm_eps: 1e-6,
            tie_word_embeddings: true,
            attention_bias: None,
            bos_token_id: None,
            eos_token_id: None,
            torch_dtype: default_dtype(),
            initializer_range: 0.02,
            rope_scaling: None,
            sliding_window: None,
            use_sliding_window: None,
            max_window_layers: None,
            extra: BTreeMap::new(),
        }
    }

    /// A config of the given family (`qwen2`, `qwen3`, `llama`) with the family's conventions
    /// (architecture name; Qwen3's explicit head dimension) and the sizes of [`Self::tiny`].
    pub fn family(model_type: &str, vocab_size: usize) -> Result<Self> {
        let Some((arch, _)) = SUPPORTED.iter().find(|(_, t)| *t == model_type) else {
            bail!("model_type `{model_type}` is not supported (supported: qwen2, qwen3, llama)");
        };
        let mut c = Self::tiny(vocab_size);
        c.architectures = vec![arch.to_string()];
        c.model_type = model_type.into();
        if model_type == "qwen3" {
            c.head_dim = Some(c.hidden_size / c.num_attention_heads);
        }
        Ok(c)
    }

    /// End-of-sequence ids the config lists (possibly several).
    pub fn eos_ids(&self) -> Vec<u32> {
        self.eos_token_id.as_ref().map(|t| t.ids()).unwrap_or_default()
    }

    /// Whether the attention has per-head RMSNorms on queries and keys (Qwen3).
    pub fn qk_norm(&self) -> bool {
        self.model_type == "qwen3"
    }

    /// The sliding-window span of layer `layer`, if that layer uses one: `layer_types[layer]` =
    /// "sliding_attention" (transformers ≥ 4.53), else Qwen2's `use_sliding_window` from
    /// `max_window_layers` on.
    pub fn window_for_layer(&self, layer: usize) -> Option<usize> {
        if let Some(types) = self.extra.get("layer_types").and_then(|v| v.as_array()) {
            let sliding = types.get(layer).and_then(|t| t.as_str()) == Some("sliding_attention");
            return if sliding { self.sliding_window } else { None };
        }
        let on = match self.model_type.as_str() {
            "qwen2" | "qwen3" => self.use_sliding_window.unwrap_or(false),
            _ => false,
        };
        if !on {
            return None;
        }
        let from = self.max_window_layers.unwrap_or(0);
        (layer >= from).then_some(self.sliding_window?)
    }

    /// Fold transformers ≥ 5's `rope_parameters` (`rope_theta`, `rope_type`, scaling fields) into
    /// `rope_theta` / `rope_scaling`.
    /// Also takes transformers ≥ 5's `dtype` as `torch_dtype`.
    pub fn normalize(&mut self) {
        if let Some(d) = self.extra.get("dtype").and_then(|v| v.as_str()) {
            self.torch_dtype = d.to_string();
        }
        if let Some(p) = self.extra.get("rope_parameters").and_then(|v| v.as_object()).cloned() {
            if let Some(t) = p.get("rope_theta").and_then(|v| v.as_f64()) {
                self.rope_theta = t;
            }
            let kind = p.get("rope_type").and_then(|v| v.as_str()).unwrap_or("default");
            if kind != "default" && self.rope_scaling.as_ref().is_none_or(|v| v.is_null()) {
                self.rope_scaling = Some(serde_json::Value::Object(p));
            }
        }
    }

    /// The parsed `rope_scaling` (None for absent, null, or type "default").
    pub fn rope_scaling(&self) -> Result<Option<RopeScaling>> {
        let Some(v) = self.rope_scaling.as_ref().filter(|v| !v.is_null()) else { return Ok(None) };
        let kind = v.get("rope_type").or_else(|| v.get("type")).and_then(|t| t.as_str()).unwrap_or("default");
        let num = |k: &str| -> Result<f64> {
            v.get(k).and_then(|x| x.as_f64()).with_context(|| format!("`rope_scaling.{k}` is missing or not a number"))
        };
        Ok(match kind {
            "default" => None,
            "linear" => Some(RopeScaling::Linear { factor: num("factor")? }),
            "llama3" => Some(RopeScaling::Llama3 {
                factor: num("factor")?,
                low_freq_factor: num("low_freq_factor")?,
                high_freq_factor: num("high_freq_factor")?,
                original_max_position_embeddings: num("original_max_position_embeddings")?,
            }),
            other => bail!("`rope_scaling` type `{other}` is not supported (supported: default, linear, llama3)"),
        })
    }

    /// Rotary inverse frequencies θ^(−2i/d) for i < head_dim/2, after `rope_scaling`.
    pub fn rope_inv_freq(&self) -> Result<Vec<f64>> {
        let hd = self.head_dim();
        let base: Vec<f64> = (0..hd / 2).map(|i| 1.0 / self.rope_theta.powf(2.0 * i as f64 / hd as f64)).collect();
        Ok(match self.rope_scaling()? {
            None => base,
            Some(RopeScaling::Linear { factor }) => base.iter().map(|f| f / factor).collect(),
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            }) => {
                let old = original_max_position_embeddings;
                let (low_wl, high_wl) = (old / low_freq_factor, old / high_freq_factor);
                base.iter()
                    .map(|&f| {
                        let wl = 2.0 * std::f64::consts::PI / f;
                        if wl < high_wl {
                            f
                        } else if wl > low_wl {
                            f / factor
                        } else {
                            let s = (old / wl - low_freq_factor) / (high_freq_factor - low_freq_factor);
                            (1.0 - s) * f / factor + s * f
                        }
                    })
                    .collect()
            }
        })
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }
    /// Whether q/k/v projections carry biases (always for Qwen2; `attention_bias` for Llama and
    /// Qwen3).
    pub fn qkv_bias(&self) -> bool {
        self.attention_bias.unwrap_or(self.model_type == "qwen2")
    }
    /// Whether o_proj carries a bias (Llama / Qwen3 with `attention_bias = true`; never for Qwen2).
    pub fn o_bias(&self) -> bool {
        self.model_type != "qwen2" && self.attention_bias.unwrap_or(false)
    }

    pub fn validate(&self) -> Result<()> {
        if !SUPPORTED.iter().any(|(_, t)| *t == self.model_type) {
            bail!("model_type `{}` is not supported (supported: qwen2, qwen3, llama)", self.model_type);
        }
        if let Some(arch) = self.architectures.first() {
            if !SUPPORTED.iter().any(|(a, _)| a == arch) {
                let names: Vec<&str> = SUPPORTED.iter().map(|(a, _)| *a).collect();
                bail!("architecture `{arch}` is not supported (supported: {})", names.join(", "));
            }
        }
        if let Some(act) = self.extra.get("hidden_act").and_then(|v| v.as_str()) {
            if act != "silu" {
                bail!("`hidden_act` = `{act}` is not supported (the SwiGLU MLP needs `silu`)");
            }
        }
        self.rope_scaling()?;
        if self.use_sliding_window == Some(true) && self.sliding_window.is_none() {
            bail!("`use_sliding_window` is true but `sliding_window` is not set");
        }
        for (k, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if v == 0 {
                bail!("`{k}` must be > 0");
            }
        }
        if !self.num_attention_heads.is_multiple_of(self.kv_heads()) {
            bail!(
                "`num_attention_heads` ({}) must be a multiple of `num_key_value_heads` ({})",
                self.num_attention_heads,
                self.kv_heads()
            );
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            bail!("`hidden_size` must be divisible by `num_attention_heads` when `head_dim` is not set");
        }
        if !self.head_dim().is_multiple_of(2) {
            bail!("head dimension {} must be even for rotary embeddings", self.head_dim());
        }
        Ok(())
    }

    /// Parameter count (embeddings counted once when tied).
    pub fn num_params(&self) -> usize {
        let (d, hd, h, kv, f, v) = (
            self.hidden_size,
            self.head_dim(),
            self.num_attention_heads,
            self.kv_heads(),
            self.intermediate_size,
            self.vocab_size,
        );
        let qkv_b = if self.qkv_bias() { h * hd + 2 * kv * hd } else { 0 };
        let o_b = if self.o_bias() { d } else { 0 };
        let qk_n = if self.qk_norm() { 2 * hd } else { 0 };
        let layer = d * h * hd + 2 * d * kv * hd + h * hd * d + qkv_b + o_b + qk_n + 3 * d * f + 2 * d;
        let head = if self.tie_word_embeddings { 0 } else { v * d };
        v * d + self.num_hidden_layers * layer + d + head
    }

    /// Forward FLOPs per token at context length `ctx` (2 per multiply-add): the matmuls of all
    /// projections and the LM head, plus attention scores and values over `ctx` keys.
    pub fn forward_flops_per_token(&self, ctx: usize) -> f64 {
        let (d, hd, h, kv, f, v) = (
            self.hidden_size as f64,
            self.head_dim() as f64,
            self.num_attention_heads as f64,
            self.kv_heads() as f64,
            self.intermediate_size as f64,
            self.vocab_size as f64,
        );
        let proj = d * h * hd + 2.0 * d * kv * hd + h * hd * d + 3.0 * d * f;
        let attn = 2.0 * h * hd * ctx as f64;
        2.0 * (self.num_hidden_layers as f64 * (proj + attn) + d * v)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut cfg: Self =
            serde_json::from_str(&text).with_context(|| format!("{}: invalid model config", path.display()))?;
        cfg.normalize();
        cfg.validate().with_context(|| format!("{}: invalid model config", path.display()))?;
        Ok(cfg)
    }
}
