//! Zero-shot RL from reward-free data: a model trained once on transitions without rewards is
//! told a task only at test time — a reward function (task vector z by least squares on a few
//! labelled states) or a goal state (z from the goal's task features) — and acts greedily with
//! Q(s, a, z), without fine-tuning. Two models share the agent:
//!
//! - [`td_jepa`] — TD-JEPA, latent-predictive successor features (2025);
//! - [`fb`] — forward-backward representations ("Learning One Representation to Optimize All
//!   Rewards", Touati & Ollivier, 2021), the baseline TD-JEPA compares with.
//!
//! Both use discrete actions here (one predictor head per action, a' = argmax_a Q̃(s', a, z) in the
//! TD targets instead of a learned actor). Environments whose observation is [state, goal state] in
//! one encoding (the grid and point mazes) work directly: the agent learns on the state half and
//! reaches the goal half with z = task_features(goal). [`tasks`] evaluates a trained model exactly
//! on the grid mazes (goals and rooms, optimal returns by value iteration).

pub mod fb;
pub mod morl_fb;
pub mod tasks;
pub mod td_jepa;

use crate::algo::{load_opt, load_state, save_opt, save_state, Agent, IterStats, Progress};
use crate::dist::argmax_rows;
use crate::env::{Action, Space, VecEnv};
use crate::nn::{rows, Params};
use anyhow::{bail, Result};
use candle_core::{Device, Tensor, Var};
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_core::seed::Rng;
use rand::{Rng as _, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `[zeroshot]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZeroShotConfig {
    /// Reward-free transitions collected with uniform random actions before training.
    pub collect_steps: usize,
    /// Latent sizes (φ and ψ for TD-JEPA; F and B for FB; z has the task-feature size).
    pub latent_dim: usize,
    pub hidden: usize,
    pub lr: f64,
    pub batch_size: usize,
    pub gamma: f64,
    /// EMA τ of the target networks.
    pub tau: f64,
    /// Weight of the orthonormality regulariser(s).
    pub ortho_coef: f64,
    /// Share of z drawn from task features of dataset states (the rest Gaussian).
    pub train_goal_ratio: f64,
    /// Gradient steps per trainer iteration.
    pub steps_per_iteration: u64,
    /// Ridge λ of the least-squares task inference.
    pub ridge: f64,
}

impl Default for ZeroShotConfig {
    fn default() -> Self {
        Self {
            collect_steps: 50_000,
            latent_dim: 32,
            hidden: 256,
            lr: 3e-4,
            batch_size: 256,
            gamma: 0.98,
            tau: 0.01,
            ortho_coef: 1.0,
            train_goal_ratio: 0.5,
            steps_per_iteration: 500,
            ridge: 1e-3,
        }
    }
}

impl ZeroShotConfig {
    pub fn validate(&self) -> Result<()> {
        if self.collect_steps < 2 || self.latent_dim == 0 || self.hidden == 0 || self.batch_size < 2 {
            bail!("zeroshot: collect_steps, latent_dim, hidden must be positive and batch_size at least 2");
        }
        if !(0.0..1.0).contains(&self.gamma) || !(0.0..=1.0).contains(&self.tau) {
            bail!("zeroshot: gamma must be in [0, 1) and tau in [0, 1]");
        }
        if !(0.0..=1.0).contains(&self.train_goal_ratio) || self.steps_per_iteration == 0 {
            bail!("zeroshot: train_goal_ratio must be in [0, 1] and steps_per_iteration positive");
        }
        Ok(())
    }
}

/// Reward-free transitions (s, a, s') as states, actions and next states.
type Transitions = (Vec<Vec<f32>>, Vec<usize>, Vec<Vec<f32>>);

/// One batch of reward-free transitions.
pub struct Batch {
    pub s: Tensor,
    pub a: Vec<usize>,
    pub s2: Tensor,
}

/// What the zero-shot agent needs of a model.
pub trait ZsModel {
    /// Online parameters (optimised).
    fn vars(&self) -> Vec<(String, Var)>;
    /// Target parameters (EMA copies, same order and names as `vars`).
    fn target_vars(&self) -> Vec<(String, Var)>;
    /// The training loss on a batch with task vectors z (B × z_dim), and scalars to log.
    fn loss(&self, b: &Batch, z: &Tensor, gamma: f64, ortho: f64) -> Result<(Tensor, Vec<(String, f64)>)>;
    /// Q(s, ·, z) for every action (B × A).
    fn q(&self, s: &Tensor, z: &Tensor) -> Result<Tensor>;
    /// Task features of states (B × z_dim): ψ for TD-JEPA, B for FB.
    fn task_features(&self, s: &Tensor) -> Result<Tensor>;
    fn z_dim(&self) -> usize;
}

/// Least-squares task inference: z = argmin ‖Φ z − r‖² + λ‖z‖² from task features Φ (n × d) of
/// labelled states and their rewards, projected to the sphere of radius √d.
pub fn infer_task(features: &[Vec<f32>], rewards: &[f64], ridge: f64) -> Result<Vec<f32>> {
    let z = ridge_solve(features, rewards, ridge)?;
    let zf: Vec<f32> = z.iter().map(|&v| v as f32).collect();
    Ok(td_jepa::project_sphere(&[zf]).remove(0))
}

/// argmin_z ‖Φ z − r‖² + λ‖z‖² (not projected).
pub fn ridge_solve(features: &[Vec<f32>], rewards: &[f64], ridge: f64) -> Result<Vec<f64>> {
    if features.is_empty() || features.len() != rewards.len() {
        bail!("task inference: need as many rewards as labelled states");
    }
    let d = features[0].len();
    let mut a = vec![0f64; d * d];
    let mut b = vec![0f64; d];
    for (f, &r) in features.iter().zip(rewards) {
        for i in 0..d {
            for j in 0..d {
                a[i * d + j] += f[i] as f64 * f[j] as f64;
            }
            b[i] += f[i] as f64 * r;
        }
    }
    for i in 0..d {
        a[i * d + i] += ridge;
    }
    solve(&mut a, &mut b, d)
}

/// Solve A x = b (A d × d, row-major) by Gaussian elimination with partial pivoting.
fn solve(a: &mut [f64], b: &mut [f64], d: usize) -> Result<Vec<f64>> {
    for c in 0..d {
        let piv = (c..d).max_by(|&x, &y| a[x * d + c].abs().total_cmp(&a[y * d + c].abs())).unwrap();
        if a[piv * d + c].abs() < 1e-12 {
            bail!("task inference: singular system (raise zeroshot.ridge)");
        }
        for k in 0..d {
            a.swap(c * d + k, piv * d + k);
        }
        b.swap(c, piv);
        for r in c + 1..d {
            let f = a[r * d + c] / a[c * d + c];
            for k in c..d {
                a[r * d + k] -= f * a[c * d + k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0f64; d];
    for r in (0..d).rev() {
        let s: f64 = (r + 1..d).map(|k| a[r * d + k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r * d + r];
    }
    Ok(x)
}

/// The zero-shot agent: collects reward-free transitions, trains its model offline, and acts
/// toward the goal half of each observation.
pub struct ZeroShot {
    pub cfg: ZeroShotConfig,
    pub model: Box<dyn ZsModel>,
    online: Params,
    target: Params,
    opt: AdamW,
    rng: Rng,
    dev: Device,
    step: u64,
    state_dim: usize,
    data: Option<Transitions>,
    name: &'static str,
    seed: u64,
}

impl ZeroShot {
    pub fn new(method: &str, cfg: ZeroShotConfig, envs: &VecEnv, seed: u64, dev: &Device) -> Result<Self> {
        cfg.validate()?;
        let n_actions = match envs.action_space() {
            Space::Discrete(n) => n,
            Space::Box { .. } => bail!("{method}: needs a discrete action space (a grid maze)"),
        };
        let obs_dim = envs.observation_space().dim();
        if !obs_dim.is_multiple_of(2) {
            bail!("{method}: observations must be [state, goal state] of equal halves (got {obs_dim} values)");
        }
        let state_dim = obs_dim / 2;
        let mut init = oxrl_core::seed::rng(seed, "zeroshot-init", 0);
        let (model, name): (Box<dyn ZsModel>, &'static str) = match method {
            "td-jepa" => (Box::new(td_jepa::TdJepa::new(state_dim, n_actions, &cfg, &mut init, dev)?), "td-jepa"),
            "fb" => (Box::new(fb::Fb::new(state_dim, n_actions, &cfg, &mut init, dev)?), "fb"),
            other => bail!("unknown zero-shot method {other:?} (td-jepa or fb)"),
        };
        let online = Params(model.vars());
        let target = Params(model.target_vars());
        target.copy_from(&online)?;
        Ok(Self {
            opt: AdamW::new(online.vars(), AdamWConfig::default())?,
            online,
            target,
            model,
            rng: Rng::seed_from_u64(oxrl_core::seed::derive(seed, "zeroshot", 0)),
            dev: dev.clone(),
            step: 0,
            state_dim,
            data: None,
            cfg,
            name,
            seed,
        })
    }

    /// Reward-free transitions with uniform random actions from the first environment (its state
    /// is restored afterwards); episode ends only restart the walk (no terminal masks).
    fn collect(&mut self, envs: &mut VecEnv, seed_rng: &mut Rng) -> Result<()> {
        let env = envs.envs[0].as_mut();
        let saved = env.save();
        let n_actions = env.action_space().size();
        let (mut s, mut a, mut s2) = (Vec::new(), Vec::new(), Vec::new());
        let mut obs = env.reset();
        while s.len() < self.cfg.collect_steps {
            let act = seed_rng.random_range(0..n_actions);
            let st = env.step(&Action::Discrete(act))?;
            s.push(obs[..self.state_dim].to_vec());
            a.push(act);
            s2.push(st.obs[..self.state_dim].to_vec());
            obs = if st.terminated || st.truncated { env.reset() } else { st.obs };
        }
        env.restore(&saved)?;
        self.data = Some((s, a, s2));
        Ok(())
    }

    fn sample_z(&mut self, s2: &Tensor) -> Result<Tensor> {
        let b = s2.dim(0)?;
        let d = self.model.z_dim();
        let feats = self.model.task_features(s2)?.detach().to_vec2::<f32>()?;
        let mut z = Vec::with_capacity(b);
        for _ in 0..b {
            if self.rng.random::<f64>() < self.cfg.train_goal_ratio {
                // task features of a random batch state
                z.push(feats[self.rng.random_range(0..b)].clone());
            } else {
                z.push((0..d).map(|_| StandardNormal.sample(&mut self.rng)).collect::<Vec<f32>>());
            }
        }
        rows(&td_jepa::project_sphere(&z), &self.dev)
    }

    fn update(&mut self) -> Result<Vec<(String, f64)>> {
        let (s, a, s2) = self.data.as_ref().expect("data collected");
        let n = s.len();
        let idx: Vec<usize> = (0..self.cfg.batch_size).map(|_| self.rng.random_range(0..n)).collect();
        let bs: Vec<Vec<f32>> = idx.iter().map(|&i| s[i].clone()).collect();
        let bs2: Vec<Vec<f32>> = idx.iter().map(|&i| s2[i].clone()).collect();
        let batch =
            Batch { s: rows(&bs, &self.dev)?, a: idx.iter().map(|&i| a[i]).collect(), s2: rows(&bs2, &self.dev)? };
        let z = self.sample_z(&batch.s2)?;
        let (loss, metrics) = self.model.loss(&batch, &z, self.cfg.gamma, self.cfg.ortho_coef)?;
        let grads = loss.backward()?;
        self.opt.step(&grads, self.cfg.lr, 0.0)?;
        self.target.ema_from(&self.online, self.cfg.tau)?;
        Ok(metrics)
    }

    /// Greedy actions for states under task vectors (one z per row).
    pub fn greedy(&self, states: &[Vec<f32>], z: &[Vec<f32>]) -> Result<Vec<usize>> {
        argmax_rows(&self.model.q(&rows(states, &self.dev)?, &rows(z, &self.dev)?)?)
    }

    /// The task vector of a goal state: its projected task features.
    pub fn goal_z(&self, goals: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        let f = self.model.task_features(&rows(goals, &self.dev)?)?.to_vec2::<f32>()?;
        Ok(td_jepa::project_sphere(&f))
    }

    /// The task vector of a reward function known on labelled states.
    pub fn reward_z(&self, states: &[Vec<f32>], rewards: &[f64]) -> Result<Vec<f32>> {
        let f = self.model.task_features(&rows(states, &self.dev)?)?.to_vec2::<f32>()?;
        infer_task(&f, rewards, self.cfg.ridge)
    }
}

impl Agent for ZeroShot {
    fn name(&self) -> &'static str {
        self.name
    }

    fn iterate(&mut self, envs: &mut VecEnv, progress: Progress) -> Result<IterStats> {
        if self.data.is_none() {
            let mut r = oxrl_core::seed::rng(self.seed, "zeroshot-data", 0);
            self.collect(envs, &mut r)?;
        }
        let n = self.cfg.steps_per_iteration.min(progress.total_steps.saturating_sub(progress.global_step)).max(1);
        let mut sums = crate::algo::MetricSum::default();
        for _ in 0..n {
            let m = self.update()?;
            self.step += 1;
            sums.add(&m);
        }
        Ok(IterStats { env_steps: n, metrics: sums.mean(), episodes: Vec::new() })
    }

    /// On a grid maze: the exact zero-shot scores of [`tasks::evaluate`] (`zs_<task>`, their mean
    /// `zs_mean` and the random policy's `zs_random_mean`).
    fn final_report(&mut self, env_name: &str) -> Result<Vec<(String, f64)>> {
        let key = env_name.to_ascii_lowercase();
        let Some(maze) = key.strip_prefix("gridmaze-") else { return Ok(Vec::new()) };
        let maze = crate::env::grid_maze::GridMaze::new(maze, 0)?;
        let scores = tasks::evaluate(self, &maze, self.cfg.gamma)?;
        let n = scores.len() as f64;
        let mut out: Vec<(String, f64)> = scores.iter().map(|t| (format!("zs_{}", t.name), t.score)).collect();
        out.push(("zs_mean".into(), scores.iter().map(|t| t.score).sum::<f64>() / n));
        out.push(("zs_random_mean".into(), scores.iter().map(|t| t.random).sum::<f64>() / n));
        Ok(out)
    }

    fn act(&mut self, obs: &[Vec<f32>], _deterministic: bool) -> Result<Vec<Action>> {
        let states: Vec<Vec<f32>> = obs.iter().map(|o| o[..self.state_dim].to_vec()).collect();
        let goals: Vec<Vec<f32>> = obs.iter().map(|o| o[self.state_dim..].to_vec()).collect();
        let z = self.goal_z(&goals)?;
        Ok(self.greedy(&states, &z)?.into_iter().map(Action::Discrete).collect())
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.online.save(&dir.join("model.safetensors"))?;
        self.target.save(&dir.join("target.safetensors"))?;
        save_opt(&self.opt, &dir.join("optimizer.safetensors"))?;
        save_state(dir, &self.rng, self.step)
    }

    fn load(&mut self, dir: &Path, with_state: bool) -> Result<()> {
        self.online.load_file(&dir.join("model.safetensors"))?;
        if with_state {
            self.target.load_file(&dir.join("target.safetensors"))?;
            load_opt(&mut self.opt, &dir.join("optimizer.safetensors"))?;
            self.step = load_state(dir, &mut self.rng)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_squares_task_inference_recovers_a_linear_reward_direction() {
        // rewards exactly linear in the features: z ∝ the true weights
        let w = [0.5f32, -1.0, 2.0];
        let mut rng = Rng::seed_from_u64(0);
        let feats: Vec<Vec<f32>> =
            (0..200).map(|_| (0..3).map(|_| StandardNormal.sample(&mut rng)).collect()).collect();
        let r: Vec<f64> = feats.iter().map(|f| f.iter().zip(&w).map(|(a, b)| (a * b) as f64).sum()).collect();
        let z = infer_task(&feats, &r, 1e-9).unwrap();
        let nw = w.iter().map(|x| x * x).sum::<f32>().sqrt();
        let nz = z.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((nz - 3f32.sqrt()).abs() < 1e-4, "projected to radius √d");
        for i in 0..3 {
            assert!((z[i] / nz - w[i] / nw).abs() < 1e-4, "{z:?}");
        }
        assert!(infer_task(&feats, &r[..10], 1e-3).is_err());
    }
}
