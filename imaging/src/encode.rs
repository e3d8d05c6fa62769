//! Rendition encoders: JPEG by libjpeg-turbo (q from settings, 4:2:0, Huffman-optimised; alpha
//! flattened on white), PNG by the `png` crate (fast deflate, adaptive filter; alpha kept).

use bytes::Bytes;
use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};

use crate::Pixels;

/// A JPEG of `p` at `quality` (1..=100).
pub fn jpeg(p: &Pixels, quality: u8) -> Result<Bytes, turbojpeg::Error> {
    let mut c = turbojpeg::Compressor::new()?;
    c.set_quality(i32::from(quality))?;
    c.set_optimize(true)?;
    let flat;
    let (buf, format) = match p.channels {
        1 => {
            c.set_subsamp(turbojpeg::Subsamp::Gray)?;
            (&p.buf, turbojpeg::PixelFormat::GRAY)
        }
        3 => {
            c.set_subsamp(turbojpeg::Subsamp::Sub2x2)?;
            (&p.buf, turbojpeg::PixelFormat::RGB)
        }
        _ => {
            c.set_subsamp(turbojpeg::Subsamp::Sub2x2)?;
            flat = flatten_on_white(&p.buf);
            (&flat, turbojpeg::PixelFormat::RGB)
        }
    };
    let bpp = format.size();
    c.compress_to_vec(turbojpeg::Image {
        pixels: buf.as_slice(),
        width: p.width as usize,
        pitch: p.width as usize * bpp,
        height: p.height as usize,
        format,
    })
    .map(Bytes::from)
}

/// A PNG of `p`, alpha kept.
pub fn png(p: &Pixels) -> Result<Bytes, image::ImageError> {
    let mut out = Vec::new();
    let color = match p.channels {
        1 => ExtendedColorType::L8,
        3 => ExtendedColorType::Rgb8,
        _ => ExtendedColorType::Rgba8,
    };
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, PngFilter::Adaptive)
        .write_image(&p.buf, p.width, p.height, color)?;
    Ok(Bytes::from(out))
}

/// JPEG has no alpha: composite RGBA over white rather than let transparent pixels turn black.
fn flatten_on_white(rgba: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(rgba.len() / 4 * 3);
    for px in rgba.chunks_exact(4) {
        let a = u16::from(px[3]);
        for &c in &px[..3] {
            rgb.push(((u16::from(c) * a + 255 * (255 - a) + 127) / 255) as u8);
        }
    }
    rgb
}
