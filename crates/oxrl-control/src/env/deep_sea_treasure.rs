//! Deep Sea Treasure — Vamplew et al., "Empirical evaluation methods for multiobjective
//! reinforcement learning algorithms" (2011), with MO-Gymnasium's maps: an 11 × 11 grid, a
//! submarine starting top-left, treasures on the sea floor (`-10` cells are rock: moves into them
//! or off the grid are cancelled), reward vector (treasure, −1 per step), episode ends on a
//! treasure; 100-step limit. `convex` is the classic map (front (0.7, −1) … (23.7, −19)); `concave`
//! has treasures 1, 2, 3, 5, 8, 16, 24, 50, 74, 124.
//!
//! As a scalar [`Env`] the reward is w·(treasure, time) with weights `weights` (default (1, 1));
//! [`DeepSea::reward_vector`] gives the vector. [`pareto_front`] computes the true front by
//! breadth-first search, [`hypervolume_2d`] the exact dominated area, [`expected_utility`] the mean
//! over a preference grid of the best scalarised value.

use super::{Action, Core, Env, EnvState, Space, Step};
use anyhow::{bail, Result};
use std::collections::VecDeque;

const R: f64 = -10.0;
pub const CONVEX: [[f64; 11]; 11] = [
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [0.7, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [R, 8.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [R, R, 11.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [R, R, R, 14.0, 15.1, 16.1, 0.0, 0.0, 0.0, 0.0, 0.0],
    [R, R, R, R, R, R, 0.0, 0.0, 0.0, 0.0, 0.0],
    [R, R, R, R, R, R, 0.0, 0.0, 0.0, 0.0, 0.0],
    [R, R, R, R, R, R, 19.6, 20.3, 0.0, 0.0, 0.0],
    [R, R, R, R, R, R, R, R, 0.0, 0.0, 0.0],
    [R, R, R, R, R, R, R, R, 22.4, 0.0, 0.0],
    [R, R, R, R, R, R, R, R, R, 23.7, 0.0],
];

/// The concave variant: same layout, treasures 1, 2, 3, 5, 8, 16, 24, 50, 74, 124.
pub fn concave_map() -> [[f64; 11]; 11] {
    let vals = [1.0, 2.0, 3.0, 5.0, 8.0, 16.0, 24.0, 50.0, 74.0, 124.0];
    let mut m = CONVEX;
    let mut k = 0;
    // treasures in the order of their distance from the start (the order of the convex values)
    let mut cells: Vec<(usize, usize, f64)> = Vec::new();
    for (r, row) in CONVEX.iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            if v > 0.0 {
                cells.push((r, c, v));
            }
        }
    }
    cells.sort_by(|a, b| a.2.partial_cmp(&b.2).unwrap());
    for (r, c, _) in cells {
        m[r][c] = vals[k];
        k += 1;
    }
    m
}

pub struct DeepSea {
    core: Core,
    pub map: [[f64; 11]; 11],
    pub weights: [f64; 2],
    name: &'static str,
    /// row, column
    pub pos: (i64, i64),
    last_vector: [f64; 2],
    max_steps: usize,
}

impl DeepSea {
    pub fn new(concave: bool, seed: u64) -> Self {
        Self {
            core: Core::new(seed),
            map: if concave { concave_map() } else { CONVEX },
            weights: [1.0, 1.0],
            name: if concave { "deep-sea-treasure-concave" } else { "deep-sea-treasure" },
            pos: (0, 0),
            last_vector: [0.0, 0.0],
            max_steps: 100,
        }
    }

    fn blocked(&self, r: i64, c: i64) -> bool {
        !(0..11).contains(&r) || !(0..11).contains(&c) || self.map[r as usize][c as usize] == R
    }

    /// The reward vector (treasure, time) of the last step.
    pub fn reward_vector(&self) -> [f64; 2] {
        self.last_vector
    }

    fn obs(&self) -> Vec<f32> {
        vec![self.pos.0 as f32, self.pos.1 as f32]
    }
}

const MOVES: [(i64, i64); 4] = [(-1, 0), (1, 0), (0, -1), (0, 1)];

impl Env for DeepSea {
    fn name(&self) -> &'static str {
        self.name
    }
    fn observation_space(&self) -> Space {
        Space::Box { low: vec![0.0, 0.0], high: vec![10.0, 10.0] }
    }
    fn action_space(&self) -> Space {
        Space::Discrete(4)
    }
    fn max_steps(&self) -> usize {
        self.max_steps
    }
    fn reset(&mut self) -> Vec<f32> {
        self.pos = (0, 0);
        self.core.elapsed = 0;
        self.obs()
    }
    fn step(&mut self, action: &Action) -> Result<Step> {
        let a = action.index()?;
        if a > 3 {
            bail!("deep-sea-treasure: action {a} outside 0..4 (up, down, left, right)");
        }
        let (dr, dc) = MOVES[a];
        let n = (self.pos.0 + dr, self.pos.1 + dc);
        if !self.blocked(n.0, n.1) {
            self.pos = n;
        }
        let treasure = self.map[self.pos.0 as usize][self.pos.1 as usize];
        let terminated = treasure > 0.0;
        self.last_vector = [if terminated { treasure } else { 0.0 }, -1.0];
        let truncated = self.core.tick(self.max_steps) && !terminated;
        let reward = self.weights[0] * self.last_vector[0] + self.weights[1] * self.last_vector[1];
        Ok(Step { obs: self.obs(), reward, terminated, truncated })
    }
    fn reward_vector(&self) -> Option<Vec<f64>> {
        Some(self.last_vector.to_vec())
    }
    fn save(&self) -> EnvState {
        self.core.save(vec![self.pos.0 as f64, self.pos.1 as f64])
    }
    fn restore(&mut self, state: &EnvState) -> Result<()> {
        let v = self.core.restore(state, 2, self.name)?;
        self.pos = (v[0] as i64, v[1] as i64);
        Ok(())
    }
}

/// The true Pareto front (treasure, −steps) of a map: every treasure at its shortest distance,
/// keeping the non-dominated ones, sorted by treasure.
pub fn pareto_front(map: &[[f64; 11]; 11]) -> Vec<(f64, f64)> {
    let mut dist = [[-1i64; 11]; 11];
    dist[0][0] = 0;
    let mut q = VecDeque::from([(0i64, 0i64)]);
    let mut pts = Vec::new();
    while let Some((r, c)) = q.pop_front() {
        let v = map[r as usize][c as usize];
        if v > 0.0 {
            pts.push((v, -(dist[r as usize][c as usize] as f64)));
            continue; // episodes end on a treasure
        }
        for (dr, dc) in MOVES {
            let (nr, nc) = (r + dr, c + dc);
            if (0..11).contains(&nr)
                && (0..11).contains(&nc)
                && map[nr as usize][nc as usize] != R
                && dist[nr as usize][nc as usize] < 0
            {
                dist[nr as usize][nc as usize] = dist[r as usize][c as usize] + 1;
                q.push_back((nr, nc));
            }
        }
    }
    let mut front: Vec<(f64, f64)> =
        pts.iter().copied().filter(|p| !pts.iter().any(|q| q.0 >= p.0 && q.1 >= p.1 && q != p)).collect();
    front.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    front
}

/// Exact hypervolume (area dominated by `points`, both objectives maximised) above `reference`.
pub fn hypervolume_2d(points: &[(f64, f64)], reference: (f64, f64)) -> f64 {
    let mut p: Vec<(f64, f64)> = points.iter().copied().filter(|q| q.0 > reference.0 && q.1 > reference.1).collect();
    // sweep by the first objective descending, adding the new strip of the second
    p.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(b.1.partial_cmp(&a.1).unwrap()));
    let mut area = 0.0;
    let mut top = reference.1;
    for (x, y) in p {
        if y > top {
            area += (x - reference.0) * (y - top);
            top = y;
        }
    }
    area
}

/// Mean over `weights` of max over `values` of w·v (the expected-utility metric).
pub fn expected_utility(values: &[(f64, f64)], weights: &[(f64, f64)]) -> f64 {
    weights.iter().map(|w| values.iter().map(|v| w.0 * v.0 + w.1 * v.1).fold(f64::NEG_INFINITY, f64::max)).sum::<f64>()
        / weights.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRONT: [(f64, f64); 10] = [
        (0.7, -1.0),
        (8.2, -3.0),
        (11.5, -5.0),
        (14.0, -7.0),
        (15.1, -8.0),
        (16.1, -9.0),
        (19.6, -13.0),
        (20.3, -14.0),
        (22.4, -17.0),
        (23.7, -19.0),
    ];

    #[test]
    fn bfs_front_is_the_published_one() {
        assert_eq!(pareto_front(&CONVEX), FRONT.to_vec());
        let concave = pareto_front(&concave_map());
        assert_eq!(
            concave.iter().map(|p| p.0).collect::<Vec<_>>(),
            vec![1.0, 2.0, 3.0, 5.0, 8.0, 16.0, 24.0, 50.0, 74.0, 124.0]
        );
    }

    #[test]
    fn hypervolume_equals_the_polygon_area() {
        // independent computation: sum over unit time slices t ∈ [−25, −1) of the best treasure
        // reachable within that time budget
        let mut slices = 0.0;
        for t in -25..-1 {
            let best = FRONT.iter().filter(|p| p.1 >= (t + 1) as f64).map(|p| p.0).fold(0.0, f64::max);
            slices += best;
        }
        let hv = hypervolume_2d(&FRONT, (0.0, -25.0));
        assert!((hv - slices).abs() < 1e-9, "{hv} vs {slices}");
        assert!((hv - 401.8).abs() < 1e-9, "{hv}");
        // dominated points add nothing
        let mut more = FRONT.to_vec();
        more.push((10.0, -10.0));
        assert!((hypervolume_2d(&more, (0.0, -25.0)) - hv).abs() < 1e-12);
    }

    #[test]
    fn oracle_policies_attain_every_front_point_and_expected_utility() {
        // walking down then right along the shortest path reaches each treasure at its front value
        for &(value, time) in &FRONT {
            let (tr, tc) =
                (0..11).flat_map(|r| (0..11).map(move |c| (r, c))).find(|&(r, c)| CONVEX[r][c] == value).unwrap();
            let mut e = DeepSea::new(false, 0);
            e.reset();
            let mut ret = [0.0, 0.0];
            // go right along the top row to the column, then down
            let mut actions = vec![3; tc];
            actions.extend(vec![1; tr]);
            for a in actions {
                let s = e.step(&Action::Discrete(a)).unwrap();
                ret[0] += e.reward_vector()[0];
                ret[1] += e.reward_vector()[1];
                if s.terminated {
                    break;
                }
            }
            assert_eq!((ret[0], ret[1]), (value, time), "treasure {value}");
        }
        let ws = [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5)];
        let eu = expected_utility(&FRONT, &ws);
        // w = (1, 0): 23.7; w = (0, 1): −1; w = (½, ½): max ½(v + t) = ½(16.1 − 9) = 3.55
        assert!((eu - (23.7 - 1.0 + 3.55) / 3.0).abs() < 1e-12, "{eu}");
        // rocks block
        let mut e = DeepSea::new(false, 0);
        e.reset();
        e.pos = (2, 1);
        e.step(&Action::Discrete(2)).unwrap();
        assert_eq!(e.pos, (2, 1));
    }
}
