//! Rendition encoders: JPEG by libjpeg-turbo (q from settings, 4:2:0, Huffman-optimised; alpha
//! flattened on white), PNG by the `png` crate (fast deflate, adaptive filter; alpha kept), lossy
//! WebP by libwebp, AVIF by rav1e (feature `avif`).
//!
//! Every rendition is sRGB ([`crate::colour`]). PNG says so with an `sRGB` chunk (13 bytes) and AVIF
//! in its AV1 sequence header (BT.709 primaries, sRGB transfer); JPEG and WebP carry no profile, which
//! both formats' readers and every browser take as sRGB. A profile would cost 500 bytes or more on
//! a thumbnail of a few kilobytes.

use bytes::Bytes;

use crate::Pixels;

/// A JPEG of `p` at `quality` (1..=100).
pub fn jpeg(p: &Pixels, quality: u8) -> Result<Bytes, turbojpeg::Error> {
    crate::jpeg_memory::install();
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
    // Into a kept buffer as large as TurboJPEG may need (only what it writes is ever faulted in),
    // then copied out at its size.
    let mut out = crate::pixels::buffer(c.buf_len(p.width as usize, p.height as usize)?);
    let len = c.compress_to_slice(
        turbojpeg::Image {
            pixels: buf.as_slice(),
            width: p.width as usize,
            pitch: p.width as usize * bpp,
            height: p.height as usize,
            format,
        },
        &mut out,
    );
    let bytes = len.map(|len| Bytes::copy_from_slice(&out[..len]));
    crate::pixels::keep(out);
    bytes
}

/// A PNG of `p`, alpha kept, tagged sRGB.
pub fn png(p: &Pixels) -> Result<Bytes, png::EncodingError> {
    // Into a kept buffer (the budget's bound of what the output may take), then copied out at its
    // size.
    let raw = p.buf.len() + p.height as usize;
    let mut out = crate::pixels::empty_buffer(raw + raw / 8 + (64 << 10));
    let bytes = png_into(p, &mut out).map(|()| Bytes::copy_from_slice(&out));
    crate::pixels::keep(out);
    bytes
}

fn png_into(p: &Pixels, out: &mut Vec<u8>) -> Result<(), png::EncodingError> {
    let mut e = png::Encoder::new(out, p.width, p.height);
    e.set_color(match p.channels {
        1 => png::ColorType::Grayscale,
        3 => png::ColorType::Rgb,
        _ => png::ColorType::Rgba,
    });
    e.set_depth(png::BitDepth::Eight);
    e.set_compression(png::Compression::Fast);
    e.set_filter(png::Filter::Adaptive);
    e.set_source_srgb(png::SrgbRenderingIntent::Perceptual);
    let mut w = e.write_header()?;
    w.write_image_data(&p.buf)?;
    w.finish()
}

/// RGB or RGBA samples for the encoders that take no gray.
fn colour_samples(p: &Pixels) -> std::borrow::Cow<'_, [u8]> {
    match p.channels {
        1 => p.buf.iter().flat_map(|&v| [v, v, v]).collect(),
        _ => std::borrow::Cow::Borrowed(&p.buf),
    }
}

/// A lossy WebP (VP8) of `p` at `quality`, alpha kept.
pub fn webp(p: &Pixels, quality: u8) -> Result<Bytes, crate::BoxError> {
    let samples = colour_samples(p);
    let encoder = if p.channels == 4 {
        webp::Encoder::from_rgba(&samples, p.width, p.height)
    } else {
        webp::Encoder::from_rgb(&samples, p.width, p.height)
    };
    let encoded = encoder
        .encode_simple(false, f32::from(quality))
        .map_err(|e| format!("libwebp: {e:?}"))?;
    Ok(Bytes::copy_from_slice(&encoded))
}

/// An AVIF of `p` at `quality` and rav1e `speed`, alpha kept; one thread (images are the unit of
/// parallelism here).
#[cfg(feature = "avif")]
pub fn avif(p: &Pixels, quality: u8, speed: u8) -> Result<Bytes, crate::BoxError> {
    use ravif::{Encoder, Img, RGB8, RGBA8};
    let (w, h) = (p.width as usize, p.height as usize);
    let encoder = Encoder::new()
        .with_quality(f32::from(quality))
        .with_alpha_quality(f32::from(quality))
        .with_speed(speed)
        .with_num_threads(Some(1));
    let samples = colour_samples(p);
    let encoded = if p.channels == 4 {
        let px: Vec<RGBA8> = samples
            .chunks_exact(4)
            .map(|c| RGBA8::new(c[0], c[1], c[2], c[3]))
            .collect();
        encoder.encode_rgba(Img::new(&px[..], w, h))?
    } else {
        let px: Vec<RGB8> = samples
            .chunks_exact(3)
            .map(|c| RGB8::new(c[0], c[1], c[2]))
            .collect();
        encoder.encode_rgb(Img::new(&px[..], w, h))?
    };
    Ok(Bytes::from(encoded.avif_file))
}

#[cfg(not(feature = "avif"))]
pub fn avif(_: &Pixels, _: u8, _: u8) -> Result<Bytes, crate::BoxError> {
    // Settings refuse `avif` renditions in such a build, at start-up.
    Err("this build has no AVIF encoder (feature `avif`)".into())
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
