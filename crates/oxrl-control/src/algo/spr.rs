//! SPR — "Data-Efficient Reinforcement Learning with Self-Predictive Representations" (Schwarzer
//! et al., 2021), as in the authors' code (mila-iqia/spr), on a DQN agent over pixels:
//!
//! 1. z_0 = f(aug(o_t)); roll the action-conditioned transition model open-loop:
//!    z_{k+1} = renorm(ReLU(h(z_k, a_{t+k}))), k = 0..K−1 (encoder outputs are renormalised too:
//!    per-sample min-max to [0, 1]).
//! 2. Predictions ŷ_k = q(g(z_k)); targets ỹ_k = g̃(f̃(aug'(o_{t+k}))) from EMA copies of the encoder
//!    and projection (no gradient).
//! 3. l_k = ‖ŷ/‖ŷ‖ − ỹ/‖ỹ‖‖² (= 2 − 2 cos), masked after the first episode end in the window:
//!    mask_k = 1 − sign(Σ_{j<k} done_{t+j}) (an end at step j zeroes every k > j).
//! 4. Loss = TD loss + λ·mean_k masked l_k; after each step EMA_τ(f̃, f), EMA_τ(g̃, g).
//!
//! The Q head reads the same renormalised latent. Differences from the paper, for a 2-core CPU: an
//! MLP encoder over the flattened 3 × 16 × 16 image instead of the Nature CNN, a plain (not
//! distributional / dueling / noisy) Q head with ε-greedy and a target Q network, one-step TD,
//! uniform replay; `spr_weight = 0` is the same agent without SPR (the baseline). Augmentation is
//! a random shift (replicate-pad 1 pixel, random crop).

use super::{
    epsilon_greedy, linear_schedule, load_opt, load_state, read_tensors, save_opt, save_state, strip_prefix, Agent,
    IterStats, Progress,
};
use crate::blocks::normalized_l2;
use crate::dist::argmax_rows;
use crate::env::{Action, VecEnv};
use crate::nn::{rows, Activation, Init, Mlp, Params};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, D};
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_core::seed::Rng;
use rand::{Rng as _, SeedableRng};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `[spr]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SprConfig {
    /// λ (the paper's model_spr_weight); 0 = plain pixel DQN, the baseline.
    pub spr_weight: f64,
    /// K prediction steps (jumps).
    pub jumps: usize,
    /// EMA τ of the target encoder / projection (0.01: the target keeps 0.99).
    pub momentum_tau: f64,
    pub latent_dim: usize,
    pub encoder_hidden: usize,
    pub lr: f64,
    pub gamma: f64,
    pub batch_size: usize,
    pub buffer_size: usize,
    pub learning_starts: u64,
    pub train_frequency: u64,
    pub target_network_frequency: u64,
    pub start_e: f64,
    pub end_e: f64,
    pub exploration_fraction: f64,
    /// Random-shift augmentation (pad 1) of inputs and targets.
    pub augment: bool,
    pub image_side: usize,
    pub steps_per_iteration: u64,
}

impl Default for SprConfig {
    fn default() -> Self {
        Self {
            spr_weight: 5.0,
            jumps: 5,
            momentum_tau: 0.01,
            latent_dim: 64,
            encoder_hidden: 256,
            lr: 1e-3,
            gamma: 0.99,
            batch_size: 32,
            buffer_size: 20_000,
            learning_starts: 1000,
            train_frequency: 1,
            target_network_frequency: 200,
            start_e: 1.0,
            end_e: 0.05,
            exploration_fraction: 0.3,
            augment: true,
            image_side: 16,
            steps_per_iteration: 1000,
        }
    }
}

/// Per-row min-max renormalisation to [0, 1] (SPR's `renormalize`).
pub fn renormalize(x: &Tensor) -> Result<Tensor> {
    let min = x.min_keepdim(D::Minus1)?;
    let max = x.max_keepdim(D::Minus1)?;
    Ok(x.broadcast_sub(&min)?.broadcast_div(&((max - &min)? + 1e-5)?)?)
}

/// mask_k for k = 1..=K of one window: 1 until the first episode end at step j < k, then 0.
pub fn alive_mask(dones: &[bool], k_max: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(k_max);
    let mut ended = false;
    for k in 1..=k_max {
        ended |= dones.get(k - 1).copied().unwrap_or(true);
        out.push(if ended { 0.0 } else { 1.0 });
    }
    out
}

/// Random shift: replicate-pad a (3 × s × s) image by `pad` and crop back at a random offset.
pub fn random_shift(img: &[f32], side: usize, pad: usize, rng: &mut Rng) -> Vec<f32> {
    let (ox, oy) =
        (rng.random_range(0..=2 * pad) as i64 - pad as i64, rng.random_range(0..=2 * pad) as i64 - pad as i64);
    let c = img.len() / (side * side);
    let mut out = vec![0f32; img.len()];
    for ch in 0..c {
        for y in 0..side {
            for x in 0..side {
                let sx = (x as i64 + ox).clamp(0, side as i64 - 1) as usize;
                let sy = (y as i64 + oy).clamp(0, side as i64 - 1) as usize;
                out[ch * side * side + y * side + x] = img[ch * side * side + sy * side + sx];
            }
        }
    }
    out
}

struct Seq {
    obs: Vec<Vec<f32>>,
    act: Vec<usize>,
    rew: Vec<f32>,
    next: Vec<Vec<f32>>,
    term: Vec<bool>,
    end: Vec<bool>,
}

pub struct Spr {
    pub cfg: SprConfig,
    enc: Mlp,
    head: Mlp,
    trans: Mlp,
    proj: Mlp,
    pred: Mlp,
    online: Params,
    enc_t: Mlp,
    proj_t: Mlp,
    ema_target: Params,
    ema_source: Params,
    q_enc_t: Mlp,
    q_head_t: Mlp,
    q_target: Params,
    q_source: Params,
    opt: AdamW,
    seq: Seq,
    pos: usize,
    rng: Rng,
    dev: Device,
    n_actions: usize,
    global_step: u64,
}

impl Spr {
    pub fn new(cfg: SprConfig, envs: &VecEnv, seed: u64, dev: &Device) -> Result<Self> {
        let n_actions = match envs.action_space() {
            crate::env::Space::Discrete(n) => n,
            _ => bail!("spr needs a discrete action space"),
        };
        if envs.len() != 1 {
            bail!(
                "spr: the K-step prediction windows read one environment's transitions in order; set env.num_envs = 1 (got {})",
                envs.len()
            );
        }
        let obs_dim = envs.observation_space().dim();
        if cfg.augment && obs_dim != 3 * cfg.image_side * cfg.image_side {
            bail!("spr.augment: observations of {obs_dim} are not 3 × {0} × {0} images (set spr.image_side or spr.augment = false)", cfg.image_side);
        }
        if cfg.batch_size == 0
            || cfg.buffer_size <= cfg.jumps + 1
            || cfg.train_frequency == 0
            || cfg.target_network_frequency == 0
        {
            bail!("spr: batch_size, train_frequency, target_network_frequency must be positive and buffer_size > jumps + 1");
        }
        let mut init = oxrl_core::seed::rng(seed, "spr-init", 0);
        let l = cfg.latent_dim;
        let mut mk = |s: &[usize]| Mlp::new(s, Activation::Relu, Init::Uniform, &mut init, dev);
        let enc = mk(&[obs_dim, cfg.encoder_hidden, l])?;
        let head = mk(&[l, 64, n_actions])?;
        let trans = mk(&[l + n_actions, 64, l])?;
        let proj = mk(&[l, l])?;
        let pred = mk(&[l, l])?;
        let enc_t = mk(&[obs_dim, cfg.encoder_hidden, l])?;
        let proj_t = mk(&[l, l])?;
        let q_enc_t = mk(&[obs_dim, cfg.encoder_hidden, l])?;
        let q_head_t = mk(&[l, 64, n_actions])?;
        let online = Params(
            [enc.vars("enc"), head.vars("head"), trans.vars("trans"), proj.vars("proj"), pred.vars("pred")].concat(),
        );
        let ema_source = Params([enc.vars("enc"), proj.vars("proj")].concat());
        let ema_target = Params([enc_t.vars("enc"), proj_t.vars("proj")].concat());
        ema_target.copy_from(&ema_source)?;
        let q_source = Params([enc.vars("enc"), head.vars("head")].concat());
        let q_target = Params([q_enc_t.vars("enc"), q_head_t.vars("head")].concat());
        q_target.copy_from(&q_source)?;
        Ok(Self {
            opt: AdamW::new(online.vars(), AdamWConfig { eps: 1.5e-4, ..Default::default() })?,
            enc,
            head,
            trans,
            proj,
            pred,
            online,
            enc_t,
            proj_t,
            ema_target,
            ema_source,
            q_enc_t,
            q_head_t,
            q_target,
            q_source,
            seq: Seq {
                obs: Vec::new(),
                act: Vec::new(),
                rew: Vec::new(),
                next: Vec::new(),
                term: Vec::new(),
                end: Vec::new(),
            },
            pos: 0,
            rng: Rng::seed_from_u64(oxrl_core::seed::derive(seed, "spr", 0)),
            dev: dev.clone(),
            n_actions,
            global_step: 0,
            cfg,
        })
    }

    fn latent(&self, enc: &Mlp, x: &Tensor) -> Result<Tensor> {
        renormalize(&enc.forward(x)?)
    }

    fn push(&mut self, obs: Vec<f32>, a: usize, r: f64, next: Vec<f32>, term: bool, end: bool) {
        if self.seq.obs.len() < self.cfg.buffer_size {
            self.seq.obs.push(obs);
            self.seq.act.push(a);
            self.seq.rew.push(r as f32);
            self.seq.next.push(next);
            self.seq.term.push(term);
            self.seq.end.push(end);
        } else {
            let p = self.pos;
            self.seq.obs[p] = obs;
            self.seq.act[p] = a;
            self.seq.rew[p] = r as f32;
            self.seq.next[p] = next;
            self.seq.term[p] = term;
            self.seq.end[p] = end;
        }
        self.pos = (self.pos + 1) % self.cfg.buffer_size;
    }

    fn aug(&mut self, x: &[f32]) -> Vec<f32> {
        if self.cfg.augment {
            random_shift(x, self.cfg.image_side, 1, &mut self.rng)
        } else {
            x.to_vec()
        }
    }

    fn one_hot(&self, a: &[usize]) -> Result<Tensor> {
        let mut v = vec![0f32; a.len() * self.n_actions];
        for (i, &x) in a.iter().enumerate() {
            v[i * self.n_actions + x] = 1.0;
        }
        Ok(Tensor::from_vec(v, (a.len(), self.n_actions), &self.dev)?)
    }

    /// The SPR loss of windows starting at `starts` from their (online) latents `z0`.
    fn spr_loss(&mut self, starts: &[usize], z0: Tensor) -> Result<Tensor> {
        let (k, b) = (self.cfg.jumps, starts.len());
        let mut z = z0;
        let mut total: Option<Tensor> = None;
        for j in 1..=k {
            let aj: Vec<usize> = starts.iter().map(|&t| self.seq.act[t + j - 1]).collect();
            z = renormalize(&self.trans.forward(&Tensor::cat(&[&z, &self.one_hot(&aj)?], 1)?)?.relu()?)?;
            let yhat = self.pred.forward(&self.proj.forward(&z)?)?;
            let raw: Vec<Vec<f32>> = starts.iter().map(|&t| self.seq.obs[t + j].clone()).collect();
            let tgt_obs: Vec<Vec<f32>> = raw.iter().map(|x| self.aug(x)).collect();
            let ytil = self.proj_t.forward(&self.latent(&self.enc_t, &rows(&tgt_obs, &self.dev)?)?)?.detach();
            let mask: Vec<f32> = starts
                .iter()
                .map(|&t| alive_mask(&(t..t + j).map(|i| self.seq.end[i]).collect::<Vec<_>>(), j)[j - 1])
                .collect();
            let m = Tensor::from_vec(mask, b, &self.dev)?;
            let lk = (normalized_l2(&yhat, &ytil)? * m)?.mean_all()?;
            total = Some(match total {
                None => lk,
                Some(t) => (t + lk)?,
            });
        }
        Ok((total.context("spr: no jumps")? / k as f64)?)
    }

    /// One update: (TD loss, SPR loss).
    fn update(&mut self) -> Result<(f64, f64)> {
        let n = self.seq.obs.len();
        let k = self.cfg.jumps;
        let b = self.cfg.batch_size;
        // window starts whose K following rows are stored in order (not across the write point)
        let mut starts = Vec::with_capacity(b);
        while starts.len() < b {
            let t = self.rng.random_range(0..n);
            let ok = (0..=k).all(|j| {
                let i = t + j;
                i < n && (n < self.cfg.buffer_size || (i % self.cfg.buffer_size) != self.pos || j == 0)
            });
            if ok {
                starts.push(t);
            }
        }
        let o: Vec<Vec<f32>> =
            starts.iter().map(|&t| self.seq.obs[t].clone()).collect::<Vec<_>>().iter().map(|x| self.aug(x)).collect();
        let o2: Vec<Vec<f32>> = starts.iter().map(|&t| self.seq.next[t].clone()).collect();
        let a: Vec<usize> = starts.iter().map(|&t| self.seq.act[t]).collect();
        let r = Tensor::from_vec(starts.iter().map(|&t| self.seq.rew[t]).collect::<Vec<_>>(), b, &self.dev)?;
        let done = Tensor::from_vec(
            starts.iter().map(|&t| if self.seq.term[t] { 1f32 } else { 0.0 }).collect::<Vec<_>>(),
            b,
            &self.dev,
        )?;
        let ot = rows(&o, &self.dev)?;
        let z0 = self.latent(&self.enc, &ot)?;
        // TD
        let q_next =
            self.q_head_t.forward(&renormalize(&self.q_enc_t.forward(&rows(&o2, &self.dev)?)?)?)?.max(D::Minus1)?;
        let y = (&r + ((q_next * (done.neg()? + 1.0)?)? * self.cfg.gamma)?)?.detach();
        let at = Tensor::from_vec(a.iter().map(|&x| x as u32).collect::<Vec<_>>(), (b, 1), &self.dev)?;
        let q = self.head.forward(&z0)?.gather(&at, 1)?.squeeze(1)?;
        let td = (&q - &y)?.sqr()?.mean_all()?;
        let mut loss = td.clone();
        let mut spr_v = 0.0;
        if self.cfg.spr_weight > 0.0 && k > 0 {
            let spr = self.spr_loss(&starts, z0)?;
            spr_v = spr.to_scalar::<f32>()? as f64;
            loss = (loss + (spr * self.cfg.spr_weight)?)?;
        }
        self.opt.step(&loss.backward()?, self.cfg.lr, 10.0)?;
        self.ema_target.ema_from(&self.ema_source, self.cfg.momentum_tau)?;
        Ok((td.to_scalar::<f32>()? as f64, spr_v))
    }
}

impl Agent for Spr {
    fn name(&self) -> &'static str {
        "spr"
    }

    fn iterate(&mut self, envs: &mut VecEnv, progress: Progress) -> Result<IterStats> {
        let n = envs.len();
        let mut stats = IterStats::default();
        let (mut td_sum, mut spr_sum, mut k) = (0.0, 0.0, 0usize);
        let mut eps = 0.0;
        let mut taken = 0;
        while taken < self.cfg.steps_per_iteration {
            eps = linear_schedule(
                self.cfg.start_e,
                self.cfg.end_e,
                self.cfg.exploration_fraction * progress.total_steps as f64,
                self.global_step as f64,
            );
            let obs = envs.obs().to_vec();
            let greedy = argmax_rows(&self.head.forward(&self.latent(&self.enc, &rows(&obs, &self.dev)?)?)?)?;
            let acts = epsilon_greedy(&greedy, eps, self.n_actions, &mut self.rng);
            let step = envs.step(&acts.iter().map(|&a| Action::Discrete(a)).collect::<Vec<_>>())?;
            for i in 0..n {
                let next = step.final_obs[i].clone().unwrap_or_else(|| step.obs[i].clone());
                self.push(
                    obs[i].clone(),
                    acts[i],
                    step.rewards[i],
                    next,
                    step.terminated[i],
                    step.terminated[i] || step.truncated[i],
                );
            }
            stats.episodes.extend(step.finished.iter().copied());
            for _ in 0..n {
                self.global_step += 1;
                taken += 1;
                if self.global_step > self.cfg.learning_starts
                    && self.global_step.is_multiple_of(self.cfg.train_frequency)
                {
                    let (td, spr) = self.update()?;
                    td_sum += td;
                    spr_sum += spr;
                    k += 1;
                }
                if self.global_step.is_multiple_of(self.cfg.target_network_frequency) {
                    self.q_target.copy_from(&self.q_source)?;
                }
            }
        }
        stats.env_steps = taken;
        stats.metrics.push(("epsilon".into(), eps));
        if k > 0 {
            stats.metrics.push(("td_loss".into(), td_sum / k as f64));
            stats.metrics.push(("spr_loss".into(), spr_sum / k as f64));
        }
        Ok(stats)
    }

    fn act(&mut self, obs: &[Vec<f32>], _deterministic: bool) -> Result<Vec<Action>> {
        let g = argmax_rows(&self.head.forward(&self.latent(&self.enc, &rows(obs, &self.dev)?)?)?)?;
        Ok(g.into_iter().map(Action::Discrete).collect())
    }

    fn save(&self, dir: &Path) -> Result<()> {
        // the replay of pixel windows is not checkpointed: a resumed SPR run refills it
        self.online.save(&dir.join("model.safetensors"))?;
        let mut t = self.ema_target.tensors();
        t.extend(self.q_target.tensors().into_iter().map(|(k, v)| (format!("q_target.{k}"), v)));
        let t: std::collections::HashMap<String, Tensor> =
            t.into_iter().map(|(k, v)| (format!("target.{k}"), v)).collect();
        candle_core::safetensors::save(&t, dir.join("targets.safetensors"))?;
        save_opt(&self.opt, &dir.join("optimizer.safetensors"))?;
        save_state(dir, &self.rng, self.global_step)
    }

    fn load(&mut self, dir: &Path, with_state: bool) -> Result<()> {
        self.online.load_file(&dir.join("model.safetensors"))?;
        if with_state {
            let p = dir.join("targets.safetensors");
            let m = read_tensors(&p)?;
            self.q_target.load(&strip_prefix(&m, "target.q_target."), &p.display().to_string())?;
            self.ema_target.load(&strip_prefix(&m, "target."), &p.display().to_string())?;
            load_opt(&mut self.opt, &dir.join("optimizer.safetensors"))?;
            self.global_step = load_state(dir, &mut self.rng)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renormalize_maps_rows_to_unit_range() {
        let x = Tensor::new(&[[3.0f32, -1.0, 7.0], [0.5, 0.25, 0.0]], &Device::Cpu).unwrap();
        for r in renormalize(&x).unwrap().to_vec2::<f32>().unwrap() {
            let (mn, mx) = r.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            assert!(mn.abs() < 1e-6 && (mx - 1.0).abs() < 1e-4, "{r:?}");
        }
    }

    #[test]
    fn windows_need_one_environment_in_order() {
        let two = VecEnv::make("pixelgrid-clean", 2, 0).unwrap();
        let e = Spr::new(SprConfig::default(), &two, 0, &Device::Cpu).err().unwrap();
        assert!(e.to_string().contains("num_envs = 1"), "{e}");
        assert!(
            Spr::new(SprConfig::default(), &VecEnv::make("pixelgrid-clean", 1, 0).unwrap(), 0, &Device::Cpu).is_ok()
        );
    }

    #[test]
    fn alive_mask_zeroes_every_step_after_the_first_end() {
        // K = 5, done at index 1 of the window (the second transition): k = 2..5 masked
        assert_eq!(alive_mask(&[false, true, false, false, false], 5), vec![1.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(alive_mask(&[false, false, true, false, false], 5), vec![1.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(alive_mask(&[false; 5], 5), vec![1.0; 5]);
    }

    #[test]
    fn random_shift_keeps_shape_and_content_up_to_one_pixel() {
        let mut rng = Rng::seed_from_u64(0);
        let mut img = vec![0f32; 3 * 16 * 16];
        img[5 * 16 + 5] = 1.0;
        for _ in 0..20 {
            let s = random_shift(&img, 16, 1, &mut rng);
            assert_eq!(s.len(), img.len());
            let (i, _) = s.iter().enumerate().find(|(_, &v)| v == 1.0).unwrap();
            let (y, x) = (i / 16, i % 16);
            assert!((y as i64 - 5).abs() <= 1 && (x as i64 - 5).abs() <= 1);
        }
    }

    #[test]
    fn target_encoder_gets_no_gradient_and_ema_moves_it_by_tau() {
        let mut envs = VecEnv::make("pixelgrid-clean", 1, 0).unwrap();
        let cfg =
            SprConfig { buffer_size: 300, learning_starts: 10_000, steps_per_iteration: 200, ..Default::default() };
        let mut a = Spr::new(cfg, &envs, 0, &Device::Cpu).unwrap();
        a.iterate(&mut envs, Progress { global_step: 0, total_steps: 1000 }).unwrap();
        let starts = [0usize, 10, 50];
        let o: Vec<Vec<f32>> = starts.iter().map(|&t| a.seq.obs[t].clone()).collect();
        let z0 = a.latent(&a.enc, &rows(&o, &a.dev).unwrap()).unwrap();
        let g = a.spr_loss(&starts, z0).unwrap().backward().unwrap();
        for (name, v) in &a.ema_target.0 {
            assert!(g.get(v.as_tensor()).is_none(), "target {name} got a gradient");
        }
        for (name, v) in &a.ema_source.0 {
            assert!(g.get(v.as_tensor()).is_some(), "online {name} got none");
        }
        let tgt0 = a.ema_target.0[0].1.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let src0 = a.ema_source.0[0].1.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        a.ema_target.ema_from(&a.ema_source, 0.01).unwrap();
        let tgt1 = a.ema_target.0[0].1.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for i in 0..5 {
            assert!((tgt1[i] - (0.99 * tgt0[i] + 0.01 * src0[i])).abs() < 1e-6);
        }
    }
}
