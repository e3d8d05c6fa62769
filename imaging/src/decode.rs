//! One decode per image, to 8-bit gray, RGB or RGBA: a JPEG by libjpeg-turbo at the header's DCT
//! scale, a PNG whole by the `png` crate (through `image`).

use image::DynamicImage;

use crate::probe::{png_decoder, Header};
use crate::{ImageError, Pixels};

/// libjpeg warnings that leave every pixel in place. TurboJPEG reports warnings as failures, so
/// these are recognised by their text (each has a test with a file that triggers it, so a
/// libjpeg-turbo upgrade that rewords one fails a test, not users' photos). Every other warning
/// (bad Huffman codes, premature end) means grey or smeared rows, and is an error.
pub const BENIGN_LIBJPEG_WARNINGS: [&str; 4] = [
    "extraneous bytes before marker",
    "unknown JFIF revision",
    "Unknown Adobe color transform",
    "bad ICC marker",
];

/// Decodes the image `header` describes.
pub fn decode(bytes: &[u8], header: &Header) -> Result<Pixels, ImageError> {
    match &header.jpeg {
        Some(_) => decode_jpeg(bytes, header),
        None => decode_png(bytes, header),
    }
}

fn decode_error(e: impl Into<crate::BoxError>) -> ImageError {
    ImageError::decode(e)
}

fn decode_jpeg(bytes: &[u8], header: &Header) -> Result<Pixels, ImageError> {
    let jpeg = header.jpeg.as_ref().expect("a JPEG header");
    let mut decompressor = turbojpeg::Decompressor::new().map_err(decode_error)?;
    let scale = turbojpeg::ScalingFactor::new(1, jpeg.scale_denom as usize);
    decompressor
        .set_scaling_factor(scale)
        .map_err(decode_error)?;
    // libjpeg's scaled size: rounded up.
    let denom = jpeg.scale_denom as usize;
    let scaled = (
        (header.width as usize).div_ceil(denom),
        (header.height as usize).div_ceil(denom),
    );
    let cmyk = jpeg.components == 4;
    let (format, channels) = match jpeg.components {
        1 => (turbojpeg::PixelFormat::GRAY, 1),
        // libjpeg converts YCCK to CMYK but never CMYK to RGB; that is done below.
        4 => (turbojpeg::PixelFormat::CMYK, 4),
        _ => (turbojpeg::PixelFormat::RGB, 3),
    };
    let mut buf = vec![0u8; scaled.0 * scaled.1 * channels];
    let image = turbojpeg::Image {
        pixels: buf.as_mut_slice(),
        width: scaled.0,
        pitch: scaled.0 * channels,
        height: scaled.1,
        format,
    };
    if let Err(e) = decompressor.decompress(bytes, image) {
        let msg = e.to_string();
        if !BENIGN_LIBJPEG_WARNINGS.iter().any(|b| msg.contains(b)) {
            return Err(decode_error(e));
        }
        tracing::debug!(warning = %msg, "libjpeg warning; image kept");
    }
    let (width, height) = (dim(scaled.0)?, dim(scaled.1)?);
    Ok(if cmyk {
        Pixels {
            width,
            height,
            channels: 3,
            buf: cmyk_to_rgb(&buf, jpeg.adobe),
        }
    } else {
        Pixels {
            width,
            height,
            channels: channels as u8,
            buf,
        }
    })
}

fn dim(n: usize) -> Result<u32, ImageError> {
    u32::try_from(n).map_err(|_| ImageError::decode(format!("dimension {n} out of range")))
}

/// Naive (no ICC profile) CMYK to RGB. With an Adobe segment the samples are stored inverted
/// (255 = no ink), which is what nearly every CMYK JPEG in the wild is.
fn cmyk_to_rgb(cmyk: &[u8], adobe_inverted: bool) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for px in cmyk.chunks_exact(4) {
        let [c, m, y, k] = if adobe_inverted {
            [px[0], px[1], px[2], px[3]]
        } else {
            [255 - px[0], 255 - px[1], 255 - px[2], 255 - px[3]]
        };
        let k = u16::from(k);
        for v in [c, m, y] {
            rgb.push(((u16::from(v) * k + 127) / 255) as u8);
        }
    }
    rgb
}

fn decode_png(bytes: &[u8], header: &Header) -> Result<Pixels, ImageError> {
    let decoder = png_decoder(bytes, header.max_alloc)?;
    let image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    let (width, height) = (header.width, header.height);
    let color = image.color();
    Ok(if color.has_alpha() {
        Pixels {
            width,
            height,
            channels: 4,
            buf: image.into_rgba8().into_raw(),
        }
    } else if color.has_color() {
        Pixels {
            width,
            height,
            channels: 3,
            buf: image.into_rgb8().into_raw(),
        }
    } else {
        Pixels {
            width,
            height,
            channels: 1,
            buf: image.into_luma8().into_raw(),
        }
    })
}
