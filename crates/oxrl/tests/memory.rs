//! Bounded memory of LoRA RL on a Qwen2-shaped checkpoint with the real 151 936-token vocabulary
//! (a smaller body than Qwen2.5-0.5B; `cargo run --release --example lora_memory` runs the full
//! shape). Alone in its test binary so the process's peak RSS is this run's.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[test]
fn lora_rl_on_a_large_vocabulary_checkpoint_runs_in_bounded_memory() -> anyhow::Result<()> {
    let d = tempfile::tempdir()?;
    let cfg = oxrl::memcheck::qwen2_small();
    let model = d.path().join("model");
    oxrl::memcheck::write_random_model(&model, &cfg, 0)?;
    let index = std::fs::read_to_string(model.join("model.safetensors.index.json"));
    let work = d.path().join("work");
    std::fs::create_dir_all(&work)?;
    let r = oxrl::memcheck::lora_rl(&model, &work, 2, true)?;
    eprintln!("{r:?} (sharded: {})", index.is_ok());
    assert!(r.trainable_params > 0 && r.trainable_params * 50 < r.params, "{r:?}");
    // Budget: f32 weights (held once: the KL reference is the base itself, not a copy) plus the
    // bf16 file being converted, plus the largest activations — logits and their gradient for
    // the 8 × ~40-token batch over 151 936 tokens — with generous slack. Full fine-tuning with a
    // copied reference and AdamW state would need ≥ 4× the weights.
    let weights_mib = (r.params * 4) as f64 / (1 << 20) as f64;
    let logits_mib = (8 * 48 * cfg.vocab_size * 4) as f64 / (1 << 20) as f64;
    let budget = 2.0 * weights_mib + 3.0 * logits_mib + 300.0;
    assert!(r.peak_rss_mib > weights_mib, "peak RSS {} MiB below the weights ({weights_mib} MiB)?", r.peak_rss_mib);
    assert!(r.peak_rss_mib < budget, "peak RSS {:.0} MiB over the budget {budget:.0} MiB", r.peak_rss_mib);
    Ok(())
}
