//! Run configuration: one TOML file per run, every field typed, unknown keys rejected with the
//! file, line and key; `--set key=value` overrides; semantic checks name the key and the reason.

use anyhow::{anyhow, bail, Context, Result};
use oxrl_core::optim::ScheduleKind;
use oxrl_tasks::TaskConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub model: ModelSection,
    #[serde(default)]
    pub task: TaskConfig,
    #[serde(default)]
    pub sft: SftConfig,
    #[serde(default)]
    pub eval: EvalConfig,
}

fn default_name() -> String {
    "run".into()
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            name: default_name(),
            seed: 0,
            model: Default::default(),
            task: Default::default(),
            sft: Default::default(),
            eval: Default::default(),
        }
    }
}

/// The policy model: the built-in tiny transformer (sizes overridable) or a checkpoint to start from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// Start from this checkpoint directory instead of a fresh model.
    pub init: Option<PathBuf>,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub rope_theta: f64,
}

impl Default for ModelSection {
    fn default() -> Self {
        let t = oxrl_lm::ModelConfig::tiny(100);
        Self {
            init: None,
            hidden_size: t.hidden_size,
            intermediate_size: t.intermediate_size,
            num_hidden_layers: t.num_hidden_layers,
            num_attention_heads: t.num_attention_heads,
            num_key_value_heads: t.kv_heads(),
            max_position_embeddings: t.max_position_embeddings,
            tie_word_embeddings: t.tie_word_embeddings,
            rope_theta: t.rope_theta,
        }
    }
}

impl ModelSection {
    pub fn model_config(&self, vocab_size: usize) -> oxrl_lm::ModelConfig {
        let mut c = oxrl_lm::ModelConfig::tiny(vocab_size);
        c.hidden_size = self.hidden_size;
        c.intermediate_size = self.intermediate_size;
        c.num_hidden_layers = self.num_hidden_layers;
        c.num_attention_heads = self.num_attention_heads;
        c.num_key_value_heads = Some(self.num_key_value_heads);
        c.max_position_embeddings = self.max_position_embeddings;
        c.tie_word_embeddings = self.tie_word_embeddings;
        c.rope_theta = self.rope_theta;
        c
    }
}

/// Optimiser and schedule settings shared by SFT and RL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SftConfig {
    pub steps: u64,
    /// Problems (sequences) per optimiser step.
    pub batch_size: usize,
    pub lr: f64,
    pub min_lr_ratio: f64,
    pub warmup_steps: u64,
    pub schedule: ScheduleKind,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Global gradient-norm clip (0 = off).
    pub grad_clip: f64,
    /// Held-out evaluation every N steps (0 = only at the end).
    pub eval_every: u64,
    /// Write a checkpoint every N steps (0 = only at the end).
    pub checkpoint_every: u64,
}

impl Default for SftConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            batch_size: 64,
            lr: 2e-3,
            min_lr_ratio: 0.1,
            warmup_steps: 50,
            schedule: ScheduleKind::Cosine,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            grad_clip: 1.0,
            eval_every: 0,
            checkpoint_every: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// The k of pass@k and maj@k; max(k) samples are drawn per problem.
    pub k: Vec<usize>,
    /// Sampling temperature for pass@k / maj@k (accuracy is always greedy).
    pub temperature: f64,
    pub top_k: usize,
    pub top_p: f64,
    pub min_p: f64,
    /// 0 = derived from the task's longest good completion.
    pub max_new_tokens: usize,
    /// Evaluate at most this many held-out problems (0 = all).
    pub max_problems: usize,
    /// Sequences per generation batch.
    pub batch_size: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            k: vec![1, 8],
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            max_new_tokens: 0,
            max_problems: 0,
            batch_size: 512,
        }
    }
}

/// Apply `key.path=value` to a TOML table; the value is parsed as TOML, else taken as a string.
pub fn apply_override(table: &mut toml::Table, spec: &str) -> Result<()> {
    let (key, raw) = spec.split_once('=').ok_or_else(|| anyhow!("--set `{spec}`: expected key=value"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|p| p.is_empty()) {
        bail!("--set `{spec}`: invalid key `{key}`");
    }
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").unwrap(),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    let mut cur = table;
    for (i, p) in parts[..parts.len() - 1].iter().enumerate() {
        let entry = cur.entry(p.to_string()).or_insert_with(|| toml::Value::Table(Default::default()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| anyhow!("--set `{spec}`: `{}` is not a table", parts[..=i].join(".")))?;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

impl RunConfig {
    /// Load from an optional file plus overrides, then validate.
    pub fn load(path: Option<&Path>, sets: &[String]) -> Result<Self> {
        let (origin, text) = match path {
            Some(p) => (
                p.display().to_string(),
                std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))?,
            ),
            None => ("<defaults>".to_string(), String::new()),
        };
        // Parse the file alone first so errors carry its line and column.
        let base: RunConfig = toml::from_str(&text).map_err(|e| anyhow!("{origin}: {e}"))?;
        let cfg = if sets.is_empty() {
            base
        } else {
            let mut table: toml::Table = toml::from_str(&text).map_err(|e| anyhow!("{origin}: {e}"))?;
            for s in sets {
                apply_override(&mut table, s)?;
            }
            RunConfig::deserialize(toml::Value::Table(table))
                .map_err(|e| anyhow!("{origin} with --set {}: {e}", sets.join(" ")))?
        };
        cfg.validate().map_err(|e| anyhow!("{origin}: {e}"))?;
        Ok(cfg)
    }

    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// Semantic checks, naming the key and the reason.
    pub fn validate(&self) -> Result<()> {
        fn check(ok: bool, key: &str, why: String) -> Result<()> {
            if ok {
                Ok(())
            } else {
                bail!("key `{key}`: {why}")
            }
        }
        check(
            !self.name.is_empty() && self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "name",
            format!("`{}` must be non-empty and use only letters, digits, '-', '_' and '.'", self.name),
        )?;
        let s = &self.sft;
        check(s.batch_size > 0, "sft.batch_size", "must be > 0".into())?;
        check(s.lr > 0.0 && s.lr.is_finite(), "sft.lr", format!("must be > 0 (got {})", s.lr))?;
        check(
            (0.0..=1.0).contains(&s.min_lr_ratio),
            "sft.min_lr_ratio",
            format!("must be in [0, 1] (got {})", s.min_lr_ratio),
        )?;
        check(s.weight_decay >= 0.0, "sft.weight_decay", format!("must be >= 0 (got {})", s.weight_decay))?;
        check((0.0..1.0).contains(&s.beta1), "sft.beta1", format!("must be in [0, 1) (got {})", s.beta1))?;
        check((0.0..1.0).contains(&s.beta2), "sft.beta2", format!("must be in [0, 1) (got {})", s.beta2))?;
        check(s.eps > 0.0, "sft.eps", format!("must be > 0 (got {})", s.eps))?;
        check(s.grad_clip >= 0.0, "sft.grad_clip", format!("must be >= 0 (got {})", s.grad_clip))?;
        let e = &self.eval;
        check(
            !e.k.is_empty() && e.k.iter().all(|&k| k >= 1),
            "eval.k",
            format!("must be a non-empty list of k >= 1 (got {:?})", e.k),
        )?;
        check(e.temperature >= 0.0, "eval.temperature", format!("must be >= 0 (got {})", e.temperature))?;
        check(e.top_p > 0.0 && e.top_p <= 1.0, "eval.top_p", format!("must be in (0, 1] (got {})", e.top_p))?;
        check((0.0..1.0).contains(&e.min_p), "eval.min_p", format!("must be in [0, 1) (got {})", e.min_p))?;
        check(e.batch_size > 0, "eval.batch_size", "must be > 0".into())?;
        check(
            *e.k.iter().max().unwrap() == 1 || e.temperature > 0.0,
            "eval.temperature",
            "pass@k with k > 1 needs sampling: set eval.temperature > 0".into(),
        )?;
        if self.model.init.is_none() {
            self.model.model_config(100).validate().map_err(|e| anyhow!("section `model`: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str, sets: &[&str]) -> Result<RunConfig> {
        let d = tempfile::tempdir()?;
        let p = d.path().join("c.toml");
        std::fs::write(&p, text)?;
        RunConfig::load(Some(&p), &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_and_overrides() -> Result<()> {
        let c = load_str(
            "name = \"x\"\n[task]\nname = \"countdown\"\nnumbers = 4\n[sft]\nsteps = 5\n",
            &["sft.lr=0.5", "eval.k=[1,4]"],
        )?;
        assert_eq!(c.sft.steps, 5);
        assert_eq!(c.sft.lr, 0.5);
        assert_eq!(c.eval.k, vec![1, 4]);
        match &c.task {
            TaskConfig::Countdown(cd) => assert_eq!(cd.numbers, 4),
            other => panic!("{other:?}"),
        }
        // resolved config round-trips
        let again: RunConfig = toml::from_str(&c.to_toml()?)?;
        assert_eq!(again, c);
        let c = load_str("", &["task.name=arith", "task.operands=5", "name=abc"])?;
        assert_eq!(c.name, "abc");
        assert!(matches!(c.task, TaskConfig::Arith(ref a) if a.operands == 5));
        Ok(())
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let err = |text: &str, sets: &[&str]| format!("{:#}", load_str(text, sets).unwrap_err());
        let e = err("name = \"x\"\n[sft]\nstepz = 3\n", &[]);
        assert!(e.contains("c.toml") && e.contains("line 3") && e.contains("stepz"), "{e}");
        let e = err("[sft]\nlr = -1.0\n", &[]);
        assert!(e.contains("c.toml") && e.contains("sft.lr") && e.contains("must be > 0"), "{e}");
        let e = err("[task]\nname = \"nope\"\n", &[]);
        assert!(e.contains("line 2") && e.contains("nope"), "{e}");
        let e = err("[task]\nname = \"addition\"\nnumbers = 3\n", &[]);
        assert!(e.contains("numbers"), "{e}");
        let e = err("[sft]\nsteps = \"many\"\n", &[]);
        assert!(e.contains("line 2") && e.contains("steps"), "{e}");
        let e = err("", &["sft.bogus=1"]);
        assert!(e.contains("bogus") && e.contains("--set"), "{e}");
        let e = err("", &["novalue"]);
        assert!(e.contains("expected key=value"), "{e}");
        let e = err("[eval]\nk = [1, 8]\ntemperature = 0.0\n", &[]);
        assert!(e.contains("eval.temperature"), "{e}");
        let e = err("[model]\nnum_attention_heads = 3\n", &[]);
        assert!(e.contains("model") && e.contains("num_attention_heads"), "{e}");
        let e = err("name = \"a b\"\n", &[]);
        assert!(e.contains("key `name`"), "{e}");
        let e = err("this is not toml", &[]);
        assert!(e.contains("c.toml") && e.contains("line 1"), "{e}");
    }
}
