//! LoRA: low-rank adapters on chosen projections, trained while the base stays frozen.
//!
//! Paper: Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models" (2021).
//! For a frozen projection `W` (`[out, in]`), the adapted projection is
//! `y = x·Wᵀ + (α/r)·dropout(x)·Aᵀ·Bᵀ` with `A` `[r, in]` ~ Kaiming-uniform (PEFT's default,
//! bound `1/√in`) and `B` `[out, r]` = 0, so a fresh adapter leaves the model unchanged.
//! Merging folds the update into the base: `W' = W + (α/r)·B·A`.
//!
//! Files follow PEFT's layout so other tools read them: `adapter_config.json` and
//! `adapter_model.safetensors` with tensors named
//! `base_model.model.model.layers.{i}.{self_attn|mlp}.{module}.lora_{A|B}.weight`.

use crate::config::ModelConfig;
use crate::params::ParamStore;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Projection names, in the order layers store their adapters.
pub const MODULES: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

/// LoRA settings (`[model.lora]` in a run config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    /// Projections to adapt: names from q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj,
    /// down_proj, or "all-linear" for all seven.
    pub target_modules: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self { rank: 8, alpha: 16.0, dropout: 0.0, target_modules: vec!["all-linear".into()] }
    }
}

impl LoraConfig {
    /// The adapted module names, expanded and checked.
    pub fn modules(&self) -> Result<Vec<&'static str>> {
        let mut out = Vec::new();
        for m in &self.target_modules {
            if m == "all-linear" {
                out.extend(MODULES);
                continue;
            }
            match MODULES.iter().find(|n| **n == m.as_str()) {
                Some(n) => out.push(*n),
                None => bail!("target module `{m}` is not one of {} or \"all-linear\"", MODULES.join(", ")),
            }
        }
        out.sort_by_key(|m| MODULES.iter().position(|n| n == m));
        out.dedup();
        Ok(out)
    }

    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 {
            bail!("`rank` must be > 0");
        }
        if self.alpha.is_nan() || self.alpha <= 0.0 {
            bail!("`alpha` must be > 0");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail!("`dropout` must be in [0, 1)");
        }
        if self.modules()?.is_empty() {
            bail!("`target_modules` is empty");
        }
        Ok(())
    }

    /// Adapter parameters for a model: r·(in + out) per adapted projection and layer.
    pub fn num_params(&self, model: &ModelConfig) -> Result<usize> {
        let per_layer: usize = self
            .modules()?
            .iter()
            .map(|m| {
                let (i, o) = proj_dims(model, m);
                self.rank * (i + o)
            })
            .sum();
        Ok(per_layer * model.num_hidden_layers)
    }

    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

/// One projection's adapter.
#[derive(Clone)]
pub struct Adapter {
    /// `[r, in]`
    pub a: Tensor,
    /// `[out, r]`
    pub b: Tensor,
    pub scale: f64,
}

fn group(module: &str) -> &'static str {
    if module.ends_with("_proj") && ["gate_proj", "up_proj", "down_proj"].contains(&module) {
        "mlp"
    } else {
        "self_attn"
    }
}

/// The PEFT name of an adapter matrix (`which` = "A" or "B").
pub fn peft_name(layer: usize, module: &str, which: &str) -> String {
    format!("base_model.model.model.layers.{layer}.{}.{module}.lora_{which}.weight", group(module))
}

/// (in, out) features of a projection.
fn proj_dims(cfg: &ModelConfig, module: &str) -> (usize, usize) {
    let (d, hd, h, kv, f) =
        (cfg.hidden_size, cfg.head_dim(), cfg.num_attention_heads, cfg.kv_heads(), cfg.intermediate_size);
    match module {
        "q_proj" => (d, h * hd),
        "k_proj" | "v_proj" => (d, kv * hd),
        "o_proj" => (h * hd, d),
        "gate_proj" | "up_proj" => (d, f),
        _ => (f, d),
    }
}

/// The adapters of a model: trainable variables by PEFT name.
pub struct LoraStore {
    pub config: LoraConfig,
    /// The base model directory (`base_model_name_or_path` in adapter_config.json).
    pub base_model: String,
    vars: BTreeMap<String, Var>,
    dropout_seed: u64,
    dropout_calls: AtomicU64,
}

impl LoraStore {
    /// Fresh adapters from `seed`: A Kaiming-uniform (bound 1/√in), B zero.
    pub fn init(model: &ModelConfig, config: &LoraConfig, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        config.validate()?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(oxrl_core::seed::derive(seed, "lora-init", 0));
        let r = config.rank;
        let mut vars = BTreeMap::new();
        for li in 0..model.num_hidden_layers {
            for m in config.modules()? {
                let (i, o) = proj_dims(model, m);
                let bound = 1.0 / (i as f32).sqrt();
                let a: Vec<f32> = (0..r * i).map(|_| rng.random_range(-bound..bound)).collect();
                let a = Tensor::from_vec(a, (r, i), device)?.to_dtype(dtype)?;
                vars.insert(peft_name(li, m, "A"), Var::from_tensor(&a)?);
                vars.insert(peft_name(li, m, "B"), Var::zeros((o, r), dtype, device)?);
            }
        }
        Ok(Self {
            config: config.clone(),
            base_model: String::new(),
            vars,
            dropout_seed: seed,
            dropout_calls: AtomicU64::new(0),
        })
    }

    /// The adapter of a layer's projection, if it has one.
    pub fn adapter(&self, layer: usize, module: &str) -> Result<Option<Adapter>> {
        let (a, b) = (self.vars.get(&peft_name(layer, module, "A")), self.vars.get(&peft_name(layer, module, "B")));
        match (a, b) {
            (Some(a), Some(b)) => {
                Ok(Some(Adapter { a: a.as_tensor().clone(), b: b.as_tensor().clone(), scale: self.config.scale() }))
            }
            (None, None) => Ok(None),
            _ => bail!("adapter of layer {layer} `{module}` has only one of lora_A / lora_B"),
        }
    }

    pub fn named_vars(&self) -> Vec<(String, Var)> {
        self.vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn num_elements(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// Key for the next training forward pass's dropout masks. Set the counter with
    /// [`Self::set_dropout_step`] at each step so resumed runs draw the same masks.
    pub fn next_dropout_key(&self) -> u64 {
        oxrl_core::seed::derive(self.dropout_seed, "lora-dropout", self.dropout_calls.fetch_add(1, Ordering::Relaxed))
    }

    pub fn set_dropout_step(&self, step: u64) {
        self.dropout_calls.store(step << 20, Ordering::Relaxed);
    }

    /// One base weight with its adapter merged in (`W + (α/r)·B·A`), or the weight itself.
    pub fn merged_tensor(&self, base: &ParamStore, name: &str) -> Result<Tensor> {
        let w = base.tensor(name)?.detach();
        let Some(rest) = name.strip_prefix("model.layers.") else { return Ok(w) };
        let Some((li, tail)) = rest.split_once('.') else { return Ok(w) };
        let Ok(li) = li.parse::<usize>() else { return Ok(w) };
        for m in MODULES {
            if tail == format!("{}.{m}.weight", group(m)) {
                if let Some(ad) = self.adapter(li, m)? {
                    let delta = (ad.b.detach().matmul(&ad.a.detach())? * ad.scale)?.to_dtype(w.dtype())?;
                    return Ok((w + delta)?);
                }
            }
        }
        Ok(w)
    }

    /// Base weights with the adapters merged in: `W + (α/r)·B·A` for every adapted projection.
    pub fn merge_into(&self, cfg: &ModelConfig, base: &ParamStore) -> Result<ParamStore> {
        let mut tensors = HashMap::new();
        for (name, _) in base.named_vars() {
            let t = self.merged_tensor(base, &name)?;
            tensors.insert(name, t);
        }
        ParamStore::from_tensors(cfg, tensors, base.dtype()?, &base.device)
    }

    /// Save the merged model's weights (merged tensor by tensor while writing; no full copy).
    pub fn save_merged(&self, base: &ParamStore, dir: &Path, dtype: DType, max_shard_bytes: usize) -> Result<()> {
        let list: Vec<(String, usize)> = base.named_vars().into_iter().map(|(k, v)| (k, v.elem_count())).collect();
        crate::hf::write_weights(dir, &list, |n| self.merged_tensor(base, n), dtype, max_shard_bytes)
    }

    /// Write `adapter_config.json` and `adapter_model.safetensors` (PEFT layout) into `dir`.
    pub fn save_peft(&self, dir: &Path, base_model: &str) -> Result<()> {
        let map: HashMap<String, Tensor> = self.vars.iter().map(|(k, v)| (k.clone(), v.as_detached_tensor())).collect();
        crate::fsutil::write_atomic_with(&dir.join("adapter_model.safetensors"), |tmp| {
            Ok(candle_core::safetensors::save(&map, tmp)?)
        })?;
        let cfg = serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": base_model,
            "r": self.config.rank,
            "lora_alpha": self.config.alpha,
            "lora_dropout": self.config.dropout,
            "target_modules": self.config.modules()?,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": false,
            "init_lora_weights": true,
            "use_rslora": false,
            "use_dora": false,
            "modules_to_save": null,
        });
        crate::fsutil::write_atomic(&dir.join("adapter_config.json"), serde_json::to_string_pretty(&cfg)?.as_bytes())
    }

    /// Read a PEFT adapter directory for a model of config `model`. Returns the adapters and the
    /// `base_model_name_or_path` it names.
    pub fn load_peft(
        dir: &Path,
        model: &ModelConfig,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<(Self, String)> {
        let cpath = dir.join("adapter_config.json");
        let text = std::fs::read_to_string(&cpath).with_context(|| format!("reading {}", cpath.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", cpath.display()))?;
        let bad = |k: &str| format!("{}: `{k}` is missing or invalid", cpath.display());
        if v.get("peft_type").and_then(|x| x.as_str()) != Some("LORA") {
            bail!("{}: `peft_type` must be \"LORA\"", cpath.display());
        }
        for (k, ok) in [("use_dora", false), ("use_rslora", false), ("fan_in_fan_out", false)] {
            if v.get(k).and_then(|x| x.as_bool()).unwrap_or(ok) != ok {
                bail!("{}: `{k}` = true is not supported", cpath.display());
            }
        }
        let targets: Vec<String> = match v.get("target_modules") {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .map(|x| x.as_str().map(String::from))
                .collect::<Option<_>>()
                .with_context(|| bad("target_modules"))?,
            _ => bail!(bad("target_modules")),
        };
        let config = LoraConfig {
            rank: v.get("r").and_then(|x| x.as_u64()).with_context(|| bad("r"))? as usize,
            alpha: v.get("lora_alpha").and_then(|x| x.as_f64()).with_context(|| bad("lora_alpha"))?,
            dropout: v.get("lora_dropout").and_then(|x| x.as_f64()).unwrap_or(0.0),
            target_modules: targets,
        };
        config.validate().with_context(|| format!("{}", cpath.display()))?;
        let wpath = dir.join("adapter_model.safetensors");
        let mut tensors = candle_core::safetensors::load(&wpath, &Device::Cpu)
            .with_context(|| format!("{}: cannot read safetensors", wpath.display()))?;
        let mut vars = BTreeMap::new();
        let mut missing = Vec::new();
        for li in 0..model.num_hidden_layers {
            for m in config.modules()? {
                let (i, o) = proj_dims(model, m);
                for (which, shape) in [("A", [config.rank, i]), ("B", [o, config.rank])] {
                    let name = peft_name(li, m, which);
                    // PEFT sometimes writes names with the adapter name (`lora_A.default.weight`).
                    let alt = name.replace(&format!("lora_{which}.weight"), &format!("lora_{which}.default.weight"));
                    match tensors.remove(&name).or_else(|| tensors.remove(&alt)) {
                        None => missing.push(name),
                        Some(t) => {
                            if t.dims() != shape {
                                bail!("{}: `{name}` has shape {:?}, expected {shape:?}", wpath.display(), t.dims());
                            }
                            let t = t.to_dtype(dtype)?.to_device(device)?;
                            vars.insert(name, Var::from_tensor(&t)?);
                        }
                    }
                }
            }
        }
        if !missing.is_empty() {
            bail!("{}: missing adapter tensors: {}", wpath.display(), missing.join(", "));
        }
        let base = v.get("base_model_name_or_path").and_then(|x| x.as_str()).unwrap_or("").to_string();
        Ok((
            Self { config, base_model: base.clone(), vars, dropout_seed: seed, dropout_calls: AtomicU64::new(0) },
            base,
        ))
    }
}

/// Inverted dropout with a mask drawn from `seed`: kept entries are scaled by 1/(1−p).
pub fn dropout(x: &Tensor, p: f64, seed: u64) -> Result<Tensor> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let keep = (1.0 / (1.0 - p)) as f32;
    let mask: Vec<f32> = (0..x.elem_count()).map(|_| if rng.random::<f64>() < p { 0.0 } else { keep }).collect();
    let m = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    Ok((x * m)?)
}
