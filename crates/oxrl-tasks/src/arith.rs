//! ARITH: multi-operand arithmetic `a op b op c = ?` with a hidden numbered step solution — the
//! shared CPU stand-in of specs/rewards-data-agents.md.
//!
//! Prompt `3*4+5-2=`; reference solution `step1: 3*4=12,step2: 12+5=17,step3: 17-2=15,answer: 15`
//! (multiplications first, left to right, then additions and subtractions left to right). The
//! verifier is an exact match of the final integer. Difficulty knob: the number of operands (2..8).

use crate::{oxrl_rng::Rng, verify_int_answer, Problem, Splits, Task, Verdict};
use anyhow::{ensure, Result};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArithConfig {
    /// Number of operands (2..=8).
    pub operands: usize,
    /// Minimum number of operands (defaults to `operands`).
    pub min_operands: Option<usize>,
    /// Operands are drawn from 1..=max_operand.
    pub max_operand: i64,
    /// Operators to draw from, any of "+", "-", "*".
    pub ops: Vec<String>,
    pub test_size: usize,
}

impl Default for ArithConfig {
    fn default() -> Self {
        Self {
            operands: 3,
            min_operands: None,
            max_operand: 9,
            ops: vec!["+".into(), "-".into(), "*".into()],
            test_size: 200,
        }
    }
}

pub struct Arith {
    cfg: ArithConfig,
    ops: Vec<char>,
    splits: Splits,
}

/// The numbered steps of evaluating `nums[0] ops[0] nums[1] …` with precedence, and the result.
pub fn steps(nums: &[i64], ops: &[char]) -> (i64, Vec<String>) {
    let mut vals = nums.to_vec();
    let mut ops = ops.to_vec();
    let mut out = Vec::new();
    let mut i = 0;
    while i < ops.len() {
        if ops[i] == '*' {
            let r = vals[i] * vals[i + 1];
            out.push(format!("{}*{}={r}", vals[i], vals[i + 1]));
            vals.splice(i..i + 2, [r]);
            ops.remove(i);
        } else {
            i += 1;
        }
    }
    let mut acc = vals[0];
    for (o, v) in ops.iter().zip(&vals[1..]) {
        let r = if *o == '+' { acc + v } else { acc - v };
        out.push(format!("{acc}{o}{v}={r}"));
        acc = r;
    }
    let numbered = out.into_iter().enumerate().map(|(i, s)| format!("step{}: {s}", i + 1)).collect();
    (acc, numbered)
}

impl Arith {
    pub fn new(cfg: ArithConfig, seed: u64) -> Result<Self> {
        ensure!((2..=8).contains(&cfg.operands), "task.operands must be in 2..=8 (got {})", cfg.operands);
        let lo = cfg.min_operands.unwrap_or(cfg.operands);
        ensure!(lo >= 2 && lo <= cfg.operands, "task.min_operands must be in 2..=operands (got {lo})");
        ensure!(cfg.max_operand >= 1, "task.max_operand must be >= 1");
        ensure!(!cfg.ops.is_empty(), "task.ops must not be empty");
        let mut ops = Vec::new();
        for o in &cfg.ops {
            match o.as_str() {
                "+" | "-" | "*" => ops.push(o.chars().next().unwrap()),
                other => anyhow::bail!("task.ops: `{other}` is not one of \"+\", \"-\", \"*\""),
            }
        }
        let mut t = Self { cfg, ops, splits: Splits { seed, test: vec![], keys: Default::default() } };
        t.splits = Splits::new(seed, t.cfg.test_size, |r| t.make(r));
        Ok(t)
    }

    fn make(&self, rng: &mut Rng) -> (String, Problem) {
        let lo = self.cfg.min_operands.unwrap_or(self.cfg.operands);
        let k = rng.random_range(lo..=self.cfg.operands);
        let nums: Vec<i64> = (0..k).map(|_| rng.random_range(1..=self.cfg.max_operand)).collect();
        let ops: Vec<char> = (1..k).map(|_| self.ops[rng.random_range(0..self.ops.len())]).collect();
        let mut prompt = nums[0].to_string();
        for (o, n) in ops.iter().zip(&nums[1..]) {
            prompt.push(*o);
            prompt.push_str(&n.to_string());
        }
        prompt.push('=');
        let (ans, st) = steps(&nums, &ops);
        let solution = format!("{},answer: {ans}", st.join(","));
        let meta = serde_json::json!({"steps": st});
        (prompt.clone(), Problem { id: 0, prompt, answer: ans.to_string(), solution, meta })
    }
}

impl Task for Arith {
    fn name(&self) -> &str {
        "arith"
    }
    fn train_problem(&self, index: u64) -> Problem {
        self.splits.train(index, |r| self.make(r))
    }
    fn train_size(&self) -> Option<usize> {
        None
    }
    fn test_problems(&self) -> &[Problem] {
        &self.splits.test
    }
    fn verify(&self, problem: &Problem, completion: &str) -> Verdict {
        verify_int_answer(completion, &problem.answer)
    }
    fn max_completion_chars(&self) -> usize {
        let digits = self.cfg.max_operand.to_string().len();
        self.cfg.operands * (16 + 4 * digits * self.cfg.operands.min(4)) + 16
    }
    fn process_rewards(&self, _problem: &Problem, completion: &str) -> Option<Vec<f64>> {
        Some(crate::equation_step_rewards(completion))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_precedence() {
        let (v, s) = steps(&[3, 4, 5, 2], &['*', '+', '-']);
        assert_eq!(v, 15);
        assert_eq!(s, vec!["step1: 3*4=12", "step2: 12+5=17", "step3: 17-2=15"]);
        let (v, s) = steps(&[2, 3, 4, 5], &['+', '*', '*']);
        assert_eq!(v, 62);
        assert_eq!(s, vec!["step1: 3*4=12", "step2: 12*5=60", "step3: 2+60=62"]);
        let (v, _) = steps(&[1, 9], &['-']);
        assert_eq!(v, -8);
    }

    #[test]
    fn generated_problems() {
        let t = Arith::new(ArithConfig { operands: 8, min_operands: Some(2), ..Default::default() }, 2).unwrap();
        for i in 0..300 {
            let p = t.train_problem(i);
            assert!(t.verify(&p, &p.solution).correct);
            assert!(
                p.solution.len() <= t.max_completion_chars(),
                "{} > {}",
                p.solution.len(),
                t.max_completion_chars()
            );
            // the prompt evaluates (with precedence) to the answer
            let expr = p.prompt.trim_end_matches('=');
            let (v, _) = crate::countdown::evaluate(expr, false).unwrap();
            assert_eq!(v.to_string(), p.answer);
        }
        assert!(Arith::new(ArithConfig { ops: vec!["/".into()], ..Default::default() }, 0).is_err());
        assert!(Arith::new(ArithConfig { operands: 9, ..Default::default() }, 0).is_err());
    }
}
