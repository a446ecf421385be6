//! SvS — "Beyond Pass@1: Self-Play with Variational Problem Synthesis Sustains RLVR" (2025):
//! online problem synthesis with identical answers.
//!
//! Per step, on top of the ordinary GRPO groups:
//! 1. problems whose rollout accuracy lies in the selection band `acc_lo ≤ acc(x) ≤ acc_hi`
//!    (under-performing but solvable) seed synthesis with their *correct* responses only;
//! 2. the policy, shown such a response y, writes G candidate problems x' that y answers; the
//!    answer is never regenerated: `ans(x') := ans(x)`;
//! 3. each x' is solved with G rollouts scored against ans(x), giving `c(x')` correct of G;
//! 4. synthesis reward on the problem text's last token:
//!    `r_syn(x') = 1  if  G·syn_lo ≤ c(x') ≤ G·syn_hi,  else 0`
//!    — acc 0 rejects unsolvable or answer-inconsistent problems, a too-high acc rejects trivial or
//!    answer-leaking ones;
//! 5. the update is one GRPO step over three parts, each with its own group: (a) original groups,
//!    (b) synthesis groups (the G candidates of one source response) holding at least one positive
//!    r_syn, (c) solving groups of synthetic problems with `0 < acc(x') < 1`.
//!
//! CONFIRMED from MasterVito/SvS (ray_trainer.py: selection of correct responses of
//! under-performing problems, acceptance band on the synthetic-problem solve count, reward on the
//! last token, three-part batch; run_svs_qwen2.5_32b.sh: G = 8, bands [0.125, 0.5] and
//! [0.125, 0.625]).

/// SvS's bands (spec defaults: selection [0.125, 0.5], acceptance [0.125, 0.625] = 1..5 of 8).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Svs {
    pub select_lo: f64,
    pub select_hi: f64,
    pub accept_lo: f64,
    pub accept_hi: f64,
}

impl Default for Svs {
    fn default() -> Self {
        Self { select_lo: 0.125, select_hi: 0.5, accept_lo: 0.125, accept_hi: 0.625 }
    }
}

/// Tolerance for the band edges (acc = k/G is exact only up to rounding).
const EPS: f64 = 1e-9;

impl Svs {
    /// The problem's accuracy lies in the selection band.
    pub fn selects(&self, acc: f64) -> bool {
        acc >= self.select_lo - EPS && acc <= self.select_hi + EPS
    }

    /// The responses that seed synthesis: the correct ones of a group in the selection band
    /// (none otherwise).
    pub fn sources(&self, correct: &[bool]) -> Vec<usize> {
        if correct.is_empty() {
            return Vec::new();
        }
        let acc = correct.iter().filter(|&&c| c).count() as f64 / correct.len() as f64;
        if !self.selects(acc) {
            return Vec::new();
        }
        (0..correct.len()).filter(|&i| correct[i]).collect()
    }

    /// r_syn of a synthetic problem solved `solved` times out of `g`:
    /// 1 when `g·accept_lo ≤ solved ≤ g·accept_hi`, else 0.
    pub fn synthesis_reward(&self, solved: usize, g: usize) -> f64 {
        let (n, g) = (solved as f64, g as f64);
        (g > 0.0 && n >= g * self.accept_lo - EPS && n <= g * self.accept_hi + EPS) as u8 as f64
    }
}

/// A synthesis group enters the update only when one of its candidates was accepted.
pub fn keep_synthesis_group(r_syn: &[f64]) -> bool {
    r_syn.iter().any(|&r| r > 0.0)
}

/// A synthetic problem's solving group enters the update only with mixed outcomes.
pub fn keep_solve_group(correct: &[bool]) -> bool {
    correct.iter().any(|&c| c) && !correct.iter().all(|&c| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthesis_reward_table() {
        // Spec oracle: 0/8, 1/8, 5/8, 6/8, 8/8 correct → 0, 1, 1, 0, 0.
        let s = Svs::default();
        let r: Vec<f64> = [0, 1, 5, 6, 8].iter().map(|&k| s.synthesis_reward(k, 8)).collect();
        assert_eq!(r, vec![0.0, 1.0, 1.0, 0.0, 0.0]);
        assert!((2..=4).all(|k| s.synthesis_reward(k, 8) == 1.0));
        // With G = 4 the band is 0.5..2.5 solved: 1 and 2 of 4.
        let r: Vec<f64> = (0..=4).map(|k| s.synthesis_reward(k, 4)).collect();
        assert_eq!(r, vec![0.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(s.synthesis_reward(0, 0), 0.0);
    }

    #[test]
    fn only_correct_responses_of_selected_problems_seed_synthesis() {
        let s = Svs::default();
        let group = |k: usize| (0..8).map(|i| i < k).collect::<Vec<bool>>();
        // acc 0, 6/8, 7/8, 1 are outside [0.125, 0.5]: never a source.
        for k in [0, 5, 6, 7, 8] {
            assert!(s.sources(&group(k)).is_empty(), "{k}/8");
        }
        // acc 1/8 … 4/8: exactly the correct responses.
        for k in 1..=4 {
            assert_eq!(s.sources(&group(k)), (0..k).collect::<Vec<_>>(), "{k}/8");
        }
        let mixed = [false, true, false, false, true, false, false, false];
        assert_eq!(s.sources(&mixed), vec![1, 4]);
        assert!(s.sources(&[]).is_empty());
    }

    #[test]
    fn batch_assembly_drops_unaccepted_synthesis_and_degenerate_solving_groups() {
        assert!(!keep_synthesis_group(&[0.0; 8]));
        assert!(keep_synthesis_group(&[0.0, 0.0, 1.0, 0.0]));
        assert!(!keep_solve_group(&[false; 4]) && !keep_solve_group(&[true; 4]));
        assert!(keep_solve_group(&[true, false, false, false]));
    }
}
