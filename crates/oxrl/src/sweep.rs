//! `oxrl sweep`: train every point of a grid of config values × seeds, then compare them.
//!
//! `--vary key=v1,v2,…` (repeatable) spans the grid; each point runs `--seeds N` times (seeds
//! 0..N, on top of the base config and `--set` overrides). Every run is an ordinary run folder
//! under `OUT/<point>/seed-<s>/`. At the end `OUT/summary.md` and `OUT/summary.json` hold, per
//! point, mean ± std over seeds of the final held-out pass@k (every k of `eval.k`), greedy
//! accuracy, entropy, response length and wall time, and `OUT/plots/*.png` overlay the training
//! curves (mean over seeds per step) of all points.
//!
//! A sweep can be re-run with the same arguments after an interruption: finished runs (marked by
//! `sweep_run.json`) are kept, unfinished run folders are started over.
//!
//! `--budget C` runs the SFT:RL budget-ratio procedure of "A Practitioner's Guide to Multi-turn
//! Agentic RL" (2025) instead of a grid: a fixed cost C = n_demos·c_demo + n_episodes·c_ep is
//! split at each fraction f of `--sft-fractions` (default 0, 0.1, 0.25, 0.5, 0.75, 1) — f·C/c_demo
//! demonstrations for the SFT warm-up (sft.steps = ⌊demos / sft.batch_size⌋) and the rest as RL
//! episodes (train.steps = ⌊episodes / (prompts_per_step·group_size)⌋) — and the summary names the
//! split with the best held-out success.

use crate::eval::EvalReport;
use crate::plots::{line_plot, series};
use crate::train::{load_config, run_train};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One `--vary key=v1,v2,…` axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<String>,
}

/// Parse `key=v1,v2,…`; commas inside brackets or quotes belong to a value (`eval.k=[1,8],[1,4]`).
pub fn parse_vary(spec: &str) -> Result<Axis> {
    let (key, vals) = spec.split_once('=').ok_or_else(|| anyhow!("--vary `{spec}`: expected key=v1,v2,…"))?;
    let key = key.trim();
    if key.is_empty() {
        bail!("--vary `{spec}`: empty key");
    }
    let (mut values, mut cur, mut depth, mut quote) = (Vec::new(), String::new(), 0i32, false);
    for c in vals.chars() {
        match c {
            '"' => quote = !quote,
            '[' | '{' if !quote => depth += 1,
            ']' | '}' if !quote => depth -= 1,
            ',' if depth == 0 && !quote => {
                values.push(std::mem::take(&mut cur).trim().to_string());
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    values.push(cur.trim().to_string());
    if values.iter().any(|v| v.is_empty()) {
        bail!("--vary `{spec}`: empty value");
    }
    Ok(Axis { key: key.to_string(), values })
}

/// The finished run of one (point, seed), as stored in its `sweep_run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepRun {
    pub point: String,
    pub seed: u64,
    pub run_dir: PathBuf,
    pub wall_s: f64,
    pub before: EvalReport,
    pub after: EvalReport,
}

/// Mean and (population) standard deviation over seeds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MeanStd {
    pub mean: f64,
    pub std: f64,
}

impl MeanStd {
    pub fn of(x: &[f64]) -> Self {
        let n = x.len().max(1) as f64;
        let mean = x.iter().sum::<f64>() / n;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        Self { mean, std: var.sqrt() }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PointSummary {
    pub point: String,
    /// The varied settings of this point.
    pub settings: BTreeMap<String, String>,
    pub seeds: usize,
    pub pass_at_k: BTreeMap<String, MeanStd>,
    pub accuracy: MeanStd,
    pub mean_entropy: MeanStd,
    pub mean_length: MeanStd,
    pub wall_s: MeanStd,
    pub runs: Vec<SweepRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    pub axes: Vec<String>,
    pub seeds: usize,
    pub points: Vec<PointSummary>,
    /// The point with the best mean held-out greedy accuracy (the first on ties).
    pub best: Option<String>,
}

pub struct SweepOptions<'a> {
    pub config: Option<&'a Path>,
    pub sets: &'a [String],
    pub axes: &'a [Axis],
    /// The SFT:RL budget procedure instead of the axes' grid.
    pub budget: Option<&'a Budget>,
    pub seeds: usize,
    pub out: &'a Path,
    pub quiet: bool,
}

/// A folder-safe name for a point: `key=value` pairs joined by `__`.
fn point_name(settings: &[(String, String)]) -> String {
    settings
        .iter()
        .map(|(k, v)| {
            format!("{k}={v}")
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || "._=-".contains(c) { c } else { '_' })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("__")
}

/// One point of a sweep: the settings it is shown and named by, and the config keys it sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub settings: Vec<(String, String)>,
    pub sets: Vec<(String, String)>,
}

/// The SFT:RL budget split (`--budget`): total cost, demonstration share of each point, and the
/// cost of one demonstration and of one RL episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub total: f64,
    pub fractions: Vec<f64>,
    pub demo_cost: f64,
    pub episode_cost: f64,
}

/// (sft.steps, train.steps) for spending `f` of the budget on demonstrations: whole optimiser
/// steps that never exceed the budget.
pub fn budget_split(b: &Budget, f: f64, sft_batch: usize, episodes_per_step: usize) -> (u64, u64) {
    let demos = f * b.total / b.demo_cost;
    let episodes = (1.0 - f) * b.total / b.episode_cost;
    let floor = |x: f64, per: usize| (x / per.max(1) as f64 + 1e-9).floor().max(0.0) as u64;
    (floor(demos, sft_batch), floor(episodes, episodes_per_step))
}

/// The points of a budget sweep, checked: C, the costs and the fractions in [0, 1].
pub fn budget_points(b: &Budget, sft_batch: usize, episodes_per_step: usize) -> Result<Vec<Point>> {
    if !(b.total > 0.0 && b.demo_cost > 0.0 && b.episode_cost > 0.0) {
        bail!("--budget, --demo-cost and --episode-cost must be > 0");
    }
    if b.fractions.is_empty() || b.fractions.iter().any(|f| !(0.0..=1.0).contains(f)) {
        bail!("--sft-fractions must be values in [0, 1] (got {:?})", b.fractions);
    }
    Ok(b.fractions
        .iter()
        .map(|&f| {
            let (sft, rl) = budget_split(b, f, sft_batch, episodes_per_step);
            Point {
                settings: vec![
                    ("sft_fraction".into(), format!("{f}")),
                    ("sft.steps".into(), sft.to_string()),
                    ("train.steps".into(), rl.to_string()),
                ],
                sets: vec![
                    ("train.sft_warmup".into(), (sft > 0).to_string()),
                    ("sft.steps".into(), sft.max(1).to_string()),
                    ("train.steps".into(), rl.to_string()),
                ],
            }
        })
        .collect())
}

/// Every combination of the axes' values, first axis slowest.
fn grid(axes: &[Axis]) -> Vec<Vec<(String, String)>> {
    axes.iter().fold(vec![vec![]], |acc, ax| {
        acc.iter()
            .flat_map(|prefix| {
                ax.values.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push((ax.key.clone(), v.clone()));
                    p
                })
            })
            .collect()
    })
}

pub fn run_sweep(o: &SweepOptions) -> Result<SweepReport> {
    if o.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let (points, axes): (Vec<Point>, Vec<String>) = match o.budget {
        Some(b) => {
            if !o.axes.is_empty() {
                bail!("oxrl sweep: --budget and --vary cannot be combined");
            }
            let base = load_config(o.config, o.sets, None)?;
            let per_step = base.train.prompts_per_step * base.train.group_size;
            let pts = budget_points(b, base.sft.batch_size, per_step)?;
            let axes = pts[0].settings.iter().map(|x| x.0.clone()).collect();
            (pts, axes)
        }
        None => {
            if o.axes.is_empty() {
                bail!("oxrl sweep needs at least one --vary key=v1,v2,… (or --budget C)");
            }
            let pts = grid(o.axes).into_iter().map(|p| Point { settings: p.clone(), sets: p }).collect();
            (pts, o.axes.iter().map(|a| a.key.clone()).collect())
        }
    };
    // Validate every configuration before training anything.
    for p in &points {
        for seed in 0..o.seeds {
            let sets = point_sets(o.sets, &p.sets, seed);
            load_config(o.config, &sets, None).with_context(|| format!("sweep point {}", point_name(&p.settings)))?;
        }
    }
    std::fs::create_dir_all(o.out).with_context(|| format!("creating {}", o.out.display()))?;
    let mut summaries = Vec::new();
    for (pi, p) in points.iter().enumerate() {
        let name = point_name(&p.settings);
        let mut runs = Vec::new();
        for seed in 0..o.seeds {
            let dir = o.out.join(&name).join(format!("seed-{seed}"));
            let marker = dir.join("sweep_run.json");
            if let Ok(text) = std::fs::read_to_string(&marker) {
                if let Ok(r) = serde_json::from_str::<SweepRun>(&text) {
                    runs.push(r);
                    continue;
                }
            }
            if dir.exists() {
                // An interrupted run: start it over.
                std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
            }
            if !o.quiet {
                eprintln!("sweep: point {}/{} {name}, seed {seed}", pi + 1, points.len());
            }
            let cfg = load_config(o.config, &point_sets(o.sets, &p.sets, seed), None)?;
            let t0 = Instant::now();
            let out = run_train(&cfg, Some(&dir), None, None, o.quiet)?;
            let wall_s = t0.elapsed().as_secs_f64();
            let after = out.after.clone().unwrap_or_else(|| out.before.clone());
            let r = SweepRun {
                point: name.clone(),
                seed: seed as u64,
                run_dir: dir.clone(),
                wall_s,
                before: out.before,
                after,
            };
            oxrl_lm::fsutil::write_atomic(&marker, serde_json::to_string_pretty(&r)?.as_bytes())?;
            runs.push(r);
        }
        summaries.push(summarise(&name, &p.settings, runs));
    }
    let mut best: Option<&PointSummary> = None;
    for p in &summaries {
        if best.is_none_or(|b| p.accuracy.mean > b.accuracy.mean) {
            best = Some(p);
        }
    }
    let best = best.map(|p| p.point.clone());
    let report = SweepReport { axes, seeds: o.seeds, points: summaries, best };
    oxrl_lm::fsutil::write_atomic(&o.out.join("summary.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
    oxrl_lm::fsutil::write_atomic(&o.out.join("summary.md"), report.markdown().as_bytes())?;
    overlay_plots(&report, &o.out.join("plots"))?;
    Ok(report)
}

fn point_sets(base: &[String], point: &[(String, String)], seed: usize) -> Vec<String> {
    let mut s = base.to_vec();
    s.extend(point.iter().map(|(k, v)| format!("{k}={v}")));
    s.push(format!("seed={seed}"));
    s
}

fn summarise(name: &str, point: &[(String, String)], runs: Vec<SweepRun>) -> PointSummary {
    let col = |f: &dyn Fn(&SweepRun) -> f64| MeanStd::of(&runs.iter().map(f).collect::<Vec<_>>());
    let ks: Vec<String> = runs.first().map(|r| r.after.pass_at_k.keys().cloned().collect()).unwrap_or_default();
    let pass_at_k = ks
        .iter()
        .map(|k| (k.clone(), col(&|r: &SweepRun| r.after.pass_at_k.get(k).copied().unwrap_or(f64::NAN))))
        .collect();
    PointSummary {
        point: name.to_string(),
        settings: point.iter().cloned().collect(),
        seeds: runs.len(),
        pass_at_k,
        accuracy: col(&|r| r.after.accuracy),
        mean_entropy: col(&|r| r.after.mean_entropy),
        mean_length: col(&|r| r.after.mean_length),
        wall_s: col(&|r| r.wall_s),
        runs,
    }
}

impl SweepReport {
    /// The comparison table: one row per point, mean ± std over seeds.
    pub fn markdown(&self) -> String {
        let mut ks: Vec<String> = self.points.iter().flat_map(|p| p.pass_at_k.keys().cloned()).collect();
        ks.sort_by_key(|k| k.parse::<usize>().unwrap_or(usize::MAX));
        ks.dedup();
        let ms = |m: &MeanStd, scale: f64, digits: usize| {
            format!("{:.*} ± {:.*}", digits, m.mean * scale, digits, m.std * scale)
        };
        let mut s = format!(
            "# Sweep over {} ({} seed{} per point)\n\nHeld-out results after training, mean ± std over seeds.\n\n| {} | {} | greedy acc. % | entropy | length | wall s |\n|{}|\n",
            self.axes.join(", "),
            self.seeds,
            if self.seeds == 1 { "" } else { "s" },
            self.axes.join(" | "),
            ks.iter().map(|k| format!("pass@{k} %")).collect::<Vec<_>>().join(" | "),
            vec!["---"; self.axes.len() + ks.len() + 4].join("|")
        );
        for p in &self.points {
            let vals: Vec<String> = self.axes.iter().map(|a| p.settings.get(a).cloned().unwrap_or_default()).collect();
            let pk: Vec<String> =
                ks.iter().map(|k| p.pass_at_k.get(k).map(|m| ms(m, 100.0, 1)).unwrap_or_else(|| "—".into())).collect();
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                vals.join(" | "),
                pk.join(" | "),
                ms(&p.accuracy, 100.0, 1),
                ms(&p.mean_entropy, 1.0, 3),
                ms(&p.mean_length, 1.0, 1),
                ms(&p.wall_s, 1.0, 0)
            ));
        }
        if let Some(b) = self.points.iter().find(|p| Some(&p.point) == self.best.as_ref()) {
            s.push_str(&format!(
                "\nBest held-out greedy accuracy: {} ({:.1} %).\n",
                b.point.replace("__", ", "),
                100.0 * b.accuracy.mean
            ));
        }
        s
    }
}

/// Per-step mean over seeds of one metric of a point's runs.
fn mean_curve(runs: &[SweepRun], key: &str) -> Vec<(f64, f64)> {
    let mut by_step: BTreeMap<i64, (f64, usize)> = BTreeMap::new();
    for r in runs {
        let Ok(text) = std::fs::read_to_string(r.run_dir.join("metrics.jsonl")) else { continue };
        let recs: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["phase"].as_str() == Some("rl"))
            .collect();
        for (x, y) in series(&recs, key) {
            let e = by_step.entry(x as i64).or_insert((0.0, 0));
            e.0 += y;
            e.1 += 1;
        }
    }
    by_step.into_iter().map(|(x, (s, n))| (x as f64, s / n as f64)).collect()
}

/// Overlay plots of the RL curves of every point.
fn overlay_plots(report: &SweepReport, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let plots = [
        ("reward", "reward (mean over seeds)", "reward_mean"),
        ("accuracy", "rollout accuracy (mean over seeds)", "accuracy"),
        ("entropy", "entropy (mean over seeds)", "entropy"),
        ("length", "response length (mean over seeds)", "response_length"),
        ("eval_pass_at_1", "held-out pass@1 (mean over seeds)", "eval.pass_at_k.1"),
    ];
    for (file, title, key) in plots {
        let series: Vec<(String, Vec<(f64, f64)>)> = report
            .points
            .iter()
            .map(|p| (p.point.replace("__", ", "), mean_curve(&p.runs, key)))
            .filter(|s| !s.1.is_empty())
            .collect();
        if !series.is_empty() {
            line_plot(&dir.join(format!("{file}.png")), title, &series)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_parsing_and_grid() {
        let a = parse_vary("train.advantage=grpo,rloo, nsr").unwrap();
        assert_eq!(a, Axis { key: "train.advantage".into(), values: vec!["grpo".into(), "rloo".into(), "nsr".into()] });
        let b = parse_vary("eval.k=[1,8],[1,4]").unwrap();
        assert_eq!(b.values, vec!["[1,8]", "[1,4]"]);
        let c = parse_vary(r#"name="a,b",c"#).unwrap();
        assert_eq!(c.values, vec![r#""a,b""#, "c"]);
        assert!(parse_vary("novalue").is_err() && parse_vary("k=a,,b").is_err() && parse_vary("=a").is_err());
        let g = grid(&[a, Axis { key: "train.lr".into(), values: vec!["1e-4".into(), "5e-5".into()] }]);
        assert_eq!(g.len(), 6);
        assert_eq!(point_name(&g[1]), "train.advantage=grpo__train.lr=5e-5");
        assert_eq!(point_name(&[("eval.k".into(), "[1,8]".into())]), "eval.k=_1_8_");
    }

    #[test]
    fn budget_splits_never_exceed_the_budget() {
        let b = Budget { total: 4096.0, fractions: vec![0.0, 0.25, 1.0], demo_cost: 1.0, episode_cost: 2.0 };
        // 64 demos per SFT step, 16 episodes per RL step
        assert_eq!(budget_split(&b, 0.0, 64, 16), (0, 128));
        assert_eq!(budget_split(&b, 0.25, 64, 16), (16, 96));
        assert_eq!(budget_split(&b, 1.0, 64, 16), (64, 0));
        for f in [0.0, 0.1, 0.33, 0.5, 0.9] {
            let (s, r) = budget_split(&b, f, 64, 16);
            assert!((s * 64) as f64 * b.demo_cost + (r * 16) as f64 * b.episode_cost <= b.total);
        }
        let pts = budget_points(&b, 64, 16).unwrap();
        assert_eq!(pts.len(), 3);
        assert_eq!(pts[0].sets[0], ("train.sft_warmup".to_string(), "false".to_string()));
        assert_eq!(point_name(&pts[1].settings), "sft_fraction=0.25__sft.steps=16__train.steps=96");
        assert!(budget_points(&Budget { fractions: vec![1.5], ..b.clone() }, 64, 16).is_err());
        assert!(budget_points(&Budget { total: 0.0, ..b }, 64, 16).is_err());
    }

    #[test]
    fn mean_std() {
        let m = MeanStd::of(&[1.0, 3.0]);
        assert_eq!((m.mean, m.std), (2.0, 1.0));
    }
}
