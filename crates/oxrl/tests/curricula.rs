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
