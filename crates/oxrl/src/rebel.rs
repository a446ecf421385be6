//! ReBel in the learner ("Rewarding Beliefs, Not Actions: Consistency-Guided Credit Assignment
//! for Long-Horizon Agents", 2026): the agent states a belief before every action
//! (`<belief>{json}</belief> action`, e.g. `grid` with `belief = true`); this module reads each
//! rollout's turns as the agent lived them, scores every stated belief against the environment's
//! tracker of what the observations so far revealed (`Environment::belief_truth`), and turns the
//! batch into ReBel's per-turn advantages `A_t = A_ep + ω·A_step`
//! ([`oxrl_core::shaping::rebel::advantages`], where the formulas live), broadcast to the turn's
//! action tokens. Observation tokens get 0 (they carry no loss anyway).

use crate::agent::{lived_turns, per_token};
use crate::config::TrainConfig;
use anyhow::{Context, Result};
use oxrl_core::shaping::rebel::{self, belief_key, consistency_reward, Belief, Rebel};
use oxrl_lm::sampler::Completion;
use oxrl_lm::Tokenizer;
use oxrl_tasks::env::{first_observation, split_belief};
use oxrl_tasks::{Problem, Task};
use std::collections::HashMap;

/// One rollout: its prompt group (index into the problems), its tokens and its episode outcome.
pub struct Episode<'a> {
    pub group: usize,
    pub completion: &'a Completion,
    pub outcome: f64,
}

pub struct RebelAdvantages {
    /// One row per episode, one value per completion token.
    pub advantages: Vec<Vec<f64>>,
    pub metrics: Vec<(&'static str, f64)>,
}

/// ReBel's settings from the run's `train` section.
pub fn settings(t: &TrainConfig) -> Rebel {
    let [a_state, a_task, a_pred, a_format] = t.rebel_weights;
    Rebel {
        omega: t.rebel_omega,
        gamma: t.rebel_gamma,
        a_state,
        a_task,
        a_pred,
        a_format,
        std_norm: t.rebel_std_norm,
        ..Rebel::default()
    }
}

/// Per-token ReBel advantages of a batch of agent rollouts (`problems[e.group]` is episode e's
/// problem).
pub fn advantages(
    tok: &dyn Tokenizer,
    task: &dyn Task,
    episodes: &[Episode],
    problems: &[Problem],
    t: &TrainConfig,
) -> Result<RebelAdvantages> {
    let c = settings(t);
    let mut trajs = Vec::with_capacity(episodes.len());
    let (mut steps, mut parsed, mut phase_right, mut cons) = (0usize, 0usize, 0usize, 0.0);
    for e in episodes {
        let p = &problems[e.group];
        let env = task.environment(p).with_context(|| format!("task `{}` has no environment", task.name()))?;
        let first = first_observation(&p.prompt).with_context(|| {
            format!("key `train.rebel`: the prompt of task `{}` has no observation line", task.name())
        })?;
        let mut obs = vec![first.to_string()];
        let mut ksteps = Vec::new();
        for (k, turn) in lived_turns(tok, e.completion)?.into_iter().enumerate() {
            let belief = split_belief(&turn.line).0.and_then(Belief::parse);
            let truth = env.belief_truth(&obs).with_context(|| {
                format!("key `train.rebel`: task `{}`'s environment has no belief tracker", task.name())
            })?;
            let r = consistency_reward(
                belief.as_ref(),
                &truth.tracker,
                &truth.phase,
                turn.next_observation.as_deref(),
                k,
                &c,
            );
            steps += 1;
            parsed += belief.is_some() as usize;
            phase_right +=
                belief.as_ref().is_some_and(|b| b.task.phase.trim().eq_ignore_ascii_case(&truth.phase)) as usize;
            cons += r;
            ksteps.push((belief_key(belief.as_ref()), r));
            obs.extend(turn.next_observation);
        }
        trajs.push(rebel::Trajectory { prompt: e.group, outcome: e.outcome, steps: ksteps });
    }
    let mut sizes: HashMap<(usize, &str), usize> = HashMap::new();
    for tr in &trajs {
        for (key, _) in &tr.steps {
            *sizes.entry((tr.prompt, key.as_str())).or_default() += 1;
        }
    }
    let singleton = sizes.values().filter(|&&n| n == 1).count();
    let per_turn = rebel::advantages(&trajs, &c);
    let advantages =
        episodes.iter().zip(&per_turn).map(|(e, a)| per_token(e.completion, a)).collect::<Result<Vec<_>>>()?;
    let n = steps.max(1) as f64;
    let metrics = vec![
        ("rebel_consistency", cons / n),
        ("rebel_belief_parsed", parsed as f64 / n),
        ("rebel_phase_right", phase_right as f64 / n),
        ("rebel_singleton_steps", singleton as f64 / n),
    ];
    Ok(RebelAdvantages { advantages, metrics })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxrl_lm::latent::StepKind;

    #[test]
    fn advantages_match_the_library_on_replayed_episodes() -> Result<()> {
        use oxrl_tasks::grid::{Grid, GridConfig};
        let tok = oxrl_lm::CharTokenizer::new();
        let task = Grid::new(GridConfig { size: 4, belief: true, test_size: 4, ..Default::default() }, 0)?;
        let problems: Vec<Problem> = (0..2).map(|i| task.train_problem(i)).collect();
        // Per problem: the demonstration (success), its first two turns only (failure), and the
        // demonstration with its beliefs' phases swapped (success, inconsistent beliefs).
        let mut transcripts = Vec::new();
        for (g, p) in problems.iter().enumerate() {
            let lines: Vec<&str> = p.solution.split_inclusive('\n').collect();
            let swapped = p.solution.replace("find key", "FK").replace("deliver", "find key").replace("FK", "deliver");
            transcripts.push((g, p.solution.clone(), 1.0));
            transcripts.push((g, lines[..3].concat(), 0.0));
            transcripts.push((g, swapped, 1.0));
        }
        let comps: Vec<Completion> =
            transcripts.iter().map(|(_, t, _)| crate::agent::completion_of_transcript(&tok, t)).collect();
        let episodes: Vec<Episode> = transcripts
            .iter()
            .zip(&comps)
            .map(|((g, _, o), c)| Episode { group: *g, completion: c, outcome: *o })
            .collect();
        let t = TrainConfig { rebel: true, ..Default::default() };
        let got = advantages(&tok, &task, &episodes, &problems, &t)?;
        // The same trajectories through the replay path (text, not token kinds).
        let c = settings(&t);
        let trajs: Vec<rebel::Trajectory> = transcripts
            .iter()
            .map(|(g, text, o)| {
                let p = &problems[*g];
                let env = task.environment(p).unwrap();
                let tr = oxrl_tasks::env::replay(task.environment(p).unwrap().as_mut(), text);
                assert_eq!(tr.outcome, *o);
                let mut obs = vec![first_observation(&p.prompt).unwrap().to_string()];
                let steps = tr
                    .turns
                    .iter()
                    .enumerate()
                    .map(|(k, turn)| {
                        let b = turn.belief.as_deref().and_then(Belief::parse);
                        let truth = env.belief_truth(&obs).unwrap();
                        let next = (k + 1 < tr.turns.len()).then_some(turn.step.observation.as_str());
                        obs.push(turn.step.observation.clone());
                        (
                            belief_key(b.as_ref()),
                            consistency_reward(b.as_ref(), &truth.tracker, &truth.phase, next, k, &c),
                        )
                    })
                    .collect();
                rebel::Trajectory { prompt: *g, outcome: *o, steps }
            })
            .collect();
        let want = rebel::advantages(&trajs, &c);
        for ((row, w), comp) in got.advantages.iter().zip(&want).zip(&comps) {
            assert_eq!(row, &per_token(comp, w)?);
            assert_eq!(row.len(), comp.tokens.len());
        }
        // ω = 0: every action token carries the episode advantage, outcome − group mean (2/3).
        let t0 = TrainConfig { rebel: true, rebel_omega: 0.0, ..Default::default() };
        let a0 = advantages(&tok, &task, &episodes, &problems, &t0)?;
        for ((row, comp), (_, _, o)) in a0.advantages.iter().zip(&comps).zip(&transcripts) {
            for (j, a) in row.iter().enumerate() {
                let want = if comp.kind(j) == StepKind::Token { o - 2.0 / 3.0 } else { 0.0 };
                assert!((a - want).abs() < 1e-12);
            }
        }
        let metric = |k: &str| got.metrics.iter().find(|m| m.0 == k).unwrap().1;
        assert_eq!(metric("rebel_belief_parsed"), 1.0);
        let turns: Vec<usize> = trajs.iter().map(|t| t.steps.len()).collect();
        let swapped: usize = turns.iter().skip(2).step_by(3).sum();
        let total: usize = turns.iter().sum();
        assert!((metric("rebel_phase_right") - (total - swapped) as f64 / total as f64).abs() < 1e-12);
        Ok(())
    }
}
