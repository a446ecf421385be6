//! DPO on preference pairs (`oxrl dpo`): the trainer learns held-out preferences of a synthetic
//! preference set well above chance, and bad pair files are refused with the file and line.

mod common;

use anyhow::Result;
use oxrl::config::RunConfig;

/// `n` pairs "say d": the digit d preferred to another digit — or, with `junk`, every second pair
/// to one or two printable characters not starting with d (what an untrained policy writes).
fn write_pairs(path: &std::path::Path, n: usize, junk: bool) -> Result<()> {
    use std::fmt::Write;
    let mut s = String::new();
    let printable = |k: usize| (b'!' + ((k * 37 + 11) % 94) as u8) as char;
    for i in 0..n {
        let d = i % 10;
        let rejected = if junk && i % 2 == 1 {
            let mut j: String = [printable(i), printable(i / 3 + 5)][..1 + (i / 2) % 2].iter().collect();
            if j.starts_with(char::from(b'0' + d as u8)) {
                j.insert(0, 'x');
            }
            j.replace('"', "'").replace('\\', "/")
        } else {
            ((d + 1 + (i * 7) % 9) % 10).to_string() // another digit
        };
        writeln!(s, r#"{{"prompt": "say {d}", "chosen": "{d}", "rejected": "{rejected}"}}"#)?;
    }
    std::fs::write(path, s)?;
    Ok(())
}

#[test]
fn dpo_learns_held_out_preferences() -> Result<()> {
    let d = tempfile::tempdir()?;
    let pairs = d.path().join("pairs.jsonl");
    write_pairs(&pairs, 300, false)?;
    let mut cfg = RunConfig::load_str(
        "dpo test",
        "name = \"dpo\"\n[model]\nhidden_size = 32\nintermediate_size = 64\nnum_hidden_layers = 2\n[dpo]\nbeta = 0.1\nsteps = 200\nbatch_size = 16\nlr = 3e-3\ntest_fraction = 0.2\n",
        &[],
    )?;
    cfg.dpo.pairs = Some(pairs.clone());
    let o = oxrl::dpo::run_dpo(&cfg, Some(&d.path().join("run")), true)?;
    eprintln!("held-out implicit-reward accuracy {:.3} -> {:.3}", o.accuracy_before, o.accuracy_after);
    assert_eq!(o.accuracy_before, 0.0, "π = π_ref: every margin is 0");
    assert!(o.accuracy_after > 0.8, "DPO learns the preferences: {:.3}", o.accuracy_after);
    let log = std::fs::read_to_string(o.run_dir.join("metrics.jsonl"))?;
    let losses: Vec<f64> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("loss").and_then(|x| x.as_f64()))
        .collect();
    assert!((losses[0] - std::f64::consts::LN_2).abs() < 1e-4, "the first DPO loss is ln 2: {}", losses[0]);
    assert!(losses[losses.len() - 5..].iter().sum::<f64>() / 5.0 < 0.5);
    assert!(o.run_dir.join("checkpoints/final/config.json").exists());
    // a malformed line is named
    std::fs::write(&pairs, "{\"prompt\": \"say 1\", \"chosen\": \"1\", \"rejected\": \"2\"}\n{\"prompt\": \"x\"}\n")?;
    let e = oxrl::dpo::run_dpo(&cfg, Some(&d.path().join("run2")), true).err().unwrap();
    assert!(format!("{e:#}").contains("pairs.jsonl:2") && format!("{e:#}").contains("chosen"), "{e:#}");
    Ok(())
}

/// A Bradley–Terry reward model trained on synthetic preferences (the prompt's digit preferred to
/// another digit or to junk) ranks held-out pairs well above chance, and as the reward of RL on the
/// first-digit bandit (`train.reward_model`) it teaches the policy the preferred answers.
///
/// The junk pairs matter: a reward model that only ever compared digits scores the random
/// characters an untrained policy writes arbitrarily, and over reward-model seeds 1–6 RL then
/// reached 0.0–0.77 accuracy (two of six fell to 0); with the junk pairs seeds 0–6 all rose from
/// ≈ 0.015 to 0.17–0.33. A single learned reward can still have a hackable maximum: after the
/// session-18 kernel changes (the same arithmetic, sums in another order) the seed-0 model's
/// policy raised its reward from −3.3 to +2.7 while accuracy stayed at 0.04 (seeds 1–6: 0.15–0.34).
/// So RL runs on the reward models of three seeds and at least two must find the answers.
#[test]
fn a_trained_reward_model_ranks_held_out_pairs_and_drives_rl() -> Result<()> {
    let d = tempfile::tempdir()?;
    let pairs = d.path().join("pairs.jsonl");
    write_pairs(&pairs, 300, true)?;
    let mut cfg = RunConfig::load_str(
        "rm test",
        "name = \"rm\"\n[model]\nhidden_size = 32\nintermediate_size = 64\nnum_hidden_layers = 2\n[rm]\nsteps = 150\nbatch_size = 16\nlr = 3e-3\ntest_fraction = 0.2\n",
        &[],
    )?;
    cfg.rm.pairs = Some(pairs);
    let mut found = 0;
    let mut first = None;
    for seed in 0..3 {
        cfg.seed = seed;
        let o = oxrl::reward_model::run_rm(&cfg, Some(&d.path().join(format!("rm-{seed}"))), true)?;
        eprintln!("seed {seed}: held-out pairwise accuracy {:.3} -> {:.3}", o.accuracy_before, o.accuracy_after);
        assert!(o.accuracy_after > 0.85, "the reward model learns the preferences: {:.3}", o.accuracy_after);
        let rm = oxrl::reward_model::RewardModel::load(&o.run_dir, &candle_core::Device::Cpu)?;
        let rm = oxrl::reward_model::RewardEnsemble { members: vec![rm], uncertainty: 0.0 };
        // RL on the bandit with the reward model as the only reward
        let run = common::run_phases_judged(
            &common::FirstDigit::new(),
            &[(&common::bandit_config("grpo"), 40)],
            3e-3,
            2,
            None,
            Some(&rm),
        )?;
        let (a0, a1) = (common::mean_of(&run, "accuracy", 0..5), common::mean_of(&run, "accuracy", 35..40));
        let (r0, r1) = (common::mean_of(&run, "reward_mean", 0..5), common::mean_of(&run, "reward_mean", 35..40));
        eprintln!("seed {seed}: reward {r0:.2} -> {r1:.2}, verifier accuracy {a0:.3} -> {a1:.3}");
        // RL raises the learned reward in every run (it optimises what it is given) ...
        assert!(r1 > r0 + 1.0, "RL raises the reward model's reward: {r0:.2} -> {r1:.2}");
        // ... and with most reward models that finds the preferred answers (each mean is over
        // 960 samples: a rise of 0.1 is about ten standard errors)
        found += usize::from(a1 > a0 + 0.1);
        first.get_or_insert(o);
    }
    assert!(found >= 2, "RL on the learned reward finds the preferred answers with {found} of 3 reward models");
    let o = first.expect("three seeds ran");
    // `oxrl train` with `train.reward_model` loads it and trains on its scores
    let tcfg = RunConfig::load_str(
        "rm train",
        "name = \"rm-train\"\n[model]\nhidden_size = 32\nintermediate_size = 64\nnum_hidden_layers = 2\n[task]\nname = \"addition\"\ndigits = 1\ntest_size = 4\n[train]\nsteps = 1\nprompts_per_step = 2\ngroup_size = 2\nmax_new_tokens = 4\n[eval]\nk = [1]\nmax_problems = 2\nmax_new_tokens = 4\n",
        &[format!("train.reward_model={}", o.run_dir.display())],
    )?;
    let out = oxrl::train::run_train(&tcfg, Some(&d.path().join("train")), None, None, true)?;
    let recs = common::metrics(&out.run_dir);
    assert!(recs.iter().any(|m| m["phase"] == "rl" && m["reward_mean"].is_number()));
    // An ensemble: a copy of the same model agrees exactly (std 0); a second model trained from
    // another seed for a few steps disagrees, and its pessimistic reward is logged.
    let mut cfg2 = cfg.clone();
    (cfg2.seed, cfg2.rm.steps) = (7, 10);
    let o2 = oxrl::reward_model::run_rm(&cfg2, Some(&d.path().join("rm2")), true)?;
    for (member, agrees) in [(&o.run_dir, true), (&o2.run_dir, false)] {
        let mut e = tcfg.clone();
        e.train.reward_model_ensemble = vec![member.clone()];
        e.validate()?;
        let out = oxrl::train::run_train(&e, Some(&d.path().join(format!("ens-{agrees}"))), None, None, true)?;
        let rec = common::metrics(&out.run_dir)
            .into_iter()
            .find(|m| m["phase"] == "rl" && m["reward_mean"].is_number())
            .unwrap();
        let sd = rec["rm_ensemble_std"].as_f64().unwrap();
        eprintln!("ensemble with {}: member std {sd:.4}", if agrees { "itself" } else { "another model" });
        assert_eq!(sd == 0.0, agrees, "{sd}");
    }
    // a directory without a reward head is refused by name
    let e = oxrl::reward_model::RewardModel::load(d.path(), &candle_core::Device::Cpu).err().unwrap();
    assert!(format!("{e:#}").contains("reward_head.safetensors"), "{e:#}");
    Ok(())
}

/// Listwise preferences: rankings of three responses (the prompt's digit, then its successor,
/// then another digit) train the reward model with the Plackett–Luce loss; it orders held-out
/// rankings' pairs well above chance, and malformed rankings are refused by file and line.
#[test]
fn plackett_luce_rankings_train_the_reward_model() -> Result<()> {
    use std::fmt::Write;
    let d = tempfile::tempdir()?;
    let path = d.path().join("ranked.jsonl");
    let mut s = String::new();
    for i in 0..300 {
        let a = i % 10;
        let (b, c) = ((a + 1) % 10, (a + 5) % 10);
        writeln!(s, r#"{{"prompt": "say {a}", "ranked": ["{a}", "{b}", "{c}"]}}"#)?;
    }
    std::fs::write(&path, &s)?;
    let mut cfg = RunConfig::load_str(
        "pl test",
        "name = \"pl\"\n[model]\nhidden_size = 32\nintermediate_size = 64\nnum_hidden_layers = 2\n[rm]\nsteps = 150\nbatch_size = 16\nlr = 3e-3\ntest_fraction = 0.2\n",
        &[],
    )?;
    cfg.rm.pairs = Some(path.clone());
    let o = oxrl::reward_model::run_rm(&cfg, Some(&d.path().join("rm")), true)?;
    eprintln!("held-out ranked-pair accuracy {:.3} -> {:.3}", o.accuracy_before, o.accuracy_after);
    assert!(o.accuracy_after > 0.85, "{:.3}", o.accuracy_after);
    let losses: Vec<f64> =
        common::metrics(&o.run_dir).iter().filter_map(|m| m.get("bt_loss").and_then(|x| x.as_f64())).collect();
    // an untrained model scores all three alike: the Plackett–Luce loss starts near ln 3 + ln 2
    assert!((losses[0] - (3f64.ln() + 2f64.ln())).abs() < 0.1, "{}", losses[0]);
    std::fs::write(&path, format!("{s}{{\"prompt\": \"say 1\", \"ranked\": [\"1\"]}}\n"))?;
    let e = oxrl::reward_model::run_rm(&cfg, Some(&d.path().join("rm2")), true).err().unwrap();
    assert!(format!("{e:#}").contains("ranked.jsonl:301") && format!("{e:#}").contains("at least 2"), "{e:#}");
    Ok(())
}

/// VPL through `oxrl rm` (spec oracle): two user types with opposite preferences (the larger vs
/// the smaller digit) — the user-conditioned reward ranks held-out users' pairs from their own
/// context, the unconditional Bradley–Terry model on the same embeddings stays near chance.
#[test]
fn vpl_reward_model_separates_opposite_users() -> Result<()> {
    use std::fmt::Write;
    let d = tempfile::tempdir()?;
    let path = d.path().join("users.jsonl");
    let mut s = String::new();
    for u in 0..48 {
        for k in 0..8 {
            let a = (u * 7 + k * 3) % 10;
            let b = (a + 1 + (u + k) % 8) % 10;
            let (hi, lo) = (a.max(b), a.min(b));
            let (chosen, rejected) = if u % 2 == 0 { (hi, lo) } else { (lo, hi) };
            writeln!(s, r#"{{"user": "u{u}", "prompt": "pick", "chosen": "{chosen}", "rejected": "{rejected}"}}"#)?;
        }
    }
    std::fs::write(&path, &s)?;
    let mut cfg = RunConfig::load_str(
        "vpl test",
        "name = \"vpl\"\n[model]\nhidden_size = 32\nintermediate_size = 64\nnum_hidden_layers = 2\n[rm]\nkind = \"vpl\"\nsteps = 400\nbatch_size = 16\nlr = 3e-3\ntest_fraction = 0.25\n",
        &[],
    )?;
    cfg.rm.pairs = Some(path.clone());
    let o = oxrl::reward_model::run_rm(&cfg, Some(&d.path().join("vpl")), true)?;
    eprintln!("held-out users: Bradley–Terry {:.3}, VPL {:.3}", o.accuracy_before, o.accuracy_after);
    assert!(o.accuracy_after > 0.85 && o.accuracy_before < 0.7, "{:.3} / {:.3}", o.accuracy_before, o.accuracy_after);
    assert!(o.run_dir.join("checkpoints/final/vpl.safetensors").is_file());
    // personalised as a reward: z from one user's pairs; ranking other users' pairs of either type
    let user_file = |u: usize| -> Result<std::path::PathBuf> {
        let p = d.path().join(format!("u{u}.jsonl"));
        let lines: String =
            s.lines().filter(|l| l.contains(&format!("\"user\": \"u{u}\""))).map(|l| format!("{l}\n")).collect();
        std::fs::write(&p, lines)?;
        Ok(p)
    };
    let dev = candle_core::Device::Cpu;
    let agreement = |rm: &oxrl::reward_model::RewardModel, users: &[usize]| -> Result<f64> {
        let mut ok = 0usize;
        let mut n = 0usize;
        for &u in users {
            let pairs = oxrl::reward_model::load_rankings(&user_file(u)?, &rm.policy)?;
            for p in &pairs {
                let r = rm.rewards(&[p.prompt.clone(), p.prompt.clone()], &p.ranked)?;
                ok += (r[0] > r[1]) as usize;
                n += 1;
            }
        }
        Ok(ok as f64 / n as f64)
    };
    for (who, same, other) in [(0usize, [2usize, 4, 6], [1usize, 3, 5]), (1, [3, 5, 7], [2, 4, 6])] {
        let rm = oxrl::reward_model::RewardModel::load_for(&o.run_dir, Some(&user_file(who)?), &dev)?;
        let (a, b) = (agreement(&rm, &same)?, agreement(&rm, &other)?);
        eprintln!("reward personalised to u{who}: agrees with its type {a:.2}, with the other {b:.2}");
        assert!(a > 0.8 && b < 0.2, "{a} / {b}");
    }
    let e = oxrl::reward_model::RewardModel::load(&o.run_dir, &dev).err().unwrap();
    assert!(format!("{e:#}").contains("reward_model_user"), "{e:#}");
    let ranked = d.path().join("ranked-user.jsonl");
    std::fs::write(&ranked, "{\"prompt\": \"pick\", \"ranked\": [\"9\", \"5\", \"1\"]}\n")?;
    let e = oxrl::reward_model::RewardModel::load_for(&o.run_dir, Some(&ranked), &dev).err().unwrap();
    assert!(format!("{e:#}").contains("ranking"), "{e:#}");
    // `oxrl train` with the personalised reward
    let tcfg = RunConfig::load_str(
        "vpl train",
        "name = \"vpl-train\"\n[model]\nhidden_size = 32\nintermediate_size = 64\nnum_hidden_layers = 2\n[task]\nname = \"addition\"\ndigits = 1\ntest_size = 4\n[train]\nsteps = 1\nprompts_per_step = 2\ngroup_size = 2\nmax_new_tokens = 4\n[eval]\nk = [1]\nmax_problems = 2\nmax_new_tokens = 4\n",
        &[
            format!("train.reward_model={}", o.run_dir.display()),
            format!("train.reward_model_user={}", user_file(0)?.display()),
        ],
    )?;
    let out = oxrl::train::run_train(&tcfg, Some(&d.path().join("train")), None, None, true)?;
    assert!(common::metrics(&out.run_dir).iter().any(|m| m["phase"] == "rl" && m["reward_mean"].is_number()));
    // pairs without a user are refused by record
    std::fs::write(&path, "{\"prompt\": \"pick\", \"chosen\": \"1\", \"rejected\": \"2\"}\n")?;
    let e = oxrl::reward_model::run_rm(&cfg, Some(&d.path().join("vpl2")), true).err().unwrap();
    assert!(format!("{e:#}").contains("`user`"), "{e:#}");
    Ok(())
}
