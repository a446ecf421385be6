//! oxrl-tasks: verifiable tasks and rewards.
//!
//! A [`Task`] yields problems (an unbounded or finite train split and a fixed held-out test split),
//! each with a prompt, a reference answer and an SFT demonstration, and verifies completions into a
//! [`Verdict`] that reports correctness and format separately.
//!
//! Built-in tasks: [`multidigit`] (addition / subtraction / multiplication with written steps),
//! [`countdown`], [`arith`] (multi-operand arithmetic with hidden step solutions), [`grounding`]
//! (text GUI grounding with GUI-G1's box reward) and [`jsonl`]
//! (user data with the [`math_answer`] verifier).

/// The split methods of a [`Task`] whose problems come from a [`Splits`] field `splits` and a
/// generator method `make(&self, &mut Rng) -> (key, Problem)`: an unbounded train split and the
/// fixed held-out test split.
#[macro_export]
macro_rules! generated_splits {
    () => {
        fn train_problem(&self, index: u64) -> $crate::Problem {
            self.splits.train(index, |r| self.make(r))
        }
        fn train_size(&self) -> Option<usize> {
            None
        }
        fn test_problems(&self) -> &[$crate::Problem] {
            &self.splits.test
        }
    };
}

pub mod arith;
pub mod code;
pub mod countdown;
pub mod env;
pub mod grid;
pub mod grounding;
pub mod instruct;
pub mod jsonl;
pub mod math_answer;
pub mod multidigit;
pub mod rational;
pub mod sandbox;
pub mod shop;
pub mod ssl;
pub mod swe_toy;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// One problem of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Stable identifier (train index, or test index offset by 1<<40).
    pub id: u64,
    pub prompt: String,
    /// The reference answer, as the verifier compares it.
    pub answer: String,
    /// A demonstration completion for SFT (empty when the task has none).
    pub solution: String,
    /// Task-specific data the verifier needs (e.g. countdown's numbers).
    #[serde(default)]
    pub meta: serde_json::Value,
}

/// The verifier's judgement of one completion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Scalar reward (1 for correct, 0 otherwise, for the built-in tasks).
    pub reward: f32,
    pub correct: bool,
    /// The completion had the required form (an answer could be extracted and parsed).
    pub format_ok: bool,
    /// The extracted answer in canonical form, used for majority voting.
    pub answer: Option<String>,
    /// Why the completion was judged wrong (empty when correct).
    pub detail: String,
}

impl Verdict {
    pub fn judged(correct: bool, answer: Option<String>, detail: impl Into<String>) -> Self {
        Self { reward: correct as u8 as f32, correct, format_ok: answer.is_some(), answer, detail: detail.into() }
    }
    pub fn bad_format(detail: impl Into<String>) -> Self {
        Self { reward: 0.0, correct: false, format_ok: false, answer: None, detail: detail.into() }
    }
}

pub trait Task: Send + Sync {
    fn name(&self) -> &str;
    /// The `index`-th training problem; deterministic in (task seed, index). Finite datasets wrap.
    fn train_problem(&self, index: u64) -> Problem;
    /// Number of distinct training problems, when finite.
    fn train_size(&self) -> Option<usize>;
    /// The held-out split (never produced by `train_problem`).
    fn test_problems(&self) -> &[Problem];
    fn verify(&self, problem: &Problem, completion: &str) -> Verdict;
    /// Upper bound on a good completion's length in characters (a `max_new_tokens` hint).
    fn max_completion_chars(&self) -> usize;
    /// Process rewards in [0, 1], one per reasoning step the completion wrote (PPR / ReNorm);
    /// None when the task has no process verifier.
    fn process_rewards(&self, _problem: &Problem, _completion: &str) -> Option<Vec<f64>> {
        None
    }
    /// Agent tasks: the problem's environment in its start state (its prompt holds the first
    /// observation); completions are then multi-turn transcripts ([`env`]), and
    /// `max_completion_chars` is per turn. None for single-turn tasks.
    fn environment(&self, _problem: &Problem) -> Option<Box<dyn env::Environment>> {
        None
    }
    /// Rubric tasks: each rubric item of the problem with whether `completion` satisfies it
    /// (HeRL's hindsight guidance); None when the task has no rubric.
    fn rubric(&self, _problem: &Problem, _completion: &str) -> Option<Vec<(String, bool)>> {
        None
    }
    /// A scripted rewrite of the problem's prompt that its reference answer should still answer
    /// (SvS's CPU stand-in for the policy as problem writer); None when the task has none.
    fn variant(&self, _problem: &Problem, _rng: &mut oxrl_rng::Rng) -> Option<Variant> {
        None
    }
}

/// A rewritten prompt and what kind of rewrite it is, for diagnostics: "consistent" (same
/// answer), "broken" (the answer changed) or "leak" (the answer is in the text).
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub prompt: String,
    pub label: &'static str,
}

/// The built-in tasks' principle-based process reward: the completion's comma-separated steps
/// `lhs=rhs` (an optional `stepN:` label before the equation) each score 1 when the arithmetic
/// is true and 0 otherwise; segments without `=` (e.g. `swap`) and the `answer:` are not steps.
pub fn equation_step_rewards(completion: &str) -> Vec<f64> {
    let body = match completion.to_ascii_lowercase().rfind("answer:") {
        Some(i) => &completion[..i],
        None => completion,
    };
    body.split(',')
        .map(|seg| seg.rsplit(':').next().unwrap_or(seg).trim())
        .filter(|seg| seg.contains('='))
        .map(|seg| {
            let (lhs, rhs) = seg.split_once('=').unwrap_or((seg, ""));
            // A leading minus (a negative running value) reads as 0 − …, which agrees with
            // precedence here: the steps are one operation each.
            let eval = |e: &str| {
                let e = e.trim();
                let e = if e.starts_with('-') { format!("0{e}") } else { e.to_string() };
                countdown::evaluate(&e, false).map(|(v, _)| v)
            };
            let ok = match (eval(lhs), eval(rhs)) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            };
            ok as u8 as f64
        })
        .collect()
}

/// Text after the last `answer:` marker (case-insensitive) up to the end of its line, trimmed.
pub fn after_answer_marker(completion: &str) -> Option<&str> {
    let lower = completion.to_ascii_lowercase();
    let i = lower.rfind("answer:")?;
    let rest = &completion[i + "answer:".len()..];
    Some(rest.lines().next().unwrap_or("").trim())
}

/// Parse an integer answer (`-12`, `+7`, `1,234`), as the synthetic tasks write them.
pub fn parse_int(s: &str) -> Option<i128> {
    let s = s.trim().trim_end_matches('.');
    let t: String = s.chars().filter(|&c| c != ',').collect();
    if t.is_empty() || t.len() > 36 {
        return None;
    }
    t.parse::<i128>().ok()
}

/// Verify an integer-answer completion against `gold` (`answer: N` on the last marker).
pub fn verify_int_answer(completion: &str, gold: &str) -> Verdict {
    let Some(text) = after_answer_marker(completion) else {
        return Verdict::bad_format("no `answer:` marker");
    };
    let Some(v) = parse_int(text) else {
        return Verdict::bad_format(format!("`{text}` is not an integer"));
    };
    let correct = parse_int(gold) == Some(v);
    Verdict::judged(correct, Some(v.to_string()), if correct { "" } else { "wrong value" })
}

/// Seed of every held-out split: the test set depends only on the task's settings, never on the
/// run's seed, so runs with different seeds are evaluated on the same problems.
pub const SPLIT_SEED: u64 = 0x0A5C_5EED;

/// A synthetic task's held-out split (`n` problems with distinct keys, from [`SPLIT_SEED`]) and the
/// training stream that never produces one of them.
pub(crate) struct Splits {
    seed: u64,
    pub test: Vec<Problem>,
    keys: HashSet<String>,
}

impl Splits {
    pub fn new(seed: u64, n: usize, mut make: impl FnMut(&mut oxrl_rng::Rng) -> (String, Problem)) -> Self {
        let mut rng = oxrl_rng::rng(SPLIT_SEED, "test-split", 0);
        let mut keys = HashSet::new();
        let mut test = Vec::with_capacity(n);
        let mut tries = 0;
        while test.len() < n && tries < n * 100 {
            tries += 1;
            let (k, mut p) = make(&mut rng);
            if keys.insert(k) {
                p.id = (1u64 << 40) + test.len() as u64;
                test.push(p);
            }
        }
        Self { seed, test, keys }
    }

    /// The `index`-th training problem: drawn from its own seeded stream, redrawn while its key is
    /// held out.
    pub fn train(&self, index: u64, mut make: impl FnMut(&mut oxrl_rng::Rng) -> (String, Problem)) -> Problem {
        let mut rng = oxrl_rng::rng(self.seed, "train", index);
        loop {
            let (k, mut p) = make(&mut rng);
            if !self.keys.contains(&k) {
                p.id = index;
                return p;
            }
        }
    }
}

use oxrl_core::seed as oxrl_rng;

/// Configuration of a task, selected by `name` in the `[task]` table of a run config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum TaskConfig {
    /// Multi-digit addition with a written column-by-column solution.
    Addition(multidigit::MultiDigitConfig),
    Subtraction(multidigit::MultiDigitConfig),
    Multiplication(multidigit::MultiDigitConfig),
    Countdown(countdown::CountdownConfig),
    Arith(arith::ArithConfig),
    /// Text GUI grounding with GUI-G1's box reward.
    Grounding(grounding::GroundingConfig),
    /// Instruction following with a checkable rubric (HeRL's stand-in).
    Instruct(instruct::InstructConfig),
    /// Multi-turn text gridworld agent task (put the key in the box).
    Grid(grid::GridConfig),
    /// Python functions from examples, rewarded by hidden tests run in the sandbox.
    Code(code::CodeConfig),
    /// SSL4RL's self-supervised tasks on text-rendered digit images (rotation, jigsaw, …).
    Ssl(ssl::SslConfig),
    /// WebShop-style catalogue agent task.
    Shop(shop::ShopConfig),
    /// Fix a seeded bug in a tiny Python module (agent task; tests in the sandbox).
    #[serde(rename = "swe-toy")]
    SweToy(swe_toy::SweToyConfig),
    /// User data (JSONL or Parquet); `name = "dataset"` is accepted too.
    #[serde(alias = "dataset")]
    Jsonl(jsonl::JsonlConfig),
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig::Addition(Default::default())
    }
}

impl TaskConfig {
    pub fn name(&self) -> &'static str {
        match self {
            TaskConfig::Addition(_) => "addition",
            TaskConfig::Subtraction(_) => "subtraction",
            TaskConfig::Multiplication(_) => "multiplication",
            TaskConfig::Countdown(_) => "countdown",
            TaskConfig::Arith(_) => "arith",
            TaskConfig::Grounding(_) => "grounding",
            TaskConfig::Instruct(_) => "instruct",
            TaskConfig::Grid(_) => "grid",
            TaskConfig::Code(_) => "code",
            TaskConfig::Ssl(_) => "ssl",
            TaskConfig::Shop(_) => "shop",
            TaskConfig::SweToy(_) => "swe-toy",
            TaskConfig::Jsonl(_) => "jsonl",
        }
    }

    /// Default configuration for a task name (used by `oxrl eval --task NAME`).
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "addition" => TaskConfig::Addition(Default::default()),
            "subtraction" => TaskConfig::Subtraction(Default::default()),
            "multiplication" => TaskConfig::Multiplication(Default::default()),
            "countdown" => TaskConfig::Countdown(Default::default()),
            "arith" => TaskConfig::Arith(Default::default()),
            "grounding" => TaskConfig::Grounding(Default::default()),
            "instruct" => TaskConfig::Instruct(Default::default()),
            "grid" => TaskConfig::Grid(Default::default()),
            "code" => TaskConfig::Code(Default::default()),
            "ssl" => TaskConfig::Ssl(Default::default()),
            "shop" => TaskConfig::Shop(Default::default()),
            "swe-toy" => TaskConfig::SweToy(Default::default()),
            "jsonl" => anyhow::bail!("task `jsonl` needs a config with `train = \"file.jsonl\"`"),
            other => anyhow::bail!(
                "unknown task `{other}` (built-in: addition, subtraction, multiplication, countdown, arith, grounding, instruct, grid, shop, swe-toy, code, ssl, jsonl)"
            ),
        })
    }

    /// Build the task; `seed` drives the order of training problems (the held-out split depends only
    /// on the task settings). Errors name the offending key or file line.
    pub fn build(&self, seed: u64) -> Result<Box<dyn Task>> {
        use multidigit::Op;
        Ok(match self {
            TaskConfig::Addition(c) => Box::new(multidigit::MultiDigit::new(Op::Add, c.clone(), seed)?),
            TaskConfig::Subtraction(c) => Box::new(multidigit::MultiDigit::new(Op::Sub, c.clone(), seed)?),
            TaskConfig::Multiplication(c) => Box::new(multidigit::MultiDigit::new(Op::Mul, c.clone(), seed)?),
            TaskConfig::Countdown(c) => Box::new(countdown::Countdown::new(c.clone(), seed)?),
            TaskConfig::Arith(c) => Box::new(arith::Arith::new(c.clone(), seed)?),
            TaskConfig::Grounding(c) => Box::new(grounding::Grounding::new(c.clone(), seed)?),
            TaskConfig::Instruct(c) => Box::new(instruct::Instruct::new(c.clone(), seed)?),
            TaskConfig::Grid(c) => Box::new(grid::Grid::new(c.clone(), seed)?),
            TaskConfig::Code(c) => Box::new(code::Code::new(c.clone(), seed)?),
            TaskConfig::Ssl(c) => Box::new(ssl::Ssl::new(c.clone(), seed)?),
            TaskConfig::Shop(c) => Box::new(shop::Shop::new(c.clone(), seed)?),
            TaskConfig::SweToy(c) => Box::new(swe_toy::SweToy::new(c.clone(), seed)?),
            TaskConfig::Jsonl(c) => Box::new(jsonl::JsonlTask::load(c.clone(), seed)?),
        })
    }
}

#[cfg(test)]
mod process_tests {
    use super::*;

    #[test]
    fn equation_steps_are_checked() {
        assert_eq!(equation_step_rewards("step1: 3*4=12,step2: 12+5=18,answer: 18"), vec![1.0, 0.0]);
        assert_eq!(equation_step_rewards("swap,7-5-0=2,answer: 2"), vec![1.0]);
        assert_eq!(equation_step_rewards("answer: 5"), Vec::<f64>::new());
        assert_eq!(equation_step_rewards("9/3=3,x=4,answer: (9/3)"), vec![1.0, 0.0]);
        // every built-in task's reference solution is fully valid
        let tasks: Vec<Box<dyn Task>> = vec![
            Box::new(arith::Arith::new(Default::default(), 1).unwrap()),
            Box::new(countdown::Countdown::new(Default::default(), 1).unwrap()),
            Box::new(multidigit::MultiDigit::new(multidigit::Op::Mul, Default::default(), 1).unwrap()),
            Box::new(multidigit::MultiDigit::new(multidigit::Op::Sub, Default::default(), 1).unwrap()),
        ];
        for t in &tasks {
            for i in 0..50 {
                let p = t.train_problem(i);
                let r = t.process_rewards(&p, &p.solution).unwrap();
                assert!(!r.is_empty() && r.iter().all(|&x| x == 1.0), "{}: {} {r:?}", t.name(), p.solution);
            }
        }
    }
}
