//! Environments: the Gymnasium interface in Rust — `reset` returns an observation, `step` the
//! 5-tuple (observation, reward, terminated, truncated) with `terminated` (a true terminal state:
//! no bootstrap) kept apart from `truncated` (the time limit: bootstrap from the final observation).
//!
//! Every environment is deterministic given its seed: its only randomness is its own ChaCha8 stream,
//! whose position is part of its saved state, so a run resumed from a checkpoint continues exactly.

pub mod acrobot;
pub mod cartpole;
pub mod deep_sea_treasure;
pub mod drive;
pub mod grid_maze;
pub mod mountain_car;
pub mod pendulum;
pub mod pixel_grid;
pub mod point_maze;
pub mod push_grid;
pub mod reach;
pub mod vec_env;

use anyhow::{bail, Result};
use oxrl_core::seed::Rng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

pub use vec_env::{VecEnv, VecStep};

/// An observation or action space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Space {
    /// `n` discrete choices 0..n.
    Discrete(usize),
    /// A box of f32 vectors with per-dimension bounds (±inf for unbounded).
    Box { low: Vec<f32>, high: Vec<f32> },
}

impl Space {
    /// Length of a flat vector in this space (1 for a discrete action index).
    pub fn dim(&self) -> usize {
        match self {
            Space::Discrete(_) => 1,
            Space::Box { low, .. } => low.len(),
        }
    }
    pub fn is_discrete(&self) -> bool {
        matches!(self, Space::Discrete(_))
    }
    /// Number of discrete choices, or the box dimension.
    pub fn size(&self) -> usize {
        match self {
            Space::Discrete(n) => *n,
            Space::Box { low, .. } => low.len(),
        }
    }
}

/// An action: an index for discrete spaces, a vector for boxes.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Discrete(usize),
    Continuous(Vec<f32>),
}

impl Action {
    pub fn index(&self) -> Result<usize> {
        match self {
            Action::Discrete(i) => Ok(*i),
            Action::Continuous(_) => bail!("a discrete environment got a continuous action"),
        }
    }
    pub fn vector(&self) -> Result<&[f32]> {
        match self {
            Action::Continuous(v) => Ok(v),
            Action::Discrete(_) => bail!("a continuous environment got a discrete action"),
        }
    }
}

/// One transition's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub obs: Vec<f32>,
    pub reward: f64,
    pub terminated: bool,
    pub truncated: bool,
}

/// Everything needed to continue an environment exactly: its physical state, the step count within
/// the episode and the position of its random stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvState {
    pub values: Vec<f64>,
    pub elapsed: usize,
    /// The environment's seed (its stream is re-seeded from it on restore).
    pub seed: u64,
    /// ChaCha8 word position, as a decimal string (u128).
    pub rng_pos: String,
}

/// A seeded environment with the Gymnasium step semantics. The time limit is part of the
/// environment (`max_steps`): the step that reaches it returns `truncated = true`.
pub trait Env: Send {
    fn name(&self) -> &'static str;
    fn observation_space(&self) -> Space;
    fn action_space(&self) -> Space;
    fn max_steps(&self) -> usize;
    /// Start a new episode and return its first observation.
    fn reset(&mut self) -> Vec<f32>;
    fn step(&mut self, action: &Action) -> Result<Step>;
    /// For goal-reaching environments: whether the last step reached the goal (None otherwise).
    fn success(&self) -> Option<bool> {
        None
    }
    /// For multi-objective environments: the reward vector of the last step (kept through a
    /// following reset, so it can be read after [`VecEnv`]'s auto-reset). None otherwise.
    fn reward_vector(&self) -> Option<Vec<f64>> {
        None
    }
    /// A hidden parameter of the current episode (e.g. reversed controls), for diagnostics only:
    /// never part of the observation. None by default.
    fn hidden_parameter(&self) -> Option<f64> {
        None
    }
    /// A privileged scripted expert's action in the current state (demonstrations for warm-ups);
    /// None where the environment has none.
    fn expert_action(&self) -> Option<usize> {
        None
    }
    fn save(&self) -> EnvState;
    fn restore(&mut self, state: &EnvState) -> Result<()>;
}

/// The shared bookkeeping of the built-in environments: the random stream and the step count.
#[derive(Debug, Clone)]
pub struct Core {
    pub rng: Rng,
    pub elapsed: usize,
    seed: u64,
}

impl Core {
    pub fn new(seed: u64) -> Self {
        Self { rng: Rng::seed_from_u64(seed), elapsed: 0, seed }
    }
    pub fn save(&self, values: Vec<f64>) -> EnvState {
        EnvState { values, elapsed: self.elapsed, seed: self.seed, rng_pos: self.rng.get_word_pos().to_string() }
    }
    /// Restore the step count and stream position; returns the physical values, checked to have `n`.
    pub fn restore<'a>(&mut self, state: &'a EnvState, n: usize, name: &str) -> Result<&'a [f64]> {
        if state.values.len() != n {
            bail!("{name}: saved state has {} values, expected {n}", state.values.len());
        }
        let pos: u128 =
            state.rng_pos.parse().map_err(|_| anyhow::anyhow!("{name}: bad rng_pos {:?}", state.rng_pos))?;
        self.seed = state.seed;
        self.rng = Rng::seed_from_u64(state.seed);
        self.rng.set_word_pos(pos);
        self.elapsed = state.elapsed;
        Ok(&state.values)
    }
    /// Save `values` followed by a flag (the goal-reaching environments' "success").
    pub fn save_flagged(&self, values: &[f64], flag: bool) -> EnvState {
        let mut v = values.to_vec();
        v.push(if flag { 1.0 } else { 0.0 });
        self.save(v)
    }
    /// Restore what [`Core::save_flagged`] wrote: `n` values and the flag.
    pub fn restore_flagged<'a>(&mut self, state: &'a EnvState, n: usize, name: &str) -> Result<(&'a [f64], bool)> {
        let v = self.restore(state, n + 1, name)?;
        Ok((&v[..n], v[n] != 0.0))
    }
    /// Count one step; true when the time limit is reached.
    pub fn tick(&mut self, max_steps: usize) -> bool {
        self.elapsed += 1;
        self.elapsed >= max_steps
    }
}

/// Built-in environment names.
pub const ENV_NAMES: &[&str] = &[
    "cartpole",
    "pendulum",
    "mountain-car",
    "mountain-car-continuous",
    "acrobot",
    "pointmaze-umaze",
    "pointmaze-four-rooms",
    "pointmaze-medium",
    "pixelgrid-clean",
    "pixelgrid-iid",
    "pixelgrid-exogenous",
    "pixelgrid-tv",
    "pixelgrid-clean-recolor",
    "pixelgrid-iid-recolor",
    "pixelgrid-exogenous-recolor",
    "pixelgrid-tv-recolor",
    "pixelgrid-clean-sparse",
    "pixelgrid-iid-sparse",
    "pixelgrid-exogenous-sparse",
    "pixelgrid-tv-sparse",
    "pixelgrid-clean-dense",
    "pixelgrid-iid-dense",
    "pixelgrid-exogenous-dense",
    "pixelgrid-tv-dense",
    "deep-sea-treasure",
    "deep-sea-treasure-concave",
    "push-1",
    "push-2",
    "push-3",
    "push-1-gc",
    "push-2-gc",
    "push-3-gc",
    "reach",
    "drive",
    "gridmaze-umaze",
    "gridmaze-four-rooms",
    "gridmaze-medium",
    "gridmaze-umaze-fixed",
    "gridmaze-four-rooms-fixed",
    "gridmaze-medium-fixed",
    "gridmaze-umaze-flip",
    "gridmaze-four-rooms-flip",
    "gridmaze-medium-flip",
];

/// Make a built-in environment by name (Gymnasium ids are accepted too: `CartPole-v1`, …).
pub fn make(name: &str, seed: u64) -> Result<Box<dyn Env>> {
    let key = name.to_ascii_lowercase().replace('_', "-");
    Ok(match key.as_str() {
        "cartpole" | "cartpole-v1" => Box::new(cartpole::CartPole::new(seed)),
        "pendulum" | "pendulum-v1" => Box::new(pendulum::Pendulum::new(seed)),
        "mountain-car" | "mountaincar" | "mountaincar-v0" => Box::new(mountain_car::MountainCar::new(seed)),
        "mountain-car-continuous" | "mountaincarcontinuous" | "mountaincarcontinuous-v0" => {
            Box::new(mountain_car::MountainCarContinuous::new(seed))
        }
        "acrobot" | "acrobot-v1" => Box::new(acrobot::Acrobot::new(seed)),
        "pointmaze-umaze" => Box::new(point_maze::PointMaze::new("umaze", seed)?),
        "pointmaze-four-rooms" => Box::new(point_maze::PointMaze::new("four-rooms", seed)?),
        "pointmaze-medium" => Box::new(point_maze::PointMaze::new("medium", seed)?),
        k if k == "pixelgrid" || (k.starts_with("pixelgrid-") && ENV_NAMES.contains(&k)) => {
            Box::new(pixel_grid::Variant::parse(k)?.make(seed))
        }
        "deep-sea-treasure" => Box::new(deep_sea_treasure::DeepSea::new(false, seed)),
        "deep-sea-treasure-concave" => Box::new(deep_sea_treasure::DeepSea::new(true, seed)),
        "push-1" => Box::new(push_grid::PushGrid::new(1, seed)?),
        "push-2" => Box::new(push_grid::PushGrid::new(2, seed)?),
        "push-3" => Box::new(push_grid::PushGrid::new(3, seed)?),
        "push-1-gc" => Box::new(push_grid::PushGrid::goal_conditioned(1, seed)?),
        "push-2-gc" => Box::new(push_grid::PushGrid::goal_conditioned(2, seed)?),
        "push-3-gc" => Box::new(push_grid::PushGrid::goal_conditioned(3, seed)?),
        "reach" => Box::new(reach::Reach::new(seed)),
        "drive" => Box::new(drive::Drive::new(seed)),
        k if k.starts_with("gridmaze-") && ENV_NAMES.contains(&k) => {
            Box::new(grid_maze::GridMaze::new(&k["gridmaze-".len()..], seed)?)
        }
        _ => bail!("unknown environment {name:?} (built in: {})", ENV_NAMES.join(", ")),
    })
}

/// Draw uniformly in [lo, hi).
pub(crate) fn uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    use rand::Rng as _;
    lo + (hi - lo) * rng.random::<f64>()
}
