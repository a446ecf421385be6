//! Dreamer's actor-critic in imagination — "Dream to Control: Learning Behaviors by Latent
//! Imagination" (Hafner et al., 2020) with DreamerV2's discrete-action actor ("Mastering Atari with
//! Discrete World Models", 2021): the policy learner of RePo and InfoPower (`algo = "dreamer"`
//! with `repr.objective = "repo"` or `"infopower"`).
//!
//! From B start latents z_0 (posteriors of visited real frames) the actor imagines H steps in the
//! frozen world model ([`crate::repr::world_model`]): a_h ~ π(· | z_h), z_{h+1} ~ p(· | z_h, a_h),
//! r_h = R(z_{h+1}), c_h = P(continue | z_{h+1}). With the slow critic's values v_h:
//!
//! - λ-returns: R^λ_H = v_H, R^λ_h = r_h + γ·c_h·((1 − λ)·v_{h+1} + λ·R^λ_{h+1});
//! - weights w_0 = 1, w_h = Π_{j<h} c_j (an imagined state after a predicted terminal counts less);
//! - critic: ½·Σ w_h·(V(z_h) − sg(R^λ_h))², its slow copy refreshed every `target_every` updates;
//! - actor (REINFORCE, as DreamerV2 for discrete actions):
//!   −Σ w_h·[log π(a_h | z_h)·sg(R^λ_h − v_h) + η·H(π(· | z_h))].
//!
//! InfoPower's policy bonus is paid here on imagined transitions, as the spec asks:
//! r_h += α_emp·(log q(a_h | z_h, z_{h+1}) − log π(a_h | z_h)) (minus log |A| when centred).
//!
//! The world model's heads keep learning on the agent's own transitions, as in Dreamer's loop
//! (`model_updates_per_iteration` steps of Gaussian NLL of z' under the prior, ½(R(z') − r)² and
//! the continuation BCE; 0 keeps the pre-trained model frozen), so states the actor was lured to by
//! a model error are corrected once it visits them.
//!
//! With `train_encoder` (RePo only) the whole model keeps learning, as in Dreamer and RePo's own
//! loop: the agent's replay holds raw frames, a trainable copy of the pre-trained encoder gives the
//! posteriors, and each model update is RePo's loss on the agent's transitions —
//! ½(R(s_{t+1}) − r)² + BCE(c(s_{t+1}), 1 − terminal) + β·(KL_bal(q(s_{t+1} | o_{t+1}) ‖
//! p(s_{t+1} | s_t, a_t)) − target), with posterior samples s and the dual step on log β after it;
//! the actor reads the online encoder's standardised posterior means (the pre-training statistics).
//!
//! Differences from the papers, stated: by default the encoder is pre-trained on random-policy
//! video and then frozen, so the online heads learn on its posterior means; the grid is fully
//! observed, so a latent is the encoder's posterior of one frame (no
//! recurrent belief), and start states are posterior means of frames the agent visited; the actor
//! and critic read latents standardised with the encoder's feature statistics.

use super::{load_opt, load_state, save_opt, save_state, Agent, IterStats, MetricSum, Progress};
use crate::buffer::ReplayBuffer;
use crate::dist::{argmax_rows, categorical_entropy, categorical_log_prob, categorical_sample, log_softmax};
use crate::env::{Action, Space, VecEnv};
use crate::nn::{rows, Activation, Init, Mlp, Params};
use crate::repr::repo::{balanced_kl, DualBeta, RepoConfig};
use crate::repr::world_model::{LatentDynamics, LatentModel};
use crate::repr::{Encoder, FrozenEncoder};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_core::seed::Rng;
use rand::{Rng as _, SeedableRng};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// `[dreamer]` (defaults: RePo's reference code, except the per-update batch, sized for a CPU).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DreamerConfig {
    /// Imagination horizon H.
    pub horizon: usize,
    pub gamma: f64,
    /// λ of the λ-returns.
    pub lambda: f64,
    pub actor_lr: f64,
    pub critic_lr: f64,
    /// η, the actor's entropy bonus.
    pub entropy_coef: f64,
    pub hidden: Vec<usize>,
    /// Start latents per update.
    pub batch_size: usize,
    /// Environment steps per iteration (summed over the vector).
    pub steps_per_iteration: u64,
    /// Actor-critic updates per iteration.
    pub updates_per_iteration: usize,
    /// Uniformly random actions before this many environment steps (prefill).
    pub learning_starts: u64,
    pub buffer_size: usize,
    /// Copy the critic into its slow target every this many updates.
    pub target_every: u64,
    pub max_grad_norm: f64,
    /// Draw imagined latents from the prior (else step with its mean). RePo's prior reads the
    /// previous posterior's mean by default (`repr.repo.prior_input`); stepping with the prior mean
    /// feeds it the same kind of belief (measured: imagined returns stay in the real range).
    pub sample_prior: bool,
    /// Updates of the world model's heads (prior, reward, continuation) per iteration on the
    /// agent's own transitions; 0 keeps the pre-trained model frozen.
    pub model_updates_per_iteration: usize,
    pub model_lr: f64,
    /// Train the encoder with the world model on the agent's own frames (RePo's model loss under
    /// its dual KL budget; needs `repr.objective = "repo"`); false keeps it frozen.
    pub train_encoder: bool,
}

impl Default for DreamerConfig {
    fn default() -> Self {
        Self {
            horizon: 15,
            gamma: 0.99,
            lambda: 0.95,
            actor_lr: 8e-5,
            critic_lr: 8e-5,
            entropy_coef: 3e-4,
            hidden: vec![200, 200],
            batch_size: 256,
            steps_per_iteration: 500,
            updates_per_iteration: 100,
            learning_starts: 5000,
            buffer_size: 100_000,
            target_every: 100,
            max_grad_norm: 100.0,
            sample_prior: true,
            model_updates_per_iteration: 100,
            model_lr: 3e-4,
            train_encoder: false,
        }
    }
}

impl DreamerConfig {
    pub fn validate(&self) -> Result<()> {
        if self.horizon == 0
            || self.batch_size == 0
            || self.steps_per_iteration == 0
            || self.buffer_size == 0
            || self.target_every == 0
        {
            bail!("dreamer: horizon, batch_size, steps_per_iteration, buffer_size and target_every must be positive");
        }
        if !(0.0..=1.0).contains(&self.gamma) || !(0.0..=1.0).contains(&self.lambda) {
            bail!("dreamer: gamma and lambda must be in [0, 1]");
        }
        if self.actor_lr < 0.0 || self.critic_lr < 0.0 || self.model_lr < 0.0 || self.entropy_coef < 0.0 {
            bail!("dreamer: learning rates and entropy_coef must be non-negative");
        }
        Ok(())
    }
}

/// λ-returns and loss weights of an imagined batch, h-major (index h·B + b): `rewards` and
/// `conts` hold H·B entries, `values` (H + 1)·B. Returns (R^λ, w), H·B each.
pub fn lambda_returns(
    rewards: &[f32],
    conts: &[f32],
    values: &[f32],
    batch: usize,
    gamma: f64,
    lambda: f64,
) -> (Vec<f32>, Vec<f32>) {
    let h = rewards.len() / batch;
    let mut ret = vec![0f32; h * batch];
    let mut w = vec![0f32; h * batch];
    for b in 0..batch {
        let mut next = values[h * batch + b] as f64;
        for t in (0..h).rev() {
            let i = t * batch + b;
            let v1 = values[(t + 1) * batch + b] as f64;
            next = rewards[i] as f64 + gamma * conts[i] as f64 * ((1.0 - lambda) * v1 + lambda * next);
            ret[i] = next as f32;
        }
        let mut acc = 1f64;
        for t in 0..h {
            w[t * batch + b] = acc as f32;
            acc *= conts[t * batch + b] as f64;
        }
    }
    (ret, w)
}

/// One imagined batch, h-major: inputs of the actor / critic for h = 0..=H, actions, rewards and
/// continuation probabilities for h < H.
pub struct Imagined {
    pub states: Tensor,
    pub actions: Vec<usize>,
    pub rewards: Vec<f32>,
    pub conts: Vec<f32>,
}

/// The actor, critic and their slow target — the part of Dreamer that does not depend on where
/// latents come from (tested on a hand-made latent world below).
pub struct ActorCritic {
    pub cfg: DreamerConfig,
    pub actor: Mlp,
    pub critic: Mlp,
    target: Mlp,
    actor_params: Params,
    critic_params: Params,
    target_params: Params,
    actor_opt: AdamW,
    critic_opt: AdamW,
    pub updates: u64,
    n_actions: usize,
    dev: Device,
}

impl ActorCritic {
    pub fn new(cfg: DreamerConfig, in_dim: usize, n_actions: usize, rng: &mut Rng, dev: &Device) -> Result<Self> {
        cfg.validate()?;
        let sizes = |out: usize| {
            let mut s = vec![in_dim];
            s.extend(&cfg.hidden);
            s.push(out);
            s
        };
        let init = Init::Orthogonal { gain: 2f64.sqrt(), last_gain: 0.01 };
        let actor = Mlp::new(&sizes(n_actions), Activation::Relu, init, rng, dev)?;
        let critic =
            Mlp::new(&sizes(1), Activation::Relu, Init::Orthogonal { gain: 2f64.sqrt(), last_gain: 1.0 }, rng, dev)?;
        let target = Mlp::new(&sizes(1), Activation::Relu, Init::Uniform, rng, dev)?;
        let actor_params = Params(actor.vars("actor"));
        let critic_params = Params(critic.vars("critic"));
        let target_params = Params(target.vars("critic"));
        target_params.copy_from(&critic_params)?;
        let actor_opt = AdamW::new(actor_params.vars(), AdamWConfig::default())?;
        let critic_opt = AdamW::new(critic_params.vars(), AdamWConfig::default())?;
        Ok(Self {
            cfg,
            actor,
            critic,
            target,
            actor_params,
            critic_params,
            target_params,
            actor_opt,
            critic_opt,
            updates: 0,
            n_actions,
            dev: dev.clone(),
        })
    }

    /// Roll the actor H steps through `model` from raw latents `z0`; `input` maps raw latents to
    /// what the actor and critic read; `bonus` adds InfoPower's empowerment reward from an
    /// inverse model's logits on (z_h, z_{h+1}).
    #[allow(clippy::type_complexity)]
    pub fn imagine(
        &self,
        model: &dyn LatentDynamics,
        z0: &Tensor,
        input: &dyn Fn(&Tensor) -> Result<Tensor>,
        bonus: Option<(&dyn Fn(&Tensor, &Tensor) -> Result<Tensor>, f64, bool)>,
        rng: &mut Rng,
    ) -> Result<Imagined> {
        let b = z0.dim(0)?;
        let mut z = z0.detach();
        let (mut xs, mut actions, mut rewards, mut conts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..self.cfg.horizon {
            let x = input(&z)?;
            let logits = self.actor.forward(&x)?;
            let a = categorical_sample(&logits, rng)?;
            let (z1, r, c) = model.step(&z, &a, self.cfg.sample_prior, rng)?;
            let mut r = r.to_vec1::<f32>()?;
            if let Some((inverse, alpha, centred)) = &bonus {
                let at = Tensor::new(a.iter().map(|&i| i as u32).collect::<Vec<_>>().as_slice(), &self.dev)?;
                let lq = categorical_log_prob(&inverse(&z, &z1)?, &at)?.to_vec1::<f32>()?;
                let lp = categorical_log_prob(&logits, &at)?.to_vec1::<f32>()?;
                let shift = if *centred { (self.n_actions as f32).ln() } else { 0.0 };
                for i in 0..b {
                    r[i] += (*alpha as f32) * (lq[i] - lp[i] - shift);
                }
            }
            xs.push(x);
            actions.extend(a);
            rewards.extend(r);
            conts.extend(c.to_vec1::<f32>()?);
            z = z1.detach();
        }
        xs.push(input(&z)?);
        Ok(Imagined { states: Tensor::cat(&xs, 0)?.detach(), actions, rewards, conts })
    }

    /// One actor and one critic step on an imagined batch; returns named scalars.
    pub fn update(&mut self, im: &Imagined) -> Result<Vec<(String, f64)>> {
        let hb = im.actions.len();
        let b = hb / self.cfg.horizon;
        let values = self.target.forward(&im.states)?.squeeze(1)?.to_vec1::<f32>()?;
        let (ret, w) = lambda_returns(&im.rewards, &im.conts, &values, b, self.cfg.gamma, self.cfg.lambda);
        let x = im.states.narrow(0, 0, hb)?;
        let ret_t = Tensor::new(ret.as_slice(), &self.dev)?;
        let w_t = Tensor::new(w.as_slice(), &self.dev)?;
        // critic
        let v = self.critic.forward(&x)?.squeeze(1)?;
        let critic_loss = (((&v - &ret_t)?.sqr()? * &w_t)? * 0.5)?.mean_all()?;
        let g = critic_loss.backward()?;
        self.critic_opt.step(&g, self.cfg.critic_lr, self.cfg.max_grad_norm)?;
        // actor: REINFORCE against the slow critic's baseline, plus entropy
        let adv: Vec<f32> = ret.iter().zip(&values[..hb]).map(|(r, v)| r - v).collect();
        let adv_t = Tensor::new(adv.as_slice(), &self.dev)?;
        let logits = self.actor.forward(&x)?;
        let at = Tensor::new(im.actions.iter().map(|&a| a as u32).collect::<Vec<_>>().as_slice(), &self.dev)?;
        let logp = categorical_log_prob(&logits, &at)?;
        let ent = categorical_entropy(&logits)?;
        let objective = ((logp * &adv_t)? + (&ent * self.cfg.entropy_coef)?)?;
        let actor_loss = (objective * &w_t)?.mean_all()?.neg()?;
        let g = actor_loss.backward()?;
        self.actor_opt.step(&g, self.cfg.actor_lr, self.cfg.max_grad_norm)?;
        self.updates += 1;
        if self.updates.is_multiple_of(self.cfg.target_every) {
            self.target_params.copy_from(&self.critic_params)?;
        }
        let mean = |x: &[f32]| x.iter().map(|&v| v as f64).sum::<f64>() / x.len().max(1) as f64;
        Ok(vec![
            ("actor_loss".into(), actor_loss.to_scalar::<f32>()? as f64),
            ("critic_loss".into(), critic_loss.to_scalar::<f32>()? as f64),
            ("imagined_return".into(), mean(&ret[..b])),
            ("imagined_reward".into(), mean(&im.rewards)),
            ("imagined_continue".into(), mean(&im.conts)),
            ("entropy".into(), ent.mean_all()?.to_scalar::<f32>()? as f64),
            ("value".into(), mean(&values[..hb])),
        ])
    }

    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.actor.forward(x)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.actor_params.save(&dir.join("model.safetensors"))?;
        self.critic_params.save(&dir.join("critic.safetensors"))?;
        self.target_params.save(&dir.join("target.safetensors"))?;
        save_opt(&self.actor_opt, &dir.join("optimizer_actor.safetensors"))?;
        save_opt(&self.critic_opt, &dir.join("optimizer_critic.safetensors"))
    }

    fn load(&mut self, dir: &Path, with_state: bool) -> Result<()> {
        self.actor_params.load_file(&dir.join("model.safetensors"))?;
        if with_state {
            self.critic_params.load_file(&dir.join("critic.safetensors"))?;
            self.target_params.load_file(&dir.join("target.safetensors"))?;
            load_opt(&mut self.actor_opt, &dir.join("optimizer_actor.safetensors"))?;
            load_opt(&mut self.critic_opt, &dir.join("optimizer_critic.safetensors"))?;
        }
        Ok(())
    }
}

/// The encoder trained with the world model (`train_encoder`): its copy of the pre-trained
/// encoder, RePo's settings and the dual β.
struct Online {
    enc: Encoder,
    repo: RepoConfig,
    dual: DualBeta,
}

/// The learner: acts in the real (encoded) environments, keeps the visited transitions (their
/// latents are the start states of imagination), trains the actor-critic in its copy of the world
/// model and that copy's heads on the same transitions (batches of `batch_size` for both).
pub struct Dreamer {
    ac: ActorCritic,
    /// The agent's copy of the world model (its heads keep learning on the agent's transitions).
    model: LatentModel,
    model_params: Params,
    model_opt: AdamW,
    enc: Arc<FrozenEncoder>,
    /// InfoPower's bonus (α_emp, centred), paid on imagined transitions.
    bonus: Option<(f64, bool)>,
    /// The encoder trained online (its environments then give raw frames).
    online: Option<Online>,
    buffer: ReplayBuffer,
    rng: Rng,
    n_actions: usize,
    global_step: u64,
    dev: Device,
}

impl Dreamer {
    pub fn new(
        cfg: DreamerConfig,
        envs: &VecEnv,
        enc: Arc<FrozenEncoder>,
        bonus: Option<(f64, bool)>,
        repo: Option<RepoConfig>,
        seed: u64,
        dev: &Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let n_actions = match envs.action_space() {
            Space::Discrete(n) => n,
            _ => bail!("dreamer: this actor is categorical; it needs a discrete action space"),
        };
        let model = enc.model.as_ref().context(
            "dreamer: the pre-trained encoder has no world model (it needs repr.objective repo or infopower, trained by a dreamer run)",
        )?;
        if model.n_actions != n_actions {
            bail!("dreamer: the world model has {} actions, the environment {n_actions}", model.n_actions);
        }
        if bonus.is_some() && enc.inverse.is_none() {
            bail!("repr.infopower.bonus: the encoder has no inverse model (set repr.infopower.bonus = 0)");
        }
        let obs_dim = envs.observation_space().dim();
        let online = match (cfg.train_encoder, repo) {
            (false, _) => None,
            (true, None) => bail!(
                "dreamer.train_encoder: training the encoder online needs RePo's settings (repr.objective = \"repo\")"
            ),
            (true, Some(repo)) => {
                let frame_dim = enc.enc.net.layers[0].w.dims()[0];
                if obs_dim != frame_dim {
                    bail!("dreamer.train_encoder: the environments give {obs_dim}-dimensional observations, the encoder reads {frame_dim}-pixel frames");
                }
                if bonus.is_some() {
                    bail!("dreamer.train_encoder: InfoPower's bonus is not available with an online encoder");
                }
                let dual = DualBeta::new(repo.init_beta, repo.beta_lr);
                Some(Online { enc: enc.enc.duplicate(dev)?, repo, dual })
            }
        };
        let mut init = oxrl_core::seed::rng(seed, "dreamer-init", 0);
        let buffer = ReplayBuffer::new(cfg.buffer_size, obs_dim, 1)?;
        let own = model.duplicate(dev)?;
        let mut vars = own.vars();
        if let Some(o) = &online {
            vars.extend(o.enc.vars());
        }
        Ok(Self {
            model_params: Params(vars.clone()),
            model_opt: AdamW::new(vars, AdamWConfig::default())?,
            ac: ActorCritic::new(cfg, own.latent, n_actions, &mut init, dev)?,
            model: own,
            enc,
            bonus,
            online,
            buffer,
            rng: Rng::seed_from_u64(oxrl_core::seed::derive(seed, "dreamer", 0)),
            n_actions,
            global_step: 0,
            dev: dev.clone(),
        })
    }

    /// Raw latents of stored observations: the frozen encoder's standardised features mapped
    /// back, or the online encoder's posterior means of raw frames (detached).
    fn raw_latents(&self, obs: &Tensor) -> Result<Tensor> {
        match &self.online {
            Some(o) => Ok(o.enc.features(obs)?.detach()),
            None => self.enc.unstandardise_tensor(obs),
        }
    }

    /// What the actor reads of observations: standardised latents.
    fn actor_input(&self, obs: &Tensor) -> Result<Tensor> {
        match &self.online {
            Some(o) => self.enc.standardise_tensor(&o.enc.features(obs)?.detach()),
            None => Ok(obs.clone()),
        }
    }

    fn update(&mut self) -> Result<Vec<(String, f64)>> {
        let idx = self.buffer.sample_indices(self.ac.cfg.batch_size, &mut self.rng);
        let feats = self.buffer.gather(&idx, &self.dev)?.obs;
        let enc = self.enc.clone();
        let z0 = self.raw_latents(&feats)?;
        let input = |z: &Tensor| enc.standardise_tensor(z);
        let inverse = |z: &Tensor, z1: &Tensor| -> Result<Tensor> {
            let inv = enc.inverse.as_ref().context("no inverse model")?;
            inv.forward(&Tensor::cat(&[z, z1], 1)?)
        };
        let bonus = self.bonus.map(|(a, c)| (&inverse as &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>, a, c));
        let im = self.ac.imagine(&self.model, &z0, &input, bonus, &mut self.rng)?;
        self.ac.update(&im)
    }

    /// One step of the world model's heads on the agent's transitions (z, a, r, z', terminal),
    /// latents = the frozen encoder's posterior means: Gaussian NLL of z' under the prior,
    /// ½(R(z') − r)², and BCE of the continuation head against 1 − terminal.
    fn model_update(&mut self) -> Result<Vec<(String, f64)>> {
        let idx = self.buffer.sample_indices(self.ac.cfg.batch_size, &mut self.rng);
        let b = self.buffer.gather(&idx, &self.dev)?;
        let acts: Vec<usize> = b.act.flatten_all()?.to_vec1::<f32>()?.iter().map(|&a| a as usize).collect();
        if self.online.is_some() {
            return self.online_model_update(&b, &acts);
        }
        let z = self.enc.unstandardise_tensor(&b.obs)?;
        let z1 = self.enc.unstandardise_tensor(&b.next_obs)?;
        let loss = world_model_loss(&self.model, &z, &acts, &z1, &b.rew, &b.done)?;
        let total = ((&loss.nll + &loss.reward)? + &loss.cont)?;
        let g = total.backward()?;
        self.model_opt.step(&g, self.ac.cfg.model_lr, self.ac.cfg.max_grad_norm)?;
        let s = |t: &Tensor| -> Result<f64> { Ok(t.to_scalar::<f32>()? as f64) };
        Ok(vec![
            ("model_nll".into(), s(&loss.nll)?),
            ("model_reward_mse".into(), 2.0 * s(&loss.reward)?),
            ("model_continuation_bce".into(), s(&loss.cont)?),
        ])
    }

    /// One step of RePo's model loss on the agent's frames, the encoder included (see the module
    /// docs), then the dual step on log β.
    fn online_model_update(&mut self, b: &crate::buffer::Batch, acts: &[usize]) -> Result<Vec<(String, f64)>> {
        let Self { online, model, rng, model_opt, ac, .. } = self;
        let o = online.as_mut().context("dreamer: no online encoder")?;
        let (s_t, mu_t, _) = o.enc.sample(&b.obs, rng)?;
        let (s_t1, mu_q, sd_q) = o.enc.sample(&b.next_obs, rng)?;
        let sd_q = sd_q.context("dreamer.train_encoder: the encoder is not stochastic")?;
        let (mu_p, sd_p) = model.prior(o.repo.prior_input.pick(&s_t, &mu_t), acts)?;
        let kl = balanced_kl(&mu_q, &sd_q, &mu_p, &sd_p, o.repo.alpha())?;
        let reward = ((model.reward.forward(&s_t1)?.squeeze(1)? - &b.rew)?.sqr()? * 0.5)?.mean_all()?;
        let keep = (b.done.neg()? + 1.0)?;
        let cont = crate::dist::bce_with_logits(&model.cont.forward(&s_t1)?.squeeze(1)?, &keep)?;
        let beta = o.dual.beta();
        let total = ((&reward + &cont)? + ((&kl - o.repo.target_kl)? * beta)?)?;
        let g = total.backward()?;
        model_opt.step(&g, ac.cfg.model_lr, ac.cfg.max_grad_norm)?;
        let kl_v = kl.to_scalar::<f32>()? as f64;
        if kl_v.is_finite() {
            o.dual.update(kl_v, o.repo.target_kl);
        }
        let s = |t: &Tensor| -> Result<f64> { Ok(t.to_scalar::<f32>()? as f64) };
        Ok(vec![
            ("model_kl".into(), kl_v),
            ("model_beta".into(), beta),
            ("model_reward_mse".into(), 2.0 * s(&reward)?),
            ("model_continuation_bce".into(), s(&cont)?),
        ])
    }
}

/// The world model's losses on a batch of real transitions (means over the batch).
pub struct ModelLoss {
    /// −log N(z'; μ_p, σ_p), summed over latent entries.
    pub nll: Tensor,
    /// ½(R(z') − r)².
    pub reward: Tensor,
    pub cont: Tensor,
}

pub fn world_model_loss(
    model: &LatentModel,
    z: &Tensor,
    actions: &[usize],
    z1: &Tensor,
    rew: &Tensor,
    done: &Tensor,
) -> Result<ModelLoss> {
    let (mu, sd) = model.prior(z, actions)?;
    let nll = crate::dist::gaussian_log_prob(&mu, &sd.log()?, z1)?.mean_all()?.neg()?;
    let reward = ((model.reward.forward(z1)?.squeeze(1)? - rew)?.sqr()? * 0.5)?.mean_all()?;
    let keep = (done.neg()? + 1.0)?;
    let cont = crate::dist::bce_with_logits(&model.cont.forward(z1)?.squeeze(1)?, &keep)?;
    Ok(ModelLoss { nll, reward, cont })
}

impl Agent for Dreamer {
    fn name(&self) -> &'static str {
        "dreamer"
    }

    fn iterate(&mut self, envs: &mut VecEnv, _progress: Progress) -> Result<IterStats> {
        let n = envs.len();
        let mut stats = IterStats::default();
        let mut taken = 0u64;
        while taken < self.ac.cfg.steps_per_iteration {
            let obs = envs.obs().to_vec();
            let acts: Vec<usize> = if self.global_step < self.ac.cfg.learning_starts {
                (0..n).map(|_| self.rng.random_range(0..self.n_actions)).collect()
            } else {
                categorical_sample(&self.ac.logits(&self.actor_input(&rows(&obs, &self.dev)?)?)?, &mut self.rng)?
            };
            let step = envs.step(&acts.iter().map(|&a| Action::Discrete(a)).collect::<Vec<_>>())?;
            for i in 0..n {
                let next = step.final_obs[i].as_ref().unwrap_or(&step.obs[i]);
                self.buffer.push(&obs[i], &[acts[i] as f32], step.rewards[i], next, step.terminated[i])?;
            }
            stats.episodes.extend(step.finished.iter().copied());
            self.global_step += n as u64;
            taken += n as u64;
        }
        stats.env_steps = taken;
        if self.global_step >= self.ac.cfg.learning_starts {
            let mut sum = MetricSum::default();
            for _ in 0..self.ac.cfg.updates_per_iteration {
                sum.add(&self.update()?);
            }
            stats.metrics = sum.mean();
            let mut msum = MetricSum::default();
            for _ in 0..self.ac.cfg.model_updates_per_iteration {
                msum.add(&self.model_update()?);
            }
            stats.metrics.extend(msum.mean());
        }
        Ok(stats)
    }

    fn act(&mut self, obs: &[Vec<f32>], deterministic: bool) -> Result<Vec<Action>> {
        let logits = self.ac.logits(&self.actor_input(&rows(obs, &self.dev)?)?)?;
        let a = if deterministic {
            argmax_rows(&log_softmax(&logits)?)?
        } else {
            categorical_sample(&logits, &mut self.rng)?
        };
        Ok(a.into_iter().map(Action::Discrete).collect())
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.ac.save(dir)?;
        self.model_params.save(&dir.join("world_model.safetensors"))?;
        save_opt(&self.model_opt, &dir.join("optimizer_model.safetensors"))?;
        self.buffer.save(&dir.join("replay.safetensors"))?;
        let mut st = serde_json::json!({"updates": self.ac.updates});
        if let Some(o) = &self.online {
            st["dual"] = serde_json::to_value(&o.dual)?;
        }
        oxrl_core::fsutil::write_atomic(&dir.join("dreamer.json"), st.to_string().as_bytes())?;
        save_state(dir, &self.rng, self.global_step)
    }

    fn load(&mut self, dir: &Path, with_state: bool) -> Result<()> {
        self.ac.load(dir, with_state)?;
        if with_state || self.online.is_some() {
            // an online encoder is part of the policy: it is needed to act
            self.model_params.load_file(&dir.join("world_model.safetensors"))?;
        }
        if with_state {
            load_opt(&mut self.model_opt, &dir.join("optimizer_model.safetensors"))?;
            self.buffer.load(&dir.join("replay.safetensors"))?;
            let p = dir.join("dreamer.json");
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?)
                    .with_context(|| format!("parsing {}", p.display()))?;
            self.ac.updates = v["updates"].as_u64().with_context(|| format!("{}: missing \"updates\"", p.display()))?;
            if let Some(o) = self.online.as_mut() {
                o.dual = serde_json::from_value(v["dual"].clone())
                    .with_context(|| format!("{}: missing or malformed \"dual\"", p.display()))?;
            }
            self.global_step = load_state(dir, &mut self.rng)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_returns_match_the_recursion_by_hand() {
        // H = 2, B = 1: r = [1, 2], c = [1, 0.5], v = [0.5, 1, 4], γ = 0.9, λ = 0.5
        let (r, w) = lambda_returns(&[1.0, 2.0], &[1.0, 0.5], &[0.5, 1.0, 4.0], 1, 0.9, 0.5);
        // R_1 = 2 + 0.9·0.5·(0.5·4 + 0.5·4) = 3.8; R_0 = 1 + 0.9·1·(0.5·1 + 0.5·3.8) = 3.16
        assert!((r[1] - 3.8).abs() < 1e-6 && (r[0] - 3.16).abs() < 1e-6, "{r:?}");
        assert_eq!(w, vec![1.0, 1.0]);
        let (_, w) = lambda_returns(&[1.0, 2.0], &[0.5, 0.5], &[0.5, 1.0, 4.0], 1, 0.9, 0.5);
        assert_eq!(w, vec![1.0, 0.5]);
    }

    #[test]
    fn lambda_zero_is_td0_and_lambda_one_is_the_bootstrapped_discounted_sum() {
        // B = 2, h-major: rewards[h·2 + b]
        let rew = [0.3f32, -1.0, 0.7, 2.0, 0.1, 0.5];
        let cont = [1.0f32, 0.8, 0.6, 1.0, 1.0, 0.0];
        let val = [0.2f32, 0.4, -0.5, 1.5, 2.0, 0.3, 1.0, -2.0];
        let g = 0.9;
        let (td, _) = lambda_returns(&rew, &cont, &val, 2, g, 0.0);
        for i in 0..6 {
            let want = rew[i] as f64 + g * cont[i] as f64 * val[i + 2] as f64;
            assert!((td[i] as f64 - want).abs() < 1e-6);
        }
        let (mc, _) = lambda_returns(&rew, &cont, &val, 2, g, 1.0);
        for b in 0..2 {
            let mut want = val[6 + b] as f64;
            for h in (0..3).rev() {
                want = rew[h * 2 + b] as f64 + g * cont[h * 2 + b] as f64 * want;
            }
            assert!((mc[b] as f64 - want).abs() < 1e-5, "{} vs {want}", mc[b]);
        }
    }

    /// A hand-made latent world: z is a position on a line; action 1 moves +1, action 0 moves −1;
    /// reaching z ≥ 3 pays 1 and ends the episode, every other step costs 0.05.
    struct Line;
    impl LatentDynamics for Line {
        fn latent_dim(&self) -> usize {
            1
        }
        fn n_actions(&self) -> usize {
            2
        }
        fn step(&self, z: &Tensor, a: &[usize], _s: bool, _r: &mut Rng) -> Result<(Tensor, Tensor, Tensor)> {
            let z = z.flatten_all()?.to_vec1::<f32>()?;
            let z1: Vec<f32> = z.iter().zip(a).map(|(z, &a)| z + if a == 1 { 1.0 } else { -1.0 }).collect();
            let r: Vec<f32> = z1.iter().map(|&p| if p >= 3.0 { 1.0 } else { -0.05 }).collect();
            let c: Vec<f32> = z1.iter().map(|&p| if p >= 3.0 { 0.0 } else { 1.0 }).collect();
            let d = Device::Cpu;
            Ok((
                Tensor::from_vec(z1, (a.len(), 1), &d)?,
                Tensor::new(r.as_slice(), &d)?,
                Tensor::new(c.as_slice(), &d)?,
            ))
        }
    }

    #[test]
    fn the_actor_critic_learns_to_walk_to_the_reward_in_imagination() {
        let dev = Device::Cpu;
        let cfg = DreamerConfig {
            horizon: 8,
            actor_lr: 3e-3,
            critic_lr: 3e-3,
            hidden: vec![32, 32],
            target_every: 10,
            ..DreamerConfig::default()
        };
        let mut rng = Rng::seed_from_u64(0);
        let mut ac = ActorCritic::new(cfg, 1, 2, &mut rng, &dev).unwrap();
        let starts = Tensor::new(&[[-2.0f32], [-1.0], [0.0], [1.0], [2.0], [0.0], [-1.0], [1.0]], &dev).unwrap();
        let input = |z: &Tensor| Ok((z / 3.0)?);
        let p_right = |ac: &ActorCritic| -> f32 {
            let lp = log_softmax(&ac.logits(&(&starts / 3.0).unwrap()).unwrap()).unwrap().exp().unwrap();
            lp.narrow(1, 1, 1).unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap()
        };
        let before = p_right(&ac);
        let mut first = None;
        let mut last = 0.0;
        for _ in 0..300 {
            let im = ac.imagine(&Line, &starts, &input, None, &mut rng).unwrap();
            let m = ac.update(&im).unwrap();
            let ret = m.iter().find(|(k, _)| k == "imagined_return").unwrap().1;
            first.get_or_insert(ret);
            last = ret;
        }
        let after = p_right(&ac);
        assert!((before - 0.5).abs() < 0.05, "starts near uniform: {before}");
        assert!(after > 0.9, "P(right) {before} → {after}");
        assert!(last > first.unwrap() + 0.3, "imagined return {first:?} → {last}");
    }

    #[test]
    fn the_world_model_loss_matches_its_formulas_and_falls_on_real_transitions() {
        let dev = Device::Cpu;
        let mut rng = Rng::seed_from_u64(4);
        let m = LatentModel::new(2, 16, 2, &mut rng, &dev).unwrap();
        // a line world in latent space: z' = z ± 0.5, reward 1 and terminal at z' ≥ 1
        let zs: Vec<f32> = (0..64).map(|i| -1.0 + (i % 8) as f32 * 0.25).collect();
        let acts: Vec<usize> = (0..64).map(|i| (i / 8) % 2).collect();
        let z1s: Vec<f32> = zs.iter().zip(&acts).map(|(z, &a)| z + if a == 1 { 0.5 } else { -0.5 }).collect();
        let two = |v: &[f32]| {
            Tensor::from_vec(v.iter().flat_map(|&x| [x, 0.3]).collect::<Vec<_>>(), (v.len(), 2), &dev).unwrap()
        };
        let (z, z1) = (two(&zs), two(&z1s));
        let rew =
            Tensor::new(z1s.iter().map(|&p| if p >= 1.0 { 1f32 } else { 0.0 }).collect::<Vec<_>>().as_slice(), &dev)
                .unwrap();
        let done = rew.clone();
        let l = world_model_loss(&m, &z, &acts, &z1, &rew, &done).unwrap();
        // by hand from the model's own outputs
        let (mu, sd) = m.prior(&z, &acts).unwrap();
        let (mu, sd, y) = (mu.to_vec2::<f32>().unwrap(), sd.to_vec2::<f32>().unwrap(), z1.to_vec2::<f32>().unwrap());
        let mut nll = 0.0;
        for i in 0..64 {
            for j in 0..2 {
                let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
                nll += (sd[i][j] as f64).ln()
                    + 0.5 * ((y[i][j] - mu[i][j]) as f64 / sd[i][j] as f64).powi(2)
                    + half_log_2pi;
            }
        }
        let got = l.nll.to_scalar::<f32>().unwrap() as f64;
        assert!((got - nll / 64.0).abs() < 1e-4, "{got} vs {}", nll / 64.0);
        let r = m.reward.forward(&z1).unwrap().squeeze(1).unwrap().to_vec1::<f32>().unwrap();
        let rv = rew.to_vec1::<f32>().unwrap();
        let want: f64 = r.iter().zip(&rv).map(|(a, b)| 0.5 * ((a - b) as f64).powi(2)).sum::<f64>() / 64.0;
        assert!((l.reward.to_scalar::<f32>().unwrap() as f64 - want).abs() < 1e-5);
        // training the heads on these transitions lowers every term
        let params = Params(m.vars());
        let mut opt = AdamW::new(params.vars(), AdamWConfig::default()).unwrap();
        for _ in 0..300 {
            let l = world_model_loss(&m, &z, &acts, &z1, &rew, &done).unwrap();
            let g = ((&l.nll + &l.reward).unwrap() + &l.cont).unwrap().backward().unwrap();
            opt.step(&g, 3e-3, 100.0).unwrap();
        }
        let after = world_model_loss(&m, &z, &acts, &z1, &rew, &done).unwrap();
        let v = |t: &Tensor| t.to_scalar::<f32>().unwrap();
        assert!(
            v(&after.nll) < v(&l.nll) - 1.0 && v(&after.reward) < 0.2 * v(&l.reward) && v(&after.cont) < v(&l.cont)
        );
    }

    /// `train_encoder`: model updates move the learner's encoder under RePo's loss (the frozen
    /// pre-trained copy stays as it was), and a policy-only load (evaluation) restores the trained
    /// encoder, so a reloaded agent acts as the trained one does.
    #[test]
    fn the_online_encoder_trains_and_a_policy_load_restores_it() {
        let dev = Device::Cpu;
        let repr = crate::repr::ReprConfig {
            objective: "repo".into(),
            video_frames: 400,
            probe_frames: 200,
            pretrain_steps: 5,
            hidden: 32,
            keep_world_model: true,
            ..Default::default()
        };
        let noise = crate::env::pixel_grid::Noise::Clean;
        let (enc, _) = crate::repr::pretrain(&repr, noise, 0, &dev, &mut |_| Ok(())).unwrap();
        let enc = Arc::new(enc);
        let mut maker = crate::repr::EnvMaker::plain("pixelgrid-clean");
        (maker.encoder, maker.raw_frames) = (Some(enc.clone()), true);
        let mut envs = maker.vec(1, 0).unwrap();
        let cfg = DreamerConfig {
            train_encoder: true,
            learning_starts: 0,
            steps_per_iteration: 64,
            updates_per_iteration: 1,
            model_updates_per_iteration: 5,
            batch_size: 16,
            horizon: 3,
            hidden: vec![16],
            ..DreamerConfig::default()
        };
        let make = |envs: &VecEnv| {
            Dreamer::new(cfg.clone(), envs, enc.clone(), None, Some(RepoConfig::default()), 0, &dev).unwrap()
        };
        let mut d = make(&envs);
        let weights = |e: &Encoder| Params(e.vars()).tensors();
        let gap = |a: &std::collections::HashMap<String, Tensor>, b: &std::collections::HashMap<String, Tensor>| {
            a.iter()
                .map(|(k, t)| (t - &b[k]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap())
                .fold(0f32, f32::max)
        };
        let pre = weights(&enc.enc);
        assert_eq!(gap(&weights(&d.online.as_ref().unwrap().enc), &pre), 0.0, "the copy starts pre-trained");
        let st = d.iterate(&mut envs, Progress { global_step: 0, total_steps: 64 }).unwrap();
        let m = |k: &str| st.metrics.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        assert!(m("model_kl").is_some_and(f64::is_finite) && m("model_beta").is_some_and(|b| b > 0.0));
        let trained = weights(&d.online.as_ref().unwrap().enc);
        assert!(gap(&trained, &pre) > 0.0, "the encoder learns");
        assert_eq!(gap(&weights(&enc.enc), &pre), 0.0, "the pre-trained encoder is untouched");
        let dir = tempfile::tempdir().unwrap();
        d.save(dir.path()).unwrap();
        let mut fresh = make(&envs);
        fresh.load(dir.path(), false).unwrap();
        assert_eq!(gap(&weights(&fresh.online.as_ref().unwrap().enc), &trained), 0.0);
        let frames: Vec<Vec<f32>> = (0..8).map(|_| envs.envs[0].reset()).collect();
        let logits = |a: &Dreamer| a.ac.logits(&a.actor_input(&rows(&frames, &dev).unwrap()).unwrap()).unwrap();
        let (x, y) = (logits(&d).to_vec2::<f32>().unwrap(), logits(&fresh).to_vec2::<f32>().unwrap());
        assert_eq!(x, y);
    }

    #[test]
    fn the_empowerment_bonus_is_paid_on_imagined_transitions() {
        // an inverse model that recovers the action exactly: log q = 0, so with the actor's
        // log π(a) = log ½ the bonus is α·log 2 per step (α·(log 2 − log 2) = 0 centred)
        let dev = Device::Cpu;
        let cfg = DreamerConfig { horizon: 3, hidden: vec![8], ..DreamerConfig::default() };
        let mut rng = Rng::seed_from_u64(3);
        let ac = ActorCritic::new(cfg, 1, 2, &mut rng, &dev).unwrap();
        let starts = Tensor::new(&[[-10.0f32], [-20.0]], &dev).unwrap();
        let input = |z: &Tensor| Ok((z * 0.0)?); // the actor sees nothing: exactly uniform up to init
        let inverse = |z: &Tensor, z1: &Tensor| -> Result<Tensor> {
            let up = (z1 - z)?; // +1 or −1
            Ok((Tensor::cat(&[&up.neg()?, &up], 1)? * 50.0)?)
        };
        let plain = ac.imagine(&Line, &starts, &input, None, &mut Rng::seed_from_u64(9)).unwrap();
        for (centred, shift) in [(false, 0.0f32), (true, 2f32.ln())] {
            let with =
                ac.imagine(&Line, &starts, &input, Some((&inverse, 0.5, centred)), &mut Rng::seed_from_u64(9)).unwrap();
            assert_eq!(plain.actions, with.actions);
            let lp = log_softmax(&ac.logits(&Tensor::zeros((1, 1), candle_core::DType::F32, &dev).unwrap()).unwrap())
                .unwrap()
                .to_vec2::<f32>()
                .unwrap()[0]
                .clone();
            for (i, (a, b)) in plain.rewards.iter().zip(&with.rewards).enumerate() {
                let want = 0.5 * (0.0 - lp[plain.actions[i]] - shift);
                assert!((b - a - want).abs() < 1e-4, "step {i}: {} vs {want}", b - a);
            }
        }
    }
}
