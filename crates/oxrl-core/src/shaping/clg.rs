//! VLM-RL's contrasting-language-goal (CLG) reward — "A Unified VLM + RL Framework for Safe
//! Autonomous Driving" (2024/25).
//!
//! 1. With unit-normalised embeddings of the frame and of a positive and a negative goal text,
//!    `z = cos(e_img, e_neg) − cos(e_img, e_pos)` and
//!    `r_CLG = 1 − clip(z, 0, θ)/θ` ∈ [0, 1] (1 when the frame is nearer the positive goal, 0 when
//!    the negative leads by θ or more).
//! 2. Hierarchical synthesis with the vehicle state: `v_des = r_CLG·v_target`,
//!    `r_speed = 1 − |v − v_des|/v_target`, `f_center = max(1 − d/d_max, 0)`,
//!    `f_angle = max(1 − |angle|/angle_max, 0)`, `f_std = max(1 − std(d history)/std_max, 0)`,
//!    `r = r_speed·f_center·f_angle·f_std`; a negative base reward (collision, terminal penalty)
//!    overrides r.
//! 3. Frames are embedded in batches when a rollout ends and the rewards written back into the
//!    replay buffer's slots of that rollout (a ring buffer: the slots may wrap).
//!
//! The image and text encoders sit behind [`Embedder`] (CLIP in the paper); [`Projection`] is the
//! spec's CPU stand-in: a fixed random projection of a rendered frame, with the goal texts
//! embedded as the projections of prototype frames (clear road / overlapping the obstacle).
//!
//! CONFIRMED from zihaosheng/VLM-RL (clip_reward_model.py forward_vlm_rl,
//! clip_rewarded_sac.py _compute_clip_rewards, carla_env/rewards.py reward_fn5; defaults θ 0.03,
//! v_target 25 km/h, d_max 3 m, angle_max 90°, std_max 0.4, penalty −10).

/// An image and text encoder into one embedding space.
pub trait Embedder {
    fn embed_images(&self, frames: &[Vec<f32>]) -> Vec<Vec<f32>>;
    fn embed_text(&self, text: &str) -> Vec<f32>;
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// r_CLG from z = cos_neg − cos_pos and θ > 0.
pub fn clg_score(z: f64, theta: f64) -> f64 {
    1.0 - z.clamp(0.0, theta) / theta
}

/// r_CLG of one frame embedding against the goal embeddings.
pub fn clg_reward(img: &[f32], pos: &[f32], neg: &[f32], theta: f64) -> f64 {
    clg_score(cosine(img, neg) - cosine(img, pos), theta)
}

/// VLM-RL's constants (the released defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Synthesis {
    pub theta: f64,
    pub v_target: f64,
    pub d_max: f64,
    pub angle_max: f64,
    pub std_max: f64,
}

impl Default for Synthesis {
    fn default() -> Self {
        Self { theta: 0.03, v_target: 25.0, d_max: 3.0, angle_max: 90.0, std_max: 0.4 }
    }
}

/// The vehicle state the synthesis reads.
#[derive(Debug, Clone, PartialEq)]
pub struct VehicleState {
    pub speed: f64,
    /// Lateral distance from the lane centre.
    pub d_center: f64,
    /// Heading angle to the lane (degrees).
    pub angle: f64,
    /// Recent lateral distances (for their standard deviation).
    pub d_history: Vec<f64>,
}

/// The synthesised reward from r_CLG and the state; a negative `base` (collision or terminal
/// penalty) passes through unchanged.
pub fn synthesize(r_clg: f64, s: &VehicleState, base: f64, c: &Synthesis) -> f64 {
    if base < 0.0 {
        return base;
    }
    let v_des = r_clg * c.v_target;
    let r_speed = 1.0 - (s.speed - v_des).abs() / c.v_target;
    let f_center = (1.0 - s.d_center.abs() / c.d_max).max(0.0);
    let f_angle = (1.0 - s.angle.abs() / c.angle_max).max(0.0);
    let n = s.d_history.len().max(1) as f64;
    let m = s.d_history.iter().sum::<f64>() / n;
    let sd = (s.d_history.iter().map(|d| (d - m).powi(2)).sum::<f64>() / n).sqrt();
    let f_std = (1.0 - sd / c.std_max).max(0.0);
    r_speed * f_center * f_angle * f_std
}

/// Batch processing: embed a rollout's frames in one call and write each frame's r_CLG into the
/// ring buffer `rewards` from slot `start` on (wrapping at its end).
pub fn write_back(
    embedder: &dyn Embedder,
    frames: &[Vec<f32>],
    pos_text: &str,
    neg_text: &str,
    theta: f64,
    rewards: &mut [f64],
    start: usize,
) {
    let (pos, neg) = (embedder.embed_text(pos_text), embedder.embed_text(neg_text));
    let n = rewards.len();
    for (i, e) in embedder.embed_images(frames).iter().enumerate() {
        rewards[(start + i) % n] = clg_reward(e, &pos, &neg, theta);
    }
}

/// The CPU stand-in for CLIP: a rendered frame's pixels are split into one channel per pixel
/// level (e.g. obstacle, agent, agent overlapping the obstacle), then a fixed random projection
/// (which keeps cosines up to ~1/√dim); a goal text embeds as its prototype frame, e.g. a frame
/// full of "overlap" pixels for the negative goal, so frames showing a collision align with it.
pub struct Projection {
    levels: Vec<f32>,
    w: Vec<Vec<f32>>,
    texts: Vec<(String, Vec<f32>)>,
}

impl Projection {
    /// A `dim` × (levels × frame_len) Gaussian projection from `seed`, with (text, prototype
    /// frame) pairs.
    pub fn new(levels: &[f32], frame_len: usize, dim: usize, seed: u64, prototypes: &[(&str, Vec<f32>)]) -> Self {
        use rand_distr::{Distribution, StandardNormal};
        let mut rng = crate::seed::rng(seed, "clg-projection", 0);
        let w: Vec<Vec<f32>> = (0..dim)
            .map(|_| (0..levels.len() * frame_len).map(|_| StandardNormal.sample(&mut rng)).collect::<Vec<f32>>())
            .collect();
        let mut p = Self { levels: levels.to_vec(), w, texts: Vec::new() };
        p.texts = prototypes.iter().map(|(t, f)| (t.to_string(), p.project(f))).collect();
        p
    }
    fn project(&self, f: &[f32]) -> Vec<f32> {
        let n = f.len();
        let x: Vec<f32> =
            (0..self.levels.len() * n).map(|k| ((f[k % n] - self.levels[k / n]).abs() < 1e-6) as u8 as f32).collect();
        self.w.iter().map(|row| row.iter().zip(&x).map(|(a, b)| a * b).sum()).collect()
    }
}

impl Embedder for Projection {
    fn embed_images(&self, frames: &[Vec<f32>]) -> Vec<Vec<f32>> {
        frames.iter().map(|f| self.project(f)).collect()
    }
    fn embed_text(&self, text: &str) -> Vec<f32> {
        self.texts.iter().find(|(t, _)| t == text).map(|(_, e)| e.clone()).unwrap_or_else(|| vec![0.0; self.w.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clg_score_oracles() {
        let th = 0.03;
        assert_eq!(clg_score(-0.2, th), 1.0);
        assert_eq!(clg_score(0.0, th), 1.0);
        assert_eq!(clg_score(th, th), 0.0);
        assert_eq!(clg_score(0.5, th), 0.0);
        assert!((clg_score(th / 2.0, th) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn synthesis_oracles() {
        let c = Synthesis::default();
        let calm = VehicleState { speed: 0.0, d_center: 0.0, angle: 0.0, d_history: vec![0.1; 5] };
        // r_CLG = 0 → v_des = 0: a stopped car is rewarded fully (stopping in danger).
        assert_eq!(synthesize(0.0, &calm, 0.0, &c), 1.0);
        assert_eq!(synthesize(1.0, &calm, 0.0, &c), 0.0, "stopped on a clear road: r_speed 0");
        let cruising = VehicleState { speed: 25.0, ..calm.clone() };
        assert_eq!(synthesize(1.0, &cruising, 0.0, &c), 1.0);
        // Any factor at 0 zeroes the product.
        for s in [
            VehicleState { d_center: 3.0, ..cruising.clone() },
            VehicleState { angle: -90.0, ..cruising.clone() },
            VehicleState { d_history: vec![-0.4, 0.4], ..cruising.clone() },
        ] {
            assert_eq!(synthesize(1.0, &s, 0.0, &c), 0.0, "{s:?}");
        }
        let half = VehicleState { d_center: 1.5, ..cruising };
        assert!((synthesize(1.0, &half, 0.0, &c) - 0.5).abs() < 1e-12);
        // A negative base reward passes through.
        assert_eq!(synthesize(1.0, &half, -10.0, &c), -10.0);
    }

    /// A 16 × 16 frame: the obstacle at rows 6..10, columns 6..10; the agent a 3 × 3 square.
    fn frame(ar: usize, ac: usize) -> Vec<f32> {
        let mut f = vec![0f32; 256];
        for r in 6..10 {
            for c in 6..10 {
                f[r * 16 + c] = 0.5;
            }
        }
        for r in ar..ar + 3 {
            for c in ac..ac + 3 {
                f[r * 16 + c] += 1.0;
            }
        }
        f
    }

    #[test]
    fn stand_in_embedder_penalises_frames_overlapping_the_obstacle_and_writes_back_around_the_ring() {
        let (pos, neg) =
            ("the road is clear with no car accidents", "two cars have collided with each other on the road");
        // Pixel levels: obstacle 0.5, agent 1.0, agent on the obstacle 1.5.
        let (agent_everywhere, overlap_everywhere) = (vec![1.0f32; 256], vec![1.5f32; 256]);
        let e = Projection::new(&[0.5, 1.0, 1.5], 256, 1024, 0, &[(pos, agent_everywhere), (neg, overlap_everywhere)]);
        let far: Vec<Vec<f32>> = [(0, 12), (12, 0), (13, 13), (1, 1)].iter().map(|&(r, c)| frame(r, c)).collect();
        let hit: Vec<Vec<f32>> = [(7, 7), (6, 6), (7, 6)].iter().map(|&(r, c)| frame(r, c)).collect();
        let mut ring = vec![f64::NAN; 5];
        // 7 frames from slot 3 of a 5-slot ring: slots 3, 4, 0, 1, 2, then 3, 4 again.
        let frames: Vec<Vec<f32>> = far.iter().chain(&hit).cloned().collect();
        write_back(&e, &frames, pos, neg, 0.03, &mut ring, 3);
        assert!(ring.iter().all(|r| r.is_finite()));
        let scores: Vec<f64> = e
            .embed_images(&frames)
            .iter()
            .map(|x| clg_reward(x, &e.embed_text(pos), &e.embed_text(neg), 0.03))
            .collect();
        assert_eq!(ring[3], scores[5], "the wrapped write overwrote slot 3 with frame 5");
        assert_eq!(ring[0], scores[2]);
        eprintln!("CLG scores clear {:?}, overlapping {:?}", &scores[..4], &scores[4..]);
        assert!(scores[..4].iter().all(|&s| s > 0.9) && scores[4..].iter().all(|&s| s < 0.1), "{scores:?}");
    }
}
