//! Criterion benches of the fused kernels against the composed candle ops they replace, forward
//! and forward + backward, at the shapes of the notes model's training step (batch 16 × 128
//! tokens, d_model 256, 4 heads, SwiGLU 683, vocabulary 64).
//!
//! Also the packed decoder's GEMM against candle's matmul at decode shapes (`packed_gemm`).
//!
//! `cargo bench -p oxrl-lm --bench kernels` (add `-- attention` to pick one).

use candle_core::{DType, Device, Tensor, Var, D};
use criterion::{criterion_group, criterion_main, Criterion};
use oxrl_lm::kernels::{attention, linear, logp_entropy, rms_norm, rope, swiglu};
use oxrl_lm::model::attention_bias;
use std::sync::Arc;

const B: usize = 16;
const T: usize = 128;
const DM: usize = 256;
const FF: usize = 683;
const H: usize = 4;
const HD: usize = DM / H;
const V: usize = 64;

type Op = Box<dyn Fn(&[Tensor]) -> Tensor>;

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap()
}

/// Benchmark `forward` and `forward + backward` (of a fixed projection to a scalar) of each
/// implementation on the same inputs.
fn bench_pair(c: &mut Criterion, name: &str, inputs: Vec<Tensor>, fused: Op, composed: Op) {
    let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let proj = randn(fused(&ts).dims());
    let mut g = c.benchmark_group(name);
    g.sample_size(20);
    for (label, f) in [("fused", &fused), ("composed", &composed)] {
        g.bench_function(format!("{label}/forward"), |b| b.iter(|| f(&ts)));
        g.bench_function(format!("{label}/forward+backward"), |b| {
            b.iter(|| (f(&ts) * &proj).unwrap().sum_all().unwrap().backward().unwrap())
        });
    }
    g.finish();
}

fn rope_tables(positions: &[u32]) -> (Arc<rope::RopeTable>, Tensor, Tensor) {
    let half = HD / 2;
    let (mut c, mut s) = (vec![], vec![]);
    for p in 0..T {
        for i in 0..half {
            let a = p as f64 / 10000f64.powf(2.0 * i as f64 / HD as f64);
            c.push(a.cos());
            s.push(a.sin());
        }
    }
    let table = rope::RopeTable::gather(&c, &s, half, positions).unwrap();
    let pick = |v: &[f64]| {
        let rows: Vec<f32> = positions
            .iter()
            .flat_map(|&p| v[p as usize * half..(p as usize + 1) * half].iter().map(|&x| x as f32))
            .collect();
        Tensor::from_vec(rows, (B, 1, T, half), &Device::Cpu).unwrap()
    };
    (table, pick(&c), pick(&s))
}

fn kernels(c: &mut Criterion) {
    bench_pair(
        c,
        "rms_norm",
        vec![randn(&[B, T, DM]), randn(&[DM])],
        Box::new(|x| rms_norm::rms_norm(&x[0], &x[1], 1e-6).unwrap()),
        Box::new(|x| {
            let ms = x[0].sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
            x[0].broadcast_mul(&(ms + 1e-6).unwrap().sqrt().unwrap().recip().unwrap())
                .unwrap()
                .broadcast_mul(&x[1])
                .unwrap()
        }),
    );
    bench_pair(
        c,
        "linear_256x683",
        vec![randn(&[B, T, DM]), randn(&[FF, DM])],
        Box::new(|x| linear::linear(&x[0], &x[1], None).unwrap()),
        Box::new(|x| {
            x[0].reshape((B * T, DM)).unwrap().matmul(&x[1].t().unwrap()).unwrap().reshape((B, T, FF)).unwrap()
        }),
    );
    bench_pair(
        c,
        "swiglu",
        vec![randn(&[B, T, FF]), randn(&[B, T, FF])],
        Box::new(|x| swiglu::swiglu(&x[0], &x[1]).unwrap()),
        Box::new(|x| (candle_nn::ops::silu(&x[0]).unwrap() * &x[1]).unwrap()),
    );
    let positions: Vec<u32> = (0..B).flat_map(|_| 0..T as u32).collect();
    let (table, cos, sin) = rope_tables(&positions);
    bench_pair(
        c,
        "rope",
        vec![randn(&[B, T, DM])],
        Box::new(move |x| rope::rope(&x[0], &table).unwrap()),
        Box::new(move |x| {
            let x = x[0].reshape((B, T, H, HD)).unwrap().transpose(1, 2).unwrap();
            let (x1, x2) = (x.narrow(D::Minus1, 0, HD / 2).unwrap(), x.narrow(D::Minus1, HD / 2, HD / 2).unwrap());
            let a = (x1.broadcast_mul(&cos).unwrap() - x2.broadcast_mul(&sin).unwrap()).unwrap();
            let b = (x2.broadcast_mul(&cos).unwrap() + x1.broadcast_mul(&sin).unwrap()).unwrap();
            Tensor::cat(&[a, b], D::Minus1).unwrap().transpose(1, 2).unwrap().reshape((B, T, DM)).unwrap()
        }),
    );
    let bias = attention_bias(&vec![vec![true; T]; B], T, &Device::Cpu, DType::F32).unwrap();
    let bias2 = bias.clone();
    bench_pair(
        c,
        "attention",
        vec![randn(&[B, T, DM]), randn(&[B, T, DM]), randn(&[B, T, DM])],
        Box::new(move |x| attention::attention(&x[0], &x[1], &x[2], &bias, H, H, true).unwrap()),
        Box::new(move |x| {
            let heads = |t: &Tensor| t.reshape((B, T, H, HD)).unwrap().transpose(1, 2).unwrap().contiguous().unwrap();
            let (q, k, v) = (heads(&x[0]), heads(&x[1]), heads(&x[2]));
            let s = (q.matmul(&k.t().unwrap()).unwrap() / (HD as f64).sqrt()).unwrap().broadcast_add(&bias2).unwrap();
            let p = candle_nn::ops::softmax(&s, D::Minus1).unwrap();
            p.matmul(&v).unwrap().transpose(1, 2).unwrap().reshape((B, T, DM)).unwrap()
        }),
    );
    let targets =
        Tensor::from_vec((0..B * T).map(|i| (i % V) as u32).collect::<Vec<_>>(), (B, T), &Device::Cpu).unwrap();
    let t2 = targets.clone();
    bench_pair(
        c,
        "logp_entropy",
        vec![randn(&[B, T, V])],
        Box::new(move |x| logp_entropy::logp_entropy(&x[0], &targets, 1.0).unwrap()),
        Box::new(move |x| {
            let lp = candle_nn::ops::log_softmax(&x[0], D::Minus1).unwrap();
            let logp = lp.gather(&t2.unsqueeze(2).unwrap(), 2).unwrap();
            let h = (lp.exp().unwrap() * &lp).unwrap().sum_keepdim(D::Minus1).unwrap().neg().unwrap();
            Tensor::cat(&[logp, h], D::Minus1).unwrap()
        }),
    );
}

/// The packed decoder's GEMM (weights packed once) against candle's matmul on the same
/// decode-sized products: 32 rows (one thread's half of a batch-64 step) and 1 row, through the
/// notes model's q/k/v, gate/up and down projections.
fn packed_gemm(c: &mut Criterion) {
    use oxrl_lm::decode::gemm::PackedMatrix;
    let mut g = c.benchmark_group("packed_gemm");
    g.sample_size(30);
    for (m, k, n) in [(32, DM, 3 * DM), (32, DM, 2 * FF), (32, FF, DM), (1, DM, 2 * FF)] {
        let (a, w) = (randn(&[m, k]), randn(&[n, k]));
        let packed = PackedMatrix::new(&w.flatten_all().unwrap().to_vec1::<f32>().unwrap(), n, k, None);
        let av = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut out = vec![0f32; m * n];
        g.bench_function(format!("packed/{m}x{k}x{n}"), |b| b.iter(|| packed.matmul(&av, m, &mut out)));
        let wt = w.t().unwrap();
        g.bench_function(format!("candle/{m}x{k}x{n}"), |b| b.iter(|| a.matmul(&wt).unwrap()));
    }
}

criterion_group!(benches, kernels, packed_gemm);
criterion_main!(benches);
