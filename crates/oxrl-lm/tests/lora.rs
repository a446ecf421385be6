//! LoRA and gradient checkpointing: only adapters get gradients, zero-B adapters equal the base,
//! merged weights reproduce the adapter model, finite-difference gradients, PEFT files, and
//! checkpointed layers giving the same gradients as stored activations.

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use oxrl_lm::lora::{LoraConfig, LoraStore};
use oxrl_lm::model::{attention_bias, positions, Mode};
use oxrl_lm::scorer::{score, ScoreOptions};
use oxrl_lm::{ModelConfig, ParamStore, Transformer};

fn cfg(model_type: &str) -> ModelConfig {
    let mut c = ModelConfig::family(model_type, 60).unwrap();
    c.hidden_size = 16;
    c.intermediate_size = 24;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = Some(2);
    c.max_position_embeddings = 32;
    c.initializer_range = 0.3;
    if model_type == "qwen3" {
        c.head_dim = Some(8);
    }
    c
}

fn base(c: &ModelConfig, dt: DType) -> Result<Transformer> {
    Transformer::new(c.clone(), ParamStore::init(c, 3, dt, &Device::Cpu)?)
}

fn logits(m: &Transformer, rows: &[Vec<u32>], mode: Mode) -> Result<Tensor> {
    let dev = Device::Cpu;
    let (b, t) = (rows.len(), rows[0].len());
    let valid = vec![vec![true; t]; b];
    let h = m.forward_hidden(
        &Tensor::from_vec(rows.concat(), (b, t), &dev)?,
        &Tensor::from_vec(positions(&valid).concat(), (b, t), &dev)?,
        &attention_bias(&valid, t, &dev, m.dtype())?,
        None,
        mode,
    )?;
    m.logits(&h)
}

fn max_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// Give every B matrix random values (a fresh adapter has B = 0).
fn randomise_b(store: &LoraStore, seed: u64) -> Result<()> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for (name, v) in store.named_vars() {
        if name.contains("lora_B") {
            let data: Vec<f32> = (0..v.elem_count()).map(|_| rng.random_range(-0.5f32..0.5)).collect();
            v.set(&Tensor::from_vec(data, v.shape(), &Device::Cpu)?.to_dtype(v.dtype())?)?;
        }
    }
    Ok(())
}

fn rows() -> Vec<Vec<u32>> {
    vec![vec![1, 5, 9, 13, 17, 21, 25], vec![2, 4, 8, 16, 32, 3, 6]]
}

/// Sum of response log-probs (a scalar loss through the scorer's fused log-prob kernel).
fn loss(m: &Transformer) -> Result<Tensor> {
    let prompts = vec![vec![1u32, 5, 9], vec![2, 4]];
    let resp = vec![vec![13u32, 17, 21, 25], vec![8, 16, 32, 3, 6]];
    let s = score(m, &prompts, &resp, 0, ScoreOptions { grad: true, ..Default::default() })?;
    Ok(s.logp.sum_all()?.neg()?)
}

#[test]
fn zero_b_adapters_equal_the_base_and_only_adapters_get_gradients() -> Result<()> {
    for mt in ["qwen2", "llama", "qwen3"] {
        let c = cfg(mt);
        let plain = base(&c, DType::F32)?;
        let lcfg = LoraConfig { rank: 4, alpha: 8.0, dropout: 0.0, target_modules: vec!["all-linear".into()] };
        let store = LoraStore::init(&c, &lcfg, 1, DType::F32, &Device::Cpu)?;
        assert_eq!(store.named_vars().len(), 2 * 7 * c.num_hidden_layers);
        let m = base(&c, DType::F32)?.with_lora(store)?;
        assert_eq!(max_diff(&logits(&plain, &rows(), Mode::Train)?, &logits(&m, &rows(), Mode::Train)?)?, 0.0, "{mt}");

        let grads = m.backward(&loss(&m)?)?;
        for (name, v) in m.trainable_vars() {
            let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("{mt}: no gradient for {name}"));
            let n = g.sqr()?.sum_all()?.to_scalar::<f32>()?;
            // With B = 0, dL/dA = 0 exactly and dL/dB ≠ 0.
            if name.contains("lora_A") {
                assert_eq!(n, 0.0, "{name}");
            } else {
                assert!(n > 0.0, "{mt}: zero gradient for {name}");
            }
        }
        for (name, v) in m.params.named_vars() {
            assert!(grads.get(v.as_tensor()).is_none(), "{mt}: frozen base weight {name} got a gradient");
        }
        assert_eq!(m.trainable_vars().len(), 2 * 7 * c.num_hidden_layers);
    }
    Ok(())
}

#[test]
fn merged_weights_reproduce_the_adapter_model() -> Result<()> {
    for mt in ["qwen2", "llama"] {
        let c = cfg(mt);
        let lcfg = LoraConfig {
            rank: 3,
            alpha: 6.0,
            dropout: 0.0,
            target_modules: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
        };
        let store = LoraStore::init(&c, &lcfg, 2, DType::F32, &Device::Cpu)?;
        randomise_b(&store, 0)?;
        let m = base(&c, DType::F32)?.with_lora(store)?;
        let plain = base(&c, DType::F32)?;
        let adapted = logits(&m, &rows(), Mode::Infer)?;
        assert!(max_diff(&adapted, &logits(&plain, &rows(), Mode::Infer)?)? > 1e-2, "{mt}: adapters changed nothing");
        let store = m.lora.as_ref().unwrap();
        let q = store.merged_tensor(&m.params, "model.layers.1.self_attn.q_proj.weight")?;
        assert!(!q.track_op(), "a merged weight must not keep the adapters' graph (and its temporaries) alive");
        let merged = store.merge_into(&c, &m.params)?;
        let mm = Transformer::new(c.clone(), merged)?;
        let d = max_diff(&adapted, &logits(&mm, &rows(), Mode::Infer)?)?;
        assert!(d < 1e-4, "{mt}: merged differs by {d}");
        // The KL reference is the base: the base view equals the plain model, and shares its
        // weights (no copy).
        let r = m.base_view()?;
        assert_eq!(max_diff(&logits(&r, &rows(), Mode::Infer)?, &logits(&plain, &rows(), Mode::Infer)?)?, 0.0);
        assert!(r.lora.is_none());
        let (a, b) = (r.params.tensor("model.norm.weight")?, m.params.tensor("model.norm.weight")?);
        assert!(
            std::ptr::eq(
                &*a.storage_and_layout().0 as *const _ as *const u8,
                &*b.storage_and_layout().0 as *const _ as *const u8
            ),
            "the reference copied the base weights"
        );
    }
    Ok(())
}

#[test]
fn adapter_gradients_match_finite_differences() -> Result<()> {
    let c = cfg("qwen2");
    let lcfg = LoraConfig { rank: 2, alpha: 4.0, dropout: 0.0, target_modules: vec!["all-linear".into()] };
    let store = LoraStore::init(&c, &lcfg, 4, DType::F64, &Device::Cpu)?;
    randomise_b(&store, 1)?;
    let m = base(&c, DType::F64)?.with_lora(store)?;
    let grads = m.backward(&loss(&m)?)?;
    let vars = m.trainable_vars();
    let mut checked = 0;
    for (name, v) in
        vars.iter().filter(|(n, _)| n.contains("layers.0.self_attn.k_proj") || n.contains("layers.1.mlp.up_proj"))
    {
        let g = grads.get(v.as_tensor()).unwrap().flatten_all()?.to_vec1::<f64>()?;
        let orig = v.as_tensor().flatten_all()?.to_vec1::<f64>()?;
        for idx in [0, orig.len() / 2, orig.len() - 1] {
            let eps = 1e-5;
            let at = |delta: f64| -> Result<f64> {
                let mut w = orig.clone();
                w[idx] += delta;
                v.set(&Tensor::from_vec(w, v.shape(), &Device::Cpu)?)?;
                let l = loss(&m)?.to_scalar::<f64>()?;
                Ok(l)
            };
            let fd = (at(eps)? - at(-eps)?) / (2.0 * eps);
            v.set(&Tensor::from_vec(orig.clone(), v.shape(), &Device::Cpu)?)?;
            assert!((fd - g[idx]).abs() < 1e-6 * (1.0 + fd.abs()), "{name}[{idx}]: fd {fd} vs {}", g[idx]);
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
    Ok(())
}

#[test]
fn peft_files_round_trip_and_name_what_is_wrong() -> Result<()> {
    let c = cfg("qwen2");
    let lcfg =
        LoraConfig { rank: 4, alpha: 16.0, dropout: 0.05, target_modules: vec!["q_proj".into(), "o_proj".into()] };
    let store = LoraStore::init(&c, &lcfg, 5, DType::F32, &Device::Cpu)?;
    randomise_b(&store, 2)?;
    let d = tempfile::tempdir()?;
    store.save_peft(d.path(), "some/base")?;
    let ac: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.path().join("adapter_config.json"))?)?;
    assert_eq!(ac["peft_type"], "LORA");
    assert_eq!(ac["r"], 4);
    assert_eq!(ac["lora_alpha"], 16.0);
    assert_eq!(ac["target_modules"], serde_json::json!(["q_proj", "o_proj"]));
    assert_eq!(ac["base_model_name_or_path"], "some/base");
    let raw = candle_core::safetensors::load(d.path().join("adapter_model.safetensors"), &Device::Cpu)?;
    assert!(raw.contains_key("base_model.model.model.layers.1.self_attn.o_proj.lora_B.weight"));
    assert_eq!(raw["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"].dims(), &[4, 16]);
    let (back, base_name) = LoraStore::load_peft(d.path(), &c, 0, DType::F32, &Device::Cpu)?;
    assert_eq!(base_name, "some/base");
    assert_eq!(back.config, lcfg);
    for ((n1, v1), (n2, v2)) in store.named_vars().iter().zip(back.named_vars()) {
        assert_eq!(n1, &n2);
        assert_eq!(max_diff(v1.as_tensor(), v2.as_tensor())?, 0.0);
    }
    // Wrong rank for the model → the offending tensor is named.
    let other = ModelConfig { hidden_size: 32, ..c.clone() };
    let e = format!("{:#}", LoraStore::load_peft(d.path(), &other, 0, DType::F32, &Device::Cpu).err().unwrap());
    assert!(e.contains("lora_A.weight") && e.contains("shape"), "{e}");
    let bad = LoraConfig { target_modules: vec!["qkv".into()], ..lcfg };
    assert!(bad.validate().unwrap_err().to_string().contains("qkv"));
    Ok(())
}

#[test]
fn gradient_checkpointing_gives_the_same_gradients() -> Result<()> {
    // bf16 (the GPU dtype) runs through the same device-generic op; the same ops in the same
    // order give the same rounding, so it is held to the same tolerance.
    for (lora, fused, dt) in
        [(false, true, DType::F64), (true, true, DType::F64), (false, false, DType::F64), (true, false, DType::BF16)]
    {
        let c = cfg("qwen3");
        let make = || -> Result<Transformer> {
            let mut m = base(&c, dt)?;
            m.fused = fused;
            if lora {
                // Seeded: both models get the same adapter values.
                let s = LoraStore::init(&c, &LoraConfig::default(), 7, dt, &Device::Cpu)?;
                randomise_b(&s, 3)?;
                m = m.with_lora(s)?;
            }
            Ok(m)
        };
        let a = make()?;
        let mut b = make()?;
        b.checkpointing = true;
        let (la, lb) = (loss(&a)?, loss(&b)?);
        assert!(max_diff(&la, &lb)? < 1e-9);
        let before = oxrl_lm::model::RECOMPUTED_LAYERS.load(std::sync::atomic::Ordering::Relaxed);
        let (ga, gb) = (a.backward(&la)?, b.backward(&lb)?);
        let after = oxrl_lm::model::RECOMPUTED_LAYERS.load(std::sync::atomic::Ordering::Relaxed);
        assert!(after - before >= c.num_hidden_layers, "the checkpointed model recomputed no layer");
        let (va, vb) = (a.trainable_vars(), b.trainable_vars());
        assert!(!va.is_empty());
        for ((n, x), (_, y)) in va.iter().zip(&vb) {
            let gx = ga.get(x.as_tensor()).unwrap_or_else(|| panic!("{n}: no gradient without checkpointing"));
            let gy =
                gb.get(y.as_tensor()).unwrap_or_else(|| panic!("{n}: no gradient with checkpointing (lora={lora})"));
            let d = max_diff(gx, gy)?;
            assert!(d < 1e-9, "{n} (lora={lora}, fused={fused}, {dt:?}): {d}");
        }
    }
    Ok(())
}
