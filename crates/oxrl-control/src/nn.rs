//! Small networks for control: multilayer perceptrons over candle tensors, their initialisations
//! (orthogonal as in CleanRL's PPO, PyTorch's default uniform for DQN / SAC), and named parameter
//! sets that save to and load from safetensors, copy and track each other by EMA.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use oxrl_core::seed::Rng;
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    Tanh,
    Relu,
}

impl Activation {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "tanh" => Ok(Self::Tanh),
            "relu" => Ok(Self::Relu),
            _ => bail!("unknown activation {s:?} (tanh or relu)"),
        }
    }
    fn apply(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Tanh => x.tanh()?,
            Self::Relu => x.relu()?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Orthogonal weights scaled by `gain` on hidden layers and `last_gain` on the output layer,
    /// zero biases (CleanRL's `layer_init`).
    Orthogonal { gain: f64, last_gain: f64 },
    /// PyTorch's `nn.Linear` default: weights and biases uniform in ±1/√fan_in.
    Uniform,
}

/// A random (rows × cols) matrix with orthonormal rows (rows ≤ cols) or columns (rows > cols),
/// by Gram–Schmidt on Gaussian vectors — the distribution of `torch.nn.init.orthogonal_`.
pub fn orthogonal(rows: usize, cols: usize, gain: f64, rng: &mut Rng) -> Vec<f32> {
    let (n, len) = if rows <= cols { (rows, cols) } else { (cols, rows) };
    let mut vs: Vec<Vec<f64>> = Vec::with_capacity(n);
    while vs.len() < n {
        let mut v: Vec<f64> = (0..len).map(|_| StandardNormal.sample(rng)).collect();
        for _ in 0..2 {
            for u in &vs {
                let d: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(u).for_each(|(a, b)| *a -= d * b);
            }
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-8 {
            vs.push(v.into_iter().map(|a| a / norm).collect());
        }
    }
    let mut m = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let x = if rows <= cols { vs[r][c] } else { vs[c][r] };
            m[r * cols + c] = (x * gain) as f32;
        }
    }
    m
}

/// One dense layer y = x·W + b, W stored (in × out).
pub struct Linear {
    pub w: Var,
    pub b: Var,
}

impl Linear {
    pub fn new(inp: usize, out: usize, init: Init, gain: f64, rng: &mut Rng, dev: &Device) -> Result<Self> {
        oxrl_core::threads::resolve_once();
        let (w, b) = match init {
            Init::Orthogonal { .. } => {
                // orthogonal over (out × in) as PyTorch stores it, transposed into (in × out)
                let m = orthogonal(out, inp, gain, rng);
                let mut t = vec![0f32; inp * out];
                for o in 0..out {
                    for i in 0..inp {
                        t[i * out + o] = m[o * inp + i];
                    }
                }
                (t, vec![0f32; out])
            }
            Init::Uniform => {
                let k = 1.0 / (inp as f64).sqrt();
                let w = (0..inp * out).map(|_| rng.random_range(-k..k) as f32).collect();
                let b = (0..out).map(|_| rng.random_range(-k..k) as f32).collect();
                (w, b)
            }
        };
        Ok(Self {
            w: Var::from_tensor(&Tensor::from_vec(w, (inp, out), dev)?)?,
            b: Var::from_tensor(&Tensor::from_vec(b, out, dev)?)?,
        })
    }
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(self.w.as_tensor())?.broadcast_add(self.b.as_tensor())?)
    }
}

/// A multilayer perceptron: hidden layers with an activation, a linear output layer.
pub struct Mlp {
    pub layers: Vec<Linear>,
    pub act: Activation,
    /// Optional LayerNorm (no affine) after every hidden layer.
    pub layer_norm: bool,
}

impl Mlp {
    /// `sizes` = [input, hidden…, output].
    pub fn new(sizes: &[usize], act: Activation, init: Init, rng: &mut Rng, dev: &Device) -> Result<Self> {
        if sizes.len() < 2 || sizes.contains(&0) {
            bail!("an MLP needs at least input and output sizes, all positive (got {sizes:?})");
        }
        let n = sizes.len() - 1;
        let layers = (0..n)
            .map(|i| {
                let gain = match init {
                    Init::Orthogonal { gain, last_gain } => {
                        if i + 1 == n {
                            last_gain
                        } else {
                            gain
                        }
                    }
                    Init::Uniform => 1.0,
                };
                Linear::new(sizes[i], sizes[i + 1], init, gain, rng, dev)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { layers, act, layer_norm: false })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        let n = self.layers.len();
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(&h)?;
            if i + 1 < n {
                if self.layer_norm {
                    h = layer_norm(&h)?;
                }
                h = self.act.apply(&h)?;
            }
        }
        Ok(h)
    }

    pub fn vars(&self, prefix: &str) -> Vec<(String, Var)> {
        let mut v = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            v.push((format!("{prefix}.{i}.weight"), l.w.clone()));
            v.push((format!("{prefix}.{i}.bias"), l.b.clone()));
        }
        v
    }
}

/// LayerNorm over the last dimension without affine parameters (ε = 1e-5).
pub fn layer_norm(x: &Tensor) -> Result<Tensor> {
    let mean = x.mean_keepdim(candle_core::D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(candle_core::D::Minus1)?;
    Ok(xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?)
}

/// Named parameters of a model, in a fixed order.
#[derive(Clone)]
pub struct Params(pub Vec<(String, Var)>);

impl Params {
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.0.clone()
    }
    /// Overwrite every parameter with `other`'s (same names and shapes).
    pub fn copy_from(&self, other: &Params) -> Result<()> {
        self.ema_from(other, 1.0)
    }
    /// EMA_τ(self, other): self ← (1 − τ)·self + τ·other. τ = 1 copies, τ = 0 leaves self as is.
    pub fn ema_from(&self, other: &Params, tau: f64) -> Result<()> {
        if self.0.len() != other.0.len() {
            bail!("EMA between parameter sets of different sizes");
        }
        for ((na, a), (nb, b)) in self.0.iter().zip(&other.0) {
            if a.shape() != b.shape() {
                bail!("EMA: {na} {:?} vs {nb} {:?}", a.shape(), b.shape());
            }
            let t = if tau == 1.0 {
                b.as_tensor().detach()
            } else {
                ((a.as_tensor() * (1.0 - tau))? + (b.as_tensor() * tau)?)?
            };
            a.set(&t)?;
        }
        Ok(())
    }
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.0.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect()
    }
    /// Load values by name from a map (every parameter must be present with its shape).
    pub fn load(&self, map: &HashMap<String, Tensor>, what: &str) -> Result<()> {
        for (n, v) in &self.0 {
            let t = map.get(n).with_context(|| format!("{what}: missing tensor {n}"))?;
            if t.shape() != v.shape() {
                bail!("{what}: {n} has shape {:?}, expected {:?}", t.shape(), v.shape());
            }
            v.set(&t.to_dtype(DType::F32)?.to_device(v.device())?)?;
        }
        Ok(())
    }
    pub fn save(&self, path: &Path) -> Result<()> {
        candle_core::safetensors::save(&self.tensors(), path).with_context(|| format!("writing {}", path.display()))
    }
    pub fn load_file(&self, path: &Path) -> Result<()> {
        let map = candle_core::safetensors::load(path, &Device::Cpu)
            .with_context(|| format!("reading {}", path.display()))?;
        self.load(&map, &path.display().to_string())
    }
    pub fn num_elements(&self) -> usize {
        self.0.iter().map(|(_, v)| v.elem_count()).sum()
    }
}

/// Rows of f32 vectors as a (n × d) tensor.
pub fn rows(x: &[Vec<f32>], dev: &Device) -> Result<Tensor> {
    let n = x.len();
    let d = x.first().map_or(0, |r| r.len());
    let mut flat = Vec::with_capacity(n * d);
    for r in x {
        if r.len() != d {
            bail!("ragged rows: {} vs {d}", r.len());
        }
        flat.extend_from_slice(r);
    }
    Ok(Tensor::from_vec(flat, (n, d), dev)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn orthogonal_rows_and_columns_are_orthonormal_times_gain() {
        let mut rng = Rng::seed_from_u64(0);
        for (r, c) in [(3, 5), (5, 3), (4, 4)] {
            let m = orthogonal(r, c, 2.0, &mut rng);
            let (n, len, by_rows) = if r <= c { (r, c, true) } else { (c, r, false) };
            for i in 0..n {
                for j in 0..n {
                    let d: f64 = (0..len)
                        .map(|k| {
                            let (a, b) =
                                if by_rows { (m[i * c + k], m[j * c + k]) } else { (m[k * c + i], m[k * c + j]) };
                            a as f64 * b as f64
                        })
                        .sum();
                    let want = if i == j { 4.0 } else { 0.0 };
                    assert!((d - want).abs() < 1e-5, "{r}x{c} ({i},{j}) {d}");
                }
            }
        }
    }

    #[test]
    fn ema_copies_at_one_keeps_at_zero_and_mixes_between() {
        let dev = Device::Cpu;
        let mut rng = Rng::seed_from_u64(1);
        let a = Params(Mlp::new(&[2, 1], Activation::Tanh, Init::Uniform, &mut rng, &dev).unwrap().vars("a"));
        let b = Params(Mlp::new(&[2, 1], Activation::Tanh, Init::Uniform, &mut rng, &dev).unwrap().vars("a"));
        let va = a.0[0].1.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let vb = b.0[0].1.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        a.ema_from(&b, 0.0).unwrap();
        assert_eq!(a.0[0].1.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap(), va);
        a.ema_from(&b, 0.01).unwrap();
        let mixed = a.0[0].1.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for i in 0..2 {
            assert!((mixed[i] - (0.99 * va[i] + 0.01 * vb[i])).abs() < 1e-6);
        }
        a.copy_from(&b).unwrap();
        assert_eq!(a.0[0].1.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap(), vb);
    }

    #[test]
    fn save_load_round_trip_and_shape_errors() {
        let dev = Device::Cpu;
        let mut rng = Rng::seed_from_u64(2);
        let a = Params(Mlp::new(&[3, 4, 2], Activation::Relu, Init::Uniform, &mut rng, &dev).unwrap().vars("q"));
        let b = Params(Mlp::new(&[3, 4, 2], Activation::Relu, Init::Uniform, &mut rng, &dev).unwrap().vars("q"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.safetensors");
        a.save(&p).unwrap();
        b.load_file(&p).unwrap();
        for ((_, x), (_, y)) in a.0.iter().zip(&b.0) {
            assert_eq!(
                x.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                y.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()
            );
        }
        let c = Params(Mlp::new(&[3, 5, 2], Activation::Relu, Init::Uniform, &mut rng, &dev).unwrap().vars("q"));
        assert!(c.load_file(&p).unwrap_err().to_string().contains("shape"));
    }
}
