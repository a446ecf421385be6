//! Run configuration: one TOML file per run, every field typed, unknown keys rejected with the
//! file, line and key; `--set key=value` overrides; semantic checks name the key and the reason.

use anyhow::{anyhow, bail, Context, Result};
use oxrl_core::optim::ScheduleKind;
use oxrl_tasks::TaskConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub model: ModelSection,
    #[serde(default)]
    pub task: TaskConfig,
    #[serde(default)]
    pub sft: SftConfig,
    #[serde(default)]
    pub eval: EvalConfig,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub ra3: Ra3Config,
    #[serde(default)]
    pub dpo: DpoConfig,
    #[serde(default)]
    pub rm: RmConfig,
    #[serde(default)]
    pub debug: DebugConfig,
}

fn default_name() -> String {
    "run".into()
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            name: default_name(),
            seed: 0,
            model: Default::default(),
            task: Default::default(),
            sft: Default::default(),
            eval: Default::default(),
            train: Default::default(),
            ra3: Default::default(),
            dpo: Default::default(),
            rm: Default::default(),
            debug: Default::default(),
        }
    }
}

/// `[model.latent]`: the latent-reasoning mode (see `oxrl_lm::latent`). Markers are token texts
/// that must each encode to one token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatentSection {
    /// `coconut` (latent segments fed back the last hidden state) or `hrpo` (gated hybrid inputs).
    pub kind: String,
    /// Coconut: latent positions per segment.
    pub steps: usize,
    /// Coconut: `prefix` (every response opens with a segment) or `marker` (when `start` is sampled).
    pub trigger: String,
    pub start: Option<String>,
    pub end: Option<String>,
    /// vMF concentration κ of the latent policy log π(z | μ) = κ⟨μ, z⟩ (HyLaR's script: 0.01).
    pub kappa: f64,
    /// L2-normalise μ and z in the vMF terms (HyLaR's code does not).
    pub normalize: bool,
    /// HRPO: initial gate logit (g = σ(a) ≈ 0.007 at −5).
    pub gate_init: f64,
}

impl Default for LatentSection {
    fn default() -> Self {
        let d = oxrl_lm::latent::LatentConfig::default();
        Self {
            kind: d.kind,
            steps: d.steps,
            trigger: d.trigger,
            start: None,
            end: None,
            kappa: d.kappa,
            normalize: d.normalize,
            gate_init: d.gate_init,
        }
    }
}

impl LatentSection {
    /// The model-level config, markers resolved with the policy's tokenizer.
    pub fn resolve(&self, tok: &dyn oxrl_lm::Tokenizer) -> Result<oxrl_lm::latent::LatentConfig> {
        let id = |key: &str, text: &Option<String>| -> Result<Option<u32>> {
            let Some(t) = text else { return Ok(None) };
            let ids = tok.encode(t).unwrap_or_default();
            if ids.len() == 1 {
                return Ok(Some(ids[0]));
            }
            // A special token the tokenizer does not parse from text (the built-in `<sep>`).
            let special = (0..tok.vocab_size() as u32).find(|&i| tok.decode_special(i).is_ok_and(|s| s == *t));
            special
                .map(Some)
                .with_context(|| format!("key `model.latent.{key}`: `{t}` is {} tokens, not one", ids.len()))
        };
        let c = oxrl_lm::latent::LatentConfig {
            kind: self.kind.clone(),
            steps: self.steps,
            trigger: self.trigger.clone(),
            start: id("start", &self.start)?,
            end: id("end", &self.end)?,
            kappa: self.kappa,
            normalize: self.normalize,
            gate_init: self.gate_init,
        };
        c.validate().context("key `model.latent`")?;
        Ok(c)
    }
}

/// The policy model: the built-in tiny transformer (sizes overridable), or a Hugging Face model
/// directory / oxrl checkpoint to start from (`path`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// Start from this model directory (Hugging Face layout or an oxrl checkpoint) instead of a
    /// fresh built-in model. `init` is accepted as an older spelling.
    #[serde(alias = "init")]
    pub path: Option<PathBuf>,
    /// Compute dtype: "auto" (f32 on CPU, bf16 on GPU), "f32", "bf16", "f16".
    pub dtype: String,
    /// Render prompts through the tokenizer's chat template (user turn + generation prompt).
    pub chat: bool,
    /// System message for chat-formatted prompts.
    pub system_prompt: Option<String>,
    /// Train LoRA adapters instead of the full model (the base stays frozen).
    pub lora: Option<oxrl_lm::lora::LoraConfig>,
    /// Latent-reasoning mode (`[model.latent]`): Coconut latent segments or HRPO hybrid inputs.
    pub latent: Option<LatentSection>,
    /// Recompute each layer's activations in the backward pass instead of keeping them.
    pub gradient_checkpointing: bool,
    /// Dtype of saved checkpoints: "auto" (the dtype the model came in), "f32", "bf16", "f16".
    pub save_dtype: String,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub rope_theta: f64,
}

impl Default for ModelSection {
    fn default() -> Self {
        let t = oxrl_lm::ModelConfig::tiny(100);
        Self {
            path: None,
            dtype: "auto".into(),
            chat: false,
            system_prompt: None,
            lora: None,
            latent: None,
            gradient_checkpointing: false,
            save_dtype: "auto".into(),
            hidden_size: t.hidden_size,
            intermediate_size: t.intermediate_size,
            num_hidden_layers: t.num_hidden_layers,
            num_attention_heads: t.num_attention_heads,
            num_key_value_heads: t.kv_heads(),
            max_position_embeddings: t.max_position_embeddings,
            tie_word_embeddings: t.tie_word_embeddings,
            rope_theta: t.rope_theta,
        }
    }
}

impl ModelSection {
    /// The compute dtype on `device`.
    pub fn compute_dtype(&self, device: &candle_core::Device) -> Result<candle_core::DType> {
        match self.dtype.as_str() {
            "auto" => Ok(oxrl_lm::checkpoint::default_dtype(device)),
            d => oxrl_lm::hf::parse_dtype(d),
        }
    }

    /// How checkpoints of a model with config `model` are written: in `save_dtype`, where "auto" is
    /// the dtype the model came in (`torch_dtype` of its config.json: bf16 for most Hugging Face
    /// checkpoints, f32 for the built-in model); sharded at 2 GiB.
    pub fn save_options(
        &self,
        model: &oxrl_lm::ModelConfig,
        merge_lora: bool,
    ) -> Result<oxrl_lm::checkpoint::SaveOptions> {
        let dtype = match self.save_dtype.as_str() {
            "auto" => oxrl_lm::hf::parse_dtype(&model.torch_dtype).ok(),
            d => Some(oxrl_lm::hf::parse_dtype(d)?),
        };
        Ok(oxrl_lm::checkpoint::SaveOptions { dtype, max_shard_bytes: 2 << 30, merge_lora })
    }

    pub fn model_config(&self, vocab_size: usize) -> oxrl_lm::ModelConfig {
        let mut c = oxrl_lm::ModelConfig::tiny(vocab_size);
        c.hidden_size = self.hidden_size;
        c.intermediate_size = self.intermediate_size;
        c.num_hidden_layers = self.num_hidden_layers;
        c.num_attention_heads = self.num_attention_heads;
        c.num_key_value_heads = Some(self.num_key_value_heads);
        c.max_position_embeddings = self.max_position_embeddings;
        c.tie_word_embeddings = self.tie_word_embeddings;
        c.rope_theta = self.rope_theta;
        c
    }
}

/// Optimiser and schedule settings shared by SFT and RL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SftConfig {
    pub steps: u64,
    /// Problems (sequences) per optimiser step.
    pub batch_size: usize,
    /// Gradient accumulation: the batch's forward/backward runs in this many chunks.
    pub micro_batches: usize,
    pub lr: f64,
    pub min_lr_ratio: f64,
    pub warmup_steps: u64,
    pub schedule: ScheduleKind,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Global gradient-norm clip (0 = off).
    pub grad_clip: f64,
    /// Held-out evaluation every N steps (0 = only at the end).
    pub eval_every: u64,
    /// Write a checkpoint every N steps (0 = only at the end).
    pub checkpoint_every: u64,
}

impl Default for SftConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            batch_size: 64,
            micro_batches: 1,
            lr: 2e-3,
            min_lr_ratio: 0.1,
            warmup_steps: 50,
            schedule: ScheduleKind::Cosine,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            grad_clip: 1.0,
            eval_every: 0,
            checkpoint_every: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// The k of pass@k and maj@k; max(k) samples are drawn per problem.
    pub k: Vec<usize>,
    /// Sampling temperature for pass@k / maj@k (accuracy is always greedy).
    pub temperature: f64,
    pub top_k: usize,
    pub top_p: f64,
    pub min_p: f64,
    /// 0 = derived from the task's longest good completion.
    pub max_new_tokens: usize,
    /// Evaluate at most this many held-out problems (0 = all).
    pub max_problems: usize,
    /// Sequences per generation batch.
    pub batch_size: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            k: vec![1, 8],
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            max_new_tokens: 0,
            max_problems: 0,
            batch_size: 512,
        }
    }
}

/// RL training (`oxrl train`): rollouts, advantages, losses, regularisers and their schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Run `[sft]` first (a warm-up) before RL.
    pub sft_warmup: bool,
    pub steps: u64,
    /// Prompts (groups) per step.
    pub prompts_per_step: usize,
    /// Responses sampled per prompt (G).
    pub group_size: usize,
    pub temperature: f64,
    pub top_k: usize,
    pub top_p: f64,
    pub min_p: f64,
    /// 0 = derived from the task.
    pub max_new_tokens: usize,
    /// Passes over each rollout batch.
    pub epochs: usize,
    /// Optimiser steps per epoch (the batch is split by groups).
    pub minibatches: usize,
    /// Gradient accumulation: each minibatch's forward/backward runs in this many chunks of
    /// whole groups (bounding activation memory); the optimiser steps once per minibatch.
    pub micro_batches: usize,
    pub lr: f64,
    pub min_lr_ratio: f64,
    pub warmup_steps: u64,
    pub schedule: ScheduleKind,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub grad_clip: f64,
    /// grpo | dr_grpo | rloo | reinforce_pp | reinforce_pp_baseline | gae | lite_ppo
    pub advantage: String,
    /// token-mean | seq-mean-token-sum | seq-mean-token-mean | seq-mean-token-sum-norm
    pub loss_agg: oxrl_core::loss::AggMode,
    /// C of seq-mean-token-sum-norm (0 = the token budget).
    pub loss_agg_norm: f64,
    pub clip_low: f64,
    pub clip_high: f64,
    /// Dual-clip constant c > 1 (0 = off).
    pub dual_clip: f64,
    /// KL to the reference: coefficient (0 = off), estimator, placement.
    pub kl_coef: f64,
    pub kl_estimator: oxrl_core::regularizer::KlEstimator,
    /// "loss" (GRPO style) or "reward" (PPO style, per-token penalty in the rewards).
    pub kl_in: String,
    /// Adaptive KL: target KL (0 = fixed coefficient) and horizon.
    pub kl_target: f64,
    pub kl_horizon: f64,
    /// "initial" (a frozen copy of the starting policy) or "none".
    pub reference: String,
    pub entropy_coef: f64,
    pub gamma: f64,
    pub lambda: f64,
    /// A value head (needed by `gae`).
    pub value_head: bool,
    /// Where the value head reads from: "head" (the policy's own trunk, shared) or "model" (a
    /// separate critic trunk — verl's critic model: a copy of the starting policy with its own
    /// gradients, learning rate `value_lr_mult`, clipping and checkpoint).
    pub critic: String,
    /// The value head's learning rate as a multiple of the policy's (the practitioner's guide
    /// trains the critic at 10×: 1e-5 against 1e-6).
    pub value_lr_mult: f64,
    /// The first N RL steps train only the value head (verl's critic warm-up): a fresh critic's
    /// advantages are noise.
    pub critic_warmup: u64,
    pub vf_coef: f64,
    pub value_clip: f64,
    /// Lite PPO: divide by the std of group-centred rewards instead of raw rewards.
    pub lite_ppo_centered_std: bool,
    /// Policy objective: "ppo" (the clipped surrogate on the estimator's advantages), "pacs"
    /// (PACS: supervised BCE of the implicit reward against the binary outcome; advantages unused)
    /// "prdp" (reward-difference regression over the pairs of each group) or "reasonmaxxer" (RL-free contrastive loss at the base model's decision points, on base
    /// rollouts; needs the reference).
    pub objective: String,
    /// PRDP (`objective = "prdp"`): β of the implicit reward difference and the per-token
    /// log-ratio clip ε.
    pub prdp_beta: f64,
    pub prdp_clip: f64,
    /// ReasonMaxxer: fraction ρ of the batch's response positions (highest base entropy) that are
    /// decision points.
    pub rm_rho: f64,
    /// ReasonMaxxer: candidates per decision point (the base model's top k).
    pub rm_top_k: usize,
    /// ReasonMaxxer: weight η of the negative (unlikelihood) term.
    pub rm_neg_coef: f64,
    /// PACS: scale β of the implicit reward ψ.
    pub pacs_beta: f64,
    /// PACS: "sum" (β·Σ log-ratio) or "mean-logp" (β·mean log-prob).
    pub pacs_score: oxrl_core::loss::PacsScore,
    /// W-REINFORCE (`advantage = "w_reinforce"`): advantage of correct samples (λ).
    pub w_reinforce_lambda: f64,
    /// A-GRAE (`advantage = "a_grae"`): positive advantages are scaled by min(1, batch accuracy / α).
    pub agrae_alpha: f64,
    /// GUI-Libra (`advantage = "gui_libra"`): negative advantages × clip(p_g/τ, s_min, 1).
    pub libra_tau: f64,
    pub libra_min_scale: f64,
    /// CalibRL: coefficient of the expert-anchored LeakyReLU guided term (0 = off; paper 0.1);
    /// the expert response is the task's reference solution. The paper pairs it with
    /// `advantage = "dr_grpo"`.
    pub calibrl_coef: f64,
    /// SELF: decode every drawn prompt greedily first and train only on prompts whose greedy
    /// answer is wrong; a step where every greedy answer is right is skipped.
    pub self_filter: bool,
    /// DPH-RL: mass-covering divergence to a rehearsal set sampled once from the initial policy:
    /// "none" | "fkl" (forward KL, k3) | "fkl_k1" | "js" | "alpha".
    pub dph_divergence: String,
    /// η, the divergence term's coefficient.
    pub dph_coef: f64,
    /// α of the α-divergence, in (0, 1).
    pub dph_alpha: f64,
    /// Training prompts probed with the initial policy to build the rehearsal set.
    pub dph_probe_prompts: usize,
    /// Samples per probed prompt.
    pub dph_probe_samples: usize,
    /// Rehearsal responses per optimiser step.
    pub dph_batch: usize,
    /// VERL: λ of the effective-rank advantage shaping (0 = off).
    pub verl_coef: f64,
    /// VERL: temperature τ of the exploration weight σ(−ERA/τ).
    pub verl_tau: f64,
    /// VERL: prefix stride (tokens) of the effective-rank trajectory.
    pub verl_stride: usize,
    /// A reward model trained by `oxrl rm` (directory): its score replaces the verifier's
    /// reward (the verifier still reports correctness in the metrics).
    pub reward_model: Option<PathBuf>,
    /// More reward models (directories) scoring alongside `reward_model`: the reward is the
    /// members' mean − `rm_uncertainty`·std (logged as `rm_ensemble_std`).
    pub reward_model_ensemble: Vec<PathBuf>,
    /// k of the ensemble's pessimistic reward mean − k·std (0 = the plain mean).
    pub rm_uncertainty: f64,
    /// A VPL reward model's user: preference pairs (the `oxrl rm` JSONL format) whose posterior
    /// mean z personalises the reward (required for a VPL model, ignored by others).
    pub reward_model_user: Option<PathBuf>,
    /// RLFR: λ of the flow reward added to every token's advantage (0 = off).
    pub rlfr_coef: f64,
    /// RLFR: training problems whose expert solutions' hidden states the field is fitted on,
    /// fitting steps, learning rate, hidden units, and (τ, x₀) draws per deviation.
    pub rlfr_fit_prompts: usize,
    pub rlfr_fit_steps: usize,
    pub rlfr_lr: f64,
    pub rlfr_hidden: usize,
    pub rlfr_draws: usize,
    /// SPAE: λ of the step-potential shaping A + λ·ΔΦ_k (0 = off unless the saturation
    /// penalty is on).
    pub spae_coef: f64,
    /// SPAE: penalty on the tokens after the step where a correct response's potential first
    /// exceeds `spae_tau_sat` (0 = off).
    pub spae_sat_penalty: f64,
    pub spae_tau_sat: f64,
    /// SPAE: the text a step ends with, and the probe prompt appended after each step.
    pub spae_boundary: String,
    pub spae_probe: String,
    /// SPAE: probe continuations per step, their token budget and temperature.
    pub spae_probes: usize,
    pub spae_probe_tokens: usize,
    pub spae_probe_temperature: f64,
    /// SPAE: at most this many steps per response (the rest is one final step).
    pub spae_max_steps: usize,
    /// PAPO: γ of the (maximised) perception KL between the real and the masked prompt (0 = off).
    pub papo_coef: f64,
    /// PAPO: probability that a span of prompt tokens is masked (replaced by the pad token).
    pub papo_mask_prob: f64,
    /// PAPO: tokens per masked span.
    pub papo_span: usize,
    /// PAPO: clamp of the per-token perception KL to [0, c] (0 = no clamp).
    pub papo_kl_clamp: f64,
    /// PAPO double entropy loss: η_aug and η_ori, the weights of −log π of the sampled tokens on
    /// the masked and the real prompt.
    pub papo_aug_entropy: f64,
    pub papo_ori_entropy: f64,
    /// DePO: α of the latent PPO term over latent positions (0 = latent positions carry no loss).
    pub depo_alpha: f64,
    /// DePO: the latent trust region [1 − low, 1 + high] and dual clip (tighter than the tokens').
    pub depo_clip_low: f64,
    pub depo_clip_high: f64,
    pub depo_dual_clip: f64,
    /// DePO: β_lat of the vMF KL κ(1 − ⟨μ_θ, z⟩) on latent positions.
    pub depo_vmf_kl: f64,
    /// Latent-GRPO: masked group statistics (invalid latent rollouts get A = 0; needs
    /// `advantage = "grpo"`).
    pub latent_grpo: bool,
    /// Latent-GRPO: a latent is valid when its norm is within [lo/m, hi·m] of the norms seen on
    /// the expert solutions.
    pub latent_norm_margin: f64,
    /// Latent-GRPO: relative σ of the one-sided latent noise (0 = off) and the share of each group
    /// that gets it (the rest are deterministic anchors).
    pub latent_noise: f64,
    pub latent_noise_frac: f64,
    /// Latent-GRPO: of a group's correct paths reinforce only the most confident first answer token.
    pub latent_select: bool,
    /// Agent tasks (multi-turn): `outcome` (the episode's score on its last action), `dense`
    /// (sub-goal events on their turns, normalised as the practitioner's guide does), `direct`
    /// (D-RA: outcome + every turn's immediate reward) or `gated` (G-RA: immediate rewards only
    /// when the outcome reaches `agent_gate`).
    pub agent_reward: String,
    /// Immediate reward of an executable action (paid once per distinct action and result).
    pub agent_step_reward: f64,
    /// G-RA's gate δ on the outcome.
    pub agent_gate: f64,
    /// SPA-RL (`agent_reward = "spa"`): r_k = α·progress_k + β·[executable].
    pub spa_alpha: f64,
    pub spa_beta: f64,
    /// ReBel (agent tasks whose environment tracks beliefs, e.g. `grid` with `belief = true`):
    /// each turn's advantage is A_ep + ω·A_step, from the episode outcome within the prompt
    /// group and the γ-discounted outcome and belief-consistency returns within (prompt, belief
    /// phase/target) groups; replaces the estimator's advantages.
    pub rebel: bool,
    pub rebel_omega: f64,
    pub rebel_gamma: f64,
    /// z-score within groups instead of centring (ReBel's default is mean-only).
    pub rebel_std_norm: bool,
    /// Consistency weights a1..a4: state, task phase, prediction, format.
    pub rebel_weights: [f64; 4],
    /// VSC-RL (agent tasks that announce subgoals, e.g. `grid` with `subgoals = true`): each
    /// turn's advantage is its segment's subgoal reward centred within the prompt's episodes
    /// under the same subgoal, and the KL term (β = `kl_coef`) is taken against the reference
    /// conditioned on the original goal (the transcript without subgoal announcements), in the
    /// loss (`kl_in = "loss"`; the segment advantages do not read token rewards).
    pub vsc_rl: bool,
    /// PrefixRL: share of groups whose prompt carries a prefix of the reference solution (0 =
    /// off), faded out as the running accuracy rises; cut fraction range.
    pub prefix_rl: f64,
    pub prefix_min: f64,
    pub prefix_max: f64,
    /// SEELE: rollout rounds per step (`group_size` samples each) with per-problem hint ratios
    /// fitted to reach `seele_target` accuracy (IRT discrimination a and floor c).
    pub seele: bool,
    pub seele_rounds: usize,
    pub seele_target: f64,
    pub seele_a: f64,
    pub seele_c: f64,
    /// IGPO: regenerate all-wrong groups with forced solution prefixes (ratio in [low, high]),
    /// replace up to `igpo_max_replacements` members by correct ones, and keep the top
    /// `igpo_entropy_keep` share of forced tokens (by entropy) in the loss.
    pub igpo: bool,
    pub igpo_eta_low: f64,
    pub igpo_eta_high: f64,
    pub igpo_max_replacements: usize,
    pub igpo_entropy_keep: f64,
    /// RPO: replace the verifier's reward by the binary rubric preference against a competitor,
    /// judged by `arena_judge` ("task" or an LM judge directory).
    pub rpo: bool,
    /// RPO's competitor: "greedy" (the prompt's greedy answer) or "peer" (the next response of
    /// the group).
    pub rpo_opponent: String,
    /// HeRL: hindsight rubric guidance — groups below `herl_threshold` get their best responses
    /// revised by the policy with the satisfied / unmet rubric items in context (needs a task
    /// with a rubric, e.g. `instruct`).
    pub herl: bool,
    pub herl_threshold: f64,
    /// Best responses revised per group, and revisions that replace group members.
    pub herl_candidates: usize,
    pub herl_replace: usize,
    /// α of the bonus r + α·(r_he − r) on each revised response.
    pub herl_bonus: f64,
    /// γ_s of the hindsight samples' shaped importance weight ρ/(ρ + γ_s).
    pub herl_gamma: f64,
    /// Sampling temperature of the revisions.
    pub herl_temperature: f64,
    /// The context hindsight samples are trained under: "guidance" (the revision prompt, as the
    /// released script) or "original" (the original prompt: internalisation).
    pub herl_context: String,
    /// ExpRL: the judge's rubric reward against the problem's hidden reference replaces the
    /// verifier's — "off", "outcome" (r = Σ w_m·g_m on the last token) or "process" (w_m·g_m on
    /// the token where checkpoint m is first met). Judged by `arena_judge`.
    pub exprl: String,
    /// ExpRL as a mid-training prior: the rubric reward for the first N steps, then the
    /// verifier's sparse reward (0 = the whole run).
    pub exprl_steps: u64,
    /// ExpRL: weight of the final-answer checkpoint, the rest shared equally (0 = equal weights).
    pub exprl_final_weight: f64,
    /// SvS: variational problem synthesis — correct responses of problems whose accuracy lies in
    /// [svs_select_lo, svs_select_hi] seed G new problems with the same answer; each is solved G
    /// times and rewarded 1 when its solve rate lies in [svs_accept_lo, svs_accept_hi].
    pub svs: bool,
    pub svs_select_lo: f64,
    pub svs_select_hi: f64,
    pub svs_accept_lo: f64,
    pub svs_accept_hi: f64,
    /// Who writes the new problems: "policy" (the policy itself from `svs_template`; its problem
    /// texts train with the synthesis reward) or "task" (the task's scripted rewriter, the spec's
    /// CPU stand-in: ARITH).
    pub svs_synthesizer: String,
    /// The policy's synthesis instruction; `{solution}` is replaced by the correct response.
    pub svs_template: String,
    /// At most this many source responses per step (0 = all, as the paper; each costs G + G²
    /// generations).
    pub svs_max_sources: usize,
    /// PPR / ReNorm: α of the group-centred process score added to the outcome reward, in
    /// [0, 0.5) (0 = off; needs a task with a process verifier).
    pub ppr_coef: f64,
    /// ViSurf: inject the ground-truth solution in place of one rollout per group — "off",
    /// "always" or "when_needed" (only in groups without a correct rollout).
    pub visurf: String,
    /// ViSurf: cap the injected response's advantage at its group's largest on-policy |A|.
    pub visurf_cap: bool,
    /// SIREN: λ of the selective entropy term (0 = off).
    pub siren_coef: f64,
    /// SIREN: mass p of the top-p token set the entropy is restricted to.
    pub siren_top_p: f64,
    /// SIREN: fraction ρ of the batch's highest-entropy tokens the term acts on.
    pub siren_rho: f64,
    /// SIREN: "initial" (one-sided, to the first update's entropy), "batch" (two-sided, to the
    /// detached batch mean) or "none" (a selective entropy bonus).
    pub siren_anchor: String,
    /// GUI-G1 difficulty-aware scaling: each response's advantages times its problem's
    /// `meta.rate` (1 where absent).
    pub difficulty_weight: bool,
    /// AEM: κ of the surprisal-modulated advantage scale clip(exp(κ·sign(A)·ŝ), g_min, g_max)
    /// (0 = off).
    pub aem_kappa: f64,
    pub aem_g_min: f64,
    pub aem_g_max: f64,
    /// AEM: divide the group-centred surprisal by the group's standard deviation.
    pub aem_std: bool,
    /// Log the hidden-state effective rank of the responses every N steps (0 = never).
    pub effective_rank_every: u64,
    /// Responses (evenly spaced over the batch) the effective-rank metric is computed on
    /// (0 = all; one eigen-decomposition each).
    pub effective_rank_samples: usize,
    /// TMN-Reweight (`advantage = "tmn"`): floor of the difficulty-adaptive group weight in
    /// [0, 1] (1 = no reweighting).
    pub tmn_min_weight: f64,
    /// The judge of ArenaRL (`advantage = "arena"`), RPO and ExpRL — "task" (the task's
    /// verifier; ExpRL: step results matched against the reference) or a model directory /
    /// checkpoint used as an LM judge.
    pub arena_judge: String,
    /// DCPO (`advantage = "dcpo"`): minimum group reward spread δ, and the spread at which half
    /// the group is selected on each side.
    pub dcpo_min_spread: f64,
    pub dcpo_full_spread: f64,
    /// Hierarchical gated reward (ChatShopBuddy's HRM) over the levels format → correctness →
    /// brevity (1 − length/budget): a level counts only when the ones below pass.
    pub hierarchical_reward: bool,
    /// Weights of the HRM levels (format, correctness, brevity).
    pub hrm_weights: Vec<f64>,
    /// PIPO: η of the update-verification loss scale 1 + η·tanh(Δ/s) (0 = off).
    pub pipo_coef: f64,
    /// PIPO: sliding-window length W of the reward baseline.
    pub pipo_window: usize,
    /// PIPO: reward-difference scale s.
    pub pipo_scale: f64,
    /// SELF's negative-interference measurement every N steps (0 = off): held-out solution
    /// likelihoods before vs after the update (`interference_*`, `winner_take_all` metrics).
    pub interference_every: u64,
    /// Held-out problems probed by the interference measurement.
    pub interference_probes: usize,
    /// DAPO dynamic sampling: refill the batch with groups of non-zero reward variance.
    pub dynamic_sampling: bool,
    pub dynamic_acc_low: f64,
    pub dynamic_acc_high: f64,
    /// Most generation rounds per step when refilling.
    pub dynamic_max_rounds: usize,
    /// DAPO soft overlong punishment buffer in tokens (0 = off), before the token budget.
    pub overlong_buffer: usize,
    /// Mask responses cut by the token budget out of the loss.
    pub mask_truncated: bool,
    /// Held-out evaluation every N steps (0 = only before and after).
    pub eval_every: u64,
    /// Full-state checkpoint every N steps (0 = only at the end).
    pub checkpoint_every: u64,
}

impl TrainConfig {
    /// The estimator knobs of this config.
    /// The rollout sampler's settings for a token budget and stop ids.
    pub fn sampling_params(&self, budget: usize, stop_tokens: Vec<u32>) -> oxrl_lm::sampler::SamplingParams {
        oxrl_lm::sampler::SamplingParams {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            max_new_tokens: budget,
            stop_tokens,
        }
    }

    pub fn estimator_params(&self) -> oxrl_core::advantage::EstimatorParams {
        oxrl_core::advantage::EstimatorParams {
            gamma: self.gamma,
            lambda: self.lambda,
            lite_ppo_centered_std: self.lite_ppo_centered_std,
            w_reinforce_lambda: self.w_reinforce_lambda,
            agrae_alpha: self.agrae_alpha,
            libra_tau: self.libra_tau,
            libra_min_scale: self.libra_min_scale,
            tmn_min_weight: self.tmn_min_weight,
            dcpo_min_spread: self.dcpo_min_spread,
            dcpo_full_spread: self.dcpo_full_spread,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            sft_warmup: false,
            steps: 100,
            prompts_per_step: 32,
            group_size: 8,
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            max_new_tokens: 0,
            epochs: 1,
            minibatches: 1,
            micro_batches: 1,
            lr: 1e-4,
            min_lr_ratio: 1.0,
            warmup_steps: 0,
            schedule: ScheduleKind::Constant,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.99,
            grad_clip: 1.0,
            advantage: "grpo".into(),
            loss_agg: oxrl_core::loss::AggMode::SeqMeanTokenMean,
            loss_agg_norm: 0.0,
            clip_low: 0.2,
            clip_high: 0.2,
            dual_clip: 0.0,
            kl_coef: 0.0,
            kl_estimator: oxrl_core::regularizer::KlEstimator::K3,
            kl_in: "loss".into(),
            kl_target: 0.0,
            kl_horizon: 10000.0,
            reference: "initial".into(),
            entropy_coef: 0.0,
            gamma: 1.0,
            lambda: 0.95,
            value_head: false,
            critic: "head".into(),
            value_lr_mult: 1.0,
            critic_warmup: 0,
            vf_coef: 0.5,
            value_clip: 0.5,
            lite_ppo_centered_std: false,
            objective: "ppo".into(),
            prdp_beta: 0.1,
            prdp_clip: 0.2,
            rm_rho: 0.02,
            rm_top_k: 5,
            rm_neg_coef: 1.0,
            pacs_beta: 1.0,
            pacs_score: oxrl_core::loss::PacsScore::Sum,
            w_reinforce_lambda: 0.1,
            agrae_alpha: 1.0,
            libra_tau: 1.0,
            libra_min_scale: 0.0,
            calibrl_coef: 0.0,
            self_filter: false,
            dph_divergence: "none".into(),
            dph_coef: 0.05,
            dph_alpha: 0.2,
            dph_probe_prompts: 64,
            dph_probe_samples: 4,
            dph_batch: 16,
            verl_coef: 0.0,
            verl_tau: 0.05,
            verl_stride: 4,
            reward_model: None,
            reward_model_ensemble: Vec::new(),
            rm_uncertainty: 1.0,
            reward_model_user: None,
            rlfr_coef: 0.0,
            rlfr_fit_prompts: 256,
            rlfr_fit_steps: 400,
            rlfr_lr: 1e-3,
            rlfr_hidden: 256,
            rlfr_draws: 8,
            spae_coef: 0.0,
            spae_sat_penalty: 0.0,
            spae_tau_sat: 0.9,
            spae_boundary: ",".into(),
            spae_probe: "answer: ".into(),
            spae_probes: 5,
            spae_probe_tokens: 10,
            spae_probe_temperature: 0.6,
            spae_max_steps: 8,
            papo_coef: 0.0,
            papo_mask_prob: 0.6,
            papo_span: 1,
            papo_kl_clamp: 0.0,
            papo_aug_entropy: 0.03,
            papo_ori_entropy: 0.03,
            depo_alpha: 0.0,
            depo_clip_low: 0.1,
            depo_clip_high: 0.1,
            depo_dual_clip: 3.0,
            depo_vmf_kl: 0.01,
            latent_grpo: false,
            latent_norm_margin: 1.5,
            latent_noise: 0.0,
            latent_noise_frac: 0.5,
            latent_select: false,
            agent_reward: "outcome".into(),
            agent_step_reward: 0.05,
            agent_gate: 1.0,
            spa_alpha: 1.0,
            spa_beta: 0.5,
            rebel: false,
            rebel_omega: 0.5,
            rebel_gamma: 0.95,
            rebel_std_norm: false,
            rebel_weights: [0.3, 0.4, 0.3, 0.1],
            vsc_rl: false,
            prefix_rl: 0.0,
            prefix_min: 0.1,
            prefix_max: 0.9,
            seele: false,
            seele_rounds: 3,
            seele_target: 0.5,
            seele_a: 10.0,
            seele_c: 0.0,
            igpo: false,
            igpo_eta_low: 0.2,
            igpo_eta_high: 0.6,
            igpo_max_replacements: 4,
            igpo_entropy_keep: 0.2,
            rpo: false,
            rpo_opponent: "greedy".into(),
            herl: false,
            herl_threshold: 1.0,
            herl_candidates: 16,
            herl_replace: 1,
            herl_bonus: 0.05,
            herl_gamma: 1.0,
            herl_temperature: 0.3,
            herl_context: "guidance".into(),
            exprl: "off".into(),
            exprl_steps: 0,
            exprl_final_weight: 0.0,
            svs: false,
            svs_select_lo: 0.125,
            svs_select_hi: 0.5,
            svs_accept_lo: 0.125,
            svs_accept_hi: 0.625,
            svs_synthesizer: "policy".into(),
            svs_template:
                "Write a new problem whose answer is the answer of this solution.\nSolution: {solution}\nProblem:"
                    .into(),
            svs_max_sources: 0,
            ppr_coef: 0.0,
            visurf: "off".into(),
            visurf_cap: false,
            siren_coef: 0.0,
            siren_top_p: 0.95,
            siren_rho: 0.2,
            siren_anchor: "initial".into(),
            difficulty_weight: false,
            aem_kappa: 0.0,
            aem_g_min: 0.5,
            aem_g_max: 2.0,
            aem_std: false,
            effective_rank_every: 10,
            effective_rank_samples: 32,
            tmn_min_weight: 0.25,
            arena_judge: "task".into(),
            dcpo_min_spread: 0.1,
            dcpo_full_spread: 1.0,
            hierarchical_reward: false,
            hrm_weights: vec![0.1, 1.0, 0.2],
            pipo_coef: 0.0,
            pipo_window: 5,
            pipo_scale: 0.1,
            interference_every: 0,
            interference_probes: 32,
            dynamic_sampling: false,
            dynamic_acc_low: 0.01,
            dynamic_acc_high: 0.99,
            dynamic_max_rounds: 4,
            overlong_buffer: 0,
            mask_truncated: false,
            eval_every: 0,
            checkpoint_every: 0,
        }
    }
}

/// RA3 mid-training (`oxrl midtrain`): EM rounds of latent discovery on expert solutions and
/// next-token training on them with the kept latents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ra3Config {
    /// EM rounds.
    pub rounds: usize,
    /// Training problems (expert solutions) per round.
    pub problems: usize,
    /// Candidate latents sampled per segment (the E-step's best-of-M).
    pub candidates: usize,
    /// Token budget of a latent, its sampling temperature and the cost c per latent token.
    pub latent_max_tokens: usize,
    pub temperature: f64,
    pub length_cost: f64,
    /// The text a segment ends with, and the markers around a latent.
    pub boundary: String,
    pub open: String,
    pub close: String,
    /// M-step: optimiser steps, sequences per step, learning rate.
    pub sft_steps: u64,
    pub batch_size: usize,
    pub lr: f64,
}

impl Default for Ra3Config {
    fn default() -> Self {
        Self {
            rounds: 2,
            problems: 64,
            candidates: 4,
            latent_max_tokens: 12,
            temperature: 1.0,
            length_cost: 0.05,
            boundary: ",".into(),
            open: "<".into(),
            close: ">".into(),
            sft_steps: 50,
            batch_size: 32,
            lr: 1e-3,
        }
    }
}

/// DPO (`oxrl dpo`) on preference pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpoConfig {
    /// JSONL of `{"prompt" | "messages", "chosen", "rejected"}`.
    pub pairs: Option<PathBuf>,
    pub beta: f64,
    pub steps: u64,
    /// Pairs per optimiser step.
    pub batch_size: usize,
    pub lr: f64,
    /// Held-out share of the pairs (implicit-reward accuracy at the end).
    pub test_fraction: f64,
}

impl Default for DpoConfig {
    fn default() -> Self {
        Self { pairs: None, beta: 0.1, steps: 200, batch_size: 16, lr: 5e-4, test_fraction: 0.1 }
    }
}

/// Bradley–Terry reward-model training (`oxrl rm`) on preference pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RmConfig {
    /// JSONL of `{"prompt" | "messages", "chosen", "rejected"}` (the `oxrl dpo` format).
    pub pairs: Option<PathBuf>,
    pub steps: u64,
    pub batch_size: usize,
    pub lr: f64,
    /// BT margin m in −log σ(r_w − r_l − m).
    pub margin: f64,
    /// λ of the centring term λ·(r_w + r_l)² (BT is shift-invariant).
    pub centring: f64,
    pub test_fraction: f64,
    /// "bt" (Bradley–Terry / Plackett–Luce on the trunk) or "vpl" (a user-conditioned reward on
    /// frozen embeddings; pairs carry a `user`; test_fraction holds out users).
    pub kind: String,
    /// VPL: latent user dimension, hidden width and β of the KL term.
    pub vpl_z_dim: usize,
    pub vpl_hidden: usize,
    pub vpl_beta: f64,
}

impl Default for RmConfig {
    fn default() -> Self {
        Self {
            pairs: None,
            steps: 200,
            batch_size: 16,
            lr: 5e-4,
            margin: 0.0,
            centring: 1e-3,
            test_fraction: 0.1,
            kind: "bt".into(),
            vpl_z_dim: 8,
            vpl_hidden: 32,
            vpl_beta: 1e-2,
        }
    }
}

/// Testing aids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DebugConfig {
    /// RL steps (1-based) whose loss is replaced by NaN, to exercise the non-finite-loss guard.
    pub inject_nan_at: Vec<u64>,
}

pub use oxrl_core::overrides::apply_override;

impl RunConfig {
    /// Load from an optional file plus overrides, then validate.
    pub fn load(path: Option<&Path>, sets: &[String]) -> Result<Self> {
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))?;
                Self::load_str(&p.display().to_string(), &text, sets)
            }
            None => Self::load_str("<defaults>", "", sets),
        }
    }

    /// Load from TOML text; `origin` names it in errors (a file path, or a built-in config).
    pub fn load_str(origin: &str, text: &str, sets: &[String]) -> Result<Self> {
        let cfg: RunConfig = oxrl_core::overrides::parse_with_overrides(origin, text, sets)?;
        cfg.validate().map_err(|e| anyhow!("{origin}: {e}"))?;
        Ok(cfg)
    }

    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// Semantic checks, naming the key and the reason.
    pub fn validate(&self) -> Result<()> {
        fn check(ok: bool, key: &str, why: String) -> Result<()> {
            if ok {
                Ok(())
            } else {
                bail!("key `{key}`: {why}")
            }
        }
        check(
            !self.name.is_empty() && self.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "name",
            format!("`{}` must be non-empty and use only letters, digits, '-', '_' and '.'", self.name),
        )?;
        let s = &self.sft;
        check(s.batch_size > 0, "sft.batch_size", "must be > 0".into())?;
        check(s.lr > 0.0 && s.lr.is_finite(), "sft.lr", format!("must be > 0 (got {})", s.lr))?;
        check(
            (0.0..=1.0).contains(&s.min_lr_ratio),
            "sft.min_lr_ratio",
            format!("must be in [0, 1] (got {})", s.min_lr_ratio),
        )?;
        check(s.weight_decay >= 0.0, "sft.weight_decay", format!("must be >= 0 (got {})", s.weight_decay))?;
        check((0.0..1.0).contains(&s.beta1), "sft.beta1", format!("must be in [0, 1) (got {})", s.beta1))?;
        check((0.0..1.0).contains(&s.beta2), "sft.beta2", format!("must be in [0, 1) (got {})", s.beta2))?;
        check(s.eps > 0.0, "sft.eps", format!("must be > 0 (got {})", s.eps))?;
        check(s.micro_batches > 0, "sft.micro_batches", "must be > 0 (1 = no gradient accumulation)".into())?;
        check(s.grad_clip >= 0.0, "sft.grad_clip", format!("must be >= 0 (got {})", s.grad_clip))?;
        let e = &self.eval;
        check(
            !e.k.is_empty() && e.k.iter().all(|&k| k >= 1),
            "eval.k",
            format!("must be a non-empty list of k >= 1 (got {:?})", e.k),
        )?;
        check(e.temperature >= 0.0, "eval.temperature", format!("must be >= 0 (got {})", e.temperature))?;
        check(e.top_p > 0.0 && e.top_p <= 1.0, "eval.top_p", format!("must be in (0, 1] (got {})", e.top_p))?;
        check((0.0..1.0).contains(&e.min_p), "eval.min_p", format!("must be in [0, 1) (got {})", e.min_p))?;
        check(e.batch_size > 0, "eval.batch_size", "must be > 0".into())?;
        check(
            *e.k.iter().max().unwrap() == 1 || e.temperature > 0.0,
            "eval.temperature",
            "pass@k with k > 1 needs sampling: set eval.temperature > 0".into(),
        )?;
        self.validate_train()?;
        let r = &self.ra3;
        check(
            r.rounds > 0
                && r.problems > 0
                && r.candidates > 0
                && r.latent_max_tokens > 0
                && r.sft_steps > 0
                && r.batch_size > 0,
            "ra3",
            "rounds, problems, candidates, latent_max_tokens, sft_steps and batch_size must be > 0".into(),
        )?;
        check(r.length_cost >= 0.0, "ra3.length_cost", format!("must be >= 0 (got {})", r.length_cost))?;
        check(r.lr > 0.0 && r.temperature > 0.0, "ra3.lr", "ra3.lr and ra3.temperature must be > 0".into())?;
        check(
            !r.boundary.is_empty() && !r.open.is_empty() && !r.close.is_empty(),
            "ra3.boundary",
            "ra3.boundary, ra3.open and ra3.close must not be empty".into(),
        )?;
        let rmc = &self.rm;
        check(
            rmc.steps > 0 && rmc.batch_size > 0 && rmc.lr > 0.0,
            "rm.steps",
            "rm.steps, rm.batch_size and rm.lr must be > 0".into(),
        )?;
        check(rmc.margin >= 0.0 && rmc.centring >= 0.0, "rm.margin", "rm.margin and rm.centring must be >= 0".into())?;
        check((0.0..1.0).contains(&rmc.test_fraction), "rm.test_fraction", "must be in [0, 1)".into())?;
        check(matches!(rmc.kind.as_str(), "bt" | "vpl"), "rm.kind", format!("`{}` is not one of bt, vpl", rmc.kind))?;
        check(
            rmc.vpl_z_dim > 0 && rmc.vpl_hidden > 0 && rmc.vpl_beta >= 0.0,
            "rm.vpl_z_dim",
            "rm.vpl_z_dim and rm.vpl_hidden must be > 0 and rm.vpl_beta >= 0".into(),
        )?;
        let dp = &self.dpo;
        check(dp.beta > 0.0 && dp.lr > 0.0, "dpo.beta", "dpo.beta and dpo.lr must be > 0".into())?;
        check(dp.steps > 0 && dp.batch_size > 0, "dpo.steps", "dpo.steps and dpo.batch_size must be > 0".into())?;
        check((0.0..1.0).contains(&dp.test_fraction), "dpo.test_fraction", "must be in [0, 1)".into())?;
        let m = &self.model;
        if m.path.is_none() {
            m.model_config(100).validate().map_err(|e| anyhow!("section `model`: {e}"))?;
            check(!m.chat, "model.chat", "the built-in char tokenizer has no chat template".into())?;
        }
        for (key, v) in [("model.dtype", &m.dtype), ("model.save_dtype", &m.save_dtype)] {
            if v != "auto" {
                oxrl_lm::hf::parse_dtype(v).map_err(|e| anyhow!("key `{key}`: {e}"))?;
            }
        }
        if let Some(l) = &m.lora {
            l.validate().map_err(|e| anyhow!("section `model.lora`: {e}"))?;
        }
        Ok(())
    }
}

impl RunConfig {
    /// RL settings: invalid combinations are rejected with the key and the reason.
    fn validate_train(&self) -> Result<()> {
        let t = &self.train;
        let err = |key: &str, why: String| -> Result<()> { bail!("key `train.{key}`: {why}") };
        let est = oxrl_core::advantage::by_name(&t.advantage, &t.estimator_params())
            .map_err(|e| anyhow!("key `train.advantage`: {e}"))?;
        if est.needs_binary_rewards() && t.hierarchical_reward {
            err(
                "hierarchical_reward",
                format!("`{}` reads rewards as binary correct/incorrect; the gated reward is scalar", t.advantage),
            )?;
        }
        if t.hierarchical_reward && (t.hrm_weights.len() != 3 || t.hrm_weights.iter().any(|w| *w < 0.0)) {
            err("hrm_weights", "three non-negative weights: format, correctness, brevity".into())?;
        }
        if t.dcpo_min_spread < 0.0 || t.dcpo_full_spread <= 0.0 {
            err("dcpo_min_spread", "dcpo_min_spread must be >= 0 and dcpo_full_spread > 0".into())?;
        }
        if est.needs_binary_rewards() && t.overlong_buffer > 0 {
            err(
                "overlong_buffer",
                format!(
                    "`{}` reads rewards as binary correct/incorrect; the overlong penalty makes them scalar",
                    t.advantage
                ),
            )?;
        }
        match t.objective.as_str() {
            "ppo" => {}
            "pacs" => {
                if t.group_size < 2 {
                    err("group_size", "PACS centres the implicit reward within a group: needs group_size >= 2".into())?;
                }
                if t.overlong_buffer > 0 {
                    err("objective", "PACS fits binary outcomes; the overlong penalty makes rewards scalar".into())?;
                }
                if t.pacs_beta <= 0.0 {
                    err("pacs_beta", format!("must be > 0 (got {})", t.pacs_beta))?;
                }
            }
            "prdp" => {
                if t.group_size < 2 {
                    err(
                        "group_size",
                        "PRDP regresses reward differences of pairs in a group: needs group_size >= 2".into(),
                    )?;
                }
                if t.prdp_beta <= 0.0 || t.prdp_clip <= 0.0 {
                    err("prdp_beta", "prdp_beta and prdp_clip must be > 0".into())?;
                }
            }
            "reasonmaxxer" => {
                if t.reference == "none" {
                    err(
                        "reference",
                        "reasonmaxxer samples and gates with the base model: needs reference = \"initial\"".into(),
                    )?;
                }
                if !(t.rm_rho > 0.0 && t.rm_rho <= 1.0) || t.rm_top_k == 0 || t.rm_neg_coef < 0.0 {
                    err("rm_rho", "rm_rho must be in (0, 1], rm_top_k > 0 and rm_neg_coef >= 0".into())?;
                }
            }
            other => {
                err("objective", format!("`{other}` is not one of \"ppo\", \"pacs\", \"prdp\", \"reasonmaxxer\""))?
            }
        }
        if t.libra_tau <= 0.0 || !(0.0..=1.0).contains(&t.libra_min_scale) {
            err("libra_tau", "libra_tau must be > 0 and libra_min_scale in [0, 1]".into())?;
        }
        oxrl_core::regularizer::dph::Divergence::parse(&t.dph_divergence, t.dph_alpha)
            .map_err(|e| anyhow!("key `train.dph_divergence`: {e}"))?;
        if t.dph_coef < 0.0 || t.dph_probe_prompts == 0 || t.dph_probe_samples == 0 || t.dph_batch == 0 {
            err("dph_coef", "dph_coef must be >= 0 and dph_probe_prompts, dph_probe_samples, dph_batch > 0".into())?;
        }
        if t.verl_coef < 0.0 || t.verl_tau <= 0.0 || t.verl_stride == 0 {
            err("verl_coef", "verl_coef must be >= 0, verl_tau > 0 and verl_stride > 0".into())?;
        }
        if t.rlfr_coef < 0.0
            || t.rlfr_fit_prompts == 0
            || t.rlfr_fit_steps == 0
            || t.rlfr_lr <= 0.0
            || t.rlfr_hidden == 0
            || t.rlfr_draws == 0
        {
            err(
                "rlfr_coef",
                "rlfr_coef must be >= 0 and rlfr_fit_prompts, rlfr_fit_steps, rlfr_lr, rlfr_hidden, rlfr_draws > 0"
                    .into(),
            )?;
        }
        if t.spae_coef < 0.0
            || t.spae_sat_penalty < 0.0
            || t.spae_boundary.is_empty()
            || t.spae_probes == 0
            || t.spae_probe_tokens == 0
            || t.spae_probe_temperature < 0.0
            || t.spae_max_steps == 0
        {
            err("spae_coef", "spae_coef and spae_sat_penalty must be >= 0, spae_boundary non-empty, spae_probes, spae_probe_tokens and spae_max_steps > 0".into())?;
        }
        if t.papo_coef < 0.0
            || !(0.0..=1.0).contains(&t.papo_mask_prob)
            || t.papo_span == 0
            || t.papo_kl_clamp < 0.0
            || t.papo_aug_entropy < 0.0
            || t.papo_ori_entropy < 0.0
        {
            err("papo_coef", "papo_coef, papo_kl_clamp and the entropy weights must be >= 0, papo_mask_prob in [0, 1], papo_span > 0".into())?;
        }
        if t.depo_alpha < 0.0
            || !(0.0..1.0).contains(&t.depo_clip_low)
            || t.depo_clip_high < 0.0
            || t.depo_vmf_kl < 0.0
            || !(t.depo_dual_clip == 0.0 || t.depo_dual_clip > 1.0)
        {
            err("depo_alpha", "depo_alpha, depo_clip_high and depo_vmf_kl must be >= 0, depo_clip_low in [0, 1), depo_dual_clip 0 (off) or > 1".into())?;
        }
        if t.latent_norm_margin < 1.0 || t.latent_noise < 0.0 || !(0.0..=1.0).contains(&t.latent_noise_frac) {
            err(
                "latent_noise",
                "latent_noise must be >= 0, latent_noise_frac in [0, 1], latent_norm_margin >= 1".into(),
            )?;
        }
        if (t.latent_grpo || t.latent_select) && t.advantage != "grpo" {
            err(
                "latent_grpo",
                format!(
                    "Latent-GRPO replaces GRPO's group statistics: needs advantage = \"grpo\" (got `{}`)",
                    t.advantage
                ),
            )?;
        }
        let prefix_ok = (0.0..=1.0).contains(&t.prefix_rl) && 0.0 <= t.prefix_min && t.prefix_min <= t.prefix_max;
        if !(prefix_ok && t.prefix_max < 1.0) {
            err("prefix_rl", "prefix_rl must be in [0, 1] and 0 <= prefix_min <= prefix_max < 1".into())?;
        }
        if t.seele_rounds == 0
            || !(0.0..1.0).contains(&t.seele_target)
            || t.seele_a <= 0.0
            || !(0.0..1.0).contains(&t.seele_c)
        {
            err("seele", "seele_rounds must be > 0, seele_target and seele_c in [0, 1), seele_a > 0".into())?;
        }
        let eta_ok = 0.0 <= t.igpo_eta_low && t.igpo_eta_low <= t.igpo_eta_high && t.igpo_eta_high <= 1.0;
        if !(eta_ok && (0.0..=1.0).contains(&t.igpo_entropy_keep)) {
            err("igpo", "0 <= igpo_eta_low <= igpo_eta_high <= 1 and igpo_entropy_keep in [0, 1]".into())?;
        }
        if !matches!(t.agent_reward.as_str(), "outcome" | "dense" | "direct" | "gated" | "spa") {
            err("agent_reward", format!("`{}` is not one of outcome, dense, direct, gated, spa", t.agent_reward))?;
        }
        let rebel_ok = t.rebel_omega.is_finite()
            && t.rebel_omega >= 0.0
            && (0.0..=1.0).contains(&t.rebel_gamma)
            && t.rebel_weights.iter().all(|w| w.is_finite() && *w >= 0.0);
        if t.rebel && !rebel_ok {
            err("rebel", "rebel_omega must be >= 0, rebel_gamma in [0, 1], rebel_weights >= 0".into())?;
        }
        if (t.rebel || t.vsc_rl) && t.kl_in == "reward" {
            let key = if t.rebel { "rebel" } else { "vsc_rl" };
            err(
                key,
                "its per-turn advantages do not read the token rewards, so a KL penalty in the reward would be dropped; use kl_in = \"loss\"".into(),
            )?;
        }
        if t.rebel && t.vsc_rl {
            err("rebel", "ReBel and VSC-RL each set the advantages; pick one (train.rebel or train.vsc_rl)".into())?;
        }
        if t.vsc_rl && t.agent_reward != "outcome" {
            err(
                "vsc_rl",
                format!(
                    "VSC-RL's segment rewards replace the turn rewards (agent_reward = \"outcome\", got `{}`)",
                    t.agent_reward
                ),
            )?;
        }
        if t.rebel && t.agent_reward != "outcome" {
            err(
                "rebel",
                format!(
                    "ReBel's advantage reads the episode outcome (agent_reward = \"outcome\", got `{}`)",
                    t.agent_reward
                ),
            )?;
        }
        if !t.agent_step_reward.is_finite() || !t.agent_gate.is_finite() {
            err("agent_step_reward", "agent_step_reward and agent_gate must be finite".into())?;
        }
        if !matches!(t.rpo_opponent.as_str(), "greedy" | "peer") {
            err("rpo_opponent", format!("`{}` is not one of greedy, peer", t.rpo_opponent))?;
        }
        if !(0.0..0.5).contains(&t.ppr_coef) {
            err(
                "ppr_coef",
                format!("must be in [0, 0.5) so a correct answer always outranks a wrong one (got {})", t.ppr_coef),
            )?;
        }
        oxrl_core::shaping::visurf::Mode::parse(&t.visurf).map_err(|e| anyhow!("key `train.visurf`: {e}"))?;
        oxrl_core::regularizer::siren::Anchor::parse(&t.siren_anchor)
            .map_err(|e| anyhow!("key `train.siren_anchor`: {e}"))?;
        if t.siren_coef < 0.0
            || !(t.siren_top_p > 0.0 && t.siren_top_p <= 1.0)
            || !(t.siren_rho > 0.0 && t.siren_rho <= 1.0)
        {
            err("siren_coef", "siren_coef must be >= 0, siren_top_p and siren_rho in (0, 1]".into())?;
        }
        if t.aem_kappa < 0.0 || !(t.aem_g_min > 0.0 && t.aem_g_min <= 1.0 && t.aem_g_max >= 1.0) {
            err("aem_kappa", "aem_kappa must be >= 0 and 0 < aem_g_min <= 1 <= aem_g_max".into())?;
        }
        if !(0.0..=1.0).contains(&t.tmn_min_weight) {
            err("tmn_min_weight", format!("must be in [0, 1] (got {})", t.tmn_min_weight))?;
        }
        if !matches!(t.herl_context.as_str(), "guidance" | "original") {
            err("herl_context", format!("`{}` is not one of guidance, original", t.herl_context))?;
        }
        if t.herl_candidates == 0 || t.herl_gamma <= 0.0 || t.herl_temperature < 0.0 || !t.herl_bonus.is_finite() {
            err(
                "herl",
                "herl_candidates must be > 0, herl_gamma > 0, herl_temperature >= 0 and herl_bonus finite".into(),
            )?;
        }
        if t.herl {
            let clash = [
                ("exprl", t.exprl != "off"),
                ("igpo", t.igpo),
                ("visurf", t.visurf != "off"),
                ("prefix_rl", t.prefix_rl > 0.0),
                ("seele", t.seele),
                ("objective", t.objective != "ppo"),
                ("reward_model", t.reward_model.is_some()),
            ];
            if let Some((k, _)) = clash.iter().find(|x| x.1) {
                err(
                    "herl",
                    format!("HeRL replaces group members with hindsight revisions under its own loss: it cannot be combined with `train.{k}`"),
                )?;
            }
        }
        let band = |lo: f64, hi: f64| 0.0 <= lo && lo <= hi && hi <= 1.0;
        if !band(t.svs_select_lo, t.svs_select_hi) || !band(t.svs_accept_lo, t.svs_accept_hi) {
            err("svs", "0 <= svs_select_lo <= svs_select_hi <= 1 and 0 <= svs_accept_lo <= svs_accept_hi <= 1".into())?;
        }
        if !matches!(t.svs_synthesizer.as_str(), "policy" | "task") {
            err("svs_synthesizer", format!("`{}` is not one of policy, task", t.svs_synthesizer))?;
        }
        if !t.svs_template.contains("{solution}") {
            err("svs_template", "must contain `{solution}` (where the correct response goes)".into())?;
        }
        if t.svs {
            // The synthetic groups carry the verifier's reward against the source's answer.
            let clash = [
                ("exprl", t.exprl != "off"),
                ("reward_model", t.reward_model.is_some()),
                ("calibrl_coef", t.calibrl_coef > 0.0),
                ("rpo", t.rpo),
                ("advantage", t.advantage == "arena"),
            ];
            if let Some((k, _)) = clash.iter().find(|x| x.1) {
                err(
                    "svs",
                    format!("SvS's synthetic problems are scored by the verifier against the source answer: it cannot be combined with `train.{k}`"),
                )?;
            }
        }
        if !matches!(t.exprl.as_str(), "off" | "outcome" | "process") {
            err("exprl", format!("`{}` is not one of off, outcome, process", t.exprl))?;
        }
        if !(0.0..=1.0).contains(&t.exprl_final_weight) {
            err("exprl_final_weight", format!("must be in [0, 1] (got {})", t.exprl_final_weight))?;
        }
        if t.exprl != "off" {
            // The reference must never reach the policy, and the rubric reward is the reward.
            let clash = [
                ("prefix_rl", t.prefix_rl > 0.0),
                ("seele", t.seele),
                ("igpo", t.igpo),
                ("visurf", t.visurf != "off"),
                ("calibrl_coef", t.calibrl_coef > 0.0),
                ("rpo", t.rpo),
                ("hierarchical_reward", t.hierarchical_reward),
                ("reward_model", t.reward_model.is_some()),
                ("advantage", t.advantage == "arena"),
            ];
            if let Some((k, _)) = clash.iter().find(|x| x.1) {
                err(
                    "exprl",
                    format!("ExpRL keeps the reference hidden from the policy and its rubric score is the reward: it cannot be combined with `train.{k}`"),
                )?;
            }
        }
        if (t.advantage == "arena" || t.rpo || t.exprl != "off")
            && t.arena_judge != "task"
            && !Path::new(&t.arena_judge).join("config.json").exists()
        {
            err(
                "arena_judge",
                format!("`{}` is neither \"task\" nor a model directory with config.json", t.arena_judge),
            )?;
        }
        if t.pipo_coef < 0.0 || t.pipo_window == 0 || t.pipo_scale <= 0.0 {
            err("pipo_coef", "pipo_coef must be >= 0, pipo_window > 0 and pipo_scale > 0".into())?;
        }
        if t.calibrl_coef < 0.0 {
            err("calibrl_coef", format!("must be >= 0 (got {})", t.calibrl_coef))?;
        }
        if t.agrae_alpha <= 0.0 {
            err("agrae_alpha", format!("must be > 0 (got {})", t.agrae_alpha))?;
        }
        if t.prompts_per_step == 0 {
            err("prompts_per_step", "must be > 0".into())?;
        }
        if t.group_size == 0 {
            err("group_size", "must be > 0".into())?;
        }
        if est.needs_groups() && t.group_size < 2 {
            err("group_size", format!("`{}` compares responses within a group: needs group_size >= 2", t.advantage))?;
        }
        if !(t.value_lr_mult > 0.0 && t.value_lr_mult.is_finite()) {
            err("value_lr_mult", format!("must be positive (got {})", t.value_lr_mult))?;
        }
        if t.reward_model_user.is_some() && t.reward_model.is_none() {
            err("reward_model_user", "personalises `train.reward_model`, which is not set".into())?;
        }
        if !t.reward_model_ensemble.is_empty() && t.reward_model.is_none() {
            err("reward_model_ensemble", "needs `train.reward_model` (the first member)".into())?;
        }
        if !(t.rm_uncertainty >= 0.0 && t.rm_uncertainty.is_finite()) {
            err("rm_uncertainty", format!("must be finite and >= 0 (got {})", t.rm_uncertainty))?;
        }
        if !["head", "model"].contains(&t.critic.as_str()) {
            err("critic", format!("must be \"head\" or \"model\" (got {:?})", t.critic))?;
        }
        if t.critic == "model" && !t.value_head {
            err("critic", "a critic model needs a value head (train.value_head = true)".into())?;
        }
        if t.critic_warmup > 0 && !t.value_head {
            err("critic_warmup", "needs a value head (train.value_head = true)".into())?;
        }
        if est.needs_values() && !t.value_head {
            err("value_head", format!("`{}` needs a value head: set train.value_head = true", t.advantage))?;
        }
        if t.clip_low <= 0.0 || t.clip_low >= 1.0 {
            err("clip_low", format!("must be in (0, 1) (got {})", t.clip_low))?;
        }
        if t.clip_high <= 0.0 {
            err("clip_high", format!("must be > 0 (got {})", t.clip_high))?;
        }
        if t.dual_clip != 0.0 && t.dual_clip <= 1.0 {
            err("dual_clip", format!("the dual-clip constant c must be > 1, or 0 for off (got {})", t.dual_clip))?;
        }
        if !matches!(t.reference.as_str(), "initial" | "none") {
            err("reference", format!("`{}` is not one of \"initial\", \"none\"", t.reference))?;
        }
        if t.kl_coef < 0.0 {
            err("kl_coef", format!("must be >= 0 (got {})", t.kl_coef))?;
        }
        if (t.kl_coef > 0.0 || t.kl_target > 0.0) && t.reference == "none" {
            err("kl_coef", "a KL term needs a reference model, but train.reference = \"none\"".into())?;
        }
        if !matches!(t.kl_in.as_str(), "loss" | "reward") {
            err("kl_in", format!("`{}` is not one of \"loss\", \"reward\"", t.kl_in))?;
        }
        if t.kl_target < 0.0 || t.kl_horizon <= 0.0 {
            err("kl_target", "kl_target must be >= 0 and kl_horizon > 0".into())?;
        }
        if t.epochs == 0 || t.minibatches == 0 {
            err("epochs", "epochs and minibatches must be > 0".into())?;
        }
        if t.micro_batches == 0 {
            err("micro_batches", "must be > 0 (1 = no gradient accumulation)".into())?;
        }
        if t.minibatches > t.prompts_per_step {
            err("minibatches", format!("{} minibatches cannot split {} groups", t.minibatches, t.prompts_per_step))?;
        }
        if t.lr <= 0.0 || !t.lr.is_finite() {
            err("lr", format!("must be > 0 (got {})", t.lr))?;
        }
        if t.temperature <= 0.0 {
            err("temperature", "RL rollouts must sample: temperature must be > 0".into())?;
        }
        if t.top_p <= 0.0 || t.top_p > 1.0 {
            err("top_p", format!("must be in (0, 1] (got {})", t.top_p))?;
        }
        if !(0.0..=1.0).contains(&t.gamma) || !(0.0..=1.0).contains(&t.lambda) {
            err("gamma", "gamma and lambda must be in [0, 1]".into())?;
        }
        if t.dynamic_sampling && (t.dynamic_acc_low > t.dynamic_acc_high || t.dynamic_max_rounds == 0) {
            err("dynamic_acc_low", "needs dynamic_acc_low <= dynamic_acc_high and dynamic_max_rounds >= 1".into())?;
        }
        if t.dynamic_sampling && t.group_size < 2 {
            err("dynamic_sampling", "needs group_size >= 2 (it keeps groups with reward variance)".into())?;
        }
        if t.max_new_tokens > 0 && t.overlong_buffer >= t.max_new_tokens {
            err("overlong_buffer", format!("must be < max_new_tokens ({})", t.max_new_tokens))?;
        }
        if t.loss_agg_norm < 0.0 {
            err("loss_agg_norm", "must be >= 0".into())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str, sets: &[&str]) -> Result<RunConfig> {
        let d = tempfile::tempdir()?;
        let p = d.path().join("c.toml");
        std::fs::write(&p, text)?;
        RunConfig::load(Some(&p), &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_and_overrides() -> Result<()> {
        let c = load_str(
            "name = \"x\"\n[task]\nname = \"countdown\"\nnumbers = 4\n[sft]\nsteps = 5\n",
            &["sft.lr=0.5", "eval.k=[1,4]"],
        )?;
        assert_eq!(c.sft.steps, 5);
        assert_eq!(c.sft.lr, 0.5);
        assert_eq!(c.eval.k, vec![1, 4]);
        match &c.task {
            TaskConfig::Countdown(cd) => assert_eq!(cd.numbers, 4),
            other => panic!("{other:?}"),
        }
        // resolved config round-trips
        let again: RunConfig = toml::from_str(&c.to_toml()?)?;
        assert_eq!(again, c);
        let c = load_str("", &["task.name=arith", "task.operands=5", "name=abc"])?;
        assert_eq!(c.name, "abc");
        assert!(matches!(c.task, TaskConfig::Arith(ref a) if a.operands == 5));
        Ok(())
    }

    #[test]
    fn every_example_config_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                let c = RunConfig::load(Some(&p), &[]).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
                // (Dataset paths are relative to the repository root, where the examples run.)
                if !matches!(c.task, TaskConfig::Jsonl(_)) {
                    c.task.build(c.seed).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
                }
                n += 1;
            }
        }
        assert!(n >= 5, "{n} example configs");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let err = |text: &str, sets: &[&str]| format!("{:#}", load_str(text, sets).unwrap_err());
        let e = err("name = \"x\"\n[sft]\nstepz = 3\n", &[]);
        assert!(e.contains("c.toml") && e.contains("line 3") && e.contains("stepz"), "{e}");
        let e = err("[sft]\nlr = -1.0\n", &[]);
        assert!(e.contains("c.toml") && e.contains("sft.lr") && e.contains("must be > 0"), "{e}");
        let e = err("[task]\nname = \"nope\"\n", &[]);
        assert!(e.contains("line 2") && e.contains("nope"), "{e}");
        let e = err("[task]\nname = \"addition\"\nnumbers = 3\n", &[]);
        assert!(e.contains("numbers"), "{e}");
        let e = err("[sft]\nsteps = \"many\"\n", &[]);
        assert!(e.contains("line 2") && e.contains("steps"), "{e}");
        let e = err("", &["sft.bogus=1"]);
        assert!(e.contains("bogus") && e.contains("--set"), "{e}");
        let e = err("", &["novalue"]);
        assert!(e.contains("expected key=value"), "{e}");
        let e = err("[eval]\nk = [1, 8]\ntemperature = 0.0\n", &[]);
        assert!(e.contains("eval.temperature"), "{e}");
        let e = err("[model]\nnum_attention_heads = 3\n", &[]);
        assert!(e.contains("model") && e.contains("num_attention_heads"), "{e}");
        let e = err("name = \"a b\"\n", &[]);
        assert!(e.contains("key `name`"), "{e}");
        for (sets, key) in [
            (&["train.kl_coef=0.1", "train.reference=none"][..], "train.kl_coef"),
            (&["train.clip_low=0"][..], "train.clip_low"),
            (&["train.clip_high=-0.1"][..], "train.clip_high"),
            (&["train.dual_clip=0.5"][..], "train.dual_clip"),
            (&["train.advantage=gae"][..], "train.value_head"),
            (&["train.critic_warmup=3"][..], "train.critic_warmup"),
            (&["train.critic=model"][..], "train.critic"),
            (&["train.value_head=true", "train.critic=trunk"][..], "train.critic"),
            (&["train.reward_model_ensemble=[\"a\"]"][..], "train.reward_model_ensemble"),
            (&["train.value_lr_mult=0"][..], "train.value_lr_mult"),
            (&["train.group_size=1"][..], "train.group_size"),
            (&["train.advantage=nope"][..], "train.advantage"),
            (&["train.kl_in=both"][..], "train.kl_in"),
            (&["train.temperature=0"][..], "train.temperature"),
            // zoo techniques: binary-reward readers refuse the overlong penalty, bad knobs
            (&["train.advantage=psr", "train.overlong_buffer=8"][..], "train.overlong_buffer"),
            (&["train.advantage=a_grae", "train.overlong_buffer=8"][..], "train.overlong_buffer"),
            (&["train.objective=pacs", "train.overlong_buffer=8"][..], "train.objective"),
            (&["train.objective=pacs", "train.advantage=reinforce_pp", "train.group_size=1"][..], "train.group_size"),
            (&["train.objective=pacs", "train.pacs_beta=0"][..], "train.pacs_beta"),
            (&["train.objective=dpo"][..], "train.objective"),
            (&["train.objective=reasonmaxxer", "train.reference=none"][..], "train.reference"),
            (&["train.objective=reasonmaxxer", "train.rm_rho=0"][..], "train.rm_rho"),
            (&["train.agrae_alpha=0"][..], "train.agrae_alpha"),
            (&["train.libra_tau=0"][..], "train.libra_tau"),
            (&["train.libra_min_scale=2"][..], "train.libra_tau"),
            (&["train.calibrl_coef=-0.1"][..], "train.calibrl_coef"),
            (&["train.dph_divergence=rkl"][..], "train.dph_divergence"),
            (&["train.verl_coef=-1"][..], "train.verl_coef"),
            (&["train.aem_kappa=-1"][..], "train.aem_kappa"),
            (&["train.siren_anchor=sometimes"][..], "train.siren_anchor"),
            (&["train.visurf=sometimes"][..], "train.visurf"),
            (&["train.ppr_coef=0.5"][..], "train.ppr_coef"),
            (&["train.exprl=\"dense\""][..], "train.exprl"),
            (&["train.herl=true", "train.herl_context=\"both\""][..], "train.herl_context"),
            (&["train.herl=true", "train.herl_gamma=0"][..], "train.herl"),
            (&["train.herl=true", "train.igpo=true"][..], "train.herl"),
            (&["train.exprl_final_weight=1.5"][..], "train.exprl_final_weight"),
            (&["train.svs=true", "train.svs_select_lo=0.6"][..], "train.svs"),
            (&["train.svs=true", "train.svs_synthesizer=\"oracle\""][..], "train.svs_synthesizer"),
            (&["train.svs=true", "train.svs_template=\"Problem:\""][..], "train.svs_template"),
            (&["train.svs=true", "train.rpo=true"][..], "train.svs"),
            (&["train.exprl=\"outcome\"", "train.prefix_rl=0.5"][..], "train.exprl"),
            (&["train.exprl=\"process\"", "train.visurf=\"always\""][..], "train.exprl"),
            (&["train.exprl=\"outcome\"", "train.arena_judge=\"/nonexistent\""][..], "train.arena_judge"),
            (&["train.rpo_opponent=best"][..], "train.rpo_opponent"),
            (&["train.papo_coef=0.01", "train.papo_mask_prob=2"][..], "train.papo_coef"),
            (&["train.spae_coef=0.1", "train.spae_probes=0"][..], "train.spae_coef"),
            (&["train.rlfr_coef=0.1", "train.rlfr_draws=0"][..], "train.rlfr_coef"),
            (&["train.depo_alpha=0.5", "train.depo_clip_low=1.5"][..], "train.depo_alpha"),
            (&["train.latent_noise=-1"][..], "train.latent_noise"),
            (&["train.agent_reward=\"sometimes\""][..], "train.agent_reward"),
            (&["train.rebel=true", "train.rebel_gamma=1.5"][..], "train.rebel"),
            (&["train.rebel=true", "train.agent_reward=\"dense\""][..], "train.rebel"),
            (&["train.rebel=true", "train.vsc_rl=true"][..], "train.rebel"),
            (&["train.vsc_rl=true", "train.kl_coef=0.1", "train.kl_in=\"reward\""][..], "train.vsc_rl"),
            (&["train.rebel=true", "train.kl_coef=0.1", "train.kl_in=\"reward\""][..], "train.rebel"),
            (&["train.vsc_rl=true", "train.agent_reward=\"gated\""][..], "train.vsc_rl"),
            (&["train.prefix_rl=0.5", "train.prefix_min=0.95"][..], "train.prefix_rl"),
            (&["train.seele=true", "train.seele_rounds=0"][..], "train.seele"),
            (&["train.igpo=true", "train.igpo_eta_low=0.9"][..], "train.igpo"),
            (&["train.latent_grpo=true", "train.advantage=\"rloo\""][..], "train.latent_grpo"),
            (&["ra3.length_cost=-1"][..], "ra3.length_cost"),
            (&["ra3.candidates=0"][..], "ra3"),
            (&["dpo.beta=0"][..], "dpo.beta"),
            (&["rm.centring=-1"][..], "rm.margin"),
            (&["train.siren_coef=0.1", "train.siren_rho=0"][..], "train.siren_coef"),
            (&["train.aem_kappa=1", "train.aem_g_min=0"][..], "train.aem_kappa"),
            (&["train.pipo_coef=0.5", "train.pipo_window=0"][..], "train.pipo_coef"),
            (&["train.advantage=tmn", "train.tmn_min_weight=2"][..], "train.tmn_min_weight"),
            (&["train.advantage=arena", "train.arena_judge=/nonexistent"][..], "train.arena_judge"),
            (&["train.advantage=psr", "train.hierarchical_reward=true"][..], "train.hierarchical_reward"),
            (&["train.hierarchical_reward=true", "train.hrm_weights=[1.0]"][..], "train.hrm_weights"),
            (&["train.advantage=dcpo", "train.dcpo_full_spread=0"][..], "train.dcpo_min_spread"),
            (&["train.verl_coef=0.1", "train.verl_tau=0"][..], "train.verl_coef"),
            (&["train.dph_divergence=alpha", "train.dph_alpha=1.5"][..], "train.dph_divergence"),
            (&["train.dph_divergence=js", "train.dph_coef=-1"][..], "train.dph_coef"),
            // real models
            (&["train.micro_batches=0"][..], "train.micro_batches"),
            (&["sft.micro_batches=0"][..], "sft.micro_batches"),
            (&["model.dtype=f8"][..], "model.dtype"),
            (&["model.save_dtype=int4"][..], "model.save_dtype"),
            (&["model.chat=true"][..], "model.chat"),
            (&["model.lora.rank=0"][..], "model.lora"),
            (&["model.lora.target_modules=[\"qkv\"]"][..], "model.lora"),
            (&["model.lora.dropout=1.5"][..], "model.lora"),
        ] {
            let e = err("", sets);
            assert!(e.contains(key), "{sets:?}: {e}");
        }
        // valid combinations pass
        load_str("", &["train.advantage=gae", "train.value_head=true", "train.group_size=1"]).unwrap();
        load_str("", &["train.advantage=w_reinforce", "train.objective=pacs", "train.calibrl_coef=0.1"]).unwrap();
        // the overlong penalty stays allowed for estimators that take scalar rewards
        load_str("", &["train.advantage=grpo", "train.overlong_buffer=8"]).unwrap();
        load_str(
            "",
            &["train.advantage=reinforce_pp", "train.group_size=1", "train.kl_coef=0.05", "train.kl_in=reward"],
        )
        .unwrap();
        let e = err("this is not toml", &[]);
        assert!(e.contains("c.toml") && e.contains("line 1"), "{e}");
    }
}
