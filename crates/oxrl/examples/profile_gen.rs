//! Generation loop for profiling (`perf record target/release/examples/profile_gen 64`): the notes
//! model sampling 64 new tokens for a batch of 8-token prompts, repeated.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use candle_core::DType;
use oxrl_lm::sampler::{generate, SamplingParams};
use oxrl_lm::{ParamStore, Transformer};
use std::time::Instant;
fn main() -> anyhow::Result<()> {
    oxrl::runtime::configure(None)?;
    let cfg = oxrl::bench::notes_model();
    let model = Transformer::new(cfg.clone(), ParamStore::init(&cfg, 0, DType::F32, &candle_core::Device::Cpu)?)?;
    let b: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(64);
    let reps: usize = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(5);
    let prompts: Vec<Vec<u32>> = (0..b).map(|i| (0..8).map(|j| 4 + ((i * 7 + j * 3) as u32 % 60)).collect()).collect();
    let params =
        SamplingParams { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.0, max_new_tokens: 64, stop_tokens: vec![] };
    let mut rng = oxrl_core::seed::rng(0, "bench", 0);
    if std::env::var("PACK_TIME").is_ok() {
        let t = Instant::now();
        for _ in 0..20 {
            std::hint::black_box(oxrl_lm::decode::PackedModel::new(&model)?);
        }
        println!("packing: {:.2} ms", t.elapsed().as_secs_f64() * 1e3 / 20.0);
    }
    for _ in 0..reps {
        let t = Instant::now();
        generate(&model, &prompts, &params, 0, &mut rng)?;
        let s = t.elapsed().as_secs_f64();
        println!("batch {b}: {:.0} tokens/s ({:.2} ms per decode step)", (b * 64) as f64 / s, s * 1e3 / 64.0);
    }
    Ok(())
}
