//! Supervised fine-tuning on a task's demonstrations: token-mean negative log-likelihood of the
//! response tokens, AdamW with global-norm clipping and a warm-up + decay schedule.

use crate::config::RunConfig;
use crate::data::DataStream;
use crate::eval::{evaluate, EvalReport};
use crate::policy::Policy;
use crate::run::RunDir;
use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use oxrl_core::optim::{AdamW, AdamWConfig, Schedule};
use oxrl_lm::scorer::{score, ScoreOptions};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct SftOutcome {
    pub run_dir: PathBuf,
    pub final_eval: EvalReport,
    pub losses: Vec<f64>,
}

pub fn progress_bar(len: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}").unwrap().progress_chars("=> "),
    );
    pb
}

/// Run SFT as configured. Everything that can fail on bad input (config, task data, model) is
/// checked before the run folder is created.
pub fn run_sft(cfg: &RunConfig, out: Option<&Path>, quiet: bool) -> Result<SftOutcome> {
    let device = oxrl_lm::default_device();
    let task = cfg.task.build(cfg.seed)?;
    let mut policy = Policy::from_config(cfg, &device)?;
    // Fail early on demonstrations the tokenizer or context cannot hold.
    for p in task.test_problems().iter().take(8).chain(std::iter::once(&task.train_problem(0))) {
        policy.encode_pair(p)?;
    }
    let mut run = RunDir::create(out, &cfg.name)?;
    run.write_config(&cfg.to_toml()?)?;
    let losses = train_sft(cfg, &mut policy, task.as_ref(), &mut run, quiet)?;
    let final_eval = evaluate(&policy, task.as_ref(), &cfg.eval, cfg.seed)?;
    run.log(&json!({"phase": "sft", "step": cfg.sft.steps, "eval": final_eval}))?;
    save_checkpoint(&run, "final", &policy, cfg, cfg.sft.steps)?;
    Ok(SftOutcome { run_dir: run.path.clone(), final_eval, losses })
}

pub fn save_checkpoint(run: &RunDir, label: &str, policy: &Policy, cfg: &RunConfig, step: u64) -> Result<()> {
    let meta = json!({"task": cfg.task, "step": step, "seed": cfg.seed, "run": cfg.name});
    let opts = cfg.model.save_options(&policy.model.cfg, true)?;
    let dir = run.checkpoint_dir(label);
    oxrl_lm::checkpoint::save_with(&dir, &policy.model, policy.tokenizer.as_ref(), meta, &opts, |_| Ok(()))
}

/// The SFT loop; returns the per-step losses.
pub fn train_sft(
    cfg: &RunConfig,
    policy: &mut Policy,
    task: &dyn oxrl_tasks::Task,
    run: &mut RunDir,
    quiet: bool,
) -> Result<Vec<f64>> {
    let s = &cfg.sft;
    let mut opt = AdamW::new(
        policy.model.trainable_vars(),
        AdamWConfig { beta1: s.beta1, beta2: s.beta2, eps: s.eps, weight_decay: s.weight_decay },
    )?;
    let sched = Schedule {
        kind: s.schedule,
        lr: s.lr,
        warmup_steps: s.warmup_steps,
        total_steps: s.steps,
        min_lr_ratio: s.min_lr_ratio,
    };
    let mut data = DataStream::new(task, cfg.seed, 0);
    let agent = crate::agent::is_agent_task(task);
    let pad = policy.tokenizer.pad_id();
    let pb = progress_bar(s.steps, quiet);
    pb.set_prefix("sft");
    let start = Instant::now();
    let mut losses = Vec::with_capacity(s.steps as usize);
    let mut tokens_total = 0usize;
    for step in 0..s.steps {
        let t0 = Instant::now();
        let problems = data.next_batch(s.batch_size);
        let mut prompts = Vec::with_capacity(problems.len());
        let mut responses = Vec::with_capacity(problems.len());
        // Loss masks: agent transcripts train on their actions only, not the observations.
        let mut masks: Vec<Vec<f32>> = Vec::with_capacity(problems.len());
        for p in &problems {
            let (a, b) = policy.encode_pair(p)?;
            prompts.push(a);
            if agent {
                let (ids, m) = crate::agent::encode_transcript(policy.tokenizer.as_ref(), &p.solution)?;
                responses.push(ids);
                masks.push(m);
            } else {
                masks.push(vec![1.0; b.len()]);
                responses.push(b);
            }
        }
        // Token-mean NLL over the batch, accumulated over `micro_batches` chunks (each chunk's
        // sum divided by the whole batch's token count, so the gradient is the batch's).
        let ntok = masks.iter().flatten().sum::<f32>() as f64;
        let n_micro = s.micro_batches.clamp(1, prompts.len().max(1));
        let mut acc = None;
        let mut loss_v = 0.0;
        for c in 0..n_micro {
            let (a, b) = (c * prompts.len() / n_micro, (c + 1) * prompts.len() / n_micro);
            if a == b {
                continue;
            }
            let opts = ScoreOptions { grad: true, ..Default::default() };
            let scored = score(&policy.model, &prompts[a..b], &responses[a..b], pad, opts)?;
            let width = scored.logp.dim(1)?;
            let mut m = vec![0f32; (b - a) * width];
            for (r, row) in masks[a..b].iter().enumerate() {
                m[r * width..r * width + row.len()].copy_from_slice(row);
            }
            let m = candle_core::Tensor::from_vec(m, (b - a, width), scored.logp.device())?
                .to_dtype(scored.logp.dtype())?;
            let loss = ((scored.logp * m)?.sum_all()? / (-ntok.max(1.0)))?;
            let lv = loss.to_scalar::<f32>()? as f64;
            loss_v += lv;
            if !lv.is_finite() {
                break;
            }
            opt.accumulate(&mut acc, &policy.model.backward(&loss)?)?;
        }
        let lr = sched.lr_at(step);
        let (grad_norm, skipped) = match acc {
            Some(grads) if loss_v.is_finite() => {
                let info = opt.step(&grads, lr, s.grad_clip)?;
                (info.grad_norm, info.skipped)
            }
            _ => (f64::NAN, true),
        };
        let tokens: usize = prompts.iter().chain(&responses).map(|x| x.len()).sum();
        tokens_total += tokens;
        let dt = t0.elapsed().as_secs_f64();
        losses.push(loss_v);
        run.log(&json!({
            "phase": "sft", "step": step + 1, "loss": finite_or_null(loss_v), "lr": lr, "grad_norm": finite_or_null(grad_norm),
            "skipped": skipped, "response_tokens": ntok, "tokens": tokens,
            "tokens_per_s": tokens as f64 / dt, "step_s": dt, "elapsed_s": start.elapsed().as_secs_f64(),
        }))?;
        pb.set_message(format!("loss {loss_v:.4} | {:.0} tok/s", tokens_total as f64 / start.elapsed().as_secs_f64()));
        pb.inc(1);
        let done = step + 1;
        if s.eval_every > 0 && done % s.eval_every == 0 && done < s.steps {
            let r = evaluate(policy, task, &cfg.eval, cfg.seed)?;
            pb.println(format!("step {done}: greedy accuracy {:.1}%", 100.0 * r.accuracy));
            run.log(&json!({"phase": "sft", "step": done, "eval": r}))?;
        }
        if s.checkpoint_every > 0 && done % s.checkpoint_every == 0 && done < s.steps {
            save_checkpoint(run, &format!("step-{done}"), policy, cfg, done)?;
        }
    }
    pb.finish_and_clear();
    Ok(losses)
}

fn finite_or_null(x: f64) -> serde_json::Value {
    if x.is_finite() {
        json!(x)
    } else {
        serde_json::Value::Null
    }
}
