//! Group RL on episodes — GRPO ("DeepSeekMath", 2024) for control policies with binary success,
//! the learner of the policy-steering family (SRPO): each iteration draws `tasks_per_iteration`
//! tasks (an environment reset), rolls `group_size` episodes from each (the task's state is saved
//! once and restored before every episode), scores each episode (1 = success; the return where the
//! environment has no success flag), optionally reshapes the scores with SRPO's progress rewards
//! ([`super::srpo`]), normalises them within the group, A_i = (s_i − μ_g)/(σ_g + ε)
//! (`oxrl_core::advantage::Grpo`), and optimises the clipped surrogate over every step of every
//! episode for `epochs` passes, with an optional k3 KL penalty to the initial policy:
//!   L = −mean_t min(ρ_t A, clip(ρ_t, 1 ± ε) A) + β·mean_t (e^{ℓ_ref − ℓ} − (ℓ_ref − ℓ) − 1).

use super::lapo::{Decision, LapoConfig, LapoPolicy};
use super::srpo::{progress_rewards, SrpoConfig, TrajectoryEncoder};
use super::{load_opt, load_state, save_opt, save_state, Agent, IterStats, Progress};
use crate::dist::{argmax_rows, categorical_log_prob, categorical_sample};
use crate::env::{Action, Space, VecEnv};
use crate::nn::{rows, Activation, Init, Mlp, Params};
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use oxrl_core::advantage::{AdvantageEstimator, AdvantageInput};
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_core::seed::Rng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `[grpo]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpoConfig {
    pub lr: f64,
    pub group_size: usize,
    pub tasks_per_iteration: usize,
    pub epochs: usize,
    pub clip: f64,
    /// β of the k3 KL penalty to the initial policy (0 = none).
    pub kl_coef: f64,
    pub hidden: Vec<usize>,
    pub max_grad_norm: f64,
    /// `binary` (success 1 / 0) or `srpo` (progress rewards for failures).
    pub shaping: String,
    pub srpo: SrpoConfig,
    /// LAPO: the latent-reasoning policy ([`super::lapo`]) instead of the plain MLP.
    pub lapo: LapoConfig,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            group_size: 8,
            tasks_per_iteration: 16,
            epochs: 2,
            clip: 0.2,
            kl_coef: 0.0,
            hidden: vec![128],
            max_grad_norm: 1.0,
            shaping: "binary".into(),
            srpo: SrpoConfig::default(),
            lapo: LapoConfig::default(),
        }
    }
}

impl GrpoConfig {
    pub fn validate(&self) -> Result<()> {
        if self.group_size < 2 || self.tasks_per_iteration == 0 || self.epochs == 0 {
            bail!("grpo: group_size must be at least 2, tasks_per_iteration and epochs positive");
        }
        if !matches!(self.shaping.as_str(), "binary" | "srpo") {
            bail!("grpo.shaping: {:?} (binary or srpo)", self.shaping);
        }
        if self.clip <= 0.0 || self.kl_coef < 0.0 {
            bail!("grpo: clip must be positive and kl_coef non-negative");
        }
        if self.lapo.enabled && self.kl_coef > 0.0 {
            bail!("grpo.kl_coef: the KL penalty is not implemented for the LAPO policy (set 0)");
        }
        self.lapo.validate()?;
        self.srpo.validate()
    }
}

struct Episode {
    obs: Vec<Vec<f32>>,
    acts: Vec<usize>,
    logp: Vec<f32>,
    /// LAPO's decisions (latent steps and action), one per step.
    decisions: Vec<Decision>,
    success: bool,
    ret: f64,
    /// The environment's hidden parameter this episode (diagnostics only).
    hidden: Option<f64>,
}

pub struct Grpo {
    pub cfg: GrpoConfig,
    policy: Mlp,
    params: Params,
    reference: Mlp,
    ref_params: Params,
    opt: AdamW,
    encoder: TrajectoryEncoder,
    lapo: Option<LapoPolicy>,
    rng: Rng,
    dev: Device,
    global_step: u64,
}

impl Grpo {
    pub fn new(cfg: GrpoConfig, envs: &VecEnv, seed: u64, dev: &Device) -> Result<Self> {
        cfg.validate()?;
        let n_actions = match envs.action_space() {
            Space::Discrete(n) => n,
            Space::Box { .. } => bail!("grpo: needs a discrete action space"),
        };
        let obs_dim = envs.observation_space().dim();
        let mut sizes = vec![obs_dim];
        sizes.extend(&cfg.hidden);
        sizes.push(n_actions);
        let mut init = oxrl_core::seed::rng(seed, "grpo-init", 0);
        let orth = Init::Orthogonal { gain: 2f64.sqrt(), last_gain: 0.01 };
        let policy = Mlp::new(&sizes, Activation::Tanh, orth, &mut init, dev)?;
        let reference = Mlp::new(&sizes, Activation::Tanh, orth, &mut init, dev)?;
        let lapo = if cfg.lapo.enabled {
            Some(LapoPolicy::new(obs_dim, n_actions, &cfg.hidden, &cfg.lapo, &mut init, dev)?)
        } else {
            None
        };
        // the trained parameters: the MLP's, or LAPO's
        let params = match &lapo {
            Some(l) => l.params(),
            None => Params(policy.vars("policy")),
        };
        let ref_params = Params(reference.vars("policy"));
        ref_params.copy_from(&Params(policy.vars("policy")))?;
        let mut enc_rng = oxrl_core::seed::rng(seed, "srpo-encoder", 0);
        Ok(Self {
            encoder: TrajectoryEncoder::new(&cfg.srpo, obs_dim, &mut enc_rng),
            lapo,
            opt: AdamW::new(params.vars(), AdamWConfig::default())?,
            cfg,
            policy,
            params,
            reference,
            ref_params,
            rng: Rng::seed_from_u64(oxrl_core::seed::derive(seed, "grpo", 0)),
            dev: dev.clone(),
            global_step: 0,
        })
    }

    /// LAPO's warm-up: expert demonstrations (not counted as the learner's environment steps), then
    /// `warmup_steps` updates of action NLL + latent alignment ([`LapoPolicy::warmup_loss`]).
    fn warm_up(&mut self, envs: &mut VecEnv) -> Result<Vec<(String, f64)>> {
        let lc = self.cfg.lapo.clone();
        let demos = super::lapo::collect_demos(envs.envs[0].as_mut(), lc.warmup_episodes)?;
        let obs_dim = demos[0].obs[0].len();
        let world = super::lapo::WorldEncoder::new(obs_dim, lc.latent_dim, &mut self.rng);
        let index: Vec<(usize, usize)> =
            demos.iter().enumerate().flat_map(|(e, d)| (0..d.acts.len()).map(move |t| (e, t))).collect();
        let policy = self.lapo.as_ref().expect("LAPO");
        let (mut nll_acc, mut align_acc, mut n_acc) = (0.0, 0.0, 0usize);
        for step in 0..lc.warmup_steps {
            let picks: Vec<(usize, usize)> =
                (0..lc.warmup_batch).map(|_| index[rand::Rng::random_range(&mut self.rng, 0..index.len())]).collect();
            let obs: Vec<Vec<f32>> = picks.iter().map(|&(e, t)| demos[e].obs[t].clone()).collect();
            let acts: Vec<u32> = picks.iter().map(|&(e, t)| demos[e].acts[t] as u32).collect();
            let futures = (0..lc.max_latent)
                .map(|k| {
                    let f: Vec<Vec<f32>> = picks
                        .iter()
                        .map(|&(e, t)| world.embed(&demos[e].obs[(t + k + 1).min(demos[e].obs.len() - 1)]))
                        .collect();
                    rows(&f, &self.dev)
                })
                .collect::<Result<Vec<_>>>()?;
            let (loss, nll, align) =
                policy.warmup_loss(&rows(&obs, &self.dev)?, &Tensor::new(acts, &self.dev)?, &futures)?;
            self.opt.step(&loss.backward()?, lc.warmup_lr, self.cfg.max_grad_norm)?;
            // report the last tenth of the warm-up
            if step >= lc.warmup_steps - lc.warmup_steps.div_ceil(10) {
                nll_acc += nll;
                align_acc += align;
                n_acc += 1;
            }
        }
        let k = n_acc.max(1) as f64;
        Ok(vec![
            ("warmup_action_nll".into(), nll_acc / k),
            ("warmup_align".into(), align_acc / k),
            ("warmup_demo_steps".into(), index.len() as f64),
            ("warmup_demo_success".into(), demos.iter().filter(|d| d.success).count() as f64 / demos.len() as f64),
        ])
    }

    fn rollout(&mut self, env: &mut dyn crate::env::Env, first: &[f32]) -> Result<Episode> {
        let mut ep = Episode {
            obs: Vec::new(),
            acts: Vec::new(),
            logp: Vec::new(),
            decisions: Vec::new(),
            success: false,
            ret: 0.0,
            hidden: env.hidden_parameter(),
        };
        let mut obs = first.to_vec();
        loop {
            let (a, lp) = match &self.lapo {
                Some(l) => {
                    let d = l.decide(&obs, false, &mut self.rng)?;
                    let a = d.action;
                    ep.decisions.push(d);
                    // LAPO's behaviour log-probs are computed for the whole batch before updating
                    (a, 0.0)
                }
                None => {
                    let logits = self.policy.forward(&rows(std::slice::from_ref(&obs), &self.dev)?)?;
                    let a = categorical_sample(&logits, &mut self.rng)?[0];
                    let lp = categorical_log_prob(&logits, &Tensor::new(&[a as u32], &self.dev)?)?.to_vec1::<f32>()?[0];
                    (a, lp)
                }
            };
            let s = env.step(&Action::Discrete(a))?;
            ep.obs.push(obs);
            ep.acts.push(a);
            ep.logp.push(lp);
            ep.ret += s.reward;
            if s.terminated || s.truncated {
                ep.success = env.success().unwrap_or(false);
                ep.obs.push(s.obs);
                break;
            }
            obs = s.obs;
        }
        Ok(ep)
    }
}

impl Agent for Grpo {
    fn name(&self) -> &'static str {
        "grpo"
    }

    fn iterate(&mut self, envs: &mut VecEnv, _progress: Progress) -> Result<IterStats> {
        // LAPO's warm-up on expert demonstrations, once before the first RL update
        let warm = if self.lapo.is_some() && self.global_step == 0 && self.cfg.lapo.warmup_episodes > 0 {
            self.warm_up(envs)?
        } else {
            Vec::new()
        };
        let mut stats = IterStats::default();
        let g = self.cfg.group_size;
        let mut eps: Vec<Episode> = Vec::new();
        let mut groups = Vec::new();
        let n_envs = envs.len();
        for task in 0..self.cfg.tasks_per_iteration {
            let env = envs.envs[task % n_envs].as_mut();
            let first = env.reset();
            let state = env.save();
            for _ in 0..g {
                env.restore(&state)?;
                let ep = self.rollout(env, &first)?;
                stats.episodes.push((ep.ret, ep.acts.len()));
                eps.push(ep);
                groups.push(task);
            }
        }
        // scores: success (or return), reshaped per group by SRPO
        let mut scores: Vec<f64> =
            eps.iter().map(|e| if e.success || e.ret == 0.0 { e.success as u8 as f64 } else { e.ret }).collect();
        let latent_steps = |e: &Episode| {
            e.decisions.iter().map(|d| d.latents.len() as f64).sum::<f64>() / e.decisions.len().max(1) as f64
        };
        if self.lapo.is_some() && self.cfg.lapo.step_cost > 0.0 {
            for (s, e) in scores.iter_mut().zip(&eps) {
                *s -= self.cfg.lapo.step_cost * latent_steps(e);
            }
        }
        let mut mixed = 0usize;
        for t in 0..self.cfg.tasks_per_iteration {
            let idx: Vec<usize> = (t * g..(t + 1) * g).collect();
            let succ: Vec<bool> = idx.iter().map(|&i| eps[i].success).collect();
            mixed += (succ.iter().any(|s| *s) && !succ.iter().all(|s| *s)) as usize;
            if self.cfg.shaping == "srpo" {
                let emb: Vec<Vec<f32>> = idx.iter().map(|&i| self.encoder.embed(&eps[i].obs)).collect();
                for (k, r) in progress_rewards(&emb, &succ, self.cfg.srpo.scale).into_iter().enumerate() {
                    scores[idx[k]] = r;
                }
            }
        }
        let token_rewards: Vec<Vec<f64>> = scores.iter().map(|&s| vec![s]).collect();
        let adv = oxrl_core::advantage::Grpo.compute(&AdvantageInput {
            token_rewards: &token_rewards,
            groups: &groups,
            values: None,
            tasks: None,
        })?;
        // flatten every step of every episode
        let mut obs = Vec::new();
        let mut acts = Vec::new();
        let mut old = Vec::new();
        let mut a_t = Vec::new();
        for (e, a) in eps.iter().zip(&adv.advantages) {
            for t in 0..e.acts.len() {
                obs.push(e.obs[t].clone());
                acts.push(e.acts[t] as u32);
                old.push(e.logp[t]);
                a_t.push(a[0] as f32);
            }
        }
        let n = acts.len();
        self.global_step += n as u64;
        let x = rows(&obs, &self.dev)?;
        let at = Tensor::new(acts.as_slice(), &self.dev)?;
        let old_t = Tensor::new(old.as_slice(), &self.dev)?;
        let adv_t = Tensor::new(a_t.as_slice(), &self.dev)?;
        let ref_lp = if self.cfg.kl_coef > 0.0 {
            Some(categorical_log_prob(&self.reference.forward(&x)?, &at)?.detach())
        } else {
            None
        };
        let decisions: Vec<&Decision> = eps.iter().flat_map(|e| e.decisions.iter()).collect();
        // LAPO: the behaviour policy's (action, latent) log-probs, before any update
        let (old_t, old_latent) = match &self.lapo {
            Some(l) => {
                let (a, z) = l.log_probs(&x, &decisions)?;
                (a.detach(), Some(z.detach()))
            }
            None => (old_t, None),
        };
        let clip = self.cfg.clip;
        let surrogate = |lp: &Tensor, old: &Tensor| -> Result<(Tensor, Tensor)> {
            let ratio = (lp - old)?.exp()?;
            let s1 = (&ratio * &adv_t)?;
            let s2 = (ratio.clamp(1.0 - clip, 1.0 + clip)? * &adv_t)?;
            Ok((s1.minimum(&s2)?.mean_all()?, ratio))
        };
        let (mut loss_v, mut kl_v, mut clipped) = (0.0, 0.0, 0.0);
        for _ in 0..self.cfg.epochs {
            let (lp, latent_lp) = match &self.lapo {
                Some(l) => {
                    let (a, z) = l.log_probs(&x, &decisions)?;
                    (a, Some(z))
                }
                None => (categorical_log_prob(&self.policy.forward(&x)?, &at)?, None),
            };
            let (surr, ratio) = surrogate(&lp, &old_t)?;
            let mut loss = surr.neg()?;
            if let (Some(z), Some(old_z)) = (&latent_lp, &old_latent) {
                let (surr_z, _) = surrogate(z, old_z)?;
                loss = (loss - (surr_z * self.cfg.lapo.latent_weight)?)?;
            }
            clipped = ((&ratio - 1.0)?.abs()?.gt(self.cfg.clip)?.to_dtype(candle_core::DType::F32)?.mean_all()?)
                .to_scalar::<f32>()? as f64;
            if let Some(r) = &ref_lp {
                let d = (r - &lp)?;
                let k3 = ((d.exp()? - &d)? - 1.0)?.mean_all()?;
                kl_v = k3.to_scalar::<f32>()? as f64;
                loss = (loss + (k3 * self.cfg.kl_coef)?)?;
            }
            loss_v = loss.to_scalar::<f32>()? as f64;
            let grads = loss.backward()?;
            self.opt.step(&grads, self.cfg.lr, self.cfg.max_grad_norm)?;
        }
        let nep = eps.len() as f64;
        stats.env_steps = n as u64;
        stats.metrics = vec![
            ("success_rate".into(), eps.iter().filter(|e| e.success).count() as f64 / nep),
            ("shaped_reward".into(), scores.iter().sum::<f64>() / nep),
            ("mixed_groups".into(), mixed as f64 / self.cfg.tasks_per_iteration as f64),
            ("policy_loss".into(), loss_v),
            ("clip_fraction".into(), clipped),
        ];
        if self.cfg.kl_coef > 0.0 {
            stats.metrics.push(("kl".into(), kl_v));
        }
        stats.metrics.extend(warm);
        if self.lapo.is_some() {
            stats.metrics.push(("latent_steps".into(), eps.iter().map(latent_steps).sum::<f64>() / nep));
            // mean latent steps by the environment's hidden parameter (e.g. reversed controls)
            for (key, on) in [("latent_steps_hidden_on", true), ("latent_steps_hidden_off", false)] {
                let sel: Vec<f64> =
                    eps.iter().filter(|e| e.hidden.is_some_and(|h| (h != 0.0) == on)).map(latent_steps).collect();
                if !sel.is_empty() {
                    stats.metrics.push((key.into(), sel.iter().sum::<f64>() / sel.len() as f64));
                }
            }
        }
        Ok(stats)
    }

    fn act(&mut self, obs: &[Vec<f32>], deterministic: bool) -> Result<Vec<Action>> {
        if let Some(l) = &self.lapo {
            return obs
                .iter()
                .map(|o| Ok(Action::Discrete(l.decide(o, deterministic, &mut self.rng)?.action)))
                .collect();
        }
        let logits = self.policy.forward(&rows(obs, &self.dev)?)?;
        let a = if deterministic { argmax_rows(&logits)? } else { categorical_sample(&logits, &mut self.rng)? };
        Ok(a.into_iter().map(Action::Discrete).collect())
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.params.save(&dir.join("model.safetensors"))?;
        self.ref_params.save(&dir.join("reference.safetensors"))?;
        save_opt(&self.opt, &dir.join("optimizer.safetensors"))?;
        save_state(dir, &self.rng, self.global_step)
    }

    fn load(&mut self, dir: &Path, with_state: bool) -> Result<()> {
        self.params.load_file(&dir.join("model.safetensors"))?;
        if with_state {
            self.ref_params.load_file(&dir.join("reference.safetensors"))?;
            load_opt(&mut self.opt, &dir.join("optimizer.safetensors"))?;
            self.global_step = load_state(dir, &mut self.rng)?;
        }
        Ok(())
    }
}
