//! GEMM against a weight matrix packed once: `C = A·Wᵀ (+ b)` for decode-sized `A` (a few dozen
//! rows), with `W` stored as column panels the micro-kernel streams.
//!
//! A general GEMM (the `gemm` crate, candle's matmul) packs both operands on every call. In
//! decoding, `A` is thin and `W` is the large operand, so that packing is most of the
//! product's memory traffic — and the weights only change once per optimiser step. Here `W` is
//! packed once (and kept while the weights are unchanged) into panels of [`NR`] output columns
//! (`k × NR` floats each, 64-byte aligned), and each product reads the thin `A` in place.
//!
//! The micro-kernels keep a tile of `C` in registers: with AVX-512, `R ≤ 8` rows against two
//! adjacent panels (an 8 × 32 tile: two panel loads and eight broadcasts feed sixteen FMAs per
//! `k`; 233 GFLOP/s on one core of this project's Zen 5 CPU, about the gemm crate's own
//! large-GEMM rate there; four panels per broadcast measured no faster), or one panel where none
//! is left to pair; with AVX2 + FMA, `R ≤ 6`
//! against one panel (12 accumulators, the classic 6 × 16 shape). Every output element is one
//! fused multiply-add chain over `k` in order, starting from 0, so the result of a row does not
//! depend on which other rows share its block or thread, and every kernel — AVX-512, AVX2, the
//! portable fallback (`f32::mul_add` in the same order) — gives the same bits.

/// Output columns per packed panel (two 8-lane vectors).
pub const NR: usize = 16;
/// Rows per micro-kernel call, at most.
pub const MR: usize = 8;

/// The instruction set the micro-kernel runs on (detected once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2,
    Portable,
}

impl Isa {
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
            // OXRL_DECODE_ISA=avx2 / portable caps the choice (A/B measurements, tests of the
            // fallbacks on a machine that has more).
            *ISA.get_or_init(|| {
                let cap = std::env::var("OXRL_DECODE_ISA").unwrap_or_default();
                if cap == "portable" {
                    Isa::Portable
                } else if cap != "avx2" && is_x86_feature_detected!("avx512f") {
                    Isa::Avx512
                } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    Isa::Avx2
                } else {
                    Isa::Portable
                }
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Isa::Portable
        }
    }
    /// Rows per micro-kernel call on this instruction set.
    fn rows(self) -> usize {
        match self {
            Isa::Avx512 => 8,
            _ => 6,
        }
    }
}

/// A 64-byte-aligned f32 buffer.
struct Aligned {
    buf: Vec<f32>,
    off: usize,
}

impl Aligned {
    fn zeros(n: usize) -> Self {
        let buf = vec![0f32; n + 16];
        let off = (64 - (buf.as_ptr() as usize) % 64) % 64 / 4;
        Self { buf, off }
    }
    fn as_slice(&self) -> &[f32] {
        &self.buf[self.off..]
    }
    fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.buf[self.off..]
    }
}

/// A weight matrix `W` (`n` outputs × `k` inputs, the Hugging Face `[out, in]` layout) packed
/// for `x·Wᵀ`, with an optional bias.
pub struct PackedMatrix {
    pub k: usize,
    pub n: usize,
    data: Aligned,
    bias: Option<Vec<f32>>,
}

impl PackedMatrix {
    /// Pack the rows of several `[n_i, k]` matrices stacked (e.g. q, k and v into one product),
    /// with their biases (all or none).
    pub fn stack(parts: &[(&[f32], usize)], k: usize, bias: Option<Vec<f32>>) -> Self {
        let n: usize = parts.iter().map(|p| p.1).sum();
        let panels = n.div_ceil(NR);
        let mut data = Aligned::zeros(panels * k * NR);
        let d = data.as_mut_slice();
        let mut j = 0;
        for (w, rows) in parts {
            debug_assert_eq!(w.len(), rows * k);
            for row in w.chunks_exact(k) {
                let (p, c) = (j / NR, j % NR);
                let panel = &mut d[p * k * NR..(p + 1) * k * NR];
                for (kk, &x) in row.iter().enumerate() {
                    panel[kk * NR + c] = x;
                }
                j += 1;
            }
        }
        if let Some(b) = &bias {
            assert_eq!(b.len(), n, "bias length");
        }
        Self { k, n, data, bias }
    }

    /// Pack one `[n, k]` matrix.
    pub fn new(w: &[f32], n: usize, k: usize, bias: Option<Vec<f32>>) -> Self {
        Self::stack(&[(w, n)], k, bias)
    }

    /// `out[m × n] = a[m × k]·Wᵀ (+ b)`, on the calling thread. The micro-kernels read `A`'s
    /// rows in place (each broadcast loads one element of one of `R` rows; an interleaved copy of
    /// the rows measured 5-6 % of batch-64 decoding, for nothing the broadcasts need).
    pub fn matmul(&self, a: &[f32], m: usize, out: &mut [f32]) {
        let (k, n) = (self.k, self.n);
        assert!(a.len() >= m * k && out.len() >= m * n, "packed matmul: operand sizes");
        let isa = Isa::detect();
        let mut i0 = 0;
        while i0 < m {
            let r = (m - i0).min(isa.rows());
            let rows_a = &a[i0 * k..(i0 + r) * k];
            let rows = &mut out[i0 * n..(i0 + r) * n];
            match r {
                8 => self.row_block::<8>(isa, rows_a, rows),
                7 => self.row_block::<7>(isa, rows_a, rows),
                6 => self.row_block::<6>(isa, rows_a, rows),
                5 => self.row_block::<5>(isa, rows_a, rows),
                4 => self.row_block::<4>(isa, rows_a, rows),
                3 => self.row_block::<3>(isa, rows_a, rows),
                2 => self.row_block::<2>(isa, rows_a, rows),
                _ => self.row_block::<1>(isa, rows_a, rows),
            }
            i0 += r;
        }
    }

    /// Every column panel for one packed block of `R` rows, into `out` (`R × n`). With AVX-512,
    /// two panels at a time: each broadcast row element feeds two FMAs (one panel per call ran
    /// at 205 GFLOP/s on one core, two at 233, four no faster).
    fn row_block<const R: usize>(&self, isa: Isa, a: &[f32], out: &mut [f32]) {
        let (k, n) = (self.k, self.n);
        let w = self.data.as_slice();
        let panels = n.div_ceil(NR);
        let panel = |p: usize| &w[p * k * NR..(p + 1) * k * NR];
        let mut p = 0;
        while p < panels {
            let mut tiles = [[[0f32; NR]; MR]; 2];
            let done = match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 if p + 1 < panels => {
                    let (b0, b1) = (panel(p), panel(p + 1));
                    assert!(a.len() >= k * R && b0.len() >= k * NR && b1.len() >= k * NR && R <= MR);
                    let [t0, t1] = &mut tiles;
                    // SAFETY: AVX-512 was detected; the slices hold what the kernel reads, and the
                    // panels are 64-byte aligned.
                    unsafe { kernel_avx512_pair::<R>(k, a.as_ptr(), b0.as_ptr(), b1.as_ptr(), t0, t1) };
                    2
                }
                _ => {
                    kernel::<R>(isa, k, a, panel(p), &mut tiles[0]);
                    1
                }
            };
            for (q, tile) in tiles.iter().enumerate().take(done) {
                let c0 = (p + q) * NR;
                let cols = (n - c0).min(NR);
                for (row, t) in tile.iter().enumerate().take(R) {
                    let dst = &mut out[row * n + c0..row * n + c0 + cols];
                    match &self.bias {
                        Some(b) => {
                            for ((d, &x), &bb) in dst.iter_mut().zip(t).zip(&b[c0..c0 + cols]) {
                                *d = x + bb;
                            }
                        }
                        None => dst.copy_from_slice(&t[..cols]),
                    }
                }
            }
            p += done;
        }
    }
}

/// An `R × NR` tile of `A · panel` (`A`: `R` rows of `k`, row-major) into `tile` (rows `R..` untouched).
#[inline]
fn kernel<const R: usize>(isa: Isa, k: usize, a: &[f32], panel: &[f32], tile: &mut [[f32; NR]; MR]) {
    assert!(a.len() >= k * R && panel.len() >= k * NR && R <= MR);
    match isa {
        // SAFETY: the instruction sets were detected; the slices hold k·R and k·NR elements and
        // the panel is 64-byte aligned (every row of it is, NR·4 = 64 bytes).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { kernel_avx512::<R>(k, a.as_ptr(), panel.as_ptr(), tile) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if R <= 6 => unsafe { kernel_avx2::<R>(k, a.as_ptr(), panel.as_ptr(), tile) },
        _ => kernel_portable::<R>(k, a, panel, tile),
    }
}

/// The reference micro-kernel: the same fused multiply-add chain per element as the AVX2 one.
pub(crate) fn kernel_portable<const R: usize>(k: usize, a: &[f32], panel: &[f32], tile: &mut [[f32; NR]; MR]) {
    let mut acc = [[0f32; NR]; R];
    for kk in 0..k {
        let b = &panel[kk * NR..(kk + 1) * NR];
        for (r, accr) in acc.iter_mut().enumerate() {
            let x = a[r * k + kk];
            for (c, v) in accr.iter_mut().enumerate() {
                *v = x.mul_add(b[c], *v);
            }
        }
    }
    tile[..R].copy_from_slice(&acc);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2<const R: usize>(k: usize, a: *const f32, b: *const f32, tile: &mut [[f32; NR]; MR]) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    for kk in 0..k {
        let b0 = _mm256_load_ps(b.add(kk * NR));
        let b1 = _mm256_load_ps(b.add(kk * NR + 8));
        for (r, accr) in acc.iter_mut().enumerate() {
            let x = _mm256_broadcast_ss(&*a.add(r * k + kk));
            accr[0] = _mm256_fmadd_ps(x, b0, accr[0]);
            accr[1] = _mm256_fmadd_ps(x, b1, accr[1]);
        }
    }
    for (r, accr) in acc.iter().enumerate() {
        _mm256_storeu_ps(tile[r].as_mut_ptr(), accr[0]);
        _mm256_storeu_ps(tile[r].as_mut_ptr().add(8), accr[1]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel_avx512<const R: usize>(k: usize, a: *const f32, b: *const f32, tile: &mut [[f32; NR]; MR]) {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_ps(); R];
    for kk in 0..k {
        let bv = _mm512_load_ps(b.add(kk * NR));
        for (r, accr) in acc.iter_mut().enumerate() {
            *accr = _mm512_fmadd_ps(_mm512_set1_ps(*a.add(r * k + kk)), bv, *accr);
        }
    }
    for (r, accr) in acc.iter().enumerate() {
        _mm512_storeu_ps(tile[r].as_mut_ptr(), *accr);
    }
}

/// Two adjacent panels at once: an `R × 32` tile, each broadcast feeding two FMAs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel_avx512_pair<const R: usize>(
    k: usize,
    a: *const f32,
    b0: *const f32,
    b1: *const f32,
    t0: &mut [[f32; NR]; MR],
    t1: &mut [[f32; NR]; MR],
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    for kk in 0..k {
        let v0 = _mm512_load_ps(b0.add(kk * NR));
        let v1 = _mm512_load_ps(b1.add(kk * NR));
        for (r, accr) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_ps(*a.add(r * k + kk));
            accr[0] = _mm512_fmadd_ps(x, v0, accr[0]);
            accr[1] = _mm512_fmadd_ps(x, v1, accr[1]);
        }
    }
    for (r, accr) in acc.iter().enumerate() {
        _mm512_storeu_ps(t0[r].as_mut_ptr(), accr[0]);
        _mm512_storeu_ps(t1[r].as_mut_ptr(), accr[1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 2001) as f32 / 1000.0 - 1.0).collect()
    }

    /// Every shape class (full and partial row blocks, partial panels, a bias) against an f64
    /// product, and the portable kernel against the one this machine runs, bit for bit.
    #[test]
    fn packed_matmul_matches_reference_product() {
        for &(m, k, n) in &[(1, 7, 5), (6, 16, 16), (13, 33, 40), (64, 256, 100), (5, 683, 17)] {
            let a = data(m * k, 1);
            let w = data(n * k, 2);
            let b = data(n, 3);
            let pm = PackedMatrix::new(&w, n, k, Some(b.clone()));
            let mut out = vec![0f32; m * n];
            pm.matmul(&a, m, &mut out);
            for i in 0..m {
                for j in 0..n {
                    let r: f64 =
                        (0..k).map(|kk| a[i * k + kk] as f64 * w[j * k + kk] as f64).sum::<f64>() + b[j] as f64;
                    assert!((out[i * n + j] as f64 - r).abs() < 1e-4 * (1.0 + r.abs()), "({m},{k},{n}) [{i},{j}]");
                }
            }
            // Row results do not depend on the block they share: each row alone gives the same bits.
            for i in 0..m {
                let mut one = vec![0f32; n];
                pm.matmul(&a[i * k..(i + 1) * k], 1, &mut one);
                assert_eq!(one, out[i * n..(i + 1) * n], "row {i} of ({m},{k},{n})");
            }
        }
    }

    /// Every kernel this machine can run gives the portable kernel's bits.
    #[test]
    fn every_kernel_gives_the_same_bits() {
        let k = 37;
        let a = data(k * 6, 4);
        let w = data(NR * k, 5);
        let pm = PackedMatrix::new(&w, NR, k, None);
        let mut reference = [[0f32; NR]; MR];
        kernel_portable::<6>(k, &a, pm.data.as_slice(), &mut reference);
        let mut isas = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                isas.push(Isa::Avx2);
            }
            if is_x86_feature_detected!("avx512f") {
                isas.push(Isa::Avx512);
            }
        }
        for isa in isas {
            let mut t = [[0f32; NR]; MR];
            kernel::<6>(isa, k, &a, pm.data.as_slice(), &mut t);
            assert_eq!(t, reference, "{isa:?}");
        }
        // The AVX-512 two-panel kernel against the portable kernel on each panel.
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f") {
            let w2 = data(2 * NR * k, 9);
            let pm2 = PackedMatrix::new(&w2, 2 * NR, k, None);
            let (p0, p1) = pm2.data.as_slice().split_at(k * NR);
            let (mut r0, mut r1) = ([[0f32; NR]; MR], [[0f32; NR]; MR]);
            kernel_portable::<6>(k, &a, p0, &mut r0);
            kernel_portable::<6>(k, &a, &p1[..k * NR], &mut r1);
            let (mut t0, mut t1) = ([[0f32; NR]; MR], [[0f32; NR]; MR]);
            // SAFETY: AVX-512 was detected; the slices hold k·6 and k·NR elements, 64-byte aligned.
            unsafe { kernel_avx512_pair::<6>(k, a.as_ptr(), p0.as_ptr(), p1.as_ptr(), &mut t0, &mut t1) };
            assert_eq!((t0, t1), (r0, r1), "two-panel AVX-512 kernel");
        }
    }

    #[test]
    fn stacked_matrices_are_their_concatenation() {
        let (k, n1, n2) = (9, 5, 14);
        let (w1, w2) = (data(n1 * k, 6), data(n2 * k, 7));
        let a = data(3 * k, 8);
        let st = PackedMatrix::stack(&[(&w1, n1), (&w2, n2)], k, None);
        let mut both = vec![0f32; 3 * (n1 + n2)];
        st.matmul(&a, 3, &mut both);
        let mut o1 = vec![0f32; 3 * n1];
        let mut o2 = vec![0f32; 3 * n2];
        PackedMatrix::new(&w1, n1, k, None).matmul(&a, 3, &mut o1);
        PackedMatrix::new(&w2, n2, k, None).matmul(&a, 3, &mut o2);
        for i in 0..3 {
            assert_eq!(both[i * (n1 + n2)..i * (n1 + n2) + n1], o1[i * n1..(i + 1) * n1]);
            assert_eq!(both[i * (n1 + n2) + n1..(i + 1) * (n1 + n2)], o2[i * n2..(i + 1) * n2]);
        }
    }
}
