//! The baselines: PPO (clip), DQN (with double-Q), SAC and offline IQL (with f-DVL's value losses), behind one [`Agent`] interface the
//! trainer drives: one `iterate` collects experience from the vectorised environments and updates.

pub mod dqn;
pub mod dreamer;
pub mod dvl;
pub mod gcivl;
pub mod grpo;
pub mod hecrl;
pub mod iql;
pub mod lapo;
pub mod ppo;
pub mod sac;
pub mod spr;
pub mod srpo;
pub mod subgoal_diffusion;

use crate::env::{Action, Space, VecEnv};
use anyhow::Result;
use std::path::Path;

/// Where the run stands, for schedules (learning-rate annealing, ε decay).
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub global_step: u64,
    pub total_steps: u64,
}

/// What one iteration did.
#[derive(Debug, Clone, Default)]
pub struct IterStats {
    /// Environment steps taken (summed over the vector).
    pub env_steps: u64,
    /// Named scalar metrics of the update(s).
    pub metrics: Vec<(String, f64)>,
    /// (return, length) of each episode that finished.
    pub episodes: Vec<(f64, usize)>,
}

pub trait Agent {
    fn name(&self) -> &'static str;
    /// Collect experience and update once (an algorithm-defined chunk of environment steps).
    fn iterate(&mut self, envs: &mut VecEnv, progress: Progress) -> Result<IterStats>;
    /// Actions for a batch of observations; `deterministic` = the greedy / mean action.
    fn act(&mut self, obs: &[Vec<f32>], deterministic: bool) -> Result<Vec<Action>>;
    /// Called before each evaluation episode (agents that keep per-episode state reset it).
    fn reset_episode(&mut self) {}
    /// Extra scalars for the final evaluation record (e.g. zero-shot task scores); none by default.
    fn final_report(&mut self, _env_name: &str) -> Result<Vec<(String, f64)>> {
        Ok(Vec::new())
    }
    /// Save parameters, optimiser state and the agent's random stream (and replay) into `dir`.
    fn save(&self, dir: &Path) -> Result<()>;
    /// Load what `save` wrote; `with_state` = also optimiser, RNG and replay (resume), else only the
    /// policy (evaluation).
    fn load(&mut self, dir: &Path, with_state: bool) -> Result<()>;
}

/// Linear interpolation from `start` to `end` over `duration` steps, then `end` (CleanRL's
/// `linear_schedule`).
pub fn linear_schedule(start: f64, end: f64, duration: f64, t: f64) -> f64 {
    if duration <= 0.0 {
        return end;
    }
    let slope = (end - start) / duration;
    (slope * t + start).max(end.min(start)).min(end.max(start))
}

/// ε-greedy: each greedy action is replaced by a uniform one of `n_actions` with probability ε.
pub(crate) fn epsilon_greedy(
    greedy: &[usize],
    eps: f64,
    n_actions: usize,
    rng: &mut oxrl_core::seed::Rng,
) -> Vec<usize> {
    use rand::Rng as _;
    greedy.iter().map(|&g| if rng.random::<f64>() < eps { rng.random_range(0..n_actions) } else { g }).collect()
}

/// Sums named scalars over several updates (names come from the first); `mean` averages them.
#[derive(Default)]
pub(crate) struct MetricSum {
    sums: Vec<(String, f64)>,
    n: usize,
}

impl MetricSum {
    pub(crate) fn add(&mut self, m: &[(String, f64)]) {
        if self.sums.is_empty() {
            self.sums = m.iter().map(|(k, _)| (k.clone(), 0.0)).collect();
        }
        for (s, (_, v)) in self.sums.iter_mut().zip(m) {
            s.1 += v;
        }
        self.n += 1;
    }
    pub(crate) fn mean(self) -> Vec<(String, f64)> {
        let n = self.n.max(1) as f64;
        self.sums.into_iter().map(|(k, v)| (k, v / n)).collect()
    }
}

/// Bounds of a box action space (errors for discrete spaces).
pub fn box_bounds(space: &Space) -> Result<(Vec<f32>, Vec<f32>)> {
    match space {
        Space::Box { low, high } => Ok((low.clone(), high.clone())),
        Space::Discrete(_) => anyhow::bail!("this algorithm needs a continuous (box) action space"),
    }
}

/// An agent's random-stream position and step counter, saved as `agent_state.json`.
#[derive(serde::Serialize, serde::Deserialize)]
struct AgentState {
    rng: String,
    step: u64,
}

/// Write `agent_state.json` (stream position and step counter) into a checkpoint folder.
pub(crate) fn save_state(dir: &Path, rng: &oxrl_core::seed::Rng, step: u64) -> Result<()> {
    let st = AgentState { rng: rng.get_word_pos().to_string(), step };
    oxrl_core::fsutil::write_atomic(&dir.join("agent_state.json"), serde_json::to_string_pretty(&st)?.as_bytes())
}

/// Restore the stream position from `agent_state.json` and return the step counter.
pub(crate) fn load_state(dir: &Path, rng: &mut oxrl_core::seed::Rng) -> Result<u64> {
    use anyhow::Context;
    let p = dir.join("agent_state.json");
    let st: AgentState =
        serde_json::from_str(&std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?)
            .with_context(|| format!("parsing {}", p.display()))?;
    rng.set_word_pos(st.rng.parse().map_err(|_| anyhow::anyhow!("{}: bad rng position {:?}", p.display(), st.rng))?);
    Ok(st.step)
}

/// Read a safetensors file of a checkpoint.
pub(crate) fn read_tensors(path: &Path) -> Result<std::collections::HashMap<String, candle_core::Tensor>> {
    use anyhow::Context;
    candle_core::safetensors::load(path, &candle_core::Device::Cpu)
        .with_context(|| format!("reading {}", path.display()))
}

/// The tensors whose names start with `prefix`, with the prefix removed.
pub(crate) fn strip_prefix(
    map: &std::collections::HashMap<String, candle_core::Tensor>,
    prefix: &str,
) -> std::collections::HashMap<String, candle_core::Tensor> {
    map.iter().filter_map(|(k, v)| k.strip_prefix(prefix).map(|s| (s.to_string(), v.clone()))).collect()
}

/// Save an optimiser's state tensors to `path`.
pub(crate) fn save_opt(opt: &oxrl_core::optim::AdamW, path: &Path) -> Result<()> {
    let st = opt.state_tensors()?;
    oxrl_core::fsutil::write_atomic_with(path, |tmp| Ok(candle_core::safetensors::save(&st, tmp)?))
}
pub(crate) fn load_opt(opt: &mut oxrl_core::optim::AdamW, path: &Path) -> Result<()> {
    use anyhow::Context;
    let st = candle_core::safetensors::load(path, &candle_core::Device::Cpu)
        .with_context(|| format!("reading {}", path.display()))?;
    opt.load_state_tensors(&st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_schedule_decays_then_holds() {
        assert_eq!(linear_schedule(1.0, 0.05, 100.0, 0.0), 1.0);
        assert!((linear_schedule(1.0, 0.05, 100.0, 50.0) - 0.525).abs() < 1e-12);
        assert_eq!(linear_schedule(1.0, 0.05, 100.0, 1000.0), 0.05);
    }
}
