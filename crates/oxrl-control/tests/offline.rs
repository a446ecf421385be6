//! Offline RL on Pendulum: a dataset of a few expert episodes (a SAC policy trained here) among many
//! random ones. Behaviour cloning (IQL with β = 0) copies the mixture; IQL's advantage weighting
//! recovers the expert; f-DVL's value losses train on the same data; and IQL on a reward learned
//! from segment preferences (no reward labels) does too.

use oxrl_control::dataset::{collect, random_action, Dataset};
use oxrl_control::train::{train, Summary, TrainOptions};
use oxrl_control::ControlConfig;
use std::path::Path;

mod common;

fn cfg(text: &str, sets: &[String]) -> ControlConfig {
    ControlConfig::load_str("test", text, sets).unwrap()
}

fn run(c: &ControlConfig, dir: &Path) -> Summary {
    let opts = TrainOptions { run_dir: dir, resume: false, stop_after: None, device: candle_core::Device::Cpu };
    train(c, &opts, &mut |_| Ok(())).unwrap()
}

fn merge(a: &Dataset, b: &Dataset) -> Dataset {
    let mut d = a.clone();
    d.extend(b).unwrap();
    d
}

/// (expert, BC, IQL, f-DVL, preference IQL) greedy returns for one seed: 20 expert episodes among 50.
fn offline_pendulum(seed: u64, dir: &Path) -> (f64, f64, f64, f64, f64) {
    // the expert: a small SAC run (about −150 greedy)
    let sac = cfg(
        "algo = \"sac\"\n[env]\nname = \"pendulum\"\n[train]\ntotal_steps = 6000\neval_episodes = 5\n[sac]\nlearning_starts = 1000\nhidden = [64, 64]\nbatch_size = 128\n",
        &[format!("seed={seed}")],
    );
    let s = run(&sac, &dir.join("sac"));
    let ck = s.final_checkpoint;
    let envs = oxrl_control::env::VecEnv::make("pendulum", 1, seed).unwrap();
    let mut agent = oxrl_control::train::build_agent(
        &sac,
        &envs,
        &oxrl_control::repr::EnvMaker::plain("pendulum"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    agent.load(&ck, false).unwrap();
    let expert = collect("pendulum", 4000, &mut |o| Ok(agent.act(&[o.to_vec()], true)?.remove(0)), 0.0, seed).unwrap();
    let space = oxrl_control::env::make("pendulum", 0).unwrap().action_space();
    let mut rng = oxrl_core::seed::rng(seed, "random-policy", 0);
    let random = collect("pendulum", 6000, &mut |_| Ok(random_action(&space, &mut rng)), 0.0, seed + 100).unwrap();
    let data = merge(&expert, &random);
    let path = dir.join("data.npz");
    data.save_npz(&path).unwrap();
    let base = format!(
        "algo = \"iql\"\n[env]\nname = \"pendulum\"\n[train]\ntotal_steps = 4000\neval_episodes = 10\n[iql]\ndataset = \"{}\"\nhidden = [64, 64]\nsteps_per_iteration = 500\nreward_scale = 0.1\nlr = 1e-3\n",
        path.display()
    );
    // The four offline learners are independent runs on the same dataset: run them side by side.
    let variants: [(&str, Vec<&str>); 4] = [
        ("bc", vec!["iql.beta=0"]),
        ("iql", vec!["iql.beta=3"]),
        (
            "dvl",
            vec!["iql.beta=3", "iql.value_loss=\"total_variation\"", "iql.dvl_lambda=0.8", "iql.q_huber_delta=20.0"],
        ),
        ("pref", vec!["iql.beta=3", "iql.reward_scale=1.0", "iql.preferences.pairs=300"]),
    ];
    let jobs = variants
        .into_iter()
        .map(|(name, sets)| {
            let mut sets: Vec<String> = sets.into_iter().map(String::from).collect();
            sets.push(format!("seed={seed}"));
            let (base, out) = (&base, dir.join(name));
            Box::new(move || run(&cfg(base, &sets), &out).eval_return) as Box<dyn FnOnce() -> f64 + Send + '_>
        })
        .collect();
    let r = common::parallel(jobs);
    let (bc, iql, dvl, pref) = (r[0], r[1], r[2], r[3]);
    (s.eval_return, bc, iql, dvl, pref)
}

#[test]
fn iql_beats_behaviour_cloning_on_mixed_pendulum_data() {
    let seeds: Vec<u64> =
        std::env::var("OXRL_SEEDS").map(|s| s.split(',').map(|x| x.parse().unwrap()).collect()).unwrap_or(vec![1]);
    for seed in seeds {
        let d = tempfile::tempdir().unwrap();
        let (expert, bc, iql, dvl, pref) = offline_pendulum(seed, d.path());
        println!("seed {seed}: expert {expert:.1}, BC {bc:.1}, IQL {iql:.1}, f-DVL (TV, λ 0.8) {dvl:.1}, preference IQL {pref:.1}");
        // seeds 1–3: BC −1077 / −1231 / −1226, IQL −767 / −466 / −473, f-DVL −734 / −568 / −546
        assert!(iql > bc + 200.0, "IQL {iql} vs BC {bc}");
        assert!(dvl > bc + 200.0, "f-DVL {dvl} vs BC {bc}");
        assert!(iql > -900.0, "IQL {iql}");
        assert!(pref > bc + 200.0, "preference IQL {pref} vs BC {bc}");
    }
}
