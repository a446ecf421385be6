//! Advantage estimators: from per-token rewards (outcome on the last token plus any per-token
//! shaping such as a KL penalty) to per-token advantages.
//!
//! Scalar (group) estimators use each response's score s_i = Σ_t r_{i,t} (verl's convention) and
//! broadcast the advantage to every token; token-level estimators (REINFORCE++, GAE) use the token
//! rewards directly.

pub mod a_grae;
pub mod aem;
pub mod arena;
pub mod dcpo;
pub mod dr_grpo;
pub mod gae;
pub mod grpo;
pub mod gui_libra;
pub mod latent_grpo;
pub mod lite_ppo;
pub mod psr_nsr;
pub mod reinforce_pp;
pub mod rloo;
pub mod spae;
pub mod tmn;
pub mod verl;

use anyhow::{bail, Result};
use std::collections::BTreeMap;

pub use a_grae::AGrae;
pub use dr_grpo::DrGrpo;
pub use gae::Gae;
pub use grpo::Grpo;
pub use gui_libra::GuiLibra;
pub use lite_ppo::LitePpo;
pub use psr_nsr::{SignedMode, SignedReinforce};
pub use reinforce_pp::{ReinforcePlusPlus, ReinforcePlusPlusBaseline};
pub use rloo::Rloo;
pub use tmn::TmnReweight;

/// What an estimator sees of a rollout batch.
#[derive(Debug, Clone, Copy)]
pub struct AdvantageInput<'a> {
    /// Per response, per valid token: rewards (outcome reward on the last token, plus shaping).
    pub token_rewards: &'a [Vec<f64>],
    /// Group (prompt) id of each response.
    pub groups: &'a [usize],
    /// Per response, per valid token: value estimates V(s_t) (only for critic-based estimators).
    pub values: Option<&'a [Vec<f64>]>,
    /// Task id of each response in multi-task batches (TMN-Reweight); None = one task.
    pub tasks: Option<&'a [usize]>,
}

impl AdvantageInput<'_> {
    /// Scalar score per response: the sum of its token rewards.
    pub fn scores(&self) -> Vec<f64> {
        self.token_rewards.iter().map(|r| r.iter().sum()).collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Advantages {
    /// Per response, per valid token.
    pub advantages: Vec<Vec<f64>>,
    /// Value targets per token (critic-based estimators only).
    pub returns: Option<Vec<Vec<f64>>>,
    /// Per response: 0 removes it from the loss (its tokens leave the aggregation too), 1 keeps
    /// it. None keeps every response.
    pub sample_weight: Option<Vec<f64>>,
}

pub trait AdvantageEstimator: Send + Sync {
    fn name(&self) -> &'static str;
    /// Needs several responses per prompt.
    fn needs_groups(&self) -> bool {
        true
    }
    /// Needs a value head.
    fn needs_values(&self) -> bool {
        false
    }
    /// Reads rewards as binary correct / incorrect (0 or 1).
    fn needs_binary_rewards(&self) -> bool {
        false
    }
    fn compute(&self, input: &AdvantageInput) -> Result<Advantages>;
}

pub const EPS: f64 = 1e-6;

/// Indices of each group, in order of first appearance.
pub fn group_indices(groups: &[usize]) -> Vec<Vec<usize>> {
    let mut map: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &g) in groups.iter().enumerate() {
        map.entry(g).or_default().push(i);
    }
    map.into_values().collect()
}

pub fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len().max(1) as f64
}

/// Unbiased (n−1) standard deviation; 0 for fewer than two values.
pub fn std_unbiased(x: &[f64]) -> f64 {
    if x.len() < 2 {
        return 0.0;
    }
    let m = mean(x);
    (x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() - 1) as f64).sqrt()
}

/// Group-mean centring: s_i − μ_g (a group of one is left as is, μ = 0).
pub fn group_centered(scores: &[f64], groups: &[usize]) -> Vec<f64> {
    let mut c = vec![0.0; scores.len()];
    for idx in group_indices(groups) {
        let mu = if idx.len() < 2 { 0.0 } else { idx.iter().map(|&i| scores[i]).sum::<f64>() / idx.len() as f64 };
        for &i in &idx {
            c[i] = scores[i] - mu;
        }
    }
    c
}

/// GRPO advantages, then `f(group members, group mean score, advantages)` on every group — the
/// shape of the estimators that rescale GRPO per group (A-GRAE, GUI-Libra).
pub fn grpo_then(input: &AdvantageInput, mut f: impl FnMut(&[usize], f64, &mut [Vec<f64>])) -> Result<Advantages> {
    let mut out = Grpo.compute(input)?;
    let s = input.scores();
    for idx in group_indices(input.groups) {
        let mu = mean(&idx.iter().map(|&i| s[i]).collect::<Vec<_>>());
        f(&idx, mu, &mut out.advantages);
    }
    Ok(out)
}

/// Broadcast one scalar per response to all of its tokens.
pub fn broadcast(per_response: &[f64], token_rewards: &[Vec<f64>]) -> Vec<Vec<f64>> {
    per_response.iter().zip(token_rewards).map(|(&a, r)| vec![a; r.len()]).collect()
}

/// Masked whitening over every valid token of the batch: (x − mean) / sqrt(var + 1e-8), unbiased
/// variance (verl `masked_whiten`).
pub fn whiten(x: &mut [Vec<f64>]) {
    let all: Vec<f64> = x.iter().flatten().copied().collect();
    if all.is_empty() {
        return;
    }
    let m = mean(&all);
    let var =
        if all.len() > 1 { all.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (all.len() - 1) as f64 } else { 0.0 };
    let inv = 1.0 / (var + 1e-8).sqrt();
    for row in x.iter_mut() {
        for v in row.iter_mut() {
            *v = (*v - m) * inv;
        }
    }
}

pub(crate) fn check(input: &AdvantageInput) -> Result<()> {
    if input.token_rewards.len() != input.groups.len() {
        bail!("advantage: {} responses but {} group ids", input.token_rewards.len(), input.groups.len());
    }
    if input.token_rewards.iter().any(|r| r.is_empty()) {
        bail!("advantage: a response has no valid tokens");
    }
    Ok(())
}

/// Estimator by config name.
/// Knobs of the estimators, from the `[train]` config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EstimatorParams {
    /// Discount (REINFORCE++, GAE).
    pub gamma: f64,
    /// GAE λ.
    pub lambda: f64,
    /// Lite PPO: centred (group-mean) rather than raw batch std.
    pub lite_ppo_centered_std: bool,
    /// W-REINFORCE weight of correct samples.
    pub w_reinforce_lambda: f64,
    /// A-GRAE positive-suppression threshold α.
    pub agrae_alpha: f64,
    /// GUI-Libra negative scale clip(p_g/τ, s_min, 1): τ and s_min.
    pub libra_tau: f64,
    pub libra_min_scale: f64,
    /// TMN-Reweight: floor of the difficulty-adaptive group weight (1 = no reweighting).
    pub tmn_min_weight: f64,
    /// DCPO: minimum group reward spread δ, and the spread that selects half the group per side.
    pub dcpo_min_spread: f64,
    pub dcpo_full_spread: f64,
}

impl Default for EstimatorParams {
    fn default() -> Self {
        Self {
            gamma: 1.0,
            lambda: 0.95,
            lite_ppo_centered_std: false,
            w_reinforce_lambda: 0.1,
            agrae_alpha: 1.0,
            libra_tau: 1.0,
            libra_min_scale: 0.0,
            tmn_min_weight: 0.25,
            dcpo_min_spread: 0.1,
            dcpo_full_spread: 1.0,
        }
    }
}

/// Estimator names accepted by [`by_name`].
pub const NAMES: &[&str] = &[
    "grpo",
    "dr_grpo",
    "rloo",
    "reinforce_pp",
    "reinforce_pp_baseline",
    "gae",
    "lite_ppo",
    "psr",
    "nsr",
    "w_reinforce",
    "a_grae",
    "gui_libra",
    "tmn",
    "arena",
    "dcpo",
];

pub fn by_name(name: &str, p: &EstimatorParams) -> Result<Box<dyn AdvantageEstimator>> {
    Ok(match name {
        "grpo" => Box::new(Grpo),
        "dr_grpo" => Box::new(DrGrpo),
        "rloo" => Box::new(Rloo),
        "reinforce_pp" => Box::new(ReinforcePlusPlus { gamma: p.gamma }),
        "reinforce_pp_baseline" => Box::new(ReinforcePlusPlusBaseline),
        "gae" => Box::new(Gae { gamma: p.gamma, lambda: p.lambda }),
        "lite_ppo" => Box::new(LitePpo { centered_std: p.lite_ppo_centered_std }),
        "psr" => Box::new(SignedReinforce { mode: SignedMode::Psr }),
        "nsr" => Box::new(SignedReinforce { mode: SignedMode::Nsr }),
        "w_reinforce" => Box::new(SignedReinforce { mode: SignedMode::Weighted(p.w_reinforce_lambda) }),
        "a_grae" => Box::new(AGrae { alpha: p.agrae_alpha }),
        "gui_libra" => Box::new(GuiLibra { tau: p.libra_tau, min_scale: p.libra_min_scale }),
        // ArenaRL: the rollout step replaces rewards by tournament rank scores; GRPO normalises.
        "arena" => Box::new(Grpo),
        "dcpo" => Box::new(dcpo::Dcpo { min_spread: p.dcpo_min_spread, full_spread: p.dcpo_full_spread }),
        "tmn" => Box::new(TmnReweight { weighting: p.tmn_min_weight < 1.0, min_weight: p.tmn_min_weight }),
        other => bail!("unknown advantage estimator `{other}` ({})", NAMES.join(", ")),
    })
}

#[cfg(test)]
pub(crate) fn outcome(rewards: &[f64], lens: &[usize]) -> Vec<Vec<f64>> {
    rewards
        .iter()
        .zip(lens)
        .map(|(&r, &l)| {
            let mut v = vec![0.0; l];
            v[l - 1] = r;
            v
        })
        .collect()
}
