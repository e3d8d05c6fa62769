//! The input formats beyond JPEG, PNG and HEIC: each module reads its format's header for
//! [`crate::probe`] (size, profile, EXIF, frames) with what decoding will cost, and decodes the
//! first frame, or every frame for an animated rendition ([`crate::animation`]).
//!
//! Every decoder here is pure Rust: `image-webp`, `gif`, `tiff`, `png` (APNG), `jxl-oxide`, and
//! `rav1d` under the AVIF container of `heifer-isobmff`. None of them allocates a canvas before
//! the probe's estimate has been checked against the budget.

pub mod apng;
#[cfg(feature = "avif")]
pub mod av1;
#[cfg(feature = "avif")]
pub mod avif;
pub mod gif;
pub mod jxl;
pub mod tiff;
pub mod webp;

use crate::{ImageError, Pixels};

/// Bytes of `w` x `h` pixels of `channels` bytes each, as `usize`, or an error when that cannot be
/// addressed (the probe's budget makes this unreachable for accepted images).
pub(crate) fn buffer_len(w: u32, h: u32, channels: u64) -> Result<usize, ImageError> {
    usize::try_from(u64::from(w) * u64::from(h) * channels)
        .map_err(|_| ImageError::decode("image too large for this machine's address space"))
}

/// Item ids without repeats, in order: a grid's distinct tiles, each decoded once.
#[cfg(any(feature = "heic", feature = "avif"))]
pub(crate) fn distinct<T: Ord + Copy>(ids: &[T]) -> Vec<T> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// How many coded pictures (a HEIC's or an AVIF's tiles) this thread has decoded: the tests'
/// count of tile decodes.
#[cfg(any(feature = "heic", feature = "avif"))]
pub(crate) mod decodes {
    #[cfg(test)]
    thread_local! {
        static DECODES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    pub(crate) fn count() {
        #[cfg(test)]
        DECODES.with(|d| d.set(d.get() + 1));
    }

    /// Pictures decoded on this thread so far.
    #[cfg(test)]
    pub(crate) fn so_far() -> u64 {
        DECODES.with(std::cell::Cell::get)
    }
}

/// A 16-bit sample to 8 bits, rounded.
#[inline]
pub(crate) fn to_8bit(v: u16) -> u8 {
    ((u32::from(v) * 255 + 32_767) / 65_535) as u8
}

/// Pixels of `channels` (1 gray, 2 gray + alpha, 3 RGB, 4 RGBA) as the pipeline takes them: gray
/// + alpha is widened to RGBA.
pub(crate) fn pixels(width: u32, height: u32, channels: u8, buf: Vec<u8>) -> Pixels {
    if channels == 2 {
        let buf = buf
            .chunks_exact(2)
            .flat_map(|ga| [ga[0], ga[0], ga[0], ga[1]])
            .collect();
        return Pixels {
            width,
            height,
            channels: 4,
            buf,
        };
    }
    Pixels {
        width,
        height,
        channels,
        buf,
    }
}

/// Samples of `channels` (the last alpha) whose colour is premultiplied by alpha (TIFF's
/// associated alpha, JPEG XL's `alpha_associated`) to straight colour.
pub(crate) fn unpremultiply(mut samples: Vec<u8>, channels: usize) -> Vec<u8> {
    for px in samples.chunks_exact_mut(channels) {
        let (colour, alpha) = px.split_at_mut(channels - 1);
        let a = u16::from(alpha[0]);
        if a != 0 && a != 255 {
            for c in colour {
                *c = ((u16::from(*c) * 255 + a / 2) / a).min(255) as u8;
            }
        }
    }
    samples
}

/// RGBA pixels whose alpha is opaque everywhere, as RGB: a third less for every rendition to
/// resize, and no premultiplied copy.
pub(crate) fn drop_opaque_alpha(mut p: Pixels) -> Pixels {
    if p.channels != 4 || p.buf.chunks_exact(4).any(|px| px[3] != 255) {
        return p;
    }
    let mut buf = std::mem::take(&mut p.buf);
    let n = buf.len() / 4;
    for i in 0..n {
        buf.copy_within(i * 4..i * 4 + 3, i * 3);
    }
    buf.truncate(n * 3);
    buf.shrink_to_fit();
    Pixels {
        width: p.width,
        height: p.height,
        channels: 3,
        buf,
    }
}

/// A TIFF blob holding only the tags the item keeps (Make, Model, DateTime, Orientation), for
/// formats whose metadata is not an EXIF block (a TIFF's own first directory): read back with
/// kamadak-exif, so every format's EXIF goes through [`crate::metadata`] alike.
pub(crate) fn exif_blob(
    make: Option<&str>,
    model: Option<&str>,
    date_time: Option<&str>,
    orientation: Option<u16>,
) -> Option<Vec<u8>> {
    // (tag, type, count, value or offset bytes)
    let mut entries: Vec<(u16, u16, u32, Vec<u8>)> = Vec::new();
    let ascii = |s: &str| {
        let mut v: Vec<u8> = s.bytes().take(255).filter(|&b| b != 0).collect();
        v.push(0);
        v
    };
    if let Some(m) = make {
        entries.push((271, 2, 0, ascii(m)));
    }
    if let Some(m) = model {
        entries.push((272, 2, 0, ascii(m)));
    }
    if let Some(o) = orientation {
        entries.push((274, 3, 1, o.to_le_bytes().to_vec()));
    }
    if let Some(d) = date_time {
        entries.push((306, 2, 0, ascii(d)));
    }
    if entries.is_empty() {
        return None;
    }
    let count = entries.len();
    let mut out = b"II*\0\x08\0\0\0".to_vec();
    out.extend_from_slice(&(count as u16).to_le_bytes());
    let mut data_at = 8 + 2 + count * 12 + 4;
    let mut data = Vec::new();
    for (tag, ty, n, value) in &entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&ty.to_le_bytes());
        let n = if *ty == 2 { value.len() as u32 } else { *n };
        out.extend_from_slice(&n.to_le_bytes());
        if value.len() <= 4 {
            let mut v = value.clone();
            v.resize(4, 0);
            out.extend_from_slice(&v);
        } else {
            out.extend_from_slice(&(data_at as u32).to_le_bytes());
            data.extend_from_slice(value);
            data_at += value.len();
        }
    }
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&data);
    Some(out)
}
