//! ArenaRL — tournament-based relative ranking (2026, arXiv 2601.06487).
//!
//! A group's G trajectories are ranked by a pairwise judge in O(G) comparisons instead of scored
//! pointwise: (1) seeding — each trajectory is compared once with an anchor trajectory (e.g. the
//! greedy decode) for a coarse seed score; (2) a seeded single-elimination bracket (1 vs N,
//! 2 vs N−1, … padded to a power of two with byes for the top seeds), the loser of each match
//! ranked by the round it fell in; (3) the final ranking orders by elimination round (later is
//! better), ties by seed score; (4) rank k (1 = best) maps to s_k = (N − k)/(N − 1) ∈ [0, 1],
//! then GRPO's normalisation within the group.
//! INFERRED beyond the abstract: the seeding, bracket and rank → advantage mapping are the
//! spec's minimal design.

/// Ranking of one group: trajectory indices best first, and the judge calls it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Tournament {
    pub ranking: Vec<usize>,
    pub seed_scores: Vec<f64>,
    pub judge_calls: usize,
}

/// Standard seeded bracket order for `p` slots (a power of two): seeds (1-based) so that seed 1
/// and seed 2 can only meet in the final.
fn bracket_order(p: usize) -> Vec<usize> {
    let mut order = vec![1usize];
    while order.len() < p {
        let m = order.len() * 2;
        order = order.iter().flat_map(|&x| [x, m + 1 - x]).collect();
    }
    order
}

/// Run the tournament over `n` trajectories. `vs_anchor(i)` is P(i beats the anchor);
/// `judge(a, b)` is P(a beats b) (≥ 0.5 means a wins).
pub fn tournament(
    n: usize,
    mut vs_anchor: impl FnMut(usize) -> f64,
    mut judge: impl FnMut(usize, usize) -> f64,
) -> Tournament {
    let mut calls = 0;
    let seed_scores: Vec<f64> = (0..n)
        .map(|i| {
            calls += 1;
            vs_anchor(i)
        })
        .collect();
    if n <= 1 {
        return Tournament { ranking: (0..n).collect(), seed_scores, judge_calls: calls };
    }
    // Seeds: by seed score, ties by index (deterministic).
    let mut seeded: Vec<usize> = (0..n).collect();
    seeded.sort_by(|&a, &b| seed_scores[b].total_cmp(&seed_scores[a]).then(a.cmp(&b)));
    let p = n.next_power_of_two();
    // Slots hold trajectory indices; seeds beyond n are byes (None).
    let mut slots: Vec<Option<usize>> = bracket_order(p).into_iter().map(|s| seeded.get(s - 1).copied()).collect();
    let mut eliminated_round = vec![usize::MAX; n]; // the champion keeps MAX
    let mut round = 0;
    while slots.len() > 1 {
        let mut next = Vec::with_capacity(slots.len() / 2);
        for pair in slots.chunks(2) {
            next.push(match (pair[0], pair[1]) {
                (Some(a), Some(b)) => {
                    calls += 1;
                    let (w, l) = if judge(a, b) >= 0.5 { (a, b) } else { (b, a) };
                    eliminated_round[l] = round;
                    Some(w)
                }
                (Some(a), None) | (None, Some(a)) => Some(a),
                (None, None) => None,
            });
        }
        slots = next;
        round += 1;
    }
    let mut ranking: Vec<usize> = (0..n).collect();
    ranking.sort_by(|&a, &b| {
        eliminated_round[b].cmp(&eliminated_round[a]).then(seed_scores[b].total_cmp(&seed_scores[a])).then(a.cmp(&b))
    });
    Tournament { ranking, seed_scores, judge_calls: calls }
}

/// s_k = (N − k)/(N − 1) for each trajectory from its rank (best = 1), in trajectory order.
pub fn rank_scores(ranking: &[usize]) -> Vec<f64> {
    let n = ranking.len();
    let mut s = vec![0.0; n];
    for (k, &i) in ranking.iter().enumerate() {
        s[i] = if n > 1 { (n - 1 - k) as f64 / (n - 1) as f64 } else { 0.0 };
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advantage::{AdvantageEstimator, AdvantageInput, Grpo};

    fn spearman(a: &[usize], b: &[usize]) -> f64 {
        let n = a.len() as f64;
        let pos = |v: &[usize], x: usize| v.iter().position(|&y| y == x).unwrap() as f64;
        let d2: f64 = a.iter().map(|&x| (pos(a, x) - pos(b, x)).powi(2)).sum();
        1.0 - 6.0 * d2 / (n * (n * n - 1.0))
    }

    #[test]
    fn bracket_is_seeded() {
        assert_eq!(bracket_order(8), vec![1, 8, 4, 5, 2, 7, 3, 6]);
    }

    #[test]
    fn oracles() {
        for n in [2usize, 3, 5, 8, 12, 16] {
            // Hidden true scores; noiseless transitive judge; anchor = a middling trajectory.
            let truth: Vec<f64> = (0..n).map(|i| ((i * 7919) % 97) as f64 + i as f64 * 1e-3).collect();
            let anchor = truth.iter().sum::<f64>() / n as f64;
            let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
            let t = tournament(n, |i| sig(truth[i] - anchor), |a, b| (truth[a] > truth[b]) as u8 as f64);
            // Linear: n seeding calls + n − 1 matches ≤ 2N, vs N(N−1)/2 for a round robin.
            assert_eq!(t.judge_calls, 2 * n - 1);
            let mut best: Vec<usize> = (0..n).collect();
            best.sort_by(|&a, &b| truth[b].total_cmp(&truth[a]));
            assert_eq!(t.ranking[0], best[0], "n={n}: the winner is the true best");
            if n >= 5 {
                assert!(spearman(&t.ranking, &best) > 0.8, "n={n}: {:?} vs {best:?}", t.ranking);
            }
            // Monotone transform of the hidden scores: same ranking.
            // (kept inside the sigmoid's unsaturated range so seeds stay distinct in f64)
            let t2 = tournament(
                n,
                |i| sig(0.5 * (truth[i] - anchor) + 0.1),
                |a, b| (truth[a].exp() > truth[b].exp()) as u8 as f64,
            );
            assert_eq!(t.ranking, t2.ranking);
            // Rank scores in [0, 1]; GRPO advantages sum to zero in the group.
            let s = rank_scores(&t.ranking);
            assert_eq!(s[t.ranking[0]], 1.0);
            assert_eq!(s[*t.ranking.last().unwrap()], 0.0);
            let tr: Vec<Vec<f64>> = s.iter().map(|&x| vec![0.0, x]).collect();
            let g = vec![0; n];
            let a =
                Grpo.compute(&AdvantageInput { token_rewards: &tr, groups: &g, values: None, tasks: None }).unwrap();
            let sum: f64 = a.advantages.iter().map(|r| r[0]).sum();
            assert!(sum.abs() < 1e-9);
        }
        // A single trajectory: no matches.
        assert_eq!(tournament(1, |_| 0.5, |_, _| 1.0).judge_calls, 1);
    }
}
