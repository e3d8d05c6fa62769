//! Sizes and resampling: each rendition's box, Lanczos3 with `fast_image_resize`.

use fast_image_resize::images::{TypedImage, TypedImageRef};
use fast_image_resize::pixels::{U8x3, U8x4, U8};
use fast_image_resize::{FilterType, PixelTrait, ResizeAlg, ResizeOptions, Resizer};

use crate::{Pixels, Size};

/// A resize that could not be made: the buffer did not match its size, or the resizer refused.
#[derive(Debug, thiserror::Error)]
pub enum ResizeError {
    #[error(transparent)]
    Buffer(#[from] fast_image_resize::ImageBufferError),
    #[error(transparent)]
    Resize(#[from] fast_image_resize::ResizeError),
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
    resize_with(src, size, FilterType::Lanczos3)
}

/// An area average (box filter): for the placeholder, which is a blur anyway. Its weights cost
/// nothing to compute, where Lanczos3's take a sine each, which for a tiny image is most of the
/// resize.
pub fn average(src: &Pixels, size: (u32, u32)) -> Result<Pixels, ResizeError> {
    resize_with(src, size, FilterType::Box)
}

fn resize_with(
    src: &Pixels,
    (w, h): (u32, u32),
    filter: FilterType,
) -> Result<Pixels, ResizeError> {
    if (w, h) == (src.width, src.height) {
        return Ok(src.clone());
    }
    let buf = match src.channels {
        1 => resize_typed::<U8>(src, (w, h), filter)?,
        3 => resize_typed::<U8x3>(src, (w, h), filter)?,
        _ => resize_typed::<U8x4>(src, (w, h), filter)?,
    };
    Ok(Pixels {
        width: w,
        height: h,
        channels: src.channels,
        buf,
    })
}

/// The typed entry point for the three pixel types there are: the untyped `Resizer::resize`
/// instantiates every convolution for every pixel type the crate knows (16-bit, float, two
/// channels...) in this crate, which was 85% of its code and most of the first `make run` build.
fn resize_typed<P: PixelTrait>(
    src: &Pixels,
    (w, h): (u32, u32),
    filter: FilterType,
) -> Result<Vec<u8>, ResizeError> {
    let from = TypedImageRef::<P>::from_buffer(src.width, src.height, &src.buf)?;
    let mut buf = vec![0u8; w as usize * h as usize * usize::from(src.channels)];
    let mut to = TypedImage::<P>::from_buffer(w, h, &mut buf)?;
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter));
    Resizer::new().resize_typed(&from, &mut to, &options)?;
    Ok(buf)
}
