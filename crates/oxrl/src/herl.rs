//! HeRL in the trainer (oxrl_core::shaping::herl has the rules and the loss): the hindsight
//! prompt a group's best draft is revised under.

use anyhow::Result;
use oxrl_lm::Tokenizer;
use oxrl_tasks::Problem;

/// The revision instruction: the original instruction, the draft, the rubric items it already
/// satisfies and those it misses — keep the first, fix the second, add nothing new.
pub fn hindsight_text(instruction: &str, draft: &str, rubric: &[(String, bool)]) -> String {
    let list = |ok: bool| {
        let v: Vec<&str> = rubric.iter().filter(|x| x.1 == ok).map(|x| x.0.as_str()).collect();
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join("; ")
        }
    };
    format!("{instruction} draft: {draft} keep: {} fix: {} revise, adding nothing new:", list(true), list(false))
}

/// The hindsight prompt's ids: the problem's prompt replaced by the hindsight text (in chat
/// data, the last user message's content).
pub fn hindsight_ids(
    tok: &dyn Tokenizer,
    problem: &Problem,
    draft: &str,
    rubric: &[(String, bool)],
) -> Result<Vec<u32>> {
    let p = crate::policy::rewrite_instruction(problem, |instruction| hindsight_text(instruction, draft, rubric))?;
    crate::policy::prompt_ids(tok, &p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hindsight_prompt_lists_kept_and_missing_items() {
        let r = vec![("exactly 3 items".to_string(), true), ("include blue".to_string(), false)];
        let s = hindsight_text("list 3 items, include blue:", "red;cat;dog", &r);
        assert_eq!(
            s,
            "list 3 items, include blue: draft: red;cat;dog keep: exactly 3 items fix: include blue revise, adding nothing new:"
        );
        let all = vec![("a".to_string(), true)];
        assert!(hindsight_text("q", "d", &all).contains("fix: none"));
    }

    #[test]
    fn chat_problems_revise_their_last_user_message() -> Result<()> {
        let tok = oxrl_lm::CharTokenizer::new();
        let r = vec![("x".to_string(), false)];
        let plain = Problem {
            id: 1,
            prompt: "q".into(),
            answer: String::new(),
            solution: String::new(),
            meta: serde_json::Value::Null,
        };
        let ids = hindsight_ids(&tok, &plain, "d", &r)?;
        assert_eq!(ids, oxrl_lm::prompt::encode_prompt(&tok, &hindsight_text("q", "d", &r))?);
        let mut chat = plain.clone();
        chat.meta = serde_json::json!({"messages": [{"role": "system", "content": "s"}]});
        assert!(hindsight_ids(&tok, &chat, "d", &r).unwrap_err().to_string().contains("problem 1"));
        Ok(())
    }
}
