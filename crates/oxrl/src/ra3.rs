//! RA3 mid-training (`oxrl midtrain`; oxrl_core::loss::ra3): EM rounds over the task's expert
//! solutions. E-step: at every segment boundary of a solution, M latents are sampled between the
//! markers, each rewarded by the likelihood gain of the next expert segment minus c per latent
//! token; the best is kept when its reward is positive. M-step: next-token training on the
//! solutions with the kept latents interleaved (loss on every response token, latents included).
//! Texts are re-encoded whole, so with a sub-word tokenizer the segment boundaries are those of
//! the tokenizer's encoding of the joined text.

use crate::config::RunConfig;
use crate::policy::Policy;
use crate::run::RunDir;
use anyhow::{ensure, Result};
use oxrl_core::loss::ra3::{latent_reward, select};
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_lm::sampler::{generate, SamplingParams};
use oxrl_lm::scorer::{score, ScoreOptions};
use oxrl_tasks::Problem;
use serde_json::json;

/// One round's E-step result.
pub struct EStep {
    /// (prompt ids, response ids with the kept latents and the end-of-sequence token).
    pub sequences: Vec<(Vec<u32>, Vec<u32>)>,
    /// Segments considered, latents kept, and the kept latents' rewards.
    pub segments: usize,
    pub kept: usize,
    pub kept_rewards: Vec<f64>,
}

/// log p(segment | prompt, prefix) of each (prompt, prefix text, segment text).
fn segment_logp(policy: &Policy, rows: &[(Vec<u32>, String, String)]) -> Result<Vec<f64>> {
    let tok = policy.tokenizer.as_ref();
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(64) {
        let mut prompts = Vec::with_capacity(chunk.len());
        let mut segs = Vec::with_capacity(chunk.len());
        for (p, prefix, seg) in chunk {
            let mut ids = p.clone();
            ids.extend(tok.encode(prefix)?);
            prompts.push(ids);
            segs.push(tok.encode(seg)?);
        }
        let s = score(&policy.model, &prompts, &segs, tok.pad_id(), ScoreOptions::default())?;
        let lp = s.logp.to_dtype(candle_core::DType::F64)?.to_vec2::<f64>()?;
        out.extend(lp.iter().zip(&segs).map(|(r, sg)| r[..sg.len()].iter().sum::<f64>()));
    }
    Ok(out)
}

/// The E-step over `problems` (those with an expert solution).
pub fn e_step(policy: &Policy, problems: &[Problem], cfg: &RunConfig, round: u64) -> Result<EStep> {
    let r = &cfg.ra3;
    let tok = policy.tokenizer.as_ref();
    let close = tok.encode(&r.close)?;
    ensure!(close.len() == 1, "key `ra3.close`: `{}` must be one token of the tokenizer", r.close);
    let mut stops = tok.stop_ids();
    stops.push(close[0]);
    let params = SamplingParams {
        temperature: r.temperature,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        max_new_tokens: r.latent_max_tokens,
        stop_tokens: stops.clone(),
    };
    let probs: Vec<&Problem> = problems.iter().filter(|p| !p.solution.is_empty()).collect();
    let prompts: Vec<Vec<u32>> = probs.iter().map(|p| crate::policy::prompt_ids(tok, p)).collect::<Result<_>>()?;
    let segments: Vec<Vec<String>> = probs
        .iter()
        .map(|p| {
            let mut segs: Vec<String> = p.solution.split_inclusive(r.boundary.as_str()).map(String::from).collect();
            segs.retain(|s| !s.is_empty());
            segs
        })
        .collect();
    let mut texts: Vec<String> = vec![String::new(); probs.len()];
    let (mut n_seg, mut kept, mut kept_rewards) = (0usize, 0usize, Vec::new());
    let max_k = segments.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut rng = oxrl_core::seed::rng(cfg.seed, "ra3-latents", round);
    for k in 0..max_k {
        // problems with a segment k (a latent may precede every segment but the first)
        let live: Vec<usize> = (0..probs.len()).filter(|&i| k < segments[i].len()).collect();
        if k > 0 {
            n_seg += live.len();
            // M candidates after "<prefix><open>"
            let m = r.candidates.max(1);
            let mut gen_prompts = Vec::with_capacity(live.len() * m);
            for &i in &live {
                let mut ids = prompts[i].clone();
                ids.extend(tok.encode(&format!("{}{}", texts[i], r.open))?);
                gen_prompts.extend(std::iter::repeat_n(ids, m));
            }
            let outs = generate(&policy.model, &gen_prompts, &params, tok.pad_id(), &mut rng)?;
            let mut rows = Vec::new();
            let mut latents = Vec::new();
            for (j, &i) in live.iter().enumerate() {
                rows.push((prompts[i].clone(), texts[i].clone(), segments[i][k].clone()));
                for c in &outs[j * m..(j + 1) * m] {
                    let body: Vec<u32> = c.tokens.iter().copied().take_while(|t| !stops.contains(t)).collect();
                    let z = tok.decode(&body)?.replace(&r.close, "").replace(&r.open, "");
                    let with = format!("{}{}{z}{}", texts[i], r.open, r.close);
                    rows.push((prompts[i].clone(), with, segments[i][k].clone()));
                    latents.push((z, body.len()));
                }
            }
            let lp = segment_logp(policy, &rows)?;
            for (j, &i) in live.iter().enumerate() {
                let base = lp[j * (m + 1)];
                let rewards: Vec<f64> = (0..m)
                    .map(|c| latent_reward(lp[j * (m + 1) + 1 + c], base, latents[j * m + c].1, r.length_cost))
                    .collect();
                if let Some(best) = select(&rewards) {
                    texts[i].push_str(&format!("{}{}{}", r.open, latents[j * m + best].0, r.close));
                    kept += 1;
                    kept_rewards.push(rewards[best]);
                }
            }
        }
        for &i in &live {
            texts[i].push_str(&segments[i][k]);
        }
    }
    let sequences = prompts
        .into_iter()
        .zip(&texts)
        .map(|(p, t)| Ok((p, oxrl_lm::prompt::encode_response(tok, t)?)))
        .collect::<Result<_>>()?;
    Ok(EStep { sequences, segments: n_seg, kept, kept_rewards })
}

/// The M-step: token-mean NLL on the bootstrapped sequences; returns the first and last losses.
pub fn m_step(
    policy: &Policy,
    seqs: &[(Vec<u32>, Vec<u32>)],
    cfg: &RunConfig,
    opt: &mut AdamW,
    round: u64,
) -> Result<(f64, f64)> {
    let r = &cfg.ra3;
    let pad = policy.tokenizer.pad_id();
    let mut rng = oxrl_core::seed::rng(cfg.seed, "ra3-batches", round);
    let (mut first, mut last) = (f64::NAN, f64::NAN);
    for step in 0..r.sft_steps {
        use rand::Rng;
        let idx: Vec<usize> = (0..r.batch_size.min(seqs.len())).map(|_| rng.random_range(0..seqs.len())).collect();
        let prompts: Vec<Vec<u32>> = idx.iter().map(|&i| seqs[i].0.clone()).collect();
        let resp: Vec<Vec<u32>> = idx.iter().map(|&i| seqs[i].1.clone()).collect();
        let ntok = resp.iter().map(|x| x.len()).sum::<usize>() as f64;
        let s = score(&policy.model, &prompts, &resp, pad, ScoreOptions { grad: true, ..Default::default() })?;
        let loss = (s.logp.sum_all()? / -ntok.max(1.0))?;
        let lv = loss.to_scalar::<f32>()? as f64;
        if step == 0 {
            first = lv;
        }
        last = lv;
        if lv.is_finite() {
            opt.step(&policy.model.backward(&loss)?, r.lr, 1.0)?;
        }
    }
    Ok((first, last))
}

pub struct MidtrainOutcome {
    pub run_dir: std::path::PathBuf,
}

/// `oxrl midtrain`: (optional SFT warm-up, then) RA3 rounds; saves checkpoints/final.
pub fn run_midtrain(cfg: &RunConfig, out: Option<&std::path::Path>, quiet: bool) -> Result<MidtrainOutcome> {
    let device = oxrl_lm::default_device();
    let task = cfg.task.build(cfg.seed)?;
    let mut policy = Policy::from_config(cfg, &device)?;
    let mut run = RunDir::create(out, &cfg.name)?;
    run.write_config(&cfg.to_toml()?)?;
    if cfg.train.sft_warmup {
        crate::sft::train_sft(cfg, &mut policy, task.as_ref(), &mut run, quiet)?;
    }
    let mut opt = AdamW::new(policy.model.trainable_vars(), AdamWConfig::default())?;
    let r = &cfg.ra3;
    for round in 0..r.rounds as u64 {
        let problems: Vec<Problem> =
            (0..r.problems as u64).map(|i| task.train_problem(round * r.problems as u64 + i)).collect();
        let e = e_step(&policy, &problems, cfg, round)?;
        ensure!(!e.sequences.is_empty(), "task `{}` has no expert solutions for RA3", task.name());
        let (l0, l1) = m_step(&policy, &e.sequences, cfg, &mut opt, round)?;
        let rec = json!({
            "phase": "ra3", "round": round + 1, "segments": e.segments, "latents_kept": e.kept,
            "kept_fraction": e.kept as f64 / e.segments.max(1) as f64,
            "kept_reward_mean": if e.kept_rewards.is_empty() { 0.0 } else { e.kept_rewards.iter().sum::<f64>() / e.kept_rewards.len() as f64 },
            "kept_reward_min": e.kept_rewards.iter().copied().reduce(f64::min),
            "m_step_loss_first": l0, "m_step_loss_last": l1,
        });
        run.log(&rec)?;
        if !quiet {
            println!(
                "round {}: {} of {} segments got a latent; M-step loss {l0:.3} -> {l1:.3}",
                round + 1,
                e.kept,
                e.segments
            );
        }
    }
    let eval = crate::eval::evaluate(&policy, task.as_ref(), &cfg.eval, cfg.seed)?;
    run.log(&json!({"phase": "ra3", "eval": eval}))?;
    crate::sft::save_checkpoint(&run, "final", &policy, cfg, r.rounds as u64)?;
    Ok(MidtrainOutcome { run_dir: run.path.clone() })
}
