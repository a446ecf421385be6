//! Hugging Face model directories: weights in one `model.safetensors` or sharded with
//! `model.safetensors.index.json`, in f32 / bf16 / f16, read and written.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// A dtype from its config spelling (`float32`/`f32`, `bfloat16`/`bf16`, `float16`/`f16`).
pub fn parse_dtype(s: &str) -> Result<DType> {
    Ok(match s {
        "float32" | "f32" | "fp32" => DType::F32,
        "bfloat16" | "bf16" => DType::BF16,
        "float16" | "f16" | "fp16" | "half" => DType::F16,
        "float64" | "f64" => DType::F64,
        other => bail!("dtype `{other}` is not supported (float32, bfloat16, float16)"),
    })
}

/// The `torch_dtype` spelling of a dtype.
pub fn torch_name(d: DType) -> &'static str {
    match d {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        DType::F64 => "float64",
        _ => "float32",
    }
}

/// Every tensor of a model directory, on the CPU in the stored dtype.
pub fn read_weights(dir: &Path) -> Result<HashMap<String, Tensor>> {
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    if single.exists() {
        return candle_core::safetensors::load(&single, &Device::Cpu)
            .with_context(|| format!("{}: cannot read safetensors", single.display()));
    }
    if !index.exists() {
        bail!("{}: no model.safetensors or model.safetensors.index.json", dir.display());
    }
    let text = std::fs::read_to_string(&index).with_context(|| format!("reading {}", index.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", index.display()))?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .with_context(|| format!("{}: no `weight_map` object", index.display()))?;
    let mut by_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, file) in map {
        let f = file.as_str().with_context(|| format!("{}: weight_map[{name}] is not a file name", index.display()))?;
        by_file.entry(f.to_string()).or_default().push(name.clone());
    }
    let mut out = HashMap::new();
    for (file, names) in by_file {
        let p = dir.join(&file);
        let mut shard = candle_core::safetensors::load(&p, &Device::Cpu)
            .with_context(|| format!("{}: cannot read shard listed in {}", p.display(), index.display()))?;
        for n in names {
            let t = shard
                .remove(&n)
                .with_context(|| format!("{}: tensor `{n}` listed in the index is missing", p.display()))?;
            out.insert(n, t);
        }
    }
    Ok(out)
}

/// Write tensors as `model.safetensors`, or as `model-0000k-of-0000n.safetensors` shards plus
/// `model.safetensors.index.json` when they exceed `max_shard_bytes` (0 = never shard), in
/// `dtype`. `tensors` lists names and element counts; `get` produces each tensor when its shard
/// is written, so only one shard's converted tensors are in memory at a time (a merged LoRA
/// model is merged tensor by tensor). Files are written to temporary names and renamed.
pub fn write_weights(
    dir: &Path,
    tensors: &[(String, usize)],
    get: impl Fn(&str) -> Result<Tensor>,
    dtype: DType,
    max_shard_bytes: usize,
) -> Result<()> {
    let mut plan: Vec<Vec<&str>> = vec![vec![]];
    let (mut size, mut total) = (0usize, 0usize);
    for (name, n) in tensors {
        let bytes = n * dtype.size_in_bytes();
        if max_shard_bytes > 0 && size > 0 && size + bytes > max_shard_bytes {
            plan.push(vec![]);
            size = 0;
        }
        size += bytes;
        total += bytes;
        plan.last_mut().unwrap().push(name);
    }
    let save = |path: &Path, names: &[&str]| -> Result<()> {
        let mut map = HashMap::with_capacity(names.len());
        for n in names {
            // Detached: a tensor computed from variables (a merged LoRA weight) must not keep
            // its inputs alive through the autograd graph while the shard is assembled.
            map.insert(n.to_string(), get(n)?.detach().to_dtype(dtype)?.to_device(&Device::Cpu)?);
        }
        crate::fsutil::write_atomic_with(path, |tmp| Ok(candle_core::safetensors::save(&map, tmp)?))
    };
    if plan.len() == 1 {
        return save(&dir.join("model.safetensors"), &plan[0]);
    }
    let n = plan.len();
    let mut weight_map = serde_json::Map::new();
    for (k, names) in plan.iter().enumerate() {
        let file = format!("model-{:05}-of-{:05}.safetensors", k + 1, n);
        save(&dir.join(&file), names)?;
        for name in names {
            weight_map.insert(name.to_string(), serde_json::Value::String(file.clone()));
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    crate::fsutil::write_atomic(
        &dir.join("model.safetensors.index.json"),
        serde_json::to_string_pretty(&index)?.as_bytes(),
    )
}
