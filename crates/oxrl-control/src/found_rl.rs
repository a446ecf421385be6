//! Found-RL — "Foundation-model-enhanced RL for Autonomous Driving" (2026): the pieces that let a
//! slow foundation model guide a fast off-policy learner without ever blocking it.
//!
//! - [`BatchServer`]: asynchronous batched inference — workers submit (id, request) and keep
//!   stepping; a server thread collects requests until `batch_size` or `wait` has passed since the
//!   first pending one, runs one batched call and files each result under its id; the learner
//!   takes whatever has arrived (`has_vlm_action` = 0 otherwise).
//! - Value-Margin Regularisation: the critic loss adds
//!   `λ(t)·mean(has·(Q(s, a_vlm) − (sg(Q(s, a_data)) + m))²)`, m = 2, λ = 1 until t0 then linear to 0
//!   at T.
//! - Advantage-Weighted Action Guidance: `adv = min_j Q_j(s, a_vlm) − min_j Q_j(s, π_det(s))`, gated
//!   on adv > 0 (and a VLM action), `w = min(exp(adv/β), w_max)`,
//!   `L_awag = −mean_gated(w·log π(a_vlm | s))`, added to the actor loss with c_awag.
//! - Conditional contrastive action alignment (CLIP bonus): over the action anchors of the frame's
//!   (command, speed) context, `raw = max(0, p(executed) − max p(non-neighbours))`, normalised with
//!   running statistics: `b = clip((raw − μ)/√(var + 1e−8), −1, 1)·scale`.
//!
//! CONFIRMED from ys-qu/found-rl (train_rl_asycn_vlm.py server loops and CLIP bonus;
//! agents/rl_vlm/models/sac.py, drqv2.py: "pvp" = VMR, "awac" = AWAG). SAC uses the server, VMR and
//! AWAG with `sac.guide = "scripted"` (reach's noisy expert as the slow "VLM"; its answers attach to
//! the replay slots at the next iteration, a fixed point, so runs stay reproducible); the CLIP
//! bonus has no image-rendering environment to run on yet.

use anyhow::Result;
use candle_core::Tensor;
use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// λ(t) of VMR: 1 until `t0`, then linear to 0 at `t_total`.
pub fn vmr_lambda(t: u64, t0: u64, t_total: u64) -> f64 {
    if t <= t0 {
        1.0
    } else if t >= t_total || t_total <= t0 {
        0.0
    } else {
        1.0 - (t - t0) as f64 / (t_total - t0) as f64
    }
}

/// VMR's critic term over a batch: `λ·mean(has·(q_vlm − (sg(q_data) + margin))²)` (`has` is
/// 1 where the row has a VLM action, else 0; the mean is over all rows).
pub fn vmr_loss(q_vlm: &Tensor, q_data: &Tensor, has: &Tensor, margin: f64, lambda: f64) -> Result<Tensor> {
    let d = (q_vlm - (q_data.detach() + margin)?)?;
    Ok(((d.sqr()? * has)?.mean_all()? * lambda)?)
}

/// AWAG's actor term: (loss, the weights w per row, 0 where gated off).
pub fn awag_loss(
    q_vlm_min: &Tensor,
    q_pi_min: &Tensor,
    logp_vlm: &Tensor,
    has: &Tensor,
    beta: f64,
    w_max: f64,
) -> Result<(Tensor, Vec<f64>)> {
    let adv: Vec<f64> = (q_vlm_min - q_pi_min)?.detach().to_dtype(candle_core::DType::F64)?.to_vec1()?;
    let hv: Vec<f64> = has.to_dtype(candle_core::DType::F64)?.to_vec1()?;
    let w: Vec<f64> = adv
        .iter()
        .zip(&hv)
        .map(|(&a, &h)| if a > 0.0 && h > 0.0 { (a / beta).exp().min(w_max) } else { 0.0 })
        .collect();
    let gated = w.iter().filter(|&&x| x > 0.0).count();
    let wt = Tensor::from_vec(w.iter().map(|&x| x as f32).collect::<Vec<_>>(), w.len(), logp_vlm.device())?
        .to_dtype(logp_vlm.dtype())?;
    let loss =
        if gated == 0 { (logp_vlm.sum_all()? * 0.0)? } else { ((logp_vlm * wt)?.sum_all()? * (-1.0 / gated as f64))? };
    Ok((loss, w))
}

/// The CLIP bonus's raw alignment: `max(0, p(executed) − max p(a))` over the actions that are
/// neither the executed one nor among its semantic `neighbours`.
pub fn clip_alignment(probs: &[f64], executed: usize, neighbours: &[usize]) -> f64 {
    let neg = probs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != executed && !neighbours.contains(i))
        .map(|(_, &p)| p)
        .fold(0.0, f64::max);
    (probs[executed] - neg).max(0.0)
}

/// Running mean / variance (Welford) normalising the raw bonus: `clip((raw − μ)/√(var + 1e−8),
/// −1, 1)·scale`.
#[derive(Debug, Clone, Default)]
pub struct BonusNorm {
    n: f64,
    mean: f64,
    m2: f64,
}

impl BonusNorm {
    pub fn bonus(&mut self, raw: f64, scale: f64) -> f64 {
        self.n += 1.0;
        let d = raw - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (raw - self.mean);
        let var = if self.n > 1.0 { self.m2 / self.n } else { 0.0 };
        ((raw - self.mean) / (var + 1e-8).sqrt()).clamp(-1.0, 1.0) * scale
    }
}

/// Asynchronous batched inference: requests are collected into batches of at most `batch_size`,
/// a batch being flushed when full or `wait` after its first request; each result is filed under
/// its request id. Nobody blocks on the model: [`BatchServer::take`] returns what has arrived.
pub struct BatchServer<Req: Send + 'static, Resp: Send + 'static> {
    tx: Option<mpsc::Sender<(u64, Req)>>,
    results: Arc<Mutex<HashMap<u64, Resp>>>,
    worker: Option<std::thread::JoinHandle<()>>,
    /// Batch sizes run so far (diagnostics).
    pub batches: Arc<Mutex<Vec<usize>>>,
}

impl<Req: Send + 'static, Resp: Send + 'static> BatchServer<Req, Resp> {
    pub fn new(batch_size: usize, wait: Duration, model: impl Fn(&[Req]) -> Vec<Resp> + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel::<(u64, Req)>();
        let results: Arc<Mutex<HashMap<u64, Resp>>> = Arc::default();
        let batches: Arc<Mutex<Vec<usize>>> = Arc::default();
        let (res, bs) = (results.clone(), batches.clone());
        let worker = std::thread::spawn(move || {
            let mut pending: Vec<(u64, Req)> = Vec::new();
            let mut first: Option<Instant> = None;
            loop {
                let timeout = first.map_or(Duration::from_secs(3600), |f| wait.saturating_sub(f.elapsed()));
                let closed = match rx.recv_timeout(timeout) {
                    Ok(item) => {
                        first.get_or_insert_with(Instant::now);
                        pending.push(item);
                        false
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => false,
                    Err(mpsc::RecvTimeoutError::Disconnected) => true,
                };
                let due = first.is_some_and(|f| f.elapsed() >= wait);
                if !pending.is_empty() && (pending.len() >= batch_size || due || closed) {
                    let n = pending.len().min(batch_size);
                    let batch: Vec<(u64, Req)> = pending.drain(..n).collect();
                    let (ids, reqs): (Vec<u64>, Vec<Req>) = batch.into_iter().unzip();
                    let out = model(&reqs);
                    bs.lock().expect("server state").push(ids.len());
                    let mut r = res.lock().expect("server state");
                    for (id, o) in ids.into_iter().zip(out) {
                        r.insert(id, o);
                    }
                    first = if pending.is_empty() { None } else { Some(Instant::now()) };
                }
                if closed && pending.is_empty() {
                    return;
                }
            }
        });
        Self { tx: Some(tx), results, worker: Some(worker), batches }
    }

    /// Queue a request; never waits for the model.
    pub fn submit(&self, id: u64, req: Req) {
        if let Some(tx) = &self.tx {
            let _ = tx.send((id, req));
        }
    }

    /// The results that have arrived, removed from the server.
    pub fn take(&self) -> HashMap<u64, Resp> {
        std::mem::take(&mut *self.results.lock().expect("server state"))
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Drop for BatchServer<Req, Resp> {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    #[test]
    fn vmr_is_zero_at_the_margin_and_masked_rows_do_not_count() {
        let l = vmr_loss(&t(&[3.0, 7.0]), &t(&[1.0, 5.0]), &t(&[1.0, 1.0]), 2.0, 1.0).unwrap();
        assert_eq!(l.to_scalar::<f32>().unwrap(), 0.0);
        // Row 2 is far off but masked: only row 1's (0 − 3)² / 2 counts.
        let l = vmr_loss(&t(&[0.0, 100.0]), &t(&[1.0, 0.0]), &t(&[1.0, 0.0]), 2.0, 1.0).unwrap();
        assert!((l.to_scalar::<f32>().unwrap() - 4.5).abs() < 1e-6);
        assert_eq!(vmr_lambda(10, 50, 150), 1.0);
        assert_eq!(vmr_lambda(100, 50, 150), 0.5);
        assert_eq!(vmr_lambda(200, 50, 150), 0.0);
        // The critic's data value gets no gradient from the term.
        let q = candle_core::Var::new(&[1.0f32], &Device::Cpu).unwrap();
        let l = vmr_loss(&t(&[0.0]), q.as_tensor(), &t(&[1.0]), 2.0, 1.0).unwrap();
        assert!(l.backward().unwrap().get(q.as_tensor()).is_none());
    }

    #[test]
    fn awag_gates_and_clips_its_weights() {
        let logp = t(&[-1.0, -2.0, -3.0, -4.0]);
        let (l, w) =
            awag_loss(&t(&[0.0, 0.0, 0.0, 0.0]), &t(&[1.0, 2.0, 0.0, 5.0]), &logp, &t(&[1.0; 4]), 2.0, 20.0).unwrap();
        assert_eq!(w, vec![0.0; 4]);
        assert_eq!(l.to_scalar::<f32>().unwrap(), 0.0, "adv ≤ 0 everywhere: no loss");
        let (l, w) =
            awag_loss(&t(&[2.0, 10.0, 5.0, 1.0]), &t(&[0.0; 4]), &logp, &t(&[1.0, 1.0, 0.0, 1.0]), 2.0, 20.0).unwrap();
        assert!((w[0] - 1f64.exp()).abs() < 1e-9, "adv 2 → e¹");
        assert_eq!(w[1], 20.0, "adv 10 → e⁵ clipped to 20");
        assert_eq!(w[2], 0.0, "no VLM action");
        let want = (w[0] + 20.0 * 2.0 + w[3] * 4.0) / 3.0; // −mean_gated(w·log π)
        assert!((l.to_scalar::<f32>().unwrap() as f64 - want).abs() < 1e-4);
    }

    #[test]
    fn clip_bonus_excludes_neighbours_and_normalises() {
        // executed top-1 at 0.6, its neighbour 0.25, best non-neighbour 0.1 → raw 0.5
        let probs = [0.6, 0.25, 0.1, 0.05];
        assert!((clip_alignment(&probs, 0, &[1]) - 0.5).abs() < 1e-12);
        assert!((clip_alignment(&probs, 0, &[]) - 0.35).abs() < 1e-12);
        assert_eq!(clip_alignment(&probs, 3, &[]), 0.0);
        let mut n = BonusNorm::default();
        let b: Vec<f64> = [0.1, 0.5, 0.1, 0.5, 5.0].iter().map(|&r| n.bonus(r, 0.25)).collect();
        assert!(b.iter().all(|x| x.abs() <= 0.25 + 1e-12) && b[4] == 0.25, "{b:?}");
    }

    #[test]
    fn batch_server_flushes_on_size_or_wait_and_maps_results_to_ids() {
        use rand::seq::SliceRandom;
        // batch 4, 3 requests: flushed by the wait, not held back.
        let s = BatchServer::new(4, Duration::from_millis(150), |xs: &[u64]| xs.iter().map(|x| x * 10).collect());
        for id in [5, 9, 2] {
            s.submit(id, id + 100);
        }
        let t0 = Instant::now();
        while s.batches.lock().unwrap().is_empty() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let r = s.take();
        assert_eq!(r, HashMap::from([(5, 1050), (9, 1090), (2, 1020)]));
        assert_eq!(*s.batches.lock().unwrap(), vec![3]);
        // Random arrival order from several workers: every result under its own id, batches ≤ 4.
        let s =
            Arc::new(BatchServer::new(4, Duration::from_millis(5), |xs: &[u64]| xs.iter().map(|x| x * 10).collect()));
        let mut ids: Vec<u64> = (0..60).collect();
        ids.shuffle(&mut oxrl_core::seed::rng(0, "arrivals", 0));
        let handles: Vec<_> = ids
            .chunks(15)
            .map(|c| {
                let (s, c) = (s.clone(), c.to_vec());
                std::thread::spawn(move || c.into_iter().for_each(|id| s.submit(id, id)))
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        let mut got = HashMap::new();
        let t0 = Instant::now();
        while got.len() < 60 && t0.elapsed() < Duration::from_secs(10) {
            got.extend(s.take());
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(got.len(), 60);
        assert!(got.iter().all(|(id, r)| *r == id * 10));
        assert!(s.batches.lock().unwrap().iter().all(|&b| (1..=4).contains(&b)));
    }
}
