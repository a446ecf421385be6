//! TD-JEPA's losses — "TD-JEPA: Latent-predictive Representations for Zero-Shot RL" (2025), as in
//! the authors' code (marbaga/td_jepa_public). These are the building blocks; the TD-JEPA agent
//! (encoders, predictors, actor, zero-shot task inference) is not assembled yet.
//!
//! - Orthonormality regulariser on an encoder output E (B × d): with C = E·Eᵀ,
//!   L = −mean(diag C) + ½·Σ_{i≠j} C_ij² / (B(B − 1)); in population form ½·tr(S²) − tr(S) with
//!   S = E[φφᵀ], minimised by S = I.
//! - Task vectors projected to the sphere of radius √d (the zero vector maps to √d·e₁).
//! - The TD latent-prediction target ψ̃(s') + γ·mask·T̃(φ̃(s'), a', z) (γ = 0: one-step JEPA).
//! - Its tabular fixed point: with one-hot φ/ψ and a fixed policy, iterating
//!   T ← P(ψ + γT) converges to (I − γP)⁻¹Pψ, the successor features of ψ.

use anyhow::Result;
use candle_core::{Tensor, D};

/// The orthonormality loss of a (B × d) batch of encodings.
pub fn ortho_loss(e: &Tensor) -> Result<Tensor> {
    let b = e.dim(0)? as f64;
    let c = e.matmul(&e.t()?)?;
    let diag_mean = (e.sqr()?.sum(D::Minus1)?.sum_all()? / b)?;
    let off_sq = (c.sqr()?.sum_all()? - e.sqr()?.sum(D::Minus1)?.sqr()?.sum_all()?)?;
    Ok(((off_sq * (0.5 / (b * (b - 1.0)).max(1.0)))? - diag_mean)?)
}

/// Rows scaled to norm √d (a zero row becomes √d·e₁).
pub fn project_sphere(z: &[Vec<f32>]) -> Vec<Vec<f32>> {
    z.iter()
        .map(|r| {
            let d = r.len() as f32;
            let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
            if n < 1e-12 {
                let mut v = vec![0.0; r.len()];
                if let Some(x) = v.first_mut() {
                    *x = d.sqrt();
                }
                v
            } else {
                r.iter().map(|x| x * d.sqrt() / n).collect()
            }
        })
        .collect()
}

/// ψ̃(s') + γ·mask·T̃(φ̃(s'), a', z), detached (all inputs B × d, mask B).
pub fn td_target(psi_next: &Tensor, pred_next: &Tensor, mask: &Tensor, gamma: f64) -> Result<Tensor> {
    Ok((psi_next + (pred_next.broadcast_mul(&mask.unsqueeze(1)?)? * gamma)?)?.detach())
}

/// Iterate the tabular TD update T ← P(ψ + γT) with exact expectations (`p` row-stochastic n × n,
/// `psi` n × d) for `iters` steps from T = 0.
pub fn tabular_sf(p: &[Vec<f64>], psi: &[Vec<f64>], gamma: f64, iters: usize) -> Vec<Vec<f64>> {
    let (n, d) = (p.len(), psi[0].len());
    let mut t = vec![vec![0.0; d]; n];
    for _ in 0..iters {
        let mut next = vec![vec![0.0; d]; n];
        for s in 0..n {
            for (s2, &ps) in p[s].iter().enumerate() {
                for k in 0..d {
                    next[s][k] += ps * (psi[s2][k] + gamma * t[s2][k]);
                }
            }
        }
        t = next;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use oxrl_core::seed::Rng;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    #[test]
    fn ortho_loss_matches_its_population_form_and_is_minimised_at_identity_covariance() {
        let (b, d) = (4096usize, 8usize);
        let mut rng = Rng::seed_from_u64(0);
        let mut at = |c: f64| {
            // fresh batches (one fixed batch has degenerate minimisers)
            let mut tot = 0.0;
            for _ in 0..3 {
                let nd = Normal::new(0.0, c.sqrt()).unwrap();
                let v: Vec<f32> = (0..b * d).map(|_| nd.sample(&mut rng) as f32).collect();
                let e = Tensor::from_vec(v, (b, d), &Device::Cpu).unwrap();
                tot += ortho_loss(&e).unwrap().to_scalar::<f32>().unwrap() as f64;
            }
            tot / 3.0
        };
        for c in [0.5, 1.0, 2.0] {
            let want = 0.5 * c * c * d as f64 - c * d as f64;
            let got = at(c);
            assert!((got - want).abs() < 0.2, "c {c}: {got} vs {want}");
        }
        assert!(at(1.0) < at(0.5) && at(1.0) < at(2.0));
        assert!((at(1.0) + d as f64 / 2.0).abs() < 0.2);
        let zero = Tensor::zeros((16, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(ortho_loss(&zero).unwrap().to_scalar::<f32>().unwrap(), 0.0);
    }

    #[test]
    fn projection_has_norm_sqrt_d_and_guards_zero() {
        for r in project_sphere(&[vec![3.0, 4.0, 0.0, 0.0], vec![0.0; 4], vec![-1e-3, 2e-3, 0.0, 5.0]]) {
            let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((n - 2.0).abs() < 1e-5, "{r:?}");
        }
    }

    #[test]
    fn gamma_zero_target_is_one_step_prediction() {
        let d = Device::Cpu;
        let psi = Tensor::new(&[[1.0f32, 2.0], [3.0, 4.0]], &d).unwrap();
        let pred = Tensor::new(&[[10.0f32, 10.0], [10.0, 10.0]], &d).unwrap();
        let mask = Tensor::new(&[1.0f32, 0.0], &d).unwrap();
        assert_eq!(
            td_target(&psi, &pred, &mask, 0.0).unwrap().to_vec2::<f32>().unwrap(),
            psi.to_vec2::<f32>().unwrap()
        );
        assert_eq!(
            td_target(&psi, &pred, &mask, 0.5).unwrap().to_vec2::<f32>().unwrap(),
            vec![vec![6.0, 7.0], vec![3.0, 4.0]]
        );
    }

    #[test]
    fn tabular_td_fixed_point_is_the_successor_feature_matrix() {
        // a 3-state chain under a fixed policy, one-hot ψ: T* = (I − γP)⁻¹ P
        let p = vec![vec![0.5, 0.5, 0.0], vec![0.0, 0.2, 0.8], vec![0.3, 0.0, 0.7]];
        let psi = vec![vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0], vec![0.0, 0.0, 1.0]];
        let g = 0.9;
        let t = tabular_sf(&p, &psi, g, 2000);
        // independent solve: (I − γP)·X = P by Gauss–Jordan
        let n = 3;
        let mut a: Vec<Vec<f64>> = (0..n)
            .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 } - g * p[i][j]).chain(p[i].iter().copied()).collect())
            .collect();
        for c in 0..n {
            let piv = (c..n).max_by(|&x, &y| a[x][c].abs().partial_cmp(&a[y][c].abs()).unwrap()).unwrap();
            a.swap(c, piv);
            let v = a[c][c];
            a[c].iter_mut().for_each(|x| *x /= v);
            for r in 0..n {
                if r != c {
                    let f = a[r][c];
                    let row_c = a[c].clone();
                    a[r].iter_mut().zip(&row_c).for_each(|(x, y)| *x -= f * y);
                }
            }
        }
        for i in 0..n {
            for j in 0..n {
                assert!((t[i][j] - a[i][n + j]).abs() < 1e-9, "({i},{j}) {} vs {}", t[i][j], a[i][n + j]);
            }
        }
    }
}
