//! HECRL's subgoal generator — "Hierarchical Entity-centric RL with Factored Subgoal Diffusion"
//! (2026): a conditional diffusion model (DDPM) over the triple [s, w, g] — the current state, a
//! waypoint w = s_{t+k} of the same trajectory, and the goal — trained with the standard
//! denoising loss on the w slot while s and g are inpainted: they stay clean in training, and
//! after every reverse step of sampling they are restored exactly, so only w is generated.
//!
//! Forward process q(w_t | w_0) = N(√ᾱ_t·w_0, (1 − ᾱ_t) I) with a linear β schedule over
//! `steps` (10 in HECRL); reverse step w_{t−1} = (w_t − β_t/√(1 − ᾱ_t)·ε̂) / √α_t + σ_t·z,
//! σ_t² = β_t (z = 0 at the last step). Inputs are standardised per dimension with the dataset's
//! statistics. Differences, stated: the denoiser is an MLP over the flat triple plus a sinusoidal
//! step embedding, not the paper's factored entity transformer.

use crate::nn::{rows, Activation, Init, Mlp};
use anyhow::{bail, Result};
use candle_core::{Device, Tensor, Var, D};
use oxrl_core::seed::Rng;
use rand_distr::{Distribution, StandardNormal};

/// A linear β schedule from `lo` to `hi` over `steps`, with α_t = 1 − β_t and ᾱ_t = Π α.
pub fn schedule(steps: usize, lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let beta: Vec<f64> =
        (0..steps).map(|i| if steps == 1 { lo } else { lo + (hi - lo) * i as f64 / (steps - 1) as f64 }).collect();
    let alpha: Vec<f64> = beta.iter().map(|b| 1.0 - b).collect();
    let mut bar = Vec::with_capacity(steps);
    let mut acc = 1.0;
    for a in &alpha {
        acc *= a;
        bar.push(acc);
    }
    (beta, alpha, bar)
}

/// The conditional DDPM: slot sizes (s, w, g), the denoiser and the data statistics.
pub struct SubgoalDiffusion {
    pub net: Mlp,
    pub state_dim: usize,
    pub goal_dim: usize,
    pub steps: usize,
    beta: Vec<f64>,
    alpha: Vec<f64>,
    bar: Vec<f64>,
    /// Per-dimension mean and std of the triple (standardisation).
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    dev: Device,
}

const T_EMB: usize = 8;

impl SubgoalDiffusion {
    pub fn new(
        state_dim: usize,
        goal_dim: usize,
        hidden: usize,
        steps: usize,
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<Self> {
        if steps == 0 {
            bail!("gc.subgoals.diffusion_steps must be positive");
        }
        let d = 2 * state_dim + goal_dim;
        let net = Mlp::new(&[d + T_EMB, hidden, hidden, state_dim], Activation::Relu, Init::Uniform, rng, dev)?;
        let (beta, alpha, bar) = schedule(steps, 1e-3, 0.3);
        Ok(Self {
            net,
            state_dim,
            goal_dim,
            steps,
            beta,
            alpha,
            bar,
            mean: vec![0.0; d],
            std: vec![1.0; d],
            dev: dev.clone(),
        })
    }

    pub fn vars(&self) -> Vec<(String, Var)> {
        self.net.vars("diffusion")
    }

    /// Standardise with statistics of `triples` (rows [s, w, g]).
    pub fn fit_statistics(&mut self, triples: &[Vec<f32>]) {
        let d = self.mean.len();
        let n = triples.len().max(1) as f64;
        for i in 0..d {
            let m = triples.iter().map(|r| r[i] as f64).sum::<f64>() / n;
            let v = triples.iter().map(|r| (r[i] as f64 - m).powi(2)).sum::<f64>() / n;
            self.mean[i] = m as f32;
            self.std[i] = v.sqrt().max(1e-3) as f32;
        }
    }

    fn standardise(&self, x: &[f32]) -> Vec<f32> {
        x.iter().enumerate().map(|(i, v)| (v - self.mean[i]) / self.std[i]).collect()
    }

    fn time_embedding(&self, t: &[usize]) -> Result<Tensor> {
        let e: Vec<Vec<f32>> = t
            .iter()
            .map(|&t| {
                (0..T_EMB / 2)
                    .flat_map(|k| {
                        let f = t as f64 / 10f64.powf(k as f64);
                        [f.sin() as f32, f.cos() as f32]
                    })
                    .collect()
            })
            .collect();
        rows(&e, &self.dev)
    }

    fn eps_hat(&self, x: &Tensor, t: &[usize]) -> Result<Tensor> {
        self.net.forward(&Tensor::cat(&[x, &self.time_embedding(t)?], D::Minus1)?)
    }

    /// The denoising loss on the w slot: ‖ε − ε̂([s, √ᾱ_t w + √(1 − ᾱ_t) ε, g], t)‖², t uniform.
    pub fn loss(&self, triples: &[Vec<f32>], rng: &mut Rng) -> Result<Tensor> {
        use rand::Rng as _;
        let (s, g) = (self.state_dim, self.goal_dim);
        let mut x = Vec::with_capacity(triples.len());
        let mut eps = Vec::with_capacity(triples.len());
        let mut ts = Vec::with_capacity(triples.len());
        for tr in triples {
            let z = self.standardise(tr);
            let t = rng.random_range(0..self.steps);
            let e: Vec<f32> = (0..s).map(|_| StandardNormal.sample(rng)).collect();
            let (a, b) = (self.bar[t].sqrt() as f32, (1.0 - self.bar[t]).sqrt() as f32);
            let mut row = z[..s].to_vec();
            row.extend(z[s..2 * s].iter().zip(&e).map(|(w, e)| a * w + b * e));
            row.extend_from_slice(&z[2 * s..2 * s + g]);
            x.push(row);
            eps.push(e);
            ts.push(t);
        }
        let pred = self.eps_hat(&rows(&x, &self.dev)?, &ts)?;
        Ok((pred - rows(&eps, &self.dev)?)?.sqr()?.mean_all()?)
    }

    /// `n` waypoints for state `s` and goal `g` (in data units), by ancestral sampling with s and g
    /// restored after every step; `trace` receives each step's full triple (standardised).
    pub fn sample(
        &self,
        s: &[f32],
        g: &[f32],
        n: usize,
        rng: &mut Rng,
        trace: &mut dyn FnMut(&[Vec<f32>]),
    ) -> Result<Vec<Vec<f32>>> {
        let sd = self.state_dim;
        let mut cond = s.to_vec();
        cond.extend(vec![0.0; sd]);
        cond.extend_from_slice(g);
        let z = self.standardise(&cond);
        let (zs, zg) = (z[..sd].to_vec(), z[2 * sd..].to_vec());
        let mut w: Vec<Vec<f32>> = (0..n).map(|_| (0..sd).map(|_| StandardNormal.sample(rng)).collect()).collect();
        for t in (0..self.steps).rev() {
            let x: Vec<Vec<f32>> = w.iter().map(|wi| [zs.as_slice(), wi, &zg].concat()).collect();
            let e = self.eps_hat(&rows(&x, &self.dev)?, &vec![t; n])?.to_vec2::<f32>()?;
            let (beta, alpha, bar) = (self.beta[t], self.alpha[t], self.bar[t]);
            for (wi, ei) in w.iter_mut().zip(&e) {
                for (v, ev) in wi.iter_mut().zip(ei) {
                    let noise: f64 = if t > 0 { StandardNormal.sample(rng) } else { 0.0 };
                    let mean = (*v as f64 - beta / (1.0 - bar).sqrt() * *ev as f64) / alpha.sqrt();
                    *v = (mean + beta.sqrt() * noise) as f32;
                }
            }
            // inpainting: the conditioned slots are the clean s and g again
            let full: Vec<Vec<f32>> = w.iter().map(|wi| [zs.as_slice(), wi, &zg].concat()).collect();
            trace(&full);
        }
        Ok(w.into_iter()
            .map(|wi| wi.iter().enumerate().map(|(i, v)| v * self.std[sd + i] + self.mean[sd + i]).collect())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxrl_core::optim::{AdamW, AdamWConfig};
    use rand::SeedableRng;

    #[test]
    fn the_schedule_is_linear_and_alpha_bar_its_running_product() {
        let (b, a, bar) = schedule(3, 0.1, 0.3);
        assert_eq!(b.len(), 3);
        assert!((b[1] - 0.2).abs() < 1e-12 && (a[2] - 0.7).abs() < 1e-12);
        assert!((bar[2] - 0.9 * 0.8 * 0.7).abs() < 1e-12);
    }

    #[test]
    fn inpainting_restores_the_conditioned_slots_after_every_step_and_training_fits_waypoints() {
        let dev = Device::Cpu;
        let mut rng = Rng::seed_from_u64(0);
        let mut m = SubgoalDiffusion::new(2, 2, 32, 10, &mut rng, &dev).unwrap();
        // toy data: w is halfway between s and g
        let triples: Vec<Vec<f32>> = (0..512)
            .map(|i| {
                let s = [(i % 7) as f32, (i % 5) as f32];
                let g = [(i % 3) as f32 * 2.0, (i % 11) as f32];
                vec![s[0], s[1], (s[0] + g[0]) / 2.0, (s[1] + g[1]) / 2.0, g[0], g[1]]
            })
            .collect();
        m.fit_statistics(&triples);
        let (s, g) = ([1.0f32, 4.0], [4.0f32, 0.0]);
        let zs: Vec<f32> = (0..2).map(|i| (s[i] - m.mean[i]) / m.std[i]).collect();
        let zg: Vec<f32> = (0..2).map(|i| (g[i] - m.mean[4 + i]) / m.std[4 + i]).collect();
        let mut steps = 0;
        m.sample(&s, &g, 4, &mut rng, &mut |x| {
            steps += 1;
            for row in x {
                assert_eq!(&row[..2], zs.as_slice());
                assert_eq!(&row[4..], zg.as_slice());
            }
        })
        .unwrap();
        assert_eq!(steps, 10);
        // training lowers the denoising loss and the samples land near the midpoint
        let mut opt = AdamW::new(m.vars(), AdamWConfig::default()).unwrap();
        let l0 = m.loss(&triples, &mut rng).unwrap().to_scalar::<f32>().unwrap();
        for _ in 0..600 {
            let batch: Vec<Vec<f32>> = (0..64).map(|k| triples[(k * 37 + steps * 11) % 512].clone()).collect();
            steps += 1;
            let l = m.loss(&batch, &mut rng).unwrap();
            opt.step(&l.backward().unwrap(), 3e-3, 10.0).unwrap();
        }
        let l1 = m.loss(&triples, &mut rng).unwrap().to_scalar::<f32>().unwrap();
        assert!(l1 < 0.6 * l0, "{l0} -> {l1}");
        let w = m.sample(&s, &g, 64, &mut rng, &mut |_| {}).unwrap();
        let mean = |i: usize| w.iter().map(|x| x[i]).sum::<f32>() / w.len() as f32;
        assert!((mean(0) - 2.5).abs() < 0.6 && (mean(1) - 2.0).abs() < 0.6, "{} {}", mean(0), mean(1));
    }
}
