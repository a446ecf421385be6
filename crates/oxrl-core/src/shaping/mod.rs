//! Reward shaping and batch filtering around the verifier rewards.

pub mod clg;
pub mod dynamic_sampling;
pub mod exprl;
pub mod gated_reward;
pub mod herl;
pub mod hierarchical;
pub mod igpo;
pub mod overlong;
pub mod ppr;
pub mod rebel;
pub mod rlfr;
pub mod rlir;
pub mod rpo;
pub mod seele;
pub mod spa_rl;
pub mod svs;
pub mod turn_rewards;
pub mod visurf;
pub mod vsc_rl;

pub use dynamic_sampling::{group_is_informative, DynamicFilter};
pub use overlong::overlong_penalty;
