//! IQL — "Offline Reinforcement Learning with Implicit Q-Learning" (Kostrikov et al., 2022), as in
//! the authors' code (ikostrikov/implicit_q_learning), on an offline dataset ([`crate::dataset`]):
//!
//! 1. V(s) by expectile regression on min(Q̄1, Q̄2)(s, a) − V(s) (τ = `expectile`);
//! 2. actor by advantage-weighted regression: −E[min(exp(β·(Q̄ − V)), 100)·log π(a|s)] on dataset
//!    actions (β = 0 is behaviour cloning);
//! 3. Q_i by regression to r + γ·(1 − terminal)·V(s') (MSE, or Huber with `q_huber_delta`);
//! 4. EMA_τ target Q. Order value → actor → critic → target, as the reference.
//!
//! `value_loss` swaps step 1's expectile for f-DVL's chi-square, total-variation or Gumbel loss
//! ([`super::dvl`]) — f-DVL is IQL with that loss and a Huber(20) critic. The actor is a Gaussian
//! with tanh-squashed state-dependent mean in the action bounds and a state-independent log-std;
//! evaluation acts with the mean. "Steps" of an offline run are gradient steps.

use super::dvl::ValueLoss;
use super::{
    box_bounds, load_opt, load_state, read_tensors, save_opt, save_state, strip_prefix, Agent, IterStats, Progress,
};
use crate::buffer::ReplayBuffer;
use crate::dataset::Dataset;
use crate::dist::gaussian_log_prob;
use crate::env::{Action, VecEnv};
use crate::nn::{rows, Activation, Init, Mlp, Params};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var};
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_core::seed::Rng;
use rand::{Rng as _, SeedableRng};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `[iql]` — defaults are the paper's locomotion settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IqlConfig {
    /// The offline dataset (.npz), relative to the working directory.
    pub dataset: String,
    pub expectile: f64,
    /// AWR inverse temperature β (0 = behaviour cloning).
    pub beta: f64,
    pub awr_clip: f64,
    pub tau: f64,
    pub gamma: f64,
    pub lr: f64,
    pub batch_size: usize,
    pub hidden: Vec<usize>,
    pub layer_norm: bool,
    /// `expectile` (IQL) or an f-DVL loss: `chi_square`, `total_variation`, `gumbel`.
    pub value_loss: String,
    /// f-DVL's λ (temperature / mixing).
    pub dvl_lambda: f64,
    pub max_clip: f64,
    /// Huber δ for the critic (0 = MSE; f-DVL uses 20).
    pub q_huber_delta: f64,
    /// Cosine decay of the actor's learning rate over the run.
    pub actor_cosine: bool,
    /// Rewards are used as r·scale + shift.
    pub reward_scale: f64,
    pub reward_shift: f64,
    pub steps_per_iteration: u64,
    /// Learn the reward from synthetic segment preferences instead of using the dataset's rewards
    /// (`preferences.pairs > 0`).
    pub preferences: crate::pref::PrefConfig,
    /// ReCOIL imitation (reward-free) when `recoil.expert_dataset` is set.
    pub recoil: RecoilConfig,
}

/// `[iql.recoil]` — ReCOIL: "Dual RL: Unification and New Methods for Reinforcement and Imitation
/// Learning" (Sikchi et al., 2024). INFERRED from the public implementation the spec read: batches
/// are half expert, half a mixture (`mix_expert` expert share, the rest from `iql.dataset`); expert
/// Q values are regressed to `expert_target`, mixture Q to `reward` + γ·mask·V(s') (terminal
/// transitions to `terminal_value`); V is the implicit maximiser (the value loss) on the mixture
/// half and the actor AWR on the mixture half. No rewards are read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecoilConfig {
    /// The expert dataset (.npz); empty = ReCOIL off.
    pub expert_dataset: String,
    pub mix_expert: f64,
    pub expert_target: f64,
    pub reward: f64,
    pub terminal_value: f64,
}

impl Default for RecoilConfig {
    fn default() -> Self {
        Self {
            expert_dataset: String::new(),
            mix_expert: 0.5,
            expert_target: 200.0,
            reward: -2.0,
            terminal_value: -200.0,
        }
    }
}

impl Default for IqlConfig {
    fn default() -> Self {
        Self {
            dataset: String::new(),
            expectile: 0.7,
            beta: 3.0,
            awr_clip: 100.0,
            tau: 0.005,
            gamma: 0.99,
            lr: 3e-4,
            batch_size: 256,
            hidden: vec![256, 256],
            layer_norm: false,
            value_loss: "expectile".into(),
            dvl_lambda: 1.0,
            max_clip: 5.0,
            q_huber_delta: 0.0,
            actor_cosine: true,
            reward_scale: 1.0,
            reward_shift: 0.0,
            steps_per_iteration: 1000,
            preferences: crate::pref::PrefConfig::default(),
            recoil: RecoilConfig::default(),
        }
    }
}

impl IqlConfig {
    pub fn validate(&self) -> Result<()> {
        if self.dataset.is_empty() {
            bail!("iql.dataset: the offline dataset (.npz) is required (make one with `oxrl control collect`)");
        }
        if !(0.0..1.0).contains(&self.expectile) || self.expectile <= 0.0 {
            bail!("iql.expectile: must be in (0, 1)");
        }
        if self.batch_size == 0 || self.steps_per_iteration == 0 || self.beta < 0.0 || self.dvl_lambda <= 0.0 {
            bail!("iql: batch_size and steps_per_iteration must be positive, beta ≥ 0, dvl_lambda > 0");
        }
        ValueLoss::parse(&self.value_loss, self.expectile, self.dvl_lambda, self.max_clip).context("iql.value_loss")?;
        Ok(())
    }
}

pub struct Iql {
    pub cfg: IqlConfig,
    actor: Mlp,
    log_std: Var,
    actor_params: Params,
    q1: Mlp,
    q2: Mlp,
    q_params: Params,
    q1t: Mlp,
    q2t: Mlp,
    qt_params: Params,
    v: Mlp,
    v_params: Params,
    actor_opt: AdamW,
    q_opt: AdamW,
    v_opt: AdamW,
    /// The dataset, loaded when training starts (evaluating a checkpoint does not need it).
    data: Option<ReplayBuffer>,
    obs_dim: usize,
    act_dim: usize,
    /// Pairwise accuracy of the learned reward on fresh teacher pairs (preference mode).
    pref_accuracy: Option<f64>,
    /// ReCOIL's expert transitions.
    expert: Option<ReplayBuffer>,
    value_loss: ValueLoss,
    rng: Rng,
    dev: Device,
    scale: Tensor,
    bias: Tensor,
    step: u64,
}

/// ReCOIL's mixture-half critic target: `reward` + γ·V(s'), or `terminal_value` at terminals
/// (detached).
pub fn recoil_target(v_next: &Tensor, done: &Tensor, gamma: f64, rc: &RecoilConfig) -> Result<Tensor> {
    let boot = ((v_next * gamma)? + rc.reward)?;
    let term = Tensor::full(rc.terminal_value as f32, done.shape(), done.device())?;
    Ok(done.gt(0.5)?.where_cond(&term, &boot)?.detach())
}

/// Huber loss with threshold δ (elementwise): ½d² inside, δ(|d| − ½δ) outside.
pub fn huber(d: &Tensor, delta: f64) -> Result<Tensor> {
    let a = d.abs()?;
    let inside = a.le(delta)?;
    Ok(inside.where_cond(&(d.sqr()? * 0.5)?, &((a - 0.5 * delta)? * delta)?)?)
}

impl Iql {
    pub fn new(cfg: IqlConfig, envs: &VecEnv, seed: u64, dev: &Device) -> Result<Self> {
        cfg.validate()?;
        let (lo, hi) = box_bounds(&envs.action_space()).context("iql")?;
        let act_dim = lo.len();
        let obs_dim = envs.observation_space().dim();
        let mut init = oxrl_core::seed::rng(seed, "iql-init", 0);
        let mk = |inp: usize, out: usize, init: &mut Rng| -> Result<Mlp> {
            let mut s = vec![inp];
            s.extend(&cfg.hidden);
            s.push(out);
            let mut m = Mlp::new(&s, Activation::Relu, Init::Uniform, init, dev)?;
            m.layer_norm = cfg.layer_norm;
            Ok(m)
        };
        let actor = mk(obs_dim, act_dim, &mut init)?;
        let q1 = mk(obs_dim + act_dim, 1, &mut init)?;
        let q2 = mk(obs_dim + act_dim, 1, &mut init)?;
        let q1t = mk(obs_dim + act_dim, 1, &mut init)?;
        let q2t = mk(obs_dim + act_dim, 1, &mut init)?;
        let v = mk(obs_dim, 1, &mut init)?;
        let log_std = Var::from_tensor(&Tensor::zeros((1, act_dim), candle_core::DType::F32, dev)?)?;
        let mut av = actor.vars("actor");
        av.push(("actor.log_std".into(), log_std.clone()));
        let actor_params = Params(av);
        let q_params = Params([q1.vars("q1"), q2.vars("q2")].concat());
        let qt_params = Params([q1t.vars("q1"), q2t.vars("q2")].concat());
        qt_params.copy_from(&q_params)?;
        let v_params = Params(v.vars("v"));
        let scale: Vec<f32> = lo.iter().zip(&hi).map(|(l, h)| (h - l) / 2.0).collect();
        let bias: Vec<f32> = lo.iter().zip(&hi).map(|(l, h)| (h + l) / 2.0).collect();
        Ok(Self {
            value_loss: ValueLoss::parse(&cfg.value_loss, cfg.expectile, cfg.dvl_lambda, cfg.max_clip)?,
            actor_opt: AdamW::new(actor_params.vars(), AdamWConfig::default())?,
            q_opt: AdamW::new(q_params.vars(), AdamWConfig::default())?,
            v_opt: AdamW::new(v_params.vars(), AdamWConfig::default())?,
            actor,
            log_std,
            actor_params,
            q1,
            q2,
            q_params,
            q1t,
            q2t,
            qt_params,
            v,
            v_params,
            data: None,
            obs_dim,
            act_dim,
            pref_accuracy: None,
            expert: None,
            rng: Rng::seed_from_u64(oxrl_core::seed::derive(seed, "iql", 0)),
            dev: dev.clone(),
            scale: Tensor::from_vec(scale, (1, act_dim), dev)?,
            bias: Tensor::from_vec(bias, (1, act_dim), dev)?,
            step: 0,
            cfg,
        })
    }

    fn load_data(&mut self) -> Result<()> {
        let data = Dataset::load(Path::new(&self.cfg.dataset)).context("iql.dataset")?;
        if data.obs_dim != self.obs_dim || data.act_dim != self.act_dim {
            bail!(
                "iql.dataset: {} has observations of {} and actions of {}, the environment {} and {}",
                self.cfg.dataset,
                data.obs_dim,
                data.act_dim,
                self.obs_dim,
                self.act_dim
            );
        }
        let data = if self.cfg.preferences.pairs > 0 {
            // preference-based: a Bradley–Terry reward model from teacher-labelled segment pairs
            let pc = self.cfg.preferences.clone();
            let pairs = crate::pref::teacher_pairs(&data, pc.pairs, pc.segment_length, &mut self.rng)?;
            let mut rm =
                crate::pref::RewardModel::new(self.obs_dim, self.act_dim, &pc.hidden, &mut self.rng, &self.dev)?;
            rm.fit(&data, &pairs, &pc, &mut self.rng, &self.dev)?;
            self.pref_accuracy = Some(rm.accuracy(
                &data,
                &crate::pref::teacher_pairs(&data, 500, pc.segment_length, &mut self.rng)?,
                pc.segment_length,
                &self.dev,
            )?);
            rm.relabel(&data, &self.dev)?
        } else {
            data
        };
        let mut buf = data.to_buffer()?;
        let (scale, shift) = (self.cfg.reward_scale, self.cfg.reward_shift);
        if scale != 1.0 || shift != 0.0 {
            buf.map_rewards(|r| r * scale + shift);
        }
        self.data = Some(buf);
        if !self.cfg.recoil.expert_dataset.is_empty() {
            let e = Dataset::load(Path::new(&self.cfg.recoil.expert_dataset)).context("iql.recoil.expert_dataset")?;
            if e.obs_dim != self.obs_dim || e.act_dim != self.act_dim {
                bail!("iql.recoil.expert_dataset: shapes differ from the environment's");
            }
            self.expert = Some(e.to_buffer()?);
        }
        Ok(())
    }

    fn mean_action(&self, obs: &Tensor) -> Result<Tensor> {
        Ok(self.actor.forward(obs)?.tanh()?.broadcast_mul(&self.scale)?.broadcast_add(&self.bias)?)
    }

    fn q(net: &Mlp, obs: &Tensor, act: &Tensor) -> Result<Tensor> {
        Ok(net.forward(&Tensor::cat(&[obs, act], 1)?)?.squeeze(1)?)
    }

    /// One IQL update; returns (value loss, actor loss, critic loss, mean advantage).
    /// One ReCOIL update (see [`RecoilConfig`]).
    fn update_recoil(&mut self, actor_lr: f64) -> Result<[f64; 4]> {
        let rc = self.cfg.recoil.clone();
        let half = (self.cfg.batch_size / 2).max(1);
        let expert = self.expert.as_ref().context("recoil: expert data not loaded")?;
        let data = self.data.as_ref().context("iql: dataset not loaded")?;
        let be = expert.sample(half, &mut self.rng, &self.dev)?;
        let n_e = (0..half).filter(|_| self.rng.random::<f64>() < rc.mix_expert).count();
        let m1 = expert.sample(n_e.max(1), &mut self.rng, &self.dev)?;
        let m2 = data.sample((half - n_e).max(1), &mut self.rng, &self.dev)?;
        let cat = |a: &Tensor, b: &Tensor| Tensor::cat(&[a, b], 0);
        let (obs, act, next, done) = (
            cat(&m1.obs, &m2.obs)?,
            cat(&m1.act, &m2.act)?,
            cat(&m1.next_obs, &m2.next_obs)?,
            cat(&m1.done, &m2.done)?,
        );
        let qt = Self::q(&self.q1t, &obs, &act)?.minimum(&Self::q(&self.q2t, &obs, &act)?)?.detach();
        // value: implicit maximiser on the mixture
        let v = self.v.forward(&obs)?.squeeze(1)?;
        let v_loss = self.value_loss.mean(&(&qt - &v)?)?;
        self.v_opt.step(&v_loss.backward()?, self.cfg.lr, 0.0)?;
        // actor: AWR on the mixture
        let v_new = self.v.forward(&obs)?.squeeze(1)?.detach();
        let adv = (&qt - &v_new)?;
        let w = crate::blocks::awr_weight(&adv, self.cfg.beta, self.cfg.awr_clip)?;
        let ls = self.log_std.as_tensor().clamp(-5.0, 2.0)?.broadcast_as(act.shape())?;
        let a_loss = (w * gaussian_log_prob(&self.mean_action(&obs)?, &ls, &act)?)?.mean_all()?.neg()?;
        self.actor_opt.step(&a_loss.backward()?, actor_lr, 0.0)?;
        // critic: expert Q → expert_target; mixture Q → reward + γ·mask·V(s') (terminal_value at terminals)
        let y = recoil_target(&self.v.forward(&next)?.squeeze(1)?, &done, self.cfg.gamma, &rc)?;
        let y_e = Tensor::full(rc.expert_target as f32, be.rew.shape(), &self.dev)?;
        let mse = |q: Tensor, t: &Tensor| -> Result<Tensor> { Ok((q - t)?.sqr()?.mean_all()?) };
        let q_loss = ((mse(Self::q(&self.q1, &obs, &act)?, &y)? + mse(Self::q(&self.q2, &obs, &act)?, &y)?)?
            + (mse(Self::q(&self.q1, &be.obs, &be.act)?, &y_e)? + mse(Self::q(&self.q2, &be.obs, &be.act)?, &y_e)?)?)?;
        self.q_opt.step(&q_loss.backward()?, self.cfg.lr, 0.0)?;
        self.qt_params.ema_from(&self.q_params, self.cfg.tau)?;
        let s = |t: &Tensor| -> Result<f64> { Ok(t.to_scalar::<f32>()? as f64) };
        Ok([s(&v_loss)?, s(&a_loss)?, s(&q_loss)? / 4.0, s(&adv.mean_all()?)?])
    }

    fn update(&mut self, actor_lr: f64) -> Result<[f64; 4]> {
        if self.expert.is_some() {
            return self.update_recoil(actor_lr);
        }
        let b = self.data.as_ref().context("iql: dataset not loaded")?.sample(
            self.cfg.batch_size,
            &mut self.rng,
            &self.dev,
        )?;
        let qt = Self::q(&self.q1t, &b.obs, &b.act)?.minimum(&Self::q(&self.q2t, &b.obs, &b.act)?)?.detach();
        // 1. value
        let v = self.v.forward(&b.obs)?.squeeze(1)?;
        let v_loss = self.value_loss.mean(&(&qt - &v)?)?;
        self.v_opt.step(&v_loss.backward()?, self.cfg.lr, 0.0)?;
        // 2. actor (AWR with the updated value)
        let v_new = self.v.forward(&b.obs)?.squeeze(1)?.detach();
        let adv = (&qt - &v_new)?;
        let w = crate::blocks::awr_weight(&adv, self.cfg.beta, self.cfg.awr_clip)?;
        let ls = self.log_std.as_tensor().clamp(-5.0, 2.0)?.broadcast_as(b.act.shape())?;
        let lp = gaussian_log_prob(&self.mean_action(&b.obs)?, &ls, &b.act)?;
        let a_loss = (w * lp)?.mean_all()?.neg()?;
        self.actor_opt.step(&a_loss.backward()?, actor_lr, 0.0)?;
        // 3. critic
        let mask = (b.done.neg()? + 1.0)?;
        let y = (&b.rew + ((self.v.forward(&b.next_obs)?.squeeze(1)? * mask)? * self.cfg.gamma)?)?.detach();
        let per = |q: Tensor| -> Result<Tensor> {
            let d = (q - &y)?;
            Ok(if self.cfg.q_huber_delta > 0.0 {
                huber(&d, self.cfg.q_huber_delta)?.mean_all()?
            } else {
                d.sqr()?.mean_all()?
            })
        };
        let q_loss = (per(Self::q(&self.q1, &b.obs, &b.act)?)? + per(Self::q(&self.q2, &b.obs, &b.act)?)?)?;
        self.q_opt.step(&q_loss.backward()?, self.cfg.lr, 0.0)?;
        // 4. target
        self.qt_params.ema_from(&self.q_params, self.cfg.tau)?;
        let s = |t: &Tensor| -> Result<f64> { Ok(t.to_scalar::<f32>()? as f64) };
        Ok([s(&v_loss)?, s(&a_loss)?, s(&q_loss)? / 2.0, s(&adv.mean_all()?)?])
    }
}

impl Agent for Iql {
    fn name(&self) -> &'static str {
        "iql"
    }

    fn iterate(&mut self, _envs: &mut VecEnv, progress: Progress) -> Result<IterStats> {
        if self.data.is_none() {
            self.load_data()?;
        }
        let mut sums = [0.0; 4];
        let n = self.cfg.steps_per_iteration.min(progress.total_steps.saturating_sub(progress.global_step)).max(1);
        let mut lr = self.cfg.lr;
        for _ in 0..n {
            lr = if self.cfg.actor_cosine {
                let frac = (self.step as f64 / progress.total_steps.max(1) as f64).min(1.0);
                self.cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos())
            } else {
                self.cfg.lr
            };
            let m = self.update(lr)?;
            self.step += 1;
            for (s, v) in sums.iter_mut().zip(m) {
                *s += v;
            }
        }
        let k = n as f64;
        let mut extra = Vec::new();
        if let Some(a) = self.pref_accuracy {
            extra.push(("reward_model_accuracy".to_string(), a));
        }
        Ok(IterStats {
            env_steps: n,
            metrics: extra
                .into_iter()
                .chain(vec![
                    ("value_loss".into(), sums[0] / k),
                    ("actor_loss".into(), sums[1] / k),
                    ("qf_loss".into(), sums[2] / k),
                    ("advantage".into(), sums[3] / k),
                    ("actor_lr".into(), lr),
                ])
                .collect(),
            episodes: Vec::new(),
        })
    }

    fn act(&mut self, obs: &[Vec<f32>], _deterministic: bool) -> Result<Vec<Action>> {
        let a = self.mean_action(&rows(obs, &self.dev)?)?;
        Ok(a.to_vec2::<f32>()?.into_iter().map(Action::Continuous).collect())
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.actor_params.save(&dir.join("model.safetensors"))?;
        let mut critic = self.q_params.tensors();
        critic.extend(self.qt_params.tensors().into_iter().map(|(k, v)| (format!("target.{k}"), v)));
        critic.extend(self.v_params.tensors());
        candle_core::safetensors::save(&critic, dir.join("critic.safetensors"))?;
        save_opt(&self.actor_opt, &dir.join("optimizer_actor.safetensors"))?;
        save_opt(&self.q_opt, &dir.join("optimizer_q.safetensors"))?;
        save_opt(&self.v_opt, &dir.join("optimizer_v.safetensors"))?;
        save_state(dir, &self.rng, self.step)
    }

    fn load(&mut self, dir: &Path, with_state: bool) -> Result<()> {
        self.actor_params.load_file(&dir.join("model.safetensors"))?;
        if with_state {
            let p = dir.join("critic.safetensors");
            let m = read_tensors(&p)?;
            self.q_params.load(&m, &p.display().to_string())?;
            self.v_params.load(&m, &p.display().to_string())?;
            let t = strip_prefix(&m, "target.");
            self.qt_params.load(&t, &p.display().to_string())?;
            load_opt(&mut self.actor_opt, &dir.join("optimizer_actor.safetensors"))?;
            load_opt(&mut self.q_opt, &dir.join("optimizer_q.safetensors"))?;
            load_opt(&mut self.v_opt, &dir.join("optimizer_v.safetensors"))?;
            self.step = load_state(dir, &mut self.rng)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recoil_target_uses_the_constant_reward_and_terminal_value() {
        let d = Device::Cpu;
        let v = Tensor::new(&[10.0f32, 10.0], &d).unwrap();
        let done = Tensor::new(&[0.0f32, 1.0], &d).unwrap();
        let y = recoil_target(&v, &done, 0.9, &RecoilConfig::default()).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(y, vec![-2.0 + 9.0, -200.0]);
    }

    #[test]
    fn huber_is_quadratic_inside_and_linear_outside() {
        let d = Tensor::new(&[-30.0f32, -1.0, 0.0, 2.0, 25.0], &Device::Cpu).unwrap();
        let h = huber(&d, 20.0).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(h, vec![20.0 * (30.0 - 10.0), 0.5, 0.0, 2.0, 20.0 * (25.0 - 10.0)]);
    }
}
