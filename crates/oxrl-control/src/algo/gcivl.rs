//! Goal-conditioned offline RL on relabelled data: GCBC, GCIVL and SAW share one agent.
//!
//! - Value (GCIVL — action-free IQL, OGBench): two heads V1, V2 (s, g) with an EMA target. With
//!   q = r + γ·mask·min(V̄1, V̄2)(s', g) and the target advantage A = q − mean(V̄1, V̄2)(s, g), head i
//!   is regressed to r + γ·mask·V̄i(s', g) with expectile weights chosen by sign(A) (τ = `expectile`).
//!   Rewards and masks come from hindsight goals ([`crate::gc`]): 0 / 0 exactly at the goal row.
//! - `actor = "bc"` (GCBC): regress dataset actions toward actor goals (weights 1).
//! - `actor = "awr"` (GCIVL): weights min(exp(α·(V(s', g) − V(s, g))), 100).
//! - `actor = "saw"` — "Flattening Hierarchies with Policy Bootstrapping" (Zhou & Kao, 2025): a
//!   low actor π_low(a | s, w) on waypoints w = s_{min(t+k, end)} with AWR weight
//!   exp(α_low·(V(s', w) − V(s, w))), and the flat actor's AWR toward g plus the subgoal-advantage-
//!   weighted bootstrapping term min(exp(α_kl·(V(w, g) − V(s, g))), 100)·‖μ(s, g) − sg(μ_low(s, w))‖²
//!   (the KL between constant-std Gaussians). Only the flat actor acts at test time.
//!
//! Policies are Gaussians with constant std, so log-likelihoods are squared errors of the mean;
//! on discrete action spaces they are categorical (AWR-weighted cross-entropy, and SAW's
//! bootstrapping term is KL(sg(π_low) ‖ π)). Observations are (state, goal): the first
//! `obs_dim − goal_dim` values are the state. Goals are dataset states, or with `goal_indices` the
//! entries of a state that a goal specifies (the push gridworld's goal is where the boxes are,
//! wherever the agent stands); a relabelled goal is reached at row t when t is the goal row or the
//! goal entries of s_t equal the goal.

use super::{load_opt, load_state, read_tensors, save_opt, save_state, strip_prefix, Agent, IterStats, Progress};
use crate::blocks::{awr_weight, expectile_loss_signed};
use crate::dataset::Dataset;
use crate::env::{Action, VecEnv};
use crate::gc::{reward_mask, sample_goal, trajectory_ends, GoalMix};
use crate::nn::{rows, Activation, Init, Mlp, Params};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, D};
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_core::seed::Rng;
use rand::{Rng as _, SeedableRng};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `[gc]` — defaults are the OGBench / SAW settings (smaller networks for CPU).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcConfig {
    pub dataset: String,
    /// `bc` (GCBC), `awr` (GCIVL) or `saw`: set from the run's `algo` (gcbc, gcivl, saw).
    #[serde(skip)]
    pub actor: String,
    pub goal_dim: usize,
    /// The state entries a goal specifies, in goal order (empty: the whole state, so goal_dim must
    /// equal the state size).
    pub goal_indices: Vec<usize>,
    pub gamma: f64,
    pub expectile: f64,
    pub tau: f64,
    pub lr: f64,
    pub batch_size: usize,
    pub hidden: Vec<usize>,
    pub layer_norm: bool,
    pub value_goals: GoalMix,
    pub actor_goals: GoalMix,
    pub alpha: f64,
    pub alpha_low: f64,
    pub alpha_kl: f64,
    pub subgoal_steps: usize,
    pub steps_per_iteration: u64,
    /// HECRL's test-time subgoal selection ([`super::hecrl`]).
    pub subgoals: super::hecrl::SubgoalConfig,
}

impl Default for GcConfig {
    fn default() -> Self {
        Self {
            dataset: String::new(),
            actor: "awr".into(),
            goal_dim: 2,
            goal_indices: Vec::new(),
            gamma: 0.99,
            expectile: 0.7,
            tau: 0.005,
            lr: 3e-4,
            batch_size: 256,
            hidden: vec![256, 256],
            layer_norm: true,
            value_goals: GoalMix { p_cur: 0.2, p_traj: 0.5, p_rand: 0.3, geometric: true },
            actor_goals: GoalMix { p_cur: 0.0, p_traj: 1.0, p_rand: 0.0, geometric: false },
            alpha: 3.0,
            alpha_low: 3.0,
            alpha_kl: 3.0,
            subgoal_steps: 25,
            steps_per_iteration: 1000,
            subgoals: super::hecrl::SubgoalConfig::default(),
        }
    }
}

impl GcConfig {
    pub fn validate(&self) -> Result<()> {
        if self.dataset.is_empty() {
            bail!(
                "gc.dataset: the offline dataset (.npz) is required (e.g. `oxrl control collect --policy navigator`)"
            );
        }
        if !["bc", "awr", "saw"].contains(&self.actor.as_str()) {
            bail!("gc: actor {:?} is not one of bc, awr, saw", self.actor);
        }
        if self.goal_dim == 0 || self.batch_size == 0 || self.subgoal_steps == 0 || self.steps_per_iteration == 0 {
            bail!("gc: goal_dim, batch_size, subgoal_steps and steps_per_iteration must be positive");
        }
        self.subgoals.validate()?;
        self.value_goals.validate("gc.value_goals")?;
        self.actor_goals.validate("gc.actor_goals")
    }
}

struct Data {
    d: Dataset,
    ends: Vec<usize>,
}

pub struct Gcivl {
    pub cfg: GcConfig,
    value: Mlp,
    value_params: Params,
    target: Mlp,
    target_params: Params,
    actor: Mlp,
    actor_params: Params,
    low: Mlp,
    low_params: Params,
    value_opt: AdamW,
    actor_opt: AdamW,
    low_opt: AdamW,
    data: Option<Data>,
    rng: Rng,
    dev: Device,
    state_dim: usize,
    act_dim: usize,
    /// Discrete action spaces: the number of actions (the actors output logits).
    n_actions: Option<usize>,
    step: u64,
    /// Per-episode subgoal state: steps taken, subgoals chosen, the current target.
    episode: (usize, usize, Option<Vec<f32>>),
    /// HECRL's diffusion generator and its optimiser (`gc.subgoals.generator = "diffusion"`).
    diffusion: Option<(super::subgoal_diffusion::SubgoalDiffusion, AdamW)>,
}

/// A sampled batch: states, next states, actions, goals (and the goal rows' whole states), rewards,
/// masks.
struct GcBatch {
    s: Tensor,
    s2: Tensor,
    a: Tensor,
    g: Tensor,
    gs: Tensor,
    r: Tensor,
    m: Tensor,
}

impl Gcivl {
    pub fn new(cfg: GcConfig, envs: &VecEnv, seed: u64, dev: &Device) -> Result<Self> {
        cfg.validate()?;
        let obs_dim = envs.observation_space().dim();
        if obs_dim <= cfg.goal_dim {
            bail!("gc.goal_dim {} leaves no state in observations of {obs_dim}", cfg.goal_dim);
        }
        let state_dim = obs_dim - cfg.goal_dim;
        if cfg.goal_indices.is_empty() && state_dim != cfg.goal_dim {
            bail!(
                "gc: goals are dataset states, so goal_dim ({}) must equal the state size ({state_dim}) unless gc.goal_indices picks the goal's entries",
                cfg.goal_dim
            );
        }
        if !cfg.goal_indices.is_empty()
            && (cfg.goal_indices.len() != cfg.goal_dim || cfg.goal_indices.iter().any(|&i| i >= state_dim))
        {
            bail!(
                "gc.goal_indices: {} entries below the state size {state_dim} are needed (goal_dim {}), got {:?}",
                cfg.goal_dim,
                cfg.goal_dim,
                cfg.goal_indices
            );
        }
        let entities = cfg.goal_dim / cfg.subgoals.entity_dims;
        if cfg.subgoals.generator == "factored"
            && (!cfg.goal_dim.is_multiple_of(cfg.subgoals.entity_dims)
                || entities > super::hecrl::MAX_FACTORED_ENTITIES)
        {
            bail!(
                "gc.subgoals.generator = \"factored\": goal_dim {} must split into at most {} entities of entity_dims {}",
                cfg.goal_dim,
                super::hecrl::MAX_FACTORED_ENTITIES,
                cfg.subgoals.entity_dims
            );
        }
        let act_dim = envs.action_space().dim();
        let n_actions = match envs.action_space() {
            crate::env::Space::Discrete(n) => Some(n),
            crate::env::Space::Box { .. } => None,
        };
        let mut init = oxrl_core::seed::rng(seed, "gc-init", 0);
        let mk = |out: usize, init: &mut Rng| -> Result<Mlp> {
            let mut s = vec![state_dim + cfg.goal_dim];
            s.extend(&cfg.hidden);
            s.push(out);
            let mut m = Mlp::new(&s, Activation::Relu, Init::Uniform, init, dev)?;
            m.layer_norm = cfg.layer_norm;
            Ok(m)
        };
        let value = mk(2, &mut init)?;
        let target = mk(2, &mut init)?;
        let actor = mk(n_actions.unwrap_or(act_dim), &mut init)?;
        let low = mk(n_actions.unwrap_or(act_dim), &mut init)?;
        let value_params = Params(value.vars("value"));
        let target_params = Params(target.vars("value"));
        target_params.copy_from(&value_params)?;
        let actor_params = Params(actor.vars("actor"));
        let low_params = Params(low.vars("low_actor"));
        let diffusion = if cfg.subgoals.generator == "diffusion" {
            let sc = &cfg.subgoals;
            let m = super::subgoal_diffusion::SubgoalDiffusion::new(
                state_dim,
                cfg.goal_dim,
                sc.diffusion_hidden,
                sc.diffusion_steps,
                &mut init,
                dev,
            )?;
            let opt = AdamW::new(m.vars(), AdamWConfig::default())?;
            Some((m, opt))
        } else {
            None
        };
        Ok(Self {
            diffusion,
            value_opt: AdamW::new(value_params.vars(), AdamWConfig::default())?,
            actor_opt: AdamW::new(actor_params.vars(), AdamWConfig::default())?,
            low_opt: AdamW::new(low_params.vars(), AdamWConfig::default())?,
            value,
            value_params,
            target,
            target_params,
            actor,
            actor_params,
            low,
            low_params,
            data: None,
            rng: Rng::seed_from_u64(oxrl_core::seed::derive(seed, "gc", 0)),
            dev: dev.clone(),
            state_dim,
            act_dim,
            n_actions,
            step: 0,
            episode: (0, 0, None),
            cfg,
        })
    }

    /// The goal to act toward under HECRL's selection, for one observation (state, final goal).
    fn subgoal_for(&mut self, s: &[f32], g: &[f32]) -> Result<Vec<f32>> {
        let sc = self.cfg.subgoals.clone();
        let (steps, chosen, current) = self.episode.clone();
        let target = if steps.is_multiple_of(sc.every) && chosen < sc.max_subgoals {
            let cands: Vec<Vec<f32>> = if let Some((m, _)) = &self.diffusion {
                m.sample(s, g, sc.candidates, &mut self.rng, &mut |_| {})?
            } else if sc.generator == "factored" {
                let gi: Vec<usize> = if self.cfg.goal_indices.is_empty() {
                    (0..self.state_dim).collect()
                } else {
                    self.cfg.goal_indices.clone()
                };
                super::hecrl::factored_candidates(s, g, &gi, sc.entity_dims)
            } else {
                if self.data.is_none() {
                    self.load_data()?;
                }
                let n_rows = self.data.as_ref().unwrap().d.len();
                let picks: Vec<usize> = (0..sc.candidates).map(|_| self.rng.random_range(0..n_rows)).collect();
                let d = &self.data.as_ref().unwrap().d;
                picks.iter().map(|&i| self.state(d, i)).collect()
            };
            let n = cands.len();
            let st = rows(&vec![s.to_vec(); n], &self.dev)?;
            let gt = rows(&vec![g.to_vec(); n], &self.dev)?;
            let ct = rows(&cands, &self.dev)?;
            let cg: Vec<Vec<f32>> = cands.iter().map(|c| self.goal_of(c)).collect();
            let v_s_c = self.v_mean(&st, &rows(&cg, &self.dev)?)?.to_vec1::<f32>()?;
            let v_c_g = self.v_mean(&ct, &gt)?.to_vec1::<f32>()?;
            let v_s_g = self.v_mean(&st.narrow(0, 0, 1)?, &gt.narrow(0, 0, 1)?)?.to_vec1::<f32>()?[0];
            let t = match super::hecrl::select(&v_s_c, &v_c_g, v_s_g, sc.competence_radius as f32) {
                super::hecrl::Target::Goal => None,
                super::hecrl::Target::Subgoal(i) => Some(cg[i].clone()),
            };
            self.episode.1 += 1;
            t
        } else if chosen >= sc.max_subgoals {
            None
        } else {
            current
        };
        self.episode.0 += 1;
        self.episode.2 = target.clone();
        Ok(target.unwrap_or_else(|| g.to_vec()))
    }

    fn load_data(&mut self) -> Result<()> {
        let d = Dataset::load(Path::new(&self.cfg.dataset)).context("gc.dataset")?;
        if d.obs_dim != self.state_dim + self.cfg.goal_dim || d.act_dim != self.act_dim {
            bail!(
                "gc.dataset: {} has observations of {} and actions of {}, expected {} and {}",
                self.cfg.dataset,
                d.obs_dim,
                d.act_dim,
                self.state_dim + self.cfg.goal_dim,
                self.act_dim
            );
        }
        let ends = trajectory_ends(&d);
        self.data = Some(Data { d, ends });
        // the diffusion generator standardises with the data's statistics (a fixed sample of
        // triples; the saved statistics win when a checkpoint is loaded)
        if self.diffusion.as_ref().is_some_and(|(m, _)| m.mean.iter().all(|&v| v == 0.0)) {
            let mut rng = oxrl_core::seed::rng(0, "diffusion-statistics", 0);
            let n = self.data.as_ref().map_or(0, |x| x.d.len());
            let idx: Vec<usize> = (0..4096.min(n)).map(|_| rng.random_range(0..n)).collect();
            let triples = self.triples(&idx, &mut rng);
            if let Some((m, _)) = self.diffusion.as_mut() {
                m.fit_statistics(&triples);
            }
        }
        Ok(())
    }

    /// (s_t, w = s_{min(t+k, end)}, goal of a uniform future state of the trajectory) per row.
    fn triples(&self, idx: &[usize], rng: &mut Rng) -> Vec<Vec<f32>> {
        let data = self.data.as_ref().expect("loaded");
        let k = self.cfg.subgoals.waypoint_k;
        let mix = GoalMix { p_cur: 0.0, p_traj: 1.0, p_rand: 0.0, geometric: false };
        idx.iter()
            .map(|&t| {
                let w = (t + k).min(data.ends[t]);
                let j = sample_goal(t, &data.ends, &mix, self.cfg.gamma, rng);
                let mut row = self.state(&data.d, t);
                row.extend(self.state(&data.d, w));
                row.extend(self.goal_of(&self.state(&data.d, j)));
                row
            })
            .collect()
    }

    fn state(&self, d: &Dataset, i: usize) -> Vec<f32> {
        d.obs(i)[..self.state_dim].to_vec()
    }

    /// What a goal says of a state: the `goal_indices` entries, or the whole state.
    fn goal_of(&self, state: &[f32]) -> Vec<f32> {
        if self.cfg.goal_indices.is_empty() {
            state.to_vec()
        } else {
            self.cfg.goal_indices.iter().map(|&i| state[i]).collect()
        }
    }

    /// States, next states, actions of rows `idx` and states of rows `goals` as goals.
    fn batch(&self, idx: &[usize], goals: &[usize]) -> Result<GcBatch> {
        let data = self.data.as_ref().context("gc: dataset not loaded")?;
        let d = &data.d;
        let s: Vec<Vec<f32>> = idx.iter().map(|&i| self.state(d, i)).collect();
        let s2: Vec<Vec<f32>> = idx.iter().map(|&i| d.next_obs(i)[..self.state_dim].to_vec()).collect();
        let a: Vec<Vec<f32>> = idx.iter().map(|&i| d.action(i).to_vec()).collect();
        let gs: Vec<Vec<f32>> = goals.iter().map(|&j| self.state(d, j)).collect();
        let g: Vec<Vec<f32>> = gs.iter().map(|x| self.goal_of(x)).collect();
        let (r, m): (Vec<f32>, Vec<f32>) = idx
            .iter()
            .zip(goals)
            .enumerate()
            .map(|(k, (&t, &j))| {
                let reached = !self.cfg.goal_indices.is_empty() && self.goal_of(&s[k]) == g[k];
                reward_mask(t, if reached { t } else { j })
            })
            .unzip();
        let n = idx.len();
        Ok(GcBatch {
            s: rows(&s, &self.dev)?,
            s2: rows(&s2, &self.dev)?,
            a: rows(&a, &self.dev)?,
            g: rows(&g, &self.dev)?,
            gs: rows(&gs, &self.dev)?,
            r: Tensor::from_vec(r, n, &self.dev)?,
            m: Tensor::from_vec(m, n, &self.dev)?,
        })
    }

    /// (V1, V2) of a network at (s, g), each (B).
    fn v(net: &Mlp, s: &Tensor, g: &Tensor) -> Result<(Tensor, Tensor)> {
        let out = net.forward(&Tensor::cat(&[s, g], 1)?)?;
        Ok((out.narrow(1, 0, 1)?.squeeze(1)?, out.narrow(1, 1, 1)?.squeeze(1)?))
    }

    fn v_mean(&self, s: &Tensor, g: &Tensor) -> Result<Tensor> {
        let (a, b) = Self::v(&self.value, s, g)?;
        Ok(((a + b)? * 0.5)?.detach())
    }

    /// The actor's output at (s, g): the Gaussian mean tanh(·), or logits on discrete actions.
    fn mu(&self, net: &Mlp, s: &Tensor, g: &Tensor) -> Result<Tensor> {
        let out = net.forward(&Tensor::cat(&[s, g], 1)?)?;
        Ok(if self.n_actions.is_some() { out } else { out.tanh()? })
    }

    /// Weighted negative log-likelihood Σ w·nll / B of dataset actions `a`: ‖a − μ‖² for a
    /// constant-std Gaussian, −log softmax(logits)[a] on discrete actions.
    fn weighted_nll(&self, w: &Tensor, a: &Tensor, out: &Tensor) -> Result<Tensor> {
        let nll = if self.n_actions.is_some() {
            let idx = a.squeeze(1)?.to_dtype(candle_core::DType::U32)?;
            crate::dist::categorical_log_prob(out, &idx)?.neg()?
        } else {
            (a - out)?.sqr()?.sum(D::Minus1)?
        };
        Ok((w * nll)?.mean_all()?)
    }

    /// Weighted divergence Σ w·D / B of the actor from a fixed target policy: ‖μ − μ_target‖² (the
    /// KL of constant-std Gaussians up to scale), KL(π_target ‖ π) on discrete actions.
    fn weighted_divergence(&self, w: &Tensor, target: &Tensor, out: &Tensor) -> Result<Tensor> {
        let d = if self.n_actions.is_some() {
            let lt = crate::dist::log_softmax(target)?;
            (lt.exp()? * (&lt - crate::dist::log_softmax(out)?)?)?.sum(D::Minus1)?
        } else {
            (target - out)?.sqr()?.sum(D::Minus1)?
        };
        Ok((w * d)?.mean_all()?)
    }

    fn update(&mut self) -> Result<[f64; 4]> {
        let (n, b) = (self.data.as_ref().unwrap().d.len(), self.cfg.batch_size);
        let idx: Vec<usize> = (0..b).map(|_| self.rng.random_range(0..n)).collect();
        let ends = self.data.as_ref().unwrap().ends.clone();
        // value
        let vg: Vec<usize> =
            idx.iter().map(|&t| sample_goal(t, &ends, &self.cfg.value_goals, self.cfg.gamma, &mut self.rng)).collect();
        let vb = self.batch(&idx, &vg)?;
        let (n1, n2) = Self::v(&self.target, &vb.s2, &vb.g)?;
        let gm = (&vb.m * self.cfg.gamma)?;
        let q = (&vb.r + (n1.minimum(&n2)? * &gm)?)?;
        let (t1, t2) = Self::v(&self.target, &vb.s, &vb.g)?;
        let adv = (q - ((t1 + t2)? * 0.5)?)?.detach();
        let q1 = (&vb.r + (n1 * &gm)?)?.detach();
        let q2 = (&vb.r + (n2 * &gm)?)?.detach();
        let (v1, v2) = Self::v(&self.value, &vb.s, &vb.g)?;
        let tau = self.cfg.expectile;
        let v_loss = (expectile_loss_signed(&adv, &(q1 - v1)?, tau)?.mean_all()?
            + expectile_loss_signed(&adv, &(q2 - v2)?, tau)?.mean_all()?)?;
        self.value_opt.step(&v_loss.backward()?, self.cfg.lr, 0.0)?;
        // actor goals
        let ag: Vec<usize> =
            idx.iter().map(|&t| sample_goal(t, &ends, &self.cfg.actor_goals, self.cfg.gamma, &mut self.rng)).collect();
        let ab = self.batch(&idx, &ag)?;
        let w = match self.cfg.actor.as_str() {
            "bc" => Tensor::ones(b, candle_core::DType::F32, &self.dev)?,
            _ => awr_weight(&(self.v_mean(&ab.s2, &ab.g)? - self.v_mean(&ab.s, &ab.g)?)?, self.cfg.alpha, 100.0)?,
        };
        let mu = self.mu(&self.actor, &ab.s, &ab.g)?;
        let mut a_loss = self.weighted_nll(&w, &ab.a, &mu)?;
        let mut low_loss_v = 0.0;
        if self.cfg.actor == "saw" {
            // waypoints k steps ahead (clipped at the trajectory's end)
            let wp: Vec<usize> = idx.iter().map(|&t| (t + self.cfg.subgoal_steps).min(ends[t])).collect();
            let lb = self.batch(&idx, &wp)?;
            let w_low =
                awr_weight(&(self.v_mean(&lb.s2, &lb.g)? - self.v_mean(&lb.s, &lb.g)?)?, self.cfg.alpha_low, 100.0)?;
            let mu_low = self.mu(&self.low, &lb.s, &lb.g)?;
            let low_loss = self.weighted_nll(&w_low, &lb.a, &mu_low)?;
            self.low_opt.step(&low_loss.backward()?, self.cfg.lr, 0.0)?;
            low_loss_v = low_loss.to_scalar::<f32>()? as f64;
            // bootstrapping: the flat actor toward the (fixed) low actor's mode at the waypoint
            let w_kl =
                awr_weight(&(self.v_mean(&lb.gs, &ab.g)? - self.v_mean(&ab.s, &ab.g)?)?, self.cfg.alpha_kl, 100.0)?;
            let target_mode = self.mu(&self.low, &lb.s, &lb.g)?.detach();
            a_loss = (a_loss + self.weighted_divergence(&w_kl, &target_mode, &mu)?)?;
        }
        self.actor_opt.step(&a_loss.backward()?, self.cfg.lr, 0.0)?;
        self.target_params.ema_from(&self.value_params, self.cfg.tau)?;
        let mut diffusion_loss = 0.0;
        if self.diffusion.is_some() {
            let mut rng = std::mem::replace(&mut self.rng, Rng::seed_from_u64(0));
            let triples = self.triples(&idx, &mut rng);
            if let Some((m, opt)) = self.diffusion.as_mut() {
                let l = m.loss(&triples, &mut rng)?;
                opt.step(&l.backward()?, self.cfg.lr, 10.0)?;
                diffusion_loss = l.to_scalar::<f32>()? as f64;
            }
            self.rng = rng;
        }
        Ok([v_loss.to_scalar::<f32>()? as f64, a_loss.to_scalar::<f32>()? as f64, low_loss_v, diffusion_loss])
    }
}

impl Agent for Gcivl {
    fn name(&self) -> &'static str {
        "gcivl"
    }

    fn iterate(&mut self, _envs: &mut VecEnv, progress: Progress) -> Result<IterStats> {
        if self.data.is_none() {
            self.load_data()?;
        }
        let n = self.cfg.steps_per_iteration.min(progress.total_steps.saturating_sub(progress.global_step)).max(1);
        let mut sums = [0.0; 4];
        for _ in 0..n {
            let m = self.update()?;
            self.step += 1;
            for (s, v) in sums.iter_mut().zip(m) {
                *s += v;
            }
        }
        let k = n as f64;
        let mut metrics = vec![("value_loss".into(), sums[0] / k), ("actor_loss".into(), sums[1] / k)];
        if self.cfg.actor == "saw" {
            metrics.push(("low_actor_loss".into(), sums[2] / k));
        }
        if self.diffusion.is_some() {
            metrics.push(("diffusion_loss".into(), sums[3] / k));
        }
        Ok(IterStats { env_steps: n, metrics, episodes: Vec::new() })
    }

    fn reset_episode(&mut self) {
        self.episode = (0, 0, None);
    }

    fn act(&mut self, obs: &[Vec<f32>], deterministic: bool) -> Result<Vec<Action>> {
        let o = rows(obs, &self.dev)?;
        let s = o.narrow(1, 0, self.state_dim)?;
        let g = if self.cfg.subgoals.enabled {
            if obs.len() != 1 {
                bail!("subgoal selection acts on one episode at a time");
            }
            let sg = self.subgoal_for(&obs[0][..self.state_dim], &obs[0][self.state_dim..])?;
            Tensor::from_vec(sg, (1, self.cfg.goal_dim), &self.dev)?
        } else {
            o.narrow(1, self.state_dim, self.cfg.goal_dim)?
        };
        let mu = self.mu(&self.actor, &s, &g)?;
        if self.n_actions.is_some() {
            let picks = if deterministic {
                crate::dist::argmax_rows(&mu)?
            } else {
                crate::dist::categorical_sample(&mu, &mut self.rng)?
            };
            return Ok(picks.into_iter().map(Action::Discrete).collect());
        }
        Ok(mu.to_vec2::<f32>()?.into_iter().map(Action::Continuous).collect())
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.actor_params.save(&dir.join("model.safetensors"))?;
        let mut rest = self.value_params.tensors();
        rest.extend(self.target_params.tensors().into_iter().map(|(k, v)| (format!("target.{k}"), v)));
        rest.extend(self.low_params.tensors());
        if let Some((m, opt)) = &self.diffusion {
            rest.extend(Params(m.vars()).tensors());
            rest.insert("diffusion_stats.mean".into(), Tensor::new(m.mean.as_slice(), &Device::Cpu)?);
            rest.insert("diffusion_stats.std".into(), Tensor::new(m.std.as_slice(), &Device::Cpu)?);
            save_opt(opt, &dir.join("optimizer_diffusion.safetensors"))?;
        }
        candle_core::safetensors::save(&rest, dir.join("critic.safetensors"))?;
        save_opt(&self.value_opt, &dir.join("optimizer_value.safetensors"))?;
        save_opt(&self.actor_opt, &dir.join("optimizer_actor.safetensors"))?;
        save_opt(&self.low_opt, &dir.join("optimizer_low.safetensors"))?;
        save_state(dir, &self.rng, self.step)
    }

    fn load(&mut self, dir: &Path, with_state: bool) -> Result<()> {
        self.actor_params.load_file(&dir.join("model.safetensors"))?;
        // the value is part of the policy under HECRL's subgoal selection: always loaded
        let p = dir.join("critic.safetensors");
        let m = read_tensors(&p)?;
        self.value_params.load(&m, &p.display().to_string())?;
        if let Some((d, opt)) = &mut self.diffusion {
            if !m.contains_key("diffusion_stats.mean") {
                bail!("{}: trained without the diffusion subgoal generator (gc.subgoals.generator)", p.display());
            }
            Params(d.vars()).load(&m, &p.display().to_string())?;
            d.mean = m["diffusion_stats.mean"].to_vec1::<f32>()?;
            d.std = m["diffusion_stats.std"].to_vec1::<f32>()?;
            if with_state {
                load_opt(opt, &dir.join("optimizer_diffusion.safetensors"))?;
            }
        }
        if with_state {
            self.low_params.load(&m, &p.display().to_string())?;
            let t = strip_prefix(&m, "target.");
            self.target_params.load(&t, &p.display().to_string())?;
            load_opt(&mut self.value_opt, &dir.join("optimizer_value.safetensors"))?;
            load_opt(&mut self.actor_opt, &dir.join("optimizer_actor.safetensors"))?;
            load_opt(&mut self.low_opt, &dir.join("optimizer_low.safetensors"))?;
            self.step = load_state(dir, &mut self.rng)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projected_goals_are_reached_when_their_entries_match_and_discrete_actors_give_indices() {
        // push-1-gc: state (agent x, y, box x, y), goal (box x, y)
        let envs = VecEnv::make("push-1-gc", 1, 0).unwrap();
        let cfg =
            GcConfig { dataset: "unused.npz".into(), goal_dim: 2, goal_indices: vec![2, 3], ..Default::default() };
        let mut agent = Gcivl::new(cfg, &envs, 0, &Device::Cpu).unwrap();
        let mut d = Dataset::new(6, 1);
        let rows = [[1.0, 1.0, 2.0, 2.0], [1.0, 2.0, 2.0, 2.0], [2.0, 2.0, 3.0, 2.0]];
        for w in rows.windows(2) {
            let o = [w[0][0], w[0][1], w[0][2], w[0][3], 9.0, 9.0];
            let n = [w[1][0], w[1][1], w[1][2], w[1][3], 9.0, 9.0];
            d.push(&o, &[3.0], -1.0, &n, false, false);
        }
        let last = [2.0, 2.0, 3.0, 2.0, 9.0, 9.0];
        d.push(&last, &[0.0], -1.0, &last, false, true);
        let ends = trajectory_ends(&d);
        agent.data = Some(Data { d, ends });
        // goal row 1 has row 0's box cell (only the agent moved): reached at t = 0; row 2 is not
        let b = agent.batch(&[0, 0, 2], &[1, 2, 2]).unwrap();
        assert_eq!(b.r.to_vec1::<f32>().unwrap(), vec![0.0, -1.0, 0.0]);
        assert_eq!(b.m.to_vec1::<f32>().unwrap(), vec![0.0, 1.0, 0.0]);
        assert_eq!(b.g.to_vec2::<f32>().unwrap(), vec![vec![2.0, 2.0], vec![3.0, 2.0], vec![3.0, 2.0]]);
        assert_eq!(b.gs.dims(), &[3, 4]);
        // a categorical actor: an action index per observation; its loss is the weighted NLL
        let acts = agent.act(&[vec![1.0, 1.0, 2.0, 2.0, 3.0, 2.0]], true).unwrap();
        assert!(matches!(acts[0], Action::Discrete(i) if i < 4));
        let logits = Tensor::new(&[[0f32, 0.0, 0.0, 0.0]], &Device::Cpu).unwrap();
        let a = Tensor::new(&[[2f32]], &Device::Cpu).unwrap();
        let w = Tensor::new(&[2f32], &Device::Cpu).unwrap();
        let nll = agent.weighted_nll(&w, &a, &logits).unwrap().to_scalar::<f32>().unwrap();
        assert!((nll - 2.0 * 4f32.ln()).abs() < 1e-5, "{nll}");
        // KL(π_target ‖ π) is 0 for equal logits and positive otherwise
        let other = Tensor::new(&[[1f32, 0.0, 0.0, 0.0]], &Device::Cpu).unwrap();
        assert!(agent.weighted_divergence(&w, &logits, &logits).unwrap().to_scalar::<f32>().unwrap().abs() < 1e-6);
        assert!(agent.weighted_divergence(&w, &other, &logits).unwrap().to_scalar::<f32>().unwrap() > 0.0);
        // goal entries must exist in the state
        let bad = GcConfig { dataset: "x.npz".into(), goal_dim: 2, goal_indices: vec![2, 4], ..Default::default() };
        assert!(Gcivl::new(bad, &envs, 0, &Device::Cpu).is_err());
        // the factored generator needs the goal to split into whole entities
        let mut odd = GcConfig { dataset: "x.npz".into(), goal_dim: 2, goal_indices: vec![2, 3], ..Default::default() };
        odd.subgoals.generator = "factored".into();
        odd.subgoals.entity_dims = 3;
        let e = Gcivl::new(odd, &envs, 0, &Device::Cpu).err().unwrap();
        assert!(e.to_string().contains("entities"), "{e}");
    }
}
