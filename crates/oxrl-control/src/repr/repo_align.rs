//! RePo's test-time, reward-free alignment to a new visual domain — "Resilient Model-Based
//! Reinforcement Learning by Regularizing Posterior Predictability" (Zhu et al., 2023), as in the
//! authors' code (zchuning/repo, `CalibratedRePo` with "simple_pair" calibration): the source
//! encoder is frozen as the reference, the policy (and any model on the latent) stays frozen, and a
//! target encoder — initialised from the source one — is trained on target-domain frames only:
//!
//! - a VDB discriminator (its own Gaussian bottleneck z ~ N(μ(e), σ(e)), KL(q(z|e) ‖ N(0, I)) held
//!   at `disc_target_kl` by β_d ← max(0, β_d + lr·(KL − target))) separates source embeddings from
//!   target embeddings;
//! - `support` mode (the paper's headline): χ²-form losses, the source side weighted by a learned
//!   density ratio τ(e) = exp(log τ(e)) — discriminator: −E_src[τ·d] + E_tgt[d + d²/4]; encoder:
//!   −E_tgt[d + d²/4]; τ: E_src[τ·sg(d)] + sg(u)·(E[τ] − 1), with the dual u ← u + Adam(E[τ] − 1)
//!   so τ keeps mean 1 — the target must land inside the source's support, not cover all of it;
//!   `distribution` mode: plain GAN BCE (discriminator: source 1, target 0; encoder: target → 1);
//! - calibration on a few paired frames (the same states rendered in both domains):
//!   −log N(e_src; e_tgt, 1) = ½‖e_src − e_tgt‖² per entry + const;
//! - encoder loss = aln_coef·alignment + calib_coef·calibration; only the target encoder steps.
//!
//! `adapt` picks what the target side trains: `encoder` — the whole copied encoder, as the
//! reference does; `color` (ours) — a per-pixel 3 × 3 colour map and bias in front of the frozen
//! source encoder (the weight sharing a convolutional first layer gives; this stand-in's MLP
//! encoder has none, so fine-tuning it from a handful of pairs memorises them), folded exactly
//! into a copy of the encoder's first layer afterwards.
//!
//! Differences, stated: the reference also penalises the discriminator's input gradient
//! (zero-centred, Mescheder 2018); that needs a second-order gradient candle does not give, so the
//! discriminator's updates are norm-clipped instead. The embeddings aligned are what the frozen
//! policy reads — the encoder's posterior means standardised by the source's feature statistics
//! (this stand-in has no separate embedding before an RSSM); in raw units a latent dimension of
//! small spread would count for little in the losses and much for the policy. The aligned encoder
//! keeps the source's standardisation, so the frozen policy reads it unchanged.

use super::{frames, FrozenEncoder};
use crate::nn::{Activation, Init, Mlp};
use crate::repr::video::Video;
use anyhow::{bail, Result};
use candle_core::{Device, Tensor, D};
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_core::seed::Rng;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// `[repr.align]` — defaults from the reference adaptation config (smaller networks for CPU).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlignConfig {
    /// What adapts: `encoder` (the whole copied encoder) or `color` (a shared per-pixel colour map).
    pub adapt: String,
    /// `support` (χ² discriminator against the τ-reweighted source) or `distribution` (GAN BCE).
    pub mode: String,
    pub steps: usize,
    /// Source-domain frames (random-policy episodes; the reference reloads its source buffer).
    pub source_frames: usize,
    /// Target-domain frames, reward-free.
    pub target_frames: usize,
    /// Paired frames for calibration (0 turns calibration off).
    pub paired_frames: usize,
    pub batch_size: usize,
    /// Learning rate of the target encoder (`adapt = "encoder"`).
    pub lr: f64,
    /// Learning rate of the colour map (`adapt = "color"`), decayed linearly to zero.
    pub color_lr: f64,
    pub aln_coef: f64,
    pub calib_coef: f64,
    pub disc_hidden: usize,
    pub disc_latent: usize,
    pub disc_lr: f64,
    pub disc_target_kl: f64,
    pub disc_init_beta: f64,
    pub disc_beta_lr: f64,
    pub tau_lr: f64,
    pub u_lr: f64,
    pub init_u: f64,
    pub max_grad_norm: f64,
    pub log_every: usize,
}

impl Default for AlignConfig {
    fn default() -> Self {
        Self {
            adapt: "color".into(),
            mode: "support".into(),
            steps: 2000,
            source_frames: 5000,
            target_frames: 5000,
            paired_frames: 50,
            batch_size: 128,
            lr: 3e-4,
            color_lr: 3e-2,
            aln_coef: 1.0,
            calib_coef: 1.0,
            disc_hidden: 128,
            disc_latent: 16,
            disc_lr: 3e-4,
            disc_target_kl: 0.1,
            disc_init_beta: 0.1,
            disc_beta_lr: 5e-3,
            tau_lr: 5e-5,
            u_lr: 5e-3,
            init_u: 1e-4,
            max_grad_norm: 10.0,
            log_every: 250,
        }
    }
}

impl AlignConfig {
    pub fn validate(&self) -> Result<()> {
        if !["support", "distribution"].contains(&self.mode.as_str()) {
            bail!("repr.align.mode: {:?} is not one of support, distribution", self.mode);
        }
        if !["encoder", "color"].contains(&self.adapt.as_str()) {
            bail!("repr.align.adapt: {:?} is not one of encoder, color", self.adapt);
        }
        if self.steps == 0 || self.batch_size < 2 || self.source_frames < 2 || self.target_frames < 2 {
            bail!("repr.align: steps must be positive, batch_size and the frame counts at least 2");
        }
        if self.disc_hidden == 0 || self.disc_latent == 0 || self.log_every == 0 {
            bail!("repr.align: disc_hidden, disc_latent and log_every must be positive");
        }
        if self.aln_coef < 0.0 || self.calib_coef < 0.0 || self.disc_target_kl < 0.0 || self.disc_init_beta < 0.0 {
            bail!("repr.align: coefficients, disc_target_kl and disc_init_beta must be non-negative");
        }
        Ok(())
    }
}

/// E[d + d²/4] — the χ² critic's term on the "fake" (target) side; its minimum −1 is at d = −2.
pub fn chi2_fake(d: &Tensor) -> Result<Tensor> {
    Ok((d + (d.sqr()? * 0.25)?)?.mean_all()?)
}

/// Binary cross-entropy of logits toward a constant label (the GAN discriminator's targets).
pub fn bce_toward(d: &Tensor, label: f64) -> Result<Tensor> {
    crate::dist::bce_with_logits(d, &Tensor::full(label as f32, d.shape(), d.device())?)
}

/// KL(N(μ, e^{log σ}) ‖ N(0, I)) per row, summed over dimensions, averaged over rows.
pub fn kl_to_standard_normal(mean: &Tensor, logstd: &Tensor) -> Result<Tensor> {
    let d = mean.dim(1)? as f64;
    let per = ((logstd.neg()? + ((logstd * 2.0)?.exp()? + mean.sqr()?)? * 0.5)?.sum(D::Minus1)? - 0.5 * d)?;
    Ok(per.mean_all()?)
}

/// The VDB bottleneck's multiplier after one step: β ← max(0, β + lr·(KL − target)).
pub fn vdb_beta_step(beta: f64, lr: f64, kl: f64, target: f64) -> f64 {
    (beta + lr * (kl - target)).max(0.0)
}

/// Calibration: −log N(e_src; e_tgt, 1) per entry without its constant, ½·mean (e_src − e_tgt)².
pub fn calibration_loss(e_src: &Tensor, e_tgt: &Tensor) -> Result<Tensor> {
    Ok(((e_src - e_tgt)?.sqr()?.mean_all()? * 0.5)?)
}

/// The shared colour map of channel-major (B × 3·HW) frames: x'_c = Σ_k A_ck·x_k + b_c per pixel.
pub fn color_map(x: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (n, len) = x.dims2()?;
    if len % 3 != 0 {
        bail!("color map: frames of {len} values are not 3-channel images");
    }
    let x3 = x.reshape((n, 3, len / 3))?;
    let y = a.broadcast_matmul(&x3)?.broadcast_add(&b.reshape((1, 3, 1))?)?;
    Ok(y.reshape((n, len))?)
}

/// Fold a colour map into a dense first layer (W stored in × out over channel-major inputs):
/// W'_(k,p) = Σ_c A_ck·W_(c,p), bias' = bias + Σ_c b_c·Σ_p W_(c,p), so that
/// x·W' + bias' = color_map(x)·W + bias exactly.
pub fn fold_color_map(w: &Tensor, bias: &Tensor, a: &Tensor, b: &Tensor) -> Result<(Tensor, Tensor)> {
    let (inp, out) = w.dims2()?;
    let w3 = w.reshape((3, inp / 3 * out))?;
    let w_new = a.t()?.matmul(&w3)?.reshape((inp, out))?;
    let per_channel = w.reshape((3, inp / 3, out))?.sum(1)?;
    let delta = b.reshape((1, 3))?.matmul(&per_channel)?;
    let bias_new = bias.broadcast_add(&delta.reshape(bias.shape())?)?;
    Ok((w_new, bias_new))
}

fn leaky(x: &Tensor) -> Result<Tensor> {
    Ok(x.maximum(&(x * 0.01)?)?)
}

/// The variational discriminator bottleneck: e → (μ, log σ) → z = μ + σ·ε → d = fc(leaky(z)).
pub struct VdbDiscriminator {
    enc: Mlp,
    fc: Mlp,
    latent: usize,
    pub beta: f64,
}

impl VdbDiscriminator {
    pub fn new(input: usize, hidden: usize, latent: usize, beta: f64, rng: &mut Rng, dev: &Device) -> Result<Self> {
        Ok(Self {
            enc: Mlp::new(&[input, hidden, hidden, 2 * latent], Activation::Relu, Init::Uniform, rng, dev)?,
            fc: Mlp::new(&[latent, 1], Activation::Relu, Init::Uniform, rng, dev)?,
            latent,
            beta,
        })
    }
    /// (d (B), μ, log σ) on a batch of embeddings, with noise drawn from `rng`.
    pub fn forward(&self, e: &Tensor, rng: &mut Rng) -> Result<(Tensor, Tensor, Tensor)> {
        let h = self.enc.forward(e)?;
        let mean = h.narrow(1, 0, self.latent)?;
        let logstd = h.narrow(1, self.latent, self.latent)?.clamp(-10.0, 2.0)?;
        let eps = crate::dist::normal_noise(mean.dims2()?, rng, e.device())?;
        let z = (&mean + (logstd.exp()? * eps)?)?;
        Ok((self.fc.forward(&leaky(&z)?)?.squeeze(1)?, mean, logstd))
    }
    pub fn vars(&self) -> Vec<(String, candle_core::Var)> {
        let mut v = self.enc.vars("disc_encoder");
        v.extend(self.fc.vars("disc_fc"));
        v
    }
}

/// One scalar Adam (β₁ 0.9, β₂ 0.999): the alignment's dual u and RePo's log β ([`super::repo::DualBeta`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalarAdam {
    pub value: f64,
    m: f64,
    v: f64,
    t: i32,
    lr: f64,
}

impl ScalarAdam {
    pub fn new(value: f64, lr: f64) -> Self {
        Self { value, m: 0.0, v: 0.0, t: 0, lr }
    }
    /// Descend on `grad`.
    pub fn step(&mut self, grad: f64) {
        self.t += 1;
        self.m = 0.9 * self.m + 0.1 * grad;
        self.v = 0.999 * self.v + 0.001 * grad * grad;
        let mh = self.m / (1.0 - 0.9f64.powi(self.t));
        let vh = self.v / (1.0 - 0.999f64.powi(self.t));
        self.value -= self.lr * mh / (vh.sqrt() + 1e-8);
    }
}

/// Source frames, target frames and paired (source, target) frames of one domain shift.
pub struct AlignData {
    pub source: Video,
    pub target: Video,
    /// The same states in both domains: `paired_source.frame(i)` ↔ `paired_target[i]`.
    pub paired_source: Video,
    pub paired_target: Vec<Vec<f32>>,
}

impl AlignData {
    /// Random-policy episodes of the pixel gridworld: source palette, recoloured palette (other
    /// episodes), and pairs rendered both ways.
    pub fn collect(noise: crate::env::pixel_grid::Noise, cfg: &AlignConfig, seed: u64) -> Result<Self> {
        use crate::env::pixel_grid::Variant;
        let recolored = Variant { recolor: true, ..Variant::of(noise) };
        let source =
            Video::collect_in(Variant::of(noise), cfg.source_frames, oxrl_core::seed::derive(seed, "align-src", 0))?;
        let target = Video::collect_in(recolored, cfg.target_frames, oxrl_core::seed::derive(seed, "align-tgt", 0))?;
        let paired_source = Video::collect_in(
            Variant::of(noise),
            cfg.paired_frames.max(2),
            oxrl_core::seed::derive(seed, "align-pairs", 0),
        )?;
        let paired_target =
            (0..paired_source.len()).map(|t| crate::env::pixel_grid::recolor_image(paired_source.frame(t))).collect();
        Ok(Self { source, target, paired_source, paired_target })
    }
}

/// Train a target encoder (initialised from `src`) to the target domain of `data`; returns it
/// frozen with the source's feature standardisation. `log` receives a record every `log_every`
/// steps (`align_step`, `aln_loss`, `calib_loss`, `disc_real`, `disc_fake`, `disc_kl`, `disc_beta`,
/// `tau_mean`, `u`).
pub fn align_encoder(
    src: &FrozenEncoder,
    data: &AlignData,
    cfg: &AlignConfig,
    seed: u64,
    dev: &Device,
    log: &mut dyn FnMut(&serde_json::Value) -> Result<()>,
) -> Result<FrozenEncoder> {
    cfg.validate()?;
    let mut rng = oxrl_core::seed::rng(seed, "align", 0);
    if data.source.frame_dim != src.enc.net.layers[0].w.dims()[0] {
        bail!("repr.align: frames of {} values do not fit the encoder", data.source.frame_dim);
    }
    let tgt = src.enc.duplicate(dev)?;
    let color = cfg.adapt == "color";
    let cm_a = candle_core::Var::from_tensor(&Tensor::eye(3, candle_core::DType::F32, dev)?)?;
    let cm_b = candle_core::Var::zeros(3, candle_core::DType::F32, dev)?;
    // the target side's features of a batch of frames
    let tgt_features = |x: &Tensor| -> Result<Tensor> {
        if color {
            src.enc.features(&color_map(x, cm_a.as_tensor(), cm_b.as_tensor())?)
        } else {
            tgt.features(x)
        }
    };
    let d = src.enc.latent;
    let mean = Tensor::from_slice(&src.mean, (1, d), dev)?;
    let std = Tensor::from_slice(&src.std, (1, d), dev)?;
    let standard = |x: Tensor| -> Result<Tensor> { Ok(x.broadcast_sub(&mean)?.broadcast_div(&std)?) };
    let mut disc = VdbDiscriminator::new(d, cfg.disc_hidden, cfg.disc_latent, cfg.disc_init_beta, &mut rng, dev)?;
    let log_tau = Mlp::new(&[d, cfg.disc_hidden, 1], Activation::Relu, Init::Uniform, &mut rng, dev)?;
    let adapted = if color {
        vec![("color_map".to_string(), cm_a.clone()), ("color_bias".to_string(), cm_b.clone())]
    } else {
        tgt.vars()
    };
    let mut enc_opt = AdamW::new(adapted, AdamWConfig { weight_decay: 0.0, ..AdamWConfig::default() })?;
    let mut disc_opt = AdamW::new(disc.vars(), AdamWConfig { weight_decay: 0.0, ..AdamWConfig::default() })?;
    let mut tau_opt = AdamW::new(log_tau.vars("log_tau"), AdamWConfig { weight_decay: 0.0, ..AdamWConfig::default() })?;
    let mut u = ScalarAdam::new(cfg.init_u, cfg.u_lr);
    let support = cfg.mode == "support";
    let b = cfg.batch_size;
    let n_pairs = data.paired_target.len();
    let mut acc: Vec<(&'static str, f64)> = Vec::new();
    for step in 1..=cfg.steps {
        let pick = |n: usize, rng: &mut Rng| -> Vec<usize> { (0..b).map(|_| rng.random_range(0..n)).collect() };
        let si = pick(data.source.len(), &mut rng);
        let ti = pick(data.target.len(), &mut rng);
        let e_src = standard(src.enc.features(&frames(&data.source, &si, dev)?)?)?.detach();
        let e_tgt = standard(tgt_features(&frames(&data.target, &ti, dev)?)?)?;
        // the density ratio on source embeddings
        let tau = log_tau.forward(&e_src)?.squeeze(1)?.clamp(-10.0, 10.0)?.exp()?;
        // 1. the discriminator (source "real", target "fake")
        let (d_real, m_real, s_real) = disc.forward(&e_src, &mut rng)?;
        let (d_fake, m_fake, s_fake) = disc.forward(&e_tgt.detach(), &mut rng)?;
        let (real_loss, fake_loss) = if support {
            ((&tau.detach() * &d_real)?.mean_all()?.neg()?, chi2_fake(&d_fake)?)
        } else {
            (bce_toward(&d_real, 1.0)?, bce_toward(&d_fake, 0.0)?)
        };
        let kl = ((kl_to_standard_normal(&m_real, &s_real)? + kl_to_standard_normal(&m_fake, &s_fake)?)? * 0.5)?;
        let kl_v = kl.to_scalar::<f32>()? as f64;
        let disc_loss = ((&real_loss + &fake_loss)? + ((&kl - cfg.disc_target_kl)? * disc.beta)?)?;
        disc_opt.step(&disc_loss.backward()?, cfg.disc_lr, cfg.max_grad_norm)?;
        disc.beta = vdb_beta_step(disc.beta, cfg.disc_beta_lr, kl_v, cfg.disc_target_kl);
        // 2. the target encoder: alignment + calibration
        let (d_tgt, _, _) = disc.forward(&e_tgt, &mut rng)?;
        let aln = if support { chi2_fake(&d_tgt)?.neg()? } else { bce_toward(&d_tgt, 1.0)? };
        let mut enc_loss = (&aln * cfg.aln_coef)?;
        let mut calib_v = 0.0;
        if n_pairs > 0 && cfg.calib_coef > 0.0 {
            let pi = pick(n_pairs, &mut rng);
            let ps = standard(src.enc.features(&frames(&data.paired_source, &pi, dev)?)?)?.detach();
            let pt_rows: Vec<Vec<f32>> = pi.iter().map(|&i| data.paired_target[i].clone()).collect();
            let pt = standard(tgt_features(&crate::nn::rows(&pt_rows, dev)?)?)?;
            let calib = calibration_loss(&ps, &pt)?;
            calib_v = calib.to_scalar::<f32>()? as f64;
            enc_loss = (enc_loss + (calib * cfg.calib_coef)?)?;
        }
        // the colour map's 12 numbers must land precisely (a latent of small spread is stretched
        // by the standardisation): its rate decays linearly to zero
        let lr = if color { cfg.color_lr * (1.0 - (step - 1) as f64 / cfg.steps as f64) } else { cfg.lr };
        enc_opt.step(&enc_loss.backward()?, lr, cfg.max_grad_norm)?;
        // 3. the density ratio and its mean-one constraint's dual
        let tau_mean = tau.mean_all()?.to_scalar::<f32>()? as f64;
        if support {
            let (d_src, _, _) = disc.forward(&e_src, &mut rng)?;
            let tau_loss = ((&tau * d_src.detach())?.mean_all()? + ((tau.mean_all()? - 1.0)? * u.value)?)?;
            tau_opt.step(&tau_loss.backward()?, cfg.tau_lr, cfg.max_grad_norm)?;
            // u_loss = −u·(E[τ] − 1): its gradient is −(E[τ] − 1)
            u.step(-(tau_mean - 1.0));
        }
        let metrics = [
            ("aln_loss", aln.to_scalar::<f32>()? as f64),
            ("calib_loss", calib_v),
            ("disc_real", real_loss.to_scalar::<f32>()? as f64),
            ("disc_fake", fake_loss.to_scalar::<f32>()? as f64),
            ("disc_kl", kl_v),
            ("disc_beta", disc.beta),
            ("tau_mean", tau_mean),
            ("u", u.value),
        ];
        if acc.is_empty() {
            acc = metrics.iter().map(|(k, _)| (*k, 0.0)).collect();
        }
        for (a, (_, v)) in acc.iter_mut().zip(&metrics) {
            a.1 += v;
        }
        if step % cfg.log_every == 0 || step == cfg.steps {
            let n = if step % cfg.log_every == 0 { cfg.log_every } else { step % cfg.log_every } as f64;
            let mut rec = serde_json::json!({"align_step": step});
            for (k, v) in &acc {
                if (v / n).is_finite() {
                    rec[*k] = serde_json::json!(v / n);
                }
            }
            log(&rec)?;
            acc.clear();
        }
    }
    if color {
        let first = &tgt.net.layers[0];
        let (w, b) = fold_color_map(first.w.as_tensor(), first.b.as_tensor(), cm_a.as_tensor(), cm_b.as_tensor())?;
        first.w.set(&w)?;
        first.b.set(&b)?;
    }
    src.with_encoder(tgt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }
    fn s(x: &Tensor) -> f64 {
        x.to_scalar::<f32>().unwrap() as f64
    }

    #[test]
    fn chi2_and_bce_losses_by_hand() {
        // d + d²/4 at d = −2 is −1 (the minimum); at 0 it is 0; at 2 it is 3
        assert!((s(&chi2_fake(&t(&[-2.0])).unwrap()) + 1.0).abs() < 1e-6);
        assert!((s(&chi2_fake(&t(&[0.0, 2.0])).unwrap()) - 1.5).abs() < 1e-6);
        // BCE: log 2 at logit 0 for either label; −log σ(3) toward 1, −log(1 − σ(3)) toward 0
        assert!((s(&bce_toward(&t(&[0.0]), 1.0).unwrap()) - 2f64.ln()).abs() < 1e-6);
        let sig = 1.0 / (1.0 + (-3f64).exp());
        assert!((s(&bce_toward(&t(&[3.0]), 1.0).unwrap()) + sig.ln()).abs() < 1e-5);
        assert!((s(&bce_toward(&t(&[3.0]), 0.0).unwrap()) + (1.0 - sig).ln()).abs() < 1e-5);
        // stable at extreme logits
        assert!(s(&bce_toward(&t(&[-200.0]), 1.0).unwrap()).is_finite());
    }

    #[test]
    fn kl_to_the_standard_normal_and_the_bottleneck_multiplier() {
        let z = Tensor::zeros((3, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(s(&kl_to_standard_normal(&z, &z).unwrap()).abs() < 1e-6);
        // KL(N(1, 1) ‖ N(0, 1)) = ½ per dimension; KL(N(0, e^{-1}) ‖ N(0, 1)) = 1 + ½(e^{-2} − 1)
        let one = Tensor::ones((2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let z2 = one.zeros_like().unwrap();
        assert!((s(&kl_to_standard_normal(&one, &z2).unwrap()) - 1.0).abs() < 1e-6);
        let ls = (Tensor::ones((1, 1), candle_core::DType::F32, &Device::Cpu).unwrap() * -1.0).unwrap();
        let want = 1.0 + 0.5 * ((-2f64).exp() - 1.0);
        assert!(
            (s(&kl_to_standard_normal(&Tensor::zeros((1, 1), candle_core::DType::F32, &Device::Cpu).unwrap(), &ls)
                .unwrap())
                - want)
                .abs()
                < 1e-6
        );
        // β rises above the KL budget, falls below it, and never goes negative
        assert!((vdb_beta_step(0.1, 5e-3, 0.5, 0.1) - 0.102).abs() < 1e-12);
        assert!((vdb_beta_step(0.1, 5e-3, 0.0, 0.1) - 0.0995).abs() < 1e-12);
        assert_eq!(vdb_beta_step(1e-4, 1.0, 0.0, 0.1), 0.0);
    }

    #[test]
    fn calibration_is_half_the_mean_squared_gap_and_the_dual_tracks_the_mean_one_constraint() {
        let a = Tensor::new(&[[1f32, 2.0], [0.0, -1.0]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[1f32, 0.0], [1.0, -1.0]], &Device::Cpu).unwrap();
        assert!((s(&calibration_loss(&a, &b).unwrap()) - 0.5 * (4.0 + 1.0) / 4.0).abs() < 1e-6);
        assert_eq!(s(&calibration_loss(&a, &a).unwrap()), 0.0);
        // u rises while E[τ] > 1 (descending −(E[τ] − 1)) and falls while E[τ] < 1
        let mut u = ScalarAdam::new(1e-4, 5e-3);
        u.step(-(1.5 - 1.0));
        assert!(u.value > 1e-4);
        let mut u = ScalarAdam::new(1e-4, 5e-3);
        u.step(-(0.5 - 1.0));
        assert!(u.value < 1e-4);
    }

    #[test]
    fn a_folded_color_map_equals_the_map_then_the_layer() {
        let dev = Device::Cpu;
        let mut rng = Rng::seed_from_u64(4);
        let layer = crate::nn::Linear::new(12, 5, Init::Uniform, 1.0, &mut rng, &dev).unwrap();
        let x = crate::dist::normal_noise((7, 12), &mut rng, &dev).unwrap();
        let a = Tensor::new(&[[0.1f32, 0.8, 0.5], [0.7, 0.1, 0.5], [0.6, 0.5, 0.0]], &dev).unwrap();
        let b = Tensor::new(&[0.2f32, 0.1, 0.3], &dev).unwrap();
        // the map by hand on one pixel: x'_c = Σ_k A_ck x_k + b_c
        let xs = x.to_vec2::<f32>().unwrap();
        let mapped = color_map(&x, &a, &b).unwrap().to_vec2::<f32>().unwrap();
        let av = a.to_vec2::<f32>().unwrap();
        for c in 0..3 {
            let want = (0..3).map(|k| av[c][k] * xs[0][k * 4 + 1]).sum::<f32>() + [0.2, 0.1, 0.3][c];
            assert!((mapped[0][c * 4 + 1] - want).abs() < 1e-5);
        }
        // the shifted palette is such a map of the source rendering
        let frame: Vec<f32> = (0..12).map(|i| (i % 5) as f32 / 4.0).collect();
        let m = Tensor::new(&crate::env::pixel_grid::RECOLOR, &dev).unwrap();
        let bg = Tensor::new(&crate::env::pixel_grid::RECOLOR_BACKGROUND, &dev).unwrap();
        let via_map = color_map(&Tensor::from_slice(&frame, (1, 12), &dev).unwrap(), &m, &bg).unwrap();
        let direct = crate::env::pixel_grid::recolor_image(&frame);
        for (p, q) in via_map.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().zip(&direct) {
            assert!((p - q).abs() < 1e-6);
        }
        // folding
        let want = layer.forward(&color_map(&x, &a, &b).unwrap()).unwrap();
        let (w2, b2) = fold_color_map(layer.w.as_tensor(), layer.b.as_tensor(), &a, &b).unwrap();
        let got = x.matmul(&w2).unwrap().broadcast_add(&b2).unwrap();
        let diff = (want - got).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "{diff}");
        assert_eq!(b2.dims(), layer.b.as_tensor().dims());
    }

    #[test]
    fn the_discriminator_separates_and_the_bottleneck_noise_is_seeded() {
        let dev = Device::Cpu;
        let mut rng = Rng::seed_from_u64(0);
        let disc = VdbDiscriminator::new(4, 16, 3, 0.1, &mut rng, &dev).unwrap();
        let e = Tensor::ones((5, 4), candle_core::DType::F32, &dev).unwrap();
        let (d1, m, ls) = disc.forward(&e, &mut Rng::seed_from_u64(1)).unwrap();
        let (d2, _, _) = disc.forward(&e, &mut Rng::seed_from_u64(1)).unwrap();
        assert_eq!(d1.dims(), &[5]);
        assert_eq!((m.dims(), ls.dims()), (&[5usize, 3][..], &[5usize, 3][..]));
        assert_eq!(d1.to_vec1::<f32>().unwrap(), d2.to_vec1::<f32>().unwrap());
    }
}
