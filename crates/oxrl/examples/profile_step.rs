#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use candle_core::DType;
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_lm::scorer::{score, ScoreOptions};
use oxrl_lm::{ParamStore, Transformer};
use std::time::Instant;
fn main() -> anyhow::Result<()> {
    oxrl::runtime::configure(None)?;
    let cfg = oxrl::bench::notes_model();
    let dev = candle_core::Device::Cpu;
    let mut model = Transformer::new(cfg.clone(), ParamStore::init(&cfg, 0, DType::F32, &dev)?)?;
    model.fused = std::env::var("COMPOSED").is_err();
    let vocab = cfg.vocab_size as u32;
    let (b, t) = (16usize, 128usize);
    let prompts: Vec<Vec<u32>> = (0..b).map(|i| vec![1 + (i as u32 % 3)]).collect();
    let responses: Vec<Vec<u32>> =
        (0..b).map(|i| (0..t - 1).map(|j| 4 + ((i * 13 + j * 5) as u32 % (vocab - 4))).collect()).collect();
    let mut opt = AdamW::new(model.params.named_vars(), AdamWConfig::default())?;
    let n: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(10);
    for i in 0..n {
        let t0 = Instant::now();
        let s = score(&model, &prompts, &responses, 0, ScoreOptions { grad: true, ..Default::default() })?;
        let loss = (s.logp.sum_all()? / -((b * (t - 1)) as f64))?;
        let t1 = Instant::now();
        let g = loss.backward()?;
        let t2 = Instant::now();
        opt.step(&g, 1e-4, 1.0)?;
        let t3 = Instant::now();
        println!(
            "{i}: fwd {:.0} ms bwd {:.0} ms opt {:.0} ms",
            (t1 - t0).as_secs_f64() * 1e3,
            (t2 - t1).as_secs_f64() * 1e3,
            (t3 - t2).as_secs_f64() * 1e3
        );
    }
    Ok(())
}
