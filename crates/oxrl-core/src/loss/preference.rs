//! Preference objectives: the Bradley–Terry reward-model loss (with its Plackett–Luce listwise
//! generalisation) and DPO — "Direct Preference Optimization: Your Language Model is Secretly a
//! Reward Model" (2023); BT/PL as in "Inverse RL meets LLM Post-training" (2025).
//!
//! - BT: L = −log σ(r_w − r_l − m) (margin m ≥ 0), shift-invariant in r.
//! - Plackett–Luce over K responses ranked best first: L = −Σ_k [r_(k) − log Σ_{j≥k} exp r_(j)];
//!   K = 2 is BT.
//! - DPO: L = −log σ(β·[(log π_θ(y_w) − log π_ref(y_w)) − (log π_θ(y_l) − log π_ref(y_l))]),
//!   sequence log-probs summed over response tokens; its implicit reward is β·log(π_θ/π_ref), and
//!   with Bradley–Terry preferences from a reward r its optimum is π* ∝ π_ref·exp(r/β).
//!
//! CONFIRMED (standard published formulas).

use anyhow::Result;
use candle_core::{Tensor, D};

/// −log σ(x), elementwise, stable for large |x|.
fn neg_log_sigmoid(x: &Tensor) -> Result<Tensor> {
    // −log σ(x) = softplus(−x) = max(−x, 0) + log(1 + e^{−|x|})
    let relu = x.neg()?.relu()?;
    Ok((relu + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
}

/// Mean Bradley–Terry loss of reward pairs `[N]` with margin `m`.
pub fn bt_loss(r_chosen: &Tensor, r_rejected: &Tensor, margin: f64) -> Result<Tensor> {
    Ok(neg_log_sigmoid(&((r_chosen - r_rejected)? - margin)?)?.mean_all()?)
}

/// Mean Plackett–Luce loss of `[N, K]` rewards ranked best first.
pub fn plackett_luce_loss(ranked: &Tensor) -> Result<Tensor> {
    let k = ranked.dim(1)?;
    let mut total = ranked.narrow(1, 0, 1)?.squeeze(1)?.zeros_like()?;
    for i in 0..k.saturating_sub(1) {
        let rest = ranked.narrow(1, i, k - i)?;
        let m = rest.max_keepdim(D::Minus1)?.detach();
        let lse = (rest.broadcast_sub(&m)?.exp()?.sum_keepdim(D::Minus1)?.log()? + m)?.squeeze(1)?;
        total = (total + (lse - ranked.narrow(1, i, 1)?.squeeze(1)?)?)?;
    }
    Ok(total.mean_all()?)
}

/// Mean DPO loss from sequence log-probs `[N]` of the policy and the reference on the chosen and
/// rejected responses; also returns the mean implicit-reward margin (detached) and the pairwise
/// accuracy of the implicit reward.
pub fn dpo_loss(
    logp_w: &Tensor,
    logp_l: &Tensor,
    ref_w: &Tensor,
    ref_l: &Tensor,
    beta: f64,
) -> Result<(Tensor, f64, f64)> {
    let margin = (((logp_w - ref_w)? - (logp_l - ref_l)?)? * beta)?;
    let loss = neg_log_sigmoid(&margin)?.mean_all()?;
    let m: Vec<f64> = margin.detach().to_dtype(candle_core::DType::F64)?.to_vec1()?;
    let mean = m.iter().sum::<f64>() / m.len().max(1) as f64;
    let acc = m.iter().filter(|&&x| x > 0.0).count() as f64 / m.len().max(1) as f64;
    Ok((loss, mean, acc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{AdamW, AdamWConfig};
    use candle_core::{Device, Var};

    fn t(v: &[f64]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }
    fn s(x: Tensor) -> f64 {
        x.to_scalar::<f64>().unwrap()
    }

    #[test]
    fn bt_and_plackett_luce_oracles() -> Result<()> {
        assert!((s(bt_loss(&t(&[1.0]), &t(&[1.0]), 0.0)?) - std::f64::consts::LN_2).abs() < 1e-12);
        assert!((s(bt_loss(&t(&[3.0]), &t(&[1.0]), 0.0)?) - 0.1269280110429725).abs() < 1e-12);
        // shift invariance
        let (a, b) = (t(&[0.3, -1.2, 2.0]), t(&[0.1, 0.5, -0.4]));
        let shifted = s(bt_loss(&(&a + 7.0)?, &(&b + 7.0)?, 0.0)?);
        assert!((s(bt_loss(&a, &b, 0.0)?) - shifted).abs() < 1e-12);
        // the margin raises the loss; a huge gap gives ~0 without overflow
        assert!(s(bt_loss(&a, &b, 1.0)?) > s(bt_loss(&a, &b, 0.0)?));
        assert!(s(bt_loss(&t(&[800.0]), &t(&[0.0]), 0.0)?).abs() < 1e-12);
        // Plackett–Luce with K = 2 is BT
        let pairs = Tensor::stack(&[&a, &b], 1)?;
        assert!((s(plackett_luce_loss(&pairs)?) - s(bt_loss(&a, &b, 0.0)?)).abs() < 1e-12);
        // K = 3 hand value: r = (2, 1, 0): −[2 − lse(2,1,0)] − [1 − lse(1,0)]
        let lse = |v: &[f64]| v.iter().map(|x| x.exp()).sum::<f64>().ln();
        let want = -(2.0 - lse(&[2.0, 1.0, 0.0])) - (1.0 - lse(&[1.0, 0.0]));
        assert!((s(plackett_luce_loss(&Tensor::new(&[[2.0f64, 1.0, 0.0]], &Device::Cpu)?)?) - want).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn dpo_at_init_and_its_gradient() -> Result<()> {
        let lw = Var::new(&[-2.0f64, -1.0], &Device::Cpu)?;
        let ll = Var::new(&[-1.5f64, -3.0], &Device::Cpu)?;
        let (loss, margin, _) =
            dpo_loss(lw.as_tensor(), ll.as_tensor(), &lw.as_tensor().detach(), &ll.as_tensor().detach(), 0.1)?;
        assert!((s(loss.clone()) - std::f64::consts::LN_2).abs() < 1e-12, "π = π_ref: ln 2");
        assert_eq!(margin, 0.0);
        let g = loss.backward()?;
        assert!(g.get(lw.as_tensor()).unwrap().to_vec1::<f64>()?.iter().all(|&x| x < 0.0), "pushes y_w up");
        assert!(g.get(ll.as_tensor()).unwrap().to_vec1::<f64>()?.iter().all(|&x| x > 0.0), "pushes y_l down");
        // the implicit-reward difference is the logit inside the sigmoid
        let (_, m, acc) = dpo_loss(&t(&[-1.0]), &t(&[-2.0]), &t(&[-1.5]), &t(&[-1.5]), 0.5)?;
        assert!((m - 0.5 * ((-1.0 + 1.5) - (-2.0 + 1.5))).abs() < 1e-12);
        assert_eq!(acc, 1.0);
        Ok(())
    }

    /// BANDIT-LM: a categorical policy over 6 one-token responses. Minimising the population DPO
    /// loss under Bradley–Terry preferences from a reward r (every ordered pair weighted by
    /// π_ref(y)·π_ref(y′)·σ(r(y) − r(y′))) reaches π* ∝ π_ref·exp(r/β).
    #[test]
    fn dpo_on_bandit_lm_reaches_the_closed_form_optimum() -> Result<()> {
        let dev = Device::Cpu;
        let ref_logits = [0.5f64, -0.2, 0.0, 1.0, -1.0, 0.3];
        let r = [1.0f64, 0.2, -0.5, 0.0, 0.8, -1.0];
        let beta = 0.5;
        let lse = |v: &[f64]| v.iter().map(|x| x.exp()).sum::<f64>().ln();
        let ref_lp: Vec<f64> = ref_logits.iter().map(|l| l - lse(&ref_logits)).collect();
        let theta = Var::new(&ref_logits, &dev)?;
        let n = ref_logits.len();
        let (mut iw, mut il, mut wt) = (Vec::new(), Vec::new(), Vec::new());
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    iw.push(a as u32);
                    il.push(b as u32);
                    wt.push(ref_lp[a].exp() * ref_lp[b].exp() / (1.0 + (r[b] - r[a]).exp()));
                }
            }
        }
        let (iw, il) = (Tensor::new(iw, &dev)?, Tensor::new(il, &dev)?);
        let wsum: f64 = wt.iter().sum();
        let wt = Tensor::new(wt.iter().map(|w| w / wsum).collect::<Vec<f64>>(), &dev)?;
        let ref_t = Tensor::new(ref_lp.clone(), &dev)?;
        let mut opt = AdamW::new(vec![("theta".into(), theta.clone())], AdamWConfig::default())?;
        for _ in 0..3000 {
            let th = theta.as_tensor();
            let lp = th.broadcast_sub(&(th.exp()?.sum_all()?.log()?))?;
            let margin = (((lp.index_select(&iw, 0)? - ref_t.index_select(&iw, 0)?)?
                - (lp.index_select(&il, 0)? - ref_t.index_select(&il, 0)?)?)?
                * beta)?;
            let loss = (neg_log_sigmoid(&margin)? * &wt)?.sum_all()?;
            opt.step(&loss.backward()?, 0.05, 0.0)?;
        }
        let th: Vec<f64> = theta.as_tensor().to_vec1()?;
        let got: Vec<f64> = th.iter().map(|l| (l - lse(&th)).exp()).collect();
        let tilt: Vec<f64> = ref_lp.iter().zip(&r).map(|(lp, r)| lp + r / beta).collect();
        let want: Vec<f64> = tilt.iter().map(|x| (x - lse(&tilt)).exp()).collect();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 2e-3, "DPO optimum {got:?} vs closed form {want:?}");
        }
        Ok(())
    }
}
