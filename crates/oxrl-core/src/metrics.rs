//! Evaluation metrics over sampled answers: unbiased pass@k and majority-vote accuracy maj@k.

use std::collections::HashMap;

/// Pearson correlation; 0 when either side is constant or there are fewer than two points.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    if x.len() < 2 {
        return 0.0;
    }
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let (vx, vy): (f64, f64) = (x.iter().map(|a| (a - mx).powi(2)).sum(), y.iter().map(|b| (b - my).powi(2)).sum());
    if vx <= 0.0 || vy <= 0.0 {
        0.0
    } else {
        cov / (vx * vy).sqrt()
    }
}

/// The critic's explained variance `1 − Var(y − ŷ)/Var(y)` of targets `y` by predictions `ŷ`
/// (1 exact, 0 no better than the targets' mean, negative worse); `None` when `y` is constant.
pub fn explained_variance(targets: &[f64], predictions: &[f64]) -> Option<f64> {
    fn var(x: &[f64]) -> f64 {
        let n = x.len().max(1) as f64;
        let m = x.iter().sum::<f64>() / n;
        x.iter().map(|a| (a - m).powi(2)).sum::<f64>() / n
    }
    let vy = var(targets);
    let residual: Vec<f64> = targets.iter().zip(predictions).map(|(y, p)| y - p).collect();
    (vy > 0.0).then(|| 1.0 - var(&residual) / vy)
}

/// Unbiased pass@k estimator (Chen et al., "Evaluating Large Language Models Trained on Code",
/// 2021): with n samples of which c are correct, pass@k = 1 − C(n−c, k) / C(n, k), computed as a
/// numerically stable product. Requires k ≤ n.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    assert!(k >= 1 && k <= n, "pass@k needs 1 <= k <= n (k={k}, n={n})");
    assert!(c <= n);
    if n - c < k {
        return 1.0;
    }
    // C(n-c, k)/C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i)
    let mut prob_all_wrong = 1.0f64;
    for i in (n - c + 1)..=n {
        prob_all_wrong *= 1.0 - k as f64 / i as f64;
    }
    1.0 - prob_all_wrong
}

/// Majority vote over the first `k` samples: the most frequent extracted answer (ties broken by
/// first occurrence; samples without an answer do not vote) is judged by `is_correct`. Returns
/// 1.0 if the voted answer is correct, else 0.0.
pub fn maj_at_k(answers: &[Option<String>], correct: &[bool], k: usize) -> f64 {
    assert_eq!(answers.len(), correct.len());
    let k = k.min(answers.len());
    let mut counts: HashMap<&str, (usize, usize)> = HashMap::new(); // answer -> (count, first idx)
    for (i, a) in answers[..k].iter().enumerate() {
        if let Some(a) = a {
            let e = counts.entry(a.as_str()).or_insert((0, i));
            e.0 += 1;
        }
    }
    let best = counts.into_iter().max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.1 .1.cmp(&a.1 .1)));
    match best {
        Some((_, (_, first))) if correct[first] => 1.0,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explained_variance_of_exact_mean_and_worse_predictions() {
        let y = [1.0, 0.0, 1.0, 0.0];
        assert_eq!(explained_variance(&y, &y), Some(1.0));
        assert_eq!(explained_variance(&y, &[0.5; 4]), Some(0.0));
        // a constant offset is not penalised (variance of the residual), a flipped guess is: 1 − 4
        assert_eq!(explained_variance(&y, &[1.5, 0.5, 1.5, 0.5]), Some(1.0));
        assert_eq!(explained_variance(&y, &[0.0, 1.0, 0.0, 1.0]), Some(-3.0));
        assert_eq!(explained_variance(&[2.0; 3], &[0.0; 3]), None);
    }

    fn binom(n: u64, k: u64) -> f64 {
        if k > n {
            return 0.0;
        }
        (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
    }

    #[test]
    fn pass_at_k_matches_combinatorial_formula() {
        for n in 1..=12u64 {
            for c in 0..=n {
                for k in 1..=n {
                    let expect = 1.0 - binom(n - c, k) / binom(n, k);
                    let got = pass_at_k(n as usize, c as usize, k as usize);
                    assert!((got - expect).abs() < 1e-12, "n={n} c={c} k={k}");
                }
            }
        }
        assert_eq!(pass_at_k(10, 0, 5), 0.0);
        assert_eq!(pass_at_k(10, 10, 1), 1.0);
        // pass@1 is the fraction correct
        assert!((pass_at_k(8, 3, 1) - 3.0 / 8.0).abs() < 1e-12);
    }

    #[test]
    fn maj_at_k_votes() {
        let a = |s: &str| Some(s.to_string());
        let answers = vec![a("5"), a("7"), a("7"), None, a("5"), a("5")];
        let correct = vec![true, false, false, false, true, true];
        assert_eq!(maj_at_k(&answers, &correct, 3), 0.0); // 7 wins 2-1
        assert_eq!(maj_at_k(&answers, &correct, 6), 1.0); // 5 wins 3-2
        assert_eq!(maj_at_k(&answers, &correct, 1), 1.0);
        // tie 1-1 at k=2: first occurrence (5) wins
        assert_eq!(maj_at_k(&answers, &correct, 2), 1.0);
        assert_eq!(maj_at_k(&[None, None], &[false, false], 2), 0.0);
    }
}
