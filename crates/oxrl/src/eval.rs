//! Held-out evaluation: greedy accuracy, unbiased pass@k and maj@k from max(k) samples per problem,
//! mean response length (tokens) and mean per-token entropy of the greedy responses.

use crate::config::EvalConfig;
use crate::policy::Policy;
use anyhow::Result;
use oxrl_core::metrics::{maj_at_k, pass_at_k};
use oxrl_lm::sampler::{Completion, SamplingParams};
use oxrl_tasks::{Problem, Task, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Greedy accuracy.
    pub accuracy: f64,
    /// k → unbiased pass@k over max(k) samples at the eval temperature.
    pub pass_at_k: BTreeMap<String, f64>,
    /// k → majority-vote accuracy over the first k samples.
    pub maj_at_k: BTreeMap<String, f64>,
    /// Mean greedy response length in tokens (stop token included).
    pub mean_length: f64,
    /// Mean per-token entropy over the greedy responses.
    pub mean_entropy: f64,
    /// Fraction of greedy responses the verifier could parse.
    pub format_rate: f64,
    pub num_problems: usize,
    pub samples_per_problem: usize,
}

/// Default token budget for a task: its longest good completion plus slack.
pub fn max_new_tokens(cfg: &EvalConfig, task: &dyn Task) -> usize {
    if cfg.max_new_tokens > 0 {
        cfg.max_new_tokens
    } else {
        task.max_completion_chars() + 8
    }
}

/// Generate for `prompts` in chunks of `batch` sequences.
/// (Agent tasks: one multi-turn episode per prompt, `params` per turn.)
#[allow(clippy::too_many_arguments)]
pub fn generate_chunked(
    policy: &Policy,
    task: &dyn Task,
    agent: bool,
    problems: &[&Problem],
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    batch: usize,
    rng: &mut oxrl_core::seed::Rng,
) -> Result<Vec<Completion>> {
    let mut out = Vec::with_capacity(prompts.len());
    let tok = policy.tokenizer.as_ref();
    let b = batch.max(1);
    for (chunk, probs) in prompts.chunks(b).zip(problems.chunks(b)) {
        out.extend(crate::agent::rollout(&policy.model, tok, task, agent, probs, chunk, params, rng)?);
    }
    Ok(out)
}

/// Verify completions against their problems.
pub fn judge(
    policy: &Policy,
    task: &dyn Task,
    agent: bool,
    problems: &[&Problem],
    outs: &[Completion],
) -> Result<Vec<Verdict>> {
    problems
        .iter()
        .zip(outs)
        .map(|(p, c)| Ok(task.verify(p, &crate::agent::response_text(policy.tokenizer.as_ref(), agent, c)?)))
        .collect()
}

pub fn evaluate(policy: &Policy, task: &dyn Task, cfg: &EvalConfig, seed: u64) -> Result<EvalReport> {
    let mut problems: Vec<&Problem> = task.test_problems().iter().collect();
    if cfg.max_problems > 0 {
        problems.truncate(cfg.max_problems);
    }
    anyhow::ensure!(!problems.is_empty(), "task `{}` has no held-out problems", task.name());
    let tok = policy.tokenizer.as_ref();
    let prompts: Vec<Vec<u32>> = problems.iter().map(|p| crate::policy::prompt_ids(tok, p)).collect::<Result<_>>()?;
    let budget = max_new_tokens(cfg, task);
    let stop = tok.stop_ids();
    let agent = crate::agent::is_agent_task(task);
    let mut rng = oxrl_core::seed::rng(seed, "eval", 0);
    let greedy_params = SamplingParams::greedy(budget, stop.clone());
    let greedy = generate_chunked(policy, task, agent, &problems, &prompts, &greedy_params, cfg.batch_size, &mut rng)?;
    let gv = judge(policy, task, agent, &problems, &greedy)?;
    let n = problems.len() as f64;
    let accuracy = gv.iter().filter(|v| v.correct).count() as f64 / n;
    let format_rate = gv.iter().filter(|v| v.format_ok).count() as f64 / n;
    let mean_length = greedy.iter().map(|c| c.tokens.len() as f64).sum::<f64>() / n;
    let toks: usize = greedy.iter().map(|c| c.entropy.len()).sum();
    let mean_entropy =
        greedy.iter().flat_map(|c| c.entropy.iter()).map(|&e| e as f64).sum::<f64>() / toks.max(1) as f64;

    let kmax = *cfg.k.iter().max().unwrap();
    let mut pass = BTreeMap::new();
    let mut maj = BTreeMap::new();
    if kmax == 1 && cfg.temperature == 0.0 {
        pass.insert("1".into(), accuracy);
        maj.insert("1".into(), accuracy);
    } else {
        let params = SamplingParams {
            temperature: cfg.temperature,
            top_k: cfg.top_k,
            top_p: cfg.top_p,
            min_p: cfg.min_p,
            max_new_tokens: budget,
            stop_tokens: stop,
        };
        let rep_prompts: Vec<Vec<u32>> = prompts.iter().flat_map(|p| std::iter::repeat_n(p.clone(), kmax)).collect();
        let rep_problems: Vec<&Problem> = problems.iter().flat_map(|p| std::iter::repeat_n(*p, kmax)).collect();
        let samples =
            generate_chunked(policy, task, agent, &rep_problems, &rep_prompts, &params, cfg.batch_size, &mut rng)?;
        let sv = judge(policy, task, agent, &rep_problems, &samples)?;
        for &k in &cfg.k {
            let (mut ps, mut ms) = (0.0, 0.0);
            for group in sv.chunks(kmax) {
                let c = group.iter().filter(|v| v.correct).count();
                ps += pass_at_k(kmax, c, k);
                let answers: Vec<Option<String>> = group.iter().map(|v| v.answer.clone()).collect();
                let correct: Vec<bool> = group.iter().map(|v| v.correct).collect();
                ms += maj_at_k(&answers, &correct, k);
            }
            pass.insert(k.to_string(), ps / n);
            maj.insert(k.to_string(), ms / n);
        }
    }
    Ok(EvalReport {
        accuracy,
        pass_at_k: pass,
        maj_at_k: maj,
        mean_length,
        mean_entropy,
        format_rate,
        num_problems: problems.len(),
        samples_per_problem: kmax,
    })
}

impl EvalReport {
    /// A readable table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "held-out problems   {}\ngreedy accuracy     {:.1}%\nformat ok           {:.1}%\n",
            self.num_problems,
            100.0 * self.accuracy,
            100.0 * self.format_rate
        );
        let mut ks: Vec<(usize, &String)> = self.pass_at_k.keys().map(|k| (k.parse().unwrap_or(0), k)).collect();
        ks.sort();
        for (_, k) in ks {
            s += &format!(
                "pass@{k:<15}{:.1}%\nmaj@{k:<16}{:.1}%\n",
                100.0 * self.pass_at_k[k],
                100.0 * self.maj_at_k[k]
            );
        }
        s += &format!(
            "mean length         {:.1} tokens\nmean entropy        {:.3} nats\n",
            self.mean_length, self.mean_entropy
        );
        s
    }
}
