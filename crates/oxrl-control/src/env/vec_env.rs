//! A vector of environments stepped together, with same-step auto-reset: when an episode ends, the
//! returned observation is already the next episode's first one and the last observation of the
//! finished episode is kept in `final_obs` (needed to bootstrap through a time-limit truncation).
//! Episode returns and lengths are tracked and reported as episodes finish.

use super::{Action, Env, EnvState, Space};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

pub struct VecEnv {
    pub envs: Vec<Box<dyn Env>>,
    obs: Vec<Vec<f32>>,
    ep_return: Vec<f64>,
    ep_len: Vec<usize>,
}

/// The outcome of stepping every environment once.
#[derive(Debug, Clone)]
pub struct VecStep {
    /// Observation to act on next (a fresh episode's first one where an episode ended).
    pub obs: Vec<Vec<f32>>,
    pub rewards: Vec<f64>,
    pub terminated: Vec<bool>,
    pub truncated: Vec<bool>,
    /// The last observation of an episode that ended this step.
    pub final_obs: Vec<Option<Vec<f32>>>,
    /// (return, length) of every episode that ended this step.
    pub finished: Vec<(f64, usize)>,
}

/// Saved state of a vector of environments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VecEnvState {
    pub envs: Vec<EnvState>,
    pub obs: Vec<Vec<f32>>,
    pub ep_return: Vec<f64>,
    pub ep_len: Vec<usize>,
}

impl VecEnv {
    /// `n` copies of a built-in environment, copy i seeded from (seed, i).
    pub fn make(name: &str, n: usize, seed: u64) -> Result<Self> {
        if n == 0 {
            bail!("num_envs must be at least 1");
        }
        let envs = (0..n)
            .map(|i| super::make(name, oxrl_core::seed::derive(seed, "env", i as u64)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::new(envs))
    }

    pub fn new(mut envs: Vec<Box<dyn Env>>) -> Self {
        let obs = envs.iter_mut().map(|e| e.reset()).collect();
        let n = envs.len();
        Self { envs, obs, ep_return: vec![0.0; n], ep_len: vec![0; n] }
    }

    pub fn len(&self) -> usize {
        self.envs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.envs.is_empty()
    }
    pub fn obs(&self) -> &[Vec<f32>] {
        &self.obs
    }
    pub fn observation_space(&self) -> Space {
        self.envs[0].observation_space()
    }
    pub fn action_space(&self) -> Space {
        self.envs[0].action_space()
    }

    pub fn step(&mut self, actions: &[Action]) -> Result<VecStep> {
        if actions.len() != self.envs.len() {
            bail!("{} actions for {} environments", actions.len(), self.envs.len());
        }
        let n = self.envs.len();
        let mut out = VecStep {
            obs: Vec::with_capacity(n),
            rewards: Vec::with_capacity(n),
            terminated: Vec::with_capacity(n),
            truncated: Vec::with_capacity(n),
            final_obs: Vec::with_capacity(n),
            finished: Vec::new(),
        };
        for (i, (env, a)) in self.envs.iter_mut().zip(actions).enumerate() {
            let s = env.step(a)?;
            self.ep_return[i] += s.reward;
            self.ep_len[i] += 1;
            let next = if s.terminated || s.truncated {
                out.finished.push((self.ep_return[i], self.ep_len[i]));
                self.ep_return[i] = 0.0;
                self.ep_len[i] = 0;
                out.final_obs.push(Some(s.obs));
                env.reset()
            } else {
                out.final_obs.push(None);
                s.obs
            };
            self.obs[i] = next.clone();
            out.obs.push(next);
            out.rewards.push(s.reward);
            out.terminated.push(s.terminated);
            out.truncated.push(s.truncated);
        }
        Ok(out)
    }

    pub fn save(&self) -> VecEnvState {
        VecEnvState {
            envs: self.envs.iter().map(|e| e.save()).collect(),
            obs: self.obs.clone(),
            ep_return: self.ep_return.clone(),
            ep_len: self.ep_len.clone(),
        }
    }

    pub fn restore(&mut self, s: &VecEnvState) -> Result<()> {
        if s.envs.len() != self.envs.len() {
            bail!("saved state has {} environments, this run {}", s.envs.len(), self.envs.len());
        }
        for (e, st) in self.envs.iter_mut().zip(&s.envs) {
            e.restore(st)?;
        }
        self.obs = s.obs.clone();
        self.ep_return = s.ep_return.clone();
        self.ep_len = s.ep_len.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_reset_keeps_final_observation_and_reports_episodes() {
        let mut v = VecEnv::make("cartpole", 2, 0).unwrap();
        let mut finished = 0;
        for _ in 0..200 {
            let s = v.step(&[Action::Discrete(1), Action::Discrete(0)]).unwrap();
            for i in 0..2 {
                let ended = s.terminated[i] || s.truncated[i];
                assert_eq!(ended, s.final_obs[i].is_some());
                if ended {
                    // the final observation is past the threshold; the new one is a fresh reset
                    let f = s.final_obs[i].as_ref().unwrap();
                    assert!(f[2].abs() > 0.2 || f[0].abs() > 2.4);
                    assert!(s.obs[i].iter().all(|x| x.abs() <= 0.05));
                }
            }
            for (ret, len) in &s.finished {
                assert_eq!(*ret, *len as f64);
                finished += 1;
            }
        }
        assert!(finished >= 4);
        assert!(v.step(&[Action::Discrete(0)]).is_err());
    }

    #[test]
    fn copies_are_seeded_differently_and_reproducibly() {
        let a = VecEnv::make("pendulum", 3, 5).unwrap();
        let b = VecEnv::make("pendulum", 3, 5).unwrap();
        assert_eq!(a.obs(), b.obs());
        assert_ne!(a.obs()[0], a.obs()[1]);
        assert!(VecEnv::make("nope", 1, 0).is_err());
    }
}
