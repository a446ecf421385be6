//! A task over user data: JSONL or Parquet files (chosen by extension) of rows like
//! `{"prompt": …, "answer": …}` or `{"messages": [{"role", "content"}, …], "answer": …}` (field
//! names configurable, optional `solution` for SFT), verified with the [`crate::math_answer`]
//! verifier. Chat rows keep their messages in `Problem::meta["messages"]` for the policy's chat
//! template; a trailing assistant message is the SFT demonstration.

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
    /// Field holding a chat conversation (a list of `{role, content}`) instead of a prompt.
    #[serde(default)]
    pub messages_field: Option<String>,
    /// Field naming each row's task in multi-task data (kept as `meta.task`; TMN-Reweight
    /// normalises rewards per task).
    #[serde(default)]
    pub task_field: Option<String>,
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

/// Rows of a data file with where each came from (`file:line` for JSONL, `file: row N` for
/// Parquet).
fn read_rows(path: &Path) -> Result<Vec<(String, serde_json::Map<String, serde_json::Value>)>> {
    let is_parquet = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    let mut out = Vec::new();
    if is_parquet {
        use parquet::file::reader::SerializedFileReader;
        let f = std::fs::File::open(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let reader =
            SerializedFileReader::new(f).map_err(|e| anyhow::anyhow!("{}: not a Parquet file: {e}", path.display()))?;
        for (i, row) in reader.into_iter().enumerate() {
            let row = row.map_err(|e| anyhow::anyhow!("{}: row {}: {e}", path.display(), i + 1))?;
            match row.to_json_value() {
                serde_json::Value::Object(o) => out.push((format!("{}: row {}", path.display(), i + 1), o)),
                other => bail!("{}: row {}: expected a record, got {other}", path.display(), i + 1),
            }
        }
        return Ok(out);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    for (i, line) in text.lines().enumerate() {
        let ln = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| anyhow::anyhow!("{}:{ln}: invalid JSON: {e}", path.display()))?;
        let serde_json::Value::Object(obj) = v else { bail!("{}:{ln}: expected a JSON object", path.display()) };
        out.push((format!("{}:{ln}", path.display()), obj));
    }
    Ok(out)
}

/// Read problems from a JSONL or Parquet file. Errors name the file, the line (row) and the
/// reason.
pub fn read_problems(path: &Path, cfg: &JsonlConfig) -> Result<Vec<Problem>> {
    let mut out = Vec::new();
    for (at, obj) in read_rows(path)? {
        let field = |name: &str, required: bool| -> Result<Option<String>> {
            match obj.get(name) {
                None | Some(serde_json::Value::Null) if required => bail!("{at}: missing field `{name}`"),
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
                Some(other) => bail!("{at}: field `{name}` must be a string or number, got {other}"),
            }
        };
        let answer = field(&cfg.answer_field, true)?.unwrap();
        let mut meta = serde_json::Value::Null;
        let mut demo = None;
        let prompt = match &cfg.messages_field {
            Some(mf) => {
                let Some(serde_json::Value::Array(items)) = obj.get(mf) else {
                    bail!("{at}: field `{mf}` must be a list of {{role, content}} messages");
                };
                let mut msgs = Vec::with_capacity(items.len());
                for (k, m) in items.iter().enumerate() {
                    let role = m.get("role").and_then(|r| r.as_str());
                    let content = m.get("content").and_then(|c| c.as_str());
                    let (Some(role), Some(content)) = (role, content) else {
                        bail!("{at}: `{mf}[{k}]` needs string `role` and `content`");
                    };
                    msgs.push(serde_json::json!({"role": role, "content": content}));
                }
                if msgs.last().is_some_and(|m| m["role"] == "assistant") {
                    demo = msgs.pop().map(|m| m["content"].as_str().unwrap_or("").to_string());
                }
                let Some(user) = msgs.iter().rev().find(|m| m["role"] == "user") else {
                    bail!("{at}: `{mf}` has no user message");
                };
                let text = user["content"].as_str().unwrap_or("").to_string();
                meta = serde_json::json!({"messages": msgs});
                text
            }
            None => field(&cfg.prompt_field, true)?.unwrap(),
        };
        if prompt.trim().is_empty() {
            bail!("{at}: the prompt (`{}`) is empty", cfg.messages_field.as_deref().unwrap_or(&cfg.prompt_field));
        }
        let solution = match &cfg.solution_field {
            Some(f) => field(f, true)?.unwrap(),
            None => demo.unwrap_or_else(|| format!("answer: {answer}")),
        };
        if let Some(tf) = &cfg.task_field {
            let name = field(tf, true)?.unwrap();
            match &mut meta {
                serde_json::Value::Object(o) => {
                    o.insert("task".into(), serde_json::Value::String(name));
                }
                _ => meta = serde_json::json!({"task": name}),
            }
        }
        out.push(Problem { id: out.len() as u64, prompt, answer, solution, meta });
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
            ("{\"prompt\": \" \", \"answer\": 1}\n", ":1: the prompt (`prompt`) is empty"),
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

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
    }

    #[test]
    fn parquet_with_configured_fields() -> Result<()> {
        let c: JsonlConfig = serde_json::from_value(serde_json::json!({
            "train": fixture("plain.parquet"), "prompt_field": "question", "answer_field": "final", "test_fraction": 0.2
        }))?;
        let all = read_problems(&c.train, &c)?;
        assert_eq!(all.len(), 10);
        assert_eq!(all[3].prompt, "What is 3 + 4?");
        assert_eq!(all[3].answer, "7");
        assert_eq!(all[3].solution, "answer: 7");
        let t = JsonlTask::load(c, 0)?;
        assert_eq!((t.train_size(), t.test_problems().len()), (Some(8), 2));
        // A missing column is named with the file and row.
        let bad: JsonlConfig = serde_json::from_value(serde_json::json!({"train": fixture("plain.parquet")}))?;
        let e = read_problems(&bad.train, &bad).unwrap_err().to_string();
        assert!(e.contains("plain.parquet: row 1") && e.contains("missing field `answer`"), "{e}");
        Ok(())
    }

    #[test]
    fn chat_messages_from_parquet_and_jsonl() -> Result<()> {
        let c: JsonlConfig = serde_json::from_value(
            serde_json::json!({"train": fixture("chat.parquet"), "messages_field": "messages"}),
        )?;
        let all = read_problems(&c.train, &c)?;
        assert_eq!(all.len(), 6);
        let p = &all[2];
        assert_eq!(p.prompt, "What is 2 * 3?");
        assert_eq!(p.answer, "6");
        assert_eq!(p.solution, "answer: 6", "the trailing assistant turn is the demonstration");
        assert_eq!(
            p.meta["messages"],
            serde_json::json!([{"role": "system", "content": "Answer with a number."}, {"role": "user", "content": "What is 2 * 3?"}])
        );
        let d = tempfile::tempdir()?;
        let f = d.path().join("chat.jsonl");
        std::fs::write(&f, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"answer\": 1}\n{\"messages\": [{\"role\": \"user\"}], \"answer\": 1}\n")?;
        let c: JsonlConfig = serde_json::from_value(serde_json::json!({"train": f, "messages_field": "messages"}))?;
        let e = read_problems(&c.train, &c).unwrap_err().to_string();
        assert!(e.contains("chat.jsonl:2") && e.contains("`messages[0]` needs string `role` and `content`"), "{e}");
        // A task field goes to meta.task, beside the messages.
        std::fs::write(
            &f,
            "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"answer\": 1, \"kind\": \"qa\"}\n",
        )?;
        let c: JsonlConfig = serde_json::from_value(
            serde_json::json!({"train": f, "messages_field": "messages", "task_field": "kind"}),
        )?;
        let p = &read_problems(&c.train, &c)?[0];
        assert_eq!((p.meta["task"].as_str(), p.meta["messages"][0]["content"].as_str()), (Some("qa"), Some("hi")));
        Ok(())
    }
}
