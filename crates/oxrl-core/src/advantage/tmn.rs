//! TMN-Reweight — GoLongRL (2026): task-level mean normalisation and difficulty-adaptive group
//! weights for multi-task RL with heterogeneous reward scales (F1, EM, ROUGE, accuracy, …).
//!
//! 1. r̃_i = s_i / (m_τ + ε), m_τ the batch mean score of the response's task τ (aligns scales).
//! 2. A_i = r̃_i − mean_{group}(r̃) (group-centred, no std division).
//! 3. A′_i = w_g·A_i with w_g = 4·μ̃_g(1 − μ̃_g) on the group's mean normalised reward clipped to
//!    [0, 1] (μ̃ = clip(mean_g(r̃)/2, 0, 1), so a task-average group gets w = 1), floored at
//!    `min_weight` — very easy and very hard groups, whose estimates are least reliable, count
//!    less. With `weighting = false`, w ≡ 1.
//!
//! INFERRED minimal form from the abstract (GoLongRL, 2026); the division form of step 1 and the
//! weight curve are design choices kept configurable.

use super::{group_indices, AdvantageEstimator, AdvantageInput, Advantages};
use anyhow::{ensure, Result};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TmnReweight {
    /// Difficulty-adaptive group weights (false: w ≡ 1).
    pub weighting: bool,
    /// Floor of the group weight.
    pub min_weight: f64,
}

impl Default for TmnReweight {
    fn default() -> Self {
        Self { weighting: true, min_weight: 0.25 }
    }
}

impl TmnReweight {
    /// Per-response advantages from scores, groups and task ids.
    pub fn scalar(&self, scores: &[f64], groups: &[usize], tasks: &[usize]) -> Result<Vec<f64>> {
        ensure!(scores.len() == groups.len() && groups.len() == tasks.len(), "one group and task id per response");
        let mut sums: BTreeMap<usize, (f64, usize)> = BTreeMap::new();
        for (&s, &t) in scores.iter().zip(tasks) {
            let e = sums.entry(t).or_insert((0.0, 0));
            e.0 += s;
            e.1 += 1;
        }
        let norm: Vec<f64> = scores
            .iter()
            .zip(tasks)
            .map(|(&s, t)| {
                let (sum, n) = sums[t];
                s / (sum / n as f64 + super::EPS)
            })
            .collect();
        let mut adv = vec![0.0; scores.len()];
        for idx in group_indices(groups) {
            let mu = idx.iter().map(|&i| norm[i]).sum::<f64>() / idx.len() as f64;
            let w = if self.weighting {
                let m = (mu / 2.0).clamp(0.0, 1.0);
                (4.0 * m * (1.0 - m)).max(self.min_weight)
            } else {
                1.0
            };
            for &i in &idx {
                adv[i] = w * (norm[i] - mu);
            }
        }
        Ok(adv)
    }
}

impl AdvantageEstimator for TmnReweight {
    fn name(&self) -> &'static str {
        "tmn"
    }
    fn compute(&self, input: &AdvantageInput) -> Result<Advantages> {
        let tasks = input.tasks.map(|t| t.to_vec()).unwrap_or_else(|| vec![0; input.groups.len()]);
        let a = self.scalar(&input.scores(), input.groups, &tasks)?;
        Ok(Advantages {
            advantages: input.token_rewards.iter().zip(&a).map(|(r, &x)| vec![x; r.len()]).collect(),
            returns: None,
            sample_weight: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracles() -> Result<()> {
        // Two tasks: task 1's rewards are task 0's × 10.
        let s0 = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0];
        let groups = [0, 0, 0, 1, 1, 1];
        let tasks = [0; 6];
        let t = TmnReweight::default();
        let a = t.scalar(&s0, &groups, &tasks)?;
        // Multiplying all rewards of a task by c leaves its advantages unchanged.
        let s10: Vec<f64> = s0.iter().map(|x| x * 10.0).collect();
        let b = t.scalar(&s10, &groups, &tasks)?;
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
        // …also inside a mixed batch: task 1 = task 0 scaled gets the same advantages.
        let mixed: Vec<f64> = s0.iter().chain(&s10).copied().collect();
        let g2: Vec<usize> = groups.iter().chain(&[2, 2, 2, 3, 3, 3]).copied().collect();
        let t2: Vec<usize> = [0; 6].iter().chain(&[1; 6]).copied().collect();
        let m = t.scalar(&mixed, &g2, &t2)?;
        for i in 0..6 {
            assert!((m[i] - m[i + 6]).abs() < 1e-5, "{m:?}");
        }
        // Single task, w ≡ 1: Dr.GRPO (r − μ_g) on rewards divided by the batch mean.
        let flat = TmnReweight { weighting: false, ..Default::default() }.scalar(&s0, &groups, &tasks)?;
        let mean = s0.iter().sum::<f64>() / 6.0;
        let dr = super::super::group_centered(&s0, &groups);
        for (x, d) in flat.iter().zip(&dr) {
            assert!((x - d / (mean + super::super::EPS)).abs() < 1e-9);
        }
        // Group advantages sum to zero; an all-equal group gets zero.
        assert!(a[..3].iter().sum::<f64>().abs() < 1e-9);
        let z = t.scalar(&[1.0, 1.0, 0.0, 1.0], &[0, 0, 1, 1], &[0; 4])?;
        assert_eq!(&z[..2], &[0.0, 0.0]);
        Ok(())
    }
}
