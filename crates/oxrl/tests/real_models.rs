//! Real-model workflows: a Hugging Face directory post-trained with LoRA (chat template, Parquet
//! chat data, SFT warm-up, KL to the adapter-free base, gradient checkpointing, micro-batches),
//! saved merged and adapter-only, resumed exactly; `oxrl generate`; micro-batch accumulation
//! equals the whole-batch update.

mod common;

use anyhow::Result;
use common::{bandit_config, metrics, run_bandit};
use oxrl::config::RunConfig;
use oxrl::train::run_train;
use std::path::{Path, PathBuf};
use std::process::Command;

fn oxrl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_oxrl"))
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// The Qwen2 fixture of oxrl-lm (weights from transformers) with a longer context, copied to `dir`.
fn qwen2_model(dir: &Path) -> Result<PathBuf> {
    let src = repo("oxrl-lm/tests/fixtures/hf/qwen2");
    let out = dir.join("qwen2-base");
    std::fs::create_dir_all(&out)?;
    for e in std::fs::read_dir(&src)? {
        let e = e?;
        std::fs::copy(e.path(), out.join(e.file_name()))?;
    }
    let cfg = std::fs::read_to_string(out.join("config.json"))?;
    std::fs::write(
        out.join("config.json"),
        cfg.replace("\"max_position_embeddings\": 64", "\"max_position_embeddings\": 256"),
    )?;
    Ok(out)
}

fn lora_config(model: &Path, name: &str) -> Result<RunConfig> {
    let text = format!(
        r#"
name = "{name}"
seed = 2
[model]
path = "{model}"
chat = true
gradient_checkpointing = true
[model.lora]
rank = 4
alpha = 8.0
target_modules = ["q_proj", "v_proj", "up_proj", "down_proj"]
[task]
name = "dataset"
train = "{data}"
messages_field = "messages"
test_fraction = 0.34
max_completion_chars = 12
[sft]
steps = 12
batch_size = 4
micro_batches = 2
lr = 0.02
warmup_steps = 0
[train]
sft_warmup = true
steps = 4
prompts_per_step = 2
group_size = 4
max_new_tokens = 10
kl_coef = 0.05
entropy_coef = 0.01
micro_batches = 2
checkpoint_every = 2
lr = 0.005
warmup_steps = 0
[eval]
k = [1]
max_problems = 2
max_new_tokens = 10
"#,
        model = model.display(),
        data = repo("oxrl-tasks/tests/fixtures/chat.parquet").display(),
    );
    let path = model.parent().unwrap().join(format!("{name}.toml"));
    std::fs::write(&path, text)?;
    RunConfig::load(Some(&path), &[])
}

fn weight(dir: &Path, name: &str) -> Result<Vec<f32>> {
    let l = oxrl_lm::checkpoint::load(dir, &candle_core::Device::Cpu)?;
    Ok(l.model.params.tensor(name)?.flatten_all()?.to_vec1::<f32>()?)
}

#[test]
fn lora_post_training_of_a_hf_checkpoint_saves_merged_and_adapter_and_resumes_exactly() -> Result<()> {
    let d = tempfile::tempdir()?;
    let base = qwen2_model(d.path())?;
    let base_bytes = std::fs::read(base.join("model.safetensors"))?;
    let cfg = lora_config(&base, "lora")?;
    let out = run_train(&cfg, Some(&d.path().join("run")), None, None, true)?;
    let run = out.run_dir;
    let m = metrics(&run);
    let rl: Vec<&serde_json::Value> = m.iter().filter(|v| v["phase"] == "rl" && v.get("kl_ref").is_some()).collect();
    assert_eq!(rl.len(), 4);
    assert!(rl.iter().all(|v| v["nan_skipped"] == 0 && v["grad_norm"].as_f64().unwrap() > 0.0), "{rl:?}");
    assert!(rl[3]["kl_ref"].as_f64().unwrap() > 0.0, "the adapters moved the policy away from the base");
    let sft: Vec<f64> = m
        .iter()
        .filter(|v| v["phase"] == "sft" && v.get("loss").is_some())
        .map(|v| v["loss"].as_f64().unwrap())
        .collect();
    assert!(sft.last().unwrap() < &(0.7 * sft[0]), "LoRA SFT through the chat template should learn: {sft:?}");
    assert_eq!(std::fs::read(base.join("model.safetensors"))?, base_bytes, "the base model was modified");

    // Resumable checkpoints hold only the adapters; the final one is merged, with the adapters beside.
    let step2 = run.join("checkpoints/step-2");
    assert!(step2.join("adapter_model.safetensors").exists() && !step2.join("model.safetensors").exists());
    let fin = run.join("checkpoints/final");
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
    ] {
        assert!(fin.join(f).exists(), "{f}");
    }
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fin.join("oxrl.json"))?)?;
    assert_eq!(manifest["chat"], true);
    let q = "model.layers.0.self_attn.q_proj.weight";
    let k = "model.layers.0.self_attn.k_proj.weight";
    assert_ne!(weight(&fin, q)?, weight(&base, q)?, "merged q_proj equals the base");
    assert_eq!(weight(&fin, k)?, weight(&base, k)?, "k_proj has no adapter and must be unchanged");

    // Adapter-only directory (PEFT layout, base found by path) = the merged model.
    let prompt = "What is 4 * 3?";
    let gen = |model: &Path| -> serde_json::Value {
        let o = oxrl()
            .args(["--quiet", "generate", "--model"])
            .arg(model)
            .args(["--prompt", prompt, "--max-new-tokens", "10", "--json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let merged = gen(&fin);
    assert!(merged["text"].is_string() && merged["token_ids"].as_array().is_some_and(|a| !a.is_empty()), "{merged}");
    let adapter = oxrl_lm::checkpoint::load(&fin.join("adapter"), &candle_core::Device::Cpu)?;
    assert!(adapter.model.lora.is_some());
    let merged_model = oxrl_lm::checkpoint::load(&fin, &candle_core::Device::Cpu)?;
    let ids = [3u32, 20, 30, 40, 50, 60];
    let logits = |m: &oxrl_lm::Transformer| -> Result<Vec<f32>> {
        let valid = vec![vec![true; ids.len()]];
        let dev = candle_core::Device::Cpu;
        let h = m.forward_hidden(
            &candle_core::Tensor::new(&ids[..], &dev)?.unsqueeze(0)?,
            &candle_core::Tensor::new(&oxrl_lm::model::positions(&valid)[0][..], &dev)?.unsqueeze(0)?,
            &oxrl_lm::model::attention_bias(&valid, ids.len(), &dev, m.dtype())?,
            None,
            oxrl_lm::model::Mode::Infer,
        )?;
        Ok(m.logits(&h)?.flatten_all()?.to_vec1::<f32>()?)
    };
    let (a, b) = (logits(&adapter.model)?, logits(&merged_model.model)?);
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-4, "adapter-only and merged checkpoints differ by {worst}");

    // `oxrl eval` on the run with a dataset task (the data file given with --set).
    let o = oxrl()
        .args(["--quiet", "eval", "--checkpoint"])
        .arg(&run)
        .args(["--task", "dataset", "--k", "1", "--json"])
        .arg("--set")
        .arg(format!("task.train={}", repo("oxrl-tasks/tests/fixtures/chat.parquet").display()))
        .args(["--set", "task.messages_field=messages", "--set", "eval.max_new_tokens=8"])
        .output()?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let e: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert!(e["accuracy"].is_number() && e["num_problems"].as_u64() > Some(0), "{e}");
    // The run's checkpoint remembers its data; a plain HF directory needs the file named.
    let o = oxrl().args(["eval", "--checkpoint"]).arg(&base).args(["--task", "dataset"]).output()?;
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("task.train="));

    // Killed after step 2 and resumed from the adapter-only checkpoint: identical metrics.
    let k = d.path().join("killed");
    run_train(&cfg, Some(&k), None, Some(2), true)?;
    run_train(&cfg, None, Some(&k), None, true)?;
    assert_eq!(m, metrics(&k), "resumed LoRA run must match the uninterrupted one");
    Ok(())
}

#[test]
fn generate_reproduces_transformers_greedy_and_reports_json() -> Result<()> {
    let fx = repo("oxrl-lm/tests/fixtures/hf/qwen2");
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fx.join("reference.json"))?)?;
    let o = oxrl()
        .args(["generate", "--model"])
        .arg(&fx)
        .args(["--prompt", "7*8=", "--max-new-tokens", "12", "--temperature", "0", "--json"])
        .output()?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let g: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(g["token_ids"], r["greedy_ids"]);
    assert_eq!(g["finish_reason"], "length");
    assert!(g["text"].as_str().unwrap().len() == 12);
    // --chat renders the template: a longer prompt; a seeded sample is reproducible.
    let run = |extra: &[&str]| -> serde_json::Value {
        let o = oxrl()
            .args(["generate", "--model"])
            .arg(&fx)
            .args(["--prompt", "hi", "--max-new-tokens", "6", "--json"])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let c = run(&["--chat", "--temperature", "1", "--seed", "5"]);
    assert!(c["prompt_tokens"].as_u64().unwrap() > 20, "{c}");
    assert_eq!(c, run(&["--chat", "--temperature", "1", "--seed", "5"]));
    // RLG guidance (Qwen3 fixture as the base, same vocabulary): w = 1 is the model itself, w = 0
    // the base; a sampled mix at w = 0.5 is reproducible.
    let q3 = repo("oxrl-lm/tests/fixtures/hf/qwen3");
    let greedy = |model: &Path, extra: &[&str]| -> serde_json::Value {
        let o = oxrl()
            .args(["generate", "--model"])
            .arg(model)
            .args(["--prompt", "7*8=", "--max-new-tokens", "12", "--json"])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let q3s = q3.to_str().unwrap();
    assert_eq!(greedy(&fx, &["--guide", q3s, "--guide-weight", "1"])["token_ids"], r["greedy_ids"]);
    assert_eq!(greedy(&fx, &["--guide", q3s, "--guide-weight", "0"])["token_ids"], greedy(&q3, &[])["token_ids"]);
    let mix = ["--guide", q3s, "--guide-weight", "0.5", "--temperature", "1", "--seed", "2"];
    assert_eq!(greedy(&fx, &mix), greedy(&fx, &mix));
    // A directory that is not a model names what is missing.
    let d = tempfile::tempdir()?;
    let o = oxrl().args(["generate", "--model"]).arg(d.path()).args(["--prompt", "x"]).output()?;
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("config.json"));
    Ok(())
}

#[test]
fn micro_batches_accumulate_to_the_whole_minibatch_update() -> Result<()> {
    for (agg, objective) in [("token-mean", "ppo"), ("seq-mean-token-mean", "ppo"), ("token-mean", "pacs")] {
        let mut a = bandit_config("grpo");
        a.train.loss_agg = serde_json::from_value(serde_json::json!(agg))?;
        a.train.objective = objective.into();
        a.train.max_new_tokens = 3;
        let mut b = a.clone();
        b.train.micro_batches = 3;
        let (ma, mb) = (run_bandit(&a, 1, 0.01)?, run_bandit(&b, 1, 0.01)?);
        let (ga, gb) = (ma[0]["grad_norm"].as_f64().unwrap(), mb[0]["grad_norm"].as_f64().unwrap());
        assert!(ga > 0.0);
        assert!((ga - gb).abs() < 1e-4 * ga, "{agg}/{objective}: grad norm {ga} vs {gb} with 3 micro-batches");
    }
    Ok(())
}

#[test]
fn the_hf_lora_example_runs_on_a_hf_directory() -> Result<()> {
    let d = tempfile::tempdir()?;
    let base = qwen2_model(d.path())?;
    let sets: Vec<String> = [
        format!("model.path={}", base.display()),
        format!("task.train={}", repo("oxrl-tasks/tests/fixtures/chat.parquet").display()),
        "sft.steps=2".into(),
        "train.steps=1".into(),
        "train.prompts_per_step=1".into(),
        "train.group_size=2".into(),
        "train.micro_batches=1".into(),
        "train.max_new_tokens=4".into(),
        "eval.max_problems=1".into(),
        "eval.max_new_tokens=4".into(),
    ]
    .into();
    let cfg = RunConfig::load(Some(&repo("../examples/hf-lora.toml")), &sets)?;
    assert!(cfg.model.lora.is_some() && cfg.model.chat);
    let out = run_train(&cfg, Some(&d.path().join("run")), None, None, true)?;
    let fin = out.run_dir.join("checkpoints/final");
    let c: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fin.join("config.json"))?)?;
    assert_eq!(c["torch_dtype"], "bfloat16", "save_dtype = bf16");
    let tc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fin.join("tokenizer_config.json"))?)?;
    assert!(tc["chat_template"].is_string());
    // The merged bf16 checkpoint loads back and generates through its template.
    let l = oxrl_lm::checkpoint::load(&fin, &candle_core::Device::Cpu)?;
    assert!(l.tokenizer.chat().is_some() && l.manifest.system_prompt.is_some());
    Ok(())
}

#[test]
fn an_lm_judge_from_a_checkpoint_is_order_consistent_and_drives_arena_rl() -> Result<()> {
    use oxrl::judge::Judge;
    let d = tempfile::tempdir()?;
    let judge_dir = qwen2_model(d.path())?;
    let j = oxrl::judge::LmJudge::load(&judge_dir)?;
    let p = oxrl_tasks::Problem {
        id: 0,
        prompt: "What is 2+2?".into(),
        answer: "4".into(),
        solution: "answer: 4".into(),
        meta: serde_json::Value::Null,
    };
    let (ab, ba) = (j.compare(&p, "answer: 4", "answer: 5")?, j.compare(&p, "answer: 5", "answer: 4")?);
    assert!((0.0..=1.0).contains(&ab) && (ab + ba - 1.0).abs() < 1e-9, "{ab} + {ba}");
    assert!((ab - 0.5).abs() > 1e-6, "a random judge model still prefers one side: {ab}");
    // ArenaRL with the LM judge through the trainer (built-in policy, judge from the directory).
    let mut cfg = RunConfig::load_str(
        "arena.toml",
        "[task]\nname = \"addition\"\ndigits = 1\ntest_size = 4\n[train]\nadvantage = \"arena\"\nsteps = 2\nprompts_per_step = 2\ngroup_size = 3\nmax_new_tokens = 6\n[eval]\nk = [1]\nmax_new_tokens = 6\n",
        &[],
    )?;
    cfg.model.hidden_size = 32;
    cfg.model.intermediate_size = 64;
    cfg.model.num_hidden_layers = 1;
    cfg.train.arena_judge = judge_dir.display().to_string();
    cfg.validate()?;
    let out = run_train(&cfg, Some(&d.path().join("arena")), None, None, true)?;
    let m = metrics(&out.run_dir);
    let steps: Vec<&serde_json::Value> = m.iter().filter(|v| v.get("arena_judge_calls").is_some()).collect();
    assert_eq!(steps.len(), 2);
    assert!(steps.iter().all(|v| v["arena_judge_calls"].as_f64().unwrap() <= 6.0));
    // ExpRL's checkpoint grades from the same judge: P("A" = met) per reference checkpoint, and
    // an `oxrl train` step whose rubric reward it gives.
    let cps = oxrl::judge::checkpoints(&p, 0.0)?;
    let g = j.grade(&p, &cps, "answer: 4")?;
    assert_eq!(g.len(), 1);
    assert!(g[0].score > 0.0 && g[0].score < 1.0 && (g[0].score - 0.5).abs() > 1e-6 && g[0].at.is_none(), "{g:?}");
    cfg.train.advantage = "grpo".into();
    cfg.train.exprl = "outcome".into();
    cfg.train.steps = 1;
    cfg.validate()?;
    let out = run_train(&cfg, Some(&d.path().join("exprl")), None, None, true)?;
    let m = metrics(&out.run_dir);
    let step = m.iter().find(|v| v.get("exprl_reward").is_some()).expect("an ExpRL step");
    assert_eq!(step["exprl_judge_failures"], 0);
    let r = step["exprl_reward"].as_f64().unwrap();
    assert!(r > 0.0 && r < 1.0, "soft LM-judge grades: {r}");
    Ok(())
}
