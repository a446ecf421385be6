//! The registry of techniques: every method oxrl implements, its config switch, paper, and how
//! sure we are of the formula (CONFIRMED when read in the authors' or a reference code base or
//! docs, INFERRED when designed from the abstract). `oxrl list techniques` prints it and
//! `docs/techniques.md` is generated from it (a test keeps the two identical).

use serde::Serialize;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Technique {
    pub name: &'static str,
    /// The config setting that switches it on.
    pub config_key: &'static str,
    /// advantage, loss, regularizer, shaping, data, diagnostic, optimizer, control.
    pub kind: &'static str,
    pub paper: &'static str,
    /// CONFIRMED or INFERRED.
    pub confidence: &'static str,
    /// What it changes relative to the baseline pipeline.
    pub changes: &'static str,
}

const fn t(
    name: &'static str,
    config_key: &'static str,
    kind: &'static str,
    paper: &'static str,
    confidence: &'static str,
    changes: &'static str,
) -> Technique {
    Technique { name, config_key, kind, paper, confidence, changes }
}

pub const TECHNIQUES: &[Technique] = &[
    t(
        "PPO clip",
        "train.clip_low / train.clip_high",
        "loss",
        "Proximal Policy Optimization Algorithms (2017)",
        "CONFIRMED",
        "clipped importance-ratio surrogate; separate low/high bounds",
    ),
    t(
        "Dual clip",
        "train.dual_clip",
        "loss",
        "Mastering Complex Control in MOBA Games with Deep RL (2019)",
        "CONFIRMED",
        "caps the loss of negative-advantage tokens at −A·c",
    ),
    t(
        "GRPO",
        "train.advantage = \"grpo\"",
        "advantage",
        "DeepSeekMath (2024)",
        "CONFIRMED",
        "group-normalised outcome advantage (r − μ_g)/(σ_g + ε)",
    ),
    t(
        "Dr. GRPO",
        "train.advantage = \"dr_grpo\"",
        "advantage",
        "Understanding R1-Zero-Like Training (2025)",
        "CONFIRMED",
        "no std division; pair with loss_agg = seq-mean-token-sum-norm",
    ),
    t(
        "RLOO",
        "train.advantage = \"rloo\"",
        "advantage",
        "Back to Basics: REINFORCE Style Optimization (2024)",
        "CONFIRMED",
        "leave-one-out baseline within the group",
    ),
    t(
        "REINFORCE++",
        "train.advantage = \"reinforce_pp\"",
        "advantage",
        "REINFORCE++ (2025)",
        "CONFIRMED",
        "discounted token returns whitened over the batch",
    ),
    t(
        "REINFORCE++-baseline",
        "train.advantage = \"reinforce_pp_baseline\"",
        "advantage",
        "REINFORCE++ (2025)",
        "CONFIRMED",
        "group-mean baseline, then batch whitening",
    ),
    t(
        "PPO + GAE",
        "train.advantage = \"gae\", train.value_head = true",
        "advantage",
        "High-Dimensional Continuous Control Using GAE (2016)",
        "CONFIRMED",
        "critic (value head on the policy's trunk, or its own trunk: train.critic = \"model\") and λ-returns; clipped value loss",
    ),
    t(
        "Lite PPO",
        "train.advantage = \"lite_ppo\"",
        "advantage",
        "Part I: Tricks or Traps? A Deep Dive into RL for LLM Reasoning (2025)",
        "CONFIRMED",
        "group-mean centring with batch-level std",
    ),
    t(
        "Loss aggregation",
        "train.loss_agg",
        "loss",
        "DAPO (2025); Dr. GRPO (2025)",
        "CONFIRMED",
        "token-mean / seq-mean-token-sum / seq-mean-token-mean / seq-mean-token-sum-norm",
    ),
    t("Clip-higher", "train.clip_high", "loss", "DAPO (2025)", "CONFIRMED", "larger upper clip bound keeps entropy up"),
    t(
        "Dynamic sampling",
        "train.dynamic_sampling",
        "data",
        "DAPO (2025)",
        "CONFIRMED",
        "refill the batch with groups of non-zero reward variance",
    ),
    t(
        "Overlong shaping",
        "train.overlong_buffer / train.mask_truncated",
        "shaping",
        "DAPO (2025)",
        "CONFIRMED",
        "soft length penalty before the budget; or mask truncated responses",
    ),
    t(
        "KL estimators",
        "train.kl_coef, train.kl_estimator, train.kl_in",
        "regularizer",
        "Approximating KL Divergence (Schulman, 2020)",
        "CONFIRMED",
        "k1/k2/k3/abs (+ straight-through) to the reference, in the reward or as a loss",
    ),
    t(
        "Adaptive KL",
        "train.kl_target",
        "regularizer",
        "Fine-Tuning Language Models from Human Preferences (2019)",
        "CONFIRMED",
        "proportional controller on the KL coefficient",
    ),
    t(
        "Entropy bonus",
        "train.entropy_coef",
        "regularizer",
        "Asynchronous Methods for Deep RL (2016)",
        "CONFIRMED",
        "subtracts coef × aggregated token entropy",
    ),
    t(
        "PSR",
        "train.advantage = \"psr\"",
        "advantage",
        "The Surprising Effectiveness of Negative Reinforcement in LLM Reasoning (2025)",
        "CONFIRMED",
        "trains on correct samples only, A = +1",
    ),
    t(
        "NSR",
        "train.advantage = \"nsr\"",
        "advantage",
        "The Surprising Effectiveness of Negative Reinforcement in LLM Reasoning (2025)",
        "CONFIRMED",
        "trains on incorrect samples only, A = −1; keeps entropy and pass@k",
    ),
    t(
        "W-REINFORCE",
        "train.advantage = \"w_reinforce\", train.w_reinforce_lambda",
        "advantage",
        "The Surprising Effectiveness of Negative Reinforcement in LLM Reasoning (2025)",
        "CONFIRMED",
        "A = λ for correct, −1 for incorrect (λ = 0.1)",
    ),
    t(
        "A-GRAE",
        "train.advantage = \"a_grae\", train.agrae_alpha",
        "advantage",
        "Asymmetric Group Relative Advantage Estimation (2026)",
        "CONFIRMED",
        "difficulty curriculum on GRPO advantages; positives scaled by min(1, acc/α)",
    ),
    t("PACS", "train.objective = \"pacs\", train.pacs_beta, train.pacs_score", "loss", "Implicit Actor Critic Coupling via a Supervised Learning Framework for RLVR (2025)", "CONFIRMED", "replaces the PPO surrogate by class-balanced BCE of the RLOO-centred implicit reward β·Σ log-ratio against the outcome"),
    t("SELF", "train.self_filter = true", "data", "The Reasoning Boundary Paradox: How Reinforcement Learning Constrains Language Models (2025)", "CONFIRMED", "trains only on prompts whose greedy answer is wrong; skips a step when all are right"),
    t("CalibRL", "train.calibrl_coef (with train.advantage = \"dr_grpo\")", "loss", "CalibRL: distribution-aware advantage weighting and expert-anchored LeakyReLU loss (2026)", "CONFIRMED", "adds |A|·LeakyReLU(−(2c−1)(logp − e)) against the reference solution's log-probs e"),
    t("GUI-Libra negative scaling", "train.advantage = \"gui_libra\", train.libra_tau, train.libra_min_scale", "advantage", "GUI-Libra (2026)", "INFERRED", "negative GRPO advantages × clip(group success/τ, s_min, 1); positives untouched"),
    t("KL-regularised RL as Bayesian inference", "train.kl_coef (oracle)", "regularizer", "RL with KL penalties is better viewed as Bayesian inference (2022)", "CONFIRMED", "closed-form target π₀·exp(r/β)/Z that the KL-penalised objective is tested against"),
    t("SELF negative interference", "train.interference_every, train.interference_probes", "diagnostic", "The Reasoning Boundary Paradox: How Reinforcement Learning Constrains Language Models (2025)", "INFERRED", "held-out solution likelihoods before/after each update: fraction fallen, mean fall, rich-get-richer correlation"),
    t("DPH-RL", "train.dph_divergence ∈ {fkl, fkl_k1, js, alpha}, train.dph_coef, train.dph_alpha, train.dph_probe_prompts, train.dph_probe_samples, train.dph_batch", "regularizer", "The Choice of Divergence: A Neglected Key to Mitigating Diversity Collapse in RLVR (DPH-RL, 2025)", "CONFIRMED", "adds η·agg(f(π_θ/π₀)) — forward KL, JS or α-divergence — on a rehearsal set sampled once from the initial policy (pool of always-solved prompts; fallbacks INFERRED)"),
    t("VERL effective-rank shaping", "train.verl_coef, train.verl_tau, train.verl_stride", "advantage", "Beyond the Exploration-Exploitation Trade-off: A Hidden State Approach for LLM Reasoning in RLVR (2025)", "INFERRED", "adds clip(λ·(w_e·z(ER) + w_x·z(ERV)), ±|A|) per response, w_e = σ(−ERA/τ), from the hidden states' effective rank over prefixes"),
    t("Effective rank metric", "train.effective_rank_every", "diagnostic", "Beyond the Exploration-Exploitation Trade-off: A Hidden State Approach for LLM Reasoning in RLVR (2025)", "CONFIRMED", "logs the mean effective rank exp(H(σ/Σσ)) of each response's last-layer hidden states"),
    t("TMN-Reweight", "train.advantage = \"tmn\", train.tmn_min_weight (task ids: dataset task_field / problem meta.task)", "advantage", "GoLongRL: TMN-Reweight (2026)", "INFERRED", "rewards divided by their task's batch mean, group-centred, times a difficulty weight max(4μ̃(1−μ̃), w_min)"),
    t("ArenaRL", "train.advantage = \"arena\", train.arena_judge (\"task\" or a model directory)", "advantage", "ArenaRL: tournament-based relative ranking (2026)", "INFERRED", "ranks each group by an anchor-seeded single-elimination tournament under a pairwise judge (O(G) calls) and uses rank scores (N−k)/(N−1) with GRPO normalisation"),
    t("DCPO", "train.advantage = \"dcpo\", train.dcpo_min_spread, train.dcpo_full_spread", "advantage", "ChatShopBuddy: DCPO (2026)", "INFERRED", "trains only on each group's contrastive subset — top rewards (shorter first) and bottom rewards (longer first), sized by the reward spread, none below δ — with GRPO advantages"),
    t("Hierarchical gated reward (HRM)", "train.hierarchical_reward = true, train.hrm_weights", "reward", "ChatShopBuddy: hierarchical reward model (2026)", "INFERRED", "R = g₁(w₁·format + g₂(w₂·correct + w₃·brevity)): a level counts only when the levels below pass"),
    t("PIPO", "train.pipo_coef, train.pipo_window, train.pipo_scale", "loss", "Policy Improvement Reinforcement Learning (PIPO, 2026)", "INFERRED", "scales the policy loss by max(0, 1 + η·tanh(Δ/s)), Δ = batch mean reward − mean of the last W batches: reinforce after an improvement, suppress after a regression"),
    t("ReasonMaxxer", "train.objective = \"reasonmaxxer\", train.rm_rho, train.rm_top_k, train.rm_neg_coef (+ train.kl_coef off the decision points)", "loss", "Rethinking RL for LLM Reasoning: It's Sparse Policy Selection (ReasonMaxxer, 2026)", "INFERRED", "RL-free: on base-model rollouts, −log p over the base top-k at the top-ρ base-entropy positions of correct rollouts and unlikelihood at those of incorrect ones; nothing elsewhere"),
    t("Programmable VI", "oxrl_core::vi (library: expect / elbo / iwae with Estimator::{Reinforce, Reparam, Enumerate})", "objective", "Probabilistic Programming with Programmable Variational Inference (genjax.vi, 2024)", "INFERRED", "turns expectations into surrogates with unbiased gradients by a per-choice estimator; ELBO and IWAE_K objectives on top"),
    t("RLG", "oxrl generate --model TUNED --guide BASE --guide-weight W", "inference", "Inference-Time Alignment Control for Diffusion Models with Reinforcement Learning Guidance (RLG, 2025)", "CONFIRMED", "samples every token from softmax((1 − w)·base + w·tuned logits) — w = 0 base, 1 tuned, > 1 extrapolates (a KL coefficient β/w); masked tokens stay masked"),
    t("Bradley–Terry reward model", "oxrl rm --config FILE ([rm] pairs (chosen/rejected pairs or `ranked` lists: Plackett–Luce), steps, batch_size, lr, margin, centring); train.reward_model = DIR, train.reward_model_ensemble = [DIR, …], train.rm_uncertainty", "reward", "Inverse RL meets LLM Post-training: Basics, Advances, Opportunities (2025)", "CONFIRMED", "trains the trunk + a scalar head at the last response token with −log σ(r_w − r_l − m) + λ(r_w + r_l)²; its score (an ensemble's mean − k·std, the over-optimisation guard) can replace the verifier's reward in RL"),
    t("DPO", "oxrl dpo --config FILE ([dpo] pairs, beta, steps, batch_size, lr, test_fraction)", "loss", "Direct Preference Optimization: Your Language Model is Secretly a Reward Model (2023)", "CONFIRMED", "−log σ(β·[log π/π_ref(y_w) − log π/π_ref(y_l)]) on preference pairs against the frozen starting policy; held-out implicit-reward accuracy"),
    t("RA3", "oxrl midtrain --config FILE ([ra3] rounds, problems, candidates, latent_max_tokens, length_cost, boundary, open, close, sft_steps)", "loss", "Learning to Reason as Action Abstractions with Scalable Mid-Training RL (RA3, 2025)", "INFERRED", "EM mid-training: before each expert segment keep the best of M sampled latents when the segment's log-likelihood gain minus c·|z| is positive, then next-token training on the solutions with the kept latents"),
    t("RLFR", "train.rlfr_coef, train.rlfr_fit_prompts, train.rlfr_fit_steps, train.rlfr_lr, train.rlfr_hidden, train.rlfr_draws", "reward", "RLFR: Extending Reinforcement Learning for LLMs with Flow Environment (2025)", "INFERRED", "fits a flow-matching velocity field on the policy's hidden states over expert solutions; each response token's advantage gains λ·(−z(d)), d its velocity deviation (in-distribution latents earn more)"),
    t("SPAE", "train.spae_coef, train.spae_sat_penalty, train.spae_tau_sat, train.spae_boundary, train.spae_probe, train.spae_probes, train.spae_probe_tokens", "advantage", "Step Potential Advantage Estimation (SPAE, 2026)", "INFERRED", "probes the policy after every step (confidence of N short continuations, teacher-forced ground truth) for Φ = 1.5·Acc·Conf + 0.5·Acc − Conf; adds λ·ΔΦ to each step's tokens and penalises a correct response's tokens after Φ saturates"),
    t("PAPO", "train.papo_coef, train.papo_mask_prob, train.papo_span, train.papo_kl_clamp, train.papo_aug_entropy, train.papo_ori_entropy", "regularizer", "Perception-Aware Policy Optimization for Multimodal Reasoning (PAPO, 2025)", "CONFIRMED", "subtracts γ·k3 KL between the response's log-probs on the real and a masked prompt (spans → pad, p = 0.6) and adds the double entropy loss η·(−log π) on both views"),
    t("RPO", "train.rpo = true, train.rpo_opponent ∈ {greedy, peer}, train.arena_judge (\"task\" or a model dir; rubric from meta.rubric)", "reward", "Auto-Rubric as Reward: rubric-conditioned binary preference (RPO, 2026)", "INFERRED", "reward 1 when a weighted majority of rubric items prefers the response over its competitor in both presentation orders, else 0 (position bias and ties give 0)"),
    t("HeRL", "train.herl, train.herl_threshold, train.herl_candidates, train.herl_replace, train.herl_bonus, train.herl_gamma, train.herl_temperature, train.herl_context (task with a rubric: instruct)", "data", "Experience is the Best Teacher: Motivating Effective Exploration in RL for LLMs (HeRL, 2025)", "CONFIRMED", "revises an unsolved group's best drafts with the satisfied / unmet rubric items in the prompt; revisions beating the group's best replace members and train with −A·ρ/(ρ+γ_s); drafts get r + α·(r_he − r)"),
    t("ExpRL", "train.exprl = outcome | process, train.exprl_steps, train.exprl_final_weight, train.arena_judge", "reward", "Exploratory RL for LLM Mid-Training (ExpRL, 2026)", "INFERRED", "replaces the verifier's reward by a judge's rubric score against the hidden reference, r = Σ w_m·g_m over its checkpoints (or w_m·g_m on the token where each is first met), for the first N steps of a run; the reference never enters the prompt"),
    t("PPR / ReNorm", "train.ppr_coef (α < 0.5; task process verifier)", "reward", "Principle Process Reward with Reward Normalization (PPR, 2025)", "INFERRED", "adds α·(P − P̄_group), P the mean principle reward of the written steps (built-in tasks: each step's arithmetic is true), so correct answers still always outrank wrong ones"),
    t("ViSurf", "train.visurf ∈ {off, always, when_needed}, train.visurf_cap", "data", "ViSurf: Visual Supervised-and-Reinforcement Fine-Tuning (2025)", "INFERRED", "replaces one rollout per group with the ground-truth solution (same verifier reward, importance ratio 1), always or only in groups with no correct rollout, its advantage optionally capped at the group's largest on-policy |A|"),
    t("SIREN", "train.siren_coef, train.siren_top_p, train.siren_rho, train.siren_anchor ∈ {initial, batch, none}", "regularizer", "SIREN: selective entropy regularization (2025)", "INFERRED", "entropy of the top-p renormalised distribution, on the batch's top-ρ highest-entropy tokens only, anchored: raised toward the first update's value (initial), pulled to the batch mean (batch) or maximised (none)"),
    t("GUI-G1", "task.name = \"grounding\", train.advantage = \"dr_grpo\", train.loss_agg = \"seq-mean-token-sum\", train.difficulty_weight = true", "loss", "GUI-G1: Understanding R1-Zero-Like Training for Visual Grounding in GUI Agents (2025)", "CONFIRMED", "box reward hit + 0.25·IoU + 0.125·HM(edge closeness) so inflated boxes lose; A = r − μ; token-sum loss (no length normalisation) weighted by the problem's difficulty"),
    t("AEM", "train.aem_kappa, train.aem_g_min, train.aem_g_max, train.aem_std", "advantage", "Adaptive Entropy Modulation for Multi-Turn Agentic RL (AEM, 2026)", "INFERRED", "multiplies each response's advantages by clip(exp(κ·sign(A)·ŝ), g_min, g_max), ŝ its group-centred surprisal under π_old: boosts rare successes and confident failures (entropy up early)"),
    t("Latent reasoning (Coconut segments)", "[model.latent] kind = \"coconut\", steps, trigger ∈ {prefix, marker}, start, end, kappa, normalize", "model", "Training Large Language Models to Reason in a Continuous Latent Space (Coconut, 2024)", "INFERRED", "latent positions between markers are fed the previous position's last hidden state instead of a token embedding; the sampler records them, the scorer replays them; the latent policy is vMF κ⟨μ, z⟩"),
    t("HRPO", "[model.latent] kind = \"hrpo\", gate_init", "model", "Hybrid Latent Reasoning via Reinforcement Learning (HRPO, 2025)", "INFERRED", "every response input is (1 − g)⊙e(y_t) + g⊙W·ĥ_{t−1} with a learnable gate g = σ(a) starting near 0 (ĥ rescaled to the embedding norm); tokens are still sampled and trained with GRPO"),
    t("DePO", "train.depo_alpha, train.depo_clip_low, train.depo_clip_high, train.depo_dual_clip, train.depo_vmf_kl (Coconut latents)", "loss", "HyLaR (2026): DePO — decoupled trust regions for discrete tokens and continuous latents", "CONFIRMED", "token PPO on sampled tokens + α·PPO on latent positions with its own (tighter) trust region on the vMF log-prob κ⟨μ_θ, z⟩ + β_lat·κ(1 − ⟨μ_θ, z⟩); the token KL stays on tokens"),
    t("Latent-GRPO", "train.latent_grpo, train.latent_norm_margin, train.latent_noise, train.latent_noise_frac, train.latent_select (Coconut latents, advantage = grpo)", "advantage", "Latent-GRPO: GRPO for latent reasoning (2026)", "INFERRED", "invalid latent rollouts (non-finite, norm outside the range on expert solutions, unparseable) get A = 0 outside the group statistics; one-sided noise on part of each group's latents; only the correct path with the most probable first answer token keeps its positive advantage"),
    t("Multi-turn agent RL (GRID, SHOP, SWE-TOY)", "task.name ∈ {grid, shop, swe-toy}; train.max_new_tokens per turn", "environment", "A Practitioner's Guide to Multi-turn Agentic RL (2025)", "CONFIRMED", "episodes through an Environment trait: one action per turn, observation lines inserted (no loss, not sampled), transcripts verified by replay; SFT on demonstrations masks the observations"),
    t("SFT:RL budget ratio", "oxrl sweep --budget C --sft-fractions … --demo-cost … --episode-cost …", "data", "A Practitioner's Guide to Multi-turn Agentic RL (2025)", "CONFIRMED", "splits a fixed cost C = n_demos·c_demo + n_episodes·c_ep at each fraction into whole SFT and RL steps, trains every split and names the one with the best held-out success"),
    t("Dense turn rewards", "train.agent_reward = \"dense\"", "reward", "A Practitioner's Guide to Multi-turn Agentic RL (2025)", "CONFIRMED", "sub-goal events on each turn's last action token, divided by the number of rewarded turns (won) or the events available (lost), so an episode sums to at most 1"),
    t("G-RA", "train.agent_reward ∈ {direct, gated}, train.agent_step_reward, train.agent_gate", "reward", "Stabilizing Long-term Multi-turn RL with Gated Rewards (G-RA, 2025)", "INFERRED", "immediate rewards per executable action (once per distinct action and result) accumulate only when the outcome reaches δ (gated) — `direct` is the ungated D-RA baseline that agents farm"),
    t("Code sandbox reward", "task.name = \"code\" (examples, tests, wall_ms, memory_mb); oxrl_tasks::sandbox", "reward", "execution-based code rewards as used across RLVR (no single paper)", "INFERRED", "runs each model-written program in a fresh directory with rlimits (memory, CPU, file size), a wall-clock kill of its process group and no network (own namespace); reward = fraction of hidden tests passed, 0 for crashes and timeouts"),
    t("SEELE", "train.seele, train.seele_rounds, train.seele_target, train.seele_a, train.seele_c", "data", "Staying in the Sweet Spot: Responsive Reasoning Evolution via Capability-Adaptive Hint Scaffolding (SEELE, 2025)", "INFERRED", "rollout rounds per step with a solution-prefix hint in the prompt; each problem's difficulty is fitted (3PL item response, MLE) on its (ratio, outcome) pairs and the next ratio inverts the curve at 50 % accuracy; the group is the union of rounds"),
    t("PrefixRL", "train.prefix_rl, train.prefix_min, train.prefix_max", "data", "Reuse your FLOPs: Scaling RL on Hard Problems by Conditioning on Very Off-Policy Prefixes (PrefixRL, 2025)", "INFERRED", "a share of groups gets a prefix of a successful trace (the reference solution) in the prompt — context only, no loss — faded out with the running accuracy; the verifier reads prefix + continuation; unprefixed accuracy reported apart"),
    t("SvS", "train.svs, train.svs_select_lo, train.svs_select_hi, train.svs_accept_lo, train.svs_accept_hi, train.svs_synthesizer ∈ {policy, task}, train.svs_template, train.svs_max_sources", "data", "Beyond Pass@1: Self-Play with Variational Problem Synthesis Sustains RLVR (SvS, 2025)", "CONFIRMED", "correct responses of problems solved 1/8–1/2 of the time seed G new problems with the same answer (written by the policy, or ARITH's scripted rewriter); each is solved G times and rewarded 1 when 1–5 of 8 succeed; accepted synthesis groups and mixed solving groups join the GRPO batch"),
    t("IGPO (prefix form)", "train.igpo, train.igpo_eta_low, train.igpo_eta_high, train.igpo_max_replacements, train.igpo_entropy_keep", "data", "Inpainting-Guided Policy Optimization for Diffusion Large Language Models (IGPO, 2025)", "CONFIRMED", "an all-wrong group is regenerated with forced solution prefixes (ratio ~ U[low, high]); up to max_replacements members are replaced by correct guided samples, and only the top share of forced tokens by entropy carries loss"),
    t("PRDP", "train.objective = \"prdp\", train.prdp_beta, train.prdp_clip", "loss", "Proximal Reward Difference Prediction for Large-Scale Reward Finetuning of Diffusion Models (PRDP, 2024)", "INFERRED", "no advantages: for every pair of a group, (β·Σ_t clip(log π/π_old)(a) − same for b − (r_a − r_b))² — perfect prediction is the KL-regularised optimum π_old·exp(r/β); per-token log-ratios clipped to the trust region"),
    t("VPL", "oxrl rm with rm.kind = \"vpl\" (pairs with a `user`; rm.vpl_z_dim, rm.vpl_hidden, rm.vpl_beta); oxrl train with train.reward_model = the VPL run and train.reward_model_user = one user's pairs; oxrl_core::vpl (Vpl::new / fit / posterior / rewards, scaled_reward)", "reward", "Personalizing RLHF with Variational Preference Learning (VPL, 2024)", "INFERRED", "a reward model conditioned on a latent user z inferred (Gaussian encoder, mean-pooled context pairs) from that user's own preferences, trained by the ELBO; VPL-SPO's scale-free reward = mean win probability against a reference set"),
    t("SPA-RL", "train.agent_reward = \"spa\", train.spa_alpha, train.spa_beta (agent tasks)", "reward", "Reinforcing LLM Agents via Stepwise Progress Attribution (SPA-RL, 2025)", "CONFIRMED", "a progress estimator (linear in per-turn features, fitted on the batch so each episode's contributions sum to its outcome) attributes the outcome to turns; turn reward α·c_k + β·[executable] on the turn's last action token"),
    t("LaRe", "oxrl control: env.reward = \"lare\" (reach, pendulum), [lare] refit_every, buffer, ridge, verify_samples; env.reward = \"episodic\" is the undistributed baseline", "reward", "Latent Reward: LLM-Empowered Credit Assignment in Episodic RL (LaRe, 2025)", "INFERRED", "candidate latent factor functions (built-in stand-ins for LLM-written code, one buggy) are self-verified on random transitions (crashes, non-finite values, changing dimensions rejected) and concatenated; a linear decoder fitted by return decomposition Σ_t f(ẑ_t) ≈ R(τ) (ridge, refitted every episode) pays the dense reward r̂_t = f(ẑ_t) to any online learner"),
    t("SSL4RL", "task.name = \"ssl\", task.kind ∈ {rotation, jigsaw, contrastive, position, mixed}, task.grid, task.jigsaw_reward ∈ {partial, exact}", "reward", "Self-supervised Learning as Intrinsic Reward for Visual-Language Reasoning (SSL4RL, 2025)", "INFERRED", "verifiable rewards from known transformations of unlabeled images (8 × 8 digits as text): rotation angle (symmetric images accept every equivalent angle), jigsaw permutation (share of positions right or exact), same-source views, masked-patch multiple choice"),
    t("ReBel", "train.rebel, train.rebel_omega, train.rebel_gamma, train.rebel_std_norm, train.rebel_weights (agent tasks stating beliefs: task.belief for grid)", "advantage", "Rewarding Beliefs, Not Actions: Consistency-Guided Credit Assignment for Long-Horizon Agents (ReBel, 2026)", "CONFIRMED", "per-turn belief-consistency reward (state vs an observation tracker with observability masking, phase, next-observation prediction, format); steps grouped by (prompt, belief phase/target) get A = A_ep + ω·(norm γ-discounted outcome + norm belief return) within their group, singleton groups 0; the agent writes `<belief>{json}</belief> action` and the environment's tracker scores it"),
    t("VLM-RL (CLG reward)", "oxrl control, algo = \"sac\", env.name = \"drive\": sac.semantic_reward = \"clg\", sac.semantic_batch; oxrl_core::shaping::clg (Embedder trait, clg_reward, synthesize, write_back; Projection stand-in)", "reward", "A Unified VLM + RL Framework for Safe Autonomous Driving (VLM-RL, 2024/25)", "CONFIRMED", "r_CLG = 1 − clip(cos(e, neg) − cos(e, pos), 0, θ)/θ from an image–text embedder, synthesised with the vehicle state as r_speed(v_des = r_CLG·v_target)·f_center·f_angle·f_std (a negative base reward overrides); frames scored in batches and written back into the replay ring"),
    t("Found-RL (VMR, AWAG, CLIP bonus, async batch server)", "oxrl control, algo = \"sac\": sac.guide = \"scripted\" (reach's slow noisy expert as the \"VLM\"), sac.guide_every, sac.guide_delay_ms, sac.vmr_margin, sac.vmr_decay_start / end, sac.awag_coef / beta / w_max; oxrl_control::found_rl (BatchServer, vmr_loss, awag_loss, clip_alignment, BonusNorm)", "control", "Foundation-model-enhanced RL for Autonomous Driving (Found-RL, 2026)", "CONFIRMED", "a slow model answers in batches (flushed when full or after a wait) while the learner keeps stepping; the critic pushes Q(s, a_vlm) a margin above Q(s, a_data), the actor imitates a_vlm weighted by min(exp(adv/β), w_max) where it beats π, and a CLIP alignment bonus rewards the executed action over non-neighbour actions"),
    t("VSC-RL (SubGoal ELBO)", "train.vsc_rl with train.kl_coef = β (agent tasks announcing subgoals: task.subgoals for grid)", "objective", "Variational Subgoal-Conditioned RL for Vision-Language Agents (VSC-RL, 2025)", "INFERRED", "episodes cut at each subgoal's completion, segment i acting under π(·|s, g_i); objective Σ_i E[R_i] − β·Σ_i E_s KL(π(·|s, g_i) ‖ π_ref(·|s, g)), equal to the KL-regularised goal objective at M = 1 (exact enumeration in oxrl_core::shaping::vsc_rl); the learner centres each segment's subgoal reward per (prompt, subgoal) and scores the KL reference on the transcript without subgoal announcements"),
    t("RLIR", "oxrl control rlir (oxrl_control::rlir: a POINT2D world model pre-trained on noisy action labels, post-trained with GRPO on oxrl_core::shaping::rlir's inverse reward)", "reward", "Reinforcement Learning with Inverse Rewards for World Model Post-training (RLIR, 2025)", "INFERRED", "a generated video's reward is the mean agreement between its conditioning actions and a frozen inverse-dynamics model's estimates from consecutive frames (exact match, or 1 − min(1, |a − â|/scale) per component), compared within the group; post-training raises held-out action following 63–65 % -> 100 % in 60 GRPO steps (3 seeds) and lowers the frame error"),
    t("Path Not Taken diagnostics", "oxrl diagnose A B [--k K]", "diagnostic", "The Path Not Taken: RLVR Provably Learns Off the Principals (2025)", "INFERRED", "update sparsity, top-k spectral drift, principal-subspace rotation and principal energy between two checkpoints"),
    t(
        "PPO (control)",
        "oxrl control: algo = \"ppo\"",
        "control",
        "Proximal Policy Optimization Algorithms (2017); CleanRL ppo.py",
        "CONFIRMED",
        "vectorised rollouts, GAE with truncation bootstrap, clipped surrogate and value loss, entropy bonus, lr annealing",
    ),
    t(
        "DQN / double DQN",
        "oxrl control: algo = \"dqn\", dqn.double_q",
        "control",
        "Human-level control through deep RL (2015); Deep RL with Double Q-learning (2016)",
        "CONFIRMED",
        "ε-greedy, replay, TD target masked by terminated only; double-Q takes the online argmax",
    ),
    t(
        "SAC",
        "oxrl control: algo = \"sac\"",
        "control",
        "Soft Actor-Critic Algorithms and Applications (2018)",
        "CONFIRMED",
        "twin Q min target, tanh-squashed Gaussian with log-prob correction, automatic temperature",
    ),
    t(
        "IQL",
        "oxrl control: algo = \"iql\"",
        "control",
        "Offline RL with Implicit Q-Learning (2022)",
        "CONFIRMED",
        "offline: expectile value, AWR actor (β = 0 is behaviour cloning), EMA target critic",
    ),
    t(
        "f-DVL",
        "oxrl control: iql.value_loss = \"chi_square\", \"total_variation\" or \"gumbel\"",
        "control",
        "Dual RL: Unification and New Methods for RL and Imitation Learning (2024)",
        "CONFIRMED",
        "replaces IQL's expectile with a dual f-divergence value loss; Huber critic (iql.q_huber_delta)",
    ),
    t(
        "Preference-based offline RL",
        "oxrl control: iql.preferences.pairs",
        "control",
        "Preference Transformer (2023) / PEBBLE (2021), Markovian reward",
        "CONFIRMED",
        "Bradley–Terry reward MLP from teacher-labelled segment pairs replaces the dataset's rewards for IQL",
    ),
    t(
        "GCBC / GCIVL",
        "oxrl control: algo = \"gcbc\" or \"gcivl\"",
        "control",
        "OGBench: Benchmarking Offline Goal-Conditioned RL (2025)",
        "CONFIRMED",
        "hindsight goal relabelling; action-free two-head value with sign-of-target-advantage expectile; AWR actor",
    ),
    t(
        "SAW",
        "oxrl control: algo = \"saw\"",
        "control",
        "Flattening Hierarchies with Policy Bootstrapping (2025)",
        "CONFIRMED",
        "low actor on waypoints plus subgoal-advantage-weighted bootstrapping of the flat actor",
    ),
    t(
        "HECRL subgoal selection",
        "oxrl control: gc.subgoals.enabled, gc.subgoals.generator",
        "control",
        "Hierarchical Entity-centric RL with Factored Subgoal Diffusion (2026)",
        "CONFIRMED",
        "test time: candidates filtered by V(s, c) ≥ radius, argmax V(c, g), or g itself; generators: a conditional DDPM over (s, w, g) with s and g inpainted (trained alongside), dataset states, or factored (subsets of entities set to the goal, INFERRED); push-N-gc entity gridworld with projected goals (gc.goal_indices)",
    ),
    t(
        "SPR",
        "oxrl control: algo = \"spr\", spr.spr_weight",
        "control",
        "Data-Efficient RL with Self-Predictive Representations (2021)",
        "CONFIRMED",
        "pixel DQN plus K-step latent self-prediction (2 − 2cos to EMA-target projections, masked after episode ends); MLP encoder",
    ),
    t(
        "ReCOIL",
        "oxrl control: algo = \"recoil\", iql.recoil.*",
        "control",
        "Dual RL: Unification and New Methods for RL and Imitation Learning (2024)",
        "INFERRED",
        "reward-free imitation: expert-half Q to a fixed high target, mixture-half Q to a constant-reward Bellman target, V an implicit maximiser (Gumbel, iql.value_loss); AWR actor (Pendulum, 30k steps: −186 to −230 with 100 random episodes, expert −150, random −1230)",
    ),
    t(
        "Video-representation objectives",
        "oxrl control: repr.objective = \"autoencoder\", \"forward\", \"contrastive\" or \"inverse\"",
        "control",
        "Towards Principled Representation Learning from Videos for RL (2024); ACRO (2022) for inverse",
        "INFERRED",
        "pre-trains a frozen pixel encoder on random-policy episodes; DQN / PPO learn on its features; linear-R² and k-NN probes of agent, goal, distractor",
    ),
    t(
        "RePo",
        "oxrl control: repr.objective = \"repo\", repr.repo.*",
        "control",
        "Resilient Model-Based RL by Regularizing Posterior Predictability (2023)",
        "CONFIRMED",
        "reward-only latent model (the prior reads the previous posterior mean), balanced KL under a dual-ascent budget (β), detached probe decoder; frozen posterior mean feeds DQN / PPO, or Dreamer's actor-critic imagines in its world model (algo = \"dreamer\")",
    ),
    t(
        "Dreamer actor-critic in imagination",
        "oxrl control: algo = \"dreamer\" (repr.objective = \"repo\" or \"infopower\"), dreamer.*",
        "control",
        "Dream to Control (2020); Mastering Atari with Discrete World Models (2021)",
        "CONFIRMED",
        "H-step rollouts in the latent world model (prior, reward and continuation heads; the heads learn online on the agent's transitions, and with dreamer.train_encoder the encoder too under RePo's loss), λ-returns, slow critic, REINFORCE categorical actor with entropy; InfoPower's bonus paid on imagined transitions",
    ),
    t(
        "RePo test-time alignment",
        "oxrl control align, repr.align.*",
        "control",
        "Resilient Model-Based RL by Regularizing Posterior Predictability (2023)",
        "CONFIRMED",
        "reward-free adaptation to pixelgrid-*-recolor: VDB discriminator, χ² support alignment with density ratio τ and dual u (or GAN BCE), paired-frame calibration; adapts the encoder or a folded colour map; policy frozen",
    ),
    t(
        "InfoPower",
        "oxrl control: repr.objective = \"infopower\", repr.infopower.*",
        "control",
        "INFOrmation Prioritization through EmPOWERment in Visual Model-Based RL (2022)",
        "INFERRED",
        "InfoNCE between observation embeddings and latents, empowerment bound via an inverse model, latent dynamics KL, reward head; frozen latent feeds DQN / PPO, whose reward gets α_emp·(log q(a | z, z') − log π) (repr.infopower.bonus), or Dreamer's actor-critic pays that bonus on imagined transitions (algo = \"dreamer\")",
    ),
    t(
        "GRPO (control)",
        "oxrl control: algo = \"grpo\"",
        "control",
        "DeepSeekMath (2024)",
        "CONFIRMED",
        "groups of episodes from one saved start state, binary success, group-normalised advantage, clipped surrogate, optional k3 KL to the initial policy",
    ),
    t(
        "SRPO",
        "oxrl control: grpo.shaping = \"srpo\", grpo.srpo.*",
        "control",
        "Self-Referential Policy Optimization for VLA Models (2025)",
        "INFERRED",
        "failed episodes get scale·(1 − d/d_max) from their embedding distance to the group's successes; no success keeps binary rewards",
    ),
    t(
        "TD-JEPA",
        "oxrl control: algo = \"td-jepa\", zeroshot.*",
        "control",
        "TD-JEPA: Latent-predictive Representations for Zero-Shot RL (2025)",
        "CONFIRMED",
        "reward-free: φ/ψ encoders with policy-conditioned TD latent predictors, orthonormality regulariser, EMA targets; z by least squares or ψ(goal); greedy over discrete actions",
    ),
    t(
        "Forward-backward (FB)",
        "oxrl control: algo = \"fb\", zeroshot.*",
        "control",
        "Learning One Representation to Optimize All Rewards (2021)",
        "CONFIRMED",
        "reward-free successor measure F(s,a,z)ᵀB(s') with the FB measure loss and B orthonormality; the zero-shot baseline",
    ),
    t(
        "MORL-FB",
        "oxrl control: algo = \"morl-fb\", morl.pg_explore, morl.aux_weight",
        "control",
        "A Reward-Free Viewpoint on Multi-Objective RL (2026)",
        "INFERRED",
        "online FB with task vectors linear in the preference (z_λ = Σ λ_k z_k), preference-drawn z (PG-Explore), auxiliary vector-reward TD loss; hypervolume / expected utility of the greedy front",
    ),
    t(
        "RC-aux",
        "oxrl control: algo = \"rc-aux\", rcaux.reach_weight, rcaux.plan_weight",
        "control",
        "Predictive but Not Plannable: Reachability-Correction auxiliary for latent world models (2026)",
        "CONFIRMED",
        "reconstruction-free latent world model (multi-horizon loss, SIGReg-style regulariser) plus a budget-conditioned reachability head; CEM planner cost scaled by max(0.05, 1 − w·p*)",
    ),
    t(
        "LAPO",
        "oxrl control: algo = \"grpo\", grpo.lapo.enabled, grpo.lapo.max_latent, grpo.lapo.latent_weight, grpo.lapo.step_cost, grpo.lapo.warmup_episodes",
        "control",
        "LaST-R1: Reinforcing Action via Adaptive Physical Latent Reasoning for VLA Models (2026)",
        "INFERRED",
        "0…L_max stochastic latent steps (Gaussian, fed back through a recurrent cell) with a halting head before each action; GRPO's advantage drives separate clipped surrogates for the action and the latent/halting log-probs; warm-up on expert demonstrations with latent-to-future-observation alignment",
    ),
    t(
        "ZPRL",
        "oxrl control: zprl.mode = \"latent\" (\"residual\" = the action-residual baseline)",
        "control",
        "Beyond Action Residuals: Real-World Robot Policy Steering via Bottleneck Latent RL (2026)",
        "INFERRED",
        "BC base policy = encoder → VIB latent → flow-matching action-chunk generator, frozen; SAC / PPO learns a bounded latent offset δz (z' = μ(e(o)) + scale·δz) instead of an action residual",
    ),
];

/// The registry as the Markdown table of `docs/techniques.md`.
pub fn markdown() -> String {
    let mut s = String::from(
        "# Techniques\n\nGenerated from `crates/oxrl-core/src/registry.rs` (`oxrl list techniques --markdown`); \
         `oxrl list techniques --json` prints the same registry.\n\n\
         | name | config key | kind | paper | confidence | what it changes |\n|---|---|---|---|---|---|\n",
    );
    for t in TECHNIQUES {
        s.push_str(&format!(
            "| {} | `{}` | {} | {} | {} | {} |\n",
            t.name, t.config_key, t.kind, t.paper, t.confidence, t.changes
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_unique_and_labels_valid() {
        let mut names: Vec<&str> = TECHNIQUES.iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TECHNIQUES.len());
        assert!(TECHNIQUES.iter().all(|t| matches!(t.confidence, "CONFIRMED" | "INFERRED")));
    }

    /// Every estimator name the config accepts is in the registry.
    #[test]
    fn every_estimator_is_registered() {
        for name in crate::advantage::NAMES {
            let key = format!("train.advantage = \"{name}\"");
            assert!(TECHNIQUES.iter().any(|t| t.config_key.contains(&key)), "{name} missing from the registry");
        }
    }
}
