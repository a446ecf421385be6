//! A vector of environments stepped together, with same-step auto-reset: when an episode ends, the
//! returned observation is already the next episode's first one and the last observation of the
//! finished episode is kept in `final_obs` (needed to bootstrap through a time-limit truncation).
//! Episode returns and lengths are tracked and reported as episodes finish; on goal-reaching
//! environments the vector also counts successful episodes and remembers after how many steps
//! (summed over the vector) the first one ended — the time to first goal of an exploration test.

use super::{Action, Env, EnvState, Space};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

pub struct VecEnv {
    pub envs: Vec<Box<dyn Env>>,
    obs: Vec<Vec<f32>>,
    ep_return: Vec<f64>,
    ep_len: Vec<usize>,
    /// Steps taken, summed over the vector.
    pub steps: u64,
    /// Episodes that ended with the environment reporting success.
    pub successes: u64,
    /// `steps` when the first successful episode ended.
    pub first_success: Option<u64>,
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
    #[serde(default)]
    pub steps: u64,
    #[serde(default)]
    pub successes: u64,
    #[serde(default)]
    pub first_success: Option<u64>,
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
        Self { envs, obs, ep_return: vec![0.0; n], ep_len: vec![0; n], steps: 0, successes: 0, first_success: None }
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
            self.steps += 1;
            let next = if s.terminated || s.truncated {
                if env.success() == Some(true) {
                    self.successes += 1;
                    self.first_success.get_or_insert(self.steps);
                }
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
            steps: self.steps,
            successes: self.successes,
            first_success: self.first_success,
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
        (self.steps, self.successes, self.first_success) = (s.steps, s.successes, s.first_success);
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
    fn successes_and_the_step_of_the_first_are_counted_and_restored() {
        // the sparse grid: (0, 0) → (9, 9) is 18 moves; env 0 walks there, env 1 pushes into a wall
        let mut v = VecEnv::make("pixelgrid-clean-sparse", 2, 0).unwrap();
        let walk = |k: usize| if k.is_multiple_of(2) { 3 } else { 1 }; // right, down, right, …
        for k in 0..17 {
            let s = v.step(&[Action::Discrete(walk(k)), Action::Discrete(0)]).unwrap();
            assert!(s.finished.is_empty());
        }
        assert_eq!((v.successes, v.first_success), (0, None));
        let saved = v.save();
        let s = v.step(&[Action::Discrete(walk(17)), Action::Discrete(0)]).unwrap();
        assert_eq!(s.finished, vec![(1.0, 18)]);
        assert_eq!((v.steps, v.successes, v.first_success), (36, 1, Some(35)), "env 0's 18th step is the 35th");
        // env 1 times out at 50 steps: an ended episode that is not a success
        for _ in 0..32 {
            v.step(&[Action::Discrete(0), Action::Discrete(0)]).unwrap();
        }
        assert_eq!((v.successes, v.first_success), (1, Some(35)));
        let mut w = VecEnv::make("pixelgrid-clean-sparse", 2, 0).unwrap();
        w.restore(&saved).unwrap();
        assert_eq!((w.steps, w.successes, w.first_success), (34, 0, None));
        w.step(&[Action::Discrete(walk(17)), Action::Discrete(0)]).unwrap();
        assert_eq!(w.first_success, Some(35));
        // a state saved before these counters existed restores with them at zero
        let mut old = serde_json::to_value(&saved).unwrap();
        for k in ["steps", "successes", "first_success"] {
            old.as_object_mut().unwrap().remove(k);
        }
        let old: VecEnvState = serde_json::from_value(old).unwrap();
        assert_eq!((old.steps, old.successes, old.first_success), (0, 0, None));
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
