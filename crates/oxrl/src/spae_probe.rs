//! SPAE's probes (oxrl_core::advantage::spae): the step potential Φ_k after every step of every
//! response, measured gradient-free with the policy — N sampled probe continuations after the
//! probe prompt give the confidence, the teacher-forced ground-truth answer the correctness.
//! Probes run at the step boundaries; the final segment (which holds the response's own answer,
//! judged by the verifier) keeps the potential of the last boundary (ΔΦ = 0), and a response
//! without a boundary is probed once at its end.

use crate::config::TrainConfig;
use crate::policy::Policy;
use anyhow::Result;
use oxrl_core::advantage::spae::{confidence, potential, step_ends};
use oxrl_lm::sampler::{generate, SamplingParams};
use oxrl_lm::scorer::{score, ScoreOptions};

/// Per response: (the exclusive token end of each step, Φ after each step).
pub type StepPotentials = Vec<(Vec<usize>, Vec<f64>)>;

/// Φ after every step of `responses` (to `prompts`, with ground-truth `answers`).
pub fn potentials(
    policy: &Policy,
    prompts: &[Vec<u32>],
    responses: &[Vec<u32>],
    answers: &[String],
    t: &TrainConfig,
    seed: u64,
    step: u64,
) -> Result<StepPotentials> {
    let tok = policy.tokenizer.as_ref();
    let stops = tok.stop_ids();
    let probe = tok.encode(&t.spae_probe)?;
    // Steps of each response, on its text without the stop token.
    let mut ends_all = Vec::with_capacity(responses.len());
    let (mut prefixes, mut answer_ids, mut owner) = (Vec::new(), Vec::new(), Vec::new());
    let mut probes_per = Vec::with_capacity(responses.len());
    for (i, r) in responses.iter().enumerate() {
        let content = r.iter().position(|x| stops.contains(x)).unwrap_or(r.len());
        let texts: Vec<String> = (0..content).map(|j| tok.decode(&r[..=j])).collect::<Result<_>>()?;
        let mut ends = if content == 0 { vec![] } else { step_ends(&texts, &t.spae_boundary) };
        if ends.len() > t.spae_max_steps {
            // keep the first max−1 boundaries; the rest is one final step
            ends.truncate(t.spae_max_steps - 1);
            ends.push(content);
        }
        if ends.is_empty() {
            ends.push(content);
        }
        let ans = tok.encode(&answers[i])?;
        // probe points: every boundary before the final segment (or the end, without one)
        let probe_at: Vec<usize> = if ends.len() > 1 { ends[..ends.len() - 1].to_vec() } else { ends.clone() };
        probes_per.push(probe_at.len());
        for &e in &probe_at {
            let mut p = prompts[i].clone();
            p.extend_from_slice(&r[..e.min(content)]);
            p.extend_from_slice(&probe);
            prefixes.push(p);
            answer_ids.push(if ans.is_empty() { vec![tok.eos_id()] } else { ans.clone() });
            owner.push(i);
        }
        // the last step carries the stop token too
        *ends.last_mut().expect("at least one step") = r.len();
        ends_all.push(ends);
    }
    // Correctness: the teacher-forced ground truth after each probe prefix.
    let mut acc = Vec::with_capacity(prefixes.len());
    for (ps, ans) in prefixes.chunks(128).zip(answer_ids.chunks(128)) {
        let s = score(&policy.model, ps, ans, tok.pad_id(), ScoreOptions::default())?;
        let lp = s.logp.to_dtype(candle_core::DType::F64)?.to_vec2::<f64>()?;
        for (row, a) in lp.iter().zip(ans) {
            acc.push(row[..a.len()].iter().map(|x| x.exp()).sum::<f64>() / a.len() as f64);
        }
    }
    // Confidence: N sampled probe continuations of each prefix.
    let n = t.spae_probes.max(1);
    let params = SamplingParams {
        temperature: t.spae_probe_temperature,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        max_new_tokens: t.spae_probe_tokens,
        stop_tokens: stops.clone(),
    };
    let mut rng = oxrl_core::seed::rng(seed, "spae-probe", step);
    let rep: Vec<Vec<u32>> = prefixes.iter().flat_map(|p| std::iter::repeat_n(p.clone(), n)).collect();
    let outs = generate(&policy.model, &rep, &params, tok.pad_id(), &mut rng)?;
    let ent: Vec<Vec<f64>> = outs.iter().map(|c| c.entropy.iter().map(|&h| h as f64).collect()).collect();
    let mut phis: Vec<Vec<f64>> = vec![Vec::new(); responses.len()];
    for (k, &i) in owner.iter().enumerate() {
        phis[i].push(potential(acc[k], confidence(&ent[k * n..(k + 1) * n])));
    }
    for ((phi, ends), &np) in phis.iter_mut().zip(&ends_all).zip(&probes_per) {
        if ends.len() > np {
            let last = *phi.last().expect("one probe at least");
            phi.push(last);
        }
    }
    Ok(ends_all.into_iter().zip(phis).collect())
}
