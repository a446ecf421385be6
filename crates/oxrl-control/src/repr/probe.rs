//! Linear probes: ridge regression from features to targets (closed form,
//! W = (XᵀX + λI)⁻¹XᵀY with a bias column, solved by Cholesky in f64), scored on held-out rows by
//! R² = 1 − SSE/SST per target dimension (the spec's "latent probe R² on agent position").

use anyhow::{bail, Result};

/// Mean over target dimensions of the held-out R² of a ridge regression fitted on (train_x,
/// train_y). Targets are rows of equal width; a target constant on the held-out rows scores 0.
pub fn ridge_r2(
    train_x: &[Vec<f32>],
    train_y: &[Vec<f64>],
    test_x: &[Vec<f32>],
    test_y: &[Vec<f64>],
    lambda: f64,
) -> Result<f64> {
    if train_x.is_empty() || test_x.is_empty() || train_x.len() != train_y.len() || test_x.len() != test_y.len() {
        bail!("probe: empty or mismatched data");
    }
    let d = train_x[0].len() + 1;
    let k = train_y[0].len();
    let row = |x: &[f32]| x.iter().map(|&v| v as f64).chain(std::iter::once(1.0)).collect::<Vec<f64>>();
    let mut a = vec![0f64; d * d];
    let mut b = vec![0f64; d * k];
    for (x, y) in train_x.iter().zip(train_y) {
        if x.len() + 1 != d || y.len() != k {
            bail!("probe: ragged features or targets");
        }
        let r = row(x);
        for i in 0..d {
            for j in 0..=i {
                a[i * d + j] += r[i] * r[j];
            }
            for c in 0..k {
                b[i * k + c] += r[i] * y[c];
            }
        }
    }
    for i in 0..d {
        for j in 0..i {
            a[j * d + i] = a[i * d + j];
        }
        a[i * d + i] += lambda;
    }
    let l = cholesky(&a, d)?;
    // solve (L Lᵀ) W = B column by column
    let mut w = vec![0f64; d * k];
    for c in 0..k {
        let mut z = vec![0f64; d];
        for i in 0..d {
            let s: f64 = (0..i).map(|m| l[i * d + m] * z[m]).sum();
            z[i] = (b[i * k + c] - s) / l[i * d + i];
        }
        for i in (0..d).rev() {
            let s: f64 = (i + 1..d).map(|m| l[m * d + i] * w[m * k + c]).sum();
            w[i * k + c] = (z[i] - s) / l[i * d + i];
        }
    }
    let n = test_x.len() as f64;
    let mut total = 0.0;
    for c in 0..k {
        let mean = test_y.iter().map(|y| y[c]).sum::<f64>() / n;
        let sst: f64 = test_y.iter().map(|y| (y[c] - mean).powi(2)).sum();
        let sse: f64 = test_x
            .iter()
            .zip(test_y)
            .map(|(x, y)| {
                let r = row(x);
                let p: f64 = (0..d).map(|i| r[i] * w[i * k + c]).sum();
                (y[c] - p).powi(2)
            })
            .sum();
        total += if sst > 0.0 { 1.0 - sse / sst } else { 0.0 };
    }
    Ok(total / k as f64)
}

/// Held-out accuracy of a k-nearest-neighbour classifier (Euclidean, majority vote, ties to the
/// nearest neighbour's label) — a non-linear probe: it credits any encoding that keeps different
/// cells apart, linear in position or not.
pub fn knn_accuracy(
    train_x: &[Vec<f32>],
    train_y: &[usize],
    test_x: &[Vec<f32>],
    test_y: &[usize],
    k: usize,
) -> Result<f64> {
    if train_x.is_empty()
        || test_x.is_empty()
        || train_x.len() != train_y.len()
        || test_x.len() != test_y.len()
        || k == 0
    {
        bail!("probe: empty or mismatched data (or k = 0)");
    }
    let mut correct = 0usize;
    let mut d: Vec<(f32, usize)> = Vec::with_capacity(train_x.len());
    for (x, &y) in test_x.iter().zip(test_y) {
        d.clear();
        for (i, t) in train_x.iter().enumerate() {
            d.push((x.iter().zip(t).map(|(a, b)| (a - b) * (a - b)).sum(), i));
        }
        let kk = k.min(d.len());
        d.select_nth_unstable_by(kk - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let near = &mut d[..kk];
        near.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut votes: Vec<(usize, usize)> = Vec::new();
        for &(_, i) in near.iter() {
            match votes.iter_mut().find(|v| v.0 == train_y[i]) {
                Some(v) => v.1 += 1,
                None => votes.push((train_y[i], 1)),
            }
        }
        // the most votes; among equals the label met first (the nearest)
        let best = votes.iter().fold(votes[0], |b, v| if v.1 > b.1 { *v } else { b });
        correct += (best.0 == y) as usize;
    }
    Ok(correct as f64 / test_x.len() as f64)
}

/// Lower-triangular L with L·Lᵀ = A for a symmetric positive-definite (d × d) A.
fn cholesky(a: &[f64], d: usize) -> Result<Vec<f64>> {
    let mut l = vec![0f64; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            if i == j {
                let v = a[i * d + i] - s;
                if v <= 0.0 || !v.is_finite() {
                    bail!("probe: the ridge system is not positive definite (raise repr.probe_ridge)");
                }
                l[i * d + j] = v.sqrt();
            } else {
                l[i * d + j] = (a[i * d + j] - s) / l[j * d + j];
            }
        }
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxrl_core::seed::Rng;
    use rand::{Rng as _, SeedableRng};

    #[test]
    fn linear_targets_score_one_and_noise_scores_about_zero() {
        let mut rng = Rng::seed_from_u64(0);
        let make = |n: usize, rng: &mut Rng| {
            let mut xs = Vec::new();
            let mut ys = Vec::new();
            for _ in 0..n {
                let p = (rng.random_range(0..8) as f64, rng.random_range(0..8) as f64);
                // features: a rotated, scaled copy of the position plus unrelated noise dims
                let x = vec![(p.0 + p.1) as f32, (p.0 - 2.0 * p.1) as f32, rng.random::<f32>(), rng.random::<f32>()];
                xs.push(x);
                ys.push(vec![p.0, p.1]);
            }
            (xs, ys)
        };
        let (tx, ty) = make(500, &mut rng);
        let (vx, vy) = make(300, &mut rng);
        let r2 = ridge_r2(&tx, &ty, &vx, &vy, 1e-6).unwrap();
        assert!(r2 > 0.999999, "{r2}");
        // targets unrelated to the features: R² near 0 (slightly negative out of sample)
        let noise_y: Vec<Vec<f64>> = (0..300).map(|_| vec![rng.random::<f64>()]).collect();
        let noise_ty: Vec<Vec<f64>> = (0..500).map(|_| vec![rng.random::<f64>()]).collect();
        let r2 = ridge_r2(&tx, &noise_ty, &vx, &noise_y, 1e-6).unwrap();
        assert!(r2.abs() < 0.05, "{r2}");
        // constant features make XᵀX singular: the ridge keeps it solvable
        let zeros = vec![vec![0f32; 3]; 10];
        let y: Vec<Vec<f64>> = (0..10).map(|i| vec![i as f64]).collect();
        assert!(ridge_r2(&zeros, &y, &zeros, &y, 1e-3).unwrap().abs() < 1e-6, "the mean predictor scores 0");
        assert!(ridge_r2(&zeros, &y, &zeros, &y, 0.0).is_err());
    }

    #[test]
    fn knn_decodes_a_nonlinear_code_that_a_linear_probe_misses() {
        let mut rng = Rng::seed_from_u64(1);
        // position on a circle-of-circles: a non-linear but injective code of the 64 cells
        let code = |c: usize| {
            let a = c as f32 * 0.7;
            vec![a.sin(), a.cos(), (3.0 * a).sin(), (3.0 * a).cos()]
        };
        let make = |n: usize, rng: &mut Rng| {
            let ys: Vec<usize> = (0..n).map(|_| rng.random_range(0..64)).collect();
            let xs: Vec<Vec<f32>> =
                ys.iter().map(|&c| code(c).iter().map(|v| v + 0.001 * rng.random::<f32>()).collect()).collect();
            (xs, ys)
        };
        let (tx, ty) = make(2000, &mut rng);
        let (vx, vy) = make(500, &mut rng);
        assert_eq!(knn_accuracy(&tx, &ty, &vx, &vy, 5).unwrap(), 1.0);
        let pos = |y: &[usize]| y.iter().map(|&c| vec![(c % 8) as f64, (c / 8) as f64]).collect::<Vec<_>>();
        let r2 = ridge_r2(&tx, &pos(&ty), &vx, &pos(&vy), 1e-3).unwrap();
        assert!(r2 < 0.5, "a linear probe misses this code: R² {r2}");
        // features that ignore the label: about chance (1/64)
        let flat: Vec<Vec<f32>> = (0..500).map(|_| vec![rng.random::<f32>()]).collect();
        let flat_t: Vec<Vec<f32>> = (0..2000).map(|_| vec![rng.random::<f32>()]).collect();
        assert!(knn_accuracy(&flat_t, &ty, &flat, &vy, 5).unwrap() < 0.06);
    }
}
