//! CODE: write a Python function from input/output examples; the reward runs the program in the
//! [`crate::sandbox`] against hidden tests.
//!
//! Prompt: `f(1)=5 f(2)=7 f(4)=11 def f(x):` — the completion is the function body
//! (`return 2*x+3`). The verifier writes `def f(x):` + the completion + a harness that calls
//! `f` on held-back inputs and prints a per-run nonce with the number passed (so a program
//! cannot print its own score), runs it under the sandbox's limits (time, memory, no network)
//! and rewards the fraction of tests passed. A program that crashes, loops or is cut off scores
//! 0 with the reason in the verdict's detail — the trainer never sees an error from it.

use crate::sandbox::{Exit, Limits, Sandbox};
use crate::{oxrl_rng::Rng, Problem, Splits, Task, Verdict};
use anyhow::{ensure, Result};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CodeConfig {
    /// Examples shown in the prompt and hidden tests run by the verifier.
    pub examples: usize,
    pub tests: usize,
    /// Sandbox limits per verification.
    pub wall_ms: u64,
    pub memory_mb: u64,
    pub test_size: usize,
}

impl Default for CodeConfig {
    fn default() -> Self {
        Self { examples: 3, tests: 4, wall_ms: 2000, memory_mb: 512, test_size: 100 }
    }
}

pub struct Code {
    cfg: CodeConfig,
    splits: Splits,
    sandbox: Sandbox,
}

impl Code {
    pub fn new(cfg: CodeConfig, seed: u64) -> Result<Self> {
        ensure!(cfg.examples >= 1 && cfg.tests >= 1, "task.examples and task.tests must be >= 1");
        ensure!(cfg.wall_ms >= 100 && cfg.memory_mb >= 64, "task.wall_ms must be >= 100 and task.memory_mb >= 64");
        let limits = Limits {
            wall: Duration::from_millis(cfg.wall_ms),
            cpu_seconds: cfg.wall_ms.div_ceil(1000),
            memory_bytes: cfg.memory_mb << 20,
            ..Default::default()
        };
        let sandbox = Sandbox::python(limits)?;
        sandbox.check()?;
        let mut t = Self { cfg, splits: Splits { seed, test: vec![], keys: Default::default() }, sandbox };
        t.splits = Splits::new(seed, t.cfg.test_size, |r| t.make(r));
        Ok(t)
    }

    fn make(&self, rng: &mut Rng) -> (String, Problem) {
        let (a, b) = (rng.random_range(1..=9i64), rng.random_range(0..=9i64));
        let n = self.cfg.examples + self.cfg.tests;
        let mut xs: Vec<i64> = Vec::with_capacity(n);
        while xs.len() < n {
            let x = rng.random_range(0..=12);
            if !xs.contains(&x) {
                xs.push(x);
            }
        }
        let shown: Vec<String> = xs[..self.cfg.examples].iter().map(|x| format!("f({x})={}", a * x + b)).collect();
        let tests: Vec<[i64; 2]> = xs[self.cfg.examples..].iter().map(|&x| [x, a * x + b]).collect();
        let prompt = format!("{} def f(x):", shown.join(" "));
        let solution = if b == 0 { format!("return {a}*x") } else { format!("return {a}*x+{b}") };
        let meta = serde_json::json!({ "tests": tests });
        (format!("{a} {b} {xs:?}"), Problem { id: 0, prompt, answer: solution.clone(), solution, meta })
    }

    /// The program the sandbox runs for a completion, and the nonce its score line starts with.
    pub fn program(problem: &Problem, completion: &str) -> (String, String) {
        let tests = problem.meta.get("tests").cloned().unwrap_or_default();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in completion.bytes().chain(problem.id.to_le_bytes()) {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        let nonce = format!("oxrl-{h:016x}");
        let body: String = completion.lines().map(|l| format!("    {}\n", l.trim_end())).collect();
        let prog = format!(
            "def f(x):\n{body}\n\
             def __oxrl_score():\n    ok = 0\n    for x, want in {tests}:\n        try:\n            ok += f(x) == want\n        except Exception:\n            pass\n    return ok\n\
             print('{nonce}', __oxrl_score())\n"
        );
        (prog, nonce)
    }
}

impl Task for Code {
    fn name(&self) -> &str {
        "code"
    }
    crate::generated_splits!();
    fn verify(&self, problem: &Problem, completion: &str) -> Verdict {
        let n = problem.meta.get("tests").and_then(|t| t.as_array()).map_or(0, |t| t.len());
        if n == 0 {
            return Verdict::bad_format("the problem has no tests");
        }
        let (prog, nonce) = Self::program(problem, completion);
        let r = match self.sandbox.run(&prog, "") {
            Ok(r) => r,
            Err(e) => return Verdict::bad_format(format!("sandbox: {e:#}")),
        };
        let passed =
            r.stdout.lines().rev().find_map(|l| l.strip_prefix(&nonce).and_then(|s| s.trim().parse::<usize>().ok()));
        match (r.exit, passed) {
            (Exit::Code(0), Some(k)) => Verdict {
                reward: k.min(n) as f32 / n as f32,
                correct: k >= n,
                format_ok: true,
                answer: Some(completion.trim().to_string()),
                detail: if k >= n { String::new() } else { format!("{k}/{n} tests passed") },
            },
            (exit, _) => {
                let why = match exit {
                    Exit::TimedOut => "timed out".to_string(),
                    Exit::CpuLimit => "timed out (CPU limit)".to_string(),
                    Exit::Signal(s) => format!("killed by signal {s}"),
                    Exit::Code(c) => format!("exit {c}: {}", r.stderr.lines().last().unwrap_or("")),
                };
                Verdict::bad_format(why)
            }
        }
    }
    fn max_completion_chars(&self) -> usize {
        16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewards_tests_passed_and_zero_for_broken_programs() {
        let t = Code::new(CodeConfig { wall_ms: 1000, test_size: 5, ..Default::default() }, 0).unwrap();
        let p = t.train_problem(0);
        let v = t.verify(&p, &p.solution);
        assert!(v.correct && v.reward == 1.0, "{}: {} ({})", p.prompt, p.solution, v.detail);
        // A constant function passes at most the tests whose value it happens to match.
        let wrong = t.verify(&p, "return 0");
        assert!(!wrong.correct && wrong.format_ok && wrong.reward < 1.0);
        // Crashes, loops and early exits score 0 with the reason; an exception inside f (here a
        // MemoryError at the sandbox's memory cap) fails that test only.
        for (bad, why) in [
            ("return (", Some("exit 1")),
            ("while True:\n    pass", Some("timed out")),
            ("import os\nos._exit(0)", Some("exit 0")),
            ("return [0] * 10**10", None),
        ] {
            let v = t.verify(&p, bad);
            assert!(v.reward == 0.0 && !v.correct, "{bad}: {v:?}");
            match why {
                Some(w) => assert!(!v.format_ok && v.detail.contains(w), "{bad}: {}", v.detail),
                None => assert!(v.format_ok && v.detail == "0/4 tests passed", "{bad}: {}", v.detail),
            }
        }
        // Printing a fake score line does not count: the nonce depends on the completion.
        let v = t.verify(&p, "print('oxrl-0000000000000000', 99)\n    return 0");
        assert!(!v.correct);
    }
}
