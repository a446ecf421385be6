//! GROUNDING: a text stand-in for GUI grounding, with GUI-G1's box-size-constrained reward —
//! "GUI-G1: Understanding R1-Zero-Like Training for Visual Grounding in GUI Agents" (2025).
//!
//! A screen of W × H is listed as named elements with their boxes, and the prompt asks for one:
//! `screen 100 60;ok 12 40 30 48;save 50 10 70 18;help 5 50 25 58;find save:` → `50 10 70 18`
//! (x1 y1 x2 y2). The reward (CONFIRMED-CODE, Yuqi-Zhou/GUI-G1 grpo_rec.py):
//!
//!   r = hit + 0.25·IoU(b, g) + 0.125·HM(1 − |g_x1 − b_x1|/W, 1 − |g_y1 − b_y1|/H, 1 − |g_x2 − b_x2|/W, 1 − |g_y2 − b_y2|/H)
//!
//! hit = 1 when the centre of the predicted box b lies inside the ground truth g, HM the harmonic
//! mean; a completion that does not parse to a box scores 0. The IoU and box terms stop a policy
//! from inflating its box to farm the hit. A completion is *correct* when it hits with IoU ≥ 0.5.
//!
//! Every problem carries a difficulty weight `meta.rate` for GUI-G1's difficulty-aware scaling
//! (`train.difficulty_weight`): rate = 0.5 + (1 − √(box area / screen area)) — small targets are
//! harder and weigh more. INFERRED: GUI-G1 reads "rate" from its data; this formula is ours.

use crate::{oxrl_rng::Rng, Problem, Splits, Task, Verdict};
use anyhow::{ensure, Result};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// A box (x1, y1, x2, y2), x1 ≤ x2, y1 ≤ y2.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
}

impl BBox {
    pub fn new(x1: f64, y1: f64, x2: f64, y2: f64) -> Self {
        Self { x1: x1.min(x2), y1: y1.min(y2), x2: x1.max(x2), y2: y1.max(y2) }
    }
    pub fn area(&self) -> f64 {
        (self.x2 - self.x1) * (self.y2 - self.y1)
    }
    /// Intersection over union (0 when both are empty).
    pub fn iou(&self, o: &BBox) -> f64 {
        let w = (self.x2.min(o.x2) - self.x1.max(o.x1)).max(0.0);
        let h = (self.y2.min(o.y2) - self.y1.max(o.y1)).max(0.0);
        let inter = w * h;
        let union = self.area() + o.area() - inter;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }
    pub fn contains(&self, x: f64, y: f64) -> bool {
        (self.x1..=self.x2).contains(&x) && (self.y1..=self.y2).contains(&y)
    }
    pub fn centre(&self) -> (f64, f64) {
        ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)
    }
}

/// The reward's three terms: (hit, 0.25·IoU, 0.125·HM of the four edge closenesses).
pub fn box_reward_terms(pred: &BBox, gt: &BBox, width: f64, height: f64) -> (f64, f64, f64) {
    let (cx, cy) = pred.centre();
    let hit = gt.contains(cx, cy) as u8 as f64;
    let close = [
        1.0 - (gt.x1 - pred.x1).abs() / width,
        1.0 - (gt.y1 - pred.y1).abs() / height,
        1.0 - (gt.x2 - pred.x2).abs() / width,
        1.0 - (gt.y2 - pred.y2).abs() / height,
    ];
    // Harmonic mean; a closeness ≤ 0 (an edge off by the whole screen or more) makes it 0.
    let hm = if close.iter().all(|&c| c > 0.0) { 4.0 / close.iter().map(|c| 1.0 / c).sum::<f64>() } else { 0.0 };
    (hit, 0.25 * pred.iou(gt), 0.125 * hm)
}

/// GUI-G1's reward: hit + 0.25·IoU + 0.125·HM (0 for no box).
pub fn box_reward(pred: Option<&BBox>, gt: &BBox, width: f64, height: f64) -> f64 {
    pred.map_or(0.0, |p| {
        let (a, b, c) = box_reward_terms(p, gt, width, height);
        a + b + c
    })
}

/// The first four numbers of a completion as a box.
pub fn parse_box(s: &str) -> Option<BBox> {
    let nums: Vec<f64> = s
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .filter(|t| !t.is_empty())
        .filter_map(|t| t.parse::<f64>().ok())
        .take(4)
        .collect();
    (nums.len() == 4).then(|| BBox::new(nums[0], nums[1], nums[2], nums[3]))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroundingConfig {
    /// Elements on each screen (2..=8).
    pub elements: usize,
    /// Screen width and height (coordinates are integers in [0, width] × [0, height]).
    pub width: u32,
    pub height: u32,
    pub test_size: usize,
}

impl Default for GroundingConfig {
    fn default() -> Self {
        Self { elements: 3, width: 100, height: 60, test_size: 200 }
    }
}

const NAMES: [&str; 12] =
    ["ok", "save", "help", "menu", "back", "open", "close", "find", "edit", "home", "next", "send"];

pub struct Grounding {
    cfg: GroundingConfig,
    splits: Splits,
}

impl Grounding {
    pub fn new(cfg: GroundingConfig, seed: u64) -> Result<Self> {
        ensure!((2..=8).contains(&cfg.elements), "task.elements must be in 2..=8 (got {})", cfg.elements);
        ensure!(cfg.width >= 20 && cfg.height >= 20, "task.width and task.height must be >= 20");
        let mut t = Self { cfg, splits: Splits { seed, test: vec![], keys: Default::default() } };
        t.splits = Splits::new(seed, t.cfg.test_size, |r| t.make(r));
        Ok(t)
    }

    fn make(&self, rng: &mut Rng) -> (String, Problem) {
        let (w, h) = (self.cfg.width, self.cfg.height);
        let mut names: Vec<&str> = NAMES.to_vec();
        let mut boxes: Vec<(String, [u32; 4])> = Vec::new();
        while boxes.len() < self.cfg.elements {
            let bw = rng.random_range(4..=(w / 4).max(5));
            let bh = rng.random_range(3..=(h / 4).max(4));
            let x1 = rng.random_range(0..=w - bw);
            let y1 = rng.random_range(0..=h - bh);
            let b = [x1, y1, x1 + bw, y1 + bh];
            let overlaps = boxes.iter().any(|(_, o)| b[0] < o[2] && o[0] < b[2] && b[1] < o[3] && o[1] < b[3]);
            if !overlaps {
                let name = names.remove(rng.random_range(0..names.len()));
                boxes.push((name.to_string(), b));
            }
        }
        let target = rng.random_range(0..boxes.len());
        let mut prompt = format!("screen {w} {h}");
        for (n, b) in &boxes {
            prompt.push_str(&format!(";{n} {} {} {} {}", b[0], b[1], b[2], b[3]));
        }
        let (name, b) = &boxes[target];
        prompt.push_str(&format!(";find {name}:"));
        let answer = format!("{} {} {} {}", b[0], b[1], b[2], b[3]);
        let area = ((b[2] - b[0]) * (b[3] - b[1])) as f64 / (w * h) as f64;
        let meta = serde_json::json!({"width": w, "height": h, "rate": 0.5 + (1.0 - area.sqrt())});
        (prompt.clone(), Problem { id: 0, prompt, answer: answer.clone(), solution: answer, meta })
    }
}

impl Task for Grounding {
    fn name(&self) -> &str {
        "grounding"
    }
    crate::generated_splits!();
    fn verify(&self, problem: &Problem, completion: &str) -> Verdict {
        let Some(gt) = parse_box(&problem.answer) else {
            return Verdict::bad_format("the reference answer is not a box");
        };
        let Some(pred) = parse_box(completion) else {
            return Verdict::bad_format("no box (four numbers x1 y1 x2 y2)");
        };
        let dim = |k: &str, d: u32| problem.meta.get(k).and_then(|v| v.as_f64()).unwrap_or(d as f64);
        let (w, h) = (dim("width", self.cfg.width), dim("height", self.cfg.height));
        let (cx, cy) = pred.centre();
        let (hit, iou) = (gt.contains(cx, cy), pred.iou(&gt));
        let correct = hit && iou >= 0.5;
        let canon = format!("{} {} {} {}", pred.x1, pred.y1, pred.x2, pred.y2);
        Verdict {
            reward: box_reward(Some(&pred), &gt, w, h) as f32,
            correct,
            format_ok: true,
            answer: Some(canon),
            detail: if correct { String::new() } else { format!("hit {hit}, IoU {iou:.2}") },
        }
    }
    fn max_completion_chars(&self) -> usize {
        4 * (self.cfg.width.max(self.cfg.height).to_string().len() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reward_oracles() {
        let gt = BBox::new(40.0, 20.0, 60.0, 30.0);
        let (w, h) = (100.0, 60.0);
        // exact box: 1 + 0.25 + 0.125
        assert!((box_reward(Some(&gt), &gt, w, h) - 1.375).abs() < 1e-12);
        // a giant box covering the screen hits (centre 50, 30 lies in g) but scores low IoU / box terms
        let giant = BBox::new(0.0, 0.0, 100.0, 60.0);
        let (hit, iou, hm) = box_reward_terms(&giant, &gt, w, h);
        assert_eq!(hit, 1.0);
        assert!((iou - 0.25 * 200.0 / 6000.0).abs() < 1e-12);
        // edge closenesses 0.6, 2/3, 0.6, 0.5 → HM = 4 / (1/0.6 + 1.5 + 1/0.6 + 2)
        let want_hm = 4.0 / (1.0 / 0.6 + 1.5 + 1.0 / 0.6 + 2.0);
        assert!((hm - 0.125 * want_hm).abs() < 1e-12);
        let tight = BBox::new(41.0, 21.0, 59.0, 29.0);
        assert!(box_reward(Some(&giant), &gt, w, h) < box_reward(Some(&tight), &gt, w, h));
        // a miss keeps only the shaping terms; no box scores 0
        let miss = BBox::new(0.0, 0.0, 10.0, 10.0);
        assert_eq!(box_reward_terms(&miss, &gt, w, h).0, 0.0);
        assert!(box_reward(Some(&miss), &gt, w, h) < 0.2);
        assert_eq!(box_reward(None, &gt, w, h), 0.0);
        assert_eq!(parse_box("50 10 70"), None);
        assert_eq!(parse_box(" 70 18 50 10 trailing"), Some(BBox::new(50.0, 10.0, 70.0, 18.0)));
    }

    #[test]
    fn generated_problems() {
        let t = Grounding::new(GroundingConfig::default(), 3).unwrap();
        for i in 0..200 {
            let p = t.train_problem(i);
            let v = t.verify(&p, &p.solution);
            assert!(v.correct && (v.reward - 1.375).abs() < 1e-6, "{p:?}");
            assert!(p.solution.len() <= t.max_completion_chars());
            let rate = p.meta["rate"].as_f64().unwrap();
            assert!((0.5..=1.5).contains(&rate));
            let tok = p.prompt.chars().all(|c| (' '..='~').contains(&c));
            assert!(tok, "prompt in the char vocabulary");
        }
        assert!(!t.verify(&t.test_problems()[0], "no box").format_ok);
        assert!(Grounding::new(GroundingConfig { elements: 1, ..Default::default() }, 0).is_err());
    }
}
