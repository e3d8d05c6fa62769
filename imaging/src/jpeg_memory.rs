//! libjpeg's memory functions, replaced by `jpeg_memory.c` (why: that file's comment): large pools
//! of 2 MiB or more in mappings of their own, marked for transparent huge pages.

extern "C" {
    fn imaging_jpeg_huge_page_pools() -> usize;
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
