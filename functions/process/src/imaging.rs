//! Decode once, make every rendition from that one image.
//!
//! The order of work is what keeps it fast and bounded:
//! 1. the header alone gives the format, the stored dimensions and (for JPEG) the EXIF block; the
//!    dimensions are checked against the pixel budget before a single pixel is allocated, so a
//!    decompression bomb costs a header read;
//! 2. a JPEG is decoded by libjpeg-turbo at the smallest DCT scale (1/8, 1/4, 1/2) that still covers
//!    the largest rendition, so a 20 MP photo is never expanded to 20 MP of pixels;
//! 3. every rendition is resized from that one buffer with `fast_image_resize` (SIMD, Lanczos3),
//!    then turned upright (EXIF orientation) at its own small size, then encoded: JPEG by
//!    libjpeg-turbo (alpha flattened on white), PNG by the `png` crate (alpha kept).
//!
//! Renditions carry no metadata at all (no EXIF, so no GPS). Width and height are reported as the
//! image is displayed, after orientation.

use std::collections::BTreeMap;
use std::io::Cursor;

use bytes::Bytes;
use fast_image_resize::images::{Image as FirImage, ImageRef as FirImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::metadata::Orientation;
use image::{DynamicImage, ExtendedColorType, ImageDecoder, ImageEncoder, ImageReader, Limits};

use crate::{Format, RenditionSpec, Settings, Size};

/// Why an image cannot be processed. All of these are permanent: the same bytes give the same error.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("not a JPEG or PNG image")]
    Unsupported,
    #[error("image is {width}x{height} ({pixels} pixels), over the budget of {budget} pixels")]
    TooManyPixels {
        width: u32,
        height: u32,
        pixels: u64,
        budget: u64,
    },
    #[error("image does not decode: {0}")]
    Decode(String),
    #[error("rendition {name} could not be encoded: {reason}")]
    Encode { name: String, reason: String },
}

pub struct Output {
    pub spec: RenditionSpec,
    pub bytes: Bytes,
    /// Pixel size of the rendition, as displayed.
    pub width: u32,
    pub height: u32,
}

pub struct Rendered {
    /// As displayed (after EXIF orientation).
    pub width: u32,
    pub height: u32,
    pub format: &'static str,
    /// `make`, `model`, `taken_at` (ISO 8601, camera local time), `orientation` (1..=8), when present.
    pub exif: BTreeMap<String, String>,
    pub renditions: Vec<Output>,
    /// Size of the one decoded buffer every rendition was made from (stored orientation). For a JPEG
    /// this is the DCT-scaled size, e.g. 1/4 of the original's.
    pub decoded_width: u32,
    pub decoded_height: u32,
}

pub fn render(bytes: &[u8], settings: &Settings) -> Result<Rendered, ImageError> {
    match sniff(bytes) {
        Some(Kind::Jpeg) => render_jpeg(bytes, settings),
        Some(Kind::Png) => render_png(bytes, settings),
        None => Err(ImageError::Unsupported),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Jpeg,
    Png,
}

fn sniff(bytes: &[u8]) -> Option<Kind> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Kind::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Kind::Png)
    } else {
        None
    }
}

/// Decoded pixels, 8 bits per channel, rows packed: 1 (gray), 3 (RGB) or 4 (RGBA) channels.
struct Pixels {
    width: u32,
    height: u32,
    channels: u8,
    buf: Vec<u8>,
}

impl Pixels {
    fn pixel_type(&self) -> PixelType {
        match self.channels {
            1 => PixelType::U8,
            3 => PixelType::U8x3,
            _ => PixelType::U8x4,
        }
    }
}

fn check_budget(width: u32, height: u32, settings: &Settings) -> Result<(), ImageError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > settings.max_pixels || width == 0 || height == 0 {
        return Err(ImageError::TooManyPixels {
            width,
            height,
            pixels,
            budget: settings.max_pixels,
        });
    }
    Ok(())
}

/// Orientations 5 to 8 turn the image a quarter: displayed width is stored height.
fn swaps_axes(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// Each rendition's size in the stored orientation, from the stored size and the orientation.
fn stored_targets(width: u32, height: u32, o: Orientation, settings: &Settings) -> Vec<(u32, u32)> {
    let swap = swaps_axes(o);
    let (dw, dh) = if swap {
        (height, width)
    } else {
        (width, height)
    };
    settings
        .renditions
        .iter()
        .map(|spec| {
            let (w, h) = target_size(dw, dh, spec.size);
            if swap {
                (h, w)
            } else {
                (w, h)
            }
        })
        .collect()
}

fn render_jpeg(bytes: &[u8], settings: &Settings) -> Result<Rendered, ImageError> {
    let segments = jpeg_segments(bytes);
    let mut decompressor = turbojpeg::Decompressor::new().map_err(decode_error)?;
    let header = decompressor.read_header(bytes).map_err(decode_error)?;
    let (width, height) = (dim(header.width)?, dim(header.height)?);
    check_budget(width, height, settings)?;
    if !jpeg_is_complete(bytes) {
        // libjpeg would fill the missing rows with grey and call it a picture.
        return Err(ImageError::Decode(
            "truncated JPEG (no end-of-image marker after the image data)".into(),
        ));
    }
    let exif = segments
        .exif
        .and_then(|tiff| exif::Reader::new().read_raw(tiff.to_vec()).ok());
    let orientation = exif.as_ref().map_or(Orientation::NoTransforms, orientation);
    let targets = stored_targets(width, height, orientation, settings);
    let need = targets
        .iter()
        .fold((1, 1), |(w, h), &(tw, th)| (w.max(tw), h.max(th)));
    let denom = dct_scale(width, height, need);
    let scale = turbojpeg::ScalingFactor::new(1, denom as usize);
    decompressor
        .set_scaling_factor(scale)
        .map_err(decode_error)?;
    let scaled = header.scaled(scale);
    let cmyk = matches!(
        header.colorspace,
        turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK
    );
    let (format, channels) = match header.colorspace {
        turbojpeg::Colorspace::Gray => (turbojpeg::PixelFormat::GRAY, 1),
        // libjpeg converts YCCK to CMYK but never CMYK to RGB; that is done below.
        _ if cmyk => (turbojpeg::PixelFormat::CMYK, 4),
        _ => (turbojpeg::PixelFormat::RGB, 3),
    };
    let mut buf = vec![0u8; scaled.width * scaled.height * channels];
    let image = turbojpeg::Image {
        pixels: buf.as_mut_slice(),
        width: scaled.width,
        pitch: scaled.width * channels,
        height: scaled.height,
        format,
    };
    if let Err(e) = decompressor.decompress(bytes, image) {
        // TurboJPEG reports libjpeg's warnings as failures, though the pixels are all there. Keep
        // the harmless ones (junk between markers, odd JFIF/ICC/Adobe headers); fail on the rest
        // (bad Huffman codes, premature end: the picture would be grey or smeared).
        let msg = e.to_string();
        let benign = [
            "extraneous bytes before marker",
            "unknown JFIF revision",
            "Unknown Adobe color transform",
            "bad ICC marker",
        ];
        if !benign.iter().any(|b| msg.contains(b)) {
            return Err(decode_error(e));
        }
        tracing::debug!(warning = %msg, "libjpeg warning; image kept");
    }
    let pixels = if cmyk {
        Pixels {
            width: dim(scaled.width)?,
            height: dim(scaled.height)?,
            channels: 3,
            buf: cmyk_to_rgb(&buf, segments.adobe),
        }
    } else {
        Pixels {
            width: dim(scaled.width)?,
            height: dim(scaled.height)?,
            channels: channels as u8,
            buf,
        }
    };
    finish(
        "jpeg",
        (width, height),
        orientation,
        exif.as_ref(),
        pixels,
        settings,
    )
}

fn render_png(bytes: &[u8], settings: &Settings) -> Result<Rendered, ImageError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image::ImageFormat::Png);
    let mut limits = Limits::default();
    // The budget at up to 16-bit RGBA, plus the decoder's own working memory.
    limits.max_alloc = Some(
        settings
            .max_pixels
            .saturating_mul(8)
            .saturating_add(64 << 20),
    );
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| ImageError::Decode(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    check_budget(width, height, settings)?;
    let exif = decoder
        .exif_metadata()
        .ok()
        .flatten()
        .and_then(|raw| exif::Reader::new().read_raw(raw).ok());
    let orientation = exif.as_ref().map_or(Orientation::NoTransforms, orientation);
    let image =
        DynamicImage::from_decoder(decoder).map_err(|e| ImageError::Decode(e.to_string()))?;
    let color = image.color();
    let pixels = if color.has_alpha() {
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
    };
    finish(
        "png",
        (width, height),
        orientation,
        exif.as_ref(),
        pixels,
        settings,
    )
}

fn finish(
    format: &'static str,
    (width, height): (u32, u32),
    orientation: Orientation,
    exif: Option<&exif::Exif>,
    pixels: Pixels,
    settings: &Settings,
) -> Result<Rendered, ImageError> {
    let targets = stored_targets(width, height, orientation, settings);
    let mut resizer = Resizer::new();
    let mut jpeg = None;
    let renditions = settings
        .renditions
        .iter()
        .zip(targets)
        .map(|(spec, target)| {
            let encode_error = |reason: String| ImageError::Encode {
                name: spec.name.clone(),
                reason,
            };
            let small = resize(&mut resizer, &pixels, target).map_err(encode_error)?;
            let small = orient(small, orientation);
            let (w, h) = (small.width, small.height);
            let bytes = match spec.format {
                Format::Jpeg => {
                    let compressor = match &mut jpeg {
                        Some(c) => c,
                        None => jpeg.insert(jpeg_compressor(settings.jpeg_quality)?),
                    };
                    encode_jpeg(compressor, &small)
                }
                Format::Png => encode_png(&small),
            }
            .map_err(encode_error)?;
            Ok(Output {
                spec: spec.clone(),
                bytes,
                width: w,
                height: h,
            })
        })
        .collect::<Result<Vec<_>, ImageError>>()?;
    let (width, height) = if swaps_axes(orientation) {
        (height, width)
    } else {
        (width, height)
    };
    Ok(Rendered {
        width,
        height,
        format,
        exif: exif.map(exif_subset).unwrap_or_default(),
        renditions,
        decoded_width: pixels.width,
        decoded_height: pixels.height,
    })
}

fn dim(n: usize) -> Result<u32, ImageError> {
    u32::try_from(n).map_err(|_| ImageError::Decode(format!("dimension {n} out of range")))
}

fn decode_error(e: turbojpeg::Error) -> ImageError {
    ImageError::Decode(e.to_string())
}

/// The DCT scale denominator (1, 2, 4 or 8) to decode a `width`x`height` JPEG at: the smallest
/// scale whose output (rounded up, as libjpeg does) is still at least `need` in both directions.
pub fn dct_scale(width: u32, height: u32, need: (u32, u32)) -> u32 {
    [8, 4, 2]
        .into_iter()
        .find(|&d| width.div_ceil(d) >= need.0 && height.div_ceil(d) >= need.1)
        .unwrap_or(1)
}

/// What the header segments of a JPEG hold that libjpeg does not tell: the EXIF block (TIFF bytes,
/// without the `Exif\0\0` prefix) and whether an Adobe APP14 segment is present (which says that
/// CMYK samples are stored inverted, as Photoshop writes them).
#[derive(Default)]
struct Segments<'a> {
    exif: Option<&'a [u8]>,
    adobe: bool,
}

fn jpeg_segments(bytes: &[u8]) -> Segments<'_> {
    let mut found = Segments::default();
    let mut i = 2; // after SOI
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            break;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            break; // start of scan: no more header segments
        }
        if marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            i += 2;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        let Some(body) = bytes.get(i + 4..i + 2 + len.max(2)) else {
            break;
        };
        match marker {
            0xE1 if found.exif.is_none() && body.starts_with(b"Exif\0\0") => {
                found.exif = Some(&body[6..]);
            }
            0xEE if body.starts_with(b"Adobe") => found.adobe = true,
            _ => {}
        }
        i += 2 + len;
    }
    found
}

/// A JPEG's last end-of-image marker (FF D9) comes after its last start-of-scan (FF DA). Scan data
/// cannot hold either (an FF there is stuffed as FF 00), and an EXIF thumbnail's own markers come
/// before the main image's scans, so this finds files cut short while tolerating trailing data.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    matches!((last(0xDA), last(0xD9)), (Some(sos), Some(eoi)) if eoi > sos)
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

fn orientation(exif: &exif::Exif) -> Orientation {
    exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .and_then(|v| u8::try_from(v).ok())
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms)
}

/// The EXIF fields the item keeps: `make`, `model`, `taken_at`, `orientation`.
fn exif_subset(exif: &exif::Exif) -> BTreeMap<String, String> {
    let ascii = |tag: exif::Tag| -> Option<String> {
        match &exif.get_field(tag, exif::In::PRIMARY)?.value {
            exif::Value::Ascii(parts) => {
                let text = String::from_utf8_lossy(parts.first()?);
                let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
                (!text.is_empty()).then(|| text.to_owned())
            }
            _ => None,
        }
    };
    let taken_at = [exif::Tag::DateTimeOriginal, exif::Tag::DateTime]
        .into_iter()
        .find_map(|tag| {
            let field = exif.get_field(tag, exif::In::PRIMARY)?;
            let exif::Value::Ascii(parts) = &field.value else {
                return None;
            };
            let t = exif::DateTime::from_ascii(parts.first()?).ok()?;
            Some(format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                t.year, t.month, t.day, t.hour, t.minute, t.second
            ))
        });
    let orientation = exif
        .get_field(exif::Tag::Orientation, exif::In::PRIMARY)
        .and_then(|f| f.value.get_uint(0))
        .filter(|v| (1..=8).contains(v))
        .map(|v| v.to_string());
    [
        ("make", ascii(exif::Tag::Make)),
        ("model", ascii(exif::Tag::Model)),
        ("taken_at", taken_at),
        ("orientation", orientation),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_owned(), v?)))
    .collect()
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
fn resize(resizer: &mut Resizer, src: &Pixels, (w, h): (u32, u32)) -> Result<Pixels, String> {
    if (w, h) == (src.width, src.height) {
        return Ok(Pixels {
            buf: src.buf.clone(),
            ..*src
        });
    }
    let from = FirImageRef::new(src.width, src.height, &src.buf, src.pixel_type())
        .map_err(|e| e.to_string())?;
    let mut to = FirImage::new(w, h, src.pixel_type());
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    resizer
        .resize(&from, &mut to, &options)
        .map_err(|e| e.to_string())?;
    Ok(Pixels {
        width: w,
        height: h,
        channels: src.channels,
        buf: to.into_vec(),
    })
}

/// Turn a (small) rendition upright.
fn orient(p: Pixels, o: Orientation) -> Pixels {
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

fn jpeg_compressor(quality: u8) -> Result<turbojpeg::Compressor, ImageError> {
    let encode = |e: turbojpeg::Error| ImageError::Encode {
        name: "jpeg".into(),
        reason: e.to_string(),
    };
    let mut c = turbojpeg::Compressor::new().map_err(encode)?;
    c.set_quality(i32::from(quality)).map_err(encode)?;
    c.set_subsamp(turbojpeg::Subsamp::Sub2x2).map_err(encode)?;
    c.set_optimize(true).map_err(encode)?;
    Ok(c)
}

fn encode_jpeg(c: &mut turbojpeg::Compressor, p: &Pixels) -> Result<Bytes, String> {
    let flat;
    let (buf, format) = match p.channels {
        1 => {
            c.set_subsamp(turbojpeg::Subsamp::Gray)
                .map_err(|e| e.to_string())?;
            (&p.buf, turbojpeg::PixelFormat::GRAY)
        }
        3 => (&p.buf, turbojpeg::PixelFormat::RGB),
        _ => {
            flat = flatten_on_white(&p.buf);
            (&flat, turbojpeg::PixelFormat::RGB)
        }
    };
    let bpp = format.size();
    let out = c.compress_to_vec(turbojpeg::Image {
        pixels: buf.as_slice(),
        width: p.width as usize,
        pitch: p.width as usize * bpp,
        height: p.height as usize,
        format,
    });
    if p.channels == 1 {
        c.set_subsamp(turbojpeg::Subsamp::Sub2x2)
            .map_err(|e| e.to_string())?;
    }
    out.map(Bytes::from).map_err(|e| e.to_string())
}

fn encode_png(p: &Pixels) -> Result<Bytes, String> {
    let mut out = Vec::new();
    let color = match p.channels {
        1 => ExtendedColorType::L8,
        3 => ExtendedColorType::Rgb8,
        _ => ExtendedColorType::Rgba8,
    };
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, PngFilter::Adaptive)
        .write_image(&p.buf, p.width, p.height, color)
        .map_err(|e| e.to_string())?;
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

/// Hooks for the criterion benches (`cargo bench -p process`); not part of the API.
#[doc(hidden)]
pub mod bench {
    use super::*;

    /// Decode a JPEG at 1/`denom` scale to RGB.
    pub fn decode_jpeg_scaled(bytes: &[u8], denom: u32) -> (u32, u32, Vec<u8>) {
        let mut d = turbojpeg::Decompressor::new().unwrap();
        let scale = turbojpeg::ScalingFactor::new(1, denom as usize);
        d.set_scaling_factor(scale).unwrap();
        let h = d.read_header(bytes).unwrap().scaled(scale);
        let mut buf = vec![0; h.width * h.height * 3];
        d.decompress(
            bytes,
            turbojpeg::Image {
                pixels: buf.as_mut_slice(),
                width: h.width,
                pitch: h.width * 3,
                height: h.height,
                format: turbojpeg::PixelFormat::RGB,
            },
        )
        .unwrap();
        (h.width as u32, h.height as u32, buf)
    }

    /// Lanczos3 resize of packed RGB.
    pub fn resize_rgb(src: (u32, u32, &[u8]), to: (u32, u32)) -> Vec<u8> {
        let p = Pixels {
            width: src.0,
            height: src.1,
            channels: 3,
            buf: src.2.to_vec(),
        };
        resize(&mut Resizer::new(), &p, to).unwrap().buf
    }

    /// JPEG q80 encode of packed RGB.
    pub fn encode_jpeg_rgb(w: u32, h: u32, rgb: &[u8]) -> Bytes {
        let p = Pixels {
            width: w,
            height: h,
            channels: 3,
            buf: rgb.to_vec(),
        };
        encode_jpeg(&mut jpeg_compressor(80).unwrap(), &p).unwrap()
    }

    /// PNG (fast) encode of packed RGB.
    pub fn encode_png_rgb(w: u32, h: u32, rgb: &[u8]) -> Bytes {
        let p = Pixels {
            width: w,
            height: h,
            channels: 3,
            buf: rgb.to_vec(),
        };
        encode_png(&p).unwrap()
    }

    /// The EXIF subset of a JPEG.
    pub fn read_exif(bytes: &[u8]) -> BTreeMap<String, String> {
        jpeg_segments(bytes)
            .exif
            .and_then(|t| exif::Reader::new().read_raw(t.to_vec()).ok())
            .map(|e| exif_subset(&e))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
