//! What the header says, before any pixel is allocated: format, stored size, EXIF and its
//! orientation, the embedded colour profile, each rendition's target size, (for JPEG) the DCT scale
//! to decode at, and what all of that will cost in memory ([`Estimate`]). An image over the pixel
//! cap or the memory budget is refused here.

use crate::animation::Animation;
use crate::orientation::Orientation;
use state::media::{sniff, MediaType};

use crate::budget::{self, Estimate, MIB};
use crate::{colour, jpeg_memory, metadata, resize::target_size, ImageError, Settings};

mod heic;
mod jpeg;
mod png;

use heic::probe_heic;
use jpeg::probe_jpeg;
pub use jpeg::{dct_scale, jpeg_segments, Frame, Segments};
pub(crate) use png::probe_png;

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
    pub png: Option<PngHeader>,
    /// The embedded ICC profile, whole: JPEG APP2 chunks joined, or PNG `iCCP` inflated.
    pub icc: Option<Vec<u8>>,
    /// What decoding and every rendition will allocate; within the budget.
    pub estimate: Estimate,
    /// Frames and duration, for an animated image (GIF, APNG, WebP, JPEG XL, AVIF sequence).
    pub animation: Option<Animation>,
    /// The kind of pixels the decoder gives (before any conversion), which an embedded profile
    /// must describe to be used.
    pub model: colour::Model,
    /// Broken ancillary parts the header held and the image goes without (a profile, EXIF).
    pub warnings: Vec<String>,
    /// HEIC: pixels of the largest picture the decoder makes on the way (a tile, a coded picture
    /// before its crop), which it is allowed; 0 for other formats.
    pub heic_largest_picture: u64,
    /// HEIC: pixels of every coded picture the decode makes, summed: a grid's distinct tiles
    /// once each (a tile its grid lists 169 times is decoded once and copied), its alpha plane;
    /// 0 for other formats. What a HEIC's decode costs in time grows with this and with the
    /// canvas it fills, not with the displayed size alone. At most
    /// [`Settings::max_coded_pixels`].
    pub heic_coded_pixels: u64,
}

/// What a JPEG's header tells the decoder.
pub struct JpegHeader {
    /// Decode at 1/`scale_denom` (1, 2, 4 or 8).
    pub scale_denom: u32,
    /// 1 (gray), 3 (YCbCr or RGB: decoded to RGB) or 4 (CMYK or YCCK: decoded to CMYK).
    pub components: u8,
    /// An Adobe APP14 segment: CMYK samples are stored inverted, as Photoshop writes them.
    pub adobe: bool,
    /// Progressive, or several scans: libjpeg keeps every coefficient of the image.
    pub multi_scan: bool,
    pub scans: usize,
    /// Bits a sample: 8 or 12 for a DCT JPEG, 2 to 16 for a lossless one.
    pub precision: u8,
    /// Lossless (SOF3, SOF7, SOF11, SOF15): no DCT, so no scaled decode.
    pub lossless: bool,
}

/// What a PNG's chunks before the image data say.
#[derive(Debug, Clone, Default)]
pub struct PngHeader {
    pub bit_depth: u8,
    /// 0 gray, 2 RGB, 3 palette, 4 gray + alpha, 6 RGBA.
    pub color_type: u8,
    pub interlaced: bool,
    /// A `tRNS` chunk: the decoder adds an alpha channel.
    pub transparency: bool,
    /// An `sRGB` chunk: the image says it is sRGB.
    pub srgb: bool,
    /// `gAMA`, in 1/100000.
    pub gamma: Option<u32>,
    /// `cHRM`: white point and primaries, x and y in 1/100000.
    pub chromaticities: Option<[u32; 8]>,
    /// The largest `eXIf` chunk: the PNG decoder keeps a copy.
    pub largest_exif_chunk: usize,
}

impl PngHeader {
    /// Channels the decoder gives out (8-bit, palette expanded, tRNS made alpha).
    pub fn decoded_channels(&self) -> u8 {
        match (self.color_type, self.transparency) {
            (0, false) => 1,
            (0, true) | (4, _) => 2,
            (2 | 3, false) => 3,
            _ => 4,
        }
    }

    /// Bytes of one stored row, with its filter byte.
    fn raw_row(&self, width: u32) -> u64 {
        let samples = match self.color_type {
            0 | 3 => 1,
            2 => 3,
            4 => 2,
            _ => 4,
        };
        (u64::from(width) * samples * u64::from(self.bit_depth)).div_ceil(8) + 1
    }
}

impl Header {
    /// The size as displayed, after orientation.
    pub fn displayed_size(&self) -> (u32, u32) {
        if self.orientation.swaps_axes() {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }

    /// The size the decoder produces, in the stored orientation: for a JPEG, libjpeg's DCT-scaled
    /// size (rounded up).
    pub fn decoded_size(&self) -> (u32, u32) {
        let denom = self.jpeg.as_ref().map_or(1, |j| j.scale_denom);
        (self.width.div_ceil(denom), self.height.div_ceil(denom))
    }
}

/// The largest ICC profile taken. Real ones are a few hundred bytes (matrix profiles) to about
/// 2 MB (press CMYK); this caps what an `iCCP` chunk of compressed zeros can inflate to.
pub const MAX_ICC_BYTES: usize = 8 << 20;
/// The most scans a progressive JPEG may have. Encoders write about 10; each scan is a pass over
/// the whole coefficient buffer, so thousands of tiny scans cost minutes of CPU.
pub const MAX_JPEG_SCANS: usize = 100;
/// EXIF blocks larger than this are not read (a JPEG's APP1 cannot be larger; a PNG `eXIf`
/// could).
const MAX_EXIF_BYTES: usize = 64 * 1024;
/// kamadak-exif keeps an entry (about 100 bytes) per 12-byte IFD entry and, for the few fields
/// read, splits ASCII values at every NUL into vectors of 24 bytes: at most 130 bytes a byte.
const EXIF_BYTES_PER_BYTE: u64 = 130;

/// Reads and checks the header of `bytes`.
pub fn probe(bytes: &[u8], settings: &Settings) -> Result<Header, ImageError> {
    let header = match sniff(bytes)? {
        MediaType::Jpeg => probe_jpeg(bytes, settings)?,
        MediaType::Png => probe_png(bytes, settings)?,
        MediaType::Heic => probe_heic(bytes, settings)?,
        MediaType::Webp => crate::formats::webp::probe(bytes, settings)?,
        MediaType::Gif => crate::formats::gif::probe(bytes, settings)?,
        #[cfg(feature = "avif")]
        MediaType::Avif => crate::formats::avif::probe(bytes, settings)?,
        #[cfg(not(feature = "avif"))]
        MediaType::Avif => {
            return Err(ImageError::decode(
                "AVIF input needs the `avif` feature, which this build was made without",
            ))
        }
        MediaType::Tiff => crate::formats::tiff::probe(bytes, settings)?,
        MediaType::Apng => crate::formats::apng::probe(bytes, settings)?,
        MediaType::Jxl => crate::formats::jxl::probe(bytes, settings)?,
    };
    if let Some(a) = header.animation {
        check_animation(a, header.width, header.height, settings)?;
    }
    let needed = header.estimate.total();
    if needed > settings.memory_budget {
        return Err(ImageError::OverBudget {
            width: header.width,
            height: header.height,
            estimate: header.estimate,
            budget_mb: settings.memory_budget / MIB,
        });
    }
    Ok(header)
}

/// Below this many decoded pixels, starting a thread costs about what the work split over it does.
const SIDE_BY_SIDE_MIN_PIXELS: u64 = 512 * 512;

/// Whether work on a decoded image this large is worth splitting over a second thread: the
/// machine has a second core, and the image is large enough to pay for starting a thread.
pub(crate) fn worth_a_second_thread(width: u32, height: u32) -> bool {
    u64::from(width) * u64::from(height) >= SIDE_BY_SIDE_MIN_PIXELS && cores() > 1
}

fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The EXIF block, parsed; one that cannot be read is skipped with a warning (it costs the camera
/// fields and the orientation, not the image).
pub(crate) fn read_exif(tiff: Option<&[u8]>, warnings: &mut Vec<String>) -> Option<exif::Exif> {
    let tiff = tiff?;
    if tiff.len() > MAX_EXIF_BYTES {
        warnings.push(format!(
            "EXIF block of {} bytes skipped (at most {MAX_EXIF_BYTES} are read)",
            tiff.len()
        ));
        return None;
    }
    match exif::Reader::new().read_raw(tiff.to_vec()) {
        Ok(exif) => Some(exif),
        Err(e) => {
            warnings.push(format!("EXIF unreadable ({e}); skipped"));
            None
        }
    }
}

pub(crate) fn exif_cost(tiff: Option<&[u8]>) -> u64 {
    tiff.filter(|t| t.len() <= MAX_EXIF_BYTES)
        .map_or(0, |t| t.len() as u64 * EXIF_BYTES_PER_BYTE)
}

/// What converting a decoded image through its profile costs: an output buffer as large as the
/// decoded one, and the transform's tables (a LUT profile's grid is interpolated into tables a
/// few times the profile's size).
fn colour_cost(icc: Option<&[u8]>, (w, h): (u64, u64), channels: u8) -> u64 {
    match icc {
        None => 0,
        Some(p) => budget::pixels(w, h, u64::from(channels)) + p.len() as u64 * 16 + 4 * MIB,
    }
}

/// The renditions from the decoded buffer: the costliest one ([`Estimate::rendition`]).
fn renditions_cost(src: (u32, u32), channels: u8, targets: &[(u32, u32)], s: &Settings) -> u64 {
    targets
        .iter()
        .zip(&s.renditions)
        .map(|(&dst, spec)| budget::rendition(src, channels, dst, spec.format))
        .max()
        .unwrap_or(0)
}

/// An embedded profile as its container gives it: one over [`MAX_ICC_BYTES`], or one the
/// container cannot give, is not used, with a warning (the image is taken as sRGB).
pub(crate) fn usable_icc<P: AsRef<[u8]>, E: std::fmt::Display>(
    read: Result<Option<P>, E>,
    warnings: &mut Vec<String>,
) -> Option<Vec<u8>> {
    match read {
        Ok(Some(p)) if p.as_ref().len() > MAX_ICC_BYTES => {
            warnings.push(format!(
                "ICC profile of {} bytes not used (at most {MAX_ICC_BYTES} are read); taken as \
                 sRGB",
                p.as_ref().len()
            ));
            None
        }
        Ok(p) => p.map(|p| p.as_ref().to_vec()),
        Err(e) => {
            warnings.push(format!("ICC profile unreadable ({e}); taken as sRGB"));
            None
        }
    }
}

/// An animation is refused from its headers when it has more frames than any player needs, or
/// when its frames x canvas (the pixels an animated rendition would decode) is over the budget.
fn check_animation(
    a: Animation,
    width: u32,
    height: u32,
    settings: &Settings,
) -> Result<(), ImageError> {
    let pixels = u64::from(a.frames) * u64::from(width) * u64::from(height);
    if a.frames > crate::animation::MAX_FRAMES || pixels > settings.max_animation_pixels {
        return Err(ImageError::TooManyFrames {
            frames: a.frames,
            width,
            height,
            pixels,
            budget: settings.max_animation_pixels,
            max_frames: crate::animation::MAX_FRAMES,
        });
    }
    Ok(())
}

/// A header for the formats of [`crate::formats`]: `estimate` holds what the format's probe
/// counted (original, metadata, decode, fixed); `customise` sets orientation, EXIF, profile and
/// animation; the rendition and colour costs follow from those ([`finish_costs`]).
pub(crate) fn header_of(
    format: MediaType,
    (width, height): (u32, u32),
    estimate: Estimate,
    channels: u8,
    settings: &Settings,
    customise: impl FnOnce(&mut Header),
) -> Header {
    let mut header = Header {
        format,
        width,
        height,
        orientation: Orientation::NoTransforms,
        exif: None,
        targets: Vec::new(),
        jpeg: None,
        png: None,
        icc: None,
        estimate,
        animation: None,
        warnings: Vec::new(),
        heic_largest_picture: 0,
        heic_coded_pixels: 0,
        model: if channels == 1 {
            colour::Model::Gray
        } else {
            colour::Model::Rgb
        },
    };
    customise(&mut header);
    finish_costs(&mut header, channels, settings);
    header
}

/// The targets, the renditions' cost (animated ones included) and the colour conversion's cost
/// of a header whose size, orientation, profile and animation are known; `channels` are those of
/// the decoded image.
pub(crate) fn finish_costs(header: &mut Header, channels: u8, settings: &Settings) {
    let (width, height) = (header.width, header.height);
    header.targets = stored_targets(width, height, header.orientation, settings);
    let max = renditions_cost((width, height), channels, &header.targets, settings);
    let animated = header.animation.map_or(0, |a| {
        header
            .targets
            .iter()
            .zip(&settings.renditions)
            .filter_map(|(&dst, spec)| {
                let cap = spec.animated?;
                Some(budget::animated_rendition(
                    (width, height),
                    dst,
                    a.frames.min(u32::from(cap)),
                ))
            })
            .max()
            .unwrap_or(0)
    });
    header.estimate.rendition = max.max(animated);
    header.estimate.colour = colour_cost(
        header.icc.as_deref(),
        (u64::from(width), u64::from(height)),
        channels,
    );
}

pub(crate) fn check_pixels(width: u32, height: u32, settings: &Settings) -> Result<(), ImageError> {
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

/// Each rendition's size in the stored orientation, from the stored size and the orientation.
pub(crate) fn stored_targets(
    width: u32,
    height: u32,
    o: Orientation,
    settings: &Settings,
) -> Vec<(u32, u32)> {
    let swap = o.swaps_axes();
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
