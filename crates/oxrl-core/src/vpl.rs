//! VPL — "Personalizing RLHF with Variational Preference Learning" (2024): a reward model
//! conditioned on a latent user variable inferred from that user's own preference pairs.
//!
//! - Encoder q_ψ(z | C_u): each context pair (e_chosen, e_rejected) through an MLP, mean-pooled
//!   over the user's N context pairs, to a Gaussian (μ, log σ²) over z ∈ R^{d_z}.
//! - Conditioned reward r_φ(e, z): an MLP on [e, z].
//! - ELBO per user: E_{z~q}[Σ_{target pairs} log σ(r_φ(e_w, z) − r_φ(e_l, z))] − β·KL(q ‖ N(0, I)),
//!   reparameterised z = μ + σ·ε; context and target pairs are disjoint subsets of the user's.
//! - Scale-free reward for policies (VPL-SPO): r̃(e, z) = mean over a reference set of
//!   σ(r_φ(e, z) − r_φ(e', z)) ∈ [0, 1], invariant to a per-user shift of r_φ.
//!
//! `e` are fixed embeddings of (prompt, response) from a frozen model (the caller's choice).
//! With no context the prior mean z = 0 gives the population reward. INFERRED: encoder and reward
//! architectures (one hidden layer, tanh) and defaults are ours.

use crate::optim::{AdamW, AdamWConfig};
use anyhow::{ensure, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};

#[derive(Debug, Clone, PartialEq)]
pub struct VplConfig {
    pub z_dim: usize,
    pub hidden: usize,
    /// β of the KL term.
    pub beta: f64,
    pub lr: f64,
    pub steps: usize,
    /// Users per optimiser step.
    pub batch_users: usize,
    pub seed: u64,
}

impl Default for VplConfig {
    fn default() -> Self {
        Self { z_dim: 8, hidden: 32, beta: 1e-2, lr: 3e-3, steps: 400, batch_users: 16, seed: 0 }
    }
}

/// One preference: the embedding of the chosen and of the rejected response.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub chosen: Vec<f32>,
    pub rejected: Vec<f32>,
}

/// A user's labelled pairs: `context` for the encoder, `target` for the likelihood.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub context: Vec<Pair>,
    pub target: Vec<Pair>,
}

struct Mlp {
    w1: Var,
    b1: Var,
    w2: Var,
    b2: Var,
}

impl Mlp {
    fn new(inp: usize, hidden: usize, out: usize, rng: &mut crate::seed::Rng) -> Result<Self> {
        let dev = Device::Cpu;
        let mut init = |r: usize, c: usize| -> Result<Var> {
            let s = (1.0 / c as f64).sqrt();
            let v: Vec<f32> = (0..r * c)
                .map(|_| {
                    let x: f64 = StandardNormal.sample(&mut *rng);
                    (s * x) as f32
                })
                .collect();
            Ok(Var::from_tensor(&Tensor::from_vec(v, (r, c), &dev)?)?)
        };
        Ok(Self {
            w1: init(hidden, inp)?,
            b1: Var::from_tensor(&Tensor::zeros(hidden, DType::F32, &dev)?)?,
            w2: init(out, hidden)?,
            b2: Var::from_tensor(&Tensor::zeros(out, DType::F32, &dev)?)?,
        })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = x.matmul(&self.w1.as_tensor().t()?)?.broadcast_add(self.b1.as_tensor())?.tanh()?;
        Ok(h.matmul(&self.w2.as_tensor().t()?)?.broadcast_add(self.b2.as_tensor())?)
    }
    fn vars(&self, prefix: &str) -> Vec<(String, Var)> {
        [("w1", &self.w1), ("b1", &self.b1), ("w2", &self.w2), ("b2", &self.b2)]
            .into_iter()
            .map(|(n, v)| (format!("{prefix}.{n}"), v.clone()))
            .collect()
    }
}

/// KL(N(μ, σ²) ‖ N(0, I)) summed over the last dimension.
pub fn gaussian_kl(mu: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    Ok(((((logvar.exp()? + mu.sqr()?)? - logvar)? - 1.0)?.sum(D::Minus1)? * 0.5)?)
}

/// VPL-SPO's scale-free reward: the mean win probability σ(r − r') against `refs`.
pub fn scaled_reward(r: f64, refs: &[f64]) -> f64 {
    if refs.is_empty() {
        return 0.5;
    }
    refs.iter().map(|x| 1.0 / (1.0 + (-(r - x)).exp())).sum::<f64>() / refs.len() as f64
}

pub struct Vpl {
    pub cfg: VplConfig,
    embed_dim: usize,
    encoder: Mlp,
    reward: Mlp,
    /// Without an encoder (z ≡ 0): the unimodal Bradley–Terry baseline.
    conditional: bool,
}

fn rows(v: &[&[f32]], dim: usize) -> Result<Tensor> {
    Ok(Tensor::from_vec(v.concat(), (v.len(), dim), &Device::Cpu)?)
}

impl Vpl {
    /// A VPL model (`conditional`) or the Bradley–Terry baseline with the same reward network.
    pub fn new(embed_dim: usize, cfg: VplConfig, conditional: bool) -> Result<Self> {
        let mut rng = crate::seed::rng(cfg.seed, "vpl-init", 0);
        let encoder = Mlp::new(2 * embed_dim, cfg.hidden, 2 * cfg.z_dim, &mut rng)?;
        let reward = Mlp::new(embed_dim + cfg.z_dim, cfg.hidden, 1, &mut rng)?;
        Ok(Self { cfg, embed_dim, encoder, reward, conditional })
    }

    /// The trainable variables by name (`encoder.*`, `reward.*`), for saving.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let mut v = self.reward.vars("reward");
        v.extend(self.encoder.vars("encoder"));
        v
    }

    /// (μ, log σ²) of q(z | context), `[z_dim]` each; the prior (0, 0) without context.
    pub fn posterior(&self, context: &[Pair]) -> Result<(Tensor, Tensor)> {
        let z = self.cfg.z_dim;
        if context.is_empty() || !self.conditional {
            let zero = Tensor::zeros(z, DType::F32, &Device::Cpu)?;
            return Ok((zero.clone(), zero));
        }
        let x: Vec<Vec<f32>> = context.iter().map(|p| [p.chosen.as_slice(), &p.rejected].concat()).collect();
        let x = rows(&x.iter().map(|r| r.as_slice()).collect::<Vec<_>>(), 2 * self.embed_dim)?;
        let out = self.encoder.forward(&x)?.mean(0)?;
        Ok((out.narrow(0, 0, z)?, out.narrow(0, z, z)?.clamp(-8.0, 8.0)?))
    }

    /// r_φ(e, z) for rows of embeddings `[N, E]` and one z `[z_dim]`.
    pub fn rewards(&self, e: &Tensor, z: &Tensor) -> Result<Tensor> {
        let n = e.dim(0)?;
        let zz = z.unsqueeze(0)?.broadcast_as((n, self.cfg.z_dim))?;
        Ok(self.reward.forward(&Tensor::cat(&[e, &zz], 1)?)?.squeeze(1)?)
    }

    /// The negative ELBO of one user (one reparameterised draw) and its KL.
    fn user_loss(&self, u: &User, eps: &Tensor) -> Result<(Tensor, Tensor)> {
        let (mu, logvar) = self.posterior(&u.context)?;
        let z = if self.conditional { (&mu + (logvar.clone() * 0.5)?.exp()?.mul(eps)?)? } else { mu.clone() };
        let w: Vec<&[f32]> = u.target.iter().map(|p| p.chosen.as_slice()).collect();
        let l: Vec<&[f32]> = u.target.iter().map(|p| p.rejected.as_slice()).collect();
        let d = (self.rewards(&rows(&w, self.embed_dim)?, &z)? - self.rewards(&rows(&l, self.embed_dim)?, &z)?)?;
        // −log σ(d) = softplus(−d), stably: max(−d, 0) + log(1 + e^{−|d|}).
        let nll = (d.neg()?.relu()? + (d.abs()?.neg()?.exp()? + 1.0)?.log()?)?.sum_all()?;
        let kl = if self.conditional { gaussian_kl(&mu, &logvar)? } else { Tensor::new(0f32, &Device::Cpu)? };
        Ok(((nll + (kl.clone() * self.cfg.beta)?)?, kl))
    }

    /// Train on `users` (Adam); returns the final mean loss per user.
    pub fn fit(&mut self, users: &[User]) -> Result<f64> {
        ensure!(!users.is_empty(), "VPL: no users");
        let mut vars = self.reward.vars("reward");
        if self.conditional {
            vars.extend(self.encoder.vars("encoder"));
        }
        let mut opt = AdamW::new(vars, AdamWConfig { weight_decay: 0.0, ..Default::default() })?;
        let mut rng = crate::seed::rng(self.cfg.seed, "vpl-train", 0);
        let mut last = f64::NAN;
        for _ in 0..self.cfg.steps {
            let mut total: Option<Tensor> = None;
            let k = self.cfg.batch_users.min(users.len());
            for _ in 0..k {
                let u = &users[rng.random_range(0..users.len())];
                let e: Vec<f32> = (0..self.cfg.z_dim).map(|_| StandardNormal.sample(&mut rng)).collect();
                let (l, _) = self.user_loss(u, &Tensor::from_vec(e, self.cfg.z_dim, &Device::Cpu)?)?;
                total = Some(match total {
                    Some(t) => (t + l)?,
                    None => l,
                });
            }
            let loss = (total.expect("k >= 1") / k as f64)?;
            last = loss.to_scalar::<f32>()? as f64;
            let g = loss.backward()?;
            opt.step(&g, self.cfg.lr, 1.0)?;
        }
        Ok(last)
    }

    /// Held-out pairwise accuracy: each user's target pairs ranked with z = the posterior mean of
    /// their context.
    pub fn accuracy(&self, users: &[User]) -> Result<f64> {
        let (mut right, mut n) = (0usize, 0usize);
        for u in users {
            let (mu, _) = self.posterior(&u.context)?;
            for p in &u.target {
                let r = self.rewards(&rows(&[p.chosen.as_slice(), p.rejected.as_slice()], self.embed_dim)?, &mu)?;
                let r: Vec<f32> = r.to_vec1()?;
                right += (r[0] > r[1]) as usize;
                n += 1;
            }
        }
        Ok(right as f64 / n.max(1) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two user types with opposite preferences over feature 0 ("long" vs "short" responses).
    fn users(n: usize, seed: u64) -> Vec<User> {
        let mut rng = crate::seed::rng(seed, "vpl-data", 0);
        let emb = |rng: &mut crate::seed::Rng| -> Vec<f32> { (0..6).map(|_| rng.random_range(-1.0..1.0f32)).collect() };
        (0..n)
            .map(|i| {
                let likes_long = i % 2 == 0;
                let pair = |rng: &mut crate::seed::Rng| {
                    let (a, b) = (emb(rng), emb(rng));
                    let a_wins = (a[0] > b[0]) == likes_long;
                    if a_wins {
                        Pair { chosen: a, rejected: b }
                    } else {
                        Pair { chosen: b, rejected: a }
                    }
                };
                User {
                    context: (0..8).map(|_| pair(&mut rng)).collect(),
                    target: (0..8).map(|_| pair(&mut rng)).collect(),
                }
            })
            .collect()
    }

    #[test]
    fn kl_and_scaled_reward_oracles() -> Result<()> {
        let z = Tensor::zeros(4, DType::F32, &Device::Cpu)?;
        assert_eq!(gaussian_kl(&z, &z)?.to_scalar::<f32>()?, 0.0);
        let mu = Tensor::new(&[1f32, 0.0], &Device::Cpu)?;
        let lv = Tensor::new(&[0f32, 1.0], &Device::Cpu)?;
        let want = 0.5 * (1.0 + (1f64.exp() - 1.0 - 1.0));
        assert!((gaussian_kl(&mu, &lv)?.to_scalar::<f32>()? as f64 - want).abs() < 1e-6);
        let s = scaled_reward(0.3, &[0.1, -2.0, 5.0]);
        assert!((0.0..=1.0).contains(&s));
        assert!((scaled_reward(10.3, &[10.1, 8.0, 15.0]) - s).abs() < 1e-12, "shift invariant");
        Ok(())
    }

    #[test]
    fn opposite_user_types_vpl_separates_them_bt_cannot() -> Result<()> {
        let (train, test) = (users(64, 1), users(32, 2));
        let cfg = VplConfig { steps: 300, ..Default::default() };
        let mut vpl = Vpl::new(6, cfg.clone(), true)?;
        vpl.fit(&train)?;
        let mut bt = Vpl::new(6, cfg, false)?;
        bt.fit(&train)?;
        let (a, b) = (vpl.accuracy(&test)?, bt.accuracy(&test)?);
        eprintln!("held-out pairwise accuracy: VPL {a:.3}, BT {b:.3}");
        assert!(a > 0.9, "VPL infers the user type from the context ({a:.3})");
        assert!((b - 0.5).abs() < 0.15, "one reward for both types is near chance ({b:.3})");
        // No context: the prior mean.
        let (mu, lv) = vpl.posterior(&[])?;
        assert_eq!((mu.sum_all()?.to_scalar::<f32>()?, lv.sum_all()?.to_scalar::<f32>()?), (0.0, 0.0));
        Ok(())
    }
}
