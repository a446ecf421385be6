//! Zero-shot RL: a TD-JEPA model trained on reward-free random-walk transitions of the four-rooms
//! maze solves reward tasks it never saw (exact returns against value iteration), and its runs
//! resume exactly.

mod common;

use common::{example, resumes_exactly, run};

#[test]
fn td_jepa_solves_unseen_reward_tasks_zero_shot() {
    let cfg = example(
        "fourrooms-td-jepa.toml",
        &["zeroshot.hidden=128", "zeroshot.collect_steps=20000", "train.total_steps=5000", "train.eval_episodes=20"],
    );
    let d = tempfile::tempdir().unwrap();
    let (s, recs) = run(&cfg, d.path(), false, None);
    s.unwrap();
    let last = recs.last().unwrap();
    let get = |k: &str| last[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {last}"));
    println!("{last}");
    let (mean, random) = (get("zs_mean"), get("zs_random_mean"));
    assert!(mean > random + 0.2, "zero-shot mean {mean} vs random {random}");
    let stay = ["top-left", "top-right", "bottom-left", "bottom-right"]
        .iter()
        .map(|q| get(&format!("zs_stay-{q}")))
        .sum::<f64>()
        / 4.0;
    assert!(stay > 0.6, "stay-in-room tasks: {stay}");
}

#[test]
fn zero_shot_runs_resume_exactly() {
    for algo in ["td-jepa", "fb"] {
        let cfg = example(
            "fourrooms-td-jepa.toml",
            &[
                &format!("algo={algo}"),
                "zeroshot.hidden=32",
                "zeroshot.latent_dim=8",
                "zeroshot.batch_size=32",
                "zeroshot.collect_steps=500",
                "zeroshot.steps_per_iteration=20",
                "train.total_steps=100",
                "train.checkpoint_every=40",
                "train.eval_episodes=2",
            ],
        );
        resumes_exactly(&cfg, 40);
    }
}

fn morl(sets: &[&str]) -> oxrl_control::ControlConfig {
    example("dst-morl-fb.toml", sets)
}

#[test]
fn morl_fb_resumes_exactly() {
    let cfg = morl(&[
        "morl.hidden=32",
        "morl.latent_dim=8",
        "morl.batch_size=32",
        "morl.task_samples=64",
        "morl.learning_starts=100",
        "morl.steps_per_iteration=100",
        "train.total_steps=400",
        "train.checkpoint_every=200",
    ]);
    let full = resumes_exactly(&cfg, 200);
    let last = full.last().unwrap();
    assert!((last["hypervolume_optimal"].as_f64().unwrap() - 401.8).abs() < 1e-9, "the true front's hypervolume");
    assert!(last["hypervolume"].as_f64().unwrap() <= 401.8 + 1e-9);
}

#[test]
fn morl_fb_finds_several_front_points_on_deep_sea_treasure() {
    // seed 1, 6k steps (and still at 10k): the greedy policies over 11 preferences reach 2 true
    // front points (hypervolume 182 of 401.8); a policy that only takes the nearest treasure scores 16.8
    let cfg = morl(&["train.total_steps=6000"]);
    let d = tempfile::tempdir().unwrap();
    let (s, recs) = run(&cfg, d.path(), false, None);
    s.unwrap();
    let last = recs.last().unwrap();
    println!("{last}");
    let hv = last["hypervolume"].as_f64().unwrap();
    assert!(hv > 100.0, "hypervolume {hv}");
    assert!(last["front_points"].as_f64().unwrap() >= 2.0);
    assert!(last["expected_utility"].as_f64().unwrap() > 1.0);
}
