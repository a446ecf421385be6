//! ViSurf — injecting ground truth into RLVR rollouts (2025).
//!
//! One rollout of a group is replaced by the problem's ground-truth (expert) solution, written
//! like a response, and scored by the same verifier; advantages are group-relative over all G.
//! The paper's three reward-control strategies:
//! (a) *aligned reward*: the expert gets the verifier's reward on the same scale, no bonus (always);
//! (b) *only when needed* (`mode = "when_needed"`): inject only into groups without a correct
//!     on-policy sample — elsewhere training is plain RLVR;
//! (c) *capped advantage* (`cap = true`): the expert's advantage never exceeds the largest
//!     on-policy advantage magnitude of its group, so it cannot dominate.
//! The expert's importance ratio is taken as 1 (log π_old := log π_θ detached): it was not
//! sampled from π_old.
//! INFERRED from the abstract (ViSurf, 2025): replacement of the last rollout, the `when_needed`
//! rule and the cap's form are the spec's minimal design.

use anyhow::{bail, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Off,
    Always,
    WhenNeeded,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "off" => Mode::Off,
            "always" => Mode::Always,
            "when_needed" => Mode::WhenNeeded,
            other => bail!("unknown ViSurf mode `{other}` (off, always, when_needed)"),
        })
    }
}

/// Inject the expert into a group whose on-policy samples have these correctness flags?
pub fn should_inject(mode: Mode, correct: &[bool]) -> bool {
    match mode {
        Mode::Off => false,
        Mode::Always => true,
        Mode::WhenNeeded => !correct.iter().any(|&c| c),
    }
}

/// Strategy (c): cap each expert's advantage at the largest |A| of its group's on-policy
/// responses (per-response advantages; `expert[i]` marks injected responses).
pub fn cap_expert_advantage(adv: &mut [f64], groups: &[usize], expert: &[bool]) {
    for i in 0..adv.len() {
        if !expert[i] {
            continue;
        }
        let cap =
            (0..adv.len()).filter(|&j| groups[j] == groups[i] && !expert[j]).map(|j| adv[j].abs()).fold(0.0, f64::max);
        adv[i] = adv[i].min(cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advantage::{outcome, AdvantageEstimator, AdvantageInput, Grpo};

    fn grpo(r: &[f64], g: &[usize]) -> Vec<f64> {
        let tr = outcome(r, &vec![1; r.len()]);
        let a = Grpo.compute(&AdvantageInput { token_rewards: &tr, groups: g, values: None, tasks: None }).unwrap();
        a.advantages.iter().map(|x| x[0]).collect()
    }

    #[test]
    fn oracles() {
        assert!(!should_inject(Mode::Off, &[false; 4]));
        assert!(should_inject(Mode::Always, &[true; 4]));
        assert!(should_inject(Mode::WhenNeeded, &[false; 4]));
        assert!(!should_inject(Mode::WhenNeeded, &[false, true, false]));
        // an all-correct group with the (correct) expert injected: every advantage is 0 — no
        // gradient from the injection
        assert!(grpo(&[1.0, 1.0, 1.0, 1.0], &[0; 4]).iter().all(|a| a.abs() < 1e-9));
        // an all-wrong group: the expert (last) is the only positive; the cap bounds it by the
        // on-policy magnitude
        let g = [0, 0, 0, 0];
        let mut a = grpo(&[0.0, 0.0, 0.0, 1.0], &g);
        assert!(a[3] > 1.0 && a[0] < 0.0);
        let on_policy = a[0].abs();
        cap_expert_advantage(&mut a, &g, &[false, false, false, true]);
        assert!((a[3] - on_policy).abs() < 1e-12);
        // a wrong expert (negative advantage) is not raised
        let mut b = vec![0.5, -0.2, -0.9];
        cap_expert_advantage(&mut b, &[0, 0, 0], &[false, false, true]);
        assert_eq!(b, vec![0.5, -0.2, -0.9]);
        assert!(Mode::parse("sometimes").is_err());
    }
}
