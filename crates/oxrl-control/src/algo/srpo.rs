//! SRPO — "Self-Referential Policy Optimization for Vision-Language-Action Models" (2025): dense
//! progress rewards for group RL from the group's own successes. INFERRED (structure from public
//! summaries; the normalisation is a reasoned choice):
//!
//! 1. Encode each trajectory with a frozen encoder: h_i = Enc(o^i_{0:T}). Here Enc is a fixed
//!    random projection of every observation, averaged over the trajectory (`embed = "mean"`) or of
//!    its last observation (`"final"`) — the spec's CPU stand-in for a video world-model encoder.
//! 2. References: the group's successful trajectories (all of them serve as cluster centres).
//! 3. A failure's distance d_i = min_j ‖h_i − h_j‖ over successes j; its reward
//!    r_i = scale · (1 − d_i / max_k d_k) over the group's failures k, so a failure that looks like
//!    a success gets `scale` (< 1: below every success), the farthest failure 0.
//! 4. Successes get 1. A group with no success keeps its binary rewards (all 0: zero advantage);
//!    an all-success group is all 1 (zero advantage too).
//! 5. The rewards then go through GRPO's group normalisation ([`super::grpo`]).

use anyhow::{bail, Result};
use oxrl_core::seed::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// `[grpo.srpo]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SrpoConfig {
    /// The largest failure reward (must stay below the success reward 1).
    pub scale: f64,
    /// `mean` (average over the trajectory) or `final` (last observation).
    pub embed: String,
    pub embed_dim: usize,
}

impl Default for SrpoConfig {
    fn default() -> Self {
        Self { scale: 0.5, embed: "mean".into(), embed_dim: 32 }
    }
}

impl SrpoConfig {
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.scale) {
            bail!("grpo.srpo.scale: must be in [0, 1) so that every failure scores below a success");
        }
        if !matches!(self.embed.as_str(), "mean" | "final") {
            bail!("grpo.srpo.embed: {:?} (mean or final)", self.embed);
        }
        if self.embed_dim == 0 {
            bail!("grpo.srpo.embed_dim: must be positive");
        }
        Ok(())
    }
}

/// The frozen trajectory encoder: a fixed Gaussian random projection (obs_dim → embed_dim, scaled
/// by 1/√embed_dim) of each observation, pooled over the trajectory.
pub struct TrajectoryEncoder {
    proj: Vec<f32>,
    obs_dim: usize,
    dim: usize,
    last_only: bool,
}

impl TrajectoryEncoder {
    pub fn new(cfg: &SrpoConfig, obs_dim: usize, rng: &mut Rng) -> Self {
        let s = 1.0 / (cfg.embed_dim as f64).sqrt();
        let proj = (0..obs_dim * cfg.embed_dim)
            .map(|_| {
                let z: f64 = StandardNormal.sample(rng);
                (z * s) as f32
            })
            .collect::<Vec<f32>>();
        Self { proj, obs_dim, dim: cfg.embed_dim, last_only: cfg.embed == "final" }
    }
    fn project(&self, o: &[f32], out: &mut [f32], w: f32) {
        for (i, &x) in o.iter().enumerate().take(self.obs_dim) {
            if x != 0.0 {
                let row = &self.proj[i * self.dim..(i + 1) * self.dim];
                for (acc, p) in out.iter_mut().zip(row) {
                    *acc += w * x * p;
                }
            }
        }
    }
    pub fn embed(&self, traj: &[Vec<f32>]) -> Vec<f32> {
        let mut h = vec![0f32; self.dim];
        if traj.is_empty() {
            return h;
        }
        if self.last_only {
            self.project(traj.last().unwrap(), &mut h, 1.0);
        } else {
            let w = 1.0 / traj.len() as f32;
            for o in traj {
                self.project(o, &mut h, w);
            }
        }
        h
    }
}

/// SRPO rewards of one group from its trajectory embeddings and success flags.
pub fn progress_rewards(embeds: &[Vec<f32>], success: &[bool], scale: f64) -> Vec<f64> {
    let refs: Vec<&Vec<f32>> = embeds.iter().zip(success).filter(|(_, s)| **s).map(|(h, _)| h).collect();
    if refs.is_empty() {
        return vec![0.0; success.len()];
    }
    let dist = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>().sqrt();
    let d: Vec<f64> = embeds.iter().map(|h| refs.iter().map(|r| dist(h, r)).fold(f64::INFINITY, f64::min)).collect();
    let d_max = d.iter().zip(success).filter(|(_, s)| !**s).map(|(d, _)| *d).fold(0.0, f64::max);
    d.iter()
        .zip(success)
        .map(|(&di, &s)| {
            if s {
                1.0
            } else if d_max > 0.0 {
                scale * (1.0 - di / d_max)
            } else {
                scale
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn progress_rewards_oracles() {
        let h = |x: f32| vec![x, 0.0];
        // successes at 0; failures at 0 (identical to a success), 1, 3
        let e = vec![h(0.0), h(0.0), h(1.0), h(3.0), h(0.0)];
        let s = [true, false, false, false, true];
        let r = progress_rewards(&e, &s, 0.5);
        assert_eq!(r[0], 1.0);
        assert_eq!(r[4], 1.0);
        assert_eq!(r[1], 0.5, "a failure identical to a success gets the largest failure reward");
        assert!((r[2] - 0.5 * (1.0 - 1.0 / 3.0)).abs() < 1e-12);
        assert_eq!(r[3], 0.0);
        // monotone non-increasing in distance; every failure below every success
        assert!(r[1] >= r[2] && r[2] >= r[3]);
        assert!(r.iter().zip(s).filter(|(_, s)| !*s).all(|(r, _)| *r < 1.0));
        // no success: binary fallback (all zero, so GRPO gives zero advantages)
        assert_eq!(progress_rewards(&e, &[false; 5], 0.5), vec![0.0; 5]);
        // all success: all one
        assert_eq!(progress_rewards(&e, &[true; 5], 0.5), vec![1.0; 5]);
        // the nearest success counts
        let e = vec![h(0.0), h(10.0), h(9.0), h(2.0)];
        let r = progress_rewards(&e, &[true, true, false, false], 0.5);
        assert!((r[2] - 0.5 * (1.0 - 1.0 / 2.0)).abs() < 1e-12, "9 is 1 from the success at 10: {r:?}");
    }

    #[test]
    fn the_encoder_is_a_fixed_linear_map_pooled_over_time() {
        let cfg = SrpoConfig { embed_dim: 4, ..Default::default() };
        let mut rng = Rng::seed_from_u64(0);
        let enc = TrajectoryEncoder::new(&cfg, 3, &mut rng);
        let a = vec![1.0f32, 0.0, 0.0];
        let b = vec![0.0f32, 2.0, 0.0];
        let ha = enc.embed(std::slice::from_ref(&a));
        let hb = enc.embed(std::slice::from_ref(&b));
        let hab = enc.embed(&[a.clone(), b.clone()]);
        for i in 0..4 {
            assert!((hab[i] - 0.5 * (ha[i] + hb[i])).abs() < 1e-6);
        }
        let fin =
            TrajectoryEncoder::new(&SrpoConfig { embed: "final".into(), ..cfg.clone() }, 3, &mut Rng::seed_from_u64(0));
        assert_eq!(fin.embed(&[a, b.clone()]), hb);
        assert!(SrpoConfig { scale: 1.0, ..cfg }.validate().is_err());
    }
}
