//! A pixel gridworld with distractors — the spec's CPU stand-in for SPR, RePo, InfoPower and the
//! video-representation study: an N × N grid (no interior walls) rendered as a 3 × 2N × 2N image
//! (2 × 2 pixels per cell; channel 0 the agent, 1 the goal, 2 distractors), flattened channel-major.
//! Four actions (up, down, left, right; moves into the border are cancelled); reward 1 on reaching
//! the goal (terminates), minus `step_cost` per step; 50-step limit.
//!
//! Noise modes (`noise`): `clean`; `iid` — every pixel gets independent N(0, σ²) noise each step;
//! `exogenous` — `distractors` squares the size of the agent do their own random walks
//! (action-independent, temporally correlated) and are drawn in the agent's channel too, at half
//! intensity, plus channel 2; `tv` — a "noisy TV" patch of uniform random pixels in one corner of
//! every channel. Ground-truth positions ([`PixelGrid::positions`]) are exposed for linear probes.
//!
//! `pixelgrid-<noise>-recolor` is the same world in another palette — every pixel's (agent, goal,
//! distractor) channel vector goes through a fixed colour matrix onto a tinted background
//! ([`recolor_image`]) — the new visual domain of RePo's test-time alignment.
//!
//! `pixelgrid-<noise>-sparse` is the spec's sparse-reward variant for InfoPower's exploration test
//! ("a single distant goal"): a 10 × 10 grid, the agent always starts in the top-left cell and the
//! goal is always the bottom-right one, no step cost — reward 1 on arrival and 0 otherwise. A
//! uniformly random policy reaches it in under 1 % of its 50-step episodes.
//!
//! `pixelgrid-<noise>-dense` is the default world with a dense reward: each step that does not reach
//! the goal also costs `distance_cost` · d₁(agent, goal) / (2(N − 1)) (0.1 at most), so the reward
//! of every transition depends on where the agent and the goal are — the setting of RePo's claim
//! that a reward-predictive latent keeps the agent and drops action-independent distractors.

use super::{Action, Core, Env, EnvState, Space, Step};
use anyhow::{bail, Result};
use rand::Rng as _;
use rand_distr::{Distribution, Normal};

/// A grid cell (x, y).
pub type Cell = (i64, i64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noise {
    Clean,
    Iid,
    Exogenous,
    Tv,
}

impl Noise {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "clean" => Self::Clean,
            "iid" => Self::Iid,
            "exogenous" => Self::Exogenous,
            "tv" => Self::Tv,
            _ => bail!("unknown pixel-grid noise {s:?} (clean, iid, exogenous, tv)"),
        })
    }
}

/// Which pixel-grid world an environment name (`pixelgrid-<noise>[-recolor|-sparse|-dense]`)
/// means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    pub noise: Noise,
    /// Rendered in the shifted palette ([`recolor_image`]).
    pub recolor: bool,
    /// The sparse-reward layout (fixed far-corner goal, no step cost).
    pub sparse: bool,
    /// The default layout with the distance cost (module docs).
    pub dense: bool,
}

impl Variant {
    /// The default layout in the source palette.
    pub fn of(noise: Noise) -> Self {
        Self { noise, recolor: false, sparse: false, dense: false }
    }

    /// Parse `pixelgrid`, `pixelgrid-<noise>`, `pixelgrid-<noise>-recolor` or
    /// `pixelgrid-<noise>-sparse` or `pixelgrid-<noise>-dense` (case-insensitive).
    pub fn parse(env_name: &str) -> Result<Self> {
        let key = env_name.to_ascii_lowercase();
        if !key.starts_with("pixelgrid") {
            bail!("not a pixel-grid environment (pixelgrid-*): {env_name:?}");
        }
        // at most one of the suffixes, after the noise mode
        let mut v = Self::of(Noise::Clean);
        let mut rest = key.as_str();
        for (suffix, flag) in [("-recolor", &mut v.recolor), ("-sparse", &mut v.sparse), ("-dense", &mut v.dense)] {
            if let Some(r) = rest.strip_suffix(suffix) {
                (rest, *flag) = (r, true);
            }
        }
        if [v.recolor, v.sparse, v.dense].iter().filter(|&&f| f).count() > 1 {
            bail!("{env_name:?}: combine at most one of -recolor, -sparse and -dense");
        }
        v.noise = match rest.strip_prefix("pixelgrid").unwrap_or("?") {
            "" if v == Self::of(Noise::Clean) => Noise::Clean,
            r => Noise::parse(r.strip_prefix('-').unwrap_or("?"))?,
        };
        Ok(v)
    }

    /// The built-in environment name of this world.
    pub fn name(&self) -> &'static str {
        let want = format!(
            "pixelgrid-{}{}",
            match self.noise {
                Noise::Clean => "clean",
                Noise::Iid => "iid",
                Noise::Exogenous => "exogenous",
                Noise::Tv => "tv",
            },
            if self.recolor {
                "-recolor"
            } else if self.sparse {
                "-sparse"
            } else if self.dense {
                "-dense"
            } else {
                ""
            }
        );
        super::ENV_NAMES.iter().copied().find(|n| *n == want).unwrap_or("pixelgrid")
    }

    pub fn make(self, seed: u64) -> PixelGrid {
        let mut g = PixelGrid::new(self.noise, seed);
        g.recolor = self.recolor;
        if self.sparse {
            (g.n, g.step_cost, g.fixed_layout) = (10, 0.0, true);
        }
        if self.dense {
            g.distance_cost = 0.1;
        }
        g.name = self.name();
        g
    }
}

pub struct PixelGrid {
    core: Core,
    pub n: usize,
    pub noise: Noise,
    pub sigma: f32,
    pub step_cost: f64,
    /// Extra cost of a step that ends `d` cells (Manhattan) from the goal: distance_cost · d / (2(N − 1)).
    pub distance_cost: f64,
    pub distractors: usize,
    /// Render in the shifted palette ([`recolor_image`]).
    pub recolor: bool,
    /// Start in cell (0, 0) with the goal in the opposite corner (the sparse layout).
    pub fixed_layout: bool,
    name: &'static str,
    /// agent (x, y), goal (x, y), then each distractor's (x, y)
    pos: Vec<(i64, i64)>,
    max_steps: usize,
}

const MOVES: [(i64, i64); 4] = [(0, -1), (0, 1), (-1, 0), (1, 0)];

impl PixelGrid {
    pub fn new(noise: Noise, seed: u64) -> Self {
        let name = Variant::of(noise).name();
        let distractors = if noise == Noise::Exogenous { 3 } else { 0 };
        Self {
            core: Core::new(seed),
            n: 8,
            noise,
            sigma: 0.3,
            step_cost: 0.01,
            distance_cost: 0.0,
            distractors,
            recolor: false,
            fixed_layout: false,
            name,
            pos: vec![(0, 0); 2 + distractors],
            max_steps: 50,
        }
    }

    /// The same world rendered in the shifted palette (`pixelgrid-<noise>-recolor`).
    pub fn recolored(noise: Noise, seed: u64) -> Self {
        Variant { recolor: true, ..Variant::of(noise) }.make(seed)
    }

    /// Ground truth for probes: (agent, goal, distractors).
    pub fn positions(&self) -> (Cell, Cell, Vec<Cell>) {
        (self.pos[0], self.pos[1], self.pos[2..].to_vec())
    }

    pub fn side(&self) -> usize {
        2 * self.n
    }

    fn random_cell(&mut self) -> (i64, i64) {
        (self.core.rng.random_range(0..self.n as i64), self.core.rng.random_range(0..self.n as i64))
    }

    /// Render the current state (and draw this step's noise).
    pub fn render(&mut self) -> Vec<f32> {
        let w = self.side();
        let mut img = vec![0f32; 3 * w * w];
        let paint = |img: &mut [f32], c: usize, cell: (i64, i64), v: f32| {
            for dy in 0..2 {
                for dx in 0..2 {
                    let (x, y) = (cell.0 as usize * 2 + dx, cell.1 as usize * 2 + dy);
                    let p = &mut img[c * w * w + y * w + x];
                    *p = p.max(v);
                }
            }
        };
        paint(&mut img, 0, self.pos[0], 1.0);
        paint(&mut img, 1, self.pos[1], 1.0);
        for k in 2..self.pos.len() {
            paint(&mut img, 0, self.pos[k], 0.5);
            paint(&mut img, 2, self.pos[k], 1.0);
        }
        match self.noise {
            Noise::Iid => {
                let nd = Normal::new(0.0f32, self.sigma).unwrap();
                for p in img.iter_mut() {
                    *p += nd.sample(&mut self.core.rng);
                }
            }
            Noise::Tv => {
                let patch = w / 4;
                for c in 0..3 {
                    for y in 0..patch {
                        for x in w - patch..w {
                            img[c * w * w + y * w + x] = self.core.rng.random::<f32>();
                        }
                    }
                }
            }
            _ => {}
        }
        if self.recolor {
            recolor_image(&img)
        } else {
            img
        }
    }

    fn step_distractors(&mut self) {
        for k in 2..self.pos.len() {
            let (dx, dy) = MOVES[self.core.rng.random_range(0..4)];
            let (x, y) = self.pos[k];
            self.pos[k] = ((x + dx).clamp(0, self.n as i64 - 1), (y + dy).clamp(0, self.n as i64 - 1));
        }
    }
}

/// The shifted palette's colour matrix: column k is the colour that channel k (agent, goal,
/// distractor) takes.
pub const RECOLOR: [[f32; 3]; 3] = [[0.1, 0.8, 0.5], [0.7, 0.1, 0.5], [0.6, 0.5, 0.0]];
/// The shifted palette's background colour.
pub const RECOLOR_BACKGROUND: [f32; 3] = [0.2, 0.1, 0.3];

/// A channel-major 3 × H × W image in the shifted palette: out_c = background_c + Σ_k M_ck·in_k.
/// Applied to a source rendering (noise included), it gives the same state in the target domain.
pub fn recolor_image(img: &[f32]) -> Vec<f32> {
    let hw = img.len() / 3;
    let mut out = vec![0f32; img.len()];
    for c in 0..3 {
        for i in 0..hw {
            out[c * hw + i] = RECOLOR_BACKGROUND[c]
                + RECOLOR[c][0] * img[i]
                + RECOLOR[c][1] * img[hw + i]
                + RECOLOR[c][2] * img[2 * hw + i];
        }
    }
    out
}

impl Env for PixelGrid {
    fn name(&self) -> &'static str {
        self.name
    }
    fn observation_space(&self) -> Space {
        let d = 3 * self.side() * self.side();
        Space::Box { low: vec![f32::NEG_INFINITY; d], high: vec![f32::INFINITY; d] }
    }
    fn action_space(&self) -> Space {
        Space::Discrete(4)
    }
    fn max_steps(&self) -> usize {
        self.max_steps
    }
    fn reset(&mut self) -> Vec<f32> {
        if self.fixed_layout {
            let far = self.n as i64 - 1;
            (self.pos[0], self.pos[1]) = ((0, 0), (far, far));
        } else {
            self.pos[0] = self.random_cell();
            loop {
                self.pos[1] = self.random_cell();
                if self.pos[1] != self.pos[0] {
                    break;
                }
            }
        }
        for k in 2..self.pos.len() {
            self.pos[k] = self.random_cell();
        }
        self.core.elapsed = 0;
        self.render()
    }
    fn step(&mut self, action: &Action) -> Result<Step> {
        let a = action.index()?;
        if a > 3 {
            bail!("{}: action {a} outside 0..4", self.name);
        }
        let (dx, dy) = MOVES[a];
        let (x, y) = self.pos[0];
        self.pos[0] = ((x + dx).clamp(0, self.n as i64 - 1), (y + dy).clamp(0, self.n as i64 - 1));
        self.step_distractors();
        let reached = self.pos[0] == self.pos[1];
        let truncated = self.core.tick(self.max_steps) && !reached;
        let reward = if reached {
            1.0 - self.step_cost
        } else {
            let (a, g) = (self.pos[0], self.pos[1]);
            let d = ((a.0 - g.0).abs() + (a.1 - g.1).abs()) as f64;
            -self.step_cost - self.distance_cost * d / (2.0 * (self.n as f64 - 1.0))
        };
        Ok(Step { obs: self.render(), reward, terminated: reached, truncated })
    }
    fn success(&self) -> Option<bool> {
        Some(self.pos[0] == self.pos[1])
    }
    fn save(&self) -> EnvState {
        self.core.save(self.pos.iter().flat_map(|&(x, y)| [x as f64, y as f64]).collect())
    }
    fn restore(&mut self, state: &EnvState) -> Result<()> {
        let n = 2 * self.pos.len();
        let v = self.core.restore(state, n, self.name)?.to_vec();
        for (k, p) in self.pos.iter_mut().enumerate() {
            *p = (v[2 * k] as i64, v[2 * k + 1] as i64);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pixel(img: &[f32], w: usize, c: usize, x: usize, y: usize) -> f32 {
        img[c * w * w + y * w + x]
    }

    #[test]
    fn clean_rendering_is_one_hot_per_channel_and_moves_follow_actions() {
        let mut e = PixelGrid::new(Noise::Clean, 0);
        let img = e.reset();
        let w = e.side();
        assert_eq!(img.len(), 3 * 16 * 16);
        let (agent, goal, d) = e.positions();
        assert!(d.is_empty() && agent != goal);
        assert_eq!(pixel(&img, w, 0, agent.0 as usize * 2 + 1, agent.1 as usize * 2 + 1), 1.0);
        assert_eq!(pixel(&img, w, 1, goal.0 as usize * 2, goal.1 as usize * 2), 1.0);
        assert_eq!(img.iter().filter(|&&v| v != 0.0).count(), 8, "two 2×2 squares");
        // walk to the goal: right/left then down/up; reward 1 − step cost on arrival
        let mut last = None;
        for _ in 0..20 {
            let (a, g, _) = e.positions();
            let act = if a.0 < g.0 {
                3
            } else if a.0 > g.0 {
                2
            } else if a.1 < g.1 {
                1
            } else {
                0
            };
            let s = e.step(&Action::Discrete(act)).unwrap();
            if s.terminated {
                last = Some(s.reward);
                break;
            }
            assert!((s.reward + 0.01).abs() < 1e-12);
        }
        assert!((last.unwrap() - 0.99).abs() < 1e-12);
        assert_eq!(e.success(), Some(true));
    }

    #[test]
    fn exogenous_distractors_move_regardless_of_actions_and_noise_modes_differ() {
        let mut e = PixelGrid::new(Noise::Exogenous, 1);
        e.reset();
        let (_, _, before) = e.positions();
        let mut moved = false;
        for _ in 0..10 {
            e.step(&Action::Discrete(0)).unwrap();
            moved |= e.positions().2 != before;
        }
        assert!(moved);
        assert_eq!(e.positions().2.len(), 3);
        // iid noise perturbs every pixel; the TV patch only its corner
        let mut iid = PixelGrid::new(Noise::Iid, 2);
        let a = iid.reset();
        assert!(a.iter().filter(|v| **v != 0.0 && **v != 1.0).count() > 700);
        let mut tv = PixelGrid::new(Noise::Tv, 3);
        let img = tv.reset();
        let w = tv.side();
        assert!(pixel(&img, w, 2, w - 1, 0) > 0.0);
        assert!(Noise::parse("fog").is_err());
        // save / restore continues exactly, noise included
        let st = iid.save();
        let next = iid.step(&Action::Discrete(1)).unwrap();
        let mut again = PixelGrid::new(Noise::Iid, 99);
        again.restore(&st).unwrap();
        assert_eq!(again.step(&Action::Discrete(1)).unwrap(), next);
    }

    #[test]
    fn variants_parse_from_names_and_the_sparse_layout_is_fixed_and_unshaped() {
        for (name, noise, recolor, sparse, dense) in [
            ("pixelgrid", Noise::Clean, false, false, false),
            ("pixelgrid-exogenous", Noise::Exogenous, false, false, false),
            ("pixelgrid-iid-recolor", Noise::Iid, true, false, false),
            ("PixelGrid-TV-sparse", Noise::Tv, false, true, false),
            ("pixelgrid-exogenous-dense", Noise::Exogenous, false, false, true),
        ] {
            let v = Variant::parse(name).unwrap();
            assert_eq!(v, Variant { noise, recolor, sparse, dense }, "{name}");
            assert_eq!(v.make(0).name(), v.name());
            assert_eq!(Variant::parse(v.name()).unwrap(), v);
        }
        for bad in [
            "pixelgrid-sparse",
            "pixelgrid-clean-sparse-recolor",
            "pixelgrid-iid-dense-sparse",
            "pixelgrid-fog",
            "cartpole",
        ] {
            assert!(Variant::parse(bad).is_err(), "{bad}");
        }
        let mut e = Variant::parse("pixelgrid-exogenous-sparse").unwrap().make(3);
        for _ in 0..3 {
            let img = e.reset();
            assert_eq!(img.len(), 3 * 20 * 20);
            let (agent, goal, d) = e.positions();
            assert_eq!((agent, goal, d.len()), ((0, 0), (9, 9), 3));
            for _ in 0..5 {
                let s = e.step(&Action::Discrete(0)).unwrap();
                assert_eq!((s.reward, s.terminated), (0.0, false), "no step cost");
            }
        }
    }

    #[test]
    fn the_dense_world_charges_the_distance_to_the_goal_after_each_move() {
        let mut e = Variant::parse("pixelgrid-clean-dense").unwrap().make(5);
        let mut rng = oxrl_core::seed::rng(1, "walk", 0);
        let (mut charged, mut reached) = (0, 0);
        for _ in 0..20 {
            e.reset();
            loop {
                let s = e.step(&Action::Discrete(rng.random_range(0..4))).unwrap();
                let ((ax, ay), (gx, gy), _) = e.positions();
                let d = ((ax - gx).abs() + (ay - gy).abs()) as f64;
                if s.terminated {
                    assert_eq!((d, s.reward), (0.0, 0.99), "the goal pays 1 minus the step cost");
                    reached += 1;
                    break;
                }
                // 8 × 8 grid: d / (2 · 7) of the 0.1 distance cost, plus the 0.01 step cost
                assert!((s.reward - (-0.01 - 0.1 * d / 14.0)).abs() < 1e-12, "{d} {}", s.reward);
                charged += 1;
                if s.truncated {
                    break;
                }
            }
        }
        assert!(charged > 100 && reached > 0, "{charged} {reached}");
    }

    #[test]
    fn the_recolored_world_is_the_same_state_in_another_palette() {
        for noise in [Noise::Clean, Noise::Exogenous, Noise::Iid] {
            let (mut src, mut tgt) = (PixelGrid::new(noise, 7), PixelGrid::recolored(noise, 7));
            let (a, b) = (src.reset(), tgt.reset());
            assert_eq!(recolor_image(&a), b);
            for t in 0..10 {
                let (x, y) = (src.step(&Action::Discrete(t % 4)).unwrap(), tgt.step(&Action::Discrete(t % 4)).unwrap());
                assert_eq!(recolor_image(&x.obs), y.obs);
                assert_eq!((x.reward, x.terminated), (y.reward, y.terminated));
                assert_eq!(src.positions(), tgt.positions());
            }
        }
        // the agent's pixel takes column 0 of the matrix on the background; an empty pixel is background
        let mut e = PixelGrid::recolored(Noise::Clean, 0);
        let img = e.reset();
        let w = e.side();
        let (agent, goal, _) = e.positions();
        let (ax, ay) = (agent.0 as usize * 2, agent.1 as usize * 2);
        for c in 0..3 {
            assert!((pixel(&img, w, c, ax, ay) - (RECOLOR_BACKGROUND[c] + RECOLOR[c][0])).abs() < 1e-6);
        }
        let empty = (0..8).flat_map(|x| (0..8).map(move |y| (x, y))).find(|&p| p != agent && p != goal).unwrap();
        assert_eq!(pixel(&img, w, 2, empty.0 as usize * 2, empty.1 as usize * 2), RECOLOR_BACKGROUND[2]);
        assert_eq!(e.name(), "pixelgrid-clean-recolor");
    }
}
