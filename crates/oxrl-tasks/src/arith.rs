//! ARITH: multi-operand arithmetic `a op b op c = ?` with a hidden numbered step solution — the
//! shared CPU stand-in of specs/rewards-data-agents.md.
//!
//! Prompt `3*4+5-2=`; reference solution `step1: 3*4=12,step2: 12+5=17,step3: 17-2=15,answer: 15`
//! (multiplications first, left to right, then additions and subtractions left to right). The
//! verifier is an exact match of the final integer. Difficulty knob: the number of operands (2..8).

use crate::{oxrl_rng::Rng, verify_int_answer, Problem, Splits, Task, Variant, Verdict};
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

/// A prompt `3*4+5-2=` as signed product terms `[('+', [3, 4]), ('+', [5]), ('-', [2])]`.
fn terms(prompt: &str) -> Option<Vec<(char, Vec<i64>)>> {
    let body = prompt.strip_suffix('=')?;
    let mut out: Vec<(char, Vec<i64>)> = Vec::new();
    let mut sign = '+';
    for (i, part) in body.split_inclusive(['+', '-']).enumerate() {
        let (text, next) = match part.strip_suffix(['+', '-']) {
            Some(t) => (t, part.chars().last()),
            None => (part, None),
        };
        let factors: Option<Vec<i64>> = text.split('*').map(|f| f.parse().ok()).collect();
        let factors = factors?;
        if factors.is_empty() || (i == 0 && sign != '+') {
            return None;
        }
        out.push((sign, factors));
        sign = next.unwrap_or('+');
    }
    (!out.is_empty()).then_some(out)
}

fn render(terms: &[(char, Vec<i64>)]) -> String {
    let mut s = String::new();
    for (i, (sign, f)) in terms.iter().enumerate() {
        if i > 0 {
            s.push(*sign);
        }
        s.push_str(&f.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("*"));
    }
    s.push('=');
    s
}

/// SvS's scripted problem rewriter — the spec's stand-in for the policy writing a new problem
/// with the same answer. 60 %: a consistent rewrite (factors and terms reordered, and half the
/// time one operand n rewritten as d*(n/d) or a+(n−a), changing the operation mix); 30 %: the
/// rewrite with one operand raised by 1, which changes the answer ("broken", the acceptance band
/// must reject it); 10 %: the answer itself as the problem ("leak", too easy — the band's upper
/// edge must reject it).
pub fn variant(prompt: &str, answer: &str, rng: &mut Rng) -> Option<Variant> {
    use rand::seq::{IndexedRandom, SliceRandom};
    let mut t = terms(prompt)?;
    let u: f64 = rng.random();
    if u < 0.1 {
        return Some(Variant { prompt: format!("{answer}="), label: "leak" });
    }
    for (_, f) in t.iter_mut() {
        f.shuffle(rng);
    }
    t.shuffle(rng);
    let first_plus = t.iter().position(|x| x.0 == '+').expect("the first term is positive");
    t.swap(0, first_plus);
    if rng.random::<bool>() {
        let singles: Vec<usize> = (0..t.len()).filter(|&i| t[i].1.len() == 1 && t[i].1[0] >= 2).collect();
        if let Some(&i) = singles.choose(rng) {
            let (sign, n) = (t[i].0, t[i].1[0]);
            let divisors: Vec<i64> = (2..n).take_while(|d| d * d <= n).filter(|d| n % d == 0).collect();
            match divisors.choose(rng) {
                Some(&d) => t[i].1 = vec![d, n / d],
                None => {
                    let a = rng.random_range(1..n);
                    t[i].1 = vec![a];
                    t.insert(i + 1, (sign, vec![n - a]));
                }
            }
        }
    }
    if u < 0.4 {
        let i = rng.random_range(0..t.len());
        let j = rng.random_range(0..t[i].1.len());
        t[i].1[j] += 1;
        return Some(Variant { prompt: render(&t), label: "broken" });
    }
    Some(Variant { prompt: render(&t), label: "consistent" })
}

impl Task for Arith {
    fn name(&self) -> &str {
        "arith"
    }
    crate::generated_splits!();
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
    fn variant(&self, problem: &Problem, rng: &mut Rng) -> Option<Variant> {
        variant(&problem.prompt, &problem.answer, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(terms: &[(char, Vec<i64>)]) -> i64 {
        terms.iter().map(|(sign, f)| if *sign == '-' { -f.iter().product::<i64>() } else { f.iter().product() }).sum()
    }

    #[test]
    fn svs_variants_keep_break_or_leak_the_answer_as_labelled() {
        let t = Arith::new(ArithConfig { operands: 4, min_operands: Some(2), ..Default::default() }, 0).unwrap();
        let mut rng = crate::oxrl_rng::rng(0, "variants", 0);
        let mut count = std::collections::BTreeMap::new();
        let mut mix_changed = 0;
        for i in 0..500 {
            let p = t.train_problem(i);
            let orig = terms(&p.prompt).unwrap();
            assert_eq!(render(&orig), p.prompt, "parse and render round-trip");
            assert_eq!(value(&orig).to_string(), p.answer);
            let v = t.variant(&p, &mut rng).unwrap();
            *count.entry(v.label).or_insert(0) += 1;
            match v.label {
                "leak" => assert!(v.prompt.contains(&p.answer)),
                label => {
                    let new = terms(&v.prompt).unwrap_or_else(|| panic!("{} parses", v.prompt));
                    assert_eq!(
                        value(&new).to_string() == p.answer,
                        label == "consistent",
                        "{} → {}",
                        p.prompt,
                        v.prompt
                    );
                    let ops = |s: &str| s.chars().filter(|c| "+-*".contains(*c)).count();
                    mix_changed += (ops(&v.prompt) != ops(&p.prompt)) as usize;
                }
            }
        }
        assert!(count["consistent"] > 250 && count["broken"] > 110 && count["leak"] > 30, "{count:?}");
        assert!(mix_changed > 100, "half the rewrites change the operation mix ({mix_changed})");
        assert!(terms("3*4+").is_none() && terms("-3=").is_none() && terms("x=").is_none());
    }

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
