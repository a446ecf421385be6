//! CI-sized learning check of the RL step: a contextual bandit on the real pipeline (sampler,
//! verifier, scorer, GRPO, PPO loss, AdamW). Reward 1 when the completion starts with the digit the
//! prompt asks for; a fresh model picks it ~1 % of the time. GRPO must drive it well above chance.

use anyhow::Result;
use oxrl::config::RunConfig;
use oxrl::policy::Policy;
use oxrl::rl_step::{rl_step, Models, TrainState};
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_tasks::{Problem, Task, Verdict};

struct FirstDigit {
    test: Vec<Problem>,
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

impl Task for FirstDigit {
    fn name(&self) -> &str {
        "first-digit"
    }
    fn train_problem(&self, index: u64) -> Problem {
        problem(index)
    }
    fn train_size(&self) -> Option<usize> {
        None
    }
    fn test_problems(&self) -> &[Problem] {
        &self.test
    }
    fn verify(&self, p: &Problem, completion: &str) -> Verdict {
        let ok = completion.starts_with(&p.answer);
        Verdict::judged(ok, completion.chars().next().map(|c| c.to_string()), "")
    }
    fn max_completion_chars(&self) -> usize {
        2
    }
}

fn run(advantage: &str, steps: u64) -> Result<Vec<f64>> {
    let mut cfg = RunConfig::default();
    cfg.model.hidden_size = 32;
    cfg.model.intermediate_size = 64;
    cfg.model.num_hidden_layers = 2;
    cfg.train.prompts_per_step = 12;
    cfg.train.group_size = 16;
    cfg.train.minibatches = 2;
    cfg.train.max_new_tokens = 2;
    cfg.train.advantage = advantage.into();
    cfg.validate()?;
    let task = FirstDigit { test: (0..3).map(problem).collect() };
    let policy = Policy::from_config(&cfg, &candle_core::Device::Cpu)?;
    let est = oxrl_core::advantage::by_name(advantage, 1.0, 0.95, false)?;
    let mut opt = AdamW::new(policy.model.params.named_vars(), AdamWConfig { beta2: 0.99, ..Default::default() })?;
    let mut state = TrainState { step: 0, cursor: 0, kl_coef: 0.0 };
    let models = Models { policy: &policy, reference: None, value: None };
    let mut rewards = Vec::new();
    for _ in 0..steps {
        let m = rl_step(&cfg, &task, est.as_ref(), &models, &mut opt, 3e-3, 2, &mut state)?;
        rewards.push(m["reward_mean"].as_f64().unwrap());
    }
    Ok(rewards)
}

#[test]
fn grpo_and_rloo_learn_a_contextual_bandit() -> Result<()> {
    for adv in ["grpo", "rloo"] {
        let r = run(adv, 40)?;
        let start = r[..3].iter().sum::<f64>() / 3.0;
        let end = r[r.len() - 3..].iter().sum::<f64>() / 3.0;
        eprintln!("{adv}: reward {start:.3} -> {end:.3} ({r:?})");
        assert!(start < 0.15, "{adv}: a fresh model should rarely hit the digit ({start})");
        assert!(end > 0.6, "{adv}: GRPO-family RL must learn the bandit: reward {start:.3} -> {end:.3}");
    }
    Ok(())
}

/// CI-sized version of the quickstart: the same SFT warm-up on countdown, then 60 GRPO steps (the
/// quickstart runs 180); held-out pass@1 must rise clearly.
#[test]
fn quickstart_sized_down_raises_pass_at_1() -> Result<()> {
    let d = tempfile::tempdir()?;
    let sets: Vec<String> = ["train.steps=60", "eval.max_problems=100"].iter().map(|s| s.to_string()).collect();
    let cfg = oxrl::train::load_config(None, &sets, None)?;
    let o = oxrl::train::run_train(&cfg, Some(&d.path().join("run")), None, None, true)?;
    let (before, after) = (o.before.pass_at_k["1"], o.after.as_ref().unwrap().pass_at_k["1"]);
    eprintln!("CI quickstart: pass@1 {before:.3} -> {after:.3}");
    assert!(after - before >= 0.05, "pass@1 {before:.3} -> {after:.3}: 60 GRPO steps must raise it clearly");
    Ok(())
}
