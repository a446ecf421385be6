//! RLG — "Inference-Time Alignment Control for Diffusion Models with Reinforcement Learning
//! Guidance" (2025), in its autoregressive form: each next-token distribution is the geometric
//! mixture of a base and an RL-tuned model,
//!
//!   logits_w = (1 − w)·logits_base + w·logits_tuned   ⇒   p_w ∝ p_base^(1−w)·p_tuned^w,
//!
//! w = 0 the base, w = 1 the tuned model, 0 < w < 1 interpolation, w > 1 extrapolation. If the
//! tuned model is the KL-regularised optimum p_tuned ∝ p_base·exp(R/β), then p_w ∝
//! p_base·exp(w·R/β): the weight acts as a KL coefficient β/w. A token masked (−∞) in either model
//! stays masked for every w (for w > 1 a −∞ base logit would otherwise become +∞).
//! CONFIRMED-CODE for the mixing rule (jinluo12345/Reinforcement-learning-guidance: untuned +
//! scale·(tuned − untuned)); the per-token form for language models is the standard
//! approximation of the sequence-level tilt.

/// The guided logits row.
pub fn guide_logits(base: &[f32], tuned: &[f32], w: f32) -> Vec<f32> {
    if w == 0.0 {
        return base.to_vec();
    }
    if w == 1.0 {
        return tuned.to_vec();
    }
    base.iter()
        .zip(tuned)
        .map(
            |(&b, &t)| {
                if b == f32::NEG_INFINITY || t == f32::NEG_INFINITY {
                    f32::NEG_INFINITY
                } else {
                    (1.0 - w) * b + w * t
                }
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn softmax(l: &[f32]) -> Vec<f64> {
        let m = l.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let e: Vec<f64> = l.iter().map(|&x| (x as f64 - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|x| x / s).collect()
    }

    #[test]
    fn oracles() {
        let b = [0.5f32, -1.0, 2.0, 0.0, 1.2];
        let r = [1.5f32, 0.3, -0.5, 0.0, 2.2];
        assert_eq!(guide_logits(&b, &r, 0.0), b.to_vec());
        assert_eq!(guide_logits(&b, &r, 1.0), r.to_vec());
        // single-token BANDIT-LM: softmax of the mix = p_b^(1−w)·p_r^w normalised
        for w in [0.3f32, 0.7, 1.6] {
            let got = softmax(&guide_logits(&b, &r, w));
            let (pb, pr) = (softmax(&b), softmax(&r));
            let un: Vec<f64> = pb.iter().zip(&pr).map(|(x, y)| x.powf(1.0 - w as f64) * y.powf(w as f64)).collect();
            let z: f64 = un.iter().sum();
            for (g, u) in got.iter().zip(&un) {
                assert!((g - u / z).abs() < 1e-6, "w = {w}");
            }
        }
        // KL equivalence: p_tuned = p_base·exp(R/β)/Z ⇒ p_w = p_base·exp(w·R/β)/Z_w
        let reward = [1.0f64, -0.5, 0.2, 0.0, 0.7];
        let beta = 0.4;
        let tuned: Vec<f32> = b.iter().zip(&reward).map(|(&l, &rw)| l + (rw / beta) as f32).collect();
        for w in [0.5f32, 2.0] {
            let got = softmax(&guide_logits(&b, &tuned, w));
            let want =
                softmax(&b.iter().zip(&reward).map(|(&l, &rw)| l + (w as f64 * rw / beta) as f32).collect::<Vec<_>>());
            for (g, x) in got.iter().zip(&want) {
                assert!((g - x).abs() < 1e-5);
            }
        }
        // a token masked in either model stays masked, also when extrapolating
        let masked = guide_logits(&[f32::NEG_INFINITY, 0.0], &[0.0, 0.0], 1.6);
        assert_eq!(masked[0], f32::NEG_INFINITY);
        assert!(guide_logits(&[0.0, 0.0], &[0.0, f32::NEG_INFINITY], 0.5)[1] == f32::NEG_INFINITY);
    }
}
