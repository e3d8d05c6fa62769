//! libjpeg's memory functions, replaced by `jpeg_memory.c` (why: that file's comment): large pools
//! of 2 MiB or more in mappings of their own, marked for transparent huge pages.

extern "C" {
    fn imaging_jpeg_huge_page_pools() -> usize;
    fn imaging_jpeg_pool_footprint(size: usize) -> usize;
}

/// A static archive member is linked only for a symbol still undefined, and nothing but libjpeg
/// names `jpeg_get_large`: were `jpeg_memory.o` left out, libjpeg-turbo's own `jmemnobs.o` would
/// quietly take its place. rustc keeps `#[used]` statics of every crate it links, so this reference
/// pulls `jpeg_memory.o` into every binary that links this crate, ahead of `libturbojpeg.a`.
#[used]
static LINKS_JPEG_MEMORY: unsafe extern "C" fn() -> usize = imaging_jpeg_huge_page_pools;

/// How many large pools libjpeg has been given in huge-page mappings since the process began.
pub fn huge_page_pools() -> usize {
    // SAFETY: reads an atomic counter; no arguments, no state.
    unsafe { imaging_jpeg_huge_page_pools() }
}

/// The bytes a libjpeg pool of `bytes` takes: whole huge pages from 2 MiB on. libjpeg asks for a
/// few bytes more than the pool holds (its header and alignment), counted here too.
pub fn pool_footprint(bytes: u64) -> u64 {
    /// `sizeof(large_pool_hdr) + ALIGN_SIZE - 1` in `jmemmgr.c`, rounded up.
    const LIBJPEG_POOL_OVERHEAD: u64 = 64;
    let request =
        usize::try_from(bytes.saturating_add(LIBJPEG_POOL_OVERHEAD)).unwrap_or(usize::MAX);
    // SAFETY: arithmetic on its argument only.
    unsafe { imaging_jpeg_pool_footprint(request) as u64 }
}
