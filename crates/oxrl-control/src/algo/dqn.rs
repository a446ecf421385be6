//! DQN — "Human-level control through deep reinforcement learning" (Mnih et al., 2015), with the
//! double-Q target of "Deep Reinforcement Learning with Double Q-learning" (van Hasselt et al.,
//! 2016), as in CleanRL's dqn.py: ε-greedy with linear decay, uniform replay, TD target
//! y = r + γ·(1 − terminated)·max_a Q̄(s', a) (double: Q̄(s', argmax_a Q(s', a))), MSE loss, target
//! network updated every C steps by EMA_τ (τ = 1: hard copy). Truncated episodes keep their
//! bootstrap: only `terminated` zeroes it.

use super::{epsilon_greedy, linear_schedule, load_opt, load_state, save_opt, save_state, Agent, IterStats, Progress};
use crate::buffer::ReplayBuffer;
use crate::dist::argmax_rows;
use crate::env::{Action, VecEnv};
use crate::nn::{rows, Activation, Init, Mlp, Params};
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, D};
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_core::seed::Rng;
use rand::{Rng as _, SeedableRng};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `[dqn]` — defaults are CleanRL's dqn.py (CartPole).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DqnConfig {
    pub lr: f64,
    pub buffer_size: usize,
    pub gamma: f64,
    /// Target EMA coefficient at each target update (1 = hard copy).
    pub tau: f64,
    pub target_network_frequency: u64,
    pub batch_size: usize,
    pub start_e: f64,
    pub end_e: f64,
    /// Share of `total_steps` over which ε decays.
    pub exploration_fraction: f64,
    pub learning_starts: u64,
    pub train_frequency: u64,
    pub double_q: bool,
    pub hidden: Vec<usize>,
    /// Environment steps per trainer iteration (logging granularity).
    pub steps_per_iteration: u64,
    pub max_grad_norm: f64,
}

impl Default for DqnConfig {
    fn default() -> Self {
        Self {
            lr: 2.5e-4,
            buffer_size: 10_000,
            gamma: 0.99,
            tau: 1.0,
            target_network_frequency: 500,
            batch_size: 128,
            start_e: 1.0,
            end_e: 0.05,
            exploration_fraction: 0.5,
            learning_starts: 10_000,
            train_frequency: 10,
            double_q: false,
            hidden: vec![120, 84],
            steps_per_iteration: 1000,
            max_grad_norm: 0.0,
        }
    }
}

impl DqnConfig {
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0
            || self.buffer_size == 0
            || self.train_frequency == 0
            || self.target_network_frequency == 0
            || self.steps_per_iteration == 0
        {
            bail!("dqn: batch_size, buffer_size, train_frequency, target_network_frequency and steps_per_iteration must be positive");
        }
        if !(0.0..=1.0).contains(&self.tau) || !(0.0..=1.0).contains(&self.gamma) {
            bail!("dqn: tau and gamma must be in [0, 1]");
        }
        Ok(())
    }
}

/// The TD target r + γ·(1 − done)·Q̄(s', a*) with a* = argmax Q̄ (plain) or argmax Q (double).
pub fn td_target(
    rew: &Tensor,
    done: &Tensor,
    q_next_target: &Tensor,
    q_next_online: Option<&Tensor>,
    gamma: f64,
) -> Result<Tensor> {
    let next = match q_next_online {
        None => q_next_target.max(D::Minus1)?,
        Some(q) => {
            let a = q.argmax(D::Minus1)?.unsqueeze(1)?;
            q_next_target.gather(&a, 1)?.squeeze(1)?
        }
    };
    let mask = (done.neg()? + 1.0)?;
    Ok((rew + ((next * mask)? * gamma)?)?.detach())
}

pub struct Dqn {
    pub cfg: DqnConfig,
    q: Mlp,
    q_params: Params,
    target: Mlp,
    target_params: Params,
    opt: AdamW,
    buffer: ReplayBuffer,
    rng: Rng,
    dev: Device,
    n_actions: usize,
    global_step: u64,
}

impl Dqn {
    pub fn new(cfg: DqnConfig, envs: &VecEnv, seed: u64, dev: &Device) -> Result<Self> {
        cfg.validate()?;
        let n_actions = match envs.action_space() {
            crate::env::Space::Discrete(n) => n,
            _ => bail!("dqn needs a discrete action space"),
        };
        let obs_dim = envs.observation_space().dim();
        let mut sizes = vec![obs_dim];
        sizes.extend(&cfg.hidden);
        sizes.push(n_actions);
        let mut init = oxrl_core::seed::rng(seed, "dqn-init", 0);
        let q = Mlp::new(&sizes, Activation::Relu, Init::Uniform, &mut init, dev)?;
        let target = Mlp::new(&sizes, Activation::Relu, Init::Uniform, &mut init, dev)?;
        let q_params = Params(q.vars("q"));
        let target_params = Params(target.vars("q"));
        target_params.copy_from(&q_params)?;
        let opt = AdamW::new(q_params.vars(), AdamWConfig::default())?;
        let buffer = ReplayBuffer::new(cfg.buffer_size, obs_dim, 1)?;
        Ok(Self {
            cfg,
            q,
            q_params,
            target,
            target_params,
            opt,
            buffer,
            rng: Rng::seed_from_u64(oxrl_core::seed::derive(seed, "dqn", 0)),
            dev: dev.clone(),
            n_actions,
            global_step: 0,
        })
    }

    fn greedy(&self, obs: &[Vec<f32>]) -> Result<Vec<usize>> {
        argmax_rows(&self.q.forward(&rows(obs, &self.dev)?)?)
    }

    fn update(&mut self) -> Result<(f64, f64)> {
        let b = self.buffer.sample(self.cfg.batch_size, &mut self.rng, &self.dev)?;
        let q_next_t = self.target.forward(&b.next_obs)?;
        let q_next_o = if self.cfg.double_q { Some(self.q.forward(&b.next_obs)?.detach()) } else { None };
        let y = td_target(&b.rew, &b.done, &q_next_t, q_next_o.as_ref(), self.cfg.gamma)?;
        let a = b.act.to_dtype(DType::U32)?;
        let q = self.q.forward(&b.obs)?.gather(&a, 1)?.squeeze(1)?;
        let loss = (&q - &y)?.sqr()?.mean_all()?;
        let grads = loss.backward()?;
        self.opt.step(&grads, self.cfg.lr, self.cfg.max_grad_norm)?;
        Ok((loss.to_scalar::<f32>()? as f64, q.mean_all()?.to_scalar::<f32>()? as f64))
    }
}

impl Agent for Dqn {
    fn name(&self) -> &'static str {
        "dqn"
    }

    fn iterate(&mut self, envs: &mut VecEnv, progress: Progress) -> Result<IterStats> {
        let n = envs.len();
        let mut stats = IterStats::default();
        let (mut loss_sum, mut q_sum, mut k) = (0.0, 0.0, 0usize);
        let mut eps = 0.0;
        let mut taken = 0u64;
        while taken < self.cfg.steps_per_iteration {
            eps = linear_schedule(
                self.cfg.start_e,
                self.cfg.end_e,
                self.cfg.exploration_fraction * progress.total_steps as f64,
                self.global_step as f64,
            );
            let obs = envs.obs().to_vec();
            let greedy = self.greedy(&obs)?;
            let acts = epsilon_greedy(&greedy, eps, self.n_actions, &mut self.rng);
            let step = envs.step(&acts.iter().map(|&a| Action::Discrete(a)).collect::<Vec<_>>())?;
            for i in 0..n {
                let next = step.final_obs[i].as_ref().unwrap_or(&step.obs[i]);
                self.buffer.push(&obs[i], &[acts[i] as f32], step.rewards[i], next, step.terminated[i])?;
            }
            stats.episodes.extend(step.finished.iter().copied());
            // CleanRL counts one global step per vector step
            for _ in 0..n {
                self.global_step += 1;
                taken += 1;
                if self.global_step > self.cfg.learning_starts {
                    if self.global_step.is_multiple_of(self.cfg.train_frequency) {
                        let (l, q) = self.update()?;
                        loss_sum += l;
                        q_sum += q;
                        k += 1;
                    }
                    if self.global_step.is_multiple_of(self.cfg.target_network_frequency) {
                        self.target_params.ema_from(&self.q_params, self.cfg.tau)?;
                    }
                }
            }
        }
        stats.env_steps = taken;
        stats.metrics.push(("epsilon".into(), eps));
        if k > 0 {
            stats.metrics.push(("td_loss".into(), loss_sum / k as f64));
            stats.metrics.push(("q_values".into(), q_sum / k as f64));
        }
        Ok(stats)
    }

    fn act(&mut self, obs: &[Vec<f32>], deterministic: bool) -> Result<Vec<Action>> {
        let g = self.greedy(obs)?;
        Ok(g.into_iter()
            .map(|a| {
                if !deterministic && self.rng.random::<f64>() < self.cfg.end_e {
                    Action::Discrete(self.rng.random_range(0..self.n_actions))
                } else {
                    Action::Discrete(a)
                }
            })
            .collect())
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.q_params.save(&dir.join("model.safetensors"))?;
        self.target_params.save(&dir.join("target.safetensors"))?;
        save_opt(&self.opt, &dir.join("optimizer.safetensors"))?;
        self.buffer.save(&dir.join("replay.safetensors"))?;
        save_state(dir, &self.rng, self.global_step)
    }

    fn load(&mut self, dir: &Path, with_state: bool) -> Result<()> {
        self.q_params.load_file(&dir.join("model.safetensors"))?;
        if with_state {
            self.target_params.load_file(&dir.join("target.safetensors"))?;
            load_opt(&mut self.opt, &dir.join("optimizer.safetensors"))?;
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
    fn td_target_uses_terminated_mask_and_double_q_picks_online_argmax() {
        let d = Device::Cpu;
        let rew = Tensor::new(&[1.0f32, 1.0], &d).unwrap();
        let done = Tensor::new(&[0.0f32, 1.0], &d).unwrap();
        let qt = Tensor::new(&[[2.0f32, 5.0], [3.0, 4.0]], &d).unwrap();
        let y = td_target(&rew, &done, &qt, None, 0.5).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(y, vec![1.0 + 0.5 * 5.0, 1.0]);
        // online prefers action 0 in row 0 → the target net's value of action 0 (2.0), not its max
        let qo = Tensor::new(&[[9.0f32, 1.0], [0.0, 1.0]], &d).unwrap();
        let y = td_target(&rew, &done, &qt, Some(&qo), 0.5).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(y, vec![1.0 + 0.5 * 2.0, 1.0]);
    }
}
