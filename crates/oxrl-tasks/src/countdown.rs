//! Countdown: combine the given numbers with + − × ÷ (and parentheses) to reach the target.
//!
//! Prompt `3 7 25 50 -> 175`; demonstration `25-7=18,18*4=72,answer: (25-7)*4`. The verifier
//! parses the expression after the last `answer:` (text after an `=` is ignored), evaluates it
//! exactly, and checks that each given number is used at most once (exactly once with `use_all`),
//! that no division is by zero and — with `integer_only` (the default, the game's rule) — that
//! every division is exact. Unary minus and numbers not given are rejected.

use crate::rational::Rational;
use crate::{after_answer_marker, oxrl_rng::Rng, Problem, Splits, Task, Verdict};
use anyhow::{ensure, Result};
use rand::seq::SliceRandom;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CountdownConfig {
    /// How many numbers are given (difficulty knob).
    pub numbers: usize,
    /// Numbers are drawn from 1..=max_number.
    pub max_number: u32,
    /// Every intermediate result must be an integer (divisions exact).
    pub integer_only: bool,
    /// Every given number must be used (otherwise: at most once).
    pub use_all: bool,
    pub test_size: usize,
}

impl Default for CountdownConfig {
    fn default() -> Self {
        Self { numbers: 3, max_number: 20, integer_only: true, use_all: false, test_size: 200 }
    }
}

pub struct Countdown {
    cfg: CountdownConfig,
    splits: Splits,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Num(i128),
    Op(char),
    Open,
    Close,
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        match c {
            ' ' | '\t' => {}
            '0'..='9' => {
                let st = i;
                while i + 1 < cs.len() && cs[i + 1].is_ascii_digit() {
                    i += 1;
                }
                let t: String = cs[st..=i].iter().collect();
                if t.len() > 1 && t.starts_with('0') {
                    return Err(format!("number `{t}` has a leading zero"));
                }
                out.push(Tok::Num(t.parse().map_err(|_| format!("number `{t}` is too large"))?));
            }
            '+' | '-' | '*' | '/' => out.push(Tok::Op(c)),
            '×' | 'x' | 'X' => out.push(Tok::Op('*')),
            '÷' => out.push(Tok::Op('/')),
            '(' => out.push(Tok::Open),
            ')' => out.push(Tok::Close),
            _ => return Err(format!("unexpected character {c:?}")),
        }
        i += 1;
    }
    Ok(out)
}

struct Parser<'a> {
    toks: &'a [Tok],
    pos: usize,
    used: Vec<i128>,
    integer_only: bool,
}

impl Parser<'_> {
    fn peek(&self) -> Option<Tok> {
        self.toks.get(self.pos).copied()
    }
    fn expr(&mut self) -> Result<Rational, String> {
        let mut v = self.term()?;
        while let Some(Tok::Op(o @ ('+' | '-'))) = self.peek() {
            self.pos += 1;
            let r = self.term()?;
            v = if o == '+' { v.checked_add(r) } else { v.checked_sub(r) }.ok_or("overflow")?;
        }
        Ok(v)
    }
    fn term(&mut self) -> Result<Rational, String> {
        let mut v = self.factor()?;
        while let Some(Tok::Op(o @ ('*' | '/'))) = self.peek() {
            self.pos += 1;
            let r = self.factor()?;
            v = if o == '*' {
                v.checked_mul(r).ok_or("overflow")?
            } else {
                let q = v.checked_div(r).ok_or("division by zero")?;
                if self.integer_only && !q.is_integer() {
                    return Err(format!("non-integer intermediate {v}/{r}"));
                }
                q
            };
        }
        Ok(v)
    }
    fn factor(&mut self) -> Result<Rational, String> {
        match self.peek() {
            Some(Tok::Num(n)) => {
                self.pos += 1;
                self.used.push(n);
                Ok(Rational::int(n))
            }
            Some(Tok::Open) => {
                self.pos += 1;
                let v = self.expr()?;
                if self.peek() != Some(Tok::Close) {
                    return Err("missing `)`".into());
                }
                self.pos += 1;
                Ok(v)
            }
            Some(Tok::Op('-')) => Err("unary minus is not allowed".into()),
            Some(t) => Err(format!("unexpected {t:?}")),
            None => Err("expression ends early".into()),
        }
    }
}

/// Evaluate a countdown expression; returns the value and the numbers it used.
pub fn evaluate(expr: &str, integer_only: bool) -> Result<(Rational, Vec<i128>), String> {
    let toks = lex(expr)?;
    if toks.is_empty() {
        return Err("empty expression".into());
    }
    let mut p = Parser { toks: &toks, pos: 0, used: vec![], integer_only };
    let v = p.expr()?;
    if p.pos != toks.len() {
        return Err(format!("unexpected {:?} after the expression", toks[p.pos]));
    }
    Ok((v, p.used))
}

/// Judge `expr` for the given numbers and target.
pub fn judge(expr: &str, numbers: &[i128], target: i128, cfg: &CountdownConfig) -> Result<(), String> {
    let (v, used) = evaluate(expr, cfg.integer_only)?;
    let mut pool = numbers.to_vec();
    for u in &used {
        match pool.iter().position(|x| x == u) {
            Some(i) => {
                pool.swap_remove(i);
            }
            None if numbers.contains(u) => return Err(format!("{u} is used more often than given")),
            None => return Err(format!("{u} is not one of the given numbers")),
        }
    }
    if cfg.use_all && !pool.is_empty() {
        return Err(format!("numbers not used: {pool:?}"));
    }
    if v != Rational::int(target) {
        return Err(format!("evaluates to {v}, not {target}"));
    }
    Ok(())
}

impl Countdown {
    pub fn new(cfg: CountdownConfig, seed: u64) -> Result<Self> {
        ensure!((2..=8).contains(&cfg.numbers), "task.numbers must be in 2..=8 (got {})", cfg.numbers);
        ensure!(cfg.max_number >= 2, "task.max_number must be >= 2");
        let mut t = Self { cfg, splits: Splits { seed, test: vec![], keys: Default::default() } };
        t.splits = Splits::new(seed, t.cfg.test_size, |r| t.make(r));
        Ok(t)
    }

    fn make(&self, rng: &mut Rng) -> (String, Problem) {
        loop {
            let nums: Vec<i128> =
                (0..self.cfg.numbers).map(|_| rng.random_range(1..=self.cfg.max_number) as i128).collect();
            let mut order = nums.clone();
            order.shuffle(rng);
            // Left-deep construction over all numbers: (expression, value, precedence).
            let (mut expr, mut val, mut prec) = (order[0].to_string(), order[0], 3u8);
            let mut steps = Vec::new();
            for &n in &order[1..] {
                let mut ops = vec!['+', '*'];
                if val > n {
                    ops.push('-');
                }
                if n > 1 && val % n == 0 {
                    ops.push('/');
                }
                let op = ops[rng.random_range(0..ops.len())];
                let next = match op {
                    '+' => val + n,
                    '-' => val - n,
                    '*' => val * n,
                    _ => val / n,
                };
                let op_prec = if matches!(op, '+' | '-') { 1 } else { 2 };
                let left = if prec < op_prec { format!("({expr})") } else { expr };
                steps.push(format!("{val}{op}{n}={next}"));
                expr = format!("{left}{op}{n}");
                val = next;
                prec = op_prec;
            }
            if val <= 0 || val > 1000 || nums.contains(&val) {
                continue;
            }
            let list: Vec<String> = nums.iter().map(|n| n.to_string()).collect();
            let prompt = format!("{} -> {val}", list.join(" "));
            let solution = format!("{},answer: {expr}", steps.join(","));
            let meta = serde_json::json!({"numbers": nums, "target": val});
            return (prompt.clone(), Problem { id: 0, prompt, answer: val.to_string(), solution, meta });
        }
    }
}

impl Task for Countdown {
    fn name(&self) -> &str {
        "countdown"
    }
    crate::generated_splits!();
    fn verify(&self, problem: &Problem, completion: &str) -> Verdict {
        let Some(text) = after_answer_marker(completion) else {
            return Verdict::bad_format("no `answer:` marker");
        };
        let expr = text.split('=').next().unwrap_or("").trim();
        let numbers: Vec<i128> = problem.meta["numbers"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_i64()).map(|v| v as i128).collect())
            .unwrap_or_default();
        let target = problem.meta["target"].as_i64().unwrap_or(i64::MIN) as i128;
        let canon: String = expr.chars().filter(|c| !c.is_whitespace()).collect();
        match evaluate(expr, self.cfg.integer_only) {
            Err(e) => Verdict::bad_format(e),
            Ok(_) => match judge(expr, &numbers, target, &self.cfg) {
                Ok(()) => Verdict::judged(true, Some(canon), ""),
                Err(e) => Verdict::judged(false, Some(canon), e),
            },
        }
    }
    fn max_completion_chars(&self) -> usize {
        self.cfg.numbers * 24 + 16
    }
    fn process_rewards(&self, _problem: &Problem, completion: &str) -> Option<Vec<f64>> {
        Some(crate::equation_step_rewards(completion))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tricky_expressions() {
        let cfg = CountdownConfig::default();
        let nums = [3i128, 7, 25, 50];
        // (expression, target, Ok or a fragment of the error)
        let cases: &[(&str, i128, Result<(), &str>)] = &[
            ("(50-25)*7", 175, Ok(())),
            ("50*3+25", 175, Ok(())),
            ("25*7", 175, Ok(())),
            ("7*25", 175, Ok(())),
            ("(25 - 7) * 3", 54, Ok(())),
            ("50/25", 2, Ok(())),
            ("50/25*7", 14, Ok(())),
            ("3+7+25+50", 85, Ok(())),
            ("((3))", 3, Ok(())),
            ("50 × 3 + 25", 175, Ok(())),
            ("50 x 3 + 25", 175, Ok(())),
            ("50 ÷ 25", 2, Ok(())),
            ("50-25-7-3", 15, Ok(())),
            ("3-7", -4, Ok(())),
            ("25*7", 176, Err("evaluates to 175")),
            ("25*25", 625, Err("used more often")),
            ("7*7", 49, Err("used more often")),
            ("5*35", 175, Err("not one of the given")),
            ("50/(7-7)", 0, Err("division by zero")),
            ("50/(25-25)", 0, Err("division by zero")),
            ("7/3", 0, Err("non-integer")),
            ("(7/3)*3", 7, Err("non-integer")),
            ("25/50*7", 0, Err("non-integer")),
            ("-3+7", 4, Err("unary minus")),
            ("3+-7", -4, Err("unary minus")),
            ("(3+7", 10, Err("missing `)`")),
            ("3+7)", 10, Err("after the expression")),
            ("3 7", 10, Err("after the expression")),
            ("3+", 3, Err("ends early")),
            ("", 0, Err("empty")),
            ("3^2", 9, Err("unexpected character")),
            ("037", 37, Err("leading zero")),
            ("99999999999999999999999999999999999999999", 1, Err("too large")),
            ("50*50", 2500, Err("used more often")),
        ];
        assert!(cases.len() >= 30);
        for (expr, target, want) in cases {
            let got = judge(expr, &nums, *target, &cfg);
            match (want, &got) {
                (Ok(()), Ok(())) => {}
                (Err(frag), Err(e)) => {
                    assert!(e.contains(frag), "{expr}: error `{e}` lacks `{frag}`")
                }
                _ => panic!("{expr} (target {target}): want {want:?}, got {got:?}"),
            }
        }
        // fractional intermediates are allowed when integer_only is off
        let loose = CountdownConfig { integer_only: false, ..cfg.clone() };
        assert_eq!(judge("7/25*50", &nums, 14, &loose), Ok(()));
        assert_eq!(judge("25/50*7", &nums, 0, &loose).unwrap_err(), "evaluates to 7/2, not 0");
        // use_all requires every number
        let all = CountdownConfig { use_all: true, ..cfg };
        assert!(judge("25*7", &nums, 175, &all).unwrap_err().contains("not used"));
        assert_eq!(judge("(50-25)*7+3-3", &[3, 3, 7, 25, 50], 175, &all), Ok(()));
    }

    #[test]
    fn demonstrations_verify_and_completions_are_judged() {
        let t = Countdown::new(CountdownConfig { numbers: 4, ..Default::default() }, 3).unwrap();
        for i in 0..300 {
            let p = t.train_problem(i);
            let v = t.verify(&p, &p.solution);
            assert!(v.correct, "{p:?} {v:?}");
            assert!(p.solution.len() <= t.max_completion_chars(), "{}", p.solution);
        }
        let p = &t.test_problems()[0];
        assert!(!t.verify(p, "no marker").format_ok);
        let v = t.verify(p, "answer: 1+");
        assert!(!v.format_ok && !v.correct);
        // `answer: expr = value` is accepted, the value ignored
        let expr = p.solution.rsplit("answer: ").next().unwrap();
        assert!(t.verify(p, &format!("answer: {expr} = 12345")).correct);
    }
}
