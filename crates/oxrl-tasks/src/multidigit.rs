//! Multi-digit addition, subtraction and multiplication with a written step-by-step solution.
//!
//! Prompt `347+285=`; demonstration (addition, one step per column from the right, carry in
//! shown): `7+5+0=12,4+8+1=13,3+2+1=6,answer: 632`. Subtraction writes each column as
//! `x-y-borrow=d`, with `1x` when the column borrows (`14-8-0=6`), and `swap,` first when the result
//! is negative. Multiplication writes the shifted partial products and their sum. Difficulty knob:
//! the number of digits of each operand.

use crate::{oxrl_rng::Rng, verify_int_answer, Problem, Splits, Task, Verdict};
use anyhow::{ensure, Result};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultiDigitConfig {
    /// Maximum digits per operand.
    pub digits: usize,
    /// Minimum digits per operand (defaults to `digits`: exactly `digits`-digit operands).
    pub min_digits: Option<usize>,
    /// Held-out problems.
    pub test_size: usize,
}

impl Default for MultiDigitConfig {
    fn default() -> Self {
        Self { digits: 3, min_digits: None, test_size: 200 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
}

pub struct MultiDigit {
    op: Op,
    cfg: MultiDigitConfig,
    splits: Splits,
}

fn digits_rev(mut n: u64) -> Vec<u64> {
    let mut d = vec![n % 10];
    n /= 10;
    while n > 0 {
        d.push(n % 10);
        n /= 10;
    }
    d
}

/// Column-by-column addition steps, e.g. `7+5+0=12,4+8+1=13,3+2+1=6`.
pub fn addition_steps(a: u64, b: u64) -> String {
    let (da, db) = (digits_rev(a), digits_rev(b));
    let mut carry = 0;
    let mut steps = Vec::new();
    for i in 0..da.len().max(db.len()) {
        let (x, y) = (*da.get(i).unwrap_or(&0), *db.get(i).unwrap_or(&0));
        let s = x + y + carry;
        steps.push(format!("{x}+{y}+{carry}={s}"));
        carry = s / 10;
    }
    steps.join(",")
}

/// Column-by-column subtraction a − b (a ≥ b), e.g. 347−285: `7-5-0=2,14-8-0=6,3-2-1=0`.
pub fn subtraction_steps(a: u64, b: u64) -> String {
    let (da, db) = (digits_rev(a), digits_rev(b));
    let mut borrow = 0;
    let mut steps = Vec::new();
    for (i, &x) in da.iter().enumerate() {
        let y = *db.get(i).unwrap_or(&0);
        let (top, next) = if x < y + borrow { (x + 10, 1) } else { (x, 0) };
        steps.push(format!("{top}-{y}-{borrow}={}", top - y - borrow));
        borrow = next;
    }
    steps.join(",")
}

pub fn solution(op: Op, a: u64, b: u64) -> (i128, String) {
    match op {
        Op::Add => {
            let r = (a + b) as i128;
            (r, format!("{},answer: {r}", addition_steps(a, b)))
        }
        Op::Sub => {
            let r = a as i128 - b as i128;
            let steps = if a >= b { subtraction_steps(a, b) } else { format!("swap,{}", subtraction_steps(b, a)) };
            (r, format!("{steps},answer: {r}"))
        }
        Op::Mul => {
            let r = (a * b) as i128;
            let mut parts = Vec::new();
            let mut terms = Vec::new();
            for (i, d) in digits_rev(b).into_iter().enumerate() {
                let shift = 10u64.pow(i as u32);
                parts.push(format!("{a}*{}={}", d * shift, a * d * shift));
                terms.push((a * d * shift).to_string());
            }
            (r, format!("{},{}={r},answer: {r}", parts.join(","), terms.join("+")))
        }
    }
}

impl MultiDigit {
    pub fn new(op: Op, cfg: MultiDigitConfig, seed: u64) -> Result<Self> {
        ensure!((1..=9).contains(&cfg.digits), "task.digits must be in 1..=9 (got {})", cfg.digits);
        let lo = cfg.min_digits.unwrap_or(cfg.digits);
        ensure!(lo >= 1 && lo <= cfg.digits, "task.min_digits must be in 1..=digits (got {lo})");
        let mut t = Self { op, cfg, splits: Splits { seed, test: vec![], keys: Default::default() } };
        t.splits = Splits::new(seed, t.cfg.test_size, |r| t.make(r));
        Ok(t)
    }

    fn symbol(&self) -> char {
        match self.op {
            Op::Add => '+',
            Op::Sub => '-',
            Op::Mul => '*',
        }
    }

    fn operand(&self, rng: &mut Rng) -> u64 {
        let lo = self.cfg.min_digits.unwrap_or(self.cfg.digits);
        let nd = rng.random_range(lo..=self.cfg.digits) as u32;
        let min = if nd == 1 { 0 } else { 10u64.pow(nd - 1) };
        rng.random_range(min..10u64.pow(nd))
    }

    fn make(&self, rng: &mut Rng) -> (String, Problem) {
        let (a, b) = (self.operand(rng), self.operand(rng));
        let prompt = format!("{a}{}{b}=", self.symbol());
        let (ans, sol) = solution(self.op, a, b);
        (
            prompt.clone(),
            Problem { id: 0, prompt, answer: ans.to_string(), solution: sol, meta: serde_json::Value::Null },
        )
    }
}

impl Task for MultiDigit {
    fn name(&self) -> &str {
        match self.op {
            Op::Add => "addition",
            Op::Sub => "subtraction",
            Op::Mul => "multiplication",
        }
    }
    crate::generated_splits!();
    fn verify(&self, problem: &Problem, completion: &str) -> Verdict {
        verify_int_answer(completion, &problem.answer)
    }
    fn max_completion_chars(&self) -> usize {
        let d = self.cfg.digits;
        match self.op {
            Op::Add | Op::Sub => (d + 1) * 10 + 20,
            Op::Mul => d * (2 * d + 12) + 4 * d * d + 24,
        }
    }
    fn process_rewards(&self, _problem: &Problem, completion: &str) -> Option<Vec<f64>> {
        Some(crate::equation_step_rewards(completion))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solutions_are_right() {
        assert_eq!(solution(Op::Add, 347, 285).1, "7+5+0=12,4+8+1=13,3+2+1=6,answer: 632");
        assert_eq!(solution(Op::Add, 999, 1).1, "9+1+0=10,9+0+1=10,9+0+1=10,answer: 1000");
        assert_eq!(solution(Op::Sub, 347, 285).1, "7-5-0=2,14-8-0=6,3-2-1=0,answer: 62");
        assert_eq!(solution(Op::Sub, 285, 347).1, "swap,7-5-0=2,14-8-0=6,3-2-1=0,answer: -62");
        assert_eq!(solution(Op::Mul, 347, 25).1, "347*5=1735,347*20=6940,1735+6940=8675,answer: 8675");
        // the written steps always end in the true result
        let t = MultiDigit::new(Op::Add, MultiDigitConfig::default(), 0).unwrap();
        for i in 0..200 {
            let p = t.train_problem(i);
            let v = t.verify(&p, &p.solution);
            assert!(v.correct, "{p:?}");
            let (a, b) = p.prompt.trim_end_matches('=').split_once('+').unwrap();
            assert_eq!(p.answer, (a.parse::<u64>().unwrap() + b.parse::<u64>().unwrap()).to_string());
            assert!(p.solution.len() <= t.max_completion_chars());
            assert!(a.len() == 3 && b.len() == 3);
        }
        for op in [Op::Sub, Op::Mul] {
            let t = MultiDigit::new(op, MultiDigitConfig { digits: 4, min_digits: Some(1), test_size: 10 }, 1).unwrap();
            for i in 0..200 {
                let p = t.train_problem(i);
                assert!(t.verify(&p, &p.solution).correct, "{p:?}");
                assert!(p.solution.len() <= t.max_completion_chars(), "{p:?}");
            }
        }
    }

    #[test]
    fn splits_are_disjoint_and_deterministic() {
        let t = MultiDigit::new(Op::Add, MultiDigitConfig { digits: 2, min_digits: None, test_size: 300 }, 5).unwrap();
        let test: std::collections::HashSet<_> = t.test_problems().iter().map(|p| p.prompt.clone()).collect();
        assert_eq!(test.len(), 300);
        for i in 0..3000 {
            assert!(!test.contains(&t.train_problem(i).prompt));
        }
        let t2 = MultiDigit::new(Op::Add, MultiDigitConfig { digits: 2, min_digits: None, test_size: 300 }, 5).unwrap();
        assert_eq!(t.test_problems(), t2.test_problems());
        assert_eq!(t.train_problem(17), t2.train_problem(17));
        // another run seed: same held-out split, another training stream
        let t3 = MultiDigit::new(Op::Add, MultiDigitConfig { digits: 2, min_digits: None, test_size: 300 }, 6).unwrap();
        assert_eq!(t.test_problems(), t3.test_problems());
        let a: Vec<_> = (0..20).map(|i| t.train_problem(i).prompt).collect();
        let b: Vec<_> = (0..20).map(|i| t3.train_problem(i).prompt).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn verdicts() {
        let t = MultiDigit::new(Op::Add, MultiDigitConfig::default(), 0).unwrap();
        let p = Problem {
            id: 0,
            prompt: "1+2=".into(),
            answer: "3".into(),
            solution: String::new(),
            meta: serde_json::Value::Null,
        };
        assert!(t.verify(&p, "answer: 3").correct);
        assert!(t.verify(&p, "junk answer: 5, Answer: 3").correct);
        let v = t.verify(&p, "answer: 4");
        assert!(!v.correct && v.format_ok);
        let v = t.verify(&p, "3");
        assert!(!v.correct && !v.format_ok);
        let v = t.verify(&p, "answer: three");
        assert!(!v.correct && !v.format_ok);
    }
}
