//! RLFR's reference field (oxrl_core::shaping::rlfr): fitted by flow matching on the policy's
//! final hidden states over expert solutions of the task's training problems.

use crate::config::RunConfig;
use crate::policy::Policy;
use anyhow::{ensure, Result};
use candle_core::{DType, Tensor};
use oxrl_core::shaping::rlfr::FlowField;
use oxrl_lm::scorer::{score, ScoreOptions};
use oxrl_tasks::Task;

/// The final hidden states of `responses` (valid positions only, stacked) `[N, D]`, f32 on CPU.
pub fn response_states(policy: &Policy, prompts: &[Vec<u32>], responses: &[Vec<u32>]) -> Result<Vec<Tensor>> {
    let pad = policy.tokenizer.pad_id();
    let mut out = Vec::with_capacity(responses.len());
    for (ps, rs) in prompts.chunks(64).zip(responses.chunks(64)) {
        let s = score(&policy.model, ps, rs, pad, ScoreOptions { hidden: true, ..Default::default() })?;
        let h = s.hidden.expect("asked for").to_dtype(DType::F32)?.to_device(&candle_core::Device::Cpu)?;
        for (i, r) in rs.iter().enumerate() {
            out.push(h.get(i)?.narrow(0, 0, r.len())?);
        }
    }
    Ok(out)
}

/// Fit the field on the expert solutions of the first `rlfr_fit_prompts` training problems.
pub fn fit(policy: &Policy, task: &dyn Task, cfg: &RunConfig) -> Result<(FlowField, f64)> {
    let t = &cfg.train;
    let tok = policy.tokenizer.as_ref();
    let (mut prompts, mut sols) = (Vec::new(), Vec::new());
    for i in 0..t.rlfr_fit_prompts as u64 {
        let p = task.train_problem(i);
        if p.solution.is_empty() {
            continue;
        }
        prompts.push(crate::policy::prompt_ids(tok, &p)?);
        sols.push(oxrl_lm::prompt::encode_response(tok, &p.solution)?);
    }
    ensure!(
        !sols.is_empty(),
        "key `train.rlfr_coef`: task `{}` has no expert solutions to fit the flow on",
        task.name()
    );
    let states = Tensor::cat(&response_states(policy, &prompts, &sols)?, 0)?;
    let mut rng = oxrl_core::seed::rng(cfg.seed, "rlfr-fit", 0);
    let mut field = FlowField::new(states.dim(1)?, t.rlfr_hidden, &mut rng)?;
    let loss = field.fit(&states, t.rlfr_fit_steps, 256, t.rlfr_lr, &mut rng)?;
    Ok((field, loss))
}
