//! InfoPower — "INFOrmation Prioritization through EmPOWERment in Visual Model-Based RL" (Bharadhwaj
//! et al., 2022). INFERRED (no public code was located; the spec's structure, re-check the
//! coefficients against the paper):
//!
//! - no pixel reconstruction: an InfoNCE bound on I(o; z) with scores f(o_i, z_j) = g(o_i)·z_j / √d
//!   between an observation embedding g and the latent sample z ~ q(· | o), the other batch
//!   elements as negatives (loss = cross-entropy of the diagonal);
//! - empowerment, a variational lower bound on I(z_{t+1}; a_t | z_t):
//!   E[log q(a_t | z_t, z_{t+1}) − log π(a_t | z_t)] with an inverse model q; the pre-training data
//!   comes from a uniform policy, so log π = −log |A|;
//! - dynamics consistency KL(q(z_{t+1} | o_{t+1}) ‖ p(z_{t+1} | z_t, a_t)) and reward prediction
//!   ½(r_t − R(z_{t+1}))²;
//! - total = w_nce·NCE − λ_emp·empowerment + β·KL + reward.
//!
//! - policy reward = r + α_emp·(log q(a_t | z_t, z_{t+1}) − log π(a_t | z_t)) (`bonus` = α_emp;
//!   the inverse model is kept with the frozen encoder and the learner's environments pay it,
//!   [`super::Encoded`]); `bonus_centred` subtracts its maximum log |A| so that it never pays for
//!   merely lasting longer in an episodic task.
//!
//! Differences, stated: the grid is fully observed, so the latent model has no recurrent belief;
//! the learned representation is frozen. With DQN / PPO the bonus is evaluated on the real
//! transitions that learner collects, on the posterior means, under the uniform π of the
//! pre-training data; with `algo = "dreamer"` it is paid on imagined transitions with the actor's
//! own log π ([`crate::algo::dreamer`]), as the spec asks.

use super::{latent_step, one_hot, video::Video, Encoder, LatentStep, Objective};
use crate::blocks::gaussian_kl;
use crate::dist::{categorical_log_prob, log_softmax};
use crate::nn::{Activation, Init, Mlp};
use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var, D};
use oxrl_core::seed::Rng;
use serde::{Deserialize, Serialize};

/// `[repr.infopower]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InfoPowerConfig {
    pub nce_weight: f64,
    /// λ_emp, the empowerment weight in the representation objective.
    pub empowerment_weight: f64,
    pub kl_weight: f64,
    pub reward_weight: f64,
    /// α_emp: the empowerment bonus added to the learner's reward (0 = off).
    pub bonus: f64,
    /// Subtract log |A| from the bonus (never positive).
    pub bonus_centred: bool,
}

impl Default for InfoPowerConfig {
    fn default() -> Self {
        Self {
            nce_weight: 1.0,
            empowerment_weight: 1.0,
            kl_weight: 1.0,
            reward_weight: 1.0,
            bonus: 0.1,
            bonus_centred: false,
        }
    }
}

/// InfoNCE over a (B × B) score matrix whose diagonal holds the positive pairs: the mean over rows
/// of −log softmax(row)_i.
pub fn info_nce(scores: &Tensor) -> Result<Tensor> {
    let b = scores.dim(0)?;
    let lp = log_softmax(scores)?;
    let eye = Tensor::eye(b, DType::F32, scores.device())?;
    Ok((lp * eye)?.sum(D::Minus1)?.mean_all()?.neg()?)
}

/// The empowerment lower bound E[log q(a | z_t, z_{t+1}) − log π(a | z_t)] from inverse-model
/// logits, the actions taken and their log-probabilities under the behaviour policy.
pub fn empowerment(inverse_logits: &Tensor, actions: &Tensor, log_pi: &Tensor) -> Result<Tensor> {
    Ok((categorical_log_prob(inverse_logits, actions)? - log_pi)?.mean_all()?)
}

pub struct InfoPower {
    cfg: InfoPowerConfig,
    obs_embed: Mlp,
    trans: Mlp,
    inverse: Mlp,
    reward: Mlp,
    n_actions: usize,
    latent: usize,
    batch: usize,
    dev: Device,
}

impl InfoPower {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: InfoPowerConfig,
        latent: usize,
        hidden: usize,
        frame_dim: usize,
        n_actions: usize,
        batch: usize,
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<Self> {
        Ok(Self {
            cfg,
            obs_embed: Mlp::new(&[frame_dim, hidden, latent], Activation::Relu, Init::Uniform, rng, dev)?,
            trans: Mlp::new(&[latent + n_actions, hidden, 2 * latent], Activation::Relu, Init::Uniform, rng, dev)?,
            inverse: Mlp::new(&[2 * latent, hidden, n_actions], Activation::Relu, Init::Uniform, rng, dev)?,
            reward: Mlp::new(&[latent, hidden, 1], Activation::Relu, Init::Uniform, rng, dev)?,
            n_actions,
            latent,
            batch,
            dev: dev.clone(),
        })
    }
}

impl Objective for InfoPower {
    fn inverse_model(&self) -> Option<&Mlp> {
        Some(&self.inverse)
    }
    fn world_model(&self) -> Option<(&Mlp, &Mlp)> {
        Some((&self.trans, &self.reward))
    }
    fn vars(&self) -> Vec<(String, Var)> {
        let mut v = self.obs_embed.vars("obs_embed");
        v.extend(self.trans.vars("transition"));
        v.extend(self.inverse.vars("inverse"));
        v.extend(self.reward.vars("reward"));
        v
    }
    fn loss(&mut self, enc: &Encoder, data: &Video, rng: &mut Rng) -> Result<(Tensor, Vec<(String, f64)>)> {
        let tr = data.sample_transitions(self.batch, rng);
        let (acts, rew) = (&tr.actions, &tr.rewards);
        let LatentStep { s_t: z_t, x1, s_t1: z_t1, mu_q, sd_q, .. } = latent_step(enc, data, &tr, rng, &self.dev)?;
        // InfoNCE between observation embeddings and latent samples
        let scores = (self.obs_embed.forward(&x1)?.matmul(&z_t1.t()?)? / (self.latent as f64).sqrt())?;
        let nce = info_nce(&scores)?;
        // empowerment under the uniform behaviour policy
        let at = Tensor::new(acts.iter().map(|&a| a as u32).collect::<Vec<_>>().as_slice(), &self.dev)?;
        let inv = self.inverse.forward(&Tensor::cat(&[&z_t, &z_t1], 1)?)?;
        let log_pi = Tensor::full(-(self.n_actions as f32).ln(), self.batch, &self.dev)?;
        let emp = empowerment(&inv, &at, &log_pi)?;
        // dynamics consistency and reward
        let prior = self.trans.forward(&Tensor::cat(&[&z_t, &one_hot(acts, self.n_actions, &self.dev)?], 1)?)?;
        let (mu_p, sd_p) = super::repo::split_gaussian(&prior, self.latent)?;
        let kl = gaussian_kl(&mu_q, &sd_q, &mu_p, &sd_p)?.mean_all()?;
        let r = Tensor::new(rew.as_slice(), &self.dev)?;
        let reward_loss = ((self.reward.forward(&z_t1)?.squeeze(1)? - r)?.sqr()? * 0.5)?.mean_all()?;
        let loss = ((((&nce * self.cfg.nce_weight)? - (&emp * self.cfg.empowerment_weight)?)?
            + (&kl * self.cfg.kl_weight)?)?
            + (&reward_loss * self.cfg.reward_weight)?)?;
        let s = |t: &Tensor| -> Result<f64> { Ok(t.to_scalar::<f32>()? as f64) };
        Ok((
            loss,
            vec![
                ("nce".into(), s(&nce)?),
                ("empowerment".into(), s(&emp)?),
                ("kl".into(), s(&kl)?),
                ("reward_nll".into(), s(&reward_loss)?),
            ],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_nce_is_zero_when_separable_and_log_b_when_constant() {
        let d = Device::Cpu;
        let b = 6;
        let sep = (Tensor::eye(b, DType::F32, &d).unwrap() * 50.0).unwrap();
        assert!(info_nce(&sep).unwrap().to_scalar::<f32>().unwrap() < 1e-6);
        let flat = Tensor::full(3.0f32, (b, b), &d).unwrap();
        let l = info_nce(&flat).unwrap().to_scalar::<f32>().unwrap();
        assert!((l - (b as f32).ln()).abs() < 1e-5);
    }

    #[test]
    fn empowerment_is_zero_when_q_equals_pi_and_at_most_log_a_when_actions_are_recoverable() {
        let d = Device::Cpu;
        let n = 4;
        let acts = Tensor::new(&[0u32, 1, 2, 3, 1, 2], &d).unwrap();
        let log_pi = Tensor::full(-(n as f32).ln(), 6, &d).unwrap();
        // q = π: the inverse model ignores z_{t+1} and predicts the uniform policy
        let uniform = Tensor::zeros((6, n), DType::F32, &d).unwrap();
        assert!(empowerment(&uniform, &acts, &log_pi).unwrap().to_scalar::<f32>().unwrap().abs() < 1e-6);
        // recoverable: the inverse model puts (almost) all mass on the action taken
        let mut l = vec![0f32; 6 * n];
        for (r, a) in [0usize, 1, 2, 3, 1, 2].iter().enumerate() {
            l[r * n + a] = 30.0;
        }
        let sharp = Tensor::from_vec(l, (6, n), &d).unwrap();
        let e = empowerment(&sharp, &acts, &log_pi).unwrap().to_scalar::<f32>().unwrap();
        assert!(e > 0.0 && e <= (n as f32).ln() + 1e-6 && e > (n as f32).ln() - 1e-3, "{e}");
    }
}
