//! Process-wide CPU runtime settings, applied once at start-up before any tensor work:
//! thread count, candle's barrier-pool spinning, and the allocator's page reuse.
//!
//! - Threads: `--threads N` (or `RAYON_NUM_THREADS`) sizes both candle's pools and the rayon pool
//!   the fused kernels and GEMMs run on; the default is one per physical core, resolved once.
//! - candle's barrier pool (its elementwise ops) keeps a worker spinning for ~25 k iterations after
//!   each op; on a 2-core machine that spinner steals a core from the GEMM threads that run next.
//!   oxrl's own kernels do the heavy elementwise work, so the spin limit defaults to 0 (park at
//!   once); `CANDLE_BARRIER_POOL_SPIN_LIMIT` still overrides it.
//! - mimalloc: never return freed pages to the OS (`purge_delay = -1`) and commit arenas eagerly.
//!   Training reallocates the same activation-sized buffers every step; returning them costs a
//!   page fault plus a kernel page clear per 4 KiB on the next step (8 % of a step when measured).

/// mimalloc option ids (`mi_option_e` in mimalloc.h, v2).
const MI_OPTION_ARENA_EAGER_COMMIT: i32 = 4;
const MI_OPTION_PURGE_DELAY: i32 = 15;

/// Apply the settings; `threads` = None keeps the default (physical cores, or the environment).
/// Call before any candle or rayon work: the pools read these once.
pub fn configure(threads: Option<usize>) -> anyhow::Result<()> {
    if let Some(n) = threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    } else if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // candle works the default out from /proc/cpuinfo on every matmul unless this is set
        // (1.6 % of a decode step when measured); resolve it once.
        let n = candle_core::utils::get_num_threads();
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "0");
    }
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY as _, -1);
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT as _, 1);
    }
    Ok(())
}
