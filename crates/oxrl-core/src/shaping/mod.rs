//! Reward shaping and batch filtering around the verifier rewards.

pub mod dynamic_sampling;
pub mod hierarchical;
pub mod overlong;
pub mod ppr;
pub mod rlfr;
pub mod rpo;
pub mod visurf;

pub use dynamic_sampling::{group_is_informative, DynamicFilter};
pub use overlong::overlong_penalty;
