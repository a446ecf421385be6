//! Autoencoding — objective 1 of "Towards Principled Representation Learning from Videos for RL"
//! (Misra et al., 2024): a decoder reconstructs o_t from φ(o_t); loss = per-pixel mean squared
//! error ‖D(φ(o_t)) − o_t‖² / |o|. No action or reward is used. (The study also allows a VAE
//! variant; this is the deterministic one.) The theory gives autoencoding no guarantee of
//! recovering the controllable state: it spends capacity on whatever pixels vary most.

use super::{frames, video::Video, Encoder, Objective};
use crate::nn::{Activation, Init, Mlp};
use anyhow::Result;
use candle_core::{Device, Tensor, Var};
use oxrl_core::seed::Rng;
use rand::Rng as _;

pub struct Autoencoder {
    dec: Mlp,
    batch: usize,
    dev: Device,
}

impl Autoencoder {
    pub fn new(
        latent: usize,
        hidden: usize,
        frame_dim: usize,
        batch: usize,
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<Self> {
        Ok(Self {
            dec: Mlp::new(&[latent, hidden, frame_dim], Activation::Relu, Init::Uniform, rng, dev)?,
            batch,
            dev: dev.clone(),
        })
    }
}

impl Objective for Autoencoder {
    fn vars(&self) -> Vec<(String, Var)> {
        self.dec.vars("decoder")
    }
    fn loss(&mut self, enc: &Encoder, data: &Video, rng: &mut Rng) -> Result<(Tensor, Vec<(String, f64)>)> {
        let idx: Vec<usize> = (0..self.batch).map(|_| rng.random_range(0..data.len())).collect();
        let x = frames(data, &idx, &self.dev)?;
        let rec = self.dec.forward(&enc.features(&x)?)?;
        let loss = (rec - &x)?.sqr()?.mean_all()?;
        let v = loss.to_scalar::<f32>()? as f64;
        Ok((loss, vec![("recon_mse".into(), v)]))
    }
}
