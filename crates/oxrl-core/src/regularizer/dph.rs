//! DPH-RL — "The Choice of Divergence: A Neglected Key to Mitigating Diversity Collapse in
//! Reinforcement Learning with Verifiable Reward" (diversity-preserving hybrid RL, 2025).
//!
//! Mass-covering f-divergences against a rehearsal set sampled once from the initial policy π₀.
//! On rehearsal tokens, with `u = exp(logp_θ − logp₀)` (current over initial, on π₀'s samples):
//! - forward KL, k3 form: `f(u) = u − log u − 1`; k1 form: `f(u) = −log u`;
//! - Jensen–Shannon (generator): `f(u) = u·log u − (u+1)·log((u+1)/2)`;
//! - α-divergence: `f(u) = (u^{1−α} − (1−α)·u − α) / (α(α−1))`, α ∈ (0, 1).
//!
//! All have f(1) = 0 and f′(1) = 0; on tokens where u < 1 the gradient raises logp_θ (mass
//! covering). The loss is L_RL + η·agg(f); η = 0 recovers GRPO.

use anyhow::{bail, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Divergence {
    ForwardKl,
    ForwardKlK1,
    Js,
    Alpha(f64),
}

impl Divergence {
    /// From its config name (`fkl`, `fkl_k1`, `js`, `alpha`); `none` is None.
    pub fn parse(name: &str, alpha: f64) -> Result<Option<Self>> {
        Ok(Some(match name {
            "none" => return Ok(None),
            "fkl" => Divergence::ForwardKl,
            "fkl_k1" => Divergence::ForwardKlK1,
            "js" => Divergence::Js,
            "alpha" => {
                if !(alpha > 0.0 && alpha < 1.0) {
                    bail!("the α-divergence needs α in (0, 1) (got {alpha})");
                }
                Divergence::Alpha(alpha)
            }
            other => bail!("`{other}` is not one of \"none\", \"fkl\", \"fkl_k1\", \"js\", \"alpha\""),
        }))
    }

    /// f(u) on one value (the oracle the tensor form is tested against).
    pub fn f(&self, u: f64) -> f64 {
        match *self {
            Divergence::ForwardKl => u - u.ln() - 1.0,
            Divergence::ForwardKlK1 => -u.ln(),
            Divergence::Js => u * u.ln() - (u + 1.0) * ((u + 1.0) / 2.0).ln(),
            Divergence::Alpha(a) => (u.powf(1.0 - a) - (1.0 - a) * u - a) / (a * (a - 1.0)),
        }
    }
}

/// Per-token f(u) with `u = exp(logp − logp0)`; `logp0` is a constant (the rehearsal set's
/// stored log-probs). The log-ratio is clamped to ±20 so one far-off token cannot overflow.
pub fn dph_divergence(logp: &Tensor, logp0: &Tensor, div: Divergence) -> Result<Tensor> {
    let lr = (logp - logp0.detach())?.clamp(-20.0, 20.0)?;
    let u = lr.exp()?;
    Ok(match div {
        Divergence::ForwardKl => ((&u - &lr)? - 1.0)?,
        Divergence::ForwardKlK1 => lr.neg()?,
        Divergence::Js => {
            let up1 = (&u + 1.0)?;
            ((&u * &lr)? - (&up1 * (up1.log()? - std::f64::consts::LN_2)?)?)?
        }
        Divergence::Alpha(a) => {
            let num = (((&lr * (1.0 - a))?.exp()? - (&u * (1.0 - a))?)? - a)?;
            (num / (a * (a - 1.0)))?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    const ALL: [Divergence; 4] =
        [Divergence::ForwardKl, Divergence::ForwardKlK1, Divergence::Js, Divergence::Alpha(0.2)];

    #[test]
    fn hand_values_minimum_at_one_and_nonnegativity() {
        // u = 2: JS = 2 ln 2 − 3 ln 1.5 = 0.1699; forward-KL k3 = 2 − ln 2 − 1 = 0.3069.
        assert!((Divergence::Js.f(2.0) - 0.169_899).abs() < 1e-6);
        assert!((Divergence::ForwardKl.f(2.0) - 0.306_853).abs() < 1e-6);
        for d in ALL {
            assert!(d.f(1.0).abs() < 1e-12, "{d:?}: f(1) = {}", d.f(1.0));
            let h = 1e-5;
            let fp = (d.f(1.0 + h) - d.f(1.0 - h)) / (2.0 * h);
            if d != Divergence::ForwardKlK1 {
                assert!(fp.abs() < 1e-8, "{d:?}: f'(1) = {fp}");
            }
        }
        for d in [Divergence::ForwardKl, Divergence::Js, Divergence::Alpha(0.2), Divergence::Alpha(0.7)] {
            for u in [0.01, 0.3, 0.9, 1.1, 3.0, 50.0] {
                assert!(d.f(u) >= 0.0, "{d:?}: f({u}) = {}", d.f(u));
            }
        }
    }

    #[test]
    fn tensor_form_matches_and_gradient_raises_undercovered_tokens() -> Result<()> {
        let dev = Device::Cpu;
        let logp0 = Tensor::new(&[[-1.0f64, -2.0, -0.5]], &dev)?;
        let lp = Var::new(&[[-1.5f64, -1.0, -0.5]], &dev)?; // u = e^-0.5 (< 1), e^1 (> 1), 1
        for d in ALL {
            let f = dph_divergence(lp.as_tensor(), &logp0, d)?;
            let got = f.to_vec2::<f64>()?[0].clone();
            for (j, (a, b)) in [(-1.5f64, -1.0f64), (-1.0, -2.0), (-0.5, -0.5)].iter().enumerate() {
                let want = d.f((a - b).exp());
                assert!((got[j] - want).abs() < 1e-12, "{d:?}[{j}]: {} vs {want}", got[j]);
            }
            let g = f.sum_all()?.backward()?.get(lp.as_tensor()).unwrap().to_vec2::<f64>()?[0].clone();
            // Descent (−g) raises logp where u < 1; zero gradient at u = 1 (except k1, whose
            // gradient is a constant −1 everywhere).
            assert!(g[0] < 0.0, "{d:?}: {g:?}");
            if d != Divergence::ForwardKlK1 {
                assert!(g[1] > 0.0 && g[2].abs() < 1e-12, "{d:?}: {g:?}");
            }
        }
        assert!(Divergence::parse("alpha", 1.0).is_err());
        assert!(Divergence::parse("rkl", 0.2).unwrap_err().to_string().contains("rkl"));
        assert_eq!(Divergence::parse("none", 0.2)?, None);
        Ok(())
    }
}
