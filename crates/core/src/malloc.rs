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
//!
//! [`one_arena`] (sixth session), for training: glibc gives each thread that allocates its own
//! arena, and a thread arena grows in heaps of at most 64 MiB, so a larger block freed by a rayon
//! worker (the CNN's 128 px activations and their gradients) was still `mmap`ed and unmapped each
//! time whatever the threshold: `perf` put 28% of a training step in page faults. With every
//! thread on the main arena (which grows with `brk`, without that limit) the step took a third
//! less time and peak memory fell by 15% (`benches/train_step.rs`, docs/BENCHMARKS.md). Not made
//! for inference: the ViT's blocks are smaller, and there the shared arena was 4% slower.

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

/// Puts every thread's allocations on glibc's main arena, so that blocks above 64 MiB freed by
/// worker threads are kept too (see the module's notes). Call it before the threads start.
/// Returns whether the setting was made (false on other C libraries).
pub fn one_arena() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: as in keep_freed_memory; M_ARENA_MAX only caps the arenas made from now on.
        #[allow(unsafe_code)]
        let done = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) == 1 };
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
        assert!(super::one_arena());
    }
}
