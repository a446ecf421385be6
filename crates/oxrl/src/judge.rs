//! Pairwise judges behind one trait (ArenaRL's tournaments): a programmatic judge for the
//! built-in tasks and an LM judge from any checkpoint.

use crate::policy::Policy;
use anyhow::{ensure, Context, Result};
use oxrl_lm::scorer::{score, ScoreOptions};
use oxrl_tasks::{Problem, Task};

pub trait Judge: Send + Sync {
    /// P(completion `a` is better than completion `b`) for `problem`, in [0, 1].
    fn compare(&self, problem: &Problem, a: &str, b: &str) -> Result<f64>;
}

/// The task's verifier as a judge: a correct answer beats an incorrect one, then a well-formed
/// one beats a malformed one, then the higher reward wins; otherwise a tie (½). Order-invariant.
pub struct TaskJudge<'a> {
    pub task: &'a dyn Task,
}

impl Judge for TaskJudge<'_> {
    fn compare(&self, problem: &Problem, a: &str, b: &str) -> Result<f64> {
        let (va, vb) = (self.task.verify(problem, a), self.task.verify(problem, b));
        let key = |v: &oxrl_tasks::Verdict| (v.correct, v.format_ok);
        Ok(match key(&va).cmp(&key(&vb)).then(va.reward.total_cmp(&vb.reward)) {
            std::cmp::Ordering::Greater => 1.0,
            std::cmp::Ordering::Less => 0.0,
            std::cmp::Ordering::Equal => 0.5,
        })
    }
}

/// A language model as judge: it reads the problem and both answers and is asked which is
/// better; P(a) = its probability of "A" against "B" as the next token, averaged over both
/// presentation orders (position-bias mitigation), so P(a, b) + P(b, a) = 1.
pub struct LmJudge {
    pub policy: Policy,
    token_a: u32,
    token_b: u32,
}

impl LmJudge {
    pub fn new(policy: Policy) -> Result<Self> {
        let tok = policy.tokenizer.as_ref();
        let one = |s: &str| -> Result<u32> {
            let ids = tok.encode(s)?;
            ensure!(ids.len() == 1, "LM judge: `{s}` must be a single token of the judge's tokenizer (got {ids:?})");
            Ok(ids[0])
        };
        Ok(Self { token_a: one("A")?, token_b: one("B")?, policy })
    }

    pub fn load(dir: &std::path::Path) -> Result<Self> {
        let p = Policy::load(dir, &oxrl_lm::default_device())
            .with_context(|| format!("loading the judge {}", dir.display()))?;
        Self::new(p)
    }

    fn prompt(&self, problem: &Problem, first: &str, second: &str) -> Result<Vec<u32>> {
        let text = format!(
            "Problem: {}\nAnswer A: {first}\nAnswer B: {second}\nWhich answer is better, A or B?",
            problem.prompt
        );
        oxrl_lm::prompt::encode_prompt(self.policy.tokenizer.as_ref(), &text)
    }

    /// P("A") over {"A", "B"} after the judge prompt.
    fn p_first(&self, problem: &Problem, first: &str, second: &str) -> Result<f64> {
        let p = self.prompt(problem, first, second)?;
        let tok = self.policy.tokenizer.as_ref();
        let s = score(
            &self.policy.model,
            &[p.clone(), p],
            &[vec![self.token_a], vec![self.token_b]],
            tok.pad_id(),
            ScoreOptions::default(),
        )?;
        let lp = s.logp.to_dtype(candle_core::DType::F64)?.to_vec2::<f64>()?;
        let (la, lb) = (lp[0][0], lp[1][0]);
        Ok(1.0 / (1.0 + (lb - la).exp()))
    }
}

impl Judge for LmJudge {
    fn compare(&self, problem: &Problem, a: &str, b: &str) -> Result<f64> {
        Ok(0.5 * (self.p_first(problem, a, b)? + 1.0 - self.p_first(problem, b, a)?))
    }
}
