//! HDF5 offline datasets, for users who bring D4RL or Minari files (the `hdf5` feature; a pure-Rust
//! reader, so no libhdf5 is needed).
//!
//! Two layouts are recognised:
//! - **D4RL**: root datasets `observations` (N × d), `actions` (N × a, or N for discrete),
//!   `rewards`, `terminals`, optional `timeouts` and `next_observations`; other members (`infos/…`,
//!   `metadata/…`) are ignored. The rows become a [`Dataset`] exactly as an `.npz` of the same
//!   arrays would.
//! - **Minari**: one group per episode (`episode_0`, `episode_1`, … in numeric order) with
//!   `observations` (T + 1 rows: the last one is the final observation), `actions`, `rewards`,
//!   `terminations`, `truncations` (T rows). Transition t is (o_t, a_t, r_t, o_{t+1}); an episode
//!   that ends with neither flag set is marked as a timeout so episodes stay apart.
//!
//! Booleans may be stored as h5py's bool enum, integers or floats. Dict observation spaces (an
//! `observations` group) are refused with a clear error.

use crate::dataset::Dataset;
use anyhow::{anyhow, bail, Context, Result};
use hdf5_pure::{Dataset as H5Dataset, File, Group};
use ndarray::Array2;
use std::path::Path;

/// Rows × columns of a 1-D (one column) or 2-D numeric dataset as f32.
fn matrix(ds: &H5Dataset, what: &str) -> Result<Array2<f32>> {
    let shape = ds.shape().map_err(|e| anyhow!("{what}: {e}"))?;
    let (n, d) = match shape.as_slice() {
        [n] => (*n as usize, 1),
        [n, d] => (*n as usize, *d as usize),
        s => bail!("{what}: expected a 1-D or 2-D array, found shape {s:?}"),
    };
    let v = ds.read_f32().map_err(|e| anyhow!("{what}: {e}"))?;
    Array2::from_shape_vec((n, d), v).map_err(|e| anyhow!("{what}: {e}"))
}

fn column(ds: &H5Dataset, what: &str) -> Result<Vec<f32>> {
    let m = matrix(ds, what)?;
    if m.ncols() != 1 {
        bail!("{what}: expected a 1-D array, found {} columns", m.ncols());
    }
    Ok(m.into_raw_vec_and_offset().0)
}

/// A flag column: h5py's bool enum reads as raw 0 / 1 bytes; integers and floats compare with 0.
fn flags(ds: &H5Dataset, what: &str) -> Result<Vec<bool>> {
    if let Ok(v) = ds.read_f64() {
        return Ok(v.iter().map(|&x| x != 0.0).collect());
    }
    let n = ds.shape().map_err(|e| anyhow!("{what}: {e}"))?.iter().product::<u64>() as usize;
    let raw = ds.read_raw().map_err(|e| anyhow!("{what}: {e}"))?;
    if raw.len() != n {
        bail!("{what}: a flag column must hold one byte (bool) or a number per row");
    }
    Ok(raw.iter().map(|&b| b != 0).collect())
}

fn member(g: &Group, name: &str, what: &str) -> Result<H5Dataset> {
    g.dataset(name).map_err(|e| anyhow!("{what}: missing dataset `{name}` ({e})"))
}

/// Load a D4RL- or Minari-layout HDF5 file.
pub fn load(path: &Path) -> Result<Dataset> {
    let what = path.display().to_string();
    let file = File::open(path).map_err(|e| anyhow!("{what}: cannot open as HDF5 ({e})"))?;
    let root = file.root();
    let datasets = root.datasets().map_err(|e| anyhow!("{what}: {e}"))?;
    let groups = root.groups().map_err(|e| anyhow!("{what}: {e}"))?;
    if datasets.iter().any(|d| d == "observations") {
        return load_d4rl(&root, &datasets, &what);
    }
    let mut episodes: Vec<(u64, String)> = groups
        .iter()
        .filter_map(|g| g.strip_prefix("episode_").and_then(|k| k.parse().ok()).map(|k| (k, g.clone())))
        .collect();
    if episodes.is_empty() {
        if groups.iter().any(|g| g == "observations") {
            bail!(
                "{what}: `observations` is a group (a dict observation space): only array observations are supported"
            );
        }
        bail!(
            "{what}: neither a D4RL file (root dataset `observations`) nor a Minari file (`episode_N` groups); found datasets [{}], groups [{}]",
            datasets.join(", "),
            groups.join(", ")
        );
    }
    episodes.sort();
    load_minari(&root, &episodes, &what)
}

fn load_d4rl(root: &Group, names: &[String], what: &str) -> Result<Dataset> {
    let has = |k: &str| names.iter().any(|x| x == k);
    let obs = matrix(&member(root, "observations", what)?, &format!("{what}: observations"))?;
    let act = matrix(&member(root, "actions", what)?, &format!("{what}: actions"))?;
    let n = obs.nrows();
    let rewards = if has("rewards") {
        column(&member(root, "rewards", what)?, &format!("{what}: rewards"))?
    } else {
        vec![0.0; n]
    };
    let terminals = flags(&member(root, "terminals", what)?, &format!("{what}: terminals"))?;
    let timeouts = if has("timeouts") {
        flags(&member(root, "timeouts", what)?, &format!("{what}: timeouts"))?
    } else {
        vec![false; n]
    };
    let next = if has("next_observations") {
        Some(matrix(&member(root, "next_observations", what)?, &format!("{what}: next_observations"))?)
    } else {
        None
    };
    Dataset::from_columns(what, obs, act, rewards, terminals, timeouts, next)
}

fn load_minari(root: &Group, episodes: &[(u64, String)], what: &str) -> Result<Dataset> {
    let mut out: Option<Dataset> = None;
    for (_, name) in episodes {
        let w = format!("{what}: {name}");
        let g = root.group(name).map_err(|e| anyhow!("{w}: {e}"))?;
        if g.groups().map_err(|e| anyhow!("{w}: {e}"))?.iter().any(|x| x == "observations") {
            bail!("{w}: `observations` is a group (a dict observation space): only array observations are supported");
        }
        let obs = matrix(&member(&g, "observations", &w)?, &format!("{w}/observations"))?;
        let act = matrix(&member(&g, "actions", &w)?, &format!("{w}/actions"))?;
        let rew = column(&member(&g, "rewards", &w)?, &format!("{w}/rewards"))?;
        let term = flags(&member(&g, "terminations", &w)?, &format!("{w}/terminations"))?;
        let trunc = flags(&member(&g, "truncations", &w)?, &format!("{w}/truncations"))?;
        let t = act.nrows();
        if obs.nrows() != t + 1 || rew.len() != t || term.len() != t || trunc.len() != t {
            bail!(
                "{w}: a Minari episode has T + 1 observations and T actions, rewards, terminations, truncations (got {}, {t}, {}, {}, {})",
                obs.nrows(),
                rew.len(),
                term.len(),
                trunc.len()
            );
        }
        let d = out.get_or_insert_with(|| Dataset::new(obs.ncols(), act.ncols()));
        if d.obs_dim != obs.ncols() || d.act_dim != act.ncols() {
            bail!(
                "{w}: observation / action sizes {} / {} differ from earlier episodes' {} / {}",
                obs.ncols(),
                act.ncols(),
                d.obs_dim,
                d.act_dim
            );
        }
        for i in 0..t {
            let end = i + 1 == t;
            // an episode cut with neither flag (e.g. the end of collection) still ends here
            let timeout = !term[i] && (trunc[i] || end);
            d.push(
                obs.row(i).as_slice().context("observations row")?,
                act.row(i).as_slice().context("actions row")?,
                rew[i] as f64,
                obs.row(i + 1).as_slice().context("observations row")?,
                term[i],
                timeout,
            );
        }
    }
    let d = out.context("no episodes")?;
    d.validate().with_context(|| what.to_string())?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
    }

    #[test]
    fn d4rl_file_written_by_h5py_loads_like_the_same_columns() {
        // tools/make_hdf5_fixtures.py: 7 gzip-compressed rows, a terminal at row 2 and a timeout
        // at row 6 (no successor: dropped, row 5 ends the episode instead)
        let d = Dataset::load(&fixture("d4rl-tiny.hdf5")).unwrap();
        let n = 7;
        let obs = Array2::from_shape_fn((n, 3), |(i, j)| (i * 3 + j) as f32 / 10.0);
        let act = Array2::from_shape_fn((n, 2), |(i, j)| ((i * 2 + j) as f32 - 5.0) / 10.0);
        let rew: Vec<f32> = (0..n).map(|i| i as f32 - 3.0).collect();
        let term: Vec<bool> = (0..n).map(|i| i == 2).collect();
        let tout: Vec<bool> = (0..n).map(|i| i == 6).collect();
        let want = Dataset::from_columns("columns", obs, act, rew, term, tout, None).unwrap();
        assert_eq!(d, want);
        assert_eq!(d.len(), 6);
        assert_eq!(d.next_obs(1), d.obs(2));
        assert_eq!(d.next_obs(2), d.obs(2), "a terminal row keeps its own observation");
        assert!((d.next_obs(5)[0] - 1.8).abs() < 1e-6 && d.timeouts[5] && d.terminals[2]);
        assert_eq!(d.episode_starts(), vec![0, 3]);
    }

    #[test]
    fn minari_episodes_become_transitions_with_final_observations() {
        let d = Dataset::load(&fixture("minari-tiny.hdf5")).unwrap();
        assert_eq!((d.len(), d.obs_dim, d.act_dim), (5, 2, 1));
        assert_eq!(d.obs(0), &[0.0, 1.0]);
        assert_eq!(d.next_obs(2), &[6.0, 7.0], "the episode's last observation is the successor");
        assert_eq!(d.obs(3), &[100.0, 101.0]);
        assert_eq!(d.next_obs(4), &[104.0, 105.0]);
        assert_eq!(d.actions, vec![0.0, 1.0, 0.0, 0.0, 1.0]);
        assert_eq!(d.rewards, vec![0.5, 0.5, 0.5, 1.5, 1.5]);
        assert_eq!(d.terminals, vec![false, false, true, false, false]);
        assert_eq!(d.timeouts, vec![false, false, false, false, true]);
        assert_eq!(d.episode_starts(), vec![0, 3]);
    }

    /// `d` in the D4RL layout, written by the pure-Rust writer.
    fn write_d4rl(d: &Dataset, path: &Path) {
        let n = d.len() as u64;
        let mut b = hdf5_pure::FileBuilder::new();
        b.create_dataset("observations").with_f32_data(&d.observations).with_shape(&[n, d.obs_dim as u64]);
        b.create_dataset("next_observations").with_f32_data(&d.next_observations).with_shape(&[n, d.obs_dim as u64]);
        b.create_dataset("actions").with_f32_data(&d.actions).with_shape(&[n, d.act_dim as u64]);
        b.create_dataset("rewards").with_f32_data(&d.rewards);
        b.create_dataset("terminals").with_u8_data(&d.terminals.iter().map(|&x| x as u8).collect::<Vec<_>>());
        b.create_dataset("timeouts").with_u8_data(&d.timeouts.iter().map(|&x| x as u8).collect::<Vec<_>>());
        std::fs::write(path, b.finish().unwrap()).unwrap();
    }

    #[test]
    fn offline_training_from_hdf5_equals_training_from_the_same_npz() {
        let space = crate::env::make("pendulum", 0).unwrap().action_space();
        let mut rng = oxrl_core::seed::rng(0, "t", 0);
        let d = crate::dataset::collect(
            "pendulum",
            400,
            &mut |_| Ok(crate::dataset::random_action(&space, &mut rng)),
            0.0,
            3,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (npz, h5) = (dir.path().join("d.npz"), dir.path().join("d.hdf5"));
        d.save_npz(&npz).unwrap();
        write_d4rl(&d, &h5);
        assert_eq!(Dataset::load(&h5).unwrap(), d);
        let run = |path: &Path, out: &str| {
            let text = format!(
                "algo = \"iql\"\n[env]\nname = \"pendulum\"\n[train]\ntotal_steps = 40\neval_episodes = 1\n[iql]\ndataset = {:?}\nhidden = [16, 16]\nbatch_size = 32\nsteps_per_iteration = 20\n",
                path.display().to_string()
            );
            let cfg = crate::ControlConfig::load_str("test", &text, &[]).unwrap();
            let run_dir = dir.path().join(out);
            let opts = crate::train::TrainOptions {
                run_dir: &run_dir,
                resume: false,
                stop_after: None,
                device: candle_core::Device::Cpu,
            };
            let mut recs = Vec::new();
            crate::train::train(&cfg, &opts, &mut |r| {
                let mut r = r.clone();
                r.as_object_mut().unwrap().remove("sps");
                recs.push(r);
                Ok(())
            })
            .unwrap();
            recs
        };
        assert_eq!(run(&npz, "a"), run(&h5, "b"));
    }

    #[test]
    fn non_dataset_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.h5");
        std::fs::write(&p, b"not hdf5").unwrap();
        let e = Dataset::load(&p).unwrap_err().to_string();
        assert!(e.contains("bad.h5") && e.contains("HDF5"), "{e}");
        // an HDF5 file with neither layout
        let mut b = hdf5_pure::FileBuilder::new();
        b.create_dataset("x").with_f64_data(&[1.0, 2.0]);
        let p = dir.path().join("other.hdf5");
        std::fs::write(&p, b.finish().unwrap()).unwrap();
        let e = format!("{:#}", Dataset::load(&p).unwrap_err());
        assert!(e.contains("other.hdf5") && e.contains("Minari") && e.contains("[x]"), "{e}");
    }
}
