//! Helpers shared by the control integration tests: load an example config with overrides, run it
//! collecting the logged records, and check that an interrupted run resumes exactly.
#![allow(dead_code)]

use anyhow::Result;
use oxrl_control::train::{train, Summary, TrainOptions};
use oxrl_control::ControlConfig;
use std::path::Path;

/// `examples/control/<name>` with `--set` overrides.
pub fn example(name: &str, sets: &[&str]) -> ControlConfig {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/control").join(name);
    ControlConfig::load(&p, &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

/// Train (or resume) in `dir`; the records are returned without their timing (`sps`).
pub fn run(
    cfg: &ControlConfig,
    dir: &Path,
    resume: bool,
    stop_after: Option<u64>,
) -> (Result<Summary>, Vec<serde_json::Value>) {
    let opts = TrainOptions { run_dir: dir, resume, stop_after, device: candle_core::Device::Cpu };
    let mut recs = Vec::new();
    let s = train(cfg, &opts, &mut |r| {
        let mut r = r.clone();
        r.as_object_mut().unwrap().remove("sps");
        recs.push(r);
        Ok(())
    });
    (s, recs)
}

/// Interrupt after the checkpoint at `stop`, resume, and compare every record that has a `step`
/// with an uninterrupted run (records logged after the checkpoint the resumed run starts from are
/// logged again by it). Returns the uninterrupted run's records.
pub fn resumes_exactly(cfg: &ControlConfig, stop: u64) -> Vec<serde_json::Value> {
    let a = tempfile::tempdir().unwrap();
    let (s, full) = run(cfg, a.path(), false, None);
    s.unwrap();
    let b = tempfile::tempdir().unwrap();
    let (s, first) = run(cfg, b.path(), false, Some(stop));
    assert!(s.unwrap_err().to_string().contains("stopped after"));
    let (s, rest) = run(cfg, b.path(), true, None);
    s.unwrap();
    let stepped = |v: &[serde_json::Value]| v.iter().filter(|r| r.get("step").is_some()).cloned().collect::<Vec<_>>();
    let full_steps = stepped(&full);
    let ck_step = full_steps.iter().filter_map(|r| r["step"].as_u64()).filter(|&st| st >= stop).min().unwrap();
    let mut joined: Vec<_> = stepped(&first).into_iter().filter(|r| r["step"].as_u64().unwrap() <= ck_step).collect();
    joined.extend(stepped(&rest));
    assert_eq!(joined.len(), full_steps.len());
    for (x, y) in joined.iter().zip(&full_steps) {
        for (k, v) in x.as_object().unwrap() {
            assert_eq!(Some(v), y.get(k), "{k} at step {}", x["step"]);
        }
        assert_eq!(x, y);
    }
    full
}

/// Runs independent jobs (separately seeded training runs) on their own threads and returns their
/// results in order: CI has two cores and a test binary's long tests would otherwise run one
/// sub-run after another. A panic in any job fails the test.
pub fn parallel<'a, T: Send + 'a>(jobs: Vec<Box<dyn FnOnce() -> T + Send + 'a>>) -> Vec<T> {
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs.into_iter().map(|f| s.spawn(f)).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}
