//! Teacher-forced scorer: one batched forward over prompt + response returning, for every response
//! token, its log-probability and the entropy of the next-token distribution that produced it
//! (with gradients when asked), and optionally the hidden states and top-k logits there.
//!
//! Layout: prompts are left-padded to the longest prompt P and responses right-padded to the
//! longest response R, so response token j of every row sits at column P + j and is predicted by
//! column P + j − 1. The sampler uses the same layout, so its log-probs and the scorer's agree.

use crate::model::{attention_bias, positions, Mode, Transformer};
use anyhow::{ensure, Result};
use candle_core::{DType, Tensor, D};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreOptions {
    /// Keep the autograd graph (training); otherwise fused inference kernels are used.
    pub grad: bool,
    /// Log-probs and entropies are of softmax(logits / temperature); 1.0 = the raw policy.
    pub temperature: f64,
    /// Also return the final hidden states that predict each response token, `[B, R, D]`.
    pub hidden: bool,
    /// Also return the top-k logits and their token ids at each response position (0 = off).
    pub top_k: usize,
    /// Also return the full next-token logits `[B, R, V]` at each response position (raw, before
    /// the temperature; with the graph when `grad` is on) for techniques that need the whole
    /// distribution (SIREN).
    pub logits: bool,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self { grad: false, temperature: 1.0, hidden: false, top_k: 0, logits: false }
    }
}

pub struct Scored {
    /// `[B, R]` log π(o_t | prefix); zero at padding.
    pub logp: Tensor,
    /// `[B, R]` entropy of the next-token distribution at each response position.
    pub entropy: Tensor,
    /// `[B, R]` f32 loss mask: 1 for real response tokens.
    pub mask: Tensor,
    pub hidden: Option<Tensor>,
    /// (values `[B, R, k]`, token ids `[B, R, k]` u32), highest first.
    pub top_k: Option<(Tensor, Tensor)>,
    /// `[B, R, V]` next-token logits (see [`ScoreOptions::logits`]).
    pub logits: Option<Tensor>,
    pub response_lens: Vec<usize>,
}

/// Pack prompts (left-padded) and responses (right-padded) into `(ids, valid)` rows.
pub fn pack(prompts: &[Vec<u32>], responses: &[Vec<u32>], pad: u32) -> (Vec<Vec<u32>>, Vec<Vec<bool>>, usize, usize) {
    let p = prompts.iter().map(|x| x.len()).max().unwrap_or(0);
    let r = responses.iter().map(|x| x.len()).max().unwrap_or(0).max(1);
    let mut ids = Vec::with_capacity(prompts.len());
    let mut valid = Vec::with_capacity(prompts.len());
    for (pr, re) in prompts.iter().zip(responses) {
        let mut row = vec![pad; p - pr.len()];
        let mut ok = vec![false; p - pr.len()];
        row.extend_from_slice(pr);
        ok.extend(std::iter::repeat_n(true, pr.len()));
        row.extend_from_slice(re);
        ok.extend(std::iter::repeat_n(true, re.len()));
        row.extend(std::iter::repeat_n(pad, r - re.len()));
        ok.extend(std::iter::repeat_n(false, r - re.len()));
        ids.push(row);
        valid.push(ok);
    }
    (ids, valid, p, r)
}

pub fn score(
    model: &Transformer,
    prompts: &[Vec<u32>],
    responses: &[Vec<u32>],
    pad: u32,
    opts: ScoreOptions,
) -> Result<Scored> {
    score_inputs(model, prompts, responses, None, pad, opts)
}

/// Continuous inputs of one response, per position (see [`crate::sampler::Completion::inputs`]).
pub type ResponseInputs<'a> = &'a [Option<Vec<f32>>];

/// [`score`] replaying recorded continuous inputs (latent-reasoning mode): `inputs[b][j]`, when
/// given, is the vector fed at response position j of row b, through the model's latent module —
/// so a rollout's log-probs are reproduced exactly. Rows with an empty list take token
/// embeddings only.
pub fn score_inputs(
    model: &Transformer,
    prompts: &[Vec<u32>],
    responses: &[Vec<u32>],
    inputs: Option<&[ResponseInputs]>,
    pad: u32,
    opts: ScoreOptions,
) -> Result<Scored> {
    ensure!(prompts.len() == responses.len(), "scorer: {} prompts but {} responses", prompts.len(), responses.len());
    ensure!(!prompts.is_empty(), "scorer: empty batch");
    ensure!(prompts.iter().all(|p| !p.is_empty()), "scorer: every prompt needs at least one token (e.g. BOS)");
    ensure!(opts.temperature > 0.0, "scorer: temperature must be > 0");
    let dev = model.device();
    let (ids, valid, p, r) = pack(prompts, responses, pad);
    let b = ids.len();
    let l = p + r;
    let flat: Vec<u32> = ids.iter().flatten().copied().collect();
    let ids_t = Tensor::from_vec(flat, (b, l), dev)?;
    let pos: Vec<u32> = positions(&valid).into_iter().flatten().collect();
    let pos_t = Tensor::from_vec(pos, (b, l), dev)?;
    let bias = attention_bias(&valid, l, dev, model.dtype())?;
    let mode = if opts.grad { Mode::Train } else { Mode::Infer };
    let vectors = match inputs.filter(|i| i.iter().any(|r| r.iter().any(|v| v.is_some()))) {
        Some(rows) => {
            ensure!(rows.len() == b, "scorer: {} input rows for {b} responses", rows.len());
            let d = model.cfg.hidden_size;
            let (mut data, mut mask) = (vec![0f32; b * l * d], vec![0f32; b * l]);
            for (bi, row) in rows.iter().enumerate() {
                ensure!(row.len() <= r, "scorer: {} inputs for a response of at most {r} tokens", row.len());
                for (j, v) in row.iter().enumerate() {
                    if let Some(v) = v {
                        ensure!(v.len() == d, "scorer: an input vector of {} dims for a {d}-dim model", v.len());
                        let at = bi * l + p + j;
                        data[at * d..(at + 1) * d].copy_from_slice(v);
                        mask[at] = 1.0;
                    }
                }
            }
            Some((Tensor::from_vec(data, (b, l, d), dev)?, Tensor::from_vec(mask, (b, l), dev)?))
        }
        None => None,
    };
    let hidden = model.forward_hidden_with(&ids_t, &pos_t, &bias, None, mode, vectors.as_ref().map(|(v, m)| (v, m)))?;
    let hidden = hidden.narrow(1, p - 1, r)?;
    let hidden = if opts.grad { hidden } else { hidden.detach() };
    // Log-softmax in at least f32 (f64 models stay f64).
    let dt = if model.dtype() == DType::F64 { DType::F64 } else { DType::F32 };
    let logits = model.logits(&hidden)?.to_dtype(dt)?;
    let targets = ids_t.narrow(1, p, r)?.contiguous()?;
    let (logp, entropy) = if model.uses_fused_kernels() {
        let both = crate::kernels::logp_entropy::logp_entropy(&logits, &targets, opts.temperature)?;
        (both.narrow(2, 0, 1)?.squeeze(2)?, both.narrow(2, 1, 1)?.squeeze(2)?)
    } else {
        let scaled = if opts.temperature != 1.0 { (&logits / opts.temperature)? } else { logits.clone() };
        let logp_all = candle_nn::ops::log_softmax(&scaled, D::Minus1)?;
        let logp = logp_all.gather(&targets.unsqueeze(2)?, 2)?.squeeze(2)?;
        (logp, (logp_all.exp()? * &logp_all)?.sum(D::Minus1)?.neg()?)
    };
    let mut mask = Vec::with_capacity(b * r);
    for row in &valid {
        mask.extend(row[p..].iter().map(|&v| v as u8 as f32));
    }
    let mask = Tensor::from_vec(mask, (b, r), dev)?.to_dtype(dt)?;
    let logp = (logp * &mask)?;
    let entropy = (entropy * &mask)?;
    let top_k = if opts.top_k > 0 {
        let k = opts.top_k.min(model.cfg.vocab_size);
        let (vals, idx) = (logits.detach() / opts.temperature)?.sort_last_dim(false)?;
        Some((vals.narrow(D::Minus1, 0, k)?, idx.narrow(D::Minus1, 0, k)?))
    } else {
        None
    };
    Ok(Scored {
        logp,
        entropy,
        mask,
        hidden: opts.hidden.then_some(hidden),
        top_k,
        logits: opts.logits.then_some(logits),
        response_lens: responses.iter().map(|x| x.len()).collect(),
    })
}
