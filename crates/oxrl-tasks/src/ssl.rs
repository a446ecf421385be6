//! SSL4RL — "Self-supervised Learning as Intrinsic Reward for Visual-Language Reasoning" (2025):
//! self-supervised tasks whose labels come from a known transformation, so the reward is
//! verifiable without annotation. The spec's CPU stand-in: 8 × 8 synthetic digit images (a 5 × 7
//! glyph at a random offset plus a few noise pixels), written as text — rows of `#` / `.` joined
//! by `/` — for a text policy.
//!
//! Kinds (`task.kind`, or `mixed` to draw one per problem):
//! - `rotation`: `rot IMG=` → the clockwise angle `0` / `90` / `180` / `270` the upright digit was
//!   turned by; every angle that yields the same picture is accepted (symmetric images);
//! - `jigsaw`: `jig IMG=` → the image cut into g × g patches and shuffled; the answer lists, for
//!   each shown position (row-major), the original position of its patch (`2,0,3,1`); reward = the
//!   fraction of positions right (a position is right when the named original patch looks like the
//!   shown one) or, with `jigsaw_reward = "exact"`, 1 only for a fully right answer;
//! - `contrastive`: `same IMG IMG=` → `yes` when both views (each shifted by at most one pixel with
//!   one pixel flipped) come from the same digit image, `no` otherwise;
//! - `position`: `fill IMG A P B P C P=` → the letter of the patch that fills the masked (`?`)
//!   patch; the distractors are the same patch of other images (any candidate identical to the
//!   true patch is accepted).
//!
//! INFERRED from the abstract (as the spec says): the text rendering, the glyph images and the
//! answer formats are this stand-in's choices.

use crate::{oxrl_rng::Rng, Problem, Splits, Task, Verdict};
use anyhow::{ensure, Result};
use rand::seq::SliceRandom;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

pub const SIZE: usize = 8;
pub const KINDS: [&str; 4] = ["rotation", "jigsaw", "contrastive", "position"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SslConfig {
    /// rotation, jigsaw, contrastive, position, or mixed (one drawn per problem).
    pub kind: String,
    /// Jigsaw and position patches: a g × g grid (2 or 4).
    pub grid: usize,
    /// Jigsaw reward: "partial" (share of positions right) or "exact".
    pub jigsaw_reward: String,
    /// Noise pixels added to each image (0..=max_noise).
    pub max_noise: usize,
    pub test_size: usize,
}

impl Default for SslConfig {
    fn default() -> Self {
        Self { kind: "rotation".into(), grid: 2, jigsaw_reward: "partial".into(), max_noise: 2, test_size: 200 }
    }
}

/// A square binary image, row-major.
pub type Img = Vec<Vec<bool>>;

/// 5 × 7 digit glyphs.
const FONT: [[&str; 7]; 10] = [
    [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."],
    ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."],
    [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"],
    ["####.", "....#", "....#", ".###.", "....#", "....#", "####."],
    ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],
    ["#####", "#....", "####.", "....#", "....#", "#...#", ".###."],
    ["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."],
    ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."],
    [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."],
    [".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."],
];

/// A digit glyph at a random offset with up to `max_noise` flipped background pixels.
pub fn digit_image(rng: &mut Rng, max_noise: usize) -> Img {
    let d = rng.random_range(0..10);
    let (ox, oy) = (rng.random_range(0..=SIZE - 5), rng.random_range(0..=SIZE - 7));
    let mut img = vec![vec![false; SIZE]; SIZE];
    for (y, row) in FONT[d].iter().enumerate() {
        for (x, c) in row.chars().enumerate() {
            img[oy + y][ox + x] = c == '#';
        }
    }
    for _ in 0..rng.random_range(0..=max_noise) {
        let (x, y) = (rng.random_range(0..SIZE), rng.random_range(0..SIZE));
        img[y][x] = !img[y][x];
    }
    img
}

pub fn render(img: &Img) -> String {
    img.iter().map(|r| r.iter().map(|&b| if b { '#' } else { '.' }).collect::<String>()).collect::<Vec<_>>().join("/")
}

pub fn parse(s: &str) -> Option<Img> {
    let rows: Vec<Vec<bool>> = s.split('/').map(|r| r.chars().map(|c| c == '#').collect()).collect();
    let n = rows.len();
    (n > 0 && rows.iter().all(|r| r.len() == n)).then_some(rows)
}

/// Rotate clockwise by k quarter turns.
pub fn rotate(img: &Img, k: usize) -> Img {
    let n = img.len();
    let mut out = img.clone();
    for _ in 0..k % 4 {
        let prev = out.clone();
        for (y, row) in out.iter_mut().enumerate() {
            for (x, v) in row.iter_mut().enumerate() {
                *v = prev[n - 1 - x][y];
            }
        }
    }
    out
}

/// The g × g patches of an image, row-major.
pub fn patches(img: &Img, g: usize) -> Vec<Img> {
    let s = img.len() / g;
    (0..g * g).map(|i| (0..s).map(|y| img[(i / g) * s + y][(i % g) * s..(i % g + 1) * s].to_vec()).collect()).collect()
}

/// Reassemble patches (row-major) into one image.
pub fn assemble(ps: &[Img], g: usize) -> Img {
    let s = ps[0].len();
    let mut img = vec![vec![false; s * g]; s * g];
    for (i, p) in ps.iter().enumerate() {
        for (y, row) in p.iter().enumerate() {
            img[(i / g) * s + y][(i % g) * s..(i % g + 1) * s].copy_from_slice(row);
        }
    }
    img
}

/// Shift by (dx, dy) ∈ {−1, 0, 1}² (vacated pixels off) and flip one pixel: a contrastive view.
fn view(img: &Img, rng: &mut Rng) -> Img {
    let n = img.len() as i64;
    let (dx, dy) = (rng.random_range(-1..=1i64), rng.random_range(-1..=1i64));
    let mut out = vec![vec![false; n as usize]; n as usize];
    for y in 0..n {
        for x in 0..n {
            let (sx, sy) = (x - dx, y - dy);
            if (0..n).contains(&sx) && (0..n).contains(&sy) {
                out[y as usize][x as usize] = img[sy as usize][sx as usize];
            }
        }
    }
    let (x, y) = (rng.random_range(0..n as usize), rng.random_range(0..n as usize));
    out[y][x] = !out[y][x];
    out
}

/// Rotation reward: 1 when turning the upright image by the answered angle gives the shown one.
pub fn rotation_reward(upright: &Img, shown: &Img, answer: &str) -> Option<f64> {
    let k = match answer.trim() {
        "0" => 0,
        "90" => 1,
        "180" => 2,
        "270" => 3,
        _ => return None,
    };
    Some((rotate(upright, k) == *shown) as u8 as f64)
}

/// Jigsaw reward of an answered permutation: the share of shown positions whose named original
/// patch looks like the shown patch (`exact`: 1 only when all do). None when the answer is not a
/// permutation of 0..P.
pub fn jigsaw_reward(original: &[Img], shown: &[Img], answer: &str, exact: bool) -> Option<f64> {
    let perm: Vec<usize> = answer.trim().split(',').map(|x| x.trim().parse().ok()).collect::<Option<_>>()?;
    let p = original.len();
    let mut seen = vec![false; p];
    if perm.len() != p || perm.iter().any(|&i| i >= p || std::mem::replace(&mut seen[i], true)) {
        return None;
    }
    let right = perm.iter().enumerate().filter(|&(pos, &orig)| original[orig] == shown[pos]).count();
    let share = right as f64 / p as f64;
    Some(if exact { (right == p) as u8 as f64 } else { share })
}

pub struct Ssl {
    cfg: SslConfig,
    splits: Splits,
}

impl Ssl {
    pub fn new(cfg: SslConfig, seed: u64) -> Result<Self> {
        ensure!(
            cfg.kind == "mixed" || KINDS.contains(&cfg.kind.as_str()),
            "task.kind must be one of rotation, jigsaw, contrastive, position, mixed (got `{}`)",
            cfg.kind
        );
        ensure!(matches!(cfg.grid, 2 | 4), "task.grid must be 2 or 4 (got {})", cfg.grid);
        ensure!(
            matches!(cfg.jigsaw_reward.as_str(), "partial" | "exact"),
            "task.jigsaw_reward must be partial or exact (got `{}`)",
            cfg.jigsaw_reward
        );
        ensure!(cfg.max_noise <= 8, "task.max_noise must be at most 8");
        let mut t = Self { splits: Splits { seed, test: vec![], keys: Default::default() }, cfg };
        t.splits = Splits::new(seed, t.cfg.test_size, |r| t.make(r));
        Ok(t)
    }

    fn make(&self, rng: &mut Rng) -> (String, Problem) {
        let kind = if self.cfg.kind == "mixed" { KINDS[rng.random_range(0..4)] } else { self.cfg.kind.as_str() };
        let img = digit_image(rng, self.cfg.max_noise);
        let g = self.cfg.grid;
        let (prompt, answer, meta) = match kind {
            "rotation" => {
                let k = rng.random_range(0..4);
                let shown = rotate(&img, k);
                let meta = serde_json::json!({"kind": kind, "upright": render(&img), "shown": render(&shown)});
                (format!("rot {}=", render(&shown)), (k * 90).to_string(), meta)
            }
            "jigsaw" => {
                let ps = patches(&img, g);
                let mut perm: Vec<usize> = (0..g * g).collect();
                perm.shuffle(rng);
                let shown: Vec<Img> = perm.iter().map(|&i| ps[i].clone()).collect();
                let shown_img = assemble(&shown, g);
                let answer = perm.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
                let meta = serde_json::json!({"kind": kind, "original": render(&img), "shown": render(&shown_img)});
                (format!("jig {}=", render(&shown_img)), answer, meta)
            }
            "contrastive" => {
                let same = rng.random::<bool>();
                let other = if same { img.clone() } else { digit_image(rng, self.cfg.max_noise) };
                let (a, b) = (view(&img, rng), view(&other, rng));
                let meta = serde_json::json!({"kind": kind});
                (format!("same {} {}=", render(&a), render(&b)), if same { "yes" } else { "no" }.to_string(), meta)
            }
            _ => {
                let ps = patches(&img, g);
                let hole = rng.random_range(0..g * g);
                let mut masked = ps.clone();
                masked[hole] = vec![vec![false; SIZE / g]; SIZE / g];
                let mut text: Vec<char> = render(&assemble(&masked, g)).chars().collect();
                let s = SIZE / g;
                for y in 0..s {
                    for x in 0..s {
                        text[((hole / g) * s + y) * (SIZE + 1) + (hole % g) * s + x] = '?';
                    }
                }
                let mut cands = vec![ps[hole].clone()];
                while cands.len() < 3 {
                    cands.push(patches(&digit_image(rng, self.cfg.max_noise), g)[hole].clone());
                }
                let right = rng.random_range(0..3);
                cands.swap(0, right);
                let letters = ["A", "B", "C"];
                let opts: Vec<String> = cands.iter().zip(letters).map(|(c, l)| format!("{l} {}", render(c))).collect();
                let meta = serde_json::json!({"kind": kind, "truth": render(&ps[hole]), "candidates": cands.iter().map(render).collect::<Vec<_>>()});
                (
                    format!("fill {} {}=", text.iter().collect::<String>(), opts.join(" ")),
                    letters[right].to_string(),
                    meta,
                )
            }
        };
        (prompt.clone(), Problem { id: 0, prompt, answer: answer.clone(), solution: answer, meta })
    }
}

fn meta_img(p: &Problem, key: &str) -> Option<Img> {
    parse(p.meta.get(key)?.as_str()?)
}

impl Task for Ssl {
    fn name(&self) -> &str {
        "ssl"
    }
    crate::generated_splits!();
    fn verify(&self, p: &Problem, completion: &str) -> Verdict {
        let answer = completion.lines().next().unwrap_or("").trim();
        let kind = p.meta.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        let reward = match kind {
            "rotation" => match (meta_img(p, "upright"), meta_img(p, "shown")) {
                (Some(u), Some(s)) => rotation_reward(&u, &s, answer),
                _ => return Verdict::bad_format("the problem has no images in `meta`"),
            },
            "jigsaw" => match (meta_img(p, "original"), meta_img(p, "shown")) {
                (Some(o), Some(s)) => {
                    let g = (p.answer.split(',').count() as f64).sqrt().round() as usize;
                    jigsaw_reward(&patches(&o, g), &patches(&s, g), answer, self.cfg.jigsaw_reward == "exact")
                }
                _ => return Verdict::bad_format("the problem has no images in `meta`"),
            },
            "contrastive" => matches!(answer, "yes" | "no").then(|| (answer == p.answer) as u8 as f64),
            "position" => {
                let cands: Vec<&str> =
                    p.meta["candidates"].as_array().map_or(vec![], |a| a.iter().filter_map(|c| c.as_str()).collect());
                let truth = p.meta.get("truth").and_then(|t| t.as_str()).unwrap_or("");
                ["A", "B", "C"].iter().position(|l| *l == answer).map(|i| (cands.get(i) == Some(&truth)) as u8 as f64)
            }
            other => return Verdict::bad_format(format!("unknown SSL kind `{other}` in `meta`")),
        };
        match reward {
            None => Verdict::bad_format(format!("`{answer}` is not a {kind} answer")),
            Some(r) => Verdict {
                reward: r as f32,
                correct: r == 1.0,
                format_ok: true,
                answer: Some(answer.to_string()),
                detail: if r == 1.0 { String::new() } else { format!("expected {}", p.answer) },
            },
        }
    }
    fn max_completion_chars(&self) -> usize {
        // the longest answer: a 16-patch permutation
        48
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn task(kind: &str) -> Ssl {
        Ssl::new(SslConfig { kind: kind.into(), test_size: 20, ..Default::default() }, 0).unwrap()
    }

    #[test]
    fn the_true_label_scores_one_and_every_other_label_zero() {
        // Rotation round trip over asymmetric images; then every kind's reference answer.
        let t = task("rotation");
        let mut checked = 0;
        for i in 0..200 {
            let p = t.train_problem(i);
            let up = meta_img(&p, "upright").unwrap();
            if (1..4).any(|k| rotate(&up, k) == up) {
                continue; // symmetric: several angles are right
            }
            checked += 1;
            for a in ["0", "90", "180", "270"] {
                let v = t.verify(&p, a);
                assert_eq!(v.reward == 1.0, a == p.answer, "{a} vs {}", p.answer);
            }
        }
        assert!(checked > 150);
        for kind in ["rotation", "jigsaw", "contrastive", "position", "mixed"] {
            let t = task(kind);
            for i in 0..100 {
                let p = t.train_problem(i);
                let v = t.verify(&p, &p.solution);
                assert!(v.correct && v.reward == 1.0, "{kind}: {} → {} ({})", p.prompt, p.solution, v.detail);
            }
        }
        let p = task("contrastive").train_problem(0);
        let wrong = if p.answer == "yes" { "no" } else { "yes" };
        assert_eq!(task("contrastive").verify(&p, wrong).reward, 0.0);
        assert!(!task("rotation").verify(&p, "45").format_ok);
    }

    #[test]
    fn jigsaw_partial_credit_and_random_guess_rewards() {
        // Four distinct patches; two swapped positions out of four = 0.5.
        let mut rng = Rng::seed_from_u64(3);
        let img = loop {
            let img = digit_image(&mut rng, 2);
            let ps = patches(&img, 2);
            if (0..4).all(|i| (0..i).all(|j| ps[i] != ps[j])) {
                break img;
            }
        };
        let ps = patches(&img, 2);
        let shown: Vec<Img> = [2, 0, 3, 1].iter().map(|&i| ps[i].clone()).collect();
        assert_eq!(jigsaw_reward(&ps, &shown, "2,0,3,1", false), Some(1.0));
        assert_eq!(jigsaw_reward(&ps, &shown, "0,2,3,1", false), Some(0.5));
        assert_eq!(jigsaw_reward(&ps, &shown, "0,2,3,1", true), Some(0.0));
        assert_eq!(jigsaw_reward(&ps, &shown, "2,0,3", false), None);
        assert_eq!(jigsaw_reward(&ps, &shown, "2,2,3,1", false), None);
        // Random guessing: exact jigsaw 1/P! (all 24 permutations), partial 1/P, rotation 1/4.
        let mut perms = Vec::new();
        for a in 0..4 {
            for b in 0..4 {
                for c in 0..4 {
                    for d in 0..4 {
                        let v = [a, b, c, d];
                        if (0..4).all(|i| (0..i).all(|j| v[i] != v[j])) {
                            perms.push(format!("{a},{b},{c},{d}"));
                        }
                    }
                }
            }
        }
        let mean = |exact| perms.iter().map(|x| jigsaw_reward(&ps, &shown, x, exact).unwrap()).sum::<f64>() / 24.0;
        assert!((mean(true) - 1.0 / 24.0).abs() < 1e-12 && (mean(false) - 0.25).abs() < 1e-12);
        let up = loop {
            let img = digit_image(&mut rng, 2);
            if (1..4).all(|k| rotate(&img, k) != img) {
                break img;
            }
        };
        let shown = rotate(&up, 3);
        let guess: f64 =
            ["0", "90", "180", "270"].iter().map(|a| rotation_reward(&up, &shown, a).unwrap()).sum::<f64>() / 4.0;
        assert_eq!(guess, 0.25);
        // The grid knob: a 4 × 4 jigsaw has 16 patches.
        let t = Ssl::new(SslConfig { kind: "jigsaw".into(), grid: 4, test_size: 5, ..Default::default() }, 0).unwrap();
        assert_eq!(t.train_problem(0).answer.split(',').count(), 16);
    }

    #[test]
    fn images_round_trip_and_transformations_compose() {
        let mut rng = Rng::seed_from_u64(1);
        for _ in 0..50 {
            let img = digit_image(&mut rng, 3);
            assert_eq!(parse(&render(&img)).unwrap(), img);
            assert_eq!(rotate(&img, 4), img);
            assert_eq!(rotate(&rotate(&img, 1), 3), img);
            for g in [2, 4] {
                assert_eq!(assemble(&patches(&img, g), g), img);
            }
        }
        assert!(Ssl::new(SslConfig { kind: "colour".into(), ..Default::default() }, 0).is_err());
        assert!(Ssl::new(SslConfig { grid: 3, ..Default::default() }, 0).is_err());
    }
}
