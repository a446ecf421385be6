//! A discrete goal-reaching maze — the spec's sparse-reward testbed for group RL with binary
//! success (SRPO): the agent moves between the free cells of an ASCII maze (the point-maze layouts:
//! umaze, four-rooms, medium) with four actions (up, down, left, right; moves into walls are
//! cancelled). Observation: one-hot of the agent's free cell followed by one-hot of the goal's.
//! Reward 1 on the step that reaches the goal (terminates), 0 otherwise; `max_steps` per episode.
//! Start and goal are random free cells at least `min_distance` apart along the maze; the
//! `-fixed` variants keep the goal in the far corner (the last free cell) and draw only the start.
//!
//! The `-flip` variants hide a physics parameter (LAPO's stand-in, in place of the spec's slippery
//! floor, which can make cells unreachable): with probability ½ per episode the controls are
//! reversed (up moves down, left moves right). The observation then also holds the previous action
//! (one-hot, zeros at the start) and the previous displacement (dx, dy), so the policy can infer the
//! hidden parameter from its first unblocked move.

use super::point_maze::Layout;
use super::{Action, Core, Env, EnvState, Space, Step};
use anyhow::{bail, Result};
use rand::seq::IndexedRandom;

pub type Cell = (i64, i64);

const MOVES: [(i64, i64); 4] = [(0, -1), (0, 1), (-1, 0), (1, 0)];

pub struct GridMaze {
    core: Core,
    pub layout: Layout,
    cells: Vec<Cell>,
    pub agent: Cell,
    pub goal: Cell,
    pub min_distance: i64,
    /// A goal kept for every episode (the `-fixed` variants).
    pub fixed_goal: Option<Cell>,
    /// The `-flip` variants: controls reversed this episode (hidden), previous action and move.
    pub physics: bool,
    pub flipped: bool,
    last_action: Option<usize>,
    last_move: Cell,
    max_steps: usize,
    name: &'static str,
}

impl GridMaze {
    /// `maze` is a layout name (umaze, four-rooms, medium), optionally with `-fixed`.
    pub fn new(maze: &str, seed: u64) -> Result<Self> {
        let (name, max_steps, min_distance) = match maze {
            "umaze" => ("gridmaze-umaze", 20, 3),
            "four-rooms" => ("gridmaze-four-rooms", 40, 8),
            "medium" => ("gridmaze-medium", 40, 6),
            "umaze-fixed" => ("gridmaze-umaze-fixed", 20, 3),
            "four-rooms-fixed" => ("gridmaze-four-rooms-fixed", 40, 8),
            "medium-fixed" => ("gridmaze-medium-fixed", 40, 6),
            "umaze-flip" => ("gridmaze-umaze-flip", 20, 3),
            "four-rooms-flip" => ("gridmaze-four-rooms-flip", 40, 8),
            "medium-flip" => ("gridmaze-medium-flip", 40, 6),
            _ => bail!("unknown grid maze {maze:?} (umaze, four-rooms, medium, each optionally -fixed or -flip)"),
        };
        let layout = Layout::named(maze.trim_end_matches("-fixed").trim_end_matches("-flip"))?;
        let cells = layout.free_cells();
        let fixed_goal = maze.ends_with("-fixed").then(|| *cells.last().unwrap());
        Ok(Self {
            fixed_goal,
            physics: maze.ends_with("-flip"),
            flipped: false,
            last_action: None,
            last_move: (0, 0),
            core: Core::new(seed),
            agent: cells[0],
            goal: cells[1],
            cells,
            layout,
            min_distance,
            max_steps,
            name,
        })
    }

    fn index(&self, c: Cell) -> usize {
        self.cells.iter().position(|&x| x == c).expect("a free cell")
    }

    pub fn obs(&self) -> Vec<f32> {
        let n = self.cells.len();
        let mut o = vec![0f32; 2 * n];
        o[self.index(self.agent)] = 1.0;
        o[n + self.index(self.goal)] = 1.0;
        if self.physics {
            let mut a = [0f32; 4];
            if let Some(k) = self.last_action {
                a[k] = 1.0;
            }
            o.extend(a);
            o.extend([self.last_move.0 as f32, self.last_move.1 as f32]);
        }
        o
    }

    /// Put the agent and the goal on given free cells (a fixed task).
    pub fn set(&mut self, agent: Cell, goal: Cell) -> Result<Vec<f32>> {
        if self.layout.is_wall(agent.0, agent.1) || self.layout.is_wall(goal.0, goal.1) {
            bail!("{}: start and goal must be free cells", self.name);
        }
        self.agent = agent;
        self.goal = goal;
        self.core.elapsed = 0;
        Ok(self.obs())
    }
}

impl Env for GridMaze {
    fn name(&self) -> &'static str {
        self.name
    }
    fn observation_space(&self) -> Space {
        let d = 2 * self.cells.len();
        let (mut low, mut high) = (vec![0.0; d], vec![1.0; d]);
        if self.physics {
            low.extend([0.0, 0.0, 0.0, 0.0, -1.0, -1.0]);
            high.extend([1.0; 6]);
        }
        Space::Box { low, high }
    }
    fn action_space(&self) -> Space {
        Space::Discrete(4)
    }
    fn max_steps(&self) -> usize {
        self.max_steps
    }
    fn reset(&mut self) -> Vec<f32> {
        let (a, g) = loop {
            let a = *self.cells.choose(&mut self.core.rng).unwrap();
            let g = match self.fixed_goal {
                Some(g) => g,
                None => *self.cells.choose(&mut self.core.rng).unwrap(),
            };
            if self.layout.distance(a, g) >= self.min_distance {
                break (a, g);
            }
        };
        self.agent = a;
        self.goal = g;
        self.core.elapsed = 0;
        if self.physics {
            use rand::Rng as _;
            self.flipped = self.core.rng.random::<f64>() < 0.5;
            self.last_action = None;
            self.last_move = (0, 0);
        }
        self.obs()
    }
    fn step(&mut self, action: &Action) -> Result<Step> {
        let a = action.index()?;
        if a > 3 {
            bail!("{}: action {a} outside 0..4", self.name);
        }
        let (dx, dy) = if self.flipped { (-MOVES[a].0, -MOVES[a].1) } else { MOVES[a] };
        let n = (self.agent.0 + dx, self.agent.1 + dy);
        let before = self.agent;
        if !self.layout.is_wall(n.0, n.1) {
            self.agent = n;
        }
        self.last_action = Some(a);
        self.last_move = (self.agent.0 - before.0, self.agent.1 - before.1);
        let reached = self.agent == self.goal;
        let truncated = self.core.tick(self.max_steps) && !reached;
        Ok(Step { obs: self.obs(), reward: reached as u8 as f64, terminated: reached, truncated })
    }
    fn success(&self) -> Option<bool> {
        Some(self.agent == self.goal)
    }
    /// A shortest-path move toward the goal, in this episode's controls (reversed when flipped).
    fn expert_action(&self) -> Option<usize> {
        let next = self.layout.next_cell(self.agent, self.goal);
        let step = (next.0 - self.agent.0, next.1 - self.agent.1);
        let want = if self.flipped { (-step.0, -step.1) } else { step };
        MOVES.iter().position(|&m| m == want)
    }
    fn hidden_parameter(&self) -> Option<f64> {
        self.physics.then_some(self.flipped as u8 as f64)
    }
    fn save(&self) -> EnvState {
        let mut v = vec![self.agent.0 as f64, self.agent.1 as f64, self.goal.0 as f64, self.goal.1 as f64];
        if self.physics {
            let last = self.last_action.map_or(-1.0, |a| a as f64);
            v.extend([self.flipped as u8 as f64, last, self.last_move.0 as f64, self.last_move.1 as f64]);
        }
        self.core.save(v)
    }
    fn restore(&mut self, state: &EnvState) -> Result<()> {
        let v = self.core.restore(state, if self.physics { 8 } else { 4 }, self.name)?.to_vec();
        self.agent = (v[0] as i64, v[1] as i64);
        self.goal = (v[2] as i64, v[3] as i64);
        if self.physics {
            self.flipped = v[4] != 0.0;
            self.last_action = (v[5] >= 0.0).then_some(v[5] as usize);
            self.last_move = (v[6] as i64, v[7] as i64);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walls_block_the_shortest_path_reaches_the_goal_and_state_restores() {
        let mut e = GridMaze::new("four-rooms", 0).unwrap();
        let o = e.reset();
        assert_eq!(o.iter().sum::<f32>(), 2.0);
        assert!(e.layout.distance(e.agent, e.goal) >= 8);
        // a move into the outer wall is cancelled
        e.set((1, 1), (3, 3)).unwrap();
        e.step(&Action::Discrete(0)).unwrap();
        assert_eq!(e.agent, (1, 1));
        // follow the maze's shortest path: reward 1 exactly on arrival
        e.reset();
        let st = e.save();
        let steps = e.layout.distance(e.agent, e.goal);
        for k in 0..steps {
            let next = e.layout.next_cell(e.agent, e.goal);
            let a = MOVES.iter().position(|&(dx, dy)| (e.agent.0 + dx, e.agent.1 + dy) == next).unwrap();
            let s = e.step(&Action::Discrete(a)).unwrap();
            assert_eq!(s.terminated, k + 1 == steps);
            assert_eq!(s.reward, if k + 1 == steps { 1.0 } else { 0.0 });
        }
        assert_eq!(e.success(), Some(true));
        let mut f = GridMaze::new("four-rooms", 9).unwrap();
        f.restore(&st).unwrap();
        assert_eq!(f.layout.distance(f.agent, f.goal), steps);
        assert!(f.set((0, 0), (3, 3)).is_err());
        // the fixed variant keeps its goal in the far corner
        let mut g = GridMaze::new("four-rooms-fixed", 1).unwrap();
        for _ in 0..5 {
            g.reset();
            assert_eq!(g.goal, (9, 9));
            assert!(g.layout.distance(g.agent, g.goal) >= 8);
        }
    }

    #[test]
    fn flip_variants_reverse_the_controls_on_about_half_the_episodes_and_show_the_last_move() {
        let mut e = GridMaze::new("four-rooms-flip", 3).unwrap();
        let n = 2 * e.cells.len();
        assert_eq!(e.observation_space().dim(), n + 6);
        let mut flipped = 0;
        for _ in 0..200 {
            let o = e.reset();
            assert!(o[n..].iter().all(|&v| v == 0.0), "no previous action or move at the start");
            flipped += e.flipped as usize;
            // from a cell with free cells on both sides horizontally, "right" (3) moves right unless flipped
            e.set((2, 2), e.goal).unwrap();
            let s = e.step(&Action::Discrete(3)).unwrap();
            let want = if e.flipped { (1, 2) } else { (3, 2) };
            assert_eq!(e.agent, want);
            assert_eq!(&s.obs[n..], &[0.0, 0.0, 0.0, 1.0, (want.0 - 2) as f32, 0.0]);
            let saved = e.save();
            let a = e.step(&Action::Discrete(0)).unwrap();
            e.restore(&saved).unwrap();
            assert_eq!(e.step(&Action::Discrete(0)).unwrap(), a);
        }
        assert!((70..=130).contains(&flipped), "{flipped} of 200 flipped");
        // the plain variants keep their observation
        assert_eq!(GridMaze::new("four-rooms", 0).unwrap().observation_space().dim(), n);
    }
}
