//! Representation pre-training for pixel control, and the study that compares objectives: an
//! encoder φ(o) is pre-trained on random-policy episodes of the distractor gridworld with one
//! objective, frozen, and an online learner (DQN or PPO) is trained on φ(o) instead of pixels
//! (`[repr] objective = …` in a control config). The no-auxiliary baseline is the same learner on
//! raw pixels, trained end to end (`objective = "none"`).
//!
//! Objectives, one file each:
//! - [`autoencoder`], [`forward_model`], [`temporal_contrastive`] — the three video-only
//!   objectives of "Towards Principled Representation Learning from Videos for RL" (2024);
//! - [`inverse_dynamics`] — the action-conditioned comparator of that study (multi-step inverse
//!   dynamics, as in ACRO, "Agent-Controller Representations", 2022);
//! - [`repo`] — RePo's reward + constrained-KL latent model ("Resilient Model-Based RL by
//!   Regularizing Posterior Predictability", 2023);
//! - [`infopower`] — InfoPower's InfoNCE + empowerment model ("INFOrmation Prioritization through
//!   EmPOWERment in Visual Model-Based RL", 2022).
//!
//! After pre-training, linear probes (ridge regression, [`probe`]) on held-out episodes report how
//! well φ(o) decodes the agent's, the goal's and a distractor's (x, y) cell, as R².

pub mod autoencoder;
pub mod forward_model;
pub mod infopower;
pub mod inverse_dynamics;
pub mod probe;
pub mod repo;
pub mod repo_align;
pub mod temporal_contrastive;
pub mod video;
pub mod world_model;

use crate::env::pixel_grid::{Noise, Variant};
use crate::env::{Action, Env, EnvState, Space, Step};
use crate::nn::{rows, Activation, Init, Mlp, Params};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var};
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_core::seed::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use video::Video;

pub const OBJECTIVES: &[&str] = &["none", "autoencoder", "forward", "contrastive", "inverse", "repo", "infopower"];

/// `[repr]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReprConfig {
    /// One of [`OBJECTIVES`]; `none` = no pre-training (the learner reads pixels).
    pub objective: String,
    pub latent_dim: usize,
    pub hidden: usize,
    /// Frames of random-policy episodes to pre-train on.
    pub video_frames: usize,
    /// Frames of separate episodes for the probes (half fit, half scored).
    pub probe_frames: usize,
    pub pretrain_steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub max_grad_norm: f64,
    /// Largest offset k of the forward-model, contrastive and inverse-dynamics pairs.
    pub k_max: usize,
    /// Ridge λ of the linear probes.
    pub probe_ridge: f64,
    pub log_every: usize,
    pub repo: repo::RepoConfig,
    pub infopower: infopower::InfoPowerConfig,
    /// RePo's test-time alignment (`oxrl control align`).
    pub align: repo_align::AlignConfig,
    /// Keep the latent world model (transition prior, reward and a continuation head trained
    /// alongside) with the frozen encoder — set by the trainer for `algo = "dreamer"`.
    #[serde(skip)]
    pub keep_world_model: bool,
}

impl Default for ReprConfig {
    fn default() -> Self {
        Self {
            objective: "none".into(),
            latent_dim: 32,
            hidden: 256,
            video_frames: 20_000,
            probe_frames: 6_000,
            pretrain_steps: 3_000,
            batch_size: 128,
            lr: 1e-3,
            max_grad_norm: 10.0,
            k_max: 3,
            probe_ridge: 1e-2,
            log_every: 250,
            repo: repo::RepoConfig::default(),
            infopower: infopower::InfoPowerConfig::default(),
            align: repo_align::AlignConfig::default(),
            keep_world_model: false,
        }
    }
}

impl ReprConfig {
    pub fn enabled(&self) -> bool {
        self.objective != "none"
    }
    pub fn validate(&self) -> Result<()> {
        if !OBJECTIVES.contains(&self.objective.as_str()) {
            bail!("repr.objective: unknown objective {:?} (one of {})", self.objective, OBJECTIVES.join(", "));
        }
        if self.latent_dim == 0 || self.hidden == 0 || self.batch_size < 2 || self.k_max == 0 || self.log_every == 0 {
            bail!("repr: latent_dim, hidden, k_max and log_every must be positive and batch_size at least 2");
        }
        if self.probe_frames < 100 {
            bail!("repr.probe_frames: need at least 100 frames");
        }
        if !self.infopower.bonus.is_finite() {
            bail!("repr.infopower.bonus must be finite");
        }
        self.repo.validate()?;
        self.align.validate()
    }
}

/// The pixel-grid world of an environment name (`pixelgrid-exogenous-sparse` → exogenous noise,
/// sparse layout).
pub fn pixel_variant(env_name: &str) -> Result<Variant> {
    if !env_name.to_ascii_lowercase().starts_with("pixelgrid") {
        bail!("representation pre-training needs a pixel-grid environment (pixelgrid-*), not {env_name:?}");
    }
    Variant::parse(env_name)
}

/// The pixel-grid noise mode of an environment name (`pixelgrid-exogenous` → Exogenous).
pub fn pixel_noise(env_name: &str) -> Result<Noise> {
    Ok(pixel_variant(env_name)?.noise)
}

/// Whether a pixel-grid environment renders in the shifted palette (`pixelgrid-<noise>-recolor`).
pub fn pixel_recolored(env_name: &str) -> bool {
    pixel_variant(env_name).is_ok_and(|v| v.recolor)
}

/// softplus(x) = max(x, 0) + log(1 + e^{−|x|}), stable for any x.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    Ok((x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
}

/// φ: an MLP from pixels to a latent; stochastic encoders output (μ, σ = softplus(·) + 0.1) and
/// use μ as the feature.
pub struct Encoder {
    pub net: Mlp,
    pub latent: usize,
    pub stochastic: bool,
}

impl Encoder {
    pub fn new(
        input: usize,
        hidden: usize,
        latent: usize,
        stochastic: bool,
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<Self> {
        let out = if stochastic { 2 * latent } else { latent };
        let net = Mlp::new(&[input, hidden, out], Activation::Relu, Init::Uniform, rng, dev)?;
        Ok(Self { net, latent, stochastic })
    }
    /// (μ, σ) of a batch of frames; σ is None for deterministic encoders.
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Option<Tensor>)> {
        let h = self.net.forward(x)?;
        if !self.stochastic {
            return Ok((h, None));
        }
        let mu = h.narrow(1, 0, self.latent)?;
        let sd = (softplus(&h.narrow(1, self.latent, self.latent)?)? + 0.1)?;
        Ok((mu, Some(sd)))
    }
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward(x)?.0)
    }
    /// A reparameterised sample μ + σ·ε (μ for deterministic encoders).
    pub fn sample(&self, x: &Tensor, rng: &mut Rng) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let (mu, sd) = self.forward(x)?;
        match &sd {
            Some(s) => {
                let eps = crate::dist::normal_noise(mu.dims2()?, rng, mu.device())?;
                Ok(((&mu + (s * eps)?)?, mu, sd))
            }
            None => Ok((mu.clone(), mu, None)),
        }
    }
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.net.vars("encoder")
    }
    /// A trainable copy with its own parameters (the same architecture and values).
    pub fn duplicate(&self, dev: &Device) -> Result<Self> {
        let dims = self.net.layers[0].w.dims();
        let mut rng = oxrl_core::seed::rng(0, "encoder-shape", 0);
        let copy = Self::new(dims[0], dims[1], self.latent, self.stochastic, &mut rng, dev)?;
        Params(copy.vars()).copy_from(&Params(self.vars()))?;
        Ok(copy)
    }
}

/// Frames `idx` of `video` as a (len × frame_dim) tensor.
pub(crate) fn frames(video: &Video, idx: &[usize], dev: &Device) -> Result<Tensor> {
    Ok(Tensor::from_vec(video.gather(idx), (idx.len(), video.frame_dim), dev)?)
}

/// One-hot rows (len × n) of indices.
pub(crate) fn one_hot(idx: &[usize], n: usize, dev: &Device) -> Result<Tensor> {
    let mut v = vec![0f32; idx.len() * n];
    for (r, &i) in idx.iter().enumerate() {
        v[r * n + i] = 1.0;
    }
    Ok(Tensor::from_vec(v, (idx.len(), n), dev)?)
}

/// A latent transition of a stochastic encoder on a batch: a sample s_t ~ q(·|o_t) and its mean
/// μ_t, the frames o_{t+1}, a sample s_{t+1} ~ q(·|o_{t+1}) and that posterior's (μ, σ).
pub(crate) struct LatentStep {
    pub s_t: Tensor,
    pub mu_t: Tensor,
    pub x1: Tensor,
    pub s_t1: Tensor,
    pub mu_q: Tensor,
    pub sd_q: Tensor,
}

pub(crate) fn latent_step(
    enc: &Encoder,
    data: &Video,
    tr: &video::Transitions,
    rng: &mut Rng,
    dev: &Device,
) -> Result<LatentStep> {
    let (s_t, mu_t, _) = enc.sample(&frames(data, &tr.t, dev)?, rng)?;
    let x1 = frames(data, &tr.t1, dev)?;
    let (s_t1, mu_q, sd_q) = enc.sample(&x1, rng)?;
    let sd_q = sd_q.ok_or_else(|| anyhow::anyhow!("this objective needs a stochastic encoder"))?;
    Ok(LatentStep { s_t, mu_t, x1, s_t1, mu_q, sd_q })
}

/// What an objective adds to the encoder: its own heads and a loss on one sampled batch.
pub trait Objective {
    /// Parameters trained jointly with the encoder (decoders, classifiers, models).
    fn vars(&self) -> Vec<(String, Var)>;
    /// The loss of one batch, and named scalars to log.
    fn loss(&mut self, enc: &Encoder, data: &Video, rng: &mut Rng) -> Result<(Tensor, Vec<(String, f64)>)>;
    /// Called after every optimiser step with that step's scalars (dual variables update here).
    fn after_step(&mut self, _metrics: &[(String, f64)]) -> Result<()> {
        Ok(())
    }
    /// The inverse-dynamics model q(a | z_t, z_{t+1}) to keep with the frozen encoder for a
    /// policy bonus (InfoPower's empowerment); none by default.
    fn inverse_model(&self) -> Option<&Mlp> {
        None
    }
    /// The latent transition model (latent + one-hot action → 2·latent, a Gaussian prior) and
    /// the reward head R(z_{t+1}) a Dreamer-style learner imagines with; none by default.
    fn world_model(&self) -> Option<(&Mlp, &Mlp)> {
        None
    }
}

fn build_objective(
    cfg: &ReprConfig,
    frame_dim: usize,
    n_actions: usize,
    rng: &mut Rng,
    dev: &Device,
) -> Result<(Encoder, Box<dyn Objective>)> {
    let d = cfg.latent_dim;
    let stochastic = matches!(cfg.objective.as_str(), "repo" | "infopower");
    let enc = Encoder::new(frame_dim, cfg.hidden, d, stochastic, rng, dev)?;
    let h = cfg.hidden;
    let b = cfg.batch_size;
    let obj: Box<dyn Objective> = match cfg.objective.as_str() {
        "autoencoder" => Box::new(autoencoder::Autoencoder::new(d, h, frame_dim, b, rng, dev)?),
        "forward" => Box::new(forward_model::ForwardModel::new(d, h, frame_dim, cfg.k_max, b, rng, dev)?),
        "contrastive" => Box::new(temporal_contrastive::TemporalContrastive::new(d, h, cfg.k_max, b, rng, dev)?),
        "inverse" => Box::new(inverse_dynamics::InverseDynamics::new(d, h, n_actions, cfg.k_max, b, rng, dev)?),
        "repo" => Box::new(repo::Repo::new(cfg.repo.clone(), d, h, frame_dim, n_actions, b, rng, dev)?),
        "infopower" => {
            Box::new(infopower::InfoPower::new(cfg.infopower.clone(), d, h, frame_dim, n_actions, b, rng, dev)?)
        }
        other => bail!("repr.objective: {other:?} has no pre-training"),
    };
    Ok((enc, obj))
}

/// A pre-trained encoder, frozen, with the per-dimension mean and standard deviation of its
/// features on the pre-training frames (features are standardised with them).
pub struct FrozenEncoder {
    pub enc: Encoder,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// InfoPower's inverse model q(a | z_t, z_{t+1}) on raw latent means (the empowerment bonus).
    pub inverse: Option<Mlp>,
    /// The latent world model (RePo, InfoPower with `keep_world_model`) on raw latents.
    pub model: Option<world_model::LatentModel>,
    dev: Device,
}

impl FrozenEncoder {
    /// Another encoder behind this one's feature standardisation (RePo's aligned target encoder).
    /// The world model stays: the aligned encoder maps into the source latent space.
    pub fn with_encoder(&self, enc: Encoder) -> Result<Self> {
        let model = match &self.model {
            Some(m) => Some(m.duplicate(&self.dev)?),
            None => None,
        };
        Ok(Self { enc, mean: self.mean.clone(), std: self.std.clone(), inverse: None, model, dev: self.dev.clone() })
    }
    /// The feature statistics as (1 × d) rows: (mean, std).
    fn stat_rows(&self) -> Result<(Tensor, Tensor)> {
        Ok((
            Tensor::new(self.mean.as_slice(), &self.dev)?.unsqueeze(0)?,
            Tensor::new(self.std.as_slice(), &self.dev)?.unsqueeze(0)?,
        ))
    }
    /// Standardise raw latents (B × d) on the device: (z − mean) / std.
    pub fn standardise_tensor(&self, raw: &Tensor) -> Result<Tensor> {
        let (m, s) = self.stat_rows()?;
        Ok(raw.broadcast_sub(&m)?.broadcast_div(&s)?)
    }
    /// Raw latents of standardised features (B × d): f · std + mean.
    pub fn unstandardise_tensor(&self, feats: &Tensor) -> Result<Tensor> {
        let (m, s) = self.stat_rows()?;
        Ok(feats.broadcast_mul(&s)?.broadcast_add(&m)?)
    }
    /// Raw latent means of a batch of frames (what the inverse model reads).
    pub fn raw_batch(&self, frames: &[Vec<f32>]) -> Result<Tensor> {
        self.enc.features(&rows(frames, &self.dev)?)
    }
    /// InfoPower's per-transition empowerment estimate log q(a | z, z') − log π(a | z) under the
    /// uniform behaviour policy, for raw latent means `z`, `z1` (1 × d) and action `a` of `n`;
    /// `centred` subtracts its maximum log n, so the bonus is never positive.
    pub fn empowerment_bonus(&self, z: &Tensor, z1: &Tensor, a: usize, n: usize, centred: bool) -> Result<f64> {
        let inv = self.inverse.as_ref().context(
            "the encoder has no inverse model (saved before InfoPower's bonus existed): set repr.infopower.bonus = 0",
        )?;
        let logits = inv.forward(&Tensor::cat(&[z, z1], 1)?)?;
        let lq = crate::dist::log_softmax(&logits)?.to_vec2::<f32>()?[0][a] as f64;
        let log_n = (n as f64).ln();
        Ok(if centred { lq } else { lq + log_n })
    }
    /// Standardised features of a batch of frames.
    pub fn encode_batch(&self, frames: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        self.standardise(&self.raw_batch(frames)?)
    }
    /// Standardise raw latent means (rows of `raw`) with the pre-training statistics.
    pub fn standardise(&self, raw: &Tensor) -> Result<Vec<Vec<f32>>> {
        Ok(raw
            .to_vec2::<f32>()?
            .into_iter()
            .map(|r| r.iter().enumerate().map(|(i, v)| (v - self.mean[i]) / self.std[i]).collect())
            .collect())
    }
    pub fn encode(&self, frame: &[f32]) -> Result<Vec<f32>> {
        Ok(self.encode_batch(&[frame.to_vec()])?.remove(0))
    }
    /// Raw features of `video` frames `idx` in chunks.
    fn raw_features(enc: &Encoder, video: &Video, idx: &[usize], dev: &Device) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(idx.len());
        for chunk in idx.chunks(1024) {
            let x = Tensor::from_vec(video.gather(chunk), (chunk.len(), video.frame_dim), dev)?;
            out.extend(enc.features(&x)?.to_vec2::<f32>()?);
        }
        Ok(out)
    }
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut map = Params(self.enc.vars()).tensors();
        if let Some(inv) = &self.inverse {
            map.extend(Params(inv.vars("inverse")).tensors());
        }
        if let Some(m) = &self.model {
            map.extend(Params(m.vars()).tensors());
        }
        map.insert("feature_mean".into(), Tensor::new(self.mean.as_slice(), &Device::Cpu)?);
        map.insert("feature_std".into(), Tensor::new(self.std.as_slice(), &Device::Cpu)?);
        oxrl_core::fsutil::write_atomic_with(path, |tmp| Ok(candle_core::safetensors::save(&map, tmp)?))
    }
    /// Load an encoder saved by [`FrozenEncoder::save`] with the architecture `cfg` describes.
    pub fn load(path: &Path, cfg: &ReprConfig, frame_dim: usize, dev: &Device) -> Result<Self> {
        let map = candle_core::safetensors::load(path, &Device::Cpu)
            .with_context(|| format!("reading the pre-trained encoder {}", path.display()))?;
        let stochastic = matches!(cfg.objective.as_str(), "repo" | "infopower");
        let mut rng = oxrl_core::seed::rng(0, "encoder-shape", 0);
        let enc = Encoder::new(frame_dim, cfg.hidden, cfg.latent_dim, stochastic, &mut rng, dev)?;
        Params(enc.vars()).load(&map, &path.display().to_string())?;
        let vec = |k: &str| -> Result<Vec<f32>> {
            let t = map.get(k).with_context(|| format!("{}: missing {k}", path.display()))?;
            let v = t.to_vec1::<f32>()?;
            if v.len() != cfg.latent_dim {
                bail!("{}: {k} has {} entries, expected {}", path.display(), v.len(), cfg.latent_dim);
            }
            Ok(v)
        };
        // InfoPower's inverse model travels with its encoder (encoders saved before the bonus
        // existed have none: a bonus then fails with a message naming the key)
        let inverse = if cfg.objective == "infopower" {
            let n_actions = 4;
            let inv =
                Mlp::new(&[2 * cfg.latent_dim, cfg.hidden, n_actions], Activation::Relu, Init::Uniform, &mut rng, dev)?;
            load_if_saved(&Params(inv.vars("inverse")), &map, path)?.then_some(inv)
        } else {
            None
        };
        // the world model travels with its encoder when the run kept one (algo = "dreamer")
        let model = if stochastic {
            let m = world_model::LatentModel::new(cfg.latent_dim, cfg.hidden, 4, &mut rng, dev)?;
            load_if_saved(&Params(m.vars()), &map, path)?.then_some(m)
        } else {
            None
        };
        Ok(Self { mean: vec("feature_mean")?, std: vec("feature_std")?, inverse, model, enc, dev: dev.clone() })
    }
}

/// Load `params` from `map` when the file saved all of them (parts a run keeps only sometimes:
/// InfoPower's inverse model, a Dreamer run's world model); false when none or some are missing.
fn load_if_saved(params: &Params, map: &std::collections::HashMap<String, Tensor>, path: &Path) -> Result<bool> {
    if !params.0.iter().all(|(k, _)| map.contains_key(k)) {
        return Ok(false);
    }
    params.load(map, &path.display().to_string())?;
    Ok(true)
}

/// Held-out probes of a representation for the agent's, the goal's and the first distractor's
/// cell: linear-probe R² of the (x, y) coordinates and 5-nearest-neighbour accuracy of the cell
/// (chance 1/64 on the 8 × 8 grid).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProbeReport {
    pub agent_r2: f64,
    pub goal_r2: f64,
    pub agent_knn: f64,
    pub goal_knn: f64,
    /// None without distractors.
    pub distractor_r2: Option<f64>,
    pub distractor_knn: Option<f64>,
}

/// Probe standardised features on `probe` (the first half of its episodes fit, the rest score).
pub fn probe_features(feats: &[Vec<f32>], probe: &Video, ridge: f64) -> Result<ProbeReport> {
    let (fit, score) = probe.split(0.5);
    if fit.is_empty() || score.is_empty() {
        bail!("probe: too few episodes to split");
    }
    let xs = |idx: &[usize]| idx.iter().map(|&t| feats[t].clone()).collect::<Vec<_>>();
    let (fx, sx) = (xs(&fit), xs(&score));
    let run = |cells: &dyn Fn(usize) -> (i64, i64)| -> Result<(f64, f64)> {
        let xy = |idx: &[usize]| idx.iter().map(|&t| vec![cells(t).0 as f64, cells(t).1 as f64]).collect::<Vec<_>>();
        let id = |idx: &[usize]| idx.iter().map(|&t| (cells(t).1 * 64 + cells(t).0) as usize).collect::<Vec<_>>();
        Ok((
            probe::ridge_r2(&fx, &xy(&fit), &sx, &xy(&score), ridge)?,
            probe::knn_accuracy(&fx, &id(&fit), &sx, &id(&score), 5)?,
        ))
    };
    let (agent_r2, agent_knn) = run(&|t| probe.agent[t])?;
    let (goal_r2, goal_knn) = run(&|t| probe.goal[t])?;
    let (distractor_r2, distractor_knn) = if probe.distractor.iter().all(|d| d.is_some()) {
        let (a, b) = run(&|t| probe.distractor[t].unwrap())?;
        (Some(a), Some(b))
    } else {
        (None, None)
    };
    Ok(ProbeReport { agent_r2, goal_r2, agent_knn, goal_knn, distractor_r2, distractor_knn })
}

/// Pre-train an encoder with `cfg.objective` on `noise`-mode gridworld episodes; logs a record
/// every `log_every` steps (`pretrain_step`, `pretrain_loss` and the objective's scalars) and one
/// with the probes (`probe_agent_r2`, `probe_agent_knn`, … for goal and distractor).
pub fn pretrain(
    cfg: &ReprConfig,
    noise: Noise,
    seed: u64,
    dev: &Device,
    log: &mut dyn FnMut(&serde_json::Value) -> Result<()>,
) -> Result<(FrozenEncoder, ProbeReport)> {
    pretrain_in(cfg, Variant::of(noise), seed, dev, log)
}

/// [`pretrain`] in any pixel-grid world (palette, layout).
pub fn pretrain_in(
    cfg: &ReprConfig,
    world: Variant,
    seed: u64,
    dev: &Device,
    log: &mut dyn FnMut(&serde_json::Value) -> Result<()>,
) -> Result<(FrozenEncoder, ProbeReport)> {
    cfg.validate()?;
    let video = Video::collect_in(world, cfg.video_frames, oxrl_core::seed::derive(seed, "video", 0))?;
    let mut rng = oxrl_core::seed::rng(seed, "pretrain", 0);
    let (enc, mut obj) = build_objective(cfg, video.frame_dim, video.n_actions, &mut rng, dev)?;
    let mut vars = enc.vars();
    vars.extend(obj.vars());
    let mut opt = AdamW::new(vars, AdamWConfig::default())?;
    let mut cont = match cfg.keep_world_model {
        true if obj.world_model().is_none() => {
            bail!("repr.objective {:?} has no latent world model to imagine in (use repo or infopower)", cfg.objective)
        }
        true => Some(world_model::ContinuationTrainer::new(cfg.latent_dim, cfg.hidden, cfg.batch_size, seed, dev)?),
        false => None,
    };
    let mut acc: Vec<(String, f64)> = Vec::new();
    let mut n_acc = 0usize;
    for step in 1..=cfg.pretrain_steps {
        let (loss, mut metrics) = obj.loss(&enc, &video, &mut rng)?;
        let grads = loss.backward()?;
        let info = opt.step(&grads, cfg.lr, cfg.max_grad_norm)?;
        metrics.insert(0, ("pretrain_loss".into(), loss.to_scalar::<f32>()? as f64));
        // a non-finite gradient leaves the parameters untouched; count such steps
        metrics.push(("skipped_updates".into(), info.skipped as u8 as f64));
        obj.after_step(&metrics)?;
        if let Some(c) = cont.as_mut() {
            metrics.push(("continuation_bce".into(), c.step(&enc, &video, cfg.lr, cfg.max_grad_norm)?));
        }
        if acc.is_empty() {
            acc = metrics.iter().map(|(k, _)| (k.clone(), 0.0)).collect();
        }
        for (a, (_, v)) in acc.iter_mut().zip(&metrics) {
            a.1 += v;
        }
        n_acc += 1;
        if step % cfg.log_every == 0 || step == cfg.pretrain_steps {
            let mut rec = json!({"pretrain_step": step});
            for (k, v) in &acc {
                let m = v / n_acc as f64;
                if m.is_finite() {
                    rec[k] = json!(m);
                }
            }
            log(&rec)?;
            acc.clear();
            n_acc = 0;
        }
    }
    // standardise with the pre-training frames' statistics
    let all: Vec<usize> = (0..video.len()).collect();
    let feats = FrozenEncoder::raw_features(&enc, &video, &all, dev)?;
    let d = cfg.latent_dim;
    let n = feats.len() as f64;
    let mut mean = vec![0f64; d];
    let mut var = vec![0f64; d];
    for f in &feats {
        for i in 0..d {
            mean[i] += f[i] as f64 / n;
        }
    }
    for f in &feats {
        for i in 0..d {
            var[i] += (f[i] as f64 - mean[i]).powi(2) / n;
        }
    }
    let inverse = match obj.inverse_model() {
        Some(m) => Some(world_model::copy_mlp(m, &mut rng, dev)?),
        None => None,
    };
    let model = match (cont, obj.world_model()) {
        (Some(c), Some((trans, reward))) => {
            Some(world_model::LatentModel::from_heads(trans, reward, c.head, &mut rng, dev)?)
        }
        _ => None,
    };
    let frozen = FrozenEncoder {
        mean: mean.iter().map(|&m| m as f32).collect(),
        std: var.iter().map(|&v| (v.sqrt().max(1e-6)) as f32).collect(),
        inverse,
        model,
        enc,
        dev: dev.clone(),
    };
    let probe_video = Video::collect_in(world, cfg.probe_frames, oxrl_core::seed::derive(seed, "probe-video", 0))?;
    let mut pf = Vec::with_capacity(probe_video.len());
    for chunk in (0..probe_video.len()).collect::<Vec<_>>().chunks(1024) {
        let frames: Vec<Vec<f32>> = chunk.iter().map(|&t| probe_video.frame(t).to_vec()).collect();
        pf.extend(frozen.encode_batch(&frames)?);
    }
    let report = probe_features(&pf, &probe_video, cfg.probe_ridge)?;
    let mut rec = json!({"pretrain_step": cfg.pretrain_steps});
    if let Some(m) = &frozen.model {
        // how long the world model's imagination stays true (k = 1, 5, 15 steps, held out)
        let f = world_model::fidelity(m, &frozen.enc, &probe_video, &[1, 5, 15], 2000)?;
        rec["model_reward_corr_posterior"] = json!(f.reward_corr_posterior);
        for (i, k) in f.k.iter().enumerate() {
            rec[format!("model_latent_r2_k{k}")] = json!(f.latent_r2[i]);
            rec[format!("model_reward_corr_k{k}")] = json!(f.reward_corr[i]);
        }
    }
    if let serde_json::Value::Object(m) = serde_json::to_value(report)? {
        for (k, v) in m {
            if !v.is_null() {
                rec[format!("probe_{k}")] = v;
            }
        }
    }
    log(&rec)?;
    Ok((frozen, report))
}

/// An environment whose observations are a frozen encoder's features of the inner one's frames;
/// with `bonus` (InfoPower's α_emp and whether it is centred) every step's reward also gets
/// α·(log q(a | z_t, z_{t+1}) − log π(a)) from the encoder's inverse model (learners' environments
/// only; evaluation keeps the task reward).
pub struct Encoded {
    pub inner: Box<dyn Env>,
    pub enc: Arc<FrozenEncoder>,
    pub bonus: Option<(f64, bool)>,
    /// The last frame's raw latent mean (for the bonus).
    last: Option<Tensor>,
}

impl Encoded {
    pub fn new(inner: Box<dyn Env>, enc: Arc<FrozenEncoder>, bonus: Option<(f64, bool)>) -> Self {
        Self { inner, enc, bonus, last: None }
    }
    /// The observation of a frame (one encoder pass; the bonus keeps its raw latent).
    fn observe(&mut self, frame: &[f32]) -> Result<Vec<f32>> {
        let raw = self.enc.raw_batch(&[frame.to_vec()])?;
        let obs = self.enc.standardise(&raw)?.remove(0);
        if self.bonus.is_some() {
            self.last = Some(raw);
        }
        Ok(obs)
    }
}

impl Env for Encoded {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn observation_space(&self) -> Space {
        let d = self.enc.enc.latent;
        Space::Box { low: vec![f32::NEG_INFINITY; d], high: vec![f32::INFINITY; d] }
    }
    fn action_space(&self) -> Space {
        self.inner.action_space()
    }
    fn max_steps(&self) -> usize {
        self.inner.max_steps()
    }
    fn reset(&mut self) -> Vec<f32> {
        let o = self.inner.reset();
        // the encoder is a fixed CPU MLP over a correctly sized frame: it cannot fail here
        self.observe(&o).expect("encoding a frame")
    }
    fn step(&mut self, action: &Action) -> Result<Step> {
        let mut s = self.inner.step(action)?;
        let before = self.last.take();
        s.obs = self.observe(&s.obs)?;
        if let (Some((alpha, centred)), Some(z), Some(z1)) = (self.bonus, before, self.last.as_ref()) {
            let n = self.inner.action_space().size();
            s.reward += alpha * self.enc.empowerment_bonus(&z, z1, action.index()?, n, centred)?;
        }
        Ok(s)
    }
    fn success(&self) -> Option<bool> {
        self.inner.success()
    }
    fn save(&self) -> EnvState {
        let mut st = self.inner.save();
        if self.bonus.is_some() {
            // the bonus needs the last frame's latent: appended (then a has-latent flag)
            let d = self.enc.enc.latent;
            match self.last.as_ref().and_then(|z| z.flatten_all().and_then(|z| z.to_vec1::<f32>()).ok()) {
                Some(z) => st.values.extend(z.iter().map(|&v| v as f64).chain([1.0])),
                None => st.values.extend(std::iter::repeat_n(0.0, d).chain([0.0])),
            }
        }
        st
    }
    fn restore(&mut self, state: &EnvState) -> Result<()> {
        if self.bonus.is_none() {
            return self.inner.restore(state);
        }
        let d = self.enc.enc.latent;
        let n = state.values.len();
        if n < d + 1 {
            bail!("{}: a saved state without the empowerment bonus's latent", self.inner.name());
        }
        let mut inner = state.clone();
        inner.values.truncate(n - d - 1);
        self.inner.restore(&inner)?;
        self.last = if state.values[n - 1] == 1.0 {
            let z: Vec<f32> = state.values[n - d - 1..n - 1].iter().map(|&v| v as f32).collect();
            Some(Tensor::from_vec(z, (1, d), &self.enc.dev)?)
        } else {
            None
        };
        Ok(())
    }
}

/// Makes a run's environments: built-in ones, wrapped in [`Encoded`] when the run has a
/// pre-trained encoder.
#[derive(Clone)]
pub struct EnvMaker {
    pub name: String,
    pub encoder: Option<Arc<FrozenEncoder>>,
    /// ZPRL: the learner's action steers this frozen base policy ([`crate::zprl::Steered`]).
    pub steer: Option<Arc<crate::zprl::Steering>>,
    /// How the reward reaches the learner (dense, episodic, or LaRe's decoded latent reward).
    pub reward: crate::lare::RewardMode,
    /// InfoPower's empowerment bonus (α, centred) on encoded environments (learners only).
    pub empowerment_bonus: Option<(f64, bool)>,
    /// Give raw frames even with an encoder (a learner that trains its own copy of it).
    pub raw_frames: bool,
}

impl EnvMaker {
    pub fn plain(name: &str) -> Self {
        Self {
            name: name.into(),
            encoder: None,
            steer: None,
            reward: crate::lare::RewardMode::Dense,
            empowerment_bonus: None,
            raw_frames: false,
        }
    }
    pub fn make(&self, seed: u64) -> Result<Box<dyn Env>> {
        let inner = crate::env::make(&self.name, seed)?;
        let inner: Box<dyn Env> = match &self.encoder {
            Some(enc) if !self.raw_frames => Box::new(Encoded::new(inner, enc.clone(), self.empowerment_bonus)),
            _ => inner,
        };
        let inner: Box<dyn Env> = match &self.steer {
            Some(s) => Box::new(crate::zprl::Steered::new(inner, s.clone())),
            None => inner,
        };
        Ok(match &self.reward {
            crate::lare::RewardMode::Dense => inner,
            crate::lare::RewardMode::Episodic => Box::new(crate::lare::Delayed::new(inner, None)),
            crate::lare::RewardMode::Lare(r) => Box::new(crate::lare::Delayed::new(inner, Some(r.clone()))),
        })
    }
    /// `n` copies, copy i seeded from (seed, "env", i) as [`crate::env::VecEnv::make`] does.
    pub fn vec(&self, n: usize, seed: u64) -> Result<crate::env::VecEnv> {
        if n == 0 {
            bail!("num_envs must be at least 1");
        }
        let envs =
            (0..n).map(|i| self.make(oxrl_core::seed::derive(seed, "env", i as u64))).collect::<Result<Vec<_>>>()?;
        Ok(crate::env::VecEnv::new(envs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn softplus_is_stable_and_matches_the_formula() {
        let x = Tensor::new(&[-100f32, -1.0, 0.0, 2.0, 100.0], &Device::Cpu).unwrap();
        let y = softplus(&x).unwrap().to_vec1::<f32>().unwrap();
        let want = [0.0f32, (1.0 + (-1f32).exp()).ln(), 2f32.ln(), 2.0 + (1.0 + (-2f32).exp()).ln(), 100.0];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn pixel_noise_names() {
        assert_eq!(pixel_noise("pixelgrid-exogenous").unwrap(), Noise::Exogenous);
        assert_eq!(pixel_noise("pixelgrid").unwrap(), Noise::Clean);
        assert!(pixel_noise("cartpole").unwrap_err().to_string().contains("pixel-grid"));
        assert_eq!(pixel_noise("pixelgrid-exogenous-recolor").unwrap(), Noise::Exogenous);
        assert!(pixel_recolored("pixelgrid-iid-recolor") && !pixel_recolored("pixelgrid-iid"));
    }

    #[test]
    fn frozen_encoder_round_trips_and_wraps_an_environment() {
        let dev = Device::Cpu;
        let mut rng = Rng::seed_from_u64(0);
        let cfg = ReprConfig { objective: "autoencoder".into(), latent_dim: 4, hidden: 8, ..Default::default() };
        let enc = Encoder::new(768, 8, 4, false, &mut rng, &dev).unwrap();
        let f =
            FrozenEncoder { enc, mean: vec![0.5; 4], std: vec![2.0; 4], inverse: None, model: None, dev: dev.clone() };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("encoder.safetensors");
        f.save(&p).unwrap();
        let g = FrozenEncoder::load(&p, &cfg, 768, &dev).unwrap();
        let maker = EnvMaker { encoder: Some(Arc::new(g)), ..EnvMaker::plain("pixelgrid-iid") };
        let mut e = maker.make(3).unwrap();
        let o = e.reset();
        assert_eq!(o.len(), 4);
        assert_eq!(e.observation_space().dim(), 4);
        // the same frame through the saved encoder gives the same standardised features
        let mut raw = crate::env::make("pixelgrid-iid", 3).unwrap();
        let frame = raw.reset();
        assert_eq!(f.encode(&frame).unwrap(), o);
        let bad = ReprConfig { latent_dim: 5, ..cfg };
        assert!(FrozenEncoder::load(&p, &bad, 768, &dev).is_err());
    }

    #[test]
    fn the_empowerment_bonus_is_paid_to_learners_by_hand_and_survives_save_and_restore() {
        let dev = Device::Cpu;
        let mut rng = Rng::seed_from_u64(1);
        let cfg = ReprConfig { objective: "infopower".into(), latent_dim: 4, hidden: 8, ..Default::default() };
        let enc = Encoder::new(768, 8, 4, true, &mut rng, &dev).unwrap();
        // an inverse model whose logits are its last bias whatever the latents: q = softmax(b)
        let inv = Mlp::new(&[8, 8, 4], Activation::Relu, Init::Uniform, &mut rng, &dev).unwrap();
        for l in &inv.layers {
            l.w.set(&l.w.as_tensor().zeros_like().unwrap()).unwrap();
        }
        let b = [2f32.ln(), 0.0, 0.0, 0.0];
        inv.layers[1].b.set(&Tensor::new(&b, &dev).unwrap().reshape(inv.layers[1].b.shape()).unwrap()).unwrap();
        let f = FrozenEncoder {
            enc,
            mean: vec![0.0; 4],
            std: vec![1.0; 4],
            inverse: Some(inv),
            model: None,
            dev: dev.clone(),
        };
        // the inverse model travels with the encoder
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("encoder.safetensors");
        f.save(&p).unwrap();
        let f = Arc::new(FrozenEncoder::load(&p, &cfg, 768, &dev).unwrap());
        assert!(f.inverse.is_some());
        // q = (2, 1, 1, 1)/5: bonus(a) = log q(a) + log 4, centred = log q(a)
        let q = [0.4f64, 0.2, 0.2, 0.2];
        let alpha = 0.5;
        let plain = EnvMaker { encoder: Some(f.clone()), ..EnvMaker::plain("pixelgrid-clean") };
        let paid = EnvMaker { empowerment_bonus: Some((alpha, false)), ..plain.clone() };
        let centred = EnvMaker { empowerment_bonus: Some((alpha, true)), ..plain.clone() };
        let (mut e0, mut e1, mut e2) = (plain.make(5).unwrap(), paid.make(5).unwrap(), centred.make(5).unwrap());
        assert_eq!(e0.reset(), e1.reset());
        e2.reset();
        for t in 0..6 {
            let a = Action::Discrete(t % 4);
            let (s0, s1, s2) = (e0.step(&a).unwrap(), e1.step(&a).unwrap(), e2.step(&a).unwrap());
            assert_eq!(s0.obs, s1.obs);
            let want1 = s0.reward + alpha * (q[t % 4].ln() + 4f64.ln());
            let want2 = s0.reward + alpha * q[t % 4].ln();
            assert!((s1.reward - want1).abs() < 1e-5 && (s2.reward - want2).abs() < 1e-5, "{t}");
            if s0.terminated || s0.truncated {
                break;
            }
        }
        // save / restore continues exactly, the bonus's latent included
        let st = e1.save();
        let next = e1.step(&Action::Discrete(1)).unwrap();
        let mut again = paid.make(99).unwrap();
        again.restore(&st).unwrap();
        assert_eq!(again.step(&Action::Discrete(1)).unwrap(), next);
        // an encoder saved without its inverse model loads, and a bonus on it is refused by key
        let bare = f.with_encoder(f.enc.duplicate(&dev).unwrap()).unwrap();
        bare.save(&p).unwrap();
        let bare = Arc::new(FrozenEncoder::load(&p, &cfg, 768, &dev).unwrap());
        assert!(bare.inverse.is_none());
        let mut e = EnvMaker {
            encoder: Some(bare),
            empowerment_bonus: Some((alpha, false)),
            ..EnvMaker::plain("pixelgrid-clean")
        }
        .make(5)
        .unwrap();
        e.reset();
        let err = e.step(&Action::Discrete(0)).unwrap_err();
        assert!(err.to_string().contains("repr.infopower.bonus = 0"), "{err}");
    }
}
