//! TIFF by the `tiff` crate: strips or tiles; uncompressed, LZW, Deflate, PackBits or JPEG (by
//! zune-jpeg); 1 to 16 bits a sample; gray, palette, RGB, CMYK, with alpha or not. A file of
//! several pages gives its first. The first directory's tags give the ICC profile, the
//! orientation and the camera fields the item keeps.

use std::io::Cursor;

use state::media::MediaType;
use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::tags::Tag;
use tiff::ColorType;

use crate::budget::{self, Estimate, MIB};
use crate::colour::{self, Source};
use crate::orientation::Orientation;
use crate::probe::{self, Header, MAX_ICC_BYTES};
use crate::{formats, metadata, ImageError, Pixels, Settings};

fn tiff_error(e: tiff::TiffError) -> ImageError {
    ImageError::decode(format!("TIFF: {e}"))
}

/// Bytes per sample as decoded (1 for 1 to 8 bits, 2 for 16), and the samples of a pixel.
fn layout(color: ColorType) -> Result<(u64, u64), ImageError> {
    let (bits, samples) = match color {
        ColorType::Gray(b) | ColorType::Palette(b) => (b, 1),
        ColorType::GrayA(b) => (b, 2),
        ColorType::RGB(b) | ColorType::YCbCr(b) => (b, 3),
        ColorType::RGBA(b) | ColorType::CMYK(b) => (b, 4),
        other => {
            return Err(ImageError::decode(format!(
                "TIFF: {other:?} pixels are not an image this decoder takes"
            )))
        }
    };
    match (color, bits) {
        (ColorType::Gray(_) | ColorType::Palette(_), 1 | 2 | 4 | 8) => Ok((1, samples)),
        (ColorType::Palette(_), _) => {
            Err(ImageError::decode("TIFF: a palette of more than 8 bits"))
        }
        (ColorType::YCbCr(_), 8) => Ok((1, samples)),
        (_, 8) => Ok((1, samples)),
        (ColorType::YCbCr(_), _) => Err(ImageError::decode("TIFF: YCbCr of more than 8 bits")),
        (_, 16) => Ok((2, samples)),
        (_, b) => Err(ImageError::decode(format!("TIFF: {b}-bit samples"))),
    }
}

/// Channels out of the decode: gray, RGB or RGBA (CMYK becomes RGB, gray + alpha RGBA).
fn decoded_channels(color: ColorType) -> u8 {
    match color {
        ColorType::Gray(_) => 1,
        ColorType::GrayA(_) | ColorType::RGBA(_) => 4,
        _ => 3,
    }
}

fn decoder(bytes: &[u8], native: u64) -> Result<Decoder<Cursor<&[u8]>>, ImageError> {
    let mut limits = Limits::default();
    // The image as the decoder returns it, and the ICC profile among the tag values.
    limits.decoding_buffer_size = usize::try_from(native + MIB).unwrap_or(usize::MAX);
    limits.ifd_value_size = MAX_ICC_BYTES;
    Ok(Decoder::new(Cursor::new(bytes))
        .map_err(tiff_error)?
        .with_limits(limits))
}

fn ascii(d: &mut Decoder<Cursor<&[u8]>>, tag: Tag) -> Option<String> {
    d.find_tag(tag)
        .ok()
        .flatten()
        .and_then(|v| v.into_string().ok())
}

pub(crate) fn probe(bytes: &[u8], settings: &Settings) -> Result<Header, ImageError> {
    let mut d = decoder(bytes, 0)?;
    let (width, height) = d.dimensions().map_err(tiff_error)?;
    probe::check_pixels(width, height, settings)?;
    let color = d.colortype().map_err(tiff_error)?;
    let (sample_bytes, samples) = layout(color)?;
    let mut warnings = Vec::new();
    let icc = probe::usable_icc(
        d.find_tag(Tag::IccProfile)
            .and_then(|v| v.map(|v| v.into_u8_vec()).transpose()),
        &mut warnings,
    );
    let orientation_tag = d.find_tag_unsigned::<u16>(Tag::Orientation).ok().flatten();
    let blob = formats::exif_blob(
        ascii(&mut d, Tag::Make).as_deref(),
        ascii(&mut d, Tag::Model).as_deref(),
        ascii(&mut d, Tag::DateTime).as_deref(),
        orientation_tag.filter(|o| (1..=8).contains(o)),
    );
    let exif = probe::read_exif(blob.as_deref(), &mut warnings);
    let orientation = exif
        .as_ref()
        .map_or(Orientation::NoTransforms, metadata::orientation);
    let (w, h) = (u64::from(width), u64::from(height));
    let native = budget::pixels(w, h, samples * sample_bytes);
    let channels = decoded_channels(color);
    // The image as decoded; one strip or tile and its compressed bytes (at most the whole image
    // in one strip); the 8-bit image; the widened or converted copy (gray + alpha, CMYK).
    let decode =
        native * 2 + bytes.len() as u64 + budget::pixels(w, h, u64::from(channels)) * 2 + 2 * MIB;
    let metadata =
        icc.as_ref().map_or(0, |p| p.len() as u64 * 3) + blob.map_or(0, |b| b.len() as u64 * 130);
    Ok(probe::header_of(
        MediaType::Tiff,
        (width, height),
        Estimate {
            original: bytes.len() as u64,
            metadata,
            decode,
            fixed: 2 * MIB,
            ..Estimate::default()
        },
        channels,
        settings,
        |hd| {
            hd.orientation = orientation;
            hd.exif = exif;
            hd.warnings = warnings;
            hd.icc = icc;
            // CMYK goes to RGB through a CMYK profile; other pixels are gray or RGB by channels.
            if matches!(color, ColorType::CMYK(_)) {
                hd.model = colour::Model::Cmyk;
            }
        },
    ))
}

/// The first page, at 8 bits. CMYK goes through `source`'s CMYK profile when there is one. The
/// `tiff` crate asserts on some layouts it does not take (separate planes of some sizes): that is
/// this image's error, not the process's.
pub(crate) fn decode(bytes: &[u8], header: &Header, source: &Source) -> Result<Pixels, ImageError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_page(bytes, header, source)
    }))
    .unwrap_or_else(|_| {
        Err(ImageError::decode(
            "TIFF: a layout the decoder does not take",
        ))
    })
}

fn decode_page(bytes: &[u8], header: &Header, source: &Source) -> Result<Pixels, ImageError> {
    let (w, h) = (u64::from(header.width), u64::from(header.height));
    let mut d = decoder(bytes, budget::pixels(w, h, 8))?;
    if d.dimensions().map_err(tiff_error)? != (header.width, header.height) {
        return Err(ImageError::decode("TIFF size differs from its header"));
    }
    let color = d.colortype().map_err(tiff_error)?;
    let (_, samples) = layout(color)?;
    let palette = match color {
        ColorType::Palette(_) => Some(d.get_tag_u16_vec(Tag::ColorMap).map_err(tiff_error)?),
        _ => None,
    };
    // Separate planes (PlanarConfiguration 2) are read whole and interleaved below.
    let planar = d
        .find_tag_unsigned::<u16>(Tag::PlanarConfiguration)
        .ok()
        .flatten()
        == Some(2);
    let associated_alpha = d
        .find_tag_unsigned_vec::<u16>(Tag::ExtraSamples)
        .ok()
        .flatten()
        .is_some_and(|v| v.first() == Some(&1));
    let mut image = match color.bit_depth() {
        16 => DecodingResult::U16(Vec::new()),
        _ => DecodingResult::U8(Vec::new()),
    };
    d.read_image_to_buffer(&mut image).map_err(tiff_error)?;
    let image = if planar {
        interleave(image, samples as usize)
    } else {
        image
    };
    let n = (w * h * samples) as usize;
    let mut samples8: Vec<u8> = match (image, color.bit_depth()) {
        (DecodingResult::U8(v), 8) => v,
        (DecodingResult::U8(v), bits @ (1 | 2 | 4)) => {
            unpack(&v, header.width, header.height, bits)
        }
        (DecodingResult::U16(v), 16) => v.into_iter().map(formats::to_8bit).collect(),
        _ => return Err(ImageError::decode("TIFF: samples of an unexpected type")),
    };
    if samples8.len() < n {
        return Err(ImageError::decode("TIFF: image data cut short"));
    }
    samples8.truncate(n);
    let (width, height) = (header.width, header.height);
    Ok(match color {
        ColorType::Gray(bits) => {
            if bits < 8 {
                let max = (1u16 << bits) - 1;
                samples8
                    .iter_mut()
                    .for_each(|v| *v = (u16::from(*v) * 255 / max) as u8);
            }
            formats::pixels(width, height, 1, samples8)
        }
        ColorType::Palette(bits) => {
            let map = palette.unwrap_or_default();
            let entries = map.len() / 3;
            if entries < 1usize << bits.min(8) && entries == 0 {
                return Err(ImageError::decode(
                    "TIFF: a palette image without its colour map",
                ));
            }
            let rgb = samples8
                .iter()
                .flat_map(|&i| {
                    let i = usize::from(i).min(entries - 1);
                    [map[i], map[entries + i], map[2 * entries + i]].map(|c| (c >> 8) as u8)
                })
                .collect();
            formats::pixels(width, height, 3, rgb)
        }
        ColorType::GrayA(_) => formats::pixels(width, height, 2, samples8),
        ColorType::RGB(_) => formats::pixels(width, height, 3, samples8),
        ColorType::RGBA(_) if associated_alpha => {
            formats::pixels(width, height, 4, unpremultiply(samples8))
        }
        ColorType::RGBA(_) => formats::pixels(width, height, 4, samples8),
        ColorType::YCbCr(_) => formats::pixels(width, height, 3, ycbcr_to_rgb(samples8)),
        ColorType::CMYK(_) => {
            let rgb = match source {
                Source::Cmyk(conversion) => colour::cmyk_to_srgb(&mut samples8, false, conversion)?,
                _ => crate::decode::cmyk_to_rgb(&samples8, false),
            };
            formats::pixels(width, height, 3, rgb)
        }
        _ => unreachable!("refused by layout()"),
    })
}

/// Rows of `bits`-bit samples (each row starting on a byte) to one byte each.
fn unpack(packed: &[u8], width: u32, height: u32, bits: u8) -> Vec<u8> {
    let row_bytes = (width as usize * usize::from(bits)).div_ceil(8);
    let per_byte = 8 / usize::from(bits);
    let mask = (1u16 << bits) as u8 - 1;
    let mut out = Vec::with_capacity(width as usize * height as usize);
    for row in packed.chunks(row_bytes).take(height as usize) {
        for x in 0..width as usize {
            let byte = row.get(x / per_byte).copied().unwrap_or(0);
            let shift = 8 - usize::from(bits) * (x % per_byte + 1);
            out.push((byte >> shift) & mask);
        }
    }
    out
}

/// JPEG's YCbCr (JFIF, full range, BT.601) to RGB: what a JPEG-compressed TIFF decodes to.
fn ycbcr_to_rgb(mut buf: Vec<u8>) -> Vec<u8> {
    for px in buf.chunks_exact_mut(3) {
        let y = f32::from(px[0]);
        let cb = f32::from(px[1]) - 128.0;
        let cr = f32::from(px[2]) - 128.0;
        px[0] = (y + 1.402 * cr).round().clamp(0.0, 255.0) as u8;
        px[1] = (y - 0.344_136 * cb - 0.714_136 * cr)
            .round()
            .clamp(0.0, 255.0) as u8;
        px[2] = (y + 1.772 * cb).round().clamp(0.0, 255.0) as u8;
    }
    buf
}

/// Planes one after another to samples interleaved per pixel.
fn interleave(image: DecodingResult, samples: usize) -> DecodingResult {
    fn go<T: Copy + Default>(v: Vec<T>, samples: usize) -> Vec<T> {
        let n = v.len() / samples;
        let mut out = vec![T::default(); n * samples];
        for (s, plane) in v.chunks_exact(n).enumerate() {
            for (i, &x) in plane.iter().enumerate() {
                out[i * samples + s] = x;
            }
        }
        out
    }
    match image {
        DecodingResult::U8(v) => DecodingResult::U8(go(v, samples)),
        DecodingResult::U16(v) => DecodingResult::U16(go(v, samples)),
        other => other,
    }
}

/// Colour premultiplied by alpha (TIFF's associated alpha) to straight colour.
fn unpremultiply(mut rgba: Vec<u8>) -> Vec<u8> {
    for px in rgba.chunks_exact_mut(4) {
        let a = u16::from(px[3]);
        if a != 0 && a != 255 {
            for c in &mut px[..3] {
                *c = ((u16::from(*c) * 255 + a / 2) / a).min(255) as u8;
            }
        }
    }
    rgba
}
