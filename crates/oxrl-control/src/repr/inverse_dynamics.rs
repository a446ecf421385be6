//! Multi-step inverse dynamics — the action-conditioned comparator of "Towards Principled
//! Representation Learning from Videos for RL" (Misra et al., 2024), as in ACRO ("Agent-Controller
//! Representations: Principled Offline RL with Rich Exogenous Information", Islam et al., 2022):
//! predict the first action a_t from (φ(o_t), φ(o_{t+k}), one-hot k), k ~ U[1, K]; loss =
//! cross-entropy. Only what the agent controls helps predict its actions, so exogenous distractors
//! are not encoded — the study's explanation of why action labels matter under exogenous noise.

use super::{frames, one_hot, video::Video, Encoder, Objective};
use crate::dist::{argmax_rows, categorical_log_prob};
use crate::nn::{Activation, Init, Mlp};
use anyhow::Result;
use candle_core::{Device, Tensor, Var};
use oxrl_core::seed::Rng;

pub struct InverseDynamics {
    head: Mlp,
    k_max: usize,
    batch: usize,
    dev: Device,
}

impl InverseDynamics {
    pub fn new(
        latent: usize,
        hidden: usize,
        n_actions: usize,
        k_max: usize,
        batch: usize,
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<Self> {
        Ok(Self {
            head: Mlp::new(&[2 * latent + k_max, hidden, n_actions], Activation::Relu, Init::Uniform, rng, dev)?,
            k_max,
            batch,
            dev: dev.clone(),
        })
    }
}

impl Objective for InverseDynamics {
    fn vars(&self) -> Vec<(String, Var)> {
        self.head.vars("inverse")
    }
    fn loss(&mut self, enc: &Encoder, data: &Video, rng: &mut Rng) -> Result<(Tensor, Vec<(String, f64)>)> {
        let p = data.sample_pairs(self.batch, self.k_max, rng);
        let acts: Vec<u32> = p.anchors.iter().map(|&t| data.actions[t] as u32).collect();
        let za = enc.features(&frames(data, &p.anchors, &self.dev)?)?;
        let zb = enc.features(&frames(data, &p.futures, &self.dev)?)?;
        let logits = self.head.forward(&Tensor::cat(&[&za, &zb, &one_hot(&p.offsets, self.k_max, &self.dev)?], 1)?)?;
        let at = Tensor::new(acts.as_slice(), &self.dev)?;
        let loss = categorical_log_prob(&logits, &at)?.mean_all()?.neg()?;
        let pred = argmax_rows(&logits)?;
        let acc = pred.iter().zip(&acts).filter(|(p, a)| **p == **a as usize).count() as f64 / acts.len() as f64;
        let v = loss.to_scalar::<f32>()? as f64;
        Ok((loss, vec![("inverse_ce".into(), v), ("action_accuracy".into(), acc)]))
    }
}
