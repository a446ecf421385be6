//! Checkpoints are Hugging Face model directories: `config.json`, `model.safetensors` (or shards
//! with `model.safetensors.index.json`), `tokenizer.json`, `tokenizer_config.json` (special
//! tokens, chat template), `generation_config.json`, plus `oxrl.json` (tokenizer kind, chat
//! formatting, free-form run metadata). A checkpoint directory is built under a temporary name and
//! renamed into place when complete.
//!
//! A LoRA model is saved merged (full weights that any tool reads, with the adapters beside them
//! in `adapter/`, PEFT layout) or adapter-only (PEFT files at the top level and no weights; the
//! base is found through `adapter_config.json`'s `base_model_name_or_path`).

use crate::config::{ModelConfig, TokenIds};
use crate::lora::LoraStore;
use crate::model::Transformer;
use crate::params::ParamStore;
use crate::tokenizer::{load_from_dir, Tokenizer};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub tokenizer: String,
    /// Prompts go through the chat template.
    #[serde(default)]
    pub chat: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    #[serde(default)]
    pub meta: serde_json::Value,
}

/// How to write a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct SaveOptions {
    /// Weight dtype on disk (None = the model's own).
    pub dtype: Option<DType>,
    /// Shard the weights above this many bytes (0 = one file).
    pub max_shard_bytes: usize,
    /// LoRA models: write merged weights (true) or only the adapters (false).
    pub merge_lora: bool,
}

impl Default for SaveOptions {
    fn default() -> Self {
        Self { dtype: None, max_shard_bytes: 0, merge_lora: true }
    }
}

/// Write a checkpoint directory atomically. `extra` writes any additional files into the
/// temporary directory before the rename.
pub fn save(
    dir: &Path,
    model: &Transformer,
    tokenizer: &dyn Tokenizer,
    meta: serde_json::Value,
    extra: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    save_with(dir, model, tokenizer, meta, &SaveOptions::default(), extra)
}

pub fn save_with(
    dir: &Path,
    model: &Transformer,
    tokenizer: &dyn Tokenizer,
    meta: serde_json::Value,
    opts: &SaveOptions,
    extra: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    crate::fsutil::write_dir_atomic(dir, |tmp| {
        let dtype = opts.dtype.unwrap_or(model.dtype());
        let mut cfg = model.cfg.clone();
        let stops = tokenizer.stop_ids();
        if cfg.eos_token_id.as_ref().map(|e| e.ids()) != Some(stops.clone()) {
            cfg.eos_token_id =
                Some(if stops.len() == 1 { TokenIds::One(stops[0]) } else { TokenIds::Many(stops.clone()) });
        }
        cfg.bos_token_id = tokenizer.bos_id().map(TokenIds::One);
        cfg.torch_dtype = crate::hf::torch_name(dtype).into();
        if cfg.extra.contains_key("dtype") {
            cfg.extra.insert("dtype".into(), serde_json::json!(cfg.torch_dtype));
        }
        match (&model.lora, opts.merge_lora) {
            (Some(l), true) => {
                l.save_merged(&model.params, tmp, dtype, opts.max_shard_bytes)?;
                let ad = tmp.join("adapter");
                std::fs::create_dir_all(&ad)?;
                l.save_peft(&ad, &l.base_model)?;
            }
            (Some(l), false) => l.save_peft(tmp, &l.base_model)?,
            (None, _) => model.params.save_dir(tmp, dtype, opts.max_shard_bytes)?,
        }
        let write = |name: &str, v: &serde_json::Value| -> Result<()> {
            Ok(std::fs::write(tmp.join(name), serde_json::to_string_pretty(v)?)?)
        };
        write("config.json", &serde_json::to_value(&cfg)?)?;
        std::fs::write(tmp.join("tokenizer.json"), tokenizer.to_hf_json()?)?;
        let mut tcfg = tokenizer.tokenizer_config()?;
        if let (Some(t), Some(obj)) = (tokenizer.chat_template(), tcfg.as_object_mut()) {
            obj.entry("chat_template").or_insert_with(|| serde_json::Value::String(t.source.clone()));
        }
        write("tokenizer_config.json", &tcfg)?;
        let gen = serde_json::json!({
            "bos_token_id": tokenizer.bos_id(),
            "eos_token_id": if stops.len() == 1 { serde_json::json!(stops[0]) } else { serde_json::json!(stops) },
            "pad_token_id": tokenizer.pad_id(),
        });
        write("generation_config.json", &gen)?;
        let m = Manifest {
            format: "oxrl-checkpoint-v1".into(),
            tokenizer: tokenizer.kind().into(),
            chat: tokenizer.chat().is_some(),
            system_prompt: tokenizer.chat().and_then(|c| c.system.clone()),
            meta,
        };
        write("oxrl.json", &serde_json::to_value(&m)?)?;
        if let Some(l) = &model.latent {
            l.save(tmp)?;
        }
        extra(tmp)
    })
}

pub struct Loaded {
    pub model: Transformer,
    pub tokenizer: Box<dyn Tokenizer>,
    pub manifest: Manifest,
}

/// How to load a model directory.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadOptions {
    /// Compute dtype (None = f32 on CPU, bf16 on CUDA).
    pub dtype: Option<DType>,
    /// Seed of LoRA dropout masks for loaded adapters.
    pub seed: u64,
}

/// The default compute dtype of a device: f32 on CPU, bf16 on GPU.
pub fn default_dtype(device: &Device) -> DType {
    if device.is_cpu() {
        DType::F32
    } else {
        DType::BF16
    }
}

/// Load an oxrl checkpoint or a Hugging Face model directory.
pub fn load(dir: &Path, device: &Device) -> Result<Loaded> {
    load_with(dir, device, &LoadOptions::default())
}

/// The base directory an adapter-only checkpoint names, resolved relative to the adapter
/// directory when it is a relative path that exists there.
fn resolve_base(adapter_dir: &Path, base: &str) -> PathBuf {
    let p = PathBuf::from(base);
    if p.is_relative() && adapter_dir.join(&p).join("config.json").exists() {
        return adapter_dir.join(p);
    }
    p
}

pub fn load_with(dir: &Path, device: &Device, opts: &LoadOptions) -> Result<Loaded> {
    if !dir.is_dir() {
        bail!("{}: not a model directory", dir.display());
    }
    let dtype = opts.dtype.unwrap_or_else(|| default_dtype(device));
    let manifest = match std::fs::read_to_string(dir.join("oxrl.json")) {
        Ok(s) => serde_json::from_str(&s).with_context(|| format!("{}: invalid oxrl.json", dir.display()))?,
        Err(_) => Manifest {
            format: "hf".into(),
            tokenizer: "hf".into(),
            chat: false,
            system_prompt: None,
            meta: serde_json::Value::Null,
        },
    };
    let is_adapter_only = dir.join("adapter_config.json").exists()
        && !dir.join("model.safetensors").exists()
        && !dir.join("model.safetensors.index.json").exists();
    let mut tok_dir = dir.to_path_buf();
    let model = if is_adapter_only {
        let probe: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("adapter_config.json"))?)
            .with_context(|| format!("{}: invalid adapter_config.json", dir.display()))?;
        let base = probe.get("base_model_name_or_path").and_then(|v| v.as_str()).unwrap_or("");
        if base.is_empty() {
            bail!("{}: adapter-only checkpoint without `base_model_name_or_path`", dir.display());
        }
        let base_dir = resolve_base(dir, base);
        let base_cfg = ModelConfig::load(&base_dir.join("config.json"))
            .with_context(|| format!("{}: loading the base model {}", dir.display(), base_dir.display()))?;
        let params = ParamStore::load_dir(&base_cfg, &base_dir, dtype, device)?;
        let (mut store, base_name) = LoraStore::load_peft(dir, &base_cfg, opts.seed, dtype, device)?;
        store.base_model = base_name;
        if !dir.join("tokenizer.json").exists() {
            tok_dir = base_dir.clone();
        }
        Transformer::new(base_cfg, params)?.with_lora(store)?
    } else {
        let cfg = ModelConfig::load(&dir.join("config.json"))?;
        let params = ParamStore::load_dir(&cfg, dir, dtype, device)?;
        Transformer::new(cfg, params)?
    };
    let mut model = model;
    if let Some(l) = crate::latent::LatentModule::load(dir, model.cfg.hidden_size, dtype, device)? {
        model.latent = Some(std::sync::Arc::new(l));
    }
    let mut eos = model.cfg.eos_ids();
    if let Ok(text) = std::fs::read_to_string(tok_dir.join("generation_config.json")) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            if let Some(ids) = v.get("eos_token_id").and_then(|e| serde_json::from_value::<TokenIds>(e.clone()).ok()) {
                for i in ids.ids() {
                    if !eos.contains(&i) {
                        eos.push(i);
                    }
                }
            }
        }
    }
    let mut tokenizer = load_from_dir(&tok_dir, &manifest.tokenizer, &eos)?;
    if manifest.chat {
        tokenizer.set_chat(true, manifest.system_prompt.clone())?;
    }
    anyhow::ensure!(
        tokenizer.vocab_size() <= model.cfg.vocab_size,
        "{}: the tokenizer has {} tokens but the model's vocab_size is {}",
        dir.display(),
        tokenizer.vocab_size(),
        model.cfg.vocab_size
    );
    Ok(Loaded { model, tokenizer, manifest })
}
