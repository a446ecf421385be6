//! Technique runs: each zoo technique on the contextual bandit, changing training relative to
//! GRPO in the way its spec says (asserted on the run's metrics).

mod common;

use anyhow::Result;
use common::{
    bandit_config, mean_of, run_bandit, run_phases, run_phases_judged, run_task, run_task_budget, FirstDigit,
};
use oxrl_tasks::{Problem, Task, Verdict};

/// PSR / NSR / W-REINFORCE (Zhu et al., 2025): NSR keeps entropy above PSR; PSR trains only on
/// correct samples and NSR only on incorrect ones; W-REINFORCE keeps all and still learns.
#[test]
fn nsr_keeps_entropy_above_psr() -> Result<()> {
    let steps = 30;
    let psr = run_bandit(&bandit_config("psr"), steps, 3e-3)?;
    let nsr = run_bandit(&bandit_config("nsr"), steps, 3e-3)?;
    let w = run_bandit(&bandit_config("w_reinforce"), 100, 3e-3)?;
    let (e_psr, e_nsr) = (mean_of(&psr, "entropy", 20..30), mean_of(&nsr, "entropy", 20..30));
    eprintln!("entropy over steps 20-30: PSR {e_psr:.3}, NSR {e_nsr:.3}");
    assert!(e_nsr > e_psr + 0.1, "NSR entropy {e_nsr:.3} should stay above PSR's {e_psr:.3}");
    // PSR's loss sees the correct fraction, NSR's the rest
    for (p, n) in psr.iter().zip(&nsr).take(3) {
        let acc = p["accuracy"].as_f64().unwrap();
        assert!((p["samples_in_loss"].as_f64().unwrap() - acc).abs() < 1e-9);
        assert!(p["advantage_neg_mean"].as_f64().unwrap() == 0.0);
        let acc_n = n["accuracy"].as_f64().unwrap();
        assert!((n["samples_in_loss"].as_f64().unwrap() - (1.0 - acc_n)).abs() < 1e-9);
        assert!(n["advantage_pos_mean"].as_f64().unwrap() == 0.0);
    }
    let (r0, r1) = (mean_of(&w, "reward_mean", 0..3), mean_of(&w, "reward_mean", 95..100));
    eprintln!("W-REINFORCE reward {r0:.3} -> {r1:.3}");
    assert!(r1 > r0 + 0.2, "W-REINFORCE must learn the bandit: {r0:.3} -> {r1:.3}");
    Ok(())
}

/// A-GRAE (2026): while batch accuracy is below α, positive advantages are scaled down by
/// accuracy/α relative to GRPO's on the same rollouts; negative ones are not suppressed.
#[test]
fn a_grae_shrinks_positive_advantages_while_accuracy_is_low() -> Result<()> {
    let grpo = run_bandit(&bandit_config("grpo"), 1, 3e-3)?;
    let agrae = run_bandit(&bandit_config("a_grae"), 1, 3e-3)?;
    // Same seed, same model: the first step's rollouts are identical.
    assert_eq!(grpo[0]["reward_mean"], agrae[0]["reward_mean"]);
    let acc = agrae[0]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.0 && acc < 0.5, "the fresh model should be weak ({acc})");
    let (pg, pa) = (grpo[0]["advantage_pos_mean"].as_f64().unwrap(), agrae[0]["advantage_pos_mean"].as_f64().unwrap());
    let (ng, na) = (grpo[0]["advantage_neg_mean"].as_f64().unwrap(), agrae[0]["advantage_neg_mean"].as_f64().unwrap());
    eprintln!("accuracy {acc:.3}: positive advantages GRPO {pg:.3} vs A-GRAE {pa:.3}; negative {ng:.3} vs {na:.3}");
    assert!(pa > 0.0 && pa < 0.5 * pg, "positives should shrink: {pa:.3} vs {pg:.3}");
    assert!(na < 0.0 && na.abs() > pa, "negatives are not suppressed: {na:.3}");
    // and over a short run it still learns
    let run = run_bandit(&bandit_config("a_grae"), 100, 3e-3)?;
    let (r0, r1) = (mean_of(&run, "reward_mean", 0..3), mean_of(&run, "reward_mean", 95..100));
    eprintln!("A-GRAE reward {r0:.3} -> {r1:.3}");
    assert!(r1 > r0 + 0.2, "A-GRAE must still learn: {r0:.3} -> {r1:.3}");
    Ok(())
}

/// PACS (2025): at the first inner step the implicit reward is 0, so the policy loss is the
/// class-balanced log 2 and the critic σ(ψ̂) is ½; training on the BCE objective learns the bandit.
#[test]
fn pacs_starts_at_log2_and_learns() -> Result<()> {
    let mut cfg = bandit_config("grpo");
    cfg.train.objective = "pacs".into();
    cfg.train.minibatches = 1;
    let run = run_bandit(&cfg, 100, 3e-3)?;
    let first = run[0]["policy_loss"].as_f64().unwrap();
    assert!((first - std::f64::consts::LN_2).abs() < 1e-4, "first PACS loss {first} != ln 2");
    assert!((run[0]["pacs_critic"].as_f64().unwrap() - 0.5).abs() < 1e-6);
    assert!(run[0].get("clipfrac").is_none(), "PACS replaces the PPO surrogate");
    let (r0, r1) = (mean_of(&run, "reward_mean", 0..3), mean_of(&run, "reward_mean", 95..100));
    eprintln!("PACS reward {r0:.3} -> {r1:.3}");
    assert!(r1 > r0 + 0.2, "PACS must learn the bandit: {r0:.3} -> {r1:.3}");
    Ok(())
}

/// SELF (2025): prompts the policy already answers correctly when decoding greedily are never
/// trained on, and a step in which every greedy answer is correct is skipped.
#[test]
fn self_trains_only_on_greedy_failures() -> Result<()> {
    let mut cfg = bandit_config("grpo");
    cfg.train.self_filter = true;
    let run = run_bandit(&cfg, 60, 3e-3)?;
    let filtered: Vec<f64> = run.iter().map(|m| m["self_filtered"].as_f64().unwrap()).collect();
    eprintln!("SELF filtered fraction per step: {filtered:?}");
    // a fresh model answers (almost) nothing greedily: (almost) everything is kept at first
    assert!(filtered[0] < 0.2, "{}", filtered[0]);
    // once the policy has learned digits, their prompts leave the batch
    let late = filtered[filtered.len() - 10..].iter().sum::<f64>() / 10.0;
    assert!(late > 0.5, "late filtered fraction {late:.2}");
    for m in &run {
        let f = m["self_filtered"].as_f64().unwrap();
        if f == 1.0 {
            assert_eq!(m["skipped"].as_str(), Some("every greedy answer was correct (SELF)"));
        } else {
            // the groups trained on are exactly the kept prompts
            let kept = m["groups_kept"].as_u64().unwrap() as f64;
            assert!((kept - (1.0 - f) * 12.0).abs() < 1e-9, "kept {kept} vs filtered {f}");
        }
    }
    // every greedy answer right ⇒ the step is skipped and nothing is trained on
    let solved = run_task(&AlwaysRight(FirstDigit::new()), &cfg, 1, 3e-3)?;
    assert_eq!(solved[0]["skipped"].as_str(), Some("every greedy answer was correct (SELF)"));
    assert_eq!(solved[0]["self_filtered"].as_f64(), Some(1.0));
    assert_eq!(solved[0]["groups_kept"].as_u64(), Some(0));
    Ok(())
}

/// The bandit with a verifier that accepts everything.
struct AlwaysRight(FirstDigit);

impl Task for AlwaysRight {
    fn name(&self) -> &str {
        "always-right"
    }
    fn train_problem(&self, index: u64) -> Problem {
        self.0.train_problem(index)
    }
    fn train_size(&self) -> Option<usize> {
        None
    }
    fn test_problems(&self) -> &[Problem] {
        self.0.test_problems()
    }
    fn verify(&self, _: &Problem, completion: &str) -> Verdict {
        Verdict::judged(true, Some(completion.to_string()), "")
    }
    fn max_completion_chars(&self) -> usize {
        2
    }
}

/// CalibRL (2026): the guided term against the reference solution's log-probs is active on every
/// step and training with it still learns. (On this bandit it did not raise entropy over
/// Dr.GRPO — 0.88 vs 0.98 over steps 30–40 — the paper's effect is measured on reasoning tasks;
/// the gradient oracles are unit tests in oxrl-core.)
#[test]
fn calibrl_guides_against_the_expert_baseline() -> Result<()> {
    let base = bandit_config("dr_grpo");
    let mut cal = base.clone();
    cal.train.calibrl_coef = 0.1;
    let plain = run_bandit(&base, 40, 3e-3)?;
    let guided = run_bandit(&cal, 40, 3e-3)?;
    // identical first rollouts; from the first update on the runs differ
    assert_eq!(plain[0]["reward_mean"], guided[0]["reward_mean"]);
    assert_ne!(plain[5]["entropy"], guided[5]["entropy"]);
    let (e_p, e_g) = (mean_of(&plain, "entropy", 30..40), mean_of(&guided, "entropy", 30..40));
    let (r_p, r_g) = (mean_of(&plain, "reward_mean", 35..40), mean_of(&guided, "reward_mean", 35..40));
    eprintln!("Dr.GRPO: entropy {e_p:.3}, reward {r_p:.3}; + CalibRL: entropy {e_g:.3}, reward {r_g:.3}");
    assert!(guided.iter().all(|m| m["calibrl_loss"].as_f64().is_some_and(f64::is_finite)));
    assert!(plain.iter().all(|m| m.get("calibrl_loss").is_none()));
    assert!(r_g > mean_of(&guided, "reward_mean", 0..3) + 0.2, "CalibRL must still learn");
    Ok(())
}

/// GUI-Libra negative scaling (2026, INFERRED): on identical first rollouts at low success,
/// negative advantages shrink by the group success rate while positives stay GRPO's.
#[test]
fn gui_libra_trusts_negatives_less_when_groups_rarely_succeed() -> Result<()> {
    let grpo = run_bandit(&bandit_config("grpo"), 1, 3e-3)?;
    let libra = run_bandit(&bandit_config("gui_libra"), 1, 3e-3)?;
    assert_eq!(grpo[0]["reward_mean"], libra[0]["reward_mean"]);
    let (pg, pl) = (grpo[0]["advantage_pos_mean"].as_f64().unwrap(), libra[0]["advantage_pos_mean"].as_f64().unwrap());
    let (ng, nl) = (grpo[0]["advantage_neg_mean"].as_f64().unwrap(), libra[0]["advantage_neg_mean"].as_f64().unwrap());
    eprintln!("positives {pg:.3} vs {pl:.3}; negatives {ng:.3} vs {nl:.3}");
    assert!((pg - pl).abs() < 1e-12, "positives untouched");
    assert!(nl > 0.5 * ng && nl < 0.0, "negatives shrink with success rate (< 20 % here): {ng:.4} -> {nl:.4}");
    Ok(())
}

/// SELF's negative-interference measurement: held-out solution likelihoods around each update.
/// Training on the probes' own distribution mostly raises them (little interference), and every
/// statistic stays in range.
#[test]
fn interference_is_measured_around_updates() -> Result<()> {
    let mut cfg = bandit_config("grpo");
    cfg.train.interference_every = 1;
    let run = run_bandit(&cfg, 20, 3e-3)?;
    for m in &run {
        let f = m["interference_frac"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&f));
        assert!(m["interference_mean_drop"].as_f64().unwrap() >= 0.0);
        assert!((-1.0..=1.0).contains(&m["winner_take_all"].as_f64().unwrap()));
    }
    let frac = mean_of(&run, "interference_frac", 0..20);
    eprintln!("mean fraction of probes whose solution likelihood fell: {frac:.2}");
    assert!(frac < 0.5, "training on the probes' distribution should mostly raise them ({frac:.2})");
    let off = run_bandit(&bandit_config("grpo"), 1, 3e-3)?;
    assert!(off[0].get("interference_frac").is_none());
    Ok(())
}

/// DPH-RL (2025): the mass-covering divergence to π₀'s rehearsal samples keeps their likelihood
/// (and the policy's entropy) above GRPO's, while the bandit is still learned; η = 0 is GRPO.
#[test]
fn dph_rl_preserves_the_initial_policys_mass() -> Result<()> {
    let steps = 40;
    let mut probe = bandit_config("grpo");
    probe.train.dph_divergence = "fkl".into();
    probe.train.dph_probe_prompts = 12;
    probe.train.dph_probe_samples = 4;
    probe.train.dph_batch = 24;
    // η ≈ 0: GRPO's training, with the rehearsal likelihood measured.
    probe.train.dph_coef = 1e-9;
    let grpo = run_bandit(&probe, steps, 3e-3)?;
    for (div, coef) in [("fkl", 0.5), ("js", 2.0)] {
        let mut c = probe.clone();
        c.train.dph_divergence = div.into();
        c.train.dph_coef = coef;
        let dph = run_bandit(&c, steps, 3e-3)?;
        let (lg, ld) = (mean_of(&grpo, "rehearsal_logp", 30..40), mean_of(&dph, "rehearsal_logp", 30..40));
        let (eg, ed) = (mean_of(&grpo, "entropy", 30..40), mean_of(&dph, "entropy", 30..40));
        let (r0, r1) = (mean_of(&dph, "reward_mean", 0..3), mean_of(&dph, "reward_mean", 30..40));
        eprintln!(
            "{div}: rehearsal logp GRPO {lg:.3} vs DPH {ld:.3}; entropy {eg:.3} vs {ed:.3}; reward {r0:.3} -> {r1:.3}"
        );
        assert!(ld > lg + 0.1, "{div}: rehearsal likelihood should stay higher: {ld:.3} vs {lg:.3}");
        assert!(ed > eg, "{div}: entropy should stay higher: {ed:.3} vs {eg:.3}");
        assert!(r1 > r0 + 0.1, "{div}: must still learn: {r0:.3} -> {r1:.3}");
    }
    // η = 0 (the term off) is GRPO exactly.
    let mut off = probe.clone();
    off.train.dph_coef = 0.0;
    let plain = run_bandit(&bandit_config("grpo"), 3, 3e-3)?;
    let zero = run_bandit(&off, 3, 3e-3)?;
    for (a, b) in plain.iter().zip(&zero) {
        assert_eq!(a["reward_mean"], b["reward_mean"]);
        assert_eq!(a["grad_norm"], b["grad_norm"]);
    }
    Ok(())
}

/// VERL (2025): the effective-rank bonus is added on top of GRPO's advantages — following ER's
/// z-score while the exploration weight dominates, never flipping an advantage's sign — and the
/// hidden-state effective rank is logged every step; λ = 0 is GRPO.
#[test]
fn verl_shapes_advantages_by_effective_rank() -> Result<()> {
    let mut base = bandit_config("grpo");
    base.train.max_new_tokens = 6;
    base.train.effective_rank_every = 1;
    let grpo = run_bandit(&base, 3, 3e-3)?;
    assert!(grpo.iter().all(|m| m["effective_rank"].as_f64().is_some_and(|e| e >= 1.0)), "ER is logged every step");
    // The default logs it every 10th step on a 32-response subsample.
    let sparse = run_bandit(&bandit_config("grpo"), 10, 3e-3)?;
    assert!(sparse[..9].iter().all(|m| m.get("effective_rank").is_none()) && sparse[9]["effective_rank"].is_number());
    let mut zero = base.clone();
    zero.train.verl_coef = 0.0;
    let z = run_bandit(&zero, 3, 3e-3)?;
    for (a, b) in grpo.iter().zip(&z) {
        assert_eq!(a["grad_norm"], b["grad_norm"]);
    }
    let mut v = base.clone();
    v.train.verl_coef = 0.5;
    v.train.verl_stride = 2;
    let run = run_bandit(&v, 20, 3e-3)?;
    // The bonus follows the hidden-state spread: positively correlated with ER whenever the
    // exploration weight is at least one half (all steps here: the 6-token responses are too
    // short for an acceleration, ERA = 0 ⇒ w = ½).
    let considered: Vec<f64> = run
        .iter()
        .filter(|m| {
            m["verl_explore_weight"].as_f64().unwrap() >= 0.5 && m["verl_bonus_abs_mean"].as_f64().unwrap() > 0.0
        })
        .map(|m| m["verl_bonus_er_corr"].as_f64().unwrap())
        .collect();
    assert!(considered.len() >= 15, "{considered:?}");
    let positive = considered.iter().filter(|&&c| c > 0.0).count();
    assert!(positive * 4 >= considered.len() * 3, "bonus–ER correlation mostly positive: {considered:?}");
    // The shaped advantages change the update relative to GRPO's on the same first rollouts.
    // (Whether the effective rank then stays above GRPO's is not consistent on this 6-token
    // bandit — λ = 0.5: 1.47 vs 1.43 over steps 10-20, λ = 2: 1.39 vs 1.43 — so it is reported,
    // not asserted.)
    assert_eq!(run[0]["reward_mean"], grpo[0]["reward_mean"]);
    assert_ne!(run[0]["grad_norm"], grpo[0]["grad_norm"]);
    Ok(())
}

/// PIPO (2026): the policy loss is reinforced after an improving batch and suppressed after a
/// regressing one (scale − 1 has the sign of Δ); η = 0 is GRPO.
#[test]
fn pipo_modulates_the_update_by_verified_improvement() -> Result<()> {
    let mut c = bandit_config("grpo");
    c.train.pipo_coef = 0.5;
    c.train.pipo_window = 3;
    let run = run_bandit(&c, 30, 3e-3)?;
    let (mut up, mut down) = (0, 0);
    for m in &run {
        let (d, s) = (m["pipo_delta"].as_f64().unwrap(), m["pipo_scale"].as_f64().unwrap());
        assert!((s - 1.0) * d >= 0.0 && s >= 0.0, "scale {s} vs Δ {d}");
        assert!((s - (1.0 + 0.5 * (d / 0.1).tanh()).max(0.0)).abs() < 1e-12);
        up += (s > 1.0) as usize;
        down += (s < 1.0) as usize;
    }
    assert_eq!(run[0]["pipo_scale"], 1.0, "no history yet");
    assert!(up > 0 && down > 0, "both directions occur on a noisy bandit: up {up}, down {down}");
    let (r0, r1) = (mean_of(&run, "reward_mean", 0..3), mean_of(&run, "reward_mean", 25..30));
    assert!(r1 > r0 + 0.1, "PIPO must still learn: {r0:.3} -> {r1:.3}");
    let mut off = c.clone();
    off.train.pipo_coef = 0.0;
    let (a, b) = (run_bandit(&bandit_config("grpo"), 3, 3e-3)?, run_bandit(&off, 3, 3e-3)?);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["grad_norm"], y["grad_norm"]);
    }
    Ok(())
}

/// Two bandit tasks whose rewards differ in scale (task "big" pays 10 for a correct digit).
fn two_scales_problem(i: u64) -> Problem {
    let d = (i % 3) * 3 + 1;
    let big = (i / 3) % 2 == 1;
    Problem {
        id: i,
        prompt: format!("{} {d}", if big { "SAY" } else { "say" }),
        answer: d.to_string(),
        solution: d.to_string(),
        meta: serde_json::json!({"task": if big { "big" } else { "small" }}),
    }
}

/// TMN-Reweight (GoLongRL, 2026): task-mean normalisation puts tasks with different reward
/// scales on one footing — Dr.GRPO's advantages on the 10× task are ~10× larger, TMN's are not.
#[test]
fn tmn_reweight_aligns_reward_scales_across_tasks() -> Result<()> {
    let task = FirstDigit::with(two_scales_problem, |p| if p.meta["task"] == "big" { 10.0 } else { 1.0 });
    let ratio = |m: &[serde_json::Map<String, serde_json::Value>]| -> f64 {
        let (mut b, mut s) = (0.0, 0.0);
        for r in m {
            b += r["advantage_abs_mean/big"].as_f64().unwrap();
            s += r["advantage_abs_mean/small"].as_f64().unwrap();
        }
        b / s.max(1e-9)
    };
    // Steps 5-12: both tasks have correct samples by then.
    let dr = run_task(&task, &bandit_config("dr_grpo"), 12, 3e-3)?;
    let tmn = run_task(&task, &bandit_config("tmn"), 12, 3e-3)?;
    assert!(dr.iter().all(|m| m["tasks_in_batch"] == 2));
    let (rd, rt) = (ratio(&dr[4..]), ratio(&tmn[4..]));
    eprintln!("|A| big/small: Dr.GRPO {rd:.2}, TMN {rt:.2}");
    assert!(rd > 5.0, "Dr.GRPO should carry the 10× scale: {rd:.2}");
    assert!(rt < 3.0 && rt > 0.33, "TMN should align the scales: {rt:.2}");
    let run = run_task(&task, &bandit_config("tmn"), 80, 3e-3)?;
    let (r0, r1) = (mean_of(&run, "accuracy", 0..3), mean_of(&run, "accuracy", 75..80));
    eprintln!("TMN accuracy {r0:.3} -> {r1:.3}");
    assert!(r1 > r0 + 0.2, "TMN must learn both tasks: {r0:.3} -> {r1:.3}");
    Ok(())
}

/// ArenaRL (2026): groups ranked by a tournament under the task's judge in ≤ 2G judge calls; the
/// winner is a correct response whenever the group has one; training on rank scores learns.
#[test]
fn arena_rl_ranks_groups_by_tournament_and_learns() -> Result<()> {
    let c = bandit_config("arena");
    let g = c.train.group_size as f64;
    let run = run_bandit(&c, 100, 3e-3)?;
    for m in &run {
        assert!(m["arena_judge_calls"].as_f64().unwrap() <= 2.0 * g, "{m:?}");
        // A group with any correct response crowns a correct one (the task judge is exact).
        assert_eq!(m["arena_winner_correct"], m["arena_groups_with_correct"]);
    }
    let (r0, r1) = (mean_of(&run, "reward_mean", 0..3), mean_of(&run, "reward_mean", 95..100));
    eprintln!("ArenaRL reward {r0:.3} -> {r1:.3}");
    assert!(r1 > r0 + 0.2, "ArenaRL must learn the bandit: {r0:.3} -> {r1:.3}");
    Ok(())
}

/// DCPO + hierarchical gated reward (ChatShopBuddy, 2026): only each group's contrastive subset
/// carries loss (none from groups with a small reward spread); with the gated reward a correct
/// answer always outranks a wrong one, and shorter correct answers earn more; it still learns.
#[test]
fn dcpo_trains_on_contrastive_subsets_with_gated_rewards() -> Result<()> {
    let mut c = bandit_config("dcpo");
    c.train.hierarchical_reward = true;
    c.train.max_new_tokens = 4;
    let run = run_bandit(&c, 80, 3e-3)?;
    for m in &run {
        let in_loss = m["samples_in_loss"].as_f64().unwrap();
        assert!(in_loss <= 1.0 - m["zero_variance_groups"].as_f64().unwrap() + 1e-9, "{m:?}");
    }
    assert!(run.iter().any(|m| m["samples_in_loss"].as_f64().unwrap() > 0.0));
    assert!(run.iter().all(|m| m["samples_in_loss"].as_f64().unwrap() < 1.0));
    let (a0, a1) = (mean_of(&run, "accuracy", 0..3), mean_of(&run, "accuracy", 75..80));
    eprintln!("DCPO + HRM accuracy {a0:.3} -> {a1:.3}");
    assert!(a1 > a0 + 0.2, "DCPO must learn: {a0:.3} -> {a1:.3}");
    Ok(())
}

/// AEM (2026, INFERRED): early on (successes rare) the surprisal modulation boosts rare positives
/// and confident negatives — both raise entropy — so entropy falls more slowly than under GRPO on
/// the same bandit; the multiplier never flips a sign and κ = 0 is GRPO.
#[test]
fn aem_slows_the_early_entropy_collapse() -> Result<()> {
    let steps = 40;
    let grpo = run_bandit(&bandit_config("grpo"), steps, 3e-3)?;
    let mut c = bandit_config("grpo");
    c.train.aem_kappa = 2.0;
    let aem = run_bandit(&c, steps, 3e-3)?;
    for m in &aem {
        let (p, n) = (m["aem_scale_pos"].as_f64().unwrap(), m["aem_scale_neg"].as_f64().unwrap());
        assert!((0.5..=2.0).contains(&p) && (0.5..=2.0).contains(&n), "{p} {n}");
    }
    for w in [10..20, 20..30, 30..40] {
        eprintln!(
            "steps {w:?}: entropy GRPO {:.3} AEM {:.3}; reward GRPO {:.3} AEM {:.3}",
            mean_of(&grpo, "entropy", w.clone()),
            mean_of(&aem, "entropy", w.clone()),
            mean_of(&grpo, "reward_mean", w.clone()),
            mean_of(&aem, "reward_mean", w.clone())
        );
    }
    let (eg, ea) = (mean_of(&grpo, "entropy", 20..40), mean_of(&aem, "entropy", 20..40));
    assert!(ea > eg + 0.3, "AEM entropy {ea:.3} should stay above GRPO's {eg:.3}");
    let (r0, r1) = (mean_of(&aem, "reward_mean", 0..3), mean_of(&aem, "reward_mean", 35..40));
    assert!(r1 > r0 + 0.1, "AEM must still learn: {r0:.3} -> {r1:.3}");
    c.train.aem_kappa = 0.0;
    let off = run_bandit(&c, 3, 3e-3)?;
    for (x, y) in grpo.iter().zip(&off) {
        assert_eq!(x["grad_norm"], y["grad_norm"], "κ = 0 is GRPO");
    }
    Ok(())
}

/// GUI-G1 (2025): on identical rollouts of the grounding task, difficulty weighting scales the
/// (r − μ) advantages by the problems' rates — harder (smaller) targets weigh more — and nothing
/// else; the box reward is the task's (unit oracles in oxrl-tasks, loss oracles in oxrl-core).
#[test]
fn gui_g1_weighs_responses_by_problem_difficulty() -> Result<()> {
    use oxrl_tasks::grounding::{Grounding, GroundingConfig};
    let task = Grounding::new(GroundingConfig { elements: 2, ..Default::default() }, 0)?;
    let mut c = bandit_config("dr_grpo");
    c.train.loss_agg = oxrl_core::loss::AggMode::SeqMeanTokenSum;
    c.train.max_new_tokens = 12;
    c.train.temperature = 0.9;
    let plain = run_task_budget(&task, &c, 1, 3e-3, 12)?;
    c.train.difficulty_weight = true;
    let weighted = run_task_budget(&task, &c, 1, 3e-3, 12)?;
    assert_eq!(plain[0]["reward_mean"], weighted[0]["reward_mean"], "same rollouts");
    let w = weighted[0]["difficulty_weight_mean"].as_f64().unwrap();
    assert!(w > 0.5 && w < 1.5 && (w - 1.0).abs() > 1e-3, "mean rate {w}");
    // (advantage_pos_mean is measured after the weighting; advantage_abs_mean before it)
    let (a0, a1) =
        (plain[0]["advantage_pos_mean"].as_f64().unwrap(), weighted[0]["advantage_pos_mean"].as_f64().unwrap());
    assert_eq!(plain[0]["advantage_abs_mean"], weighted[0]["advantage_abs_mean"]);
    eprintln!("mean rate {w:.3}; mean positive A plain {a0:.4}, weighted {a1:.4}");
    assert!(a0 > 0.0, "the fresh policy's boxes must differ in reward");
    assert!(a1 > 0.5 * a0 && a1 < 1.5 * a0 && a1 != a0);
    assert_ne!(plain[0]["grad_norm"], weighted[0]["grad_norm"]);
    Ok(())
}

/// SIREN (2025, INFERRED): after GRPO has sharpened the policy, a plain entropy bonus with a large
/// coefficient drives the entropy back up toward the maximum (explodes), while SIREN's anchored,
/// selective term keeps it bounded near the anchor; only the top-ρ tokens are acted on.
#[test]
fn siren_keeps_entropy_bounded_where_a_plain_bonus_explodes() -> Result<()> {
    let grpo = bandit_config("grpo");
    let (warm, steps) = (25, 25);
    let mut bonus = grpo.clone();
    bonus.train.entropy_coef = 0.1;
    let mut siren = grpo.clone();
    siren.train.siren_coef = 0.1;
    let task = FirstDigit::new();
    let b = run_phases(&task, &[(&grpo, warm), (&bonus, steps)], 3e-3, 2)?;
    let s = run_phases(&task, &[(&grpo, warm), (&siren, steps)], 3e-3, 2)?;
    let p = run_phases(&task, &[(&grpo, warm), (&grpo, steps)], 3e-3, 2)?;
    for i in (0..50).step_by(5) {
        eprintln!(
            "step {i}: entropy GRPO {:.3} bonus {:.3} SIREN {:.3} (anchor {:?}, H^p {:?}); reward {:.2} {:.2} {:.2}",
            p[i]["entropy"].as_f64().unwrap(),
            b[i]["entropy"].as_f64().unwrap(),
            s[i]["entropy"].as_f64().unwrap(),
            s[i].get("siren_anchor"),
            s[i].get("siren_entropy"),
            p[i]["reward_mean"].as_f64().unwrap(),
            b[i]["reward_mean"].as_f64().unwrap(),
            s[i]["reward_mean"].as_f64().unwrap()
        );
    }
    let start = p[warm as usize]["entropy"].as_f64().unwrap();
    let late = |r: &[serde_json::Map<String, serde_json::Value>]| mean_of(r, "entropy", 40..50);
    let (eg, eb, es) = (late(&p), late(&b), late(&s));
    assert!(eb > start + 0.2, "the plain bonus drives entropy up past its start: {start:.3} -> {eb:.3}");
    assert!(es > eg + 0.3, "SIREN keeps entropy above GRPO's collapse: {es:.3} vs {eg:.3}");
    assert!(es < eb - 0.5, "SIREN stays bounded below the plain bonus: {es:.3} vs {eb:.3}");
    let anchor = s[warm as usize]["siren_anchor"].as_f64().unwrap();
    for m in &s[warm as usize..] {
        assert!(m["entropy"].as_f64().unwrap() < start + 0.1, "SIREN never pushes past its start");
        assert_eq!(m["siren_anchor"].as_f64().unwrap(), anchor, "the anchor is fixed once set");
    }
    assert!(mean_of(&s, "reward_mean", 40..50) > 0.8, "SIREN still learns the bandit");
    Ok(())
}

/// ViSurf (2025, INFERRED): injecting the ground truth where no rollout is correct gives the
/// fresh policy a positive example in nearly every group, so it learns faster than GRPO, and the
/// injections fade as its own rollouts start succeeding; the cap bounds the expert's advantage.
#[test]
fn visurf_injects_ground_truth_only_when_needed() -> Result<()> {
    let steps = 30;
    let grpo = run_bandit(&bandit_config("grpo"), steps, 3e-3)?;
    let mut c = bandit_config("grpo");
    c.train.visurf = "when_needed".into();
    let v = run_bandit(&c, steps, 3e-3)?;
    c.train.visurf_cap = true;
    let capped = run_bandit(&c, 3, 3e-3)?;
    for w in [0..5, 5..10, 10..20, 20..30] {
        eprintln!(
            "steps {w:?}: reward GRPO {:.3} ViSurf {:.3}; injected {:.2}; expert A {:.2}",
            mean_of(&grpo, "reward_mean", w.clone()),
            mean_of(&v, "reward_mean", w.clone()),
            mean_of(&v, "visurf_injected", w.clone()),
            mean_of(&v, "visurf_expert_advantage", w.clone()), // NaN where nothing was injected
        );
    }
    let (ec, eu) =
        (capped[0]["visurf_expert_advantage"].as_f64().unwrap(), v[0]["visurf_expert_advantage"].as_f64().unwrap());
    eprintln!("capped expert A {ec:.3} vs uncapped {eu:.3}");
    assert_eq!(v[0]["reward_mean"], capped[0]["reward_mean"], "same first rollouts");
    assert!(eu > 1.0 && ec > 0.0 && ec < 0.5 * eu, "the cap bounds the expert's advantage: {ec} vs {eu}");
    let (i0, i1) = (mean_of(&v, "visurf_injected", 0..5), mean_of(&v, "visurf_injected", 20..30));
    assert!(i0 > 0.3 && i1 < 0.1, "injections fade as rollouts succeed: {i0:.2} -> {i1:.2}");
    let (r0, r1) = (mean_of(&v, "reward_mean", 0..5), mean_of(&v, "reward_mean", 20..30));
    assert!(r1 > r0 + 0.2, "ViSurf learns the bandit: {r0:.3} -> {r1:.3}");
    // `always` injects into every group (all of them have a solution that fits the budget)
    c.train.visurf = "always".into();
    let a = run_bandit(&c, 1, 3e-3)?;
    assert_eq!(a[0]["visurf_injected"], 1.0);
    Ok(())
}

/// PPR / ReNorm (2025, INFERRED): with a process verifier that rewards a principle the outcome
/// ignores (here: the answer digit is followed by `!`), the centred process term teaches it —
/// the process score rises above GRPO's — while correct answers still outrank wrong ones, so the
/// bandit is still learned; α = 0 is GRPO.
#[test]
fn ppr_rewards_principled_steps_without_outranking_the_outcome() -> Result<()> {
    let mut task = FirstDigit::new();
    task.process = Some(|_, c: &str| {
        let ch: Vec<char> = c.chars().collect();
        vec![(ch.len() >= 2 && ch[1] == '!') as u8 as f64]
    });
    let steps = 40;
    let grpo = run_task(&task, &bandit_config("grpo"), steps, 3e-3)?;
    let mut c = bandit_config("grpo");
    c.train.ppr_coef = 0.4;
    let ppr = run_task(&task, &c, steps, 3e-3)?;
    for w in [0..5, 10..20, 30..40] {
        eprintln!(
            "steps {w:?}: process GRPO {:.3} PPR {:.3}; reward GRPO {:.3} PPR {:.3}",
            mean_of(&grpo, "process_score", w.clone()),
            mean_of(&ppr, "process_score", w.clone()),
            mean_of(&grpo, "reward_mean", w.clone()),
            mean_of(&ppr, "reward_mean", w.clone())
        );
    }
    let (pg, pp) = (mean_of(&grpo, "process_score", 30..40), mean_of(&ppr, "process_score", 30..40));
    assert!(pp > 0.5 && pp > pg + 0.4, "PPR teaches the principle GRPO ignores: {pp:.3} vs {pg:.3}");
    let (r0, r1) = (mean_of(&ppr, "reward_mean", 0..5), mean_of(&ppr, "reward_mean", 30..40));
    assert!(r1 > r0 + 0.1, "the outcome is still learned: {r0:.3} -> {r1:.3}");
    c.train.ppr_coef = 0.0;
    for (x, y) in grpo.iter().zip(&run_task(&task, &c, 3, 3e-3)?) {
        assert_eq!(x["grad_norm"], y["grad_norm"], "α = 0 is GRPO");
    }
    Ok(())
}

/// A judge that always prefers whichever answer it is shown first (pure position bias).
struct FirstShownWins;

impl oxrl::judge::Judge for FirstShownWins {
    fn compare(&self, _: &Problem, _: &str, _: &str) -> Result<f64> {
        Ok(1.0)
    }
}

/// RPO (2026, INFERRED): the binary rubric preference (correct, then well-formed; judged in
/// both orders against the prompt's greedy answer) is a 0/1 reward the consistent task judge
/// never contradicts, and training on it learns the bandit; a judge with pure position bias
/// disagrees with itself on every pair, so every reward is 0 and nothing is learned.
#[test]
fn rpo_rewards_consistent_rubric_wins_only() -> Result<()> {
    let mut c = bandit_config("grpo");
    c.train.rpo = true;
    let task = FirstDigit::new();
    let run = run_phases_judged(&task, &[(&c, 40)], 3e-3, 2, None, None)?;
    for m in &run {
        assert_eq!(m["rpo_order_disagreement"], 0.0, "the task judge is consistent");
        let w = m["rpo_win_rate"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&w));
    }
    let (r0, r1) = (mean_of(&run, "reward_mean", 0..5), mean_of(&run, "reward_mean", 35..40));
    eprintln!(
        "RPO: verifier reward {r0:.3} -> {r1:.3}; win rate {:.3} -> {:.3}",
        mean_of(&run, "rpo_win_rate", 0..5),
        mean_of(&run, "rpo_win_rate", 35..40)
    );
    assert!(r1 > r0 + 0.2, "RPO learns the bandit: {r0:.3} -> {r1:.3}");
    let biased = run_phases_judged(&task, &[(&c, 2)], 3e-3, 2, Some(&FirstShownWins), None)?;
    for m in &biased {
        assert_eq!(m["rpo_order_disagreement"], 1.0);
        assert_eq!(m["rpo_win_rate"], 0.0);
        assert_eq!(m["advantage_abs_mean"], 0.0, "no signal from a biased judge");
    }
    Ok(())
}

/// ReasonMaxxer (2026, INFERRED): RL-free — the rollouts come from the frozen base model (so
/// their accuracy stays the base's), and the policy learns only at the base's decision points:
/// its probability of the correct rollouts' chosen tokens there rises and of the incorrect ones'
/// falls.
#[test]
fn reasonmaxxer_selects_at_decision_points_from_base_rollouts() -> Result<()> {
    let mut c = bandit_config("grpo");
    c.train.objective = "reasonmaxxer".into();
    c.train.rm_rho = 0.5; // the bandit's first token is its one decision
    c.train.rm_top_k = 100; // the fresh base is near uniform: every digit a candidate
    let run = run_bandit(&c, 30, 3e-3)?;
    // mean over the steps that logged the key (a step may draw no correct rollout)
    let logged = |key: &str, w: std::ops::Range<usize>| -> f64 {
        let v: Vec<f64> = run[w].iter().filter_map(|m| m.get(key).and_then(|x| x.as_f64())).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    for w in [0..5, 10..15, 25..30] {
        eprintln!(
            "steps {w:?}: base accuracy {:.3}; policy p(positive) {:.3} p(negative) {:.3}; decision points {:.0}",
            mean_of(&run, "accuracy", w.clone()),
            logged("rm_positive_p", w.clone()),
            logged("rm_negative_p", w.clone()),
            mean_of(&run, "rm_decision_points", w.clone())
        );
    }
    assert!(mean_of(&run, "accuracy", 0..30) < 0.05, "the rollouts stay the frozen base's");
    let (p0, p1) = (logged("rm_positive_p", 0..5), logged("rm_positive_p", 25..30));
    assert!(p1 > 0.2 && p1 > p0 + 0.15, "positives gain probability: {p0:.3} -> {p1:.3}");
    let (n0, n1) = (logged("rm_negative_p", 0..5), logged("rm_negative_p", 25..30));
    assert!(n1 <= n0, "negatives do not gain: {n0:.4} -> {n1:.4}");
    Ok(())
}

/// PAPO (2025): the perception KL between the real and the masked prompt is measured on every
/// update; at the paper's setting (γ = 0.01, η = 0.03) training learns as GRPO does, while a
/// large γ without the double entropy loss is hacked — the masked-prompt log-probs of the sampled
/// tokens are driven down without bound (KL and "entropy" beyond the uniform ln 100) — and the
/// entropy terms (η > γ) keep both bounded. (On this bandit the prompt-dependence gain over GRPO
/// is within noise; the paper measures it on vision-dependent tasks.)
#[test]
fn papo_double_entropy_prevents_perception_kl_hacking() -> Result<()> {
    let steps = 30;
    let run = |gamma: f64, eta: f64| -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
        let mut c = bandit_config("grpo");
        c.train.papo_coef = gamma;
        c.train.papo_aug_entropy = eta;
        c.train.papo_ori_entropy = eta;
        run_bandit(&c, steps, 3e-3)
    };
    let grpo = run(1e-12, 0.0)?; // measures the KL, trains as GRPO
    let papo = run(0.01, 0.03)?; // the paper's setting
    let hacked = run(0.1, 0.0)?;
    let guarded = run(0.1, 0.3)?;
    for (name, r) in [("GRPO", &grpo), ("PAPO", &papo), ("γ=0.1, η=0", &hacked), ("γ=0.1, η=0.3", &guarded)] {
        eprintln!(
            "{name}: KL {:.3} -> {:.3}; masked entropy {:.3} -> {:.3}; reward {:.3} -> {:.3}",
            mean_of(r, "papo_kl", 0..3),
            mean_of(r, "papo_kl", 25..30),
            mean_of(r, "papo_aug_entropy", 0..3),
            mean_of(r, "papo_aug_entropy", 25..30),
            mean_of(r, "reward_mean", 0..3),
            mean_of(r, "reward_mean", 25..30)
        );
    }
    let late = |r: &[serde_json::Map<String, serde_json::Value>], k: &str| mean_of(r, k, 25..30);
    let uniform = (100f64).ln();
    assert!(late(&hacked, "papo_kl") > 5.0 && late(&hacked, "papo_aug_entropy") > uniform, "γ without η is hacked");
    assert!(late(&guarded, "papo_kl") < 1.0 && late(&guarded, "papo_aug_entropy") < uniform, "η > γ keeps it bounded");
    assert!(late(&papo, "reward_mean") > mean_of(&papo, "reward_mean", 0..3) + 0.2, "PAPO learns the bandit");
    assert!(papo.iter().chain(&grpo).all(|m| m["papo_kl"].as_f64().unwrap() >= 0.0), "k3 is non-negative");
    Ok(())
}

/// SPAE (2026, INFERRED composition): after a short SFT on arith (`step1: 3*4=12,…,answer: 15`)
/// the policy's responses have several comma-separated steps; the probes measure a potential Φ ∈
/// [−1, 1] at every step boundary and λ·ΔΦ reshapes the token advantages. (This 150-step SFT
/// model is too weak — ~5 % accurate — for Φ to rise along its solutions, so the run checks the
/// mechanism; Φ's oracles and the saturation tail penalty are unit tests in oxrl-core.)
#[test]
fn spae_probes_every_step_and_shapes_advantages() -> Result<()> {
    let d = tempfile::tempdir()?;
    let cfg = oxrl::config::RunConfig::load_str(
        "spae test",
        r#"
name = "spae"
seed = 0
[task]
name = "arith"
operands = 3
test_size = 16
[sft]
steps = 150
batch_size = 32
lr = 3e-3
warmup_steps = 10
[train]
sft_warmup = true
steps = 2
prompts_per_step = 4
group_size = 4
spae_coef = 1.0
spae_sat_penalty = 0.2
[eval]
k = [1]
max_problems = 8
"#,
        &[],
    )?;
    let out = oxrl::train::run_train(&cfg, Some(&d.path().join("run")), None, None, true)?;
    let rl: Vec<serde_json::Value> = common::metrics(&out.run_dir)
        .into_iter()
        .filter(|m| m["phase"] == "rl" && m.get("spae_steps").is_some())
        .collect();
    assert_eq!(rl.len(), 2);
    for m in &rl {
        let f = |k: &str| m[k].as_f64().unwrap();
        eprintln!(
            "steps {:.2}, Φ first {:.3} final {:.3} rise {:?}, |ΔΦ| {:.3}, saturated {:.2}, accuracy {:.2}",
            f("spae_steps"),
            f("spae_phi_first"),
            f("spae_phi_final"),
            m.get("spae_phi_rise"),
            f("spae_phi_delta_abs"),
            f("spae_saturated"),
            f("accuracy")
        );
        assert!(f("spae_steps") >= 2.0, "the SFT'd responses have several steps");
        assert!(f("spae_phi_delta_abs") > 0.01, "the potential changes between steps");
        for k in ["spae_phi_first", "spae_phi_final"] {
            assert!((-1.0..=1.0).contains(&f(k)));
        }
        assert!(f("time_spae_probe_s") > 0.0);
    }
    Ok(())
}

/// RLFR (2025, INFERRED): a velocity field fitted on the policy's hidden states over the expert
/// solutions scores correct responses' latents as more in-distribution than incorrect ones (a
/// positive flow-reward gap), and training with the flow reward still learns.
#[test]
fn rlfr_flow_rewards_favour_expert_like_latents() -> Result<()> {
    let mut c = bandit_config("grpo");
    c.train.rlfr_coef = 0.3;
    c.train.rlfr_fit_prompts = 60;
    c.train.rlfr_fit_steps = 300;
    c.train.rlfr_hidden = 64;
    let run = run_bandit(&c, 30, 3e-3)?;
    let gaps: Vec<f64> = run.iter().filter_map(|m| m.get("rlfr_reward_correct_gap").and_then(|x| x.as_f64())).collect();
    let gap = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let (r0, r1) = (mean_of(&run, "reward_mean", 0..5), mean_of(&run, "reward_mean", 25..30));
    eprintln!("flow-reward gap correct − incorrect {gap:.3} over {} steps; reward {r0:.3} -> {r1:.3}", gaps.len());
    assert!(gaps.len() >= 20 && gap > 0.1, "correct latents are more expert-like: gap {gap:.3}");
    assert!(r1 > r0 + 0.15, "RLFR still learns: {r0:.3} -> {r1:.3}");
    assert!(run.iter().all(|m| m["rlfr_deviation"].as_f64().unwrap() > 0.0));
    Ok(())
}

/// RA3 (2025, INFERRED): `oxrl midtrain` runs EM rounds on arith's expert solutions after a
/// short SFT — every segment after the first is offered sampled latents, only ones that raise the
/// next segment's likelihood by more than their length cost are kept, the M-step's loss falls,
/// and the result is an ordinary checkpoint. (The bound and the selection rule are unit tests in
/// oxrl-core.)
#[test]
fn ra3_midtraining_keeps_only_helpful_latents() -> Result<()> {
    let d = tempfile::tempdir()?;
    let cfg = oxrl::config::RunConfig::load_str(
        "ra3 test",
        r#"
name = "ra3"
seed = 0
[task]
name = "arith"
operands = 3
test_size = 8
[sft]
steps = 60
batch_size = 32
lr = 3e-3
warmup_steps = 5
[train]
sft_warmup = true
[ra3]
rounds = 2
problems = 12
candidates = 4
sft_steps = 15
batch_size = 12
length_cost = 0.02
[eval]
k = [1]
max_problems = 8
"#,
        &[],
    )?;
    let out = oxrl::ra3::run_midtrain(&cfg, Some(&d.path().join("run")), true)?;
    let recs: Vec<serde_json::Value> =
        common::metrics(&out.run_dir).into_iter().filter(|m| m["phase"] == "ra3" && m.get("round").is_some()).collect();
    assert_eq!(recs.len(), 2);
    for m in &recs {
        eprintln!("{m}");
        assert_eq!(m["segments"], 24, "two latent slots per 3-operand solution (before step2 and the answer)");
        let kept = m["latents_kept"].as_u64().unwrap();
        if kept > 0 {
            assert!(m["kept_reward_min"].as_f64().unwrap() > 0.0, "only helpful latents are kept");
        }
        assert!(m["m_step_loss_last"].as_f64().unwrap() < m["m_step_loss_first"].as_f64().unwrap());
    }
    let ck = oxrl_lm::checkpoint::load(&out.run_dir.join("checkpoints/final"), &candle_core::Device::Cpu)?;
    assert_eq!(ck.model.cfg.num_hidden_layers, cfg.model.num_hidden_layers);
    Ok(())
}

fn latent(kind: &str, steps: usize) -> oxrl::config::LatentSection {
    oxrl::config::LatentSection { kind: kind.into(), steps, ..Default::default() }
}

/// HRPO (2025, INFERRED gate): GRPO on sampled tokens whose inputs mix in the previous hidden
/// state through a learnable gate that starts near 0 — training moves the gate and still learns.
#[test]
fn hrpo_trains_its_gate_with_grpo() -> Result<()> {
    let mut c = bandit_config("grpo");
    c.model.latent = Some(oxrl::config::LatentSection { gate_init: -3.0, ..latent("hrpo", 0) });
    let run = run_bandit(&c, 30, 3e-3)?;
    let g = |i: usize| run[i]["hrpo_gate"].as_f64().unwrap();
    let (r0, r1) = (mean_of(&run, "reward_mean", 0..5), mean_of(&run, "reward_mean", 25..30));
    eprintln!("HRPO gate {:.5} -> {:.5}; reward {r0:.3} -> {r1:.3}", g(0), g(29));
    assert!((g(0) - 1.0 / (1.0 + 3f64.exp())).abs() < 1e-3, "starts at σ(−3)");
    assert!((g(29) - g(0)).abs() > 1e-4, "the gate is trained");
    assert!(r1 > r0 + 0.15, "HRPO learns: {r0:.3} -> {r1:.3}");
    assert!(run.iter().all(|m| m["mismatch_max"].as_f64().unwrap() < 1e-3), "rollouts replay exactly");
    Ok(())
}

/// DePO (HyLaR 2026): with Coconut latent segments (noisy on half of each group, so latents are
/// real actions), latent positions get their own PPO term inside a tighter trust region plus the
/// vMF KL, tokens keep theirs; without DePO the latents carry no loss. Over two epochs the latent
/// ratios leave 1 and the latent clip engages; both runs learn the bandit through the prefix.
#[test]
fn depo_trains_latents_inside_their_own_trust_region() -> Result<()> {
    let mut base = bandit_config("grpo");
    base.model.latent = Some(oxrl::config::LatentSection { kappa: 5.0, normalize: true, ..latent("coconut", 2) });
    base.train.latent_noise = 0.3;
    base.train.epochs = 2;
    let mut depo = base.clone();
    depo.train.depo_alpha = 0.5;
    depo.train.depo_vmf_kl = 0.01;
    let plain = run_task_budget(&FirstDigit::new(), &base, 30, 3e-3, 4)?;
    let run = run_task_budget(&FirstDigit::new(), &depo, 30, 3e-3, 4)?;
    let (r0, r1) = (mean_of(&run, "reward_mean", 0..5), mean_of(&run, "reward_mean", 25..30));
    let (p0, p1) = (mean_of(&plain, "reward_mean", 0..5), mean_of(&plain, "reward_mean", 25..30));
    let ratio = mean_of(&run, "latent_ratio_mean", 0..30);
    let clip = mean_of(&run, "latent_clipfrac", 0..30);
    let kl = mean_of(&run, "latent_vmf_kl", 0..30);
    eprintln!("DePO reward {r0:.3} -> {r1:.3} (no latent term: {p0:.3} -> {p1:.3}); latent ratio {ratio:.4}, clipfrac {clip:.4}, vMF KL {kl:.5}");
    assert!(plain.iter().all(|m| m.get("latent_clipfrac").is_none()), "no DePO: latents carry no loss");
    assert!(run.iter().all(|m| m.get("latent_clipfrac").is_some()), "DePO: every update has latent positions");
    assert!(clip > 0.0, "the latent trust region engages");
    assert!((ratio - 1.0).abs() < 0.1 && kl > 0.0, "latent ratios stay near the trust region; noisy z ≠ μ");
    assert!(run.iter().all(|m| m["mismatch_max"].as_f64().unwrap() < 1e-3), "latent rollouts replay exactly");
    assert!(r1 > r0 + 0.15 && p1 > p0 + 0.1, "both learn through the latent prefix");
    Ok(())
}

/// Latent-GRPO (2026, INFERRED): noisy latents on half of each group (anchors keep the
/// deterministic path), invalid latent rollouts masked out of the group statistics, and one
/// reinforced correct path per group; it still learns.
#[test]
fn latent_grpo_masks_invalid_rollouts_and_selects_one_correct_path() -> Result<()> {
    let mut c = bandit_config("grpo");
    c.model.latent = Some(oxrl::config::LatentSection { kappa: 1.0, normalize: true, ..latent("coconut", 2) });
    c.train.depo_alpha = 0.5;
    c.train.latent_grpo = true;
    c.train.latent_select = true;
    c.train.latent_noise = 0.5;
    c.train.latent_norm_margin = 1.5;
    let run = run_task_budget(&FirstDigit::new(), &c, 30, 3e-3, 4)?;
    let (r0, r1) = (mean_of(&run, "reward_mean", 0..5), mean_of(&run, "reward_mean", 25..30));
    let invalid = mean_of(&run, "latent_invalid", 0..30);
    let zeroed = mean_of(&run, "latent_select_zeroed", 0..30);
    eprintln!(
        "Latent-GRPO reward {r0:.3} -> {r1:.3}; invalid {invalid:.3}; correct paths zeroed per group {zeroed:.2}"
    );
    assert!(run.iter().all(|m| m["latent_norm_lo"].as_f64().unwrap() > 0.0));
    assert!((0.0..1.0).contains(&invalid));
    assert!(zeroed > 0.5, "groups with several correct paths reinforce one");
    assert!(r1 > r0 + 0.1, "Latent-GRPO learns: {r0:.3} -> {r1:.3}");
    Ok(())
}

/// PRDP (2024; the LM mapping INFERRED): no advantages — the policy regresses β·Σ clipped
/// log-ratio differences of every pair in a group onto their reward differences; it learns the
/// bandit, over all C(G, 2) pairs of each group.
#[test]
fn prdp_regresses_reward_differences_and_learns() -> Result<()> {
    let mut c = bandit_config("grpo");
    c.train.objective = "prdp".into();
    c.train.prdp_beta = 1.0;
    c.train.prdp_clip = 0.2;
    c.validate()?;
    let run = run_bandit(&c, 30, 3e-3)?;
    let (r0, r1) = (mean_of(&run, "reward_mean", 0..5), mean_of(&run, "reward_mean", 25..30));
    eprintln!("PRDP reward {r0:.3} -> {r1:.3}");
    // 12 groups of 16 in two minibatches: 6·C(16, 2) = 720 pairs per update.
    assert!(run.iter().all(|m| m["prdp_pairs"].as_f64() == Some(720.0)));
    assert!(r1 > r0 + 0.15, "PRDP learns: {r0:.3} -> {r1:.3}");
    Ok(())
}

/// A two-digit code the prompt names ("code 47"): the verifier accepts only both digits, which a
/// fresh model writes ~0.01 % of the time; the hidden reference has the first digit as an
/// intermediate checkpoint.
fn two_digit_code(i: u64) -> Problem {
    let code = ["14", "47", "71"][(i % 3) as usize];
    Problem {
        id: i,
        prompt: format!("code {code}"),
        answer: code.into(),
        solution: format!("{}\n{code}", &code[..1]),
        meta: serde_json::Value::Null,
    }
}

/// The spec's deterministic mock judge: a checkpoint is met when the response starts with it,
/// the final one when it starts with the whole answer.
struct PrefixJudge;

impl oxrl::judge::Judge for PrefixJudge {
    fn compare(&self, _: &Problem, _: &str, _: &str) -> Result<f64> {
        Ok(0.5)
    }
    fn grade(
        &self,
        p: &Problem,
        cps: &[oxrl_core::shaping::exprl::Checkpoint],
        response: &str,
    ) -> Result<Vec<oxrl_core::shaping::exprl::Grade>> {
        Ok(cps
            .iter()
            .map(|c| {
                let target = if c.is_final { p.answer.as_str() } else { c.text.as_str() };
                let met = response.starts_with(target);
                oxrl_core::shaping::exprl::Grade { score: met as u8 as f64, at: met.then_some(target.len()) }
            })
            .collect())
    }
}

/// ExpRL (2026, INFERRED): on problems a fresh model never solves, the binary reward leaves
/// every group degenerate, while the rubric against the hidden reference pays for the first
/// digit — partial progress is rewarded, the first digit and then the code are learned; as a
/// mid-training prior it hands over to the sparse reward after `exprl_steps`, and the process
/// level (reward on the token where a checkpoint is met, REINFORCE++ returns) learns as well.
#[test]
fn exprl_rewards_partial_progress_against_hidden_references() -> Result<()> {
    let task = FirstDigit::with(two_digit_code, |_| 1.0);
    let (steps, prior) = (80, 60);
    let lr = 3e-3;
    let binary = run_phases_judged(&task, &[(&bandit_config("grpo"), steps)], lr, 2, Some(&PrefixJudge), None)?;
    let mut c = bandit_config("grpo");
    c.train.exprl = "outcome".into();
    c.train.exprl_steps = prior;
    let exp = run_phases_judged(&task, &[(&c, steps)], lr, 2, Some(&PrefixJudge), None)?;
    let n = steps as usize;
    for (i, m) in exp.iter().enumerate() {
        let active = i < prior as usize;
        assert_eq!(m["exprl_active"], active as u8, "step {}", i + 1);
        if active {
            assert_eq!(m["exprl_judge_failures"], 0);
            assert_eq!(m["exprl_prompt_leaks"], 0, "the reference never enters the prompt");
            let r = m["exprl_reward"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&r));
        } else {
            assert!(m.get("exprl_reward").is_none());
            assert_eq!(m["reward_mean"], m["accuracy"], "the sparse verifier reward after the switch");
        }
    }
    let degenerate = |run: &[serde_json::Map<String, serde_json::Value>]| mean_of(run, "zero_variance_groups", 0..5);
    eprintln!(
        "ExpRL: degenerate groups over steps 1-5 binary {:.2} vs rubric {:.2}; accuracy after the prior binary {:.3} vs ExpRL {:.3}; checkpoints met {:.3} -> {:.3}",
        degenerate(&binary),
        degenerate(&exp),
        mean_of(&binary, "accuracy", prior as usize..n),
        mean_of(&exp, "accuracy", prior as usize..n),
        mean_of(&exp, "exprl_checkpoints_met", 0..5),
        mean_of(&exp, "exprl_checkpoints_met", prior as usize - 5..prior as usize),
    );
    assert!(degenerate(&binary) > 0.95, "the binary reward gives no signal at the start");
    assert!(degenerate(&exp) < degenerate(&binary) - 0.1, "the rubric pays for partial progress");
    assert!(
        mean_of(&exp, "exprl_checkpoints_met", prior as usize - 5..prior as usize)
            > mean_of(&exp, "exprl_checkpoints_met", 0..5) + 0.3,
        "checkpoints are learned"
    );
    let (b, e) = (mean_of(&binary, "accuracy", prior as usize..n), mean_of(&exp, "accuracy", prior as usize..n));
    assert!(e > b + 0.2 && e > 0.3, "ExpRL primes the sparse-reward phase: {e:.3} vs binary {b:.3}");
    // Process level: each checkpoint's reward on the token where it is met.
    let mut c = bandit_config("reinforce_pp");
    c.train.exprl = "process".into();
    let proc = run_phases_judged(&task, &[(&c, prior)], lr, 2, Some(&PrefixJudge), None)?;
    let w = prior as usize;
    let (p0, p1) = (mean_of(&proc, "exprl_reward", 0..5), mean_of(&proc, "exprl_reward", w - 5..w));
    eprintln!("ExpRL process level: rubric reward {p0:.3} -> {p1:.3}");
    assert!(p1 > p0 + 0.2, "the process-level rubric reward is learned: {p0:.3} -> {p1:.3}");
    Ok(())
}

/// The bandit with a two-item rubric: the asked digit first, then `!`; the reward is the share
/// of items met (a fresh model meets each ~1 % of the time, both almost never).
struct RubricDigit(FirstDigit);

impl RubricDigit {
    fn status(p: &Problem, c: &str) -> Vec<(String, bool)> {
        let ch: Vec<char> = c.chars().collect();
        vec![
            (format!("start with {}", p.answer), c.starts_with(&p.answer)),
            ("then an exclamation mark".to_string(), ch.len() >= 2 && ch[1] == '!'),
        ]
    }
}

impl Task for RubricDigit {
    fn name(&self) -> &str {
        "rubric-digit"
    }
    fn train_problem(&self, index: u64) -> Problem {
        self.0.train_problem(index)
    }
    fn train_size(&self) -> Option<usize> {
        None
    }
    fn test_problems(&self) -> &[Problem] {
        self.0.test_problems()
    }
    fn verify(&self, p: &Problem, c: &str) -> Verdict {
        let s = Self::status(p, c);
        let met = s.iter().filter(|x| x.1).count();
        let mut v = Verdict::judged(met == 2, Some(c.to_string()), "");
        v.reward = met as f32 / 2.0;
        v
    }
    fn max_completion_chars(&self) -> usize {
        2
    }
    fn rubric(&self, p: &Problem, c: &str) -> Option<Vec<(String, bool)>> {
        Some(Self::status(p, c))
    }
}

/// HeRL (CONFIRMED): unsolved groups get their best drafts revised under the rubric guidance;
/// revisions that beat the group's best replace members (at most `herl_replace` per triggered
/// group, the group keeps its size) and train with the shaped weight; both training contexts
/// learn the rubric; a threshold nothing falls below leaves every group untouched — GRPO exactly.
#[test]
fn herl_revises_unsolved_groups_under_rubric_guidance() -> Result<()> {
    let task = RubricDigit(FirstDigit::new());
    let steps = 30;
    let lr = 3e-3;
    let mut c = bandit_config("grpo");
    c.train.herl = true;
    c.train.herl_replace = 2;
    let guided = run_task(&task, &c, steps, lr)?;
    let g = c.train.group_size as f64;
    for m in &guided {
        let triggered = m["herl_triggered"].as_f64().unwrap() * m["groups_drawn"].as_f64().unwrap();
        let replaced = m["herl_replaced"].as_f64().unwrap();
        assert!(replaced <= 2.0 * triggered + 1e-9, "at most herl_replace per triggered group");
        assert!(m["herl_revisions"].as_f64().unwrap() <= triggered * g + 1e-9);
    }
    let n = steps as usize;
    let replaced: f64 = guided.iter().map(|m| m["herl_replaced"].as_f64().unwrap()).sum();
    eprintln!(
        "HeRL: rubric reward steps 1-5 {:.3} -> 25-30 {:.3}; triggered {:.2} -> {:.2}; beat rate {:.3} -> {:.3}; {replaced} replacements",
        mean_of(&guided, "reward_mean", 0..5),
        mean_of(&guided, "reward_mean", 25..n),
        mean_of(&guided, "herl_triggered", 0..5),
        mean_of(&guided, "herl_triggered", 25..n),
        mean_of(&guided, "herl_beat_rate", 0..10),
        mean_of(&guided, "herl_beat_rate", 20..n),
    );
    assert!(replaced > 0.0, "revisions that beat the best replaced members");
    assert!(mean_of(&guided, "reward_mean", 25..n) > mean_of(&guided, "reward_mean", 0..5) + 0.3);
    assert!(mean_of(&guided, "herl_triggered", 25..n) < mean_of(&guided, "herl_triggered", 0..5));
    // Internalisation: the revisions trained under the original prompt.
    c.train.herl_context = "original".into();
    let orig = run_task(&task, &c, steps, lr)?;
    assert!(mean_of(&orig, "reward_mean", 25..n) > mean_of(&orig, "reward_mean", 0..5) + 0.3);
    // A threshold no group is below: nothing triggered, identical to GRPO.
    c.train.herl_threshold = 0.0;
    let off = run_task(&task, &c, 3, lr)?;
    let grpo = run_task(&task, &bandit_config("grpo"), 3, lr)?;
    for (x, y) in grpo.iter().zip(&off) {
        assert_eq!(y["herl_triggered"], 0.0);
        assert_eq!(x["grad_norm"], y["grad_norm"], "untouched groups: GRPO");
    }
    Ok(())
}
