//! RLIR — "Reinforcement Learning with Inverse Rewards for World Model Post-training" (2025): a
//! world model's generated video is rewarded by how well a frozen inverse-dynamics model (IDM)
//! recovers the conditioning actions from consecutive generated frames:
//!
//!   r = (1/(T−1))·Σ_t s(a_t, â_t),  â_t = IDM(v_t, v_{t+1}),
//!
//! s = 1[a_t = â_t] for discrete actions and `1 − min(1, |a_t − â_t|/scale)` averaged over the
//! components of continuous ones; rewards are compared within the group of G videos sampled for
//! one (context, actions) prompt (GRPO).
//!
//! The spec's stand-in (POINT2D renders): frames are 2-D point positions rendered on a grid, the
//! "world model" a noisy next-frame predictor, the IDM the finite difference of the point's
//! position mapped to the nearest discrete move. INFERRED from the abstract.

/// The agreement of one action with its inverse-dynamics estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action<'a> {
    Discrete(usize),
    Continuous(&'a [f64]),
}

/// s(a, â): exact match for discrete actions; `1 − min(1, |a − â|/scale)` averaged over components.
pub fn agreement(a: Action, est: Action, scale: f64) -> f64 {
    match (a, est) {
        (Action::Discrete(x), Action::Discrete(y)) => (x == y) as u8 as f64,
        (Action::Continuous(x), Action::Continuous(y)) if x.len() == y.len() && !x.is_empty() => {
            x.iter().zip(y).map(|(p, q)| 1.0 - ((p - q).abs() / scale).min(1.0)).sum::<f64>() / x.len() as f64
        }
        _ => 0.0,
    }
}

/// The inverse reward of a video: the mean agreement between the conditioning actions and the
/// IDM's estimates from each pair of consecutive frames; None when the video has fewer than two
/// frames (T = 1: undefined, skipped).
pub fn inverse_reward<F>(
    frames: &[F],
    actions: &[Action],
    idm: impl Fn(&F, &F) -> Vec<f64>,
    to_action: impl Fn(&[f64]) -> usize,
    scale: f64,
) -> Option<f64> {
    if frames.len() < 2 {
        return None;
    }
    let n = (frames.len() - 1).min(actions.len());
    let s: f64 = (0..n)
        .map(|t| {
            let est = idm(&frames[t], &frames[t + 1]);
            match actions[t] {
                Action::Discrete(_) => agreement(actions[t], Action::Discrete(to_action(&est)), scale),
                Action::Continuous(_) => agreement(actions[t], Action::Continuous(&est), scale),
            }
        })
        .sum();
    Some(s / n.max(1) as f64)
}

/// The stand-in's discrete moves: stay, +x, −x, +y, −y (unit steps).
pub const MOVES: [(f64, f64); 5] = [(0.0, 0.0), (1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0)];

/// The stand-in IDM: the finite difference of the positions.
pub fn finite_difference(a: &(f64, f64), b: &(f64, f64)) -> Vec<f64> {
    vec![b.0 - a.0, b.1 - a.1]
}

/// The nearest discrete move to a displacement.
pub fn nearest_move(d: &[f64]) -> usize {
    (0..MOVES.len())
        .min_by(|&i, &j| {
            let dist = |k: usize| (MOVES[k].0 - d[0]).powi(2) + (MOVES[k].1 - d[1]).powi(2);
            dist(i).total_cmp(&dist(j))
        })
        .expect("moves are not empty")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// The deterministic simulator's frames for a start and action sequence.
    fn simulate(actions: &[usize]) -> Vec<(f64, f64)> {
        let mut p = (0.0, 0.0);
        let mut out = vec![p];
        for &a in actions {
            p = (p.0 + MOVES[a].0, p.1 + MOVES[a].1);
            out.push(p);
        }
        out
    }

    fn reward(frames: &[(f64, f64)], actions: &[usize]) -> f64 {
        let acts: Vec<Action> = actions.iter().map(|&a| Action::Discrete(a)).collect();
        inverse_reward(frames, &acts, finite_difference, nearest_move, 1.0).unwrap()
    }

    #[test]
    fn perfect_frames_score_one_and_shuffled_actions_less() {
        let actions = [1, 1, 3, 3, 2, 4, 0, 1];
        let truth = simulate(&actions);
        assert_eq!(reward(&truth, &actions), 1.0);
        // The same video judged against a shuffled action sequence.
        let shuffled = [3, 1, 1, 2, 3, 0, 4, 1];
        assert!(reward(&truth, &shuffled) < 1.0);
        // A noisy world model loses reward as its noise grows.
        let mut rng = crate::seed::rng(0, "rlir", 0);
        let mut noisy = |sigma: f64| -> f64 {
            let mut total = 0.0;
            for _ in 0..200 {
                let f: Vec<(f64, f64)> = truth
                    .iter()
                    .map(|p| (p.0 + sigma * (rng.random::<f64>() - 0.5), p.1 + sigma * (rng.random::<f64>() - 0.5)))
                    .collect();
                total += reward(&f, &actions);
            }
            total / 200.0
        };
        let (r0, r1, r2) = (noisy(0.0), noisy(1.0), noisy(3.0));
        assert!(r0 == 1.0 && r0 > r1 && r1 > r2, "{r0} {r1} {r2}");
        assert!(inverse_reward(&truth[..1], &[Action::Discrete(1)], finite_difference, nearest_move, 1.0).is_none());
    }

    #[test]
    fn continuous_agreement_and_identical_videos_give_zero_advantages() {
        assert_eq!(agreement(Action::Continuous(&[0.5, -0.5]), Action::Continuous(&[0.5, -0.5]), 1.0), 1.0);
        assert!(
            (agreement(Action::Continuous(&[0.5, 0.0]), Action::Continuous(&[0.0, 0.0]), 1.0) - 0.75).abs() < 1e-12
        );
        assert_eq!(agreement(Action::Continuous(&[2.0]), Action::Continuous(&[-2.0]), 1.0), 0.0);
        // A group of identical videos: identical rewards, so every GRPO advantage is 0.
        let actions = [1, 3, 3];
        let r: Vec<f64> = (0..4).map(|_| reward(&simulate(&actions), &actions)).collect();
        let m = r.iter().sum::<f64>() / 4.0;
        assert!(r.iter().all(|x| (x - m).abs() < 1e-12));
    }
}
