//! CI-sized learning checks of the RL step: GRPO-family estimators on a contextual bandit, and a
//! sized-down quickstart (countdown SFT warm-up, then GRPO).

mod common;

use anyhow::Result;
use common::{bandit_config, run_bandit};

fn run(advantage: &str, steps: u64) -> Result<Vec<f64>> {
    let m = run_bandit(&bandit_config(advantage), steps, 3e-3)?;
    Ok(m.iter().map(|r| r["reward_mean"].as_f64().unwrap()).collect())
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
/// quickstart runs 300); held-out pass@1 must rise clearly.
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
