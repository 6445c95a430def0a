//! Allocator tuning for the training loop (and `eval --model`, a batch job
//! whose decoding re-allocates the same buffers batch after batch).
//!
//! The `text2sql` binary's global allocator is mimalloc. A training step
//! frees and re-allocates gigabytes of activation and gradient tensors, and
//! by default mimalloc returns freed memory to the kernel about a second
//! later; every step then faults it back in and the kernel zeroes it: 41% of
//! the step's CPU time at the t5-small shape (perf, `clear_page_erms`).
//! Keeping freed memory makes the step's peak the process's resident size,
//! which it reaches anyway.

// mimalloc's `mi_option_t` (include/mimalloc.h of the v3 sources that
// libmimalloc-sys 0.1.49 builds): the index of `mi_option_purge_delay`.
// libmimalloc-sys declares `mi_option_set` only behind its `extended`
// feature, which would pull in one more crate for a single call.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
}

/// Tells mimalloc never to return freed memory to the operating system (its
/// `purge_delay = -1`), for the rest of the process. Returns whether the
/// option took. Harmless when mimalloc is linked but is not the global
/// allocator: the setting then applies to an allocator nobody uses.
pub fn keep_freed_memory() -> bool {
    // Forces the mimalloc crate (and the C library it builds) to be linked.
    let _allocator = mimalloc::MiMalloc;
    // SAFETY: both functions only read or write mimalloc's option table,
    // which is thread-safe and initialised at process start.
    unsafe {
        mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        mi_option_get(MI_OPTION_PURGE_DELAY) == -1
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_option_is_mimallocs() {
        assert!(super::keep_freed_memory());
    }
}
