//! One RL step, top to bottom:
//!
//! ```text
//! prompts ──(SELF: keep greedy failures)─▶ ──sample G each (one batch)──▶ rollouts (tokens, log-probs, entropies)
//!         ──verifier──────────────────▶ rewards (+ DAPO overlong penalty; dynamic sampling refill)
//!         ──scorer (no grad)──────────▶ old / reference log-probs, values, sampler↔trainer mismatch
//!         ──estimator─────────────────▶ token rewards (± KL penalty) → advantages (+ returns)
//!         ──epochs × minibatches──────▶ PPO clip loss or PACS (+ KL loss, entropy bonus, value loss) → AdamW
//!         ──metrics───────────────────▶ one JSON record
//! ```

use crate::config::RunConfig;
use crate::data::DataStream;
use crate::policy::Policy;
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use oxrl_core::advantage::{AdvantageEstimator, AdvantageInput};
use oxrl_core::loss::{aggregate, calibrl_guided, clipped_value_loss, pacs_loss, ppo_clip_loss, Pacs, PpoClip};
use oxrl_core::optim::AdamW;
use oxrl_core::regularizer::dph::dph_divergence;
use oxrl_core::regularizer::{kl_estimate, AdaptiveKl};
use oxrl_core::shaping::{group_is_informative, overlong_penalty, DynamicFilter};
use oxrl_lm::latent::StepKind;
use oxrl_lm::sampler::{generate, Completion, Finish, SamplingParams};
use oxrl_lm::scorer::{score, score_inputs, ScoreOptions};
use oxrl_lm::value_head::ValueHead;
use oxrl_lm::Transformer;
use oxrl_tasks::Task;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Map, Value};
use std::time::Instant;

/// What persists between steps (and in checkpoints).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainState {
    /// RL steps completed.
    pub step: u64,
    /// Data cursor: training problems consumed.
    pub cursor: u64,
    /// Current KL coefficient (changes with an adaptive controller).
    pub kl_coef: f64,
    /// PIPO: the last batch mean rewards (its sliding-window baseline).
    #[serde(default)]
    pub reward_history: Vec<f64>,
    /// SIREN's `initial` anchor H₀ (set by the first update that uses it).
    #[serde(default)]
    pub siren_anchor: Option<f64>,
    /// Latent-GRPO: the range of hidden-state norms on the expert solutions (set by the first step).
    #[serde(default)]
    pub latent_norm_range: Option<(f64, f64)>,
    /// SEELE: the first round's hint ratio (the last step's mean choice).
    #[serde(default)]
    pub seele_h: f64,
    /// PrefixRL: running rollout accuracy driving the prefix fade-out.
    #[serde(default)]
    pub prefix_acc: Option<f64>,
}

pub struct Models<'a> {
    pub policy: &'a Policy,
    pub reference: Option<&'a Transformer>,
    pub value: Option<&'a ValueHead>,
    /// A separate critic trunk the value head reads (`train.critic = "model"`); None: the value
    /// head reads the policy's own hidden states.
    pub critic: Option<&'a Transformer>,
    /// DPH-RL's rehearsal set (sampled once from the initial policy).
    pub rehearsal: Option<&'a crate::rehearsal::Rehearsal>,
    /// ArenaRL's and RPO's pairwise judge (None: the task's verifier as judge).
    pub judge: Option<&'a dyn crate::judge::Judge>,
    /// RLFR's reference velocity field (fitted once before RL).
    pub flow: Option<&'a oxrl_core::shaping::rlfr::FlowField>,
    /// A trained Bradley–Terry reward model whose scores replace the verifier's reward.
    pub reward_model: Option<&'a crate::reward_model::RewardEnsemble>,
}

/// One response of the rollout batch.
struct Sample {
    group: usize,
    prompt: Vec<u32>,
    completion: Completion,
    reward: f64,
    correct: bool,
    format_ok: bool,
    /// The task's reference solution (CalibRL's expert response).
    solution: String,
    /// The problem's task name in multi-task data (`meta.task`).
    task: Option<String>,
    /// The problem's difficulty weight (`meta.rate`, 1 where absent; GUI-G1).
    rate: f64,
    /// ViSurf: the ground-truth solution injected in place of a rollout (not sampled from π_old).
    expert: bool,
    /// The response decoded (up to its stop token), as the verifier and judges read it.
    text: String,
    /// PPR: the response's process score (mean principle reward of its steps), when the task
    /// has a process verifier.
    process: Option<f64>,
    /// Agent tasks with turn-level rewards: each turn's reward, placed on its last action token.
    turn_values: Option<Vec<f64>>,
    /// Agent tasks: the episode replayed once (turn rewards, SPA-RL features, metrics).
    episode: Option<oxrl_tasks::env::Trajectory>,
    /// SEELE / PrefixRL: the share of the solution given in the prompt (0 = none).
    hint_ratio: f64,
    /// IGPO: solution tokens forced at the start of the response.
    igpo_hint: usize,
    /// ExpRL at the process level: the rubric reward per response token.
    exprl_tokens: Option<Vec<f64>>,
    /// HeRL: a hindsight revision in place of a rollout (trained with the shaped weight).
    he: bool,
    /// SvS: a problem text the policy wrote (a synthesis group member), not a solution.
    synth: bool,
}

/// Sequences per scorer call outside the update (bounds the logits memory).
const SCORE_CHUNK: usize = 128;

fn pad_rows(rows: &[&[f64]], width: usize, dev: &Device) -> Result<Tensor> {
    let mut data = vec![0f32; rows.len() * width];
    for (i, r) in rows.iter().enumerate() {
        for (j, &v) in r.iter().enumerate().take(width) {
            data[i * width + j] = v as f32;
        }
    }
    Ok(Tensor::from_vec(data, (rows.len(), width), dev)?)
}

fn rows_of(t: &Tensor, lens: &[usize]) -> Result<Vec<Vec<f64>>> {
    let v = t.to_dtype(DType::F64)?.to_vec2::<f64>()?;
    Ok(v.into_iter().zip(lens).map(|(r, &l)| r[..l].to_vec()).collect())
}

/// Per response, per token.
type TokenRows = Vec<Vec<f64>>;

/// Effective-rank statistics of one response's hidden states: (ER, ERV, ERA).
type ErStats = (f64, f64, f64);

/// What [`score_all`] returns: old log-probs, entropies, values, effective-rank statistics.
type ScoredRows = (TokenRows, TokenRows, Option<TokenRows>, Option<Vec<ErStats>>);

/// Per-token (old log-prob, entropy, value) of every sample under `model`, in chunks; with
/// `er_stride`, also the hidden-state effective rank and its velocity/acceleration over prefixes
/// at that stride (0 = the final ER only) of every response (`er_every` = 1) or of every
/// `er_every`-th one (the metric's subsample; the others are left out of the returned list).
fn score_all(
    model: &Transformer,
    (value, critic): (Option<&ValueHead>, Option<&Transformer>),
    samples: &[Sample],
    pad: u32,
    temperature: f64,
    er_stride: Option<usize>,
    er_every: usize,
) -> Result<ScoredRows> {
    use oxrl_core::diagnostics::effective_rank as erk;
    let (mut logp, mut ent, mut vals, mut ers) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (c, chunk) in samples.chunks(SCORE_CHUNK).enumerate() {
        let done = c * SCORE_CHUNK;
        let prompts: Vec<Vec<u32>> = chunk.iter().map(|s| s.prompt.clone()).collect();
        let resp: Vec<Vec<u32>> = chunk.iter().map(|s| s.completion.tokens.clone()).collect();
        let lens: Vec<usize> = resp.iter().map(|r| r.len()).collect();
        let latent = model.latent.is_some();
        let hidden = (value.is_some() && critic.is_none()) || er_stride.is_some() || latent;
        let opts = ScoreOptions { grad: false, temperature, hidden, ..Default::default() };
        let inputs: Vec<&[Option<Vec<f32>>]> = chunk.iter().map(|s| s.completion.inputs.as_slice()).collect();
        let s = score_inputs(model, &prompts, &resp, Some(&inputs), pad, opts)?;
        let (mut lp, mut en) = (rows_of(&s.logp, &lens)?, rows_of(&s.entropy, &lens)?);
        if let (true, Some(h)) = (latent, &s.hidden) {
            // Latent positions: the vMF latent log-prob instead of the placeholder token's.
            let cs: Vec<&Completion> = chunk.iter().map(|s| &s.completion).collect();
            crate::latent_rl::put_latent_logp(model, h, &cs, &mut lp, &mut en)?;
        }
        logp.extend(lp);
        ent.extend(en);
        match (value, critic) {
            (Some(v), Some(cm)) => {
                let opts = ScoreOptions { grad: false, temperature, hidden: true, ..Default::default() };
                let cs = score(cm, &prompts, &resp, pad, opts)?;
                let h = cs.hidden.as_ref().expect("hidden states were asked for");
                vals.extend(rows_of(&v.forward(h)?, &lens)?);
            }
            (Some(v), None) => {
                let h = s.hidden.as_ref().expect("hidden states were asked for");
                vals.extend(rows_of(&v.forward(h)?, &lens)?);
            }
            _ => {}
        }
        if let (Some(stride), Some(h)) = (er_stride, &s.hidden) {
            let d = h.dim(2)?;
            let hv = h.to_dtype(DType::F64)?.to_vec3::<f64>()?;
            for (j, (rows, &n)) in hv.iter().zip(&lens).enumerate() {
                if !(done + j).is_multiple_of(er_every.max(1)) {
                    continue;
                }
                let flat: Vec<f64> = rows[..n].concat();
                ers.push(if stride == 0 {
                    (erk::effective_rank(&flat, n, d), 0.0, 0.0)
                } else {
                    let traj = erk::er_trajectory(&flat, n, d, stride);
                    let (v, a) = erk::velocity_acceleration(&traj);
                    (traj.last().copied().unwrap_or(0.0), v, a)
                });
            }
        }
    }
    Ok((logp, ent, value.map(|_| vals), er_stride.map(|_| ers)))
}

fn vsc_rollouts(samples: &[Sample]) -> Vec<crate::vsc_rl::Rollout<'_>> {
    samples.iter().map(|s| crate::vsc_rl::Rollout { group: s.group, completion: &s.completion }).collect()
}

fn mean(x: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = x.fold((0.0, 0usize), |a, v| (a.0 + v, a.1 + 1));
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

/// SELF — "The Reasoning Boundary Paradox: How Reinforcement Learning Constrains Language Models"
/// (2025): one greedy decode per drawn prompt; only the prompts answered wrongly stay in the batch.
/// CONFIRMED-CODE (mail-research/SELF-llm-interference RayMaxPPOTrainer.fit).
pub fn self_filter(
    policy: &Policy,
    task: &dyn Task,
    problems: Vec<oxrl_tasks::Problem>,
    budget: usize,
) -> Result<Vec<oxrl_tasks::Problem>> {
    if problems.is_empty() {
        return Ok(problems);
    }
    let answers = greedy_answers(policy, &problems, budget)?;
    Ok(problems.into_iter().zip(answers).filter(|(p, a)| !task.verify(p, a).correct).map(|(p, _)| p).collect())
}

/// The policy's greedy completion (decoded) of every problem, in one generation batch.
fn greedy_answers(policy: &Policy, problems: &[oxrl_tasks::Problem], budget: usize) -> Result<Vec<String>> {
    let tok = policy.tokenizer.as_ref();
    let prompts = problems.iter().map(|p| crate::policy::prompt_ids(tok, p)).collect::<Result<Vec<_>>>()?;
    let greedy = SamplingParams::greedy(budget, tok.stop_ids());
    let mut rng = oxrl_core::seed::rng(0, "greedy", 0); // greedy decoding draws nothing
    let outs = generate(&policy.model, &prompts, &greedy, tok.pad_id(), &mut rng)?;
    outs.iter().map(|c| oxrl_lm::prompt::decode_response(tok, &c.text_tokens())).collect()
}

/// ArenaRL: each group's responses ranked by a seeded single-elimination tournament under the
/// judge (anchor = the prompt's greedy decode), as rank scores (N − k)/(N − 1) that replace the
/// rewards for the (GRPO) estimator.
fn arena_scores(
    policy: &Policy,
    judge: &dyn crate::judge::Judge,
    samples: &[Sample],
    problems: &[oxrl_tasks::Problem],
    budget: usize,
    m: &mut Map<String, Value>,
) -> Result<Vec<f64>> {
    use oxrl_core::advantage::arena::{rank_scores, tournament};
    let anchors = greedy_answers(policy, problems, budget)?;
    let texts: Vec<&str> = samples.iter().map(|s| s.text.as_str()).collect();
    let mut scores = vec![0.0; samples.len()];
    let (mut calls, mut winner_correct, mut with_correct) = (0usize, 0usize, 0usize);
    for (g, p) in problems.iter().enumerate() {
        let idx: Vec<usize> = (0..samples.len()).filter(|&i| samples[i].group == g).collect();
        let failure = std::cell::RefCell::new(None);
        let ask = |a: &str, b: &str| {
            judge.compare(p, a, b).unwrap_or_else(|e| {
                failure.borrow_mut().get_or_insert(e);
                0.5
            })
        };
        let tour = tournament(idx.len(), |i| ask(texts[idx[i]], &anchors[g]), |a, b| ask(texts[idx[a]], texts[idx[b]]));
        if let Some(e) = failure.into_inner() {
            return Err(e.context("ArenaRL judge"));
        }
        calls += tour.judge_calls;
        winner_correct += samples[idx[tour.ranking[0]]].correct as usize;
        with_correct += idx.iter().any(|&i| samples[i].correct) as usize;
        for (k, s) in rank_scores(&tour.ranking).into_iter().enumerate() {
            scores[idx[k]] = s;
        }
    }
    m.insert("arena_judge_calls".into(), json!(calls as f64 / problems.len().max(1) as f64));
    m.insert("arena_winner_correct".into(), json!(winner_correct as f64 / problems.len().max(1) as f64));
    m.insert("arena_groups_with_correct".into(), json!(with_correct as f64 / problems.len().max(1) as f64));
    Ok(scores)
}

/// RPO: each response's binary rubric-preference reward against its competitor — the prompt's
/// greedy answer (`greedy`) or the next response of its group (`peer`) — judged per rubric item in
/// both presentation orders.
#[allow(clippy::too_many_arguments)]
fn rpo_rewards(
    policy: &Policy,
    judge: &dyn crate::judge::Judge,
    samples: &[Sample],
    problems: &[oxrl_tasks::Problem],
    budget: usize,
    opponent: &str,
    m: &mut Map<String, Value>,
) -> Result<Vec<f64>> {
    use oxrl_core::shaping::rpo::{rpo_reward, rubric_decision};
    let anchors = if opponent == "greedy" { greedy_answers(policy, problems, budget)? } else { vec![] };
    let (mut out, mut disagree) = (Vec::with_capacity(samples.len()), 0usize);
    for (i, s) in samples.iter().enumerate() {
        let p = &problems[s.group];
        let other: &str = if opponent == "greedy" {
            &anchors[s.group]
        } else {
            let members: Vec<usize> = (0..samples.len()).filter(|&j| samples[j].group == s.group).collect();
            let k = members.iter().position(|&j| j == i).expect("a member of its group");
            &samples[members[(k + 1) % members.len()]].text
        };
        let rubric = judge.rubric(p)?;
        let weights: Vec<f64> = rubric.iter().map(|r| r.1).collect();
        let mut fwd = Vec::with_capacity(rubric.len());
        let mut bwd = Vec::with_capacity(rubric.len());
        for (c, _) in &rubric {
            fwd.push(judge.compare_on(p, c, &s.text, other).context("RPO judge")?);
            bwd.push(judge.compare_on(p, c, other, &s.text).context("RPO judge")?);
        }
        let flipped: Vec<f64> = bwd.iter().map(|v| 1.0 - v).collect();
        disagree += (rubric_decision(&fwd, &weights) != rubric_decision(&flipped, &weights)) as usize;
        out.push(rpo_reward(&fwd, &bwd, &weights));
    }
    m.insert("rpo_win_rate".into(), json!(mean(out.iter().copied())));
    m.insert("rpo_order_disagreement".into(), json!(disagree as f64 / samples.len().max(1) as f64));
    Ok(out)
}

/// Run one RL step: rollout, scoring, advantages, update. Returns the step's metrics record.
#[allow(clippy::too_many_arguments)]
pub fn rl_step(
    cfg: &RunConfig,
    task: &dyn Task,
    estimator: &dyn AdvantageEstimator,
    models: &Models,
    opt: &mut AdamW,
    lr: f64,
    budget: usize,
    state: &mut TrainState,
) -> Result<Map<String, Value>> {
    let t = &cfg.train;
    let policy = models.policy;
    let tok = policy.tokenizer.as_ref();
    let pad = tok.pad_id();
    let dev = policy.model.device().clone();
    let step_no = state.step + 1;
    if let Some(l) = &models.policy.model.lora {
        l.set_dropout_step(step_no);
    }
    let t_start = Instant::now();

    // 1. Rollout: B prompts × G samples in one generation batch; with dynamic sampling, refill
    //    until B groups with reward variance (or the round cap).
    let params = t.sampling_params(budget, tok.stop_ids());
    let filter = DynamicFilter { acc_low: t.dynamic_acc_low, acc_high: t.dynamic_acc_high };
    let mut data = DataStream::new(task, cfg.seed, state.cursor);
    let mut samples: Vec<Sample> = Vec::new();
    let (mut groups_kept, mut groups_drawn, mut zero_var_groups, mut rounds) = (0usize, 0usize, 0usize, 0usize);
    let (mut drawn_rewards, mut drawn_correct, mut gen_tokens) = (Vec::new(), 0usize, 0usize);
    let (mut self_dropped, mut self_drawn) = (0usize, 0usize);
    let mut group_problems: Vec<oxrl_tasks::Problem> = Vec::new();
    let visurf = oxrl_core::shaping::visurf::Mode::parse(&t.visurf)?;
    let rmx = t.objective == "reasonmaxxer";
    crate::latent_rl::check(cfg, policy, models.reward_model.is_some())?;
    // Agent tasks: multi-turn episodes, `budget` tokens per turn.
    let agent = crate::agent::is_agent_task(task);
    let max_events = |p: &oxrl_tasks::Problem| task.environment(p).map_or(1, |e| e.max_events());
    if agent {
        let unsupported = [
            ("visurf", t.visurf != "off"),
            ("calibrl_coef", t.calibrl_coef > 0.0),
            ("spae_coef", t.spae_coef > 0.0 || t.spae_sat_penalty > 0.0),
            ("rlfr_coef", t.rlfr_coef > 0.0),
            ("objective", rmx),
            ("papo_coef", t.papo_coef > 0.0),
            ("self_filter", t.self_filter),
            ("advantage", t.advantage == "arena"),
            ("rpo", t.rpo),
            ("dph_coef", t.dph_coef > 0.0 && t.dph_divergence != "none"),
            ("reward_model", models.reward_model.is_some()),
            ("prefix_rl", t.prefix_rl > 0.0),
            ("seele", t.seele),
            ("igpo", t.igpo),
            ("exprl", t.exprl != "off"),
            ("herl", t.herl),
            ("svs", t.svs),
        ];
        if let Some((k, _)) = unsupported.iter().find(|x| x.1) {
            anyhow::bail!("key `train.{k}`: not supported on multi-turn agent tasks (`{}`)", task.name());
        }
    } else {
        anyhow::ensure!(
            t.agent_reward == "outcome",
            "key `train.agent_reward`: task `{}` is single-turn (turn-level rewards need an agent task)",
            task.name()
        );
    }
    anyhow::ensure!(
        !t.rebel || agent,
        "key `train.rebel`: task `{}` is single-turn (ReBel's beliefs are stated per agent turn)",
        task.name()
    );
    anyhow::ensure!(
        !t.vsc_rl || agent,
        "key `train.vsc_rl`: task `{}` is single-turn (VSC-RL's subgoals segment agent episodes)",
        task.name()
    );
    let latent_coconut = policy.model.latent.as_ref().is_some_and(|l| l.kind == oxrl_lm::latent::LatentKind::Coconut);
    anyhow::ensure!(
        !rmx || models.reference.is_some(),
        "key `train.objective`: reasonmaxxer needs the base model as reference (train.reference = \"initial\")"
    );
    // PPR: the task's principle verifier scores each written step.
    // (Logged whenever the task has one; required when PPR is on.)
    let process_of = |p: &oxrl_tasks::Problem, text: &str| -> Result<Option<f64>> {
        match task.process_rewards(p, text) {
            Some(steps) => Ok(Some(oxrl_core::shaping::ppr::process_score(&steps))),
            None if t.ppr_coef > 0.0 => {
                anyhow::bail!("key `train.ppr_coef`: task `{}` has no process verifier", task.name())
            }
            None => Ok(None),
        }
    };
    let mut visurf_injected = 0usize;
    // The judge of ArenaRL, RPO and ExpRL: the given one, or the task's verifier.
    let task_judge = crate::judge::TaskJudge { task };
    let judge: &dyn crate::judge::Judge = models.judge.unwrap_or(&task_judge);
    // ExpRL: the rubric reward against the hidden reference, for the first `exprl_steps` steps.
    let exprl_on = t.exprl != "off" && (t.exprl_steps == 0 || step_no <= t.exprl_steps);
    let mut exprl_log: Vec<crate::exprl::Scored> = Vec::new();
    let mut exprl_leaks = 0usize;
    let herl = oxrl_core::shaping::herl::Herl {
        threshold: t.herl_threshold,
        candidate_limit: t.herl_candidates,
        replace_top_n: t.herl_replace,
        bonus: t.herl_bonus,
        gamma_s: t.herl_gamma,
    };
    let (mut herl_triggered, mut herl_revised, mut herl_beat, mut herl_replaced) = (0usize, 0usize, 0usize, 0usize);
    let mut herl_gain = Vec::new();
    let (mut igpo_triggered, mut igpo_replaced) = (0usize, 0usize);
    // The reward of a verdict on a response of `len` tokens: the verifier's, or the hierarchical
    // gated reward, plus the DAPO overlong penalty.
    let reward_of = |v: &oxrl_tasks::Verdict, len: usize| -> f64 {
        let mut reward = v.reward as f64;
        if t.hierarchical_reward {
            let brevity = 1.0 - len as f64 / budget.max(1) as f64;
            let levels = [v.format_ok as u8 as f64, v.correct as u8 as f64, brevity];
            reward = oxrl_core::shaping::hierarchical::hierarchical_reward(&levels, &t.hrm_weights, &[1.0, 1.0])
                .expect("hrm_weights validated with the config");
        }
        if t.overlong_buffer > 0 {
            reward += overlong_penalty(len, budget, t.overlong_buffer);
        }
        reward
    };
    while groups_kept < t.prompts_per_step && (rounds == 0 || (t.dynamic_sampling && rounds < t.dynamic_max_rounds)) {
        let mut problems = data.next_batch(t.prompts_per_step - groups_kept);
        if t.self_filter {
            // SELF: keep only the prompts the policy gets wrong when decoding greedily.
            let drawn = problems.len();
            problems = self_filter(policy, task, problems, budget)?;
            self_dropped += drawn - problems.len();
            self_drawn += drawn;
        }
        // Solution-prefix hints in the prompt: PrefixRL (one per problem, faded out as accuracy
        // rises) or SEELE (per problem and round, fitted to the target accuracy).
        let base: Vec<Vec<u32>> = problems.iter().map(|p| crate::policy::prompt_ids(tok, p)).collect::<Result<_>>()?;
        let mut hint_rng = oxrl_core::seed::rng(cfg.seed, "hints", step_no * 1000 + rounds as u64);
        let mut hints: Vec<crate::hints::Hint> = problems
            .iter()
            .map(|p| {
                if t.seele && !p.solution.is_empty() {
                    crate::hints::solution_prefix(tok, p, state.seele_h)
                } else if t.prefix_rl > 0.0 {
                    let acc = state.prefix_acc.unwrap_or(0.0);
                    crate::hints::prefix_rl_hint(tok, p, t.prefix_rl, t.prefix_min, t.prefix_max, acc, &mut hint_rng)
                } else {
                    Ok(Default::default())
                }
            })
            .collect::<Result<_>>()?;
        let mut rng = oxrl_core::seed::rng(cfg.seed, "rollout", step_no * 1000 + rounds as u64);
        // ReasonMaxxer learns from the base model's rollouts; every other objective samples the policy.
        let gen_model = if rmx { models.reference.expect("checked above") } else { &policy.model };
        let n_rounds = if t.seele { t.seele_rounds } else { 1 };
        let mut seele_obs: Vec<Vec<(f64, bool)>> = vec![Vec::new(); problems.len()];
        type Drawn = (Vec<u32>, crate::hints::Hint, Completion);
        let mut drawn: Vec<Vec<Drawn>> = (0..problems.len()).map(|_| Vec::new()).collect();
        for round in 0..n_rounds {
            let mut prompts = Vec::with_capacity(problems.len() * t.group_size);
            for (ids, h) in base.iter().zip(&hints) {
                prompts.extend(std::iter::repeat_n([ids.as_slice(), &h.ids].concat(), t.group_size));
            }
            // Latent-GRPO: one-sided noise on the latents of part of every group.
            let outs = match crate::latent_rl::noise(t.latent_noise, t.latent_noise_frac, prompts.len(), t.group_size) {
                Some(nz) => oxrl_lm::sampler::generate_latent(gen_model, &prompts, &params, pad, &mut rng, Some(&nz))?,
                None if agent => {
                    let probs: Vec<&oxrl_tasks::Problem> =
                        problems.iter().flat_map(|p| std::iter::repeat_n(p, t.group_size)).collect();
                    crate::agent::run_episodes(gen_model, tok, task, &probs, &prompts, &params, &mut rng)?
                }
                None => generate(gen_model, &prompts, &params, pad, &mut rng)?,
            };
            for (i, (c, prompt)) in outs.into_iter().zip(prompts).enumerate() {
                drawn[i / t.group_size].push((prompt, hints[i / t.group_size].clone(), c));
            }
            if t.seele && round + 1 < n_rounds {
                // SEELE: fit each problem's difficulty on its (ratio, outcome) pairs so far and
                // choose the next round's ratio for the target accuracy.
                for (pi, p) in problems.iter().enumerate() {
                    if p.solution.is_empty() {
                        continue;
                    }
                    for (_, h, c) in &drawn[pi][drawn[pi].len() - t.group_size..] {
                        let text = format!("{}{}", h.text, oxrl_lm::prompt::decode_response(tok, &c.text_tokens())?);
                        seele_obs[pi].push((h.ratio, task.verify(p, &text).correct));
                    }
                    let next =
                        oxrl_core::shaping::seele::next_ratio(&seele_obs[pi], t.seele_target, t.seele_a, t.seele_c);
                    hints[pi] = crate::hints::solution_prefix(tok, p, next)?;
                }
            }
        }
        if t.seele {
            let last: Vec<f64> = hints.iter().map(|h| h.ratio).collect();
            state.seele_h = mean(last.iter().copied());
        }
        rounds += 1;
        for (pi, (p, entries)) in problems.iter().zip(drawn).enumerate() {
            if exprl_on {
                // The policy-side prompt must not contain the hidden reference (spec: no shared
                // substring over 20 characters); counted, as a prompt may restate the problem.
                let shown = tok.decode(&base[pi])?;
                exprl_leaks += oxrl_core::shaping::exprl::leaked_substring(&shown, &p.solution, 20).is_some() as usize;
            }
            // ExpRL: the problem's rubric, once per group.
            let rubric = if exprl_on { Some(crate::judge::checkpoints(p, t.exprl_final_weight)?) } else { None };
            let mut group = Vec::with_capacity(entries.len());
            for (prompt, hint, c) in entries {
                gen_tokens += c.tokens.len();
                let text = if agent {
                    crate::agent::transcript(tok, &c)?
                } else {
                    // The verifier reads hint + continuation.
                    format!("{}{}", hint.text, oxrl_lm::prompt::decode_response(tok, &c.text_tokens())?)
                };
                let v = task.verify(p, &text);
                let mut reward = reward_of(&v, c.tokens.len());
                let mut exprl_tokens = None;
                if let Some(cps) = &rubric {
                    let mut sc = crate::exprl::score(judge, tok, p, cps, &text, &c.tokens, t.exprl == "process");
                    reward = sc.reward;
                    if t.overlong_buffer > 0 {
                        reward += overlong_penalty(c.tokens.len(), budget, t.overlong_buffer);
                    }
                    exprl_tokens = sc.tokens.take();
                    exprl_log.push(sc);
                }
                let episode = if agent { Some(crate::agent::replay(task, p, &text)?) } else { None };
                let turn_values =
                    if let (Some(ep), false) = (&episode, matches!(t.agent_reward.as_str(), "outcome" | "spa")) {
                        let values = crate::agent::turn_rewards(ep, max_events(p), reward, t)?;
                        reward = values.iter().sum();
                        Some(values)
                    } else {
                        None
                    };
                let process = process_of(p, &text)?;
                drawn_rewards.push(reward);
                drawn_correct += v.correct as usize;
                group.push(Sample {
                    group: 0,
                    prompt,
                    completion: c,
                    reward,
                    correct: v.correct,
                    format_ok: v.format_ok,
                    solution: p.solution.clone(),
                    task: p.meta.get("task").and_then(|v| v.as_str()).map(String::from),
                    rate: p.meta.get("rate").and_then(|v| v.as_f64()).unwrap_or(1.0),
                    expert: false,
                    process,
                    text,
                    turn_values,
                    episode,
                    hint_ratio: hint.ratio,
                    igpo_hint: 0,
                    exprl_tokens,
                    he: false,
                    synth: false,
                });
            }
            if t.herl {
                // HeRL: a group below the threshold has its best drafts revised by the policy
                // with the satisfied / unmet rubric items in context.
                let rewards: Vec<f64> = group.iter().map(|s| s.reward).collect();
                let status: Vec<Vec<(String, bool)>> = if oxrl_core::shaping::herl::triggered(&rewards, herl.threshold)
                {
                    group
                        .iter()
                        .map(|s| {
                            task.rubric(p, &s.text).ok_or_else(|| {
                                anyhow::anyhow!(
                                    "key `train.herl`: task `{}` has no rubric (try `instruct`)",
                                    task.name()
                                )
                            })
                        })
                        .collect::<Result<_>>()?
                } else {
                    vec![Vec::new(); group.len()]
                };
                let satisfied: Vec<usize> = status.iter().map(|r| r.iter().filter(|x| x.1).count()).collect();
                let cands = oxrl_core::shaping::herl::candidates(&rewards, &satisfied, herl);
                if !cands.is_empty() {
                    herl_triggered += 1;
                    let best = rewards.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let he_prompts: Vec<Vec<u32>> = cands
                        .iter()
                        .map(|&i| crate::herl::hindsight_ids(tok, p, &group[i].text, &status[i]))
                        .collect::<Result<_>>()?;
                    let mut he_params = params.clone();
                    he_params.temperature = t.herl_temperature;
                    let outs = generate(gen_model, &he_prompts, &he_params, pad, &mut rng)?;
                    let mut revised = Vec::with_capacity(outs.len());
                    for c in outs {
                        let text = oxrl_lm::prompt::decode_response(tok, &c.text_tokens())?;
                        let v = task.verify(p, &text);
                        let r = reward_of(&v, c.tokens.len());
                        revised.push((c, text, v, r));
                    }
                    let r_he: Vec<f64> = revised.iter().map(|x| x.3).collect();
                    herl_revised += r_he.len();
                    herl_beat += r_he.iter().filter(|&&r| r > best).count();
                    // Bonus: each revised draft's reward moves toward its revision's.
                    for (k, &i) in cands.iter().enumerate() {
                        herl_gain.push(r_he[k] - group[i].reward);
                        group[i].reward = oxrl_core::shaping::herl::bonus(group[i].reward, r_he[k], herl.bonus);
                    }
                    // Replacement: the best revisions overwrite randomly chosen members.
                    let picks = oxrl_core::shaping::herl::replacements(best, &r_he, herl.replace_top_n);
                    let mut slots: Vec<usize> = (0..group.len()).collect();
                    slots.shuffle(&mut hint_rng);
                    for (&k, &slot) in picks.iter().zip(&slots) {
                        let (c, text, v, r) = revised[k].clone();
                        let s = &mut group[slot];
                        s.prompt = if t.herl_context == "guidance" { he_prompts[k].clone() } else { base[pi].clone() };
                        s.process = process_of(p, &text)?;
                        (s.completion, s.text, s.correct, s.format_ok, s.reward) = (c, text, v.correct, v.format_ok, r);
                        s.he = true;
                        herl_replaced += 1;
                    }
                }
            }
            if t.igpo
                && !p.solution.is_empty()
                && oxrl_core::shaping::igpo::triggered(&group.iter().map(|s| s.correct).collect::<Vec<_>>())
            {
                // IGPO: regenerate the all-wrong group with forced solution prefixes; correct
                // guided samples replace up to max_replacements members.
                igpo_triggered += 1;
                let g = group.len();
                let mut etas: Vec<f64> = (0..g)
                    .map(|_| t.igpo_eta_low + hint_rng.random::<f64>() * (t.igpo_eta_high - t.igpo_eta_low))
                    .collect();
                etas.sort_by(f64::total_cmp);
                let pre = etas.iter().map(|&e| crate::hints::solution_prefix(tok, p, e)).collect::<Result<Vec<_>>>()?;
                let gp: Vec<Vec<u32>> = pre.iter().map(|h| [base[pi].as_slice(), &h.ids].concat()).collect();
                let outs = generate(gen_model, &gp, &params, pad, &mut rng)?;
                let mut guided = Vec::with_capacity(g);
                for (h, c) in pre.iter().zip(outs) {
                    let (n, m) = (h.ids.len(), c.tokens.len());
                    let text = format!("{}{}", h.text, oxrl_lm::prompt::decode_response(tok, &c.text_tokens())?);
                    let mut comp = Completion::of_tokens(
                        [h.ids.as_slice(), &c.tokens].concat(),
                        [vec![0.0; n], c.logp].concat(),
                        [vec![0.0; n], c.entropy].concat(),
                        c.finish,
                    );
                    comp.kinds = [vec![StepKind::Forced; n], vec![StepKind::Token; m]].concat();
                    comp.inputs = vec![None; n + m];
                    let v = task.verify(p, &text);
                    guided.push((comp, text, v, n));
                }
                let ok: Vec<bool> = guided.iter().map(|x| x.2.correct).collect();
                for (member, gi) in oxrl_core::shaping::igpo::replacements(&ok, g, t.igpo_max_replacements) {
                    let (comp, text, v, n) = guided[gi].clone();
                    let s = &mut group[member];
                    s.reward = reward_of(&v, comp.tokens.len());
                    s.process = process_of(p, &text)?;
                    (s.completion, s.text, s.correct, s.format_ok) = (comp, text, v.correct, v.format_ok);
                    (s.prompt, s.igpo_hint, s.hint_ratio) = (base[pi].clone(), n, 0.0);
                    igpo_replaced += 1;
                }
            }
            // ViSurf: the ground truth in place of the last rollout (its reward from the same
            // verifier and shaping), in every group or only where no rollout is correct.
            let correct_on_policy: Vec<bool> = group.iter().map(|s| s.correct).collect();
            if oxrl_core::shaping::visurf::should_inject(visurf, &correct_on_policy) && !p.solution.is_empty() {
                let ids = oxrl_lm::prompt::encode_response(tok, &p.solution)?;
                if ids.len() <= budget {
                    let v = task.verify(p, &p.solution);
                    let last = group.last_mut().expect("groups are not empty");
                    last.reward = reward_of(&v, ids.len());
                    last.correct = v.correct;
                    last.format_ok = v.format_ok;
                    last.expert = true;
                    last.process = process_of(p, &p.solution)?;
                    last.text = p.solution.clone();
                    let n = ids.len();
                    last.completion = Completion::of_tokens(ids, vec![0.0; n], vec![0.0; n], Finish::Stop);
                    visurf_injected += 1;
                }
            }
            groups_drawn += 1;
            let rewards: Vec<f64> = group.iter().map(|s| s.reward).collect();
            let correct: Vec<bool> = group.iter().map(|s| s.correct).collect();
            if rewards.iter().all(|&r| (r - rewards[0]).abs() < 1e-12) {
                zero_var_groups += 1;
            }
            if !t.dynamic_sampling || group_is_informative(&rewards, &correct, &filter) {
                for mut s in group {
                    s.group = groups_kept;
                    samples.push(s);
                }
                group_problems.push(p.clone());
                groups_kept += 1;
            }
        }
    }
    state.cursor = data.cursor;
    // SvS: the correct responses of under-performing problems seed new problems with the same
    // answer; their solving groups (and the policy's synthesis groups) join the batch.
    let mut svs_stats = None;
    if t.svs {
        let band = oxrl_core::shaping::svs::Svs {
            select_lo: t.svs_select_lo,
            select_hi: t.svs_select_hi,
            accept_lo: t.svs_accept_lo,
            accept_hi: t.svs_accept_hi,
        };
        let mut sources = Vec::new();
        for (gi, p) in group_problems.iter().enumerate() {
            let members: Vec<&Sample> = samples.iter().filter(|s| s.group == gi).collect();
            let correct: Vec<bool> = members.iter().map(|s| s.correct).collect();
            sources.extend(band.sources(&correct).into_iter().map(|i| (p.clone(), members[i].text.clone())));
        }
        let mut svs_rng = oxrl_core::seed::rng(cfg.seed, "svs", step_no);
        if t.svs_max_sources > 0 && sources.len() > t.svs_max_sources {
            sources.shuffle(&mut svs_rng);
            sources.truncate(t.svs_max_sources);
        }
        let synthesizer =
            if t.svs_synthesizer == "task" { crate::svs::Synthesizer::Task } else { crate::svs::Synthesizer::Policy };
        let ctx = crate::svs::Ctx {
            model: &policy.model,
            tok,
            task,
            params: &params,
            group_size: t.group_size,
            svs: band,
            synthesizer,
            template: &t.svs_template,
            reward_of: &reward_of,
        };
        let (groups, stats) = crate::svs::synthesize(&ctx, &sources, &mut svs_rng)?;
        for g in groups {
            for mb in g.members {
                gen_tokens += mb.completion.tokens.len();
                let process = if g.synthesis { None } else { process_of(&g.problem, &mb.text)? };
                samples.push(Sample {
                    group: groups_kept,
                    prompt: mb.prompt,
                    completion: mb.completion,
                    reward: mb.reward,
                    correct: mb.correct,
                    format_ok: mb.format_ok,
                    solution: if g.synthesis { String::new() } else { g.problem.solution.clone() },
                    task: g.problem.meta.get("task").and_then(|v| v.as_str()).map(String::from),
                    rate: g.problem.meta.get("rate").and_then(|v| v.as_f64()).unwrap_or(1.0),
                    expert: false,
                    text: mb.text,
                    process,
                    turn_values: None,
                    episode: None,
                    hint_ratio: 0.0,
                    igpo_hint: 0,
                    exprl_tokens: None,
                    he: false,
                    synth: g.synthesis,
                });
            }
            group_problems.push(g.problem);
            groups_kept += 1;
        }
        svs_stats = Some(stats);
    }
    let mut spa_stats = None;
    if agent && t.agent_reward == "spa" {
        // SPA-RL: fit the linear progress estimator on this batch's episodes (contributions sum
        // to the outcome), then each turn's reward is α·c_k + β·[executable].
        use oxrl_core::shaping::spa_rl::{contributions, fit_linear, fuse};
        let empty = oxrl_tasks::env::Trajectory { turns: vec![], success: false, outcome: 0.0 };
        let trajs: Vec<oxrl_tasks::env::Trajectory> =
            samples.iter().map(|s| s.episode.clone().unwrap_or_else(|| empty.clone())).collect();
        let feats: Vec<Vec<Vec<f64>>> = trajs.iter().map(crate::agent::step_features).collect();
        let rets: Vec<f64> = samples.iter().map(|s| s.reward).collect();
        let w = fit_linear(&feats, &rets, 1e-3);
        let (mut ev, mut other) = (Vec::new(), Vec::new());
        for ((s, tr), f) in samples.iter_mut().zip(&trajs).zip(&feats) {
            if tr.turns.is_empty() {
                continue;
            }
            let c = contributions(&w, f);
            for (turn, &ck) in tr.turns.iter().zip(&c) {
                if turn.step.reward > 0.0 {
                    ev.push(ck)
                } else {
                    other.push(ck)
                }
            }
            let g: Vec<f64> = tr.turns.iter().map(|x| x.step.valid as u8 as f64).collect();
            let values = fuse(&c, &g, t.spa_alpha, t.spa_beta);
            s.reward = values.iter().sum();
            s.turn_values = Some(values);
        }
        spa_stats = Some((mean(ev.into_iter()), mean(other.into_iter())));
    }
    if t.prefix_rl > 0.0 {
        // PrefixRL's fade-out follows the running rollout accuracy.
        let acc = drawn_correct as f64 / drawn_rewards.len().max(1) as f64;
        state.prefix_acc = Some(state.prefix_acc.map_or(acc, |a| 0.9 * a + 0.1 * acc));
    }
    let mut rm_disagreement = None;
    if let Some(rm) = models.reward_model {
        // The reward model's score is the reward (correctness stays the verifier's); an
        // ensemble's is mean − k·std.
        let prompts: Vec<Vec<u32>> = samples.iter().map(|s| s.prompt.clone()).collect();
        let resp: Vec<Vec<u32>> = samples.iter().map(|s| s.completion.tokens.clone()).collect();
        let (r, sd) = rm.rewards(&prompts, &resp)?;
        samples.iter_mut().zip(&r).for_each(|(s, &r)| s.reward = r);
        drawn_rewards = r;
        if rm.members.len() > 1 {
            rm_disagreement = Some(mean(sd.into_iter()));
        }
    }
    if t.ppr_coef > 0.0 {
        // PPR / ReNorm: outcome + α·(group-centred process score), α < ½.
        let outcome: Vec<f64> = samples.iter().map(|s| s.reward).collect();
        let process: Vec<f64> = samples.iter().map(|s| s.process.unwrap_or(0.0)).collect();
        let groups: Vec<usize> = samples.iter().map(|s| s.group).collect();
        let r = oxrl_core::shaping::ppr::renorm_rewards(&outcome, &process, &groups, t.ppr_coef);
        samples.iter_mut().zip(r).for_each(|(s, r)| s.reward = r);
    }
    let t_rollout = t_start.elapsed().as_secs_f64();

    let mut m = Map::new();
    m.insert("phase".into(), json!("rl"));
    m.insert("step".into(), json!(step_no));
    m.insert("reward_mean".into(), json!(mean(drawn_rewards.iter().copied())));
    if let Some(sd) = rm_disagreement {
        // the ensemble members' mean standard deviation (their disagreement)
        m.insert("rm_ensemble_std".into(), json!(sd));
    }
    if t.herl {
        m.insert("herl_triggered".into(), json!(herl_triggered as f64 / groups_drawn.max(1) as f64));
        m.insert("herl_revisions".into(), json!(herl_revised));
        m.insert("herl_replaced".into(), json!(herl_replaced));
        // the share of revisions that beat their group's best original (HeRL's progress signal)
        if herl_revised > 0 {
            m.insert("herl_beat_rate".into(), json!(herl_beat as f64 / herl_revised as f64));
            m.insert("herl_revision_gain".into(), json!(mean(herl_gain.iter().copied())));
        }
    }
    if let Some(st) = &svs_stats {
        m.insert("svs_sources".into(), json!(st.sources));
        m.insert("svs_candidates".into(), json!(st.candidates));
        m.insert("svs_accepted".into(), json!(st.accepted));
        m.insert("svs_synthesis_groups".into(), json!(st.synthesis_groups));
        m.insert("svs_solve_groups".into(), json!(st.solve_groups));
        for (label, (n, ok, solved)) in &st.by_label {
            m.insert(format!("svs_accept_rate_{label}"), json!(*ok as f64 / (*n).max(1) as f64));
            m.insert(format!("svs_solve_rate_{label}"), json!(solved / (*n).max(1) as f64));
        }
    }
    if t.exprl != "off" {
        m.insert("exprl_active".into(), json!(exprl_on as u8));
        if exprl_on {
            m.insert("exprl_reward".into(), json!(mean(exprl_log.iter().map(|x| x.reward))));
            m.insert("exprl_checkpoints_met".into(), json!(mean(exprl_log.iter().map(|x| x.met))));
            m.insert("exprl_final".into(), json!(mean(exprl_log.iter().map(|x| x.final_score))));
            m.insert("exprl_judge_failures".into(), json!(exprl_log.iter().filter(|x| x.failed).count()));
            m.insert("exprl_prompt_leaks".into(), json!(exprl_leaks));
        }
    }
    let rm = mean(drawn_rewards.iter().copied());
    // PIPO: verify the previous update by this batch's mean reward against the window baseline.
    let pipo = if t.pipo_coef > 0.0 {
        let (delta, scale) =
            oxrl_core::loss::pipo::pipo_scale(&state.reward_history, rm, t.pipo_window, t.pipo_coef, t.pipo_scale);
        oxrl_core::loss::pipo::push_history(&mut state.reward_history, rm, t.pipo_window);
        m.insert("pipo_delta".into(), json!(delta));
        m.insert("pipo_scale".into(), json!(scale));
        scale
    } else {
        1.0
    };
    m.insert("reward_std".into(), json!(mean(drawn_rewards.iter().map(|r| (r - rm) * (r - rm))).sqrt()));
    m.insert("accuracy".into(), json!(drawn_correct as f64 / drawn_rewards.len().max(1) as f64));
    m.insert("zero_variance_groups".into(), json!(zero_var_groups as f64 / groups_drawn.max(1) as f64));
    m.insert("groups_drawn".into(), json!(groups_drawn));
    m.insert("groups_kept".into(), json!(groups_kept));
    m.insert("gen_tokens".into(), json!(gen_tokens));
    m.insert("lr".into(), json!(lr));
    if samples.iter().any(|s| s.process.is_some()) {
        m.insert("process_score".into(), json!(mean(samples.iter().filter_map(|s| s.process))));
    }
    if visurf != oxrl_core::shaping::visurf::Mode::Off {
        m.insert("visurf_injected".into(), json!(visurf_injected as f64 / groups_drawn.max(1) as f64));
    }
    if t.self_filter {
        m.insert("self_filtered".into(), json!(self_dropped as f64 / self_drawn.max(1) as f64));
    }
    if t.prefix_rl > 0.0 || t.seele {
        m.insert("hint_ratio_mean".into(), json!(mean(samples.iter().map(|s| s.hint_ratio))));
        m.insert("prefix_share".into(), json!(mean(samples.iter().map(|s| (s.hint_ratio > 0.0) as u8 as f64))));
        let plain: Vec<f64> = samples.iter().filter(|s| s.hint_ratio == 0.0).map(|s| s.correct as u8 as f64).collect();
        if !plain.is_empty() {
            m.insert("accuracy_unprefixed".into(), json!(mean(plain.into_iter())));
        }
    }
    if t.seele {
        m.insert("seele_next_ratio".into(), json!(state.seele_h));
    }
    if let Some((ev, other)) = spa_stats {
        m.insert("spa_progress_subgoal".into(), json!(ev));
        m.insert("spa_progress_other".into(), json!(other));
    }
    if t.igpo {
        m.insert("igpo_triggered".into(), json!(igpo_triggered as f64 / groups_drawn.max(1) as f64));
        m.insert("igpo_replaced".into(), json!(igpo_replaced as f64 / igpo_triggered.max(1) as f64));
    }
    if samples.is_empty() {
        // Nothing to learn from: dynamic sampling found no group with variance, or SELF found
        // every greedy answer correct.
        let why = if t.self_filter && self_dropped == self_drawn {
            "every greedy answer was correct (SELF)"
        } else {
            "no informative groups"
        };
        m.insert("skipped".into(), json!(why));
        state.step = step_no;
        m.insert("time_rollout_s".into(), json!(t_rollout));
        return Ok(m);
    }
    let lens: Vec<usize> = samples.iter().map(|s| s.completion.tokens.len()).collect();
    m.insert("response_length".into(), json!(mean(lens.iter().map(|&l| l as f64))));
    m.insert("format_rate".into(), json!(mean(samples.iter().map(|s| s.format_ok as u8 as f64))));
    let truncated: Vec<bool> = samples.iter().map(|s| s.completion.finish == Finish::Length).collect();
    m.insert("truncated".into(), json!(mean(truncated.iter().map(|&x| x as u8 as f64))));
    if agent {
        let invalid: Vec<f64> = samples
            .iter()
            .filter_map(|s| s.episode.as_ref())
            .map(|tr| tr.turns.iter().filter(|x| !x.step.valid).count() as f64 / tr.turns.len().max(1) as f64)
            .collect();
        m.insert(
            "agent_turns".into(),
            json!(mean(samples.iter().map(|s| crate::agent::turn_ends(&s.completion).len() as f64))),
        );
        m.insert("agent_invalid_actions".into(), json!(mean(invalid.into_iter())));
    }

    // 2. Score the rollouts without gradients: old log-probs (the PPO anchor), entropies, values,
    //    and the reference log-probs when a KL term needs them.
    let t_score = Instant::now();
    let er_stride = if t.verl_coef > 0.0 {
        Some(t.verl_stride)
    } else if t.effective_rank_every > 0 && step_no.is_multiple_of(t.effective_rank_every) {
        Some(0)
    } else {
        None
    };
    // VERL needs every response's ER; the metric alone uses an evenly spaced subsample.
    let er_every = if t.verl_coef > 0.0 || t.effective_rank_samples == 0 {
        1
    } else {
        samples.len().div_ceil(t.effective_rank_samples)
    };
    let (logp_old, entropy, values_old, er_stats) =
        score_all(&policy.model, (models.value, models.critic), &samples, pad, t.temperature, er_stride, er_every)?;
    for (i, s) in samples.iter_mut().enumerate() {
        if s.igpo_hint > 0 {
            // IGPO: of the forced hint tokens only the top share by π_old entropy carries loss
            // (their π_old log-probs become the sampler's record).
            let h = s.igpo_hint;
            for j in oxrl_core::shaping::igpo::entropy_keep(&entropy[i][..h], t.igpo_entropy_keep) {
                s.completion.kinds[j] = StepKind::Token;
            }
            for j in 0..h {
                s.completion.logp[j] = logp_old[i][j] as f32;
                s.completion.entropy[j] = entropy[i][j] as f32;
            }
        }
    }
    if let Some(e) = &er_stats {
        m.insert("effective_rank".into(), json!(mean(e.iter().map(|x| x.0))));
        if t.verl_coef > 0.0 {
            m.insert("erv".into(), json!(mean(e.iter().map(|x| x.1))));
            m.insert("era".into(), json!(mean(e.iter().map(|x| x.2))));
        }
    }
    let need_ref = t.kl_coef > 0.0 || t.kl_target > 0.0;
    let logp_ref = match (need_ref, models.reference) {
        (true, Some(r)) if t.vsc_rl => {
            // VSC-RL: the KL term's reference sees the original goal only (on the sampled
            // tokens; the inserted observations keep the policy's log-probs, KL 0).
            let mut rows = logp_old.clone();
            let rollouts = vsc_rollouts(&samples);
            crate::vsc_rl::goal_conditioned_reference(
                r,
                tok,
                &rollouts,
                &group_problems,
                &mut rows,
                t.temperature,
                SCORE_CHUNK,
            )?;
            Some(rows)
        }
        (true, Some(r)) => Some(score_all(r, (None, None), &samples, pad, t.temperature, None, 1)?.0),
        _ => None,
    };
    // (ViSurf's injected experts were not sampled: no sampler log-probs to compare.)
    let diffs: Vec<f64> = samples
        .iter()
        .zip(&logp_old)
        .filter(|(s, _)| !s.expert && !s.he)
        .flat_map(|(s, lo)| {
            // (Forced positions — markers, agent observations — were not sampled.)
            let c = &s.completion;
            (0..lo.len()).filter(|&j| c.kind(j) != StepKind::Forced).map(move |j| (c.logp[j] as f64 - lo[j]).abs())
        })
        .collect();
    m.insert("mismatch_mean".into(), json!(mean(diffs.iter().copied())));
    m.insert("mismatch_max".into(), json!(diffs.iter().copied().fold(0.0, f64::max)));
    // (SvS: on solver tokens only — the problem texts the policy wrote are not solutions.)
    let solver_entropy = entropy.iter().zip(&samples).filter(|(_, s)| !s.synth).flat_map(|(e, _)| e.iter().copied());
    m.insert("entropy".into(), json!(mean(solver_entropy)));
    if let Some(lr_) = &logp_ref {
        // k3 estimate of KL(π_old || ref), per token
        let kl: Vec<f64> = logp_old
            .iter()
            .zip(lr_)
            .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (y - x).exp() + (x - y) - 1.0))
            .collect();
        m.insert("kl_ref".into(), json!(mean(kl.iter().copied())));
    }
    // CalibRL: the expert (reference solution) response of every group, scored by the rollout
    // policy — its per-position log-probs are the baseline of the guided term.
    let expert_logp: Option<Vec<Vec<f64>>> = if t.calibrl_coef > 0.0 {
        let mut firsts: Vec<usize> = Vec::new();
        for (i, sm) in samples.iter().enumerate() {
            if firsts.last().map(|&j| samples[j].group) != Some(sm.group) {
                firsts.push(i);
            }
        }
        let mut per_group = vec![Vec::new(); groups_kept];
        for chunk in firsts.chunks(SCORE_CHUNK) {
            let prompts: Vec<Vec<u32>> = chunk.iter().map(|&i| samples[i].prompt.clone()).collect();
            let experts = chunk
                .iter()
                .map(|&i| oxrl_lm::prompt::encode_response(tok, &samples[i].solution))
                .collect::<Result<Vec<_>>>()?;
            let lens_e: Vec<usize> = experts.iter().map(|e| e.len()).collect();
            let opts = ScoreOptions { grad: false, temperature: t.temperature, ..Default::default() };
            let sc = score(&policy.model, &prompts, &experts, pad, opts)?;
            for (&i, row) in chunk.iter().zip(rows_of(&sc.logp, &lens_e)?) {
                per_group[samples[i].group] = row;
            }
        }
        Some(per_group)
    } else {
        None
    };
    // ReasonMaxxer: the base model's entropies and top-k candidates at every response position;
    // decision points are the batch's top-ρ base-entropy positions.
    let rm_base: Option<(TokenRows, Vec<Vec<Vec<u32>>>)> = if rmx {
        let base = models.reference.expect("checked above");
        let (mut ents, mut cands) = (Vec::new(), Vec::new());
        for chunk in samples.chunks(SCORE_CHUNK) {
            let prompts: Vec<Vec<u32>> = chunk.iter().map(|s| s.prompt.clone()).collect();
            let resp: Vec<Vec<u32>> = chunk.iter().map(|s| s.completion.tokens.clone()).collect();
            let lens_c: Vec<usize> = resp.iter().map(|r| r.len()).collect();
            let opts = ScoreOptions { temperature: t.temperature, top_k: t.rm_top_k, ..Default::default() };
            let sc = score(base, &prompts, &resp, pad, opts)?;
            ents.extend(rows_of(&sc.entropy, &lens_c)?);
            let ids = sc.top_k.expect("asked for").1.to_vec3::<u32>()?;
            for (row, &n) in ids.into_iter().zip(&lens_c) {
                cands.push(row.into_iter().take(n).collect::<Vec<_>>());
            }
        }
        Some((oxrl_core::regularizer::siren::peak_mask(&ents, t.rm_rho), cands))
    } else {
        None
    };
    let t_scoring = t_score.elapsed().as_secs_f64();

    // 3. Token rewards (outcome on the last token; PPO-style KL penalty in the reward) and
    //    advantages.
    // ArenaRL's and RPO's judge: the configured one, or the task's verifier.
    let arena = if t.advantage == "arena" {
        Some(arena_scores(policy, judge, &samples, &group_problems, budget, &mut m)?)
    } else {
        None
    };
    if t.rpo {
        // RPO: the binary rubric preference replaces the verifier's reward.
        let r = rpo_rewards(policy, judge, &samples, &group_problems, budget, &t.rpo_opponent, &mut m)?;
        samples.iter_mut().zip(r).for_each(|(s, r)| s.reward = r);
    }
    let kl_in_reward = t.kl_in == "reward" && logp_ref.is_some();
    let token_rewards: Vec<Vec<f64>> = samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut r = vec![0.0; lens[i]];
            if kl_in_reward {
                for (j, v) in r.iter_mut().enumerate() {
                    *v -= state.kl_coef * (logp_old[i][j] - logp_ref.as_ref().unwrap()[i][j]);
                }
            }
            match &s.turn_values {
                // Agent turn rewards on each turn's last action token.
                Some(values) => {
                    let placed = oxrl_core::shaping::turn_rewards::place(
                        lens[i],
                        &crate::agent::turn_ends(&s.completion),
                        values,
                    );
                    r.iter_mut().zip(placed).for_each(|(x, v)| *x += v);
                }
                None => match &s.exprl_tokens {
                    // ExpRL (process): each checkpoint's reward where it is first met; the rest
                    // of the reward (e.g. an overlong penalty) on the last token.
                    Some(placed) => {
                        r.iter_mut().zip(placed).for_each(|(x, v)| *x += v);
                        *r.last_mut().unwrap() += s.reward - placed.iter().sum::<f64>();
                    }
                    None => *r.last_mut().unwrap() += arena.as_ref().map_or(s.reward, |a| a[i]),
                },
            }
            r
        })
        .collect();
    let group_ids: Vec<usize> = samples.iter().map(|s| s.group).collect();
    // Task ids (multi-task data: the problem's `meta.task`), numbered in order of appearance.
    let mut task_names: Vec<&str> = Vec::new();
    let task_ids: Vec<usize> = samples
        .iter()
        .map(|s| {
            let name = s.task.as_deref().unwrap_or("");
            task_names.iter().position(|n| *n == name).unwrap_or_else(|| {
                task_names.push(name);
                task_names.len() - 1
            })
        })
        .collect();
    let mut adv = estimator.compute(&AdvantageInput {
        token_rewards: &token_rewards,
        groups: &group_ids,
        values: values_old.as_deref(),
        tasks: Some(&task_ids),
    })?;
    if t.vsc_rl {
        // VSC-RL: the estimator's advantages give way to the segments' subgoal rewards.
        let r = crate::vsc_rl::advantages(tok, task, &vsc_rollouts(&samples), &group_problems)?;
        adv.advantages = r.advantages;
        m.insert("vsc_subgoals_completed".into(), json!(r.completed));
        m.insert("vsc_segments".into(), json!(r.segments));
    }
    if t.rebel {
        // ReBel: the estimator's advantages give way to A_ep + ω·A_step per turn.
        let episodes: Vec<crate::rebel::Episode> = samples
            .iter()
            .map(|s| crate::rebel::Episode { group: s.group, completion: &s.completion, outcome: s.reward })
            .collect();
        let r = crate::rebel::advantages(tok, task, &episodes, &group_problems, t)?;
        adv.advantages = r.advantages;
        for (k, v) in r.metrics {
            m.insert(k.into(), json!(v));
        }
    }
    if let (Some(ret), Some(v)) = (&adv.returns, &values_old) {
        // The critic's fit to its targets over every response token (verl's vf_explained_var).
        if let Some(ev) = oxrl_core::metrics::explained_variance(&ret.concat(), &v.concat()) {
            m.insert("value_explained_var".into(), json!(ev));
        }
    }
    m.insert("tasks_in_batch".into(), json!(task_names.len()));
    if task_names.len() > 1 {
        for (k, name) in task_names.iter().enumerate() {
            let per: Vec<f64> = adv
                .advantages
                .iter()
                .zip(&task_ids)
                .filter(|(_, &t)| t == k)
                .map(|(a, _)| a.iter().map(|x| x.abs()).sum::<f64>() / a.len().max(1) as f64)
                .collect();
            m.insert(format!("advantage_abs_mean/{name}"), json!(mean(per.into_iter())));
        }
    }
    m.insert("advantage_abs_mean".into(), json!(mean(adv.advantages.iter().flatten().map(|a| a.abs()))));
    // Per-response advantages by sign (response-level estimators broadcast one value per response).
    if let (true, Some(e)) = (t.verl_coef > 0.0, &er_stats) {
        // VERL: effective-rank shaping on top of the estimator's advantages.
        let mean_adv: Vec<f64> = adv.advantages.iter().map(|a| a.iter().sum::<f64>() / a.len().max(1) as f64).collect();
        let (er, erv): (Vec<f64>, Vec<f64>) = e.iter().map(|x| (x.0, x.1)).unzip();
        let era = mean(e.iter().map(|x| x.2));
        let (bonus, w_e) = oxrl_core::advantage::verl::verl_bonus(&mean_adv, &er, &erv, era, t.verl_coef, t.verl_tau);
        oxrl_core::advantage::verl::apply(&mut adv.advantages, &bonus);
        m.insert("verl_bonus_abs_mean".into(), json!(mean(bonus.iter().map(|b| b.abs()))));
        m.insert("verl_explore_weight".into(), json!(w_e));
        let corr = oxrl_core::metrics::pearson(&bonus, &er);
        m.insert("verl_bonus_er_corr".into(), json!(if corr.is_finite() { corr } else { 0.0 }));
    }
    if t.spae_coef > 0.0 || t.spae_sat_penalty > 0.0 {
        // SPAE: Φ after every step from gradient-free probes; A + λ·ΔΦ_k, tail penalty after
        // a correct response's saturation.
        let t_probe = Instant::now();
        let prompts: Vec<Vec<u32>> = samples.iter().map(|s| s.prompt.clone()).collect();
        let resp: Vec<Vec<u32>> = samples.iter().map(|s| s.completion.tokens.clone()).collect();
        let answers: Vec<String> = samples.iter().map(|s| group_problems[s.group].answer.clone()).collect();
        let pots = crate::spae_probe::potentials(policy, &prompts, &resp, &answers, t, cfg.seed, step_no)?;
        let p = oxrl_core::advantage::spae::Spae {
            lambda: t.spae_coef,
            tau_sat: t.spae_tau_sat,
            sat_penalty: t.spae_sat_penalty,
        };
        let mut saturated = 0usize;
        for (i, (ends, phi)) in pots.iter().enumerate() {
            let (a, sat) = oxrl_core::advantage::spae::shape(&adv.advantages[i], ends, phi, samples[i].correct, p);
            adv.advantages[i] = a;
            saturated += sat.is_some() as usize;
        }
        m.insert("spae_steps".into(), json!(mean(pots.iter().map(|x| x.0.len() as f64))));
        m.insert("spae_phi_first".into(), json!(mean(pots.iter().map(|x| *x.1.first().unwrap_or(&0.0)))));
        m.insert("spae_phi_final".into(), json!(mean(pots.iter().map(|x| *x.1.last().unwrap_or(&0.0)))));
        // Φ at the last probed boundary of multi-step responses, against their first
        let multi: Vec<&(Vec<usize>, Vec<f64>)> = pots.iter().filter(|x| x.1.len() >= 3).collect();
        if !multi.is_empty() {
            m.insert("spae_phi_rise".into(), json!(mean(multi.iter().map(|x| x.1[x.1.len() - 2] - x.1[0]))));
        }
        m.insert(
            "spae_phi_delta_abs".into(),
            json!(mean(pots.iter().flat_map(|x| x.1.windows(2).map(|w| (w[1] - w[0]).abs())))),
        );
        m.insert("spae_saturated".into(), json!(saturated as f64 / samples.len().max(1) as f64));
        m.insert("time_spae_probe_s".into(), json!(t_probe.elapsed().as_secs_f64()));
    }
    if let (true, Some(field)) = (t.rlfr_coef > 0.0, models.flow) {
        // RLFR: flow rewards −z(d_t) of every response token's hidden state, added to its advantage.
        let prompts: Vec<Vec<u32>> = samples.iter().map(|s| s.prompt.clone()).collect();
        let resp: Vec<Vec<u32>> = samples.iter().map(|s| s.completion.tokens.clone()).collect();
        let states = crate::flow::response_states(policy, &prompts, &resp)?;
        let mut rng = oxrl_core::seed::rng(cfg.seed, "rlfr", step_no);
        let d = field.deviation(&Tensor::cat(&states, 0)?, t.rlfr_draws, &mut rng)?;
        let r = oxrl_core::shaping::rlfr::flow_rewards(&d);
        let (mut at, mut per) = (0usize, Vec::with_capacity(samples.len()));
        for (i, a) in adv.advantages.iter_mut().enumerate() {
            let ri = &r[at..at + lens[i]];
            at += lens[i];
            a.iter_mut().zip(ri).for_each(|(x, f)| *x += t.rlfr_coef * f);
            per.push(ri.iter().sum::<f64>() / ri.len().max(1) as f64);
        }
        let by = |c: bool| mean(per.iter().zip(&samples).filter(|(_, s)| s.correct == c).map(|(r, _)| *r));
        if samples.iter().any(|s| s.correct) && samples.iter().any(|s| !s.correct) {
            m.insert("rlfr_reward_correct_gap".into(), json!(by(true) - by(false)));
        }
        m.insert("rlfr_deviation".into(), json!(mean(d.iter().copied())));
    }
    if t.visurf_cap && samples.iter().any(|s| s.expert) {
        // ViSurf (c): the expert's advantage at most the largest on-policy |A| of its group.
        let expert: Vec<bool> = samples.iter().map(|s| s.expert).collect();
        let mut capped: Vec<f64> =
            adv.advantages.iter().map(|a| a.iter().sum::<f64>() / a.len().max(1) as f64).collect();
        oxrl_core::shaping::visurf::cap_expert_advantage(&mut capped, &group_ids, &expert);
        for (i, a) in adv.advantages.iter_mut().enumerate() {
            if expert[i] {
                a.iter_mut().for_each(|x| *x = x.min(capped[i]));
            }
        }
    }
    if samples.iter().any(|s| s.expert) {
        let e: Vec<f64> = adv
            .advantages
            .iter()
            .zip(&samples)
            .filter(|(_, s)| s.expert)
            .map(|(a, _)| a.iter().sum::<f64>() / a.len().max(1) as f64)
            .collect();
        m.insert("visurf_expert_advantage".into(), json!(mean(e.into_iter())));
    }
    if t.difficulty_weight {
        // GUI-G1: harder problems weigh more (the surrogate is linear in A).
        let w: Vec<f64> = samples.iter().map(|s| s.rate).collect();
        oxrl_core::loss::gui_g1::apply_difficulty(&mut adv.advantages, &w);
        m.insert("difficulty_weight_mean".into(), json!(mean(w.iter().copied())));
    }
    if t.aem_kappa > 0.0 {
        // AEM: scale each response's advantages by its group-relative surprisal under π_old.
        use oxrl_core::advantage::aem;
        let mean_adv: Vec<f64> = adv.advantages.iter().map(|a| a.iter().sum::<f64>() / a.len().max(1) as f64).collect();
        let p = aem::Aem { kappa: t.aem_kappa, g_min: t.aem_g_min, g_max: t.aem_g_max, std_norm: t.aem_std };
        let g = aem::aem_scale(&mean_adv, &aem::surprisal(&logp_old), &group_ids, p);
        aem::apply(&mut adv.advantages, &g);
        let scale_where =
            |pos: bool| mean(mean_adv.iter().zip(&g).filter(|(a, _)| (**a > 0.0) == pos && **a != 0.0).map(|x| *x.1));
        m.insert("aem_scale_pos".into(), json!(scale_where(true)));
        m.insert("aem_scale_neg".into(), json!(scale_where(false)));
    }
    if t.latent_grpo || t.latent_select {
        // Latent-GRPO: group statistics over valid latent rollouts only (invalid ones get A = 0),
        // then only the most confident correct path per group keeps its positive advantage.
        use oxrl_core::advantage::latent_grpo::{masked_grpo, select_first_token};
        let mut a: Vec<f64> = if t.latent_grpo {
            let range = match state.latent_norm_range {
                Some(r) => r,
                None => {
                    let (mut ps, mut sols) = (Vec::new(), Vec::new());
                    for p in group_problems.iter().filter(|p| !p.solution.is_empty()) {
                        ps.push(crate::policy::prompt_ids(tok, p)?);
                        sols.push(oxrl_lm::prompt::encode_response(tok, &p.solution)?);
                    }
                    let r = crate::latent_rl::hidden_norm_range(&policy.model, &ps, &sols, pad)?;
                    state.latent_norm_range = Some(r);
                    r
                }
            };
            let valid: Vec<bool> = samples
                .iter()
                .map(|s| crate::latent_rl::valid(&s.completion, range, t.latent_norm_margin, s.format_ok))
                .collect();
            m.insert("latent_invalid".into(), json!(mean(valid.iter().map(|&v| (!v) as u8 as f64))));
            m.insert("latent_norm_lo".into(), json!(range.0));
            m.insert("latent_norm_hi".into(), json!(range.1));
            let scores: Vec<f64> = token_rewards.iter().map(|r| r.iter().sum()).collect();
            masked_grpo(&scores, &group_ids, &valid)
        } else {
            adv.advantages.iter().map(|a| a.iter().sum::<f64>() / a.len().max(1) as f64).collect()
        };
        if t.latent_select {
            let correct: Vec<bool> = samples.iter().map(|s| s.correct).collect();
            let first: Vec<f64> = samples.iter().map(|s| crate::latent_rl::first_answer_logp(&s.completion)).collect();
            let zeroed = select_first_token(&mut a, &group_ids, &correct, &first);
            m.insert("latent_select_zeroed".into(), json!(zeroed as f64 / groups_kept.max(1) as f64));
        }
        for (row, &v) in adv.advantages.iter_mut().zip(&a) {
            row.iter_mut().for_each(|x| *x = v);
        }
    }
    let per_resp: Vec<f64> = adv.advantages.iter().map(|a| a.iter().sum::<f64>() / a.len().max(1) as f64).collect();
    m.insert("advantage_pos_mean".into(), json!(mean(per_resp.iter().copied().filter(|&a| a > 0.0))));
    m.insert("advantage_neg_mean".into(), json!(mean(per_resp.iter().copied().filter(|&a| a < 0.0))));
    let weight: Vec<f64> = adv.sample_weight.clone().unwrap_or_else(|| vec![1.0; samples.len()]);
    m.insert("samples_in_loss".into(), json!(mean(weight.iter().map(|&w| (w > 0.0) as u8 as f64))));

    // 4. Update: epochs × minibatches of whole groups (SELF interference probes around it).
    let probes: Vec<oxrl_tasks::Problem> = if t.interference_every > 0 && step_no.is_multiple_of(t.interference_every) {
        task.test_problems().iter().take(t.interference_probes).cloned().collect()
    } else {
        vec![]
    };
    let probe_before = crate::interference::solution_loglik(policy, &probes)?;
    let t_update = Instant::now();
    let clip =
        PpoClip { eps_low: t.clip_low, eps_high: t.clip_high, dual_clip: (t.dual_clip > 1.0).then_some(t.dual_clip) };
    let agg_norm = if t.loss_agg_norm > 0.0 { t.loss_agg_norm } else { budget as f64 };
    let inject_nan = cfg.debug.inject_nan_at.contains(&step_no);
    let mut sums: std::collections::BTreeMap<&str, (f64, usize)> = Default::default();
    let mut add = |k: &'static str, v: f64| {
        let e = sums.entry(k).or_insert((0.0, 0));
        e.0 += v;
        e.1 += 1;
    };
    let mut nan_skipped = 0usize;
    let n_groups = groups_kept;
    let critic_warm = models.value.is_some() && step_no <= t.critic_warmup;
    if t.critic_warmup > 0 {
        m.insert("critic_warmup".into(), json!(critic_warm as u8));
    }
    // Per-response loss weights: the estimator's sample weights (e.g. PSR/NSR drop one side) and
    // DAPO overlong filtering (responses cut by the token budget carry no loss).
    let use_keep = t.mask_truncated || adv.sample_weight.is_some();
    let keep_mask: Vec<Vec<f64>> = (0..samples.len())
        .map(|i| {
            let keep = if t.mask_truncated && truncated[i] { 0.0 } else { weight[i] };
            vec![keep; lens[i]]
        })
        .collect();
    // PAPO: one masked view of every sample's prompt (seeded).
    let papo_prompts: Vec<Vec<u32>> = if t.papo_coef > 0.0 {
        samples
            .iter()
            .enumerate()
            .map(|(i, sm)| {
                let mut r = oxrl_core::seed::rng(cfg.seed, "papo-mask", step_no * 1_000_000 + i as u64);
                oxrl_core::regularizer::papo::mask_prompt(&sm.prompt, t.papo_mask_prob, t.papo_span, pad, &mut r)
            })
            .collect()
    } else {
        vec![]
    };
    // SIREN: the peak-entropy mask from the rollout-time entropies.
    let siren =
        if t.siren_coef > 0.0 { Some(oxrl_core::regularizer::siren::Anchor::parse(&t.siren_anchor)?) } else { None };
    let siren_peak = siren.map(|_| oxrl_core::regularizer::siren::peak_mask(&entropy, t.siren_rho));
    // Positions that were not sampled (latent segments, agent observations, forced hints) carry
    // no token loss.
    let kinds_mask = samples.iter().any(|s| !s.completion.kinds.is_empty());
    let dph_div = oxrl_core::regularizer::dph::Divergence::parse(&t.dph_divergence, t.dph_alpha)?
        .filter(|_| t.dph_coef > 0.0 && models.rehearsal.is_some());
    for epoch in 0..t.epochs {
        for mb in 0..t.minibatches {
            let (g0, g1) = (mb * n_groups / t.minibatches, (mb + 1) * n_groups / t.minibatches);
            let mb_idx: Vec<usize> = (0..samples.len()).filter(|&i| (g0..g1).contains(&samples[i].group)).collect();
            if mb_idx.is_empty() {
                continue;
            }
            // Gradient accumulation: the minibatch's groups in `micro_batches` chunks, each
            // chunk's loss weighted by its share of the minibatch's loss units (tokens for
            // token-mean, sequences for the sequence means, 1 for the fixed-norm sum), so the
            // accumulated gradient equals the whole minibatch's.
            let units = |ix: &[usize]| -> f64 {
                ix.iter()
                    .map(|&i| {
                        let tokens = keep_mask[i].first().copied().unwrap_or(0.0) * lens[i] as f64;
                        match (t.objective.as_str(), t.loss_agg) {
                            ("pacs" | "prdp", _) => 1.0, // averages over every response / pair
                            ("ppo", oxrl_core::loss::AggMode::TokenMean) => tokens,
                            _ => (tokens > 0.0) as u8 as f64,
                        }
                    })
                    .sum()
            };
            let mb_units = units(&mb_idx).max(1e-12);
            let n_micro = t.micro_batches.min(g1 - g0).max(1);
            let mut acc = None;
            let mut bad = false;
            for mc in 0..n_micro {
                let (c0, c1) = (g0 + mc * (g1 - g0) / n_micro, g0 + (mc + 1) * (g1 - g0) / n_micro);
                let idx: Vec<usize> =
                    mb_idx.iter().copied().filter(|&i| (c0..c1).contains(&samples[i].group)).collect();
                if idx.is_empty() {
                    continue;
                }
                let frac = if t.objective == "ppo" && t.loss_agg == oxrl_core::loss::AggMode::SeqMeanTokenSumNorm {
                    1.0
                } else {
                    units(&idx) / mb_units
                };
                let prompts: Vec<Vec<u32>> = idx.iter().map(|&i| samples[i].prompt.clone()).collect();
                let resp: Vec<Vec<u32>> = idx.iter().map(|&i| samples[i].completion.tokens.clone()).collect();
                let width = idx.iter().map(|&i| lens[i]).max().unwrap();
                let rows = |src: &[Vec<f64>]| -> Result<Tensor> {
                    let r: Vec<&[f64]> = idx.iter().map(|&i| src[i].as_slice()).collect();
                    pad_rows(&r, width, &dev)
                };
                let opts = ScoreOptions {
                    grad: true,
                    temperature: t.temperature,
                    hidden: (models.value.is_some() && models.critic.is_none()) || latent_coconut,
                    logits: siren.is_some() || rmx,
                    ..Default::default()
                };
                let inputs: Vec<&[Option<Vec<f32>>]> =
                    idx.iter().map(|&i| samples[i].completion.inputs.as_slice()).collect();
                let s = score_inputs(&policy.model, &prompts, &resp, Some(&inputs), pad, opts)?;
                let mut mask = s.mask.clone();
                // Latent segments: token terms on sampled tokens only; latents get DePO's term.
                let lat_mask = if kinds_mask {
                    let (tok_rows, lat_rows): (Vec<Vec<f64>>, Vec<Vec<f64>>) =
                        idx.iter().map(|&i| crate::latent_rl::kind_rows(&samples[i].completion)).unzip();
                    let local =
                        |r: &[Vec<f64>]| pad_rows(&r.iter().map(|x| x.as_slice()).collect::<Vec<_>>(), width, &dev);
                    let lm = (&mask * local(&lat_rows)?)?;
                    mask = (mask * local(&tok_rows)?)?;
                    Some(lm)
                } else {
                    None
                };
                // ViSurf: an injected expert response has ratio 1 (log π_old := log π_θ, detached).
                // 1 on every position of the minibatch rows whose sample has `flag`.
                let flag_rows = |flag: fn(&Sample) -> bool| -> Result<Tensor> {
                    let f: Vec<Vec<f64>> = idx.iter().map(|&i| vec![flag(&samples[i]) as u8 as f64; width]).collect();
                    pad_rows(&f.iter().map(|r| r.as_slice()).collect::<Vec<_>>(), width, &dev)
                };
                let old = rows(&logp_old)?;
                let old = if idx.iter().any(|&i| samples[i].expert) {
                    let e = flag_rows(|s| s.expert)?;
                    ((&e * s.logp.detach())? + ((1.0 - &e)? * old)?)?
                } else {
                    old
                };
                if use_keep {
                    mask = (mask * rows(&keep_mask)?)?;
                }
                let pg = if let (true, Some((dec, cands)), Some(lg)) = (rmx, &rm_base, &s.logits) {
                    // ReasonMaxxer: contrastive loss at the base model's decision points, over its
                    // top-k candidates.
                    let k = t.rm_top_k;
                    let (b, w) = (idx.len(), width);
                    let (mut ids, mut onehot, mut pos, mut neg) =
                        (vec![0u32; b * w * k], vec![0f32; b * w * k], vec![0f32; b * w], vec![0f32; b * w]);
                    for (r, &i) in idx.iter().enumerate() {
                        for j in 0..lens[i] {
                            let c = &cands[i][j];
                            ids[(r * w + j) * k..(r * w + j) * k + c.len()].copy_from_slice(c);
                            let tok_j = samples[i].completion.tokens[j];
                            if let Some(ci) = oxrl_core::loss::reasonmaxxer::candidate_index(c, tok_j) {
                                onehot[(r * w + j) * k + ci] = 1.0;
                            }
                            let d = dec[i][j] as f32;
                            if samples[i].correct {
                                pos[r * w + j] = d;
                            } else {
                                neg[r * w + j] = d;
                            }
                        }
                    }
                    let ids = Tensor::from_vec(ids, (b, w, k), &dev)?;
                    let cand = (lg / t.temperature)?.gather(&ids, 2)?;
                    let to = |v: Vec<f32>, shape: &[usize]| -> Result<Tensor> {
                        Ok(Tensor::from_vec(v, shape, &dev)?.to_dtype(cand.dtype())?)
                    };
                    let (l, st) = oxrl_core::loss::reasonmaxxer::reasonmaxxer_loss(
                        &cand,
                        &to(onehot, &[b, w, k])?,
                        &(to(pos, &[b, w])? * &mask)?,
                        &(to(neg, &[b, w])? * &mask)?,
                        t.rm_neg_coef,
                    )?;
                    add("rm_decision_points", st.n);
                    if st.pos_p.is_finite() {
                        add("rm_positive_p", st.pos_p);
                    }
                    if st.neg_p.is_finite() {
                        add("rm_negative_p", st.neg_p);
                    }
                    l
                } else if t.objective == "prdp" {
                    // PRDP: regress β·Σ clipped log-ratio differences onto reward differences
                    // of every pair in a group.
                    let rewards: Vec<f64> = idx.iter().map(|&i| samples[i].reward).collect();
                    let groups: Vec<usize> = idx.iter().map(|&i| samples[i].group).collect();
                    let (l, pairs) = oxrl_core::loss::prdp::prdp_loss(
                        &s.logp,
                        &old,
                        &mask,
                        &rewards,
                        &groups,
                        t.prdp_beta,
                        t.prdp_clip,
                    )?;
                    add("prdp_pairs", pairs as f64);
                    l
                } else if t.objective == "pacs" {
                    // PACS: BCE of the group-centred implicit reward against the outcome.
                    let rewards: Vec<f64> = idx.iter().map(|&i| samples[i].correct as u8 as f64).collect();
                    let groups: Vec<usize> = idx.iter().map(|&i| samples[i].group).collect();
                    let cfg_p = Pacs { beta: t.pacs_beta, score: t.pacs_score, ..Default::default() };
                    let (l, critic) = pacs_loss(&s.logp, &old, &mask, &rewards, &groups, cfg_p)?;
                    add("pacs_critic", critic);
                    l
                } else {
                    let (pg, pm) = ppo_clip_loss(&s.logp, &old, &rows(&adv.advantages)?, &mask, clip)?;
                    // HeRL: hindsight samples take the unclipped shaped weight −A·ρ/(ρ + γ_s),
                    // ρ against their rollout-time log-probs.
                    let pg = if idx.iter().any(|&i| samples[i].he) {
                        let he = flag_rows(|s| s.he)?.to_dtype(pg.dtype())?;
                        let hl = oxrl_core::shaping::herl::hindsight_loss(
                            &s.logp,
                            &old,
                            &rows(&adv.advantages)?,
                            t.herl_gamma,
                        )?;
                        ((&he * hl)? + ((1.0 - &he)? * pg)?)?
                    } else {
                        pg
                    };
                    add("clipfrac", pm.clipfrac);
                    add("clipfrac_lower", pm.clipfrac_lower);
                    add("approx_kl", pm.approx_kl);
                    add("ratio_mean", pm.ratio_mean);
                    aggregate(&pg, &mask, t.loss_agg, agg_norm)?
                };
                let pg = match (&lat_mask, &s.hidden, &policy.model.latent) {
                    (Some(lm), Some(h), Some(l)) if t.depo_alpha > 0.0 => {
                        // DePO: the latent PPO term (own trust region) + the vMF KL, token-means
                        // over latent positions.
                        use oxrl_lm::latent::{vmf_kl, vmf_logp};
                        let cs: Vec<&Completion> = idx.iter().map(|&i| &samples[i].completion).collect();
                        let z = crate::latent_rl::latent_tensor(&cs, width, h.dim(2)?, h.dtype(), &dev)?;
                        let (kappa, norm) = (l.cfg.kappa, l.cfg.normalize);
                        let lat_logp = vmf_logp(h, &z, kappa, norm)?.to_dtype(s.logp.dtype())?;
                        let kl = vmf_kl(h, &z, kappa, norm)?.to_dtype(s.logp.dtype())?;
                        let depo = oxrl_core::loss::depo::Depo {
                            alpha: t.depo_alpha,
                            latent_clip: PpoClip {
                                eps_low: t.depo_clip_low,
                                eps_high: t.depo_clip_high,
                                dual_clip: (t.depo_dual_clip > 1.0).then_some(t.depo_dual_clip),
                            },
                            vmf_kl_coef: t.depo_vmf_kl,
                        };
                        let (ll, lm_) = oxrl_core::loss::depo::depo_latent_loss(
                            &lat_logp,
                            &old,
                            &rows(&adv.advantages)?,
                            lm,
                            &kl,
                            depo,
                        )?;
                        let n_lat = lm.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                        if n_lat > 0.0 {
                            add("latent_clipfrac", lm_.clipfrac);
                            add("latent_ratio_mean", lm_.ratio_mean);
                            let klv = (&kl * lm)?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()? / n_lat;
                            add("latent_vmf_kl", klv);
                        }
                        (pg + ll)?
                    }
                    _ => pg,
                };
                add("policy_loss", pg.to_scalar::<f32>()? as f64);
                let mut loss = if pipo != 1.0 { (pg * pipo)? } else { pg };
                if let (Some(lref), false, true) = (&logp_ref, kl_in_reward, state.kl_coef > 0.0) {
                    // (ReasonMaxxer keeps the KL off its decision points.)
                    let kl_mask = match &rm_base {
                        Some((dec, _)) => (&mask * (1.0 - rows(dec)?)?)?,
                        None => mask.clone(),
                    };
                    let kl = aggregate(
                        &kl_estimate(&s.logp, &rows(lref)?, t.kl_estimator)?,
                        &kl_mask,
                        t.loss_agg,
                        agg_norm,
                    )?;
                    add("kl_loss", kl.to_scalar::<f32>()? as f64);
                    loss = (loss + (kl * state.kl_coef)?)?;
                }
                if let Some(expert) = &expert_logp {
                    // CalibRL guided term, token-mean over positions the expert response covers.
                    let (mut e_rows, mut e_mask) = (Vec::with_capacity(idx.len()), Vec::with_capacity(idx.len()));
                    for &i in &idx {
                        let ex = &expert[samples[i].group];
                        e_rows.push((0..lens[i]).map(|j| ex.get(j).copied().unwrap_or(0.0)).collect::<Vec<f64>>());
                        e_mask.push((0..lens[i]).map(|j| (j < ex.len()) as u8 as f64).collect::<Vec<f64>>());
                    }
                    let er: Vec<&[f64]> = e_rows.iter().map(|r| r.as_slice()).collect();
                    let em: Vec<&[f64]> = e_mask.iter().map(|r| r.as_slice()).collect();
                    let correct: Vec<bool> = idx.iter().map(|&i| samples[i].reward > 0.1).collect();
                    let adv_abs: Vec<f64> = idx.iter().map(|&i| per_resp[i].abs()).collect();
                    let g = calibrl_guided(&s.logp, &pad_rows(&er, width, &dev)?, &correct, &adv_abs, 0.5)?;
                    let gmask = (&mask * pad_rows(&em, width, &dev)?)?;
                    let gl = aggregate(&g, &gmask, oxrl_core::loss::AggMode::TokenMean, 1.0)?;
                    add("calibrl_loss", gl.to_scalar::<f32>()? as f64);
                    loss = (loss + (gl * t.calibrl_coef)?)?;
                }
                if let (Some(anchor), Some(peak), Some(lg)) = (siren, &siren_peak, &s.logits) {
                    use oxrl_core::regularizer::siren::{siren_loss, top_p_entropy, Anchor};
                    let scaled = if t.temperature != 1.0 { (lg / t.temperature)? } else { lg.clone() };
                    let hp = top_p_entropy(&scaled, t.siren_top_p)?;
                    let anchor = match anchor {
                        Anchor::Initial(_) => Anchor::Initial(state.siren_anchor),
                        a => a,
                    };
                    let (l, mean_h) = siren_loss(&hp, &(&mask * rows(peak)?)?, anchor)?;
                    if matches!(anchor, Anchor::Initial(None)) {
                        state.siren_anchor = Some(mean_h);
                    }
                    add("siren_loss", l.to_dtype(DType::F64)?.to_scalar::<f64>()?);
                    add("siren_entropy", mean_h);
                    loss = (loss + (l * t.siren_coef)?)?;
                }
                if t.papo_coef > 0.0 {
                    // PAPO: the same responses on the masked prompts; maximise the perception KL,
                    // minimise both sampled-token entropies.
                    let masked: Vec<Vec<u32>> = idx.iter().map(|&i| papo_prompts[i].clone()).collect();
                    let aug = score(
                        &policy.model,
                        &masked,
                        &resp,
                        pad,
                        ScoreOptions { grad: true, temperature: t.temperature, ..Default::default() },
                    )?;
                    let kl = oxrl_core::regularizer::papo::perception_kl(&s.logp, &aug.logp, t.papo_kl_clamp)?;
                    let kl = aggregate(&kl, &mask, t.loss_agg, agg_norm)?;
                    let h_aug = aggregate(&aug.logp.neg()?, &mask, t.loss_agg, agg_norm)?;
                    let h_ori = aggregate(&s.logp.neg()?, &mask, t.loss_agg, agg_norm)?;
                    add("papo_kl", kl.to_dtype(DType::F64)?.to_scalar::<f64>()?);
                    add("papo_aug_entropy", h_aug.to_dtype(DType::F64)?.to_scalar::<f64>()?);
                    add("papo_ori_entropy", h_ori.to_dtype(DType::F64)?.to_scalar::<f64>()?);
                    loss = (loss - (kl * t.papo_coef)?)?;
                    loss = ((loss + (h_aug * t.papo_aug_entropy)?)? + (h_ori * t.papo_ori_entropy)?)?;
                }
                if t.entropy_coef != 0.0 {
                    let ent = aggregate(&s.entropy, &mask, t.loss_agg, agg_norm)?;
                    loss = (loss - (ent * t.entropy_coef)?)?;
                }
                if critic_warm {
                    // Critic warm-up: only the critic learns (no policy loss, no gradient into
                    // the policy's trunk).
                    loss = loss.zeros_like()?;
                }
                // The value head's input: a critic model's hidden states (its own trunk learns
                // from the value loss) or the policy's (shared trunk).
                let value_in = match models.critic {
                    Some(cm) if models.value.is_some() => {
                        let opts = ScoreOptions { grad: true, hidden: true, ..Default::default() };
                        Some(score(cm, &prompts, &resp, pad, opts)?.hidden.expect("hidden states were asked for"))
                    }
                    _ if critic_warm => s.hidden.as_ref().map(Tensor::detach),
                    _ => s.hidden.clone(),
                };
                if let (Some(vh), Some(h), Some(ret), Some(vold)) = (models.value, &value_in, &adv.returns, &values_old)
                {
                    let vl = clipped_value_loss(&vh.forward(h)?, &rows(vold)?, &rows(ret)?, t.value_clip)?;
                    let vl = aggregate(&vl, &s.mask, oxrl_core::loss::AggMode::TokenMean, 1.0)?;
                    add("value_loss", vl.to_scalar::<f32>()? as f64);
                    loss = (loss + (vl * t.vf_coef)?)?;
                }
                if inject_nan {
                    loss = (loss * f64::NAN)?;
                }
                let lv = loss.to_scalar::<f32>()? as f64;
                if !lv.is_finite() {
                    bad = true;
                    break;
                }
                add("loss", lv);
                opt.accumulate(&mut acc, &policy.model.backward(&(loss * frac)?)?)?;
            }
            // DPH-RL: η·agg(f(u)) on a rehearsal batch from π₀, u = π_θ/π₀ on π₀'s samples.
            if let (Some(reh), Some(div), false) = (models.rehearsal, dph_div, bad) {
                let items = reh.batch(cfg.seed, step_no, epoch * t.minibatches + mb, t.dph_batch);
                let ps: Vec<Vec<u32>> = items.iter().map(|x| x.prompt.clone()).collect();
                let rs: Vec<Vec<u32>> = items.iter().map(|x| x.response.clone()).collect();
                let width = rs.iter().map(|r| r.len()).max().unwrap_or(0);
                let lp0: Vec<&[f64]> = items.iter().map(|x| x.logp0.as_slice()).collect();
                let sr = score(&policy.model, &ps, &rs, pad, ScoreOptions { grad: true, ..Default::default() })?;
                let f = dph_divergence(&sr.logp, &pad_rows(&lp0, width, &dev)?, div)?;
                let l = aggregate(&f, &sr.mask, t.loss_agg, agg_norm)?;
                let lv = l.to_scalar::<f32>()? as f64;
                if lv.is_finite() {
                    add("dph_loss", lv);
                    let ntok = sr.mask.sum_all()?.to_scalar::<f32>()? as f64;
                    add("rehearsal_logp", (&sr.logp * &sr.mask)?.sum_all()?.to_scalar::<f32>()? as f64 / ntok.max(1.0));
                    opt.accumulate(&mut acc, &policy.model.backward(&(l * t.dph_coef)?)?)?;
                } else {
                    bad = true;
                }
            }
            if bad {
                nan_skipped += 1;
                continue;
            }
            let Some(grads) = acc else { continue };
            let info = opt.step(&grads, lr, t.grad_clip)?;
            if info.skipped {
                nan_skipped += 1;
            } else {
                add("grad_norm", info.grad_norm);
            }
        }
    }
    for (k, (s, n)) in sums {
        m.insert(k.into(), json!(s / n.max(1) as f64));
    }
    m.insert("nan_skipped".into(), json!(nan_skipped));
    if !probes.is_empty() {
        let after = crate::interference::solution_loglik(policy, &probes)?;
        m.extend(crate::interference::interference_metrics(&probe_before, &after));
    }

    // 5. Adaptive KL controller.
    if t.kl_target > 0.0 {
        let kl = m.get("kl_ref").and_then(|v| v.as_f64()).unwrap_or(0.0);
        let mut ctl = AdaptiveKl { value: state.kl_coef, target: t.kl_target, horizon: t.kl_horizon };
        ctl.update(kl, samples.len() as f64);
        state.kl_coef = ctl.value;
    }
    m.insert("kl_coef".into(), json!(state.kl_coef));
    if let Some(g) = policy.model.latent.as_ref().map(|l| l.gate_mean()).transpose()?.flatten() {
        m.insert("hrpo_gate".into(), json!(g));
    }
    if let Some(h0) = state.siren_anchor {
        m.insert("siren_anchor".into(), json!(h0));
    }
    state.step = step_no;
    let total = t_start.elapsed().as_secs_f64();
    m.insert("time_rollout_s".into(), json!(t_rollout));
    m.insert("time_scoring_s".into(), json!(t_scoring));
    m.insert("time_update_s".into(), json!(t_update.elapsed().as_secs_f64()));
    m.insert("step_s".into(), json!(total));
    m.insert("gen_tokens_per_s".into(), json!(gen_tokens as f64 / t_rollout));
    m.insert("tokens_per_s".into(), json!(gen_tokens as f64 / total));
    Ok(m)
}
