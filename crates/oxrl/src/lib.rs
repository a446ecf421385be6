//! oxrl: the command-line pipeline — typed configs, run folders, SFT, evaluation and benchmarks.

pub mod agent;
pub mod bench;
pub mod config;
pub mod data;
pub mod diagnose;
pub mod dpo;
pub mod eval;
pub mod flow;
pub mod generate;
pub mod interference;
pub mod judge;
pub mod latent_rl;
pub mod memcheck;
pub mod plots;
pub mod policy;
pub mod ra3;
pub mod rehearsal;
pub mod reward_model;
pub mod rl_step;
pub mod run;
pub mod runtime;
pub mod sft;
pub mod spae_probe;
pub mod sweep;
pub mod tensorboard;
pub mod train;
