//! Effective rank of hidden states and its dynamics — VERL, "Beyond the Exploration-Exploitation
//! Trade-off: A Hidden State Approach for LLM Reasoning in RLVR" (2025).
//!
//! For a matrix Z (tokens × features) with singular values σ_j: p_j = σ_j / Σσ and
//! ER(Z) = exp(−Σ p_j log p_j) — 1 for a rank-1 matrix, k for k orthonormal columns, invariant to
//! scaling. Along a response, ER_t = ER(H_{1:t}) on growing prefixes sampled at a stride;
//! ERV is the mean first difference of ER_t (how fast the representation spreads), ERA the mean
//! second difference (whether that spreading is speeding up or consolidating).
//! ER definition CONFIRMED-DOCS; the prefix stride and the plain means for ERV/ERA are INFERRED.

/// Singular values of a `rows × cols` row-major matrix, via the eigenvalues of its smaller Gram
/// matrix (cyclic Jacobi).
pub fn singular_values(z: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    assert_eq!(z.len(), rows * cols, "matrix data does not match its shape");
    if rows == 0 || cols == 0 {
        return vec![];
    }
    let n = rows.min(cols);
    let mut g = vec![0.0; n * n];
    for i in 0..n {
        for j in i..n {
            let v: f64 = if rows <= cols {
                (0..cols).map(|k| z[i * cols + k] * z[j * cols + k]).sum()
            } else {
                (0..rows).map(|k| z[k * cols + i] * z[k * cols + j]).sum()
            };
            g[i * n + j] = v;
            g[j * n + i] = v;
        }
    }
    let evals = super::path_not_taken::jacobi_eigenvalues(&mut g, n);
    evals.into_iter().map(|l| l.max(0.0).sqrt()).collect()
}

/// ER(Z) = exp(entropy of the normalised singular values); 0 for an all-zero matrix.
pub fn effective_rank(z: &[f64], rows: usize, cols: usize) -> f64 {
    let s = singular_values(z, rows, cols);
    let total: f64 = s.iter().sum();
    if total <= 0.0 || !total.is_finite() {
        return 0.0;
    }
    let h: f64 = s.iter().map(|&x| x / total).filter(|&p| p > 1e-300).map(|p| -p * p.ln()).sum();
    h.exp()
}

/// ER of the prefixes Z[..s], Z[..2s], …, always ending with the whole matrix.
pub fn er_trajectory(z: &[f64], rows: usize, cols: usize, stride: usize) -> Vec<f64> {
    let stride = stride.max(1);
    let mut ends: Vec<usize> = (1..=rows / stride).map(|k| k * stride).collect();
    if ends.last() != Some(&rows) && rows > 0 {
        ends.push(rows);
    }
    ends.into_iter().map(|t| effective_rank(&z[..t * cols], t, cols)).collect()
}

/// (ERV, ERA): mean first and second differences of an ER trajectory (0 when too short).
pub fn velocity_acceleration(traj: &[f64]) -> (f64, f64) {
    let d1: Vec<f64> = traj.windows(2).map(|w| w[1] - w[0]).collect();
    let d2: Vec<f64> = d1.windows(2).map(|w| w[1] - w[0]).collect();
    let mean = |v: &[f64]| if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
    (mean(&d1), mean(&d2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracles() {
        // k orthonormal columns (as a 6×3 matrix, and transposed 3×6): ER = k = 3.
        let mut z = vec![0.0; 6 * 3];
        z[0] = 1.0; // e0
        z[4] = 1.0; // row 1, col 1
        z[8] = 1.0; // row 2, col 2
        assert!((effective_rank(&z, 6, 3) - 3.0).abs() < 1e-9);
        let zt: Vec<f64> = (0..3).flat_map(|c| (0..6).map(move |r| (r, c))).map(|(r, c)| z[r * 3 + c]).collect();
        assert!((effective_rank(&zt, 3, 6) - 3.0).abs() < 1e-9);
        // Rank 1 (outer product): ER = 1.
        let u = [1.0, -2.0, 0.5, 3.0];
        let v = [0.3, 0.1, -0.7];
        let r1: Vec<f64> = u.iter().flat_map(|a| v.iter().map(move |b| a * b)).collect();
        assert!((effective_rank(&r1, 4, 3) - 1.0).abs() < 1e-6);
        // Scale invariance, and a hand value: σ = (2, 1) ⇒ p = (2/3, 1/3), ER = exp(H) = 1.8899.
        let d = [2.0, 0.0, 0.0, 1.0];
        let er = effective_rank(&d, 2, 2);
        assert!((er - 1.889_881_574_842_31).abs() < 1e-9, "{er}");
        let scaled: Vec<f64> = d.iter().map(|x| x * 37.0).collect();
        assert!((effective_rank(&scaled, 2, 2) - er).abs() < 1e-9);
        assert_eq!(effective_rank(&[0.0; 4], 2, 2), 0.0);
        // Trajectory over prefixes; ERV/ERA of a linear ramp are (slope, 0).
        let traj = er_trajectory(&z, 6, 3, 1);
        assert_eq!(traj.len(), 6);
        assert!((traj[0] - 1.0).abs() < 1e-9 && (traj[2] - 3.0).abs() < 1e-9 && (traj[5] - 3.0).abs() < 1e-9);
        assert_eq!(er_trajectory(&z, 6, 3, 4).len(), 2); // prefixes 4 and 6
        let (v, a) = velocity_acceleration(&[1.0, 1.5, 2.0, 2.5]);
        assert!((v - 0.5).abs() < 1e-12 && a.abs() < 1e-12);
        let (_, a) = velocity_acceleration(&[1.0, 2.0, 2.5, 2.75]);
        assert!(a < 0.0, "a slowing spread has negative acceleration");
    }
}
