//! Sizes and resampling: each rendition's box, Lanczos3 with `fast_image_resize`, then turning the
//! (small) result upright.

use fast_image_resize::images::{Image as FirImage, ImageRef as FirImageRef};
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::DynamicImage;

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
pub fn resize(src: &Pixels, (w, h): (u32, u32)) -> Result<Pixels, ResizeError> {
    if (w, h) == (src.width, src.height) {
        return Ok(src.clone());
    }
    let from = FirImageRef::new(src.width, src.height, &src.buf, src.pixel_type())?;
    let mut to = FirImage::new(w, h, src.pixel_type());
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    Resizer::new().resize(&from, &mut to, &options)?;
    Ok(Pixels {
        width: w,
        height: h,
        channels: src.channels,
        buf: to.into_vec(),
    })
}

/// Turns a (small) rendition upright.
pub fn orient(p: Pixels, o: Orientation) -> Pixels {
    if o == Orientation::NoTransforms {
        return p;
    }
    let (w, h, channels) = (p.width, p.height, p.channels);
    let mut image = match channels {
        1 => image::GrayImage::from_raw(w, h, p.buf).map(DynamicImage::ImageLuma8),
        3 => image::RgbImage::from_raw(w, h, p.buf).map(DynamicImage::ImageRgb8),
        _ => image::RgbaImage::from_raw(w, h, p.buf).map(DynamicImage::ImageRgba8),
    }
    .expect("a buffer of width * height * channels");
    image.apply_orientation(o);
    Pixels {
        width: image.width(),
        height: image.height(),
        channels,
        buf: image.into_bytes(),
    }
}
