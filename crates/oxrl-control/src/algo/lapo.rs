//! LAPO — "LaST-R1: Reinforcing Action via Adaptive Physical Latent Reasoning for VLA Models"
//! (2026). INFERRED (the spec reconstructs it from the abstract): before each action the policy
//! "thinks" in 0 … L_max continuous latent steps that are fed back into it, decides adaptively when
//! to stop, and group RL optimises the latent steps together with the actions.
//!
//! Per environment step, from h₀ = tanh(enc(o)):
//!   for k = 0, 1, …: stop with p_k = σ(w·h_k + b) (forced at k = L_max); otherwise draw a latent
//!   l_k ~ N(μ(h_k), σ_l² I) and recur h_{k+1} = h_k + tanh(W [h_k; l_k] + c) (a residual update:
//!   the action head reads the same features whatever the number of steps, plus what the latents
//!   add — a plain h_{k+1} = tanh(…) halved the learning speed here); then a ~ softmax(head(h_K)).
//! The decision's log-probability splits into the action part log π(a | h_K) and the latent part
//!   Σ_{k<K} [log(1 − p_k) + log N(l_k; μ(h_k), σ_l²)] + [K < L_max] log p_K,
//! and the halting probabilities define a distribution over lengths K ∈ {0, …, L_max}
//! (P(K = k) = p_k Π_{j<k}(1 − p_j), the last length taking the remainder) that sums to 1.
//! GRPO ([`super::grpo`]) applies the same group-normalised advantage to both parts with separate
//! clipped ratios: L = −[surr(ρ_action) + `latent_weight`·surr(ρ_latent)]; `step_cost` per latent
//! step is subtracted from an episode's score before normalisation. With `max_latent = 0` the latent
//! part is identically 0 and LAPO is plain action GRPO on the same network.
//!
//! Warm-up (SFT, `warmup_episodes` > 0): before RL, demonstrations of the environment's privileged
//! scripted expert ([`crate::env::Env::expert_action`]) train the policy with every latent at its
//! mean: the action's negative log-likelihood averaged over the thinking lengths 0 … L_max (RL
//! will stop at any of them), plus `align_weight` × the mean over k < L_max of
//! ‖μ(h_k) − E(o_{t+k+1})‖² / d — latent thought k is pulled toward the embedding of the
//! observation k + 1 steps ahead (clipped at the episode's end). E, the "world encoder", is a fixed
//! seeded random projection of observations rescaled to unit RMS (a stand-in for a pretrained
//! video encoder).

use crate::dist::{argmax_rows, categorical_log_prob, categorical_sample, sigmoid};
use crate::nn::{rows, Activation, Init, Linear, Mlp, Params};
use anyhow::{bail, Result};
use candle_core::{Device, Tensor, D};
use oxrl_core::seed::Rng;
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// `[grpo.lapo]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LapoConfig {
    /// Use the latent-reasoning policy (off = GRPO's plain MLP policy).
    pub enabled: bool,
    /// L_max, the most latent steps before an action (0 = action-only).
    pub max_latent: usize,
    pub latent_dim: usize,
    /// σ_l, the fixed standard deviation of a latent step.
    pub latent_std: f64,
    /// Weight of the latent part's clipped surrogate (0 = only the action part learns).
    pub latent_weight: f64,
    /// Score penalty per latent step (mean over the episode's decisions).
    pub step_cost: f64,
    /// Warm-up: expert demonstration episodes before RL (0 = no warm-up).
    pub warmup_episodes: usize,
    /// Warm-up gradient steps.
    pub warmup_steps: usize,
    pub warmup_batch: usize,
    pub warmup_lr: f64,
    /// Weight of the latent-to-future-observation alignment in the warm-up (0 = action SFT only).
    pub align_weight: f64,
}

impl Default for LapoConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_latent: 4,
            latent_dim: 8,
            latent_std: 0.3,
            latent_weight: 1.0,
            step_cost: 0.0,
            warmup_episodes: 0,
            warmup_steps: 500,
            warmup_batch: 256,
            warmup_lr: 1e-3,
            align_weight: 1.0,
        }
    }
}

impl LapoConfig {
    pub fn validate(&self) -> Result<()> {
        if self.latent_dim == 0 || self.latent_std <= 0.0 {
            bail!("grpo.lapo: latent_dim and latent_std must be positive");
        }
        if self.latent_weight < 0.0 || self.step_cost < 0.0 || self.align_weight < 0.0 {
            bail!("grpo.lapo: latent_weight, step_cost and align_weight must be non-negative");
        }
        if self.warmup_episodes > 0 && (self.warmup_steps == 0 || self.warmup_batch == 0 || self.warmup_lr <= 0.0) {
            bail!("grpo.lapo: a warm-up needs positive warmup_steps, warmup_batch and warmup_lr");
        }
        Ok(())
    }
}

/// One decision: the latent steps taken (K = their number) and the action.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub latents: Vec<Vec<f32>>,
    pub action: usize,
}

/// log σ(x) = −softplus(−x), stable for large |x|.
fn log_sigmoid(x: &Tensor) -> Result<Tensor> {
    Ok(crate::repr::softplus(&x.neg()?)?.neg()?)
}

pub struct LapoPolicy {
    enc: Mlp,
    halt: Linear,
    mean: Linear,
    cell: Linear,
    head: Linear,
    pub cfg: LapoConfig,
    dev: Device,
}

impl LapoPolicy {
    pub fn new(
        obs_dim: usize,
        n_actions: usize,
        hidden: &[usize],
        cfg: &LapoConfig,
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let mut sizes = vec![obs_dim];
        sizes.extend(hidden);
        let Some(&h) = hidden.last() else { bail!("grpo.lapo: needs at least one hidden layer") };
        let orth = Init::Orthogonal { gain: 2f64.sqrt(), last_gain: 2f64.sqrt() };
        let d = cfg.latent_dim;
        Ok(Self {
            enc: Mlp::new(&sizes, Activation::Tanh, orth, rng, dev)?,
            halt: Linear::new(h, 1, Init::Orthogonal { gain: 0.01, last_gain: 0.01 }, 0.01, rng, dev)?,
            mean: Linear::new(h, d, orth, 1.0, rng, dev)?,
            cell: Linear::new(h + d, h, orth, 1.0, rng, dev)?,
            head: Linear::new(h, n_actions, orth, 0.01, rng, dev)?,
            cfg: cfg.clone(),
            dev: dev.clone(),
        })
    }

    pub fn params(&self) -> Params {
        let mut v = self.enc.vars("lapo.enc");
        for (name, l) in [("halt", &self.halt), ("mean", &self.mean), ("cell", &self.cell), ("head", &self.head)] {
            v.push((format!("lapo.{name}.weight"), l.w.clone()));
            v.push((format!("lapo.{name}.bias"), l.b.clone()));
        }
        Params(v)
    }

    fn h0(&self, obs: &Tensor) -> Result<Tensor> {
        Ok(self.enc.forward(obs)?.tanh()?)
    }
    fn recur(&self, h: &Tensor, l: &Tensor) -> Result<Tensor> {
        Ok((h + self.cell.forward(&Tensor::cat(&[h, l], D::Minus1)?)?.tanh()?)?)
    }
    fn halt_logit(&self, h: &Tensor) -> Result<Tensor> {
        Ok(self.halt.forward(h)?.squeeze(D::Minus1)?)
    }

    /// Decide for one observation: sample latents and halting (or, `deterministic`, take latent
    /// means, stop when p ≥ ½ and the most likely action).
    pub fn decide(&self, obs: &[f32], deterministic: bool, rng: &mut Rng) -> Result<Decision> {
        let mut h = self.h0(&rows(&[obs.to_vec()], &self.dev)?)?;
        let mut latents = Vec::new();
        for _ in 0..self.cfg.max_latent {
            let p = sigmoid(&self.halt_logit(&h)?)?.to_vec1::<f32>()?[0] as f64;
            let stop = if deterministic { p >= 0.5 } else { rng.random::<f64>() < p };
            if stop {
                break;
            }
            let mu = self.mean.forward(&h)?.flatten_all()?.to_vec1::<f32>()?;
            let l: Vec<f32> = if deterministic {
                mu
            } else {
                mu.iter()
                    .map(|&m| {
                        let e: f64 = StandardNormal.sample(rng);
                        m + (self.cfg.latent_std * e) as f32
                    })
                    .collect()
            };
            h = self.recur(&h, &Tensor::from_vec(l.clone(), (1, l.len()), &self.dev)?)?;
            latents.push(l);
        }
        let logits = self.head.forward(&h)?;
        let action = if deterministic { argmax_rows(&logits)?[0] } else { categorical_sample(&logits, rng)?[0] };
        Ok(Decision { latents, action })
    }

    /// (action log-prob, latent log-prob) of each decision taken at the matching observation.
    pub fn log_probs(&self, obs: &Tensor, decisions: &[&Decision]) -> Result<(Tensor, Tensor)> {
        let n = decisions.len();
        let (l_max, d) = (self.cfg.max_latent, self.cfg.latent_dim);
        let mask = |f: &dyn Fn(usize) -> bool| -> Result<Tensor> {
            let v: Vec<f32> = decisions.iter().map(|x| f(x.latents.len()) as u8 as f32).collect();
            Ok(Tensor::from_vec(v, n, &self.dev)?)
        };
        let mut h = self.h0(obs)?;
        let mut latent_lp = Tensor::zeros(n, candle_core::DType::F32, &self.dev)?;
        let mut logits: Option<Tensor> = None;
        let var = self.cfg.latent_std * self.cfg.latent_std;
        let norm = d as f64 * (self.cfg.latent_std.ln() + 0.5 * (2.0 * std::f64::consts::PI).ln());
        for k in 0..=l_max {
            let eq = mask(&|len| len == k)?;
            let here = self.head.forward(&h)?.broadcast_mul(&eq.unsqueeze(1)?)?;
            logits = Some(match logits {
                None => here,
                Some(acc) => (acc + here)?,
            });
            if k == l_max {
                break;
            }
            let gt = mask(&|len| len > k)?;
            let z = self.halt_logit(&h)?;
            latent_lp = ((latent_lp + (log_sigmoid(&z)? * &eq)?)? + (log_sigmoid(&z.neg()?)? * &gt)?)?;
            let lk: Vec<f32> =
                decisions.iter().flat_map(|x| x.latents.get(k).cloned().unwrap_or_else(|| vec![0.0; d])).collect();
            let lk = Tensor::from_vec(lk, (n, d), &self.dev)?;
            let mu = self.mean.forward(&h)?;
            let gauss = (((&lk - &mu)?.sqr()?.sum(D::Minus1)? * (-0.5 / var))? - norm)?;
            latent_lp = (latent_lp + (gauss * &gt)?)?;
            h = self.recur(&h, &lk)?;
        }
        let acts: Vec<u32> = decisions.iter().map(|x| x.action as u32).collect();
        let action_lp = categorical_log_prob(&logits.expect("one length at least"), &Tensor::new(acts, &self.dev)?)?;
        Ok((action_lp, latent_lp))
    }

    /// The warm-up loss on demonstration steps: (total, action NLL, alignment). `futures[k]` holds
    /// the embeddings E(o_{t+k+1}) (B × d) for k < L_max.
    pub fn warmup_loss(&self, obs: &Tensor, actions: &Tensor, futures: &[Tensor]) -> Result<(Tensor, f64, f64)> {
        let l_max = self.cfg.max_latent;
        let mut h = self.h0(obs)?;
        let mut nll = categorical_log_prob(&self.head.forward(&h)?, actions)?.mean_all()?.neg()?;
        let mut align = Tensor::zeros((), candle_core::DType::F32, &self.dev)?;
        for fut in futures.iter().take(l_max) {
            let mu = self.mean.forward(&h)?;
            align = (align + (&mu - fut)?.sqr()?.mean_all()?)?;
            h = self.recur(&h, &mu)?;
            nll = (nll + categorical_log_prob(&self.head.forward(&h)?, actions)?.mean_all()?.neg()?)?;
        }
        let nll = (nll / (l_max + 1) as f64)?;
        let align = if l_max > 0 { (align / l_max as f64)? } else { align };
        let total = (&nll + (&align * self.cfg.align_weight)?)?;
        Ok((total, nll.to_scalar::<f32>()? as f64, align.to_scalar::<f32>()? as f64))
    }

    /// P(K = k), k = 0 … L_max, for one observation with every latent at its mean.
    pub fn halting_distribution(&self, obs: &[f32]) -> Result<Vec<f64>> {
        let mut h = self.h0(&rows(&[obs.to_vec()], &self.dev)?)?;
        let mut alive = 1.0;
        let mut out = Vec::new();
        for _ in 0..self.cfg.max_latent {
            let p = sigmoid(&self.halt_logit(&h)?)?.to_vec1::<f32>()?[0] as f64;
            out.push(alive * p);
            alive *= 1.0 - p;
            h = self.recur(&h, &self.mean.forward(&h)?)?;
        }
        out.push(alive);
        Ok(out)
    }
}

/// The warm-up's fixed "world encoder": a seeded random projection of observations to the latent
/// size, each embedding rescaled to unit RMS.
pub struct WorldEncoder {
    proj: Vec<f32>,
    obs_dim: usize,
    d: usize,
}

impl WorldEncoder {
    pub fn new(obs_dim: usize, d: usize, rng: &mut Rng) -> Self {
        let proj = (0..obs_dim * d).map(|_| StandardNormal.sample(rng)).collect();
        Self { proj, obs_dim, d }
    }
    pub fn embed(&self, obs: &[f32]) -> Vec<f32> {
        let mut e = vec![0f32; self.d];
        for (i, &x) in obs.iter().enumerate().take(self.obs_dim) {
            if x != 0.0 {
                for (j, v) in e.iter_mut().enumerate() {
                    *v += x * self.proj[i * self.d + j];
                }
            }
        }
        let rms = (e.iter().map(|v| v * v).sum::<f32>() / self.d as f32).sqrt().max(1e-6);
        e.iter().map(|v| v / rms).collect()
    }
}

/// One expert episode: observations o_0 … o_T and actions a_0 … a_{T−1}.
#[derive(Debug, Clone)]
pub struct Demo {
    pub obs: Vec<Vec<f32>>,
    pub acts: Vec<usize>,
    pub success: bool,
}

/// `episodes` episodes of the environment's privileged expert.
pub fn collect_demos(env: &mut dyn crate::env::Env, episodes: usize) -> Result<Vec<Demo>> {
    let mut out = Vec::with_capacity(episodes);
    for _ in 0..episodes {
        let mut obs = vec![env.reset()];
        let mut acts = Vec::new();
        loop {
            let Some(a) = env.expert_action() else {
                bail!("grpo.lapo.warmup_episodes: {} has no scripted expert for demonstrations", env.name());
            };
            let s = env.step(&crate::env::Action::Discrete(a))?;
            obs.push(s.obs);
            acts.push(a);
            if s.terminated || s.truncated {
                out.push(Demo { obs, acts, success: env.success().unwrap_or(false) });
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn policy(max_latent: usize) -> LapoPolicy {
        let cfg = LapoConfig { enabled: true, max_latent, latent_dim: 3, latent_std: 0.5, ..Default::default() };
        let mut rng = Rng::seed_from_u64(0);
        LapoPolicy::new(5, 4, &[16], &cfg, &mut rng, &Device::Cpu).unwrap()
    }

    #[test]
    fn log_probs_match_the_closed_form_of_each_decision() {
        let p = policy(3);
        let mut rng = Rng::seed_from_u64(1);
        // push the halting head towards continuing so that every length occurs
        p.halt.b.set(&Tensor::new(&[-0.3f32], &Device::Cpu).unwrap()).unwrap();
        let obs: Vec<Vec<f32>> = (0..64).map(|i| (0..5).map(|j| ((i * 5 + j) as f32 * 0.37).sin()).collect()).collect();
        let ds: Vec<Decision> = obs.iter().map(|o| p.decide(o, false, &mut rng).unwrap()).collect();
        let lens: std::collections::BTreeSet<usize> = ds.iter().map(|d| d.latents.len()).collect();
        assert!(lens.len() >= 3, "lengths {lens:?}");
        let refs: Vec<&Decision> = ds.iter().collect();
        let (alp, llp) = p.log_probs(&rows(&obs, &Device::Cpu).unwrap(), &refs).unwrap();
        let (alp, llp) = (alp.to_vec1::<f32>().unwrap(), llp.to_vec1::<f32>().unwrap());
        // recompute one decision at a time by hand
        for (i, (o, dcs)) in obs.iter().zip(&ds).enumerate() {
            let mut h = p.h0(&rows(std::slice::from_ref(o), &Device::Cpu).unwrap()).unwrap();
            let mut want = 0f64;
            // a decision of 3 latent steps hit L_max: it has no halting term
            for k in 0..3 {
                let pk = sigmoid(&p.halt_logit(&h).unwrap()).unwrap().to_vec1::<f32>().unwrap()[0] as f64;
                if dcs.latents.len() == k {
                    want += pk.ln();
                    break;
                }
                want += (1.0 - pk).ln();
                let mu = p.mean.forward(&h).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                for (l, m) in dcs.latents[k].iter().zip(&mu) {
                    let z = (*l - *m) as f64 / 0.5;
                    want += -0.5 * z * z - 0.5f64.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln();
                }
                let l = Tensor::from_vec(dcs.latents[k].clone(), (1, 3), &Device::Cpu).unwrap();
                h = p.recur(&h, &l).unwrap();
            }
            assert!((llp[i] as f64 - want).abs() < 1e-4, "row {i}: {} vs {want}", llp[i]);
            let logits = p.head.forward(&h).unwrap();
            let a = Tensor::new(&[dcs.action as u32], &Device::Cpu).unwrap();
            let want_a = categorical_log_prob(&logits, &a).unwrap().to_vec1::<f32>().unwrap()[0];
            assert!((alp[i] - want_a).abs() < 1e-5);
        }
    }

    #[test]
    fn the_warmup_loss_by_hand_and_the_expert_solves_flipped_mazes() {
        let p = policy(2);
        let dev = Device::Cpu;
        let obs = vec![vec![0.2f32, -0.1, 0.4, 0.0, 0.3], vec![-0.5, 0.1, 0.0, 0.2, 0.1]];
        let acts = Tensor::new(&[1u32, 3], &dev).unwrap();
        let fut: Vec<Tensor> =
            (0..2).map(|k| Tensor::new(&[[k as f32, 0.5, -0.5], [0.1, 0.2, 0.3]], &dev).unwrap()).collect();
        let (loss, nll, align) = p.warmup_loss(&rows(&obs, &dev).unwrap(), &acts, &fut).unwrap();
        // by hand: h_0, then h_{k+1} = recur(h_k, μ(h_k)); NLL averaged over lengths 0..=2
        let mut h = p.h0(&rows(&obs, &dev).unwrap()).unwrap();
        let nll_at = |h: &Tensor| {
            categorical_log_prob(&p.head.forward(h).unwrap(), &acts)
                .unwrap()
                .mean_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap() as f64
        };
        let (mut want_nll, mut want_align) = (-nll_at(&h), 0.0);
        for f in &fut {
            let mu = p.mean.forward(&h).unwrap();
            want_align += (&mu - f).unwrap().sqr().unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap() as f64;
            h = p.recur(&h, &mu).unwrap();
            want_nll -= nll_at(&h);
        }
        assert!((nll - want_nll / 3.0).abs() < 1e-5 && (align - want_align / 2.0).abs() < 1e-5);
        let total = loss.to_scalar::<f32>().unwrap() as f64;
        assert!((total - (nll + align)).abs() < 1e-5, "align_weight 1");
        // L_max = 0: the plain action NLL
        let p0 = policy(0);
        let (l0, n0, a0) = p0.warmup_loss(&rows(&obs, &dev).unwrap(), &acts, &[]).unwrap();
        let h0 = p0.h0(&rows(&obs, &dev).unwrap()).unwrap();
        let want = -categorical_log_prob(&p0.head.forward(&h0).unwrap(), &acts)
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((n0 as f32 - want).abs() < 1e-6 && a0 == 0.0 && (l0.to_scalar::<f32>().unwrap() - want).abs() < 1e-6);
        // the world encoder's embeddings have unit RMS; the expert solves every episode, flipped or not
        let w = WorldEncoder::new(5, 3, &mut Rng::seed_from_u64(3));
        let e = w.embed(&obs[0]);
        assert!(((e.iter().map(|v| v * v).sum::<f32>() / 3.0).sqrt() - 1.0).abs() < 1e-5);
        let mut env = crate::env::grid_maze::GridMaze::new("four-rooms-flip", 4).unwrap();
        let demos = collect_demos(&mut env, 20).unwrap();
        assert!(demos.iter().all(|d| d.success && d.obs.len() == d.acts.len() + 1));
        let mut cart = crate::env::make("cartpole", 0).unwrap();
        assert!(collect_demos(cart.as_mut(), 1).unwrap_err().to_string().contains("expert"));
    }

    #[test]
    fn halting_distribution_sums_to_one_and_no_latents_leave_only_the_action() {
        let p = policy(4);
        let dist = p.halting_distribution(&[0.1, -0.2, 0.3, 0.0, 0.5]).unwrap();
        assert_eq!(dist.len(), 5);
        assert!((dist.iter().sum::<f64>() - 1.0).abs() < 1e-9 && dist.iter().all(|&x| x >= 0.0));
        // L_max = 0: the latent part is identically zero, the action part a softmax of the network
        let p = policy(0);
        let mut rng = Rng::seed_from_u64(2);
        let o = vec![0.3f32, 0.1, -0.4, 0.2, 0.0];
        let d = p.decide(&o, false, &mut rng).unwrap();
        assert!(d.latents.is_empty());
        let x = rows(&[o], &Device::Cpu).unwrap();
        let (alp, llp) = p.log_probs(&x, &[&d]).unwrap();
        assert_eq!(llp.to_vec1::<f32>().unwrap(), vec![0.0]);
        let logits = p.head.forward(&p.h0(&x).unwrap()).unwrap();
        let want = categorical_log_prob(&logits, &Tensor::new(&[d.action as u32], &Device::Cpu).unwrap()).unwrap();
        assert_eq!(alp.to_vec1::<f32>().unwrap(), want.to_vec1::<f32>().unwrap());
    }
}
