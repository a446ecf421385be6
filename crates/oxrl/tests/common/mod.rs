//! A contextual bandit on the real pipeline (sampler, verifier, scorer, estimator, PPO loss,
//! AdamW): reward 1 when the completion starts with the digit the prompt asks for; a fresh model
//! picks it ~1 % of the time. Shared by the RL learning checks and the technique runs.

// Shared by several test binaries; each uses a different part.
#![allow(dead_code)]

use anyhow::Result;
use oxrl::config::RunConfig;
use oxrl::policy::Policy;
use oxrl::rl_step::{rl_step, Models, TrainState};
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_tasks::{Problem, Task, Verdict};
use serde_json::{Map, Value};

/// The first-digit bandit; `with` swaps in another problem generator and a per-problem reward
/// for a correct digit (multi-task variants).
pub struct FirstDigit {
    test: Vec<Problem>,
    make: fn(u64) -> Problem,
    reward: fn(&Problem) -> f32,
    /// A process verifier (PPR), when set.
    pub process: Option<fn(&Problem, &str) -> Vec<f64>>,
}

fn problem(i: u64) -> Problem {
    let d = (i % 3) * 3 + 1; // digits 1, 4, 7
    Problem {
        id: i,
        prompt: format!("say {d}"),
        answer: d.to_string(),
        solution: d.to_string(),
        meta: serde_json::Value::Null,
    }
}

impl FirstDigit {
    pub fn new() -> Self {
        Self { test: (0..3).map(problem).collect(), make: problem, reward: |_| 1.0, process: None }
    }
    /// Held-out split: the first six problems of `make`.
    pub fn with(make: fn(u64) -> Problem, reward: fn(&Problem) -> f32) -> Self {
        Self { test: (0..6).map(make).collect(), make, reward, process: None }
    }
}

impl Task for FirstDigit {
    fn name(&self) -> &str {
        "first-digit"
    }
    fn train_problem(&self, index: u64) -> Problem {
        (self.make)(index)
    }
    fn train_size(&self) -> Option<usize> {
        None
    }
    fn test_problems(&self) -> &[Problem] {
        &self.test
    }
    fn verify(&self, p: &Problem, completion: &str) -> Verdict {
        let ok = completion.starts_with(&p.answer);
        let mut v = Verdict::judged(ok, completion.chars().next().map(|c| c.to_string()), "");
        if ok {
            v.reward = (self.reward)(p);
        }
        v
    }
    fn max_completion_chars(&self) -> usize {
        2
    }
    fn process_rewards(&self, p: &Problem, completion: &str) -> Option<Vec<f64>> {
        self.process.map(|f| f(p, completion))
    }
}

/// The bandit's small model and batch (12 prompts × 16 samples, 2 new tokens).
pub fn bandit_config(advantage: &str) -> RunConfig {
    let mut cfg = RunConfig::default();
    cfg.model.hidden_size = 32;
    cfg.model.intermediate_size = 64;
    cfg.model.num_hidden_layers = 2;
    cfg.train.prompts_per_step = 12;
    cfg.train.group_size = 16;
    cfg.train.minibatches = 2;
    cfg.train.max_new_tokens = 2;
    cfg.train.advantage = advantage.into();
    cfg
}

/// Run `steps` RL steps of `cfg` on the bandit at learning rate `lr`; the metrics of every step.
pub fn run_bandit(cfg: &RunConfig, steps: u64, lr: f64) -> Result<Vec<Map<String, Value>>> {
    run_task(&FirstDigit::new(), cfg, steps, lr)
}

/// Run `steps` RL steps of `cfg` on `task` (2-token budget).
pub fn run_task(task: &dyn Task, cfg: &RunConfig, steps: u64, lr: f64) -> Result<Vec<Map<String, Value>>> {
    run_task_budget(task, cfg, steps, lr, 2)
}

/// Run `steps` RL steps of `cfg` on `task` with a `budget`-token response budget.
pub fn run_task_budget(
    task: &dyn Task,
    cfg: &RunConfig,
    steps: u64,
    lr: f64,
    budget: usize,
) -> Result<Vec<Map<String, Value>>> {
    run_phases(task, &[(cfg, steps)], lr, budget)
}

/// Consecutive phases of RL steps on one policy, optimiser and train state, each phase with its
/// own config (the model and rehearsal set come from the first).
pub fn run_phases(
    task: &dyn Task,
    phases: &[(&RunConfig, u64)],
    lr: f64,
    budget: usize,
) -> Result<Vec<Map<String, Value>>> {
    run_phases_judged(task, phases, lr, budget, None, None)
}

/// [`run_phases`] with a pairwise judge (ArenaRL, RPO) and a reward model.
pub fn run_phases_judged(
    task: &dyn Task,
    phases: &[(&RunConfig, u64)],
    lr: f64,
    budget: usize,
    judge: Option<&dyn oxrl::judge::Judge>,
    reward_model: Option<&oxrl::reward_model::RewardEnsemble>,
) -> Result<Vec<Map<String, Value>>> {
    let first = phases[0].0;
    let policy = Policy::from_config(first, &candle_core::Device::Cpu)?;
    let mut opt = AdamW::new(policy.model.trainable_vars(), AdamWConfig { beta2: 0.99, ..Default::default() })?;
    let mut state = TrainState::default();
    let rehearsal = if first.train.dph_divergence != "none" {
        Some(oxrl::rehearsal::Rehearsal::build(&policy, task, first, 2)?)
    } else {
        None
    };
    let reference = if first.train.objective == "reasonmaxxer" { Some(policy.reference()?) } else { None };
    let flow = if first.train.rlfr_coef > 0.0 { Some(oxrl::flow::fit(&policy, task, first)?.0) } else { None };
    let models = Models {
        policy: &policy,
        reference: reference.as_ref(),
        value: None,
        critic: None,
        rehearsal: rehearsal.as_ref(),
        judge,
        flow: flow.as_ref(),
        reward_model,
    };
    let mut out = Vec::new();
    for &(cfg, steps) in phases {
        cfg.validate()?;
        let est = oxrl_core::advantage::by_name(&cfg.train.advantage, &cfg.train.estimator_params())?;
        for _ in 0..steps {
            out.push(rl_step(cfg, task, est.as_ref(), &models, &mut opt, lr, budget, &mut state)?);
        }
    }
    Ok(out)
}

/// Mean of a metric over a range of steps.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn mean_of(m: &[Map<String, Value>], key: &str, range: std::ops::Range<usize>) -> f64 {
    let v: Vec<f64> = m[range].iter().map(|r| r.get(key).and_then(|x| x.as_f64()).unwrap_or(f64::NAN)).collect();
    v.iter().sum::<f64>() / v.len() as f64
}

/// Wall-clock metrics, which differ between otherwise identical runs.
const TIMING: [&str; 7] =
    ["step_s", "tokens_per_s", "elapsed_s", "gen_tokens_per_s", "time_rollout_s", "time_scoring_s", "time_update_s"];

/// A run folder's metrics.jsonl without the wall-clock keys (for exact-replay comparisons).
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn metrics(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            for k in TIMING {
                v.as_object_mut().unwrap().remove(k);
            }
            v
        })
        .collect()
}
