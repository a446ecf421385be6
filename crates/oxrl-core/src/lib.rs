//! oxrl-core: RL math on plain data and tensors.
//!
//! Optimizers and schedules ([`optim`]), evaluation metrics ([`metrics`]) and seeded randomness
//! ([`seed`]). No model, no file I/O, and no randomness that does not come from a seed.

pub mod metrics;
pub mod optim;
pub mod seed;
