//! Offline datasets: flat transition arrays in the D4RL / OGBench layout — `observations`,
//! `actions`, `rewards`, `terminals` (a true terminal: no bootstrap), `timeouts` (the episode ended
//! without one: time limit or end of collection) and `next_observations` — saved and loaded as
//! `.npz` (what OGBench ships and NumPy writes). Files without `next_observations` (D4RL) get them
//! from the following row inside an episode; a timeout row without a successor is dropped (it has
//! nothing to bootstrap from). Loading validates: equal lengths, 2-D observation and action arrays,
//! never terminal and timeout on one row, next_obs[t] = obs[t+1] within an episode.
//! [`Dataset::load`] also reads D4RL / Minari HDF5 files (`.h5`, `.hdf5`; see [`crate::hdf5`]).
//!
//! `collect` fills a dataset from an environment with a policy (scripted, random or a trained
//! agent), optionally ε-mixed with uniform random actions.

use crate::buffer::ReplayBuffer;
use crate::env::{Action, Space};
use anyhow::{bail, Context, Result};
use ndarray::{Array1, Array2};
use ndarray_npy::{NpzReader, NpzWriter};
use oxrl_core::seed::Rng;
use rand::Rng as _;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dataset {
    pub obs_dim: usize,
    pub act_dim: usize,
    pub observations: Vec<f32>,
    pub actions: Vec<f32>,
    pub rewards: Vec<f32>,
    pub next_observations: Vec<f32>,
    pub terminals: Vec<bool>,
    pub timeouts: Vec<bool>,
}

impl Dataset {
    pub fn new(obs_dim: usize, act_dim: usize) -> Self {
        Self { obs_dim, act_dim, ..Default::default() }
    }

    pub fn len(&self) -> usize {
        self.rewards.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }

    pub fn obs(&self, i: usize) -> &[f32] {
        &self.observations[i * self.obs_dim..(i + 1) * self.obs_dim]
    }
    pub fn next_obs(&self, i: usize) -> &[f32] {
        &self.next_observations[i * self.obs_dim..(i + 1) * self.obs_dim]
    }
    pub fn action(&self, i: usize) -> &[f32] {
        &self.actions[i * self.act_dim..(i + 1) * self.act_dim]
    }

    pub fn push(&mut self, obs: &[f32], act: &[f32], rew: f64, next_obs: &[f32], terminal: bool, timeout: bool) {
        self.observations.extend_from_slice(obs);
        self.actions.extend_from_slice(act);
        self.rewards.push(rew as f32);
        self.next_observations.extend_from_slice(next_obs);
        self.terminals.push(terminal);
        self.timeouts.push(timeout && !terminal);
    }

    /// Append another dataset of the same shapes (its episodes stay separate: every dataset ends
    /// with a terminal or timeout row).
    pub fn extend(&mut self, other: &Dataset) -> Result<()> {
        if other.obs_dim != self.obs_dim || other.act_dim != self.act_dim {
            bail!(
                "datasets differ: observations {} vs {}, actions {} vs {}",
                self.obs_dim,
                other.obs_dim,
                self.act_dim,
                other.act_dim
            );
        }
        if let (Some(t), Some(o)) = (self.terminals.last(), self.timeouts.last_mut()) {
            if !*t {
                *o = true;
            }
        }
        self.observations.extend_from_slice(&other.observations);
        self.actions.extend_from_slice(&other.actions);
        self.rewards.extend_from_slice(&other.rewards);
        self.next_observations.extend_from_slice(&other.next_observations);
        self.terminals.extend_from_slice(&other.terminals);
        self.timeouts.extend_from_slice(&other.timeouts);
        Ok(())
    }

    /// Row index where each episode starts (an episode ends at a terminal or a timeout row).
    pub fn episode_starts(&self) -> Vec<usize> {
        let mut starts = vec![0];
        for i in 0..self.len() {
            if (self.terminals[i] || self.timeouts[i]) && i + 1 < self.len() {
                starts.push(i + 1);
            }
        }
        if self.is_empty() {
            starts.clear();
        }
        starts
    }

    /// Undiscounted return of every episode (the last may be cut short).
    pub fn episode_returns(&self) -> Vec<f64> {
        let mut out = Vec::new();
        let mut acc = 0.0;
        for i in 0..self.len() {
            acc += self.rewards[i] as f64;
            if self.terminals[i] || self.timeouts[i] || i + 1 == self.len() {
                out.push(acc);
                acc = 0.0;
            }
        }
        out
    }

    pub fn validate(&self) -> Result<()> {
        let n = self.len();
        if self.observations.len() != n * self.obs_dim || self.next_observations.len() != n * self.obs_dim {
            bail!("observations: {} values for {n} rows of {}", self.observations.len(), self.obs_dim);
        }
        if self.actions.len() != n * self.act_dim {
            bail!("actions: {} values for {n} rows of {}", self.actions.len(), self.act_dim);
        }
        if self.terminals.len() != n || self.timeouts.len() != n {
            bail!("terminals / timeouts: {} / {} rows, expected {n}", self.terminals.len(), self.timeouts.len());
        }
        for i in 0..n {
            if self.terminals[i] && self.timeouts[i] {
                bail!("row {i}: both terminal and timeout");
            }
            if i + 1 < n && !self.terminals[i] && !self.timeouts[i] && self.next_obs(i) != self.obs(i + 1) {
                bail!("row {i}: next_observations differs from the next row's observation inside an episode");
            }
        }
        Ok(())
    }

    /// Every transition in a replay buffer (for uniform minibatches).
    pub fn to_buffer(&self) -> Result<ReplayBuffer> {
        let mut b = ReplayBuffer::new(self.len().max(1), self.obs_dim, self.act_dim)?;
        for i in 0..self.len() {
            b.push(self.obs(i), self.action(i), self.rewards[i] as f64, self.next_obs(i), self.terminals[i])?;
        }
        Ok(b)
    }

    pub fn save_npz(&self, path: &Path) -> Result<()> {
        self.validate()?;
        let n = self.len();
        oxrl_core::fsutil::write_atomic_with(path, |tmp| {
            let f = std::fs::File::create(tmp)?;
            let mut w = NpzWriter::new_compressed(f);
            w.add_array("observations", &Array2::from_shape_vec((n, self.obs_dim), self.observations.clone())?)?;
            w.add_array("actions", &Array2::from_shape_vec((n, self.act_dim), self.actions.clone())?)?;
            w.add_array("rewards", &Array1::from_vec(self.rewards.clone()))?;
            w.add_array(
                "next_observations",
                &Array2::from_shape_vec((n, self.obs_dim), self.next_observations.clone())?,
            )?;
            w.add_array("terminals", &Array1::from_vec(self.terminals.clone()))?;
            w.add_array("timeouts", &Array1::from_vec(self.timeouts.clone()))?;
            w.finish()?;
            Ok(())
        })
    }

    pub fn load_npz(path: &Path) -> Result<Self> {
        let what = path.display().to_string();
        let f = std::fs::File::open(path).with_context(|| format!("{what}: cannot open"))?;
        let mut r = NpzReader::new(f).with_context(|| format!("{what}: not an .npz file"))?;
        let names = r.names()?;
        let f2 = |r: &mut NpzReader<std::fs::File>, k: &str| -> Result<Array2<f32>> {
            if let Ok(a) = r.by_name::<ndarray::OwnedRepr<f32>, ndarray::Ix2>(k) {
                return Ok(a);
            }
            if let Ok(a) = r.by_name::<ndarray::OwnedRepr<f64>, ndarray::Ix2>(k) {
                return Ok(a.mapv(|x| x as f32));
            }
            // a 1-D column (e.g. discrete actions) as n × 1
            if let Ok(a) = r.by_name::<ndarray::OwnedRepr<f32>, ndarray::Ix1>(k) {
                let n = a.len();
                return Ok(a.into_shape_with_order((n, 1))?);
            }
            let a: Array1<i64> =
                r.by_name(k).with_context(|| format!("{what}: `{k}` must be a 2-D f32/f64 array (or a 1-D column)"))?;
            let n = a.len();
            Ok(a.mapv(|x| x as f32).into_shape_with_order((n, 1))?)
        };
        let f1 = |r: &mut NpzReader<std::fs::File>, k: &str| -> Result<Vec<f32>> {
            if let Ok(a) = r.by_name::<ndarray::OwnedRepr<f32>, ndarray::Ix1>(k) {
                return Ok(a.to_vec());
            }
            let a: Array1<f64> = r.by_name(k).with_context(|| format!("{what}: `{k}` must be a 1-D f32/f64 array"))?;
            Ok(a.iter().map(|&x| x as f32).collect())
        };
        let b1 = |r: &mut NpzReader<std::fs::File>, k: &str| -> Result<Vec<bool>> {
            if let Ok(a) = r.by_name::<ndarray::OwnedRepr<bool>, ndarray::Ix1>(k) {
                return Ok(a.to_vec());
            }
            if let Ok(a) = r.by_name::<ndarray::OwnedRepr<f32>, ndarray::Ix1>(k) {
                return Ok(a.iter().map(|&x| x != 0.0).collect());
            }
            if let Ok(a) = r.by_name::<ndarray::OwnedRepr<f64>, ndarray::Ix1>(k) {
                return Ok(a.iter().map(|&x| x != 0.0).collect());
            }
            bail!("{what}: `{k}` must be a 1-D bool or float array")
        };
        for k in ["observations", "actions", "terminals"] {
            if !names.iter().any(|x| x == k) {
                bail!("{what}: missing array `{k}` (have: {})", names.join(", "));
            }
        }
        let obs = f2(&mut r, "observations")?;
        let act = f2(&mut r, "actions")?;
        let n = obs.nrows();
        let rewards = if names.iter().any(|x| x == "rewards") { f1(&mut r, "rewards")? } else { vec![0.0; n] };
        let terminals = b1(&mut r, "terminals")?;
        let timeouts = if names.iter().any(|x| x == "timeouts") { b1(&mut r, "timeouts")? } else { vec![false; n] };
        let next =
            if names.iter().any(|x| x == "next_observations") { Some(f2(&mut r, "next_observations")?) } else { None };
        Self::from_columns(&what, obs, act, rewards, terminals, timeouts, next)
    }

    /// A dataset from D4RL-style columns (`next` = None: successors from the following rows),
    /// validated; `what` names the source in errors.
    pub fn from_columns(
        what: &str,
        obs: Array2<f32>,
        act: Array2<f32>,
        rewards: Vec<f32>,
        terminals: Vec<bool>,
        timeouts: Vec<bool>,
        next: Option<Array2<f32>>,
    ) -> Result<Self> {
        let n = obs.nrows();
        if act.nrows() != n || rewards.len() != n || terminals.len() != n || timeouts.len() != n {
            bail!(
                "{what}: arrays disagree on the number of rows (observations {n}, actions {}, rewards {}, terminals {}, timeouts {})",
                act.nrows(),
                rewards.len(),
                terminals.len(),
                timeouts.len()
            );
        }
        let obs_dim = obs.ncols();
        let act_dim = act.ncols();
        let obs_v: Vec<f32> = obs.iter().copied().collect();
        let act_v: Vec<f32> = act.iter().copied().collect();
        let mut d = Dataset::new(obs_dim, act_dim);
        if let Some(next) = next {
            if next.nrows() != n || next.ncols() != obs_dim {
                bail!("{what}: next_observations has shape {:?}, observations {:?}", next.dim(), obs.dim());
            }
            d.observations = obs_v;
            d.actions = act_v;
            d.rewards = rewards;
            d.next_observations = next.iter().copied().collect();
            d.terminals = terminals;
            d.timeouts = timeouts;
        } else {
            // D4RL layout: the successor is the next row within an episode
            for i in 0..n {
                let end = terminals[i] || timeouts[i] || i + 1 == n;
                if end && !terminals[i] {
                    // no successor to bootstrap from: drop the row, but the previous row now ends
                    // the episode
                    if let Some(last) = d.timeouts.last_mut() {
                        if !d.terminals.last().copied().unwrap_or(true) {
                            *last = true;
                        }
                    }
                    continue;
                }
                let next: &[f32] = if terminals[i] {
                    &obs_v[i * obs_dim..(i + 1) * obs_dim]
                } else {
                    &obs_v[(i + 1) * obs_dim..(i + 2) * obs_dim]
                };
                d.push(
                    &obs_v[i * obs_dim..(i + 1) * obs_dim],
                    &act_v[i * act_dim..(i + 1) * act_dim],
                    rewards[i] as f64,
                    next,
                    terminals[i],
                    false,
                );
            }
        }
        d.validate().with_context(|| what.to_string())?;
        Ok(d)
    }

    /// Load `.npz`, or `.h5` / `.hdf5` (D4RL or Minari layout, the `hdf5` feature), by extension.
    pub fn load(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
            Some("h5" | "hdf5") => Self::load_hdf5(path),
            _ => Self::load_npz(path),
        }
    }

    #[cfg(feature = "hdf5")]
    pub fn load_hdf5(path: &Path) -> Result<Self> {
        crate::hdf5::load(path)
    }

    #[cfg(not(feature = "hdf5"))]
    pub fn load_hdf5(path: &Path) -> Result<Self> {
        bail!("{}: reading HDF5 datasets needs the `hdf5` feature of oxrl-control (on by default)", path.display())
    }
}

/// A behaviour policy for [`collect`]: maps an observation to an action.
pub type Behaviour<'a> = dyn FnMut(&[f32]) -> Result<Action> + 'a;

/// A uniform random action of a space.
pub fn random_action(space: &Space, rng: &mut Rng) -> Action {
    match space {
        Space::Discrete(n) => Action::Discrete(rng.random_range(0..*n)),
        Space::Box { low, high } => {
            Action::Continuous(low.iter().zip(high).map(|(l, h)| rng.random_range(*l..*h)).collect())
        }
    }
}

/// An action as a dataset row.
pub fn action_row(a: &Action) -> Vec<f32> {
    match a {
        Action::Discrete(i) => vec![*i as f32],
        Action::Continuous(v) => v.clone(),
    }
}

/// Run `policy` (with probability `epsilon` replaced by a uniform random action) for `steps`
/// environment steps of a built-in environment and record every transition.
pub fn collect(env_name: &str, steps: usize, policy: &mut Behaviour, epsilon: f64, seed: u64) -> Result<Dataset> {
    let mut env = crate::env::make(env_name, oxrl_core::seed::derive(seed, "collect-env", 0))?;
    let mut rng = oxrl_core::seed::rng(seed, "collect", 0);
    let space = env.action_space();
    let mut d = Dataset::new(env.observation_space().dim(), space.dim());
    let mut obs = env.reset();
    for t in 0..steps {
        let a = if epsilon > 0.0 && rng.random::<f64>() < epsilon {
            random_action(&space, &mut rng)
        } else {
            policy(&obs)?
        };
        let s = env.step(&a)?;
        let last = t + 1 == steps;
        d.push(&obs, &action_row(&a), s.reward, &s.obs, s.terminated, s.truncated || last);
        obs = if s.terminated || s.truncated { env.reset() } else { s.obs };
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_cartpole(steps: usize) -> Dataset {
        let mut rng = oxrl_core::seed::rng(0, "t", 0);
        collect("cartpole", steps, &mut |_| Ok(random_action(&Space::Discrete(2), &mut rng)), 0.0, 3).unwrap()
    }

    #[test]
    fn collection_marks_episode_ends_and_round_trips_through_npz() {
        let d = random_cartpole(300);
        d.validate().unwrap();
        assert_eq!(d.len(), 300);
        assert!(d.terminals.iter().filter(|&&t| t).count() >= 5, "random CartPole episodes end in failure");
        assert!(*d.timeouts.last().unwrap(), "the end of collection is a timeout");
        let starts = d.episode_starts();
        let rets = d.episode_returns();
        assert_eq!(starts.len(), rets.len());
        assert_eq!(rets.iter().sum::<f64>(), 300.0);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.npz");
        d.save_npz(&p).unwrap();
        assert_eq!(Dataset::load_npz(&p).unwrap(), d);
    }

    #[test]
    fn d4rl_layout_without_next_observations_is_rebuilt() {
        let d = random_cartpole(120);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d4rl.npz");
        let n = d.len();
        let mut w = NpzWriter::new(std::fs::File::create(&p).unwrap());
        w.add_array("observations", &Array2::from_shape_vec((n, 4), d.observations.clone()).unwrap()).unwrap();
        w.add_array("actions", &Array2::from_shape_vec((n, 1), d.actions.clone()).unwrap()).unwrap();
        w.add_array("rewards", &Array1::from_vec(d.rewards.clone())).unwrap();
        w.add_array("terminals", &Array1::from_vec(d.terminals.clone())).unwrap();
        w.add_array("timeouts", &Array1::from_vec(d.timeouts.clone())).unwrap();
        w.finish().unwrap();
        let e = Dataset::load_npz(&p).unwrap();
        // the final timeout row has no successor and is dropped; everything else is identical
        assert_eq!(e.len(), n - 1);
        for i in 0..e.len() {
            assert_eq!(e.obs(i), d.obs(i));
            assert_eq!(e.terminals[i], d.terminals[i]);
            // a terminal row's successor is unknown in this layout (and unused: no bootstrap)
            if !d.terminals[i] {
                assert_eq!(e.next_obs(i), d.next_obs(i), "row {i}");
            }
        }
        assert!(*e.timeouts.last().unwrap() || *e.terminals.last().unwrap());
    }

    #[test]
    fn bad_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.npz");
        let mut w = NpzWriter::new(std::fs::File::create(&p).unwrap());
        w.add_array("observations", &Array2::<f32>::zeros((3, 2))).unwrap();
        w.add_array("actions", &Array2::<f32>::zeros((2, 1))).unwrap();
        w.add_array("terminals", &Array1::from_vec(vec![false; 3])).unwrap();
        w.finish().unwrap();
        let e = Dataset::load_npz(&p).unwrap_err().to_string();
        assert!(e.contains("bad.npz") && e.contains("rows"), "{e}");
        std::fs::write(&p, b"not a zip").unwrap();
        assert!(Dataset::load_npz(&p).unwrap_err().to_string().contains("bad.npz"));
        let mut d = Dataset::new(1, 1);
        d.push(&[0.0], &[0.0], 0.0, &[5.0], false, false);
        d.push(&[1.0], &[0.0], 0.0, &[2.0], false, true);
        assert!(d.validate().unwrap_err().to_string().contains("row 0"));
    }
}
