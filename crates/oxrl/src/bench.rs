//! `oxrl bench`: this machine's f32 GEMM peak, then generation and training throughput of a model,
//! and training MFU against the measured peak.
//!
//! Training FLOPs per token are 3× the forward FLOPs (forward + backward), with the forward counted
//! as 2·(all projection and LM-head multiply-adds) + 4·layers·heads·head_dim·T for attention over
//! the full T×T score matrix (the PaLM convention; our kernels compute the masked half too).

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_lm::sampler::{generate, SamplingParams};
use oxrl_lm::scorer::{score, ScoreOptions};
use oxrl_lm::{ModelConfig, ParamStore, Transformer};
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub params: usize,
    pub threads: usize,
    /// "cpu" or "cuda".
    pub device: String,
    pub gemm_gflops: f64,
    pub gen_tokens_per_s_b1: f64,
    pub gen_tokens_per_s_b64: f64,
    /// Batch-64 decoding's FLOP rate as a share of the measured GEMM peak (forward FLOPs per token
    /// at the mean context, 8 prompt + 32 generated tokens): how far any decoder can still speed up
    /// at this batch on this device.
    pub gen_b64_mfu: f64,
    /// Seconds for 64 prompts × 8 samples × 64 new tokens in one batch.
    pub rollout_512x64_s: f64,
    pub train_tokens_per_s: f64,
    pub train_step_s: f64,
    pub train_mfu: f64,
    /// The same step on the composed candle ops (the fused kernels switched off).
    pub train_step_composed_s: f64,
    /// `train_step_composed_s / train_step_s`.
    pub fused_speedup: f64,
}

/// The PyTorch eager reference (`bench/torch_reference.py`) measured on this machine.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TorchReport {
    pub torch_version: String,
    /// "cpu" or "cuda" (absent from older reference scripts: CPU).
    #[serde(default = "cpu")]
    pub device: String,
    pub threads: usize,
    pub params: usize,
    pub train_step_s: f64,
    pub train_tokens_per_s: f64,
    pub gen_tokens_per_s_b1: f64,
    pub gen_tokens_per_s_b64: f64,
}

fn cpu() -> String {
    "cpu".into()
}

/// oxrl vs PyTorch eager on the notes model: ratios > 1 mean oxrl is faster.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub oxrl: BenchReport,
    pub torch: TorchReport,
    pub train_speedup: f64,
    pub gen_b1_speedup: f64,
    pub gen_b64_speedup: f64,
    /// PyTorch's training MFU against the same measured GEMM peak.
    pub torch_train_mfu: f64,
}

/// The reference script, embedded so `--compare-torch` works from any directory.
const TORCH_REFERENCE: &str = include_str!("../../../bench/torch_reference.py");

/// Run `python bench/torch_reference.py` with this process's thread count and parse its JSON.
pub fn run_torch_reference(python: &str, threads: usize, device: &str, quick: bool) -> Result<TorchReport> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("torch_reference.py");
    std::fs::write(&script, TORCH_REFERENCE)?;
    let mut cmd = std::process::Command::new(python);
    cmd.arg(&script).arg("--threads").arg(threads.to_string()).arg("--device").arg(device);
    if quick {
        cmd.arg("--quick");
    }
    let out = cmd.output().map_err(|e| anyhow::anyhow!("--compare-torch: cannot run `{python}`: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "--compare-torch: `{python} torch_reference.py` failed ({}); is torch installed (pip install torch numpy)?\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).lines().rev().take(5).collect::<Vec<_>>().join("\n")
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or("");
    serde_json::from_str(line).map_err(|e| anyhow::anyhow!("--compare-torch: unreadable output `{line}`: {e}"))
}

/// Both benchmarks in one run, oxrl first, then PyTorch, on the same threads and device.
pub fn compare_torch(python: &str, quick: bool) -> Result<Comparison> {
    let oxrl = run_bench("notes", notes_model(), quick)?;
    let torch = run_torch_reference(python, oxrl.threads, &oxrl.device, quick)?;
    let flops = 3.0 * notes_model().forward_flops_per_token(128);
    Ok(Comparison {
        train_speedup: torch.train_step_s / oxrl.train_step_s,
        gen_b1_speedup: oxrl.gen_tokens_per_s_b1 / torch.gen_tokens_per_s_b1,
        gen_b64_speedup: oxrl.gen_tokens_per_s_b64 / torch.gen_tokens_per_s_b64,
        torch_train_mfu: flops * torch.train_tokens_per_s / (oxrl.gemm_gflops * 1e9),
        oxrl,
        torch,
    })
}

impl Comparison {
    pub fn table(&self) -> String {
        format!(
            "{}\nPyTorch {} eager, {} threads\n\
             training step         {:.0} ms (MFU {:.1}%)   oxrl is {:.2}x\n\
             generation, batch 1   {:.0} tokens/s   oxrl is {:.2}x\n\
             generation, batch 64  {:.0} tokens/s ({:.1}% of the GEMM peak)   oxrl is {:.2}x\n",
            self.oxrl.table(),
            self.torch.torch_version,
            self.torch.threads,
            self.torch.train_step_s * 1e3,
            100.0 * self.torch_train_mfu,
            self.train_speedup,
            self.torch.gen_tokens_per_s_b1,
            self.gen_b1_speedup,
            self.torch.gen_tokens_per_s_b64,
            100.0 * self.oxrl.gen_b64_mfu / self.gen_b64_speedup,
            self.gen_b64_speedup,
        )
    }
}

/// The model of shared/notes/candle.md's PyTorch reference: vocab 64, d 256, 4 layers, 4 heads,
/// MLP parameters of a 4× GELU MLP (SwiGLU with intermediate 683), 3.18 M parameters.
pub fn notes_model() -> ModelConfig {
    let mut c = ModelConfig::tiny(64);
    c.hidden_size = 256;
    c.intermediate_size = 683;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 4;
    c.num_key_value_heads = Some(4);
    c.model_type = "llama".into();
    c
}

fn best_of<F: FnMut() -> Result<()>>(reps: usize, mut f: F) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn median_of<F: FnMut() -> Result<()>>(reps: usize, mut f: F) -> Result<f64> {
    let mut v = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64());
    }
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

/// f32 GEMM GFLOP/s at n×n×n on `dev` (best of several runs; GPU work is waited for).
pub fn gemm_gflops(dev: &Device, n: usize, reps: usize) -> Result<f64> {
    let a = Tensor::from_vec((0..n * n).map(|i| ((i % 97) as f32) * 0.01).collect::<Vec<_>>(), (n, n), dev)?;
    let b = Tensor::from_vec((0..n * n).map(|i| ((i % 89) as f32) * 0.01).collect::<Vec<_>>(), (n, n), dev)?;
    a.matmul(&b)?; // warm-up
    dev.synchronize()?;
    let t = best_of(reps, || {
        a.matmul(&b)?;
        dev.synchronize()?;
        Ok(())
    })?;
    Ok(2.0 * (n as f64).powi(3) / t / 1e9)
}

pub fn run_bench(name: &str, cfg: ModelConfig, quick: bool) -> Result<BenchReport> {
    let dev = oxrl_lm::default_device();
    let threads = candle_core::utils::get_num_threads();
    // The peak the MFU is measured against, on the device the model runs on (a GPU needs larger
    // matrices than a CPU to reach it): the best of its measurements before and after the other
    // runs, so that a neighbour's load during one of them does not lower the limit (a shared
    // host measured 275-490 GFLOP/s for the same GEMM within minutes).
    let (gemm_n, gemm_reps) = (if dev.is_cpu() { 1024 } else { 8192 }, if quick { 3 } else { 10 });
    let gemm_before = gemm_gflops(&dev, gemm_n, gemm_reps)?;
    let params = ParamStore::init(&cfg, 0, DType::F32, &dev)?;
    let model = Transformer::new(cfg.clone(), params)?;
    let vocab = cfg.vocab_size as u32;
    let prompt = |i: usize| -> Vec<u32> { (0..8).map(|j| 4 + ((i * 7 + j * 3) as u32 % (vocab - 4))).collect() };
    let new_tokens = 64;
    let params_gen = SamplingParams {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        max_new_tokens: new_tokens,
        stop_tokens: vec![],
    };
    let mut rng = oxrl_core::seed::rng(0, "bench", 0);
    let gen = |b: usize, rng: &mut oxrl_core::seed::Rng| -> Result<()> {
        let prompts: Vec<Vec<u32>> = (0..b).map(prompt).collect();
        generate(&model, &prompts, &params_gen, 0, rng)?;
        Ok(())
    };
    gen(1, &mut rng)?;
    let t1 = median_of(if quick { 2 } else { 5 }, || gen(1, &mut rng))?;
    let t64 = median_of(if quick { 1 } else { 3 }, || gen(64, &mut rng))?;
    if !quick {
        // The first 512-row call first-touches its memory (KV cache and activations; measured
        // 27 % slower than the calls after it); RL steps after the first reuse that memory.
        gen(512, &mut rng)?;
    }
    let t512 = median_of(1, || gen(512, &mut rng))?;

    // Training step: batch 16 × 128 tokens, forward + log-prob loss + backward + clip + AdamW.
    let (b, t) = (16usize, 128usize);
    let prompts: Vec<Vec<u32>> = (0..b).map(|i| vec![1 + (i as u32 % 3)]).collect();
    let responses: Vec<Vec<u32>> =
        (0..b).map(|i| (0..t - 1).map(|j| 4 + ((i * 13 + j * 5) as u32 % (vocab - 4))).collect()).collect();
    let mut model = model;
    let mut opt = AdamW::new(model.params.named_vars(), AdamWConfig::default())?;
    let mut step = |model: &Transformer| -> Result<()> {
        let s = score(model, &prompts, &responses, 0, ScoreOptions { grad: true, ..Default::default() })?;
        let loss = (s.logp.sum_all()? / -((b * (t - 1)) as f64))?;
        opt.step(&loss.backward()?, 1e-4, 1.0)?;
        dev.synchronize()?;
        Ok(())
    };
    // Warm-up: the allocator's arenas reach their steady size over the first steps (the first
    // measured ~20 % slower than the third); the machine is shared, so the median of several.
    for _ in 0..if quick { 1 } else { 3 } {
        step(&model)?;
    }
    let ts = median_of(if quick { 2 } else { 9 }, || step(&model))?;
    model.fused = false;
    step(&model)?;
    let ts_composed = median_of(if quick { 2 } else { 3 }, || step(&model))?;
    let gemm = gemm_before.max(gemm_gflops(&dev, gemm_n, gemm_reps)?);
    let train_tps = (b * t) as f64 / ts;
    let gen_b64 = (64 * new_tokens) as f64 / t64;
    let flops = 3.0 * cfg.forward_flops_per_token(t);
    Ok(BenchReport {
        model: name.to_string(),
        params: cfg.num_params(),
        threads,
        device: if dev.is_cpu() { "cpu".into() } else { "cuda".into() },
        gemm_gflops: gemm,
        gen_tokens_per_s_b1: new_tokens as f64 / t1,
        gen_tokens_per_s_b64: gen_b64,
        gen_b64_mfu: cfg.forward_flops_per_token(8 + new_tokens / 2) * gen_b64 / (gemm * 1e9),
        rollout_512x64_s: t512,
        train_tokens_per_s: train_tps,
        train_step_s: ts,
        train_mfu: flops * train_tps / (gemm * 1e9),
        train_step_composed_s: ts_composed,
        fused_speedup: ts_composed / ts,
    })
}

impl BenchReport {
    pub fn table(&self) -> String {
        format!(
            "model                 {} ({:.2} M params), {}, {} threads\n\
             f32 GEMM peak         {:.1} GFLOP/s (measured on the same device)\n\
             generation, batch 1   {:.0} tokens/s\n\
             generation, batch 64  {:.0} tokens/s ({:.1}% of the GEMM peak)\n\
             rollout 512×64 tokens {:.2} s\n\
             training (16×128)     {:.0} tokens/s, {:.0} ms/step\n\
             training MFU          {:.1}% of the measured GEMM peak\n\
             composed ops (no fused kernels) {:.0} ms/step: fused kernels are {:.2}x faster\n",
            self.model,
            self.params as f64 / 1e6,
            self.device,
            self.threads,
            self.gemm_gflops,
            self.gen_tokens_per_s_b1,
            self.gen_tokens_per_s_b64,
            100.0 * self.gen_b64_mfu,
            self.rollout_512x64_s,
            self.train_tokens_per_s,
            self.train_step_s * 1e3,
            100.0 * self.train_mfu,
            self.train_step_composed_s * 1e3,
            self.fused_speedup
        )
    }
}
