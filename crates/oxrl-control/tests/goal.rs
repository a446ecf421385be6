//! Goal-conditioned offline RL on the U-maze (start and goal on either side of the wall, so the
//! Euclidean direction is wrong): GCBC, GCIVL and SAW from one noisy-navigator dataset.

use oxrl_control::train::{train, TrainOptions};
use oxrl_control::ControlConfig;

#[test]
fn saw_and_gcivl_beat_gcbc_on_the_umaze() {
    let seeds: Vec<u64> =
        std::env::var("OXRL_SEEDS").map(|s| s.split(',').map(|x| x.parse().unwrap()).collect()).unwrap_or(vec![1]);
    for seed in seeds {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("umaze.npz");
        oxrl_control::gc::collect_navigate("umaze", 50_000, 1000, 0.5, seed).unwrap().save_npz(&data).unwrap();
        let jobs = ["gcbc", "gcivl", "saw"]
            .into_iter()
            .map(|algo| {
                let text = format!(
                    "algo = \"{algo}\"\nseed = {seed}\n[env]\nname = \"pointmaze-umaze\"\n[train]\ntotal_steps = 5000\neval_episodes = 20\n[gc]\ndataset = \"{}\"\nhidden = [128, 128]\nsteps_per_iteration = 500\n",
                    data.display()
                );
                let run = dir.path().join(algo);
                Box::new(move || {
                    let cfg = ControlConfig::load_str("test", &text, &[]).unwrap();
                    let opts =
                        TrainOptions { run_dir: &run, resume: false, stop_after: None, device: candle_core::Device::Cpu };
                    train(&cfg, &opts, &mut |_| Ok(())).unwrap().eval_success.unwrap()
                }) as Box<dyn FnOnce() -> f64 + Send>
            })
            .collect();
        let success = common::parallel(jobs);
        println!("seed {seed}: success GCBC {:.2}, GCIVL {:.2}, SAW {:.2}", success[0], success[1], success[2]);
        assert!(success[2] >= 0.7, "SAW {}", success[2]);
        assert!(success[1] > success[0] && success[2] > success[0], "{success:?}");
    }
}

#[test]
fn hecrl_subgoal_selection_helps_gcivl_on_the_medium_maze() {
    let seeds: Vec<u64> =
        std::env::var("OXRL_SEEDS").map(|s| s.split(',').map(|x| x.parse().unwrap()).collect()).unwrap_or(vec![1]);
    for seed in seeds {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("medium.npz");
        oxrl_control::gc::collect_navigate("medium", 100_000, 1000, 0.5, seed).unwrap().save_npz(&data).unwrap();
        let text = format!(
            "algo = \"gcivl\"\nseed = {seed}\n[env]\nname = \"pointmaze-medium\"\n[train]\ntotal_steps = 10000\neval_episodes = 5\n[gc]\ndataset = \"{}\"\nhidden = [128, 128]\nsteps_per_iteration = 1000\n",
            data.display()
        );
        let cfg = ControlConfig::load_str("test", &text, &[]).unwrap();
        let run = dir.path().join("run");
        let opts = TrainOptions { run_dir: &run, resume: false, stop_after: None, device: candle_core::Device::Cpu };
        train(&cfg, &opts, &mut |_| Ok(())).unwrap();
        let eval = |sets: &'static [&'static str]| {
            let run = &run;
            Box::new(move || {
                let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
                oxrl_control::train::eval_checkpoint(run, 30, None, &sets).unwrap().1.success.unwrap()
            }) as Box<dyn FnOnce() -> f64 + Send + '_>
        };
        let subgoals = &["gc.subgoals.enabled=true", "gc.subgoals.competence_radius=-15", "gc.subgoals.every=10"];
        let (flat, hier) = match common::parallel(vec![eval(&[]), eval(subgoals)])[..] {
            [a, b] => (a, b),
            _ => unreachable!(),
        };
        println!("seed {seed}: success flat GCIVL {flat:.2}, with HECRL subgoal selection {hier:.2}");
        assert!(hier >= flat && hier >= 0.8, "flat {flat} vs subgoals {hier}");
    }
}

#[test]
fn gcivl_learns_to_push_a_box_with_projected_goals_and_a_categorical_actor() {
    // push-1-gc: the goal is where the box must be (gc.goal_indices picks the box's entries of the
    // state), actions are the four moves; data from the noisy scripted pusher.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("push.npz");
    let mut rng = oxrl_core::seed::rng(1, "pusher", 0);
    let d = oxrl_control::dataset::collect(
        "push-1-gc",
        30_000,
        &mut |o| {
            Ok(oxrl_control::env::Action::Discrete(oxrl_control::env::push_grid::pusher_from_obs(o, 0.3, &mut rng)?))
        },
        0.0,
        1,
    )
    .unwrap();
    d.save_npz(&data).unwrap();
    let text = format!(
        "algo = \"gcivl\"\nseed = 1\n[env]\nname = \"push-1-gc\"\n[train]\ntotal_steps = 4000\neval_every = 0\neval_episodes = 30\n[gc]\ndataset = \"{}\"\ngoal_dim = 2\ngoal_indices = [2, 3]\nhidden = [128, 128]\nsteps_per_iteration = 500\n",
        data.display()
    );
    let cfg = ControlConfig::load_str("test", &text, &[]).unwrap();
    let run = dir.path().join("run");
    let opts = TrainOptions { run_dir: &run, resume: false, stop_after: None, device: candle_core::Device::Cpu };
    let success = train(&cfg, &opts, &mut |_| Ok(())).unwrap().eval_success.unwrap();
    println!("push-1: GCIVL success {success:.2}");
    assert!(success >= 0.8, "{success}");
    // HECRL's factored candidates run on the same checkpoint (one episode at a time)
    let sets = ["gc.subgoals.enabled=true".to_string(), "gc.subgoals.generator=factored".to_string()];
    let (_, e) = oxrl_control::train::eval_checkpoint(&run, 5, None, &sets).unwrap();
    assert_eq!(e.returns.len(), 5);
}

mod common;

#[test]
fn rc_aux_runs_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("umaze.npz");
    oxrl_control::gc::collect_navigate("umaze", 3_000, 500, 0.5, 1).unwrap().save_npz(&data).unwrap();
    for extra in [vec![], vec!["rcaux.reach_weight=0", "rcaux.plan_weight=0"]] {
        let dataset = format!("rcaux.dataset={}", data.display());
        let mut sets = vec![
            dataset.as_str(),
            "rcaux.hidden=32",
            "rcaux.batch_size=16",
            "rcaux.plan_samples=20",
            "rcaux.plan_elites=4",
            "rcaux.plan_iterations=2",
            "rcaux.steps_per_iteration=10",
            "train.total_steps=40",
            "train.checkpoint_every=20",
            "train.eval_episodes=1",
        ];
        let head_on = extra.is_empty();
        sets.extend(extra);
        let recs = common::resumes_exactly(&common::example("umaze-rc-aux.toml", &sets), 20);
        // an offline learner steps no training episodes: no success count is logged
        assert!(recs.iter().all(|r| r.get("train_successes").is_none()));
        // with the head on, the reachability loss's three terms are logged
        let parts = ["reach_pos_bce", "reach_random_bce", "reach_hard_bce"];
        let logged = recs.iter().any(|r| parts.iter().all(|k| r[k].as_f64().is_some_and(|v| v > 0.0)));
        assert_eq!(logged, head_on);
    }
}

#[test]
fn a_gcivl_run_with_the_diffusion_subgoal_generator_resumes_exactly_and_plans_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("umaze.npz");
    oxrl_control::gc::collect_navigate("umaze", 3_000, 500, 0.5, 1).unwrap().save_npz(&data).unwrap();
    let dataset = format!("gc.dataset={}", data.display());
    let sets = [
        dataset.as_str(),
        "gc.hidden=[32, 32]",
        "gc.batch_size=32",
        "gc.steps_per_iteration=10",
        "gc.subgoals.generator=diffusion",
        "gc.subgoals.diffusion_hidden=32",
        "gc.subgoals.candidates=16",
        "train.total_steps=40",
        "train.checkpoint_every=20",
        "train.eval_episodes=1",
    ];
    let cfg = common::example("umaze-saw.toml", &sets);
    let recs = common::resumes_exactly(&cfg, 20);
    assert!(recs.iter().any(|r| r["diffusion_loss"].as_f64().is_some_and(|l| l > 0.0)));
    // the trained generator proposes the candidates of HECRL's selection at evaluation
    let run = dir.path().join("run");
    let (r, _) = common::run(&cfg, &run, false, None);
    r.unwrap();
    let on = ["gc.subgoals.enabled=true".to_string()];
    let (_, e) = oxrl_control::train::eval_checkpoint(&run, 2, None, &on).unwrap();
    assert_eq!(e.returns.len(), 2);
    // a checkpoint trained without it cannot plan with it
    let flat =
        common::example("umaze-saw.toml", &[&sets[..4], &["train.total_steps=40", "train.eval_episodes=1"]].concat());
    let run2 = dir.path().join("flat");
    common::run(&flat, &run2, false, None).0.unwrap();
    let err = oxrl_control::train::eval_checkpoint(&run2, 1, None, &["gc.subgoals.generator=diffusion".to_string()])
        .err()
        .unwrap();
    assert!(err.to_string().contains("diffusion"), "{err}");
}
