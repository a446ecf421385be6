//! RL trainer: determinism, exact resume, NaN guard, checkpoint integrity, CLI flow.

mod common;

use anyhow::Result;
use common::metrics;
use oxrl::config::RunConfig;
use oxrl::train::run_train;
use std::process::Command;

fn tiny(seed: u64) -> RunConfig {
    let mut c = RunConfig { seed, ..Default::default() };
    c.name = "t".into();
    c.model.hidden_size = 32;
    c.model.intermediate_size = 64;
    c.model.num_hidden_layers = 2;
    c.task = toml::from_str::<toml::Table>("name = \"addition\"\ndigits = 1\ntest_size = 8")
        .map(|t| serde::Deserialize::deserialize(toml::Value::Table(t)).unwrap())
        .unwrap();
    c.sft.steps = 3;
    c.sft.batch_size = 8;
    c.train.sft_warmup = true;
    c.train.steps = 6;
    c.train.prompts_per_step = 4;
    c.train.group_size = 4;
    c.train.minibatches = 2;
    c.train.kl_coef = 0.01;
    c.train.entropy_coef = 0.001;
    c.train.checkpoint_every = 2;
    c.train.lr = 1e-3;
    c.eval.k = vec![1, 2];
    c.eval.max_new_tokens = 16;
    c.train.max_new_tokens = 16;
    c.validate().unwrap();
    c
}

/// [`tiny`] with `--set` overrides, validated.
fn tiny_with(seed: u64, sets: &[&str]) -> Result<RunConfig> {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    RunConfig::load_str("tiny test config", &tiny(seed).to_toml()?, &sets)
}

#[test]
fn same_seed_same_metrics_and_resume_is_exact() -> Result<()> {
    let d = tempfile::tempdir()?;
    let a = run_train(&tiny(3), Some(&d.path().join("a")), None, None, true)?;
    let b = run_train(&tiny(3), Some(&d.path().join("b")), None, None, true)?;
    let ma = metrics(&a.run_dir);
    assert_eq!(ma, metrics(&b.run_dir), "same seed must write identical metrics");
    assert!(ma.iter().any(|v| v["phase"] == "rl" && v["step"] == 6 && v.get("reward_mean").is_some()));
    assert!(ma.iter().any(|v| v["phase"] == "rl" && v.get("kl_ref").is_some()));
    let c = run_train(&tiny(4), Some(&d.path().join("c")), None, None, true)?;
    assert_ne!(ma, metrics(&c.run_dir));
    for f in ["summary.json", "config.toml", "checkpoints/final/model.safetensors", "plots/reward.png"] {
        assert!(a.run_dir.join(f).exists(), "{f}");
    }
    assert!(std::fs::read_dir(&a.run_dir)?.any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("events.out.tfevents")));
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(a.run_dir.join("summary.json"))?)?;
    assert!(summary["before"]["accuracy"].is_number() && summary["after"]["pass_at_k"]["2"].is_number());

    // Killed after step 4 (its checkpoint written), with a torn metrics line, then resumed.
    let k = d.path().join("k");
    run_train(&tiny(3), Some(&k), None, Some(4), true)?;
    assert!(!k.join("summary.json").exists());
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(k.join("metrics.jsonl"))?;
        f.write_all(b"{\"phase\": \"rl\", \"step\": 5, \"reward_mea")?;
    }
    run_train(&tiny(3), None, Some(&k), None, true)?;
    assert_eq!(ma, metrics(&k), "resumed run must match the uninterrupted one");
    assert_eq!(
        std::fs::read(a.run_dir.join("checkpoints/final/model.safetensors"))?,
        std::fs::read(k.join("checkpoints/final/model.safetensors"))?
    );
    Ok(())
}

#[test]
fn corrupted_or_truncated_checkpoints_are_refused() -> Result<()> {
    let d = tempfile::tempdir()?;
    let mut cfg = tiny(1);
    cfg.train.kl_coef = 0.0;
    let k = d.path().join("k");
    run_train(&cfg, Some(&k), None, Some(2), true)?;
    let ck = k.join("checkpoints/step-2");
    oxrl::train::verify_checkpoint(&ck)?;
    let model = ck.join("model.safetensors");
    let good = std::fs::read(&model)?;
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 3] ^= 0xFF;
    std::fs::write(&model, &bad)?;
    let err = format!("{:#}", run_train(&cfg, None, Some(&k), None, true).err().unwrap());
    assert!(err.contains("corrupted") && err.contains("model.safetensors"), "{err}");
    std::fs::write(&model, &good[..n / 2])?;
    let err = format!("{:#}", run_train(&cfg, None, Some(&k), None, true).err().unwrap());
    assert!(err.contains("corrupted"), "{err}");
    std::fs::remove_file(ck.join("optimizer.safetensors"))?;
    std::fs::write(&model, &good)?;
    let err = format!("{:#}", run_train(&cfg, None, Some(&k), None, true).err().unwrap());
    assert!(err.contains("optimizer.safetensors is missing"), "{err}");
    Ok(())
}

#[test]
fn nan_loss_skips_the_step_and_the_run_continues() -> Result<()> {
    let d = tempfile::tempdir()?;
    let mut cfg = tiny(2);
    cfg.train.checkpoint_every = 1;
    cfg.debug.inject_nan_at = vec![2];
    let o = run_train(&cfg, Some(&d.path().join("n")), None, None, true)?;
    let m = metrics(&o.run_dir);
    let rl: Vec<&serde_json::Value> =
        m.iter().filter(|v| v["phase"] == "rl" && v.get("reward_mean").is_some()).collect();
    assert_eq!(rl.len(), 6);
    assert_eq!(rl[1]["nan_skipped"], 2, "both minibatches of step 2 skipped: {}", rl[1]);
    assert!(rl[1].get("grad_norm").is_none());
    assert_eq!(rl[0]["nan_skipped"], 0);
    assert!(rl[2]["grad_norm"].as_f64().unwrap().is_finite());
    // step 2 changed nothing: the weights after step 1 and after step 2 are identical
    let w1 = std::fs::read(o.run_dir.join("checkpoints/step-1/model.safetensors"))?;
    let w2 = std::fs::read(o.run_dir.join("checkpoints/step-2/model.safetensors"))?;
    assert_eq!(w1, w2);
    let w3 = std::fs::read(o.run_dir.join("checkpoints/step-3/model.safetensors"))?;
    assert_ne!(w2, w3);
    assert!(o.after.unwrap().accuracy.is_finite());
    Ok(())
}

#[test]
fn estimators_and_options_run_end_to_end() -> Result<()> {
    let d = tempfile::tempdir()?;
    for (i, sets) in [
        vec!["train.advantage=gae", "train.value_head=true", "train.group_size=2", "train.kl_in=reward"],
        vec!["train.advantage=rloo", "train.dual_clip=3.0", "train.clip_high=0.28", "train.loss_agg=token-mean"],
        vec!["train.advantage=dr_grpo", "train.loss_agg=seq-mean-token-sum-norm", "train.kl_estimator=k1+"],
        vec!["train.advantage=reinforce_pp", "train.kl_in=reward", "train.kl_target=0.01"],
        vec!["train.advantage=reinforce_pp_baseline", "train.mask_truncated=true", "train.overlong_buffer=4"],
        vec!["train.advantage=lite_ppo", "train.dynamic_sampling=true", "train.epochs=2"],
    ]
    .iter()
    .enumerate()
    {
        let cfg = tiny_with(5, &[&["train.steps=2"], &sets[..]].concat())?;
        let o = run_train(&cfg, Some(&d.path().join(format!("r{i}"))), None, None, true)?;
        let m = metrics(&o.run_dir);
        let last = m.iter().rev().find(|v| v.get("reward_mean").is_some()).unwrap();
        assert_eq!(last["step"], 2, "{sets:?}");
        if sets.contains(&"train.value_head=true") {
            assert!(last["value_loss"].as_f64().unwrap().is_finite());
            let ev = last["value_explained_var"].as_f64().expect("the critic's explained variance is logged");
            assert!(ev.is_finite() && ev <= 1.0, "{ev}");
        }
        if sets.contains(&"train.dynamic_sampling=true") {
            assert!(last["groups_drawn"].as_u64().unwrap() >= last["groups_kept"].as_u64().unwrap());
        }
        if sets.contains(&"train.kl_target=0.01") {
            assert_ne!(last["kl_coef"].as_f64().unwrap(), 0.01, "adaptive KL must move the coefficient");
        }
    }
    Ok(())
}

#[test]
fn cli_resume_refuses_config_changes() {
    let o = Command::new(env!("CARGO_BIN_EXE_oxrl"))
        .args(["train", "--resume", "/nonexistent-run", "--set", "train.lr=1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resume continues a run"));
}

#[test]
fn dph_rehearsal_set_is_saved_and_a_resumed_run_is_exact() -> Result<()> {
    let d = tempfile::tempdir()?;
    let mut c = tiny(5);
    c.train.dph_divergence = "js".into();
    c.train.dph_coef = 0.1;
    c.train.dph_probe_prompts = 6;
    c.train.dph_probe_samples = 2;
    c.train.dph_batch = 4;
    c.validate()?;
    let a = run_train(&c, Some(&d.path().join("a")), None, None, true)?;
    let reh = oxrl::rehearsal::Rehearsal::load(&a.run_dir.join("rehearsal.json"))?;
    assert!(!reh.items.is_empty() && reh.probe_prompts == 6);
    let m = metrics(&a.run_dir);
    assert!(m.iter().filter(|v| v["phase"] == "rl").any(|v| v["dph_loss"].is_number()));
    let k = d.path().join("k");
    run_train(&c, Some(&k), None, Some(2), true)?;
    run_train(&c, None, Some(&k), None, true)?;
    assert_eq!(m, metrics(&k), "a resumed DPH-RL run must match the uninterrupted one");
    Ok(())
}

/// A latent-reasoning run through `oxrl train`: `[model.latent]` (HRPO gate and Coconut
/// segments with markers + DePO + Latent-GRPO), KL to the reference with its own latent module,
/// evaluation in latent mode, the module in every checkpoint, and an exact resume.
#[test]
fn latent_reasoning_runs_checkpoint_and_resume_exactly() -> Result<()> {
    let d = tempfile::tempdir()?;
    let mut hrpo = tiny(5);
    hrpo.model.latent =
        Some(oxrl::config::LatentSection { kind: "hrpo".into(), gate_init: -2.0, ..Default::default() });
    let a = run_train(&hrpo, Some(&d.path().join("h")), None, None, true)?;
    let ck = a.run_dir.join("checkpoints/final");
    assert!(ck.join("latent.json").exists() && ck.join("latent.safetensors").exists());
    let loaded = oxrl::policy::Policy::load(&ck, &candle_core::Device::Cpu)?;
    let g = loaded.model.latent.as_ref().expect("the latent module is loaded").gate_mean()?.unwrap();
    assert!((g - 1.0 / (1.0 + 2f64.exp())).abs() > 1e-6, "the saved gate is the trained one ({g})");

    let mut c = tiny(5);
    c.model.latent = Some(oxrl::config::LatentSection {
        kind: "coconut".into(),
        steps: 2,
        start: Some("<sep>".into()),
        end: Some("<sep>".into()),
        kappa: 2.0,
        normalize: true,
        ..Default::default()
    });
    c.train.depo_alpha = 0.5;
    c.train.latent_grpo = true;
    c.train.latent_select = true;
    c.train.latent_noise = 0.2;
    c.validate()?;
    let full = run_train(&c, Some(&d.path().join("c")), None, None, true)?;
    let m = metrics(&full.run_dir);
    assert!(m.iter().any(|v| v.get("latent_clipfrac").is_some() && v.get("kl_ref").is_some()));
    assert!(m.iter().all(|v| v.get("mismatch_max").is_none_or(|x| x.as_f64().unwrap() < 1e-3)));
    assert!(full.run_dir.join("reference-latent/latent.json").exists());
    let k = d.path().join("k");
    run_train(&c, Some(&k), None, Some(4), true)?;
    run_train(&c, None, Some(&k), None, true)?;
    assert_eq!(m, metrics(&k), "resumed latent run must match the uninterrupted one");
    // A multi-token marker is refused by key.
    let mut bad = tiny(5);
    bad.model.latent = Some(oxrl::config::LatentSection { start: Some("ab".into()), ..Default::default() });
    let e = format!("{:#}", run_train(&bad, Some(&d.path().join("bad")), None, None, true).err().unwrap());
    assert!(e.contains("model.latent.start"), "{e}");
    Ok(())
}

/// PPO's critic warm-up: the first steps train only the value head — the policy does not move
/// between minibatches (every importance ratio stays 1) while the value loss falls — and the
/// policy learns after it (with the value head at 10× the policy's learning rate).
#[test]
fn critic_warmup_trains_only_the_value_head_first() -> Result<()> {
    let d = tempfile::tempdir()?;
    let cfg = tiny_with(
        5,
        &[
            "train.advantage=gae",
            "train.value_head=true",
            "train.group_size=2",
            "train.steps=4",
            "train.critic_warmup=2",
            "train.value_lr_mult=10",
            "train.epochs=2",
        ],
    )?;
    let o = run_train(&cfg, Some(&d.path().join("run")), None, None, true)?;
    let steps: Vec<serde_json::Value> =
        metrics(&o.run_dir).into_iter().filter(|v| v["phase"] == "rl" && v.get("reward_mean").is_some()).collect();
    assert_eq!(steps.len(), 4);
    for s in &steps {
        let warm = s["critic_warmup"].as_u64().unwrap() == 1;
        let (kl, ratio) = (s["approx_kl"].as_f64().unwrap(), s["ratio_mean"].as_f64().unwrap());
        eprintln!(
            "step {}: warm-up {warm}, approx_kl {kl:.2e}, ratio {ratio:.6}, value loss {}",
            s["step"], s["value_loss"]
        );
        assert_eq!(warm, s["step"].as_u64().unwrap() <= 2);
        if warm {
            assert!(kl.abs() < 1e-9 && (ratio - 1.0).abs() < 1e-9, "the policy must not move during warm-up");
        } else {
            assert!(kl.abs() > 1e-9, "the policy learns after the warm-up");
        }
    }
    Ok(())
}

/// A separate critic model (`train.critic = "model"`): during the critic warm-up only the critic
/// moves — the policy's checkpointed weights stay bit for bit while the critic's change — the
/// policy learns after it, the critic's weights are checkpointed, and a resumed run is exact.
#[test]
fn critic_model_learns_apart_from_the_policy_and_resumes_exactly() -> Result<()> {
    let d = tempfile::tempdir()?;
    let cfg = tiny_with(
        4,
        &[
            "train.advantage=gae",
            "train.value_head=true",
            "train.critic=model",
            "train.group_size=2",
            "train.steps=4",
            "train.critic_warmup=2",
            "train.value_lr_mult=10",
            "train.checkpoint_every=1",
        ],
    )?;
    let a = run_train(&cfg, Some(&d.path().join("a")), None, None, true)?;
    let ck = |n: u64, f: &str| std::fs::read(a.run_dir.join(format!("checkpoints/step-{n}/{f}")));
    assert_eq!(ck(1, "model.safetensors")?, ck(2, "model.safetensors")?, "the policy must not move in warm-up");
    assert_ne!(ck(1, "critic.safetensors")?, ck(2, "critic.safetensors")?, "the critic trunk learns");
    assert_ne!(ck(2, "model.safetensors")?, ck(3, "model.safetensors")?, "the policy learns after the warm-up");
    let m = metrics(&a.run_dir);
    let rl: Vec<&serde_json::Value> = m.iter().filter(|v| v.get("value_loss").is_some()).collect();
    assert_eq!(rl.len(), 4);
    assert!(rl.iter().all(|v| v["value_loss"].as_f64().unwrap().is_finite()));
    let k = d.path().join("k");
    run_train(&cfg, Some(&k), None, Some(2), true)?;
    run_train(&cfg, None, Some(&k), None, true)?;
    assert_eq!(m, metrics(&k), "a resumed run with a critic model must match the uninterrupted one");
    Ok(())
}
