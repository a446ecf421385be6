//! Latent-reasoning mode: continuous thought vectors fed back into the model as inputs.
//!
//! Two kinds, both driven by the sampler ([`crate::sampler::generate_latent`]) and replayed by
//! the scorer ([`crate::scorer::score_inputs`]) from the vectors recorded in each
//! [`crate::sampler::Completion`]:
//!
//! - **Coconut-style latent segments** (`coconut`): between optional start/end marker tokens the
//!   model runs `steps` latent positions, each fed the last hidden state of the position before
//!   it (no token is sampled there). A segment opens at the start of every response (`prefix`
//!   trigger) or when the policy samples the start marker (`marker` trigger); the end marker is
//!   then forced. The latent "policy" is von Mises–Fisher around that hidden state:
//!   log π(z | μ) = κ·⟨μ, z⟩ + const ([`vmf_logp`]), as DePO / HyLaR implement it.
//! - **HRPO hybrid inputs** (`hrpo`) — "Hybrid Latent Reasoning via Reinforcement Learning" (2025):
//!   every response position's input mixes the sampled token's embedding with the previous
//!   position's last hidden state, x_t = (1 − g)⊙e(y_t) + g⊙W·ĥ_{t−1}, with a learnable gate
//!   g = σ(a) (per dimension) and projection W (identity at init). The hidden state is first
//!   rescaled to the embedding's norm, ĥ = h·‖e‖/‖h‖ (the spec's "gated mix of normalised
//!   vectors": final hidden states are an order of magnitude larger than embeddings, so without
//!   it even g ≈ 0.007 moves the model). a starts very negative so g ≈ 0 and the model starts as
//!   the plain LM; tokens are still sampled, so GRPO trains it unchanged. INFERRED (the gate
//!   parameterisation is a design choice, as the spec says).
//!
//! The module's parameters (HRPO's gate and projection) are trained with the model and saved
//! beside it as `latent.safetensors` + `latent.json`.

use anyhow::{bail, ensure, Context, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use std::collections::HashMap;
use std::path::Path;

/// The latent-reasoning settings of a model (saved as `latent.json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatentConfig {
    /// `coconut` (latent segments) or `hrpo` (gated hybrid inputs).
    pub kind: String,
    /// Coconut: latent positions per segment.
    pub steps: usize,
    /// Coconut: `prefix` (every response opens with a segment) or `marker` (a segment opens when
    /// the policy samples `start`).
    pub trigger: String,
    /// Coconut: marker token ids (forced before / after a prefix segment; `start` opens a segment
    /// under the `marker` trigger, which requires it).
    pub start: Option<u32>,
    pub end: Option<u32>,
    /// vMF concentration κ of the latent policy.
    pub kappa: f64,
    /// L2-normalise μ and z in the vMF log-prob and KL (HyLaR's released code does not).
    pub normalize: bool,
    /// HRPO: initial gate logit a (g = σ(a)).
    pub gate_init: f64,
}

impl Default for LatentConfig {
    fn default() -> Self {
        Self {
            kind: "coconut".into(),
            steps: 2,
            trigger: "prefix".into(),
            start: None,
            end: None,
            kappa: 0.01,
            normalize: false,
            gate_init: -5.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatentKind {
    Coconut,
    Hrpo,
}

impl LatentConfig {
    pub fn validate(&self) -> Result<LatentKind> {
        let kind = match self.kind.as_str() {
            "coconut" => LatentKind::Coconut,
            "hrpo" => LatentKind::Hrpo,
            k => bail!("latent kind `{k}`: expected coconut or hrpo"),
        };
        if kind == LatentKind::Coconut {
            ensure!(self.steps > 0, "latent steps must be > 0");
            match self.trigger.as_str() {
                "prefix" => {}
                "marker" => ensure!(self.start.is_some(), "the `marker` latent trigger needs a start marker token"),
                t => bail!("latent trigger `{t}`: expected prefix or marker"),
            }
        }
        ensure!(self.kappa > 0.0 && self.kappa.is_finite(), "latent kappa must be > 0");
        ensure!(self.gate_init.is_finite(), "latent gate_init must be finite");
        Ok(kind)
    }
}

/// What one generated position is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StepKind {
    /// A token sampled from the policy (carries the token loss).
    Token,
    /// A marker token the sampler forced (no loss).
    Forced,
    /// A continuous latent position: its input is the recorded vector, its token a placeholder.
    Latent,
}

pub struct LatentModule {
    pub cfg: LatentConfig,
    pub kind: LatentKind,
    /// HRPO: gate logits `[D]` and projection `[D, D]`.
    gate: Option<Var>,
    proj: Option<Var>,
}

fn sigmoid(x: &Tensor) -> Result<Tensor> {
    // Composed (differentiable) σ(x) = 1 / (1 + e^{−x}).
    Ok((x.neg()?.exp()? + 1.0)?.recip()?)
}

impl LatentModule {
    pub fn new(cfg: LatentConfig, hidden: usize, dtype: DType, device: &Device) -> Result<Self> {
        let kind = cfg.validate()?;
        let (gate, proj) = if kind == LatentKind::Hrpo {
            let g = Tensor::full(cfg.gate_init as f32, hidden, device)?.to_dtype(dtype)?;
            let w = Tensor::eye(hidden, DType::F32, device)?.to_dtype(dtype)?;
            (Some(Var::from_tensor(&g)?), Some(Var::from_tensor(&w)?))
        } else {
            (None, None)
        };
        Ok(Self { cfg, kind, gate, proj })
    }

    /// An independent copy (the frozen reference's module).
    pub fn deep_clone(&self) -> Result<Self> {
        let c = |v: &Option<Var>| -> Result<Option<Var>> {
            v.as_ref().map(|v| Ok(Var::from_tensor(&v.as_detached_tensor().copy()?)?)).transpose()
        };
        Ok(Self { cfg: self.cfg.clone(), kind: self.kind, gate: c(&self.gate)?, proj: c(&self.proj)? })
    }

    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let mut v = Vec::new();
        if let Some(g) = &self.gate {
            v.push(("latent.gate".to_string(), g.clone()));
        }
        if let Some(p) = &self.proj {
            v.push(("latent.proj".to_string(), p.clone()));
        }
        v
    }

    /// HRPO's mean gate value σ(a) (None for Coconut).
    pub fn gate_mean(&self) -> Result<Option<f64>> {
        match &self.gate {
            Some(g) => {
                let s = sigmoid(&g.as_detached_tensor().to_dtype(DType::F64)?)?;
                Ok(Some(s.mean_all()?.to_scalar::<f64>()?))
            }
            None => Ok(None),
        }
    }

    /// Model inputs from token embeddings `e` `[B, T, D]`, recorded vectors `v` `[B, T, D]` and
    /// their position mask `m` `[B, T]` (1 where a vector applies): Coconut replaces the
    /// embedding, HRPO mixes (1 − g)⊙e + g⊙(v Wᵀ). With `detach`, the module's parameters take no
    /// gradient (inference).
    pub fn inputs(&self, e: &Tensor, v: &Tensor, m: &Tensor, detach: bool) -> Result<Tensor> {
        let m = m.to_dtype(e.dtype())?.unsqueeze(D::Minus1)?;
        let v = v.to_dtype(e.dtype())?;
        let keep = (1.0 - &m)?;
        let replacement = match self.kind {
            LatentKind::Coconut => v,
            LatentKind::Hrpo => {
                let get = |x: &Option<Var>| -> Tensor {
                    let t = x.as_ref().expect("HRPO parameters").as_tensor();
                    if detach {
                        t.detach()
                    } else {
                        t.clone()
                    }
                };
                let g = sigmoid(&get(&self.gate))?;
                let (b, t, d) = v.dims3()?;
                let norm = |x: &Tensor| -> Result<Tensor> {
                    Ok(x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::INFINITY)?)
                };
                let v = v.broadcast_mul(&norm(e)?.broadcast_div(&norm(&v)?)?)?;
                let proj = v.reshape((b * t, d))?.matmul(&get(&self.proj).t()?)?.reshape((b, t, d))?;
                (e.broadcast_mul(&(1.0 - &g)?)? + proj.broadcast_mul(&g)?)?
            }
        };
        Ok((e.broadcast_mul(&keep)? + replacement.broadcast_mul(&m)?)?)
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::write(dir.join("latent.json"), serde_json::to_string_pretty(&self.cfg)?)?;
        let map: HashMap<String, Tensor> =
            self.named_vars().into_iter().map(|(k, v)| (k, v.as_detached_tensor())).collect();
        if !map.is_empty() {
            candle_core::safetensors::save(&map, dir.join("latent.safetensors"))?;
        }
        Ok(())
    }

    /// The module saved in a model directory, if any.
    pub fn load(dir: &Path, hidden: usize, dtype: DType, device: &Device) -> Result<Option<Self>> {
        let Ok(text) = std::fs::read_to_string(dir.join("latent.json")) else { return Ok(None) };
        let cfg: LatentConfig =
            serde_json::from_str(&text).with_context(|| format!("{}: invalid latent.json", dir.display()))?;
        let m = Self::new(cfg, hidden, dtype, device).with_context(|| format!("{}: latent.json", dir.display()))?;
        let vars = m.named_vars();
        if !vars.is_empty() {
            let path = dir.join("latent.safetensors");
            let t = candle_core::safetensors::load(&path, device).with_context(|| format!("{}", path.display()))?;
            for (name, var) in vars {
                let v = t.get(&name).with_context(|| format!("{}: missing `{name}`", path.display()))?;
                ensure!(v.dims() == var.dims(), "{}: `{name}` has shape {:?}", path.display(), v.dims());
                var.set(&v.to_dtype(dtype)?)?;
            }
        }
        Ok(Some(m))
    }
}

fn unit(x: &Tensor) -> Result<Tensor> {
    let n = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::INFINITY)?;
    Ok(x.broadcast_div(&n)?)
}

/// The vMF latent log-prob (up to its constant) κ·⟨μ, z⟩ over the last dimension, with μ and z
/// L2-normalised when `normalize`.
pub fn vmf_logp(mu: &Tensor, z: &Tensor, kappa: f64, normalize: bool) -> Result<Tensor> {
    let (mu, z) = if normalize { (unit(mu)?, unit(z)?) } else { (mu.clone(), z.clone()) };
    Ok(((mu * z)?.sum(D::Minus1)? * kappa)?)
}

/// DePO's closed-form latent KL(vMF(μ, κ) ‖ vMF(z, κ)) ≈ κ·(1 − ⟨μ, z⟩) per position (the
/// released code's form: the A_d(κ) factor dropped; with `normalize` the cosine is used).
pub fn vmf_kl(mu: &Tensor, z: &Tensor, kappa: f64, normalize: bool) -> Result<Tensor> {
    Ok(((vmf_logp(mu, z, 1.0, normalize)?.neg()? + 1.0)? * kappa)?)
}

/// Host version of [`vmf_logp`] for one pair (the sampler's record).
pub fn vmf_logp_host(mu: &[f32], z: &[f32], kappa: f64, normalize: bool) -> f32 {
    let dot: f64 = mu.iter().zip(z).map(|(a, b)| *a as f64 * *b as f64).sum();
    let v = if normalize {
        let n = |x: &[f32]| x.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt().max(1e-12);
        dot / (n(mu) * n(z))
    } else {
        dot
    };
    (kappa * v) as f32
}

/// Latent-GRPO's one-sided exploration noise: z = μ + σ·|ξ|·‖μ‖·u for a unit direction u and
/// ξ ~ N(0, 1) — the perturbation always points along +u (INFERRED minimal form).
pub fn one_sided_noise(mu: &[f32], u: &[f32], sigma: f64, xi: f64) -> Vec<f32> {
    let norm = mu.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
    let s = (sigma * xi.abs() * norm) as f32;
    mu.iter().zip(u).map(|(m, d)| m + s * d).collect()
}

/// Exploration noise for [`crate::sampler::generate_latent`]: which sequences get it (the others
/// keep the deterministic latent path as anchors) and its relative scale σ.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentNoise {
    pub sigma: f64,
    pub rows: Vec<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    #[test]
    fn vmf_kl_oracles() -> Result<()> {
        // Unit vectors: 0 when μ = z, κ when orthogonal, 2κ when opposite.
        let k = 0.7;
        let kl = |a: &[f32], b: &[f32]| vmf_kl(&t(a), &t(b), k, false).unwrap().to_scalar::<f32>().unwrap() as f64;
        assert!(kl(&[1.0, 0.0], &[1.0, 0.0]).abs() < 1e-6);
        assert!((kl(&[1.0, 0.0], &[0.0, 1.0]) - k).abs() < 1e-6);
        assert!((kl(&[1.0, 0.0], &[-1.0, 0.0]) - 2.0 * k).abs() < 1e-6);
        // Normalised: scale-free.
        let n = vmf_kl(&t(&[3.0, 0.0]), &t(&[0.0, 5.0]), k, true)?.to_scalar::<f32>()? as f64;
        assert!((n - k).abs() < 1e-6);
        // log-prob: κ⟨μ, z⟩, host and tensor agree.
        let lp = vmf_logp(&t(&[1.0, 2.0]), &t(&[3.0, -1.0]), 0.5, false)?.to_scalar::<f32>()?;
        assert!((lp - 0.5).abs() < 1e-6);
        assert!((vmf_logp_host(&[1.0, 2.0], &[3.0, -1.0], 0.5, false) - 0.5).abs() < 1e-6);
        let c = vmf_logp_host(&[1.0, 2.0], &[2.0, 4.0], 2.0, true);
        assert!((c - 2.0).abs() < 1e-5, "parallel vectors: cos 1, {c}");
        Ok(())
    }

    #[test]
    fn one_sided_noise_points_one_way() {
        let mu = [3.0f32, 4.0];
        let u = [0.0f32, 1.0];
        for xi in [-2.0, -0.1, 0.0, 0.5, 3.0] {
            let z = one_sided_noise(&mu, &u, 0.1, xi);
            let along = (z[1] - mu[1]) as f64;
            assert!((z[0] - mu[0]).abs() < 1e-7 && along >= 0.0);
            assert!((along - 0.1 * f64::abs(xi) * 5.0).abs() < 1e-5);
        }
    }

    #[test]
    fn coconut_replaces_and_hrpo_mixes() -> Result<()> {
        let dev = Device::Cpu;
        let e = Tensor::new(&[[[1f32, 2.0], [3.0, 4.0]]], &dev)?;
        let v = Tensor::new(&[[[10f32, 20.0], [30.0, 40.0]]], &dev)?;
        let m = Tensor::new(&[[0f32, 1.0]], &dev)?;
        let c = LatentModule::new(LatentConfig::default(), 2, DType::F32, &dev)?;
        assert_eq!(c.inputs(&e, &v, &m, false)?.to_vec3::<f32>()?, vec![vec![vec![1.0, 2.0], vec![30.0, 40.0]]]);
        // HRPO with a = 0: g = ½ and W = I, so the masked row is the mean of e and v rescaled to
        // ‖e‖ = 5 (v = 10·(3, 4) → (3, 4)): ((3 + 3)/2, (4 + 4)/2).
        let cfg = LatentConfig { kind: "hrpo".into(), gate_init: 0.0, ..Default::default() };
        let h = LatentModule::new(cfg, 2, DType::F32, &dev)?;
        let x = h.inputs(&e, &v, &m, false)?.to_vec3::<f32>()?;
        assert_eq!(x[0][0], vec![1.0, 2.0]);
        assert!((x[0][1][0] - 3.0).abs() < 1e-5 && (x[0][1][1] - 4.0).abs() < 1e-5, "{:?}", x[0][1]);
        let v2 = Tensor::new(&[[[10f32, 20.0], [0.0, 50.0]]], &dev)?;
        let x = h.inputs(&e, &v2, &m, false)?.to_vec3::<f32>()?;
        assert!((x[0][1][0] - 1.5).abs() < 1e-5 && (x[0][1][1] - 4.5).abs() < 1e-5, "{:?}", x[0][1]);
        // Gradients reach the gate and the projection.
        let v = v2;
        let y = h.inputs(&e, &v, &m, false)?.sum_all()?;
        let g = y.backward()?;
        for (name, var) in h.named_vars() {
            let gr = g.get(var.as_tensor()).with_context(|| format!("{name} has no gradient"))?;
            assert!(gr.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0, "{name}");
        }
        // The gate's gradient by finite differences.
        let fd = {
            let eps = 1e-3f32;
            let f = |a: f32| -> Result<f32> {
                let cfg = LatentConfig { kind: "hrpo".into(), gate_init: a as f64, ..Default::default() };
                let m2 = LatentModule::new(cfg, 2, DType::F32, &dev)?;
                Ok(m2.inputs(&e, &v, &m, false)?.sum_all()?.to_scalar::<f32>()?)
            };
            (f(eps)? - f(-eps)?) / (2.0 * eps)
        };
        let an = g.get(h.named_vars()[0].1.as_tensor()).unwrap().sum_all()?.to_scalar::<f32>()?;
        assert!((an - fd).abs() < 1e-2 * fd.abs().max(1.0), "analytic {an} vs finite differences {fd}");
        Ok(())
    }

    #[test]
    fn config_is_checked() {
        let bad = |c: LatentConfig| c.validate().is_err();
        assert!(bad(LatentConfig { kind: "nope".into(), ..Default::default() }));
        assert!(bad(LatentConfig { steps: 0, ..Default::default() }));
        assert!(bad(LatentConfig { trigger: "marker".into(), ..Default::default() }));
        assert!(bad(LatentConfig { kappa: 0.0, ..Default::default() }));
        assert!(LatentConfig { trigger: "marker".into(), start: Some(3), ..Default::default() }.validate().is_ok());
    }
}
