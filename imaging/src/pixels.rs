//! Decoded pixels, and the memory they live in: large buffers are kept from one image to the next
//! rather than given back to the allocator.
//!
//! Why: every image of a batch needs the same buffers (the decoded image, each rendition and its
//! turned copy, the encoders' output, libjpeg's large pools through [`crate::jpeg_memory`]). Given
//! back, the allocator returns them to the kernel (mimalloc in the engine purges freed memory at
//! once; glibc unmaps blocks over its mmap threshold), and the next image faults the same amount in
//! again, a page at a time, each page zeroed by the kernel: that was a quarter of the process
//! step's CPU on a batch of 4 MP photos. Kept, they are faulted in once per process.
//!
//! What is kept is bounded ([`keep_at_most`], from the function's
//! [`MemoryPlan`](crate::MemoryPlan), which leaves it out of the pool that images draw their
//! estimates from). A request takes the smallest kept buffer that fits; what that buffer holds
//! beyond the request stays counted as kept until it comes back, so an image holds no more than
//! its estimate on top of what is kept.

use std::sync::{Mutex, MutexGuard};

/// Decoded pixels, 8 bits per channel, rows packed: 1 (gray), 3 (RGB) or 4 (RGBA) channels.
/// Dropped, its buffer is kept for the next image that needs one of its size.
#[derive(Debug)]
pub struct Pixels {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub buf: Vec<u8>,
}

impl Clone for Pixels {
    fn clone(&self) -> Self {
        let mut buf = buffer(self.buf.len());
        buf.copy_from_slice(&self.buf);
        Pixels {
            width: self.width,
            height: self.height,
            channels: self.channels,
            buf,
        }
    }
}

impl Drop for Pixels {
    fn drop(&mut self) {
        keep(std::mem::take(&mut self.buf));
    }
}

/// Buffers smaller than this are left to the allocator, which keeps small blocks itself.
pub(crate) const SMALLEST_KEPT: usize = 64 << 10;

/// `len` bytes, from a kept buffer when one fits, else newly allocated. The contents are
/// unspecified (zero where new): every caller writes the whole buffer.
pub(crate) fn buffer(len: usize) -> Vec<u8> {
    try_buffer(len).unwrap_or_else(|| vec![0; len])
}

/// [`buffer`], or `None` where the memory cannot be had (for libjpeg, which reports that as an
/// error of the image rather than an abort of the process).
pub(crate) fn try_buffer(len: usize) -> Option<Vec<u8>> {
    if len >= SMALLEST_KEPT {
        if let Some(mut buf) = kept().take(len) {
            // Within the capacity: a truncation, or zeroes over pages already faulted in.
            buf.resize(len, 0);
            return Some(buf);
        }
    }
    if len == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<u8>(len).ok()?;
    // SAFETY: a layout of `len` > 0 bytes; a null pointer is the failure handled here.
    let at = unsafe { std::alloc::alloc_zeroed(layout) };
    // SAFETY: `at` comes from the global allocator with the layout of a Vec<u8> of `len` elements,
    // all initialised (to zero), which the Vec now owns.
    (!at.is_null()).then(|| unsafe { Vec::from_raw_parts(at, len, len) })
}

/// An empty buffer of at least `capacity`, from a kept one when one fits.
pub(crate) fn empty_buffer(capacity: usize) -> Vec<u8> {
    if capacity >= SMALLEST_KEPT {
        if let Some(mut buf) = kept().take(capacity) {
            buf.clear();
            return buf;
        }
    }
    Vec::with_capacity(capacity)
}

/// Keeps `buf` for a later [`buffer`] when it is large enough to be worth it and fits within the
/// bound; the buffers kept longest are let go to make room. Otherwise it is freed.
pub(crate) fn keep(buf: Vec<u8>) {
    if buf.capacity() < SMALLEST_KEPT {
        return;
    }
    let freed = kept().put(buf);
    drop(freed); // outside the lock
}

/// Bounds what is kept between images to `bytes`, letting go of the oldest buffers over it.
pub fn keep_at_most(bytes: u64) {
    let limit = usize::try_from(bytes).unwrap_or(usize::MAX);
    let freed = {
        let mut kept = kept();
        kept.limit = limit;
        kept.shrink_to(limit)
    };
    drop(freed);
}

/// Bytes kept between images right now.
pub fn kept_bytes() -> u64 {
    kept().bytes as u64
}

struct Kept {
    /// Oldest first.
    buffers: Vec<Vec<u8>>,
    /// What is counted against the limit: the capacities of `buffers`, and the part of each
    /// buffer out on loan that its borrower did not ask for.
    bytes: usize,
    limit: usize,
    /// Buffers out on loan (by address) that are larger than asked for, and by how much.
    larger_than_asked: Vec<(usize, usize)>,
}

/// More buffers than the renditions of a few images take at once.
const MOST_ON_LOAN: usize = 32;

/// Until a plan says otherwise: the default function's ([`crate::MemoryPlan::default`]).
static KEPT: Mutex<Kept> = Mutex::new(Kept {
    buffers: Vec::new(),
    bytes: 0,
    limit: crate::budget::DEFAULT_KEPT_BYTES as usize,
    larger_than_asked: Vec::new(),
});

fn kept() -> MutexGuard<'static, Kept> {
    // Every change to the list is complete before anything can panic: a poisoned lock is whole.
    KEPT.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Kept {
    /// The smallest kept buffer of at least `len` bytes. Whatever it holds beyond `len` stays
    /// counted as kept until it comes back: an image's estimate counts only what it asks for.
    fn take(&mut self, len: usize) -> Option<Vec<u8>> {
        let (at, _) = self
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| b.capacity())?;
        let buf = self.buffers.remove(at);
        self.bytes -= len;
        if buf.capacity() > len {
            if self.larger_than_asked.len() == MOST_ON_LOAN {
                // One never came back (dropped on an error path, say): it is not kept any more.
                let (_, lost) = self.larger_than_asked.remove(0);
                self.bytes = self.bytes.saturating_sub(lost);
            }
            self.larger_than_asked
                .push((buf.as_ptr() as usize, buf.capacity() - len));
        }
        Some(buf)
    }

    /// Keeps `buf`, and returns what had to go for it (or `buf` itself when it cannot fit).
    fn put(&mut self, buf: Vec<u8>) -> Vec<Vec<u8>> {
        let address = buf.as_ptr() as usize;
        if let Some(at) = self
            .larger_than_asked
            .iter()
            .position(|&(a, _)| a == address)
        {
            let (_, still_counted) = self.larger_than_asked.remove(at);
            self.bytes = self.bytes.saturating_sub(still_counted);
        }
        let (counted, mut freed) = self.count(buf.capacity());
        if counted {
            self.buffers.push(buf);
        } else {
            freed.push(buf);
        }
        freed
    }

    /// Makes room for `bytes` more and counts them, when they can fit.
    fn count(&mut self, bytes: usize) -> (bool, Vec<Vec<u8>>) {
        if bytes > self.limit {
            return (false, Vec::new());
        }
        let freed = self.shrink_to(self.limit - bytes);
        let fits = self.bytes + bytes <= self.limit;
        if fits {
            self.bytes += bytes;
        }
        (fits, freed)
    }

    /// Lets the oldest buffers go until what is kept is within `limit` (or no buffer is left).
    fn shrink_to(&mut self, limit: usize) -> Vec<Vec<u8>> {
        let mut freed = Vec::new();
        while self.bytes > limit && !self.buffers.is_empty() {
            let oldest = self.buffers.remove(0);
            self.bytes -= oldest.capacity();
            freed.push(oldest);
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(limit: usize) -> Kept {
        Kept {
            buffers: Vec::new(),
            bytes: 0,
            limit,
            larger_than_asked: Vec::new(),
        }
    }

    #[test]
    fn a_kept_buffer_serves_the_next_request_it_fits() {
        let mut kept = pool(10 << 20);
        let buf = vec![7u8; 1 << 20];
        let at = buf.as_ptr();
        assert!(kept.put(buf).is_empty());
        assert_eq!(kept.bytes, 1 << 20);
        assert!(kept.take((1 << 20) + 1).is_none(), "too small");
        let again = kept.take(100 << 10).unwrap();
        assert_eq!(again.as_ptr(), at, "the same memory");
        // What the borrower did not ask for is still counted while it is out, and not twice when
        // it comes back.
        assert_eq!(kept.bytes, (1 << 20) - (100 << 10));
        kept.put(again);
        assert_eq!(kept.bytes, 1 << 20);
        assert!(kept.larger_than_asked.is_empty());
    }

    #[test]
    fn the_smallest_fitting_buffer_is_taken() {
        let mut kept = pool(10 << 20);
        for len in [3 << 20, 2 << 20, (2 << 20) + 4096] {
            kept.put(vec![0; len]);
        }
        assert_eq!(kept.take(2 << 20).unwrap().capacity(), 2 << 20);
        let larger = kept.take(2 << 20).unwrap();
        assert_eq!(larger.capacity(), (2 << 20) + 4096);
        assert_eq!(
            kept.bytes,
            (3 << 20) + 4096,
            "the 4 KiB not asked for are still counted"
        );
    }

    #[test]
    fn a_loan_that_never_comes_back_is_forgotten_in_the_end() {
        let mut kept = pool(100 << 20);
        let mut lost = Vec::new();
        for _ in 0..MOST_ON_LOAN + 8 {
            kept.put(vec![0; 2 << 20]);
            // Taken for less than it holds, and never given back (dropped on an error path).
            lost.push(kept.take(1 << 20).unwrap());
        }
        assert_eq!(kept.larger_than_asked.len(), MOST_ON_LOAN);
        assert_eq!(
            kept.bytes,
            MOST_ON_LOAN << 20,
            "only the loans still remembered"
        );
    }

    #[test]
    fn memory_that_cannot_be_had_is_none_rather_than_an_abort() {
        assert!(try_buffer(isize::MAX as usize).is_none());
        assert_eq!(try_buffer(100 << 10).unwrap().len(), 100 << 10);
        assert!(try_buffer(0).unwrap().is_empty());
    }

    #[test]
    fn what_is_kept_stays_within_the_limit_oldest_going_first() {
        let mut kept = pool(5 << 20);
        kept.put(vec![1; 2 << 20]);
        kept.put(vec![2; 2 << 20]);
        let freed = kept.put(vec![3; 2 << 20]);
        assert_eq!(freed.len(), 1);
        assert_eq!(freed[0][0], 1, "the oldest went");
        assert_eq!(kept.bytes, 4 << 20);
        // Larger than the whole limit: not kept at all, nothing else let go.
        let freed = kept.put(vec![4; 6 << 20]);
        assert_eq!(freed[0][0], 4);
        assert_eq!(kept.bytes, 4 << 20);
        assert_eq!(kept.shrink_to(2 << 20).len(), 1);
        assert_eq!(kept.bytes, 2 << 20);
    }
}
