//! PNG plots of a run's curves from `metrics.jsonl` (plotters, with the Hack font embedded so no
//! system fonts are needed).

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

static FONT: std::sync::Once = std::sync::Once::new();

fn register_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, epaint_default_fonts::HACK_REGULAR);
    });
}

/// Plot `series` (name, points) into `path`.
pub fn line_plot(path: &Path, title: &str, series: &[(String, Vec<(f64, f64)>)]) -> Result<()> {
    register_font();
    let pts: Vec<(f64, f64)> = series.iter().flat_map(|s| s.1.iter().copied()).filter(|p| p.1.is_finite()).collect();
    if pts.is_empty() {
        return Ok(());
    }
    let (mut x0, mut x1) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| (a.0.min(p.0), a.1.max(p.0)));
    let (mut y0, mut y1) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| (a.0.min(p.1), a.1.max(p.1)));
    if x1 <= x0 {
        x0 -= 1.0;
        x1 += 1.0;
    }
    if y1 <= y0 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let pad = 0.05 * (y1 - y0);
    let root = BitMapBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
        .map_err(|e| anyhow!("{e}"))?;
    chart.configure_mesh().x_desc("step").label_style(("sans-serif", 14)).draw().map_err(|e| anyhow!("{e}"))?;
    for (i, (name, s)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(s.iter().copied().filter(|p| p.1.is_finite()), color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    if series.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
    }
    root.present().map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(())
}

/// Points (step, value) of a dotted key (e.g. `reward_mean`, `eval.accuracy`) from metrics records.
pub fn series(records: &[serde_json::Value], key: &str) -> Vec<(f64, f64)> {
    records
        .iter()
        .filter_map(|r| {
            let mut v = r;
            for part in key.split('.') {
                v = v.get(part)?;
            }
            Some((r.get("step")?.as_f64()?, v.as_f64()?))
        })
        .collect()
}

/// One plot file: (file stem, title, [(metric key, legend label)]).
type Plot<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// Draw each plot whose series have points into `dir/<file>.png`.
fn draw(dir: &Path, records: &[serde_json::Value], plots: &[Plot]) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for (file, title, keys) in plots {
        let s: Vec<(String, Vec<(f64, f64)>)> =
            keys.iter().map(|(k, label)| (label.to_string(), series(records, k))).filter(|s| !s.1.is_empty()).collect();
        if s.is_empty() {
            continue;
        }
        let p = dir.join(format!("{file}.png"));
        line_plot(&p, title, &s)?;
        out.push(p);
    }
    Ok(out)
}

/// The standard plots of an RL run: reward, accuracy, entropy, KL, length.
pub fn plot_run(run_dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let text = std::fs::read_to_string(run_dir.join("metrics.jsonl"))?;
    let records: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["phase"].as_str() != Some("sft"))
        .collect();
    let dir = run_dir.join("plots");
    std::fs::create_dir_all(&dir)?;
    let plots: [Plot; 5] = [
        ("reward", "reward (rollout batch)", &[("reward_mean", "mean reward")]),
        (
            "accuracy",
            "accuracy",
            &[
                ("accuracy", "rollout batch"),
                ("eval.accuracy", "held-out greedy"),
                ("eval.pass_at_k.1", "held-out pass@1"),
            ],
        ),
        ("entropy", "entropy (nats/token)", &[("entropy", "rollout entropy")]),
        ("kl", "KL", &[("kl_ref", "KL to reference (k3)"), ("approx_kl", "approx KL to old policy")]),
        ("length", "response length (tokens)", &[("response_length", "mean length")]),
    ];
    draw(&dir, &records, &plots)
}

/// The plots of a control run: training and evaluation return, episode length, losses.
pub fn plot_control_run(run_dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let text = std::fs::read_to_string(run_dir.join("metrics.jsonl"))?;
    let records: Vec<serde_json::Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let dir = run_dir.join("plots");
    std::fs::create_dir_all(&dir)?;
    let plots: [Plot; 3] = [
        (
            "return",
            "episode return",
            &[("episode_return", "training episodes (moving mean)"), ("eval_return", "deterministic policy (eval)")],
        ),
        ("length", "episode length", &[("episode_length", "training episodes (moving mean)")]),
        (
            "losses",
            "losses",
            &[
                ("pg_loss", "policy loss"),
                ("value_loss", "value loss"),
                ("td_loss", "TD loss"),
                ("qf_loss", "Q loss"),
                ("actor_loss", "actor loss"),
            ],
        ),
    ];
    draw(&dir, &records, &plots)
}
