//! Fused linear layer `y = x·Wᵀ (+ b)` over any leading dimensions, one autograd node.
//!
//! The composed version is reshape → transpose → matmul → reshape (→ bias add): four or five
//! nodes, each with its own gradient buffer in candle's backward, and a weight gradient computed
//! through a transposed view. Here the backward writes `dX = G·W`, `dW = Gᵀ·X` and `db = Σ G`
//! directly with GEMM strides, so nothing is transposed or copied.

use super::{contiguous, gemm, par_for, tensor, with_data, Elem, Mat};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};

pub struct Linear;

fn dims(x: &Layout, w: &Layout) -> Result<(usize, usize, usize, Shape)> {
    let (o, i) = w.shape().dims2()?;
    if x.dims().last() != Some(&i) {
        candle_core::bail!("fused-linear: input {:?} does not match weight {:?}", x.dims(), w.dims());
    }
    let n = x.shape().elem_count() / i.max(1);
    let mut out = x.dims().to_vec();
    *out.last_mut().unwrap() = o;
    Ok((n, i, o, Shape::from(out)))
}

fn forward<T: Elem>(x: &[T], w: &[T], b: Option<&[T]>, n: usize, i: usize, o: usize) -> Vec<T> {
    let mut y = match b {
        Some(b) => b.iter().copied().cycle().take(n * o).collect(),
        None => vec![T::zero(); n * o],
    };
    if n > 0 {
        unsafe {
            gemm(
                n,
                o,
                i,
                y.as_mut_ptr(),
                o as isize,
                1,
                b.is_some(),
                Mat::rows(x.as_ptr(), i),
                Mat::t(w.as_ptr(), i),
                par_for(n, o, i),
            )
        };
    }
    y
}

/// dx, dW (empty unless `need_w`) and db (empty unless `bias`).
fn backward<T: Elem>(x: &[T], w: &[T], g: &[T], dims: (usize, usize, usize), bias: bool, need_w: bool) -> [Vec<T>; 3] {
    let (n, i, o) = dims;
    let mut dx = vec![T::zero(); n * i];
    let mut dw = if need_w { vec![T::zero(); o * i] } else { vec![] };
    if n > 0 {
        unsafe {
            gemm(
                n,
                i,
                o,
                dx.as_mut_ptr(),
                i as isize,
                1,
                false,
                Mat::rows(g.as_ptr(), o),
                Mat::rows(w.as_ptr(), i),
                par_for(n, i, o),
            );
        }
    }
    if n > 0 && need_w {
        unsafe {
            gemm(
                o,
                i,
                n,
                dw.as_mut_ptr(),
                i as isize,
                1,
                false,
                Mat::t(g.as_ptr(), o),
                Mat::rows(x.as_ptr(), i),
                par_for(o, i, n),
            );
        }
    }
    let mut db = vec![];
    if bias {
        db = vec![T::zero(); o];
        for row in g.chunks(o) {
            db.iter_mut().zip(row).for_each(|(a, &b)| *a += b);
        }
    }
    [dx, dw, db]
}

fn fwd(
    sx: &CpuStorage,
    lx: &Layout,
    sw: &CpuStorage,
    lw: &Layout,
    b: Option<(&CpuStorage, &Layout)>,
) -> Result<(CpuStorage, Shape)> {
    let (n, i, o, shape) = dims(lx, lw)?;
    if let Some((_, lb)) = b {
        if lb.shape().elem_count() != o {
            candle_core::bail!("fused-linear: bias {:?} for {o} outputs", lb.dims());
        }
    }
    let y = match sx {
        CpuStorage::F32(_) => {
            let bias = b.map(|(s, l)| contiguous::<f32>(s, l, "linear")).transpose()?;
            CpuStorage::F32(forward(contiguous(sx, lx, "linear")?, contiguous(sw, lw, "linear")?, bias, n, i, o))
        }
        CpuStorage::F64(_) => {
            let bias = b.map(|(s, l)| contiguous::<f64>(s, l, "linear")).transpose()?;
            CpuStorage::F64(forward(contiguous(sx, lx, "linear")?, contiguous(sw, lw, "linear")?, bias, n, i, o))
        }
        _ => candle_core::bail!("fused-linear: f32 or f64 only"),
    };
    Ok((y, shape))
}

/// Gradients of `x·Wᵀ (+ b)`. The weight gradient is skipped (None) when `w` is not tracked by
/// autograd — a frozen base weight under LoRA — which saves a GEMM and a weight-sized buffer.
fn bwd(x: &Tensor, w: &Tensor, g: &Tensor, bias: bool) -> Result<(Tensor, Option<Tensor>, Option<Tensor>)> {
    fn run<T: Elem>(
        x: &Tensor,
        w: &Tensor,
        g: &Tensor,
        bias: bool,
    ) -> Result<(Tensor, Option<Tensor>, Option<Tensor>)> {
        let (o, i) = w.dims2()?;
        let n = x.elem_count() / i.max(1);
        let need_w = w.track_op();
        let [dx, dw, db] = with_data::<T, _>(x, "linear", |xs| {
            with_data::<T, _>(w, "linear", |ws| {
                with_data::<T, _>(g, "linear", |gs| Ok(backward(xs, ws, gs, (n, i, o), bias, need_w)))
            })
        })?;
        let dw = if need_w { Some(tensor(dw, w.dims())?) } else { None };
        let db = if bias { Some(tensor(db, &[o])?) } else { None };
        Ok((tensor(dx, x.dims())?, dw, db))
    }
    match x.dtype() {
        DType::F32 => run::<f32>(x, w, g, bias),
        _ => run::<f64>(x, w, g, bias),
    }
}

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "fused-linear"
    }
    fn cpu_fwd(&self, sx: &CpuStorage, lx: &Layout, sw: &CpuStorage, lw: &Layout) -> Result<(CpuStorage, Shape)> {
        fwd(sx, lx, sw, lw, None)
    }
    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = bwd(x, w, g, false)?;
        Ok((Some(dx), dw))
    }
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "fused-linear-bias"
    }
    fn cpu_fwd(
        &self,
        sx: &CpuStorage,
        lx: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
        sb: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fwd(sx, lx, sw, lw, Some((sb, lb)))
    }
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = bwd(x, w, g, true)?;
        Ok((Some(dx), dw, db))
    }
}

/// `x·Wᵀ (+ b)` for `x` `[.., in]`, `w` `[out, in]`, `b` `[out]`.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let x = x.contiguous()?;
    let w = w.contiguous()?;
    match b {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, Linear),
        None => x.apply_op2(&w, Linear),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::*;

    fn composed(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
        let y = x.broadcast_matmul(&w.t().unwrap()).unwrap();
        match b {
            Some(b) => y.broadcast_add(b).unwrap(),
            None => y,
        }
    }

    #[test]
    fn matches_composed_forward_and_backward() {
        let x = randn(&[3, 37, 20], 1, DType::F32);
        let w = randn(&[13, 20], 2, DType::F32);
        let b = randn(&[13], 3, DType::F32);
        check_against_composed(
            &[x.clone(), w.clone()],
            |t| linear(&t[0], &t[1], None).unwrap(),
            |t| composed(&t[0], &t[1], None),
            1e-4,
        );
        check_against_composed(
            &[x, w, b],
            |t| linear(&t[0], &t[1], Some(&t[2])).unwrap(),
            |t| composed(&t[0], &t[1], Some(&t[2])),
            1e-4,
        );
    }

    #[test]
    fn gradients_match_finite_differences() {
        let x = randn(&[2, 3, 4], 4, DType::F64);
        let w = randn(&[5, 4], 5, DType::F64);
        let b = randn(&[5], 6, DType::F64);
        check_finite_differences(&[x, w, b], |t| linear(&t[0], &t[1], Some(&t[2])).unwrap(), &[0, 1, 2]);
    }
}
