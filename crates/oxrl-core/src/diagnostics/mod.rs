//! Diagnostics computed on models or updates rather than used in training.

pub mod effective_rank;
pub mod path_not_taken;
