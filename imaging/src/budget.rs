//! Memory, counted before it is spent. [`probe`](crate::probe) works out from the header alone what
//! the decode and every rendition will allocate ([`Estimate`]); an image whose estimate is over the
//! budget is refused before a pixel is allocated. The budget itself follows the function's memory
//! ([`MemoryPlan`]): on Lambda `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, locally template.yaml's
//! `MemorySize` of the process function or `--process-memory-mb`.
//!
//! Each term is an upper bound of what the code below allocates, written next to the code it
//! counts; `tests/pipeline/memory.rs` measures peak RSS against it on a hostile corpus.

use std::fmt;

use crate::settings::{Format, SettingsError};

pub const MIB: u64 = 1 << 20;

/// What one image will cost, in bytes, by where it goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    /// The upload itself, held while it is processed.
    pub original: u64,
    /// EXIF as parsed, the ICC profile, the PNG decoder's copies of ancillary chunks.
    pub metadata: u64,
    /// The decoded buffer and the decoder's working memory (libjpeg's coefficient buffer for a
    /// progressive JPEG, at full size whatever the DCT scale; PNG row buffers).
    pub decode: u64,
    /// Colour conversion: its output buffer and the transform's tables.
    pub colour: u64,
    /// The renditions: resize coefficients and intermediate image, the rendition, the encoder's
    /// buffers; the costliest one, as they are made one after another. What one gives back is kept
    /// for the next ([`crate::keep_at_most`]): that is counted in the plan's kept memory
    /// ([`MemoryPlan::kept_bytes`]), not here.
    pub rendition: u64,
    /// Codec state, tables and allocator slack that do not grow with the image.
    pub fixed: u64,
}

impl Estimate {
    pub fn total(&self) -> u64 {
        self.original
            .saturating_add(self.metadata)
            .saturating_add(self.decode)
            .saturating_add(self.colour)
            .saturating_add(self.rendition)
            .saturating_add(self.fixed)
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / MIB as f64)
}

impl fmt::Display for Estimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} MB: original {}, metadata {}, decode {}, colour {}, renditions {}, fixed {}",
            mb(self.total()),
            mb(self.original),
            mb(self.metadata),
            mb(self.decode),
            mb(self.colour),
            mb(self.rendition),
            mb(self.fixed),
        )
    }
}

/// What stays with the function whatever the images: the runtime and its clients, the engine
/// around it locally, and per item in flight its original and its probe (ICC profile, EXIF).
/// Measured: `uploader serve` settles at about 30 MB, a Lambda bootstrap at about 20 MB.
pub const RESERVE_MB: u64 = 128;
/// The memory a function gets when nothing says otherwise: template.yaml's `MemorySize` of the
/// process function.
pub const DEFAULT_FUNCTION_MEMORY_MB: u64 = 2048;
/// The least an image pool may have; below this a function is misconfigured.
const MIN_POOL_MB: u64 = 64;

/// What the process step keeps between images at most (buffers and libjpeg's pools that the next
/// image reuses instead of faulting in fresh pages, [`crate::keep_at_most`]): an eighth of what the
/// reserve leaves, and no more than this. A batch of 4 MP photos keeps 13 MB.
pub const MAX_KEPT_MB: u64 = 96;
/// What is kept in the default function's plan ([`DEFAULT_FUNCTION_MEMORY_MB`]).
pub const DEFAULT_KEPT_BYTES: u64 = kept_mb(DEFAULT_FUNCTION_MEMORY_MB) * MIB;

const fn kept_mb(function_mb: u64) -> u64 {
    let eighth = function_mb.saturating_sub(RESERVE_MB) / 8;
    if eighth < MAX_KEPT_MB {
        eighth
    } else {
        MAX_KEPT_MB
    }
}

/// How a function's memory is shared: a fixed reserve, what is kept between images, and a pool
/// that the images being processed draw their estimates from. One image may take the whole pool;
/// several run at once only while their estimates fit together, so the peak is the reserve, the
/// kept memory and the pool at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPlan {
    pub function_mb: u64,
    /// Bytes the images in flight may hold together; also the most one image may need.
    pub pool_bytes: u64,
    /// Bytes kept from one image to the next at most ([`crate::keep_at_most`]).
    pub kept_bytes: u64,
}

impl MemoryPlan {
    pub fn for_function(function_mb: u64) -> Result<MemoryPlan, SettingsError> {
        if function_mb < RESERVE_MB + MIN_POOL_MB {
            return Err(SettingsError::new(format!(
                "a process function of {function_mb} MB leaves less than {MIN_POOL_MB} MB for \
                 images after the {RESERVE_MB} MB reserve; give it at least {} MB",
                RESERVE_MB + MIN_POOL_MB
            )));
        }
        let kept_bytes = kept_mb(function_mb) * MIB;
        Ok(MemoryPlan {
            function_mb,
            pool_bytes: (function_mb - RESERVE_MB) * MIB - kept_bytes,
            kept_bytes,
        })
    }
}

impl Default for MemoryPlan {
    fn default() -> Self {
        MemoryPlan::for_function(DEFAULT_FUNCTION_MEMORY_MB).expect("the default plan is valid")
    }
}

/// Bytes of `w` x `h` pixels of `channels` bytes each.
pub(crate) fn pixels(w: u64, h: u64, channels: u64) -> u64 {
    w.saturating_mul(h).saturating_mul(channels)
}

/// `fast_image_resize`'s convolution coefficients for one axis: a window of
/// `2 * ceil(3 * max(src / dst, 1)) + 1` taps per output pixel (Lanczos3), kept as f64 and again
/// normalised to i16, plus a bound and a chunk header per output pixel. This is the term a
/// 49,000,000x1 image blows up: 2.35 GB of f64 for a 640-pixel rendition.
fn coefficients(src: u64, dst: u64) -> u64 {
    let scale = (src as f64 / dst.max(1) as f64).max(1.0);
    let window = (3.0 * scale).ceil() as u64 * 2 + 1;
    window
        .saturating_mul(dst)
        .saturating_mul(8 + 2)
        .saturating_add(dst.saturating_mul(8 + 24))
}

/// One rendition of a `src` image of `channels` (1, 3 or 4) as `dst`, in `format`: the resize
/// (coefficients for both axes; the vertical pass first into a `src.w x dst.h` image, as
/// `fast_image_resize` does for 8-bit pixels; a premultiplied copy of the source when there is
/// alpha), the rendition, the band of it made before it is turned upright (at most its size), and
/// the encoder.
pub(crate) fn rendition(src: (u32, u32), channels: u8, dst: (u32, u32), format: Format) -> u64 {
    let (sw, sh) = (u64::from(src.0), u64::from(src.1));
    let (dw, dh) = (u64::from(dst.0), u64::from(dst.1));
    let ch = u64::from(channels);
    let out = pixels(dw, dh, ch);
    let resize = if src == dst {
        out // a copy
    } else {
        let alpha = if channels == 4 { pixels(sw, sh, 4) } else { 0 };
        coefficients(sw, dw)
            .saturating_add(coefficients(sh, dh))
            .saturating_add(pixels(sw, dh, ch))
            .saturating_add(alpha)
            .saturating_add(out)
    };
    let turned = out;
    resize
        .saturating_add(turned)
        .saturating_add(encoder(dw, dh, channels, format))
}

/// An encoder's buffers for a `w` x `h` rendition.
fn encoder(w: u64, h: u64, channels: u8, format: Format) -> u64 {
    let px = pixels(w, h, 1);
    match format {
        // Alpha flattened to a copy; libjpeg's whole-image coefficient buffer for Huffman
        // optimisation (up to 3 coefficients of 2 bytes per pixel at 4:4:4, 1.5 at 4:2:0);
        // the output buffer, sized by tjBufSize (at most ~3 bytes a pixel plus headers).
        Format::Jpeg => {
            let flat = if channels == 4 { px * 3 } else { 0 };
            flat + px * 6 + px * 3 + 64 * 1024
        }
        // The output (at most the raw rows, plus zlib's framing) and the adaptive filter's five
        // candidate rows.
        Format::Png => {
            let raw = px * u64::from(channels) + h;
            raw + raw / 8 + w * u64::from(channels) * 6 + 64 * 1024
        }
        // Gray widened to RGB; libwebp's YUV 4:2:0 picture, its analysis and token buffers, and
        // the output: well under 16 bytes a pixel.
        Format::Webp => px * 3 + px * 16 + MIB,
        // The samples as RGB(A) structs; rav1e's planes, reference and reconstruction frames and
        // its per-tile state: under 48 bytes a pixel for a still image, plus its fixed tables.
        Format::Avif => px * 4 + px * 48 + 16 * MIB,
    }
}

/// An animated WebP rendition of a `src` canvas as `dst`, of `frames` frames: each frame's
/// resize and turned copy (RGBA), libwebp's animation encoder (its previous and current canvases
/// as ARGB, two candidate encodings of each frame with their YUV pictures), and the output, which
/// grows by each frame's bytes (lossy: under a byte a pixel).
pub(crate) fn animated_rendition(src: (u32, u32), dst: (u32, u32), frames: u32) -> u64 {
    let px = pixels(u64::from(dst.0), u64::from(dst.1), 1);
    rendition(src, 4, dst, Format::Webp)
        .saturating_add(px.saturating_mul(4 * 8))
        .saturating_add(px.saturating_mul(u64::from(frames)))
        .saturating_add(2 * MIB)
}
