//! ExpRL in the trainer (oxrl_core::shaping::exprl has the formulas): each response is graded by
//! the judge on the checkpoints of its problem's hidden reference, and the rubric score replaces
//! the verifier's reward — on the last token (outcome level) or spread over the tokens where the
//! checkpoints are first met (process level).

use crate::judge::Judge;
use oxrl_core::shaping::exprl::{outcome_reward, process_rewards, Checkpoint};
use oxrl_lm::Tokenizer;
use oxrl_tasks::Problem;

/// One response's ExpRL grading.
#[derive(Debug, Clone, Default)]
pub struct Scored {
    /// r = clamp(Σ w_m·g_m, 0, 1) (0 when the judge failed).
    pub reward: f64,
    /// Process level: the reward per response token (sums to `reward`).
    pub tokens: Option<Vec<f64>>,
    /// Share of checkpoints with g ≥ ½, and the final answer's score.
    pub met: f64,
    pub final_score: f64,
    /// The judge failed on this response (its reward is 0).
    pub failed: bool,
}

/// Grade `text` (the decoded response of `tokens`) with `judge` on the checkpoints `cps` of
/// `problem`'s rubric ([`crate::judge::checkpoints`], built once per problem). A judge error is a
/// zero reward, logged by the caller — never a failed step.
pub fn score(
    judge: &dyn Judge,
    tok: &dyn Tokenizer,
    problem: &Problem,
    cps: &[Checkpoint],
    text: &str,
    tokens: &[u32],
    process: bool,
) -> Scored {
    let grades = match judge.grade(problem, cps, text) {
        Ok(g) if g.len() == cps.len() && g.iter().all(|g| g.score.is_finite()) => g,
        _ => return Scored { tokens: process.then(|| vec![0.0; tokens.len()]), failed: true, ..Default::default() },
    };
    let reward = outcome_reward(cps, &grades);
    let tokens = if process {
        // The token where a byte offset of the decoded text is reached: the shortest prefix
        // whose decoding is at least that long (prefix decodings grow with the prefix).
        let stops = tok.stop_ids();
        let content = tokens.iter().position(|t| stops.contains(t)).unwrap_or(tokens.len());
        let decoded_len = |n: usize| tok.decode(&tokens[..n]).map(|s| s.len()).unwrap_or(usize::MAX);
        let token_of = |off: usize| {
            let (mut lo, mut hi) = (1usize, content.max(1));
            while lo < hi {
                let mid = (lo + hi) / 2;
                if decoded_len(mid) >= off {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            lo - 1
        };
        Some(process_rewards(cps, &grades, tokens.len(), token_of))
    } else {
        None
    };
    let met = grades.iter().filter(|g| g.score >= 0.5).count() as f64 / cps.len() as f64;
    let final_score = cps.iter().zip(&grades).filter(|(c, _)| c.is_final).map(|(_, g)| g.score).sum();
    Scored { reward, tokens, met, final_score, failed: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::{checkpoints, TaskJudge};
    use anyhow::Result;
    use oxrl_lm::CharTokenizer;

    fn arith_problem() -> Problem {
        let task = oxrl_tasks::TaskConfig::from_name("arith").unwrap().build(0).unwrap();
        (0..100).map(|i| task.train_problem(i)).find(|p| p.meta["steps"].as_array().unwrap().len() == 2).unwrap()
    }

    #[test]
    fn outcome_and_process_rewards_through_the_task_judge() -> Result<()> {
        let task = oxrl_tasks::TaskConfig::from_name("arith").unwrap().build(0).unwrap();
        let judge = TaskJudge { task: task.as_ref() };
        let tok = CharTokenizer::new();
        let p = arith_problem();
        let cps = checkpoints(&p, 0.0)?;
        assert_eq!(cps.len(), 3, "two steps and the answer: {cps:?}");
        let full = p.solution.clone();
        let ids = tok.encode(&full)?;
        let s = score(&judge, &tok, &p, &cps, &full, &ids, true);
        assert_eq!((s.reward, s.met, s.final_score, s.failed), (1.0, 1.0, 1.0, false));
        let placed = s.tokens.unwrap();
        assert!((placed.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // the first step's third lands on the last character of its value
        let v1 = oxrl_core::shaping::exprl::step_value(&cps[0].text);
        let end = full.find(&format!("={v1}")).unwrap() + 1 + v1.len();
        assert!((placed[end - 1] - 1.0 / 3.0).abs() < 1e-12, "{placed:?}");
        // only the answer: its weight, on the last token
        let only = format!("answer: {}", p.answer);
        let ids = tok.encode(&only)?;
        let s = score(&judge, &tok, &p, &cps, &only, &ids, true);
        assert!((s.reward - 1.0 / 3.0).abs() < 1e-12);
        assert!((s.tokens.unwrap()[ids.len() - 1] - 1.0 / 3.0).abs() < 1e-12);
        // the final weight knob
        let s = score(&judge, &tok, &p, &checkpoints(&p, 0.6)?, &only, &ids, false);
        assert!((s.reward - 0.6).abs() < 1e-12 && s.tokens.is_none());
        Ok(())
    }

    /// A judge that cannot grade: zero reward, marked failed, never an error.
    struct Broken;
    impl Judge for Broken {
        fn compare(&self, _: &Problem, _: &str, _: &str) -> Result<f64> {
            Ok(0.5)
        }
    }

    #[test]
    fn a_failing_judge_is_a_zero_reward() -> Result<()> {
        let tok = CharTokenizer::new();
        let p = arith_problem();
        let ids = tok.encode(&p.solution)?;
        let s = score(&Broken, &tok, &p, &checkpoints(&p, 0.0)?, &p.solution, &ids, true);
        assert!(s.failed && s.reward == 0.0 && s.tokens.unwrap().iter().all(|&x| x == 0.0));
        Ok(())
    }

    #[test]
    fn rubrics_come_from_the_reference_and_bad_ones_are_named() -> Result<()> {
        let mk = |solution: &str, meta: serde_json::Value| Problem {
            id: 3,
            prompt: "q".into(),
            answer: "7".into(),
            solution: solution.into(),
            meta,
        };
        let c = checkpoints(&mk("a=3\n\nb=a+4=7\n", serde_json::Value::Null), 0.0)?;
        assert_eq!(c.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(), vec!["a=3", "b=a+4=7"]);
        assert!(c[1].is_final && !c[0].is_final);
        let c = checkpoints(&mk("", serde_json::Value::Null), 0.0)?;
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].text, "answer: 7");
        let c = checkpoints(
            &mk("x", serde_json::json!({"checkpoints": ["key step", {"checkpoint": "answer: 7", "weight": 3.0}]})),
            0.0,
        )?;
        assert_eq!(oxrl_core::shaping::exprl::weights(&c), vec![0.25, 0.75]);
        for bad in [
            serde_json::json!({"checkpoints": []}),
            serde_json::json!({"checkpoints": "x"}),
            serde_json::json!({"checkpoints": [{"weight": 1.0}]}),
        ] {
            let e = checkpoints(&mk("s", bad), 0.0).unwrap_err().to_string();
            assert!(e.contains("problem 3"), "{e}");
        }
        let mut none = mk("", serde_json::Value::Null);
        none.answer.clear();
        assert!(checkpoints(&none, 0.0).unwrap_err().to_string().contains("problem 3"));
        Ok(())
    }
}
