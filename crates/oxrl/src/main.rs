use anyhow::{bail, Context, Result};

/// candle allocates a fresh buffer for every op; mimalloc reuses them far better than glibc malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use oxrl::config::RunConfig;
use oxrl::policy::{resolve_checkpoint, Policy};
use oxrl_tasks::TaskConfig;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "oxrl", version, about = "Reinforcement learning for language-model and control policies")]
struct Cli {
    /// Hide progress bars.
    #[arg(long, global = true)]
    quiet: bool,
    /// CPU threads for tensor work (default: one per physical core).
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

/// A config-driven run: `--config FILE [--set KEY=VALUE …] [--out DIR]`.
#[derive(clap::Args)]
struct RunArgs {
    #[arg(long)]
    config: PathBuf,
    /// Override a config key: --set sft.steps=100 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Run folder (default runs/<name>).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl RunArgs {
    fn load(&self) -> Result<RunConfig> {
        RunConfig::load(Some(&self.config), &self.sets)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Supervised fine-tuning on a task's demonstrations.
    Sft(RunArgs),
    /// DPO on preference pairs (`[dpo]` config: pairs JSONL, beta, steps, batch_size, lr).
    Dpo(RunArgs),
    /// Train a Bradley–Terry reward model on preference pairs (`[rm]` config); use it in
    /// `oxrl train` with `train.reward_model = DIR`.
    Rm(RunArgs),
    /// RA3 mid-training: EM rounds of latent discovery on the task's expert solutions and
    /// next-token training on them (`[ra3]` config; `train.sft_warmup` runs `[sft]` first).
    Midtrain(RunArgs),
    /// RL training (with an optional SFT warm-up); without --config, runs examples/quickstart.toml.
    Train {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue an interrupted run from its newest checkpoint.
        #[arg(long, value_name = "RUN_DIR")]
        resume: Option<PathBuf>,
        /// Stop after the checkpoint of this step, as if killed (preemption drills, tests).
        #[arg(long, hide = true)]
        stop_after: Option<u64>,
    },
    /// Evaluate a checkpoint on a task's held-out split.
    Eval {
        /// Checkpoint directory, or a run folder (uses checkpoints/final).
        #[arg(long)]
        checkpoint: PathBuf,
        /// Task name (addition, subtraction, multiplication, countdown, arith, jsonl).
        #[arg(long)]
        task: String,
        /// Comma-separated k for pass@k and maj@k.
        #[arg(long, value_delimiter = ',')]
        k: Option<Vec<usize>>,
        /// Override task.* or eval.* keys (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Render prompts through the model's chat template (checkpoints trained with
        /// `model.chat` already do).
        #[arg(long)]
        chat: bool,
        /// System message for --chat.
        #[arg(long, requires = "chat")]
        system: Option<String>,
    },
    /// Generate a completion from a model directory (Hugging Face layout) or oxrl checkpoint.
    Generate {
        /// Model directory, checkpoint, or run folder (uses checkpoints/final).
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        prompt: String,
        /// Render the prompt through the model's chat template.
        #[arg(long)]
        chat: bool,
        /// System message (with --chat).
        #[arg(long, requires = "chat")]
        system: Option<String>,
        #[arg(long, default_value_t = 128)]
        max_new_tokens: usize,
        /// 0 = greedy.
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        #[arg(long, default_value_t = 1.0)]
        top_p: f64,
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Compute dtype: auto, f32, bf16, f16.
        #[arg(long, default_value = "auto")]
        dtype: String,
        /// Print {"text", "token_ids", "finish_reason", "prompt_tokens"} as JSON.
        #[arg(long)]
        json: bool,
        /// RLG guidance: the base model (same vocabulary); tokens are sampled from
        /// (1 − w)·base + w·model logits, w = --guide-weight.
        #[arg(long, value_name = "BASE_DIR")]
        guide: Option<PathBuf>,
        /// RLG weight w: 0 = the base, 1 = --model, > 1 extrapolates (a KL coefficient β/w).
        #[arg(long, default_value_t = 1.0, requires = "guide")]
        guide_weight: f32,
    },
    /// Train a grid of config values × seeds and compare them (table + overlay plots).
    Sweep {
        /// Base config (default: the built-in quickstart).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override a base config key (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// A grid axis: --vary train.advantage=grpo,rloo,nsr (repeatable).
        #[arg(long = "vary", value_name = "KEY=V1,V2,…", required_unless_present = "budget")]
        vary: Vec<String>,
        /// The SFT:RL budget-ratio procedure instead of a grid: total cost C shared between SFT
        /// demonstrations and RL episodes at each of --sft-fractions.
        #[arg(long, conflicts_with = "vary")]
        budget: Option<f64>,
        /// Shares of the budget spent on demonstrations.
        #[arg(long, value_delimiter = ',', default_value = "0,0.1,0.25,0.5,0.75,1")]
        sft_fractions: Vec<f64>,
        /// Cost of one SFT demonstration and of one RL episode, in budget units.
        #[arg(long, default_value_t = 1.0)]
        demo_cost: f64,
        #[arg(long, default_value_t = 1.0)]
        episode_cost: f64,
        /// Seeds per point (0..N).
        #[arg(long, default_value_t = 1)]
        seeds: usize,
        /// Sweep folder (default runs/sweep-<config name>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Path-Not-Taken update statistics between two checkpoints (or run folders) of one model.
    Diagnose {
        /// The starting checkpoint (e.g. the SFT checkpoint).
        a: PathBuf,
        /// The trained checkpoint.
        b: PathBuf,
        /// Principal directions per matrix.
        #[arg(long, default_value_t = 16)]
        k: usize,
        #[arg(long)]
        json: bool,
    },
    /// List what oxrl implements: `oxrl list techniques [--json | --markdown]`.
    List {
        /// What to list (`techniques`).
        what: String,
        /// A JSON array of {name, config_key, kind, paper, confidence, changes}.
        #[arg(long)]
        json: bool,
        /// The Markdown table of docs/techniques.md.
        #[arg(long, conflicts_with = "json")]
        markdown: bool,
    },
    /// Control RL: `oxrl control train --config FILE` and `oxrl control eval --checkpoint DIR`.
    Control {
        #[command(subcommand)]
        command: ControlCommand,
    },
    /// Measure GEMM peak, generation and training throughput, and MFU.
    Bench {
        #[arg(long)]
        json: bool,
        /// Model to measure: `tiny` (the built-in default) or `notes` (the PyTorch reference model).
        #[arg(long, default_value = "tiny")]
        model: String,
        /// Fewer repetitions.
        #[arg(long)]
        quick: bool,
        /// Also run the PyTorch eager reference (bench/torch_reference.py) with this Python on the
        /// notes model and print the ratios.
        #[arg(long, value_name = "PYTHON")]
        compare_torch: Option<String>,
    },
}

#[derive(Subcommand)]
enum ControlCommand {
    /// Train a control policy (PPO, DQN or SAC on a built-in environment).
    Train {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override a config key: --set ppo.lr=1e-3 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Run folder (default runs/<name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue an interrupted run from its newest checkpoint.
        #[arg(long, value_name = "RUN_DIR")]
        resume: Option<PathBuf>,
        /// Stop after the first checkpoint at or beyond this step, as if killed (tests).
        #[arg(long, hide = true)]
        stop_after: Option<u64>,
    },
    /// Collect an offline dataset (.npz: observations, actions, rewards, next_observations,
    /// terminals, timeouts) with a random policy or a checkpoint's policy.
    Collect {
        /// Built-in environment (cartpole, pendulum, mountain-car, mountain-car-continuous, acrobot).
        #[arg(long)]
        env: String,
        #[arg(long)]
        steps: usize,
        /// Output file (.npz).
        #[arg(long)]
        out: PathBuf,
        /// Act with this checkpoint's policy (default: uniform random actions).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Probability of replacing the policy's action with a uniform random one.
        #[arg(long, default_value_t = 0.0)]
        epsilon: f64,
        /// Sample from the checkpoint's policy instead of taking its deterministic action.
        #[arg(long)]
        stochastic: bool,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// A scripted policy instead: `navigator` (point mazes: noisy waypoint following to random
        /// targets, "navigate"-style episodes of --episode-length steps) or `pusher` (push
        /// gridworlds; --epsilon is its random-move rate).
        #[arg(long, conflicts_with = "checkpoint")]
        policy: Option<String>,
        /// Episode length of scripted navigate datasets.
        #[arg(long, default_value_t = 1000)]
        episode_length: usize,
        /// Action noise (std) of the scripted navigator.
        #[arg(long, default_value_t = 0.5)]
        noise: f64,
        /// Append to an existing dataset file (mixtures such as expert + random) instead of
        /// refusing to overwrite it.
        #[arg(long)]
        append: bool,
    },
    /// Evaluate a checkpoint's deterministic policy.
    Eval {
        /// Checkpoint directory, or a run folder (uses checkpoints/final).
        #[arg(long)]
        checkpoint: PathBuf,
        #[arg(long, default_value_t = 10)]
        episodes: usize,
        /// Evaluation seed (default: the run's seed).
        #[arg(long)]
        seed: Option<u64>,
        /// Override a key of the checkpoint's config for evaluation (e.g.
        /// gc.subgoals.enabled=true).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Print {"mean_return", "std_return", "returns", "episodes", "env", "algo"} as JSON
        /// (and "success_rate" on goal-reaching environments).
        #[arg(long)]
        json: bool,
    },
    /// RLIR: pre-train a POINT2D world model on noisy action labels, then post-train it with GRPO
    /// on the inverse-dynamics reward; reports action following and frame error before and after.
    Rlir {
        /// A TOML file of `RlirConfig` keys (frames, label_noise, steps, group_size, lr, kl_coef, …).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override a key: --set steps=200 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Print the report (pretrain_loss, before, after, reward_curve) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// RePo's test-time, reward-free alignment: adapt a checkpoint's pre-trained encoder to the
    /// recoloured world (`pixelgrid-<noise>-recolor`) from target frames and a few paired frames,
    /// the policy frozen; writes a checkpoint for the target world and reports the policy before
    /// and after.
    Align {
        /// Checkpoint directory, or a run folder (uses checkpoints/final).
        #[arg(long)]
        checkpoint: PathBuf,
        /// The target world: the checkpoint's environment with `-recolor`.
        #[arg(long)]
        env: String,
        /// Folder for the adapted checkpoint.
        #[arg(long)]
        out: PathBuf,
        /// Evaluation episodes for each of source, target before and target after.
        #[arg(long, default_value_t = 50)]
        episodes: usize,
        /// Override `[repr.align]` (or any key) of the checkpoint's config, e.g.
        /// repr.align.steps=1000.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    oxrl::runtime::configure(cli.threads)?;
    match cli.command {
        Command::Sft(a) => {
            let o = oxrl::sft::run_sft(&a.load()?, a.out.as_deref(), cli.quiet)?;
            println!("run folder: {}", o.run_dir.display());
            print!("{}", o.final_eval.table());
        }
        Command::Dpo(a) => {
            let o = oxrl::dpo::run_dpo(&a.load()?, a.out.as_deref(), cli.quiet)?;
            println!("run folder: {}", o.run_dir.display());
            println!(
                "held-out implicit-reward accuracy: {:.1}% -> {:.1}%",
                100.0 * o.accuracy_before,
                100.0 * o.accuracy_after
            );
        }
        Command::Rm(a) => {
            let o = oxrl::reward_model::run_rm(&a.load()?, a.out.as_deref(), cli.quiet)?;
            println!("run folder: {}", o.run_dir.display());
            println!(
                "held-out pairwise accuracy: {:.1}% -> {:.1}%",
                100.0 * o.accuracy_before,
                100.0 * o.accuracy_after
            );
        }
        Command::Midtrain(a) => {
            let o = oxrl::ra3::run_midtrain(&a.load()?, a.out.as_deref(), cli.quiet)?;
            println!("run folder: {}", o.run_dir.display());
        }
        Command::Train { config, sets, out, resume, stop_after } => {
            let cfg = oxrl::train::load_config(config.as_deref(), &sets, resume.as_deref())?;
            let o = oxrl::train::run_train(&cfg, out.as_deref(), resume.as_deref(), stop_after, cli.quiet)?;
            println!("run folder: {}", o.run_dir.display());
            if let Some(after) = &o.after {
                let pk = |r: &oxrl::eval::EvalReport| {
                    r.pass_at_k
                        .iter()
                        .map(|(k, v)| format!("pass@{k} {:.1}%", 100.0 * v))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                println!("before RL: greedy accuracy {:.1}%, {}", 100.0 * o.before.accuracy, pk(&o.before));
                println!("after RL:  greedy accuracy {:.1}%, {}", 100.0 * after.accuracy, pk(after));
            }
        }
        Command::Control { command: ControlCommand::Train { config, sets, out, resume, stop_after } } => {
            let cfg = oxrl::control::load_config(config.as_deref(), &sets, resume.as_deref())?;
            let o = oxrl::control::run_control_train(&cfg, out.as_deref(), resume.as_deref(), stop_after, cli.quiet)?;
            println!("run folder: {}", o.run_dir.display());
            let succ = o.summary.eval_success.map(|s| format!(", success {:.0}%", 100.0 * s)).unwrap_or_default();
            let first = match (o.summary.train_successes, o.summary.first_success_step) {
                (Some(n), Some(f)) => format!("{n} successful training episodes, the first ended at step {f}"),
                (Some(_), None) => "no training episode succeeded".into(),
                _ => String::new(),
            };
            println!(
                "{} on {}: {} steps, {} episodes; training return (last {}) {:.1}; eval return {:.1}{succ}",
                cfg.algo,
                cfg.env.name,
                o.summary.steps,
                o.summary.episodes,
                cfg.train.return_window,
                o.summary.train_return,
                o.summary.eval_return
            );
            if !first.is_empty() {
                println!("{first}");
            }
        }
        Command::Control {
            command:
                ControlCommand::Collect {
                    env,
                    steps,
                    out,
                    checkpoint,
                    epsilon,
                    stochastic,
                    seed,
                    policy,
                    episode_length,
                    noise,
                    append,
                },
        } => {
            let new = match policy.as_deref() {
                None => {
                    oxrl_control::train::collect_dataset(&env, steps, checkpoint.as_deref(), epsilon, stochastic, seed)?
                }
                Some("navigator") => {
                    let maze = env.strip_prefix("pointmaze-").with_context(|| {
                        format!("--policy navigator needs a point maze (pointmaze-umaze, …), not {env}")
                    })?;
                    oxrl_control::gc::collect_navigate(maze, steps, episode_length, noise, seed)?
                }
                Some("pusher") => {
                    if !env.starts_with("push-") {
                        bail!("--policy pusher needs a push gridworld (push-1, push-2, push-3, push-N-gc), not {env}");
                    }
                    let mut rng = oxrl_core::seed::rng(seed, "pusher", 0);
                    oxrl_control::dataset::collect(
                        &env,
                        steps,
                        &mut |o| {
                            Ok(oxrl_control::env::Action::Discrete(oxrl_control::env::push_grid::pusher_from_obs(
                                o, epsilon, &mut rng,
                            )?))
                        },
                        0.0,
                        seed,
                    )?
                }
                Some(p) => bail!("--policy {p:?}: the scripted policies are: navigator, pusher"),
            };
            let d = match (out.exists(), append) {
                (true, true) => {
                    let mut old = oxrl_control::dataset::Dataset::load_npz(&out)?;
                    old.extend(&new).with_context(|| format!("appending to {}", out.display()))?;
                    old
                }
                (true, false) => bail!("{}: exists (use --append to add to it)", out.display()),
                (false, _) => new,
            };
            d.save_npz(&out)?;
            let rets = d.episode_returns();
            let mean = rets.iter().sum::<f64>() / rets.len().max(1) as f64;
            println!(
                "{}: {} transitions, {} episodes, mean episode return {mean:.1}",
                out.display(),
                d.len(),
                rets.len()
            );
        }
        Command::Control { command: ControlCommand::Rlir { config, sets, json } } => {
            let (origin, text) = match &config {
                Some(p) => (
                    p.display().to_string(),
                    std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
                ),
                None => ("rlir defaults".to_string(), String::new()),
            };
            let cfg: oxrl_control::rlir::RlirConfig =
                oxrl_core::overrides::parse_with_overrides(&origin, &text, &sets)?;
            cfg.validate().with_context(|| origin.clone())?;
            let r = oxrl_control::rlir::run(&cfg, &candle_core::Device::Cpu)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "RLIR on POINT2D ({} GRPO steps): action following {:.1}% -> {:.1}%, frame error {:.3} -> {:.3}",
                    cfg.steps,
                    100.0 * r.before.action_following,
                    100.0 * r.after.action_following,
                    r.before.frame_error,
                    r.after.frame_error
                );
            }
        }
        Command::Control { command: ControlCommand::Align { checkpoint, env, out, episodes, sets, json } } => {
            let quiet = cli.quiet || json;
            let mut log = |r: &serde_json::Value| -> Result<()> {
                if !quiet {
                    eprintln!("{r}");
                }
                Ok(())
            };
            let r = oxrl_control::train::align_checkpoint(&checkpoint, &env, &out, episodes, &sets, &mut log)?;
            let succ = |e: &oxrl_control::train::EvalResult| e.success.unwrap_or(f64::NAN);
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "source_return": r.source.mean, "source_success": succ(&r.source),
                        "before_return": r.before.mean, "before_success": succ(&r.before),
                        "after_return": r.after.mean, "after_success": succ(&r.after),
                        "pair_r2_before": r.pair_r2_before, "pair_r2_after": r.pair_r2_after,
                        "agreement_before": r.agreement_before, "agreement_after": r.agreement_after,
                        "episodes": episodes, "out": out.display().to_string(),
                    })
                );
            } else {
                println!(
                    "source world: return {:.3} (success {:.0}%); {env} with the source encoder: {:.3} ({:.0}%); aligned: {:.3} ({:.0}%)",
                    r.source.mean,
                    100.0 * succ(&r.source),
                    r.before.mean,
                    100.0 * succ(&r.before),
                    r.after.mean,
                    100.0 * succ(&r.after)
                );
                println!(
                    "held-out pairs: features' R² against the source world {:.3} -> {:.3}, same action as there {:.0}% -> {:.0}%; adapted checkpoint: {}",
                    r.pair_r2_before,
                    r.pair_r2_after,
                    100.0 * r.agreement_before,
                    100.0 * r.agreement_after,
                    out.display()
                );
            }
        }
        Command::Control { command: ControlCommand::Eval { checkpoint, episodes, seed, sets, json } } => {
            let (cfg, e) = oxrl_control::train::eval_checkpoint(&checkpoint, episodes, seed, &sets)?;
            if json {
                let mut v = serde_json::json!({"mean_return": e.mean, "std_return": e.std, "returns": e.returns, "episodes": episodes, "env": cfg.env.name, "algo": cfg.algo});
                if let Some(s) = e.success {
                    v["success_rate"] = serde_json::json!(s);
                }
                println!("{v}");
            } else {
                let succ = e.success.map(|s| format!(", success {:.0}%", 100.0 * s)).unwrap_or_default();
                println!(
                    "{} on {}: mean return {:.2} ± {:.2} over {episodes} episodes{succ}",
                    cfg.algo, cfg.env.name, e.mean, e.std
                );
            }
        }
        Command::Eval { checkpoint, task, k, sets, json, seed, chat, system } => {
            let dir = resolve_checkpoint(&checkpoint)?;
            let device = oxrl_lm::default_device();
            let mut policy = Policy::load(&dir, &device)?;
            if chat {
                policy.tokenizer.set_chat(true, system).context("--chat")?;
            }
            // The checkpoint's own task settings when it was trained on this task.
            let manifest: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("oxrl.json")).unwrap_or_else(|_| "{}".into()))
                    .context("reading oxrl.json")?;
            let is_dataset = matches!(task.as_str(), "jsonl" | "dataset");
            let task_cfg = match TaskConfig::deserialize(&manifest["meta"]["task"]) {
                Ok(t) if t.name() == task || (is_dataset && t.name() == "jsonl") => Some(t),
                // A dataset has no defaults: its file comes from --set task.train=FILE.
                _ if is_dataset => None,
                _ => Some(TaskConfig::from_name(&task)?),
            };
            if task_cfg.is_none() && !sets.iter().any(|s| s.starts_with("task.train=")) {
                bail!("--task {task} needs the data file: --set task.train=FILE (JSONL or Parquet)");
            }
            let mut cfg = RunConfig { task: task_cfg.clone().unwrap_or_default(), ..Default::default() };
            if let Some(k) = k {
                cfg.eval.k = k;
            }
            if !sets.is_empty() {
                let mut table: toml::Table = toml::from_str(&cfg.to_toml()?)?;
                if task_cfg.is_none() {
                    table.insert(
                        "task".into(),
                        toml::Value::Table(toml::Table::from_iter([("name".to_string(), "jsonl".into())])),
                    );
                }
                for s in &sets {
                    if !(s.starts_with("task.") || s.starts_with("eval.")) {
                        bail!("--set `{s}`: eval accepts only task.* and eval.* keys");
                    }
                    oxrl::config::apply_override(&mut table, s)?;
                }
                cfg = RunConfig::deserialize(toml::Value::Table(table)).map_err(|e| anyhow::anyhow!("--set: {e}"))?;
            }
            cfg.validate()?;
            let t = cfg.task.build(seed)?;
            let report = oxrl::eval::evaluate(&policy, t.as_ref(), &cfg.eval, seed)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("checkpoint {} on task {}", dir.display(), t.name());
                print!("{}", report.table());
            }
        }
        Command::Generate {
            model,
            prompt,
            chat,
            system,
            max_new_tokens,
            temperature,
            top_p,
            top_k,
            seed,
            dtype,
            json,
            guide,
            guide_weight,
        } => {
            let dir = resolve_checkpoint(&model)?;
            let device = oxrl_lm::default_device();
            let dtype = match dtype.as_str() {
                "auto" => oxrl_lm::checkpoint::default_dtype(&device),
                d => oxrl_lm::hf::parse_dtype(d).context("--dtype")?,
            };
            let mut policy = Policy::load_with(&dir, &device, dtype, seed)?;
            let guide = match guide {
                Some(g) => {
                    let base = Policy::load_with(&resolve_checkpoint(&g)?, &device, dtype, seed).context("--guide")?;
                    Some((base.model, guide_weight))
                }
                None => None,
            };
            let opts = oxrl::generate::GenerateOptions {
                chat,
                system,
                max_new_tokens,
                temperature,
                top_p,
                top_k,
                seed,
                guide,
            };
            let g = oxrl::generate::generate_text(&mut policy, &prompt, &opts)?;
            if json {
                println!("{}", serde_json::to_string(&g)?);
            } else {
                println!("{}", g.text);
            }
        }
        Command::Sweep { config, sets, vary, budget, sft_fractions, demo_cost, episode_cost, seeds, out } => {
            let axes = vary.iter().map(|v| oxrl::sweep::parse_vary(v)).collect::<Result<Vec<_>>>()?;
            let out = match out {
                Some(o) => o,
                None => {
                    let base = oxrl::train::load_config(config.as_deref(), &sets, None)?;
                    PathBuf::from("runs").join(format!("sweep-{}", base.name))
                }
            };
            let budget =
                budget.map(|total| oxrl::sweep::Budget { total, fractions: sft_fractions, demo_cost, episode_cost });
            let opts = oxrl::sweep::SweepOptions {
                config: config.as_deref(),
                sets: &sets,
                axes: &axes,
                budget: budget.as_ref(),
                seeds,
                out: &out,
                quiet: cli.quiet,
            };
            let report = oxrl::sweep::run_sweep(&opts)?;
            print!("{}", report.markdown());
            println!("\nsweep folder: {} (summary.md, summary.json, plots/)", out.display());
        }
        Command::Diagnose { a, b, k, json } => {
            let r = oxrl::diagnose::diagnose(&a, &b, k)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print!("{}", r.table());
            }
        }
        Command::List { what, json, markdown } => {
            if what != "techniques" {
                bail!("`oxrl list {what}`: expected `oxrl list techniques`");
            }
            let reg = oxrl_core::registry::TECHNIQUES;
            if json {
                println!("{}", serde_json::to_string_pretty(reg)?);
            } else if markdown {
                print!("{}", oxrl_core::registry::markdown());
            } else {
                let w = reg.iter().map(|t| t.name.chars().count()).max().unwrap_or(0);
                for t in reg {
                    println!("{:w$}  {:11}  {:9}  {}", t.name, t.kind, t.confidence, t.config_key, w = w);
                }
            }
        }
        Command::Bench { json, model, quick, compare_torch: Some(python) } => {
            if model != "tiny" && model != "notes" {
                bail!("--compare-torch runs the `notes` model; drop --model `{model}`");
            }
            let c = oxrl::bench::compare_torch(&python, quick)?;
            if json {
                println!("{}", serde_json::to_string(&c)?);
            } else {
                print!("{}", c.table());
            }
        }
        Command::Bench { json, model, quick, compare_torch: None } => {
            let cfg = match model.as_str() {
                "tiny" => RunConfig::default().model.model_config(100),
                "notes" => oxrl::bench::notes_model(),
                other => bail!("--model `{other}`: expected `tiny` or `notes`"),
            };
            let r = oxrl::bench::run_bench(&model, cfg, quick)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print!("{}", r.table());
            }
        }
    }
    Ok(())
}
