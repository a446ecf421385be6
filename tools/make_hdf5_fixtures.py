"""Writes the two small HDF5 dataset fixtures of crates/oxrl-control/tests/fixtures with h5py, in
the layouts real files use, so the pure-Rust reader is tested against files h5py wrote:

- d4rl-tiny.hdf5: D4RL layout (root datasets, gzip-compressed chunks, bool terminals / timeouts,
  an `infos` group the reader ignores, no next_observations);
- minari-tiny.hdf5: Minari layout (episode_N groups with T + 1 observations).

Values are arithmetic so the Rust test can state them exactly.
    python tools/make_hdf5_fixtures.py crates/oxrl-control/tests/fixtures
"""
import sys

import h5py
import numpy as np

out = sys.argv[1]

# D4RL: 7 rows, episodes [0..3) ending in a terminal at row 2 and [3..7) ending in a timeout at row 6
n = 7
obs = np.arange(n * 3, dtype=np.float32).reshape(n, 3) / 10
act = (np.arange(n * 2, dtype=np.float32).reshape(n, 2) - 5) / 10
rew = np.arange(n, dtype=np.float32) - 3
terminals = np.zeros(n, dtype=bool)
terminals[2] = True
timeouts = np.zeros(n, dtype=bool)
timeouts[6] = True
with h5py.File(f"{out}/d4rl-tiny.hdf5", "w") as f:
    for k, v in [("observations", obs), ("actions", act), ("rewards", rew), ("terminals", terminals), ("timeouts", timeouts)]:
        f.create_dataset(k, data=v, compression="gzip", chunks=True)
    f.create_dataset("infos/qpos", data=np.zeros((n, 2), dtype=np.float64))

# Minari: two episodes of 3 and 2 steps (the first terminated, the second truncated), discrete actions
with h5py.File(f"{out}/minari-tiny.hdf5", "w") as f:
    f.attrs["total_episodes"] = 2
    f.attrs["total_steps"] = 5
    for i, (t, terminated) in enumerate([(3, True), (2, False)]):
        g = f.create_group(f"episode_{i}")
        g.attrs["id"] = i
        g.create_dataset("observations", data=(np.arange((t + 1) * 2, dtype=np.float64).reshape(t + 1, 2) + 100 * i))
        g.create_dataset("actions", data=np.arange(t, dtype=np.int64) % 2)
        g.create_dataset("rewards", data=np.full(t, 0.5 + i, dtype=np.float64))
        term = np.zeros(t, dtype=bool)
        trunc = np.zeros(t, dtype=bool)
        (term if terminated else trunc)[-1] = True
        g.create_dataset("terminations", data=term)
        g.create_dataset("truncations", data=trunc)
