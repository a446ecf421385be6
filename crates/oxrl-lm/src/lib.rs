//! oxrl-lm: language-model policies.
//!
//! - [`tokenizer`]: one trait over a built-in character tokenizer and Hugging Face `tokenizer.json`.
//! - [`config`] / [`model`]: a decoder-only transformer (RMSNorm, rotary embeddings, SwiGLU, GQA) with
//!   Qwen2/Llama tensor names, every training op differentiable.
//! - [`params`] / [`checkpoint`]: seeded initialisation and atomic safetensors checkpoints.
//! - [`sampler`]: batched KV-cache generation (decode steps on [`decode`]'s packed weights);
//!   [`scorer`]: teacher-forced log-probs and entropies.

pub mod chat;
pub mod checkpoint;
pub mod config;
pub mod conversation;
pub mod decode;
pub use oxrl_core::fsutil;
pub mod guidance;
pub mod hf;
pub mod kernels;
pub mod latent;
pub mod lora;
pub mod model;
pub mod params;
pub mod prompt;
pub mod sampler;
pub mod scorer;
pub mod tokenizer;
pub mod value_head;

pub use config::ModelConfig;
pub use model::{KvCache, Transformer};
pub use params::ParamStore;
pub use tokenizer::{CharTokenizer, HfTokenizer, Tokenizer};

/// The compute device: CUDA when built with `--features cuda` and a GPU is present, else CPU.
pub fn default_device() -> candle_core::Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = candle_core::Device::new_cuda(0) {
        return d;
    }
    candle_core::Device::Cpu
}
