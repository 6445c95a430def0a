//! CPU thread-count setup for candle.

/// Pins candle's CPU thread count for the process by setting
/// `RAYON_NUM_THREADS` (when the user has not) to the number of physical
/// cores, candle's own default. Without it candle re-derives that default on
/// every matmul by parsing `/proc/cpuinfo`, about a tenth of greedy-decoding
/// time at the t5-small shape. Call it at the start of `main`, before any
/// thread is spawned (it writes the process environment).
pub fn pin_cpu_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var(
            "RAYON_NUM_THREADS",
            num_cpus::get_physical().max(1).to_string(),
        );
    }
}
