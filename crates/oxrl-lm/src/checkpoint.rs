//! Checkpoints in the Hugging Face layout: `model.safetensors`, `config.json`, `tokenizer.json`,
//! plus `oxrl.json` (tokenizer kind and free-form run metadata). A checkpoint directory is built
//! under a temporary name and renamed into place when complete.

use crate::config::ModelConfig;
use crate::model::Transformer;
use crate::params::ParamStore;
use crate::tokenizer::{load_from_dir, Tokenizer};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub tokenizer: String,
    #[serde(default)]
    pub meta: serde_json::Value,
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
    crate::fsutil::write_dir_atomic(dir, |tmp| {
        model.params.save(&tmp.join("model.safetensors"))?;
        let mut cfg = model.cfg.clone();
        cfg.eos_token_id = Some(tokenizer.eos_id());
        cfg.bos_token_id = tokenizer.bos_id();
        std::fs::write(tmp.join("config.json"), serde_json::to_string_pretty(&cfg)?)?;
        std::fs::write(tmp.join("tokenizer.json"), tokenizer.to_hf_json()?)?;
        let m = Manifest { format: "oxrl-checkpoint-v1".into(), tokenizer: tokenizer.kind().into(), meta };
        std::fs::write(tmp.join("oxrl.json"), serde_json::to_string_pretty(&m)?)?;
        extra(tmp)
    })
}

pub struct Loaded {
    pub model: Transformer,
    pub tokenizer: Box<dyn Tokenizer>,
    pub manifest: Manifest,
}

/// Load a checkpoint directory written by [`save`] (or a single-file HF model directory).
pub fn load(dir: &Path, device: &Device) -> Result<Loaded> {
    if !dir.is_dir() {
        bail!("{}: not a checkpoint directory", dir.display());
    }
    let cfg = ModelConfig::load(&dir.join("config.json"))?;
    let manifest = match std::fs::read_to_string(dir.join("oxrl.json")) {
        Ok(s) => serde_json::from_str(&s).with_context(|| format!("{}: invalid oxrl.json", dir.display()))?,
        Err(_) => Manifest { format: "hf".into(), tokenizer: "hf".into(), meta: serde_json::Value::Null },
    };
    let params = ParamStore::load(&cfg, &dir.join("model.safetensors"), DType::F32, device)?;
    let tokenizer = load_from_dir(dir, &manifest.tokenizer, cfg.eos_token_id)?;
    let model = Transformer::new(cfg, params)?;
    Ok(Loaded { model, tokenizer, manifest })
}
