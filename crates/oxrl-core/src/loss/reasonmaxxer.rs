//! ReasonMaxxer — entropy-gated contrastive loss at decision points ("Rethinking RL for LLM
//! Reasoning: It's Sparse Policy Selection", 2026).
//!
//! RL-free: base-model rollouts labelled correct / incorrect; *decision points* are the positions
//! where the base model's entropy is in the batch's top ρ fraction (1–3 %). At a decision point t
//! the candidates are the base model's top-k tokens C_t (k = 5) and the policy's logits z_t are
//! renormalised over them, p_C = softmax_{C_t}(z_t). The chosen token y_t of a correct rollout is
//! a positive, of an incorrect one a negative:
//!
//!   L = (1/N) [ Σ_{t∈D⁺} −log p_C(y_t) + η · Σ_{t∈D⁻} −log(1 − p_C(y_t)) ]
//!
//! (N the number of decision points used; tokens outside C_t are skipped). Positions outside the
//! gate and logits outside C_t get no gradient; with ρ = 1 and C = the whole vocabulary the
//! positive term is token-level SFT and the negative one unlikelihood training. A KL to the base
//! on the other positions (`train.kl_coef`) keeps the remaining 97–99 % unchanged.
//! INFERRED from the abstract (2026): the unlikelihood form of the negative term (bounded,
//! where +log p would diverge) and the quantile gate are the spec's minimal design.

use anyhow::Result;
use candle_core::{DType, Tensor, D};

/// What a ReasonMaxxer loss evaluation saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmStats {
    /// Decision points used (positive + negative, the chosen token a candidate).
    pub n: f64,
    /// Mean p_C(y) at the positive / negative decision points (NaN when there are none).
    pub pos_p: f64,
    pub neg_p: f64,
}

/// The loss and what it averaged over.
///
/// `cand_logits` `[B, R, k]`: the policy's logits at the base top-k ids; `chosen` `[B, R, k]`:
/// one-hot of the chosen token among them (all zero when it is not a candidate); `pos`, `neg`
/// `[B, R]`: 1 at decision points of correct / incorrect rollouts.
pub fn reasonmaxxer_loss(
    cand_logits: &Tensor,
    chosen: &Tensor,
    pos: &Tensor,
    neg: &Tensor,
    neg_coef: f64,
) -> Result<(Tensor, RmStats)> {
    let shifted = cand_logits.broadcast_sub(&cand_logits.max_keepdim(D::Minus1)?.detach())?;
    let logp = shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)?;
    let in_c = chosen.sum(D::Minus1)?; // [B, R]: 1 when the chosen token is a candidate
    let lp = (logp * chosen)?.sum(D::Minus1)?; // log p_C(y), 0 where not a candidate
    let (pos, neg) = ((pos * &in_c)?, (neg * &in_c)?);
    let scalar = |t: &Tensor| -> Result<f64> { Ok(t.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
    let (n_pos, n_neg) = (scalar(&pos)?, scalar(&neg)?);
    let n = n_pos + n_neg;
    // −log(1 − p), p clamped below 1.
    let p = lp.exp()?.clamp(0.0, 1.0 - 1e-6)?;
    let unlikely = p.affine(-1.0, 1.0)?.log()?.neg()?;
    let total = ((lp.neg()? * &pos)?.sum_all()? + ((unlikely * &neg)?.sum_all()? * neg_coef)?)?;
    let pd = p.detach();
    let stats = RmStats { n, pos_p: scalar(&(&pd * &pos)?)? / n_pos, neg_p: scalar(&(&pd * &neg)?)? / n_neg };
    Ok(((total / n.max(1.0))?, stats))
}

/// Per position: the index of `token` among the candidate ids (None when it is not one).
pub fn candidate_index(candidates: &[u32], token: u32) -> Option<usize> {
    candidates.iter().position(|&c| c == token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn oracles() -> Result<()> {
        let dev = Device::Cpu;
        // one row, three positions, vocabulary 4; candidates = the first 3 ids
        let full = Var::new(&[[[1.0f64, 0.5, 0.0, 2.0], [0.2, 0.1, 0.3, 0.0], [0.0, 1.0, 2.0, 3.0]]], &dev)?;
        let ids = Tensor::new(&[[[0u32, 1, 2], [0, 1, 2], [0, 1, 2]]], &dev)?;
        let cand = full.as_tensor().gather(&ids, 2)?;
        // chosen: position 0 → id 0 (positive); position 1 → id 2 (negative); position 2 → id 3
        // (not a candidate)
        let chosen = Tensor::new(&[[[1.0f64, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]], &dev)?;
        let pos = Tensor::new(&[[1.0f64, 0.0, 1.0]], &dev)?;
        let neg = Tensor::new(&[[0.0f64, 1.0, 0.0]], &dev)?;
        let (l, st) = reasonmaxxer_loss(&cand, &chosen, &pos, &neg, 0.5)?;
        assert_eq!(st.n, 2.0, "the non-candidate position is skipped");
        let lse = |v: &[f64]| v.iter().map(|x| x.exp()).sum::<f64>().ln();
        let lp0 = 1.0 - lse(&[1.0, 0.5, 0.0]);
        let p1 = (0.3 - lse(&[0.2, 0.1, 0.3])).exp();
        let want = (-lp0 + 0.5 * -(1.0 - p1).ln()) / 2.0;
        assert!((l.to_scalar::<f64>()? - want).abs() < 1e-12);
        assert!((st.pos_p - lp0.exp()).abs() < 1e-9 && (st.neg_p - p1).abs() < 1e-9);
        let g = l.backward()?.get(full.as_tensor()).unwrap().to_vec3::<f64>()?;
        // logits outside the candidates and positions outside the gate get no gradient
        assert!(g[0].iter().all(|row| row[3] == 0.0));
        assert!(g[0][2].iter().all(|&x| x == 0.0));
        // the positive is pushed up, the negative down
        assert!(g[0][0][0] < 0.0 && g[0][1][2] > 0.0);
        // ρ = 1 and the whole vocabulary: the positive term is token-level SFT (−log softmax)
        let all = Tensor::new(&[[[0u32, 1, 2, 3]]], &dev)?;
        let c = full.as_tensor().narrow(1, 0, 1)?.gather(&all, 2)?;
        let (l, _) = reasonmaxxer_loss(
            &c,
            &Tensor::new(&[[[0.0f64, 0.0, 0.0, 1.0]]], &dev)?,
            &Tensor::new(&[[1.0f64]], &dev)?,
            &Tensor::new(&[[0.0f64]], &dev)?,
            1.0,
        )?;
        assert!((l.to_scalar::<f64>()? - (lse(&[1.0, 0.5, 0.0, 2.0]) - 2.0)).abs() < 1e-12);
        assert_eq!(candidate_index(&[5, 9, 2], 2), Some(2));
        assert_eq!(candidate_index(&[5, 9, 2], 3), None);
        Ok(())
    }
}
