//! Forward modelling — objective 2 of "Towards Principled Representation Learning from Videos for
//! RL" (Misra et al., 2024): predict the future frame o_{t+k} from φ(o_t), with k ~ U[1, K] given
//! to the decoder as a one-hot; loss = per-pixel squared error of the prediction (Gaussian NLL up to
//! constants). Action-free: the model predicts the average future under the data's policy. With
//! only i.i.d. observation noise it recovers the latent state (the noise is unpredictable, so
//! encoding it does not help); exogenous processes that are themselves predictable get encoded.

use super::{frames, one_hot, video::Video, Encoder, Objective};
use crate::nn::{Activation, Init, Mlp};
use anyhow::Result;
use candle_core::{Device, Tensor, Var};
use oxrl_core::seed::Rng;

pub struct ForwardModel {
    dec: Mlp,
    k_max: usize,
    batch: usize,
    dev: Device,
}

impl ForwardModel {
    pub fn new(
        latent: usize,
        hidden: usize,
        frame_dim: usize,
        k_max: usize,
        batch: usize,
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<Self> {
        Ok(Self {
            dec: Mlp::new(&[latent + k_max, hidden, frame_dim], Activation::Relu, Init::Uniform, rng, dev)?,
            k_max,
            batch,
            dev: dev.clone(),
        })
    }
}

impl Objective for ForwardModel {
    fn vars(&self) -> Vec<(String, Var)> {
        self.dec.vars("forward_decoder")
    }
    fn loss(&mut self, enc: &Encoder, data: &Video, rng: &mut Rng) -> Result<(Tensor, Vec<(String, f64)>)> {
        let p = data.sample_pairs(self.batch, self.k_max, rng);
        let z = enc.features(&frames(data, &p.anchors, &self.dev)?)?;
        let inp = Tensor::cat(&[&z, &one_hot(&p.offsets, self.k_max, &self.dev)?], 1)?;
        let pred = self.dec.forward(&inp)?;
        let loss = (pred - frames(data, &p.futures, &self.dev)?)?.sqr()?.mean_all()?;
        let v = loss.to_scalar::<f32>()? as f64;
        Ok((loss, vec![("forward_mse".into(), v)]))
    }
}
