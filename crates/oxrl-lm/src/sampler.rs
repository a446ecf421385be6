//! Batched generation with a preallocated KV cache.
//!
//! All prompts go through one prefill (left-padded) and then one decode step per new token for
//! every live sequence at once; finished sequences are dropped from the batch (and the cache) once
//! a quarter of the batch has finished. Temperature, top-k, top-p, min-p, stop tokens and a token
//! budget; a seeded RNG. Each sampled token comes with its log-probability under
//! softmax(logits / temperature) (temperature 1 when greedy), before any top-k/p truncation, and
//! the entropy of that distribution.

use crate::decode::Cache;
use crate::latent::{LatentKind, LatentNoise, StepKind};
use crate::model::{attention_bias, positions, Mode, Transformer};
use anyhow::{ensure, Result};
use candle_core::{DType, Tensor};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use std::collections::VecDeque;

#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 = greedy.
    pub temperature: f64,
    /// 0 = off.
    pub top_k: usize,
    /// 1.0 = off.
    pub top_p: f64,
    /// 0.0 = off: keep tokens with p ≥ min_p · p_max.
    pub min_p: f64,
    pub max_new_tokens: usize,
    /// Generation of a sequence ends after it emits any of these (the token is kept).
    pub stop_tokens: Vec<u32>,
}

impl SamplingParams {
    pub fn greedy(max_new_tokens: usize, stop_tokens: Vec<u32>) -> Self {
        Self { temperature: 0.0, top_k: 0, top_p: 1.0, min_p: 0.0, max_new_tokens, stop_tokens }
    }
    pub fn validate(&self) -> Result<()> {
        ensure!(self.temperature >= 0.0 && self.temperature.is_finite(), "temperature must be >= 0");
        ensure!(self.top_p > 0.0 && self.top_p <= 1.0, "top_p must be in (0, 1]");
        ensure!((0.0..1.0).contains(&self.min_p), "min_p must be in [0, 1)");
        ensure!(self.max_new_tokens > 0, "max_new_tokens must be > 0");
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Stop,
    Length,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Generated tokens, including the stop token when one ended the sequence.
    pub tokens: Vec<u32>,
    pub logp: Vec<f32>,
    pub entropy: Vec<f32>,
    pub finish: Finish,
    /// Latent-reasoning mode only (empty otherwise): what each position is. At latent positions
    /// `tokens` holds the pad id, `logp` the vMF latent log-prob κ⟨μ, z⟩ and `entropy` 0.
    pub kinds: Vec<StepKind>,
    /// Latent-reasoning mode only (empty otherwise): the continuous input recorded at each
    /// position — the latent z at Coconut latent positions, h_{t−1} at every HRPO position.
    pub inputs: Vec<Option<Vec<f32>>>,
}

impl Completion {
    /// A completion of plain sampled tokens.
    pub fn of_tokens(tokens: Vec<u32>, logp: Vec<f32>, entropy: Vec<f32>, finish: Finish) -> Self {
        Self { tokens, logp, entropy, finish, kinds: vec![], inputs: vec![] }
    }
    /// What position `j` is.
    pub fn kind(&self, j: usize) -> StepKind {
        self.kinds.get(j).copied().unwrap_or(StepKind::Token)
    }
    /// The tokens a reader (verifier, judge) sees: the sampled ones — latent positions and the
    /// sampler's forced markers are left out.
    pub fn text_tokens(&self) -> Vec<u32> {
        (0..self.tokens.len()).filter(|&j| self.kind(j) == StepKind::Token).map(|j| self.tokens[j]).collect()
    }
}

/// Log-prob and entropy of token `tok` under softmax(logits / temperature) (temperature 0 = 1).
fn token_logp_entropy(logits: &[f32], temperature: f64, tok: u32) -> (f32, f32) {
    let t = if temperature > 0.0 { temperature as f32 } else { 1.0 };
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let z: f64 = logits.iter().map(|&l| (((l - max) / t) as f64).exp()).sum();
    let lz = z.ln() as f32;
    let logp = |l: f32| (l - max) / t - lz;
    let entropy = logits.iter().map(|&l| -logp(l).exp() * logp(l)).sum();
    (logp(logits[tok as usize]), entropy)
}

/// Sample one token from a logits row. Returns (token, log-prob, entropy).
pub fn sample_row(
    logits: &[f32],
    p: &SamplingParams,
    rng: &mut impl Rng,
    scratch: &mut Vec<(f32, u32)>,
) -> (u32, f32, f32) {
    let t = if p.temperature > 0.0 { p.temperature as f32 } else { 1.0 };
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut z = 0f64;
    for &l in logits {
        z += (((l - max) / t) as f64).exp();
    }
    let lz = z.ln() as f32;
    let logp = |l: f32| (l - max) / t - lz;
    let mut entropy = 0f32;
    for &l in logits {
        let lp = logp(l);
        entropy -= lp.exp() * lp;
    }
    let tok = if p.temperature == 0.0 {
        let mut best = 0usize;
        for (i, &l) in logits.iter().enumerate() {
            if l > logits[best] {
                best = i;
            }
        }
        best as u32
    } else if p.top_k == 0 && p.top_p >= 1.0 && p.min_p <= 0.0 {
        let mut u = rng.random::<f64>() * z;
        let mut chosen = logits.len() - 1;
        for (i, &l) in logits.iter().enumerate() {
            u -= (((l - max) / t) as f64).exp();
            if u <= 0.0 {
                chosen = i;
                break;
            }
        }
        chosen as u32
    } else {
        scratch.clear();
        scratch.extend(logits.iter().enumerate().map(|(i, &l)| (logp(l).exp(), i as u32)));
        scratch.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut keep = scratch.len();
        if p.top_k > 0 {
            keep = keep.min(p.top_k);
        }
        if p.top_p < 1.0 {
            let mut acc = 0f64;
            for (i, &(pr, _)) in scratch.iter().enumerate().take(keep) {
                acc += pr as f64;
                if acc >= p.top_p {
                    keep = i + 1;
                    break;
                }
            }
        }
        if p.min_p > 0.0 {
            let thr = p.min_p as f32 * scratch[0].0;
            keep = keep.min(scratch.iter().take_while(|x| x.0 >= thr).count().max(1));
        }
        let mass: f64 = scratch[..keep].iter().map(|x| x.0 as f64).sum();
        let mut u = rng.random::<f64>() * mass;
        let mut chosen = scratch[keep - 1].1;
        for &(pr, i) in &scratch[..keep] {
            u -= pr as f64;
            if u <= 0.0 {
                chosen = i;
                break;
            }
        }
        chosen
    };
    (tok, logp(logits[tok as usize]), entropy)
}

/// Prompts left-padded to the longest: the flat `[B, P]` ids and each row's valid-token mask.
pub(crate) fn left_pad(prompts: &[Vec<u32>], pad: u32) -> (Vec<u32>, Vec<Vec<bool>>) {
    let p = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(prompts.len() * p);
    let masks = prompts
        .iter()
        .map(|pr| {
            ids.extend(std::iter::repeat_n(pad, p - pr.len()));
            ids.extend_from_slice(pr);
            let mut valid = vec![false; p - pr.len()];
            valid.extend(std::iter::repeat_n(true, pr.len()));
            valid
        })
        .collect();
    (ids, masks)
}

/// A position the latent sampler has scheduled for a row.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Planned {
    Force(u32),
    Latent,
}

struct Row {
    seq: usize,
    valid: Vec<bool>,
    next_pos: u32,
    done: bool,
    plan: VecDeque<Planned>,
}

/// Generate completions for every prompt in one batch.
pub fn generate(
    model: &Transformer,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    pad: u32,
    rng: &mut impl Rng,
) -> Result<Vec<Completion>> {
    generate_traced(model, prompts, params, pad, rng, None)
}

/// As [`generate`]; when `trace` is given, also records for every sequence the full logits row
/// that produced each of its tokens (used to check the KV cache against a full forward).
pub fn generate_traced(
    model: &Transformer,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    pad: u32,
    rng: &mut impl Rng,
    trace: Option<&mut Vec<Vec<Vec<f32>>>>,
) -> Result<Vec<Completion>> {
    generate_combined(&[model], |mut rows| rows.pop().expect("one model"), prompts, params, pad, rng, trace)
}

/// RLG (inference-time guidance) for autoregressive models: every token is sampled from
/// softmax((1 − w)·logits_base + w·logits_tuned) — see [`crate::guidance`]. Both models must share
/// the vocabulary; their KV caches advance in lockstep.
pub fn generate_guided(
    base: &Transformer,
    tuned: &Transformer,
    w: f32,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    pad: u32,
    rng: &mut impl Rng,
) -> Result<Vec<Completion>> {
    ensure!(
        base.cfg.vocab_size == tuned.cfg.vocab_size,
        "guided generation: the base has {} tokens, the tuned model {}",
        base.cfg.vocab_size,
        tuned.cfg.vocab_size
    );
    let combine = |rows: Vec<Vec<Vec<f32>>>| -> Vec<Vec<f32>> {
        rows[0].iter().zip(&rows[1]).map(|(b, t)| crate::guidance::guide_logits(b, t, w)).collect()
    };
    generate_combined(&[base, tuned], combine, prompts, params, pad, rng, None)
}

/// Generation in latent-reasoning mode (see [`crate::latent`]) with optional Latent-GRPO
/// exploration noise on the latents of some sequences. [`generate`] takes this path (without
/// noise) for any model with a latent module.
pub fn generate_latent(
    model: &Transformer,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    pad: u32,
    rng: &mut impl Rng,
    noise: Option<&LatentNoise>,
) -> Result<Vec<Completion>> {
    ensure!(model.latent.is_some(), "latent generation needs a model with a latent module");
    if let Some(nz) = noise {
        ensure!(nz.rows.len() == prompts.len(), "latent noise: {} rows for {} prompts", nz.rows.len(), prompts.len());
    }
    sample_loop(&[model], |mut rows| rows.pop().expect("one model"), prompts, params, pad, rng, None, noise)
}

/// The sampler over one or more models run in lockstep (each with its own KV cache): at every
/// step each model's next-token logits rows (`[model][row][vocab]`) are combined into one row per
/// sequence, which is sampled.
pub fn generate_combined(
    models: &[&Transformer],
    combine: impl Fn(Vec<Vec<Vec<f32>>>) -> Vec<Vec<f32>>,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    pad: u32,
    rng: &mut impl Rng,
    trace: Option<&mut Vec<Vec<Vec<f32>>>>,
) -> Result<Vec<Completion>> {
    sample_loop(models, combine, prompts, params, pad, rng, trace, None)
}

#[allow(clippy::too_many_arguments)]
fn sample_loop(
    models: &[&Transformer],
    combine: impl Fn(Vec<Vec<Vec<f32>>>) -> Vec<Vec<f32>>,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    pad: u32,
    rng: &mut impl Rng,
    mut trace: Option<&mut Vec<Vec<Vec<f32>>>>,
    noise: Option<&LatentNoise>,
) -> Result<Vec<Completion>> {
    params.validate()?;
    ensure!(!models.is_empty(), "generate: no model");
    ensure!(prompts.iter().all(|p| !p.is_empty()), "generate: every prompt needs at least one token");
    let latent = models[0].latent.clone();
    ensure!(
        latent.is_none() || models.len() == 1,
        "latent-reasoning models cannot be combined with other models in one sampler"
    );
    let n = prompts.len();
    let mut out: Vec<Completion> =
        (0..n).map(|_| Completion::of_tokens(vec![], vec![], vec![], Finish::Length)).collect();
    if n == 0 {
        return Ok(out);
    }
    // Latent mode: each sequence's noise direction (unit, drawn once) for the noisy rows.
    let dims = models[0].cfg.hidden_size;
    let directions: Vec<Option<Vec<f32>>> = match (noise, &latent) {
        (Some(nz), Some(_)) if nz.sigma > 0.0 => nz
            .rows
            .iter()
            .map(|&on| {
                on.then(|| {
                    let u: Vec<f32> = (0..dims).map(|_| StandardNormal.sample(&mut *rng)).collect();
                    let norm = u.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                    u.into_iter().map(|x| x / norm).collect()
                })
            })
            .collect(),
        _ => vec![None; n],
    };
    let initial_plan = |_: usize| -> VecDeque<Planned> {
        let mut plan = VecDeque::new();
        if let Some(l) = latent.as_deref().filter(|l| l.kind == LatentKind::Coconut && l.cfg.trigger == "prefix") {
            plan.extend(l.cfg.start.map(Planned::Force));
            plan.extend(std::iter::repeat_n(Planned::Latent, l.cfg.steps));
            plan.extend(l.cfg.end.map(Planned::Force));
        }
        plan
    };
    if let Some(tr) = trace.as_deref_mut() {
        *tr = vec![Vec::new(); n];
    }
    let dev = models[0].device().clone();
    let p = prompts.iter().map(|x| x.len()).max().unwrap();
    for model in models {
        ensure!(
            p + params.max_new_tokens <= model.cfg.max_position_embeddings,
            "prompt length {p} + max_new_tokens {} exceeds the model's max_position_embeddings {}",
            params.max_new_tokens,
            model.cfg.max_position_embeddings
        );
    }
    let (ids, masks) = left_pad(prompts, pad);
    let mut rows: Vec<Row> = masks
        .into_iter()
        .zip(prompts)
        .enumerate()
        .map(|(i, (valid, pr))| Row { seq: i, valid, next_pos: pr.len() as u32, done: false, plan: initial_plan(i) })
        .collect();
    let valid: Vec<Vec<bool>> = rows.iter().map(|r| r.valid.clone()).collect();
    let pos: Vec<u32> = positions(&valid).concat();
    let host = |l: &Tensor| -> Result<Vec<Vec<f32>>> { Ok(l.to_dtype(DType::F32)?.to_vec2::<f32>()?) };
    // Prefill. Models the packed decoder serves (see `crate::decode`) run there from the start;
    // the others on candle ops with a KV cache.
    let mut per_model = Vec::with_capacity(models.len());
    let mut decoders = Vec::with_capacity(models.len());
    // Latent mode: the last hidden state of every row (the next latent / HRPO input).
    let mut last_hidden: Vec<Vec<f32>> = Vec::new();
    for model in models {
        let mut dec = Cache::new(model, n, p + params.max_new_tokens)?;
        let cache = match &mut dec {
            Cache::Packed(pm, st) => {
                let vrefs: Vec<&[bool]> = valid.iter().map(Vec::as_slice).collect();
                per_model.push(pm.forward(st, &ids, p, &pos, &vrefs, &vec![p - 1; n])?);
                decoders.push(dec);
                continue;
            }
            Cache::Candle(cache) => cache,
        };
        let bias = attention_bias(&valid, p, &dev, model.dtype())?;
        let (ids_t, pos_t) =
            (Tensor::from_vec(ids.clone(), (n, p), &dev)?, Tensor::from_vec(pos.clone(), (n, p), &dev)?);
        let hidden = model.forward_hidden(&ids_t, &pos_t, &bias, Some(cache), Mode::Infer)?;
        let h = hidden.narrow(1, p - 1, 1)?.squeeze(1)?;
        if latent.is_some() {
            last_hidden = h.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        }
        per_model.push(host(&model.logits(&h)?)?);
        decoders.push(dec);
    }
    let mut scratch = Vec::new();
    for step in 0..params.max_new_tokens {
        let rows_logits = combine(std::mem::take(&mut per_model));
        let mut next = Vec::with_capacity(rows.len());
        let mut next_vec: Vec<Option<Vec<f32>>> = Vec::with_capacity(rows.len());
        for (ri, (row, lg)) in rows.iter_mut().zip(&rows_logits).enumerate() {
            if row.done {
                next.push(pad);
                next_vec.push(None);
                continue;
            }
            let (tok, lp, ent, kind, vector) = match (latent.as_deref(), row.plan.pop_front()) {
                (Some(_), Some(Planned::Force(tok))) => {
                    let (lp, ent) = token_logp_entropy(lg, params.temperature, tok);
                    (tok, lp, ent, StepKind::Forced, None)
                }
                (Some(l), Some(Planned::Latent)) => {
                    let mu = &last_hidden[ri];
                    let z = match &directions[row.seq] {
                        Some(u) => {
                            let xi: f64 = StandardNormal.sample(&mut *rng);
                            crate::latent::one_sided_noise(mu, u, noise.map_or(0.0, |nz| nz.sigma), xi)
                        }
                        None => mu.clone(),
                    };
                    let lp = crate::latent::vmf_logp_host(mu, &z, l.cfg.kappa, l.cfg.normalize);
                    (pad, lp, 0.0, StepKind::Latent, Some(z))
                }
                (l, _) => {
                    let (tok, lp, ent) = sample_row(lg, params, rng, &mut scratch);
                    let vector = match l {
                        Some(l) if l.kind == LatentKind::Hrpo => Some(last_hidden[ri].clone()),
                        Some(l) if l.cfg.trigger == "marker" && Some(tok) == l.cfg.start => {
                            row.plan.extend(std::iter::repeat_n(Planned::Latent, l.cfg.steps));
                            row.plan.extend(l.cfg.end.map(Planned::Force));
                            None
                        }
                        _ => None,
                    };
                    (tok, lp, ent, StepKind::Token, vector)
                }
            };
            if let Some(tr) = trace.as_deref_mut() {
                tr[row.seq].push(lg.clone());
            }
            let c = &mut out[row.seq];
            c.tokens.push(tok);
            c.logp.push(lp);
            c.entropy.push(ent);
            if latent.is_some() {
                c.kinds.push(kind);
                c.inputs.push(vector.clone());
            }
            if kind == StepKind::Token && params.stop_tokens.contains(&tok) {
                c.finish = Finish::Stop;
                row.done = true;
            }
            next.push(tok);
            next_vec.push(vector);
        }
        let finished = rows.iter().filter(|r| r.done).count();
        if finished == rows.len() || step + 1 == params.max_new_tokens {
            break;
        }
        if finished > 0 && finished * 4 >= rows.len() {
            let keep: Vec<usize> = (0..rows.len()).filter(|&i| !rows[i].done).collect();
            for dec in decoders.iter_mut() {
                dec.keep_rows(&keep)?;
            }
            next = keep.iter().map(|&i| next[i]).collect();
            next_vec = keep.iter().map(|&i| next_vec[i].take()).collect();
            rows.retain(|r| !r.done);
        }
        let b = rows.len();
        let mut pos = Vec::with_capacity(b);
        for row in rows.iter_mut() {
            row.valid.push(!row.done);
            pos.push(row.next_pos);
            row.next_pos += 1;
        }
        let valid: Vec<&[bool]> = rows.iter().map(|r| r.valid.as_slice()).collect();
        let vectors = if latent.is_some() && next_vec.iter().any(|v| v.is_some()) {
            let mut data = vec![0f32; b * dims];
            let mut mask = vec![0f32; b];
            for (i, v) in next_vec.iter().enumerate() {
                if let Some(v) = v {
                    data[i * dims..(i + 1) * dims].copy_from_slice(v);
                    mask[i] = 1.0;
                }
            }
            Some((Tensor::from_vec(data, (b, 1, dims), &dev)?, Tensor::from_vec(mask, (b, 1), &dev)?))
        } else {
            None
        };
        for (model, dec) in models.iter().zip(decoders.iter_mut()) {
            let cache = match dec {
                Cache::Packed(pm, st) => {
                    per_model.push(pm.step(st, &next, &pos, &valid)?);
                    continue;
                }
                Cache::Candle(cache) => cache,
            };
            let bias = attention_bias(&valid, 1, &dev, model.dtype())?;
            let (ids_t, pos_t) =
                (Tensor::from_vec(next.clone(), (b, 1), &dev)?, Tensor::from_vec(pos.clone(), (b, 1), &dev)?);
            let inputs = vectors.as_ref().map(|(v, m)| (v, m));
            let hidden = model.forward_hidden_with(&ids_t, &pos_t, &bias, Some(cache), Mode::Infer, inputs)?;
            let h = hidden.squeeze(1)?;
            if latent.is_some() {
                last_hidden = h.to_dtype(DType::F32)?.to_vec2::<f32>()?;
            }
            per_model.push(host(&model.logits(&h)?)?);
        }
    }
    Ok(out)
}
