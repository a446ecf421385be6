//! RC-aux — "Predictive but Not Plannable: Reachability-Correction auxiliary for latent world
//! models" (2026), as in the authors' code (Guang000/RC-aux), on the point mazes:
//!
//! - A reconstruction-free latent world model: encoder E(s) and residual predictor
//!   e_{k+1} = e_k + P(e_k, a_k) over "blocks" of `block` environment steps (the action of a block
//!   is the mean of its steps' actions; the planner repeats it). Multi-horizon open-loop loss
//!   L_pred = Σ_h w_h‖ê_h − e_h‖² with linear weights, H ~ U[1, h_max(t)] and h_max ramping from 1
//!   over the first `curriculum` share of training; SIGReg-style anti-collapse (projections on
//!   random directions matched to N(0, 1) through the empirical characteristic function).
//! - The reachability head R(src, goal, b) on [src, goal, |src − goal|, src ⊙ goal, one-hot b] →
//!   LayerNorm → MLP → logit, trained by BCE on the pairs below from the window's first embedding:
//!   L = ½(L_pos + (L_rand + w_hard·L_hard)/(1 + w_hard)), and again with predicted embeddings as
//!   goals (weight `pred_weight`). Total = L_pred + λ_sig·SIGReg + w_reach·(L_reach + pred_weight·L_reach_pred).
//! - The planner: CEM over `plan_horizon` block actions; cost base·max(0.05, 1 − w_plan·p*) with
//!   base = ‖ê_last − E(goal)‖² and p* = max_k σ(R(ê_k, E(goal), b_k)), b_k the episode's blocks
//!   left after step k clamped to [1, D]; receding horizon of one block. `reach_weight = 0, plan_weight = 0` is the same model and planner without RC-aux.
//!
//! The pieces with their oracles: the pair generator (positives δ ≤ b, temporal hard negatives
//! b < δ, random negatives by a fixed-point-free permutation), the rollout weights, the planner cost.

use crate::algo::{load_opt, load_state, save_opt, save_state, Agent, IterStats, Progress};
use crate::dataset::Dataset;
use crate::dist::sigmoid;
use crate::env::{Action, Space, VecEnv};
use crate::nn::{layer_norm, rows, Activation, Init, Mlp, Params};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, D};
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_core::seed::Rng;
use rand::{Rng as _, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A (goal offset δ, budget b) pair.
pub type Pair = (usize, usize);

/// (positives, hard negatives) as (δ, budget) pairs for horizon `d`.
pub fn reachability_pairs(d: usize) -> (Vec<Pair>, Vec<Pair>) {
    let (mut pos, mut neg) = (Vec::new(), Vec::new());
    for delta in 1..=d {
        for b in 1..=d {
            if delta <= b {
                pos.push((delta, b));
            } else {
                neg.push((delta, b));
            }
        }
    }
    (pos, neg)
}

/// A random permutation of 0..n with no fixed point (Sattolo's algorithm draws a uniform n-cycle);
/// None for n < 2, when random negatives are skipped.
pub fn derangement(n: usize, rng: &mut Rng) -> Option<Vec<usize>> {
    if n < 2 {
        return None;
    }
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..i);
        p.swap(i, j);
    }
    Some(p)
}

/// Linear rollout weights w_h = h / Σh for h = 1..=H.
pub fn rollout_weights(h: usize) -> Vec<f64> {
    let total = (h * (h + 1) / 2) as f64;
    (1..=h).map(|i| i as f64 / total).collect()
}

/// The reachability-aware planner cost.
pub fn planner_cost(base: f64, p_star: f64, w_plan: f64) -> f64 {
    base * (1.0 - w_plan * p_star).max(0.05)
}

/// `[rcaux]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RcAuxConfig {
    /// The offline dataset (.npz with observations [state, goal]), e.g. navigator data.
    pub dataset: String,
    /// Environment steps per model step.
    pub block: usize,
    pub latent_dim: usize,
    pub hidden: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    /// Largest open-loop horizon of the prediction loss.
    pub h_max: usize,
    /// Share of training over which h_max ramps up from 1.
    pub curriculum: f64,
    pub sig_weight: f64,
    pub sig_directions: usize,
    /// D: the largest goal offset and budget of the reachability pairs.
    pub reach_horizon: usize,
    /// w_reach (0 = no reachability head: the plain latent world model).
    pub reach_weight: f64,
    pub pred_weight: f64,
    pub hard_weight: f64,
    pub plan_horizon: usize,
    pub plan_samples: usize,
    pub plan_iterations: usize,
    pub plan_elites: usize,
    /// w_plan (0 = Euclidean latent cost only).
    pub plan_weight: f64,
    pub steps_per_iteration: u64,
}

impl Default for RcAuxConfig {
    fn default() -> Self {
        Self {
            dataset: String::new(),
            block: 5,
            latent_dim: 16,
            hidden: 128,
            lr: 3e-4,
            weight_decay: 1e-3,
            batch_size: 128,
            h_max: 4,
            curriculum: 0.3,
            sig_weight: 0.09,
            sig_directions: 16,
            reach_horizon: 6,
            reach_weight: 0.35,
            pred_weight: 0.5,
            hard_weight: 1.0,
            plan_horizon: 6,
            plan_samples: 200,
            plan_iterations: 10,
            plan_elites: 20,
            plan_weight: 0.35,
            steps_per_iteration: 250,
        }
    }
}

impl RcAuxConfig {
    pub fn validate(&self) -> Result<()> {
        if self.dataset.is_empty() {
            bail!("rcaux.dataset: the offline dataset (.npz) is required (`oxrl control collect --policy navigator`)");
        }
        if self.block == 0 || self.latent_dim == 0 || self.hidden == 0 || self.batch_size < 2 || self.h_max == 0 {
            bail!("rcaux: block, latent_dim, hidden, h_max must be positive and batch_size at least 2");
        }
        if self.reach_horizon == 0
            || self.plan_horizon == 0
            || self.plan_elites == 0
            || self.plan_elites > self.plan_samples
        {
            bail!("rcaux: reach_horizon and plan_horizon must be positive, 0 < plan_elites ≤ plan_samples");
        }
        if self.steps_per_iteration == 0 || self.sig_directions == 0 {
            bail!("rcaux: steps_per_iteration and sig_directions must be positive");
        }
        Ok(())
    }
}

/// SIGReg-style statistic of a (B × d) batch: for each of `dirs` random unit directions u, the
/// squared distance between the empirical characteristic function of E·u and N(0, 1)'s, e^{−t²/2},
/// weighted by e^{−t²/2} on t ∈ {0.25, 0.5, …, 3}; averaged over directions. 0 iff every projection
/// has the standard normal's characteristic function on the grid.
pub fn sigreg(e: &Tensor, dirs: &Tensor) -> Result<Tensor> {
    let p = e.matmul(dirs)?; // B × M
    let mut total: Option<Tensor> = None;
    for k in 1..=12 {
        let t = 0.25 * k as f64;
        let target = (-0.5 * t * t).exp();
        let tp = (&p * t)?;
        let re = (tp.cos()?.mean(0)? - target)?.sqr()?;
        let im = tp.sin()?.mean(0)?.sqr()?;
        let term = ((re + im)? * target)?;
        total = Some(match total {
            Some(acc) => (acc + term)?,
            None => term,
        });
    }
    Ok(total.expect("twelve grid points").mean_all()?)
}

/// Binary cross-entropy with logits, mean over the batch (0 for an empty batch).
fn bce(logits: &Tensor, label: f64) -> Result<Tensor> {
    // softplus(−x) for label 1, softplus(x) for label 0
    let x = if label > 0.5 { logits.neg()? } else { logits.clone() };
    Ok(crate::repr::softplus(&x)?.mean_all()?)
}

struct Windows {
    /// Block states (episode-contiguous), block actions, and the starts of full windows.
    states: Vec<Vec<f32>>,
    actions: Vec<Vec<f32>>,
    starts: Vec<usize>,
}

/// The RC-aux world model, reachability head and planner as an offline agent.
pub struct RcAux {
    pub cfg: RcAuxConfig,
    enc: Mlp,
    pred: Mlp,
    head: Mlp,
    params: Params,
    opt: AdamW,
    rng: Rng,
    dev: Device,
    step: u64,
    state_dim: usize,
    act_dim: usize,
    data: Option<Windows>,
    /// Remaining repeats of the planned block action.
    queue: Vec<Vec<f32>>,
    /// The evaluation episode's length limit and the steps taken in it (the planner's budget).
    max_steps: usize,
    elapsed: usize,
}

impl RcAux {
    pub fn new(cfg: RcAuxConfig, envs: &VecEnv, seed: u64, dev: &Device) -> Result<Self> {
        cfg.validate()?;
        let act_dim = match envs.action_space() {
            Space::Box { low, .. } => low.len(),
            Space::Discrete(_) => bail!("rc-aux: needs a continuous action space (a point maze)"),
        };
        let obs = envs.observation_space().dim();
        if !obs.is_multiple_of(2) {
            bail!("rc-aux: observations must be [state, goal] of equal halves");
        }
        let state_dim = obs / 2;
        let (d, h, dd) = (cfg.latent_dim, cfg.hidden, cfg.reach_horizon);
        let mut init = oxrl_core::seed::rng(seed, "rcaux-init", 0);
        let enc = Mlp::new(&[state_dim, h, h, d], Activation::Relu, Init::Uniform, &mut init, dev)?;
        let pred = Mlp::new(&[d + act_dim, h, h, d], Activation::Relu, Init::Uniform, &mut init, dev)?;
        let head = Mlp::new(&[4 * d + dd + 1, h, h, 1], Activation::Relu, Init::Uniform, &mut init, dev)?;
        let mut v = enc.vars("encoder");
        v.extend(pred.vars("predictor"));
        v.extend(head.vars("reach_head"));
        let params = Params(v);
        Ok(Self {
            opt: AdamW::new(params.vars(), AdamWConfig { weight_decay: cfg.weight_decay, ..Default::default() })?,
            params,
            enc,
            pred,
            head,
            rng: Rng::seed_from_u64(oxrl_core::seed::derive(seed, "rcaux", 0)),
            dev: dev.clone(),
            step: 0,
            state_dim,
            act_dim,
            data: None,
            queue: Vec::new(),
            max_steps: envs.envs[0].max_steps(),
            elapsed: 0,
            cfg,
        })
    }

    fn load_data(&mut self) -> Result<()> {
        let d = Dataset::load(Path::new(&self.cfg.dataset)).context("rcaux.dataset")?;
        if d.obs_dim != 2 * self.state_dim || d.act_dim != self.act_dim {
            bail!(
                "rcaux.dataset: {} has observations of {} and actions of {}, expected {} and {}",
                self.cfg.dataset,
                d.obs_dim,
                d.act_dim,
                2 * self.state_dim,
                self.act_dim
            );
        }
        let b = self.cfg.block;
        let w = self.cfg.h_max.max(self.cfg.reach_horizon);
        let (mut states, mut actions, mut starts) = (Vec::new(), Vec::new(), Vec::new());
        let ends: Vec<usize> = d.episode_starts().into_iter().skip(1).chain(std::iter::once(d.len())).collect();
        let mut start = 0;
        for end in ends {
            // blocks of this episode: states at t0, t0 + b, …; the mean action of each block
            let first = states.len();
            let mut t = start;
            while t + b <= end {
                states.push(d.obs(t)[..self.state_dim].to_vec());
                let mut a = vec![0f32; self.act_dim];
                for k in t..t + b {
                    for (x, y) in a.iter_mut().zip(d.action(k)) {
                        *x += y / b as f32;
                    }
                }
                actions.push(a);
                t += b;
            }
            // the state after the last block closes the sequence (no action follows it)
            if states.len() > first {
                states.push(d.next_obs(t - 1)[..self.state_dim].to_vec());
                actions.push(vec![0f32; self.act_dim]);
                let n = states.len() - first; // block states of this episode
                for k in 0..n.saturating_sub(w) {
                    starts.push(first + k);
                }
            }
            start = end;
        }
        if starts.is_empty() {
            bail!("rcaux.dataset: no episode is long enough for windows of {w} blocks of {b} steps");
        }
        self.data = Some(Windows { states, actions, starts });
        Ok(())
    }

    fn embed(&self, s: &Tensor) -> Result<Tensor> {
        self.enc.forward(s)
    }
    fn predict(&self, e: &Tensor, a: &Tensor) -> Result<Tensor> {
        Ok((e + self.pred.forward(&Tensor::cat(&[e, a], 1)?)?)?)
    }
    /// Reachability logits of (src, goal, budget) rows.
    fn reach(&self, src: &Tensor, goal: &Tensor, budgets: &[usize]) -> Result<Tensor> {
        let dd = self.cfg.reach_horizon;
        let onehot =
            crate::repr::one_hot(&budgets.iter().map(|&b| b.min(dd)).collect::<Vec<_>>(), dd + 1, src.device())?;
        let x = Tensor::cat(&[src, goal, &(src - goal)?.abs()?, &(src * goal)?, &onehot], 1)?;
        Ok(self.head.forward(&layer_norm(&x)?)?.squeeze(1)?)
    }

    /// The reachability loss from `src` (B × d) to goals[δ − 1] (B × d each, δ = 1..=D), and its
    /// (positive, random-negative, hard-negative) BCE terms.
    fn reach_loss(&mut self, src: &Tensor, goals: &[Tensor]) -> Result<(Tensor, [f64; 3])> {
        let dd = self.cfg.reach_horizon;
        let (pos, hard) = reachability_pairs(dd);
        let b = src.dim(0)?;
        let rows_for = |pairs: &[Pair], perm: Option<&[usize]>| -> Result<(Tensor, Tensor, Vec<usize>)> {
            let mut s = Vec::new();
            let mut g = Vec::new();
            let mut budgets = Vec::new();
            for &(delta, bud) in pairs {
                s.push(src.clone());
                let goal = &goals[delta - 1];
                g.push(match perm {
                    Some(p) => goal.index_select(
                        &Tensor::from_vec(p.iter().map(|&i| i as u32).collect::<Vec<_>>(), b, src.device())?,
                        0,
                    )?,
                    None => goal.clone(),
                });
                budgets.extend(std::iter::repeat_n(bud, b));
            }
            Ok((Tensor::cat(&s, 0)?, Tensor::cat(&g, 0)?, budgets))
        };
        let (ps, pg, pb) = rows_for(&pos, None)?;
        let l_pos = bce(&self.reach(&ps, &pg, &pb)?, 1.0)?;
        let (hs, hg, hb) = rows_for(&hard, None)?;
        let l_hard = if hard.is_empty() {
            Tensor::zeros((), DType::F32, src.device())?
        } else {
            bce(&self.reach(&hs, &hg, &hb)?, 0.0)?
        };
        let l_rand = match derangement(b, &mut self.rng) {
            Some(p) => {
                let (rs, rg, rb) = rows_for(&pos, Some(&p))?;
                bce(&self.reach(&rs, &rg, &rb)?, 0.0)?
            }
            None => Tensor::zeros((), DType::F32, src.device())?,
        };
        let w = self.cfg.hard_weight;
        let parts = [&l_pos, &l_rand, &l_hard].map(|t| t.to_scalar::<f32>().map_or(f64::NAN, |v| v as f64));
        Ok((((l_pos + ((l_rand + (l_hard * w)?)? / (1.0 + w))?)? * 0.5)?, parts))
    }

    fn update(&mut self, progress: Progress) -> Result<Vec<(String, f64)>> {
        let data = self.data.as_ref().context("rc-aux: dataset not loaded")?;
        let w = self.cfg.h_max.max(self.cfg.reach_horizon);
        let bsz = self.cfg.batch_size;
        let starts: Vec<usize> = (0..bsz).map(|_| data.starts[self.rng.random_range(0..data.starts.len())]).collect();
        let emb: Vec<Tensor> = (0..=w)
            .map(|k| {
                self.embed(&rows(&starts.iter().map(|&i| data.states[i + k].clone()).collect::<Vec<_>>(), &self.dev)?)
            })
            .collect::<Result<_>>()?;
        let acts: Vec<Tensor> = (0..w)
            .map(|k| rows(&starts.iter().map(|&i| data.actions[i + k].clone()).collect::<Vec<_>>(), &self.dev))
            .collect::<Result<_>>()?;
        // curriculum on the open-loop horizon
        let frac = (self.step as f64 / (self.cfg.curriculum * progress.total_steps as f64).max(1.0)).min(1.0);
        let h_cur = 1 + ((self.cfg.h_max - 1) as f64 * frac).round() as usize;
        let h = self.rng.random_range(1..=h_cur);
        let mut preds = Vec::with_capacity(w);
        let mut e = emb[0].clone();
        for a in acts.iter().take(w) {
            e = self.predict(&e, a)?;
            preds.push(e.clone());
        }
        let weights = rollout_weights(h);
        let mut l_pred = Tensor::zeros((), DType::F32, &self.dev)?;
        for k in 0..h {
            let l = (&preds[k] - &emb[k + 1])?.sqr()?.sum(D::Minus1)?.mean_all()?;
            l_pred = (l_pred + (l * weights[k])?)?;
        }
        let dirs: Vec<f32> =
            (0..self.cfg.latent_dim * self.cfg.sig_directions).map(|_| StandardNormal.sample(&mut self.rng)).collect();
        let dirs = Tensor::from_vec(dirs, (self.cfg.latent_dim, self.cfg.sig_directions), &self.dev)?;
        let dirs = dirs.broadcast_div(&dirs.sqr()?.sum_keepdim(0)?.sqrt()?)?;
        let l_sig = sigreg(&emb[0], &dirs)?;
        let mut loss = (&l_pred + (&l_sig * self.cfg.sig_weight)?)?;
        let mut metrics = vec![
            ("pred_loss".to_string(), l_pred.to_scalar::<f32>()? as f64),
            ("sigreg".to_string(), l_sig.to_scalar::<f32>()? as f64),
        ];
        if self.cfg.reach_weight > 0.0 {
            let dd = self.cfg.reach_horizon;
            let (l_true, parts) = self.reach_loss(&emb[0], &emb[1..=dd])?;
            let (l_predicted, _) = self.reach_loss(&emb[0], &preds[..dd])?;
            metrics.push(("reach_loss".into(), l_true.to_scalar::<f32>()? as f64));
            for (k, v) in ["reach_pos_bce", "reach_random_bce", "reach_hard_bce"].iter().zip(parts) {
                metrics.push((k.to_string(), v));
            }
            loss = (loss + ((l_true + (l_predicted * self.cfg.pred_weight)?)? * self.cfg.reach_weight)?)?;
        }
        let grads = loss.backward()?;
        self.opt.step(&grads, self.cfg.lr, 1.0)?;
        Ok(metrics)
    }

    /// Plan `plan_horizon` block actions from `state` to `goal` by CEM with `budget` blocks left in
    /// the episode; returns the first. The head is asked whether the goal is reachable from the
    /// k-th predicted state within the blocks left after it, clamped to [1, D] (budgets the head
    /// was trained on).
    pub fn plan(&mut self, state: &[f32], goal: &[f32], budget: usize) -> Result<Vec<f32>> {
        let (n, hp, ad) = (self.cfg.plan_samples, self.cfg.plan_horizon, self.act_dim);
        let e0 = self.embed(&rows(&[state.to_vec()], &self.dev)?)?;
        let eg = self.embed(&rows(&[goal.to_vec()], &self.dev)?)?;
        let mut mean = vec![0f32; hp * ad];
        let mut std = vec![1f32; hp * ad];
        for _ in 0..self.cfg.plan_iterations {
            let mut seqs = vec![0f32; n * hp * ad];
            for (i, x) in seqs.iter_mut().enumerate() {
                let j = i % (hp * ad);
                let z: f32 = StandardNormal.sample(&mut self.rng);
                *x = (mean[j] + std[j] * z).clamp(-1.0, 1.0);
            }
            let seq_t = Tensor::from_vec(seqs.clone(), (n, hp, ad), &self.dev)?;
            let mut e = e0.broadcast_as((n, e0.dim(1)?))?.contiguous()?;
            let egb = eg.broadcast_as((n, eg.dim(1)?))?.contiguous()?;
            let mut p_star = Tensor::zeros(n, DType::F32, &self.dev)?;
            for k in 0..hp {
                e = self.predict(&e, &seq_t.narrow(1, k, 1)?.squeeze(1)?)?;
                if self.cfg.plan_weight > 0.0 {
                    let left = budget.saturating_sub(k + 1).clamp(1, self.cfg.reach_horizon);
                    let remaining = vec![left; n];
                    let p = sigmoid(&self.reach(&e, &egb, &remaining)?)?;
                    p_star = p_star.maximum(&p)?;
                }
            }
            // the tested planner_cost, per candidate
            let base = (&e - &egb)?.sqr()?.sum(D::Minus1)?.to_vec1::<f32>()?;
            let p_star = p_star.to_vec1::<f32>()?;
            let cost: Vec<f32> = base
                .iter()
                .zip(&p_star)
                .map(|(&b, &p)| planner_cost(b as f64, p as f64, self.cfg.plan_weight) as f32)
                .collect();
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| cost[a].total_cmp(&cost[b]).then(a.cmp(&b)));
            let elites = &order[..self.cfg.plan_elites];
            for j in 0..hp * ad {
                let vals: Vec<f32> = elites.iter().map(|&i| seqs[i * hp * ad + j]).collect();
                let m = vals.iter().sum::<f32>() / vals.len() as f32;
                let v = vals.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / vals.len() as f32;
                mean[j] = m;
                std[j] = v.sqrt().max(0.05);
            }
        }
        Ok(mean[..ad].to_vec())
    }
}

impl Agent for RcAux {
    fn name(&self) -> &'static str {
        "rc-aux"
    }

    fn iterate(&mut self, _envs: &mut VecEnv, progress: Progress) -> Result<IterStats> {
        if self.data.is_none() {
            self.load_data()?;
        }
        let n = self.cfg.steps_per_iteration.min(progress.total_steps.saturating_sub(progress.global_step)).max(1);
        let mut sums = crate::algo::MetricSum::default();
        for _ in 0..n {
            let m = self.update(progress)?;
            self.step += 1;
            sums.add(&m);
        }
        Ok(IterStats { env_steps: n, metrics: sums.mean(), episodes: Vec::new() })
    }

    fn act(&mut self, obs: &[Vec<f32>], _deterministic: bool) -> Result<Vec<Action>> {
        if obs.len() != 1 {
            bail!("rc-aux: the planner acts in one environment at a time");
        }
        if self.queue.is_empty() {
            let o = &obs[0];
            let budget = self.max_steps.saturating_sub(self.elapsed) / self.cfg.block;
            let a = self.plan(&o[..self.state_dim], &o[self.state_dim..], budget)?;
            self.queue = vec![a; self.cfg.block];
        }
        self.elapsed += 1;
        Ok(vec![Action::Continuous(self.queue.remove(0))])
    }

    fn reset_episode(&mut self) {
        self.queue.clear();
        self.elapsed = 0;
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.params.save(&dir.join("model.safetensors"))?;
        save_opt(&self.opt, &dir.join("optimizer.safetensors"))?;
        save_state(dir, &self.rng, self.step)
    }

    fn load(&mut self, dir: &Path, with_state: bool) -> Result<()> {
        self.params.load_file(&dir.join("model.safetensors"))?;
        if with_state {
            load_opt(&mut self.opt, &dir.join("optimizer.safetensors"))?;
            self.step = load_state(dir, &mut self.rng)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn pair_generator_matches_the_spec_for_d_3() {
        let (pos, neg) = reachability_pairs(3);
        assert_eq!(pos, vec![(1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3)]);
        assert_eq!(neg, vec![(2, 1), (3, 1), (3, 2)]);
        for d in 1..8 {
            let (p, n) = reachability_pairs(d);
            assert_eq!((p.len(), n.len()), (d * (d + 1) / 2, d * (d - 1) / 2));
        }
    }

    #[test]
    fn random_negatives_never_pair_an_element_with_itself() {
        let mut rng = Rng::seed_from_u64(0);
        for n in 2..30 {
            for _ in 0..20 {
                let p = derangement(n, &mut rng).unwrap();
                let mut sorted = p.clone();
                sorted.sort();
                assert_eq!(sorted, (0..n).collect::<Vec<_>>());
                assert!(p.iter().enumerate().all(|(i, &j)| i != j));
            }
        }
        assert!(derangement(1, &mut rng).is_none());
    }

    #[test]
    fn sigreg_is_small_for_standard_normal_batches_and_large_for_collapse() {
        let dev = Device::Cpu;
        let mut rng = Rng::seed_from_u64(0);
        let (b, d, m) = (4096, 4, 8);
        let g: Vec<f32> = (0..b * d).map(|_| StandardNormal.sample(&mut rng)).collect();
        let e = Tensor::from_vec(g, (b, d), &dev).unwrap();
        let dirs: Vec<f32> = (0..d * m).map(|_| StandardNormal.sample(&mut rng)).collect();
        let dirs = Tensor::from_vec(dirs, (d, m), &dev).unwrap();
        let dirs = dirs.broadcast_div(&dirs.sqr().unwrap().sum_keepdim(0).unwrap().sqrt().unwrap()).unwrap();
        let normal = sigreg(&e, &dirs).unwrap().to_scalar::<f32>().unwrap();
        let collapsed =
            sigreg(&Tensor::zeros((b, d), DType::F32, &dev).unwrap(), &dirs).unwrap().to_scalar::<f32>().unwrap();
        let wide = sigreg(&(&e * 3.0).unwrap(), &dirs).unwrap().to_scalar::<f32>().unwrap();
        assert!(normal < 1e-3, "{normal}");
        assert!(collapsed > 100.0 * normal && wide > 100.0 * normal, "{collapsed} {wide} vs {normal}");
    }

    #[test]
    fn rollout_weights_and_planner_cost() {
        let w = rollout_weights(4);
        for (a, b) in w.iter().zip([0.1, 0.2, 0.3, 0.4]) {
            assert!((a - b).abs() < 1e-12);
        }
        assert_eq!(planner_cost(2.0, 0.9, 0.0), 2.0, "head off: the base cost");
        for p in [0.0, 0.5, 1.0] {
            for w in [0.35, 1.0, 3.0] {
                assert!(planner_cost(1.0, p, w) >= 0.05);
            }
        }
        assert!((planner_cost(1.0, 1.0, 0.35) - 0.65).abs() < 1e-12);
    }
}
