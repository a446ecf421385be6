//! Solution-prefix hints for the rollout (SEELE, PrefixRL, IGPO): the first tokens of a
//! problem's reference solution, either appended to the prompt (context — no loss: SEELE,
//! PrefixRL) or forced into the response (IGPO, where a high-entropy subset later carries loss).
//! The verifier always reads hint + continuation.

use anyhow::Result;
use oxrl_lm::Tokenizer;
use oxrl_tasks::Problem;
use rand::Rng;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hint {
    pub ids: Vec<u32>,
    pub text: String,
    /// The share of the solution's tokens given (0 = no hint).
    pub ratio: f64,
}

/// The first ⌊ratio·n⌋ of the solution's n tokens (end-of-sequence excluded; never the whole
/// solution, so a continuation is always left to write).
pub fn solution_prefix(tok: &dyn Tokenizer, problem: &Problem, ratio: f64) -> Result<Hint> {
    let ids = tok.encode(&problem.solution)?;
    let n = oxrl_core::shaping::seele::hint_len(ratio, ids.len()).min(ids.len().saturating_sub(1));
    let prefix = ids[..n].to_vec();
    Ok(Hint { text: tok.decode(&prefix)?, ratio: n as f64 / ids.len().max(1) as f64, ids: prefix })
}

/// PrefixRL's hint for one problem: with probability `share`·(1 − acc) a prefix whose cut
/// fraction is uniform in [lo, lo + (hi − lo)·(1 − acc)] (the fade-out: fewer and shorter
/// prefixes as the running accuracy `acc` rises), else none. INFERRED schedule.
pub fn prefix_rl_hint(
    tok: &dyn Tokenizer,
    problem: &Problem,
    share: f64,
    lo: f64,
    hi: f64,
    acc: f64,
    rng: &mut impl Rng,
) -> Result<Hint> {
    let fade = (1.0 - acc).clamp(0.0, 1.0);
    if problem.solution.is_empty() || rng.random::<f64>() >= share * fade {
        return Ok(Hint::default());
    }
    let f = lo + rng.random::<f64>() * (hi - lo) * fade;
    solution_prefix(tok, problem, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem() -> Problem {
        Problem {
            id: 0,
            prompt: "p".into(),
            answer: "9".into(),
            solution: "3*3=9,answer: 9".into(),
            meta: Default::default(),
        }
    }

    #[test]
    fn prefixes_cut_on_token_boundaries_and_leave_a_continuation() -> Result<()> {
        let tok = oxrl_lm::CharTokenizer::new();
        let h = solution_prefix(&tok, &problem(), 0.5)?;
        assert_eq!((h.text.as_str(), h.ids.len()), ("3*3=9,a", 7));
        assert_eq!(solution_prefix(&tok, &problem(), 1.0)?.ids.len(), 14, "never the whole solution");
        assert!(solution_prefix(&tok, &problem(), 0.0)?.ids.is_empty());
        // share 0 or accuracy 1: no prefix.
        let mut rng = oxrl_core::seed::rng(0, "t", 0);
        assert!(prefix_rl_hint(&tok, &problem(), 0.0, 0.1, 0.9, 0.0, &mut rng)?.ids.is_empty());
        assert!(prefix_rl_hint(&tok, &problem(), 1.0, 0.1, 0.9, 1.0, &mut rng)?.ids.is_empty());
        let h = prefix_rl_hint(&tok, &problem(), 1.0, 0.1, 0.9, 0.0, &mut rng)?;
        assert!(!h.ids.is_empty() && h.ratio <= 0.9 + 1e-9);
        Ok(())
    }
}
