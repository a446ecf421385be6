//! `oxrl generate`: one completion from any model directory or oxrl checkpoint.

use crate::policy::Policy;
use anyhow::{Context, Result};
use oxrl_lm::sampler::{generate, SamplingParams};
use serde::Serialize;

pub struct GenerateOptions {
    /// Render the prompt through the chat template (a user turn plus the generation prompt).
    pub chat: bool,
    pub system: Option<String>,
    pub max_new_tokens: usize,
    /// 0 = greedy.
    pub temperature: f64,
    pub top_p: f64,
    pub top_k: usize,
    pub seed: u64,
    /// RLG: (base model, guidance weight w) — sample from (1 − w)·base + w·this model's logits.
    pub guide: Option<(oxrl_lm::Transformer, f32)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    /// The completion only, up to (not including) the stop token.
    pub text: String,
    /// The completion's ids, the stop token included when one ended it.
    pub token_ids: Vec<u32>,
    /// "stop" or "length".
    pub finish_reason: String,
    pub prompt_tokens: usize,
}

pub fn generate_text(policy: &mut Policy, prompt: &str, o: &GenerateOptions) -> Result<Generation> {
    if o.chat {
        policy.tokenizer.set_chat(true, o.system.clone()).context("--chat")?;
    }
    let tok = policy.tokenizer.as_ref();
    let ids = oxrl_lm::prompt::encode_prompt(tok, prompt)?;
    let room = policy.model.cfg.max_position_embeddings.saturating_sub(ids.len());
    anyhow::ensure!(room > 0, "the prompt's {} tokens fill the model's whole context", ids.len());
    let params = SamplingParams {
        temperature: o.temperature,
        top_k: o.top_k,
        top_p: o.top_p,
        min_p: 0.0,
        max_new_tokens: o.max_new_tokens.min(room),
        stop_tokens: tok.stop_ids(),
    };
    let mut rng = oxrl_core::seed::rng(o.seed, "generate", 0);
    let one = std::slice::from_ref(&ids);
    let c = match &o.guide {
        Some((base, w)) => {
            oxrl_lm::sampler::generate_guided(base, &policy.model, *w, one, &params, tok.pad_id(), &mut rng)?
        }
        None => generate(&policy.model, one, &params, tok.pad_id(), &mut rng)?,
    }
    .remove(0);
    Ok(Generation {
        text: oxrl_lm::prompt::decode_response(tok, &c.text_tokens())?,
        finish_reason: match c.finish {
            oxrl_lm::sampler::Finish::Stop => "stop".into(),
            oxrl_lm::sampler::Finish::Length => "length".into(),
        },
        token_ids: c.tokens,
        prompt_tokens: ids.len(),
    })
}
