//! A uniform replay buffer of transitions (obs, action, reward, next_obs, terminated) in flat f32
//! arrays, a fixed capacity and ring overwrite; `done` is the true terminal flag only — a
//! time-limit truncation keeps its bootstrap (next_obs is the episode's real final observation).
//! Saved and loaded as safetensors for exact resumes.

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use oxrl_core::seed::Rng;
use rand::Rng as _;
use std::collections::HashMap;
use std::path::Path;

pub struct ReplayBuffer {
    pub capacity: usize,
    pub obs_dim: usize,
    pub act_dim: usize,
    obs: Vec<f32>,
    next_obs: Vec<f32>,
    act: Vec<f32>,
    rew: Vec<f32>,
    done: Vec<f32>,
    pos: usize,
    len: usize,
}

/// A sampled batch as tensors: obs (B × o), act (B × a), rew (B), next_obs (B × o), done (B).
pub struct Batch {
    pub obs: Tensor,
    pub act: Tensor,
    pub rew: Tensor,
    pub next_obs: Tensor,
    pub done: Tensor,
}

impl ReplayBuffer {
    pub fn new(capacity: usize, obs_dim: usize, act_dim: usize) -> Result<Self> {
        if capacity == 0 {
            bail!("replay buffer capacity must be positive");
        }
        Ok(Self {
            capacity,
            obs_dim,
            act_dim,
            obs: vec![0.0; capacity * obs_dim],
            next_obs: vec![0.0; capacity * obs_dim],
            act: vec![0.0; capacity * act_dim],
            rew: vec![0.0; capacity],
            done: vec![0.0; capacity],
            pos: 0,
            len: 0,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, obs: &[f32], act: &[f32], rew: f64, next_obs: &[f32], terminated: bool) -> Result<()> {
        if obs.len() != self.obs_dim || next_obs.len() != self.obs_dim || act.len() != self.act_dim {
            bail!(
                "transition of sizes obs {} act {} next {} in a buffer of obs {} act {}",
                obs.len(),
                act.len(),
                next_obs.len(),
                self.obs_dim,
                self.act_dim
            );
        }
        let p = self.pos;
        self.obs[p * self.obs_dim..(p + 1) * self.obs_dim].copy_from_slice(obs);
        self.next_obs[p * self.obs_dim..(p + 1) * self.obs_dim].copy_from_slice(next_obs);
        self.act[p * self.act_dim..(p + 1) * self.act_dim].copy_from_slice(act);
        self.rew[p] = rew as f32;
        self.done[p] = if terminated { 1.0 } else { 0.0 };
        self.pos = (p + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
        Ok(())
    }

    /// The slot the next [`ReplayBuffer::push`] writes (ring position).
    pub fn next_slot(&self) -> usize {
        self.pos
    }

    /// Overwrite the reward stored in `slot` (a reward model scoring transitions after the fact).
    pub fn set_reward(&mut self, slot: usize, reward: f64) {
        self.rew[slot] = reward as f32;
    }

    /// Transform every stored reward (e.g. scale and shift an offline dataset's rewards).
    pub fn map_rewards(&mut self, f: impl Fn(f64) -> f64) {
        for r in self.rew.iter_mut().take(self.len) {
            *r = f(*r as f64) as f32;
        }
    }

    /// Indices drawn uniformly with replacement from the stored transitions.
    pub fn sample_indices(&self, batch: usize, rng: &mut Rng) -> Vec<usize> {
        (0..batch).map(|_| rng.random_range(0..self.len)).collect()
    }

    pub fn gather(&self, idx: &[usize], dev: &Device) -> Result<Batch> {
        let b = idx.len();
        let pick = |src: &[f32], d: usize| -> Vec<f32> {
            let mut out = Vec::with_capacity(b * d);
            for &i in idx {
                out.extend_from_slice(&src[i * d..(i + 1) * d]);
            }
            out
        };
        Ok(Batch {
            obs: Tensor::from_vec(pick(&self.obs, self.obs_dim), (b, self.obs_dim), dev)?,
            act: Tensor::from_vec(pick(&self.act, self.act_dim), (b, self.act_dim), dev)?,
            rew: Tensor::from_vec(pick(&self.rew, 1), b, dev)?,
            next_obs: Tensor::from_vec(pick(&self.next_obs, self.obs_dim), (b, self.obs_dim), dev)?,
            done: Tensor::from_vec(pick(&self.done, 1), b, dev)?,
        })
    }

    pub fn sample(&self, batch: usize, rng: &mut Rng, dev: &Device) -> Result<Batch> {
        if self.len == 0 {
            bail!("sampling from an empty replay buffer");
        }
        let idx = self.sample_indices(batch, rng);
        self.gather(&idx, dev)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let d = Device::Cpu;
        let mut m = HashMap::new();
        m.insert("obs".to_string(), Tensor::from_slice(&self.obs, self.obs.len(), &d)?);
        m.insert("next_obs".to_string(), Tensor::from_slice(&self.next_obs, self.next_obs.len(), &d)?);
        m.insert("act".to_string(), Tensor::from_slice(&self.act, self.act.len(), &d)?);
        m.insert("rew".to_string(), Tensor::from_slice(&self.rew, self.rew.len(), &d)?);
        m.insert("done".to_string(), Tensor::from_slice(&self.done, self.done.len(), &d)?);
        m.insert("pos_len".to_string(), Tensor::from_slice(&[self.pos as u32, self.len as u32], 2, &d)?);
        candle_core::safetensors::save(&m, path).with_context(|| format!("writing {}", path.display()))
    }

    pub fn load(&mut self, path: &Path) -> Result<()> {
        let m = candle_core::safetensors::load(path, &Device::Cpu)
            .with_context(|| format!("reading {}", path.display()))?;
        let get = |k: &str, n: usize| -> Result<Vec<f32>> {
            let v = m.get(k).with_context(|| format!("{}: missing {k}", path.display()))?.to_vec1::<f32>()?;
            if v.len() != n {
                bail!(
                    "{}: {k} has {} values, expected {n} (a different capacity or environment?)",
                    path.display(),
                    v.len()
                );
            }
            Ok(v)
        };
        self.obs = get("obs", self.capacity * self.obs_dim)?;
        self.next_obs = get("next_obs", self.capacity * self.obs_dim)?;
        self.act = get("act", self.capacity * self.act_dim)?;
        self.rew = get("rew", self.capacity)?;
        self.done = get("done", self.capacity)?;
        let pl = m.get("pos_len").with_context(|| format!("{}: missing pos_len", path.display()))?.to_vec1::<u32>()?;
        self.pos = pl[0] as usize;
        self.len = pl[1] as usize;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ring_overwrites_oldest_and_round_trips() {
        let mut b = ReplayBuffer::new(3, 1, 1).unwrap();
        for i in 0..5 {
            b.push(&[i as f32], &[0.0], i as f64, &[i as f32 + 1.0], i == 4).unwrap();
        }
        assert_eq!(b.len(), 3);
        let batch = b.gather(&[0, 1, 2], &Device::Cpu).unwrap();
        // slots hold transitions 3, 4, 2
        assert_eq!(batch.rew.to_vec1::<f32>().unwrap(), vec![3.0, 4.0, 2.0]);
        assert_eq!(batch.done.to_vec1::<f32>().unwrap(), vec![0.0, 1.0, 0.0]);
        let dir = tempfile::tempdir().unwrap();
        b.save(&dir.path().join("r.safetensors")).unwrap();
        let mut c = ReplayBuffer::new(3, 1, 1).unwrap();
        c.load(&dir.path().join("r.safetensors")).unwrap();
        let mut r1 = Rng::seed_from_u64(0);
        let mut r2 = Rng::seed_from_u64(0);
        let x = b.sample(8, &mut r1, &Device::Cpu).unwrap().next_obs.to_vec2::<f32>().unwrap();
        let y = c.sample(8, &mut r2, &Device::Cpu).unwrap().next_obs.to_vec2::<f32>().unwrap();
        assert_eq!(x, y);
        let mut d = ReplayBuffer::new(4, 1, 1).unwrap();
        assert!(d.load(&dir.path().join("r.safetensors")).is_err());
        assert!(b.push(&[0.0, 1.0], &[0.0], 0.0, &[0.0], false).is_err());
    }
}
