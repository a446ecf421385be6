//! `oxrl control train` / `oxrl control eval`: the control trainer ([`oxrl_control::train`]) in the
//! same run-folder conventions as the language-model side — `runs/<name>/` with the resolved
//! `config.toml`, `metrics.jsonl`, TensorBoard events, `plots/` and `checkpoints/` (`step-N/`,
//! `final/`), and `--resume RUN_DIR` continuing exactly from the newest step checkpoint.

use crate::run::RunDir;
use anyhow::{bail, Result};
use oxrl_control::train::{train, Summary, TrainOptions};
use oxrl_control::ControlConfig;
use std::path::{Path, PathBuf};

pub struct ControlOutcome {
    pub run_dir: PathBuf,
    pub summary: Summary,
}

/// Load a control config, or (with `resume`) the config of the run being resumed.
pub fn load_config(config: Option<&Path>, sets: &[String], resume: Option<&Path>) -> Result<ControlConfig> {
    match (config, resume) {
        (_, Some(run)) => {
            if config.is_some() || !sets.is_empty() {
                bail!("--resume continues a run with its own config.toml; --config and --set cannot change it");
            }
            ControlConfig::load(&run.join("config.toml"), &[])
        }
        (Some(c), None) => ControlConfig::load(c, sets),
        (None, None) => bail!(
            "oxrl control train needs --config FILE (e.g. examples/control/cartpole-ppo.toml) or --resume RUN_DIR"
        ),
    }
}

pub fn run_control_train(
    cfg: &ControlConfig,
    out: Option<&Path>,
    resume: Option<&Path>,
    stop_after: Option<u64>,
    quiet: bool,
) -> Result<ControlOutcome> {
    let mut run = match resume {
        Some(dir) => RunDir::append(dir)?,
        None => {
            let r = RunDir::create(out, &cfg.name)?;
            r.write_config(&cfg.to_toml()?)?;
            r
        }
    };
    let mut tb = crate::tensorboard::EventWriter::create(&run.path)?;
    let pb = crate::sft::progress_bar(cfg.train.total_steps, quiet);
    let opts = TrainOptions {
        run_dir: &run.path.clone(),
        resume: resume.is_some(),
        stop_after,
        device: candle_core::Device::Cpu,
    };
    let summary = train(cfg, &opts, &mut |rec| {
        run.log(rec)?;
        let step = rec["step"].as_u64().unwrap_or(0);
        let scalars: Vec<(String, f64)> = rec
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != "step")
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
            .collect();
        tb.scalars(step, &scalars)?;
        pb.set_position(step.min(cfg.train.total_steps));
        if let Some(r) = rec["episode_return"].as_f64() {
            pb.set_message(format!("return {r:.1}"));
        }
        Ok(())
    })?;
    pb.finish_and_clear();
    crate::plots::plot_control_run(&run.path)?;
    Ok(ControlOutcome { run_dir: run.path.clone(), summary })
}
