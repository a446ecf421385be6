//! SAC — "Soft Actor-Critic Algorithms and Applications" (Haarnoja et al., 2018), as in CleanRL's
//! sac_continuous_action.py: twin Q networks with a min target, a tanh-squashed Gaussian actor
//! (log-std squashed into [−5, 2]) with the log-prob correction Σ log(scale·(1 − tanh²u) + ε),
//! automatic entropy tuning toward target entropy −|A|, delayed policy updates and soft (τ) target
//! updates. Uniform random actions until `learning_starts`.

use super::{
    box_bounds, load_opt, load_state, read_tensors, save_opt, save_state, strip_prefix, Agent, IterStats, Progress,
};
use crate::buffer::ReplayBuffer;
use crate::dist::{gaussian_log_prob, normal_noise};
use crate::env::{Action, VecEnv};
use crate::nn::{rows, Activation, Init, Mlp, Params};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var, D};
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_core::seed::Rng;
use rand::{Rng as _, SeedableRng};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `[sac]` — defaults are CleanRL's sac_continuous_action.py.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SacConfig {
    pub buffer_size: usize,
    pub gamma: f64,
    pub tau: f64,
    pub batch_size: usize,
    pub learning_starts: u64,
    pub policy_lr: f64,
    pub q_lr: f64,
    /// Policy (and α) updates every this many steps, that many times (delayed updates).
    pub policy_frequency: u64,
    pub target_network_frequency: u64,
    /// Entropy coefficient (used as the start value with `autotune`).
    pub alpha: f64,
    pub autotune: bool,
    pub hidden: Vec<usize>,
    pub steps_per_iteration: u64,
    /// Found-RL guidance: "none", or "scripted" — a slow scripted "VLM" (reach's noisy expert,
    /// answering in batches on its own thread) proposes actions for every `guide_every`-th
    /// transition; its answers are attached to the replay slots at the next iteration (a fixed
    /// point, so runs stay reproducible) and train the critic (VMR) and the actor (AWAG).
    pub guide: String,
    pub guide_every: u64,
    pub guide_noise: f64,
    /// Milliseconds the scripted model spends per batch (its slowness).
    pub guide_delay_ms: u64,
    /// VMR: margin m and the λ schedule (1 until `vmr_decay_start`, 0 at `vmr_decay_end` steps).
    pub vmr_margin: f64,
    pub vmr_decay_start: u64,
    pub vmr_decay_end: u64,
    /// AWAG: c_awag, β and w_max.
    pub awag_coef: f64,
    pub awag_beta: f64,
    pub awag_w_max: f64,
    /// VLM-RL: "none" (the environment's reward), or "clg" — each transition's reward is rewritten
    /// from its next frame by the contrasting-language-goal score synthesised with the vehicle state
    /// (env.name = "drive"; [`crate::env::drive::Semantic`]): frames are scored in batches of
    /// `semantic_batch` transitions, written back into their replay slots, and only then trained on.
    pub semantic_reward: String,
    pub semantic_batch: usize,
}

impl Default for SacConfig {
    fn default() -> Self {
        Self {
            buffer_size: 1_000_000,
            gamma: 0.99,
            tau: 0.005,
            batch_size: 256,
            learning_starts: 5000,
            policy_lr: 3e-4,
            q_lr: 1e-3,
            policy_frequency: 2,
            target_network_frequency: 1,
            alpha: 0.2,
            autotune: true,
            hidden: vec![256, 256],
            steps_per_iteration: 1000,
            guide: "none".into(),
            guide_every: 4,
            guide_noise: 0.3,
            guide_delay_ms: 5,
            vmr_margin: 2.0,
            vmr_decay_start: 50_000,
            vmr_decay_end: 150_000,
            awag_coef: 0.01,
            awag_beta: 2.0,
            awag_w_max: 20.0,
            semantic_reward: "none".into(),
            semantic_batch: 64,
        }
    }
}

impl SacConfig {
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0
            || self.buffer_size == 0
            || self.policy_frequency == 0
            || self.target_network_frequency == 0
            || self.steps_per_iteration == 0
        {
            bail!("sac: batch_size, buffer_size, policy_frequency, target_network_frequency and steps_per_iteration must be positive");
        }
        if !(0.0..=1.0).contains(&self.tau) || !(0.0..=1.0).contains(&self.gamma) || self.alpha < 0.0 {
            bail!("sac: tau and gamma must be in [0, 1] and alpha non-negative");
        }
        if !matches!(self.guide.as_str(), "none" | "scripted") {
            bail!("sac.guide: `{}` is not one of none, scripted", self.guide);
        }
        if !matches!(self.semantic_reward.as_str(), "none" | "clg") {
            bail!("sac.semantic_reward: `{}` is not one of none, clg", self.semantic_reward);
        }
        if self.semantic_batch == 0 {
            bail!("sac.semantic_batch: must be positive");
        }
        if self.guide_every == 0
            || self.vmr_margin < 0.0
            || self.awag_coef < 0.0
            || self.awag_beta <= 0.0
            || self.awag_w_max <= 0.0
        {
            bail!("sac: guide_every and awag_beta, awag_w_max must be positive, vmr_margin and awag_coef >= 0");
        }
        Ok(())
    }
}

const LOG_STD_MIN: f64 = -5.0;
const LOG_STD_MAX: f64 = 2.0;

pub struct Sac {
    pub cfg: SacConfig,
    actor: Mlp,
    actor_params: Params,
    q1: Mlp,
    q2: Mlp,
    q_params: Params,
    q1t: Mlp,
    q2t: Mlp,
    qt_params: Params,
    log_alpha: Var,
    actor_opt: AdamW,
    q_opt: AdamW,
    alpha_opt: AdamW,
    buffer: ReplayBuffer,
    rng: Rng,
    dev: Device,
    act_dim: usize,
    scale: Tensor,
    bias: Tensor,
    bounds: (Vec<f32>, Vec<f32>),
    target_entropy: f64,
    global_step: u64,
    /// Found-RL guidance: the model server, the requests of this iteration (id, replay slot),
    /// and each slot's guide action (with the id of the transition it belongs to).
    server: Option<GuideServer>,
    pending: Vec<(u64, usize)>,
    slot_id: Vec<u64>,
    slot_guide: Vec<Option<Vec<f32>>>,
    transitions: u64,
    /// VLM-RL: the semantic reward model and the transitions not yet scored (slot, next
    /// observation, environment reward).
    semantic: Option<crate::env::drive::Semantic>,
    unscored: Vec<(usize, Vec<f32>, f64)>,
}

/// The guide model's server: requests (transition id, observation) → proposed action.
type GuideServer = crate::found_rl::BatchServer<(u64, Vec<f32>), Vec<f32>>;

/// The Found-RL guide model: reach's noisy scripted expert (seeded per request, so its answers do
/// not depend on timing), answering a batch at a time after `guide_delay_ms`.
fn guide_server(cfg: &SacConfig, obs_dim: usize, act_dim: usize, seed: u64) -> Result<Option<GuideServer>> {
    match cfg.guide.as_str() {
        "none" => Ok(None),
        "scripted" => {
            anyhow::ensure!(
                obs_dim == 4 && act_dim == 2,
                "sac.guide = \"scripted\": the scripted guide is reach's expert (4-d observation, 2-d action)"
            );
            let (noise, delay) = (cfg.guide_noise, std::time::Duration::from_millis(cfg.guide_delay_ms));
            Ok(Some(crate::found_rl::BatchServer::new(
                64,
                std::time::Duration::from_millis(2),
                move |reqs: &[(u64, Vec<f32>)]| {
                    std::thread::sleep(delay);
                    reqs.iter()
                        .map(|(id, o)| {
                            let mut rng = oxrl_core::seed::rng(seed, "guide", *id);
                            crate::env::reach::expert_action(o, [0.0, 0.0], noise, &mut rng)
                        })
                        .collect()
                },
            )))
        }
        other => bail!("sac.guide: `{other}` is not one of none, scripted"),
    }
}

/// The squashed action and its log-prob: a = tanh(u)·scale + bias, u = μ + σ·ε,
/// log π = log N(u; μ, σ) − Σ log(scale·(1 − tanh²u) + 1e-6).
pub fn squash(
    mean: &Tensor,
    log_std: &Tensor,
    noise: &Tensor,
    scale: &Tensor,
    bias: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let u = (mean + (log_std.exp()? * noise)?)?;
    let y = u.tanh()?;
    let a = y.broadcast_mul(scale)?.broadcast_add(bias)?;
    let corr = ((y.sqr()?.neg()? + 1.0)?.broadcast_mul(scale)? + 1e-6)?.log()?.sum(D::Minus1)?;
    let logp = (gaussian_log_prob(mean, log_std, &u)? - corr)?;
    Ok((a, logp))
}

/// The temperature loss −E[exp(log α)·(log π + H_target)] (log π detached): its gradient raises α
/// when the policy's entropy −E[log π] is below the target and lowers it above.
pub fn alpha_loss(log_alpha: &Tensor, logp: &Tensor, target_entropy: f64) -> Result<Tensor> {
    let target = (logp.detach() + target_entropy)?;
    Ok(log_alpha.exp()?.broadcast_mul(&target)?.neg()?.mean_all()?)
}

impl Sac {
    pub fn new(cfg: SacConfig, envs: &VecEnv, seed: u64, dev: &Device) -> Result<Self> {
        cfg.validate()?;
        let bounds = box_bounds(&envs.action_space()).context("sac")?;
        let act_dim = bounds.0.len();
        let obs_dim = envs.observation_space().dim();
        if cfg.semantic_reward == "clg" && obs_dim != crate::env::drive::OBS_DIM {
            bail!(
                "sac.semantic_reward = \"clg\" reads the drive road's observations ({} values), not {obs_dim}",
                crate::env::drive::OBS_DIM
            );
        }
        let mut init = oxrl_core::seed::rng(seed, "sac-init", 0);
        let mk = |inp: usize, out: usize, init: &mut Rng| -> Result<Mlp> {
            let mut s = vec![inp];
            s.extend(&cfg.hidden);
            s.push(out);
            Mlp::new(&s, Activation::Relu, Init::Uniform, init, dev)
        };
        let actor = mk(obs_dim, 2 * act_dim, &mut init)?;
        let q1 = mk(obs_dim + act_dim, 1, &mut init)?;
        let q2 = mk(obs_dim + act_dim, 1, &mut init)?;
        let q1t = mk(obs_dim + act_dim, 1, &mut init)?;
        let q2t = mk(obs_dim + act_dim, 1, &mut init)?;
        let actor_params = Params(actor.vars("actor"));
        let q_params = Params([q1.vars("q1"), q2.vars("q2")].concat());
        let qt_params = Params([q1t.vars("q1"), q2t.vars("q2")].concat());
        qt_params.copy_from(&q_params)?;
        let log_alpha = Var::from_tensor(&Tensor::new(&[cfg.alpha.max(1e-12).ln() as f32], dev)?)?;
        let actor_opt = AdamW::new(actor_params.vars(), AdamWConfig::default())?;
        let q_opt = AdamW::new(q_params.vars(), AdamWConfig::default())?;
        let alpha_opt = AdamW::new(vec![("log_alpha".into(), log_alpha.clone())], AdamWConfig::default())?;
        let scale: Vec<f32> = bounds.0.iter().zip(&bounds.1).map(|(l, h)| (h - l) / 2.0).collect();
        let bias: Vec<f32> = bounds.0.iter().zip(&bounds.1).map(|(l, h)| (h + l) / 2.0).collect();
        Ok(Self {
            actor,
            actor_params,
            q1,
            q2,
            q_params,
            q1t,
            q2t,
            qt_params,
            log_alpha,
            actor_opt,
            q_opt,
            alpha_opt,
            buffer: ReplayBuffer::new(cfg.buffer_size, obs_dim, act_dim)?,
            rng: Rng::seed_from_u64(oxrl_core::seed::derive(seed, "sac", 0)),
            dev: dev.clone(),
            act_dim,
            scale: Tensor::from_vec(scale, (1, act_dim), dev)?,
            bias: Tensor::from_vec(bias, (1, act_dim), dev)?,
            bounds,
            target_entropy: -(act_dim as f64),
            global_step: 0,
            server: guide_server(&cfg, obs_dim, act_dim, seed)?,
            pending: Vec::new(),
            slot_id: if cfg.guide == "none" { Vec::new() } else { vec![u64::MAX; cfg.buffer_size] },
            slot_guide: if cfg.guide == "none" { Vec::new() } else { vec![None; cfg.buffer_size] },
            transitions: 0,
            // the stand-in "CLIP" is a fixed model: the same weights in every run
            semantic: (cfg.semantic_reward == "clg").then(|| crate::env::drive::Semantic::new(0)),
            unscored: Vec::new(),
            cfg,
        })
    }

    /// (mean, log_std) of the actor, log-std squashed into [LOG_STD_MIN, LOG_STD_MAX].
    fn actor_out(&self, obs: &Tensor) -> Result<(Tensor, Tensor)> {
        let out = self.actor.forward(obs)?;
        let mean = out.narrow(1, 0, self.act_dim)?;
        let ls = out.narrow(1, self.act_dim, self.act_dim)?.tanh()?;
        let ls = ((ls + 1.0)? * (0.5 * (LOG_STD_MAX - LOG_STD_MIN)))? + LOG_STD_MIN;
        Ok((mean, ls?))
    }

    fn sample_action(&mut self, obs: &Tensor) -> Result<(Tensor, Tensor)> {
        let (mean, ls) = self.actor_out(obs)?;
        let eps = normal_noise((obs.dim(0)?, self.act_dim), &mut self.rng, &self.dev)?;
        squash(&mean, &ls, &eps, &self.scale, &self.bias)
    }

    fn q(net: &Mlp, obs: &Tensor, act: &Tensor) -> Result<Tensor> {
        Ok(net.forward(&Tensor::cat(&[obs, act], 1)?)?.squeeze(1)?)
    }

    fn alpha(&self) -> Result<f64> {
        Ok(if self.cfg.autotune {
            self.log_alpha.as_tensor().exp()?.to_vec1::<f32>()?[0] as f64
        } else {
            self.cfg.alpha
        })
    }

    /// VLM-RL's batch step: score the transitions waiting for their semantic reward in one call
    /// and write the rewards into their replay slots; (sum of r_CLG, count).
    fn score_unscored(&mut self) -> (f64, usize) {
        let Some(sem) = &self.semantic else { return (0.0, 0) };
        let pending = std::mem::take(&mut self.unscored);
        let next: Vec<Vec<f32>> = pending.iter().map(|p| p.1.clone()).collect();
        let env_rewards: Vec<f64> = pending.iter().map(|p| p.2).collect();
        let (rewards, scores) = sem.rewards(&next, &env_rewards);
        for (p, r) in pending.iter().zip(rewards) {
            self.buffer.set_reward(p.0, r);
        }
        (scores.iter().sum(), scores.len())
    }

    /// Attach the guide's answers to this iteration's requests (waiting for any still running).
    fn attach_guidance(&mut self) -> Result<()> {
        let Some(server) = &self.server else { return Ok(()) };
        let mut got = std::collections::HashMap::new();
        let t0 = std::time::Instant::now();
        while got.len() < self.pending.len() {
            got.extend(server.take());
            if got.len() < self.pending.len() {
                anyhow::ensure!(t0.elapsed().as_secs() < 600, "sac.guide: the guide model stopped answering");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        for (id, slot) in self.pending.drain(..) {
            if let Some(a) = got.remove(&id) {
                // (a slot overwritten since the request belongs to a newer transition)
                if self.slot_id[slot] == id {
                    self.slot_guide[slot] = Some(a);
                }
            }
        }
        Ok(())
    }

    /// log π(a | s) of given (squashed) actions.
    fn log_prob_of(&self, obs: &Tensor, act: &Tensor) -> Result<Tensor> {
        let (mean, ls) = self.actor_out(obs)?;
        let y = act.broadcast_sub(&self.bias)?.broadcast_div(&self.scale)?.clamp(-1.0 + 1e-6, 1.0 - 1e-6)?;
        let u = ((((&y + 1.0)? / (y.neg()? + 1.0)?)?.log()?) * 0.5)?;
        let corr = ((y.sqr()?.neg()? + 1.0)?.broadcast_mul(&self.scale)? + 1e-6)?.log()?.sum(D::Minus1)?;
        Ok((gaussian_log_prob(&mean, &ls, &u)? - corr)?)
    }

    fn update(&mut self, metrics: &mut [f64; 5]) -> Result<()> {
        if self.buffer.is_empty() {
            bail!("sampling from an empty replay buffer");
        }
        let idx = self.buffer.sample_indices(self.cfg.batch_size, &mut self.rng);
        let b = self.buffer.gather(&idx, &self.dev)?;
        // Found-RL: the sampled rows that carry a guide action.
        let guide = if self.server.is_some() {
            let has: Vec<f32> = idx.iter().map(|&i| self.slot_guide[i].is_some() as u8 as f32).collect();
            let acts: Vec<f32> = idx
                .iter()
                .flat_map(|&i| match &self.slot_guide[i] {
                    Some(a) => a.clone(),
                    None => vec![0.0; self.act_dim],
                })
                .collect();
            let any = has.iter().any(|&h| h > 0.0);
            let n = idx.len();
            any.then(|| -> Result<(Tensor, Tensor)> {
                Ok((Tensor::from_vec(has, n, &self.dev)?, Tensor::from_vec(acts, (n, self.act_dim), &self.dev)?))
            })
            .transpose()?
        } else {
            None
        };
        let alpha = self.alpha()?;
        // critic
        let (next_a, next_lp) = self.sample_action(&b.next_obs)?;
        let qt = Self::q(&self.q1t, &b.next_obs, &next_a)?.minimum(&Self::q(&self.q2t, &b.next_obs, &next_a)?)?;
        let soft = (qt - (next_lp * alpha)?)?;
        let y = (&b.rew + ((soft * (b.done.neg()? + 1.0)?)? * self.cfg.gamma)?)?.detach();
        let q1 = Self::q(&self.q1, &b.obs, &b.act)?;
        let q2 = Self::q(&self.q2, &b.obs, &b.act)?;
        let mut qf_loss = ((&q1 - &y)?.sqr()?.mean_all()? + (&q2 - &y)?.sqr()?.mean_all()?)?;
        if let Some((has, a_vlm)) = &guide {
            // VMR: the guide action's value a margin above the behaviour action's.
            let lam = crate::found_rl::vmr_lambda(self.global_step, self.cfg.vmr_decay_start, self.cfg.vmr_decay_end);
            let m = self.cfg.vmr_margin;
            let v1 = crate::found_rl::vmr_loss(&Self::q(&self.q1, &b.obs, a_vlm)?, &q1, has, m, lam)?;
            let v2 = crate::found_rl::vmr_loss(&Self::q(&self.q2, &b.obs, a_vlm)?, &q2, has, m, lam)?;
            qf_loss = (qf_loss + (v1 + v2)?)?;
        }
        let g = qf_loss.backward()?;
        self.q_opt.step(&g, self.cfg.q_lr, 0.0)?;
        metrics[0] += qf_loss.to_scalar::<f32>()? as f64 / 2.0;
        metrics[1] += q1.mean_all()?.to_scalar::<f32>()? as f64;
        // delayed actor and α
        if self.global_step.is_multiple_of(self.cfg.policy_frequency) {
            for _ in 0..self.cfg.policy_frequency {
                let alpha = self.alpha()?;
                let (pi, lp) = self.sample_action(&b.obs)?;
                let min_q = Self::q(&self.q1, &b.obs, &pi)?.minimum(&Self::q(&self.q2, &b.obs, &pi)?)?;
                let mut actor_loss = ((&lp * alpha)? - min_q)?.mean_all()?;
                if let (Some((has, a_vlm)), true) = (&guide, self.cfg.awag_coef > 0.0) {
                    // AWAG: imitate the guide where its action beats the deterministic policy's.
                    let qmin = |a: &Tensor| -> Result<Tensor> {
                        Ok(Self::q(&self.q1, &b.obs, a)?.minimum(&Self::q(&self.q2, &b.obs, a)?)?.detach())
                    };
                    let (mean, _) = self.actor_out(&b.obs)?;
                    let det = mean.tanh()?.broadcast_mul(&self.scale)?.broadcast_add(&self.bias)?;
                    let lp_vlm = self.log_prob_of(&b.obs, a_vlm)?;
                    let (l, _) = crate::found_rl::awag_loss(
                        &qmin(a_vlm)?,
                        &qmin(&det)?,
                        &lp_vlm,
                        has,
                        self.cfg.awag_beta,
                        self.cfg.awag_w_max,
                    )?;
                    actor_loss = (actor_loss + (l * self.cfg.awag_coef)?)?;
                }
                let g = actor_loss.backward()?;
                self.actor_opt.step(&g, self.cfg.policy_lr, 0.0)?;
                metrics[2] += actor_loss.to_scalar::<f32>()? as f64;
                let ent = -(lp.mean_all()?.to_scalar::<f32>()? as f64);
                metrics[4] += ent;
                if self.cfg.autotune {
                    let g = alpha_loss(self.log_alpha.as_tensor(), &lp, self.target_entropy)?.backward()?;
                    self.alpha_opt.step(&g, self.cfg.q_lr, 0.0)?;
                }
                metrics[3] += 1.0;
            }
        }
        if self.global_step.is_multiple_of(self.cfg.target_network_frequency) {
            self.qt_params.ema_from(&self.q_params, self.cfg.tau)?;
        }
        Ok(())
    }
}

impl Agent for Sac {
    fn name(&self) -> &'static str {
        "sac"
    }

    fn iterate(&mut self, envs: &mut VecEnv, _progress: Progress) -> Result<IterStats> {
        let n = envs.len();
        let mut stats = IterStats::default();
        let mut m = [0.0f64; 5];
        let mut updates = 0usize;
        let mut taken = 0u64;
        // updates owed to transitions still waiting for their semantic reward
        let mut owed = 0usize;
        let mut clg = (0.0f64, 0usize);
        self.attach_guidance()?;
        while taken < self.cfg.steps_per_iteration {
            let obs = envs.obs().to_vec();
            let acts: Vec<Vec<f32>> = if self.global_step < self.cfg.learning_starts {
                (0..n)
                    .map(|_| {
                        self.bounds.0.iter().zip(&self.bounds.1).map(|(l, h)| self.rng.random_range(*l..*h)).collect()
                    })
                    .collect()
            } else {
                self.sample_action(&rows(&obs, &self.dev)?)?.0.to_vec2::<f32>()?
            };
            let step = envs.step(&acts.iter().map(|a| Action::Continuous(a.clone())).collect::<Vec<_>>())?;
            for i in 0..n {
                let next = step.final_obs[i].as_ref().unwrap_or(&step.obs[i]);
                let slot = self.buffer.next_slot();
                self.buffer.push(&obs[i], &acts[i], step.rewards[i], next, step.terminated[i])?;
                if self.semantic.is_some() {
                    self.unscored.push((slot, next.clone(), step.rewards[i]));
                }
                if let Some(server) = &self.server {
                    // The slot now holds transition `id`; an older guide answer goes with the old one.
                    let id = self.transitions;
                    (self.slot_id[slot], self.slot_guide[slot]) = (id, None);
                    if id.is_multiple_of(self.cfg.guide_every) {
                        server.submit(id, (id, obs[i].clone()));
                        self.pending.push((id, slot));
                    }
                }
                self.transitions += 1;
            }
            stats.episodes.extend(step.finished.iter().copied());
            for _ in 0..n {
                self.global_step += 1;
                taken += 1;
            }
            if self.global_step > self.cfg.learning_starts {
                owed += 1;
            }
            let last = taken >= self.cfg.steps_per_iteration;
            if self.semantic.is_none() || self.unscored.len() >= self.cfg.semantic_batch || last {
                let (sum, n) = self.score_unscored();
                (clg.0, clg.1) = (clg.0 + sum, clg.1 + n);
                for _ in 0..owed {
                    self.update(&mut m)?;
                    updates += 1;
                }
                owed = 0;
            }
        }
        stats.env_steps = taken;
        if clg.1 > 0 {
            stats.metrics.push(("clg_score".into(), clg.0 / clg.1 as f64));
        }
        stats.metrics.push(("alpha".into(), self.alpha()?));
        if updates > 0 {
            stats.metrics.push(("qf_loss".into(), m[0] / updates as f64));
            stats.metrics.push(("q_values".into(), m[1] / updates as f64));
            if m[3] > 0.0 {
                stats.metrics.push(("actor_loss".into(), m[2] / m[3]));
                stats.metrics.push(("entropy".into(), m[4] / m[3]));
            }
        }
        Ok(stats)
    }

    fn act(&mut self, obs: &[Vec<f32>], deterministic: bool) -> Result<Vec<Action>> {
        let o = rows(obs, &self.dev)?;
        let a = if deterministic {
            let (mean, _) = self.actor_out(&o)?;
            mean.tanh()?.broadcast_mul(&self.scale)?.broadcast_add(&self.bias)?
        } else {
            self.sample_action(&o)?.0
        };
        Ok(a.to_vec2::<f32>()?.into_iter().map(Action::Continuous).collect())
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.actor_params.save(&dir.join("model.safetensors"))?;
        let mut critic = self.q_params.tensors();
        critic.extend(self.qt_params.tensors().into_iter().map(|(k, v)| (format!("target.{k}"), v)));
        critic.insert("log_alpha".into(), self.log_alpha.as_tensor().clone());
        candle_core::safetensors::save(&critic, dir.join("critic.safetensors"))?;
        save_opt(&self.actor_opt, &dir.join("optimizer_actor.safetensors"))?;
        save_opt(&self.q_opt, &dir.join("optimizer_q.safetensors"))?;
        save_opt(&self.alpha_opt, &dir.join("optimizer_alpha.safetensors"))?;
        self.buffer.save(&dir.join("replay.safetensors"))?;
        save_state(dir, &self.rng, self.global_step)
    }

    fn load(&mut self, dir: &Path, with_state: bool) -> Result<()> {
        self.actor_params.load_file(&dir.join("model.safetensors"))?;
        if with_state && self.server.is_some() {
            bail!("sac.guide: a guided run cannot be resumed (the guide's answers are not checkpointed)");
        }
        if with_state {
            let p = dir.join("critic.safetensors");
            let m = read_tensors(&p)?;
            self.q_params.load(&m, &p.display().to_string())?;
            let t = strip_prefix(&m, "target.");
            self.qt_params.load(&t, &p.display().to_string())?;
            self.log_alpha.set(
                &m.get("log_alpha")
                    .with_context(|| format!("{}: missing log_alpha", p.display()))?
                    .to_device(&self.dev)?,
            )?;
            load_opt(&mut self.actor_opt, &dir.join("optimizer_actor.safetensors"))?;
            load_opt(&mut self.q_opt, &dir.join("optimizer_q.safetensors"))?;
            load_opt(&mut self.alpha_opt, &dir.join("optimizer_alpha.safetensors"))?;
            self.buffer.load(&dir.join("replay.safetensors"))?;
            self.global_step = load_state(dir, &mut self.rng)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squashed_log_prob_includes_the_scaled_jacobian_and_actions_stay_in_bounds() {
        let d = Device::Cpu;
        let mean = Tensor::new(&[[0.2f32], [5.0]], &d).unwrap();
        let ls = Tensor::new(&[[-1.0f32], [0.0]], &d).unwrap();
        let eps = Tensor::new(&[[0.5f32], [3.0]], &d).unwrap();
        let scale = Tensor::new(&[[2.0f32]], &d).unwrap();
        let bias = Tensor::new(&[[0.0f32]], &d).unwrap();
        let (a, lp) = squash(&mean, &ls, &eps, &scale, &bias).unwrap();
        let a = a.to_vec2::<f32>().unwrap();
        assert!(a.iter().all(|r| r[0].abs() <= 2.0));
        let u = 0.2f64 + (-1.0f64).exp() * 0.5;
        let want = -0.5 * 0.25 - (-1.0) - 0.5 * 1.8378770664093453 - (2.0 * (1.0 - u.tanh().powi(2)) + 1e-6).ln();
        assert!((lp.to_vec1::<f32>().unwrap()[0] as f64 - want).abs() < 1e-4);
        assert!((a[0][0] as f64 - 2.0 * u.tanh()).abs() < 1e-6);
    }

    #[test]
    fn semantic_rewards_are_scored_in_batches_and_written_into_the_replay_ring() {
        use crate::algo::{Agent, Progress};
        use crate::env::drive::{Semantic, PENALTY};
        // 330 steps into a 150-slot ring, scored in batches of 64: the ring wraps twice and the
        // third batch straddles its end; learning starts at step 100, so updates run after batches.
        let cfg = SacConfig {
            semantic_reward: "clg".into(),
            semantic_batch: 64,
            buffer_size: 150,
            batch_size: 8,
            learning_starts: 100,
            steps_per_iteration: 330,
            hidden: vec![16],
            ..Default::default()
        };
        let mut envs = VecEnv::make("drive", 1, 4).unwrap();
        let mut sac = Sac::new(cfg, &envs, 0, &Device::Cpu).unwrap();
        let stats = sac.iterate(&mut envs, Progress { global_step: 0, total_steps: 330 }).unwrap();
        assert!(sac.unscored.is_empty(), "every transition is scored by the end of the iteration");
        let idx: Vec<usize> = (0..150).collect();
        let b = sac.buffer.gather(&idx, &Device::Cpu).unwrap();
        let (rew, next, done) =
            (b.rew.to_vec1::<f32>().unwrap(), b.next_obs.to_vec2::<f32>().unwrap(), b.done.to_vec1::<f32>().unwrap());
        // on this road a terminal transition is the penalty and nothing else is negative
        let env_rewards: Vec<f64> = done.iter().map(|&d| if d > 0.0 { PENALTY } else { 0.0 }).collect();
        let (want, scores) = Semantic::new(0).rewards(&next, &env_rewards);
        for (got, want) in rew.iter().zip(&want) {
            assert!((*got as f64 - want).abs() < 1e-5, "{got} {want}");
        }
        assert!(scores.iter().any(|&s| s < 0.5), "some stored frames are on a collision course: {scores:?}");
        let logged = stats.metrics.iter().find(|(k, _)| k == "clg_score").unwrap().1;
        assert!((0.0..=1.0).contains(&logged));
        // the environment's own reward is gone wherever the score differs from a clear road
        let env = SacConfig {
            steps_per_iteration: 330,
            buffer_size: 150,
            hidden: vec![16],
            learning_starts: 100,
            batch_size: 8,
            ..Default::default()
        };
        let mut envs = VecEnv::make("drive", 1, 4).unwrap();
        let mut plain = Sac::new(env, &envs, 0, &Device::Cpu).unwrap();
        plain.iterate(&mut envs, Progress { global_step: 0, total_steps: 330 }).unwrap();
        let plain_rew = plain.buffer.gather(&idx, &Device::Cpu).unwrap().rew.to_vec1::<f32>().unwrap();
        assert_ne!(plain_rew, rew);
    }

    #[test]
    fn alpha_rises_when_entropy_is_below_target_and_falls_above() {
        let d = Device::Cpu;
        let step = |lp: &[f32]| {
            let log_alpha = Var::from_tensor(&Tensor::new(&[0.0f32], &d).unwrap()).unwrap();
            let mut opt = AdamW::new(vec![("a".into(), log_alpha.clone())], AdamWConfig::default()).unwrap();
            let loss = alpha_loss(log_alpha.as_tensor(), &Tensor::new(lp, &d).unwrap(), -1.0).unwrap();
            opt.step(&loss.backward().unwrap(), 0.1, 0.0).unwrap();
            log_alpha.as_tensor().to_vec1::<f32>().unwrap()[0]
        };
        // entropy −mean(log π) = −2.5 below the target −1 → α up; 2.5 above it → α down
        assert!(step(&[3.0, 2.0]) > 0.0);
        assert!(step(&[-3.0, -2.0]) < 0.0);
    }
}
