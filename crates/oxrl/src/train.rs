//! `oxrl train`: optional SFT warm-up, held-out evaluation before RL, the RL loop (see
//! [`crate::rl_step`]), periodic evaluation and full-state checkpoints, exact resume, and at the end
//! `summary.json` (before / after), plots and TensorBoard events.

use crate::config::RunConfig;
use crate::eval::{evaluate, max_new_tokens, EvalReport};
use crate::policy::Policy;
use crate::rl_step::{rl_step, Models, TrainState};
use crate::run::RunDir;
use crate::sft::{progress_bar, train_sft};
use anyhow::{bail, Context, Result};
use oxrl_core::optim::{AdamW, AdamWConfig, Schedule};
use oxrl_lm::value_head::ValueHead;
use oxrl_lm::{ParamStore, Transformer};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The quickstart config, also embedded so `oxrl train` works from any directory.
pub const QUICKSTART: &str = include_str!("../../../examples/quickstart.toml");

pub struct TrainOutcome {
    pub run_dir: PathBuf,
    pub before: EvalReport,
    pub after: Option<EvalReport>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SavedState {
    state: TrainState,
    before: EvalReport,
    /// The rollout RNG is derived from (seed, "rollout", step): the step is its whole state.
    rng: Value,
}

fn sha256_file(p: &Path) -> Result<String> {
    let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// Write `manifest.json` with the SHA-256 of every other file in `dir`.
fn write_manifest(dir: &Path) -> Result<()> {
    let mut files = serde_json::Map::new();
    let mut names: Vec<String> =
        std::fs::read_dir(dir)?.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    for n in names.into_iter().filter(|n| n != "manifest.json") {
        files.insert(n.clone(), json!(sha256_file(&dir.join(&n))?));
    }
    std::fs::write(dir.join("manifest.json"), serde_json::to_string_pretty(&json!({"sha256": files}))?)?;
    Ok(())
}

/// Check a checkpoint's files against its manifest.
pub fn verify_checkpoint(dir: &Path) -> Result<()> {
    let text = std::fs::read_to_string(dir.join("manifest.json")).with_context(|| {
        format!("checkpoint {} has no manifest.json (incomplete or not a training checkpoint)", dir.display())
    })?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{}: manifest.json is corrupted", dir.display()))?;
    let files = v["sha256"].as_object().with_context(|| format!("{}: manifest.json lists no files", dir.display()))?;
    for (name, want) in files {
        let p = dir.join(name);
        if !p.exists() {
            bail!("checkpoint {} is incomplete: {name} is missing", dir.display());
        }
        if sha256_file(&p)? != want.as_str().unwrap_or("") {
            bail!("checkpoint {} is corrupted: {name} does not match its checksum", dir.display());
        }
    }
    Ok(())
}

fn save_train_checkpoint(
    run: &RunDir,
    cfg: &RunConfig,
    policy: &Policy,
    (value, critic): (Option<&ValueHead>, Option<&Transformer>),
    opt: &AdamW,
    saved: &SavedState,
) -> Result<()> {
    let meta = json!({"task": cfg.task, "step": saved.state.step, "seed": cfg.seed, "run": cfg.name});
    let label = format!("step-{}", saved.state.step);
    // Resumable checkpoints of a LoRA run hold only the adapters (the base is the model path).
    let opts = cfg.model.save_options(&policy.model.cfg, false)?;
    let dir = run.checkpoint_dir(&label);
    oxrl_lm::checkpoint::save_with(&dir, &policy.model, policy.tokenizer.as_ref(), meta, &opts, |tmp| {
        let st = opt.state_tensors()?;
        candle_core::safetensors::save(&st, tmp.join("optimizer.safetensors"))?;
        if let Some(v) = value {
            v.save(&tmp.join("value_head.safetensors"))?;
        }
        if let Some(c) = critic {
            c.params.save(&tmp.join("critic.safetensors"))?;
        }
        std::fs::write(tmp.join("state.json"), serde_json::to_string_pretty(saved)?)?;
        write_manifest(tmp)
    })
}

/// The newest `checkpoints/step-N` of a run.
fn latest_checkpoint(run_dir: &Path) -> Result<(u64, PathBuf)> {
    let dir = run_dir.join("checkpoints");
    let mut best: Option<(u64, PathBuf)> = None;
    for e in std::fs::read_dir(&dir).with_context(|| format!("{}: no checkpoints to resume from", run_dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(n) = name.strip_prefix("step-").and_then(|n| n.parse::<u64>().ok()) {
            if best.as_ref().is_none_or(|b| n > b.0) {
                best = Some((n, e.path()));
            }
        }
    }
    best.with_context(|| format!("{}: no step-N checkpoint to resume from", run_dir.display()))
}

/// Keep the metrics records up to RL step `step` (and every SFT record); drop the rest, including
/// a torn last line.
fn truncate_metrics(path: &Path, step: u64) -> Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut keep = String::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        let rl = v["phase"].as_str() == Some("rl");
        if !rl || v["step"].as_u64().is_some_and(|s| s <= step) {
            keep.push_str(line);
            keep.push('\n');
        }
    }
    oxrl_lm::fsutil::write_atomic(path, keep.as_bytes())
}

/// Load the config: a file, the quickstart (no file), or the config of a run being resumed.
pub fn load_config(config: Option<&Path>, sets: &[String], resume: Option<&Path>) -> Result<RunConfig> {
    if let Some(run) = resume {
        if config.is_some() || !sets.is_empty() {
            bail!("--resume continues a run with its own config.toml; --config and --set cannot change it");
        }
        return RunConfig::load(Some(&run.join("config.toml")), &[]);
    }
    match config {
        Some(p) => RunConfig::load(Some(p), sets),
        None => RunConfig::load_str("examples/quickstart.toml (built in)", QUICKSTART, sets),
    }
}

/// Run (or, with `resume`, continue) RL training. `stop_after` ends the process after the
/// checkpoint of that step, as a kill would (for tests and preemption drills).
pub fn run_train(
    cfg: &RunConfig,
    out: Option<&Path>,
    resume: Option<&Path>,
    stop_after: Option<u64>,
    quiet: bool,
) -> Result<TrainOutcome> {
    let device = oxrl_lm::default_device();
    let t = &cfg.train;
    let task = cfg.task.build(cfg.seed)?;
    let estimator = oxrl_core::advantage::by_name(&t.advantage, &t.estimator_params())?;
    let budget = if t.max_new_tokens > 0 { t.max_new_tokens } else { max_new_tokens(&cfg.eval, task.as_ref()) };
    let need_ref = (t.kl_coef > 0.0 || t.kl_target > 0.0 || t.objective == "reasonmaxxer") && t.reference == "initial";

    let (mut run, mut policy, reference, value, critic, mut opt, mut saved, mut tb, rehearsal, flow);
    let reward_model = match &t.reward_model {
        Some(dir) => {
            let user = t.reward_model_user.as_deref();
            let mut members =
                vec![crate::reward_model::RewardModel::load_for(dir, user, &device)
                    .context("key `train.reward_model`")?];
            for d in &t.reward_model_ensemble {
                members.push(
                    crate::reward_model::RewardModel::load_for(d, user, &device)
                        .context("key `train.reward_model_ensemble`")?,
                );
            }
            Some(crate::reward_model::RewardEnsemble { members, uncertainty: t.rm_uncertainty })
        }
        None => None,
    };
    let dph_on = t.dph_divergence != "none" && t.dph_coef > 0.0;
    match resume {
        None => {
            policy = Policy::from_config(cfg, &device)?;
            for p in task.test_problems().iter().take(8).chain(std::iter::once(&task.train_problem(0))) {
                policy.encode_pair(p)?;
            }
            run = RunDir::create(out, &cfg.name)?;
            run.write_config(&cfg.to_toml()?)?;
            tb = crate::tensorboard::EventWriter::create(&run.path)?;
            if t.sft_warmup {
                train_sft(cfg, &mut policy, task.as_ref(), &mut run, quiet)?;
                crate::sft::save_checkpoint(&run, "sft", &policy, cfg, 0)?;
            }
            reference = if need_ref {
                // The frozen reference: the starting policy (after any warm-up), saved for
                // resumes — except under LoRA, where it is the base itself (no copy).
                let r = policy.reference()?;
                if policy.model.lora.is_none() {
                    r.params.save(&run.path.join("reference.safetensors"))?;
                }
                if let Some(l) = &r.latent {
                    let dir = run.path.join("reference-latent");
                    std::fs::create_dir_all(&dir)?;
                    l.save(&dir)?;
                }
                Some(r)
            } else {
                None
            };
            rehearsal = if dph_on {
                // DPH-RL's rehearsal set: sampled once from the starting policy, kept for resumes.
                let r = crate::rehearsal::Rehearsal::build(&policy, task.as_ref(), cfg, budget)?;
                r.save(&run.path.join("rehearsal.json"))?;
                Some(r)
            } else {
                None
            };
            flow = if t.rlfr_coef > 0.0 {
                // RLFR's field: fitted once on the starting policy's hidden states over expert
                // solutions, kept for resumes.
                let (f, loss) = crate::flow::fit(&policy, task.as_ref(), cfg)?;
                f.save(&run.path.join("rlfr_flow.safetensors"))?;
                run.log(&json!({"phase": "rlfr_fit", "flow_matching_loss": loss}))?;
                Some(f)
            } else {
                None
            };
            value = value_head(cfg, &policy, None)?;
            critic = critic_model(cfg, &policy, None)?;
            opt = optimizer(cfg, &policy, value.as_ref(), critic.as_ref())?;
            let before = evaluate(&policy, task.as_ref(), &cfg.eval, cfg.seed)?;
            run.log(&json!({"phase": "rl", "step": 0, "eval": before}))?;
            tb.scalars(0, &eval_scalars(&before))?;
            saved = SavedState {
                state: TrainState { step: 0, cursor: 0, kl_coef: t.kl_coef, ..Default::default() },
                before,
                rng: json!({"seed": cfg.seed, "stream": "rollout", "step": 0}),
            };
        }
        Some(run_dir) => {
            let (step, ck) = latest_checkpoint(run_dir)?;
            verify_checkpoint(&ck)?;
            policy = Policy::load_with(&ck, &device, cfg.model.compute_dtype(&device)?, cfg.seed)?;
            policy.model.checkpointing = cfg.model.gradient_checkpointing;
            saved = serde_json::from_str(&std::fs::read_to_string(ck.join("state.json"))?)
                .with_context(|| format!("{}: state.json is corrupted", ck.display()))?;
            anyhow::ensure!(saved.state.step == step, "{}: state.json is for step {}", ck.display(), saved.state.step);
            let loaded_ref = if need_ref && policy.model.lora.is_some() {
                Some(policy.model.base_view()?)
            } else if need_ref {
                let p = ParamStore::load(
                    &policy.model.cfg,
                    &run_dir.join("reference.safetensors"),
                    policy.model.dtype(),
                    &device,
                )?;
                Some(Transformer::new(policy.model.cfg.clone(), p)?)
            } else {
                None
            };
            reference = match loaded_ref {
                // The reference's latent module: the starting one, saved with the run.
                Some(mut r) if policy.model.latent.is_some() => {
                    let (h, dt) = (policy.model.cfg.hidden_size, policy.model.dtype());
                    let l = oxrl_lm::latent::LatentModule::load(&run_dir.join("reference-latent"), h, dt, &device)?
                        .with_context(|| format!("{}: reference-latent/ is missing", run_dir.display()))?;
                    r.latent = Some(std::sync::Arc::new(l));
                    Some(r)
                }
                r => r,
            };
            rehearsal =
                if dph_on { Some(crate::rehearsal::Rehearsal::load(&run_dir.join("rehearsal.json"))?) } else { None };
            flow = if t.rlfr_coef > 0.0 {
                Some(oxrl_core::shaping::rlfr::FlowField::load(&run_dir.join("rlfr_flow.safetensors"))?)
            } else {
                None
            };
            value = value_head(cfg, &policy, Some(&ck.join("value_head.safetensors")))?;
            critic = critic_model(cfg, &policy, Some(&ck.join("critic.safetensors")))?;
            opt = optimizer(cfg, &policy, value.as_ref(), critic.as_ref())?;
            opt.load_state_tensors(&candle_core::safetensors::load(ck.join("optimizer.safetensors"), &device)?)?;
            truncate_metrics(&run_dir.join("metrics.jsonl"), step)?;
            run = RunDir::append(run_dir)?;
            tb = crate::tensorboard::EventWriter::create(&run.path)?;
        }
    }

    let sched = Schedule {
        kind: t.schedule,
        lr: t.lr,
        warmup_steps: t.warmup_steps,
        total_steps: t.steps,
        min_lr_ratio: t.min_lr_ratio,
    };
    // ArenaRL's and RPO's judge: the task's verifier, or an LM judge loaded once from a checkpoint.
    let lm_judge = if (t.advantage == "arena" || t.rpo || t.exprl != "off") && t.arena_judge != "task" {
        Some(crate::judge::LmJudge::load(Path::new(&t.arena_judge)).context("key `train.arena_judge`")?)
    } else {
        None
    };
    for rm in reward_model.iter().flat_map(|e| &e.members) {
        anyhow::ensure!(
            rm.policy.model.cfg.vocab_size == policy.model.cfg.vocab_size,
            "key `train.reward_model`: its vocabulary ({}) differs from the policy's ({}); it scores the policy's token ids",
            rm.policy.model.cfg.vocab_size,
            policy.model.cfg.vocab_size
        );
    }
    let pb = progress_bar(t.steps, quiet);
    pb.set_prefix("rl");
    pb.set_position(saved.state.step);
    while saved.state.step < t.steps {
        let lr = sched.lr_at(saved.state.step);
        let models = Models {
            policy: &policy,
            reference: reference.as_ref(),
            value: value.as_ref(),
            critic: critic.as_ref(),
            rehearsal: rehearsal.as_ref(),
            judge: lm_judge.as_ref().map(|j| j as &dyn crate::judge::Judge),
            flow: flow.as_ref(),
            reward_model: reward_model.as_ref(),
        };
        let rec = rl_step(cfg, task.as_ref(), estimator.as_ref(), &models, &mut opt, lr, budget, &mut saved.state)?;
        let step = saved.state.step;
        let scalars: Vec<(String, f64)> = rec.iter().filter_map(|(k, v)| Some((k.clone(), v.as_f64()?))).collect();
        tb.scalars(step, &scalars)?;
        let get = |k: &str| rec.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
        pb.set_message(format!(
            "reward {:.3} acc {:.0}% len {:.0} ent {:.3} kl {:.4}",
            get("reward_mean"),
            100.0 * get("accuracy"),
            get("response_length"),
            get("entropy"),
            get("kl_ref")
        ));
        pb.inc(1);
        run.log(&Value::Object(rec))?;
        if t.eval_every > 0 && step % t.eval_every == 0 && step < t.steps {
            let r = evaluate(&policy, task.as_ref(), &cfg.eval, cfg.seed)?;
            pb.println(format!("step {step}: held-out greedy accuracy {:.1}%", 100.0 * r.accuracy));
            run.log(&json!({"phase": "rl", "step": step, "eval": r}))?;
            tb.scalars(step, &eval_scalars(&r))?;
        }
        if t.checkpoint_every > 0 && step % t.checkpoint_every == 0 && step < t.steps {
            saved.rng = json!({"seed": cfg.seed, "stream": "rollout", "step": step});
            save_train_checkpoint(&run, cfg, &policy, (value.as_ref(), critic.as_ref()), &opt, &saved)?;
        }
        if stop_after == Some(step) {
            pb.finish_and_clear();
            return Ok(TrainOutcome { run_dir: run.path.clone(), before: saved.before, after: None });
        }
    }
    pb.finish_and_clear();
    let after = evaluate(&policy, task.as_ref(), &cfg.eval, cfg.seed)?;
    run.log(&json!({"phase": "rl", "step": t.steps, "eval": after}))?;
    tb.scalars(t.steps, &eval_scalars(&after))?;
    saved.rng = json!({"seed": cfg.seed, "stream": "rollout", "step": t.steps});
    save_train_checkpoint(&run, cfg, &policy, (value.as_ref(), critic.as_ref()), &opt, &saved)?;
    crate::sft::save_checkpoint(&run, "final", &policy, cfg, t.steps)?;
    oxrl_lm::fsutil::write_atomic(
        &run.path.join("summary.json"),
        serde_json::to_string_pretty(&json!({"before": saved.before, "after": after}))?.as_bytes(),
    )?;
    crate::plots::plot_run(&run.path)?;
    Ok(TrainOutcome { run_dir: run.path.clone(), before: saved.before, after: Some(after) })
}

/// The value head when configured: fresh, or loaded from a checkpoint file.
fn value_head(cfg: &RunConfig, policy: &Policy, load: Option<&Path>) -> Result<Option<ValueHead>> {
    if !cfg.train.value_head {
        return Ok(None);
    }
    let v = ValueHead::new(policy.model.cfg.hidden_size, cfg.seed, policy.model.device())?;
    if let Some(p) = load {
        v.load(p)?;
    }
    Ok(Some(v))
}

/// The separate critic trunk when `train.critic = "model"`: a copy of the starting policy, or
/// loaded from a checkpoint file.
fn critic_model(cfg: &RunConfig, policy: &Policy, load: Option<&Path>) -> Result<Option<Transformer>> {
    if cfg.train.critic != "model" {
        return Ok(None);
    }
    let m = &policy.model;
    anyhow::ensure!(
        m.lora.is_none() && m.latent.is_none(),
        "key `train.critic`: a critic model is a full copy of the policy; LoRA and latent-reasoning policies need critic = \"head\""
    );
    let params = match load {
        Some(p) => ParamStore::load(&m.cfg, p, m.dtype(), m.device())
            .with_context(|| format!("{}: the critic model's weights", p.display()))?,
        None => m.params.deep_clone()?,
    };
    let mut c = Transformer::new(m.cfg.clone(), params)?;
    c.checkpointing = m.checkpointing;
    Ok(Some(c))
}

/// AdamW over the policy (and value head, and critic trunk) parameters. The critic learns at
/// `value_lr_mult` times the policy's rate; a critic model's gradients (with its head's) are
/// clipped apart from the policy's.
fn optimizer(
    cfg: &RunConfig,
    policy: &Policy,
    value: Option<&ValueHead>,
    critic: Option<&Transformer>,
) -> Result<AdamW> {
    let t = &cfg.train;
    let mut vars = policy.model.trainable_vars();
    if let Some(v) = value {
        vars.extend(v.named_vars());
    }
    if let Some(c) = critic {
        vars.extend(c.params.named_vars().into_iter().map(|(n, v)| (format!("critic.{n}"), v)));
    }
    let mut opt =
        AdamW::new(vars, AdamWConfig { beta1: t.beta1, beta2: t.beta2, eps: 1e-8, weight_decay: t.weight_decay })?;
    opt.scale_lr("value_head.", t.value_lr_mult);
    if critic.is_some() {
        opt.scale_lr("critic.", t.value_lr_mult);
        opt.clip_separately(&["critic.", "value_head."]);
    }
    Ok(opt)
}

fn eval_scalars(r: &EvalReport) -> Vec<(String, f64)> {
    let mut v = vec![("eval/accuracy".to_string(), r.accuracy), ("eval/mean_length".into(), r.mean_length)];
    for (k, x) in &r.pass_at_k {
        v.push((format!("eval/pass@{k}"), *x));
    }
    v
}
