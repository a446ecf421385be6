//! Solution-prefix curricula on a task a fresh model cannot solve (start with the first three
//! digits of a 4-digit number; the demonstration writes all four): PrefixRL, SEELE and IGPO put
//! solution prefixes to work where plain GRPO only sees all-wrong groups.

mod common;

use anyhow::Result;
use common::{bandit_config, mean_of, run_task_budget, FirstDigit};
use oxrl_tasks::Problem;

fn echo(i: u64) -> Problem {
    let s = format!("{:04}", (i * 7919 + 13) % 10000);
    Problem {
        id: i,
        prompt: format!("copy {s}"),
        answer: s[..3].to_string(),
        solution: s,
        meta: serde_json::Value::Null,
    }
}

fn task() -> FirstDigit {
    FirstDigit::with(echo, |_| 1.0)
}

fn zero_var(run: &[serde_json::Map<String, serde_json::Value>]) -> f64 {
    mean_of(run, "zero_variance_groups", 0..run.len())
}

#[test]
fn prefix_rl_with_empty_prefixes_is_plain_grpo() -> Result<()> {
    let plain = bandit_config("grpo");
    let mut empty = plain.clone();
    empty.train.prefix_rl = 1.0;
    empty.train.prefix_min = 0.0;
    empty.train.prefix_max = 0.0;
    let (a, b) = (run_task_budget(&task(), &plain, 4, 3e-3, 4)?, run_task_budget(&task(), &empty, 4, 3e-3, 4)?);
    for (x, y) in a.iter().zip(&b) {
        for k in ["reward_mean", "loss", "entropy", "grad_norm", "response_length"] {
            assert_eq!(x.get(k), y.get(k), "{k}");
        }
        assert_eq!(y["prefix_share"].as_f64(), Some(0.0));
    }
    Ok(())
}

#[test]
fn prefix_rl_prefixes_make_hard_problems_solvable_and_unprefixed_accuracy_is_reported() -> Result<()> {
    let mut c = bandit_config("grpo");
    c.train.prefix_rl = 0.5;
    c.train.prefix_min = 0.75;
    c.train.prefix_max = 0.75;
    let run = run_task_budget(&task(), &c, 6, 3e-3, 4)?;
    let (share, acc) = (mean_of(&run, "prefix_share", 0..6), mean_of(&run, "accuracy", 0..6));
    let plain: Vec<f64> = run.iter().filter_map(|m| m.get("accuracy_unprefixed").and_then(|x| x.as_f64())).collect();
    let plain = plain.iter().sum::<f64>() / plain.len() as f64;
    eprintln!("PrefixRL: prefix share {share:.2}, accuracy {acc:.3}, unprefixed {plain:.3}");
    assert!(share > 0.2 && share < 0.8, "about half the groups carry a prefix ({share:.2})");
    assert!(plain < 0.05, "unprefixed, a fresh model cannot copy");
    assert!(acc > plain + 0.2, "prefixed problems are solved: the verifier reads prefix + continuation");
    assert!(run
        .iter()
        .all(|m| (m["hint_ratio_mean"].as_f64().unwrap() - 0.75 * m["prefix_share"].as_f64().unwrap()).abs() < 1e-9));
    Ok(())
}

#[test]
fn seele_raises_hints_until_groups_are_informative() -> Result<()> {
    let plain = bandit_config("grpo");
    let mut c = plain.clone();
    c.train.seele = true;
    c.train.seele_rounds = 3;
    c.train.group_size = 6;
    let run = run_task_budget(&task(), &c, 8, 3e-3, 4)?;
    let ratios: Vec<f64> = run.iter().map(|m| m["seele_next_ratio"].as_f64().unwrap()).collect();
    let g = run_task_budget(&task(), &plain, 8, 3e-3, 4)?;
    eprintln!("SEELE next ratios {ratios:?}; zero-variance groups {:.3} vs GRPO {:.3}", zero_var(&run), zero_var(&g));
    assert!(ratios[0] > 0.2, "all-wrong rounds push the hint up");
    assert!(zero_var(&run) < zero_var(&g) - 0.2);
    Ok(())
}

#[test]
fn igpo_replaces_all_wrong_groups_with_guided_correct_samples() -> Result<()> {
    let plain = bandit_config("grpo");
    let mut c = plain.clone();
    c.train.igpo = true;
    c.train.igpo_eta_low = 0.75;
    c.train.igpo_eta_high = 0.75;
    let run = run_task_budget(&task(), &c, 6, 3e-3, 4)?;
    let g = run_task_budget(&task(), &plain, 6, 3e-3, 4)?;
    let (trig, rep) = (mean_of(&run, "igpo_triggered", 0..6), mean_of(&run, "igpo_replaced", 0..6));
    eprintln!(
        "IGPO triggered {trig:.3}, replaced per group {rep:.2}; zero-variance {:.3} vs GRPO {:.3}",
        zero_var(&run),
        zero_var(&g)
    );
    assert!(trig > 0.5 && rep > 0.0 && rep <= 4.0);
    assert!(zero_var(&run) < zero_var(&g) - 0.1);
    assert!(run.iter().all(|m| m["mismatch_max"].as_f64().unwrap() < 1e-3), "kept hint tokens use π_old's log-probs");
    Ok(())
}

/// The bandit with a scripted rewriter for SvS: half the variants paraphrase the prompt (same answer),
/// half ask for another digit while the answer stays — the acceptance band must reject those.
struct Rewritable(FirstDigit);

impl oxrl_tasks::Task for Rewritable {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn train_problem(&self, index: u64) -> Problem {
        self.0.train_problem(index)
    }
    fn train_size(&self) -> Option<usize> {
        self.0.train_size()
    }
    fn test_problems(&self) -> &[Problem] {
        self.0.test_problems()
    }
    fn verify(&self, p: &Problem, completion: &str) -> oxrl_tasks::Verdict {
        self.0.verify(p, completion)
    }
    fn max_completion_chars(&self) -> usize {
        self.0.max_completion_chars()
    }
    fn variant(&self, p: &Problem, rng: &mut oxrl_core::seed::Rng) -> Option<oxrl_tasks::Variant> {
        use rand::Rng;
        if rng.random::<bool>() {
            let prompt = format!("please {}", p.prompt);
            return Some(oxrl_tasks::Variant { prompt, label: "consistent" });
        }
        let others: Vec<&str> = ["1", "4", "7"].into_iter().filter(|d| *d != p.answer).collect();
        let d = others[rng.random_range(0..others.len())];
        Some(oxrl_tasks::Variant { prompt: format!("say {d}"), label: "broken" })
    }
}

fn rate(run: &[serde_json::Map<String, serde_json::Value>], key: &str) -> f64 {
    let v: Vec<f64> = run.iter().filter_map(|m| m.get(key).and_then(|x| x.as_f64())).collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

#[test]
fn svs_adds_solving_groups_for_answer_consistent_synthetic_problems() -> Result<()> {
    let task = Rewritable(common::FirstDigit::new());
    let warm = bandit_config("grpo");
    let mut c = warm.clone();
    c.train.group_size = 8;
    c.train.svs = true;
    c.train.svs_synthesizer = "task".into();
    c.train.svs_max_sources = 4;
    // The warmed-up bandit solves most prompts: widen the selection band so they seed synthesis.
    c.train.svs_select_hi = 0.95;
    let mut by_policy = c.clone();
    by_policy.train.svs_synthesizer = "policy".into();
    let (w, n) = (40, 6);
    let run = common::run_phases(&task, &[(&warm, w), (&c, n)], 3e-3, 2)?;
    let svs = &run[w as usize..(w + n) as usize];
    let sum = |r: &[serde_json::Map<String, serde_json::Value>], k: &str| -> f64 {
        r.iter().map(|m| m[k].as_f64().unwrap()).sum()
    };
    let (ok, bad) = (rate(svs, "svs_accept_rate_consistent"), rate(svs, "svs_accept_rate_broken"));
    let (solve_ok, solve_bad) = (rate(svs, "svs_solve_rate_consistent"), rate(svs, "svs_solve_rate_broken"));
    eprintln!("solve rate consistent {solve_ok:.3} vs broken {solve_bad:.3}");
    eprintln!(
        "SvS (scripted): sources {}, candidates {}, accepted {}, solve groups {}; acceptance consistent {ok:.3} vs broken {bad:.3}",
        sum(svs, "svs_sources"),
        sum(svs, "svs_candidates"),
        sum(svs, "svs_accepted"),
        sum(svs, "svs_solve_groups")
    );
    for m in svs {
        assert_eq!(m["svs_candidates"].as_f64(), Some(8.0 * m["svs_sources"].as_f64().unwrap()), "G per source");
        assert!(m["svs_sources"].as_f64().unwrap() <= 4.0);
        assert_eq!(m["svs_synthesis_groups"].as_f64(), Some(0.0), "the scripted rewriter has no policy tokens");
        // The update holds the original groups plus the synthetic solving groups.
        let kept = m["groups_kept"].as_f64().unwrap();
        assert_eq!(kept, 12.0 + m["svs_solve_groups"].as_f64().unwrap());
    }
    assert!(sum(svs, "svs_sources") >= 8.0 && sum(svs, "svs_solve_groups") >= 4.0);
    // The warmed-up bandit reads the prompt: a paraphrase is solved against the source answer,
    // a problem asking for another digit almost never is — the band's lower edge rejects it, and
    // its upper edge rejects the paraphrases as too easy (solved ≥ 6 of 8).
    assert!(solve_ok > 0.8 && solve_bad < 0.1, "solve rates {solve_ok:.3} vs {solve_bad:.3}");
    assert!(ok < 0.2 && bad < 0.2, "both edges of the acceptance band: {ok:.3} / {bad:.3}");
    // The policy as problem writer (from a less sharp start): its problem texts form synthesis
    // groups, which enter the update only with an accepted candidate.
    let run = common::run_phases(&task, &[(&warm, 20), (&by_policy, 4)], 3e-3, 2)?;
    let policy = &run[20..];
    assert!(sum(policy, "svs_synthesis_groups") >= 1.0, "some problem text the policy wrote was accepted");
    for m in policy {
        let (src, syn) = (m["svs_sources"].as_f64().unwrap(), m["svs_synthesis_groups"].as_f64().unwrap());
        eprintln!(
            "SvS (policy): sources {src}, accepted {}, synthesis groups {syn}, solve groups {}",
            m["svs_accepted"], m["svs_solve_groups"]
        );
        assert!(syn <= src && m["svs_accepted"].as_f64().unwrap() <= 8.0 * src);
        let kept = m["groups_kept"].as_f64().unwrap();
        assert_eq!(kept, 12.0 + syn + m["svs_solve_groups"].as_f64().unwrap());
    }
    Ok(())
}
