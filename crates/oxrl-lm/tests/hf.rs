//! Hugging Face model directories: logits, greedy generation and chat templates against values
//! `transformers` produced for committed fixtures (tools/make_hf_fixtures.py); sharded bf16
//! save → load round trips; clear errors for unsupported or incomplete checkpoints; sliding
//! windows.

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use oxrl_lm::chat::ChatMessage;
use oxrl_lm::checkpoint::{self, LoadOptions, SaveOptions};
use oxrl_lm::model::{attention_bias, positions, Mode};
use oxrl_lm::sampler::{generate, SamplingParams};
use oxrl_lm::{ModelConfig, ParamStore, Tokenizer, Transformer};
use rand::SeedableRng;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf").join(name)
}

fn reference(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name).join("reference.json")).unwrap()).unwrap()
}

/// Logits `[B][T][V]` of unpadded rows of equal length.
fn logits(m: &Transformer, rows: &[Vec<u32>], mode: Mode) -> Result<Vec<Vec<Vec<f32>>>> {
    let dev = Device::Cpu;
    let (b, t) = (rows.len(), rows[0].len());
    let valid = vec![vec![true; t]; b];
    let pos: Vec<u32> = positions(&valid).concat();
    let h = m.forward_hidden(
        &Tensor::from_vec(rows.concat(), (b, t), &dev)?,
        &Tensor::from_vec(pos, (b, t), &dev)?,
        &attention_bias(&valid, t, &dev, m.dtype())?,
        None,
        mode,
    )?;
    Ok(m.logits(&h)?.to_dtype(DType::F32)?.to_vec3()?)
}

fn ids(v: &serde_json::Value) -> Vec<Vec<u32>> {
    serde_json::from_value(v.clone()).unwrap()
}

fn greedy(m: &Transformer, prompt: &[u32], n: usize, stops: Vec<u32>) -> Result<Vec<u32>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    Ok(generate(m, &[prompt.to_vec()], &SamplingParams::greedy(n, stops), 0, &mut rng)?.remove(0).tokens)
}

#[test]
fn logits_match_transformers_on_qwen2_qwen3_llama() -> Result<()> {
    for name in ["qwen2", "qwen3", "llama"] {
        let r = reference(name);
        let mut l = checkpoint::load(&fixture(name), &Device::Cpu)?;
        let want: Vec<Vec<Vec<f32>>> = serde_json::from_value(r["logits"].clone())?;
        let scale = want.iter().flatten().flatten().fold(0f32, |a, &x| a.max(x.abs()));
        assert!(scale > 1.0, "{name}: fixture logits too flat to test anything ({scale})");
        for fused in [true, false] {
            l.model.fused = fused;
            for mode in [Mode::Train, Mode::Infer] {
                let got = logits(&l.model, &ids(&r["input_ids"]), mode)?;
                let mut worst = 0f32;
                for (a, b) in got.iter().flatten().flatten().zip(want.iter().flatten().flatten()) {
                    worst = worst.max((a - b).abs());
                }
                assert!(worst < 1e-4 * scale.max(1.0), "{name} fused={fused} {mode:?}: max |Δlogit| = {worst}");
            }
        }
    }
    Ok(())
}

#[test]
fn greedy_generation_matches_transformers() -> Result<()> {
    for name in ["qwen2", "qwen3", "llama"] {
        let r = reference(name);
        let l = checkpoint::load(&fixture(name), &Device::Cpu)?;
        let prompt: Vec<u32> = serde_json::from_value(r["greedy_prompt"].clone())?;
        let want: Vec<u32> = serde_json::from_value(r["greedy_ids"].clone())?;
        assert_eq!(greedy(&l.model, &prompt, want.len(), vec![])?, want, "{name}");
    }
    Ok(())
}

#[test]
fn chat_templates_render_like_transformers() -> Result<()> {
    for name in ["qwen2", "qwen3", "llama"] {
        let r = reference(name);
        let l = checkpoint::load(&fixture(name), &Device::Cpu)?;
        let t = l.tokenizer.chat_template().expect("fixture has a chat template");
        let conv: Vec<ChatMessage> = serde_json::from_value(r["conversation"].clone())?;
        assert_eq!(t.render(&conv, false)?, r["chat"].as_str().unwrap(), "{name}");
        assert_eq!(t.render(&conv[..conv.len() - 1], true)?, r["chat_generation_prompt"].as_str().unwrap(), "{name}");
    }
    // The Llama template refuses non-alternating roles through raise_exception.
    let l = checkpoint::load(&fixture("llama"), &Device::Cpu)?;
    let bad = [ChatMessage::new("user", "a"), ChatMessage::new("user", "b")];
    let err = l.tokenizer.chat_template().unwrap().render(&bad, true).unwrap_err();
    assert!(format!("{err:#}").contains("must alternate"), "{err:#}");
    Ok(())
}

#[test]
fn chat_prompts_encode_through_the_template_and_stop_at_end_of_turn() -> Result<()> {
    let mut l = checkpoint::load(&fixture("qwen2"), &Device::Cpu)?;
    let tok = l.tokenizer.as_mut();
    let im_end = tok.encode("<|im_end|>")?;
    assert_eq!(im_end.len(), 1, "special tokens in templates encode to one id");
    assert_eq!(tok.eos_id(), im_end[0], "eos comes from tokenizer_config.json's eos_token");
    tok.set_chat(true, Some("Be brief.".into()))?;
    let ids = oxrl_lm::prompt::encode_prompt(tok, "2+2?")?;
    let text = tok.decode_special(ids[0])?;
    assert_eq!(text, "<|im_start|>");
    let want = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n";
    assert_eq!(ids, tok.encode(want)?);
    let resp = oxrl_lm::prompt::encode_response(tok, "4")?;
    assert_eq!(resp.last(), Some(&im_end[0]));
    // The built-in char tokenizer has no template: turning chat on is an error naming the file.
    let mut c = oxrl_lm::CharTokenizer::new();
    let err = c.set_chat(true, None).unwrap_err().to_string();
    assert!(err.contains("chat_template"), "{err}");
    Ok(())
}

/// A random checkpoint of `model_type`, with bf16-representable weights, a chat template, written
/// by oxrl's own saver sharded in bf16.
fn write_random(dir: &Path, model_type: &str) -> Result<Transformer> {
    let src = oxrl_lm::checkpoint::load(&fixture("qwen2"), &Device::Cpu)?; // tokenizer + template
    let mut cfg = ModelConfig::family(model_type, 104)?;
    cfg.hidden_size = 32;
    cfg.intermediate_size = 48;
    cfg.num_hidden_layers = 3;
    cfg.num_attention_heads = 4;
    cfg.num_key_value_heads = Some(2);
    cfg.max_position_embeddings = 64;
    cfg.initializer_range = 0.2;
    cfg.tie_word_embeddings = model_type != "llama";
    if model_type == "qwen3" {
        cfg.head_dim = Some(16);
    }
    let p = ParamStore::init(&cfg, 5, DType::BF16, &Device::Cpu)?;
    let m = Transformer::new(
        cfg.clone(),
        ParamStore::from_tensors(&cfg, to_map(&p, DType::F32)?, DType::F32, &Device::Cpu)?,
    )?;
    let opts = SaveOptions { dtype: Some(DType::BF16), max_shard_bytes: 20_000, merge_lora: true };
    checkpoint::save_with(dir, &m, src.tokenizer.as_ref(), serde_json::json!({}), &opts, |_| Ok(()))?;
    Ok(m)
}

fn to_map(p: &ParamStore, dt: DType) -> Result<std::collections::HashMap<String, Tensor>> {
    p.named_vars().into_iter().map(|(k, v)| Ok((k, v.as_tensor().to_dtype(dt)?))).collect()
}

#[test]
fn sharded_bf16_checkpoints_round_trip() -> Result<()> {
    for model_type in ["qwen2", "llama", "qwen3"] {
        let d = tempfile::tempdir()?;
        let a = d.path().join("a");
        let m = write_random(&a, model_type)?;
        let index: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(a.join("model.safetensors.index.json"))?)?;
        let shards: std::collections::BTreeSet<&str> =
            index["weight_map"].as_object().unwrap().values().map(|v| v.as_str().unwrap()).collect();
        assert!(shards.len() >= 2, "{model_type}: expected several shards, got {shards:?}");
        assert!(!a.join("model.safetensors").exists());
        let cfg_json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(a.join("config.json"))?)?;
        assert_eq!(cfg_json["torch_dtype"], "bfloat16");
        assert_eq!(cfg_json["model_type"], model_type);
        // transformers reads `head_dim: null` as a real value and fails; unset keys are omitted.
        for (k, v) in cfg_json.as_object().unwrap() {
            assert!(!v.is_null() || k == "pad_token_id", "{model_type}: config.json has `{k}: null`");
        }
        let tc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(a.join("tokenizer_config.json"))?)?;
        assert!(tc["chat_template"].as_str().unwrap().contains("im_start"));
        // Stored as bf16 on disk.
        let first = a.join(shards.iter().next().unwrap());
        let raw = candle_core::safetensors::load(&first, &Device::Cpu)?;
        assert!(raw.values().all(|t| t.dtype() == DType::BF16));

        let l1 = checkpoint::load(&a, &Device::Cpu)?;
        let names = |p: &ParamStore| -> Vec<(String, Vec<usize>)> {
            p.named_vars().into_iter().map(|(k, v)| (k, v.dims().to_vec())).collect()
        };
        assert_eq!(names(&l1.model.params), names(&m.params), "{model_type}");
        let mut want = oxrl_lm::params::param_shapes(&m.cfg);
        want.sort();
        assert_eq!(names(&l1.model.params), want, "{model_type}");
        let prompt = [1u32, 20, 30, 40, 50];
        let g0 = greedy(&m, &prompt, 16, vec![])?;
        let g1 = greedy(&l1.model, &prompt, 16, vec![])?;
        assert_eq!(g0, g1, "{model_type}: loading changed greedy generation");
        // save (again sharded bf16) → load → same generation and bit-identical weights
        let b = d.path().join("b");
        let opts = SaveOptions { dtype: Some(DType::BF16), max_shard_bytes: 20_000, merge_lora: true };
        checkpoint::save_with(&b, &l1.model, l1.tokenizer.as_ref(), serde_json::json!({}), &opts, |_| Ok(()))?;
        let l2 = checkpoint::load(&b, &Device::Cpu)?;
        assert_eq!(greedy(&l2.model, &prompt, 16, vec![])?, g0, "{model_type}");
        for (k, v) in l1.model.params.named_vars() {
            let w = l2.model.params.tensor(&k)?;
            assert_eq!(v.as_tensor().flatten_all()?.to_vec1::<f32>()?, w.flatten_all()?.to_vec1::<f32>()?, "{k}");
        }
        assert_eq!(l2.tokenizer.encode("<|im_start|>hi")?, l1.tokenizer.encode("<|im_start|>hi")?);
        // Loading in bf16 works too (the GPU default) and computes finite logits.
        let lb = checkpoint::load_with(&a, &Device::Cpu, &LoadOptions { dtype: Some(DType::BF16), seed: 0 })?;
        let lg = logits(&lb.model, &[prompt.to_vec()], Mode::Infer)?;
        assert!(lg.iter().flatten().flatten().all(|x| x.is_finite()));
    }
    Ok(())
}

#[test]
fn unsupported_or_incomplete_checkpoints_are_refused_clearly() -> Result<()> {
    let d = tempfile::tempdir()?;
    let a = d.path().join("a");
    write_random(&a, "qwen2")?;
    let cfg_path = a.join("config.json");
    let orig = std::fs::read_to_string(&cfg_path)?;
    let err_of = |dir: &Path| format!("{:#}", checkpoint::load(dir, &Device::Cpu).err().expect("should fail"));

    std::fs::write(&cfg_path, orig.replace("\"qwen2\"", "\"gpt2\""))?;
    let e = err_of(&a);
    assert!(e.contains("gpt2") && e.contains("supported") && e.contains("llama"), "{e}");
    std::fs::write(&cfg_path, orig.replace("Qwen2ForCausalLM", "MistralForCausalLM"))?;
    let e = err_of(&a);
    assert!(e.contains("MistralForCausalLM") && e.contains("Qwen2ForCausalLM"), "{e}");
    std::fs::write(
        &cfg_path,
        orig.replace(
            "\"model_type\": \"qwen2\"",
            "\"model_type\": \"qwen2\", \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0}",
        ),
    )?;
    let e = err_of(&a);
    assert!(e.contains("yarn"), "{e}");
    // Loading a Qwen2 checkpoint as Qwen3 misses the q/k norms; the error lists them.
    std::fs::write(&cfg_path, orig.replace("\"qwen2\"", "\"qwen3\"").replace("Qwen2ForCausalLM", "Qwen3ForCausalLM"))?;
    let e = err_of(&a);
    assert!(e.contains("missing tensors") && e.contains("model.layers.0.self_attn.q_norm.weight"), "{e}");
    std::fs::write(&cfg_path, &orig)?;
    // A shard listed in the index but absent is named.
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("model.safetensors.index.json"))?)?;
    let shard = index["weight_map"]["model.norm.weight"].as_str().unwrap().to_string();
    std::fs::remove_file(a.join(&shard))?;
    let e = err_of(&a);
    assert!(e.contains(&shard), "{e}");
    Ok(())
}

#[test]
fn transformers_5_rope_parameters_and_layer_types_are_read() -> Result<()> {
    let cfg = ModelConfig::load(&fixture("llama").join("config.json"))?;
    assert_eq!(cfg.rope_theta, 500000.0);
    assert!(matches!(cfg.rope_scaling()?, Some(oxrl_lm::config::RopeScaling::Llama3 { factor, .. }) if factor == 8.0));
    // llama3 scaling, hand-computed for head_dim 8, θ = 5e5, original context 16, factor 8:
    // inv = θ^(-i/4): wavelength 2π/inv. i = 0: 6.28 ∈ [4, 16] → smoothed with
    // s = (16/6.283 − 1)/(4 − 1) = 0.5154: f·((1 − s)/8 + s); i ≥ 1: wavelengths > 16 → f/8.
    let inv = cfg.rope_inv_freq()?;
    let s = (16.0 / (2.0 * std::f64::consts::PI) - 1.0) / 3.0;
    assert!((inv[0] - ((1.0 - s) / 8.0 + s)).abs() < 1e-12, "{inv:?}");
    for (i, f) in inv.iter().enumerate().skip(1) {
        let base = 500000f64.powf(-(i as f64) / 4.0);
        assert!((f - base / 8.0).abs() < 1e-15, "{i}: {f}");
    }
    let mut c = cfg.clone();
    c.extra.insert("layer_types".into(), serde_json::json!(["full_attention", "sliding_attention"]));
    c.sliding_window = Some(4);
    assert_eq!((c.window_for_layer(0), c.window_for_layer(1)), (None, Some(4)));
    Ok(())
}

#[test]
fn sliding_window_attention_sees_only_the_window() -> Result<()> {
    let mut cfg = ModelConfig::family("qwen2", 100)?;
    cfg.hidden_size = 32;
    cfg.intermediate_size = 48;
    cfg.num_hidden_layers = 1;
    cfg.max_position_embeddings = 64;
    cfg.initializer_range = 0.3;
    let p = ParamStore::init(&cfg, 9, DType::F64, &Device::Cpu)?;
    let full = Transformer::new(cfg.clone(), p.clone())?;
    let w = 4;
    let mut wc = cfg.clone();
    wc.use_sliding_window = Some(true);
    wc.sliding_window = Some(w);
    wc.max_window_layers = Some(0);
    let windowed = Transformer::new(wc, p)?;
    let seq: Vec<u32> = (0..11).map(|i| 10 + 7 * i % 90).collect();
    let lw = logits(&windowed, std::slice::from_ref(&seq), Mode::Train)?;
    // With one layer, position i under the window equals a full model on the last w tokens
    // (rotary attention depends only on relative positions).
    for i in 0..seq.len() {
        let lo = (i + 1).saturating_sub(w);
        let lf = logits(&full, &[seq[lo..=i].to_vec()], Mode::Train)?;
        let last = lf[0].last().unwrap();
        let worst = lw[0][i].iter().zip(last).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-4, "position {i}: {worst}");
    }
    // Before the window fills, windowed == full.
    let lf = logits(&full, std::slice::from_ref(&seq), Mode::Train)?;
    assert_eq!(lw[0][..w].to_vec(), lf[0][..w].to_vec());
    assert_ne!(lw[0][w + 2], lf[0][w + 2]);
    // The KV-cache decoder applies the same window as the full forward.
    let g = greedy(&windowed, &seq[..3], 12, vec![])?;
    let mut s2 = seq[..3].to_vec();
    for t in &g {
        let l = logits(&windowed, &[s2.clone()], Mode::Infer)?;
        let row = l[0].last().unwrap();
        let arg = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 as u32;
        assert_eq!(arg, *t);
        s2.push(*t);
    }
    Ok(())
}
