//! What the header says, before any pixel is allocated: format, stored size, EXIF and its
//! orientation, the embedded colour profile, each rendition's target size, (for JPEG) the DCT scale
//! to decode at, and what all of that will cost in memory ([`Estimate`]). An image over the pixel
//! cap or the memory budget is refused here.

use crate::animation::Animation;
use crate::orientation::Orientation;
use state::media::{sniff, MediaType};

use crate::budget::{self, Estimate, MIB};
use crate::{colour, jpeg_memory, metadata, resize::target_size, ImageError, Settings};

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
    /// HEIC: pixels of every coded picture the decode makes, summed (a tile listed twice in a grid
    /// counts twice, as it is decoded twice); 0 for other formats. What a HEIC's decode costs in
    /// time grows with this, not with the displayed size.
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

fn probe_jpeg(bytes: &[u8], settings: &Settings) -> Result<Header, ImageError> {
    let segments = jpeg_segments(bytes);
    // The frame header is read here rather than by libjpeg: TurboJPEG fails a header read on any
    // warning (an odd JFIF version, say), though the decode it warns about is whole.
    let frame = segments
        .frame
        .ok_or_else(|| ImageError::decode("no JPEG frame header (SOF) before the image data"))?;
    let (width, height) = (u32::from(frame.width), u32::from(frame.height));
    check_pixels(width, height, settings)?;
    if !matches!(frame.components, 1 | 3 | 4) {
        return Err(ImageError::decode(format!(
            "a JPEG of {} components (1, 3 or 4 are images)",
            frame.components
        )));
    }
    if frame.sampling[..usize::from(frame.components)]
        .iter()
        .any(|&(h, v)| !(1..=4).contains(&h) || !(1..=4).contains(&v))
    {
        return Err(ImageError::decode("a JPEG sampling factor outside 1..=4"));
    }
    // libjpeg-turbo decodes 8- and 12-bit DCT JPEGs, and lossless ones of 2 to 16 bits.
    let precision_ok = match frame.lossless {
        true => (2..=16).contains(&frame.precision),
        false => matches!(frame.precision, 8 | 12),
    };
    if !precision_ok {
        return Err(ImageError::decode(format!(
            "a {} JPEG of {}-bit samples (8 and 12 bits are decoded; lossless, 2 to 16)",
            if frame.lossless { "lossless" } else { "DCT" },
            frame.precision
        )));
    }
    if !jpeg_is_complete(bytes) {
        // libjpeg would fill the missing rows with grey and call it a picture.
        return Err(ImageError::decode(
            "truncated JPEG (no end-of-image marker after the image data)",
        ));
    }
    let scans = segments
        .first_scan
        .map_or(0, |at| count_scans(&bytes[at..]));
    if scans > MAX_JPEG_SCANS {
        return Err(ImageError::decode(format!(
            "a JPEG of {scans} scans (at most {MAX_JPEG_SCANS} are taken)"
        )));
    }
    let mut warnings = segments.warnings.clone();
    let icc = join_icc_chunks(&segments.icc_chunks, &mut warnings);
    let exif = read_exif(segments.exif, &mut warnings);
    let orientation = exif
        .as_ref()
        .map_or(Orientation::NoTransforms, metadata::orientation);
    let targets = stored_targets(width, height, orientation, settings);
    let need = targets
        .iter()
        .fold((1, 1), |(w, h), &(tw, th)| (w.max(tw), h.max(th)));
    let jpeg = JpegHeader {
        // A lossless JPEG has no DCT to scale: it is decoded whole.
        scale_denom: if frame.lossless {
            1
        } else {
            dct_scale(width, height, need)
        },
        components: frame.components,
        adobe: segments.adobe,
        multi_scan: frame.progressive || scans > 1,
        scans,
        precision: frame.precision,
        lossless: frame.lossless,
    };
    let estimate = jpeg_estimate(
        bytes,
        &frame,
        &jpeg,
        &segments,
        icc.as_deref(),
        &targets,
        settings,
    );
    Ok(Header {
        format: MediaType::Jpeg,
        width,
        height,
        orientation,
        exif,
        targets,
        jpeg: Some(jpeg),
        png: None,
        icc,
        estimate,
        animation: None,
        model: colour::Model::of_jpeg(frame.components),
        warnings,
        heic_largest_picture: 0,
        heic_coded_pixels: 0,
    })
}

/// libjpeg-turbo's allocations for one decode, and the renditions after it.
fn jpeg_estimate(
    bytes: &[u8],
    frame: &Frame,
    jpeg: &JpegHeader,
    segments: &Segments<'_>,
    icc: Option<&[u8]>,
    targets: &[(u32, u32)],
    settings: &Settings,
) -> Estimate {
    let (w, h) = (u64::from(frame.width), u64::from(frame.height));
    let denom = u64::from(jpeg.scale_denom);
    let (sw, sh) = (w.div_ceil(denom), h.div_ceil(denom));
    let comps = &frame.sampling[..usize::from(frame.components)];
    let hmax = u64::from(comps.iter().map(|c| c.0).max().unwrap_or(1));
    let vmax = u64::from(comps.iter().map(|c| c.1).max().unwrap_or(1));
    // Blocks of 8x8 per component, padded to whole MCUs as the coefficient controller does.
    let blocks = |&(hs, vs): &(u8, u8)| {
        let (hs, vs) = (u64::from(hs), u64::from(vs));
        let bw = (w * hs).div_ceil(hmax * 8).div_ceil(hs) * hs;
        let bh = (h * vs).div_ceil(vmax * 8).div_ceil(vs) * vs;
        (bw, bh, vs)
    };
    // 64 coefficients of 2 bytes a block: the whole image when there are several scans (a pool
    // per component), else one row of MCUs. Each in a pool as `jpeg_memory.c` maps it. (A
    // lossless JPEG of several scans keeps the whole image's samples instead, at most 2 bytes
    // each: no more than this.)
    let coefficients: u64 = comps
        .iter()
        .map(blocks)
        .map(|(bw, bh, vs)| {
            jpeg_memory::pool_footprint(bw * if jpeg.multi_scan { bh } else { vs } * 128)
        })
        .sum();
    // Sample rows for upsampling and colour conversion: at most a few MCU rows of full width,
    // in samples of 2 bytes past 8 bits.
    let sample_bytes = if jpeg.precision > 8 { 2 } else { 1 };
    let rows =
        jpeg_memory::pool_footprint(w * u64::from(frame.components) * 16 * vmax * 3 * sample_bytes);
    let channels = u64::from(jpeg.components);
    let mut decode = budget::pixels(sw, sh, channels) + coefficients + rows;
    if jpeg.precision != 8 {
        // Decoded at 16 bits a sample, then brought to 8 in a buffer of its own.
        decode += budget::pixels(sw, sh, channels * 2);
    }
    let decoded_channels = if jpeg.components == 4 {
        decode += budget::pixels(sw, sh, 3); // CMYK to RGB
        3
    } else {
        jpeg.components
    };
    // TurboJPEG keeps the APP2 markers it saw; we keep the profile joined.
    let icc_len = icc.map_or(0, <[u8]>::len) as u64;
    let metadata = exif_cost(segments.exif) + icc_len * 2;
    let renditions = renditions_cost((sw as u32, sh as u32), decoded_channels, targets, settings);
    Estimate {
        original: bytes.len() as u64,
        metadata,
        decode,
        colour: colour_cost(icc, (sw, sh), decoded_channels),
        rendition: renditions,
        fixed: 2 * MIB,
    }
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

/// The scans of the main image: start-of-scan markers from the first scan to the first
/// end-of-image (scan data cannot hold either; trailing images after it, as in MPF files, are
/// not the main image's).
fn count_scans(from_first_scan: &[u8]) -> usize {
    let end = memchr::memmem::find(from_first_scan, &[0xFF, 0xD9]).unwrap_or(from_first_scan.len());
    memchr::memmem::find_iter(&from_first_scan[..end], &[0xFF, 0xDA]).count()
}

/// An ICC profile split over APP2 segments (`ICC_PROFILE\0`, sequence number, count, data), joined
/// in sequence order. A set with a chunk missing, repeated, numbered 0 or past its count, or of
/// more than [`MAX_ICC_BYTES`], is not used, as libjpeg does not use it ("bad ICC marker"): the
/// image is taken as sRGB, with a warning.
fn join_icc_chunks(chunks: &[&[u8]], warnings: &mut Vec<String>) -> Option<Vec<u8>> {
    if chunks.is_empty() {
        return None;
    }
    let total: usize = chunks.iter().map(|c| c.len().saturating_sub(2)).sum();
    if total > MAX_ICC_BYTES {
        warnings.push(format!(
            "ICC profile of {total} bytes not used (at most {MAX_ICC_BYTES} are read); taken as sRGB"
        ));
        return None;
    }
    let count = chunks[0].get(1).copied().unwrap_or(0);
    let mut ordered: Vec<&[u8]> = chunks.to_vec();
    ordered.sort_by_key(|c| c.first().copied().unwrap_or(0));
    if let Some(why) = icc_chunks_fault(&ordered, count) {
        warnings.push(format!(
            "ICC profile in {} APP2 chunks that do not make a whole ({why}); profile not used, \
             taken as sRGB",
            chunks.len()
        ));
        return None;
    }
    Some(
        ordered
            .iter()
            .flat_map(|c| c[2..].iter().copied())
            .collect(),
    )
}

/// What is wrong with a set of ICC chunks, sorted by sequence number, that should number 1 to
/// `count`; `None` when they make a whole profile.
fn icc_chunks_fault(ordered: &[&[u8]], count: u8) -> Option<String> {
    if ordered.iter().any(|c| c.len() < 2) {
        return Some("a chunk without its numbers".into());
    }
    if let Some(c) = ordered.iter().find(|c| c[1] != count) {
        return Some(format!("counts {} and {count} disagree", c[1]));
    }
    if ordered.first().is_some_and(|c| c[0] == 0) {
        return Some("a chunk numbered 0".into());
    }
    if let Some(c) = ordered.windows(2).find(|w| w[0][0] == w[1][0]) {
        return Some(format!("chunk {} repeated", c[0][0]));
    }
    if let Some(c) = ordered.iter().find(|c| c[0] > count) {
        return Some(format!("chunk {} of {count}", c[0]));
    }
    if ordered.len() < usize::from(count) {
        let missing = (1..=count).find(|n| !ordered.iter().any(|c| c[0] == *n));
        return Some(format!("chunk {} of {count} missing", missing.unwrap_or(0)));
    }
    None
}

/// A PNG's chunks, walked by their lengths up to the image data: no chunk is copied or inflated
/// but `iCCP` (bounded by [`MAX_ICC_BYTES`]). An ancillary chunk the image's colours depend on
/// (`iCCP`, `gAMA`, `cHRM`, `sRGB`) whose CRC is wrong is dropped with a warning, as libpng drops
/// it; a broken `iCCP` costs the profile, not the image.
pub(crate) fn probe_png(bytes: &[u8], settings: &Settings) -> Result<Header, ImageError> {
    let mut png = PngHeader::default();
    let (mut width, mut height) = (0, 0);
    let mut iccp: Option<&[u8]> = None;
    let mut exif: Option<&[u8]> = None;
    let mut warnings = Vec::new();
    let mut at = 8;
    while let Some(head) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind = &head[4..8];
        let Some(data) = bytes.get(at + 8..(at + 8).saturating_add(len)) else {
            break; // cut short: the decoder will say so
        };
        let colour_chunk = matches!(kind, b"iCCP" | b"gAMA" | b"cHRM" | b"sRGB");
        if colour_chunk && !crc_matches(&bytes[at + 4..at + 8 + len], bytes.get(at + 8 + len..)) {
            warnings.push(format!(
                "PNG {} chunk has a wrong CRC; skipped",
                String::from_utf8_lossy(kind)
            ));
            at += 12 + len;
            continue;
        }
        match kind {
            b"IHDR" if data.len() == 13 => {
                width = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                height = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
                png.bit_depth = data[8];
                png.color_type = data[9];
                png.interlaced = data[12] == 1;
            }
            b"tRNS" => png.transparency = true,
            b"sRGB" => png.srgb = true,
            b"gAMA" if data.len() == 4 => {
                png.gamma = Some(u32::from_be_bytes([data[0], data[1], data[2], data[3]]));
            }
            b"cHRM" if data.len() == 32 => {
                let mut c = [0u32; 8];
                for (i, v) in c.iter_mut().enumerate() {
                    *v = u32::from_be_bytes([
                        data[i * 4],
                        data[i * 4 + 1],
                        data[i * 4 + 2],
                        data[i * 4 + 3],
                    ]);
                }
                png.chromaticities = Some(c);
            }
            b"iCCP" if iccp.is_none() => iccp = Some(data),
            b"eXIf" => {
                png.largest_exif_chunk = png.largest_exif_chunk.max(len);
                exif.get_or_insert(data);
            }
            b"IDAT" | b"IEND" => break,
            _ => {}
        }
        at += 12 + len;
    }
    if !matches!(png.color_type, 0 | 2 | 3 | 4 | 6) || !matches!(png.bit_depth, 1 | 2 | 4 | 8 | 16)
    {
        return Err(ImageError::decode(format!(
            "PNG colour type {} at bit depth {} is not an image the decoder knows",
            png.color_type, png.bit_depth
        )));
    }
    check_pixels(width, height, settings)?;
    let icc = iccp.and_then(|chunk| match inflate_iccp(chunk) {
        Ok(profile) => Some(profile),
        Err(why) => {
            warnings.push(format!(
                "PNG iCCP chunk {why}; profile not used, taken as sRGB"
            ));
            None
        }
    });
    let exif_block = exif.map(|e| e.strip_prefix(b"Exif\0\0").unwrap_or(e));
    let parsed_exif = read_exif(exif_block, &mut warnings);
    let orientation = parsed_exif
        .as_ref()
        .map_or(Orientation::NoTransforms, metadata::orientation);
    let targets = stored_targets(width, height, orientation, settings);
    let (w, h) = (u64::from(width), u64::from(height));
    let channels = png.decoded_channels();
    // The decoded buffer; gray + alpha is widened to RGBA after, so both exist for a moment.
    let mut decode = budget::pixels(w, h, u64::from(channels));
    let rgb_channels = if channels == 2 {
        decode += budget::pixels(w, h, 4);
        4
    } else {
        channels
    };
    // The png crate's row buffers: the inflated stream holds a few rows until it shifts them out
    // (it grows by doubling), plus the previous row and a transformed row; and its zlib window.
    decode += png.raw_row(width) * 16 + w * 4 * 2 + MIB;
    let metadata = exif_cost(exif_block)
        + png.largest_exif_chunk as u64 * 2
        + icc.as_ref().map_or(0, |p| p.len() as u64 * 2);
    let renditions = renditions_cost((width, height), rgb_channels, &targets, settings);
    let estimate = Estimate {
        original: bytes.len() as u64,
        metadata,
        decode,
        colour: colour_cost(icc.as_deref(), (w, h), rgb_channels),
        rendition: renditions,
        fixed: 2 * MIB,
    };
    Ok(Header {
        format: MediaType::Png,
        width,
        height,
        orientation,
        exif: parsed_exif,
        targets,
        jpeg: None,
        model: colour::Model::of_png(png.color_type),
        png: Some(png),
        icc,
        estimate,
        animation: None,
        warnings,
        heic_largest_picture: 0,
        heic_coded_pixels: 0,
    })
}

/// A HEIC's primary image: its size as displayed (the decoder applies `irot` itself, so the EXIF
/// orientation, which says the same, is not applied again), EXIF and ICC profile. The decoded
/// image is RGBA at 8 bits; the decoder's own buffers (a frame of 16-bit samples per tile in
/// flight, the assembled 4:2:0 planes) are counted at 8 bytes a pixel of the largest picture it
/// decodes: a grid's tiles and a coded picture can be larger than the image shown (a grid crops
/// its tiles, `clap` crops a picture), so that is read from each coded picture's SPS.
#[cfg(feature = "heic")]
fn probe_heic(bytes: &[u8], settings: &Settings) -> Result<Header, ImageError> {
    use heifer::heifer_isobmff::{boxes::Property, HeifFile};
    let file = HeifFile::parse(bytes).map_err(ImageError::decode)?;
    let id = file.primary_id;
    let (mut size, mut quarter_turns) = (None, 0);
    for p in file.item_properties(id).map_err(ImageError::decode)? {
        match p {
            Property::ImageSize { width, height } => size = Some((*width, *height)),
            Property::Rotation(r) => quarter_turns = *r,
            _ => {}
        }
    }
    let (w, h) = size.ok_or_else(|| ImageError::decode("HEIC primary image has no size (ispe)"))?;
    let (width, height) = if quarter_turns % 2 == 1 {
        (h, w)
    } else {
        (w, h)
    };
    check_pixels(width, height, settings)?;
    let mut pictures = heic::Pictures::default();
    pictures.visit(&file, id, 0).map_err(ImageError::decode)?;
    let largest = pictures.largest.max(u64::from(width) * u64::from(height));
    if largest > settings.max_pixels {
        return Err(ImageError::decode(format!(
            "HEIC codes a picture of {largest} pixels (over the budget of {} pixels) for a \
             {width}x{height} image",
            settings.max_pixels
        )));
    }
    let mut warnings = Vec::new();
    let exif_block = match file.exif(id) {
        Ok(exif) => exif,
        Err(e) => {
            warnings.push(format!("EXIF unreadable ({e}); skipped"));
            None
        }
    };
    let exif = read_exif(exif_block.as_deref(), &mut warnings);
    let icc = usable_icc(file.icc_profile(id), &mut warnings);
    let targets = stored_targets(width, height, Orientation::NoTransforms, settings);
    let (w64, h64) = (u64::from(width), u64::from(height));
    // RGBA out of the decoder, RGB after dropping an opaque alpha, and the decoder's buffers.
    let decode = budget::pixels(w64, h64, 4 + 3) + largest * 8 + 8 * MIB;
    let metadata =
        exif_cost(exif_block.as_deref()) + icc.as_ref().map_or(0, |p| p.len() as u64 * 2);
    let renditions = renditions_cost((width, height), 4, &targets, settings);
    let estimate = Estimate {
        original: bytes.len() as u64,
        metadata,
        decode,
        colour: colour_cost(icc.as_deref(), (w64, h64), 4),
        rendition: renditions,
        fixed: 4 * MIB,
    };
    Ok(Header {
        format: MediaType::Heic,
        width,
        height,
        orientation: Orientation::NoTransforms,
        exif,
        targets,
        jpeg: None,
        png: None,
        icc,
        estimate,
        animation: None,
        warnings,
        heic_largest_picture: largest,
        heic_coded_pixels: pictures.coded,
        model: colour::Model::Rgb,
    })
}

/// The pictures a HEIC decode makes, read from the container without decoding any.
#[cfg(feature = "heic")]
mod heic {
    use heifer::heifer_hevc_dec::nal::NalUnit;
    use heifer::heifer_hevc_dec::params::ParameterSets;
    use heifer::heifer_isobmff::{Error, HeifFile, ItemId};

    /// Derived images nest no deeper in heifer (its `MAX_DEPTH`).
    const MAX_DEPTH: u32 = 4;
    /// Items looked at, at most: a 256x256 grid of tiles is already absurd.
    const MAX_ITEMS: usize = 1 << 16;

    #[derive(Default)]
    pub struct Pictures {
        /// Pixels of the largest picture decoded or assembled (a coded picture's SPS size, or a
        /// derived image's canvas).
        pub largest: u64,
        /// Pixels of every coded picture visited, summed: each reference decodes again.
        pub coded: u64,
        items: usize,
    }

    impl Pictures {
        /// `id`, what it is derived from, and its alpha plane.
        pub fn visit(&mut self, file: &HeifFile<'_>, id: ItemId, depth: u32) -> Result<(), Error> {
            self.items += 1;
            if depth > MAX_DEPTH || self.items > MAX_ITEMS {
                return Ok(()); // heifer refuses these itself
            }
            let canvas = file
                .image_size(id)?
                .map_or(0, |(w, h)| u64::from(w) * u64::from(h));
            self.largest = self.largest.max(canvas);
            match &file.item(id)?.item_type.0 {
                b"hvc1" | b"hev1" => {
                    let coded = coded_pixels(file, id)?;
                    self.largest = self.largest.max(coded);
                    self.coded = self.coded.saturating_add(coded);
                }
                b"grid" => {
                    let grid = file.grid(id)?;
                    let out = u64::from(grid.output_width) * u64::from(grid.output_height);
                    self.largest = self.largest.max(out);
                    self.visit_all(file, file.referenced_items(id, b"dimg"), depth)?;
                }
                _ => self.visit_all(file, file.referenced_items(id, b"dimg"), depth)?,
            }
            self.visit_all(file, &file.referencing_items(id, b"auxl"), depth)
        }

        fn visit_all(
            &mut self,
            file: &HeifFile<'_>,
            ids: &[ItemId],
            depth: u32,
        ) -> Result<(), Error> {
            ids.iter().try_for_each(|&i| self.visit(file, i, depth + 1))
        }
    }

    /// A coded picture's size as its SPS gives it (the decoder's limit is on that, and it can
    /// exceed `ispe` by the encoder's padding); else `ispe` rounded up to whole 64-pixel blocks.
    fn coded_pixels(file: &HeifFile<'_>, id: ItemId) -> Result<u64, Error> {
        let mut sets = ParameterSets::default();
        if let Some(config) = file.hevc_config(id)? {
            for nal in &config.nal_units {
                if let Ok(nal) = NalUnit::parse(nal) {
                    let _ = sets.add(&nal);
                }
            }
        }
        let sps = sets.sps.iter().flatten().map(|sps| {
            u64::from(sps.pic_width_in_luma_samples) * u64::from(sps.pic_height_in_luma_samples)
        });
        Ok(match sps.max() {
            Some(pixels) => pixels,
            None => file.image_size(id)?.map_or(0, |(w, h)| {
                u64::from(w.next_multiple_of(64)) * u64::from(h.next_multiple_of(64))
            }),
        })
    }
}

#[cfg(not(feature = "heic"))]
fn probe_heic(_: &[u8], _: &Settings) -> Result<Header, ImageError> {
    Err(ImageError::decode(
        "HEIC input needs the `heic` feature, which this build was made without",
    ))
}

/// An `iCCP` chunk: a name of 1 to 79 bytes, NUL, method 0, a zlib stream, inflated to at most
/// [`MAX_ICC_BYTES`]. The error says what is wrong with it, to follow "PNG iCCP chunk".
fn inflate_iccp(chunk: &[u8]) -> Result<Vec<u8>, String> {
    let name_end = chunk
        .iter()
        .take(80)
        .position(|&b| b == 0)
        .filter(|&n| n > 0)
        .ok_or("has no profile name")?;
    let Some([0, stream @ ..]) = chunk.get(name_end + 1..) else {
        return Err("has an unknown compression method".into());
    };
    fdeflate::decompress_to_vec_bounded(stream, MAX_ICC_BYTES).map_err(|e| match e {
        fdeflate::BoundedDecompressionError::OutputTooLarge { .. } => {
            format!("inflates past {MAX_ICC_BYTES} bytes (at most that is read)")
        }
        fdeflate::BoundedDecompressionError::DecompressionError { inner } => {
            format!("does not inflate ({inner:?})")
        }
    })
}

/// Whether a PNG chunk's CRC (the 4 bytes at the start of `after`) is that of `kind_and_data`.
fn crc_matches(kind_and_data: &[u8], after: Option<&[u8]>) -> bool {
    after.and_then(|a| a.get(..4)).is_some_and(|crc| {
        u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) == crc32fast::hash(kind_and_data)
    })
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

/// The DCT scale denominator (1, 2, 4 or 8) to decode a `width`x`height` JPEG at: the smallest
/// scale whose output (rounded up, as libjpeg does) is still at least `need` in both directions.
pub fn dct_scale(width: u32, height: u32, need: (u32, u32)) -> u32 {
    [8, 4, 2]
        .into_iter()
        .find(|&d| width.div_ceil(d) >= need.0 && height.div_ceil(d) >= need.1)
        .unwrap_or(1)
}

/// What the header segments of a JPEG hold: the frame (size, components, sampling), the EXIF block
/// (TIFF bytes, without the `Exif\0\0` prefix), the ICC profile's APP2 chunks, whether an Adobe
/// APP14 segment is present (which says that CMYK samples are stored inverted, as Photoshop
/// writes them), and where the first scan starts.
#[derive(Default)]
pub struct Segments<'a> {
    pub frame: Option<Frame>,
    pub exif: Option<&'a [u8]>,
    pub adobe: bool,
    /// Each `ICC_PROFILE\0` APP2 segment's body after that tag: sequence number, count, data.
    pub icc_chunks: Vec<&'a [u8]>,
    pub first_scan: Option<usize>,
    /// Bytes skipped between markers, as libjpeg skips them ("extraneous bytes before marker").
    pub junk_bytes: usize,
    /// Header parts skipped (an APP segment cut short by the end of the file).
    pub warnings: Vec<String>,
}

/// A JPEG's start-of-frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub width: u16,
    pub height: u16,
    pub components: u8,
    /// Horizontal and vertical sampling factors of the first four components.
    pub sampling: [(u8, u8); 4],
    /// SOF2, SOF6, SOF10 or SOF14.
    pub progressive: bool,
    /// Bits a sample.
    pub precision: u8,
    /// SOF3, SOF7, SOF11 or SOF15.
    pub lossless: bool,
}

/// The header segments from SOI to the first scan, walked as libjpeg's marker reader walks them
/// (`jdmarker.c`): bytes that are not a marker are skipped up to the next one (with a warning
/// there, not an error), fill bytes (FF FF) are swallowed, a segment is skipped by its declared
/// length whatever that lands on, and RSTn and TEM stand alone. So a file with junk between its
/// segments, or an APP segment whose length is wrong, is read here as libjpeg reads it.
pub fn jpeg_segments(bytes: &[u8]) -> Segments<'_> {
    let mut found = Segments::default();
    let mut i = 2; // after SOI
    loop {
        // next_marker(): skip to an FF, swallow fill FFs, and FF 00 is not a marker.
        let marker = loop {
            while bytes.get(i).is_some_and(|&b| b != 0xFF) {
                i += 1;
                found.junk_bytes += 1;
            }
            while bytes.get(i) == Some(&0xFF) {
                i += 1;
            }
            match bytes.get(i) {
                None => return found,
                Some(0) => {
                    i += 1;
                    found.junk_bytes += 2;
                }
                Some(&m) => break m,
            }
        };
        let at = i - 1;
        i += 1;
        match marker {
            0xDA => {
                found.first_scan = Some(at);
                return found; // start of scan: no more header segments
            }
            0xD8 | 0xD9 => return found,
            0x01 | 0xD0..=0xD7 => continue, // no length, no body
            _ => {}
        }
        let Some(len) = bytes.get(i..i + 2) else {
            return found;
        };
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        // A length under 2 skips nothing past the length itself, as in libjpeg.
        let body_end = i + len.max(2);
        let Some(body) = bytes.get(i + 2..body_end) else {
            if (0xE0..=0xEF).contains(&marker) {
                found.warnings.push(format!(
                    "APP{} segment cut short by the end of the file; skipped",
                    marker - 0xE0
                ));
            }
            return found;
        };
        match marker {
            // SOF0..SOF15 but DHT (C4), JPG (C8) and DAC (CC): precision, height, width, count,
            // then per component: id, sampling (h << 4 | v), quantisation table.
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) && body.len() >= 6 => {
                let mut sampling = [(1, 1); 4];
                for (c, s) in sampling.iter_mut().enumerate() {
                    if let Some(&hv) = body.get(6 + c * 3 + 1) {
                        *s = (hv >> 4, hv & 0x0F);
                    }
                }
                found.frame.get_or_insert(Frame {
                    precision: body[0],
                    height: u16::from_be_bytes([body[1], body[2]]),
                    width: u16::from_be_bytes([body[3], body[4]]),
                    components: body[5],
                    sampling,
                    progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
                    lossless: matches!(marker, 0xC3 | 0xC7 | 0xCB | 0xCF),
                });
            }
            0xE1 if found.exif.is_none() && body.starts_with(b"Exif\0\0") => {
                found.exif = Some(&body[6..]);
            }
            0xE2 if body.starts_with(b"ICC_PROFILE\0") => found.icc_chunks.push(&body[12..]),
            // libjpeg takes an Adobe segment of at least its 12 bytes; a shorter one is not one.
            0xEE if body.len() >= 12 && body.starts_with(b"Adobe") => found.adobe = true,
            _ => {}
        }
        i = body_end;
    }
}

/// A JPEG's last end-of-image marker (FF D9) comes after its last start-of-scan (FF DA). Scan data
/// cannot hold either (an FF there is stuffed as FF 00), and an EXIF thumbnail's own markers come
/// before the main image's scans, so this finds files cut short while tolerating trailing data.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    // From the end for the EOI and from the start for a first SOS: the last SOS of a baseline JPEG
    // is near its start, and searching back for it read the whole file (2% of the process step).
    let Some(eoi) = memchr::memmem::rfind(bytes, &[0xFF, 0xD9]) else {
        return false;
    };
    let sos = memchr::memmem::Finder::new(&[0xFF, 0xDA]);
    sos.find(&bytes[..eoi]).is_some() && sos.find(&bytes[eoi..]).is_none()
}
