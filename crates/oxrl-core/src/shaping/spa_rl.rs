//! SPA-RL — "Reinforcing LLM Agents via Stepwise Progress Attribution" (2025).
//!
//! A progress estimator assigns each turn k of an episode a contribution c_k, trained so that
//! the contributions of a trajectory sum to its final reward: L = (Σ_k c_k − R(τ))²; only the
//! sum is supervised. The per-turn reward fuses progress and grounding: r_k = α·c_k + β·g_k, with
//! g_k = 1 for an executable action (the released code adds 0.5 per valid step: α = 1, β = 0.5),
//! placed on the turn's last action token. Here the estimator is linear in per-turn features
//! (the spec's CPU stand-in: "a small model over hand-made step features"), fitted in closed form
//! by ridge regression on the trajectory sums: Σ_k c_k = w·Σ_k f_k. CONFIRMED-CODE for the loss and
//! fusion (WangHanLinHenry/SPA-RL-Agent); the linear estimator is the stand-in.

/// Fit w minimising Σ_τ (w·Σ_k f_k(τ) − R(τ))² + λ‖w‖² (normal equations, Gaussian elimination).
pub fn fit_linear(features: &[Vec<Vec<f64>>], returns: &[f64], ridge: f64) -> Vec<f64> {
    let d = features.iter().flatten().map(|f| f.len()).max().unwrap_or(0);
    let mut a = vec![vec![0.0; d + 1]; d];
    for (traj, &r) in features.iter().zip(returns) {
        let mut x = vec![0.0; d];
        for f in traj {
            x.iter_mut().zip(f).for_each(|(s, v)| *s += v);
        }
        for i in 0..d {
            for j in 0..d {
                a[i][j] += x[i] * x[j];
            }
            a[i][d] += x[i] * r;
        }
    }
    for (i, row) in a.iter_mut().enumerate() {
        row[i] += ridge;
    }
    // Gaussian elimination with partial pivoting.
    for c in 0..d {
        let p = (c..d).max_by(|&x, &y| a[x][c].abs().total_cmp(&a[y][c].abs())).unwrap_or(c);
        a.swap(c, p);
        if a[c][c].abs() < 1e-12 {
            continue;
        }
        let pivot = a[c].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != c {
                let f = row[c] / pivot[c];
                row.iter_mut().zip(&pivot).skip(c).for_each(|(x, p)| *x -= f * p);
            }
        }
    }
    (0..d).map(|i| if a[i][i].abs() < 1e-12 { 0.0 } else { a[i][d] / a[i][i] }).collect()
}

/// Per-turn contributions c_k = w·f_k.
pub fn contributions(w: &[f64], traj: &[Vec<f64>]) -> Vec<f64> {
    traj.iter().map(|f| f.iter().zip(w).map(|(a, b)| a * b).sum()).collect()
}

/// Fused per-turn rewards r_k = α·c_k + β·g_k.
pub fn fuse(c: &[f64], grounded: &[f64], alpha: f64, beta: f64) -> Vec<f64> {
    c.iter().zip(grounded).map(|(c, g)| alpha * c + beta * g).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_oracle() {
        let r = fuse(&[0.1, 0.2, 0.7], &[1.0, 0.0, 1.0], 1.0, 0.5);
        for (x, y) in r.iter().zip([0.6, 0.2, 1.2]) {
            assert!((x - y).abs() < 1e-12);
        }
    }

    #[test]
    fn contributions_sum_to_the_return_and_linear_values_are_identified() {
        // Steps described by one-hot step types with hidden values [0.1, 0.0, 0.6, 0.3]; returns
        // are the sums. The fit recovers the per-type values, so each trajectory's
        // contributions sum to its return.
        let v = [0.1, 0.0, 0.6, 0.3];
        let onehot = |t: usize| -> Vec<f64> { (0..4).map(|i| (i == t) as u8 as f64).collect() };
        let trajs: Vec<Vec<usize>> =
            vec![vec![0, 1, 2], vec![1, 1, 3], vec![0, 2, 2, 3], vec![3], vec![0, 0, 1], vec![2, 3]];
        let feats: Vec<Vec<Vec<f64>>> = trajs.iter().map(|t| t.iter().map(|&k| onehot(k)).collect()).collect();
        let returns: Vec<f64> = trajs.iter().map(|t| t.iter().map(|&k| v[k]).sum()).collect();
        let w = fit_linear(&feats, &returns, 1e-9);
        for (a, b) in w.iter().zip(v) {
            assert!((a - b).abs() < 1e-6, "{w:?}");
        }
        for (f, r) in feats.iter().zip(&returns) {
            assert!((contributions(&w, f).iter().sum::<f64>() - r).abs() < 1e-6);
        }
    }
}
