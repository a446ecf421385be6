//! SWE-TOY: fix a seeded bug in a tiny Python module (the spec's shared CPU stand-in for
//! software-engineering agents).
//!
//! The repository is one file, `lib.py`, of three small functions; one has a seeded bug (a
//! swapped operator). Actions, one per line: `view lib.py` (the numbered source), `edit lib.py N
//! TEXT` (line N becomes TEXT, indentation kept as written), `run_tests` (the hidden tests, run
//! in the [`crate::sandbox`]: `passed k/n`), `submit` (ends the episode). The outcome is 1 when
//! the submitted file passes every hidden test, else 0. G-RA's outcome levels for SWE (no
//! submission < empty patch < failing patch < passing patch) are [`SweEnv::level`].

use crate::env::{demonstration, verify_in, EnvStep, Environment};
use crate::sandbox::{Limits, Sandbox};
use crate::{oxrl_rng::Rng, Problem, Splits, Task, Verdict};
use anyhow::{ensure, Result};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SweToyConfig {
    pub max_turns: usize,
    pub test_size: usize,
}

impl Default for SweToyConfig {
    fn default() -> Self {
        Self { max_turns: 8, test_size: 30 }
    }
}

/// (name, arguments, correct body, buggy body)
const FUNCS: [(&str, &str, &str, &str); 6] = [
    ("add", "a, b", "return a + b", "return a - b"),
    ("sub", "a, b", "return a - b", "return b - a"),
    ("mul", "a, b", "return a * b", "return a + b"),
    ("bigger", "a, b", "return a if a > b else b", "return a if a < b else b"),
    ("double", "a, b", "return 2 * a", "return 2 + a"),
    ("avg", "a, b", "return (a + b) / 2", "return a + b / 2"),
];

const INPUTS: [(i64, i64); 4] = [(3, 5), (7, 2), (-4, 6), (10, 10)];

pub struct SweEnv {
    lines: Vec<String>,
    original: Vec<String>,
    tests: String,
    ntests: usize,
    submitted: bool,
    passed: Option<bool>,
    max_turns: usize,
    sandbox: Arc<Sandbox>,
}

impl SweEnv {
    fn from_meta(meta: &serde_json::Value, max_turns: usize, sandbox: Arc<Sandbox>) -> Option<Self> {
        let src = meta.get("source")?.as_str()?;
        let lines: Vec<String> = src.lines().map(String::from).collect();
        Some(Self {
            original: lines.clone(),
            lines,
            tests: meta.get("tests")?.as_str()?.to_string(),
            ntests: meta.get("ntests")?.as_u64()? as usize,
            submitted: false,
            passed: None,
            max_turns,
            sandbox,
        })
    }

    /// Run the hidden tests on the current file: (passed, total), or None when the file does
    /// not even load.
    fn run_tests(&self) -> (usize, usize) {
        let total = self.ntests;
        let prog = format!("{}\n__ok = 0\n{}\nprint('oxrl-tests', __ok)\n", self.lines.join("\n"), self.tests);
        match self.sandbox.run(&prog, "") {
            Ok(r) => {
                let k =
                    r.stdout.lines().find_map(|l| l.strip_prefix("oxrl-tests ").and_then(|k| k.trim().parse().ok()));
                (k.unwrap_or(0), total)
            }
            Err(_) => (0, total),
        }
    }

    /// G-RA outcome level: −1 no submission, −0.5 empty patch, 0 failing patch, 1 passing.
    pub fn level(&self) -> f64 {
        match (self.submitted, self.lines == self.original, self.passed) {
            (false, _, _) => -1.0,
            (true, true, _) => -0.5,
            (true, false, Some(true)) => 1.0,
            _ => 0.0,
        }
    }
}

impl Environment for SweEnv {
    fn step(&mut self, action: &str) -> EnvStep {
        let ok = |obs: String| EnvStep { observation: obs, reward: 0.0, done: false, valid: true };
        let nothing = EnvStep { observation: "Nothing happens.".into(), reward: 0.0, done: false, valid: false };
        if self.submitted {
            return nothing;
        }
        let a = action.trim_end();
        if a.trim() == "view lib.py" {
            let numbered: Vec<String> = self.lines.iter().enumerate().map(|(i, l)| format!("{}|{l}", i + 1)).collect();
            return ok(numbered.join(" / "));
        }
        if a.trim() == "run_tests" {
            let (k, n) = self.run_tests();
            return ok(format!("passed {k}/{n}"));
        }
        if a.trim() == "submit" {
            let (k, n) = self.run_tests();
            self.submitted = true;
            self.passed = Some(k == n);
            return EnvStep { observation: format!("submitted, passed {k}/{n}"), reward: 0.0, done: true, valid: true };
        }
        if let Some(rest) = a.trim_start().strip_prefix("edit lib.py ") {
            let (num, text) = rest.split_once(' ').unwrap_or((rest, ""));
            if let Ok(n) = num.parse::<usize>() {
                if (1..=self.lines.len()).contains(&n) {
                    self.lines[n - 1] = text.to_string();
                    return ok(format!("line {n} edited"));
                }
            }
        }
        nothing
    }
    fn outcome(&self) -> f64 {
        (self.passed == Some(true) && self.lines != self.original) as u8 as f64
    }
    fn success(&self) -> bool {
        self.outcome() == 1.0
    }
    fn max_turns(&self) -> usize {
        self.max_turns
    }
}

pub struct SweToy {
    cfg: SweToyConfig,
    splits: Splits,
    sandbox: Arc<Sandbox>,
}

impl SweToy {
    pub fn new(cfg: SweToyConfig, seed: u64) -> Result<Self> {
        ensure!(cfg.max_turns >= 3, "task.max_turns must be >= 3 (view, edit, submit)");
        let sandbox = Sandbox::python(Limits { wall: Duration::from_secs(2), cpu_seconds: 2, ..Default::default() })?;
        sandbox.check()?;
        let mut t =
            Self { cfg, splits: Splits { seed, test: vec![], keys: Default::default() }, sandbox: Arc::new(sandbox) };
        t.splits = Splits::new(seed, t.cfg.test_size, |r| t.make(r));
        Ok(t)
    }

    fn make(&self, rng: &mut Rng) -> (String, Problem) {
        let mut idx: Vec<usize> = (0..FUNCS.len()).collect();
        for i in (1..idx.len()).rev() {
            idx.swap(i, rng.random_range(0..=i));
        }
        let chosen = &idx[..3];
        let buggy = rng.random_range(0..3);
        let (mut src, mut tests) = (Vec::new(), Vec::new());
        let mut fix = (0, String::new());
        for (k, &f) in chosen.iter().enumerate() {
            let (name, args, good, bad) = FUNCS[f];
            src.push(format!("def {name}({args}):"));
            src.push(format!("    {}", if k == buggy { bad } else { good }));
            if k == buggy {
                fix = (src.len(), format!("    {good}"));
            }
            for (a, b) in INPUTS {
                // Expected values from the correct body, evaluated in Rust.
                let want = match name {
                    "add" => format!("{}", a + b),
                    "sub" => format!("{}", a - b),
                    "mul" => format!("{}", a * b),
                    "bigger" => format!("{}", a.max(b)),
                    "double" => format!("{}", 2 * a),
                    _ => format!("{}", (a + b) as f64 / 2.0),
                };
                tests.push(format!("__ok += {name}({a}, {b}) == {want}"));
            }
        }
        // Tests that raise (a broken file) count as failures: guard each line.
        let tests: Vec<String> =
            tests.into_iter().map(|t| format!("try:\n    {t}\nexcept Exception:\n    pass")).collect();
        let source = src.join("\n");
        let meta = serde_json::json!({"source": source, "tests": tests.join("\n"), "ntests": tests.len()});
        let prompt = "fix the bug in lib.py".to_string();
        let actions = [
            "view lib.py".to_string(),
            format!("edit lib.py {} {}", fix.0, fix.1),
            "run_tests".into(),
            "submit".into(),
        ];
        let mut env = SweEnv::from_meta(&meta, self.cfg.max_turns, self.sandbox.clone()).expect("well-formed meta");
        let solution = demonstration(&mut env, &actions);
        (source.clone(), Problem { id: 0, prompt, answer: "success".into(), solution, meta })
    }
}

impl Task for SweToy {
    fn name(&self) -> &str {
        "swe-toy"
    }
    crate::generated_splits!();
    fn verify(&self, problem: &Problem, completion: &str) -> Verdict {
        verify_in(self.environment(problem), completion)
    }
    fn max_completion_chars(&self) -> usize {
        48
    }
    fn environment(&self, problem: &Problem) -> Option<Box<dyn Environment>> {
        SweEnv::from_meta(&problem.meta, self.cfg.max_turns, self.sandbox.clone())
            .map(|e| Box::new(e) as Box<dyn Environment>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demonstrations_fix_the_bug_and_levels_order_outcomes() {
        let t = SweToy::new(SweToyConfig { test_size: 4, ..Default::default() }, 1).unwrap();
        for i in 0..6 {
            let p = t.train_problem(i);
            let v = t.verify(&p, &p.solution);
            assert!(v.correct, "{}\n{}", p.meta["source"], p.solution);
            assert!(p.solution.contains("passed 12/12"), "{}", p.solution);
        }
        let p = t.train_problem(0);
        let env = || SweEnv::from_meta(&p.meta, 8, t.sandbox.clone()).unwrap();
        // Levels: no submission < empty patch < failing patch < passing patch.
        let mut e = env();
        let before = e.step("run_tests").observation;
        assert!(before.starts_with("passed ") && before != "passed 12/12", "{before}");
        assert_eq!(e.level(), -1.0);
        e.step("submit");
        assert_eq!((e.level(), e.outcome()), (-0.5, 0.0));
        let mut e = env();
        assert!(e.step("edit lib.py 2     return 0").valid);
        e.step("submit");
        assert_eq!(e.level(), 0.0);
        let fix = p.solution.lines().find(|l| l.starts_with("edit")).unwrap().to_string();
        let mut e = env();
        e.step(&fix);
        e.step("submit");
        assert_eq!((e.level(), e.outcome()), (1.0, 1.0));
        // A syntax error fails every test instead of crashing anything.
        let mut e = env();
        e.step("edit lib.py 1 def (");
        assert_eq!(e.step("run_tests").observation, "passed 0/12");
        for bad in ["edit lib.py 99 x", "edit lib.py x y", "view main.py", "rm -rf /"] {
            assert!(!e.step(bad).valid, "{bad}");
        }
    }
}
