//! Model configuration in the Hugging Face `config.json` shape (Qwen2 / Llama).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

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
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
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
    pub bos_token_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<u32>,
    #[serde(default = "default_dtype")]
    pub torch_dtype: String,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
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
        }
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }
    /// Whether q/k/v projections carry biases (always for Qwen2; `attention_bias` for Llama).
    pub fn qkv_bias(&self) -> bool {
        self.attention_bias.unwrap_or(self.model_type == "qwen2")
    }
    /// Whether o_proj carries a bias (Llama with `attention_bias = true`; never for Qwen2).
    pub fn o_bias(&self) -> bool {
        self.model_type != "qwen2" && self.attention_bias.unwrap_or(false)
    }

    pub fn validate(&self) -> Result<()> {
        if !matches!(self.model_type.as_str(), "qwen2" | "llama") {
            bail!("model_type `{}` is not supported (supported: qwen2, llama)", self.model_type);
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
        let layer = d * h * hd + 2 * d * kv * hd + h * hd * d + qkv_b + o_b + 3 * d * f + 2 * d;
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
        let cfg: Self =
            serde_json::from_str(&text).with_context(|| format!("{}: invalid model config", path.display()))?;
        cfg.validate().with_context(|| format!("{}: invalid model config", path.display()))?;
        Ok(cfg)
    }
}
