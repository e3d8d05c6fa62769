//! One decode per image, to 8-bit gray, RGB or RGBA: a JPEG by libjpeg-turbo at the header's DCT
//! scale (a lossless one whole; 12- and 16-bit samples brought to 8), a PNG whole by the `png`
//! crate, at 8 bits a channel.

use crate::colour::{self, Source};
use crate::probe::Header;
use crate::{jpeg_decode, ImageError, Pixels};
use state::media::MediaType;

/// Decodes the image `header` describes. CMYK goes to RGB through `source`'s CMYK profile when
/// there is one; every other colour conversion is the caller's ([`crate::colour`]).
pub fn decode(bytes: &[u8], header: &Header, source: &Source) -> Result<Pixels, ImageError> {
    match header.format {
        MediaType::Jpeg => decode_jpeg(bytes, header, source),
        MediaType::Png => decode_png(bytes, header),
        MediaType::Heic => decode_heic(bytes, header),
        MediaType::Webp => crate::formats::webp::decode(bytes, header),
        MediaType::Tiff => crate::formats::tiff::decode(bytes, header, source),
        MediaType::Jxl => crate::formats::jxl::decode(bytes, header),
        #[cfg(feature = "avif")]
        MediaType::Avif => crate::formats::avif::decode(bytes, header),
        #[cfg(not(feature = "avif"))]
        MediaType::Avif => Err(ImageError::decode("this build has no AVIF decoder")),
        // The first frame, composited as players show it.
        MediaType::Gif => crate::animation::frames(bytes, header)?
            .next_frame()?
            .map(|f| f.pixels)
            .ok_or_else(|| ImageError::decode("an animation without frames")),
        // An APNG whose animation control is broken is shown as its default image, as by
        // players that do not animate.
        MediaType::Apng => {
            match crate::animation::frames(bytes, header).and_then(|mut f| f.next_frame()) {
                Ok(Some(frame)) => Ok(frame.pixels),
                Ok(None) | Err(_) => decode_png(bytes, header),
            }
        }
    }
}

/// A HEIC's primary image by `heifer` (pure Rust; crop, rotation and mirror applied), a grid of
/// plain tiles assembled by [`crate::heic`] with each distinct tile decoded once; at 8 bits, on
/// one thread (images are the unit of parallelism here). An opaque alpha channel is dropped.
/// The size limit applies to every picture decoded or assembled, so it is the largest of them
/// the probe found (a grid's tile, a coded picture before its `clap` crop), not the image's own
/// size, which can be smaller.
#[cfg(feature = "heic")]
fn decode_heic(bytes: &[u8], header: &Header) -> Result<Pixels, ImageError> {
    let image =
        crate::heic::decode_rgba8(bytes, header.heic_largest_picture).map_err(decode_error)?;
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
    let layout = match jpeg.components {
        1 => jpeg_decode::Layout::Gray,
        // libjpeg converts YCCK to CMYK but never CMYK to RGB; that is done below.
        4 => jpeg_decode::Layout::Cmyk,
        _ => jpeg_decode::Layout::Rgb,
    };
    // The probe counted the scans; this holds libjpeg to that count whatever it finds.
    let decoded = jpeg_decode::decompress(
        bytes,
        (header.width, header.height),
        jpeg.precision,
        jpeg.scale_denom,
        layout,
        crate::probe::MAX_JPEG_SCANS as u32,
    )
    .map_err(decode_error)?;
    if let Some(warning) = &decoded.first_warning {
        tracing::debug!(%warning, count = decoded.benign_warnings, "libjpeg warning; image kept");
    }
    let (width, height) = (dim(decoded.width)?, dim(decoded.height)?);
    let mut buf = decoded.buf;
    Ok(if layout == jpeg_decode::Layout::Cmyk {
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
            channels: layout.channels() as u8,
            buf,
        }
    })
}

fn dim(n: usize) -> Result<u32, ImageError> {
    u32::try_from(n).map_err(|_| ImageError::decode(format!("dimension {n} out of range")))
}

/// Naive CMYK to RGB, for CMYK JPEGs without a profile. With an Adobe segment the samples are stored inverted
/// (255 = no ink), which is what nearly every CMYK JPEG in the wild is.
pub(crate) fn cmyk_to_rgb(cmyk: &[u8], adobe_inverted: bool) -> Vec<u8> {
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
