//! VSC-RL — "Variational Subgoal-Conditioned RL for Vision-Language Agents" (2025): the task goal
//! g is decomposed into ordered subgoals g_1..g_M; the episode is cut into segments at each
//! subgoal's completion, segment i acting under π(·|s, g_i), and the objective is the SubGoal ELBO
//!
//!   SGC-ELBO = Σ_i E_{τ~π(·|g_i)}[R_i(τ)] − β·Σ_i E_s[KL(π(·|s, g_i) ‖ π_ref(·|s, g))]
//!
//! with R_i = 1 when segment i reaches g_i. With M = 1 it is the KL-regularised goal-conditioned
//! objective E[R] − β·E[Σ_t KL(π(·|s_t) ‖ π_ref(·|s_t))].
//!
//! This module is the exact (enumerative) form on small deterministic MDPs — the oracle a learner
//! is checked against — plus the segmentation rule. INFERRED from the abstract (the KL direction
//! and the per-step form of the KL term are our reading).

use std::collections::HashSet;

/// Segments of an episode of `len` steps (indices 0..len) cut after each subgoal completion
/// step: completions at 3 and 7 of 0..=10 → [0, 3], [4, 7], [8, 10]. A subgoal completed on the
/// last step leaves no empty trailing segment.
pub fn segments(completions: &[usize], last: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for &c in completions {
        if c < start || c > last {
            continue;
        }
        out.push((start, c));
        start = c + 1;
    }
    if start <= last {
        out.push((start, last));
    }
    out
}

/// One episode for the learner's term (a): its prompt group, the segment (index of the subgoal
/// it acts under) of each of its steps, and how many subgoals it completed.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub group: usize,
    pub segment_of_step: Vec<usize>,
    pub completed: usize,
}

/// Term (a) as a policy gradient on segments: segment i of an episode earns R_i = 1 when it
/// completed subgoal i; its steps get R_i minus the mean R_i of the same prompt's episodes that
/// acted under subgoal i (a group baseline per (prompt, subgoal); an episode alone in its group
/// gets 0). With one subgoal this is the episode outcome centred within the prompt group.
/// Returns per-step advantages.
pub fn segment_advantages(episodes: &[Episode]) -> Vec<Vec<f64>> {
    use std::collections::{BTreeSet, HashMap};
    let reward = |e: &Episode, i: usize| (e.completed > i) as u8 as f64;
    let mut sums: HashMap<(usize, usize), (f64, usize)> = HashMap::new();
    for e in episodes {
        for &i in e.segment_of_step.iter().collect::<BTreeSet<_>>() {
            let s = sums.entry((e.group, i)).or_default();
            s.0 += reward(e, i);
            s.1 += 1;
        }
    }
    episodes
        .iter()
        .map(|e| {
            e.segment_of_step
                .iter()
                .map(|&i| {
                    let (sum, n) = sums[&(e.group, i)];
                    if n < 2 {
                        0.0
                    } else {
                        reward(e, i) - sum / n as f64
                    }
                })
                .collect()
        })
        .collect()
}

/// KL(p ‖ q) of two categorical distributions.
pub fn kl(p: &[f64], q: &[f64]) -> f64 {
    p.iter().zip(q).filter(|(a, _)| **a > 0.0).map(|(a, b)| a * (a / b).ln()).sum()
}

/// A deterministic finite MDP: `next[s][a]`, a start state and a horizon.
#[derive(Debug, Clone, PartialEq)]
pub struct Mdp {
    pub next: Vec<Vec<usize>>,
    pub start: usize,
    pub horizon: usize,
}

/// A policy table `π[s][a]`.
pub type Table = Vec<Vec<f64>>;

/// SGC-ELBO by enumerating every action sequence: `policies[i]` acts in segment i until it enters
/// a state of `subgoals[i]` (R_i = 1; the episode ends after the last subgoal), `reference` is
/// π_ref(·|s, g). Each step adds −β·KL(π_i(·|s) ‖ π_ref(·|s)) at the state it acts in.
pub fn sgc_elbo(mdp: &Mdp, policies: &[Table], reference: &Table, subgoals: &[HashSet<usize>], beta: f64) -> f64 {
    struct Ctx<'a> {
        mdp: &'a Mdp,
        pols: &'a [Table],
        rf: &'a Table,
        goals: &'a [HashSet<usize>],
        beta: f64,
    }
    fn go(c: &Ctx, s: usize, seg: usize, t: usize) -> f64 {
        if seg == c.goals.len() || t == c.mdp.horizon {
            return 0.0;
        }
        let pi = &c.pols[seg][s];
        let mut v = -c.beta * kl(pi, &c.rf[s]);
        for (a, &p) in pi.iter().enumerate() {
            if p == 0.0 {
                continue;
            }
            let s2 = c.mdp.next[s][a];
            let (r, seg2) = if c.goals[seg].contains(&s2) { (1.0, seg + 1) } else { (0.0, seg) };
            v += p * (r + go(c, s2, seg2, t + 1));
        }
        v
    }
    let c = Ctx { mdp, pols: policies, rf: reference, goals: subgoals, beta };
    go(&c, mdp.start, 0, 0)
}

/// The KL-regularised goal-conditioned objective E[R] − β·E[Σ_t KL(π(·|s_t) ‖ π_ref(·|s_t))]
/// (R = 1 on entering a goal state, which ends the episode), by backward induction over
/// (time, state) — a different computation from [`sgc_elbo`], which must agree with it at M = 1.
pub fn kl_regularised_objective(mdp: &Mdp, policy: &Table, reference: &Table, goal: &HashSet<usize>, beta: f64) -> f64 {
    let n = mdp.next.len();
    let mut v = vec![0.0; n]; // value with 0 steps left
    for _ in 0..mdp.horizon {
        let mut nv = vec![0.0; n];
        for s in 0..n {
            let pi = &policy[s];
            nv[s] = -beta * kl(pi, &reference[s])
                + pi.iter()
                    .enumerate()
                    .map(|(a, &p)| {
                        let s2 = mdp.next[s][a];
                        p * if goal.contains(&s2) { 1.0 } else { v[s2] }
                    })
                    .sum::<f64>();
        }
        v = nv;
    }
    v[mdp.start]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_advantages_by_hand() {
        let ep = |group, segment_of_step: Vec<usize>, completed| Episode { group, segment_of_step, completed };
        // Prompt 0, two subgoals: A finished both (steps 0-1 under g_1, 2-3 under g_2); B
        // finished g_1 only; C none. Segment 0: R = 1, 1, 0 (mean 2/3); segment 1: A 1, B 0
        // (mean 1/2). Prompt 1 has one episode: 0 everywhere.
        let eps =
            vec![ep(0, vec![0, 0, 1, 1], 2), ep(0, vec![0, 1, 1], 1), ep(0, vec![0, 0, 0], 0), ep(1, vec![0, 1], 2)];
        let a = segment_advantages(&eps);
        let t = 1.0 / 3.0;
        let want = [vec![t, t, 0.5, 0.5], vec![t, -0.5, -0.5], vec![-2.0 * t; 3], vec![0.0, 0.0]];
        for (g, w) in a.iter().zip(&want) {
            assert_eq!(g.len(), w.len());
            assert!(g.iter().zip(w).all(|(x, y)| (x - y).abs() < 1e-12), "{g:?} vs {w:?}");
        }
        // M = 1: every step carries the outcome centred within the prompt group (mean-only GRPO).
        let one = vec![ep(0, vec![0; 3], 1), ep(0, vec![0; 5], 0), ep(0, vec![0; 2], 0), ep(0, vec![0; 4], 1)];
        let a = segment_advantages(&one);
        for (row, e) in a.iter().zip(&one) {
            assert!(row.iter().all(|&x| x == e.completed as f64 - 0.5));
        }
        // Each (prompt, subgoal) group's advantages (one per episode) sum to zero.
        for batch in [&one, &eps] {
            let mut sum = std::collections::HashMap::<(usize, usize), f64>::new();
            for (row, e) in segment_advantages(batch).iter().zip(batch.iter()) {
                let mut seen = std::collections::HashSet::new();
                for (&x, &i) in row.iter().zip(&e.segment_of_step) {
                    if seen.insert(i) {
                        *sum.entry((e.group, i)).or_default() += x;
                    }
                }
            }
            assert!(sum.values().all(|s| s.abs() < 1e-12), "{sum:?}");
        }
    }

    /// A 5-state corridor 0..4 with actions left / stay / right; key at 2, box at 4.
    fn corridor(horizon: usize) -> Mdp {
        let next = (0..5).map(|s: usize| vec![s.saturating_sub(1), s, (s + 1).min(4)]).collect();
        Mdp { next, start: 0, horizon }
    }

    fn table(rows: &[[f64; 3]]) -> Table {
        rows.iter().map(|r| r.to_vec()).collect()
    }

    #[test]
    fn segmentation() {
        assert_eq!(segments(&[3, 7], 10), vec![(0, 3), (4, 7), (8, 10)]);
        assert_eq!(segments(&[], 5), vec![(0, 5)]);
        assert_eq!(segments(&[5], 5), vec![(0, 5)], "completed on the last step");
        assert_eq!(segments(&[0, 1], 3), vec![(0, 0), (1, 1), (2, 3)]);
    }

    #[test]
    fn one_subgoal_reduces_to_the_kl_regularised_objective() {
        let m = corridor(6);
        let pi = table(&[[0.1, 0.2, 0.7], [0.3, 0.1, 0.6], [0.2, 0.2, 0.6], [0.5, 0.1, 0.4], [0.3, 0.4, 0.3]]);
        let rf = vec![vec![1.0 / 3.0; 3]; 5];
        let goal: HashSet<usize> = [4].into();
        for beta in [0.0, 0.05, 0.5] {
            let a = sgc_elbo(&m, std::slice::from_ref(&pi), &rf, std::slice::from_ref(&goal), beta);
            let b = kl_regularised_objective(&m, &pi, &rf, &goal, beta);
            assert!((a - b).abs() < 1e-12, "β {beta}: {a} vs {b}");
        }
        // β = 0: the probability of reaching the box within the horizon, in (0, 1).
        let p = sgc_elbo(&m, &[pi], &rf, &[goal], 0.0);
        assert!(p > 0.0 && p < 1.0);
    }

    #[test]
    fn kl_term_vanishes_when_the_policy_is_the_reference() {
        let m = corridor(5);
        let rf = table(&[[0.2, 0.3, 0.5]; 5]);
        let goals: Vec<HashSet<usize>> = vec![[2].into(), [4].into()];
        let with = sgc_elbo(&m, &[rf.clone(), rf.clone()], &rf, &goals, 1.0);
        let without = sgc_elbo(&m, &[rf.clone(), rf.clone()], &rf, &goals, 0.0);
        assert!((with - without).abs() < 1e-12);
        assert_eq!(kl(&[0.5, 0.5], &[0.5, 0.5]), 0.0);
        assert!((kl(&[1.0, 0.0], &[0.5, 0.5]) - 2f64.ln()).abs() < 1e-12);
        // A policy heading for each subgoal earns both subgoal returns: key (2) then box (4).
        let right = table(&[[0.0, 0.0, 1.0]; 5]);
        assert!((sgc_elbo(&m, &[right.clone(), right], &rf, &goals, 0.0) - 2.0).abs() < 1e-12);
    }
}
