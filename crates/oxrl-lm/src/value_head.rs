//! A scalar value head on the policy's final hidden states (PPO critic sharing the trunk):
//! V(s_t) = w·h_t + b. Saved as `value_head.safetensors` beside the model.

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use std::collections::HashMap;
use std::path::Path;

pub struct ValueHead {
    pub weight: Var,
    pub bias: Var,
}

impl ValueHead {
    pub fn new(hidden: usize, seed: u64, device: &Device) -> Result<Self> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(oxrl_core::seed::derive(seed, "value-head", 0));
        let n = Normal::new(0.0f32, 0.02)?;
        let w: Vec<f32> = (0..hidden).map(|_| n.sample(&mut rng)).collect();
        Ok(Self {
            weight: Var::from_tensor(&Tensor::from_vec(w, hidden, device)?)?,
            bias: Var::from_tensor(&Tensor::zeros(1, DType::F32, device)?)?,
        })
    }

    /// Values `[B, R]` from hidden states `[B, R, D]`.
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let h = hidden.to_dtype(self.weight.dtype())?;
        Ok(h.broadcast_mul(self.weight.as_tensor())?.sum(D::Minus1)?.broadcast_add(self.bias.as_tensor())?)
    }

    pub fn named_vars(&self) -> Vec<(String, Var)> {
        vec![("value_head.weight".into(), self.weight.clone()), ("value_head.bias".into(), self.bias.clone())]
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let map: HashMap<String, Tensor> =
            self.named_vars().into_iter().map(|(k, v)| (k, v.as_detached_tensor())).collect();
        crate::fsutil::write_atomic_with(path, |tmp| Ok(candle_core::safetensors::save(&map, tmp)?))
    }

    pub fn load(&self, path: &Path) -> Result<()> {
        let t = candle_core::safetensors::load(path, self.weight.device())
            .with_context(|| format!("{}", path.display()))?;
        for (name, var) in self.named_vars() {
            let v = t.get(&name).with_context(|| format!("{}: missing `{name}`", path.display()))?;
            var.set(v)?;
        }
        Ok(())
    }
}
