//! Forward-backward representations — "Learning One Representation to Optimize All Rewards"
//! (Touati & Ollivier, 2021) and "Does Zero-Shot RL Exist?" (Touati, Rapin & Ollivier, 2023), the
//! zero-shot baseline of TD-JEPA and the base of MORL-FB. F(s, a, z) ∈ ℝᵈ (one head per discrete
//! action), B(s) ∈ ℝᵈ, with M^π_z(s, a, s') ≈ F(s, a, z)ᵀB(s') the successor measure of π_z:
//!
//!   M_ij = F(s_i, a_i, z_i)ᵀB(s'_j),  M̃_ij = F̃(s'_i, a'_i, z_i)ᵀB̃(s'_j),  a' = argmax_a F̃(s', a, z)ᵀz,
//!   L = ½·Σ_{i≠j}(M_ij − γM̃_ij)² / (B(B − 1)) − mean_i (M_ii − γM̃_ii) + ortho_coef·O(B(s')),
//!
//! O the orthonormality regulariser shared with TD-JEPA. Q(s, a, z) = F(s, a, z)ᵀz; a reward r has
//! task vector z ∝ least squares of B(s)·z = r(s); a goal g has z = B(g).

use super::td_jepa::{ortho_loss, pick, q_all};
use super::{Batch, ZeroShotConfig, ZsModel};
use crate::nn::{Activation, Init, Mlp};
use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use oxrl_core::seed::Rng;

struct Nets {
    f: Mlp,
    b: Mlp,
}

impl Nets {
    fn new(state_dim: usize, n_actions: usize, cfg: &ZeroShotConfig, rng: &mut Rng, dev: &Device) -> Result<Self> {
        let (d, h) = (cfg.latent_dim, cfg.hidden);
        Ok(Self {
            f: Mlp::new(&[state_dim + d, h, h, n_actions * d], Activation::Relu, Init::Uniform, rng, dev)?,
            b: Mlp::new(&[state_dim, h, h, d], Activation::Relu, Init::Uniform, rng, dev)?,
        })
    }
    fn vars(&self) -> Vec<(String, Var)> {
        let mut v = self.f.vars("forward");
        v.extend(self.b.vars("backward"));
        v
    }
}

pub struct Fb {
    online: Nets,
    target: Nets,
    d: usize,
}

impl Fb {
    pub fn new(state_dim: usize, n_actions: usize, cfg: &ZeroShotConfig, rng: &mut Rng, dev: &Device) -> Result<Self> {
        Ok(Self {
            online: Nets::new(state_dim, n_actions, cfg, rng, dev)?,
            target: Nets::new(state_dim, n_actions, cfg, rng, dev)?,
            d: cfg.latent_dim,
        })
    }
}

/// The FB measure loss from M (B × B, with gradient) and the detached target M̃.
pub fn fb_loss(m: &Tensor, m_target: &Tensor, gamma: f64) -> Result<Tensor> {
    let b = m.dim(0)?;
    let eye = Tensor::eye(b, DType::F32, m.device())?;
    let off = (1.0 - &eye)?;
    let diff = (m - (m_target.detach() * gamma)?)?;
    let off_term = ((diff.sqr()? * &off)?.sum_all()? * (0.5 / (b * (b - 1)).max(1) as f64))?;
    let diag_term = ((diff * &eye)?.sum_all()? / b as f64)?;
    Ok((off_term - diag_term)?)
}

impl ZsModel for Fb {
    fn vars(&self) -> Vec<(String, Var)> {
        self.online.vars()
    }
    fn target_vars(&self) -> Vec<(String, Var)> {
        self.target.vars()
    }
    fn loss(&self, b: &Batch, z: &Tensor, gamma: f64, ortho: f64) -> Result<(Tensor, Vec<(String, f64)>)> {
        let d = self.d;
        let (o, t) = (&self.online, &self.target);
        let f_next = t.f.forward(&Tensor::cat(&[&b.s2, z], 1)?)?;
        let a2 = crate::dist::argmax_rows(&q_all(&f_next, z, d)?)?;
        let m_target = pick(&f_next, &a2, d)?.matmul(&t.b.forward(&b.s2)?.t()?)?.detach();
        let f_sa = pick(&o.f.forward(&Tensor::cat(&[&b.s, z], 1)?)?, &b.a, d)?;
        let b_next = o.b.forward(&b.s2)?;
        let m = f_sa.matmul(&b_next.t()?)?;
        let l_fb = fb_loss(&m, &m_target, gamma)?;
        let l_ortho = ortho_loss(&b_next)?;
        let loss = (&l_fb + (&l_ortho * ortho)?)?;
        let s = |x: &Tensor| -> Result<f64> { Ok(x.to_scalar::<f32>()? as f64) };
        Ok((loss, vec![("fb_loss".into(), s(&l_fb)?), ("ortho_loss".into(), s(&l_ortho)?)]))
    }
    fn q(&self, s: &Tensor, z: &Tensor) -> Result<Tensor> {
        q_all(&self.online.f.forward(&Tensor::cat(&[s, z], 1)?)?, z, self.d)
    }
    fn task_features(&self, s: &Tensor) -> Result<Tensor> {
        self.online.b.forward(s)
    }
    fn z_dim(&self) -> usize {
        self.d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fb_loss_gradient_is_the_off_diagonal_residual_and_a_constant_diagonal_push() {
        // ∂L/∂M_ij = (M_ij − γM̃_ij)/(B(B − 1)) off the diagonal, −1/B on it; no gradient to M̃
        let dev = Device::Cpu;
        let m =
            Var::from_tensor(&Tensor::new(&[[0.2f32, 0.4, -0.1], [0.1, 0.3, 0.5], [0.0, -0.2, 0.7]], &dev).unwrap())
                .unwrap();
        let mt = Var::from_tensor(&Tensor::new(&[[1.0f32, 0.2, 0.0], [0.4, 0.1, 0.3], [0.2, 0.0, 0.5]], &dev).unwrap())
            .unwrap();
        let g = 0.5;
        let loss = fb_loss(m.as_tensor(), mt.as_tensor(), g).unwrap();
        let grads = loss.backward().unwrap();
        let gm = grads.get(m.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        let (mv, tv) = (m.as_tensor().to_vec2::<f32>().unwrap(), mt.as_tensor().to_vec2::<f32>().unwrap());
        for i in 0..3 {
            for j in 0..3 {
                let want = if i == j { -1.0 / 3.0 } else { (mv[i][j] - g as f32 * tv[i][j]) / 6.0 };
                assert!((gm[i][j] - want).abs() < 1e-6, "({i},{j}) {} vs {want}", gm[i][j]);
            }
        }
        assert!(grads.get(mt.as_tensor()).is_none(), "the target is detached");
        // a target equal to M/γ cancels everything
        let l = fb_loss(m.as_tensor(), &(m.as_tensor() / g).unwrap(), g).unwrap().to_scalar::<f32>().unwrap();
        assert!(l.abs() < 1e-6);
    }
}
