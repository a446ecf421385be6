//! TD-JEPA — "TD-JEPA: Latent-predictive Representations for Zero-Shot RL" (2025), as in the
//! authors' code (marbaga/td_jepa_public), asymmetric variant, discrete actions:
//!
//! 1. z: half N(0, I), half ψ(s') of random batch states (`train_goal_ratio`), projected to the
//!    sphere of radius √d.
//! 2. a' = argmax_a T̃_φ(φ̃(s'), a, z)·z (greedy in Q instead of a TD3 actor: the actions are
//!    discrete); targets, no gradient: ψ̃(s') + γ·T̃_φ(φ̃(s'), a', z) and φ̃(s') + γ·T̃_ψ(ψ̃(s'), a', z).
//! 3. Loss ‖T_φ(φ(s), a, z) − target_φ‖² + ‖T_ψ(ψ(s), a, z) − target_ψ‖² (summed over dims,
//!    averaged over the batch) + ortho_coef·(O(φ(s)) + O(ψ(s))), with the orthonormality
//!    regulariser O(E) = −mean(diag EEᵀ) + ½·Σ_{i≠j}(EEᵀ)_ij² / (B(B − 1)).
//! 4. EMA targets of both encoders and both predictors; Q(s, a, z) = T_φ(φ(s), a, z)·z.
//! 5. Zero-shot: z_r = least squares of ψ(s)·z = r(s) over labelled states; goal g: z = ψ(g).
//!
//! Also here: the regulariser's population form, the sphere projection, the TD target and its
//! tabular fixed point (the successor-feature matrix), each tested.

use super::{Batch, ZeroShotConfig, ZsModel};
use crate::nn::{Activation, Init, Mlp};
use anyhow::Result;
use candle_core::{Device, Tensor, Var, D};
use oxrl_core::seed::Rng;

/// x (B × A·d) viewed as (B × A × d), the rows picked at actions `a` → (B × d).
pub(crate) fn pick(x: &Tensor, a: &[usize], d: usize) -> Result<Tensor> {
    let b = a.len();
    let n_a = x.dim(1)? / d;
    let x = x.reshape((b, n_a, d))?;
    let idx: Vec<u32> = a.iter().flat_map(|&i| std::iter::repeat_n(i as u32, d)).collect();
    let idx = Tensor::from_vec(idx, (b, 1, d), x.device())?;
    Ok(x.gather(&idx, 1)?.squeeze(1)?)
}

/// Q(·, a, z) = head·z for every action: (B × A·d) head outputs and (B × d) z → (B × A).
pub(crate) fn q_all(head: &Tensor, z: &Tensor, d: usize) -> Result<Tensor> {
    let b = z.dim(0)?;
    let n_a = head.dim(1)? / d;
    Ok(head.reshape((b, n_a, d))?.broadcast_mul(&z.unsqueeze(1)?)?.sum(D::Minus1)?)
}

struct Nets {
    phi: Mlp,
    psi: Mlp,
    t_phi: Mlp,
    t_psi: Mlp,
}

impl Nets {
    fn new(state_dim: usize, n_actions: usize, cfg: &ZeroShotConfig, rng: &mut Rng, dev: &Device) -> Result<Self> {
        let (d, h) = (cfg.latent_dim, cfg.hidden);
        let mlp =
            |i: usize, o: usize, rng: &mut Rng| Mlp::new(&[i, h, h, o], Activation::Relu, Init::Uniform, rng, dev);
        Ok(Self {
            phi: mlp(state_dim, d, rng)?,
            psi: mlp(state_dim, d, rng)?,
            t_phi: mlp(2 * d, n_actions * d, rng)?,
            t_psi: mlp(2 * d, n_actions * d, rng)?,
        })
    }
    fn vars(&self) -> Vec<(String, Var)> {
        let mut v = self.phi.vars("phi");
        v.extend(self.psi.vars("psi"));
        v.extend(self.t_phi.vars("t_phi"));
        v.extend(self.t_psi.vars("t_psi"));
        v
    }
}

pub struct TdJepa {
    online: Nets,
    target: Nets,
    d: usize,
}

impl TdJepa {
    pub fn new(state_dim: usize, n_actions: usize, cfg: &ZeroShotConfig, rng: &mut Rng, dev: &Device) -> Result<Self> {
        Ok(Self {
            online: Nets::new(state_dim, n_actions, cfg, rng, dev)?,
            target: Nets::new(state_dim, n_actions, cfg, rng, dev)?,
            d: cfg.latent_dim,
        })
    }
}

impl ZsModel for TdJepa {
    fn vars(&self) -> Vec<(String, Var)> {
        self.online.vars()
    }
    fn target_vars(&self) -> Vec<(String, Var)> {
        self.target.vars()
    }
    fn loss(&self, b: &Batch, z: &Tensor, gamma: f64, ortho: f64) -> Result<(Tensor, Vec<(String, f64)>)> {
        let d = self.d;
        let (o, t) = (&self.online, &self.target);
        // targets (no gradient)
        let phi_t2 = t.phi.forward(&b.s2)?;
        let psi_t2 = t.psi.forward(&b.s2)?;
        let tp_next = t.t_phi.forward(&Tensor::cat(&[&phi_t2, z], 1)?)?;
        let a2 = crate::dist::argmax_rows(&q_all(&tp_next, z, d)?)?;
        let mask = Tensor::ones(b.a.len(), candle_core::DType::F32, z.device())?;
        let target_phi = td_target(&psi_t2, &pick(&tp_next, &a2, d)?, &mask, gamma)?;
        let tq_next = t.t_psi.forward(&Tensor::cat(&[&psi_t2, z], 1)?)?;
        let target_psi = td_target(&phi_t2, &pick(&tq_next, &a2, d)?, &mask, gamma)?;
        // predictions
        let phi_s = o.phi.forward(&b.s)?;
        let psi_s = o.psi.forward(&b.s)?;
        let pred_phi = pick(&o.t_phi.forward(&Tensor::cat(&[&phi_s, z], 1)?)?, &b.a, d)?;
        let pred_psi = pick(&o.t_psi.forward(&Tensor::cat(&[&psi_s, z], 1)?)?, &b.a, d)?;
        let l_phi = (pred_phi - target_phi)?.sqr()?.sum(D::Minus1)?.mean_all()?;
        let l_psi = (pred_psi - target_psi)?.sqr()?.sum(D::Minus1)?.mean_all()?;
        let l_ortho = (ortho_loss(&phi_s)? + ortho_loss(&psi_s)?)?;
        let loss = ((&l_phi + &l_psi)? + (&l_ortho * ortho)?)?;
        let s = |x: &Tensor| -> Result<f64> { Ok(x.to_scalar::<f32>()? as f64) };
        Ok((
            loss,
            vec![
                ("td_phi_loss".into(), s(&l_phi)?),
                ("td_psi_loss".into(), s(&l_psi)?),
                ("ortho_loss".into(), s(&l_ortho)?),
            ],
        ))
    }
    fn q(&self, s: &Tensor, z: &Tensor) -> Result<Tensor> {
        let phi = self.online.phi.forward(s)?;
        q_all(&self.online.t_phi.forward(&Tensor::cat(&[&phi, z], 1)?)?, z, self.d)
    }
    fn task_features(&self, s: &Tensor) -> Result<Tensor> {
        self.online.psi.forward(s)
    }
    fn z_dim(&self) -> usize {
        self.d
    }
}

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
    fn pick_and_q_all_index_the_per_action_heads() {
        let d = Device::Cpu;
        // B = 2, A = 3, d = 2: row 0 heads (1,2) (3,4) (5,6); row 1 heads (−1,0) (0,1) (2,2)
        let x = Tensor::new(&[[1f32, 2., 3., 4., 5., 6.], [-1., 0., 0., 1., 2., 2.]], &d).unwrap();
        assert_eq!(pick(&x, &[2, 0], 2).unwrap().to_vec2::<f32>().unwrap(), vec![vec![5., 6.], vec![-1., 0.]]);
        let z = Tensor::new(&[[1f32, 0.], [0., 1.]], &d).unwrap();
        assert_eq!(q_all(&x, &z, 2).unwrap().to_vec2::<f32>().unwrap(), vec![vec![1., 3., 5.], vec![0., 1., 2.]]);
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
