//! candle works out its thread count on every matmul (`candle_core::utils::get_num_threads`):
//! unless `RAYON_NUM_THREADS` is set it parses /proc/cpuinfo each time. On the small matrices of
//! control networks and test-sized models that parse dominates — a SAC run on `reach` took 38 s
//! in a test binary (20 s of it in the kernel) against 13 s with the variable set. The model
//! constructors call [`resolve_once`], so library users and test binaries get the same one-time
//! resolution the `oxrl` binary's start-up does; the value is candle's own default (the physical
//! core count), and an existing setting is never changed.

/// Set `RAYON_NUM_THREADS` to candle's default thread count, once per process, when unset.
pub fn resolve_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            let n = candle_core::utils::get_num_threads();
            // Rust's own environment accesses are serialised by std; candle reads it through std.
            std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        }
    });
}
