//! VSC-RL in the learner ("Variational Subgoal-Conditioned RL for Vision-Language Agents", 2025):
//! the agent task's environment decomposes its goal into ordered subgoals and announces the
//! current one in the agent's context (`grid` with `subgoals = true`: the instruction names the
//! first, the observation that completes one names the next), so the policy acts as
//! π(·|s, g_i). The SubGoal ELBO
//!
//!   Σ_i E_{τ~π(·|g_i)}[R_i(τ)] − β·Σ_i E_s[KL(π(·|s, g_i) ‖ π_ref(·|s, g))]
//!
//! is optimised with (a) a policy gradient on segments — each turn's advantage is its segment's
//! R_i (1 when subgoal i was completed) centred within the prompt's episodes that acted under
//! g_i ([`oxrl_core::shaping::vsc_rl::segment_advantages`]) — and (b) the run's KL term in the
//! loss (`train.kl_coef` = β; `kl_in = "reward"` is refused, the segment advantages do not read
//! token rewards) against the frozen
//! reference scored on the transcript with every subgoal announcement removed: the reference
//! sees the original goal only ([`goal_conditioned_reference`]). With one subgoal it is
//! KL-regularised goal-conditioned RL. INFERRED (the spec is reconstructed from the abstract).

use crate::agent::{lived_turns, per_token};
use anyhow::{Context, Result};
use oxrl_core::shaping::vsc_rl::{segment_advantages, Episode};
use oxrl_lm::latent::StepKind;
use oxrl_lm::sampler::Completion;
use oxrl_lm::scorer::{score, ScoreOptions};
use oxrl_lm::{Tokenizer, Transformer};
use oxrl_tasks::env::{split_belief, without_subgoals};
use oxrl_tasks::{Problem, Task};

/// One rollout: its prompt group (index into the problems) and its tokens.
pub struct Rollout<'a> {
    pub group: usize,
    pub completion: &'a Completion,
}

pub struct SegmentAdvantages {
    /// One row per rollout, one value per completion token.
    pub advantages: Vec<Vec<f64>>,
    /// Mean subgoals completed per episode.
    pub completed: f64,
    /// Mean segments acted in per episode.
    pub segments: f64,
}

/// The subgoal each turn acted under and the subgoals completed, by stepping the problem's
/// environment through the turns as the agent lived them.
fn segmentation(tok: &dyn Tokenizer, task: &dyn Task, p: &Problem, c: &Completion) -> Result<(Vec<usize>, usize)> {
    let mut env = task.environment(p).with_context(|| format!("task `{}` has no environment", task.name()))?;
    let none = || {
        format!("key `train.vsc_rl`: task `{}` does not decompose its goal (grid: task.subgoals = true)", task.name())
    };
    let mut seg = Vec::new();
    for turn in lived_turns(tok, c)? {
        seg.push(env.subgoal_progress().with_context(none)?);
        env.step(split_belief(&turn.line).1);
    }
    Ok((seg, env.subgoal_progress().with_context(none)?))
}

/// Term (a): per-token segment advantages of a batch (`problems[r.group]` is rollout r's problem).
pub fn advantages(
    tok: &dyn Tokenizer,
    task: &dyn Task,
    rollouts: &[Rollout],
    problems: &[Problem],
) -> Result<SegmentAdvantages> {
    let mut eps = Vec::with_capacity(rollouts.len());
    for r in rollouts {
        let (segment_of_step, completed) = segmentation(tok, task, &problems[r.group], r.completion)?;
        eps.push(Episode { group: r.group, segment_of_step, completed });
    }
    let per_turn = segment_advantages(&eps);
    let advantages =
        rollouts.iter().zip(&per_turn).map(|(r, a)| per_token(r.completion, a)).collect::<Result<Vec<_>>>()?;
    let n = eps.len().max(1) as f64;
    let completed = eps.iter().map(|e| e.completed as f64).sum::<f64>() / n;
    let segments = eps
        .iter()
        .map(|e| e.segment_of_step.iter().collect::<std::collections::BTreeSet<_>>().len() as f64)
        .sum::<f64>()
        / n;
    Ok(SegmentAdvantages { advantages, completed, segments })
}

/// (position in the rollout, position in the goal-only view) of each sampled token.
type PositionMap = Vec<(usize, usize)>;

/// A rollout as the reference conditioned on the original goal sees it: the sampled tokens
/// unchanged, each observation run re-encoded without its subgoal announcement. Returns the
/// tokens and where each sampled token went.
fn goal_view(tok: &dyn Tokenizer, c: &Completion) -> Result<(Vec<u32>, PositionMap)> {
    let (mut ids, mut map) = (Vec::with_capacity(c.tokens.len()), Vec::new());
    let mut j = 0;
    while j < c.tokens.len() {
        let forced = c.kind(j) == StepKind::Forced;
        let end = (j..c.tokens.len()).find(|&k| (c.kind(k) == StepKind::Forced) != forced).unwrap_or(c.tokens.len());
        if forced {
            ids.extend(tok.encode(&without_subgoals(&tok.decode(&c.tokens[j..end])?))?);
        } else {
            for k in j..end {
                map.push((k, ids.len()));
                ids.push(c.tokens[k]);
            }
        }
        j = end;
    }
    Ok((ids, map))
}

/// Term (b)'s reference: overwrite `logp_ref` (one row per rollout) at the sampled positions
/// with the reference's log-probs in the goal-only view — the prompt's instruction and
/// observations without subgoal announcements. Other positions are left as they are.
pub fn goal_conditioned_reference(
    reference: &Transformer,
    tok: &dyn Tokenizer,
    rollouts: &[Rollout],
    problems: &[Problem],
    logp_ref: &mut [Vec<f64>],
    temperature: f64,
    chunk: usize,
) -> Result<()> {
    let chunk = chunk.max(1);
    for (ci, part) in rollouts.chunks(chunk).enumerate() {
        let (mut prompts, mut resp, mut maps) = (Vec::new(), Vec::new(), Vec::new());
        for r in part {
            let plain = crate::policy::rewrite_instruction(&problems[r.group], without_subgoals)?;
            prompts.push(crate::policy::prompt_ids(tok, &plain)?);
            let (ids, map) = goal_view(tok, r.completion)?;
            resp.push(ids);
            maps.push(map);
        }
        let opts = ScoreOptions { grad: false, temperature, ..Default::default() };
        let s = score(reference, &prompts, &resp, tok.pad_id(), opts)?;
        let lp = s.logp.to_dtype(candle_core::DType::F64)?.to_vec2::<f64>()?;
        for (k, map) in maps.iter().enumerate() {
            let row = &mut logp_ref[ci * chunk + k];
            for &(orig, view) in map {
                row[orig] = lp[k][view];
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_follow_the_announced_subgoals_and_the_view_drops_them() -> Result<()> {
        use oxrl_tasks::grid::{Grid, GridConfig};
        let tok = oxrl_lm::CharTokenizer::new();
        let cfg = GridConfig { size: 4, closed_box: true, subgoals: true, test_size: 4, ..Default::default() };
        let task = Grid::new(cfg.clone(), 0)?;
        let plain = Grid::new(GridConfig { subgoals: false, ..cfg }, 0)?;
        let p = task.train_problem(0);
        let c = crate::agent::completion_of_transcript(&tok, &p.solution);
        let (seg, done) = segmentation(&tok, &task, &p, &c)?;
        assert_eq!(done, 3);
        // The segment changes right after the turn whose observation announces the next subgoal.
        let lines: Vec<&str> = p.solution.lines().collect();
        let mut want = Vec::new();
        let mut i = 0;
        for (k, l) in lines.iter().enumerate() {
            if !l.starts_with('@') {
                want.push(i);
                if lines.get(k + 1).is_some_and(|o| o.contains(" subgoal: ")) {
                    i += 1;
                }
            }
        }
        assert_eq!(seg, want);
        assert_eq!(*seg.last().unwrap(), 2);
        // The goal-only view is the plain task's transcript, sampled tokens in place.
        let (ids, map) = goal_view(&tok, &c)?;
        assert_eq!(tok.decode(&ids)?, plain.train_problem(0).solution);
        assert_eq!(map.len(), c.kinds.iter().filter(|k| **k == StepKind::Token).count());
        assert!(map.iter().all(|&(o, v)| c.tokens[o] == ids[v]));
        // Without the flag the learner refuses, naming the key.
        let e = segmentation(&tok, &plain, &plain.train_problem(0), &c).unwrap_err();
        assert!(format!("{e:#}").contains("train.vsc_rl"));
        Ok(())
    }
}
