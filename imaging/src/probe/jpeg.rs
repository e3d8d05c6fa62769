//! JPEG: the frame, the scans, EXIF and the ICC profile from the markers; the DCT scale each
//! rendition allows, and what the decode will cost.

use super::*;

pub(super) fn probe_jpeg(bytes: &[u8], settings: &Settings) -> Result<Header, ImageError> {
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
