//! The policy being trained: a model and its tokenizer, fresh from the config or loaded from a
//! checkpoint.

use crate::config::RunConfig;
use anyhow::{Context, Result};
use candle_core::{DType, Device};
use oxrl_lm::{CharTokenizer, ParamStore, Tokenizer, Transformer};
use std::path::Path;

pub struct Policy {
    pub model: Transformer,
    pub tokenizer: Box<dyn Tokenizer>,
}

impl Policy {
    pub fn from_config(cfg: &RunConfig, device: &Device) -> Result<Self> {
        match &cfg.model.init {
            Some(dir) => Self::load(dir, device),
            None => {
                let tokenizer: Box<dyn Tokenizer> = Box::new(CharTokenizer::new());
                let mcfg = cfg.model.model_config(tokenizer.vocab_size());
                let params = ParamStore::init(&mcfg, cfg.seed, DType::F32, device)?;
                Ok(Self { model: Transformer::new(mcfg, params)?, tokenizer })
            }
        }
    }

    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let l =
            oxrl_lm::checkpoint::load(dir, device).with_context(|| format!("loading checkpoint {}", dir.display()))?;
        Ok(Self { model: l.model, tokenizer: l.tokenizer })
    }

    /// Encode (prompt, response) text pairs, checking they fit the model's context.
    pub fn encode_pair(&self, prompt: &str, response: &str) -> Result<(Vec<u32>, Vec<u32>)> {
        let p = oxrl_lm::prompt::encode_prompt(self.tokenizer.as_ref(), prompt)?;
        let r = oxrl_lm::prompt::encode_response(self.tokenizer.as_ref(), response)?;
        anyhow::ensure!(
            p.len() + r.len() <= self.model.cfg.max_position_embeddings,
            "prompt + response of {} tokens exceed the model's max_position_embeddings {}",
            p.len() + r.len(),
            self.model.cfg.max_position_embeddings
        );
        Ok((p, r))
    }
}

/// Resolve a checkpoint argument: a checkpoint directory, or a run folder (its final checkpoint).
pub fn resolve_checkpoint(path: &Path) -> Result<std::path::PathBuf> {
    if path.join("config.json").exists() {
        return Ok(path.to_path_buf());
    }
    let fin = path.join("checkpoints").join("final");
    if fin.join("config.json").exists() {
        return Ok(fin);
    }
    anyhow::bail!("{}: neither a checkpoint (no config.json) nor a run folder with checkpoints/final", path.display())
}
