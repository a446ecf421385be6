//! oxrl-core: RL math on plain data and tensors.
//!
//! Advantage estimators ([`advantage`]), policy and value losses with aggregation modes ([`loss`]),
//! KL regularisers ([`regularizer`]), reward shaping and batch filters ([`shaping`]), optimisers and
//! schedules ([`optim`]), evaluation metrics ([`metrics`]) and seeded randomness ([`seed`]). No
//! model, no file I/O, and no randomness that does not come from a seed.

pub mod advantage;
pub mod diagnostics;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod registry;
pub mod regularizer;
pub mod seed;
pub mod shaping;
pub mod vi;
pub mod vpl;
