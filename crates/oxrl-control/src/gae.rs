//! Generalised Advantage Estimation over vectorised rollouts — "High-Dimensional Continuous Control
//! Using Generalized Advantage Estimation" (2016), as in CleanRL's ppo.py.
//!
//! δ_t = r_t + γ·(1 − d_t)·V_{t+1} − V_t; A_t = δ_t + γλ·(1 − d_t)·A_{t+1}; returns R_t = A_t + V_t.
//! d_t marks an episode that ended at step t (terminated or truncated); V_{T} after the last step is
//! the bootstrap value of the observation the rollout stops at. Truncation bootstraps from the
//! episode's final observation: the rollout adds γ·V(final_obs) to that step's reward before calling
//! this (so a time-limit end is not treated as a failure), and terminations add nothing.

/// Advantages and returns, both `[T][N]` (time-major, one column per environment).
pub fn gae(
    rewards: &[Vec<f64>],
    values: &[Vec<f64>],
    dones: &[Vec<bool>],
    last_values: &[f64],
    gamma: f64,
    lambda: f64,
) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let t_len = rewards.len();
    let n = last_values.len();
    let mut adv = vec![vec![0.0; n]; t_len];
    let mut ret = vec![vec![0.0; n]; t_len];
    for i in 0..n {
        let mut last = 0.0;
        for t in (0..t_len).rev() {
            let nonterminal = if dones[t][i] { 0.0 } else { 1.0 };
            let next_v = if t + 1 == t_len { last_values[i] } else { values[t + 1][i] };
            let delta = rewards[t][i] + gamma * next_v * nonterminal - values[t][i];
            last = delta + gamma * lambda * nonterminal * last;
            adv[t][i] = last;
            ret[t][i] = last + values[t][i];
        }
    }
    (adv, ret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(v: &[f64]) -> Vec<Vec<f64>> {
        v.iter().map(|&x| vec![x]).collect()
    }

    #[test]
    fn lambda_one_is_discounted_return_minus_value() {
        let r = [1.0, 0.0, 2.0, -1.0];
        let v = [0.5, 0.1, -0.3, 0.7];
        let last = 0.9;
        let g: f64 = 0.9;
        let (adv, _) = gae(&col(&r), &col(&v), &vec![vec![false]; 4], &[last], g, 1.0);
        for t in 0..4 {
            let mut ret = g.powi((4 - t) as i32) * last;
            for (k, rk) in r.iter().enumerate().skip(t) {
                ret += g.powi((k - t) as i32) * rk;
            }
            assert!((adv[t][0] - (ret - v[t])).abs() < 1e-12, "t={t}");
        }
    }

    #[test]
    fn lambda_zero_is_the_one_step_td_error_and_dones_cut_the_bootstrap() {
        let r = [1.0, 0.0, 2.0];
        let v = [0.5, 0.1, -0.3];
        let d = [false, true, false];
        let (adv, ret) = gae(&col(&r), &col(&v), &d.iter().map(|&x| vec![x]).collect::<Vec<_>>(), &[0.4], 0.99, 0.0);
        assert!((adv[0][0] - (1.0 + 0.99 * 0.1 - 0.5)).abs() < 1e-12);
        assert!((adv[1][0] - (0.0 - 0.1)).abs() < 1e-12, "terminal: no bootstrap");
        assert!((adv[2][0] - (2.0 + 0.99 * 0.4 + 0.3)).abs() < 1e-12);
        for t in 0..3 {
            assert!((ret[t][0] - adv[t][0] - v[t]).abs() < 1e-12);
        }
        // with λ = 0.95 the done at t = 1 still isolates t = 0..1 from t = 2
        let (a1, _) = gae(&col(&r), &col(&v), &d.iter().map(|&x| vec![x]).collect::<Vec<_>>(), &[0.4], 0.99, 0.95);
        let (a2, _) = gae(&col(&r[..2]), &col(&v[..2]), &[vec![false], vec![true]], &[123.0], 0.99, 0.95);
        assert!((a1[0][0] - a2[0][0]).abs() < 1e-12);
    }
}
