//! Decode once, make every rendition from that one image.
//!
//! The header is read first and its dimensions checked against the pixel budget, so a decompression
//! bomb is refused before a single pixel is allocated. Orientation from EXIF is applied, so width,
//! height and renditions are as the image is displayed.

use std::collections::BTreeMap;
use std::io::Cursor;

use bytes::Bytes;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

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
}

pub struct Rendered {
    /// As displayed (after EXIF orientation).
    pub width: u32,
    pub height: u32,
    pub format: &'static str,
    pub exif: BTreeMap<String, String>,
    pub renditions: Vec<Output>,
}

pub fn render(bytes: &[u8], settings: &Settings) -> Result<Rendered, ImageError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Decode(e.to_string()))?;
    let format = match reader.format() {
        Some(ImageFormat::Jpeg) => "jpeg",
        Some(ImageFormat::Png) => "png",
        _ => return Err(ImageError::Unsupported),
    };
    if format == "jpeg" && !jpeg_is_complete(bytes) {
        // The decoder would fill the missing rows with grey and call it a picture.
        return Err(ImageError::Decode(
            "truncated JPEG (no end-of-image marker after the image data)".into(),
        ));
    }
    let mut reader = reader;
    let mut limits = Limits::default();
    // Output buffer for the budget at up to 16-bit RGBA, plus the decoder's own working memory.
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
    let pixels = u64::from(width) * u64::from(height);
    if pixels > settings.max_pixels {
        return Err(ImageError::TooManyPixels {
            width,
            height,
            pixels,
            budget: settings.max_pixels,
        });
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|e| ImageError::Decode(e.to_string()))?;
    image.apply_orientation(orientation);

    let renditions = settings
        .renditions
        .iter()
        .map(|spec| {
            let resized = resize(&image, spec.size);
            let bytes = encode(&resized, spec.format, settings.jpeg_quality).map_err(|reason| {
                ImageError::Encode {
                    name: spec.name.clone(),
                    reason,
                }
            })?;
            Ok(Output {
                spec: spec.clone(),
                bytes,
            })
        })
        .collect::<Result<Vec<_>, ImageError>>()?;
    Ok(Rendered {
        width: image.width(),
        height: image.height(),
        format,
        exif: BTreeMap::new(),
        renditions,
    })
}

/// A JPEG's last end-of-image marker (FF D9) comes after its last start-of-scan (FF DA). Scan data
/// cannot hold either (an FF there is stuffed as FF 00), and an EXIF thumbnail's own markers come
/// before the main image's scans, so this finds files cut short while tolerating trailing data.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    matches!((last(0xDA), last(0xD9)), (Some(sos), Some(eoi)) if eoi > sos)
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

fn resize(image: &DynamicImage, size: Size) -> DynamicImage {
    let (w, h) = target_size(image.width(), image.height(), size);
    if (w, h) == (image.width(), image.height()) {
        return image.clone();
    }
    image.resize_exact(w, h, FilterType::Triangle)
}

fn encode(image: &DynamicImage, format: Format, quality: u8) -> Result<Bytes, String> {
    let mut out = Vec::new();
    match format {
        Format::Jpeg => {
            let rgb = flatten_on_white(image);
            JpegEncoder::new_with_quality(&mut out, quality)
                .encode_image(&rgb)
                .map_err(|e| e.to_string())?;
        }
        Format::Png => {
            let encoder =
                PngEncoder::new_with_quality(&mut out, CompressionType::Fast, PngFilter::Adaptive);
            let image = match image {
                // 16-bit is more than a rendition needs; 8-bit halves its size.
                DynamicImage::ImageRgba16(_)
                | DynamicImage::ImageRgba32F(_)
                | DynamicImage::ImageLumaA16(_) => DynamicImage::ImageRgba8(image.to_rgba8()),
                DynamicImage::ImageRgb16(_)
                | DynamicImage::ImageRgb32F(_)
                | DynamicImage::ImageLuma16(_) => DynamicImage::ImageRgb8(image.to_rgb8()),
                other => other.clone(),
            };
            image
                .write_with_encoder(encoder)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(Bytes::from(out))
}

/// JPEG has no alpha: composite over white rather than let transparent pixels turn black.
fn flatten_on_white(image: &DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.to_rgb8();
    }
    let rgba = image.to_rgba8();
    let mut rgb = RgbImage::new(rgba.width(), rgba.height());
    for (dst, src) in rgb.pixels_mut().zip(rgba.pixels()) {
        let a = u16::from(src[3]);
        for c in 0..3 {
            dst[c] = ((u16::from(src[c]) * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_sizes_fit_and_never_upscale() {
        let fit = Size::Fit {
            width: 128,
            height: 128,
        };
        assert_eq!(target_size(4000, 3000, fit), (128, 96));
        assert_eq!(target_size(3000, 4000, fit), (96, 128));
        assert_eq!(target_size(100, 50, fit), (100, 50));
        assert_eq!(target_size(1920, 1280, Size::Width(640)), (640, 427));
        assert_eq!(target_size(10_000, 1, fit), (128, 1));
    }

    fn png(image: DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn transparent_pixels_become_white_in_jpeg_renditions() {
        let clear = image::RgbaImage::from_pixel(300, 200, image::Rgba([0, 0, 0, 0]));
        let r = render(&png(DynamicImage::ImageRgba8(clear)), &Settings::default()).unwrap();
        let thumb = image::load_from_memory(&r.renditions[0].bytes)
            .unwrap()
            .to_rgb8();
        assert_eq!((thumb.width(), thumb.height()), (128, 85));
        let p = thumb.get_pixel(64, 40);
        assert!(p.0.iter().all(|&c| c > 245), "{p:?}");
    }

    #[test]
    fn an_image_over_the_budget_is_refused_from_its_header() {
        let big = png(DynamicImage::new_luma8(2000, 2000));
        let settings = Settings {
            max_pixels: 1_000_000,
            ..Settings::default()
        };
        let err = render(&big, &settings).err().unwrap();
        assert!(
            matches!(
                err,
                ImageError::TooManyPixels {
                    pixels: 4_000_000,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn text_is_not_an_image() {
        assert!(matches!(
            render(b"hello, world", &Settings::default()),
            Err(ImageError::Unsupported)
        ));
    }
}
