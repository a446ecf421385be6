//! Temporal contrastive learning — objective 3 of "Towards Principled Representation Learning from
//! Videos for RL" (Misra et al., 2024): a binary classifier on (φ(o_t), φ(o')) tells whether o' is
//! o_{t+k} of the same episode (positive, k ~ U[1, K]) or another frame (negative: any frame other
//! than o_t and its k-step successor). Logistic loss
//!   L = ½·mean softplus(−ℓ⁺) + ½·mean softplus(ℓ⁻)
//! (0 for a perfect classifier, log 2 for a constant logit 0). Action-free; the theory warns that
//! with exogenous noise the classifier can succeed by tracking the temporally-correlated distractor
//! instead of the agent.

use super::{frames, softplus, video::Video, Encoder, Objective};
use crate::nn::{Activation, Init, Mlp};
use anyhow::Result;
use candle_core::{Device, Tensor, Var};
use oxrl_core::seed::Rng;

/// The logistic pair loss from positive and negative logits (each of shape (B)).
pub fn contrastive_loss(pos: &Tensor, neg: &Tensor) -> Result<Tensor> {
    let lp = softplus(&pos.neg()?)?.mean_all()?;
    let ln = softplus(neg)?.mean_all()?;
    Ok(((lp + ln)? * 0.5)?)
}

pub struct TemporalContrastive {
    clf: Mlp,
    k_max: usize,
    batch: usize,
    dev: Device,
}

impl TemporalContrastive {
    pub fn new(latent: usize, hidden: usize, k_max: usize, batch: usize, rng: &mut Rng, dev: &Device) -> Result<Self> {
        Ok(Self {
            clf: Mlp::new(&[2 * latent, hidden, 1], Activation::Relu, Init::Uniform, rng, dev)?,
            k_max,
            batch,
            dev: dev.clone(),
        })
    }
    fn logits(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        Ok(self.clf.forward(&Tensor::cat(&[a, b], 1)?)?.squeeze(1)?)
    }
}

impl Objective for TemporalContrastive {
    fn vars(&self) -> Vec<(String, Var)> {
        self.clf.vars("classifier")
    }
    fn loss(&mut self, enc: &Encoder, data: &Video, rng: &mut Rng) -> Result<(Tensor, Vec<(String, f64)>)> {
        let mut anchors = Vec::with_capacity(self.batch);
        let mut pos = Vec::with_capacity(self.batch);
        let mut neg = Vec::with_capacity(self.batch);
        for _ in 0..self.batch {
            let (t, k) = data.sample_pair(self.k_max, rng);
            anchors.push(t);
            pos.push(t + k);
            neg.push(data.sample_negative(t, k, rng));
        }
        let za = enc.features(&frames(data, &anchors, &self.dev)?)?;
        let zp = enc.features(&frames(data, &pos, &self.dev)?)?;
        let zn = enc.features(&frames(data, &neg, &self.dev)?)?;
        let lp = self.logits(&za, &zp)?;
        let ln = self.logits(&za, &zn)?;
        let loss = contrastive_loss(&lp, &ln)?;
        let acc = ((lp.gt(0.0)?.to_dtype(candle_core::DType::F32)?.mean_all()?
            + ln.le(0.0)?.to_dtype(candle_core::DType::F32)?.mean_all()?)?
            * 0.5)?
            .to_scalar::<f32>()? as f64;
        let v = loss.to_scalar::<f32>()? as f64;
        Ok((loss, vec![("contrastive_loss".into(), v), ("pair_accuracy".into(), acc)]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_classifier_gives_zero_and_constant_zero_gives_log_two() {
        let d = Device::Cpu;
        let pos = Tensor::new(&[40f32, 35.0, 50.0], &d).unwrap();
        let neg = Tensor::new(&[-40f32, -60.0, -45.0], &d).unwrap();
        assert!(contrastive_loss(&pos, &neg).unwrap().to_scalar::<f32>().unwrap() < 1e-12);
        let z = Tensor::zeros(4, candle_core::DType::F32, &d).unwrap();
        let l = contrastive_loss(&z, &z).unwrap().to_scalar::<f32>().unwrap();
        assert!((l - std::f32::consts::LN_2).abs() < 1e-6);
        // a confidently wrong classifier pays more than log 2
        assert!(contrastive_loss(&neg, &pos).unwrap().to_scalar::<f32>().unwrap() > 30.0);
    }
}
