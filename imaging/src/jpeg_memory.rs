//! libjpeg's memory functions, replaced by `jpeg_memory.c` (why: that file's comment): its large
//! pools come from the buffers kept between images ([`crate::keep_at_most`]) and go back to them.

use std::sync::Once;

type Take = unsafe extern "C" fn(usize, *mut usize, *mut usize) -> *mut u8;
type GiveBack = unsafe extern "C" fn(*mut u8, usize, usize);

extern "C" {
    fn imaging_jpeg_install(take: Take, give_back: GiveBack);
    fn imaging_jpeg_kept_pools() -> usize;
    fn imaging_jpeg_pool_footprint(size: usize) -> usize;
}

/// A static archive member is linked only for a symbol still undefined, and nothing but libjpeg
/// names `jpeg_get_large`: were `jpeg_memory.o` left out, libjpeg-turbo's own `jmemnobs.o` would
/// quietly take its place. rustc keeps `#[used]` statics of every crate it links, so this reference
/// pulls `jpeg_memory.o` into every binary that links this crate, ahead of `libturbojpeg.a`.
#[used]
static LINKS_JPEG_MEMORY: unsafe extern "C" fn() -> usize = imaging_jpeg_kept_pools;

/// Points libjpeg's large pools at the kept buffers; once per process, before the first
/// decompressor or compressor is made (a pool taken from malloc before goes back to free).
pub(crate) fn install() {
    static INSTALLED: Once = Once::new();
    // SAFETY: two function pointers with the signatures jpeg_memory.c declares.
    INSTALLED.call_once(|| unsafe { imaging_jpeg_install(take, give_back) });
}

/// A kept buffer (or a new one) of at least `size` bytes, handed to C as its raw parts; null when
/// the memory cannot be had, which libjpeg reports as an error.
unsafe extern "C" fn take(size: usize, length: *mut usize, capacity: *mut usize) -> *mut u8 {
    let Some(buf) = crate::pixels::try_buffer(size) else {
        return std::ptr::null_mut();
    };
    let mut buf = std::mem::ManuallyDrop::new(buf);
    // SAFETY: jpeg_memory.c passes pointers to two locals of its own.
    unsafe {
        *length = buf.len();
        *capacity = buf.capacity();
    }
    buf.as_mut_ptr()
}

/// A buffer from [`take`] back, to be kept.
unsafe extern "C" fn give_back(buffer: *mut u8, length: usize, capacity: usize) {
    // SAFETY: the raw parts of a Vec<u8> that `take` gave out, returned once (libjpeg frees each
    // pool once), unchanged; libjpeg wrote bytes into it, which leaves them initialised.
    let buf = unsafe { Vec::from_raw_parts(buffer, length, capacity) };
    crate::pixels::keep(buf);
}

/// How many of libjpeg's large pools have come from the kept buffers since the process began.
pub fn kept_pools() -> usize {
    // SAFETY: reads an atomic counter; no arguments, no state.
    unsafe { imaging_jpeg_kept_pools() }
}

/// The bytes a libjpeg pool of `bytes` takes. libjpeg asks for a few bytes more than the pool
/// holds (its header and alignment), and `jpeg_memory.c` a few more (where the buffer came from):
/// both counted here.
pub fn pool_footprint(bytes: u64) -> u64 {
    /// `sizeof(large_pool_hdr) + ALIGN_SIZE - 1` in `jmemmgr.c`, rounded up.
    const LIBJPEG_POOL_OVERHEAD: u64 = 64;
    let request =
        usize::try_from(bytes.saturating_add(LIBJPEG_POOL_OVERHEAD)).unwrap_or(usize::MAX);
    // SAFETY: arithmetic on its argument only.
    unsafe { imaging_jpeg_pool_footprint(request) as u64 }
}
