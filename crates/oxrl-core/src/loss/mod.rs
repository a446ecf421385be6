//! Policy and value losses on `[B, R]` tensors (B responses, R response positions) with a 0/1 mask.

pub mod aggregation;
pub mod calibrl;
pub mod depo;
pub mod gui_g1;
pub mod pacs;
pub mod pipo;
pub mod ppo_clip;
pub mod prdp;
pub mod preference;
pub mod ra3;
pub mod reasonmaxxer;
pub mod value_loss;

pub use aggregation::{aggregate, AggMode};
pub use calibrl::calibrl_guided;
pub use pacs::{pacs_loss, Pacs, PacsScore};
pub use ppo_clip::{ppo_clip_loss, PpoClip, PpoMetrics};
pub use value_loss::clipped_value_loss;
