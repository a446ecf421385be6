//! DPH-RL's rehearsal set: responses sampled ONCE from the initial policy π₀ with their per-token
//! log-probs, kept for the mass-covering divergence term (oxrl_core::regularizer::dph).
//!
//! Construction follows the authors' data split where a finite pool exists: `dph_probe_prompts`
//! training prompts are each sampled `dph_probe_samples` times with π₀ (at the rollout
//! temperature); prompts π₀ always solves give the pool their correct responses. When π₀ solves
//! no prompt every time (a weak start), the pool falls back to all correct responses, then to
//! every sampled response — INFERRED: the divergence still covers π₀'s mass, just less selectively.
//! The RL stream itself is not filtered (synthetic tasks are unbounded). The set is saved in the
//! run folder (`rehearsal.json`) so a resumed run uses the same one.

use crate::config::RunConfig;
use crate::policy::Policy;
use anyhow::{Context, Result};
use oxrl_lm::sampler::generate;
use oxrl_lm::scorer::{score, ScoreOptions};
use oxrl_tasks::Task;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RehearsalItem {
    pub prompt: Vec<u32>,
    pub response: Vec<u32>,
    /// log π₀ of each response token (at temperature 1, as the trainer scores).
    pub logp0: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rehearsal {
    pub items: Vec<RehearsalItem>,
    /// How the pool was filled: "always-solved", "correct" or "all" (the fallbacks).
    pub source: String,
    pub probe_prompts: usize,
    pub always_solved: usize,
}

impl Rehearsal {
    /// Sample the rehearsal set from the current policy (π₀).
    pub fn build(policy: &Policy, task: &dyn Task, cfg: &RunConfig, budget: usize) -> Result<Self> {
        let t = &cfg.train;
        let tok = policy.tokenizer.as_ref();
        let k = t.dph_probe_samples.max(1);
        let problems: Vec<oxrl_tasks::Problem> =
            (0..t.dph_probe_prompts as u64).map(|i| task.train_problem(i)).collect();
        let mut prompts = Vec::with_capacity(problems.len() * k);
        for p in &problems {
            let ids = crate::policy::prompt_ids(tok, p)?;
            for _ in 0..k {
                prompts.push(ids.clone());
            }
        }
        let params = t.sampling_params(budget, tok.stop_ids());
        let mut rng = oxrl_core::seed::rng(cfg.seed, "dph-rehearsal", 0);
        let outs = generate(&policy.model, &prompts, &params, tok.pad_id(), &mut rng)?;
        let mut correct = vec![false; outs.len()];
        for (i, c) in outs.iter().enumerate() {
            let text = oxrl_lm::prompt::decode_response(tok, &c.text_tokens())?;
            correct[i] = task.verify(&problems[i / k], &text).correct;
        }
        let solved: Vec<bool> = (0..problems.len()).map(|p| (0..k).all(|j| correct[p * k + j])).collect();
        let always = solved.iter().filter(|&&s| s).count();
        let pick = |f: &dyn Fn(usize) -> bool| -> Vec<usize> {
            (0..outs.len()).filter(|&i| f(i) && !outs[i].tokens.is_empty()).collect()
        };
        let (mut chosen, mut source) = (pick(&|i| solved[i / k] && correct[i]), "always-solved");
        if chosen.is_empty() {
            (chosen, source) = (pick(&|i| correct[i]), "correct");
        }
        if chosen.is_empty() {
            (chosen, source) = (pick(&|_| true), "all");
        }
        anyhow::ensure!(!chosen.is_empty(), "DPH-RL: the initial policy produced no response to rehearse");
        // log π₀ of the chosen responses at temperature 1 (what the trainer's logp is).
        let mut items = Vec::with_capacity(chosen.len());
        for chunk in chosen.chunks(64) {
            let ps: Vec<Vec<u32>> = chunk.iter().map(|&i| prompts[i].clone()).collect();
            let rs: Vec<Vec<u32>> = chunk.iter().map(|&i| outs[i].tokens.clone()).collect();
            let s = score(&policy.model, &ps, &rs, tok.pad_id(), ScoreOptions::default())?;
            let lp = s.logp.to_dtype(candle_core::DType::F64)?.to_vec2::<f64>()?;
            for (j, &i) in chunk.iter().enumerate() {
                let n = outs[i].tokens.len();
                items.push(RehearsalItem {
                    prompt: prompts[i].clone(),
                    response: outs[i].tokens.clone(),
                    logp0: lp[j][..n].to_vec(),
                });
            }
        }
        Ok(Self { items, source: source.into(), probe_prompts: problems.len(), always_solved: always })
    }

    /// The rehearsal batch of an optimiser step: `n` items drawn without replacement, seeded by
    /// (seed, step, minibatch).
    pub fn batch(&self, seed: u64, step: u64, minibatch: usize, n: usize) -> Vec<&RehearsalItem> {
        let mut idx: Vec<usize> = (0..self.items.len()).collect();
        idx.shuffle(&mut oxrl_core::seed::rng(seed, "dph-batch", (step << 16) + minibatch as u64));
        idx.into_iter().take(n.max(1)).map(|i| &self.items[i]).collect()
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        oxrl_lm::fsutil::write_atomic(path, serde_json::to_string(self)?.as_bytes())
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a rehearsal set", path.display()))
    }
}
