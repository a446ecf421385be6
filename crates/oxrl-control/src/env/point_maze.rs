//! A 2-D point maze with goals (the spec's stand-in for OGBench's pointmaze-*-navigate): a
//! continuous position in a maze of unit cells given as ASCII (`#` wall, `.` free), actions in
//! [−1, 1]² scaled by 0.2 per step, collisions by axis-separated clipping (a move along an axis
//! that would enter a wall cell is cancelled), success within 0.5 cells of the goal.
//!
//! As an [`Env`] the observation is (x, y, goal_x, goal_y), the reward −1 per step and 0 on the
//! step that reaches the goal (which terminates the episode); start and goal are the centres of
//! random free cells at least `min_distance` cells apart along the maze (breadth-first search), with
//! a small uniform jitter. [`navigator_action`] is the scripted noisy waypoint-following policy
//! that generates "navigate"-style datasets.

use super::{uniform, Action, Core, Env, EnvState, Space, Step};
use anyhow::{bail, Result};
use std::collections::VecDeque;

pub const STEP_SCALE: f64 = 0.2;
pub const SUCCESS_RADIUS: f64 = 0.5;

pub const UMAZE: &str = "#####\n#...#\n###.#\n#...#\n#####";
pub const FOUR_ROOMS: &str = "###########\n#....#....#\n#....#....#\n#.........#\n#....#....#\n##.####.###\n#....#....#\n#....#....#\n#.........#\n#....#....#\n###########";
pub const MEDIUM: &str = "########\n#..#...#\n#..#.#.#\n##...#.#\n#..#...#\n#.#..#.#\n#...#..#\n########";

#[derive(Debug, Clone)]
pub struct Layout {
    pub width: usize,
    pub height: usize,
    wall: Vec<bool>,
}

impl Layout {
    pub fn parse(text: &str) -> Result<Self> {
        let rows: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let height = rows.len();
        let width = rows.first().map_or(0, |r| r.len());
        if height < 3 || width < 3 || rows.iter().any(|r| r.len() != width) {
            bail!("a maze layout needs equal-length rows, at least 3×3");
        }
        let mut wall = Vec::with_capacity(width * height);
        for r in &rows {
            for c in r.chars() {
                wall.push(match c {
                    '#' => true,
                    '.' => false,
                    _ => bail!("maze layout: unexpected character {c:?} (use # and .)"),
                });
            }
        }
        // the border must be walls so positions stay inside
        for x in 0..width {
            if !wall[x] || !wall[(height - 1) * width + x] {
                bail!("maze layout: the border must be walls");
            }
        }
        for y in 0..height {
            if !wall[y * width] || !wall[y * width + width - 1] {
                bail!("maze layout: the border must be walls");
            }
        }
        Ok(Self { width, height, wall })
    }

    pub fn named(name: &str) -> Result<Self> {
        Self::parse(match name {
            "umaze" => UMAZE,
            "four-rooms" => FOUR_ROOMS,
            "medium" => MEDIUM,
            _ => bail!("unknown maze {name:?} (umaze, four-rooms, medium)"),
        })
    }

    pub fn is_wall(&self, cx: i64, cy: i64) -> bool {
        cx < 0
            || cy < 0
            || cx >= self.width as i64
            || cy >= self.height as i64
            || self.wall[cy as usize * self.width + cx as usize]
    }

    /// The cell containing a position (cell (cx, cy) spans [cx, cx+1) × [cy, cy+1)).
    pub fn cell(x: f64, y: f64) -> (i64, i64) {
        (x.floor() as i64, y.floor() as i64)
    }

    pub fn free_cells(&self) -> Vec<(i64, i64)> {
        let mut v = Vec::new();
        for cy in 0..self.height as i64 {
            for cx in 0..self.width as i64 {
                if !self.is_wall(cx, cy) {
                    v.push((cx, cy));
                }
            }
        }
        v
    }

    /// Breadth-first distances (in cells, 4-connected) from `from` to every cell (−1 unreachable).
    pub fn distances(&self, from: (i64, i64)) -> Vec<i64> {
        let mut d = vec![-1i64; self.width * self.height];
        let idx = |c: (i64, i64)| c.1 as usize * self.width + c.0 as usize;
        if self.is_wall(from.0, from.1) {
            return d;
        }
        d[idx(from)] = 0;
        let mut q = VecDeque::from([from]);
        while let Some(c) = q.pop_front() {
            for (dx, dy) in [(1, 0), (-1, 0), (0, 1), (0, -1)] {
                let n = (c.0 + dx, c.1 + dy);
                if !self.is_wall(n.0, n.1) && d[idx(n)] < 0 {
                    d[idx(n)] = d[idx(c)] + 1;
                    q.push_back(n);
                }
            }
        }
        d
    }

    pub fn distance(&self, a: (i64, i64), b: (i64, i64)) -> i64 {
        self.distances(b)[a.1 as usize * self.width + a.0 as usize]
    }

    /// The next cell on a shortest path from `from` to `to` (itself when there).
    pub fn next_cell(&self, from: (i64, i64), to: (i64, i64)) -> (i64, i64) {
        let d = self.distances(to);
        let here = d[from.1 as usize * self.width + from.0 as usize];
        if here <= 0 {
            return from;
        }
        for (dx, dy) in [(1, 0), (-1, 0), (0, 1), (0, -1)] {
            let n = (from.0 + dx, from.1 + dy);
            if !self.is_wall(n.0, n.1) && d[n.1 as usize * self.width + n.0 as usize] == here - 1 {
                return n;
            }
        }
        from
    }

    /// Move by (dx, dy) with axis-separated clipping: each axis's move is cancelled if it would
    /// enter a wall cell.
    pub fn advance(&self, x: f64, y: f64, dx: f64, dy: f64) -> (f64, f64) {
        let nx = x + dx;
        let x2 = if self.is_wall(Self::cell(nx, y).0, Self::cell(nx, y).1) { x } else { nx };
        let ny = y + dy;
        let y2 = if self.is_wall(Self::cell(x2, ny).0, Self::cell(x2, ny).1) { y } else { ny };
        (x2, y2)
    }
}

pub struct PointMaze {
    core: Core,
    pub layout: Layout,
    name: &'static str,
    /// x, y, goal x, goal y
    pub state: [f64; 4],
    pub min_distance: i64,
    max_steps: usize,
    success: bool,
}

impl PointMaze {
    pub fn new(maze: &str, seed: u64) -> Result<Self> {
        let layout = Layout::named(maze)?;
        let (name, min_distance, max_steps) = match maze {
            "umaze" => ("pointmaze-umaze", 3, 200),
            "four-rooms" => ("pointmaze-four-rooms", 6, 400),
            _ => ("pointmaze-medium", 6, 400),
        };
        Ok(Self { core: Core::new(seed), layout, name, state: [0.0; 4], min_distance, max_steps, success: false })
    }

    fn obs(&self) -> Vec<f32> {
        self.state.iter().map(|&v| v as f32).collect()
    }

    /// Place the agent and the goal (positions, not checked against walls).
    pub fn set(&mut self, pos: (f64, f64), goal: (f64, f64)) -> Vec<f32> {
        self.state = [pos.0, pos.1, goal.0, goal.1];
        self.core.elapsed = 0;
        self.success = false;
        self.obs()
    }

    fn random_point(&mut self, cell: (i64, i64)) -> (f64, f64) {
        (
            cell.0 as f64 + 0.5 + uniform(&mut self.core.rng, -0.2, 0.2),
            cell.1 as f64 + 0.5 + uniform(&mut self.core.rng, -0.2, 0.2),
        )
    }
}

/// The scripted navigator: head for the centre of the next cell on a shortest path to `target`
/// (or straight at the target inside its cell), full speed, plus Gaussian noise of std `noise`.
pub fn navigator_action(
    layout: &Layout,
    pos: (f64, f64),
    target: (f64, f64),
    noise: f64,
    rng: &mut oxrl_core::seed::Rng,
) -> [f32; 2] {
    use rand_distr::{Distribution, StandardNormal};
    let here = Layout::cell(pos.0, pos.1);
    let goal_cell = Layout::cell(target.0, target.1);
    let way = if here == goal_cell {
        target
    } else {
        let n = layout.next_cell(here, goal_cell);
        (n.0 as f64 + 0.5, n.1 as f64 + 0.5)
    };
    let (dx, dy) = (way.0 - pos.0, way.1 - pos.1);
    let norm = (dx * dx + dy * dy).sqrt().max(1e-9);
    let speed = (norm / STEP_SCALE).min(1.0);
    let mut a = [dx / norm * speed, dy / norm * speed];
    for v in a.iter_mut() {
        let e: f64 = StandardNormal.sample(rng);
        *v = (*v + noise * e).clamp(-1.0, 1.0);
    }
    [a[0] as f32, a[1] as f32]
}

impl Env for PointMaze {
    fn name(&self) -> &'static str {
        self.name
    }
    fn observation_space(&self) -> Space {
        let (w, h) = (self.layout.width as f32, self.layout.height as f32);
        Space::Box { low: vec![0.0; 4], high: vec![w, h, w, h] }
    }
    fn action_space(&self) -> Space {
        Space::Box { low: vec![-1.0, -1.0], high: vec![1.0, 1.0] }
    }
    fn max_steps(&self) -> usize {
        self.max_steps
    }
    fn reset(&mut self) -> Vec<f32> {
        use rand::seq::IndexedRandom;
        let cells = self.layout.free_cells();
        let (start, goal) = loop {
            let a = *cells.choose(&mut self.core.rng).unwrap();
            let b = *cells.choose(&mut self.core.rng).unwrap();
            if self.layout.distance(a, b) >= self.min_distance {
                break (a, b);
            }
        };
        let p = self.random_point(start);
        let g = self.random_point(goal);
        self.set(p, g)
    }
    fn step(&mut self, action: &Action) -> Result<Step> {
        let a = action.vector()?;
        anyhow::ensure!(a.len() == 2, "point maze: action has {} values, expected 2", a.len());
        let (dx, dy) = ((a[0] as f64).clamp(-1.0, 1.0) * STEP_SCALE, (a[1] as f64).clamp(-1.0, 1.0) * STEP_SCALE);
        let (x, y) = self.layout.advance(self.state[0], self.state[1], dx, dy);
        self.state[0] = x;
        self.state[1] = y;
        let dist = ((x - self.state[2]).powi(2) + (y - self.state[3]).powi(2)).sqrt();
        self.success = dist < SUCCESS_RADIUS;
        let truncated = self.core.tick(self.max_steps) && !self.success;
        Ok(Step { obs: self.obs(), reward: if self.success { 0.0 } else { -1.0 }, terminated: self.success, truncated })
    }
    fn success(&self) -> Option<bool> {
        Some(self.success)
    }
    fn save(&self) -> EnvState {
        self.core.save_flagged(&self.state, self.success)
    }
    fn restore(&mut self, state: &EnvState) -> Result<()> {
        let (v, success) = self.core.restore_flagged(state, 4, self.name)?;
        self.state.copy_from_slice(v);
        self.success = success;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn walls_block_each_axis_separately() {
        let l = Layout::named("umaze").unwrap();
        // from the top-left corridor cell, moving down into the wall row is cancelled
        assert_eq!(l.advance(1.5, 1.5, 0.0, 0.6), (1.5, 1.5));
        // a diagonal move into a wall keeps the free axis
        assert_eq!(l.advance(1.5, 1.5, 0.2, 0.6), (1.7, 1.5));
        // the open cell (3, 2) lets the agent pass down on the right
        let (x, y) = l.advance(3.5, 1.5, 0.0, 0.6);
        assert!((x - 3.5).abs() < 1e-12 && (y - 2.1).abs() < 1e-12);
        assert!(Layout::parse("###\n#x#\n###").is_err());
        assert!(Layout::parse("#.#\n#.#\n###").is_err());
    }

    #[test]
    fn bfs_distances_go_around_walls() {
        let l = Layout::named("umaze").unwrap();
        // (1,1) and (1,3) are 2 apart in a straight line but 6 cells around the U
        assert_eq!(l.distance((1, 1), (1, 3)), 6);
        assert_eq!(l.next_cell((1, 3), (1, 1)), (2, 3));
        let m = Layout::named("medium").unwrap();
        assert!(m.free_cells().iter().all(|&c| m.distance(c, (1, 1)) >= 0), "medium maze is connected");
    }

    #[test]
    fn navigator_reaches_goals_and_success_terminates() {
        let mut rng = oxrl_core::seed::Rng::seed_from_u64(0);
        for maze in ["umaze", "four-rooms", "medium"] {
            let mut e = PointMaze::new(maze, 1).unwrap();
            for _ in 0..3 {
                let o = e.reset();
                let goal = (o[2] as f64, o[3] as f64);
                let mut done = false;
                for _ in 0..e.max_steps() {
                    let a = navigator_action(&e.layout, (e.state[0], e.state[1]), goal, 0.1, &mut rng);
                    let s = e.step(&Action::Continuous(a.to_vec())).unwrap();
                    if s.terminated {
                        assert_eq!(s.reward, 0.0);
                        assert_eq!(e.success(), Some(true));
                        done = true;
                        break;
                    }
                    assert_eq!(s.reward, -1.0);
                }
                assert!(done, "{maze}: navigator failed");
            }
        }
    }
}
