//! Regularisers added to the policy loss or the reward.

pub mod adaptive_kl;
pub mod dph;
pub mod kl;
pub mod kl_bayes;
pub mod papo;
pub mod siren;

pub use adaptive_kl::AdaptiveKl;
pub use kl::{kl_estimate, KlEstimator};
