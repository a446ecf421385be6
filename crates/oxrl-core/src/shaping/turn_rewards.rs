//! Turn-level reward placement for multi-turn agents — "A Practitioner's Guide to Multi-turn
//! Agentic RL" (2025).
//!
//! Sparse: the episode's final score on the last turn's separator token. Dense: each turn's
//! reward on its own separator, normalised so an episode's dense rewards sum to at most 1 —
//! divided by the number of turns with positive reward when the episode was won, else by the
//! number of reward events the game offers (`max_total`, ≥ 1). CONFIRMED-CODE
//! (pearls-lab/meow-tea-taro agentic_verified.py).

/// Dense per-turn rewards, normalised.
pub fn dense(turn_rewards: &[f64], won: bool, max_total: usize) -> Vec<f64> {
    let n = if won { turn_rewards.iter().filter(|&&r| r > 0.0).count() } else { max_total };
    let n = n.max(1) as f64;
    turn_rewards.iter().map(|r| r / n).collect()
}

/// Sparse: zeros except `score` at the last turn.
pub fn sparse(turns: usize, score: f64) -> Vec<f64> {
    let mut v = vec![0.0; turns.max(1)];
    *v.last_mut().expect("at least one turn") = score;
    v
}

/// Token rewards of a response of `len` tokens with `turn_values[k]` placed on the separator
/// (last action token) `seps[k]` of turn k; values of turns without a separator go on the last
/// token.
pub fn place(len: usize, seps: &[usize], turn_values: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; len.max(1)];
    let last = out.len() - 1;
    for (k, &v) in turn_values.iter().enumerate() {
        out[seps.get(k).copied().unwrap_or(last).min(last)] += v;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracles() {
        let third = 1.0 / 3.0;
        assert_eq!(dense(&[1.0, 0.0, 1.0, 1.0], true, 9), vec![third, 0.0, third, third]);
        assert_eq!(dense(&[1.0, 0.0, 0.0], false, 4), vec![0.25, 0.0, 0.0]);
        assert_eq!(dense(&[0.0, 0.0], false, 0), vec![0.0, 0.0]);
        assert_eq!(sparse(3, 0.8), vec![0.0, 0.0, 0.8]);
        let p = place(10, &[2, 5, 9], &[0.1, 0.2, 0.7]);
        assert_eq!(p.iter().enumerate().filter(|(_, &v)| v != 0.0).map(|(i, _)| i).collect::<Vec<_>>(), vec![2, 5, 9]);
        assert_eq!(place(4, &[1], &[0.5, 0.25]), vec![0.0, 0.5, 0.0, 0.25]);
    }
}
