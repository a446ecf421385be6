//! GRPO group-relative advantage — "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in
//! Open Language Models" (2024).
//!
//! A_i = (s_i − μ_g) / (σ_g + ε), σ unbiased, ε = 1e-6; a group of one gets μ = 0, σ = 1.
//! CONFIRMED-CODE (verl compute_grpo_outcome_advantage).

use super::{broadcast, check, group_indices, mean, std_unbiased, AdvantageEstimator, AdvantageInput, Advantages, EPS};
use anyhow::Result;

pub struct Grpo;

impl AdvantageEstimator for Grpo {
    fn name(&self) -> &'static str {
        "grpo"
    }
    fn compute(&self, input: &AdvantageInput) -> Result<Advantages> {
        check(input)?;
        let s = input.scores();
        let mut a = vec![0.0; s.len()];
        for idx in group_indices(input.groups) {
            let r: Vec<f64> = idx.iter().map(|&i| s[i]).collect();
            let (mu, sigma) = if r.len() < 2 { (0.0, 1.0) } else { (mean(&r), std_unbiased(&r)) };
            for &i in &idx {
                a[i] = (s[i] - mu) / (sigma + EPS);
            }
        }
        Ok(Advantages { advantages: broadcast(&a, input.token_rewards), returns: None, sample_weight: None })
    }
}

#[cfg(test)]
mod tests {
    use super::super::outcome;
    use super::*;

    fn adv(r: &[f64], groups: &[usize]) -> Vec<f64> {
        let tr = outcome(r, &vec![3; r.len()]);
        let out = Grpo.compute(&AdvantageInput { token_rewards: &tr, groups, values: None, tasks: None }).unwrap();
        out.advantages.iter().map(|a| a[0]).collect()
    }

    #[test]
    fn oracles() {
        let a = adv(&[1.0, 0.0, 0.0, 0.0], &[0, 0, 0, 0]);
        for (x, y) in a.iter().zip([1.5, -0.5, -0.5, -0.5]) {
            assert!((x - y).abs() < 1e-5, "{a:?}");
        }
        // sums to zero per group; scale and shift invariant
        let r = [0.3, 1.2, -0.7, 2.0, 5.0, 5.5];
        let g = [0, 0, 0, 1, 1, 1];
        let a = adv(&r, &g);
        assert!(a[..3].iter().sum::<f64>().abs() < 1e-9 && a[3..].iter().sum::<f64>().abs() < 1e-9);
        let r2: Vec<f64> = r.iter().map(|x| 3.0 * x + 7.0).collect();
        for (x, y) in a.iter().zip(adv(&r2, &g)) {
            assert!((x - y).abs() < 1e-5);
        }
        // binary rewards, k of G correct
        let (gn, k) = (8usize, 3usize);
        let r: Vec<f64> = (0..gn).map(|i| (i < k) as u8 as f64).collect();
        let a = adv(&r, &vec![0; gn]);
        let p = k as f64 / gn as f64;
        let sigma = (gn as f64 / (gn as f64 - 1.0) * p * (1.0 - p)).sqrt();
        assert!((a[0] - (1.0 - p) / sigma).abs() < 1e-5 && (a[7] + p / sigma).abs() < 1e-5);
        // all-equal rewards: zero, no NaN; singleton group: A = r
        assert_eq!(adv(&[1.0, 1.0, 1.0], &[0, 0, 0]), vec![0.0; 3]);
        assert!((adv(&[0.7], &[4])[0] - 0.7 / (1.0 + EPS)).abs() < 1e-12);
        // broadcast to every token
        let tr = outcome(&[1.0, 0.0], &[2, 5]);
        let out =
            Grpo.compute(&AdvantageInput { token_rewards: &tr, groups: &[0, 0], values: None, tasks: None }).unwrap();
        assert_eq!(out.advantages[1].len(), 5);
        assert!(out.advantages[1].iter().all(|&x| x == out.advantages[1][0]));
    }
}
