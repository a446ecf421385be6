//! `oxrl dpo`: Direct Preference Optimization on preference pairs (oxrl_core::loss::preference).
//!
//! Pairs come from a JSONL file, one `{"prompt": …, "chosen": …, "rejected": …}` per line
//! (`"messages": [{role, content}…]` may replace `prompt` for chat models). The reference is the
//! starting policy (frozen; under LoRA the base itself); its sequence log-probs are computed once.
//! A held-out fraction is scored by the implicit reward β·log(π/π_ref) at the end (pairwise
//! accuracy). The result is an ordinary checkpoint.

use crate::config::RunConfig;
use crate::policy::Policy;
use crate::run::RunDir;
use anyhow::{bail, ensure, Result};
use candle_core::{DType, Tensor};
use oxrl_core::loss::preference::dpo_loss;
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_lm::scorer::{score, ScoreOptions};
use oxrl_lm::Transformer;
use rand::Rng;
use serde_json::json;
use std::path::Path;

/// One tokenised preference pair.
#[derive(Debug, Clone)]
pub struct Pair {
    pub prompt: Vec<u32>,
    pub chosen: Vec<u32>,
    pub rejected: Vec<u32>,
}

/// Read and tokenise the pairs of `path` (the reward model's reader, pairs only); errors name the
/// file and line.
pub fn load_pairs(path: &Path, policy: &Policy) -> Result<Vec<Pair>> {
    crate::reward_model::load_rankings(path, policy)?
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            ensure!(
                r.ranked.len() == 2,
                "{}: record {}: DPO trains on chosen / rejected pairs (got a ranking of {})",
                path.display(),
                i + 1,
                r.ranked.len()
            );
            let rejected = r.ranked.pop().expect("two responses");
            let chosen = r.ranked.pop().expect("two responses");
            Ok(Pair { prompt: r.prompt, chosen, rejected })
        })
        .collect()
}

/// Sequence log-probs `[2N]` (chosen then rejected) of `pairs` under `model`.
fn seq_logp(model: &Transformer, pairs: &[&Pair], pad: u32, grad: bool) -> Result<Tensor> {
    let mut prompts: Vec<Vec<u32>> = pairs.iter().map(|p| p.prompt.clone()).collect();
    prompts.extend(pairs.iter().map(|p| p.prompt.clone()));
    let mut resp: Vec<Vec<u32>> = pairs.iter().map(|p| p.chosen.clone()).collect();
    resp.extend(pairs.iter().map(|p| p.rejected.clone()));
    let s = score(model, &prompts, &resp, pad, ScoreOptions { grad, ..Default::default() })?;
    Ok(s.logp.sum(1)?.to_dtype(DType::F32)?)
}

fn ref_logps(model: &Transformer, pairs: &[Pair], pad: u32) -> Result<Vec<(f32, f32)>> {
    let mut out = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(32) {
        let refs: Vec<&Pair> = chunk.iter().collect();
        let v = seq_logp(model, &refs, pad, false)?.to_vec1::<f32>()?;
        let n = chunk.len();
        out.extend((0..n).map(|i| (v[i], v[n + i])));
    }
    Ok(out)
}

pub struct DpoOutcome {
    pub run_dir: std::path::PathBuf,
    /// Held-out pairwise accuracy of the implicit reward before and after training.
    pub accuracy_before: f64,
    pub accuracy_after: f64,
}

/// Pairwise accuracy of β·log(π/π_ref) on `pairs`.
fn implicit_accuracy(model: &Transformer, pairs: &[Pair], refs: &[(f32, f32)], pad: u32) -> Result<f64> {
    let now = ref_logps(model, pairs, pad)?;
    let right = now.iter().zip(refs).filter(|((w, l), (rw, rl))| (w - rw) - (l - rl) > 0.0).count();
    Ok(right as f64 / pairs.len().max(1) as f64)
}

pub fn run_dpo(cfg: &RunConfig, out: Option<&Path>, quiet: bool) -> Result<DpoOutcome> {
    let d = &cfg.dpo;
    let Some(path) = &d.pairs else { bail!("key `dpo.pairs`: set the preference-pair JSONL file") };
    let device = oxrl_lm::default_device();
    let policy = Policy::from_config(cfg, &device)?;
    let reference = policy.reference()?;
    let pad = policy.tokenizer.pad_id();
    let mut pairs = load_pairs(path, &policy)?;
    // Seeded split: the held-out pairs are the last `test_fraction` after a shuffle.
    let mut rng = oxrl_core::seed::rng(cfg.seed, "dpo-split", 0);
    for i in (1..pairs.len()).rev() {
        pairs.swap(i, rng.random_range(0..=i));
    }
    let n_test = ((pairs.len() as f64 * d.test_fraction).round() as usize).min(pairs.len() - 1);
    let test = pairs.split_off(pairs.len() - n_test);
    let ref_train = ref_logps(&reference, &pairs, pad)?;
    let ref_test = ref_logps(&reference, &test, pad)?;
    let mut run = RunDir::create(out, &cfg.name)?;
    run.write_config(&cfg.to_toml()?)?;
    let acc0 = if test.is_empty() { f64::NAN } else { implicit_accuracy(&policy.model, &test, &ref_test, pad)? };
    let mut opt = AdamW::new(policy.model.trainable_vars(), AdamWConfig::default())?;
    let pb = crate::sft::progress_bar(d.steps, quiet);
    pb.set_prefix("dpo");
    let mut rng = oxrl_core::seed::rng(cfg.seed, "dpo-batches", 0);
    for step in 0..d.steps {
        let idx: Vec<usize> = (0..d.batch_size.min(pairs.len())).map(|_| rng.random_range(0..pairs.len())).collect();
        let batch: Vec<&Pair> = idx.iter().map(|&i| &pairs[i]).collect();
        let lp = seq_logp(&policy.model, &batch, pad, true)?;
        let n = batch.len();
        let rw = Tensor::new(idx.iter().map(|&i| ref_train[i].0).collect::<Vec<f32>>(), &device)?;
        let rl = Tensor::new(idx.iter().map(|&i| ref_train[i].1).collect::<Vec<f32>>(), &device)?;
        let (loss, margin, acc) = dpo_loss(&lp.narrow(0, 0, n)?, &lp.narrow(0, n, n)?, &rw, &rl, d.beta)?;
        let lv = loss.to_scalar::<f32>()? as f64;
        let info = if lv.is_finite() { Some(opt.step(&policy.model.backward(&loss)?, d.lr, 1.0)?) } else { None };
        run.log(&json!({
            "phase": "dpo", "step": step + 1, "loss": if lv.is_finite() { json!(lv) } else { json!(null) },
            "reward_margin": margin, "reward_accuracy": acc,
            "grad_norm": info.map(|i| i.grad_norm).filter(|g| g.is_finite()),
        }))?;
        pb.set_message(format!("loss {lv:.4} margin {margin:.3}"));
        pb.inc(1);
    }
    pb.finish_and_clear();
    let acc1 = if test.is_empty() { f64::NAN } else { implicit_accuracy(&policy.model, &test, &ref_test, pad)? };
    run.log(&json!({"phase": "dpo", "heldout_pairs": test.len(), "heldout_accuracy_before": acc0, "heldout_accuracy_after": acc1}))?;
    crate::sft::save_checkpoint(&run, "final", &policy, cfg, d.steps)?;
    Ok(DpoOutcome { run_dir: run.path.clone(), accuracy_before: acc0, accuracy_after: acc1 })
}
