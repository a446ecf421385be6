//! Path Not Taken — parameter-update diagnostics ("The Path Not Taken: RLVR Provably Learns Off
//! the Principals", 2025). INFERRED implementation of the quantities the abstract names; k and the
//! normalisations are configurable choices.
//!
//! For a weight matrix before (W₀) and after (W₁) training, with ΔW = W₁ − W₀ and the top-k
//! singular triplets (U, s, V) of each:
//! - update sparsity: fraction of entries with ΔW = 0 exactly, and with |ΔW| ≤ 1e-5·|W₀|;
//! - spectral drift: ‖s₁ − s₀‖₂ / ‖s₀‖₂ over the top k;
//! - principal-subspace rotation: 1 − mean(cos² θ) over the principal angles θ between the top-k
//!   left singular subspaces (cos θ = singular values of U₀ᵀU₁);
//! - principal energy of the update: ‖U₀ᵀ ΔW V₀‖²_F / ‖ΔW‖²_F (RLVR: low, updates lie off the
//!   principal directions; SFT: higher).
//!
//! The top-k singular vectors come from block power iteration on WᵀW (or WWᵀ), with modified
//! Gram–Schmidt re-orthonormalisation, in f64.

use serde::Serialize;

/// A dense row-major matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Mat {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Mat {
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Self {
        assert_eq!(rows * cols, data.len(), "matrix data does not match {rows}×{cols}");
        Self { rows, cols, data }
    }
    fn at(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }
    /// A·x for a column vector x.
    fn mul_vec(&self, x: &[f64]) -> Vec<f64> {
        (0..self.rows).map(|i| (0..self.cols).map(|j| self.at(i, j) * x[j]).sum()).collect()
    }
    /// Aᵀ·y.
    fn t_mul_vec(&self, y: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.cols];
        for (i, &yi) in y.iter().enumerate() {
            for (j, o) in out.iter_mut().enumerate() {
                *o += self.at(i, j) * yi;
            }
        }
        out
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// Orthonormalise the vectors in place (modified Gram–Schmidt); near-dependent ones become zero.
fn orthonormalise(vs: &mut [Vec<f64>]) {
    for i in 0..vs.len() {
        for j in 0..i {
            let (a, b) = vs.split_at_mut(i);
            let p = dot(&b[0], &a[j]);
            b[0].iter_mut().zip(&a[j]).for_each(|(x, y)| *x -= p * y);
        }
        let n = norm(&vs[i]);
        if n > 1e-300 {
            vs[i].iter_mut().for_each(|x| *x /= n);
        } else {
            vs[i].iter_mut().for_each(|x| *x = 0.0);
        }
    }
}

/// Top-k singular triplets (left vectors, values, right vectors) of `w`, largest first.
pub fn top_singular(w: &Mat, k: usize, iters: usize) -> (Vec<Vec<f64>>, Vec<f64>, Vec<Vec<f64>>) {
    let k = k.min(w.rows).min(w.cols);
    // Deterministic start: rows of a fixed pseudo-random matrix.
    let mut v: Vec<Vec<f64>> = (0..k)
        .map(|i| (0..w.cols).map(|j| (((i * 7919 + j * 104_729) % 1009) as f64 / 1009.0) - 0.5).collect())
        .collect();
    orthonormalise(&mut v);
    for _ in 0..iters {
        let mut next: Vec<Vec<f64>> = v.iter().map(|x| w.t_mul_vec(&w.mul_vec(x))).collect();
        orthonormalise(&mut next);
        v = next;
    }
    // Rayleigh–Ritz on the subspace: eigen-decompose the k×k matrix Vᵀ WᵀW V.
    let wv: Vec<Vec<f64>> = v.iter().map(|x| w.mul_vec(x)).collect();
    let mut h = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..k {
            h[i * k + j] = dot(&wv[i], &wv[j]);
        }
    }
    let (evals, evecs) = jacobi_eigen(&mut h, k);
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| evals[b].total_cmp(&evals[a]));
    let mut us = Vec::with_capacity(k);
    let mut ss = Vec::with_capacity(k);
    let mut vs = Vec::with_capacity(k);
    for &o in &order {
        let vec_v: Vec<f64> = (0..w.cols).map(|c| (0..k).map(|r| evecs[r * k + o] * v[r][c]).sum()).collect();
        let s = evals[o].max(0.0).sqrt();
        let mut u = w.mul_vec(&vec_v);
        if s > 1e-300 {
            u.iter_mut().for_each(|x| *x /= s);
        }
        us.push(u);
        ss.push(s);
        vs.push(vec_v);
    }
    (us, ss, vs)
}

/// Eigen-decomposition of a symmetric n×n matrix (cyclic Jacobi): (eigenvalues, eigenvectors as
/// the columns of a row-major n×n matrix).
pub(crate) fn jacobi_eigen(a: &mut [f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let (vals, v) = jacobi(a, n, true);
    (vals, v)
}

/// Eigenvalues only (no eigenvector accumulation: half the work).
pub(crate) fn jacobi_eigenvalues(a: &mut [f64], n: usize) -> Vec<f64> {
    jacobi(a, n, false).0
}

/// Cyclic Jacobi sweeps until the off-diagonal mass is below 1e-24 of the matrix's (rotation-
/// invariant) Frobenius mass — eigenvalues to ~1e-12 relative.
fn jacobi(a: &mut [f64], n: usize, vectors: bool) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; if vectors { n * n } else { 0 }];
    if vectors {
        for i in 0..n {
            v[i * n + i] = 1.0;
        }
    }
    let total: f64 = a.iter().map(|x| x * x).sum();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        if off <= 1e-24 * total || off < 1e-300 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                if vectors {
                    for k in 0..n {
                        let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                        v[k * n + p] = c * vkp - s * vkq;
                        v[k * n + q] = s * vkp + c * vkq;
                    }
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UpdateStats {
    /// Fraction of entries exactly unchanged.
    pub sparsity_exact: f64,
    /// Fraction of entries with |ΔW| ≤ 1e-5·|W₀|.
    pub sparsity_rel: f64,
    /// ‖s₁ − s₀‖ / ‖s₀‖ over the top k singular values.
    pub spectral_drift: f64,
    /// 1 − mean cos² of the principal angles between the top-k left singular subspaces.
    pub rotation: f64,
    /// ‖U₀ᵀ ΔW V₀‖²_F / ‖ΔW‖²_F (0 when ΔW = 0).
    pub principal_energy: f64,
}

/// The diagnostics of one matrix pair with k principal directions.
pub fn update_stats(w0: &Mat, w1: &Mat, k: usize) -> UpdateStats {
    assert_eq!((w0.rows, w0.cols), (w1.rows, w1.cols), "matrix shapes differ");
    let n = w0.data.len().max(1) as f64;
    let delta: Vec<f64> = w1.data.iter().zip(&w0.data).map(|(a, b)| a - b).collect();
    let sparsity_exact = delta.iter().filter(|&&d| d == 0.0).count() as f64 / n;
    let sparsity_rel = delta.iter().zip(&w0.data).filter(|(&d, &w)| d.abs() <= 1e-5 * w.abs()).count() as f64 / n;
    let iters = 60;
    let (u0, s0, v0) = top_singular(w0, k, iters);
    let (u1, s1, _) = top_singular(w1, k, iters);
    let ds: f64 = s0.iter().zip(&s1).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
    let spectral_drift = ds / norm(&s0).max(1e-300);
    // cos θ = singular values of U₀ᵀU₁: eigenvalues of MᵀM are cos² θ.
    let kk = u0.len();
    let m: Vec<f64> = (0..kk).flat_map(|i| (0..kk).map(move |j| (i, j))).map(|(i, j)| dot(&u0[i], &u1[j])).collect();
    let mut mtm = vec![0.0; kk * kk];
    for i in 0..kk {
        for j in 0..kk {
            mtm[i * kk + j] = (0..kk).map(|r| m[r * kk + i] * m[r * kk + j]).sum();
        }
    }
    let (cos2, _) = jacobi_eigen(&mut mtm, kk);
    let rotation = 1.0 - cos2.iter().map(|c| c.clamp(0.0, 1.0)).sum::<f64>() / kk.max(1) as f64;
    let dmat = Mat::new(w0.rows, w0.cols, delta);
    let total: f64 = dmat.data.iter().map(|x| x * x).sum();
    let principal: f64 = (0..kk)
        .flat_map(|i| (0..kk).map(move |j| (i, j)))
        .map(|(i, j)| dot(&u0[i], &dmat.mul_vec(&v0[j])).powi(2))
        .sum();
    let principal_energy = if total > 0.0 { principal / total } else { 0.0 };
    UpdateStats { sparsity_exact, sparsity_rel, spectral_drift, rotation, principal_energy }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// W = Σ σ_i u_i v_iᵀ from orthonormal bases built by Gram–Schmidt of fixed vectors.
    fn basis(n: usize, seed: usize) -> Vec<Vec<f64>> {
        let mut vs: Vec<Vec<f64>> = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| (((i * 31 + j * 17 + seed * 13) % 23) as f64 - 11.0) + if i == j { 40.0 } else { 0.0 })
                    .collect()
            })
            .collect();
        orthonormalise(&mut vs);
        vs
    }

    fn compose(u: &[Vec<f64>], s: &[f64], v: &[Vec<f64>]) -> Mat {
        let (r, c) = (u[0].len(), v[0].len());
        let mut d = vec![0.0; r * c];
        for (k, &sk) in s.iter().enumerate() {
            for i in 0..r {
                for j in 0..c {
                    d[i * c + j] += sk * u[k][i] * v[k][j];
                }
            }
        }
        Mat::new(r, c, d)
    }

    #[test]
    fn finds_the_top_singular_values() {
        let (u, v) = (basis(8, 1), basis(6, 2));
        let s = [9.0, 7.0, 5.0, 3.0, 2.0, 1.0];
        let w = compose(&u[..6], &s, &v);
        let (_, got, _) = top_singular(&w, 3, 200);
        for (a, b) in got.iter().zip([9.0, 7.0, 5.0]) {
            assert!((a - b).abs() < 1e-8, "{got:?}");
        }
    }

    #[test]
    fn oracles() {
        let (u, v) = (basis(8, 3), basis(6, 4));
        let s = [9.0, 7.0, 5.0, 3.0, 2.0, 1.0];
        let w0 = compose(&u[..6], &s, &v);
        // identical matrices
        let st = update_stats(&w0, &w0, 2);
        assert_eq!((st.sparsity_exact, st.sparsity_rel), (1.0, 1.0));
        assert!(st.spectral_drift < 1e-9 && st.rotation < 1e-9 && st.principal_energy == 0.0);
        // an update confined to the complement of the top-2 subspace (small, so the top 2 stay)
        let upd = compose(&u[2..4], &[0.5, -0.3], &v[2..4]);
        let w1 = Mat::new(8, 6, w0.data.iter().zip(&upd.data).map(|(a, b)| a + b).collect());
        let st = update_stats(&w0, &w1, 2);
        assert!(st.principal_energy < 1e-9 && st.rotation < 1e-9 && st.spectral_drift < 1e-9, "{st:?}");
        // an update along the top direction: all of its energy is principal
        let upd = compose(&u[..1], &[0.5], &v[..1]);
        let w1 = Mat::new(8, 6, w0.data.iter().zip(&upd.data).map(|(a, b)| a + b).collect());
        let st = update_stats(&w0, &w1, 2);
        assert!((st.principal_energy - 1.0).abs() < 1e-9 && st.spectral_drift > 0.0, "{st:?}");
        // a rotation of the left singular vectors: same spectrum (drift 0) but rotated subspace
        let mut u_rot = u.clone();
        let (a, b) = (u[0].clone(), u[6].clone());
        let (c, sn) = (0.6f64, 0.8f64);
        u_rot[0] = a.iter().zip(&b).map(|(x, y)| c * x + sn * y).collect();
        u_rot[6] = a.iter().zip(&b).map(|(x, y)| -sn * x + c * y).collect();
        let w1 = compose(&u_rot[..6], &s, &v);
        let st = update_stats(&w0, &w1, 2);
        assert!(st.spectral_drift < 1e-9, "{st:?}");
        assert!(st.rotation > 0.2, "{st:?}"); // one of two directions turned by acos(0.6)
        assert!(st.sparsity_exact < 0.5);
    }
}
