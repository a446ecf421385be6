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
        let pairs: Vec<(usize, usize)> = (0..self.batch).map(|_| data.sample_pair(self.k_max, rng)).collect();
        let a: Vec<usize> = pairs.iter().map(|p| p.0).collect();
        let b: Vec<usize> = pairs.iter().map(|p| p.0 + p.1).collect();
        let ks: Vec<usize> = pairs.iter().map(|p| p.1 - 1).collect();
        let acts: Vec<u32> = a.iter().map(|&t| data.actions[t] as u32).collect();
        let za = enc.features(&frames(data, &a, &self.dev)?)?;
        let zb = enc.features(&frames(data, &b, &self.dev)?)?;
        let logits = self.head.forward(&Tensor::cat(&[&za, &zb, &one_hot(&ks, self.k_max, &self.dev)?], 1)?)?;
        let at = Tensor::new(acts.as_slice(), &self.dev)?;
        let loss = categorical_log_prob(&logits, &at)?.mean_all()?.neg()?;
        let pred = argmax_rows(&logits)?;
        let acc = pred.iter().zip(&acts).filter(|(p, a)| **p == **a as usize).count() as f64 / acts.len() as f64;
        let v = loss.to_scalar::<f32>()? as f64;
        Ok((loss, vec![("inverse_ce".into(), v), ("action_accuracy".into(), acc)]))
    }
}
