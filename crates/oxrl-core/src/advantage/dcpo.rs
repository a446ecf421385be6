//! DCPO — dynamic contrastive policy optimisation (ChatShopBuddy, 2026): from each group, train
//! only on a contrastive subset — the highest-reward responses (ties: shorter first) as positives
//! and the lowest-reward ones (ties: longer first) as negatives — with GRPO's group-relative
//! advantages. The subset adapts to the group's reward spread: no pair when the spread is below δ,
//! else k = max(1, ⌊(G/2)·min(1, spread/s_full)⌋) from each end, s_full being the spread at
//! which half the group is used on each side. INFERRED minimal form from the abstract.

use super::{group_indices, AdvantageEstimator, AdvantageInput, Advantages, Grpo};
use anyhow::Result;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dcpo {
    /// Minimum reward spread for a group to contribute (δ).
    pub min_spread: f64,
    /// Spread at which the selection reaches half the group on each side.
    pub full_spread: f64,
}

impl Default for Dcpo {
    fn default() -> Self {
        Self { min_spread: 0.1, full_spread: 1.0 }
    }
}

impl Dcpo {
    /// Per-response selection weights (1 = in the contrastive subset) from scores and lengths.
    pub fn select(&self, scores: &[f64], lens: &[usize], groups: &[usize]) -> Vec<f64> {
        let mut w = vec![0.0; scores.len()];
        for idx in group_indices(groups) {
            let (lo, hi) =
                idx.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &i| (a.min(scores[i]), b.max(scores[i])));
            let spread = hi - lo;
            if idx.len() < 2 || spread < self.min_spread {
                continue;
            }
            let k = ((idx.len() / 2) as f64 * (spread / self.full_spread).min(1.0)).floor().max(1.0) as usize;
            let mut best = idx.clone();
            best.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(lens[a].cmp(&lens[b])).then(a.cmp(&b)));
            let mut worst = idx.clone();
            worst.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(lens[b].cmp(&lens[a])).then(a.cmp(&b)));
            // A positive must beat the group's worst reward and a negative lose to its best, so
            // no response is both.
            let pos = best.iter().filter(|&&i| scores[i] > lo).take(k);
            let neg = worst.iter().filter(|&&i| scores[i] < hi).take(k);
            for &i in pos.chain(neg) {
                w[i] = 1.0;
            }
        }
        w
    }
}

impl AdvantageEstimator for Dcpo {
    fn name(&self) -> &'static str {
        "dcpo"
    }
    fn compute(&self, input: &AdvantageInput) -> Result<Advantages> {
        let mut a = Grpo.compute(input)?;
        let lens: Vec<usize> = input.token_rewards.iter().map(|r| r.len()).collect();
        a.sample_weight = Some(self.select(&input.scores(), &lens, input.groups));
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracles() {
        let d = Dcpo::default();
        // Equal rewards at the top: the shorter one is the positive; at the bottom the longer one
        // is the negative (spread 0.5 ⇒ k = ⌊2·0.5⌋ = 1 per side).
        let scores = [0.5, 0.5, 0.0, 0.0];
        let lens = [9, 3, 4, 7];
        let w = d.select(&scores, &lens, &[0, 0, 0, 0]);
        assert_eq!(w, vec![0.0, 1.0, 0.0, 1.0]);
        // Spread below δ ⇒ nothing from that group.
        let w = d.select(&[0.3, 0.35, 0.32, 0.3], &[1, 1, 1, 1], &[0; 4]);
        assert!(w.iter().all(|&x| x == 0.0));
        // A full spread uses half the group on each side.
        let w = d.select(&[1.0, 0.0, 1.0, 0.0, 1.0, 0.0], &[1; 6], &[0; 6]);
        assert_eq!(w.iter().sum::<f64>(), 6.0);
        // The advantages are GRPO's; only the weights differ.
        let tr: Vec<Vec<f64>> = [1.0, 0.0, 0.0, 0.0].iter().map(|&r| vec![0.0, r]).collect();
        let inp = AdvantageInput { token_rewards: &tr, groups: &[0; 4], values: None, tasks: None };
        let (a, g) = (d.compute(&inp).unwrap(), Grpo.compute(&inp).unwrap());
        assert_eq!(a.advantages, g.advantages);
        // Spread 1, G = 4 ⇒ k = 2 per side, but only one response beats the minimum: 1 + 2.
        assert_eq!(a.sample_weight.unwrap(), vec![1.0, 1.0, 1.0, 0.0]);
    }
}
