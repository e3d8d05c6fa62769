//! The engine's allocator is mimalloc (`main.rs`). By default mimalloc keeps freed memory of its
//! arenas for 100 ms before it returns it to the OS, so that it can hand it out again. For the small
//! allocations of requests and stream records that is what makes it fast; for the tens of MB an
//! image is decoded into, it means a freed image still counts in the process's RSS while the next
//! image is decoded into fresh pages on another thread. With the whole hostile corpus in flight that
//! put the engine's peak RSS 10% over the process function's memory, which the image budget promises
//! to stay within (`tests/pipeline/memory.rs`). Purging at once keeps that promise. It costs nothing
//! measurable on tiny images in `bench-tools load`; a photo's large buffers are not the allocator's to
//! purge, as the process step keeps them for the next image (`imaging::keep_at_most`).

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (`include/mimalloc.h`): the bindings do not
/// name it. The test below checks that setting it has the effect described above.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc return memory to the OS as soon as it is freed. Call before any other thread runs.
pub fn return_freed_memory_at_once() {
    // SAFETY: mimalloc's options are plain integers; this runs before the runtime starts its threads.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

/// Turns transparent huge pages off for this process (`PR_SET_THP_DISABLE`), whatever the
/// machine's setting; mimalloc is built not to mark its arenas for them (its `no_thp` feature),
/// which also covers what it allocates before `main`. With them, and freed memory purged at once,
/// every reuse faulted a 2 MiB page in again, zeroed whole: on a batch of 4 MP photos 15% more CPU
/// (all of it in the kernel) and 45 MB of peak RSS against 25 MB, for no gain in the image code,
/// which keeps its large buffers between images anyway (`imaging::keep_at_most`; figures in
/// docs/benchmarks.md, "Huge pages"). Where huge pages are off already this changes nothing.
pub fn without_huge_pages() {
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(error = %e, "transparent huge pages left as the machine has them");
    }
}

#[cfg(test)]
mod tests {
    /// Resident bytes of this process (`VmRSS` in `/proc/self/status`, in kB whatever the page size).
    fn resident_bytes() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb * 1024
    }

    #[test]
    fn a_freed_image_leaves_the_resident_set_at_once() {
        const IMAGE: usize = 256 << 20;
        super::return_freed_memory_at_once();
        // SAFETY: a plain allocation of IMAGE bytes, written, then freed once.
        let (held, after) = unsafe {
            let p = libmimalloc_sys::mi_malloc(IMAGE).cast::<u8>();
            assert!(!p.is_null());
            std::ptr::write_bytes(p, 1, IMAGE);
            let held = resident_bytes();
            libmimalloc_sys::mi_free(p.cast());
            (held, resident_bytes())
        };
        assert!(
            held - after.min(held) >= (IMAGE as u64) * 3 / 4,
            "RSS went from {} MB to {} MB when a {} MB block was freed",
            held >> 20,
            after >> 20,
            IMAGE >> 20
        );
    }
}
