//! MORL-FB — "A Reward-Free Viewpoint on Multi-Objective RL" (2026). INFERRED (the spec reads the
//! abstract and summaries; the losses are reasoned from forward-backward representations):
//!
//! 1. An FB representation F(s, a, z)ᵀB(s') (the measure loss of [`super::fb`], with terminal
//!    masks on the target) learned online from the agent's own experience.
//! 2. The MORL link: a preference λ on the simplex scalarises the vector reward, λᵀr, a linear
//!    reward, so its task vector is linear in λ: z_λ = Σ_k λ_k z_k with z_k the least-squares task
//!    vector of objective k (B(s')·z_k ≈ r_k over replayed transitions). λ = e_k gives z_k. F is
//!    conditioned on the projection ẑ_λ = √d·z_λ/‖z_λ‖; Q(s, a, λ) = F(s, a, ẑ_λ)ᵀz_λ.
//! 3. Preference-guided exploration (`pg_explore`): the z's that train F and that act during
//!    collection are ẑ_λ of Dirichlet(1) preferences instead of isotropic Gaussians.
//! 4. Auxiliary Q loss (`aux_weight`): (Q(s, a, λ) − λᵀr − γ(1 − done)·Q̃(s', a', λ))², a' greedy,
//!    added to the FB loss; it ties F's scale to the actual returns.
//!
//! `pg_explore = false, aux_weight = 0` is plain online FB with Gaussian task vectors (the
//! reward-free baseline; λ is then used only at test time). Evaluated by the hypervolume and
//! expected utility of the greedy policies over a grid of preferences ([`MorlFb::front`]).

use super::fb::fb_loss;
use super::td_jepa::{ortho_loss, pick, project_sphere, q_all};
use crate::algo::{linear_schedule, load_opt, load_state, save_opt, save_state, Agent, IterStats, Progress};
use crate::dist::argmax_rows;
use crate::env::{Action, Env, Space, VecEnv};
use crate::nn::{rows, Activation, Init, Mlp, Params};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, D};
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_core::seed::Rng;
use rand::{Rng as _, SeedableRng};
use rand_distr::{Distribution, Exp1, StandardNormal};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// `[morl]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MorlFbConfig {
    pub lr: f64,
    pub latent_dim: usize,
    pub hidden: usize,
    pub batch_size: usize,
    pub gamma: f64,
    pub tau: f64,
    pub ortho_coef: f64,
    pub buffer_size: usize,
    pub learning_starts: u64,
    pub steps_per_iteration: u64,
    pub start_e: f64,
    pub end_e: f64,
    pub exploration_fraction: f64,
    /// Draw training and acting z's from preferences (PG-Explore) instead of Gaussians.
    pub pg_explore: bool,
    /// Weight of the auxiliary vector-reward TD loss (needs `pg_explore`).
    pub aux_weight: f64,
    /// Replayed transitions used to fit the per-objective task vectors.
    pub task_samples: usize,
    pub ridge: f64,
    /// Preferences (w, 1 − w) on an even grid of this many points for the final front.
    pub eval_preferences: usize,
}

impl Default for MorlFbConfig {
    fn default() -> Self {
        Self {
            lr: 3e-4,
            latent_dim: 32,
            hidden: 256,
            batch_size: 256,
            gamma: 0.98,
            tau: 0.01,
            ortho_coef: 1.0,
            buffer_size: 100_000,
            learning_starts: 2_000,
            steps_per_iteration: 1_000,
            start_e: 1.0,
            end_e: 0.05,
            exploration_fraction: 0.5,
            pg_explore: true,
            aux_weight: 1.0,
            task_samples: 1024,
            ridge: 1e-3,
            eval_preferences: 11,
        }
    }
}

impl MorlFbConfig {
    pub fn validate(&self) -> Result<()> {
        if self.batch_size < 2 || self.latent_dim == 0 || self.hidden == 0 || self.buffer_size == 0 {
            bail!("morl: batch_size (≥ 2), latent_dim, hidden and buffer_size must be positive");
        }
        if self.steps_per_iteration == 0 || self.task_samples < 2 || self.eval_preferences < 2 {
            bail!("morl: steps_per_iteration, task_samples (≥ 2) and eval_preferences (≥ 2) must be set");
        }
        if !(0.0..1.0).contains(&self.gamma) || !(0.0..=1.0).contains(&self.tau) {
            bail!("morl: gamma must be in [0, 1) and tau in [0, 1]");
        }
        if self.aux_weight > 0.0 && !self.pg_explore {
            bail!("morl.aux_weight: the auxiliary Q loss needs preference-drawn z (morl.pg_explore = true)");
        }
        Ok(())
    }
}

/// A preference drawn from Dirichlet(1, …, 1) (uniform on the simplex).
pub fn sample_preference(m: usize, rng: &mut Rng) -> Vec<f64> {
    let e: Vec<f64> = (0..m).map(|_| Exp1.sample(rng)).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

/// z_λ = Σ_k λ_k z_k (before projection).
pub fn combine(basis: &[Vec<f64>], lambda: &[f64]) -> Vec<f32> {
    let d = basis[0].len();
    (0..d).map(|i| basis.iter().zip(lambda).map(|(z, l)| z[i] * l).sum::<f64>() as f32).collect()
}

struct Nets {
    f: Mlp,
    b: Mlp,
}

impl Nets {
    fn new(obs: usize, n_a: usize, d: usize, h: usize, rng: &mut Rng, dev: &Device) -> Result<Self> {
        Ok(Self {
            f: Mlp::new(&[obs + d, h, h, n_a * d], Activation::Relu, Init::Uniform, rng, dev)?,
            b: Mlp::new(&[obs, h, h, d], Activation::Relu, Init::Uniform, rng, dev)?,
        })
    }
    fn vars(&self) -> Vec<(String, candle_core::Var)> {
        let mut v = self.f.vars("forward");
        v.extend(self.b.vars("backward"));
        v
    }
}

/// Transitions with vector rewards.
#[derive(Default)]
struct Replay {
    obs: Vec<Vec<f32>>,
    act: Vec<usize>,
    rew: Vec<Vec<f64>>,
    next: Vec<Vec<f32>>,
    done: Vec<bool>,
    pos: usize,
}

impl Replay {
    fn push(&mut self, cap: usize, o: Vec<f32>, a: usize, r: Vec<f64>, n: Vec<f32>, d: bool) {
        if self.obs.len() < cap {
            self.obs.push(o);
            self.act.push(a);
            self.rew.push(r);
            self.next.push(n);
            self.done.push(d);
        } else {
            let p = self.pos;
            self.obs[p] = o;
            self.act[p] = a;
            self.rew[p] = r;
            self.next[p] = n;
            self.done[p] = d;
        }
        self.pos = (self.pos + 1) % cap;
    }
}

pub struct MorlFb {
    pub cfg: MorlFbConfig,
    online: Nets,
    target: Nets,
    online_p: Params,
    target_p: Params,
    opt: AdamW,
    replay: Replay,
    rng: Rng,
    dev: Device,
    n_obj: usize,
    n_actions: usize,
    /// The per-objective task vectors z_k (refreshed before every update).
    basis: Option<Vec<Vec<f64>>>,
    /// Each environment's preference for its current episode.
    episode_pref: Vec<Vec<f64>>,
    global_step: u64,
}

impl MorlFb {
    pub fn new(cfg: MorlFbConfig, envs: &VecEnv, seed: u64, dev: &Device) -> Result<Self> {
        cfg.validate()?;
        let n_actions = match envs.action_space() {
            Space::Discrete(n) => n,
            Space::Box { .. } => bail!("morl-fb: needs a discrete action space"),
        };
        let n_obj = envs.envs[0]
            .reward_vector()
            .map(|v| v.len())
            .context("morl-fb: needs a multi-objective environment (a vector reward, e.g. deep-sea-treasure)")?;
        let obs = envs.observation_space().dim();
        let (d, h) = (cfg.latent_dim, cfg.hidden);
        let mut init = oxrl_core::seed::rng(seed, "morl-init", 0);
        let online = Nets::new(obs, n_actions, d, h, &mut init, dev)?;
        let target = Nets::new(obs, n_actions, d, h, &mut init, dev)?;
        let online_p = Params(online.vars());
        let target_p = Params(target.vars());
        target_p.copy_from(&online_p)?;
        let mut rng = Rng::seed_from_u64(oxrl_core::seed::derive(seed, "morl", 0));
        let episode_pref = (0..envs.len()).map(|_| sample_preference(n_obj, &mut rng)).collect();
        Ok(Self {
            opt: AdamW::new(online_p.vars(), AdamWConfig::default())?,
            online,
            target,
            online_p,
            target_p,
            replay: Replay::default(),
            rng,
            dev: dev.clone(),
            n_obj,
            n_actions,
            basis: None,
            episode_pref,
            global_step: 0,
            cfg,
        })
    }

    /// Fit z_k for every objective on `task_samples` replayed transitions.
    fn refresh_basis(&mut self) -> Result<()> {
        let n = self.replay.obs.len();
        let idx: Vec<usize> = (0..self.cfg.task_samples).map(|_| self.rng.random_range(0..n)).collect();
        let next: Vec<Vec<f32>> = idx.iter().map(|&i| self.replay.next[i].clone()).collect();
        let feats = self.online.b.forward(&rows(&next, &self.dev)?)?.to_vec2::<f32>()?;
        let mut basis = Vec::with_capacity(self.n_obj);
        for k in 0..self.n_obj {
            let r: Vec<f64> = idx.iter().map(|&i| self.replay.rew[i][k]).collect();
            basis.push(super::ridge_solve(&feats, &r, self.cfg.ridge)?);
        }
        self.basis = Some(basis);
        Ok(())
    }

    /// (ẑ conditioning, raw z) of a preference under the current basis.
    fn task(&self, lambda: &[f64]) -> Option<(Vec<f32>, Vec<f32>)> {
        let basis = self.basis.as_ref()?;
        let raw = combine(basis, lambda);
        Some((project_sphere(std::slice::from_ref(&raw)).remove(0), raw))
    }

    /// Greedy actions under preference-specific tasks (one per row).
    fn greedy(&self, obs: &[Vec<f32>], tasks: &[(Vec<f32>, Vec<f32>)]) -> Result<Vec<usize>> {
        let zc: Vec<Vec<f32>> = tasks.iter().map(|t| t.0.clone()).collect();
        let zr: Vec<Vec<f32>> = tasks.iter().map(|t| t.1.clone()).collect();
        let head = self.online.f.forward(&Tensor::cat(&[&rows(obs, &self.dev)?, &rows(&zc, &self.dev)?], 1)?)?;
        argmax_rows(&q_all(&head, &rows(&zr, &self.dev)?, self.cfg.latent_dim)?)
    }

    fn update(&mut self) -> Result<Vec<(String, f64)>> {
        self.refresh_basis()?;
        let d = self.cfg.latent_dim;
        let n = self.replay.obs.len();
        let bsz = self.cfg.batch_size;
        let idx: Vec<usize> = (0..bsz).map(|_| self.rng.random_range(0..n)).collect();
        let g = |v: &Vec<Vec<f32>>| -> Result<Tensor> {
            rows(&idx.iter().map(|&i| v[i].clone()).collect::<Vec<_>>(), &self.dev)
        };
        let (s, s2) = (g(&self.replay.obs)?, g(&self.replay.next)?);
        let acts: Vec<usize> = idx.iter().map(|&i| self.replay.act[i]).collect();
        let mask: Vec<f32> = idx.iter().map(|&i| if self.replay.done[i] { 0.0 } else { 1.0 }).collect();
        let mask_t = Tensor::new(mask.as_slice(), &self.dev)?;
        // training task vectors: preferences (PG-Explore) or Gaussians
        let mut zc = Vec::with_capacity(bsz);
        let mut zr = Vec::with_capacity(bsz);
        let mut lams = Vec::with_capacity(bsz);
        for _ in 0..bsz {
            if self.cfg.pg_explore {
                let l = sample_preference(self.n_obj, &mut self.rng);
                let (c, r) = self.task(&l).expect("basis fitted");
                zc.push(c);
                zr.push(r);
                lams.push(l);
            } else {
                let z: Vec<f32> = (0..d).map(|_| StandardNormal.sample(&mut self.rng)).collect();
                zc.push(project_sphere(&[z]).remove(0));
            }
        }
        let zc_t = rows(&zc, &self.dev)?;
        // FB measure loss with terminal masks on the target
        let f_next = self.target.f.forward(&Tensor::cat(&[&s2, &zc_t], 1)?)?;
        let a2 = argmax_rows(&q_all(&f_next, &zc_t, d)?)?;
        let f_next_a = pick(&f_next, &a2, d)?;
        let m_target =
            f_next_a.matmul(&self.target.b.forward(&s2)?.t()?)?.broadcast_mul(&mask_t.unsqueeze(1)?)?.detach();
        let f_sa = pick(&self.online.f.forward(&Tensor::cat(&[&s, &zc_t], 1)?)?, &acts, d)?;
        let b_next = self.online.b.forward(&s2)?;
        let l_fb = fb_loss(&f_sa.matmul(&b_next.t()?)?, &m_target, self.cfg.gamma)?;
        let l_ortho = ortho_loss(&b_next)?;
        let mut loss = (&l_fb + (&l_ortho * self.cfg.ortho_coef)?)?;
        let mut metrics = vec![
            ("fb_loss".to_string(), l_fb.to_scalar::<f32>()? as f64),
            ("ortho_loss".to_string(), l_ortho.to_scalar::<f32>()? as f64),
        ];
        if self.cfg.aux_weight > 0.0 {
            let zr_t = rows(&zr, &self.dev)?;
            let q = (&f_sa * &zr_t)?.sum(D::Minus1)?;
            let q_next = (f_next_a * &zr_t)?.sum(D::Minus1)?;
            let scal: Vec<f32> = idx
                .iter()
                .zip(&lams)
                .map(|(&i, l)| self.replay.rew[i].iter().zip(l).map(|(r, w)| r * w).sum::<f64>() as f32)
                .collect();
            let y = (Tensor::new(scal.as_slice(), &self.dev)? + ((q_next * mask_t)? * self.cfg.gamma)?)?.detach();
            let l_aux = (q - y)?.sqr()?.mean_all()?;
            metrics.push(("aux_q_loss".into(), l_aux.to_scalar::<f32>()? as f64));
            loss = (loss + (l_aux * self.cfg.aux_weight)?)?;
        }
        let grads = loss.backward()?;
        self.opt.step(&grads, self.cfg.lr, 10.0)?;
        self.target_p.ema_from(&self.online_p, self.cfg.tau)?;
        Ok(metrics)
    }

    /// The greedy policies' vector returns over the preference grid (w, 1 − w), w = 0, …, 1, each
    /// one episode in `env` from its reset (deterministic environments: one episode is exact).
    pub fn front(&mut self, env: &mut dyn Env) -> Result<Vec<(Vec<f64>, Vec<f64>)>> {
        if self.basis.is_none() {
            self.refresh_basis()?;
        }
        let k = self.cfg.eval_preferences;
        let mut out = Vec::new();
        for i in 0..k {
            let w = i as f64 / (k - 1) as f64;
            let lambda = if self.n_obj == 2 { vec![w, 1.0 - w] } else { vec![1.0 / self.n_obj as f64; self.n_obj] };
            let t = self.task(&lambda).expect("basis fitted");
            let mut obs = env.reset();
            let mut ret = vec![0.0; self.n_obj];
            loop {
                let a = self.greedy(std::slice::from_ref(&obs), std::slice::from_ref(&t))?[0];
                let s = env.step(&Action::Discrete(a))?;
                for (r, v) in ret.iter_mut().zip(env.reward_vector().unwrap_or_default()) {
                    *r += v;
                }
                if s.terminated || s.truncated {
                    break;
                }
                obs = s.obs;
            }
            out.push((lambda, ret));
        }
        Ok(out)
    }
}

impl Agent for MorlFb {
    fn name(&self) -> &'static str {
        "morl-fb"
    }

    fn iterate(&mut self, envs: &mut VecEnv, progress: Progress) -> Result<IterStats> {
        let n = envs.len();
        let mut stats = IterStats::default();
        let mut sums = crate::algo::MetricSum::default();
        let mut taken = 0u64;
        let mut eps = 0.0;
        while taken < self.cfg.steps_per_iteration {
            eps = linear_schedule(
                self.cfg.start_e,
                self.cfg.end_e,
                self.cfg.exploration_fraction * progress.total_steps as f64,
                self.global_step as f64,
            );
            let obs = envs.obs().to_vec();
            let tasks: Option<Vec<_>> = if self.cfg.pg_explore || self.basis.is_some() {
                self.episode_pref.iter().map(|l| self.task(l)).collect()
            } else {
                None
            };
            let greedy = match &tasks {
                Some(t) => self.greedy(&obs, t)?,
                None => vec![0; n],
            };
            let eff_eps = if tasks.is_some() { eps } else { 1.0 };
            let acts = crate::algo::epsilon_greedy(&greedy, eff_eps, self.n_actions, &mut self.rng);
            let step = envs.step(&acts.iter().map(|&a| Action::Discrete(a)).collect::<Vec<_>>())?;
            for i in 0..n {
                let next = step.final_obs[i].clone().unwrap_or_else(|| step.obs[i].clone());
                let r = envs.envs[i].reward_vector().unwrap_or_else(|| vec![0.0; self.n_obj]);
                self.replay.push(self.cfg.buffer_size, obs[i].clone(), acts[i], r, next, step.terminated[i]);
                if step.terminated[i] || step.truncated[i] {
                    self.episode_pref[i] = sample_preference(self.n_obj, &mut self.rng);
                }
            }
            stats.episodes.extend(step.finished.iter().copied());
            for _ in 0..n {
                self.global_step += 1;
                taken += 1;
                if self.global_step > self.cfg.learning_starts {
                    let m = self.update()?;
                    sums.add(&m);
                }
            }
        }
        stats.env_steps = taken;
        stats.metrics.push(("epsilon".into(), eps));
        stats.metrics.extend(sums.mean());
        Ok(stats)
    }

    /// Acts for the equal-weight preference (the scalar reward of the evaluation environment).
    fn act(&mut self, obs: &[Vec<f32>], _deterministic: bool) -> Result<Vec<Action>> {
        if self.basis.is_none() {
            if self.replay.obs.len() < 2 {
                bail!("morl-fb: no experience to infer task vectors from");
            }
            self.refresh_basis()?;
        }
        let t = self.task(&vec![1.0 / self.n_obj as f64; self.n_obj]).expect("basis fitted");
        let tasks = vec![t; obs.len()];
        Ok(self.greedy(obs, &tasks)?.into_iter().map(Action::Discrete).collect())
    }

    /// On Deep Sea Treasure: the hypervolume (reference (0, −25)) and expected utility of the
    /// greedy front over the preference grid, with the optimal values of the true front.
    fn final_report(&mut self, env_name: &str) -> Result<Vec<(String, f64)>> {
        use crate::env::deep_sea_treasure::{expected_utility, hypervolume_2d, pareto_front, DeepSea};
        let key = env_name.to_ascii_lowercase();
        if !key.starts_with("deep-sea-treasure") {
            return Ok(Vec::new());
        }
        let mut env = DeepSea::new(key.ends_with("concave"), 0);
        let pts = self.front(&mut env)?;
        let values: Vec<(f64, f64)> = pts.iter().map(|(_, v)| (v[0], v[1])).collect();
        let ws: Vec<(f64, f64)> = pts.iter().map(|(l, _)| (l[0], l[1])).collect();
        let truth = pareto_front(&env.map);
        let reference = (0.0, -25.0);
        let mut distinct = values.clone();
        distinct.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        distinct.dedup();
        Ok(vec![
            ("hypervolume".into(), hypervolume_2d(&values, reference)),
            ("hypervolume_optimal".into(), hypervolume_2d(&truth, reference)),
            ("expected_utility".into(), expected_utility(&values, &ws)),
            ("expected_utility_optimal".into(), expected_utility(&truth, &ws)),
            ("front_points".into(), distinct.iter().filter(|p| truth.contains(p)).count() as f64),
        ])
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.online_p.save(&dir.join("model.safetensors"))?;
        self.target_p.save(&dir.join("target.safetensors"))?;
        save_opt(&self.opt, &dir.join("optimizer.safetensors"))?;
        let r = &self.replay;
        let mut map: HashMap<String, Tensor> = HashMap::new();
        if !r.obs.is_empty() {
            let cpu = Device::Cpu;
            map.insert("obs".into(), rows(&r.obs, &cpu)?);
            map.insert("next".into(), rows(&r.next, &cpu)?);
            let rew: Vec<f64> = r.rew.iter().flatten().copied().collect();
            map.insert("rew".into(), Tensor::from_vec(rew, (r.rew.len(), self.n_obj), &cpu)?);
            map.insert(
                "act".into(),
                Tensor::new(r.act.iter().map(|&a| a as u32).collect::<Vec<_>>().as_slice(), &cpu)?,
            );
            map.insert(
                "done".into(),
                Tensor::new(r.done.iter().map(|&d| d as u8).collect::<Vec<_>>().as_slice(), &cpu)?,
            );
        }
        map.insert("pos".into(), Tensor::new(&[r.pos as u32], &Device::Cpu)?);
        if let Some(b) = &self.basis {
            // the task vectors acting uses until the next update (f64: a resumed run acts identically)
            let flat: Vec<f64> = b.iter().flatten().copied().collect();
            map.insert("basis".into(), Tensor::from_vec(flat, (b.len(), b[0].len()), &Device::Cpu)?);
        }
        if let Some(b) = &self.basis {
            // the task vectors acting uses until the next update (f64: resume must act identically)
            let flat: Vec<f64> = b.iter().flatten().copied().collect();
            map.insert("basis".into(), Tensor::from_vec(flat, (b.len(), b[0].len()), &Device::Cpu)?);
        }
        let prefs: Vec<Vec<f32>> = self.episode_pref.iter().map(|v| v.iter().map(|&x| x as f32).collect()).collect();
        map.insert("episode_pref".into(), rows(&prefs, &Device::Cpu)?);
        oxrl_core::fsutil::write_atomic_with(&dir.join("replay.safetensors"), |tmp| {
            Ok(candle_core::safetensors::save(&map, tmp)?)
        })?;
        save_state(dir, &self.rng, self.global_step)
    }

    fn load(&mut self, dir: &Path, with_state: bool) -> Result<()> {
        self.online_p.load_file(&dir.join("model.safetensors"))?;
        let map = crate::algo::read_tensors(&dir.join("replay.safetensors"))?;
        let get = |k: &str| map.get(k).with_context(|| format!("{}: missing {k}", dir.display()));
        let mut r = Replay::default();
        if map.contains_key("obs") {
            r.obs = get("obs")?.to_vec2::<f32>()?;
            r.next = get("next")?.to_vec2::<f32>()?;
            r.rew = get("rew")?.to_vec2::<f64>()?;
            r.act = get("act")?.to_vec1::<u32>()?.into_iter().map(|a| a as usize).collect();
            r.done = get("done")?.to_vec1::<u8>()?.into_iter().map(|d| d != 0).collect();
        }
        r.pos = get("pos")?.to_vec1::<u32>()?[0] as usize;
        self.replay = r;
        self.basis = match map.get("basis") {
            Some(t) => Some(t.to_vec2::<f64>()?),
            None => None,
        };
        if with_state {
            self.target_p.load_file(&dir.join("target.safetensors"))?;
            load_opt(&mut self.opt, &dir.join("optimizer.safetensors"))?;
            self.episode_pref = get("episode_pref")?
                .to_vec2::<f32>()?
                .into_iter()
                .map(|v| v.into_iter().map(|x| x as f64).collect())
                .collect();
            self.global_step = load_state(dir, &mut self.rng)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_vectors_are_linear_in_the_preference_and_unit_preferences_give_each_objective() {
        let basis = vec![vec![1.0, 2.0, 0.0], vec![0.0, -1.0, 3.0]];
        assert_eq!(combine(&basis, &[1.0, 0.0]), vec![1.0, 2.0, 0.0]);
        assert_eq!(combine(&basis, &[0.0, 1.0]), vec![0.0, -1.0, 3.0]);
        let a = combine(&basis, &[0.25, 0.75]);
        let b: Vec<f32> = (0..3).map(|i| 0.25 * basis[0][i] as f32 + 0.75 * basis[1][i] as f32).collect();
        assert_eq!(a, b);
        let mut rng = Rng::seed_from_u64(0);
        let mut mean0 = 0.0;
        for _ in 0..4000 {
            let l = sample_preference(2, &mut rng);
            assert!((l.iter().sum::<f64>() - 1.0).abs() < 1e-12 && l.iter().all(|&x| x >= 0.0));
            mean0 += l[0] / 4000.0;
        }
        assert!((mean0 - 0.5).abs() < 0.02, "Dirichlet(1, 1) is uniform on the simplex: mean {mean0}");
    }
}
