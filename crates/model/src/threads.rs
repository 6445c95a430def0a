//! CPU thread-count setup for candle.

/// Pins candle's CPU threading for the process. Call it at the start of
/// `main`, before any thread is spawned (it writes the process environment).
///
/// - `RAYON_NUM_THREADS` (when the user has not set it) becomes the number of
///   physical cores, candle's own default. Without it candle re-derives that
///   default on every matmul by parsing `/proc/cpuinfo`, about a tenth of
///   greedy-decoding time at the t5-small shape. The matrix products (gemm)
///   and this crate's fused kernels ([`crate::ops`]) share rayon's global
///   pool of that size.
/// - `CANDLE_NUM_THREADS` (when unset) becomes 1. candle sizes a second pool
///   from it, for its element-wise kernels, whose caller and workers
///   busy-wait (unbounded for the caller, about a millisecond for a worker)
///   instead of sleeping. Next to the rayon pool that oversubscribes the
///   cores: a finished element-wise op keeps a core spinning while the next
///   matmul wants it, and the caller spins whenever its worker is not
///   scheduled. With the second pool off, a training step at two threads
///   took 27% less wall time and 28% less CPU (`crates/train/benches/
///   train_step.rs`, loaded machine); the large element-wise work of the
///   step runs in the fused kernels on the rayon pool instead.
pub fn pin_cpu_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var(
            "RAYON_NUM_THREADS",
            num_cpus::get_physical().max(1).to_string(),
        );
    }
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}
