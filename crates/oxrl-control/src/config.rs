//! `oxrl control train` configs: one TOML file with the run's name and seed, the environment, the
//! algorithm and its section (`[ppo]`, `[dqn]`, `[sac]`; defaults are CleanRL's), and the training
//! budget. Unknown keys are errors that name the key; `--set key=value` overrides any key.

use crate::algo::{dqn::DqnConfig, gcivl::GcConfig, iql::IqlConfig, ppo::PpoConfig, sac::SacConfig, spr::SprConfig};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// `ppo`, `dqn`, `sac` (online) or `iql` (offline, from `iql.dataset`; steps are gradient steps), or goal-conditioned offline
    /// `gcbc`, `gcivl`, `saw` (from `gc.dataset`).
    pub algo: String,
    pub env: EnvSection,
    #[serde(default)]
    pub train: TrainSection,
    #[serde(default)]
    pub ppo: PpoConfig,
    #[serde(default)]
    pub dqn: DqnConfig,
    #[serde(default)]
    pub sac: SacConfig,
    #[serde(default)]
    pub iql: IqlConfig,
    #[serde(default)]
    pub gc: GcConfig,
    #[serde(default)]
    pub spr: SprConfig,
    #[serde(default)]
    pub grpo: crate::algo::grpo::GrpoConfig,
    /// Dreamer's actor-critic in the imagination of RePo's / InfoPower's world model.
    #[serde(default)]
    pub dreamer: crate::algo::dreamer::DreamerConfig,
    #[serde(default)]
    pub zeroshot: crate::zeroshot::ZeroShotConfig,
    #[serde(default)]
    pub morl: crate::zeroshot::morl_fb::MorlFbConfig,
    #[serde(default)]
    pub rcaux: crate::rc_aux::RcAuxConfig,
    /// Representation pre-training (pixel gridworld): `objective = "none"` trains on pixels.
    #[serde(default)]
    pub repr: crate::repr::ReprConfig,
    /// ZPRL policy steering: `mode = "latent"` (or the `"residual"` baseline) pre-trains a base
    /// policy on demonstrations and the learner acts by steering it.
    #[serde(default)]
    pub zprl: crate::zprl::ZprlConfig,
    /// LaRe's decoder schedule (with `env.reward = "lare"`).
    #[serde(default)]
    pub lare: crate::lare::LareConfig,
}

fn default_name() -> String {
    "control".into()
}
fn default_seed() -> u64 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvSection {
    /// A built-in environment: cartpole, pendulum, mountain-car, mountain-car-continuous, acrobot.
    pub name: String,
    #[serde(default = "one")]
    pub num_envs: usize,
    /// How the reward reaches the learner: "dense" (every step), "episodic" (only the episode's
    /// return, on its last step) or "lare" (episodic, redistributed by LaRe's latent reward;
    /// see `[lare]`). Evaluation always reports the environment's true return.
    #[serde(default = "dense")]
    pub reward: String,
}

fn dense() -> String {
    "dense".into()
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Environment steps (summed over the vector of environments).
    pub total_steps: u64,
    /// Evaluate the deterministic policy every this many environment steps (0 = only at the end).
    pub eval_every: u64,
    pub eval_episodes: usize,
    /// Full-state checkpoint every this many environment steps (0 = only the final one).
    pub checkpoint_every: u64,
    /// Episodes averaged in the logged `episode_return` (a moving window).
    pub return_window: usize,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self { total_steps: 100_000, eval_every: 0, eval_episodes: 10, checkpoint_every: 0, return_window: 100 }
    }
}

pub const ALGOS: &[&str] = &[
    "ppo", "dqn", "sac", "iql", "gcbc", "gcivl", "saw", "spr", "recoil", "grpo", "td-jepa", "fb", "morl-fb", "rc-aux",
    "dreamer",
];

impl ControlConfig {
    pub fn load(path: &Path, sets: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
        Self::load_str(&path.display().to_string(), &text, sets)
    }

    pub fn load_str(origin: &str, text: &str, sets: &[String]) -> Result<Self> {
        let cfg: ControlConfig = oxrl_core::overrides::parse_with_overrides(origin, text, sets)?;
        cfg.validate().map_err(|e| anyhow!("{origin}: {e}"))?;
        Ok(cfg)
    }

    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }

    pub fn validate(&self) -> Result<()> {
        if !ALGOS.contains(&self.algo.as_str()) {
            bail!("algo: unknown algorithm {:?} (one of {})", self.algo, ALGOS.join(", "));
        }
        crate::env::make(&self.env.name, 0).map_err(|e| anyhow!("env.name: {e}"))?;
        if self.env.num_envs == 0 {
            bail!("env.num_envs: must be at least 1");
        }
        if !matches!(self.env.reward.as_str(), "dense" | "episodic" | "lare") {
            bail!("env.reward: {:?} is not one of dense, episodic, lare", self.env.reward);
        }
        self.lare.validate()?;
        if self.env.reward == "lare" && crate::lare::builtin_candidates(&self.env.name).is_none() {
            bail!(
                "env.reward: LaRe has no latent factor functions for {:?} (built in: reach, pendulum)",
                self.env.name
            );
        }
        if self.env.reward != "dense" && (self.repr.enabled() || self.zprl.enabled()) {
            bail!("env.reward: a delayed reward cannot be combined with [repr] or [zprl] pre-training");
        }
        if self.train.total_steps == 0 {
            bail!("train.total_steps: must be positive");
        }
        if self.train.eval_episodes == 0 || self.train.return_window == 0 {
            bail!("train.eval_episodes and train.return_window must be positive");
        }
        if self.repr.enabled() {
            self.repr.validate()?;
            crate::repr::pixel_noise(&self.env.name).map_err(|e| anyhow!("env.name: {e}"))?;
            if !matches!(self.algo.as_str(), "dqn" | "ppo" | "dreamer") {
                bail!(
                    "repr.objective: a pre-trained encoder feeds an online learner (dqn, ppo or dreamer), not {:?}",
                    self.algo
                );
            }
            if self.algo == "dreamer" && self.dreamer.train_encoder && self.repr.objective != "repo" {
                bail!(
                    "dreamer.train_encoder: the encoder trains online with RePo's model loss; set repr.objective = \"repo\" (not {:?})",
                    self.repr.objective
                );
            }
            if self.algo == "dreamer" && !matches!(self.repr.objective.as_str(), "repo" | "infopower") {
                bail!(
                    "repr.objective: algo = \"dreamer\" imagines in a latent world model: use repo or infopower, not {:?}",
                    self.repr.objective
                );
            }
        } else {
            if self.algo == "dreamer" {
                bail!("algo: \"dreamer\" needs a pre-trained world model: set repr.objective = \"repo\" or \"infopower\" on a pixelgrid-* environment");
            }
            self.repr.validate()?;
        }
        self.zprl.validate()?;
        if self.zprl.enabled() {
            if self.repr.enabled() {
                bail!("zprl.mode: policy steering and a pre-trained [repr] encoder cannot be combined");
            }
            if !matches!(self.algo.as_str(), "sac" | "ppo") {
                bail!("zprl.mode: the steering action is continuous: use algo sac or ppo, not {:?}", self.algo);
            }
            if self.env.name != "reach" {
                bail!(
                    "zprl.mode: the scripted demonstrator is built in for env.name \"reach\" only, not {:?}",
                    self.env.name
                );
            }
        }
        if self.algo == "sac" && self.sac.semantic_reward == "clg" && self.env.name != "drive" {
            bail!(
                "sac.semantic_reward: the CLG reward reads the \"drive\" environment's camera strip and vehicle state, not {:?}",
                self.env.name
            );
        }
        match self.algo.as_str() {
            "ppo" => self.ppo.validate(),
            "dqn" => self.dqn.validate(),
            "iql" => self.iql.validate(),
            "recoil" => {
                if self.iql.recoil.expert_dataset.is_empty() {
                    bail!("iql.recoil.expert_dataset: ReCOIL needs the expert demonstrations (.npz)");
                }
                self.iql.validate()
            }
            "gcbc" | "gcivl" | "saw" => self.gc.validate(),
            "spr" => Ok(()),
            "grpo" => self.grpo.validate(),
            "dreamer" => self.dreamer.validate(),
            "td-jepa" | "fb" => self.zeroshot.validate(),
            "morl-fb" => self.morl.validate(),
            "rc-aux" => self.rcaux.validate(),
            _ => self.sac.validate(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_overrides_and_errors_name_the_key() {
        let c =
            ControlConfig::load_str("t", "algo = \"ppo\"\n[env]\nname = \"cartpole\"\nnum_envs = 4\n", &[]).unwrap();
        assert_eq!(c.ppo, PpoConfig::default());
        assert_eq!(c.seed, 1);
        let c = ControlConfig::load_str(
            "t",
            "algo = \"dqn\"\n[env]\nname = \"cartpole\"\n",
            &["dqn.double_q=true".into(), "seed=7".into()],
        )
        .unwrap();
        assert!(c.dqn.double_q);
        assert_eq!(c.seed, 7);
        let e =
            ControlConfig::load_str("f.toml", "algo = \"ppo\"\n[env]\nname = \"cartpole\"\n[ppo]\nclip = 0.1\n", &[])
                .unwrap_err()
                .to_string();
        assert!(e.contains("f.toml") && e.contains("clip") && e.contains("line 5"), "{e}");
        let e = ControlConfig::load_str("f.toml", "algo = \"a2c\"\n[env]\nname = \"cartpole\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("algo") && e.contains("a2c"), "{e}");
        let e =
            ControlConfig::load_str("f.toml", "algo = \"sac\"\n[env]\nname = \"pong\"\n", &[]).unwrap_err().to_string();
        assert!(e.contains("env.name") && e.contains("pong"), "{e}");
        // round trip through the resolved TOML
        let c = ControlConfig::load_str("t", "algo = \"sac\"\n[env]\nname = \"pendulum\"\n", &[]).unwrap();
        assert_eq!(ControlConfig::load_str("again", &c.to_toml().unwrap(), &[]).unwrap(), c);
    }

    #[test]
    fn every_control_example_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/control");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                ControlConfig::load(&p, &[]).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
                n += 1;
            }
        }
        assert!(n >= 3, "{n} control examples");
    }
}
