//! PNG (and APNG's default image): IHDR, the colour chunks, eXIf, and what the decode will cost.

use super::*;

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
