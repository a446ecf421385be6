//! The control trainer: build the vectorised environments and the agent from a config, iterate
//! (collect + update), log one JSON record per iteration (`step`, `episode_return` over a moving
//! window, the algorithm's metrics), evaluate the deterministic policy on held-out seeds, write
//! full-state checkpoints (agent, optimiser, replay, environments, random streams) atomically, and
//! resume from the newest one exactly.
//!
//! Checkpoint folder: `config.toml`, `model.safetensors` (the policy), the agent's state files,
//! `trainer.json` (step, iteration, episode window, environment states).

use crate::algo::{dqn::Dqn, gcivl::Gcivl, iql::Iql, ppo::Ppo, sac::Sac, spr::Spr, Agent, Progress};
use crate::config::ControlConfig;
use crate::env::{vec_env::VecEnvState, VecEnv};
use crate::repr::{EnvMaker, FrozenEncoder};
use anyhow::{bail, Context, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// The run's agent; `maker` holds the pre-trained encoder (and world model) a representation run
/// learns on.
pub fn build_agent(cfg: &ControlConfig, envs: &VecEnv, maker: &EnvMaker, dev: &Device) -> Result<Box<dyn Agent>> {
    Ok(match cfg.algo.as_str() {
        "dreamer" => {
            let enc = maker.encoder.clone().context("dreamer: the run has no pre-trained encoder")?;
            let bonus = (cfg.repr.objective == "infopower" && cfg.repr.infopower.bonus != 0.0)
                .then_some((cfg.repr.infopower.bonus, cfg.repr.infopower.bonus_centred));
            let repo = (cfg.repr.objective == "repo").then(|| cfg.repr.repo.clone());
            Box::new(crate::algo::dreamer::Dreamer::new(cfg.dreamer.clone(), envs, enc, bonus, repo, cfg.seed, dev)?)
        }
        "ppo" => Box::new(Ppo::new(cfg.ppo.clone(), envs, cfg.seed, dev)?),
        "dqn" => Box::new(Dqn::new(cfg.dqn.clone(), envs, cfg.seed, dev)?),
        "sac" => Box::new(Sac::new(cfg.sac.clone(), envs, cfg.seed, dev)?),
        "iql" | "recoil" => Box::new(Iql::new(cfg.iql.clone(), envs, cfg.seed, dev)?),
        "spr" => Box::new(Spr::new(cfg.spr.clone(), envs, cfg.seed, dev)?),
        "grpo" => Box::new(crate::algo::grpo::Grpo::new(cfg.grpo.clone(), envs, cfg.seed, dev)?),
        "rc-aux" => Box::new(crate::rc_aux::RcAux::new(cfg.rcaux.clone(), envs, cfg.seed, dev)?),
        "morl-fb" => Box::new(crate::zeroshot::morl_fb::MorlFb::new(cfg.morl.clone(), envs, cfg.seed, dev)?),
        "td-jepa" | "fb" => {
            Box::new(crate::zeroshot::ZeroShot::new(&cfg.algo, cfg.zeroshot.clone(), envs, cfg.seed, dev)?)
        }
        // GCBC / GCIVL / SAW: one agent, the algorithm name picks the actor objective
        "gcbc" | "gcivl" | "saw" => {
            let actor = match cfg.algo.as_str() {
                "gcbc" => "bc",
                "gcivl" => "awr",
                _ => "saw",
            };
            Box::new(Gcivl::new(
                crate::algo::gcivl::GcConfig { actor: actor.into(), ..cfg.gc.clone() },
                envs,
                cfg.seed,
                dev,
            )?)
        }
        other => bail!("algo: unknown algorithm {other:?}"),
    })
}

/// An evaluation of the deterministic policy.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalResult {
    pub mean: f64,
    pub std: f64,
    pub returns: Vec<f64>,
    /// Share of episodes that reached the goal (goal-reaching environments only).
    pub success: Option<f64>,
}

/// Evaluate the deterministic policy over `episodes` episodes, each in a fresh environment seeded
/// from (seed, "eval", episode).
pub fn evaluate(agent: &mut dyn Agent, envs: &EnvMaker, episodes: usize, seed: u64) -> Result<EvalResult> {
    let mut returns = Vec::with_capacity(episodes);
    let mut successes = 0usize;
    let mut goal_env = false;
    for e in 0..episodes {
        let mut env = envs.make(oxrl_core::seed::derive(seed, "eval", e as u64))?;
        let mut obs = env.reset();
        agent.reset_episode();
        let mut total = 0.0;
        loop {
            let a = agent.act(std::slice::from_ref(&obs), true)?.remove(0);
            let s = env.step(&a)?;
            total += s.reward;
            if s.terminated || s.truncated {
                if let Some(ok) = env.success() {
                    goal_env = true;
                    successes += ok as usize;
                }
                break;
            }
            obs = s.obs;
        }
        returns.push(total);
    }
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let std = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
    Ok(EvalResult { mean, std, returns, success: goal_env.then(|| successes as f64 / n) })
}

fn eval_record(step: u64, e: &EvalResult) -> serde_json::Value {
    let mut r = json!({"step": step, "eval_return": e.mean, "eval_return_std": e.std});
    if let Some(s) = e.success {
        r["eval_success"] = json!(s);
    }
    r
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    global_step: u64,
    iteration: u64,
    episodes: u64,
    window: Vec<(f64, usize)>,
    envs: VecEnvState,
    last_eval: Option<f64>,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct Summary {
    pub steps: u64,
    pub episodes: u64,
    /// Mean return of the last `return_window` training episodes.
    pub train_return: f64,
    /// Final evaluation of the deterministic policy.
    pub eval_return: f64,
    /// Its success rate on goal-reaching environments.
    pub eval_success: Option<f64>,
    /// Successful training episodes (None unless the learner stepped a goal-reaching
    /// environment vector — offline learners do not).
    pub train_successes: Option<u64>,
    /// Training steps until the first successful training episode ended (None if none did).
    pub first_success_step: Option<u64>,
    pub final_checkpoint: PathBuf,
}

/// Options of one `train` call.
pub struct TrainOptions<'a> {
    /// Run folder (checkpoints go to `<run>/checkpoints/`).
    pub run_dir: &'a Path,
    /// Continue from the newest `step-N` checkpoint in the run folder.
    pub resume: bool,
    /// Stop (as if killed) right after the checkpoint at or beyond this step.
    pub stop_after: Option<u64>,
    pub device: Device,
}

fn newest_checkpoint(run_dir: &Path) -> Result<PathBuf> {
    let dir = run_dir.join("checkpoints");
    let mut best: Option<(u64, PathBuf)> = None;
    for e in std::fs::read_dir(&dir).with_context(|| format!("{}: no checkpoints to resume from", run_dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(n) = name.strip_prefix("step-").and_then(|s| s.parse::<u64>().ok()) {
            if best.as_ref().is_none_or(|(b, _)| n > *b) {
                best = Some((n, e.path()));
            }
        }
    }
    best.map(|(_, p)| p).with_context(|| format!("{}: no step-N checkpoint to resume from", run_dir.display()))
}

fn save_checkpoint(
    dir: &Path,
    cfg: &ControlConfig,
    agent: &dyn Agent,
    st: &TrainerState,
    envs: &EnvMaker,
) -> Result<()> {
    oxrl_core::fsutil::write_dir_atomic(dir, |tmp| {
        std::fs::write(tmp.join("config.toml"), cfg.to_toml()?)?;
        if let Some(enc) = &envs.encoder {
            enc.save(&tmp.join(ENCODER_FILE))?;
        }
        if let Some(s) = &envs.steer {
            s.save(&tmp.join(crate::zprl::BASE_POLICY_FILE))?;
        }
        agent.save(tmp)?;
        std::fs::write(tmp.join("trainer.json"), serde_json::to_string(st)?)?;
        Ok(())
    })
}

/// The pre-trained encoder's file in a checkpoint folder.
pub const ENCODER_FILE: &str = "encoder.safetensors";

/// The environments of a run whose encoder or ZPRL base policy (if any) is stored in checkpoint `ck`.
pub fn env_maker_from_checkpoint(cfg: &ControlConfig, ck: &Path, dev: &Device) -> Result<EnvMaker> {
    let mut maker = EnvMaker::plain(&cfg.env.name);
    maker.raw_frames = online_encoder(cfg);
    if cfg.repr.enabled() {
        let frame_dim = crate::env::make(&cfg.env.name, 0)?.observation_space().dim();
        let enc = FrozenEncoder::load(&ck.join(ENCODER_FILE), &cfg.repr, frame_dim, dev)?;
        maker.encoder = Some(std::sync::Arc::new(enc));
    }
    if cfg.zprl.enabled() {
        let p = ck.join(crate::zprl::BASE_POLICY_FILE);
        maker.steer = Some(std::sync::Arc::new(crate::zprl::Steering::load(&p, &cfg.zprl, &cfg.env.name, dev)?));
    }
    Ok(maker)
}

/// Whether the learner trains its own copy of the encoder (a Dreamer run with
/// `dreamer.train_encoder`): its environments then give raw frames.
fn online_encoder(cfg: &ControlConfig) -> bool {
    cfg.algo == "dreamer" && cfg.dreamer.train_encoder
}

/// The vector's success count, where the learner has stepped it and its world reports success.
fn train_successes(envs: &VecEnv) -> Option<u64> {
    (envs.steps > 0 && envs.envs[0].success().is_some()).then_some(envs.successes)
}

/// Train (or resume) a run; `log` receives one JSON record per iteration and per evaluation.
pub fn train(
    cfg: &ControlConfig,
    opts: &TrainOptions,
    log: &mut dyn FnMut(&serde_json::Value) -> Result<()>,
) -> Result<Summary> {
    // representation pre-training comes first (a resumed run reloads its frozen encoder)
    let maker = if opts.resume {
        env_maker_from_checkpoint(cfg, &newest_checkpoint(opts.run_dir)?, &opts.device)?
    } else {
        let mut maker = EnvMaker::plain(&cfg.env.name);
        maker.raw_frames = online_encoder(cfg);
        if cfg.repr.enabled() {
            let world = crate::repr::pixel_variant(&cfg.env.name)?;
            // a Dreamer run keeps the world model it will imagine in
            let repr = crate::repr::ReprConfig { keep_world_model: cfg.algo == "dreamer", ..cfg.repr.clone() };
            let (enc, _) = crate::repr::pretrain_in(&repr, world, cfg.seed, &opts.device, log)?;
            maker.encoder = Some(std::sync::Arc::new(enc));
        }
        if cfg.zprl.enabled() {
            let s = crate::zprl::pretrain(&cfg.zprl, &cfg.env.name, cfg.seed, &opts.device, log)?;
            maker.steer = Some(std::sync::Arc::new(s));
        }
        maker
    };
    // The learner's reward: dense, episodic or LaRe's (evaluation keeps the true return).
    let mut learner_maker = maker.clone();
    // InfoPower's empowerment bonus is paid to the learner only (Dreamer pays it in imagination)
    if cfg.repr.objective == "infopower" && cfg.repr.infopower.bonus != 0.0 && cfg.algo != "dreamer" {
        learner_maker.empowerment_bonus = Some((cfg.repr.infopower.bonus, cfg.repr.infopower.bonus_centred));
    }
    learner_maker.reward = match cfg.env.reward.as_str() {
        "dense" => crate::lare::RewardMode::Dense,
        _ if opts.resume => bail!("env.reward = {:?}: such a run cannot be resumed (the delayed reward's episode state and LaRe's decoder are not checkpointed)", cfg.env.reward),
        "episodic" => crate::lare::RewardMode::Episodic,
        _ => {
            let (r, rejected) = crate::lare::build(&cfg.env.name, &cfg.lare, cfg.seed)?;
            log(&serde_json::json!({"phase": "lare", "factors": r.encoder.names(), "rejected": rejected}))?;
            crate::lare::RewardMode::Lare(std::sync::Arc::new(std::sync::Mutex::new(r)))
        }
    };
    let mut envs = learner_maker.vec(cfg.env.num_envs, cfg.seed)?;
    let mut agent = build_agent(cfg, &envs, &maker, &opts.device)?;
    let mut st = TrainerState {
        global_step: 0,
        iteration: 0,
        episodes: 0,
        window: Vec::new(),
        envs: envs.save(),
        last_eval: None,
    };
    if opts.resume {
        let ck = newest_checkpoint(opts.run_dir)?;
        agent.load(&ck, true).with_context(|| format!("resuming from {}", ck.display()))?;
        let p = ck.join("trainer.json");
        st = serde_json::from_str(&std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?)
            .with_context(|| format!("parsing {}", p.display()))?;
        envs.restore(&st.envs)?;
    }
    let mut window: VecDeque<(f64, usize)> = st.window.iter().copied().collect();
    let total = cfg.train.total_steps;
    let next_multiple = |every: u64| st.global_step.checked_div(every).map_or(u64::MAX, |k| (k + 1) * every);
    let mut next_eval = next_multiple(cfg.train.eval_every);
    let mut next_ck = next_multiple(cfg.train.checkpoint_every);
    let t0 = std::time::Instant::now();
    let start_step = st.global_step;
    while st.global_step < total {
        let it = agent.iterate(&mut envs, Progress { global_step: st.global_step, total_steps: total })?;
        st.global_step += it.env_steps;
        st.iteration += 1;
        st.episodes += it.episodes.len() as u64;
        for e in &it.episodes {
            window.push_back(*e);
            if window.len() > cfg.train.return_window {
                window.pop_front();
            }
        }
        let mut rec = json!({"step": st.global_step, "iteration": st.iteration, "episodes": st.episodes});
        if let Some(n) = train_successes(&envs) {
            rec["train_successes"] = json!(n);
        }
        if let Some(f) = envs.first_success {
            rec["first_success_step"] = json!(f);
        }
        if !window.is_empty() {
            let n = window.len() as f64;
            rec["episode_return"] = json!(window.iter().map(|e| e.0).sum::<f64>() / n);
            rec["episode_length"] = json!(window.iter().map(|e| e.1 as f64).sum::<f64>() / n);
        }
        for (k, v) in &it.metrics {
            if v.is_finite() {
                rec[k] = json!(v);
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        if secs > 0.0 {
            rec["sps"] = json!(((st.global_step - start_step) as f64 / secs).round());
        }
        log(&rec)?;
        if st.global_step >= next_eval && st.global_step < total {
            let e = evaluate(agent.as_mut(), &maker, cfg.train.eval_episodes, cfg.seed)?;
            st.last_eval = Some(e.mean);
            log(&eval_record(st.global_step, &e))?;
            while next_eval <= st.global_step {
                next_eval += cfg.train.eval_every;
            }
        }
        if st.global_step >= next_ck && st.global_step < total {
            st.window = window.iter().copied().collect();
            st.envs = envs.save();
            save_checkpoint(
                &opts.run_dir.join("checkpoints").join(format!("step-{}", st.global_step)),
                cfg,
                agent.as_ref(),
                &st,
                &maker,
            )?;
            while next_ck <= st.global_step {
                next_ck += cfg.train.checkpoint_every;
            }
            if opts.stop_after.is_some_and(|s| st.global_step >= s) {
                bail!("stopped after the checkpoint of step {} (--stop-after)", st.global_step);
            }
        }
    }
    let e = evaluate(agent.as_mut(), &maker, cfg.train.eval_episodes, cfg.seed)?;
    let mut rec = eval_record(st.global_step, &e);
    for (k, v) in agent.final_report(&cfg.env.name)? {
        rec[k] = json!(v);
    }
    if let crate::lare::RewardMode::Lare(r) = &learner_maker.reward {
        let r = r.lock().map_err(|_| anyhow::anyhow!("LaRe: the shared decoder was poisoned"))?;
        rec["lare_fits"] = json!(r.fits);
        if let Some(d) = &r.decoder {
            // the decoder's weight per raw factor (w_i / σ_i)
            let w: Vec<f64> = d.w.iter().zip(&d.std).map(|(w, s)| w / s).collect();
            rec["lare_weights"] = json!(w);
        }
    }
    if let Some(s) = &maker.steer {
        // the base policy (δ = 0) and the steered one on the same episodes
        let n = cfg.train.eval_episodes;
        let zero = vec![0f32; s.delta_dim()];
        let base = crate::zprl::report(s, &cfg.env.name, n, cfg.seed, &mut |_| Ok(zero.clone()))?;
        let steered = crate::zprl::report(s, &cfg.env.name, n, cfg.seed, &mut |o| {
            Ok(agent.act(&[o.to_vec()], true)?.remove(0).vector()?.to_vec())
        })?;
        for (prefix, r) in [("zprl_base", base), ("zprl", steered)] {
            rec[format!("{prefix}_success")] = json!(r.success);
            rec[format!("{prefix}_return")] = json!(r.task_return);
            rec[format!("{prefix}_jerk")] = json!(r.jerk);
        }
    }
    log(&rec)?;
    st.last_eval = Some(e.mean);
    st.window = window.iter().copied().collect();
    st.envs = envs.save();
    let fin = opts.run_dir.join("checkpoints").join("final");
    save_checkpoint(&fin, cfg, agent.as_ref(), &st, &maker)?;
    let train_return =
        if window.is_empty() { f64::NAN } else { window.iter().map(|e| e.0).sum::<f64>() / window.len() as f64 };
    Ok(Summary {
        steps: st.global_step,
        episodes: st.episodes,
        train_return,
        eval_return: e.mean,
        eval_success: e.success,
        train_successes: train_successes(&envs),
        first_success_step: envs.first_success,
        final_checkpoint: fin,
    })
}

/// A checkpoint folder, or a run folder (its `checkpoints/final`).
pub fn resolve_checkpoint(path: &Path) -> Result<PathBuf> {
    if path.join("trainer.json").exists() {
        return Ok(path.to_path_buf());
    }
    let fin = path.join("checkpoints").join("final");
    if fin.join("trainer.json").exists() {
        return Ok(fin);
    }
    bail!("{}: not a control checkpoint (no trainer.json) nor a run folder with checkpoints/final", path.display())
}

/// Load a checkpoint's policy and evaluate it.
/// `sets` override the checkpoint's config for evaluation (e.g. `gc.subgoals.enabled=true`).
pub fn eval_checkpoint(
    path: &Path,
    episodes: usize,
    seed: Option<u64>,
    sets: &[String],
) -> Result<(ControlConfig, EvalResult)> {
    if episodes == 0 {
        bail!("--episodes must be at least 1");
    }
    let ck = resolve_checkpoint(path)?;
    let cfg = ControlConfig::load(&ck.join("config.toml"), sets)?;
    let maker = env_maker_from_checkpoint(&cfg, &ck, &Device::Cpu)?;
    let envs = maker.vec(cfg.env.num_envs, cfg.seed)?;
    let mut agent = build_agent(&cfg, &envs, &maker, &Device::Cpu)?;
    agent.load(&ck, false)?;
    let e = evaluate(agent.as_mut(), &maker, episodes, seed.unwrap_or(cfg.seed))?;
    Ok((cfg, e))
}

/// `oxrl control collect`: a dataset from a built-in environment with a random policy (no
/// checkpoint) or a checkpoint's policy (deterministic unless `stochastic`), ε-mixed with uniform
/// random actions.
pub fn collect_dataset(
    env: &str,
    steps: usize,
    checkpoint: Option<&Path>,
    epsilon: f64,
    stochastic: bool,
    seed: u64,
) -> Result<crate::dataset::Dataset> {
    use crate::dataset::{collect, random_action};
    if steps == 0 {
        bail!("--steps must be at least 1");
    }
    if !(0.0..=1.0).contains(&epsilon) {
        bail!("--epsilon must be in [0, 1]");
    }
    match checkpoint {
        None => {
            let space = crate::env::make(env, 0)?.action_space();
            let mut rng = oxrl_core::seed::rng(seed, "collect-policy", 0);
            collect(env, steps, &mut |_| Ok(random_action(&space, &mut rng)), 0.0, seed)
        }
        Some(path) => {
            let ck = resolve_checkpoint(path)?;
            let cfg = ControlConfig::load(&ck.join("config.toml"), &[])?;
            let canon = |n: &str| crate::env::make(n, 0).map(|e| e.name());
            if canon(&cfg.env.name)? != canon(env)? {
                bail!("{}: the checkpoint was trained on {}, not {env}", ck.display(), cfg.env.name);
            }
            // a policy on pre-trained features acts on the encoded frame; the dataset keeps pixels
            let maker = env_maker_from_checkpoint(&cfg, &ck, &Device::Cpu)?;
            let envs = maker.vec(cfg.env.num_envs, cfg.seed)?;
            let mut agent = build_agent(&cfg, &envs, &maker, &Device::Cpu)?;
            agent.load(&ck, false)?;
            let mut policy = |o: &[f32]| {
                let x = match &maker.encoder {
                    Some(enc) => enc.encode(o)?,
                    None => o.to_vec(),
                };
                Ok(agent.act(&[x], !stochastic)?.remove(0))
            };
            collect(env, steps, &mut policy, epsilon, seed)
        }
    }
}

/// What RePo's test-time alignment did ([`align_checkpoint`]).
#[derive(Debug, Clone)]
pub struct AlignReport {
    /// The source policy in its own domain (the reference).
    pub source: EvalResult,
    /// In the target domain with the source encoder (no adaptation).
    pub before: EvalResult,
    /// In the target domain with the aligned encoder.
    pub after: EvalResult,
    /// How well the encoder used on target frames reproduces the source encoder's features of the
    /// same states, on held-out pairs: R² = 1 − Σ(f_tgt − f_src)² / Σ(f_src − mean f_src)² over the
    /// standardised features (1 exact, 0 no better than the mean feature).
    pub pair_r2_before: f64,
    pub pair_r2_after: f64,
    /// Share of held-out states where the policy acts on the target frame as on the source frame.
    pub agreement_before: f64,
    pub agreement_after: f64,
}

/// RePo's test-time, reward-free alignment of a checkpoint's pre-trained encoder to the recoloured
/// world `target_env` ([`crate::repr::repo_align`]; settings from `[repr.align]`, `sets` override
/// them); the policy stays frozen. Writes a checkpoint for `target_env` (the aligned encoder and
/// the unchanged policy) to `out` and evaluates the policy before and after over `episodes`.
pub fn align_checkpoint(
    path: &Path,
    target_env: &str,
    out: &Path,
    episodes: usize,
    sets: &[String],
    log: &mut dyn FnMut(&serde_json::Value) -> Result<()>,
) -> Result<AlignReport> {
    use crate::repr::repo_align::{align_encoder, AlignData};
    if episodes == 0 {
        bail!("--episodes must be at least 1");
    }
    let ck = resolve_checkpoint(path)?;
    let cfg = ControlConfig::load(&ck.join("config.toml"), sets)?;
    if !cfg.repr.enabled() {
        bail!("{}: alignment adapts a pre-trained encoder; this run has repr.objective = \"none\"", ck.display());
    }
    if online_encoder(&cfg) {
        bail!("{}: this Dreamer run trained its encoder online (dreamer.train_encoder); alignment adapts a frozen pre-trained encoder", ck.display());
    }
    let source_env = crate::env::make(&cfg.env.name, 0)?.name();
    if crate::repr::pixel_recolored(source_env) {
        bail!("{}: the checkpoint already acts in a recoloured world ({source_env})", ck.display());
    }
    if crate::repr::pixel_variant(source_env)?.sparse {
        bail!("{}: the sparse layout ({source_env}) has no recoloured world to align to", ck.display());
    }
    let want = format!("{source_env}-recolor");
    if crate::env::make(target_env, 0)?.name() != want {
        bail!("--env {target_env}: the target domain of a {source_env} checkpoint is {want}");
    }
    let dev = Device::Cpu;
    let maker = env_maker_from_checkpoint(&cfg, &ck, &dev)?;
    let src = maker.encoder.clone().context("the checkpoint has no encoder")?;
    let envs = maker.vec(cfg.env.num_envs, cfg.seed)?;
    let mut agent = build_agent(&cfg, &envs, &maker, &dev)?;
    agent.load(&ck, false)?;
    let noise = crate::repr::pixel_noise(source_env)?;
    let data = AlignData::collect(noise, &cfg.repr.align, cfg.seed)?;
    let aligned = std::sync::Arc::new(align_encoder(&src, &data, &cfg.repr.align, cfg.seed, &dev, log)?);
    // held-out pairs: the feature gap and whether the policy still acts the same
    let pairs =
        crate::repr::video::Video::collect(noise, 1000, oxrl_core::seed::derive(cfg.seed, "align-eval-pairs", 0))?;
    let src_frames: Vec<Vec<f32>> = (0..pairs.len()).map(|t| pairs.frame(t).to_vec()).collect();
    let tgt_frames: Vec<Vec<f32>> = src_frames.iter().map(|f| crate::env::pixel_grid::recolor_image(f)).collect();
    let f_src = src.encode_batch(&src_frames)?;
    let a_src = agent.act(&f_src, true)?;
    let dims = f_src[0].len();
    let mean: Vec<f64> =
        (0..dims).map(|i| f_src.iter().map(|r| r[i] as f64).sum::<f64>() / f_src.len() as f64).collect();
    let sst: f64 = f_src.iter().flat_map(|r| r.iter().enumerate().map(|(i, &v)| (v as f64 - mean[i]).powi(2))).sum();
    let mut r2_and_agreement = |enc: &FrozenEncoder| -> Result<(f64, f64)> {
        let f = enc.encode_batch(&tgt_frames)?;
        let sse: f64 =
            f.iter().zip(&f_src).flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2))).sum();
        let acts = agent.act(&f, true)?;
        let agree = acts.iter().zip(&a_src).filter(|(a, b)| a == b).count() as f64 / acts.len() as f64;
        Ok((1.0 - sse / sst.max(1e-12), agree))
    };
    let (pair_r2_before, agreement_before) = r2_and_agreement(&src)?;
    let (pair_r2_after, agreement_after) = r2_and_agreement(&aligned)?;
    let seed = cfg.seed;
    let source = evaluate(agent.as_mut(), &maker, episodes, seed)?;
    let mut target = maker.clone();
    target.name = want.clone();
    let before = evaluate(agent.as_mut(), &target, episodes, seed)?;
    target.encoder = Some(aligned.clone());
    let after = evaluate(agent.as_mut(), &target, episodes, seed)?;
    // the adapted checkpoint: the same policy files, the aligned encoder, the target environment
    let mut out_cfg = cfg.clone();
    out_cfg.env.name = want;
    oxrl_core::fsutil::write_dir_atomic(out, |tmp| {
        for entry in std::fs::read_dir(&ck)? {
            let p = entry?.path();
            let name = p.file_name().context("a checkpoint file name")?.to_owned();
            if p.is_file() && name != "config.toml" && name != ENCODER_FILE {
                std::fs::copy(&p, tmp.join(&name))?;
            }
        }
        std::fs::write(tmp.join("config.toml"), out_cfg.to_toml()?)?;
        aligned.save(&tmp.join(ENCODER_FILE))
    })?;
    Ok(AlignReport { source, before, after, pair_r2_before, pair_r2_after, agreement_before, agreement_after })
}
