//! A task over user data: JSONL files of `{"prompt": …, "answer": …}` (field names configurable,
//! optional `solution` for SFT), verified with the [`crate::math_answer`] verifier.

use crate::{math_answer, oxrl_rng, Problem, Task, Verdict};
use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlConfig {
    /// Training file (JSONL).
    pub train: PathBuf,
    /// Held-out file; without it, `test_fraction` of `train` is held out (seeded split).
    #[serde(default)]
    pub test: Option<PathBuf>,
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    #[serde(default = "default_prompt_field")]
    pub prompt_field: String,
    #[serde(default = "default_answer_field")]
    pub answer_field: String,
    /// Field holding a worked solution for SFT; without it the demonstration is `answer: <answer>`.
    #[serde(default)]
    pub solution_field: Option<String>,
    #[serde(default = "default_max_chars")]
    pub max_completion_chars: usize,
}

fn default_test_fraction() -> f64 {
    0.1
}
fn default_prompt_field() -> String {
    "prompt".into()
}
fn default_answer_field() -> String {
    "answer".into()
}
fn default_max_chars() -> usize {
    256
}

pub struct JsonlTask {
    train: Vec<Problem>,
    test: Vec<Problem>,
    max_chars: usize,
}

/// Read problems from a JSONL file. Errors name the file, the line and the reason.
pub fn read_problems(path: &Path, cfg: &JsonlConfig) -> Result<Vec<Problem>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let ln = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| anyhow::anyhow!("{}:{ln}: invalid JSON: {e}", path.display()))?;
        let Some(obj) = v.as_object() else { bail!("{}:{ln}: expected a JSON object", path.display()) };
        let field = |name: &str, required: bool| -> Result<Option<String>> {
            match obj.get(name) {
                None if required => bail!("{}:{ln}: missing field `{name}`", path.display()),
                None => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
                Some(other) => bail!("{}:{ln}: field `{name}` must be a string or number, got {other}", path.display()),
            }
        };
        let prompt = field(&cfg.prompt_field, true)?.unwrap();
        let answer = field(&cfg.answer_field, true)?.unwrap();
        if prompt.trim().is_empty() {
            bail!("{}:{ln}: field `{}` is empty", path.display(), cfg.prompt_field);
        }
        let solution = match &cfg.solution_field {
            Some(f) => field(f, true)?.unwrap(),
            None => format!("answer: {answer}"),
        };
        out.push(Problem { id: out.len() as u64, prompt, answer, solution, meta: serde_json::Value::Null });
    }
    if out.is_empty() {
        bail!("{}: no problems in the file", path.display());
    }
    Ok(out)
}

impl JsonlTask {
    pub fn load(cfg: JsonlConfig, _seed: u64) -> Result<Self> {
        if !(0.0..1.0).contains(&cfg.test_fraction) {
            bail!("task.test_fraction must be in [0, 1) (got {})", cfg.test_fraction);
        }
        let mut train = read_problems(&cfg.train, &cfg)?;
        let mut test = match &cfg.test {
            Some(p) => read_problems(p, &cfg)?,
            None => {
                let mut rng = oxrl_rng::rng(crate::SPLIT_SEED, "jsonl-split", 0);
                train.shuffle(&mut rng);
                let n_test = ((train.len() as f64) * cfg.test_fraction).round() as usize;
                if n_test >= train.len() {
                    bail!("{}: too few problems to hold out {n_test}", cfg.train.display());
                }
                train.split_off(train.len() - n_test)
            }
        };
        for (i, p) in train.iter_mut().enumerate() {
            p.id = i as u64;
        }
        for (i, p) in test.iter_mut().enumerate() {
            p.id = (1u64 << 40) + i as u64;
        }
        Ok(Self { train, test, max_chars: cfg.max_completion_chars })
    }
}

impl Task for JsonlTask {
    fn name(&self) -> &str {
        "jsonl"
    }
    fn train_problem(&self, index: u64) -> Problem {
        self.train[(index % self.train.len() as u64) as usize].clone()
    }
    fn train_size(&self) -> Option<usize> {
        Some(self.train.len())
    }
    fn test_problems(&self) -> &[Problem] {
        &self.test
    }
    fn verify(&self, problem: &Problem, completion: &str) -> Verdict {
        let Some(raw) = math_answer::extract(completion) else {
            return Verdict::bad_format("no answer found");
        };
        let canon = math_answer::canonical(&raw);
        if canon.is_empty() {
            return Verdict::bad_format(format!("`{raw}` is empty after normalisation"));
        }
        let ok = canon == math_answer::canonical(&problem.answer);
        Verdict::judged(ok, Some(canon), if ok { "" } else { "wrong value" })
    }
    fn max_completion_chars(&self) -> usize {
        self.max_chars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(train: PathBuf) -> JsonlConfig {
        serde_json::from_value(serde_json::json!({"train": train})).unwrap()
    }

    #[test]
    fn loads_splits_and_verifies() -> Result<()> {
        let d = tempfile::tempdir()?;
        let p = d.path().join("data.jsonl");
        let lines: Vec<String> =
            (0..20).map(|i| format!("{{\"prompt\": \"What is {i}+1?\", \"answer\": {}}}", i + 1)).collect();
        std::fs::write(&p, lines.join("\n") + "\n\n")?;
        let t = JsonlTask::load(cfg(p.clone()), 0)?;
        assert_eq!(t.train_size(), Some(18));
        assert_eq!(t.test_problems().len(), 2);
        let q = &t.test_problems()[0];
        let n: i64 = q.answer.parse()?;
        assert!(t.verify(q, &format!("so \\boxed{{{n}}}")).correct);
        assert!(t.verify(q, &format!("Answer: {n}.0 units")).correct);
        assert!(!t.verify(q, &format!("answer: {}", n + 1)).correct);
        assert!(!t.verify(q, "no idea").format_ok);
        // the same seed gives the same split
        assert_eq!(JsonlTask::load(cfg(p.clone()), 0)?.test_problems(), t.test_problems());
        Ok(())
    }

    #[test]
    fn malformed_lines_name_file_and_line() -> Result<()> {
        let d = tempfile::tempdir()?;
        let cases = [
            ("{\"prompt\": \"a\", \"answer\": 1}\n{\"prompt\": \"b\"\n", ":2: invalid JSON"),
            ("{\"prompt\": \"a\", \"answer\": 1}\n\n{\"prompt\": \"b\"}\n", ":3: missing field `answer`"),
            ("[1, 2]\n", ":1: expected a JSON object"),
            ("{\"prompt\": [1], \"answer\": 1}\n", ":1: field `prompt` must be a string"),
            ("{\"prompt\": \" \", \"answer\": 1}\n", ":1: field `prompt` is empty"),
            ("\n\n", "no problems"),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let p = d.path().join(format!("bad{i}.jsonl"));
            std::fs::write(&p, text)?;
            let err = JsonlTask::load(cfg(p.clone()), 0).err().expect("must fail").to_string();
            assert!(err.contains(&format!("bad{i}.jsonl")) && err.contains(want), "{err} lacks {want}");
        }
        Ok(())
    }
}
