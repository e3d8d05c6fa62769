//! One decode per image, to 8-bit gray, RGB or RGBA: a JPEG by libjpeg-turbo at the header's DCT
//! scale, a PNG whole by the `png` crate, at 8 bits a channel.

use crate::colour::{self, Source};
use crate::probe::Header;
use crate::{ImageError, Pixels};
use state::media::MediaType;

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

/// Decodes the image `header` describes. CMYK goes to RGB through `source`'s CMYK profile when
/// there is one; every other colour conversion is the caller's ([`crate::colour`]).
pub fn decode(bytes: &[u8], header: &Header, source: &Source) -> Result<Pixels, ImageError> {
    match header.format {
        MediaType::Jpeg => decode_jpeg(bytes, header, source),
        MediaType::Png => decode_png(bytes, header),
        MediaType::Heic => decode_heic(bytes, header),
    }
}

/// A HEIC's primary image by `heifer` (pure Rust; crop, rotation and mirror applied), at 8 bits,
/// on one thread (images are the unit of parallelism here). An opaque alpha channel is dropped.
#[cfg(feature = "heic")]
fn decode_heic(bytes: &[u8], header: &Header) -> Result<Pixels, ImageError> {
    let options = heifer::Options {
        max_threads: 1,
        max_pixels: u64::from(header.width) * u64::from(header.height),
    };
    let image = heifer::decode_rgba8(bytes, &options).map_err(decode_error)?;
    let (width, height) = (image.width, image.height);
    Ok(if image.has_alpha {
        Pixels {
            width,
            height,
            channels: 4,
            buf: image.data,
        }
    } else {
        let rgb = image
            .data
            .chunks_exact(4)
            .flat_map(|px| [px[0], px[1], px[2]])
            .collect();
        Pixels {
            width,
            height,
            channels: 3,
            buf: rgb,
        }
    })
}

#[cfg(not(feature = "heic"))]
fn decode_heic(_: &[u8], _: &Header) -> Result<Pixels, ImageError> {
    Err(ImageError::decode("this build has no HEIC decoder"))
}

fn decode_error(e: impl Into<crate::BoxError>) -> ImageError {
    ImageError::decode(e)
}

fn decode_jpeg(bytes: &[u8], header: &Header, source: &Source) -> Result<Pixels, ImageError> {
    let jpeg = header.jpeg.as_ref().expect("a JPEG header");
    crate::jpeg_memory::install();
    let mut decompressor = turbojpeg::Decompressor::new().map_err(decode_error)?;
    // The probe counted the scans; this holds libjpeg to that count whatever it finds.
    decompressor
        .set_scan_limit(crate::probe::MAX_JPEG_SCANS as u32)
        .map_err(decode_error)?;
    let scale = turbojpeg::ScalingFactor::new(1, jpeg.scale_denom as usize);
    decompressor
        .set_scaling_factor(scale)
        .map_err(decode_error)?;
    let scaled = header.decoded_size();
    let scaled = (scaled.0 as usize, scaled.1 as usize);
    let cmyk = jpeg.components == 4;
    let (format, channels) = match jpeg.components {
        1 => (turbojpeg::PixelFormat::GRAY, 1),
        // libjpeg converts YCCK to CMYK but never CMYK to RGB; that is done below.
        4 => (turbojpeg::PixelFormat::CMYK, 4),
        _ => (turbojpeg::PixelFormat::RGB, 3),
    };
    let mut buf = crate::pixels::buffer(scaled.0 * scaled.1 * channels);
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
        let rgb = match source {
            Source::Cmyk(conversion) => colour::cmyk_to_srgb(&mut buf, jpeg.adobe, conversion)?,
            _ => cmyk_to_rgb(&buf, jpeg.adobe),
        };
        Pixels {
            width,
            height,
            channels: 3,
            buf: rgb,
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

/// Naive CMYK to RGB, for CMYK JPEGs without a profile. With an Adobe segment the samples are stored inverted
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
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    // 8 bits a channel, palettes expanded, tRNS as alpha: a 16-bit image never exists at 16 bits
    // here. The profile was read by the probe and text is not kept, so neither is copied again.
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    decoder.set_ignore_iccp_chunk(true);
    decoder.set_ignore_text_chunk(true);
    let mut reader = decoder.read_info().map_err(decode_error)?;
    let (color, _) = reader.output_color_type();
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| ImageError::decode("PNG too large for this machine's address space"))?;
    let mut buf = crate::pixels::buffer(size);
    let info = reader.next_frame(&mut buf).map_err(decode_error)?;
    buf.truncate(info.buffer_size());
    let (width, height) = (info.width, info.height);
    if (width, height) != (header.width, header.height) {
        return Err(ImageError::decode("PNG frame size differs from its header"));
    }
    Ok(match color {
        png::ColorType::Grayscale => Pixels {
            width,
            height,
            channels: 1,
            buf,
        },
        png::ColorType::Rgb => Pixels {
            width,
            height,
            channels: 3,
            buf,
        },
        png::ColorType::Rgba => Pixels {
            width,
            height,
            channels: 4,
            buf,
        },
        // Gray + alpha is widened to RGBA, which every resizer and encoder here takes.
        png::ColorType::GrayscaleAlpha => Pixels {
            width,
            height,
            channels: 4,
            buf: buf
                .chunks_exact(2)
                .flat_map(|ga| [ga[0], ga[0], ga[0], ga[1]])
                .collect(),
        },
        png::ColorType::Indexed => {
            return Err(ImageError::decode("PNG palette was not expanded"));
        }
    })
}
