//! Latent-reasoning mode: the sampler feeds continuous vectors back as inputs and records them;
//! the scorer replays them so teacher-forced log-probs reproduce the rollout (tokens and vMF
//! latent log-probs alike); HRPO's gated inputs start as the plain LM; checkpoints keep the module.

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use oxrl_lm::latent::{vmf_logp, LatentConfig, LatentModule, LatentNoise, StepKind};
use oxrl_lm::sampler::{generate, generate_latent, Completion, SamplingParams};
use oxrl_lm::scorer::{score, score_inputs, ResponseInputs, ScoreOptions};
use oxrl_lm::{ModelConfig, ParamStore, Transformer};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

fn model(seed: u64, latent: Option<LatentConfig>) -> Result<Transformer> {
    let mut c = ModelConfig::tiny(100);
    c.hidden_size = 32;
    c.intermediate_size = 48;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = Some(2);
    c.max_position_embeddings = 64;
    c.initializer_range = 0.2;
    let params = ParamStore::init(&c, seed, DType::F32, &Device::Cpu)?;
    let mut m = Transformer::new(c, params)?;
    if let Some(l) = latent {
        m.latent = Some(Arc::new(LatentModule::new(l, 32, DType::F32, &Device::Cpu)?));
    }
    Ok(m)
}

fn prompts() -> Vec<Vec<u32>> {
    vec![vec![1, 5, 9, 12], vec![1, 7], vec![1, 30, 31], vec![1, 8, 8, 8, 4]]
}

fn params() -> SamplingParams {
    SamplingParams { temperature: 0.8, top_k: 0, top_p: 1.0, min_p: 0.0, max_new_tokens: 9, stop_tokens: vec![2] }
}

/// Score the completions replaying their inputs; check token log-probs and entropies at Token
/// and Forced positions and the vMF latent log-prob (from the scorer's hidden states) at latent
/// positions against the sampler's record.
fn check_replay(m: &Transformer, outs: &[Completion]) -> Result<()> {
    let l = m.latent.as_ref().unwrap();
    let responses: Vec<Vec<u32>> = outs.iter().map(|c| c.tokens.clone()).collect();
    let inputs: Vec<ResponseInputs> = outs.iter().map(|c| c.inputs.as_slice()).collect();
    for grad in [false, true] {
        let opts = ScoreOptions { grad, temperature: 0.8, hidden: true, ..Default::default() };
        let s = score_inputs(m, &prompts(), &responses, Some(&inputs), 0, opts)?;
        let logp = s.logp.to_vec2::<f32>()?;
        let ent = s.entropy.to_vec2::<f32>()?;
        let h = s.hidden.as_ref().unwrap();
        for (i, c) in outs.iter().enumerate() {
            for j in 0..c.tokens.len() {
                if c.kind(j) == StepKind::Latent {
                    let mu = h.get(i)?.get(j)?;
                    let z = Tensor::new(c.inputs[j].as_deref().unwrap(), &Device::Cpu)?;
                    let lp = vmf_logp(&mu, &z, l.cfg.kappa, l.cfg.normalize)?.to_scalar::<f32>()?;
                    assert!((lp - c.logp[j]).abs() < 1e-4 * c.logp[j].abs().max(1.0), "row {i} latent {j}");
                } else {
                    assert!((logp[i][j] - c.logp[j]).abs() < 1e-4, "row {i} pos {j}: {} vs {}", logp[i][j], c.logp[j]);
                    assert!((ent[i][j] - c.entropy[j]).abs() < 1e-4);
                }
            }
        }
    }
    Ok(())
}

#[test]
fn coconut_prefix_segments_are_recorded_and_replayed() -> Result<()> {
    let cfg = LatentConfig { steps: 3, start: Some(40), end: Some(41), kappa: 0.5, ..Default::default() };
    let m = model(3, Some(cfg))?;
    let outs = generate(&m, &prompts(), &params(), 0, &mut ChaCha8Rng::seed_from_u64(7))?;
    for c in &outs {
        // <start>, three latents, <end>, then sampled tokens.
        let kinds: Vec<StepKind> = (0..c.tokens.len()).map(|j| c.kind(j)).collect();
        assert_eq!(
            &kinds[..5],
            &[StepKind::Forced, StepKind::Latent, StepKind::Latent, StepKind::Latent, StepKind::Forced]
        );
        assert!(kinds[5..].iter().all(|k| *k == StepKind::Token));
        assert_eq!((c.tokens[0], c.tokens[4]), (40, 41));
        assert!(c.inputs[1..4].iter().all(|v| v.as_ref().is_some_and(|v| v.len() == 32)));
        assert!(c.inputs[0].is_none() && c.inputs[4..].iter().all(|v| v.is_none()));
        assert_eq!(c.text_tokens(), c.tokens[5..].to_vec());
        // No noise: z = μ, so the vMF log-prob is κ‖μ‖².
        let z = c.inputs[1].as_ref().unwrap();
        let n2: f32 = z.iter().map(|x| x * x).sum();
        assert!((c.logp[1] - 0.5 * n2).abs() < 1e-3 * n2);
    }
    check_replay(&m, &outs)?;
    // The latents matter: replaying them as plain pad embeddings changes the later log-probs.
    let responses: Vec<Vec<u32>> = outs.iter().map(|c| c.tokens.clone()).collect();
    let plain = score(&m, &prompts(), &responses, 0, ScoreOptions { temperature: 0.8, ..Default::default() })?;
    let lp = plain.logp.to_vec2::<f32>()?;
    let diff: f32 = outs.iter().enumerate().map(|(i, c)| (lp[i][5] - c.logp[5]).abs()).sum();
    assert!(diff > 1e-3, "latent inputs change what follows ({diff})");
    Ok(())
}

#[test]
fn marker_trigger_opens_a_segment_when_the_start_token_is_sampled() -> Result<()> {
    // Start marker = the greedy first token of every prompt under the plain model, so greedy
    // decoding opens a segment at once.
    let plain = model(3, None)?;
    let g = SamplingParams { temperature: 0.0, ..params() };
    let first = generate(&plain, &prompts()[..1], &g, 0, &mut ChaCha8Rng::seed_from_u64(0))?[0].tokens[0];
    let cfg = LatentConfig { steps: 2, trigger: "marker".into(), start: Some(first), end: None, ..Default::default() };
    let m = model(3, Some(cfg))?;
    let outs = generate(&m, &prompts()[..1], &g, 0, &mut ChaCha8Rng::seed_from_u64(0))?;
    let c = &outs[0];
    assert_eq!(c.tokens[0], first);
    assert_eq!((c.kind(0), c.kind(1), c.kind(2)), (StepKind::Token, StepKind::Latent, StepKind::Latent));
    // Every later segment also follows a sampled start token.
    for j in 3..c.tokens.len() {
        if c.kind(j) == StepKind::Latent && c.kind(j - 1) != StepKind::Latent {
            assert_eq!((c.kind(j - 1), c.tokens[j - 1]), (StepKind::Token, first));
        }
    }
    // Sampled at temperature, segments open wherever the start token comes up; replay agrees.
    let outs = generate(&m, &prompts(), &params(), 0, &mut ChaCha8Rng::seed_from_u64(11))?;
    check_replay(&m, &outs)
}

#[test]
fn one_sided_noise_perturbs_only_the_noisy_rows() -> Result<()> {
    let cfg = LatentConfig { steps: 2, kappa: 1.0, normalize: true, ..Default::default() };
    let m = model(4, Some(cfg))?;
    let noise = LatentNoise { sigma: 0.5, rows: vec![true, false, true, false] };
    let outs = generate_latent(&m, &prompts(), &params(), 0, &mut ChaCha8Rng::seed_from_u64(5), Some(&noise))?;
    for (i, c) in outs.iter().enumerate() {
        // Normalised vMF: κ·cos(μ, z) is κ exactly for the anchors and below it with noise.
        let lp = c.logp[0].min(c.logp[1]);
        if noise.rows[i] {
            assert!(lp < 1.0 - 1e-5, "row {i}: noisy latent has cos < 1 ({lp})");
        } else {
            assert!((lp - 1.0).abs() < 1e-5, "row {i}: anchor latent z = μ ({lp})");
        }
    }
    check_replay(&m, &outs)
}

#[test]
fn hrpo_starts_as_the_plain_lm_and_replays_its_hybrid_inputs() -> Result<()> {
    let plain = model(6, None)?;
    let p = params();
    let base = generate(&plain, &prompts(), &p, 0, &mut ChaCha8Rng::seed_from_u64(2))?;
    // g = σ(−1e4) = 0 exactly: identical samples and log-probs.
    let zero = LatentConfig { kind: "hrpo".into(), gate_init: -1e4, ..Default::default() };
    let m0 = model(6, Some(zero))?;
    let outs = generate(&m0, &prompts(), &p, 0, &mut ChaCha8Rng::seed_from_u64(2))?;
    for (a, b) in base.iter().zip(&outs) {
        assert_eq!(a.tokens, b.tokens);
        assert!(a.logp.iter().zip(&b.logp).all(|(x, y)| (x - y).abs() < 1e-5));
        assert!(b.inputs.iter().all(|v| v.is_some()), "every HRPO position records h_(t-1)");
        assert!(b.kinds.iter().all(|k| *k == StepKind::Token));
    }
    // At the default init (g ≈ 0.007) the log-probs stay within a small tolerance of the base,
    // and the gap shrinks with the gate (continuity at g → 0).
    let responses: Vec<Vec<u32>> = base.iter().map(|c| c.tokens.clone()).collect();
    let inputs: Vec<ResponseInputs> = outs.iter().map(|c| c.inputs.as_slice()).collect();
    let opts = ScoreOptions { temperature: 0.8, ..Default::default() };
    let gap = |gate_init: f64| -> Result<f32> {
        let m = model(6, Some(LatentConfig { kind: "hrpo".into(), gate_init, ..Default::default() }))?;
        let s = score_inputs(&m, &prompts(), &responses, Some(&inputs), 0, opts)?;
        let lp = s.logp.to_vec2::<f32>()?;
        Ok(base
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.logp.iter().enumerate().map(move |(j, x)| (x, i, j)))
            .map(|(x, i, j)| (lp[i][j] - x).abs())
            .fold(0f32, f32::max))
    };
    let (g5, g8) = (gap(-5.0)?, gap(-8.0)?);
    assert!(g5 < 0.1 && g8 < g5 / 10.0, "near-identity at init: max |Δ log p| {g5} (a = −5), {g8} (a = −8)");
    // With a large gate the hybrid inputs matter, and replay still reproduces the rollout.
    let big = LatentConfig { kind: "hrpo".into(), gate_init: 0.0, ..Default::default() };
    let mb = model(6, Some(big))?;
    let outs = generate(&mb, &prompts(), &p, 0, &mut ChaCha8Rng::seed_from_u64(2))?;
    check_replay(&mb, &outs)?;
    // Gradients flow into the gate and projection through the scorer.
    let responses: Vec<Vec<u32>> = outs.iter().map(|c| c.tokens.clone()).collect();
    let inputs: Vec<ResponseInputs> = outs.iter().map(|c| c.inputs.as_slice()).collect();
    let s = score_inputs(&mb, &prompts(), &responses, Some(&inputs), 0, ScoreOptions { grad: true, ..opts })?;
    let grads = mb.backward(&s.logp.sum_all()?)?;
    for (name, v) in mb.latent.as_ref().unwrap().named_vars() {
        let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("{name}: no gradient"));
        assert!(g.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0, "{name}");
    }
    assert!(mb.trainable_vars().iter().any(|(n, _)| n == "latent.gate"));
    Ok(())
}

#[test]
fn checkpoints_keep_the_latent_module() -> Result<()> {
    let d = tempfile::tempdir()?;
    let cfg = LatentConfig { kind: "hrpo".into(), gate_init: -1.5, ..Default::default() };
    let m = model(8, Some(cfg.clone()))?;
    let tok = oxrl_lm::CharTokenizer::new();
    oxrl_lm::checkpoint::save(&d.path().join("ck"), &m, &tok, serde_json::Value::Null, |_| Ok(()))?;
    let l = oxrl_lm::checkpoint::load(&d.path().join("ck"), &Device::Cpu)?;
    let lm = l.model.latent.as_ref().expect("latent module loaded");
    assert_eq!(lm.cfg, cfg);
    let g = lm.gate_mean()?.unwrap();
    assert!((g - 1.0 / (1.0 + 1.5f64.exp())).abs() < 1e-6);
    Ok(())
}
