//! oxrl-core: RL math on plain data and tensors.
//!
//! Advantage estimators ([`advantage`]), policy and value losses with aggregation modes ([`loss`]),
//! KL regularisers ([`regularizer`]), reward shaping and batch filters ([`shaping`]), optimisers and
//! schedules ([`optim`]), evaluation metrics ([`metrics`]), seeded randomness ([`seed`]) and atomic
//! file writes ([`fsutil`]). No model, and no randomness that does not come from a seed.

pub mod advantage;
pub mod diagnostics;
pub mod fsutil;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod overrides;
pub mod registry;
pub mod regularizer;
pub mod seed;
pub mod shaping;
pub mod threads;
pub mod vi;
pub mod vpl;
