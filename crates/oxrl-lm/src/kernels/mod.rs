//! Fused, differentiable CPU kernels for the training path.
//!
//! candle builds one autograd node per elementary op, and its backward pass allocates a zero
//! gradient and adds into it for every node; a composed RMSNorm, rotary embedding or softmax is
//! many nodes and many passes over memory. Each kernel here is one candle `CustomOp` with a
//! hand-written backward, so the training graph has about a dozen nodes per layer instead of ~60:
//!
//! - [`rms_norm`]: RMSNorm with its weight;
//! - [`rope`]: rotary position embedding (rotate-half), backward = rotation by −θ;
//! - [`linear`]: `x·Wᵀ (+ b)` over any leading dims, backward straight into `dX`, `dW`, `db`
//!   with the GEMM operand layouts chosen for speed (no transposed copies);
//! - [`swiglu`]: `silu(gate) · up`;
//! - [`attention`]: causal grouped-query attention with an additive mask (padding, causality, a
//!   KV cache's extra keys), softmax probabilities kept for the backward;
//! - [`logp_entropy`]: log-softmax, gather of the chosen token and the entropy in one pass.
//!
//! Every kernel works on f32 and f64 CPU tensors; [`supported`] says when a tensor can take the
//! fused path. Other devices and dtypes (CUDA, bf16) use the composed candle ops, which are the
//! reference the kernels are tested against (forward and backward, and by finite differences).

pub mod attention;
pub mod linear;
pub mod logp_entropy;
pub mod rms_norm;
pub mod rope;
pub mod swiglu;

use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor};
use gemm::Parallelism;

/// Run `f` compiled for the widest vector instructions this CPU has (the packed decoder's
/// [`crate::decode::gemm::Isa`]: AVX-512, AVX2 + FMA, or the build's baseline). The crate is built
/// for the baseline x86-64 (SSE2), so a loop the compiler vectorises runs 4 lanes wide unless
/// it is compiled inside a function with the wider features enabled; `f` (and the
/// `#[inline(always)]` helpers it calls) is inlined into such a function here. Only the width
/// changes: the arithmetic and its order are the same on every path, so are the results.
#[inline(always)]
pub(crate) fn simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx2,fma")]
        #[inline]
        unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        match crate::decode::gemm::Isa::detect() {
            // SAFETY: the instruction sets were detected at run time.
            crate::decode::gemm::Isa::Avx512 => return unsafe { avx512(f) },
            crate::decode::gemm::Isa::Avx2 => return unsafe { avx2(f) },
            crate::decode::gemm::Isa::Portable => {}
        }
    }
    f()
}

/// Lanes of the reductions below: a sum or maximum over a row is kept in this many
/// independent partial results (which the compiler maps onto vector registers) and combined
/// in a fixed tree at the end, so it vectorises without reassociating and gives the same
/// result at every vector width.
pub(crate) const LANES: usize = 16;

/// Combine [`LANES`] partial results in a fixed tree.
#[inline(always)]
pub(crate) fn tree<T: Copy>(mut a: [T; LANES], op: impl Fn(T, T) -> T) -> T {
    let mut w = LANES / 2;
    while w > 0 {
        for l in 0..w {
            a[l] = op(a[l], a[l + w]);
        }
        w /= 2;
    }
    a[0]
}

/// `Σ a[i]·b[i]` in [`LANES`] partial sums (see there).
#[inline(always)]
pub(crate) fn lane_dot<T: Elem>(a: &[T], b: &[T]) -> T {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [T::zero(); LANES];
    let (mut ca, mut cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    for (l, (&x, &y)) in ca.remainder().iter().zip(cb.remainder()).enumerate() {
        acc[l] += x * y;
    }
    tree(acc, |a, b| a + b)
}

/// `Σ x[i]` in [`LANES`] partial sums (see there).
#[inline(always)]
pub(crate) fn lane_sum<T: Elem>(x: &[T]) -> T {
    let mut acc = [T::zero(); LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    for (l, &v) in chunks.remainder().iter().enumerate() {
        acc[l] += v;
    }
    tree(acc, |a, b| a + b)
}

/// The largest of `x` (NaNs skipped), in [`LANES`] partial maxima; −∞ for an empty slice.
#[inline(always)]
pub(crate) fn lane_max<T: Elem>(x: &[T]) -> T {
    let pick = |a: T, b: T| if b > a { b } else { a };
    let mut acc = [T::neg_infinity(); LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            acc[l] = pick(acc[l], c[l]);
        }
    }
    for (l, &v) in chunks.remainder().iter().enumerate() {
        acc[l] = pick(acc[l], v);
    }
    tree(acc, pick)
}

/// Element types the kernels are written for.
pub trait Elem:
    num_traits::Float
    + candle_core::WithDType
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
    + std::ops::AddAssign
    + std::ops::MulAssign
{
    fn cast(x: f64) -> Self;
    /// `exp`, written so loops over it vectorise (f32: [`exp_f32`]; f64: the libm `exp`).
    fn vexp(self) -> Self;
    fn slice(s: &CpuStorage) -> Result<&[Self]>;
    fn storage(v: Vec<Self>) -> CpuStorage;
}

impl Elem for f32 {
    fn cast(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn vexp(self) -> Self {
        exp_f32(self)
    }
    fn slice(s: &CpuStorage) -> Result<&[Self]> {
        s.as_slice::<f32>()
    }
    fn storage(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F32(v)
    }
}

impl Elem for f64 {
    fn cast(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn vexp(self) -> Self {
        self.exp()
    }
    fn slice(s: &CpuStorage) -> Result<&[Self]> {
        s.as_slice::<f64>()
    }
    fn storage(v: Vec<Self>) -> CpuStorage {
        CpuStorage::F64(v)
    }
}

/// Branch-free `exp` for f32 that the compiler vectorises: `exp(x) = 2ⁿ·eʳ` with
/// `n = round(x·log₂e)`, `r = x − n·ln2` (Cody–Waite two-part ln2, |r| ≤ 0.35), `eʳ` from its
/// degree-7 Taylor polynomial, and `2ⁿ` built in the exponent bits. Relative error below 3e-7
/// on [−87, 88]; inputs below −87 go smoothly to 0 (denormals), inputs above 88 saturate at
/// `exp(88)`, NaN stays NaN.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Clamp with comparisons (not min/max) so a NaN input stays NaN.
    let x = if x < -103.0 { -103.0 } else { x };
    let x = if x > 88.0 { 88.0 } else { x };
    // Round to nearest with the 1.5·2²³ trick: the sum's low mantissa bits hold n itself.
    let shifted = x * std::f32::consts::LOG2_E + 12_582_912.0;
    let n = shifted - 12_582_912.0;
    let ni = (shifted.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 / 5040.0_f32;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // 2^n in two halves so n down to −150 stays finite (denormals) without branches.
    let h = ni >> 1;
    let a = f32::from_bits(((h + 127) as u32) << 23);
    let b = f32::from_bits(((ni - h + 127) as u32) << 23);
    p * a * b
}

/// Whether `t` can take the fused path: a CPU tensor of f32 or f64.
pub fn supported(t: &Tensor) -> bool {
    t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64)
}

/// The contiguous elements of a storage/layout pair (errors on strided layouts).
pub(crate) fn contiguous<'a, T: Elem>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&T::slice(s)?[a..b]),
        None => candle_core::bail!("{op}: expected a contiguous input, got strides {:?}", l.stride()),
    }
}

/// Run `f` on the contiguous data of a CPU tensor (used in backward passes).
pub(crate) fn with_data<T: Elem, R>(t: &Tensor, op: &str, f: impl FnOnce(&[T]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(c) => f(contiguous::<T>(c, l, op)?),
        _ => candle_core::bail!("{op}: fused kernels run on CPU tensors only"),
    }
}

/// A new tensor from `data` with the given shape, on the CPU.
pub(crate) fn tensor<T: Elem>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
    Tensor::from_vec(data, shape, &candle_core::Device::Cpu)
}

/// Threads for tensor work (candle's count, read once: candle re-derives it from /proc/cpuinfo
/// on every call unless `RAYON_NUM_THREADS` is set).
pub fn threads() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(candle_core::utils::get_num_threads)
}

/// Multiply-adds below which a GEMM runs on one thread: waking the pool costs more than it saves
/// (decode-sized products).
const PAR_MIN_MACS: usize = 1 << 21;

/// GEMM threads for an m×n×k product: all threads for a large one, one for a small one.
pub(crate) fn par_for(m: usize, n: usize, k: usize) -> Parallelism {
    let t = threads();
    if t > 1 && m * n * k >= PAR_MIN_MACS {
        Parallelism::Rayon(t)
    } else {
        Parallelism::None
    }
}

/// A row-major view for GEMM: element (i, j) at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<T> {
    pub ptr: *const T,
    pub rs: isize,
    pub cs: isize,
}

impl<T> Mat<T> {
    pub fn rows(ptr: *const T, rs: usize) -> Self {
        Self { ptr, rs: rs as isize, cs: 1 }
    }
    /// The transpose of a row-major matrix with row stride `rs`.
    pub fn t(ptr: *const T, rs: usize) -> Self {
        Self { ptr, rs: 1, cs: rs as isize }
    }
}

/// `dst (m×n) = [dst +] a (m×k) · b (k×n)`; `dst` row-major with row stride `dst_rs` (or column
/// stride when `dst_t`).
///
/// # Safety
/// The pointers must cover the addressed elements, and `dst` must not alias `a` or `b`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm<T: Elem>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    dst_rs: isize,
    dst_cs: isize,
    accumulate: bool,
    a: Mat<T>,
    b: Mat<T>,
    par: Parallelism,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        dst_cs,
        dst_rs,
        accumulate,
        a.ptr,
        a.cs,
        a.rs,
        b.ptr,
        b.cs,
        b.rs,
        if accumulate { T::one() } else { T::zero() },
        T::one(),
        false,
        false,
        false,
        par,
    )
}

/// A `*mut T` that may cross rayon tasks writing disjoint regions.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub *mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

/// A `*const T` shared by rayon tasks.
#[derive(Clone, Copy)]
pub(crate) struct SendConst<T>(pub *const T);
unsafe impl<T> Send for SendConst<T> {}
unsafe impl<T> Sync for SendConst<T> {}

#[cfg(test)]
mod tests {
    use super::exp_f32;

    #[test]
    fn fast_exp_matches_libm() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (exp_f32(x) as f64, (x as f64).exp());
            worst = worst.max((a - b).abs() / b);
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst:e}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-200.0) < 1e-38 && exp_f32(-200.0) >= 0.0);
        assert!(exp_f32(f32::NEG_INFINITY) == 0.0 || exp_f32(f32::NEG_INFINITY) < 1e-38);
        assert!(exp_f32(f32::NAN).is_nan());
        assert!(exp_f32(1000.0).is_finite());
    }

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 2001) as f32 / 400.0 - 2.5)
            .collect()
    }

    #[test]
    fn lane_reductions_match_plain_ones() {
        // Lengths below, at and across the lane count, with a remainder.
        for n in [0, 1, 5, 16, 17, 64, 100, 683] {
            let (a, b) = (data(n, 1), data(n, 2));
            let plain_dot: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            let plain_sum: f64 = a.iter().map(|&x| x as f64).sum();
            assert!((super::lane_dot(&a, &b) as f64 - plain_dot).abs() < 1e-4 * (1.0 + plain_dot.abs()), "dot {n}");
            assert!((super::lane_sum(&a) as f64 - plain_sum).abs() < 1e-4 * (1.0 + plain_sum.abs()), "sum {n}");
            let m = a.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(super::lane_max(&a), m, "max {n}");
        }
        // NaNs are skipped by the maximum (the softmax's NaN still shows in its exp and sum).
        assert_eq!(super::lane_max(&[1.0, f32::NAN, 3.0, -2.0]), 3.0);
        assert_eq!(super::lane_max::<f32>(&[]), f32::NEG_INFINITY);
    }

    #[test]
    fn wide_instructions_give_the_baseline_bits() {
        // The same softmax, RMS and dot product compiled for the build's baseline (this call)
        // and inside `simd` (AVX-512 or AVX2 where the CPU has them): identical bits.
        let x = data(4 * 133, 3);
        let bias: Vec<f32> = (0..x.len()).map(|i| if i % 7 == 0 { -1e9 } else { 0.0 }).collect();
        let mut base = x.clone();
        super::attention::softmax_rows(&mut base, &bias, 133, 0.125);
        let mut wide = x.clone();
        super::simd(
            #[inline(always)]
            || super::attention::softmax_rows(&mut wide, &bias, 133, 0.125),
        );
        assert!(base.iter().zip(&wide).all(|(a, b)| a.to_bits() == b.to_bits()));
        let r0 = super::rms_norm::inv_rms(&x, 1e-6);
        let r1 = super::simd(
            #[inline(always)]
            || super::rms_norm::inv_rms(&x, 1e-6),
        );
        assert_eq!(r0.to_bits(), r1.to_bits());
        let d0 = super::lane_dot(&x, &base);
        let d1 = super::simd(
            #[inline(always)]
            || super::lane_dot(&x, &base),
        );
        assert_eq!(d0.to_bits(), d1.to_bits());
        // And the softmax rows are distributions.
        for row in wide.chunks(133) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Shared checks: fused vs composed forward/backward, and central finite differences.
    use candle_core::{DType, Device, Tensor, Var};

    pub fn randn(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
    }

    pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
        assert_eq!(a.dims(), b.dims(), "shape mismatch");
        (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    /// A fixed random projection of an output to a scalar loss, so every output element matters.
    pub fn project(y: &Tensor, seed: u64) -> Tensor {
        let w = randn(y.dims(), seed, y.dtype());
        (y * w).unwrap().sum_all().unwrap()
    }

    /// Fused and composed functions of the same inputs agree in value and in every input's gradient.
    pub fn check_against_composed(
        inputs: &[Tensor],
        fused: impl Fn(&[Tensor]) -> Tensor,
        composed: impl Fn(&[Tensor]) -> Tensor,
        tol: f64,
    ) {
        let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let yf = fused(&ts);
        let yc = composed(&ts);
        let d = max_abs_diff(&yf, &yc);
        assert!(d < tol, "forward differs from composed: max |Δ| = {d:e}");
        let gf = project(&yf, 99).backward().unwrap();
        let gc = project(&yc, 99).backward().unwrap();
        for (i, t) in ts.iter().enumerate() {
            match (gf.get(t), gc.get(t)) {
                (Some(a), Some(b)) => {
                    let d = max_abs_diff(a, b);
                    assert!(d < tol, "gradient of input {i} differs from composed: max |Δ| = {d:e}");
                }
                (None, None) => {}
                (a, b) => panic!("input {i}: fused grad {:?} vs composed grad {:?}", a.is_some(), b.is_some()),
            }
        }
    }

    /// Analytic gradients of `project(f(inputs))` match central finite differences (f64 inputs)
    /// at every coordinate of every listed input.
    pub fn check_finite_differences(inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Tensor, check: &[usize]) {
        let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let loss = |ts: &[Tensor]| project(&f(ts), 7).to_scalar::<f64>().unwrap();
        let grads = project(&f(&ts), 7).backward().unwrap();
        let eps = 1e-6;
        for &i in check {
            let g: Vec<f64> = grads.get(&ts[i]).expect("no gradient").flatten_all().unwrap().to_vec1().unwrap();
            let base: Vec<f64> = ts[i].flatten_all().unwrap().to_vec1().unwrap();
            for (j, &gj) in g.iter().enumerate() {
                let eval = |delta: f64| {
                    let mut v = base.clone();
                    v[j] += delta;
                    let mut ts2 = ts.to_vec();
                    ts2[i] = Tensor::from_vec(v, ts[i].dims(), &Device::Cpu).unwrap();
                    loss(&ts2)
                };
                let num = (eval(eps) - eval(-eps)) / (2.0 * eps);
                let err = (num - gj).abs() / (1e-6 + num.abs().max(gj.abs()));
                assert!(err < 1e-5 || (num - gj).abs() < 1e-8, "input {i}[{j}]: analytic {gj} vs numeric {num}");
            }
        }
    }
}
