//! Judges behind one trait — pairwise comparisons (ArenaRL's tournaments, RPO's rubric
//! preferences) and ExpRL's checkpoint grading against a hidden reference: a programmatic judge
//! for the built-in tasks and an LM judge from any checkpoint.

use crate::policy::Policy;
use anyhow::{ensure, Context, Result};
use oxrl_core::shaping::exprl::{find_value, step_value, Checkpoint, Grade};
use oxrl_lm::scorer::{score, ScoreOptions};
use oxrl_tasks::{Problem, Task};

pub trait Judge: Send + Sync {
    /// P(completion `a` is better than completion `b`) for `problem`, in [0, 1].
    fn compare(&self, problem: &Problem, a: &str, b: &str) -> Result<f64>;
    /// RPO's rubric for `problem`: (criterion, weight) pairs — the problem's `meta.rubric` when
    /// it has one, else the judge's default.
    fn rubric(&self, problem: &Problem) -> Result<Vec<(String, f64)>> {
        Ok(rubric_from_meta(problem)?.unwrap_or_else(|| vec![("overall quality".into(), 1.0)]))
    }
    /// Win of `first` over `second` on one rubric criterion with `first` presented first, in
    /// [0, 1] (½ = tie). Position bias is allowed here: RPO asks in both orders.
    fn compare_on(&self, problem: &Problem, criterion: &str, first: &str, second: &str) -> Result<f64> {
        let _ = criterion;
        self.compare(problem, first, second)
    }
    /// ExpRL: grade `response` on each checkpoint of the problem's hidden reference (score in
    /// [0, 1], and the byte offset where it is first met when the judge can tell).
    fn grade(&self, problem: &Problem, checkpoints: &[Checkpoint], response: &str) -> Result<Vec<Grade>> {
        let _ = (checkpoints, response);
        anyhow::bail!("this judge cannot grade rubric checkpoints (problem {})", problem.id)
    }
}

/// ExpRL's rubric of a problem, built from its hidden reference: `meta.checkpoints` (strings, or
/// `{"checkpoint": …, "weight": …}`; the last is the final answer), else the reference steps
/// `meta.steps` followed by `answer: <answer>`, else the lines of the reference solution (the
/// last is the final answer), else the answer alone. `final_weight` > 0 gives the final answer
/// that weight (the rest shared equally) where `meta.checkpoints` gives no weights.
pub fn checkpoints(problem: &Problem, final_weight: f64) -> Result<Vec<Checkpoint>> {
    let id = problem.id;
    if let Some(c) = problem.meta.get("checkpoints") {
        let items = c.as_array().ok_or_else(|| anyhow::anyhow!("problem {id}: `meta.checkpoints` must be a list"))?;
        ensure!(!items.is_empty(), "problem {id}: `meta.checkpoints` is empty");
        let mut steps = Vec::with_capacity(items.len());
        let (mut weights, mut given) = (Vec::new(), false);
        for it in items {
            match it {
                serde_json::Value::String(s) => {
                    steps.push(s.clone());
                    weights.push(1.0);
                }
                serde_json::Value::Object(o) => {
                    let text = o.get("checkpoint").and_then(|v| v.as_str());
                    let w = o.get("weight").and_then(|v| v.as_f64()).unwrap_or(1.0);
                    match text {
                        Some(t) if w >= 0.0 => {
                            steps.push(t.to_string());
                            weights.push(w);
                            given = true;
                        }
                        _ => anyhow::bail!(
                            "problem {id}: checkpoint items need a `checkpoint` text and a non-negative `weight`"
                        ),
                    }
                }
                _ => anyhow::bail!("problem {id}: checkpoint items are strings or objects"),
            }
        }
        let mut cps = oxrl_core::shaping::exprl::rubric(&steps, final_weight);
        if given {
            cps.iter_mut().zip(weights).for_each(|(c, w)| c.weight = w);
            ensure!(cps.iter().any(|c| c.weight > 0.0), "problem {id}: every checkpoint weight is 0");
        }
        return Ok(cps);
    }
    let answer = format!("answer: {}", problem.answer.trim());
    let mut steps: Vec<String> = match problem.meta.get("steps").and_then(|v| v.as_array()) {
        Some(st) => {
            let mut v: Vec<String> = st.iter().filter_map(|x| x.as_str().map(String::from)).collect();
            v.push(answer.clone());
            v
        }
        None => problem.solution.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect(),
    };
    if steps.is_empty() {
        ensure!(
            !problem.answer.trim().is_empty(),
            "problem {id}: no reference (solution, meta.steps or answer) to build a rubric from"
        );
        steps.push(answer);
    }
    Ok(oxrl_core::shaping::exprl::rubric(&steps, final_weight))
}

/// A problem's `meta.rubric`: a list of criteria (weight 1) or of `{"criterion": …, "weight": …}`.
pub fn rubric_from_meta(problem: &Problem) -> Result<Option<Vec<(String, f64)>>> {
    let Some(r) = problem.meta.get("rubric") else { return Ok(None) };
    let items = r.as_array().ok_or_else(|| anyhow::anyhow!("problem {}: `meta.rubric` must be a list", problem.id))?;
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        match it {
            serde_json::Value::String(s) => out.push((s.clone(), 1.0)),
            serde_json::Value::Object(o) => {
                let c = o.get("criterion").and_then(|v| v.as_str());
                let w = o.get("weight").and_then(|v| v.as_f64()).unwrap_or(1.0);
                match c {
                    Some(c) if w > 0.0 => out.push((c.to_string(), w)),
                    _ => {
                        anyhow::bail!("problem {}: rubric items need a `criterion` and a positive `weight`", problem.id)
                    }
                }
            }
            _ => anyhow::bail!("problem {}: rubric items are strings or objects", problem.id),
        }
    }
    ensure!(!out.is_empty(), "problem {}: `meta.rubric` is empty", problem.id);
    Ok(Some(out))
}

/// The task's verifier as a judge: a correct answer beats an incorrect one, then a well-formed
/// one beats a malformed one, then the higher reward wins; otherwise a tie (½). Order-invariant.
pub struct TaskJudge<'a> {
    pub task: &'a dyn Task,
}

fn win(o: std::cmp::Ordering) -> f64 {
    match o {
        std::cmp::Ordering::Greater => 1.0,
        std::cmp::Ordering::Less => 0.0,
        std::cmp::Ordering::Equal => 0.5,
    }
}

impl Judge for TaskJudge<'_> {
    fn compare(&self, problem: &Problem, a: &str, b: &str) -> Result<f64> {
        let (va, vb) = (self.task.verify(problem, a), self.task.verify(problem, b));
        let key = |v: &oxrl_tasks::Verdict| (v.correct, v.format_ok);
        Ok(win(key(&va).cmp(&key(&vb)).then(va.reward.total_cmp(&vb.reward))))
    }
    /// The verifier's rubric: a correct answer (weight 2) and a well-formed one (1) —
    /// correctness decides, form breaks ties. (`concise`, the shorter answer, is available to
    /// `meta.rubric`; as a default tie-breaker it rewards ever-shorter wrong answers.)
    fn rubric(&self, problem: &Problem) -> Result<Vec<(String, f64)>> {
        Ok(rubric_from_meta(problem)?.unwrap_or_else(|| vec![("correct".into(), 2.0), ("well-formed".into(), 1.0)]))
    }
    fn compare_on(&self, problem: &Problem, criterion: &str, first: &str, second: &str) -> Result<f64> {
        let (va, vb) = (self.task.verify(problem, first), self.task.verify(problem, second));
        Ok(match criterion {
            "correct" => win(va.correct.cmp(&vb.correct)),
            "well-formed" => win(va.format_ok.cmp(&vb.format_ok)),
            "concise" => win(second.trim().len().cmp(&first.trim().len())),
            _ => self.compare(problem, first, second)?,
        })
    }
    /// The spec's programmatic stand-in: the final answer is met when the verifier accepts the
    /// response (placed on its last token), any other checkpoint when its value is stated as
    /// the result of a step (`=value`).
    fn grade(&self, problem: &Problem, checkpoints: &[Checkpoint], response: &str) -> Result<Vec<Grade>> {
        Ok(checkpoints
            .iter()
            .map(|c| {
                if c.is_final {
                    Grade { score: self.task.verify(problem, response).correct as u8 as f64, at: None }
                } else {
                    let at = find_value(response, step_value(&c.text));
                    Grade { score: at.is_some() as u8 as f64, at }
                }
            })
            .collect())
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

    fn prompt(&self, problem: &Problem, criterion: Option<&str>, first: &str, second: &str) -> Result<Vec<u32>> {
        let question = match criterion {
            Some(c) => format!("Which answer better meets the criterion \"{c}\", A or B?"),
            None => "Which answer is better, A or B?".to_string(),
        };
        let text = format!("Problem: {}\nAnswer A: {first}\nAnswer B: {second}\n{question}", problem.prompt);
        oxrl_lm::prompt::encode_prompt(self.policy.tokenizer.as_ref(), &text)
    }

    /// P("A") over {"A", "B"} after the judge prompt.
    fn p_first(&self, problem: &Problem, criterion: Option<&str>, first: &str, second: &str) -> Result<f64> {
        let p = self.prompt(problem, criterion, first, second)?;
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
        Ok(0.5 * (self.p_first(problem, None, a, b)? + 1.0 - self.p_first(problem, None, b, a)?))
    }
    fn compare_on(&self, problem: &Problem, criterion: &str, first: &str, second: &str) -> Result<f64> {
        self.p_first(problem, Some(criterion), first, second)
    }
    /// g_m = P("A" = met) against "B" = not met, after the reference, the checkpoint and the
    /// response (the judge reads the reference; the policy never does). Positions are unknown
    /// (process-level rewards put such checkpoints on the last token).
    fn grade(&self, problem: &Problem, checkpoints: &[Checkpoint], response: &str) -> Result<Vec<Grade>> {
        let tok = self.policy.tokenizer.as_ref();
        let mut prompts = Vec::with_capacity(2 * checkpoints.len());
        let mut answers = Vec::with_capacity(2 * checkpoints.len());
        for c in checkpoints {
            let text = format!(
                "Problem: {}\nReference solution: {}\nCheckpoint: {}\nResponse: {response}\nDoes the response reach the checkpoint? A = yes, B = no.",
                problem.prompt, problem.solution, c.text
            );
            let p = oxrl_lm::prompt::encode_prompt(tok, &text)?;
            prompts.extend([p.clone(), p]);
            answers.extend([vec![self.token_a], vec![self.token_b]]);
        }
        let s = score(&self.policy.model, &prompts, &answers, tok.pad_id(), ScoreOptions::default())?;
        let lp = s.logp.to_dtype(candle_core::DType::F64)?.to_vec2::<f64>()?;
        Ok(lp.chunks(2).map(|ab| Grade { score: 1.0 / (1.0 + (ab[1][0] - ab[0][0]).exp()), at: None }).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(meta: serde_json::Value) -> Problem {
        Problem { id: 7, prompt: "p".into(), answer: "4".into(), solution: String::new(), meta }
    }

    #[test]
    fn rubrics_from_meta_are_read_and_bad_ones_named() {
        assert_eq!(rubric_from_meta(&problem(serde_json::Value::Null)).unwrap(), None);
        let r = rubric_from_meta(&problem(
            serde_json::json!({"rubric": ["clear", {"criterion": "correct", "weight": 3.0}]}),
        ));
        assert_eq!(r.unwrap(), Some(vec![("clear".to_string(), 1.0), ("correct".to_string(), 3.0)]));
        for bad in [
            serde_json::json!({"rubric": "x"}),
            serde_json::json!({"rubric": []}),
            serde_json::json!({"rubric": [{"weight": 1.0}]}),
        ] {
            let e = rubric_from_meta(&problem(bad)).unwrap_err().to_string();
            assert!(e.contains("problem 7"), "{e}");
        }
    }

    #[test]
    fn the_task_judge_scores_rubric_items() {
        let task = oxrl_tasks::TaskConfig::from_name("addition").unwrap().build(0).unwrap();
        let j = TaskJudge { task: task.as_ref() };
        let p = problem(serde_json::Value::Null);
        assert_eq!(j.rubric(&p).unwrap().len(), 2);
        assert_eq!(j.compare_on(&p, "correct", "answer: 4", "answer: 5").unwrap(), 1.0);
        assert_eq!(j.compare_on(&p, "correct", "answer: 5", "answer: 4").unwrap(), 0.0);
        assert_eq!(j.compare_on(&p, "well-formed", "answer: 5", "five").unwrap(), 1.0);
        assert_eq!(j.compare_on(&p, "concise", "answer: 4", "so the answer: 4").unwrap(), 1.0);
        assert_eq!(j.compare_on(&p, "correct", "answer: 4", "answer: 4").unwrap(), 0.5);
    }
}
