//! What the header says, before any pixel is allocated: format, stored size, EXIF and its
//! orientation, each rendition's target size, and (for JPEG) the DCT scale to decode at.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{ImageDecoder, ImageReader};
use state::media::{sniff, MediaType};

use crate::{metadata, resize::target_size, ImageError, Settings};

/// An image's header, read and checked against the budget.
pub struct Header {
    pub format: MediaType,
    /// As stored (before orientation).
    pub width: u32,
    pub height: u32,
    pub orientation: Orientation,
    pub exif: Option<exif::Exif>,
    /// Each rendition's pixel size in the stored orientation, in the order of the settings.
    pub targets: Vec<(u32, u32)>,
    pub jpeg: Option<JpegHeader>,
    /// The most the PNG decoder may allocate.
    pub(crate) max_alloc: u64,
}

/// What a JPEG's header tells the decoder.
pub struct JpegHeader {
    /// Decode at 1/`scale_denom` (1, 2, 4 or 8).
    pub scale_denom: u32,
    /// 1 (gray), 3 (YCbCr or RGB: decoded to RGB) or 4 (CMYK or YCCK: decoded to CMYK).
    pub components: u8,
    /// An Adobe APP14 segment: CMYK samples are stored inverted, as Photoshop writes them.
    pub adobe: bool,
}

impl Header {
    /// The size as displayed, after orientation.
    pub fn displayed_size(&self) -> (u32, u32) {
        if swaps_axes(self.orientation) {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }
}

/// Reads and checks the header of `bytes`.
pub fn probe(bytes: &[u8], settings: &Settings) -> Result<Header, ImageError> {
    match sniff(bytes)? {
        MediaType::Jpeg => probe_jpeg(bytes, settings),
        MediaType::Png => probe_png(bytes, settings),
    }
}

fn probe_jpeg(bytes: &[u8], settings: &Settings) -> Result<Header, ImageError> {
    let segments = jpeg_segments(bytes);
    // The frame header is read here rather than by libjpeg: TurboJPEG fails a header read on any
    // warning (an odd JFIF version, say), though the decode it warns about is whole.
    let frame = segments
        .frame
        .ok_or_else(|| ImageError::decode("no JPEG frame header (SOF) before the image data"))?;
    let (width, height) = (u32::from(frame.width), u32::from(frame.height));
    check_budget(width, height, settings)?;
    if !matches!(frame.components, 1 | 3 | 4) {
        return Err(ImageError::decode(format!(
            "a JPEG of {} components (1, 3 or 4 are images)",
            frame.components
        )));
    }
    if !jpeg_is_complete(bytes) {
        // libjpeg would fill the missing rows with grey and call it a picture.
        return Err(ImageError::decode(
            "truncated JPEG (no end-of-image marker after the image data)",
        ));
    }
    let exif = segments
        .exif
        .and_then(|tiff| exif::Reader::new().read_raw(tiff.to_vec()).ok());
    let orientation = exif
        .as_ref()
        .map_or(Orientation::NoTransforms, metadata::orientation);
    let targets = stored_targets(width, height, orientation, settings);
    let need = targets
        .iter()
        .fold((1, 1), |(w, h), &(tw, th)| (w.max(tw), h.max(th)));
    Ok(Header {
        format: MediaType::Jpeg,
        width,
        height,
        orientation,
        exif,
        targets,
        jpeg: Some(JpegHeader {
            scale_denom: dct_scale(width, height, need),
            components: frame.components,
            adobe: segments.adobe,
        }),
        max_alloc: 0,
    })
}

/// The PNG decoder's allocation limit: the budget at up to 16-bit RGBA, plus its working memory.
fn png_max_alloc(settings: &Settings) -> u64 {
    settings
        .max_pixels
        .saturating_mul(8)
        .saturating_add(64 << 20)
}

/// A PNG decoder over `bytes`, with the budget's allocation limit.
pub(crate) fn png_decoder(
    bytes: &[u8],
    max_alloc: u64,
) -> Result<impl ImageDecoder + '_, ImageError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image::ImageFormat::Png);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_alloc);
    reader.limits(limits);
    reader.into_decoder().map_err(ImageError::decode)
}

fn probe_png(bytes: &[u8], settings: &Settings) -> Result<Header, ImageError> {
    let max_alloc = png_max_alloc(settings);
    let mut decoder = png_decoder(bytes, max_alloc)?;
    let (width, height) = decoder.dimensions();
    check_budget(width, height, settings)?;
    let exif = decoder
        .exif_metadata()
        .ok()
        .flatten()
        .and_then(|raw| exif::Reader::new().read_raw(raw).ok());
    let orientation = exif
        .as_ref()
        .map_or(Orientation::NoTransforms, metadata::orientation);
    Ok(Header {
        format: MediaType::Png,
        width,
        height,
        orientation,
        exif,
        targets: stored_targets(width, height, orientation, settings),
        jpeg: None,
        max_alloc,
    })
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
pub fn swaps_axes(o: Orientation) -> bool {
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

/// The DCT scale denominator (1, 2, 4 or 8) to decode a `width`x`height` JPEG at: the smallest
/// scale whose output (rounded up, as libjpeg does) is still at least `need` in both directions.
pub fn dct_scale(width: u32, height: u32, need: (u32, u32)) -> u32 {
    [8, 4, 2]
        .into_iter()
        .find(|&d| width.div_ceil(d) >= need.0 && height.div_ceil(d) >= need.1)
        .unwrap_or(1)
}

/// What the header segments of a JPEG hold: the frame (size and components), the EXIF block (TIFF
/// bytes, without the `Exif\0\0` prefix) and whether an Adobe APP14 segment is present (which
/// says that CMYK samples are stored inverted, as Photoshop writes them).
#[derive(Default)]
pub struct Segments<'a> {
    pub frame: Option<Frame>,
    pub exif: Option<&'a [u8]>,
    pub adobe: bool,
}

/// A JPEG's start-of-frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub width: u16,
    pub height: u16,
    pub components: u8,
}

pub fn jpeg_segments(bytes: &[u8]) -> Segments<'_> {
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
            // SOF0..SOF15 but DHT (C4), JPG (C8) and DAC (CC): precision, height, width, count.
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) && body.len() >= 6 => {
                found.frame.get_or_insert(Frame {
                    height: u16::from_be_bytes([body[1], body[2]]),
                    width: u16::from_be_bytes([body[3], body[4]]),
                    components: body[5],
                });
            }
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
