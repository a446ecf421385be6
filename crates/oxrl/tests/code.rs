//! The code reward end to end: SFT then RL on the CODE task, every completion run in the
//! sandbox; broken programs (syntax errors, crashes) are zero rewards, never trainer errors.

mod common;

use anyhow::Result;
use common::metrics;
use oxrl::config::RunConfig;
use oxrl::train::run_train;

#[test]
fn code_rewards_come_from_the_sandbox_and_broken_programs_never_stop_training() -> Result<()> {
    let d = tempfile::tempdir()?;
    let cfg = RunConfig::load_str(
        "code test",
        r#"
name = "code"
seed = 0
[model]
hidden_size = 64
intermediate_size = 192
num_hidden_layers = 2
[task]
name = "code"
test_size = 16
wall_ms = 1000
[sft]
steps = 150
batch_size = 32
lr = 3e-3
warmup_steps = 10
[train]
sft_warmup = true
steps = 4
prompts_per_step = 4
group_size = 8
lr = 1e-4
temperature = 1.0
[eval]
k = [1]
"#,
        &[],
    )?;
    let out = run_train(&cfg, Some(d.path()), None, None, true)?;
    let ms = metrics(&out.run_dir);
    let rl: Vec<&serde_json::Value> =
        ms.iter().filter(|v| v["phase"] == "rl" && v.get("reward_mean").is_some()).collect();
    let fmt: Vec<f64> = rl.iter().map(|v| v["format_rate"].as_f64().unwrap()).collect();
    let reward: Vec<f64> = rl.iter().map(|v| v["reward_mean"].as_f64().unwrap()).collect();
    eprintln!("CODE after SFT: greedy {:.3}; RL format rate {fmt:?}, reward {reward:?}", out.before.accuracy);
    assert_eq!(rl.len(), 4, "every step ran");
    assert!(reward.iter().all(|r| r.is_finite() && (0.0..=1.0).contains(r)));
    // After a short SFT most programs run (and pass some hidden tests); the broken ones score 0
    // without stopping anything.
    assert!(fmt.iter().all(|&f| f > 0.5) && fmt.iter().any(|&f| f < 1.0), "{fmt:?}");
    assert!(reward.iter().sum::<f64>() > 0.0, "partial credit from the hidden tests");
    Ok(())
}
