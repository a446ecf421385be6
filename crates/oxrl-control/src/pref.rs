//! Offline RL from preference labels: a Bradley–Terry reward model r̂(s, a) learned from pairs of
//! trajectory segments, then the dataset's rewards replaced by r̂ for IQL — the setting of
//! "Preference Transformer" (Kim et al., 2023) and "PEBBLE" (Lee et al., 2021) with an MLP reward
//! (the Markovian baseline of those papers).
//!
//! Segments of `segment_length` steps are drawn inside single episodes; the labels come from a
//! scripted teacher that prefers the segment with the higher true return (ties 0.5), as in those
//! papers' synthetic-label experiments. The model maximises
//! log σ(Σ_{σ1} r̂ − Σ_{σ2} r̂) for the preferred segment (soft labels for ties). The learned reward
//! is standardised over the dataset before IQL uses it.

use crate::dataset::Dataset;
use crate::nn::{rows, Activation, Init, Mlp, Params};
use anyhow::{bail, Result};
use candle_core::{Device, Tensor, D};
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_core::seed::Rng;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// `[iql.preferences]` — synthetic-teacher preference learning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrefConfig {
    /// Labelled segment pairs (0 = use the dataset's rewards).
    pub pairs: usize,
    pub segment_length: usize,
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub hidden: Vec<usize>,
}

impl Default for PrefConfig {
    fn default() -> Self {
        Self { pairs: 0, segment_length: 25, steps: 1000, batch_size: 64, lr: 1e-3, hidden: vec![64, 64] }
    }
}

/// A labelled pair of segments: start rows and P(first ≻ second).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    pub a: usize,
    pub b: usize,
    pub label: f32,
}

/// Rows where a segment of `len` steps fits inside one episode.
pub fn segment_starts(d: &Dataset, len: usize) -> Vec<usize> {
    let ends = crate::gc::trajectory_ends(d);
    (0..d.len()).filter(|&i| i + len <= ends[i] + 1).collect()
}

pub fn segment_return(d: &Dataset, start: usize, len: usize) -> f64 {
    d.rewards[start..start + len].iter().map(|&r| r as f64).sum()
}

/// `n` random segment pairs labelled by the scripted teacher (higher true return preferred).
pub fn teacher_pairs(d: &Dataset, n: usize, len: usize, rng: &mut Rng) -> Result<Vec<Pair>> {
    let starts = segment_starts(d, len);
    if starts.len() < 2 {
        bail!("preferences: no two segments of {len} steps fit in the dataset's episodes");
    }
    Ok((0..n)
        .map(|_| {
            let a = starts[rng.random_range(0..starts.len())];
            let b = starts[rng.random_range(0..starts.len())];
            let (ra, rb) = (segment_return(d, a, len), segment_return(d, b, len));
            let label = if ra > rb {
                1.0
            } else if ra < rb {
                0.0
            } else {
                0.5
            };
            Pair { a, b, label }
        })
        .collect())
}

pub struct RewardModel {
    net: Mlp,
    params: Params,
}

impl RewardModel {
    pub fn new(obs_dim: usize, act_dim: usize, hidden: &[usize], rng: &mut Rng, dev: &Device) -> Result<Self> {
        let mut s = vec![obs_dim + act_dim];
        s.extend(hidden);
        s.push(1);
        let net = Mlp::new(&s, Activation::Relu, Init::Uniform, rng, dev)?;
        let params = Params(net.vars("reward"));
        Ok(Self { net, params })
    }

    /// r̂ for (B × (obs+act)) inputs → (B).
    pub fn forward(&self, sa: &Tensor) -> Result<Tensor> {
        Ok(self.net.forward(sa)?.squeeze(1)?)
    }

    fn segment_inputs(&self, d: &Dataset, starts: &[usize], len: usize, dev: &Device) -> Result<Tensor> {
        let mut v = Vec::with_capacity(starts.len() * len);
        for &s in starts {
            for i in s..s + len {
                let mut row = d.obs(i).to_vec();
                row.extend_from_slice(d.action(i));
                v.push(row);
            }
        }
        rows(&v, dev)
    }

    /// Segment sums of r̂ for segments starting at `starts` → (B).
    pub fn segment_sums(&self, d: &Dataset, starts: &[usize], len: usize, dev: &Device) -> Result<Tensor> {
        let x = self.segment_inputs(d, starts, len, dev)?;
        Ok(self.forward(&x)?.reshape((starts.len(), len))?.sum(D::Minus1)?)
    }

    /// Bradley–Terry loss of a batch of pairs: −[y·log σ(Δ) + (1 − y)·log σ(−Δ)], Δ = R̂a − R̂b.
    pub fn bt_loss(&self, d: &Dataset, pairs: &[Pair], len: usize, dev: &Device) -> Result<Tensor> {
        let a: Vec<usize> = pairs.iter().map(|p| p.a).collect();
        let b: Vec<usize> = pairs.iter().map(|p| p.b).collect();
        let delta = (self.segment_sums(d, &a, len, dev)? - self.segment_sums(d, &b, len, dev)?)?;
        let y = Tensor::from_vec(pairs.iter().map(|p| p.label).collect::<Vec<_>>(), pairs.len(), dev)?;
        bt_loss_from_margin(&delta, &y)
    }

    /// Fraction of pairs with a strict label whose order the model gets right.
    pub fn accuracy(&self, d: &Dataset, pairs: &[Pair], len: usize, dev: &Device) -> Result<f64> {
        let strict: Vec<Pair> = pairs.iter().copied().filter(|p| p.label != 0.5).collect();
        if strict.is_empty() {
            return Ok(f64::NAN);
        }
        let a: Vec<usize> = strict.iter().map(|p| p.a).collect();
        let b: Vec<usize> = strict.iter().map(|p| p.b).collect();
        let ra = self.segment_sums(d, &a, len, dev)?.to_vec1::<f32>()?;
        let rb = self.segment_sums(d, &b, len, dev)?.to_vec1::<f32>()?;
        let ok = strict.iter().zip(ra.iter().zip(&rb)).filter(|(p, (x, y))| (x > y) == (p.label == 1.0)).count();
        Ok(ok as f64 / strict.len() as f64)
    }

    /// Train on `pairs` by Adam; returns the final mean loss.
    pub fn fit(&mut self, d: &Dataset, pairs: &[Pair], cfg: &PrefConfig, rng: &mut Rng, dev: &Device) -> Result<f64> {
        let mut opt = AdamW::new(self.params.vars(), AdamWConfig::default())?;
        let mut last = f64::NAN;
        for _ in 0..cfg.steps {
            let batch: Vec<Pair> =
                (0..cfg.batch_size.min(pairs.len())).map(|_| pairs[rng.random_range(0..pairs.len())]).collect();
            let loss = self.bt_loss(d, &batch, cfg.segment_length, dev)?;
            opt.step(&loss.backward()?, cfg.lr, 0.0)?;
            last = loss.to_scalar::<f32>()? as f64;
        }
        Ok(last)
    }

    /// The dataset with its rewards replaced by the standardised learned reward.
    pub fn relabel(&self, d: &Dataset, dev: &Device) -> Result<Dataset> {
        let mut out = d.clone();
        let mut r = Vec::with_capacity(d.len());
        for chunk in (0..d.len()).collect::<Vec<_>>().chunks(4096) {
            let x: Vec<Vec<f32>> = chunk.iter().map(|&i| [d.obs(i), d.action(i)].concat()).collect();
            r.extend(self.forward(&rows(&x, dev)?)?.to_vec1::<f32>()?);
        }
        let n = r.len().max(1) as f64;
        let mean = r.iter().map(|&x| x as f64).sum::<f64>() / n;
        let sd = (r.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt().max(1e-8);
        out.rewards = r.iter().map(|&x| ((x as f64 - mean) / sd) as f32).collect();
        Ok(out)
    }
}

/// −[y·log σ(Δ) + (1 − y)·log σ(−Δ)] averaged: the binary cross-entropy of the margin's logit.
pub fn bt_loss_from_margin(delta: &Tensor, y: &Tensor) -> Result<Tensor> {
    crate::dist::bce_with_logits(delta, y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn bt_loss_matches_the_closed_form() {
        let d = Device::Cpu;
        let delta = Tensor::new(&[0.0f32, 2.0, -1.0, 30.0], &d).unwrap();
        let y = Tensor::new(&[1.0f32, 1.0, 0.0, 0.5], &d).unwrap();
        let l = bt_loss_from_margin(&delta, &y).unwrap().to_scalar::<f32>().unwrap() as f64;
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let want = [(0.0, 1.0), (2.0, 1.0), (-1.0, 0.0), (30.0, 0.5)]
            .iter()
            .map(|&(x, y): &(f64, f64)| -(y * sig(x).ln() + (1.0 - y) * sig(-x).ln()))
            .sum::<f64>()
            / 4.0;
        assert!((l - want).abs() < 1e-5, "{l} vs {want}");
    }

    #[test]
    fn reward_model_ranks_held_out_segments_of_a_known_reward() {
        // random CartPole-shaped data whose true reward is −|angle| (obs[2]) — learnable from pairs
        let mut rng = Rng::seed_from_u64(0);
        let space = crate::env::Space::Discrete(2);
        let mut d = crate::dataset::collect(
            "cartpole",
            3000,
            &mut |_| Ok(crate::dataset::random_action(&space, &mut rng)),
            0.0,
            1,
        )
        .unwrap();
        for i in 0..d.len() {
            d.rewards[i] = -(d.obs(i)[2].abs()) * 10.0;
        }
        let cfg = PrefConfig { pairs: 400, segment_length: 5, steps: 400, ..Default::default() };
        let mut rng = Rng::seed_from_u64(1);
        let train = teacher_pairs(&d, cfg.pairs, cfg.segment_length, &mut rng).unwrap();
        let test = teacher_pairs(&d, 300, cfg.segment_length, &mut rng).unwrap();
        let dev = Device::Cpu;
        let mut m = RewardModel::new(4, 1, &cfg.hidden, &mut rng, &dev).unwrap();
        let before = m.accuracy(&d, &test, cfg.segment_length, &dev).unwrap();
        m.fit(&d, &train, &cfg, &mut rng, &dev).unwrap();
        let after = m.accuracy(&d, &test, cfg.segment_length, &dev).unwrap();
        assert!(after > 0.85 && after > before, "held-out pairwise accuracy {before:.2} → {after:.2}");
        // segments never cross an episode boundary
        let ends = crate::gc::trajectory_ends(&d);
        for p in &train {
            assert!(p.a + cfg.segment_length <= ends[p.a] + 1);
        }
    }
}
