//! Multi-turn agent rollouts: the policy writes one action per turn, the task's environment
//! answers with an observation line, until the episode ends or its turns run out.
//!
//! A rollout is one [`Completion`] over the whole transcript after the prompt: the sampled action
//! tokens are `Token` positions (log-probs and entropies recorded; they alone carry the loss),
//! the inserted observation lines are `Forced` positions. The live episodes share one
//! [`Conversation`]: the prompts are prefilled once and each turn appends only its new tokens to
//! the kept KV cache (no re-encoding of the transcript).

use anyhow::{ensure, Context, Result};
use oxrl_lm::conversation::Conversation;
use oxrl_lm::latent::StepKind;
use oxrl_lm::sampler::{generate, Completion, Finish, SamplingParams};
use oxrl_lm::{Tokenizer, Transformer};
use oxrl_tasks::env::{observation_line, Environment};
use oxrl_tasks::{Problem, Task};

/// Token ids whose text ends an action line (their decoded text contains a newline).
fn newline_ids(tok: &dyn Tokenizer) -> Vec<u32> {
    (0..tok.vocab_size() as u32).filter(|&i| tok.decode_special(i).is_ok_and(|s| s.contains('\n'))).collect()
}

/// Run one episode per problem (`prompts[i]` is problem i's encoded prompt). `params` is the
/// per-turn sampling (its `max_new_tokens` the per-turn budget); the episode's stop tokens end
/// it early (the agent quits).
pub fn run_episodes(
    model: &Transformer,
    tok: &dyn Tokenizer,
    task: &dyn Task,
    problems: &[&Problem],
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    rng: &mut impl rand::Rng,
) -> Result<Vec<Completion>> {
    ensure!(model.latent.is_none(), "multi-turn agent rollouts do not support latent-reasoning policies");
    let mut envs: Vec<Box<dyn Environment>> = problems
        .iter()
        .map(|p| task.environment(p).with_context(|| format!("task `{}` has no environment", task.name())))
        .collect::<Result<_>>()?;
    let newline = newline_ids(tok);
    ensure!(!newline.is_empty(), "the tokenizer has no token containing a newline (agent actions end with one)");
    let mut turn_params = params.clone();
    turn_params.stop_tokens.extend(&newline);
    let n = problems.len();
    let mut out: Vec<Completion> =
        (0..n).map(|_| Completion::of_tokens(vec![], vec![], vec![], Finish::Length)).collect();
    let mut turns = vec![0usize; n];
    let limit = model.cfg.max_position_embeddings;
    let mut conv = Conversation::new(model, prompts, tok.pad_id(), 4 * params.max_new_tokens)?;
    let mut live: Vec<usize> = (0..n).collect();
    while !live.is_empty() {
        let gens = conv.sample_turn(&turn_params, rng)?;
        let mut keep = Vec::with_capacity(live.len());
        let mut feed = Vec::with_capacity(live.len());
        for (r, (&i, g)) in live.iter().zip(gens).enumerate() {
            let c = &mut out[i];
            let quit = g.tokens.last().is_some_and(|t| params.stop_tokens.contains(t));
            let ended_line = g.tokens.last().is_some_and(|t| newline.contains(t));
            let text = tok.decode(&g.tokens)?;
            let line = text.split('\n').next().unwrap_or("");
            let action = oxrl_tasks::env::split_belief(line).1.to_string();
            c.kinds.extend(std::iter::repeat_n(StepKind::Token, g.tokens.len()));
            c.inputs.extend(std::iter::repeat_n(None, g.tokens.len()));
            c.tokens.extend(&g.tokens);
            c.logp.extend(&g.logp);
            c.entropy.extend(&g.entropy);
            turns[i] += 1;
            let env = envs[i].as_mut();
            let step = if action.is_empty() && quit { None } else { Some(env.step(&action)) };
            let done = step.as_ref().is_some_and(|s| s.done);
            if quit || done {
                c.finish = Finish::Stop;
                continue;
            }
            if turns[i] >= env.max_turns() {
                continue; // out of turns: Finish::Length
            }
            let mut obs = if ended_line { String::new() } else { "\n".to_string() };
            obs.push_str(&observation_line(&step.expect("stepped").observation));
            let ids = tok.encode(&obs)?;
            if prompts[i].len() + c.tokens.len() + ids.len() + params.max_new_tokens > limit {
                continue; // the next turn would not fit the context: Finish::Length
            }
            c.kinds.extend(std::iter::repeat_n(StepKind::Forced, ids.len()));
            c.inputs.extend(std::iter::repeat_n(None, ids.len()));
            c.logp.extend(std::iter::repeat_n(0.0, ids.len()));
            c.entropy.extend(std::iter::repeat_n(0.0, ids.len()));
            c.tokens.extend(&ids);
            keep.push(r);
            feed.push(ids);
        }
        live = keep.iter().map(|&r| live[r]).collect();
        if !live.is_empty() {
            conv.retain(&keep)?;
            conv.extend(&feed)?;
        }
    }
    Ok(out)
}

/// The transcript a verifier reads: actions and observations, up to the agent's stop token.
pub fn transcript(tok: &dyn Tokenizer, c: &Completion) -> Result<String> {
    oxrl_lm::prompt::decode_response(tok, &c.tokens)
}

/// The separator (last action token) of every turn: the end of each run of sampled tokens.
pub fn turn_ends(c: &Completion) -> Vec<usize> {
    let n = c.tokens.len();
    (0..n).filter(|&j| c.kind(j) == StepKind::Token && (j + 1 == n || c.kind(j + 1) != StepKind::Token)).collect()
}

/// One sampled turn as the agent lived it: its action line (belief included) and the
/// observation inserted after it (None after the last turn).
#[derive(Debug, Clone, PartialEq)]
pub struct LivedTurn {
    pub line: String,
    pub next_observation: Option<String>,
}

/// The turns of a rollout, read from its tokens: each run of sampled tokens is a turn, the
/// forced tokens after it its observation (without the mark). Unlike [`replay`], turns whose line
/// was empty are kept, so the k-th entry is the k-th of [`turn_ends`].
pub fn lived_turns(tok: &dyn Tokenizer, c: &Completion) -> Result<Vec<LivedTurn>> {
    let ends = turn_ends(c);
    let mut out = Vec::with_capacity(ends.len());
    let mut start = 0;
    for (k, &end) in ends.iter().enumerate() {
        let sampled: Vec<u32> = (start..=end).filter(|&j| c.kind(j) == StepKind::Token).map(|j| c.tokens[j]).collect();
        let text = tok.decode(&sampled)?;
        let line = text.split('\n').next().unwrap_or("").to_string();
        let obs_end = ends
            .get(k + 1)
            .map_or(c.tokens.len(), |&e| (end + 1..=e).find(|&j| c.kind(j) == StepKind::Token).unwrap_or(e));
        let forced: Vec<u32> =
            (end + 1..obs_end).filter(|&j| c.kind(j) == StepKind::Forced).map(|j| c.tokens[j]).collect();
        let next_observation = if forced.is_empty() {
            None
        } else {
            let o = tok.decode(&forced)?;
            Some(o.trim().trim_start_matches(oxrl_tasks::env::OBS_MARK).trim().to_string())
        };
        out.push(LivedTurn { line, next_observation });
        start = end + 1;
    }
    Ok(out)
}

/// Per-turn values on the tokens: turn k's value on its sampled tokens (the k-th run of sampled
/// tokens), 0 on the observation tokens.
pub fn per_token(c: &Completion, per_turn: &[f64]) -> Result<Vec<f64>> {
    let mut out = vec![0.0; c.tokens.len()];
    let mut turn: Option<usize> = None;
    for (j, v) in out.iter_mut().enumerate() {
        if c.kind(j) != StepKind::Token {
            continue;
        }
        let k = match turn {
            Some(k) if c.kind(j - 1) == StepKind::Token => k,
            Some(k) => k + 1,
            None => 0,
        };
        ensure!(k < per_turn.len(), "a completion has more turns than its {} values", per_turn.len());
        *v = per_turn[k];
        turn = Some(k);
    }
    Ok(out)
}

/// A transcript as the agent rollout would record it (test fixture): action tokens sampled,
/// observation lines forced.
#[cfg(test)]
pub(crate) fn completion_of_transcript(tok: &dyn Tokenizer, transcript: &str) -> Completion {
    let (ids, mask) = encode_transcript(tok, transcript).unwrap();
    let n = ids.len() - 1; // without the end-of-sequence id
    let mut c = Completion::of_tokens(ids[..n].to_vec(), vec![0.0; n], vec![0.0; n], Finish::Stop);
    c.kinds = mask[..n].iter().map(|&m| if m > 0.0 { StepKind::Token } else { StepKind::Forced }).collect();
    c
}

/// Whether a task's problems are multi-turn episodes.
pub fn is_agent_task(task: &dyn Task) -> bool {
    task.environment(&task.train_problem(0)).is_some()
}

/// Completions for `problems`: multi-turn episodes when `agent` ([`is_agent_task`], decided
/// once by the caller), else one generation.
#[allow(clippy::too_many_arguments)]
pub fn rollout(
    model: &Transformer,
    tok: &dyn Tokenizer,
    task: &dyn Task,
    agent: bool,
    problems: &[&Problem],
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    rng: &mut impl rand::Rng,
) -> Result<Vec<Completion>> {
    if agent {
        run_episodes(model, tok, task, problems, prompts, params, rng)
    } else {
        generate(model, prompts, params, tok.pad_id(), rng)
    }
}

/// The text a completion is verified on: the transcript for agent tasks, else the sampled tokens.
pub fn response_text(tok: &dyn Tokenizer, agent: bool, c: &Completion) -> Result<String> {
    if agent {
        transcript(tok, c)
    } else {
        oxrl_lm::prompt::decode_response(tok, &c.text_tokens())
    }
}

/// Replay a transcript of `problem` in a fresh environment.
pub fn replay(task: &dyn Task, problem: &Problem, text: &str) -> Result<oxrl_tasks::env::Trajectory> {
    let mut env = task.environment(problem).with_context(|| format!("task `{}` has no environment", task.name()))?;
    Ok(oxrl_tasks::env::replay(env.as_mut(), text))
}

/// Each turn's reward under `train.agent_reward` (not `outcome`): `dense` — the sub-goal events
/// normalised (practitioner's guide); `direct` / `gated` — D-RA / G-RA over the immediate rewards
/// `agent_step_reward` per executable action (once per distinct action and result), the
/// episode's `outcome` reward on the last turn.
pub fn turn_rewards(
    traj: &oxrl_tasks::env::Trajectory,
    max_events: usize,
    outcome: f64,
    t: &crate::config::TrainConfig,
) -> Result<Vec<f64>> {
    use oxrl_core::shaping::{gated_reward, turn_rewards as tr};
    if traj.turns.is_empty() {
        return Ok(vec![outcome]);
    }
    Ok(match t.agent_reward.as_str() {
        "spa" => anyhow::bail!("SPA-RL turn rewards need the batch's progress estimator (rl_step)"),
        "dense" => {
            let events: Vec<f64> = traj.turns.iter().map(|x| x.step.reward).collect();
            tr::dense(&events, traj.success, max_events)
        }
        mode => {
            let low: Vec<f64> =
                traj.turns.iter().map(|x| if x.step.valid { t.agent_step_reward } else { 0.0 }).collect();
            let keys: Vec<String> = traj.turns.iter().map(|x| format!("{}|{}", x.action, x.step.observation)).collect();
            let low = gated_reward::once_per_key(&low, &keys);
            gated_reward::accumulate(outcome, &low, (mode == "gated").then_some(t.agent_gate))
        }
    })
}

/// SPA-RL's per-turn features (the linear progress estimator's inputs): bias, executable,
/// sub-goal event, position in the episode, episode end, and the action's verb hashed into 8
/// buckets.
pub fn step_features(traj: &oxrl_tasks::env::Trajectory) -> Vec<Vec<f64>> {
    let n = traj.turns.len().max(1) as f64;
    traj.turns
        .iter()
        .enumerate()
        .map(|(k, t)| {
            let verb =
                t.action.split(|c: char| c.is_whitespace() || c == '[').next().unwrap_or("").to_ascii_lowercase();
            let bucket = verb.bytes().fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32)) % 8;
            let mut f =
                vec![1.0, t.step.valid as u8 as f64, t.step.reward, (k + 1) as f64 / n, t.step.done as u8 as f64];
            f.extend((0..8).map(|i| (i == bucket) as u8 as f64));
            f
        })
        .collect()
}

/// An agent transcript encoded as the rollout would produce it — each action line and each
/// observation line encoded on its own, then the end-of-sequence id — with the loss mask of an
/// SFT demonstration: 1 on action tokens (and the end), 0 on observation lines.
pub fn encode_transcript(tok: &dyn Tokenizer, transcript: &str) -> Result<(Vec<u32>, Vec<f32>)> {
    let (mut ids, mut mask) = (Vec::new(), Vec::new());
    for line in transcript.split_inclusive('\n') {
        let seg = tok.encode(line)?;
        let m = if line.starts_with(oxrl_tasks::env::OBS_MARK) { 0.0 } else { 1.0 };
        mask.extend(std::iter::repeat_n(m, seg.len()));
        ids.extend(seg);
    }
    ids.push(tok.eos_id());
    mask.push(1.0);
    Ok((ids, mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_ends_are_the_last_tokens_of_sampled_runs() {
        let mut c = Completion::of_tokens(vec![1; 9], vec![0.0; 9], vec![0.0; 9], Finish::Stop);
        use StepKind::{Forced as F, Token as T};
        c.kinds = vec![T, T, F, F, T, T, T, F, T];
        assert_eq!(turn_ends(&c), vec![1, 6, 8]);
    }

    #[test]
    fn spa_rl_progress_spikes_on_the_sub_goal_steps() -> Result<()> {
        // The spec's stand-in: on GRID, expert episodes (R = 1) and random ones (R = 0); the
        // linear estimator's contributions concentrate on picking the key and dropping it in the box.
        use oxrl_core::shaping::spa_rl::{contributions, fit_linear};
        let task = oxrl_tasks::grid::Grid::new(
            oxrl_tasks::grid::GridConfig { size: 3, max_turns: 10, test_size: 4, ..Default::default() },
            0,
        )?;
        let mut rng = oxrl_core::seed::rng(0, "spa", 0);
        let acts = ["north", "south", "east", "west", "pick", "drop"];
        let (mut feats, mut rets) = (Vec::new(), Vec::new());
        for i in 0..200 {
            let p = task.train_problem(i);
            let text = if i % 2 == 0 {
                p.solution.clone()
            } else {
                (0..6).map(|_| format!("{}\n", acts[rand::Rng::random_range(&mut rng, 0..acts.len())])).collect()
            };
            let tr = replay(&task, &p, &text)?;
            feats.push(step_features(&tr));
            rets.push(tr.outcome);
        }
        let w = fit_linear(&feats, &rets, 1e-3);
        let (mut ev, mut other) = (Vec::new(), Vec::new());
        for i in (0..200).step_by(2) {
            let p = task.train_problem(i);
            let tr = replay(&task, &p, &p.solution)?;
            let c = contributions(&w, &feats[i as usize]);
            assert!((c.iter().sum::<f64>() - 1.0).abs() < 0.2, "an expert episode's contributions sum to about R = 1");
            for (t, c) in tr.turns.iter().zip(c) {
                if t.step.reward > 0.0 {
                    ev.push(c)
                } else {
                    other.push(c)
                }
            }
        }
        let m = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(m(&ev) > m(&other) + 0.2, "sub-goal steps {:.3} vs others {:.3}", m(&ev), m(&other));
        Ok(())
    }

    #[test]
    fn per_token_puts_each_turns_value_on_its_action_tokens() -> Result<()> {
        use StepKind::{Forced as F, Token as T};
        let mut c = Completion::of_tokens(vec![1; 8], vec![0.0; 8], vec![0.0; 8], Finish::Stop);
        c.kinds = vec![T, T, F, F, T, F, T, T];
        assert_eq!(per_token(&c, &[0.5, -1.0, 2.0])?, vec![0.5, 0.5, 0.0, 0.0, -1.0, 0.0, 2.0, 2.0]);
        assert!(per_token(&c, &[0.5, -1.0]).is_err());
        c.kinds = vec![F, T, T, F, T, T, F, F];
        assert_eq!(per_token(&c, &[1.0, 3.0])?, vec![0.0, 1.0, 1.0, 0.0, 3.0, 3.0, 0.0, 0.0]);
        Ok(())
    }

    #[test]
    fn transcripts_mask_observations() -> Result<()> {
        let tok = oxrl_lm::CharTokenizer::new();
        let (ids, mask) = encode_transcript(&tok, "ab\n@x y\ncd\n")?;
        assert_eq!(ids.len(), 3 + 5 + 3 + 1);
        assert_eq!(mask, [vec![1.0; 3], vec![0.0; 5], vec![1.0; 4]].concat());
        assert_eq!(tok.decode(&ids)?, "ab\n@x y\ncd\n");
        Ok(())
    }
}
