//! PPO (clip) for control — "Proximal Policy Optimization Algorithms" (Schulman et al., 2017), as in
//! CleanRL's ppo.py / ppo_continuous_action.py: separate actor and critic MLPs (orthogonal init,
//! gains √2 / 0.01 / 1), rollouts of `num_steps` × `num_envs`, GAE(λ) bootstrapping through
//! time-limit truncations, per-minibatch advantage normalisation, the clipped surrogate
//! ([`oxrl_core::loss::ppo_clip`]), the clipped value loss, an entropy bonus, linear learning-rate
//! annealing and global gradient-norm clipping. Continuous actions use a diagonal Gaussian with a
//! state-independent log-std, clipped to the action bounds when sent to the environment.

use super::{box_bounds, linear_schedule, load_opt, load_state, save_opt, save_state, Agent, IterStats, Progress};
use crate::dist;
use crate::env::{Action, VecEnv};
use crate::gae::gae;
use crate::nn::{rows, Activation, Init, Mlp, Params};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use oxrl_core::loss::ppo_clip::{ppo_clip_loss, PpoClip};
use oxrl_core::loss::value_loss::clipped_value_loss;
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_core::seed::Rng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `[ppo]` — defaults are CleanRL's ppo.py.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PpoConfig {
    pub num_steps: usize,
    pub lr: f64,
    pub anneal_lr: bool,
    pub gamma: f64,
    pub gae_lambda: f64,
    pub num_minibatches: usize,
    pub update_epochs: usize,
    pub norm_adv: bool,
    pub clip_coef: f64,
    pub clip_vloss: bool,
    pub ent_coef: f64,
    pub vf_coef: f64,
    pub max_grad_norm: f64,
    pub hidden: Vec<usize>,
    pub activation: String,
    /// Initial log-std of the Gaussian policy (continuous actions).
    pub init_log_std: f64,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            num_steps: 128,
            lr: 2.5e-4,
            anneal_lr: true,
            gamma: 0.99,
            gae_lambda: 0.95,
            num_minibatches: 4,
            update_epochs: 4,
            norm_adv: true,
            clip_coef: 0.2,
            clip_vloss: true,
            ent_coef: 0.01,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            hidden: vec![64, 64],
            activation: "tanh".into(),
            init_log_std: 0.0,
        }
    }
}

impl PpoConfig {
    pub fn validate(&self) -> Result<()> {
        if self.num_steps == 0 || self.num_minibatches == 0 || self.update_epochs == 0 {
            bail!("ppo: num_steps, num_minibatches and update_epochs must be positive");
        }
        if !(0.0..=1.0).contains(&self.gamma) || !(0.0..=1.0).contains(&self.gae_lambda) {
            bail!("ppo: gamma and gae_lambda must be in [0, 1]");
        }
        if self.lr <= 0.0 || self.clip_coef <= 0.0 {
            bail!("ppo: lr and clip_coef must be positive");
        }
        Activation::parse(&self.activation).context("ppo.activation")?;
        Ok(())
    }
}

pub struct Ppo {
    pub cfg: PpoConfig,
    actor: Mlp,
    critic: Mlp,
    log_std: Option<Var>,
    params: Params,
    opt: AdamW,
    rng: Rng,
    dev: Device,
    n_actions: usize,
    bounds: Option<(Vec<f32>, Vec<f32>)>,
    num_envs: usize,
    iteration: u64,
}

impl Ppo {
    pub fn new(cfg: PpoConfig, envs: &VecEnv, seed: u64, dev: &Device) -> Result<Self> {
        cfg.validate()?;
        let obs_dim = envs.observation_space().dim();
        let aspace = envs.action_space();
        let act = Activation::parse(&cfg.activation)?;
        let mut init_rng = oxrl_core::seed::rng(seed, "ppo-init", 0);
        let s2 = std::f64::consts::SQRT_2;
        let n_actions = aspace.size();
        let mut sizes = vec![obs_dim];
        sizes.extend(&cfg.hidden);
        let actor = Mlp::new(
            &[sizes.clone(), vec![n_actions]].concat(),
            act,
            Init::Orthogonal { gain: s2, last_gain: 0.01 },
            &mut init_rng,
            dev,
        )?;
        let critic = Mlp::new(
            &[sizes, vec![1]].concat(),
            act,
            Init::Orthogonal { gain: s2, last_gain: 1.0 },
            &mut init_rng,
            dev,
        )?;
        let (log_std, bounds) = if aspace.is_discrete() {
            (None, None)
        } else {
            (
                Some(Var::from_tensor(&Tensor::full(cfg.init_log_std as f32, (1, n_actions), dev)?)?),
                Some(box_bounds(&aspace)?),
            )
        };
        let mut vars = actor.vars("actor");
        vars.extend(critic.vars("critic"));
        if let Some(ls) = &log_std {
            vars.push(("actor.log_std".into(), ls.clone()));
        }
        let params = Params(vars);
        let opt = AdamW::new(params.vars(), AdamWConfig { eps: 1e-5, ..Default::default() })?;
        Ok(Self {
            cfg,
            actor,
            critic,
            log_std,
            params,
            opt,
            rng: Rng::seed_from_u64(oxrl_core::seed::derive(seed, "ppo", 0)),
            dev: dev.clone(),
            n_actions,
            bounds,
            num_envs: envs.len(),
            iteration: 0,
        })
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    fn values(&self, obs: &Tensor) -> Result<Tensor> {
        Ok(self.critic.forward(obs)?.squeeze(1)?)
    }

    /// Log-probabilities (B) and entropies (B) of `actions` under the current policy.
    fn log_prob_entropy(&self, obs: &Tensor, actions: &Tensor) -> Result<(Tensor, Tensor)> {
        let out = self.actor.forward(obs)?;
        match &self.log_std {
            None => Ok((dist::categorical_log_prob(&out, actions)?, dist::categorical_entropy(&out)?)),
            Some(ls) => {
                let lsb = ls.as_tensor().broadcast_as(out.shape())?;
                Ok((dist::gaussian_log_prob(&out, &lsb, actions)?, dist::gaussian_entropy(&lsb, obs.dim(0)?)?))
            }
        }
    }

    /// Sample (or pick the mode of) actions: returns the stored action rows and log-probs.
    fn sample(&mut self, obs: &Tensor, deterministic: bool) -> Result<(Vec<Vec<f32>>, Vec<f32>)> {
        let out = self.actor.forward(obs)?;
        let b = obs.dim(0)?;
        match &self.log_std {
            None => {
                let a = if deterministic {
                    dist::argmax_rows(&out)?
                } else {
                    dist::categorical_sample(&out, &mut self.rng)?
                };
                let at = Tensor::from_vec(a.iter().map(|&x| x as u32).collect::<Vec<_>>(), b, &self.dev)?;
                let lp = dist::categorical_log_prob(&out, &at)?.to_vec1::<f32>()?;
                Ok((a.into_iter().map(|x| vec![x as f32]).collect(), lp))
            }
            Some(ls) => {
                let lsb = ls.as_tensor().broadcast_as(out.shape())?;
                let x = if deterministic {
                    out.clone()
                } else {
                    let eps = dist::normal_noise((b, self.n_actions), &mut self.rng, &self.dev)?;
                    (&out + (lsb.exp()? * eps)?)?
                };
                let lp = dist::gaussian_log_prob(&out, &lsb, &x)?.to_vec1::<f32>()?;
                Ok((x.to_vec2::<f32>()?, lp))
            }
        }
    }

    fn to_action(&self, row: &[f32]) -> Action {
        match &self.bounds {
            None => Action::Discrete(row[0] as usize),
            Some((lo, hi)) => {
                Action::Continuous(row.iter().zip(lo.iter().zip(hi)).map(|(x, (l, h))| x.clamp(*l, *h)).collect())
            }
        }
    }

    fn actions_tensor(&self, rows_: &[Vec<f32>]) -> Result<Tensor> {
        if self.log_std.is_none() {
            Ok(Tensor::from_vec(rows_.iter().map(|r| r[0] as u32).collect::<Vec<_>>(), rows_.len(), &self.dev)?)
        } else {
            rows(rows_, &self.dev)
        }
    }
}

fn mean_std(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    // unbiased, as torch.std
    let v = x.iter().map(|a| (a - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, v.sqrt())
}

impl Agent for Ppo {
    fn name(&self) -> &'static str {
        "ppo"
    }

    fn iterate(&mut self, envs: &mut VecEnv, progress: Progress) -> Result<IterStats> {
        let (t_len, n) = (self.cfg.num_steps, envs.len());
        if n != self.num_envs {
            bail!("ppo was built for {} environments, got {n}", self.num_envs);
        }
        let mut stats = IterStats::default();
        let (mut obs_buf, mut act_buf, mut logp_buf) = (Vec::new(), Vec::new(), Vec::new());
        let (mut rewards, mut values, mut dones) = (Vec::new(), Vec::new(), Vec::new());
        // 1. rollout
        for _ in 0..t_len {
            let obs = envs.obs().to_vec();
            let ot = rows(&obs, &self.dev)?;
            let v = self.values(&ot)?.to_vec1::<f32>()?;
            let (acts, lp) = self.sample(&ot, false)?;
            let actions: Vec<Action> = acts.iter().map(|r| self.to_action(r)).collect();
            let step = envs.step(&actions)?;
            let mut r: Vec<f64> = step.rewards.clone();
            // bootstrap through time-limit truncations from the episode's real last observation
            let trunc: Vec<usize> = (0..n).filter(|&i| step.truncated[i] && !step.terminated[i]).collect();
            if !trunc.is_empty() {
                let fin: Vec<Vec<f32>> = trunc.iter().map(|&i| step.final_obs[i].clone().unwrap()).collect();
                let fv = self.values(&rows(&fin, &self.dev)?)?.to_vec1::<f32>()?;
                for (k, &i) in trunc.iter().enumerate() {
                    r[i] += self.cfg.gamma * fv[k] as f64;
                }
            }
            stats.episodes.extend(step.finished.iter().copied());
            dones.push((0..n).map(|i| step.terminated[i] || step.truncated[i]).collect::<Vec<_>>());
            obs_buf.extend(obs);
            act_buf.extend(acts);
            logp_buf.extend(lp);
            rewards.push(r);
            values.push(v.iter().map(|&x| x as f64).collect::<Vec<_>>());
        }
        stats.env_steps = (t_len * n) as u64;
        let last =
            self.values(&rows(envs.obs(), &self.dev)?)?.to_vec1::<f32>()?.iter().map(|&x| x as f64).collect::<Vec<_>>();
        let (adv, ret) = gae(&rewards, &values, &dones, &last, self.cfg.gamma, self.cfg.gae_lambda);
        // flatten time-major [t][i] → t·n + i, matching obs_buf
        let flat = |x: &[Vec<f64>]| x.iter().flatten().copied().collect::<Vec<f64>>();
        let (adv, ret, val) = (flat(&adv), flat(&ret), flat(&values));

        // 2. update
        let total = t_len * n;
        let mb = (total / self.cfg.num_minibatches).max(1);
        self.iteration += 1;
        let num_iters = (progress.total_steps / total as u64).max(1) as f64;
        let lr = if self.cfg.anneal_lr {
            self.cfg.lr * linear_schedule(1.0, 0.0, num_iters, (self.iteration - 1) as f64).max(0.0)
        } else {
            self.cfg.lr
        };
        let clip = PpoClip { eps_low: self.cfg.clip_coef, eps_high: self.cfg.clip_coef, dual_clip: None };
        let mut idx: Vec<usize> = (0..total).collect();
        let (mut pg_sum, mut v_sum, mut ent_sum, mut kl_sum, mut cf_sum, mut gn_sum, mut k) =
            (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0usize);
        for _ in 0..self.cfg.update_epochs {
            idx.shuffle(&mut self.rng);
            for chunk in idx.chunks(mb) {
                let o = rows(&chunk.iter().map(|&i| obs_buf[i].clone()).collect::<Vec<_>>(), &self.dev)?;
                let a = self.actions_tensor(&chunk.iter().map(|&i| act_buf[i].clone()).collect::<Vec<_>>())?;
                let old_lp =
                    Tensor::from_vec(chunk.iter().map(|&i| logp_buf[i]).collect::<Vec<_>>(), chunk.len(), &self.dev)?;
                let mut a_mb: Vec<f64> = chunk.iter().map(|&i| adv[i]).collect();
                if self.cfg.norm_adv && a_mb.len() > 1 {
                    let (m, s) = mean_std(&a_mb);
                    a_mb.iter_mut().for_each(|x| *x = (*x - m) / (s + 1e-8));
                }
                let a_t = Tensor::from_vec(a_mb.iter().map(|&x| x as f32).collect::<Vec<_>>(), chunk.len(), &self.dev)?;
                let r_t =
                    Tensor::from_vec(chunk.iter().map(|&i| ret[i] as f32).collect::<Vec<_>>(), chunk.len(), &self.dev)?;
                let v_old =
                    Tensor::from_vec(chunk.iter().map(|&i| val[i] as f32).collect::<Vec<_>>(), chunk.len(), &self.dev)?;
                let (new_lp, ent) = self.log_prob_entropy(&o, &a)?;
                let new_v = self.values(&o)?;
                let ones = Tensor::ones(chunk.len(), DType::F32, &self.dev)?;
                let (pg, m) = ppo_clip_loss(&new_lp, &old_lp, &a_t, &ones, clip)?;
                let pg = pg.mean_all()?;
                let v_loss = if self.cfg.clip_vloss {
                    clipped_value_loss(&new_v, &v_old, &r_t, self.cfg.clip_coef)?.mean_all()?
                } else {
                    ((&new_v - &r_t)?.sqr()?.mean_all()? * 0.5)?
                };
                let ent = ent.mean_all()?;
                let loss = ((&pg - (&ent * self.cfg.ent_coef)?)? + (&v_loss * self.cfg.vf_coef)?)?;
                let grads = loss.backward()?;
                let info = self.opt.step(&grads, lr, self.cfg.max_grad_norm)?;
                pg_sum += pg.to_scalar::<f32>()? as f64;
                v_sum += v_loss.to_scalar::<f32>()? as f64;
                ent_sum += ent.to_scalar::<f32>()? as f64;
                kl_sum += m.approx_kl;
                cf_sum += m.clipfrac;
                gn_sum += info.grad_norm;
                k += 1;
            }
        }
        let kf = k as f64;
        let explained = oxrl_core::metrics::explained_variance(&ret, &val).unwrap_or(f64::NAN);
        stats.metrics = vec![
            ("lr".into(), lr),
            ("pg_loss".into(), pg_sum / kf),
            ("value_loss".into(), v_sum / kf),
            ("entropy".into(), ent_sum / kf),
            ("approx_kl".into(), kl_sum / kf),
            ("clipfrac".into(), cf_sum / kf),
            ("grad_norm".into(), gn_sum / kf),
            ("explained_variance".into(), explained),
        ];
        Ok(stats)
    }

    fn act(&mut self, obs: &[Vec<f32>], deterministic: bool) -> Result<Vec<Action>> {
        let (a, _) = self.sample(&rows(obs, &self.dev)?, deterministic)?;
        Ok(a.iter().map(|r| self.to_action(r)).collect())
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.params.save(&dir.join("model.safetensors"))?;
        save_opt(&self.opt, &dir.join("optimizer.safetensors"))?;
        save_state(dir, &self.rng, self.iteration)
    }

    fn load(&mut self, dir: &Path, with_state: bool) -> Result<()> {
        self.params.load_file(&dir.join("model.safetensors"))?;
        if with_state {
            load_opt(&mut self.opt, &dir.join("optimizer.safetensors"))?;
            self.iteration = load_state(dir, &mut self.rng)?;
        }
        Ok(())
    }
}
