//! oxrl-control: reinforcement learning for control policies — environments written in Rust with
//! Gymnasium's dynamics and step semantics ([`env`]), vectorised with auto-reset; replay
//! ([`buffer`]); small networks ([`nn`]) and action distributions ([`dist`]); the baselines PPO,
//! DQN (double-Q) and SAC ([`algo`]); the building blocks the control-latent techniques share
//! ([`blocks`]); and the trainer behind `oxrl control train` / `eval` ([`train`]) with the same run
//! folder, metrics, checkpoint and resume conventions as the language-model side.

pub mod algo;
pub mod blocks;
pub mod buffer;
pub mod config;
pub mod dataset;
pub mod dist;
pub mod env;
pub mod found_rl;
pub mod gae;
pub mod gc;
#[cfg(feature = "hdf5")]
pub mod hdf5;
pub mod lare;
pub mod nn;
pub mod pref;
pub mod rc_aux;
pub mod repr;
pub mod rlir;
pub mod train;
pub mod zeroshot;
pub mod zprl;

pub use config::ControlConfig;
