//! Peak memory and step time of LoRA RL on a random Qwen2-shaped checkpoint:
//! `cargo run --release --example lora_memory -- [--shape 0.5b|small] [--steps N] [--dir DIR]`.
//! Prints one JSON object (see `oxrl::memcheck::MemReport`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    oxrl::runtime::configure(None)?;
    let args: Vec<String> = std::env::args().collect();
    let arg = |k: &str| args.iter().position(|a| a == k).and_then(|i| args.get(i + 1)).cloned();
    let shape = arg("--shape").unwrap_or_else(|| "0.5b".into());
    let steps: u64 = arg("--steps").map(|s| s.parse()).transpose()?.unwrap_or(3);
    let cfg = match shape.as_str() {
        "0.5b" => oxrl::memcheck::qwen2_5_0_5b(),
        "small" => oxrl::memcheck::qwen2_small(),
        other => anyhow::bail!("--shape {other}: expected 0.5b or small"),
    };
    let tmp = tempfile::tempdir()?;
    let dir = arg("--dir").map(std::path::PathBuf::from).unwrap_or_else(|| tmp.path().to_path_buf());
    let model = dir.join("model");
    if !model.join("config.json").exists() {
        let t = std::time::Instant::now();
        oxrl::memcheck::write_random_model(&model, &cfg, 0)?;
        eprintln!("wrote {} ({:.1} s)", model.display(), t.elapsed().as_secs_f64());
    }
    let work = dir.join("work");
    std::fs::create_dir_all(&work)?;
    let r = oxrl::memcheck::lora_rl(&model, &work, steps, false)?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}
