//! PSR / NSR / W-REINFORCE — "The Surprising Effectiveness of Negative Reinforcement in LLM
//! Reasoning" (Zhu et al., 2025).
//!
//! Binary rewards split the REINFORCE objective into its positive and negative halves:
//! - PSR (positive sample reinforcement): correct samples get A = +1, incorrect ones leave the batch;
//! - NSR (negative sample reinforcement): incorrect samples get A = −1, correct ones leave the batch;
//! - W-REINFORCE: every sample stays, A = λ for correct and −1 for incorrect (λ = 0.1 by default).
//!
//! No baseline; used inside the PPO clipped loss without KL. "Leaving the batch" is a sample
//! weight of 0, so those tokens do not count in the loss aggregation either. A sample is correct
//! when its reward is ≥ 0.5 (rewards are binary {0, 1}; the config refuses shaped rewards).
//! CONFIRMED-CODE (TianHongZXY/RLVR-Decomposed compute_psr_nsr_outcome_advantage).

use super::{broadcast, check, AdvantageEstimator, AdvantageInput, Advantages};
use anyhow::Result;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SignedMode {
    Psr,
    Nsr,
    /// W-REINFORCE with the weight λ of correct samples.
    Weighted(f64),
}

pub struct SignedReinforce {
    pub mode: SignedMode,
}

impl AdvantageEstimator for SignedReinforce {
    fn name(&self) -> &'static str {
        match self.mode {
            SignedMode::Psr => "psr",
            SignedMode::Nsr => "nsr",
            SignedMode::Weighted(_) => "w_reinforce",
        }
    }
    fn needs_groups(&self) -> bool {
        false
    }
    fn needs_binary_rewards(&self) -> bool {
        true
    }
    fn compute(&self, input: &AdvantageInput) -> Result<Advantages> {
        check(input)?;
        let correct: Vec<bool> = input.scores().iter().map(|&s| s >= 0.5).collect();
        let (a, w): (Vec<f64>, Vec<f64>) = correct
            .iter()
            .map(|&c| match (self.mode, c) {
                (SignedMode::Psr, true) => (1.0, 1.0),
                (SignedMode::Psr, false) => (0.0, 0.0),
                (SignedMode::Nsr, true) => (0.0, 0.0),
                (SignedMode::Nsr, false) => (-1.0, 1.0),
                (SignedMode::Weighted(l), true) => (l, 1.0),
                (SignedMode::Weighted(_), false) => (-1.0, 1.0),
            })
            .unzip();
        Ok(Advantages { advantages: broadcast(&a, input.token_rewards), returns: None, sample_weight: Some(w) })
    }
}

#[cfg(test)]
mod tests {
    use super::super::outcome;
    use super::*;

    fn run(mode: SignedMode, r: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let tr = outcome(r, &vec![2; r.len()]);
        let g = vec![0; r.len()];
        let out = SignedReinforce { mode }
            .compute(&AdvantageInput { token_rewards: &tr, groups: &g, values: None, tasks: None })
            .unwrap();
        (out.advantages.iter().map(|a| a[0]).collect(), out.sample_weight.unwrap())
    }

    #[test]
    fn oracles() {
        let r = [1.0, 0.0, 1.0, 0.0];
        assert_eq!(run(SignedMode::Psr, &r), (vec![1.0, 0.0, 1.0, 0.0], vec![1.0, 0.0, 1.0, 0.0]));
        assert_eq!(run(SignedMode::Nsr, &r), (vec![0.0, -1.0, 0.0, -1.0], vec![0.0, 1.0, 0.0, 1.0]));
        assert_eq!(run(SignedMode::Weighted(0.1), &r), (vec![0.1, -1.0, 0.1, -1.0], vec![1.0; 4]));
        // λ = 1: REINFORCE with ±1 = 2·(r − 0.5)
        let (a, _) = run(SignedMode::Weighted(1.0), &r);
        for (x, ri) in a.iter().zip(r) {
            assert_eq!(*x, 2.0 * (ri - 0.5));
        }
    }

    /// NSR on a softmax toy: the gradient step on a sampled wrong token w (loss −A·log p_w with
    /// A = −1) lowers p_w and raises every other logit by lr·p_j — in proportion to that token's
    /// current probability (the paper's "redistributes mass according to the model's prior").
    #[test]
    fn nsr_redistributes_mass_by_current_probability() {
        let logits = [0.5f64, -0.2, 1.3, 0.1];
        let softmax = |z: &[f64]| {
            let m = z.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = z.iter().map(|x| (x - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(|x| x / s).collect::<Vec<_>>()
        };
        let p0 = softmax(&logits);
        let (wrong, a, lr) = (2usize, -1.0, 0.1);
        // ∂(−A·log p_w)/∂z_j = −A·(1[j = w] − p_j)
        let grad: Vec<f64> = (0..4).map(|j| -a * ((j == wrong) as u8 as f64 - p0[j])).collect();
        let z1: Vec<f64> = logits.iter().zip(&grad).map(|(z, g)| z - lr * g).collect();
        let p1 = softmax(&z1);
        assert!(p1[wrong] < p0[wrong]);
        let per_prob: Vec<f64> = (0..4).filter(|&j| j != wrong).map(|j| (z1[j] - logits[j]) / p0[j]).collect();
        assert!(per_prob.iter().all(|&r| (r - lr).abs() < 1e-12), "{per_prob:?}");
        // and the sampled token's lost mass all goes to the others
        assert!((p1.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((0..4).filter(|&j| j != wrong).all(|j| p1[j] > p0[j]));
    }
}
