//! PAPO — implicit perception loss + double entropy loss ("Perception-Aware Policy Optimization
//! for Multimodal Reasoning", 2025), on masked text prompts.
//!
//! The same response is scored on the real prompt (log π) and on a masked view of it (aug log π;
//! PAPO blacks out image patches with probability 0.6 — here prompt tokens, in spans, replaced by
//! the pad token). Per token
//!
//!   KL_prcp = exp(aug − logp) − (aug − logp) − 1        (k3 of KL(π(·|real) ‖ π(·|masked)))
//!
//! optionally clamped to [0, c], and the loss becomes
//!
//!   L = L_GRPO − γ·agg(KL_prcp) + η_aug·agg(−aug) + η_ori·agg(−logp)
//!
//! (maximise the divergence: the answer should depend on the prompt; the double entropy terms —
//! minimising both sampled-token entropies — stop the policy from inflating KL_prcp by making
//! the masked-input distribution diffuse). With equal log-probs KL_prcp = 0.
//! CONFIRMED-CODE (MikeWangWZHL/PAPO dp_actor.py); the text masking (token spans, pad token,
//! first and last prompt tokens kept) is INFERRED.

use anyhow::Result;
use candle_core::Tensor;
use rand::Rng;

/// Per-token perception KL `[B, R]` (k3), clamped to [0, clamp] when `clamp` > 0.
pub fn perception_kl(logp: &Tensor, aug_logp: &Tensor, clamp: f64) -> Result<Tensor> {
    let d = (aug_logp - logp)?;
    let k3 = ((d.exp()? - &d)? - 1.0)?;
    Ok(if clamp > 0.0 { k3.clamp(0.0, clamp)? } else { k3 })
}

/// A masked view of a prompt: spans of `span` tokens each replaced by `mask_id` with
/// probability `p`; the first and the last token are kept (BOS / the separator before the
/// response).
pub fn mask_prompt(prompt: &[u32], p: f64, span: usize, mask_id: u32, rng: &mut impl Rng) -> Vec<u32> {
    let mut out = prompt.to_vec();
    if prompt.len() <= 2 {
        return out;
    }
    let span = span.max(1);
    let mut i = 1;
    while i < prompt.len() - 1 {
        let end = (i + span).min(prompt.len() - 1);
        if rng.random_bool(p.clamp(0.0, 1.0)) {
            out[i..end].iter_mut().for_each(|t| *t = mask_id);
        }
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::SeedableRng;

    #[test]
    fn oracles() -> Result<()> {
        let dev = Device::Cpu;
        let lp = Tensor::new(&[[-1.0f64, -2.0]], &dev)?;
        // equal log-probs: no perception KL (PAPO reduces to GRPO + the entropy terms)
        assert!(perception_kl(&lp, &lp, 0.0)?.flatten_all()?.to_vec1::<f64>()?.iter().all(|&x| x.abs() < 1e-12));
        // hand value: d = aug − logp = −1 → e^{−1} + 1 − 1
        let aug = Var::new(&[[-2.0f64, -2.0]], &dev)?;
        let k = perception_kl(&lp, aug.as_tensor(), 0.0)?;
        assert!((k.to_vec2::<f64>()?[0][0] - (-1.0f64).exp()).abs() < 1e-12);
        assert!(perception_kl(&lp, aug.as_tensor(), 0.2)?.to_vec2::<f64>()?[0][0] == 0.2);
        // sign: the loss −γ·KL falls as the masked log-prob moves away from the real one
        let g = (k.sum_all()? * -0.01)?.backward()?;
        let ga = g.get(aug.as_tensor()).unwrap().to_vec2::<f64>()?;
        assert!(ga[0][0] > 0.0, "descending the loss lowers aug further (more divergence): {ga:?}");
        // masking keeps the ends, masks ~p of the rest, in spans
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let prompt: Vec<u32> = (10..1010).collect();
        let m = mask_prompt(&prompt, 0.6, 1, 0, &mut rng);
        assert_eq!((m[0], m[999]), (10, 1009));
        let frac = m.iter().filter(|&&t| t == 0).count() as f64 / 998.0;
        assert!((frac - 0.6).abs() < 0.06, "{frac}");
        let m = mask_prompt(&prompt, 0.5, 4, 0, &mut rng);
        for chunk in m[1..997].chunks(4) {
            assert!(chunk.iter().all(|&t| t == 0) || chunk.iter().all(|&t| t != 0), "spans are masked whole");
        }
        assert_eq!(mask_prompt(&[1, 2], 1.0, 1, 0, &mut rng), vec![1, 2]);
        Ok(())
    }
}
