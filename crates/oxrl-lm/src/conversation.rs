//! Multi-turn generation that keeps every conversation's KV cache across turns.
//!
//! A multi-turn agent alternates sampled actions with inserted observations. Re-encoding the
//! whole transcript as the prompt of each turn costs a prefill that grows with the transcript
//! (quadratic in the number of turns); a [`Conversation`] instead prefills the prompts once, and
//! per turn decodes the actions ([`Conversation::sample_turn`]) and appends only the new tokens —
//! the turn's last sampled token and the observation — in one batched forward
//! ([`Conversation::extend`]). Rows are ragged: a row that ends its turn early, or has a shorter
//! observation, leaves masked slots in the shared cache (the attention bias skips them and rotary
//! positions count only a row's real tokens), so every row sees exactly its own transcript and the
//! log-probs equal a full forward's (tested). Rows whose episode ended leave the batch
//! ([`Conversation::retain`]); the cache grows by doubling when a turn needs more room. Models the
//! packed decoder serves ([`crate::decode`]) run every forward there; others on candle ops.

use crate::decode::Cache;
use crate::model::{attention_bias, positions, Mode};
use crate::sampler::{left_pad, sample_row, Completion, Finish, SamplingParams};
use crate::Transformer;
use anyhow::{ensure, Result};
use candle_core::{DType, Tensor};
use rand::Rng;

/// One live conversation of the batch.
struct Row {
    /// Which cache slots hold this row's tokens (the rest are padding).
    valid: Vec<bool>,
    /// Rotary position of the row's next real token (the count of its real tokens so far).
    next_pos: u32,
    /// Next-token logits after the last token fed (empty while a sampled token is pending).
    logits: Vec<f32>,
    /// The last sampled token of the turn, not yet fed to the model.
    pending: Option<u32>,
}

/// A batch of conversations with one shared, growing KV cache.
pub struct Conversation<'m> {
    model: &'m Transformer,
    backend: Cache,
    pad: u32,
    rows: Vec<Row>,
}

impl<'m> Conversation<'m> {
    /// Prefill the prompts (left-padded to the longest); `room` is the initial cache space after
    /// the prompts (the cache grows as needed).
    pub fn new(model: &'m Transformer, prompts: &[Vec<u32>], pad: u32, room: usize) -> Result<Self> {
        ensure!(model.latent.is_none(), "multi-turn conversations do not support latent-reasoning policies");
        ensure!(prompts.iter().all(|p| !p.is_empty()), "conversation: every prompt needs at least one token");
        let n = prompts.len();
        let p = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let limit = model.cfg.max_position_embeddings;
        ensure!(p <= limit, "conversation: a prompt of {p} tokens exceeds the model's max_position_embeddings {limit}");
        let backend = Cache::new(model, n, p + room.max(1))?;
        let mut conv = Self { model, backend, pad, rows: Vec::with_capacity(n) };
        if n == 0 {
            return Ok(conv);
        }
        let (ids, masks) = left_pad(prompts, pad);
        conv.rows = masks
            .into_iter()
            .zip(prompts)
            .map(|(valid, pr)| Row { valid, next_pos: pr.len() as u32, logits: Vec::new(), pending: None })
            .collect();
        let valid: Vec<&[bool]> = conv.rows.iter().map(|r| r.valid.as_slice()).collect();
        let pos: Vec<u32> = positions(&valid).into_iter().flatten().collect();
        let last = vec![p - 1; n];
        conv.forward(ids, pos, p, &last)?;
        Ok(conv)
    }

    /// Feed `t` new slots per row (`ids`, `pos` row-major `[B, T]`; the rows' `valid` already
    /// extended) and keep each row's logits at its slot `last[r]` of the chunk.
    fn forward(&mut self, ids: Vec<u32>, pos: Vec<u32>, t: usize, last: &[usize]) -> Result<()> {
        let b = self.rows.len();
        let dev = self.model.device().clone();
        let valid: Vec<&[bool]> = self.rows.iter().map(|r| r.valid.as_slice()).collect();
        let cache = match &mut self.backend {
            Cache::Packed(pm, st) => {
                st.reserve(st.len + t);
                let logits = pm.forward(st, &ids, t, &pos, &valid, last)?;
                for (row, l) in self.rows.iter_mut().zip(logits) {
                    row.logits = l;
                }
                return Ok(());
            }
            Cache::Candle(cache) => cache,
        };
        cache.reserve(cache.len + t)?;
        let bias = attention_bias(&valid, t, &dev, self.model.dtype())?;
        let hidden = self.model.forward_hidden(
            &Tensor::from_vec(ids, (b, t), &dev)?,
            &Tensor::from_vec(pos, (b, t), &dev)?,
            &bias,
            Some(cache),
            Mode::Infer,
        )?;
        let h = if last.iter().all(|&j| j + 1 == t) {
            hidden.narrow(1, t - 1, 1)?.squeeze(1)?
        } else {
            let idx: Vec<u32> = last.iter().enumerate().map(|(r, &j)| (r * t + j) as u32).collect();
            let flat = hidden.reshape((b * t, hidden.dim(2)?))?;
            flat.index_select(&Tensor::new(idx.as_slice(), &dev)?, 0)?
        };
        let logits = self.model.logits(&h)?.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        for (row, l) in self.rows.iter_mut().zip(logits) {
            row.logits = l;
        }
        Ok(())
    }

    /// Sample one turn for every live row: up to `params.max_new_tokens` tokens, a row's turn
    /// ending at one of `params.stop_tokens`. The last token of each row's turn stays pending
    /// until [`Self::extend`].
    pub fn sample_turn(&mut self, params: &SamplingParams, rng: &mut impl Rng) -> Result<Vec<Completion>> {
        params.validate()?;
        ensure!(
            self.rows.iter().all(|r| r.pending.is_none()),
            "conversation: the last turn's tokens must be fed with `extend` before the next turn"
        );
        let b = self.rows.len();
        let limit = self.model.cfg.max_position_embeddings;
        if let Some(row) = self.rows.iter().find(|r| r.next_pos as usize + params.max_new_tokens > limit) {
            anyhow::bail!(
                "conversation: {} tokens + max_new_tokens {} exceed the model's max_position_embeddings {limit}",
                row.next_pos,
                params.max_new_tokens
            );
        }
        let mut out: Vec<Completion> =
            (0..b).map(|_| Completion::of_tokens(vec![], vec![], vec![], Finish::Length)).collect();
        let mut done = vec![false; b];
        let mut scratch = Vec::new();
        for step in 0..params.max_new_tokens {
            let mut next = vec![self.pad; b];
            let mut live = vec![false; b];
            for (r, row) in self.rows.iter().enumerate() {
                if done[r] {
                    continue;
                }
                let (tok, lp, ent) = sample_row(&row.logits, params, rng, &mut scratch);
                let c = &mut out[r];
                c.tokens.push(tok);
                c.logp.push(lp);
                c.entropy.push(ent);
                if params.stop_tokens.contains(&tok) {
                    c.finish = Finish::Stop;
                    done[r] = true;
                } else {
                    next[r] = tok;
                    live[r] = true;
                }
            }
            if done.iter().all(|&d| d) || step + 1 == params.max_new_tokens {
                break;
            }
            // Feed the sampled tokens of rows still in their turn; the others get a masked slot.
            let mut pos = Vec::with_capacity(b);
            for (row, &on) in self.rows.iter_mut().zip(&live) {
                row.valid.push(on);
                pos.push(if on { row.next_pos } else { 0 });
                row.next_pos += on as u32;
            }
            let last = vec![0; b];
            self.forward(next, pos, 1, &last)?;
        }
        for (row, c) in self.rows.iter_mut().zip(&out) {
            row.pending = c.tokens.last().copied();
            row.logits.clear();
        }
        Ok(out)
    }

    /// Append forced tokens to every live row (`tokens[r]` for row r, after its pending token):
    /// one batched forward over the longest, the shorter rows padded with masked slots. Afterwards
    /// each row's next-token logits follow its own last token.
    pub fn extend(&mut self, tokens: &[Vec<u32>]) -> Result<()> {
        let b = self.rows.len();
        ensure!(tokens.len() == b, "conversation: {} token lists for {b} live rows", tokens.len());
        let seqs: Vec<Vec<u32>> =
            self.rows.iter().zip(tokens).map(|(row, t)| row.pending.iter().chain(t).copied().collect()).collect();
        // Checked before any row changes, so a refused call leaves the conversation as it was.
        let limit = self.model.cfg.max_position_embeddings;
        for (row, s) in self.rows.iter().zip(&seqs) {
            ensure!(!s.is_empty(), "conversation: a row has no token to append");
            ensure!(
                row.next_pos as usize + s.len() <= limit,
                "conversation: {} tokens exceed the model's max_position_embeddings {limit}",
                row.next_pos as usize + s.len()
            );
        }
        let t = seqs.iter().map(Vec::len).max().unwrap_or(0);
        if t == 0 {
            return Ok(()); // no live rows
        }
        let mut ids = Vec::with_capacity(b * t);
        let mut pos = Vec::with_capacity(b * t);
        let mut last = Vec::with_capacity(b);
        for (row, s) in self.rows.iter_mut().zip(&seqs) {
            row.pending = None;
            for j in 0..t {
                let on = j < s.len();
                ids.push(if on { s[j] } else { self.pad });
                pos.push(if on { row.next_pos + j as u32 } else { 0 });
                row.valid.push(on);
            }
            row.next_pos += s.len() as u32;
            last.push(s.len() - 1);
        }
        self.forward(ids, pos, t, &last)
    }

    /// Keep only the given rows (indices into the live rows, in that order).
    pub fn retain(&mut self, keep: &[usize]) -> Result<()> {
        let mut seen = vec![false; self.rows.len()];
        for &i in keep {
            ensure!(i < seen.len() && !seen[i], "conversation: kept row {i} is out of range or repeated");
            seen[i] = true;
        }
        if keep.len() == self.rows.len() && keep.iter().enumerate().all(|(a, &b)| a == b) {
            return Ok(());
        }
        let mut old: Vec<Option<Row>> = std::mem::take(&mut self.rows).into_iter().map(Some).collect();
        self.rows = keep.iter().map(|&i| old[i].take().expect("checked above")).collect();
        self.backend.keep_rows(keep)
    }
}
