//! One process-wide setting of the C allocator, made by the binaries (the CLI and the benchmarks'
//! workers) at start; libraries never make it.
//!
//! burn's `flex` backend allocates a fresh buffer for almost every tensor a layer makes, many of
//! them several MiB. With glibc's defaults, blocks above a dynamic threshold (128 KiB to 32 MiB)
//! are `mmap`ed and handed back to the kernel on free, and the heap top is trimmed above 128 KiB,
//! so each layer page-faults and zeroes memory it had a moment ago. Measured on the ViT-B/16
//! benchmark (`crates/hf/benches/vit_vs_transformers.rs`) and the training step
//! (`benches/train_step.rs`), keeping freed memory for reuse made them 16% and 11% faster, for about
//! 14% more peak memory (docs/BENCHMARKS.md), and a single image's cold start is the same either way.
//! mimalloc, tried as a drop-in, gave nothing: it also returns large blocks to the kernel at once.

/// Tells glibc malloc to keep freed memory for reuse: blocks up to 256 MiB come from the heap
/// instead of their own mappings, and the heap is trimmed only above 1 GiB free. Returns whether
/// the setting was made (false on other C libraries, where nothing is changed).
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD: libc::c_int = 256 << 20;
        const TRIM_THRESHOLD: libc::c_int = 1 << 30;
        // SAFETY: mallopt only changes glibc's tuning parameters; it is thread-safe (it takes the
        // arena locks) and any value is accepted or refused with a return of 0.
        #[allow(unsafe_code)]
        let done = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        };
        done
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_setting() {
        assert!(super::keep_freed_memory());
    }
}
