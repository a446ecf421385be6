//! Reward models (oxrl_core::loss::preference): `oxrl rm --config FILE` trains the policy's trunk
//! with a scalar head read at the last response token on preference pairs (the `oxrl dpo` JSONL
//! format; Bradley–Terry with an optional margin) and rankings (`"ranked": [best, …, worst]`;
//! Plackett–Luce), with the centring term λ·(r_w + r_l)² because both losses are shift-invariant;
//! `train.reward_model = DIR` makes a trained one the reward of `oxrl train` (the verifier still
//! reports correctness for the metrics), `train.reward_model_ensemble` adds members. A VPL model
//! (`rm.kind = "vpl"`) is personalised at load time: `train.reward_model_user` names preference
//! pairs of one user, whose posterior mean z conditions r(prompt, response | z) on the frozen
//! model's embeddings.

use crate::config::RunConfig;
use crate::policy::Policy;
use crate::run::RunDir;
use anyhow::{bail, ensure, Context, Result};
use candle_core::{DType, Tensor};
use oxrl_core::loss::preference::{bt_loss, plackett_luce_loss};
use oxrl_core::optim::{AdamW, AdamWConfig};
use oxrl_lm::scorer::{score, ScoreOptions};
use oxrl_lm::value_head::ValueHead;
use rand::Rng;
use serde_json::json;
use std::path::Path;

const HEAD_FILE: &str = "reward_head.safetensors";

pub struct RewardModel {
    pub policy: Policy,
    pub head: ValueHead,
    /// VPL: the user-conditioned reward on the frozen model's last-token embeddings, and the
    /// user's posterior mean z (the head is unused then).
    pub vpl: Option<(oxrl_core::vpl::Vpl, Tensor)>,
}

/// The VPL model's settings beside its weights.
const VPL_FILE: &str = "vpl.safetensors";
const VPL_META: &str = "vpl.json";

impl RewardModel {
    /// Rewards `[N]` of `responses` to `prompts`: the head at each response's last token.
    pub fn scores(&self, prompts: &[Vec<u32>], responses: &[Vec<u32>], grad: bool) -> Result<Tensor> {
        if let Some((vpl, z)) = &self.vpl {
            let e = embeddings(&self.policy, prompts, responses)?;
            let dim = e.first().map_or(0, |x| x.len());
            let e = Tensor::from_vec(e.concat(), (responses.len(), dim), &candle_core::Device::Cpu)?;
            return vpl.rewards(&e, z);
        }
        let pad = self.policy.tokenizer.pad_id();
        let s = score(
            &self.policy.model,
            prompts,
            responses,
            pad,
            ScoreOptions { grad, hidden: true, ..Default::default() },
        )?;
        let v = self.head.forward(s.hidden.as_ref().expect("asked for"))?; // [B, R]
        let last: Vec<u32> = responses.iter().map(|r| r.len().saturating_sub(1) as u32).collect();
        let idx = Tensor::new(last, v.device())?.unsqueeze(1)?;
        Ok(v.gather(&idx, 1)?.squeeze(1)?)
    }

    /// Rewards as numbers, in chunks, without gradients.
    pub fn rewards(&self, prompts: &[Vec<u32>], responses: &[Vec<u32>]) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(prompts.len());
        for (p, r) in prompts.chunks(64).zip(responses.chunks(64)) {
            out.extend(self.scores(p, r, false)?.to_dtype(DType::F64)?.to_vec1::<f64>()?);
        }
        Ok(out)
    }

    /// Load a reward model saved by `oxrl rm` (a checkpoint directory or its run folder).
    pub fn load(dir: &Path, device: &candle_core::Device) -> Result<Self> {
        Self::load_for(dir, None, device)
    }

    /// [`RewardModel::load`]; a VPL model is personalised to the user whose preference pairs
    /// `user` names (required for VPL).
    pub fn load_for(dir: &Path, user: Option<&Path>, device: &candle_core::Device) -> Result<Self> {
        let dir =
            if dir.join("checkpoints/final").is_dir() { dir.join("checkpoints/final") } else { dir.to_path_buf() };
        if dir.join(VPL_FILE).is_file() {
            return Self::load_vpl(&dir, user, device);
        }
        ensure!(
            dir.join(HEAD_FILE).is_file(),
            "{}: no {HEAD_FILE} (not a reward model saved by `oxrl rm`)",
            dir.display()
        );
        let policy =
            Policy::load(&dir, device).with_context(|| format!("loading the reward model {}", dir.display()))?;
        let head = ValueHead::new(policy.model.cfg.hidden_size, 0, device)?;
        head.load(&dir.join(HEAD_FILE))?;
        Ok(Self { policy, head, vpl: None })
    }

    fn load_vpl(dir: &Path, user: Option<&Path>, device: &candle_core::Device) -> Result<Self> {
        use oxrl_core::vpl::{Pair as VPair, Vpl, VplConfig};
        let Some(user) = user else {
            bail!(
                "{}: a VPL reward model is personalised: set `train.reward_model_user` to that user's preference pairs",
                dir.display()
            )
        };
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(VPL_META)).with_context(|| format!("reading {}", dir.display()))?,
        )
        .with_context(|| format!("{}: {VPL_META}", dir.display()))?;
        let num = |k: &str| -> Result<f64> {
            meta[k].as_f64().with_context(|| format!("{}: {VPL_META} has no number `{k}`", dir.display()))
        };
        let cfg = VplConfig {
            z_dim: num("z_dim")? as usize,
            hidden: num("hidden")? as usize,
            beta: num("beta")?,
            ..VplConfig::default()
        };
        let vpl = Vpl::new(num("embed_dim")? as usize, cfg, true)?;
        let map = candle_core::safetensors::load(dir.join(VPL_FILE), &candle_core::Device::Cpu)?;
        for (k, v) in vpl.named_vars() {
            let t = map.get(&k).with_context(|| format!("{}: {VPL_FILE} has no {k}", dir.display()))?;
            v.set(t)?;
        }
        let policy =
            Policy::load(dir, device).with_context(|| format!("loading the reward model {}", dir.display()))?;
        // the user's posterior mean from their pairs
        let pairs = load_rankings(user, &policy).context("key `train.reward_model_user`")?;
        ensure!(!pairs.is_empty(), "key `train.reward_model_user`: {} has no pairs", user.display());
        if let Some(i) = pairs.iter().position(|r| r.ranked.len() != 2) {
            bail!("key `train.reward_model_user`: {} record {} is a ranking; VPL reads pairs", user.display(), i + 1);
        }
        let prompts: Vec<Vec<u32>> = pairs.iter().flat_map(|r| [r.prompt.clone(), r.prompt.clone()]).collect();
        let resp: Vec<Vec<u32>> = pairs.iter().flat_map(|r| r.ranked.clone()).collect();
        let e = embeddings(&policy, &prompts, &resp)?;
        let context: Vec<VPair> = e.chunks(2).map(|c| VPair { chosen: c[0].clone(), rejected: c[1].clone() }).collect();
        let (z, _) = vpl.posterior(&context)?;
        let head = ValueHead::new(policy.model.cfg.hidden_size, 0, device)?;
        Ok(Self { policy, head, vpl: Some((vpl, z)) })
    }
}

/// One reward model or an ensemble of them (`train.reward_model` plus
/// `train.reward_model_ensemble`): the reward is the members' mean minus `uncertainty` times their
/// standard deviation — a pessimistic reward where the models disagree, the usual guard against
/// over-optimising a learned reward.
pub struct RewardEnsemble {
    pub members: Vec<RewardModel>,
    pub uncertainty: f64,
}

impl RewardEnsemble {
    /// (rewards, the members' standard deviation) per response.
    pub fn rewards(&self, prompts: &[Vec<u32>], responses: &[Vec<u32>]) -> Result<(Vec<f64>, Vec<f64>)> {
        let scores: Vec<Vec<f64>> =
            self.members.iter().map(|m| m.rewards(prompts, responses)).collect::<Result<_>>()?;
        Ok(combine(&scores, self.uncertainty))
    }
}

/// Per response: mean − k·std over the members' scores (population std), and the std.
pub fn combine(scores: &[Vec<f64>], k: f64) -> (Vec<f64>, Vec<f64>) {
    let n = scores.first().map_or(0, |s| s.len());
    let m = scores.len().max(1) as f64;
    (0..n)
        .map(|i| {
            let mean = scores.iter().map(|s| s[i]).sum::<f64>() / m;
            let sd = (scores.iter().map(|s| (s[i] - mean).powi(2)).sum::<f64>() / m).sqrt();
            (mean - k * sd, sd)
        })
        .unzip()
}

/// One preference record: a prompt and K ≥ 2 responses ranked best first (a pair is K = 2).
pub struct Ranking {
    pub prompt: Vec<u32>,
    pub ranked: Vec<Vec<u32>>,
    /// The labeller (`"user"`, a string or number), for VPL.
    pub user: Option<String>,
}

/// Read the reward model's preference data: `{"prompt" | "messages", "chosen", "rejected"}` pairs
/// (the `oxrl dpo` format) or `{"prompt" | "messages", "ranked": [best, …, worst]}` rankings,
/// mixed freely; errors name the file and line.
pub fn load_rankings(path: &Path, policy: &Policy) -> Result<Vec<Ranking>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let tok = policy.tokenizer.as_ref();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let v: serde_json::Value = serde_json::from_str(line).with_context(|| format!("{}: not JSON", at()))?;
        let texts: Vec<String> = match v.get("ranked") {
            Some(r) => {
                let list = r.as_array().with_context(|| format!("{}: `ranked` must be a list of strings", at()))?;
                let t: Option<Vec<String>> = list.iter().map(|x| x.as_str().map(String::from)).collect();
                let t = t.with_context(|| format!("{}: `ranked` must be a list of strings", at()))?;
                ensure!(t.len() >= 2, "{}: `ranked` needs at least 2 responses (got {})", at(), t.len());
                t
            }
            None => ["chosen", "rejected"]
                .iter()
                .map(|k| v.get(*k).and_then(|x| x.as_str()).map(String::from))
                .collect::<Option<Vec<_>>>()
                .with_context(|| {
                    format!("{}: missing string field `chosen` / `rejected` (or a `ranked` list)", at())
                })?,
        };
        let (prompt, meta) = match v.get("messages") {
            Some(m) => (String::new(), json!({ "messages": m })),
            None => match v.get("prompt").and_then(|x| x.as_str()) {
                Some(p) => (p.to_string(), serde_json::Value::Null),
                None => bail!("{}: missing string field `prompt` (or `messages`)", at()),
            },
        };
        let p = oxrl_tasks::Problem { id: i as u64, prompt, answer: String::new(), solution: String::new(), meta };
        let ranked = texts
            .iter()
            .map(|t| oxrl_lm::prompt::encode_response(tok, t).with_context(at))
            .collect::<Result<Vec<_>>>()?;
        let user = v.get("user").map(|u| u.as_str().map(String::from).unwrap_or_else(|| u.to_string()));
        out.push(Ranking { prompt: crate::policy::prompt_ids(tok, &p).with_context(at)?, ranked, user });
    }
    ensure!(!out.is_empty(), "{}: no preference records", path.display());
    Ok(out)
}

/// The reward of every response of every ranking (in order).
fn ranking_scores(rm: &RewardModel, items: &[&Ranking], grad: bool) -> Result<Vec<Tensor>> {
    let prompts: Vec<Vec<u32>> =
        items.iter().flat_map(|r| std::iter::repeat_n(r.prompt.clone(), r.ranked.len())).collect();
    let resp: Vec<Vec<u32>> = items.iter().flat_map(|r| r.ranked.iter().cloned()).collect();
    let s = rm.scores(&prompts, &resp, grad)?;
    let mut out = Vec::with_capacity(items.len());
    let mut at = 0;
    for r in items {
        out.push(s.narrow(0, at, r.ranked.len())?);
        at += r.ranked.len();
    }
    Ok(out)
}

/// Share of the ordered pairs (i ranked above j) the model orders the same way; for pairs,
/// r(chosen) > r(rejected).
pub fn pairwise_accuracy(rm: &RewardModel, items: &[Ranking]) -> Result<f64> {
    let (mut right, mut total) = (0usize, 0usize);
    for chunk in items.chunks(32) {
        let refs: Vec<&Ranking> = chunk.iter().collect();
        for s in ranking_scores(rm, &refs, false)? {
            let v = s.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            for i in 0..v.len() {
                for j in i + 1..v.len() {
                    right += (v[i] > v[j]) as usize;
                    total += 1;
                }
            }
        }
    }
    Ok(right as f64 / total.max(1) as f64)
}

/// The training loss of a batch: Bradley–Terry (with the margin) on pairs, Plackett–Luce on
/// longer rankings (equal to BT without margin at K = 2), averaged over records; plus the centring
/// term λ·(2·mean r)² per record (λ·(r_w + r_l)² for a pair). Returns (loss, preference part).
fn ranking_loss(scores: &[Tensor], margin: f64, centring: f64) -> Result<(Tensor, Tensor)> {
    let mut pref = Vec::with_capacity(scores.len());
    let mut cent = Vec::with_capacity(scores.len());
    for s in scores {
        let k = s.dim(0)?;
        pref.push(if k == 2 {
            bt_loss(&s.narrow(0, 0, 1)?, &s.narrow(0, 1, 1)?, margin)?
        } else {
            plackett_luce_loss(&s.unsqueeze(0)?)?
        });
        cent.push((s.mean_all()? * 2.0)?.sqr()?);
    }
    let pref = (Tensor::stack(&pref, 0)?.mean_all()?).to_dtype(DType::F32)?;
    let cent = (Tensor::stack(&cent, 0)?.mean_all()?.to_dtype(DType::F32)? * centring)?;
    Ok(((&pref + cent)?, pref))
}

pub struct RmOutcome {
    pub run_dir: std::path::PathBuf,
    /// Held-out accuracy before training (VPL: the unconditional Bradley–Terry baseline's, trained
    /// on the same embeddings).
    pub accuracy_before: f64,
    pub accuracy_after: f64,
}

/// Frozen embeddings e(x, y) of (prompt, response) rows: the final hidden state at the response's
/// last token (its end-of-sequence token), `[N][D]`.
fn embeddings(policy: &Policy, prompts: &[Vec<u32>], responses: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
    let pad = policy.tokenizer.pad_id();
    let mut out = Vec::with_capacity(prompts.len());
    for (p, r) in prompts.chunks(64).zip(responses.chunks(64)) {
        let s = score(&policy.model, p, r, pad, ScoreOptions { hidden: true, ..Default::default() })?;
        let h = s.hidden.expect("asked for").to_dtype(DType::F32)?;
        for (i, resp) in r.iter().enumerate() {
            out.push(h.get(i)?.get(resp.len().saturating_sub(1))?.to_vec1::<f32>()?);
        }
    }
    Ok(out)
}

/// VPL through `oxrl rm` (`rm.kind = "vpl"`): pairs carry a `user`; every (prompt, response) is
/// embedded once by the frozen model; held-out users' target pairs are ranked with z inferred
/// from their own context pairs (the first half of each user's pairs), against the unconditional
/// Bradley–Terry model on the same embeddings.
fn run_vpl(
    cfg: &RunConfig,
    items: Vec<Ranking>,
    policy: &Policy,
    quiet: bool,
    out: Option<&Path>,
) -> Result<RmOutcome> {
    use oxrl_core::vpl::{Pair as VPair, User, Vpl, VplConfig};
    let c = &cfg.rm;
    let mut by_user: std::collections::BTreeMap<String, Vec<&Ranking>> = Default::default();
    for (i, r) in items.iter().enumerate() {
        ensure!(r.ranked.len() == 2, "key `rm.kind`: VPL trains on pairs (record {} is a ranking)", i + 1);
        let Some(u) = &r.user else {
            bail!("key `rm.kind`: VPL needs a `user` on every pair (record {} has none)", i + 1)
        };
        by_user.entry(u.clone()).or_default().push(r);
    }
    ensure!(by_user.len() >= 2, "key `rm.kind`: VPL needs pairs from at least 2 users (got {})", by_user.len());
    let prompts: Vec<Vec<u32>> = items.iter().flat_map(|r| [r.prompt.clone(), r.prompt.clone()]).collect();
    let resp: Vec<Vec<u32>> = items.iter().flat_map(|r| r.ranked.clone()).collect();
    if !quiet {
        eprintln!("vpl: embedding {} responses", resp.len());
    }
    let e = embeddings(policy, &prompts, &resp)?;
    let index: std::collections::HashMap<*const Ranking, usize> =
        items.iter().enumerate().map(|(i, r)| (r as *const Ranking, i)).collect();
    let pair = |r: &Ranking| {
        let i = index[&(r as *const Ranking)];
        VPair { chosen: e[2 * i].clone(), rejected: e[2 * i + 1].clone() }
    };
    let mut users: Vec<User> = by_user
        .values()
        .filter(|rs| rs.len() >= 2)
        .map(|rs| {
            let half = rs.len() / 2;
            User {
                context: rs[..half].iter().map(|r| pair(r)).collect(),
                target: rs[half..].iter().map(|r| pair(r)).collect(),
            }
        })
        .collect();
    let mut rng = oxrl_core::seed::rng(cfg.seed, "rm-split", 0);
    for i in (1..users.len()).rev() {
        users.swap(i, rng.random_range(0..=i));
    }
    let n_test = ((users.len() as f64 * c.test_fraction).round() as usize).clamp(1, users.len() - 1);
    let test = users.split_off(users.len() - n_test);
    let vc = VplConfig {
        z_dim: c.vpl_z_dim,
        hidden: c.vpl_hidden,
        beta: c.vpl_beta,
        lr: c.lr,
        steps: c.steps as usize,
        batch_users: c.batch_size,
        seed: cfg.seed,
    };
    let dim = e.first().map_or(0, |x| x.len());
    let mut base = Vpl::new(dim, vc.clone(), false)?;
    let mut vpl = Vpl::new(dim, vc, true)?;
    let (lb, lv) = (base.fit(&users)?, vpl.fit(&users)?);
    let (acc_b, acc_v) = (base.accuracy(&test)?, vpl.accuracy(&test)?);
    let mut run = RunDir::create(out, &cfg.name)?;
    run.write_config(&cfg.to_toml()?)?;
    run.log(&json!({"phase": "rm", "kind": "vpl", "users": users.len(), "heldout_users": test.len(),
        "bt_loss": lb, "vpl_loss": lv, "heldout_accuracy_bt": acc_b, "heldout_accuracy_vpl": acc_v}))?;
    let map: std::collections::HashMap<String, Tensor> =
        vpl.named_vars().into_iter().map(|(k, v)| (k, v.as_detached_tensor())).collect();
    // the frozen embedding model, then the VPL weights and settings beside it
    crate::sft::save_checkpoint(&run, "final", policy, cfg, 0)?;
    let dir = run.checkpoint_dir("final");
    oxrl_core::fsutil::write_atomic_with(&dir.join(VPL_FILE), |tmp| Ok(candle_core::safetensors::save(&map, tmp)?))?;
    let meta = json!({"embed_dim": dim, "z_dim": c.vpl_z_dim, "hidden": c.vpl_hidden, "beta": c.vpl_beta});
    oxrl_core::fsutil::write_atomic_with(&dir.join(VPL_META), |tmp| Ok(std::fs::write(tmp, meta.to_string())?))?;
    Ok(RmOutcome { run_dir: run.path.clone(), accuracy_before: acc_b, accuracy_after: acc_v })
}

pub fn run_rm(cfg: &RunConfig, out: Option<&Path>, quiet: bool) -> Result<RmOutcome> {
    let c = &cfg.rm;
    let Some(path) = &c.pairs else { bail!("key `rm.pairs`: set the preference-pair JSONL file") };
    if c.kind == "vpl" {
        let policy = Policy::from_config(cfg, &oxrl_lm::default_device())?;
        let items = load_rankings(path, &policy)?;
        return run_vpl(cfg, items, &policy, quiet, out);
    }
    let device = oxrl_lm::default_device();
    let policy = Policy::from_config(cfg, &device)?;
    let head = ValueHead::new(policy.model.cfg.hidden_size, cfg.seed, &device)?;
    let mut pairs = load_rankings(path, &policy)?;
    let rm = RewardModel { policy, head, vpl: None };
    let mut rng = oxrl_core::seed::rng(cfg.seed, "rm-split", 0);
    for i in (1..pairs.len()).rev() {
        pairs.swap(i, rng.random_range(0..=i));
    }
    let n_test = ((pairs.len() as f64 * c.test_fraction).round() as usize).min(pairs.len() - 1);
    let test = pairs.split_off(pairs.len() - n_test);
    let mut run = RunDir::create(out, &cfg.name)?;
    run.write_config(&cfg.to_toml()?)?;
    let acc0 = if test.is_empty() { f64::NAN } else { pairwise_accuracy(&rm, &test)? };
    let mut vars = rm.policy.model.trainable_vars();
    vars.extend(rm.head.named_vars());
    let mut opt = AdamW::new(vars, AdamWConfig::default())?;
    let pb = crate::sft::progress_bar(c.steps, quiet);
    pb.set_prefix("rm");
    let mut rng = oxrl_core::seed::rng(cfg.seed, "rm-batches", 0);
    for step in 0..c.steps {
        let batch: Vec<&Ranking> =
            (0..c.batch_size.min(pairs.len())).map(|_| &pairs[rng.random_range(0..pairs.len())]).collect();
        let (loss, bt) = ranking_loss(&ranking_scores(&rm, &batch, true)?, c.margin, c.centring)?;
        let lv = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if lv.is_finite() {
            // (the model's backward also collects the gradients of checkpointed layers)
            opt.step(&rm.policy.model.backward(&loss)?, c.lr, 1.0)?;
        }
        run.log(
            &json!({"phase": "rm", "step": step + 1, "loss": if lv.is_finite() { json!(lv) } else { json!(null) },
            "bt_loss": bt.to_dtype(DType::F64)?.to_scalar::<f64>()?}),
        )?;
        pb.set_message(format!("loss {lv:.4}"));
        pb.inc(1);
    }
    pb.finish_and_clear();
    let acc1 = if test.is_empty() { f64::NAN } else { pairwise_accuracy(&rm, &test)? };
    run.log(&json!({"phase": "rm", "heldout_pairs": test.len(), "heldout_accuracy_before": acc0, "heldout_accuracy_after": acc1}))?;
    crate::sft::save_checkpoint(&run, "final", &rm.policy, cfg, c.steps)?;
    rm.head.save(&run.checkpoint_dir("final").join(HEAD_FILE))?;
    Ok(RmOutcome { run_dir: run.path.clone(), accuracy_before: acc0, accuracy_after: acc1 })
}

#[cfg(test)]
mod tests {
    use super::combine;

    #[test]
    fn ensemble_reward_is_the_mean_minus_k_std() {
        let (r, sd) = combine(&[vec![1.0, 0.0], vec![3.0, 0.0]], 0.5);
        assert_eq!(sd, vec![1.0, 0.0]);
        assert_eq!(r, vec![1.5, 0.0]);
        // One member, or agreeing members: the plain reward.
        assert_eq!(combine(&[vec![0.3, -2.0]], 1.0).0, vec![0.3, -2.0]);
        assert_eq!(combine(&[vec![0.3], vec![0.3]], 2.0).0, vec![0.3]);
    }
}
