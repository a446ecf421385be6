//! The RL step's latent-reasoning parts (see `oxrl_lm::latent`): what a latent policy's rollouts
//! need beyond tokens — replayed inputs, vMF latent log-probs, DePO's latent term and
//! Latent-GRPO's validity, noise and path selection.

use crate::policy::Policy;
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use oxrl_lm::latent::{LatentKind, LatentNoise, StepKind};
use oxrl_lm::sampler::Completion;
use oxrl_lm::scorer::{score, ScoreOptions};
use oxrl_lm::Transformer;

/// Refuse settings that need a latent module without one, and techniques whose extra scoring
/// passes do not replay latent inputs.
pub fn check(cfg: &crate::config::RunConfig, policy: &Policy, reward_model: bool) -> Result<()> {
    let t = &cfg.train;
    let wants = [
        ("depo_alpha", t.depo_alpha > 0.0),
        ("latent_grpo", t.latent_grpo),
        ("latent_select", t.latent_select),
        ("latent_noise", t.latent_noise > 0.0),
    ];
    let Some(l) = &policy.model.latent else {
        if let Some((k, _)) = wants.iter().find(|w| w.1) {
            bail!("key `train.{k}`: the policy has no latent module (configure [model.latent])");
        }
        return Ok(());
    };
    if l.kind != LatentKind::Coconut {
        if let Some((k, _)) = wants.iter().find(|w| w.1) {
            bail!("key `train.{k}`: needs Coconut latent segments (model.latent.kind = \"coconut\"), not {:?}", l.kind);
        }
    }
    let unsupported = [
        ("dph_coef", t.dph_coef > 0.0 && t.dph_divergence != "none"),
        ("objective", t.objective == "reasonmaxxer"),
        ("papo_coef", t.papo_coef > 0.0),
        ("spae_coef", t.spae_coef > 0.0 || t.spae_sat_penalty > 0.0),
        ("rlfr_coef", t.rlfr_coef > 0.0),
        ("siren_coef", t.siren_coef > 0.0),
        ("reward_model", reward_model),
    ];
    if let Some((k, _)) = unsupported.iter().find(|w| w.1) {
        bail!("key `train.{k}`: not supported with a latent-reasoning policy (its extra scoring passes do not replay latent inputs)");
    }
    Ok(())
}

/// Latent-GRPO's noise rows: in every group of `g`, the last ⌈frac·g⌉ samples get noise.
pub fn noise(sigma: f64, frac: f64, n: usize, g: usize) -> Option<LatentNoise> {
    (sigma > 0.0).then(|| {
        let noisy = (frac * g as f64).ceil() as usize;
        LatentNoise { sigma, rows: (0..n).map(|i| i % g >= g - noisy.min(g)).collect() }
    })
}

/// Per position: 1 where the policy sampled the token (token loss), and 1 at latent positions.
pub fn kind_rows(c: &Completion) -> (Vec<f64>, Vec<f64>) {
    (0..c.tokens.len())
        .map(|j| ((c.kind(j) == StepKind::Token) as u8 as f64, (c.kind(j) == StepKind::Latent) as u8 as f64))
        .unzip()
}

/// The recorded latents `[B, W, D]` of rows `cs` (zeros elsewhere).
pub fn latent_tensor(cs: &[&Completion], width: usize, dims: usize, dtype: DType, dev: &Device) -> Result<Tensor> {
    let mut data = vec![0f32; cs.len() * width * dims];
    for (b, c) in cs.iter().enumerate() {
        for j in 0..c.tokens.len().min(width) {
            if let (StepKind::Latent, Some(z)) = (c.kind(j), &c.inputs[j]) {
                let at = (b * width + j) * dims;
                data[at..at + dims].copy_from_slice(z);
            }
        }
    }
    Ok(Tensor::from_vec(data, (cs.len(), width, dims), dev)?.to_dtype(dtype)?)
}

/// Replace the token log-probs at latent positions of `logp` rows by the vMF latent log-probs
/// κ⟨μ, z⟩ under `model` (μ from the scorer's hidden states `[B, R, D]`), and their entropy by 0.
pub fn put_latent_logp(
    model: &Transformer,
    hidden: &Tensor,
    cs: &[&Completion],
    logp: &mut [Vec<f64>],
    ent: &mut [Vec<f64>],
) -> Result<()> {
    let Some(l) = &model.latent else { return Ok(()) };
    if l.kind != LatentKind::Coconut {
        return Ok(());
    }
    let (_, w, d) = hidden.dims3()?;
    let z = latent_tensor(cs, w, d, hidden.dtype(), hidden.device())?;
    let v =
        oxrl_lm::latent::vmf_logp(hidden, &z, l.cfg.kappa, l.cfg.normalize)?.to_dtype(DType::F64)?.to_vec2::<f64>()?;
    for (b, c) in cs.iter().enumerate() {
        for j in 0..c.tokens.len() {
            if c.kind(j) == StepKind::Latent {
                logp[b][j] = v[b][j];
                ent[b][j] = 0.0;
            }
        }
    }
    Ok(())
}

/// The range of final-hidden-state norms of `model` over teacher-forced expert solutions (the
/// latent norms "seen in SFT"), for Latent-GRPO's validity check.
pub fn hidden_norm_range(
    model: &Transformer,
    prompts: &[Vec<u32>],
    solutions: &[Vec<u32>],
    pad: u32,
) -> Result<(f64, f64)> {
    let s = score(model, prompts, solutions, pad, ScoreOptions { hidden: true, ..Default::default() })?;
    let h = s.hidden.expect("asked for").to_dtype(DType::F64)?;
    let norms = h.sqr()?.sum(candle_core::D::Minus1)?.sqrt()?.to_vec2::<f64>()?;
    let (mut lo, mut hi) = (f64::INFINITY, 0f64);
    for (row, sol) in norms.iter().zip(solutions) {
        for &n in &row[..sol.len()] {
            lo = lo.min(n);
            hi = hi.max(n);
        }
    }
    anyhow::ensure!(lo.is_finite() && hi > 0.0, "latent norm calibration: no expert solution tokens");
    Ok((lo, hi))
}

/// Latent-GRPO validity: every latent finite with its norm in range, and the answer parseable.
pub fn valid(c: &Completion, range: (f64, f64), margin: f64, format_ok: bool) -> bool {
    format_ok
        && (0..c.tokens.len()).filter(|&j| c.kind(j) == StepKind::Latent).all(|j| {
            let z = c.inputs[j].as_deref().unwrap_or(&[]);
            let n = z.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
            oxrl_core::advantage::latent_grpo::norm_in_range(n, range, margin)
        })
}

/// The log-prob of the first answer token: the first sampled token after the last latent
/// position (−∞ when there is none).
pub fn first_answer_logp(c: &Completion) -> f64 {
    let last_latent = (0..c.tokens.len()).rev().find(|&j| c.kind(j) == StepKind::Latent);
    let from = last_latent.map_or(0, |j| j + 1);
    (from..c.tokens.len()).find(|&j| c.kind(j) == StepKind::Token).map_or(f64::NEG_INFINITY, |j| c.logp[j] as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxrl_lm::sampler::Finish;

    fn latent_completion() -> Completion {
        let mut c =
            Completion::of_tokens(vec![9, 0, 0, 5, 6], vec![-0.1, 0.3, 0.2, -0.7, -0.2], vec![0.0; 5], Finish::Stop);
        c.kinds = vec![StepKind::Forced, StepKind::Latent, StepKind::Latent, StepKind::Token, StepKind::Token];
        c.inputs = vec![None, Some(vec![3.0, 4.0]), Some(vec![0.0, 5.0]), None, None];
        c
    }

    #[test]
    fn rows_validity_and_first_answer_token() {
        let c = latent_completion();
        assert_eq!(kind_rows(&c), (vec![0.0, 0.0, 0.0, 1.0, 1.0], vec![0.0, 1.0, 1.0, 0.0, 0.0]));
        assert_eq!(first_answer_logp(&c), -0.7f32 as f64);
        assert!(valid(&c, (4.0, 6.0), 1.0, true));
        assert!(!valid(&c, (4.0, 6.0), 1.0, false), "unparseable answer");
        assert!(!valid(&c, (5.5, 6.0), 1.0, true) && valid(&c, (5.5, 6.0), 1.2, true));
        let mut bad = latent_completion();
        bad.inputs[1] = Some(vec![f32::NAN, 1.0]);
        assert!(!valid(&bad, (0.0, 1e9), 1.0, true), "non-finite latent");
        // Plain completions: every position is a token.
        let p = Completion::of_tokens(vec![1, 2], vec![-0.5, -0.1], vec![0.0; 2], Finish::Stop);
        assert_eq!(first_answer_logp(&p), -0.5f32 as f64);
    }

    #[test]
    fn noise_rows_leave_anchors_in_every_group() {
        let n = noise(0.1, 0.5, 8, 4).unwrap();
        assert_eq!(n.rows, vec![false, false, true, true, false, false, true, true]);
        assert!(noise(0.0, 0.5, 8, 4).is_none());
        assert_eq!(noise(0.1, 0.3, 3, 3).unwrap().rows, vec![false, false, true]);
    }
}
