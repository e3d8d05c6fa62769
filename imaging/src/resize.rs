//! Sizes and resampling: each rendition's box, Lanczos3 with `fast_image_resize`.

use fast_image_resize::images::{TypedImage, TypedImageRef};
use fast_image_resize::pixels::{U8x3, U8x4, U8};
use fast_image_resize::{FilterType, MulDiv, PixelTrait, ResizeAlg, ResizeOptions, Resizer};

use crate::orientation::{self, Orientation};
use crate::{Pixels, Size};

/// A resize that could not be made: the buffer did not match its size, or the resizer refused.
#[derive(Debug, thiserror::Error)]
pub enum ResizeError {
    #[error(transparent)]
    Buffer(#[from] fast_image_resize::ImageBufferError),
    #[error(transparent)]
    Resize(#[from] fast_image_resize::ResizeError),
    #[error(transparent)]
    Alpha(#[from] fast_image_resize::MulDivImagesError),
    #[error(transparent)]
    PixelType(#[from] fast_image_resize::ImageError),
}

/// The rendition's pixel size for a source of `width`x`height`; never larger than the source.
pub fn target_size(width: u32, height: u32, size: Size) -> (u32, u32) {
    let (bw, bh) = match size {
        Size::Fit {
            width: bw,
            height: bh,
        } => (bw, bh),
        Size::Width(bw) => (bw, u32::MAX),
    };
    let scale = (f64::from(bw) / f64::from(width))
        .min(f64::from(bh) / f64::from(height))
        .min(1.0);
    let w = (f64::from(width) * scale).round().max(1.0) as u32;
    let h = (f64::from(height) * scale).round().max(1.0) as u32;
    (w, h)
}

/// Lanczos3 with `fast_image_resize` (AVX2/SSE4.1/NEON); alpha is premultiplied while resizing.
pub fn resize(src: &Pixels, size: (u32, u32)) -> Result<Pixels, ResizeError> {
    resize_with(src, size, Orientation::NoTransforms, lanczos3::filter())
}

/// [`resize`] to `size` (in the stored orientation), then turned upright by `orientation`: the
/// rendition as it is shown, without a second image-sized buffer to turn it in.
pub fn resize_upright(
    src: &Pixels,
    size: (u32, u32),
    orientation: Orientation,
) -> Result<Pixels, ResizeError> {
    resize_with(src, size, orientation, lanczos3::filter())
}

/// Lanczos3 for `fast_image_resize`, the value its own gives, at a fraction of the cost.
///
/// The resizer works out a weight for every tap of every output pixel (`2 * ceil(3 * scale) + 1`
/// taps, 61 for a 1280-pixel side made 128), and its Lanczos3 takes two sines a weight. Here it
/// takes one, by `sin 3t = sin t (3 - 4 sin^2 t)`; and a weight is worked out once per kernel
/// position: output pixels whose centres fall at the same offset from the input grid (every one
/// of them at 2:1, every fourth at 1280 to 1024) ask for the same positions, to the bit, and get
/// the value remembered from the first time.
mod lanczos3 {
    use std::cell::Cell;
    use std::f64::consts::PI;

    use fast_image_resize::{Filter, FilterType};

    pub(super) fn filter() -> FilterType {
        FilterType::Custom(Filter::new("Lanczos3", weight, 3.0).expect("a finite support"))
    }

    /// Positions remembered, by a hash of their bits: more than the distinct positions of the
    /// renditions' usual scales, in 16 KiB a thread.
    const REMEMBERED: usize = 1024;

    thread_local! {
        static SEEN: [Cell<(u64, f64)>; REMEMBERED] =
            const { [const { Cell::new((u64::MAX, 0.0)) }; REMEMBERED] };
    }

    fn weight(x: f64) -> f64 {
        let bits = x.to_bits();
        let slot = (bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize;
        SEEN.with(|seen| {
            let (known, value) = seen[slot].get();
            if known == bits {
                return value;
            }
            let value = lanczos3(x);
            seen[slot].set((bits, value));
            value
        })
    }

    /// `sinc(x) * sinc(x / 3)` on (-3, 3), as `fast_image_resize`'s `lanczos_filter` writes it.
    pub(super) fn lanczos3(x: f64) -> f64 {
        if x == 0.0 {
            return 1.0;
        }
        if !(-3.0..3.0).contains(&x) {
            return 0.0;
        }
        let third = x / 3.0 * PI;
        let sin_third = third.sin();
        let sin_whole = sin_third * (3.0 - 4.0 * sin_third * sin_third);
        sin_whole / (x * PI) * (sin_third / third)
    }

    #[cfg(test)]
    mod tests {
        /// The reference: `fast_image_resize`'s `sinc_filter(x) * sinc_filter(x / 3.)`.
        fn two_sines(x: f64) -> f64 {
            let sinc = |x: f64| {
                if x == 0.0 {
                    1.0
                } else {
                    (x * std::f64::consts::PI).sin() / (x * std::f64::consts::PI)
                }
            };
            if (-3.0..3.0).contains(&x) {
                sinc(x) * sinc(x / 3.0)
            } else {
                0.0
            }
        }

        #[test]
        fn one_sine_gives_the_weights_of_two() {
            for i in -4000..=4000 {
                let x = f64::from(i) / 1000.0 + 1e-4;
                let (ours, theirs) = (super::lanczos3(x), two_sines(x));
                assert!(
                    (ours - theirs).abs() < 1e-14,
                    "{x}: {ours} against {theirs}"
                );
                assert_eq!(super::weight(x), ours, "{x}, remembered");
                assert_eq!(super::weight(x), ours, "{x}, remembered");
            }
        }
    }
}

/// An area average (box filter): for the placeholder, which is a blur anyway. Its weights cost
/// nothing to compute, where Lanczos3's take a sine each, which for a tiny image is most of the
/// resize.
pub fn average(src: &Pixels, size: (u32, u32)) -> Result<Pixels, ResizeError> {
    resize_with(src, size, Orientation::NoTransforms, FilterType::Box)
}

fn resize_with(
    src: &Pixels,
    size: (u32, u32),
    orientation: Orientation,
    filter: FilterType,
) -> Result<Pixels, ResizeError> {
    match src.channels {
        1 => resize_typed::<U8>(src, size, orientation, filter),
        3 => resize_typed::<U8x3>(src, size, orientation, filter),
        _ => resize_typed::<U8x4>(src, size, orientation, filter),
    }
}

/// The typed entry point for the three pixel types there are: the untyped `Resizer::resize`
/// instantiates every convolution for every pixel type the crate knows (16-bit, float, two
/// channels...) in this crate, which was 85% of its code and most of the first `make run` build.
///
/// What `Resizer` does for 8-bit pixels, with its buffers taken from the kept ones
/// ([`crate::keep_at_most`]) rather than grown afresh by every resizer: alpha premultiplied into a
/// copy of the source, the vertical pass into an image as wide as the source and as tall as the
/// result, the horizontal pass from it, alpha divided out. Each pass is the resizer's own, so the
/// result is the same to the bit. The horizontal pass goes a band of rows at a time, each band
/// turned upright into the result as soon as it is made.
fn resize_typed<P: PixelTrait>(
    src: &Pixels,
    (w, h): (u32, u32),
    orientation: Orientation,
    filter: FilterType,
) -> Result<Pixels, ResizeError> {
    let premultiplied;
    let src = if src.channels == 4 && (w, h) != (src.width, src.height) {
        let mut copy = blank(src.width, src.height, src.channels);
        let from = TypedImageRef::<P>::from_buffer(src.width, src.height, &src.buf)?;
        let mut to = TypedImage::<P>::from_buffer(copy.width, copy.height, &mut copy.buf)?;
        MulDiv::default().multiply_alpha_typed(&from, &mut to)?;
        premultiplied = copy;
        &premultiplied
    } else {
        src
    };
    let between_rows;
    let between = if h != src.height {
        let mut rows = blank(src.width, h, src.channels);
        convolve::<P>(src, &mut rows, filter)?;
        between_rows = rows;
        &between_rows
    } else {
        src
    };
    let (upright_w, upright_h) = if orientation.swaps_axes() {
        (h, w)
    } else {
        (w, h)
    };
    let mut out = blank(upright_w, upright_h, src.channels);
    if w == between.width {
        orientation::turn_rows(
            &between.buf,
            0,
            (w, h),
            src.channels,
            &mut out.buf,
            orientation,
        );
    } else if orientation == Orientation::NoTransforms {
        convolve::<P>(between, &mut out, filter)?;
    } else {
        let row_bytes = between.width as usize * usize::from(src.channels);
        let band = (BAND_BYTES / (w as usize * usize::from(src.channels))).clamp(1, h as usize);
        let mut made = crate::pixels::buffer(w as usize * band * usize::from(src.channels));
        for top in (0..h as usize).step_by(band) {
            let rows = band.min(h as usize - top);
            // The band's rows, which fast_image_resize takes as an image of their own.
            let band_src = TypedImageRef::<P>::from_buffer(
                between.width,
                rows as u32,
                &between.buf[top * row_bytes..(top + rows) * row_bytes],
            )?;
            let made_len = w as usize * rows * usize::from(src.channels);
            let mut band_out = TypedImage::<P>::from_buffer(w, rows as u32, &mut made[..made_len])?;
            Resizer::new().resize_typed(&band_src, &mut band_out, &options(filter))?;
            orientation::turn_rows(
                &made[..made_len],
                top as u32,
                (w, h),
                src.channels,
                &mut out.buf,
                orientation,
            );
        }
        crate::pixels::keep(made);
    }
    if src.channels == 4 && (w, h) != (src.width, src.height) {
        let mut to = TypedImage::<P>::from_buffer(out.width, out.height, &mut out.buf)?;
        MulDiv::default().divide_alpha_inplace_typed(&mut to)?;
    }
    Ok(out)
}

/// About what a band of the horizontal pass takes: a few hundred KB, in the caches, where the
/// whole resized image (1.9 MB for the 640-wide rendition of a 4 MP photo) would be one more
/// buffer the size of the result.
const BAND_BYTES: usize = 512 << 10;

/// Pixels of `width` x `height`, their values to be written.
fn blank(width: u32, height: u32, channels: u8) -> Pixels {
    Pixels {
        width,
        height,
        channels,
        buf: crate::pixels::buffer(width as usize * height as usize * usize::from(channels)),
    }
}

fn options(filter: FilterType) -> ResizeOptions {
    ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(filter))
        .use_alpha(false)
}

/// One resize of `src` to `out` that changes one dimension only (or both, through the resizer's
/// own buffer), alpha taken as it is.
fn convolve<P: PixelTrait>(
    src: &Pixels,
    out: &mut Pixels,
    filter: FilterType,
) -> Result<(), ResizeError> {
    let from = TypedImageRef::<P>::from_buffer(src.width, src.height, &src.buf)?;
    let mut to = TypedImage::<P>::from_buffer(out.width, out.height, &mut out.buf)?;
    Resizer::new().resize_typed(&from, &mut to, &options(filter))?;
    Ok(())
}
