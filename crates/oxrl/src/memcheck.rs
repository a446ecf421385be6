//! Memory check for real-model training: write a random Qwen2-shaped checkpoint in Hugging Face
//! layout (bf16, sharded), then run a few LoRA RL steps on it through the normal trainer
//! (gradient checkpointing, micro-batches, KL to the base view) and report the process's peak
//! resident memory and step time. `cargo run --release --example lora_memory -- --shape 0.5b`
//! runs the Qwen2.5-0.5B shape; the CI test runs a smaller one and bounds its peak.

use crate::config::RunConfig;
use anyhow::{Context, Result};
use candle_core::{DType, Device};
use oxrl_lm::checkpoint::SaveOptions;
use oxrl_lm::{CharTokenizer, ModelConfig, ParamStore, Transformer};
use serde::Serialize;
use std::path::Path;

/// Qwen2.5-0.5B's shape (494 M parameters, 151 936-token vocabulary, tied embeddings).
pub fn qwen2_5_0_5b() -> ModelConfig {
    let mut c = ModelConfig::family("qwen2", 151936).expect("qwen2 is supported");
    c.hidden_size = 896;
    c.intermediate_size = 4864;
    c.num_hidden_layers = 24;
    c.num_attention_heads = 14;
    c.num_key_value_heads = Some(2);
    c.max_position_embeddings = 32768;
    c.rope_theta = 1_000_000.0;
    c.tie_word_embeddings = true;
    c
}

/// A smaller shape with the same vocabulary (the logits dominate activation memory) for CI.
pub fn qwen2_small() -> ModelConfig {
    let mut c = qwen2_5_0_5b();
    c.hidden_size = 128;
    c.intermediate_size = 384;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 4;
    c.num_key_value_heads = Some(2);
    c
}

/// Write a seeded random model of `cfg` (bf16, sharded at 256 MiB) with the built-in char
/// tokenizer in Hugging Face form.
pub fn write_random_model(dir: &Path, cfg: &ModelConfig, seed: u64) -> Result<()> {
    let params = ParamStore::init(cfg, seed, DType::BF16, &Device::Cpu)?;
    let model = Transformer::new(cfg.clone(), params)?;
    let tok = CharTokenizer::new();
    let opts = SaveOptions { dtype: Some(DType::BF16), max_shard_bytes: 256 << 20, merge_lora: true };
    oxrl_lm::checkpoint::save_with(dir, &model, &tok, serde_json::json!({}), &opts, |tmp| {
        // Present it as a plain Hugging Face directory: the tokenizer is read from tokenizer.json.
        std::fs::remove_file(tmp.join("oxrl.json"))?;
        Ok(())
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct MemReport {
    pub params: usize,
    pub trainable_params: usize,
    pub steps: u64,
    /// Peak resident set size of the process (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// Mean seconds per RL step (after the first).
    pub step_s: f64,
    pub rollout_s: f64,
    pub update_s: f64,
    pub tokens_per_step: f64,
}

/// Reset the peak-RSS counter (Linux `clear_refs` 5), so a later [`peak_rss_mib`] measures only
/// what follows. Best effort: elsewhere the peak keeps counting from process start.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory of this process in MiB (Linux; 0 elsewhere).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Run `steps` LoRA RL steps on the model in `model_dir`, with work files in `work`.
pub fn lora_rl(model_dir: &Path, work: &Path, steps: u64, quiet: bool) -> Result<MemReport> {
    let data = work.join("arith.jsonl");
    let lines: Vec<String> =
        (0..64).map(|i| format!("{{\"prompt\": \"What is {} + {}?\", \"answer\": {}}}", i, i % 7, i + i % 7)).collect();
    std::fs::write(&data, lines.join("\n"))?;
    let text = format!(
        r#"
name = "lora-memory"
[model]
path = "{model}"
gradient_checkpointing = true
[model.lora]
rank = 16
alpha = 32.0
[task]
name = "dataset"
train = "{data}"
test_fraction = 0.05
max_completion_chars = 24
[train]
steps = {steps}
prompts_per_step = 2
group_size = 4
max_new_tokens = 24
micro_batches = 2
kl_coef = 0.01
entropy_coef = 0.001
lr = 1e-4
warmup_steps = 0
[eval]
k = [1]
max_problems = 1
max_new_tokens = 4
"#,
        model = model_dir.display(),
        data = data.display(),
    );
    let cfg = RunConfig::load_str("lora-memory.toml", &text, &[])?;
    reset_peak_rss();
    let out = crate::train::run_train(&cfg, Some(&work.join("run")), None, None, quiet)?;
    let metrics = std::fs::read_to_string(out.run_dir.join("metrics.jsonl"))?;
    let rows: Vec<serde_json::Value> = metrics
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v.get("step_s").is_some())
        .collect();
    let later: Vec<&serde_json::Value> = rows.iter().skip(1).collect();
    let use_rows: Vec<&serde_json::Value> = if later.is_empty() { rows.iter().collect() } else { later };
    let mean = |k: &str| use_rows.iter().filter_map(|v| v[k].as_f64()).sum::<f64>() / use_rows.len().max(1) as f64;
    let mcfg = ModelConfig::load(&model_dir.join("config.json"))?;
    let lora = cfg.model.lora.as_ref().context("the memory check trains LoRA adapters")?;
    Ok(MemReport {
        params: mcfg.num_params(),
        trainable_params: lora.num_params(&mcfg)?,
        steps,
        peak_rss_mib: peak_rss_mib(),
        step_s: mean("step_s"),
        rollout_s: mean("time_rollout_s"),
        update_s: mean("time_update_s"),
        tokens_per_step: mean("response_length") * 8.0,
    })
}
