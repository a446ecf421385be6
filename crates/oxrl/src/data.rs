//! The training data cursor: problem `i` of the run is the task's `i`-th training problem, or for
//! finite datasets the `i mod n`-th item of a seeded per-epoch shuffle. The cursor is one integer,
//! so a run can be resumed exactly.

use oxrl_tasks::{Problem, Task};

pub struct DataStream<'a> {
    task: &'a dyn Task,
    seed: u64,
    pub cursor: u64,
    epoch: Option<(u64, Vec<u64>)>,
}

impl<'a> DataStream<'a> {
    pub fn new(task: &'a dyn Task, seed: u64, cursor: u64) -> Self {
        Self { task, seed, cursor, epoch: None }
    }

    pub fn next_batch(&mut self, n: usize) -> Vec<Problem> {
        (0..n).map(|_| self.next_problem()).collect()
    }

    fn next_problem(&mut self) -> Problem {
        let i = self.cursor;
        self.cursor += 1;
        match self.task.train_size() {
            None => self.task.train_problem(i),
            Some(n) => {
                let (epoch, pos) = (i / n as u64, i % n as u64);
                if self.epoch.as_ref().map(|e| e.0) != Some(epoch) {
                    use rand::seq::SliceRandom;
                    let mut perm: Vec<u64> = (0..n as u64).collect();
                    perm.shuffle(&mut oxrl_core::seed::rng(self.seed, "epoch", epoch));
                    self.epoch = Some((epoch, perm));
                }
                self.task.train_problem(self.epoch.as_ref().unwrap().1[pos as usize])
            }
        }
    }
}
