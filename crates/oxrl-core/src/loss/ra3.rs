//! RA3 — reasoning as action abstractions: mid-training with a sequential variational lower
//! bound ("Learning to Reason as Action Abstractions with Scalable Mid-Training RL", 2025).
//!
//! Expert sequences x are split into segments; before segment k a latent z_k (a short rationale
//! the model writes between markers) may be inserted. The bound
//!
//!   log p(x) ≥ E_{q(z|x)} [ Σ_k log p(x_k | x_{<k}, z_{≤k}) + log p(z_k | x_{<k}, z_{<k}) − log q(z_k | ·) ]
//!
//! is raised EM-style. E-step ("discover structure with RL"): candidates z_k sampled from the
//! model are rewarded by the likelihood gain of the next expert segment, minus a length cost,
//!
//!   R(z_k) = log p(x_k | ·, z_k) − log p(x_k | ·) − c·|z_k|,
//!
//! and the best one is kept when R > 0 (else no latent). M-step: next-token training on the
//! expert segments interleaved with the kept latents. A latent that carries no information has
//! R = −c·|z| ≤ 0 and is never kept.
//! INFERRED from the abstract (Apple, 2025): best-of-M selection as the E-step's RL, the
//! marker format and the cost are the spec's minimal design.

/// R(z) from the segment's log-likelihood with and without the latent.
pub fn latent_reward(logp_with: f64, logp_without: f64, latent_tokens: usize, cost: f64) -> f64 {
    logp_with - logp_without - cost * latent_tokens as f64
}

/// The candidate to keep: the highest reward when it is positive.
pub fn select(rewards: &[f64]) -> Option<usize> {
    let (i, r) = rewards.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1))?;
    (*r > 0.0).then_some(i)
}

/// The bound's value for an enumerable model: Σ_z q(z)·(log p(z) + log p(x|z) − log q(z)).
pub fn elbo(q: &[f64], log_prior: &[f64], log_lik: &[f64]) -> f64 {
    q.iter()
        .zip(log_prior.iter().zip(log_lik))
        .filter(|(&qz, _)| qz > 0.0)
        .map(|(&qz, (&lp, &ll))| qz * (lp + ll - qz.ln()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn logsumexp(v: &[f64]) -> f64 {
        let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
    }

    #[test]
    fn the_bound_never_exceeds_the_evidence_and_is_tight_at_the_posterior() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        for _ in 0..200 {
            let n = rng.random_range(2..6);
            let prior: Vec<f64> = (0..n).map(|_| rng.random_range(0.1..1.0)).collect();
            let zs: f64 = prior.iter().sum();
            let log_prior: Vec<f64> = prior.iter().map(|p| (p / zs).ln()).collect();
            let log_lik: Vec<f64> = (0..n).map(|_| rng.random_range(-5.0..0.0)).collect();
            let joint: Vec<f64> = log_prior.iter().zip(&log_lik).map(|(a, b)| a + b).collect();
            let log_px = logsumexp(&joint);
            let q: Vec<f64> = (0..n).map(|_| rng.random_range(0.0..1.0)).collect();
            let qs: f64 = q.iter().sum();
            let q: Vec<f64> = q.iter().map(|x| x / qs).collect();
            assert!(elbo(&q, &log_prior, &log_lik) <= log_px + 1e-12);
            let post: Vec<f64> = joint.iter().map(|j| (j - log_px).exp()).collect();
            assert!((elbo(&post, &log_prior, &log_lik) - log_px).abs() < 1e-9);
            // a point mass (best-of-M selection) is a valid q: its bound is log p(x, z*)
            let best = (0..n).max_by(|&a, &b| joint[a].total_cmp(&joint[b])).unwrap();
            let mut point = vec![0.0; n];
            point[best] = 1.0;
            assert!((elbo(&point, &log_prior, &log_lik) - joint[best]).abs() < 1e-12);
        }
    }

    #[test]
    fn uninformative_latents_are_never_kept() {
        // no information: the segment's likelihood is unchanged
        assert!(latent_reward(-3.0, -3.0, 5, 0.05) <= 0.0);
        assert_eq!(select(&[latent_reward(-3.0, -3.0, 5, 0.05), latent_reward(-3.5, -3.0, 2, 0.05)]), None);
        // an informative one is kept, the best of several
        let r = [latent_reward(-1.0, -3.0, 10, 0.05), latent_reward(-0.5, -3.0, 30, 0.05), -0.2];
        assert!((r[0] - 1.5).abs() < 1e-12 && (r[1] - 1.0).abs() < 1e-12);
        assert_eq!(select(&r), Some(0));
        assert_eq!(select(&[]), None);
    }
}
