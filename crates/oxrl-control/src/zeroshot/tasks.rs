//! Exact zero-shot evaluation on the grid mazes: downstream tasks are state rewards r(s') known on
//! every free cell — reach each quadrant's centre cell, and stay in each quadrant (the four rooms of
//! `four-rooms`). A model's task vector comes from least squares on all cells' rewards; its greedy
//! policy's discounted return J_π(s) is computed exactly on the deterministic maze and compared with
//! the optimal V*(s) from value iteration: score = mean_s J_π(s) / V*(s) (1 = optimal). The uniform
//! random policy's score is reported alongside.

use super::ZeroShot;
use crate::env::grid_maze::{Cell, GridMaze};
use anyhow::Result;

const MOVES: [(i64, i64); 4] = [(0, -1), (0, 1), (-1, 0), (1, 0)];

/// One downstream task: a name and the reward for arriving at each free cell.
pub struct Task {
    pub name: String,
    pub reward: Vec<f64>,
}

/// The maze's cells, its deterministic transitions and its tasks.
pub struct MazeTasks {
    pub cells: Vec<Cell>,
    /// next[c][a]: the cell index reached from cell c with action a.
    pub next: Vec<[usize; 4]>,
    pub tasks: Vec<Task>,
}

impl MazeTasks {
    pub fn new(maze: &GridMaze) -> Self {
        let cells = maze.layout.free_cells();
        let idx = |c: Cell| cells.iter().position(|&x| x == c);
        let next = cells
            .iter()
            .map(|&(x, y)| {
                let mut n = [0usize; 4];
                for (k, (dx, dy)) in MOVES.iter().enumerate() {
                    n[k] = idx((x + dx, y + dy)).unwrap_or_else(|| idx((x, y)).unwrap());
                }
                n
            })
            .collect();
        let (w, h) = (maze.layout.width as f64, maze.layout.height as f64);
        let quads =
            [("top-left", 0.0, 0.0), ("top-right", 1.0, 0.0), ("bottom-left", 0.0, 1.0), ("bottom-right", 1.0, 1.0)];
        let mut tasks = Vec::new();
        for (name, qx, qy) in quads {
            let in_quad = |c: &Cell| {
                ((c.0 as f64 + 0.5 >= w / 2.0) as u8 as f64 == qx) && ((c.1 as f64 + 0.5 >= h / 2.0) as u8 as f64 == qy)
            };
            // the free cell nearest the quadrant's centre
            let (cx, cy) = ((qx * 2.0 + 1.0) * w / 4.0, (qy * 2.0 + 1.0) * h / 4.0);
            let goal = *cells
                .iter()
                .filter(|c| in_quad(c))
                .min_by(|a, b| {
                    let da = (a.0 as f64 + 0.5 - cx).powi(2) + (a.1 as f64 + 0.5 - cy).powi(2);
                    let db = (b.0 as f64 + 0.5 - cx).powi(2) + (b.1 as f64 + 0.5 - cy).powi(2);
                    da.total_cmp(&db).then(a.cmp(b))
                })
                .expect("every quadrant has a free cell");
            tasks.push(Task {
                name: format!("reach-{name}"),
                reward: cells.iter().map(|&c| (c == goal) as u8 as f64).collect(),
            });
            tasks.push(Task {
                name: format!("stay-{name}"),
                reward: cells.iter().map(|c| in_quad(c) as u8 as f64).collect(),
            });
        }
        Self { cells, next, tasks }
    }

    /// V*(s) by value iteration.
    pub fn optimal(&self, r: &[f64], gamma: f64) -> Vec<f64> {
        let mut v = vec![0.0; self.cells.len()];
        for _ in 0..2000 {
            v = (0..self.cells.len())
                .map(|c| self.next[c].iter().map(|&n| r[n] + gamma * v[n]).fold(f64::NEG_INFINITY, f64::max))
                .collect();
        }
        v
    }

    /// J_π(s) of a deterministic policy (an action per cell), or of the uniform policy (None).
    pub fn policy_value(&self, r: &[f64], gamma: f64, policy: Option<&[usize]>) -> Vec<f64> {
        let mut j = vec![0.0; self.cells.len()];
        for _ in 0..2000 {
            j = (0..self.cells.len())
                .map(|c| match policy {
                    Some(p) => {
                        let n = self.next[c][p[c]];
                        r[n] + gamma * j[n]
                    }
                    None => self.next[c].iter().map(|&n| r[n] + gamma * j[n]).sum::<f64>() / 4.0,
                })
                .collect();
        }
        j
    }

    /// The one-hot state encoding of each cell (the agent half of a grid-maze observation).
    pub fn states(&self) -> Vec<Vec<f32>> {
        let n = self.cells.len();
        (0..n)
            .map(|c| {
                let mut v = vec![0f32; n];
                v[c] = 1.0;
                v
            })
            .collect()
    }
}

/// One task's result.
#[derive(Debug, Clone)]
pub struct TaskScore {
    pub name: String,
    pub score: f64,
    pub random: f64,
}

fn ratio(j: &[f64], v: &[f64]) -> f64 {
    let pairs: Vec<f64> = j.iter().zip(v).filter(|(_, v)| **v > 1e-9).map(|(j, v)| j / v).collect();
    pairs.iter().sum::<f64>() / pairs.len().max(1) as f64
}

/// Score a trained zero-shot agent on every task of `maze` (discount `gamma`).
pub fn evaluate(agent: &ZeroShot, maze: &GridMaze, gamma: f64) -> Result<Vec<TaskScore>> {
    let mt = MazeTasks::new(maze);
    let states = mt.states();
    let mut out = Vec::new();
    for t in &mt.tasks {
        let z = agent.reward_z(&states, &t.reward)?;
        let zs = vec![z; states.len()];
        let policy = agent.greedy(&states, &zs)?;
        let v = mt.optimal(&t.reward, gamma);
        out.push(TaskScore {
            name: t.name.clone(),
            score: ratio(&mt.policy_value(&t.reward, gamma, Some(&policy)), &v),
            random: ratio(&mt.policy_value(&t.reward, gamma, None), &v),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_rooms_tasks_and_exact_values() {
        let maze = GridMaze::new("four-rooms", 0).unwrap();
        let mt = MazeTasks::new(&maze);
        assert_eq!(mt.tasks.len(), 8);
        // each reach task rewards exactly one cell, each room task a room's worth
        for t in &mt.tasks {
            let k = t.reward.iter().filter(|&&r| r > 0.0).count();
            if t.name.starts_with("reach") {
                assert_eq!(k, 1);
            } else {
                assert!((16..=21).contains(&k), "{} {k}", t.name);
            }
        }
        // V* for a reach task: from a cell at maze distance d ≥ 1, γ^{d−1}/(1 − γ) if the goal can
        // be held (a wall next to it) — check the optimal policy value equals V* and beats random
        let g = 0.9;
        let r = &mt.tasks[0].reward;
        let v = mt.optimal(r, g);
        let greedy: Vec<usize> = (0..mt.cells.len())
            .map(|c| {
                (0..4)
                    .max_by(|&a, &b| {
                        let qa = r[mt.next[c][a]] + g * v[mt.next[c][a]];
                        let qb = r[mt.next[c][b]] + g * v[mt.next[c][b]];
                        qa.total_cmp(&qb).then(b.cmp(&a))
                    })
                    .unwrap()
            })
            .collect();
        let j = mt.policy_value(r, g, Some(&greedy));
        assert!(ratio(&j, &v) > 0.999999);
        assert!(ratio(&mt.policy_value(r, g, None), &v) < 0.5);
        // distances: a cell next to the goal has V* ≥ 1 (one step, reward 1)
        let goal = r.iter().position(|&x| x > 0.0).unwrap();
        let nb = mt.next[goal].iter().copied().find(|&n| n != goal).unwrap();
        assert!(v[nb] >= 1.0);
    }
}
