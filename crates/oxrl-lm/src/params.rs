//! Named trainable parameters with seeded initialisation and safetensors I/O.

use crate::config::ModelConfig;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Parameters by Hugging Face tensor name, in a deterministic (sorted) order.
#[derive(Clone)]
pub struct ParamStore {
    vars: BTreeMap<String, Var>,
    pub device: Device,
}

/// The tensor names and shapes of a model config, in the Qwen2/Llama layout.
pub fn param_shapes(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (d, hd, h, kv, f) =
        (cfg.hidden_size, cfg.head_dim(), cfg.num_attention_heads, cfg.kv_heads(), cfg.intermediate_size);
    let mut out = vec![("model.embed_tokens.weight".to_string(), vec![cfg.vocab_size, d])];
    for i in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{i}");
        out.push((format!("{p}.input_layernorm.weight"), vec![d]));
        out.push((format!("{p}.self_attn.q_proj.weight"), vec![h * hd, d]));
        out.push((format!("{p}.self_attn.k_proj.weight"), vec![kv * hd, d]));
        out.push((format!("{p}.self_attn.v_proj.weight"), vec![kv * hd, d]));
        if cfg.qkv_bias() {
            out.push((format!("{p}.self_attn.q_proj.bias"), vec![h * hd]));
            out.push((format!("{p}.self_attn.k_proj.bias"), vec![kv * hd]));
            out.push((format!("{p}.self_attn.v_proj.bias"), vec![kv * hd]));
        }
        if cfg.qk_norm() {
            out.push((format!("{p}.self_attn.q_norm.weight"), vec![hd]));
            out.push((format!("{p}.self_attn.k_norm.weight"), vec![hd]));
        }
        out.push((format!("{p}.self_attn.o_proj.weight"), vec![d, h * hd]));
        if cfg.o_bias() {
            out.push((format!("{p}.self_attn.o_proj.bias"), vec![d]));
        }
        out.push((format!("{p}.post_attention_layernorm.weight"), vec![d]));
        out.push((format!("{p}.mlp.gate_proj.weight"), vec![f, d]));
        out.push((format!("{p}.mlp.up_proj.weight"), vec![f, d]));
        out.push((format!("{p}.mlp.down_proj.weight"), vec![d, f]));
    }
    out.push(("model.norm.weight".to_string(), vec![d]));
    if !cfg.tie_word_embeddings {
        out.push(("lm_head.weight".to_string(), vec![cfg.vocab_size, d]));
    }
    out
}

impl ParamStore {
    /// Fresh parameters from `seed`: N(0, initializer_range²) matrices, unit norm weights, zero
    /// biases (the Hugging Face initialisation).
    pub fn init(cfg: &ModelConfig, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(oxrl_core::seed::derive(seed, "init", 0));
        let normal = Normal::new(0.0f32, cfg.initializer_range as f32)?;
        let mut vars = BTreeMap::new();
        for (name, shape) in param_shapes(cfg) {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = if name.ends_with("norm.weight") {
                vec![1.0; n]
            } else if name.ends_with(".bias") {
                vec![0.0; n]
            } else {
                (0..n).map(|_| normal.sample(&mut rng)).collect()
            };
            let t = Tensor::from_vec(data, shape, device)?.to_dtype(dtype)?;
            vars.insert(name, Var::from_tensor(&t)?);
        }
        Ok(Self { vars, device: device.clone() })
    }

    /// Build from named tensors, checking every tensor the config needs is present with its shape.
    pub fn from_tensors(
        cfg: &ModelConfig,
        mut tensors: HashMap<String, Tensor>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let mut vars = BTreeMap::new();
        let mut missing = Vec::new();
        for (name, shape) in param_shapes(cfg) {
            match tensors.remove(&name) {
                None => missing.push(name),
                Some(t) => {
                    if t.dims() != shape.as_slice() {
                        bail!("tensor `{name}` has shape {:?}, the config needs {:?}", t.dims(), shape);
                    }
                    let t = t.to_device(device)?.to_dtype(dtype)?;
                    vars.insert(name, Var::from_tensor(&t)?);
                }
            }
        }
        if !missing.is_empty() {
            bail!("missing tensors ({} of {}): {}", missing.len(), param_shapes(cfg).len(), missing.join(", "));
        }
        // Tensors the architecture does not use mean the checkpoint is not what the config says
        // (e.g. Qwen3 q/k norms under a Qwen2 config). Cached rotary tables and a tied head that
        // some exporters write anyway are harmless.
        let mut unexpected: Vec<String> = tensors
            .into_keys()
            .filter(|n| !(n.ends_with("rotary_emb.inv_freq") || cfg.tie_word_embeddings && n == "lm_head.weight"))
            .collect();
        if !unexpected.is_empty() {
            unexpected.sort();
            bail!(
                "tensors the `{}` architecture does not use: {} (is config.json's model_type right?)",
                cfg.model_type,
                unexpected.join(", ")
            );
        }
        Ok(Self { vars, device: device.clone() })
    }

    /// Load one safetensors file.
    pub fn load(cfg: &ModelConfig, path: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .with_context(|| format!("{}: cannot read safetensors", path.display()))?;
        Self::from_tensors(cfg, tensors, dtype, device).with_context(|| format!("{}", path.display()))
    }

    /// Load the weights of a Hugging Face model directory (single-file or sharded).
    pub fn load_dir(cfg: &ModelConfig, dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let tensors = crate::hf::read_weights(dir)?;
        Self::from_tensors(cfg, tensors, dtype, device).with_context(|| format!("{}", dir.display()))
    }

    /// Save all parameters to one safetensors file (in their dtype), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let map: HashMap<String, Tensor> = self.vars.iter().map(|(k, v)| (k.clone(), v.as_detached_tensor())).collect();
        crate::fsutil::write_atomic_with(path, |tmp| Ok(candle_core::safetensors::save(&map, tmp)?))
    }

    /// Save as a Hugging Face weights set in `dtype`, sharded above `max_shard_bytes` (0 = one file).
    pub fn save_dir(&self, dir: &Path, dtype: DType, max_shard_bytes: usize) -> Result<()> {
        let list: Vec<(String, usize)> = self.vars.iter().map(|(k, v)| (k.clone(), v.elem_count())).collect();
        crate::hf::write_weights(dir, &list, |n| self.tensor(n).map(|t| t.detach()), dtype, max_shard_bytes)
    }

    /// The dtype of the parameters.
    pub fn dtype(&self) -> Result<DType> {
        Ok(self.vars.values().next().context("empty parameter store")?.dtype())
    }

    pub fn get(&self, name: &str) -> Result<&Var> {
        self.vars.get(name).with_context(|| format!("no parameter named `{name}`"))
    }
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        Ok(self.get(name)?.as_tensor().clone())
    }
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        self.vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
    pub fn len(&self) -> usize {
        self.vars.len()
    }
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }
    pub fn num_elements(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }
    /// A deep copy (fresh storage), e.g. for a frozen reference model.
    pub fn deep_clone(&self) -> Result<Self> {
        let mut vars = BTreeMap::new();
        for (k, v) in &self.vars {
            vars.insert(k.clone(), Var::from_tensor(&v.as_tensor().copy()?.detach())?);
        }
        Ok(Self { vars, device: self.device.clone() })
    }
}
