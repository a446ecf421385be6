//! INSTRUCT: instruction following with checkable constraints — the rubric task HeRL's spec
//! names as its CPU stand-in ("write a list of 3 items, each < 5 words, include 'blue'").
//!
//! Prompt `list 3 items, at most 2 words each, include blue and cat:`; a completion is a
//! `;`-separated list of items made of words (`red cat;blue;sun box`). The rubric (each item
//! satisfied or unmet, checked deterministically):
//!
//! 1. exactly N items (N ≥ 2),
//! 2. every item has at most W words (and at least one),
//! 3. some item contains the word X,
//! 4. some item contains the word Y,
//! 5. no item repeats.
//!
//! The reward is the fraction of rubric items satisfied; a completion is correct when all are.
//! The reference solution is a valid list drawn from a small word pool.

use crate::{oxrl_rng::Rng, Problem, Splits, Task, Verdict};
use anyhow::{ensure, Result};
use rand::seq::SliceRandom;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstructConfig {
    /// Items asked for, drawn from min_items..=max_items (2..=6).
    pub min_items: usize,
    pub max_items: usize,
    /// Word limit per item, drawn from 1..=max_words (1..=4).
    pub max_words: usize,
    pub test_size: usize,
}

impl Default for InstructConfig {
    fn default() -> Self {
        Self { min_items: 2, max_items: 4, max_words: 3, test_size: 200 }
    }
}

/// The word pool of items and required words.
pub const WORDS: [&str; 16] = [
    "red", "blue", "green", "cat", "dog", "sun", "box", "cup", "hat", "map", "pen", "key", "tree", "fish", "star",
    "ball",
];

pub struct Instruct {
    cfg: InstructConfig,
    splits: Splits,
}

/// The constraints of a problem (stored in `meta`).
#[derive(Debug, Clone, Copy)]
struct Spec<'a> {
    items: usize,
    words: usize,
    include: [&'a str; 2],
}

fn spec(p: &Problem) -> Option<Spec<'_>> {
    let inc = p.meta.get("include")?.as_array()?;
    Some(Spec {
        items: p.meta.get("items")?.as_u64()? as usize,
        words: p.meta.get("words")?.as_u64()? as usize,
        include: [inc.first()?.as_str()?, inc.get(1)?.as_str()?],
    })
}

/// The items of a completion: `;`-separated, whitespace-normalised, empty trailing item dropped.
fn items(completion: &str) -> Vec<String> {
    let line = completion.lines().next().unwrap_or("");
    let mut v: Vec<String> = line.split(';').map(|s| s.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    if v.last().is_some_and(|s| s.is_empty()) {
        v.pop();
    }
    v
}

/// The rubric of a problem with each item's status on `completion`.
pub fn rubric(p: &Problem, completion: &str) -> Option<Vec<(String, bool)>> {
    let s = spec(p)?;
    let it = items(completion);
    let n_words = |x: &String| x.split(' ').filter(|w| !w.is_empty()).count();
    let mut seen = std::collections::HashSet::new();
    Some(vec![
        (format!("exactly {} items", s.items), it.len() == s.items),
        (
            format!("at most {} words per item", s.words),
            !it.is_empty() && it.iter().all(|x| (1..=s.words).contains(&n_words(x))),
        ),
        (format!("include {}", s.include[0]), it.iter().any(|x| x.split(' ').any(|w| w == s.include[0]))),
        (format!("include {}", s.include[1]), it.iter().any(|x| x.split(' ').any(|w| w == s.include[1]))),
        ("no repeated items".to_string(), !it.is_empty() && it.iter().all(|x| seen.insert(x.clone()))),
    ])
}

impl Instruct {
    pub fn new(cfg: InstructConfig, seed: u64) -> Result<Self> {
        ensure!(
            2 <= cfg.min_items && cfg.min_items <= cfg.max_items && cfg.max_items <= 6,
            "task.min_items and task.max_items must satisfy 2 <= min_items <= max_items <= 6"
        );
        ensure!((1..=4).contains(&cfg.max_words), "task.max_words must be in 1..=4 (got {})", cfg.max_words);
        let mut t = Self { cfg, splits: Splits { seed, test: vec![], keys: Default::default() } };
        t.splits = Splits::new(seed, t.cfg.test_size, |r| t.make(r));
        Ok(t)
    }

    fn make(&self, rng: &mut Rng) -> (String, Problem) {
        let n = rng.random_range(self.cfg.min_items..=self.cfg.max_items);
        let w = rng.random_range(1..=self.cfg.max_words);
        let x = rng.random_range(0..WORDS.len());
        let y = (x + rng.random_range(1..WORDS.len())) % WORDS.len();
        let include = [WORDS[x], WORDS[y]];
        let prompt = format!("list {n} items, at most {w} words each, include {} and {}:", include[0], include[1]);
        // A valid reference: n distinct items; the required words are placed first (each in its
        // own item, or together when there is one item), the others drawn until distinct, then
        // the list is shuffled.
        let item = |rng: &mut Rng| {
            let k = rng.random_range(1..=w);
            (0..k).map(|_| WORDS[rng.random_range(0..WORDS.len())]).collect::<Vec<&str>>()
        };
        let mut list: Vec<String> = Vec::with_capacity(n);
        for word in include {
            let mut it = item(rng);
            let j = rng.random_range(0..it.len());
            it[j] = word;
            list.push(it.join(" "));
        }
        if list[0] == list[1] {
            list[1] = include[1].to_string();
        }
        while list.len() < n {
            let it = item(rng).join(" ");
            if !list.contains(&it) {
                list.push(it);
            }
        }
        list.shuffle(rng);
        let solution = list.join(";");
        let meta = serde_json::json!({"items": n, "words": w, "include": include});
        (prompt.clone(), Problem { id: 0, prompt, answer: solution.clone(), solution, meta })
    }
}

impl Task for Instruct {
    fn name(&self) -> &str {
        "instruct"
    }
    crate::generated_splits!();
    fn verify(&self, problem: &Problem, completion: &str) -> Verdict {
        let Some(r) = rubric(problem, completion) else {
            return Verdict::bad_format("the problem has no instruction constraints in `meta`");
        };
        let met = r.iter().filter(|x| x.1).count();
        let correct = met == r.len();
        let list = items(completion);
        let unmet: Vec<&str> = r.iter().filter(|x| !x.1).map(|x| x.0.as_str()).collect();
        Verdict {
            reward: met as f32 / r.len() as f32,
            correct,
            format_ok: !list.is_empty(),
            answer: (!list.is_empty()).then(|| list.join(";")),
            detail: if correct { String::new() } else { format!("unmet: {}", unmet.join(", ")) },
        }
    }
    fn max_completion_chars(&self) -> usize {
        self.cfg.max_items * (self.cfg.max_words * 6 + 1)
    }
    fn rubric(&self, problem: &Problem, completion: &str) -> Option<Vec<(String, bool)>> {
        rubric(problem, completion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Instruct {
        Instruct::new(Default::default(), 3).unwrap()
    }

    #[test]
    fn references_satisfy_every_rubric_item() {
        let t = task();
        assert_eq!(t.test_problems().len(), 200, "enough distinct prompts for the held-out split");
        for i in 0..300 {
            let p = t.train_problem(i);
            let v = t.verify(&p, &p.solution);
            assert!(v.correct && v.reward == 1.0, "{} -> {} ({})", p.prompt, p.solution, v.detail);
            assert!(p.solution.len() <= t.max_completion_chars());
        }
    }

    #[test]
    fn each_rubric_item_is_checked() {
        let p = Problem {
            id: 0,
            prompt: "list 3 items, at most 2 words each, include blue and cat:".into(),
            answer: String::new(),
            solution: String::new(),
            meta: serde_json::json!({"items": 3, "words": 2, "include": ["blue", "cat"]}),
        };
        let status = |c: &str| rubric(&p, c).unwrap().iter().map(|x| x.1).collect::<Vec<_>>();
        assert_eq!(status("red cat;blue;sun box"), vec![true; 5]);
        assert_eq!(status("red cat; blue ;sun box;"), vec![true; 5], "spacing and a trailing `;`");
        assert_eq!(status("red cat dog;blue;sun"), vec![true, false, true, true, true]);
        assert_eq!(status("red;cat"), vec![false, true, false, true, true]);
        assert_eq!(status("blue;blue;cat"), vec![true, true, true, true, false]);
        assert_eq!(status("bluebird;cat;dog"), vec![true, true, false, true, true], "whole words only");
        assert_eq!(status(""), vec![false; 5]);
        assert_eq!(status("red;;blue"), vec![true, false, true, false, true], "an empty item has no words");
        let t = task();
        let v = t.verify(&p, "red cat dog;blue;sun");
        assert_eq!((v.reward, v.correct), (0.8, false));
        assert!(v.detail.contains("at most 2 words"));
        assert_eq!(t.rubric(&p, "red;cat").unwrap()[0].0, "exactly 3 items");
    }

    #[test]
    fn bad_settings_are_named() {
        let e = Instruct::new(InstructConfig { max_items: 9, ..Default::default() }, 0).err().unwrap().to_string();
        assert!(e.contains("task.min_items"), "{e}");
        let e = Instruct::new(InstructConfig { max_words: 0, ..Default::default() }, 0).err().unwrap().to_string();
        assert!(e.contains("task.max_words"), "{e}");
    }
}
