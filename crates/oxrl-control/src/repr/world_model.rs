//! The latent world model a Dreamer-style learner imagines in ([`crate::algo::dreamer`]): RePo's
//! and InfoPower's transition prior p(z_{t+1} | z_t, a_t) = N(μ_p, σ_p) and reward head R(z_{t+1}),
//! kept with the frozen encoder after pre-training, plus a continuation head
//! c(z_{t+1}) = P(the episode goes on after this transition) — Dreamer's "discount" predictor
//! ("Mastering Atari with Discrete World Models", Hafner et al., 2021).
//!
//! The continuation head is trained during pre-training on detached posterior samples of the
//! next frame (binary cross-entropy against 1 − terminal) with its own optimiser and random
//! stream, so the representation objective and its gradients are exactly those of the objective
//! alone. (Dreamer trains it as part of the model loss; on this stand-in a terminal is the goal
//! reward, which the reward head already sends into the encoder.)

use super::{one_hot, repo::split_gaussian, video::Video, Encoder};
use crate::nn::{Activation, Init, Mlp, Params};
use anyhow::{bail, Result};
use candle_core::{Device, Tensor, Var};
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_core::seed::Rng;

/// What imagination needs of a model: one step of latent dynamics from a batch of latents.
pub trait LatentDynamics {
    fn latent_dim(&self) -> usize;
    fn n_actions(&self) -> usize;
    /// (next latents B × d, rewards B, continuation probabilities B) of taking `actions` in the
    /// latents `z` (B × d); `sample` draws z' from the prior, else takes its mean.
    fn step(&self, z: &Tensor, actions: &[usize], sample: bool, rng: &mut Rng) -> Result<(Tensor, Tensor, Tensor)>;
}

/// Transition prior, reward head and continuation head on raw latents.
pub struct LatentModel {
    pub trans: Mlp,
    pub reward: Mlp,
    pub cont: Mlp,
    pub latent: usize,
    pub n_actions: usize,
    dev: Device,
}

/// A copy of an MLP with its own parameters.
pub(crate) fn copy_mlp(m: &Mlp, rng: &mut Rng, dev: &Device) -> Result<Mlp> {
    let sizes: Vec<usize> =
        std::iter::once(m.layers[0].w.dims()[0]).chain(m.layers.iter().map(|l| l.w.dims()[1])).collect();
    let copy = Mlp::new(&sizes, m.act, Init::Uniform, rng, dev)?;
    Params(copy.vars("m")).copy_from(&Params(m.vars("m")))?;
    Ok(copy)
}

impl LatentModel {
    /// A freshly initialised model (the shapes RePo and InfoPower use).
    pub fn new(latent: usize, hidden: usize, n_actions: usize, rng: &mut Rng, dev: &Device) -> Result<Self> {
        Ok(Self {
            trans: Mlp::new(&[latent + n_actions, hidden, 2 * latent], Activation::Relu, Init::Uniform, rng, dev)?,
            reward: Mlp::new(&[latent, hidden, 1], Activation::Relu, Init::Uniform, rng, dev)?,
            cont: Mlp::new(&[latent, hidden, 1], Activation::Relu, Init::Uniform, rng, dev)?,
            latent,
            n_actions,
            dev: dev.clone(),
        })
    }
    /// Copies of an objective's transition and reward heads with a continuation head `cont`.
    pub fn from_heads(trans: &Mlp, reward: &Mlp, cont: Mlp, rng: &mut Rng, dev: &Device) -> Result<Self> {
        let n_out = trans.layers.last().map(|l| l.w.dims()[1]).unwrap_or(0);
        let latent = n_out / 2;
        let n_in = trans.layers[0].w.dims()[0];
        if latent == 0 || n_in <= latent {
            bail!("world model: a transition model of shape {n_in} → {n_out} is not latent + actions → 2·latent");
        }
        Ok(Self {
            trans: copy_mlp(trans, rng, dev)?,
            reward: copy_mlp(reward, rng, dev)?,
            cont,
            latent,
            n_actions: n_in - latent,
            dev: dev.clone(),
        })
    }
    /// A copy with its own parameters.
    pub fn duplicate(&self, dev: &Device) -> Result<Self> {
        let mut rng = oxrl_core::seed::rng(0, "world-model-shape", 0);
        Ok(Self {
            trans: copy_mlp(&self.trans, &mut rng, dev)?,
            reward: copy_mlp(&self.reward, &mut rng, dev)?,
            cont: copy_mlp(&self.cont, &mut rng, dev)?,
            latent: self.latent,
            n_actions: self.n_actions,
            dev: dev.clone(),
        })
    }
    pub fn vars(&self) -> Vec<(String, Var)> {
        let mut v = self.trans.vars("transition");
        v.extend(self.reward.vars("reward"));
        v.extend(self.cont.vars("continuation"));
        v
    }
    /// The prior (μ, σ) of z_{t+1} given latents `z` and actions.
    pub fn prior(&self, z: &Tensor, actions: &[usize]) -> Result<(Tensor, Tensor)> {
        let h = self.trans.forward(&Tensor::cat(&[z, &one_hot(actions, self.n_actions, &self.dev)?], 1)?)?;
        split_gaussian(&h, self.latent)
    }
    /// P(continue) of next latents.
    pub fn continuation(&self, z1: &Tensor) -> Result<Tensor> {
        crate::dist::sigmoid(&self.cont.forward(z1)?.squeeze(1)?)
    }
}

impl LatentDynamics for LatentModel {
    fn latent_dim(&self) -> usize {
        self.latent
    }
    fn n_actions(&self) -> usize {
        self.n_actions
    }
    fn step(&self, z: &Tensor, actions: &[usize], sample: bool, rng: &mut Rng) -> Result<(Tensor, Tensor, Tensor)> {
        let (mu, sd) = self.prior(z, actions)?;
        let z1 = if sample { (&mu + (sd * crate::dist::normal_noise(mu.dims2()?, rng, &self.dev)?)?)? } else { mu };
        let r = self.reward.forward(&z1)?.squeeze(1)?;
        let c = self.continuation(&z1)?;
        Ok((z1, r, c))
    }
}

/// How far the model's open-loop imagination stays true on held-out episodes: for each k, from the
/// posterior mean of frame t (every t with t + k inside its episode, up to `anchors` of them spread
/// evenly), the prior mean is rolled k steps with the actions actually taken, then compared with
/// the posterior mean of frame t + k (R² over all latent entries) and with the real reward of the
/// k-th transition (Pearson correlation of predicted and real rewards; 0 when either is constant).
/// `reward_corr_posterior` is the reward head on the posterior of the next frame itself (no
/// imagination): it separates a reward head that misses the event from a prior that loses it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Fidelity {
    pub k: Vec<usize>,
    pub latent_r2: Vec<f64>,
    pub reward_corr: Vec<f64>,
    pub reward_corr_posterior: f64,
}

pub fn fidelity(model: &LatentModel, enc: &Encoder, video: &Video, ks: &[usize], anchors: usize) -> Result<Fidelity> {
    let dev = &model.dev;
    let all: Vec<usize> = (0..video.len()).filter(|&t| video.has_next[t]).collect();
    if all.is_empty() || anchors == 0 {
        bail!("world-model fidelity: no transitions");
    }
    let n = anchors.min(all.len());
    let idx: Vec<usize> = (0..n).map(|i| all[i * all.len() / n]).collect();
    let next: Vec<usize> = idx.iter().map(|&t| t + 1).collect();
    let z1 = enc.features(&super::frames(video, &next, dev)?)?;
    let pred: Vec<f64> = model.reward.forward(&z1)?.squeeze(1)?.to_vec1::<f32>()?.iter().map(|&v| v as f64).collect();
    let real: Vec<f64> = idx.iter().map(|&t| video.rewards[t] as f64).collect();
    let mut out = Fidelity {
        k: ks.to_vec(),
        latent_r2: Vec::new(),
        reward_corr: Vec::new(),
        reward_corr_posterior: oxrl_core::metrics::pearson(&pred, &real),
    };
    for &k in ks {
        let starts: Vec<usize> = (0..video.len()).filter(|&t| t + k < video.episode_end[t]).collect();
        if starts.is_empty() || k == 0 || anchors == 0 {
            bail!("world-model fidelity: no window of {k} steps inside an episode");
        }
        let n = anchors.min(starts.len());
        let idx: Vec<usize> = (0..n).map(|i| starts[i * starts.len() / n]).collect();
        let mut z = enc.features(&super::frames(video, &idx, dev)?)?;
        for j in 0..k {
            let acts: Vec<usize> = idx.iter().map(|&t| video.actions[t + j]).collect();
            z = model.prior(&z, &acts)?.0;
        }
        let ends: Vec<usize> = idx.iter().map(|&t| t + k).collect();
        let target = enc.features(&super::frames(video, &ends, dev)?)?.to_vec2::<f32>()?;
        let zt = z.to_vec2::<f32>()?;
        let d = target[0].len();
        let mean: Vec<f64> = (0..d).map(|j| target.iter().map(|r| r[j] as f64).sum::<f64>() / n as f64).collect();
        let (mut sse, mut sst) = (0.0, 0.0);
        for (p, t) in zt.iter().zip(&target) {
            for j in 0..d {
                sse += (p[j] as f64 - t[j] as f64).powi(2);
                sst += (t[j] as f64 - mean[j]).powi(2);
            }
        }
        out.latent_r2.push(1.0 - sse / sst.max(1e-12));
        let pred: Vec<f64> =
            model.reward.forward(&z)?.squeeze(1)?.to_vec1::<f32>()?.iter().map(|&v| v as f64).collect();
        let real: Vec<f64> = idx.iter().map(|&t| video.rewards[t + k - 1] as f64).collect();
        out.reward_corr.push(oxrl_core::metrics::pearson(&pred, &real));
    }
    Ok(out)
}

/// Trains a continuation head on a frozen-in-time encoder's posterior samples of next frames.
pub(crate) struct ContinuationTrainer {
    pub head: Mlp,
    opt: AdamW,
    rng: Rng,
    batch: usize,
    dev: Device,
}

impl ContinuationTrainer {
    pub fn new(latent: usize, hidden: usize, batch: usize, seed: u64, dev: &Device) -> Result<Self> {
        let mut rng = oxrl_core::seed::rng(seed, "continuation", 0);
        let head = Mlp::new(&[latent, hidden, 1], Activation::Relu, Init::Uniform, &mut rng, dev)?;
        let opt = AdamW::new(head.vars("continuation"), AdamWConfig::default())?;
        Ok(Self { head, opt, rng, batch, dev: dev.clone() })
    }
    /// One step on a batch of transitions; returns the loss.
    pub fn step(&mut self, enc: &Encoder, data: &Video, lr: f64, max_grad_norm: f64) -> Result<f64> {
        let tr = data.sample_transitions(self.batch, &mut self.rng);
        let x1 = super::frames(data, &tr.t1, &self.dev)?;
        let (z1, _, _) = enc.sample(&x1, &mut self.rng)?;
        let y: Vec<f32> = tr.t.iter().map(|&t| if data.terminal[t] { 0.0 } else { 1.0 }).collect();
        let y = Tensor::new(y.as_slice(), &self.dev)?;
        let loss = crate::dist::bce_with_logits(&self.head.forward(&z1.detach())?.squeeze(1)?, &y)?;
        let g = loss.backward()?;
        self.opt.step(&g, lr, max_grad_norm)?;
        Ok(loss.to_scalar::<f32>()? as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Episodes of 4-dimensional frames drawn uniformly in [0, 1); an episode ends at the first
    /// frame whose first entry exceeds 0.8 (a true terminal), else after 8 frames.
    fn synthetic_video(n: usize, seed: u64) -> Video {
        use rand::Rng as _;
        let mut rng = Rng::seed_from_u64(seed);
        let mut v = Video::empty(4, 4);
        let frame = |v: &mut Video, rng: &mut Rng| -> f32 {
            let f: Vec<f32> = (0..4).map(|_| rng.random::<f32>()).collect();
            v.frames.extend_from_slice(&f);
            v.agent.push((0, 0));
            v.goal.push((0, 0));
            v.distractor.push(None);
            f[0]
        };
        while v.len() < n {
            let start = v.len();
            frame(&mut v, &mut rng);
            for k in 0..8 {
                let x0 = frame(&mut v, &mut rng);
                let ends = x0 > 0.8 || k == 7;
                v.actions.push(0);
                v.rewards.push(0.0);
                v.terminal.push(x0 > 0.8);
                v.has_next.push(true);
                if ends {
                    break;
                }
            }
            // the episode's last frame has no successor
            v.actions.push(0);
            v.rewards.push(0.0);
            v.terminal.push(false);
            v.has_next.push(false);
            let end = v.len();
            v.episode_end.extend(std::iter::repeat_n(end, end - start));
        }
        v
    }

    #[test]
    fn the_continuation_head_learns_where_episodes_end() {
        let dev = Device::Cpu;
        let data = synthetic_video(4000, 3);
        let mut rng = Rng::seed_from_u64(0);
        // a fixed random encoder (deterministic: a random one's σ would drown the frame's signal)
        let enc = Encoder::new(4, 64, 8, false, &mut rng, &dev).unwrap();
        let mut tr = ContinuationTrainer::new(8, 64, 128, 0, &dev).unwrap();
        let first = tr.step(&enc, &data, 3e-3, 10.0).unwrap();
        let mut last = 0.0;
        for _ in 0..600 {
            last = tr.step(&enc, &data, 3e-3, 10.0).unwrap();
        }
        assert!(last < first, "{first} → {last}");
        let model = LatentModel {
            cont: copy_mlp(&tr.head, &mut rng, &dev).unwrap(),
            ..LatentModel::new(8, 64, 4, &mut rng, &dev).unwrap()
        };
        // P(continue) of fresh frames: low past the terminal threshold, high well below it
        let p = |x0: f32| -> f64 {
            let rows: Vec<f32> = (0..50).flat_map(|i| [x0, 0.02 * i as f32, 0.5, 1.0 - 0.02 * i as f32]).collect();
            let x = Tensor::from_vec(rows, (50, 4), &dev).unwrap();
            let z = enc.features(&x).unwrap();
            model.continuation(&z).unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap() as f64
        };
        let (pt, po) = (p(0.95), p(0.3));
        assert!(pt < 0.3 && po > 0.8, "P(continue): terminal {pt}, other {po}");
    }

    /// Set a ReLU MLP layer's weights (in × out) and zero its bias.
    fn set(l: &crate::nn::Linear, w: Vec<f32>) {
        let (i, o) = l.w.dims2().unwrap();
        l.w.set(&Tensor::from_vec(w, (i, o), &Device::Cpu).unwrap()).unwrap();
        l.b.set(&Tensor::zeros(o, candle_core::DType::F32, &Device::Cpu).unwrap()).unwrap();
    }

    #[test]
    fn fidelity_of_an_exact_model_is_perfect_and_of_a_frozen_reward_is_zero() {
        // a world that never moves: every frame of an episode is the same; the model's prior mean
        // is z itself (relu(z) − relu(−z)) and its reward head reads z_0, which is the reward
        let dev = Device::Cpu;
        let (d, a) = (3usize, 4usize);
        let mut v = synthetic_video(3000, 5);
        for t in 0..v.len() {
            let start = (0..=t).rev().find(|&s| s == 0 || v.episode_end[s - 1] != v.episode_end[t]).unwrap();
            let f = v.frame(start).to_vec();
            v.frames[t * 4..(t + 1) * 4].copy_from_slice(&f);
        }
        let mut rng = Rng::seed_from_u64(2);
        let enc = Encoder::new(4, 16, d, false, &mut rng, &dev).unwrap();
        let feats = enc.features(&super::super::frames(&v, &(0..v.len()).collect::<Vec<_>>(), &dev).unwrap()).unwrap();
        let feats = feats.to_vec2::<f32>().unwrap();
        for t in 0..v.len() - 1 {
            v.rewards[t] = feats[t + 1][0];
        }
        let m = LatentModel::new(d, 2 * d, a, &mut rng, &dev).unwrap();
        let mut w1 = vec![0f32; (d + a) * 2 * d];
        for i in 0..d {
            w1[i * 2 * d + i] = 1.0;
            w1[i * 2 * d + d + i] = -1.0;
        }
        set(&m.trans.layers[0], w1.clone());
        let mut w2 = vec![0f32; 2 * d * 2 * d];
        for i in 0..d {
            w2[i * 2 * d + i] = 1.0;
            w2[(d + i) * 2 * d + i] = -1.0;
        }
        set(&m.trans.layers[1], w2);
        set(&m.reward.layers[0], w1[..d * 2 * d].to_vec());
        let mut r2 = vec![0f32; 2 * d];
        r2[0] = 1.0;
        r2[d] = -1.0;
        set(&m.reward.layers[1], r2);
        let f = fidelity(&m, &enc, &v, &[1, 3], 500).unwrap();
        assert!(f.reward_corr_posterior > 1.0 - 1e-6, "{f:?}");
        for i in 0..2 {
            assert!(f.latent_r2[i] > 1.0 - 1e-6, "{f:?}");
            assert!(f.reward_corr[i] > 1.0 - 1e-6, "{f:?}");
        }
        // a reward head that outputs a constant correlates with nothing
        set(&m.reward.layers[1], vec![0.0; 2 * d]);
        let f = fidelity(&m, &enc, &v, &[1], 500).unwrap();
        assert_eq!(f.reward_corr, vec![0.0]);
        assert!(fidelity(&m, &enc, &v, &[50], 500).is_err(), "no 50-step window inside a 9-frame episode");
    }

    #[test]
    fn a_model_from_heads_copies_them_and_steps_with_the_prior_mean() {
        let dev = Device::Cpu;
        let mut rng = Rng::seed_from_u64(1);
        let src = LatentModel::new(3, 8, 4, &mut rng, &dev).unwrap();
        let cont = copy_mlp(&src.cont, &mut rng, &dev).unwrap();
        let m = LatentModel::from_heads(&src.trans, &src.reward, cont, &mut rng, &dev).unwrap();
        assert_eq!((m.latent, m.n_actions), (3, 4));
        let z = Tensor::new(&[[0.1f32, -0.2, 0.3], [1.0, 0.0, -1.0]], &dev).unwrap();
        let (z1, r, c) = m.step(&z, &[0, 3], false, &mut rng).unwrap();
        let (mu, _) = src.prior(&z, &[0, 3]).unwrap();
        assert_eq!(z1.to_vec2::<f32>().unwrap(), mu.to_vec2::<f32>().unwrap());
        let r0 = src.reward.forward(&mu).unwrap().squeeze(1).unwrap();
        assert_eq!(r.to_vec1::<f32>().unwrap(), r0.to_vec1::<f32>().unwrap());
        assert!(c.to_vec1::<f32>().unwrap().iter().all(|p| (0.0..=1.0).contains(p)));
        // sampled steps differ from the mean and are reproducible from the seed
        let a = m.step(&z, &[0, 3], true, &mut Rng::seed_from_u64(5)).unwrap().0.to_vec2::<f32>().unwrap();
        let b = m.step(&z, &[0, 3], true, &mut Rng::seed_from_u64(5)).unwrap().0.to_vec2::<f32>().unwrap();
        assert_eq!(a, b);
        assert_ne!(a, mu.to_vec2::<f32>().unwrap());
    }
}
