//! SHOP: a WebShop-style catalogue agent task (the spec's shared CPU stand-in).
//!
//! A catalogue of items (`i7 red mug 12 s,m`: id, colour, kind, price, sizes) and an
//! instruction: `buy a red mug size m under 20`. Actions, one per line: `search[words]` (items
//! whose name holds every word, at most five, as the results page), `click[id]` (an item's page),
//! `select[size]` (on an item page, a size it has), `back` (to the results), `buy` (ends the
//! episode). The outcome is the fraction of the instruction's four attributes the bought item
//! matches — kind, colour, the selected size, price under the cap — as WebShop scores; buying
//! nothing scores 0. Success = all four. Observations are compact for char-level models.

use crate::env::{demonstration, verify_in, EnvStep, Environment};
use crate::{oxrl_rng::Rng, Problem, Splits, Task, Verdict};
use anyhow::{ensure, Result};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShopConfig {
    /// Items in each catalogue (10..=200).
    pub items: usize,
    pub max_turns: usize,
    pub test_size: usize,
}

impl Default for ShopConfig {
    fn default() -> Self {
        Self { items: 50, max_turns: 8, test_size: 50 }
    }
}

const COLOURS: [&str; 5] = ["red", "blue", "green", "black", "white"];
const KINDS: [&str; 6] = ["mug", "hat", "bag", "lamp", "shirt", "shoe"];
const SIZES: [&str; 3] = ["s", "m", "l"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    pub colour: String,
    pub kind: String,
    pub price: u32,
    pub sizes: Vec<String>,
}

impl Item {
    fn line(&self) -> String {
        format!("{} {} {} {} {}", self.id, self.colour, self.kind, self.price, self.sizes.join(","))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    pub colour: String,
    pub kind: String,
    pub size: String,
    pub cap: u32,
}

#[derive(Debug, Clone, PartialEq)]
enum Page {
    Start,
    Results(Vec<usize>),
    Item(usize, Vec<usize>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShopEnv {
    items: Vec<Item>,
    goal: Goal,
    page: Page,
    selected: Option<String>,
    bought: Option<(usize, Option<String>)>,
    max_turns: usize,
}

impl ShopEnv {
    fn from_meta(meta: &serde_json::Value, max_turns: usize) -> Option<Self> {
        Some(Self {
            items: serde_json::from_value(meta.get("items")?.clone()).ok()?,
            goal: serde_json::from_value(meta.get("goal")?.clone()).ok()?,
            page: Page::Start,
            selected: None,
            bought: None,
            max_turns,
        })
    }

    /// The bought item's score: matched attributes out of four.
    pub fn score(&self) -> f64 {
        let Some((i, size)) = &self.bought else { return 0.0 };
        let (it, g) = (&self.items[*i], &self.goal);
        let hits =
            [it.kind == g.kind, it.colour == g.colour, size.as_deref() == Some(g.size.as_str()), it.price <= g.cap];
        hits.iter().filter(|&&h| h).count() as f64 / 4.0
    }

    fn results_line(&self, hits: &[usize]) -> String {
        if hits.is_empty() {
            return "no results".into();
        }
        let shown: Vec<String> = hits.iter().map(|&i| self.items[i].line()).collect();
        format!("results: {}", shown.join("; "))
    }
}

impl Environment for ShopEnv {
    fn step(&mut self, action: &str) -> EnvStep {
        let a = action.trim().to_ascii_lowercase();
        let ok = |obs: String| EnvStep { observation: obs, reward: 0.0, done: false, valid: true };
        let nothing = EnvStep { observation: "Nothing happens.".into(), reward: 0.0, done: false, valid: false };
        if self.bought.is_some() {
            return nothing;
        }
        let arg = |p: &str| a.strip_prefix(p).and_then(|r| r.strip_suffix(']')).map(str::trim);
        if let Some(q) = arg("search[") {
            let words: Vec<&str> = q.split_whitespace().collect();
            if words.is_empty() {
                return nothing;
            }
            let hits: Vec<usize> = (0..self.items.len())
                .filter(|&i| {
                    let it = &self.items[i];
                    words.iter().all(|w| *w == it.colour || *w == it.kind)
                })
                .take(5)
                .collect();
            let obs = self.results_line(&hits);
            self.page = Page::Results(hits);
            self.selected = None;
            return ok(obs);
        }
        if let Some(id) = arg("click[") {
            let shown = match &self.page {
                Page::Results(h) => h.clone(),
                _ => return nothing,
            };
            return match shown.iter().find(|&&i| self.items[i].id == id) {
                Some(&i) => {
                    self.page = Page::Item(i, shown);
                    self.selected = None;
                    ok(format!("item {}", self.items[i].line()))
                }
                None => nothing,
            };
        }
        if let Some(s) = arg("select[") {
            return match &self.page {
                Page::Item(i, _) if self.items[*i].sizes.iter().any(|x| x == s) => {
                    self.selected = Some(s.to_string());
                    ok(format!("selected {s}"))
                }
                _ => nothing,
            };
        }
        match a.as_str() {
            "back" => match &self.page {
                Page::Item(_, shown) => {
                    let shown = shown.clone();
                    let obs = self.results_line(&shown);
                    self.page = Page::Results(shown);
                    self.selected = None;
                    ok(obs)
                }
                _ => nothing,
            },
            "buy" => match &self.page {
                Page::Item(i, _) => {
                    self.bought = Some((*i, self.selected.clone()));
                    EnvStep {
                        observation: format!("bought, score {:.2}", self.score()),
                        reward: self.score(),
                        done: true,
                        valid: true,
                    }
                }
                _ => nothing,
            },
            _ => nothing,
        }
    }
    fn outcome(&self) -> f64 {
        self.score()
    }
    fn success(&self) -> bool {
        self.score() >= 1.0
    }
    fn max_turns(&self) -> usize {
        self.max_turns
    }
}

/// The scripted shopper: search colour and kind, open the first affordable result with the
/// size, select it, buy.
pub fn expert_actions(env: &ShopEnv) -> Vec<String> {
    let g = &env.goal;
    let hits: Vec<&Item> = env.items.iter().filter(|it| it.colour == g.colour && it.kind == g.kind).take(5).collect();
    let pick =
        hits.iter().find(|it| it.price <= g.cap && it.sizes.contains(&g.size)).expect("a matching item is listed");
    vec![
        format!("search[{} {}]", g.colour, g.kind),
        format!("click[{}]", pick.id),
        format!("select[{}]", g.size),
        "buy".into(),
    ]
}

pub struct Shop {
    cfg: ShopConfig,
    splits: Splits,
}

impl Shop {
    pub fn new(cfg: ShopConfig, seed: u64) -> Result<Self> {
        ensure!((10..=200).contains(&cfg.items), "task.items must be in 10..=200 (got {})", cfg.items);
        ensure!(cfg.max_turns >= 4, "task.max_turns must be >= 4 (search, click, select, buy)");
        let mut t = Self { cfg, splits: Splits { seed, test: vec![], keys: Default::default() } };
        t.splits = Splits::new(seed, t.cfg.test_size, |r| t.make(r));
        Ok(t)
    }

    fn make(&self, rng: &mut Rng) -> (String, Problem) {
        let pick = |rng: &mut Rng, xs: &[&str]| xs[rng.random_range(0..xs.len())].to_string();
        let goal = Goal {
            colour: pick(rng, &COLOURS),
            kind: pick(rng, &KINDS),
            size: pick(rng, &SIZES),
            cap: rng.random_range(2..=9) * 10,
        };
        let mut items: Vec<Item> = (0..self.cfg.items)
            .map(|i| {
                let mut sizes: Vec<String> =
                    SIZES.iter().filter(|_| rng.random_bool(0.6)).map(|s| s.to_string()).collect();
                if sizes.is_empty() {
                    sizes.push(pick(rng, &SIZES));
                }
                Item {
                    id: format!("i{i}"),
                    colour: pick(rng, &COLOURS),
                    kind: pick(rng, &KINDS),
                    price: rng.random_range(5..=99),
                    sizes,
                }
            })
            .collect();
        // Guarantee a matching item among the first results of the natural search.
        let slot = rng.random_range(0..self.cfg.items);
        let first_match = items.iter().position(|it| it.colour == goal.colour && it.kind == goal.kind);
        let at = first_match.map_or(slot, |f| f.min(slot));
        items[at] = Item {
            id: format!("i{at}"),
            colour: goal.colour.clone(),
            kind: goal.kind.clone(),
            price: rng.random_range(5..=goal.cap),
            sizes: vec![goal.size.clone()],
        };
        let meta = serde_json::json!({"items": items, "goal": goal});
        let env = ShopEnv::from_meta(&meta, self.cfg.max_turns).expect("well-formed meta");
        let prompt = format!("buy a {} {} size {} under {}", goal.colour, goal.kind, goal.size, goal.cap);
        let solution = demonstration(&mut env.clone(), &expert_actions(&env));
        let key = format!("{meta}");
        (key, Problem { id: 0, prompt, answer: "success".into(), solution, meta })
    }
}

impl Task for Shop {
    fn name(&self) -> &str {
        "shop"
    }
    crate::generated_splits!();
    fn verify(&self, problem: &Problem, completion: &str) -> Verdict {
        verify_in(self.environment(problem), completion)
    }
    fn max_completion_chars(&self) -> usize {
        24
    }
    fn environment(&self, problem: &Problem) -> Option<Box<dyn Environment>> {
        ShopEnv::from_meta(&problem.meta, self.cfg.max_turns).map(|e| Box::new(e) as Box<dyn Environment>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demonstrations_buy_the_right_item_and_partial_matches_score_partially() {
        let t = Shop::new(ShopConfig { test_size: 10, ..Default::default() }, 2).unwrap();
        for i in 0..20 {
            let p = t.train_problem(i);
            let v = t.verify(&p, &p.solution);
            assert!(v.correct && v.reward == 1.0, "{}\n{}\n{}", p.prompt, p.solution, v.detail);
        }
        let p = t.train_problem(0);
        let mut env = ShopEnv::from_meta(&p.meta, 8).unwrap();
        let acts = expert_actions(&env);
        // Buying the right item without selecting its size: 3 of 4 attributes.
        for a in [&acts[0], &acts[1]] {
            assert!(env.step(a).valid);
        }
        let s = env.step("buy");
        assert!(s.done && (s.reward - 0.75).abs() < 1e-12, "{s:?}");
        assert!(!env.success() && !env.step("buy").valid, "the episode is over");
        // Invalid actions, and buying nothing.
        let mut env = ShopEnv::from_meta(&p.meta, 8).unwrap();
        for a in ["buy", "click[i0]", "select[m]", "back", "search[]", "dance"] {
            assert!(!env.step(a).valid, "{a}");
        }
        assert_eq!(env.outcome(), 0.0);
        let r = env.step("search[red mug]");
        assert!(r.valid && (r.observation.starts_with("results: ") || r.observation == "no results"));
    }

    #[test]
    fn search_lists_at_most_five_matching_items() {
        let t = Shop::new(ShopConfig::default(), 0).unwrap();
        let p = &t.test_problems()[0];
        let mut env = ShopEnv::from_meta(&p.meta, 8).unwrap();
        let obs = env.step("search[red]").observation;
        let n = obs.matches(';').count() + 1;
        assert!(obs.starts_with("results: ") && n <= 5, "{obs}");
        assert!(obs.trim_start_matches("results: ").split("; ").all(|it| it.split(' ').nth(1) == Some("red")));
    }
}
