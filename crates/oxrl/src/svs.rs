//! SvS in the trainer (oxrl_core::shaping::svs has the bands and rewards): from the correct
//! responses of under-performing problems, G candidate problems each (written by the policy, or
//! by the task's scripted rewriter), each solved G times against the source's answer.

use anyhow::Result;
use oxrl_core::shaping::svs::{keep_solve_group, keep_synthesis_group, Svs};
use oxrl_lm::sampler::{generate, Completion, SamplingParams};
use oxrl_lm::{Tokenizer, Transformer};
use oxrl_tasks::{Problem, Task, Verdict};
use std::collections::BTreeMap;

/// Who writes the synthetic problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synthesizer {
    /// The policy, from the synthesis template; its problem texts train with r_syn.
    Policy,
    /// The task's scripted rewriter (no policy tokens: only the solving groups train).
    Task,
}

/// One response of a synthetic group.
pub struct Member {
    pub prompt: Vec<u32>,
    pub completion: Completion,
    pub text: String,
    pub reward: f64,
    pub correct: bool,
    pub format_ok: bool,
}

/// A group SvS adds to the batch: the G candidate problems of one source response (synthesis)
/// or the G solutions of one synthetic problem.
pub struct Group {
    /// The problem the group's rewards refer to (for a solving group: the synthetic problem, whose
    /// answer is the source's).
    pub problem: Problem,
    pub synthesis: bool,
    pub members: Vec<Member>,
}

/// What one step of synthesis did.
#[derive(Debug, Default)]
pub struct Stats {
    pub sources: usize,
    pub candidates: usize,
    pub accepted: usize,
    pub synthesis_groups: usize,
    pub solve_groups: usize,
    /// Per rewrite label (scripted rewriter) or "policy": (candidates, accepted, sum of solve
    /// rates).
    pub by_label: BTreeMap<&'static str, (usize, usize, f64)>,
}

/// The synthesis instruction shown to the policy: the template with the correct response in
/// place of `{solution}`, as the problem's instruction (chat data: the last user message).
pub fn synthesis_ids(tok: &dyn Tokenizer, problem: &Problem, template: &str, response: &str) -> Result<Vec<u32>> {
    let p = crate::policy::rewrite_instruction(problem, |_| template.replace("{solution}", response))?;
    crate::policy::prompt_ids(tok, &p)
}

/// The synthetic problem: the source problem with its instruction replaced and its answer (and
/// everything the verifier reads) kept — `ans(x') = ans(x)` by construction.
pub fn synthetic_problem(source: &Problem, text: &str) -> Result<Problem> {
    crate::policy::rewrite_instruction(source, |_| text.to_string())
}

/// Everything SvS needs from the trainer.
pub struct Ctx<'a> {
    pub model: &'a Transformer,
    pub tok: &'a dyn Tokenizer,
    pub task: &'a dyn Task,
    pub params: &'a SamplingParams,
    pub group_size: usize,
    pub svs: Svs,
    pub synthesizer: Synthesizer,
    pub template: &'a str,
    /// The trainer's reward of a verdict on a response of `len` tokens (shaping included).
    pub reward_of: &'a dyn Fn(&Verdict, usize) -> f64,
}

/// Synthesize from `sources` (problem, correct response) and solve: the groups that enter the
/// update (synthesis groups with an accepted candidate, solving groups with mixed outcomes).
pub fn synthesize(
    ctx: &Ctx,
    sources: &[(Problem, String)],
    rng: &mut oxrl_core::seed::Rng,
) -> Result<(Vec<Group>, Stats)> {
    let (g, tok, pad) = (ctx.group_size, ctx.tok, ctx.tok.pad_id());
    let mut stats = Stats { sources: sources.len(), ..Default::default() };
    // 1. G candidate problems per source.
    struct Candidate {
        source: usize,
        text: String,
        label: &'static str,
        drawn: Option<(Vec<u32>, Completion)>,
    }
    let mut cands: Vec<Candidate> = Vec::with_capacity(sources.len() * g);
    match ctx.synthesizer {
        Synthesizer::Policy => {
            let prompts: Vec<Vec<u32>> = sources
                .iter()
                .map(|(p, y)| synthesis_ids(tok, p, ctx.template, y))
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .flat_map(|ids| std::iter::repeat_n(ids, g))
                .collect();
            let outs = generate(ctx.model, &prompts, ctx.params, pad, rng)?;
            for (i, (c, prompt)) in outs.into_iter().zip(prompts).enumerate() {
                let text = oxrl_lm::prompt::decode_response(tok, &c.text_tokens())?.trim().to_string();
                cands.push(Candidate { source: i / g, text, label: "policy", drawn: Some((prompt, c)) });
            }
        }
        Synthesizer::Task => {
            for (si, (p, _)) in sources.iter().enumerate() {
                for _ in 0..g {
                    let Some(v) = ctx.task.variant(p, rng) else {
                        anyhow::bail!(
                            "key `train.svs_synthesizer`: task `{}` has no scripted rewriter (try `arith`, or \"policy\")",
                            ctx.task.name()
                        );
                    };
                    cands.push(Candidate { source: si, text: v.prompt, label: v.label, drawn: None });
                }
            }
        }
    }
    stats.candidates = cands.len();
    // 2. Solve every non-empty candidate G times (one generation batch) against the source answer.
    let problems: Vec<Option<Problem>> = cands
        .iter()
        .map(|c| (!c.text.is_empty()).then(|| synthetic_problem(&sources[c.source].0, &c.text)).transpose())
        .collect::<Result<_>>()?;
    let mut solve_prompts = Vec::new();
    for p in problems.iter().flatten() {
        solve_prompts.extend(std::iter::repeat_n(crate::policy::prompt_ids(tok, p)?, g));
    }
    let mut outs = generate(ctx.model, &solve_prompts, ctx.params, pad, rng)?.into_iter().zip(solve_prompts);
    let mut groups = Vec::new();
    let mut r_syn = vec![0.0; cands.len()];
    for (ci, p) in problems.into_iter().enumerate() {
        let entry = stats.by_label.entry(cands[ci].label).or_default();
        entry.0 += 1;
        let Some(p) = p else { continue };
        let mut members = Vec::with_capacity(g);
        for (c, prompt) in outs.by_ref().take(g) {
            let text = oxrl_lm::prompt::decode_response(tok, &c.text_tokens())?;
            let v = ctx.task.verify(&p, &text);
            let reward = (ctx.reward_of)(&v, c.tokens.len());
            members.push(Member { prompt, completion: c, text, reward, correct: v.correct, format_ok: v.format_ok });
        }
        let solved: Vec<bool> = members.iter().map(|m| m.correct).collect();
        let n_solved = solved.iter().filter(|&&c| c).count();
        r_syn[ci] = ctx.svs.synthesis_reward(n_solved, g);
        entry.1 += (r_syn[ci] > 0.0) as usize;
        entry.2 += n_solved as f64 / g as f64;
        stats.accepted += (r_syn[ci] > 0.0) as usize;
        if keep_solve_group(&solved) {
            stats.solve_groups += 1;
            groups.push(Group { problem: p, synthesis: false, members });
        }
    }
    // 3. The policy's synthesis groups, one per source, when a candidate was accepted.
    if ctx.synthesizer == Synthesizer::Policy {
        let mut cands = cands.into_iter().zip(r_syn).peekable();
        for (si, (p, _)) in sources.iter().enumerate() {
            let mut members = Vec::with_capacity(g);
            while let Some((c, r)) = cands.next_if(|(c, _)| c.source == si) {
                let (prompt, completion) = c.drawn.expect("policy candidates are drawn");
                let m = Member { prompt, completion, text: c.text, reward: r, correct: r > 0.0, format_ok: true };
                members.push(m);
            }
            let rewards: Vec<f64> = members.iter().map(|m| m.reward).collect();
            if keep_synthesis_group(&rewards) {
                stats.synthesis_groups += 1;
                groups.push(Group { problem: p.clone(), synthesis: true, members });
            }
        }
    }
    Ok((groups, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_problems_keep_the_source_answer() {
        // Spec oracle: ans(x') = ans(x) for every record, plain and chat.
        let mut p = Problem {
            id: 3,
            prompt: "3*4+5=".into(),
            answer: "17".into(),
            solution: "step1: 3*4=12,step2: 12+5=17,answer: 17".into(),
            meta: serde_json::json!({"steps": ["3*4=12"]}),
        };
        for text in ["5+4*3=", "17=", "anything at all"] {
            let q = synthetic_problem(&p, text).unwrap();
            assert_eq!((q.prompt.as_str(), q.answer.as_str(), &q.meta), (text, "17", &p.meta));
        }
        p.meta = serde_json::json!({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "3*4+5="}]});
        let q = synthetic_problem(&p, "5+12=").unwrap();
        assert_eq!(q.answer, "17");
        assert_eq!(q.meta["messages"][1]["content"], "5+12=");
        assert_eq!(q.meta["messages"][0]["content"], "s");
    }
}
