//! LaRe — "Latent Reward: LLM-Empowered Credit Assignment in Episodic RL" (AAAI 2025), and the
//! episodic-return setting it addresses.
//!
//! With only the episode's return R(τ) at its end, LaRe learns a dense reward:
//! 1. a latent encoder φ(s, a, s') → z ∈ R^d of interpretable performance factors (distance to
//!    goal, effort, …) written as code by an LLM — here a built-in set of candidate functions per
//!    environment, the spec's stand-in for the LLM's samples, one of them deliberately broken;
//! 2. self-verification: every candidate runs on sampled transitions and is rejected when it
//!    panics, returns a non-finite value or changes its dimension; the survivors are consolidated
//!    by concatenation (the decoder's L2 penalty weeds out the redundant factors);
//! 3. a linear reward decoder f_ψ(z) = w·ẑ + b, ẑ = z standardised with the buffer's statistics,
//!    fitted by return decomposition  min_ψ Σ_τ (R(τ) − Σ_t f_ψ(ẑ_t))² + λ‖ψ‖²  (closed-form
//!    ridge) on a buffer of recent episodes, refitted every `refit_every` finished episodes;
//! 4. the agent trains on r̂_t = f_ψ(ẑ_t) (0 before the first fit, which follows the first
//!    finished episode by default).
//!
//! INFERRED (the spec has no code to confirm against): φ reads the whole transition (s, a, s'),
//! the decoder is linear (the spec allows "small MLP or linear"), and the "LLM review" that picks
//! or merges candidates is concatenation of the verified ones. As an environment wrapper it works
//! under any online learner (PPO, SAC, DQN); an off-policy learner's replay buffer keeps each
//! transition's reward from collection time (no relabelling), which is why the decoder is
//! refitted after every episode by default and pays 0 — never the episodic return — before its
//! first fit (one −35 return spike among the dense rewards cost SAC on reach most of its progress).

use crate::dataset::{action_row, random_action};
use crate::env::{Action, Env, EnvState, Space, Step};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// A latent factor function φ(s, a, s') → z (one "LLM-written" candidate).
pub type LatentFn = fn(&[f32], &[f32], &[f32]) -> Vec<f64>;

#[derive(Clone, Copy)]
pub struct Candidate {
    pub name: &'static str,
    pub f: LatentFn,
}

/// `[lare]` — the decoder's buffer and refit schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LareConfig {
    /// Refit the decoder after this many finished episodes (over all environment copies).
    pub refit_every: usize,
    /// Episodes kept for the fit (the most recent).
    pub buffer: usize,
    /// Ridge penalty λ on the decoder weights.
    pub ridge: f64,
    /// Transitions (from random actions) each candidate must pass in self-verification.
    pub verify_samples: usize,
}

impl Default for LareConfig {
    fn default() -> Self {
        Self { refit_every: 1, buffer: 256, ridge: 1e-3, verify_samples: 64 }
    }
}

impl LareConfig {
    pub fn validate(&self) -> Result<()> {
        if self.refit_every == 0 || self.buffer == 0 || self.verify_samples == 0 {
            bail!("lare.refit_every, lare.buffer and lare.verify_samples must be positive");
        }
        if !(self.ridge >= 0.0 && self.ridge.is_finite()) {
            bail!("lare.ridge: must be finite and >= 0 (got {})", self.ridge);
        }
        Ok(())
    }
}

fn norm2(x: f64, y: f64) -> f64 {
    (x * x + y * y).sqrt()
}

/// The built-in candidate factor functions of an environment (the stand-in for an LLM's samples
/// given the task description and the observation layout); None when it has none.
pub fn builtin_candidates(env: &str) -> Option<Vec<Candidate>> {
    let c = |name, f| Candidate { name, f };
    match env {
        // observation (x, y, goal_x, goal_y), action a ∈ [−1, 1]²
        "reach" => Some(vec![
            c("distance to goal", |_, _, s1| vec![norm2((s1[0] - s1[2]) as f64, (s1[1] - s1[3]) as f64)]),
            c("progress toward goal", |s0, _, s1| {
                let d0 = norm2((s0[0] - s0[2]) as f64, (s0[1] - s0[3]) as f64);
                vec![d0 - norm2((s1[0] - s1[2]) as f64, (s1[1] - s1[3]) as f64)]
            }),
            c("control effort", |_, a, _| vec![a.iter().map(|&v| (v as f64).powi(2)).sum()]),
            // The broken sample: its dimension depends on the state.
            c("per-axis gaps (buggy)", |_, _, s1| {
                (0..2).filter(|&i| s1[i] > s1[i + 2]).map(|i| (s1[i] - s1[i + 2]) as f64).collect()
            }),
        ]),
        // observation (cos θ, sin θ, θ̇), action torque u ∈ [−2, 2]
        "pendulum" => Some(vec![
            c("angle from upright²", |_, _, s1| vec![(s1[1] as f64).atan2(s1[0] as f64).powi(2)]),
            c("angular speed²", |_, _, s1| vec![(s1[2] as f64).powi(2)]),
            c("torque²", |_, a, _| vec![(a[0] as f64).powi(2)]),
            // The broken sample: the square root of a signed speed (NaN when it turns negative).
            c("root speed (buggy)", |_, _, s1| vec![(s1[2] as f64).sqrt()]),
        ]),
        _ => None,
    }
}

/// Self-verification: each candidate's dimension when it runs on every transition with finite,
/// same-length output; otherwise why it was rejected.
pub fn verify(cands: &[Candidate], transitions: &[(Vec<f32>, Vec<f32>, Vec<f32>)]) -> Vec<Result<usize, String>> {
    cands
        .iter()
        .map(|c| {
            let mut dim = None;
            for (s0, a, s1) in transitions {
                let z = std::panic::catch_unwind(|| (c.f)(s0, a, s1))
                    .map_err(|_| format!("{}: raised an error (panicked)", c.name))?;
                if z.is_empty() || z.iter().any(|v| !v.is_finite()) {
                    return Err(format!("{}: returned an empty or non-finite value {z:?}", c.name));
                }
                match dim {
                    None => dim = Some(z.len()),
                    Some(d) if d != z.len() => {
                        return Err(format!("{}: returned {} values after {d}", c.name, z.len()))
                    }
                    _ => {}
                }
            }
            dim.ok_or_else(|| format!("{}: no transitions to verify on", c.name))
        })
        .collect()
}

/// The consolidated encoder: the verified candidates' factors, concatenated.
#[derive(Clone)]
pub struct Encoder {
    pub cands: Vec<Candidate>,
}

impl Encoder {
    pub fn encode(&self, s0: &[f32], a: &[f32], s1: &[f32]) -> Vec<f64> {
        self.cands.iter().flat_map(|c| (c.f)(s0, a, s1)).collect()
    }
    pub fn names(&self) -> Vec<&'static str> {
        self.cands.iter().map(|c| c.name).collect()
    }
}

/// Verify `cands` on `transitions` and keep the survivors; an error when none survives.
pub fn consolidate(
    cands: &[Candidate],
    transitions: &[(Vec<f32>, Vec<f32>, Vec<f32>)],
) -> Result<(Encoder, Vec<String>)> {
    let verdicts = verify(cands, transitions);
    let rejected: Vec<String> = verdicts.iter().filter_map(|v| v.as_ref().err().cloned()).collect();
    let kept: Vec<Candidate> = cands.iter().zip(&verdicts).filter(|(_, v)| v.is_ok()).map(|(c, _)| *c).collect();
    if kept.is_empty() {
        bail!("LaRe: every candidate factor function failed self-verification: {}", rejected.join("; "));
    }
    Ok((Encoder { cands: kept }, rejected))
}

/// The linear reward decoder f(z) = w·(z − μ)/σ + b.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoder {
    pub w: Vec<f64>,
    pub b: f64,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Decoder {
    pub fn reward(&self, z: &[f64]) -> f64 {
        self.b
            + z.iter()
                .zip(&self.w)
                .zip(self.mean.iter().zip(&self.std))
                .map(|((v, w), (m, s))| w * (v - m) / s)
                .sum::<f64>()
    }
}

/// Return decomposition: the ridge least-squares decoder whose per-step rewards sum to each
/// episode's return, over episodes given as (per-step factors, return).
pub fn fit(episodes: &[(Vec<Vec<f64>>, f64)], ridge: f64) -> Option<Decoder> {
    let steps: Vec<&Vec<f64>> = episodes.iter().flat_map(|e| &e.0).collect();
    let d = steps.first()?.len();
    let n = steps.len() as f64;
    let mut mean = vec![0.0; d];
    steps.iter().for_each(|z| mean.iter_mut().zip(z.iter()).for_each(|(m, v)| *m += v / n));
    let mut std = vec![0.0; d];
    steps
        .iter()
        .for_each(|z| std.iter_mut().zip(z.iter().zip(&mean)).for_each(|(s, (v, m))| *s += (v - m).powi(2) / n));
    let std: Vec<f64> = std.into_iter().map(|v| v.sqrt().max(1e-8)).collect();
    let feats: Vec<Vec<Vec<f64>>> = episodes
        .iter()
        .map(|(zs, _)| {
            zs.iter()
                .map(|z| z.iter().zip(&mean).zip(&std).map(|((v, m), s)| (v - m) / s).chain([1.0]).collect())
                .collect()
        })
        .collect();
    let rets: Vec<f64> = episodes.iter().map(|e| e.1).collect();
    let theta = oxrl_core::shaping::spa_rl::fit_linear(&feats, &rets, ridge);
    Some(Decoder { w: theta[..d].to_vec(), b: theta[d], mean, std })
}

/// The decoder and its episode buffer, shared by a run's environment copies.
pub struct Redistributor {
    pub cfg: LareConfig,
    pub encoder: Encoder,
    pub decoder: Option<Decoder>,
    episodes: VecDeque<(Vec<Vec<f64>>, f64)>,
    since_fit: usize,
    pub fits: usize,
}

impl Redistributor {
    pub fn new(cfg: LareConfig, encoder: Encoder) -> Self {
        Self { cfg, encoder, decoder: None, episodes: VecDeque::new(), since_fit: 0, fits: 0 }
    }
    fn finish(&mut self, z: Vec<Vec<f64>>, ret: f64) {
        self.episodes.push_back((z, ret));
        while self.episodes.len() > self.cfg.buffer {
            self.episodes.pop_front();
        }
        self.since_fit += 1;
        if self.since_fit >= self.cfg.refit_every {
            self.since_fit = 0;
            let eps: Vec<(Vec<Vec<f64>>, f64)> = self.episodes.iter().cloned().collect();
            if let Some(d) = fit(&eps, self.cfg.ridge) {
                self.decoder = Some(d);
                self.fits += 1;
            }
        }
    }
}

/// Verify the built-in candidates of `env` on `cfg.verify_samples` random-action transitions and
/// build the shared redistributor (with what was rejected).
pub fn build(env: &str, cfg: &LareConfig, seed: u64) -> Result<(Redistributor, Vec<String>)> {
    let Some(cands) = builtin_candidates(env) else {
        bail!("env.reward = \"lare\": no latent factor functions for environment {env:?} (built in: reach, pendulum)")
    };
    let mut e = crate::env::make(env, oxrl_core::seed::derive(seed, "lare-verify", 0))?;
    let mut rng = oxrl_core::seed::rng(seed, "lare-verify", 0);
    let mut transitions = Vec::with_capacity(cfg.verify_samples);
    let mut s0 = e.reset();
    while transitions.len() < cfg.verify_samples {
        let a = random_action(&e.action_space(), &mut rng);
        let st = e.step(&a)?;
        transitions.push((s0, action_row(&a), st.obs.clone()));
        s0 = if st.terminated || st.truncated { e.reset() } else { st.obs };
    }
    let (enc, rejected) = consolidate(&cands, &transitions)?;
    Ok((Redistributor::new(cfg.clone(), enc), rejected))
}

/// How an environment's reward reaches the learner.
#[derive(Clone)]
pub enum RewardMode {
    /// Every step's reward (the environment as built).
    Dense,
    /// Nothing until the episode ends, then the episode's whole return.
    Episodic,
    /// LaRe's decoded latent reward (0 until the first fit).
    Lare(Arc<Mutex<Redistributor>>),
}

/// An environment whose per-step reward is withheld: the episodic return arrives on its last step,
/// or LaRe's dense estimate replaces it.
pub struct Delayed {
    inner: Box<dyn Env>,
    lare: Option<Arc<Mutex<Redistributor>>>,
    last_obs: Vec<f32>,
    z: Vec<Vec<f64>>,
    ret: f64,
}

impl Delayed {
    pub fn new(inner: Box<dyn Env>, lare: Option<Arc<Mutex<Redistributor>>>) -> Self {
        Self { inner, lare, last_obs: Vec::new(), z: Vec::new(), ret: 0.0 }
    }
}

impl Env for Delayed {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn observation_space(&self) -> Space {
        self.inner.observation_space()
    }
    fn action_space(&self) -> Space {
        self.inner.action_space()
    }
    fn max_steps(&self) -> usize {
        self.inner.max_steps()
    }
    fn reset(&mut self) -> Vec<f32> {
        self.last_obs = self.inner.reset();
        self.z.clear();
        self.ret = 0.0;
        self.last_obs.clone()
    }
    fn step(&mut self, action: &Action) -> Result<Step> {
        let mut st = self.inner.step(action)?;
        self.ret += st.reward;
        let done = st.terminated || st.truncated;
        st.reward = if done { self.ret } else { 0.0 };
        if let Some(shared) = &self.lare {
            let av = action_row(action);
            let mut r = shared.lock().map_err(|_| anyhow::anyhow!("LaRe: the shared decoder was poisoned"))?;
            let z = r.encoder.encode(&self.last_obs, &av, &st.obs);
            st.reward = r.decoder.as_ref().map_or(0.0, |d| d.reward(&z));
            self.z.push(z);
            if done {
                r.finish(std::mem::take(&mut self.z), self.ret);
            }
        }
        self.last_obs = st.obs.clone();
        Ok(st)
    }
    fn success(&self) -> Option<bool> {
        self.inner.success()
    }
    fn save(&self) -> EnvState {
        self.inner.save()
    }
    fn restore(&mut self, state: &EnvState) -> Result<()> {
        // (Only the inner environment: runs with a reward wrapper are not resumable, see
        // `ControlConfig::validate`.)
        self.inner.restore(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn decomposition_recovers_the_per_step_weights() {
        // Synthetic R = Σ_t w·z_t with w = (2, −1, 0.5): the fitted decoder's step rewards equal
        // w·z_t (its standardised weights map back to w).
        let mut rng = oxrl_core::seed::Rng::seed_from_u64(0);
        let w = [2.0, -1.0, 0.5];
        let eps: Vec<(Vec<Vec<f64>>, f64)> = (0..200)
            .map(|_| {
                let t = rng.random_range(5..30);
                let zs: Vec<Vec<f64>> =
                    (0..t).map(|_| (0..3).map(|_| rng.random::<f64>() * 4.0 - 1.0).collect()).collect();
                let r = zs.iter().map(|z| z.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>()).sum();
                (zs, r)
            })
            .collect();
        let d = fit(&eps, 1e-6).unwrap();
        for (i, wi) in w.iter().enumerate() {
            assert!((d.w[i] / d.std[i] - wi).abs() < 1e-4, "w[{i}] = {} vs {wi}", d.w[i] / d.std[i]);
        }
        let z = [0.3, -0.7, 1.1];
        let want: f64 = z.iter().zip(&w).map(|(a, b)| a * b).sum();
        assert!((d.reward(&z) - want).abs() < 1e-4);
    }

    #[test]
    fn a_reward_irrelevant_factor_gets_no_weight() {
        let mut rng = oxrl_core::seed::Rng::seed_from_u64(1);
        let eps: Vec<(Vec<Vec<f64>>, f64)> = (0..300)
            .map(|_| {
                let zs: Vec<Vec<f64>> = (0..20).map(|_| vec![rng.random::<f64>(), rng.random::<f64>()]).collect();
                let r = zs.iter().map(|z| -3.0 * z[0]).sum();
                (zs, r)
            })
            .collect();
        let with = fit(&eps, 1e-3).unwrap();
        let without =
            fit(&eps.iter().map(|(z, r)| (z.iter().map(|v| vec![v[0]]).collect(), *r)).collect::<Vec<_>>(), 1e-3)
                .unwrap();
        assert!(with.w[1].abs() < 1e-3 * with.w[0].abs(), "noise weight {} vs {}", with.w[1], with.w[0]);
        // The fitted returns do not change when the irrelevant factor is added.
        for (zs, _) in eps.iter().take(20) {
            let a: f64 = zs.iter().map(|z| with.reward(z)).sum();
            let b: f64 = zs.iter().map(|z| without.reward(&z[..1])).sum();
            assert!((a - b).abs() < 1e-3 * a.abs().max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn self_verification_rejects_crashes_nan_and_changing_dimensions() {
        let ok = Candidate { name: "ok", f: |s, _, _| vec![s[0] as f64] };
        let panics = Candidate { name: "panics", f: |s, _, _| vec![[1.0][s.len()]] };
        let nan = Candidate { name: "nan", f: |s, _, _| vec![(s[0] as f64 - 1.0).ln()] };
        let dims = Candidate { name: "dims", f: |s, _, _| vec![0.0; 1 + (s[0] > 0.5) as usize] };
        let tr: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> =
            [0.2f32, 0.9].iter().map(|&x| (vec![x], vec![0.0], vec![x])).collect();
        let v = verify(&[ok, panics, nan, dims], &tr);
        assert_eq!(v[0], Ok(1));
        assert!(v[1].as_ref().unwrap_err().contains("panicked"));
        assert!(v[2].as_ref().unwrap_err().contains("non-finite"));
        assert!(v[3].as_ref().unwrap_err().contains("2 values after 1"));
        let (enc, rejected) = consolidate(&[ok, panics, nan, dims], &tr).unwrap();
        assert_eq!((enc.names(), rejected.len()), (vec!["ok"], 3));
        assert!(consolidate(&[panics], &tr).err().unwrap().to_string().contains("every candidate"));
    }

    #[test]
    fn builtin_candidates_lose_the_buggy_sample_and_redistribute_reach_returns() {
        // Reach's true reward is −‖p' − g‖ per step; from episodic returns of random episodes
        // alone, LaRe's decoded rewards match the true per-step rewards.
        let cfg = LareConfig { refit_every: 40, ..Default::default() };
        let (r, rejected) = build("reach", &cfg, 0).unwrap();
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        assert!(rejected[0].contains("buggy"));
        let shared = Arc::new(Mutex::new(r));
        let mut env = Delayed::new(crate::env::make("reach", 3).unwrap(), Some(shared.clone()));
        let mut rng = oxrl_core::seed::rng(0, "test", 0);
        let mut plain = crate::env::make("reach", 3).unwrap();
        let (mut truth, mut decoded) = (Vec::new(), Vec::new());
        for ep in 0..60 {
            env.reset();
            plain.reset();
            loop {
                let a = random_action(&env.action_space(), &mut rng);
                let (st, sp) = (env.step(&a).unwrap(), plain.step(&a).unwrap());
                let fitted = shared.lock().unwrap().fits > 0;
                if ep >= 40 && fitted {
                    truth.push(sp.reward);
                    decoded.push(st.reward);
                } else if !fitted {
                    assert_eq!(st.reward, 0.0, "before the first fit: no reward");
                }
                if st.terminated || st.truncated {
                    break;
                }
            }
        }
        let err = truth.iter().zip(&decoded).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(truth.len() > 500 && err < 1e-3, "max |r̂ − r| = {err} over {} steps", truth.len());
        // Pendulum's buggy candidate is the non-finite one.
        let (_, rejected) = build("pendulum", &cfg, 0).unwrap();
        assert!(rejected.len() == 1 && rejected[0].contains("non-finite"), "{rejected:?}");
        assert!(build("cartpole", &cfg, 0).is_err());
    }

    #[test]
    fn episodic_wrapper_pays_the_whole_return_on_the_last_step() {
        let mut env = Delayed::new(crate::env::make("pendulum", 5).unwrap(), None);
        let mut plain = crate::env::make("pendulum", 5).unwrap();
        env.reset();
        plain.reset();
        let mut total = 0.0;
        let a = Action::Continuous(vec![0.5]);
        loop {
            let (st, sp) = (env.step(&a).unwrap(), plain.step(&a).unwrap());
            total += sp.reward;
            if st.truncated || st.terminated {
                assert!((st.reward - total).abs() < 1e-9);
                break;
            }
            assert_eq!(st.reward, 0.0);
        }
    }
}
