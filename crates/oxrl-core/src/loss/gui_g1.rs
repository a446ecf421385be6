//! GUI-G1's policy loss — "GUI-G1: Understanding R1-Zero-Like Training for Visual Grounding in
//! GUI Agents" (2025).
//!
//! Per response the clipped surrogate is *summed* over its tokens (no 1/|o_i|: a long response
//! is not favoured when wrong nor penalised when right), times the response's difficulty weight
//! w_i, divided by a constant (64), then averaged over responses:
//!
//!   L = (1/B) Σ_i w_i · Σ_t m_{i,t} ℓ_{i,t} / 64,      A_i = r_i − μ_g (no std division).
//!
//! In oxrl this is `train.advantage = "dr_grpo"` (A = r − μ), `train.loss_agg =
//! "seq-mean-token-sum"` and `train.difficulty_weight = true` (w_i from the problem's
//! `meta.rate`). The surrogate is linear in the advantage, so w_i is applied to A_i, which scales
//! exactly that response's policy-gradient term and leaves KL / entropy terms alone. The constant
//! 1/64 is left out: AdamW is invariant to a constant loss scale (it only moves the gradient-clip
//! threshold, set with `train.grad_clip`).
//! CONFIRMED-CODE (Yuqi-Zhou/GUI-G1 trainer/grpo_trainer.py); the "rate" weight is a data field
//! there — the built-in grounding task's formula is INFERRED.

/// Multiply each response's advantages by its difficulty weight.
pub fn apply_difficulty(advantages: &mut [Vec<f64>], weights: &[f64]) {
    assert_eq!(advantages.len(), weights.len(), "one difficulty weight per response");
    for (a, &w) in advantages.iter_mut().zip(weights) {
        a.iter_mut().for_each(|x| *x *= w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::{aggregate, ppo_clip_loss, AggMode, PpoClip};
    use candle_core::{Device, Tensor, Var};

    /// d loss / d logp of every token, for advantages `adv` (one row per response).
    fn grads(adv: &[Vec<f64>], mask: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let dev = Device::Cpu;
        let logp = Var::new(vec![vec![-1.0f64; 4]; adv.len()], &dev).unwrap();
        let old = Tensor::new(vec![vec![-1.0f64; 4]; adv.len()], &dev).unwrap();
        let a = Tensor::new(adv.to_vec(), &dev).unwrap();
        let m = Tensor::new(mask.to_vec(), &dev).unwrap();
        let (l, _) = ppo_clip_loss(logp.as_tensor(), &old, &a, &m, PpoClip::default()).unwrap();
        let loss = aggregate(&l, &m, AggMode::SeqMeanTokenSum, 0.0).unwrap();
        loss.backward().unwrap().get(logp.as_tensor()).unwrap().to_vec2::<f64>().unwrap()
    }

    #[test]
    fn difficulty_scales_the_gradient_and_length_is_not_normalised() {
        let mask = vec![vec![1.0, 1.0, 0.0, 0.0], vec![1.0, 1.0, 1.0, 1.0]];
        let base = vec![vec![0.5; 4], vec![0.5; 4]];
        let g0 = grads(&base, &mask);
        // w = 3 on the first response triples its gradient and leaves the other's
        let mut weighted = base.clone();
        apply_difficulty(&mut weighted, &[3.0, 1.0]);
        let g1 = grads(&weighted, &mask);
        for t in 0..4 {
            assert!((g1[0][t] - 3.0 * g0[0][t]).abs() < 1e-12);
            assert_eq!(g1[1][t], g0[1][t]);
        }
        // token sum: every token gets the same gradient, so the 4-token response contributes twice
        // the 2-token one's total
        let total = |r: &[f64]| r.iter().map(|x| x.abs()).sum::<f64>();
        assert!((total(&g0[1]) - 2.0 * total(&g0[0])).abs() < 1e-12);
        assert!(g0[0][0] == g0[1][0] && g0[0][0] != 0.0);
    }
}
