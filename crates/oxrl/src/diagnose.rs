//! `oxrl diagnose A B`: Path-Not-Taken update statistics between two checkpoints of the same
//! model (see `oxrl_core::diagnostics::path_not_taken`): per weight matrix, update sparsity,
//! spectral drift and principal-subspace rotation of the top-k singular directions, and the share
//! of the update's energy inside the principal subspace; plus their means over matrices.

use crate::policy::resolve_checkpoint;
use anyhow::{bail, Result};
use candle_core::{DType, Device};
use oxrl_core::diagnostics::path_not_taken::{update_stats, Mat, UpdateStats};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Serialize)]
pub struct MatrixReport {
    pub name: String,
    pub shape: [usize; 2],
    #[serde(flatten)]
    pub stats: UpdateStats,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiagnoseReport {
    pub k: usize,
    pub matrices: Vec<MatrixReport>,
    /// Means over the matrices.
    pub mean: UpdateStats,
}

pub fn diagnose(a: &Path, b: &Path, k: usize) -> Result<DiagnoseReport> {
    if k == 0 {
        bail!("--k must be at least 1");
    }
    let (da, db) = (resolve_checkpoint(a)?, resolve_checkpoint(b)?);
    let ma = oxrl_lm::checkpoint::load(&da, &Device::Cpu)?.model;
    let mb = oxrl_lm::checkpoint::load(&db, &Device::Cpu)?.model;
    let mut matrices = Vec::new();
    for (name, va) in ma.params.named_vars() {
        if va.rank() != 2 {
            continue;
        }
        let Ok(vb) = mb.params.get(&name) else {
            bail!("{}: has no tensor `{name}` (different architectures?)", db.display())
        };
        if va.dims() != vb.dims() {
            bail!("`{name}`: shape {:?} in {} but {:?} in {}", va.dims(), da.display(), vb.dims(), db.display());
        }
        let (r, c) = va.dims2()?;
        let m = |v: &candle_core::Var| -> Result<Mat> {
            Ok(Mat::new(r, c, v.as_tensor().to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?))
        };
        matrices.push(MatrixReport { name, shape: [r, c], stats: update_stats(&m(&va)?, &m(vb)?, k) });
    }
    if matrices.is_empty() {
        bail!("{}: no weight matrices to compare", da.display());
    }
    let n = matrices.len() as f64;
    let avg = |f: &dyn Fn(&UpdateStats) -> f64| matrices.iter().map(|m| f(&m.stats)).sum::<f64>() / n;
    let mean = UpdateStats {
        sparsity_exact: avg(&|s| s.sparsity_exact),
        sparsity_rel: avg(&|s| s.sparsity_rel),
        spectral_drift: avg(&|s| s.spectral_drift),
        rotation: avg(&|s| s.rotation),
        principal_energy: avg(&|s| s.principal_energy),
    };
    Ok(DiagnoseReport { k, matrices, mean })
}

impl DiagnoseReport {
    pub fn table(&self) -> String {
        let w = self.matrices.iter().map(|m| m.name.len()).max().unwrap_or(4).max(4);
        let mut s = format!(
            "{:w$}  {:>11}  {:>8}  {:>8}  {:>8}  {:>8}  {:>9}\n",
            "matrix", "shape", "unchanged", "rel≤1e-5", "drift", "rotation", "principal",
        );
        let row = |name: &str, shape: String, st: &UpdateStats| {
            format!(
                "{name:w$}  {shape:>11}  {:>8.3}  {:>8.3}  {:>8.4}  {:>8.4}  {:>9.4}\n",
                st.sparsity_exact, st.sparsity_rel, st.spectral_drift, st.rotation, st.principal_energy
            )
        };
        for m in &self.matrices {
            s.push_str(&row(&m.name, format!("{}×{}", m.shape[0], m.shape[1]), &m.stats));
        }
        s.push_str(&row("mean", String::new(), &self.mean));
        s.push_str(&format!("(top k = {} singular directions)\n", self.k));
        s
    }
}
