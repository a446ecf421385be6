//! The policy being trained: a model and its tokenizer, fresh from the config or loaded from a
//! checkpoint.

use crate::config::RunConfig;
use anyhow::{Context, Result};
use candle_core::{DType, Device};
use oxrl_lm::lora::LoraStore;
use oxrl_lm::{CharTokenizer, ParamStore, Tokenizer, Transformer};
use oxrl_tasks::Problem;
use std::path::Path;

pub struct Policy {
    pub model: Transformer,
    pub tokenizer: Box<dyn Tokenizer>,
}

impl Policy {
    /// The run's starting policy: the model directory of `model.path` (with chat formatting and
    /// LoRA adapters as configured) or a fresh built-in model.
    pub fn from_config(cfg: &RunConfig, device: &Device) -> Result<Self> {
        let m = &cfg.model;
        let dtype = m.compute_dtype(device)?;
        let mut p = match &m.path {
            Some(dir) => {
                let mut p = Self::load_with(dir, device, dtype, cfg.seed)?;
                if m.chat || p.tokenizer.chat().is_some() {
                    p.tokenizer
                        .set_chat(m.chat, m.system_prompt.clone())
                        .with_context(|| format!("key `model.chat` with {}", dir.display()))?;
                }
                p
            }
            None => {
                let tokenizer: Box<dyn Tokenizer> = Box::new(CharTokenizer::new());
                let mcfg = m.model_config(tokenizer.vocab_size());
                let params = ParamStore::init(&mcfg, cfg.seed, dtype, device)?;
                Self { model: Transformer::new(mcfg, params)?, tokenizer }
            }
        };
        if let Some(lc) = &m.lora {
            anyhow::ensure!(
                p.model.lora.is_none(),
                "key `model.lora`: {} already carries LoRA adapters (training them further: drop `model.lora`)",
                m.path.as_deref().unwrap_or(Path::new("")).display()
            );
            let mut store = LoraStore::init(&p.model.cfg, lc, cfg.seed, dtype, device)?;
            store.base_model = m.path.as_ref().map(|d| d.display().to_string()).unwrap_or_default();
            p.model = p.model.with_lora(store)?;
        }
        if let Some(ls) = &m.latent {
            let lc = ls.resolve(p.tokenizer.as_ref())?;
            match &p.model.latent {
                Some(have) => anyhow::ensure!(
                    have.cfg == lc,
                    "key `model.latent`: the model directory already carries a different latent module ({:?})",
                    have.cfg
                ),
                None => {
                    let l = oxrl_lm::latent::LatentModule::new(lc, p.model.cfg.hidden_size, dtype, device)?;
                    p.model.latent = Some(std::sync::Arc::new(l));
                }
            }
        }
        p.model.checkpointing = m.gradient_checkpointing;
        Ok(p)
    }

    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        Self::load_with(dir, device, oxrl_lm::checkpoint::default_dtype(device), 0)
    }

    pub fn load_with(dir: &Path, device: &Device, dtype: DType, seed: u64) -> Result<Self> {
        let opts = oxrl_lm::checkpoint::LoadOptions { dtype: Some(dtype), seed };
        let l = oxrl_lm::checkpoint::load_with(dir, device, &opts)
            .with_context(|| format!("loading model {}", dir.display()))?;
        Ok(Self { model: l.model, tokenizer: l.tokenizer })
    }

    /// The frozen KL reference: the base without adapters under LoRA (shares the weights), else
    /// a deep copy of the current parameters.
    pub fn reference(&self) -> Result<Transformer> {
        if self.model.lora.is_some() {
            return self.model.base_view();
        }
        let mut r = Transformer::new(self.model.cfg.clone(), self.model.params.deep_clone()?)?;
        r.fused = self.model.fused;
        if let Some(l) = &self.model.latent {
            r.latent = Some(std::sync::Arc::new(l.deep_clone()?));
        }
        Ok(r)
    }

    /// Encode a problem's prompt and demonstration, checking they fit the model's context.
    pub fn encode_pair(&self, problem: &Problem) -> Result<(Vec<u32>, Vec<u32>)> {
        let p = prompt_ids(self.tokenizer.as_ref(), problem)?;
        let r = oxrl_lm::prompt::encode_response(self.tokenizer.as_ref(), &problem.solution)?;
        anyhow::ensure!(
            p.len() + r.len() <= self.model.cfg.max_position_embeddings,
            "prompt + response of {} tokens exceed the model's max_position_embeddings {}",
            p.len() + r.len(),
            self.model.cfg.max_position_embeddings
        );
        Ok((p, r))
    }
}

/// The problem with its instruction rewritten by `f`: the prompt, or in chat data the last user
/// message's content (the system prompt and earlier turns stay).
pub fn rewrite_instruction(problem: &Problem, f: impl FnOnce(&str) -> String) -> Result<Problem> {
    let mut p = problem.clone();
    match p.meta.get_mut("messages").and_then(|m| m.as_array_mut()) {
        Some(msgs) => {
            let last_user = msgs.iter_mut().rev().find(|m| m.get("role").and_then(|r| r.as_str()) == Some("user"));
            let Some(m) = last_user else {
                anyhow::bail!("problem {}: `messages` has no user message to rewrite", problem.id)
            };
            let content = m.get("content").and_then(|c| c.as_str()).unwrap_or("").to_string();
            let new = f(&content);
            m["content"] = serde_json::Value::String(new.clone());
            p.prompt = new;
        }
        None => p.prompt = f(&problem.prompt),
    }
    Ok(p)
}

/// A problem's prompt ids: its chat messages (dataset `messages_field`) through the chat
/// template, else its prompt text (through the template when chat formatting is on).
pub fn prompt_ids(tok: &dyn Tokenizer, problem: &Problem) -> Result<Vec<u32>> {
    match problem.meta.get("messages") {
        Some(m) => {
            let msgs: Vec<oxrl_lm::chat::ChatMessage> = serde_json::from_value(m.clone())
                .with_context(|| format!("problem {}: `messages` is not a list of {{role, content}}", problem.id))?;
            oxrl_lm::prompt::encode_messages(tok, &msgs)
        }
        None => oxrl_lm::prompt::encode_prompt(tok, &problem.prompt),
    }
}

/// Resolve a checkpoint argument: a checkpoint directory, or a run folder (its final checkpoint).
pub fn resolve_checkpoint(path: &Path) -> Result<std::path::PathBuf> {
    if path.join("config.json").exists() || path.join("adapter_config.json").exists() {
        return Ok(path.to_path_buf());
    }
    let fin = path.join("checkpoints").join("final");
    if fin.join("config.json").exists() {
        return Ok(fin);
    }
    anyhow::bail!("{}: neither a checkpoint (no config.json) nor a run folder with checkpoints/final", path.display())
}
