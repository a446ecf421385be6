//! Model, sampler and scorer behaviour: KV cache vs full forward, gradients (finite differences and
//! coverage), determinism, checkpoint round trip.

use anyhow::Result;
use candle_core::{DType, Device, Tensor, D};
use oxrl_lm::conversation::Conversation;
use oxrl_lm::model::{attention_bias, positions, Mode};
use oxrl_lm::sampler::{generate, generate_traced, sample_row, SamplingParams};
use oxrl_lm::scorer::{score, ScoreOptions};
use oxrl_lm::{CharTokenizer, ModelConfig, ParamStore, Tokenizer, Transformer};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn small_cfg(vocab: usize) -> ModelConfig {
    let mut c = ModelConfig::tiny(vocab);
    c.hidden_size = 32;
    c.intermediate_size = 48;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = Some(2);
    c.max_position_embeddings = 64;
    c
}

fn model(cfg: &ModelConfig, seed: u64, dtype: DType) -> Result<Transformer> {
    // Larger init than 0.02 so the test model has non-trivial attention patterns.
    let mut cfg = cfg.clone();
    cfg.initializer_range = 0.2;
    let params = ParamStore::init(&cfg, seed, dtype, &Device::Cpu)?;
    Transformer::new(cfg, params)
}

/// Logits of one unpadded sequence by a plain full forward (training-mode ops).
fn full_logits(m: &Transformer, ids: &[u32], mode: Mode) -> Result<Vec<Vec<f32>>> {
    let dev = Device::Cpu;
    let t = ids.len();
    let valid = vec![vec![true; t]];
    let pos: Vec<u32> = positions(&valid).concat();
    let h = m.forward_hidden(
        &Tensor::from_vec(ids.to_vec(), (1, t), &dev)?,
        &Tensor::from_vec(pos, (1, t), &dev)?,
        &attention_bias(&valid, t, &dev, m.dtype())?,
        None,
        mode,
    )?;
    Ok(m.logits(&h)?.squeeze(0)?.to_dtype(DType::F32)?.to_vec2()?)
}

fn prompts() -> Vec<Vec<u32>> {
    vec![vec![1, 20, 21, 22, 23, 24, 25, 26], vec![1, 30], vec![1, 40, 41, 42, 43], vec![1, 50, 51]]
}

#[test]
fn kv_cache_sampling_reproduces_full_forward_logits() -> Result<()> {
    // Both decoding paths: the packed decoder and the candle ops.
    for packed in [true, false] {
        kv_cache_sampling_case(packed)?;
    }
    Ok(())
}

fn kv_cache_sampling_case(packed: bool) -> Result<()> {
    let cfg = small_cfg(100);
    let mut m = model(&cfg, 3, DType::F32)?;
    m.packed_decode = packed;
    for temperature in [0.0, 1.0] {
        let params = SamplingParams {
            temperature,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            max_new_tokens: 12,
            stop_tokens: (2..12).collect(),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut trace = Vec::new();
        let outs = generate_traced(&m, &prompts(), &params, 0, &mut rng, Some(&mut trace))?;
        let mut lengths = std::collections::BTreeSet::new();
        let mut worst = 0f32;
        for ((p, c), tr) in prompts().iter().zip(&outs).zip(&trace) {
            lengths.insert(c.tokens.len());
            let mut seq = p.clone();
            seq.extend(&c.tokens);
            let full = full_logits(&m, &seq, Mode::Train)?;
            assert_eq!(tr.len(), c.tokens.len());
            for (j, row) in tr.iter().enumerate() {
                let reference = &full[p.len() - 1 + j];
                for (a, b) in row.iter().zip(reference) {
                    worst = worst.max((a - b).abs());
                }
            }
            // the reported log-prob and entropy agree with the reference distribution
            for (j, &tok) in c.tokens.iter().enumerate() {
                let lg = Tensor::new(full[p.len() - 1 + j].as_slice(), &Device::Cpu)?;
                let lp = candle_nn::ops::log_softmax(&lg, D::Minus1)?.to_vec1::<f32>()?;
                assert!((lp[tok as usize] - c.logp[j]).abs() < 1e-4);
                let ent: f32 = -lp.iter().map(|l| l.exp() * l).sum::<f32>();
                assert!((ent - c.entropy[j]).abs() < 1e-4);
            }
        }
        assert!(worst <= 1e-4, "max |cached - full| = {worst}");
        if temperature > 0.0 {
            assert!(lengths.len() > 1, "want sequences finishing at different times: {lengths:?}");
        }
    }
    Ok(())
}

/// A multi-turn conversation on a kept KV cache: every sampled token's log-prob and entropy equal
/// a full forward's over the transcript so far — with turns of different lengths, forced
/// observations of different lengths, a row leaving the batch and the cache growing past its first
/// capacity.
#[test]
fn conversation_turns_on_a_kept_cache_match_full_forwards() -> Result<()> {
    // Both backends: the packed decoder and the candle ops.
    for packed in [true, false] {
        conversation_case(packed)?;
    }
    Ok(())
}

fn conversation_case(packed: bool) -> Result<()> {
    let cfg = small_cfg(100);
    let mut m = model(&cfg, 7, DType::F32)?;
    m.packed_decode = packed;
    let params = SamplingParams {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        max_new_tokens: 5,
        stop_tokens: (2..20).collect(),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let ps = prompts();
    let mut conv = Conversation::new(&m, &ps, 0, 2)?; // 2 slots of room: the cache must grow
    let mut transcripts = ps.clone();
    let mut live: Vec<usize> = (0..ps.len()).collect();
    let (mut checked, mut lengths) = (0, std::collections::BTreeSet::new());
    for turn in 0..3 {
        let gens = conv.sample_turn(&params, &mut rng)?;
        assert_eq!(gens.len(), live.len());
        for (&i, g) in live.iter().zip(&gens) {
            lengths.insert(g.tokens.len());
            let full = full_logits(&m, &[transcripts[i].as_slice(), &g.tokens].concat(), Mode::Train)?;
            let start = transcripts[i].len() - 1;
            for (j, &tok) in g.tokens.iter().enumerate() {
                let lg = Tensor::new(full[start + j].as_slice(), &Device::Cpu)?;
                let lp = candle_nn::ops::log_softmax(&lg, D::Minus1)?.to_vec1::<f32>()?;
                assert!((lp[tok as usize] - g.logp[j]).abs() < 1e-4, "turn {turn} row {i} token {j}");
                let ent: f32 = -lp.iter().map(|l| l.exp() * l).sum::<f32>();
                assert!((ent - g.entropy[j]).abs() < 1e-4);
                checked += 1;
            }
            transcripts[i].extend(&g.tokens);
        }
        // sequence 1 leaves after the first turn; the others get observations of 1–4 tokens
        let keep: Vec<usize> = (0..live.len()).filter(|&r| !(turn == 0 && live[r] == 1)).collect();
        let feed: Vec<Vec<u32>> =
            keep.iter().map(|&r| (0..1 + (live[r] + turn) % 4).map(|k| 60 + (k + live[r]) as u32).collect()).collect();
        conv.retain(&keep)?;
        live = keep.iter().map(|&r| live[r]).collect();
        for (&i, f) in live.iter().zip(&feed) {
            transcripts[i].extend(f);
        }
        conv.extend(&feed)?;
    }
    assert_eq!(live, vec![0, 2, 3]);
    assert!(lengths.len() > 1, "want turns of different lengths: {lengths:?}");
    assert!(checked >= 20, "{checked} tokens checked");
    // a refused `extend` (past the context) leaves the conversation usable
    let mut too_long = vec![vec![60]; live.len()];
    *too_long.last_mut().unwrap() = vec![60; 64]; // only the last row overflows
    assert!(conv.extend(&too_long).is_err());
    // a turn must be followed by `extend` before the next
    conv.sample_turn(&params, &mut rng)?;
    let e = conv.sample_turn(&params, &mut rng).expect_err("a pending turn is refused");
    assert!(format!("{e:#}").contains("extend"), "{e:#}");
    assert!(conv.retain(&[0, 0]).is_err(), "a row kept twice is refused");
    let e = Conversation::new(&m, &[vec![1; 65]], 0, 4).err().expect("a prompt longer than the context is refused");
    assert!(format!("{e:#}").contains("max_position_embeddings"), "{e:#}");
    Ok(())
}

#[test]
fn scorer_matches_sampler_log_probs() -> Result<()> {
    let cfg = small_cfg(100);
    let m = model(&cfg, 5, DType::F32)?;
    let params =
        SamplingParams { temperature: 0.7, top_k: 0, top_p: 1.0, min_p: 0.0, max_new_tokens: 10, stop_tokens: vec![2] };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let outs = generate(&m, &prompts(), &params, 0, &mut rng)?;
    let responses: Vec<Vec<u32>> = outs.iter().map(|c| c.tokens.clone()).collect();
    for grad in [false, true] {
        let s = score(
            &m,
            &prompts(),
            &responses,
            0,
            ScoreOptions { grad, temperature: 0.7, hidden: true, top_k: 3, logits: false },
        )?;
        let logp = s.logp.to_vec2::<f32>()?;
        let ent = s.entropy.to_vec2::<f32>()?;
        let mask = s.mask.to_vec2::<f32>()?;
        for (i, c) in outs.iter().enumerate() {
            for j in 0..mask[i].len() {
                if j < c.tokens.len() {
                    assert_eq!(mask[i][j], 1.0);
                    assert!((logp[i][j] - c.logp[j]).abs() < 1e-4, "row {i} tok {j}: {} vs {}", logp[i][j], c.logp[j]);
                    assert!((ent[i][j] - c.entropy[j]).abs() < 1e-4);
                } else {
                    assert_eq!((mask[i][j], logp[i][j]), (0.0, 0.0));
                }
            }
        }
        let r = s.mask.dim(1)?;
        assert_eq!(s.hidden.as_ref().unwrap().dims(), &[4, r, 32]);
        let (vals, idx) = s.top_k.as_ref().unwrap();
        assert_eq!(idx.dims(), &[4, r, 3]);
        let v = vals.to_vec3::<f32>()?;
        assert!(v[0][0][0] >= v[0][0][1] && v[0][0][1] >= v[0][0][2]);
    }
    Ok(())
}

#[test]
fn fused_inference_path_matches_training_path() -> Result<()> {
    let m = model(&small_cfg(100), 9, DType::F32)?;
    let ids = [1u32, 10, 11, 12, 13, 14];
    let a = full_logits(&m, &ids, Mode::Train)?;
    let b = full_logits(&m, &ids, Mode::Infer)?;
    for (ra, rb) in a.iter().zip(&b) {
        for (x, y) in ra.iter().zip(rb) {
            assert!((x - y).abs() < 1e-4);
        }
    }
    Ok(())
}

/// Sum of response log-probs, the SFT/PG objective, as an f64 scalar.
fn logp_loss(m: &Transformer, prompts: &[Vec<u32>], responses: &[Vec<u32>]) -> Result<Tensor> {
    let s = score(m, prompts, responses, 0, ScoreOptions { grad: true, ..Default::default() })?;
    Ok(s.logp.sum_all()?)
}

#[test]
fn scorer_gradient_matches_finite_differences() -> Result<()> {
    let mut cfg = small_cfg(16);
    cfg.hidden_size = 8;
    cfg.intermediate_size = 12;
    cfg.num_attention_heads = 2;
    cfg.num_key_value_heads = Some(1);
    cfg.tie_word_embeddings = false;
    // Both the fused-kernel path (the CPU default) and the composed reference path.
    for fused in [true, false] {
        let mut m = model(&cfg, 11, DType::F64)?;
        m.fused = fused;
        assert_eq!(m.uses_fused_kernels(), fused);
        let prompts = vec![vec![1u32, 5, 6], vec![1, 7]];
        let responses = vec![vec![8u32, 9, 2], vec![10, 2]];
        let loss = logp_loss(&m, &prompts, &responses)?;
        let grads = loss.backward()?;
        let h = 1e-5;
        let mut worst = 0f64;
        let mut checked = 0;
        for (name, var) in m.params.named_vars() {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
            let g = g.flatten_all()?.to_vec1::<f64>()?;
            let base = var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
            // check up to 3 coordinates of every tensor
            for idx in [0, base.len() / 2, base.len() - 1] {
                let mut plus = base.clone();
                plus[idx] += h;
                var.set(&Tensor::from_vec(plus, var.shape(), &Device::Cpu)?)?;
                let lp = logp_loss(&m, &prompts, &responses)?.to_scalar::<f64>()?;
                let mut minus = base.clone();
                minus[idx] -= h;
                var.set(&Tensor::from_vec(minus, var.shape(), &Device::Cpu)?)?;
                let lm = logp_loss(&m, &prompts, &responses)?.to_scalar::<f64>()?;
                var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu)?)?;
                let fd = (lp - lm) / (2.0 * h);
                let rel = (fd - g[idx]).abs() / (fd.abs().max(g[idx].abs()).max(1e-3));
                worst = worst.max(rel);
                checked += 1;
                assert!(rel < 1e-4, "{name}[{idx}]: autograd {} vs finite difference {fd}", g[idx]);
            }
        }
        assert!(checked > 30);
        eprintln!("finite-difference check (fused = {fused}): {checked} coordinates, worst relative error {worst:.2e}");
    }
    Ok(())
}

/// The fused kernels and the composed candle ops compute the same model: per-token log-probs,
/// entropies (at a temperature) and every parameter's gradient, for Qwen2 (q/k/v biases, tied)
/// and Llama (all biases, untied) shapes with GQA and ragged, padded batches.
#[test]
fn fused_kernels_match_composed_model() -> Result<()> {
    for (model_type, tie) in [("qwen2", true), ("llama", false)] {
        let mut cfg = small_cfg(100);
        cfg.model_type = model_type.into();
        cfg.tie_word_embeddings = tie;
        cfg.attention_bias = (model_type == "llama").then_some(true);
        let mut m = model(&cfg, 4, DType::F32)?;
        let responses = [vec![5, 6, 2], vec![7], vec![8, 9, 10, 2], vec![11, 2]];
        let run = |m: &Transformer| -> Result<(Tensor, Tensor, candle_core::backprop::GradStore)> {
            let opts = ScoreOptions { grad: true, temperature: 0.8, ..Default::default() };
            let s = score(m, &prompts(), &responses, 0, opts)?;
            let loss = ((&s.logp * 1.5)? + &s.entropy)?.sum_all()?;
            Ok((s.logp, s.entropy, loss.backward()?))
        };
        m.fused = true;
        let (lf, ef, gf) = run(&m)?;
        m.fused = false;
        let (lc, ec, gc) = run(&m)?;
        let diff =
            |a: &Tensor, b: &Tensor| -> Result<f32> { Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?) };
        assert!(diff(&lf, &lc)? < 1e-5, "{model_type}: log-probs differ by {}", diff(&lf, &lc)?);
        assert!(diff(&ef, &ec)? < 1e-5, "{model_type}: entropies differ by {}", diff(&ef, &ec)?);
        for (name, var) in m.params.named_vars() {
            let (a, b) = (gf.get(var.as_tensor()).unwrap(), gc.get(var.as_tensor()).unwrap());
            let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?.max(1e-3);
            let d = diff(a, b)?;
            assert!(d / scale < 1e-4, "{model_type}: gradient of {name} differs by {d} (scale {scale})");
        }
    }
    Ok(())
}

#[test]
fn every_parameter_receives_a_gradient() -> Result<()> {
    for tie in [true, false] {
        for model_type in ["qwen2", "llama"] {
            let mut cfg = small_cfg(100);
            cfg.tie_word_embeddings = tie;
            cfg.model_type = model_type.into();
            cfg.attention_bias = (model_type == "llama").then_some(true);
            let m = model(&cfg, 2, DType::F32)?;
            let loss = logp_loss(&m, &prompts(), &[vec![5, 6, 2], vec![7], vec![8, 9, 10, 2], vec![11, 2]])?;
            let grads = loss.backward()?;
            for (name, var) in m.params.named_vars() {
                let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{model_type}: no gradient for {name}"));
                let norm = g.sqr()?.sum_all()?.to_scalar::<f32>()?;
                assert!(norm > 0.0 && norm.is_finite(), "{model_type}/tie={tie}: zero gradient for {name}");
            }
            assert_eq!(m.params.len(), oxrl_lm::params::param_shapes(&m.cfg).len());
            assert_eq!(m.params.num_elements(), m.cfg.num_params());
        }
    }
    Ok(())
}

/// RLG guided sampling: w = 0 and w = 1 sample exactly as the base and the tuned model do (same
/// seed), and a weight in between mixes the two models' per-step logits (checked against the
/// traced logits of each model on the same tokens).
#[test]
fn guided_generation_interpolates_base_and_tuned() -> Result<()> {
    use oxrl_lm::sampler::generate_guided;
    let (base, tuned) = (model(&small_cfg(100), 4, DType::F32)?, model(&small_cfg(100), 9, DType::F32)?);
    let params =
        SamplingParams { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.0, max_new_tokens: 10, stop_tokens: vec![2] };
    let sample = |m: &Transformer| -> Result<Vec<Vec<u32>>> {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        Ok(generate(m, &prompts(), &params, 0, &mut rng)?.into_iter().map(|c| c.tokens).collect())
    };
    let guided = |w: f32| -> Result<Vec<oxrl_lm::sampler::Completion>> {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        generate_guided(&base, &tuned, w, &prompts(), &params, 0, &mut rng)
    };
    let toks = |c: Vec<oxrl_lm::sampler::Completion>| -> Vec<Vec<u32>> { c.into_iter().map(|c| c.tokens).collect() };
    assert_eq!(toks(guided(0.0)?), sample(&base)?);
    assert_eq!(toks(guided(1.0)?), sample(&tuned)?);
    // w = 0.5: each sampled token's log-prob is that of the mixed distribution
    let mixed = guided(0.5)?;
    let seqs: Vec<Vec<u32>> = mixed.iter().map(|c| c.tokens.clone()).collect();
    let trace_of = |m: &Transformer| -> Result<Vec<Vec<Vec<f32>>>> {
        // replay the mixed tokens as forced prompts: logits of each model along them
        let mut out = Vec::new();
        for (p, s) in prompts().iter().zip(&seqs) {
            let mut full = p.clone();
            full.extend_from_slice(s);
            let l = full_logits(m, &full, Mode::Infer)?;
            out.push(l[p.len() - 1..p.len() - 1 + s.len()].to_vec());
        }
        Ok(out)
    };
    let (lb, lt) = (trace_of(&base)?, trace_of(&tuned)?);
    for (i, c) in mixed.iter().enumerate() {
        for (j, (&tok, &lp)) in c.tokens.iter().zip(&c.logp).enumerate() {
            let mix = oxrl_lm::guidance::guide_logits(&lb[i][j], &lt[i][j], 0.5);
            let m = mix.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let lse = m + mix.iter().map(|x| (x - m).exp()).sum::<f32>().ln();
            assert!((lp - (mix[tok as usize] - lse)).abs() < 1e-3, "row {i} token {j}");
        }
    }
    Ok(())
}

#[test]
fn same_seed_same_samples_different_seed_differs() -> Result<()> {
    let m = model(&small_cfg(100), 4, DType::F32)?;
    let params = SamplingParams {
        temperature: 1.0,
        top_k: 20,
        top_p: 0.9,
        min_p: 0.05,
        max_new_tokens: 16,
        stop_tokens: vec![2],
    };
    let run = |seed| -> Result<Vec<Vec<u32>>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Ok(generate(&m, &prompts(), &params, 0, &mut rng)?.into_iter().map(|c| c.tokens).collect())
    };
    assert_eq!(run(1)?, run(1)?);
    assert_ne!(run(1)?, run(2)?);
    // same init seed -> identical parameters; different seed -> different
    let a = ParamStore::init(&small_cfg(100), 1, DType::F32, &Device::Cpu)?;
    let b = ParamStore::init(&small_cfg(100), 1, DType::F32, &Device::Cpu)?;
    let c = ParamStore::init(&small_cfg(100), 2, DType::F32, &Device::Cpu)?;
    let w = |p: &ParamStore| {
        p.tensor("model.layers.0.self_attn.q_proj.weight").unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    assert_eq!(w(&a), w(&b));
    assert_ne!(w(&a), w(&c));
    Ok(())
}

#[test]
fn sampling_filters() {
    let logits = [2.0f32, 1.0, 0.5, -1.0, -3.0];
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut scratch = Vec::new();
    let base =
        SamplingParams { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.0, max_new_tokens: 1, stop_tokens: vec![] };
    let draw = |p: &SamplingParams, rng: &mut ChaCha8Rng, scratch: &mut Vec<(f32, u32)>| {
        let mut seen = [0usize; 5];
        for _ in 0..4000 {
            seen[sample_row(&logits, p, rng, scratch).0 as usize] += 1;
        }
        seen
    };
    // greedy
    let g = SamplingParams { temperature: 0.0, ..base.clone() };
    assert_eq!(sample_row(&logits, &g, &mut rng, &mut scratch).0, 0);
    // top-k 2 -> only tokens 0, 1
    let s = draw(&SamplingParams { top_k: 2, ..base.clone() }, &mut rng, &mut scratch);
    assert!(s[0] > 0 && s[1] > 0 && s[2..].iter().all(|&x| x == 0), "{s:?}");
    // probabilities: [.609, .224, .136, .030, .004]; top-p 0.8 -> {0,1}; 0.85 -> {0,1,2}
    let s = draw(&SamplingParams { top_p: 0.8, ..base.clone() }, &mut rng, &mut scratch);
    assert!(s[2..].iter().all(|&x| x == 0), "{s:?}");
    let s = draw(&SamplingParams { top_p: 0.85, ..base.clone() }, &mut rng, &mut scratch);
    assert!(s[2] > 0 && s[3..].iter().all(|&x| x == 0), "{s:?}");
    // min-p 0.3 keeps p >= 0.183 -> {0, 1}
    let s = draw(&SamplingParams { min_p: 0.3, ..base.clone() }, &mut rng, &mut scratch);
    assert!(s[1] > 0 && s[2..].iter().all(|&x| x == 0), "{s:?}");
    // plain sampling frequencies match softmax
    let s = draw(&base, &mut rng, &mut scratch);
    assert!((s[0] as f64 / 4000.0 - 0.609).abs() < 0.03, "{s:?}");
    // low temperature sharpens; reported logp is of the tempered distribution
    let (tok, lp, ent) =
        sample_row(&logits, &SamplingParams { temperature: 0.5, ..base.clone() }, &mut rng, &mut scratch);
    let z: f32 = logits.iter().map(|l| (l / 0.5).exp()).sum();
    assert!((lp - ((logits[tok as usize] / 0.5).exp() / z).ln()).abs() < 1e-5);
    assert!(ent > 0.0);
}

#[test]
fn checkpoint_round_trip() -> Result<()> {
    let d = tempfile::tempdir()?;
    let m = model(&small_cfg(100), 8, DType::F32)?;
    let tok = CharTokenizer::new();
    let dir = d.path().join("ck");
    oxrl_lm::checkpoint::save(&dir, &m, &tok, serde_json::json!({"step": 3}), |_| Ok(()))?;
    for f in ["model.safetensors", "config.json", "tokenizer.json", "oxrl.json"] {
        assert!(dir.join(f).exists(), "{f}");
    }
    let l = oxrl_lm::checkpoint::load(&dir, &Device::Cpu)?;
    assert_eq!(l.manifest.meta["step"], 3);
    assert_eq!(l.tokenizer.encode("1+2=")?, tok.encode("1+2=")?);
    let ids = [1u32, 20, 21, 22];
    assert_eq!(full_logits(&m, &ids, Mode::Infer)?, full_logits(&l.model, &ids, Mode::Infer)?);
    // a corrupted weights file is refused with the file name
    std::fs::write(dir.join("model.safetensors"), b"garbage")?;
    let err = oxrl_lm::checkpoint::load(&dir, &Device::Cpu).err().unwrap();
    assert!(format!("{err:#}").contains("model.safetensors"), "{err:#}");
    Ok(())
}
