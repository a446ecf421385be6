//! Pre-training data for the representation objectives: episodes of rendered frames from the pixel
//! gridworld under a uniform random policy, with the actions and rewards (used only by the
//! action- or reward-conditioned objectives — the video-only ones read frames alone) and the
//! ground-truth agent / goal / distractor cells for linear probes.
//!
//! Samplers (spec "Video-representation study", pair sampler oracle): a k-step pair (t, t + k) lies
//! inside one episode; a negative for the anchor t is any frame other than t and t + k.

use crate::env::pixel_grid::{Cell, Noise, Variant};
use crate::env::{Action, Env};
use anyhow::{bail, Result};
use oxrl_core::seed::Rng;
use rand::Rng as _;

pub struct Video {
    pub frame_dim: usize,
    /// n × frame_dim, episodes back to back.
    pub frames: Vec<f32>,
    /// Action taken at frame t (meaningful where `has_next[t]`).
    pub actions: Vec<usize>,
    /// Reward received for that action.
    pub rewards: Vec<f32>,
    /// The transition t → t+1 ended the episode at a true terminal (the goal).
    pub terminal: Vec<bool>,
    /// Frame t + 1 belongs to the same episode.
    pub has_next: Vec<bool>,
    /// One past the last frame of frame t's episode.
    pub episode_end: Vec<usize>,
    pub agent: Vec<Cell>,
    pub goal: Vec<Cell>,
    /// The first distractor's cell (exogenous mode), else None.
    pub distractor: Vec<Option<Cell>>,
    pub n_actions: usize,
}

/// A batch of transitions: frames t and t + 1, the action taken and the reward received.
pub struct Transitions {
    pub t: Vec<usize>,
    pub t1: Vec<usize>,
    pub actions: Vec<usize>,
    pub rewards: Vec<f32>,
}

/// A batch of k-step pairs: anchor frames, their k-step successors and k − 1 (a one-hot index).
pub struct Pairs {
    pub anchors: Vec<usize>,
    pub futures: Vec<usize>,
    pub offsets: Vec<usize>,
}

impl Video {
    pub fn len(&self) -> usize {
        self.agent.len()
    }
    pub fn is_empty(&self) -> bool {
        self.agent.is_empty()
    }
    pub fn frame(&self, t: usize) -> &[f32] {
        &self.frames[t * self.frame_dim..(t + 1) * self.frame_dim]
    }
    /// Frames `idx` as one flat (len(idx) × frame_dim) buffer.
    pub fn gather(&self, idx: &[usize]) -> Vec<f32> {
        let mut out = Vec::with_capacity(idx.len() * self.frame_dim);
        for &t in idx {
            out.extend_from_slice(self.frame(t));
        }
        out
    }

    /// No frames yet.
    pub fn empty(frame_dim: usize, n_actions: usize) -> Self {
        Video {
            frame_dim,
            frames: Vec::new(),
            actions: Vec::new(),
            rewards: Vec::new(),
            terminal: Vec::new(),
            has_next: Vec::new(),
            episode_end: Vec::new(),
            agent: Vec::new(),
            goal: Vec::new(),
            distractor: Vec::new(),
            n_actions,
        }
    }

    /// Collect at least `frames` frames of `noise`-mode pixel-grid episodes with uniform random
    /// actions (whole episodes: the last one is finished).
    pub fn collect(noise: Noise, frames: usize, seed: u64) -> Result<Self> {
        Self::collect_in(Variant::of(noise), frames, seed)
    }

    /// [`Video::collect`] in any pixel-grid world (the source palette and the recoloured one give
    /// the same episodes for the same seed).
    pub fn collect_in(world: Variant, frames: usize, seed: u64) -> Result<Self> {
        if frames < 2 {
            bail!("repr.video_frames: need at least 2 frames");
        }
        let env_seed = oxrl_core::seed::derive(seed, "video-env", 0);
        let mut env = world.make(env_seed);
        let mut rng = oxrl_core::seed::rng(seed, "video-policy", 0);
        let frame_dim = env.observation_space().dim();
        let mut v = Video::empty(frame_dim, 4);
        while v.len() < frames {
            let start = v.len();
            let mut obs = env.reset();
            loop {
                let (a, g, d) = env.positions();
                v.frames.extend_from_slice(&obs);
                v.agent.push(a);
                v.goal.push(g);
                v.distractor.push(d.first().copied());
                let act = rng.random_range(0..4);
                let s = env.step(&Action::Discrete(act))?;
                v.actions.push(act);
                v.rewards.push(s.reward as f32);
                v.terminal.push(s.terminated);
                v.has_next.push(true);
                obs = s.obs;
                if s.terminated || s.truncated {
                    // the episode's last frame: no action follows it
                    let (a, g, d) = env.positions();
                    v.frames.extend_from_slice(&obs);
                    v.agent.push(a);
                    v.goal.push(g);
                    v.distractor.push(d.first().copied());
                    v.actions.push(0);
                    v.rewards.push(0.0);
                    v.terminal.push(false);
                    v.has_next.push(false);
                    break;
                }
            }
            let end = v.len();
            v.episode_end.extend(std::iter::repeat_n(end, end - start));
        }
        Ok(v)
    }

    /// A frame t with a successor (a transition t → t + 1), uniformly.
    pub fn sample_transition(&self, rng: &mut Rng) -> usize {
        loop {
            let t = rng.random_range(0..self.len());
            if self.has_next[t] {
                return t;
            }
        }
    }

    /// An anchor t and offset k ∈ [1, k_max] with t + k in t's episode (k uniform, then t uniform
    /// among the frames that have a k-step successor).
    pub fn sample_pair(&self, k_max: usize, rng: &mut Rng) -> (usize, usize) {
        loop {
            let k = rng.random_range(1..=k_max.max(1));
            let t = rng.random_range(0..self.len());
            if t + k < self.episode_end[t] {
                return (t, k);
            }
        }
    }

    /// A negative for anchor t with positive t + k: any frame except t and t + k.
    pub fn sample_negative(&self, t: usize, k: usize, rng: &mut Rng) -> usize {
        loop {
            let j = rng.random_range(0..self.len());
            if j != t && j != t + k {
                return j;
            }
        }
    }

    /// `n` transitions t → t + 1 with their actions and rewards.
    pub fn sample_transitions(&self, n: usize, rng: &mut Rng) -> Transitions {
        let t: Vec<usize> = (0..n).map(|_| self.sample_transition(rng)).collect();
        Transitions {
            t1: t.iter().map(|&i| i + 1).collect(),
            actions: t.iter().map(|&i| self.actions[i]).collect(),
            rewards: t.iter().map(|&i| self.rewards[i]).collect(),
            t,
        }
    }

    /// `n` k-step pairs (see [`Video::sample_pair`]).
    pub fn sample_pairs(&self, n: usize, k_max: usize, rng: &mut Rng) -> Pairs {
        let p: Vec<(usize, usize)> = (0..n).map(|_| self.sample_pair(k_max, rng)).collect();
        Pairs {
            anchors: p.iter().map(|x| x.0).collect(),
            futures: p.iter().map(|x| x.0 + x.1).collect(),
            offsets: p.iter().map(|x| x.1 - 1).collect(),
        }
    }

    /// Split frame indices into (train, held-out) by episode: the last `frac` of the episodes are
    /// held out (for probes).
    pub fn split(&self, frac: f64) -> (Vec<usize>, Vec<usize>) {
        let cut_at = ((1.0 - frac) * self.len() as f64) as usize;
        // move the cut to an episode boundary
        let cut = if cut_at == 0 { 0 } else { self.episode_end[cut_at - 1].min(self.len()) };
        ((0..cut).collect(), (cut..self.len()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn pairs_stay_in_the_episode_and_negatives_avoid_the_successor() {
        let v = Video::collect(Noise::Exogenous, 600, 3).unwrap();
        assert!(v.len() >= 600 && v.frames.len() == v.len() * v.frame_dim);
        assert!(!v.has_next[v.len() - 1]);
        let mut rng = Rng::seed_from_u64(0);
        for _ in 0..2000 {
            let (t, k) = v.sample_pair(5, &mut rng);
            assert!((1..=5).contains(&k));
            assert_eq!(v.episode_end[t], v.episode_end[t + k], "pair crosses an episode");
            // every frame between t and t + k has a successor inside the episode
            assert!((t..t + k).all(|i| v.has_next[i]));
            let j = v.sample_negative(t, k, &mut rng);
            assert!(j != t + k && j != t);
        }
        // consecutive frames of an episode differ by the recorded action's move (or a wall)
        for t in 0..v.len() - 1 {
            if v.has_next[t] {
                let (a, b) = (v.agent[t], v.agent[t + 1]);
                assert!((a.0 - b.0).abs() + (a.1 - b.1).abs() <= 1);
                assert_eq!(v.rewards[t] > 0.5, v.terminal[t]);
            }
        }
        assert!(v.distractor.iter().all(|d| d.is_some()));
        let (tr, te) = v.split(0.2);
        assert_eq!(tr.len() + te.len(), v.len());
        assert!(!te.is_empty() && !v.has_next[tr.len() - 1], "split on an episode boundary");
    }

    #[test]
    fn collection_is_deterministic_per_seed() {
        let a = Video::collect(Noise::Iid, 200, 5).unwrap();
        let b = Video::collect(Noise::Iid, 200, 5).unwrap();
        let c = Video::collect(Noise::Iid, 200, 6).unwrap();
        assert_eq!(a.frames, b.frames);
        assert_ne!(a.frames, c.frames);
    }
}
