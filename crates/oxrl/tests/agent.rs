//! Multi-turn agents on GRID: SFT on scripted demonstrations (only action tokens carry loss),
//! then multi-turn GRPO over episodes in which only the policy's action tokens carry loss; G-RA
//! versus ungated (D-RA) immediate rewards from the same start.

mod common;

use anyhow::Result;
use common::metrics;
use oxrl::config::RunConfig;
use oxrl::train::run_train;
use std::path::Path;

fn grid(sets: &[&str]) -> RunConfig {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let c = RunConfig::load_str(
        "grid test",
        r#"
name = "grid"
seed = 0
[model]
hidden_size = 64
intermediate_size = 192
num_hidden_layers = 2
[task]
name = "grid"
size = 3
max_turns = 10
test_size = 32
[sft]
steps = 300
batch_size = 32
lr = 3e-3
warmup_steps = 20
[train]
steps = 0
prompts_per_step = 16
group_size = 8
minibatches = 2
lr = 1e-4
warmup_steps = 5
weight_decay = 0.0
temperature = 0.7
max_new_tokens = 8
[eval]
k = [1]
max_problems = 32
"#,
        &sets,
    )
    .unwrap();
    c.validate().unwrap();
    c
}

/// Rollout success (`accuracy`) and turns of every RL step.
fn curve(run: &Path) -> (Vec<f64>, Vec<f64>) {
    let ms = metrics(run);
    let steps: Vec<&serde_json::Value> =
        ms.iter().filter(|v| v["phase"] == "rl" && v.get("accuracy").is_some()).collect();
    assert!(steps.iter().all(|v| v["mismatch_max"].as_f64().unwrap() < 1e-3), "observations are not sampled");
    (
        steps.iter().map(|v| v["accuracy"].as_f64().unwrap()).collect(),
        steps.iter().map(|v| v["agent_turns"].as_f64().unwrap()).collect(),
    )
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

#[test]
fn multi_turn_grpo_improves_on_sft_and_gated_rewards_resist_farming() -> Result<()> {
    let d = tempfile::tempdir()?;
    // SFT on the scripted demonstrations (observation lines masked).
    let sft = run_train(&grid(&["train.sft_warmup=true"]), Some(&d.path().join("sft")), None, None, true)?;
    let start = sft.run_dir.join("checkpoints/sft");
    let from = format!("model.path={:?}", start.display().to_string());
    eprintln!("GRID after SFT: held-out greedy success {:.3}", sft.before.accuracy);
    assert!(sft.before.accuracy > 0.3, "SFT learns the task ({:.3})", sft.before.accuracy);

    // Multi-turn GRPO on the outcome: rollout success rises over the SFT start.
    let rl = run_train(&grid(&[&from, "train.steps=30"]), Some(&d.path().join("rl")), None, None, true)?;
    let (succ, turns) = curve(&rl.run_dir);
    let after = rl.after.as_ref().unwrap().accuracy;
    eprintln!(
        "GRID GRPO: rollout success {:.3} -> {:.3} (first 5 / last 10 steps), turns {:.2} -> {:.2}; held-out greedy {:.3} -> {after:.3}",
        mean(&succ[..5]),
        mean(&succ[20..]),
        mean(&turns[..5]),
        mean(&turns[20..]),
        rl.before.accuracy
    );
    assert!(mean(&succ[20..]) > mean(&succ[..5]) + 0.02, "rollout success rises");
    assert!(after >= rl.before.accuracy, "held-out success does not fall: {:.3} -> {after:.3}", rl.before.accuracy);

    // G-RA vs D-RA with a large immediate reward per executable action (wandering 10 turns pays
    // more than finishing under D-RA): D-RA farms — longer episodes, fewer successes — G-RA does not.
    let arm = |mode: &str| -> Result<(Vec<f64>, Vec<f64>)> {
        let reward = format!("train.agent_reward=\"{mode}\"");
        let c = grid(&[&from, "train.steps=20", "train.lr=3e-4", &reward, "train.agent_step_reward=1.0"]);
        Ok(curve(&run_train(&c, Some(&d.path().join(mode)), None, None, true)?.run_dir))
    };
    let (ds, dt) = arm("direct")?;
    let (gs, gt) = arm("gated")?;
    eprintln!(
        "D-RA: success {:.3} -> {:.3}, turns {:.2} -> {:.2}; G-RA: success {:.3} -> {:.3}, turns {:.2} -> {:.2}",
        mean(&ds[..5]),
        mean(&ds[15..]),
        mean(&dt[..5]),
        mean(&dt[15..]),
        mean(&gs[..5]),
        mean(&gs[15..]),
        mean(&gt[..5]),
        mean(&gt[15..])
    );
    assert!(mean(&ds[15..]) < mean(&ds[..5]) - 0.05, "D-RA stops completing");
    assert!(mean(&dt[15..]) > mean(&dt[..5]) + 0.3, "D-RA farms longer episodes");
    assert!(mean(&gs[15..]) > mean(&ds[15..]) + 0.1, "G-RA keeps completing");
    Ok(())
}

/// SHOP and SWE-TOY through the same pipeline: a short SFT on their scripted demonstrations,
/// then RL steps of multi-turn episodes (observations inserted, the transcript replayed by the
/// verifier; SWE-TOY's tests run in the sandbox) — every step completes with finite rewards.
#[test]
fn shop_and_swe_toy_episodes_train_end_to_end() -> Result<()> {
    let d = tempfile::tempdir()?;
    for (task, budget, reward) in [("shop", 24, "spa"), ("swe-toy", 40, "gated")] {
        let c = grid(&[
            &format!("train.agent_reward=\"{reward}\""),
            &format!("task={{name = \"{task}\", test_size = 4}}"),
            "train.sft_warmup=true",
            "sft.steps=20",
            "train.steps=2",
            "train.prompts_per_step=2",
            "train.group_size=4",
            &format!("train.max_new_tokens={budget}"),
            "eval.max_problems=4",
        ]);
        let out = run_train(&c, Some(&d.path().join(task)), None, None, true)?;
        let ms = metrics(&out.run_dir);
        let rl: Vec<&serde_json::Value> =
            ms.iter().filter(|v| v["phase"] == "rl" && v.get("reward_mean").is_some()).collect();
        assert_eq!(rl.len(), 2, "{task}");
        for v in rl {
            let r = v["reward_mean"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&r) && v["agent_turns"].as_f64().unwrap() >= 1.0, "{task}: {v}");
        }
    }
    Ok(())
}
