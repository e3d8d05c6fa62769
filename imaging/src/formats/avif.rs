//! AVIF: the HEIF container read by `heifer-isobmff` (the parser under the HEIC decoder), AV1
//! decoded by `rav1d` ([`super::av1`]).
//!
//! A still image is the primary item: one `av01` item, or a `grid` of them; its alpha plane (an
//! auxiliary item of type alpha) is decoded the same way. The clean aperture (`clap`) is cropped
//! here; rotation and mirroring (`irot`, `imir`) become the image's orientation, applied to each
//! rendition at its own small size as an EXIF orientation is. An image sequence (`avis`) is read
//! from its first video track (sample table: sizes, chunk offsets, durations); its still is the
//! primary item when the file has one, else the first sample. Colour is the `colr` box's ICC
//! profile, or its CICP code points (`nclx`) as a profile, for [`crate::colour`].
//!
//! Over 400 lines: stills and sequences share the AV1 decoder's setup, the alpha planes and the
//! colour boxes; split, each half would import the other's internals.

use std::borrow::Cow;

use heifer_isobmff::boxes::{ColorInfo, Property};
use heifer_isobmff::{BoxIter, HeifFile, ItemId};
use state::media::MediaType;

use super::av1::{self, Decoder, Picture};
use crate::animation::{Animation, Frame, FrameSource};
use crate::budget::{self, Estimate, MIB};
use crate::orientation::Orientation;
use crate::probe::{self, Header};
use crate::{formats, ImageError, Pixels, Settings};

const ALPHA_URNS: [&str; 2] = [
    "urn:mpeg:mpegB:cicp:systems:auxiliary:alpha",
    "urn:mpeg:hevc:2015:auxid:1",
];

/// The most samples a sequence may have before it is refused unread.
pub const MAX_SAMPLES: u64 = 100_000;

fn avif_error(e: impl std::fmt::Display) -> ImageError {
    ImageError::decode(format!("AVIF: {e}"))
}

/// What the still image's item says.
struct Still {
    id: ItemId,
    /// Coded size (`ispe`), before the crop.
    coded: (u32, u32),
    crop: Option<Crop>,
    orientation: Orientation,
    alpha: Option<ItemId>,
    nclx: Option<(u16, u16, u16, bool)>,
    /// The `colr` profile, or why it cannot be read.
    icc: Result<Option<Vec<u8>>, String>,
    /// The largest single AV1 picture to decode (a grid's tile, or the image).
    largest_picture: u64,
    /// Pixels of the AV1 pictures decoded, summed: a grid's distinct tiles once each, and the
    /// alpha plane's.
    coded_pixels: u64,
}

/// Pixels of the AV1 pictures an `av01` item or a grid of them decodes (each distinct tile once,
/// by its `ispe`).
fn coded_pixels(file: &HeifFile<'_>, id: ItemId) -> Result<u64, ImageError> {
    let size = |id| -> Result<u64, ImageError> {
        let (w, h) = file
            .image_size(id)
            .map_err(avif_error)?
            .ok_or_else(|| avif_error("an image item has no size (ispe)"))?;
        Ok(u64::from(w) * u64::from(h))
    };
    match &file.item(id).map_err(avif_error)?.item_type.0 {
        b"grid" => {
            let tiles = crate::formats::distinct(file.referenced_items(id, b"dimg"));
            let first = *tiles
                .first()
                .ok_or_else(|| avif_error("a grid without tiles"))?;
            Ok(size(first)?.saturating_mul(tiles.len() as u64))
        }
        _ => size(id),
    }
}

#[derive(Debug, Clone, Copy)]
struct Crop {
    x: u32,
    y: u32,
    w: u32,
    h: u32,
}

/// A clean aperture in a `w` x `h` image, as whole pixels (rounded as libavif does).
fn crop_of(
    (w, h): (u32, u32),
    width: (u32, u32),
    height: (u32, u32),
    horiz: (i32, u32),
    vert: (i32, u32),
) -> Option<Crop> {
    let frac = |n: i64, d: u32| (d != 0).then(|| n as f64 / f64::from(d));
    let cw = frac(i64::from(width.0), width.1)?;
    let ch = frac(i64::from(height.0), height.1)?;
    let ox = frac(i64::from(horiz.0), horiz.1)?;
    let oy = frac(i64::from(vert.0), vert.1)?;
    let x = (f64::from(w) - cw) / 2.0 + ox;
    let y = (f64::from(h) - ch) / 2.0 + oy;
    let crop = Crop {
        x: x.round() as u32,
        y: y.round() as u32,
        w: cw.round() as u32,
        h: ch.round() as u32,
    };
    (x >= 0.0
        && y >= 0.0
        && crop.w > 0
        && crop.h > 0
        && crop.x + crop.w <= w
        && crop.y + crop.h <= h)
        .then_some(crop)
}

/// The EXIF orientation that `irot` (anticlockwise quarter turns) then `imir` amount to.
/// `imir` with `top_bottom` flips around the horizontal axis (axis 0, as libheif and libavif
/// read it).
fn orientation_of(quarter_turns_ccw: u8, mirror: Option<bool>) -> Orientation {
    let cw = (4 - quarter_turns_ccw % 4) % 4;
    let exif = match mirror {
        None => [1, 6, 3, 8][usize::from(cw)],
        // Turned clockwise, then flipped left to right.
        Some(false) => [2, 5, 4, 7][usize::from(cw)],
        // Turned clockwise, then flipped top to bottom.
        Some(true) => [4, 7, 2, 5][usize::from(cw)],
    };
    Orientation::from_exif(exif).expect("1..=8")
}

fn still(file: &HeifFile<'_>) -> Result<Still, ImageError> {
    let id = file.primary_id;
    let item = file.item(id).map_err(avif_error)?;
    let (mut coded, mut clap, mut turns, mut mirror, mut nclx) = (None, None, 0, None, None);
    for p in file.item_properties(id).map_err(avif_error)? {
        match p {
            Property::ImageSize { width, height } => coded = Some((*width, *height)),
            Property::Rotation(r) => turns = *r,
            Property::Mirror(m) => mirror = Some(*m),
            Property::CleanAperture {
                width,
                height,
                horiz_offset,
                vert_offset,
            } => clap = Some((*width, *height, *horiz_offset, *vert_offset)),
            Property::Color(ColorInfo::Nclx {
                primaries,
                transfer,
                matrix,
                full_range,
            }) => nclx = Some((*primaries, *transfer, *matrix, *full_range)),
            _ => {}
        }
    }
    let coded = coded.ok_or_else(|| avif_error("the primary image has no size (ispe)"))?;
    let largest_picture = match &item.item_type.0 {
        b"av01" => u64::from(coded.0) * u64::from(coded.1),
        b"grid" => {
            let tiles = file.referenced_items(id, b"dimg");
            let first = *tiles
                .first()
                .ok_or_else(|| avif_error("a grid without tiles"))?;
            let (tw, th) = file
                .image_size(first)
                .map_err(avif_error)?
                .ok_or_else(|| avif_error("a grid tile has no size"))?;
            u64::from(tw) * u64::from(th)
        }
        other => {
            return Err(avif_error(format!(
                "the primary image is a {} item, not AV1",
                String::from_utf8_lossy(other)
            )))
        }
    };
    let alpha = file.referencing_items(id, b"auxl").into_iter().find(|&a| {
        file.item_properties(a).is_ok_and(|mut ps| {
            ps.any(|p| matches!(p, Property::AuxiliaryType(t) if ALPHA_URNS.contains(&t.trim_end_matches('\0'))))
        })
    });
    let coded_pixels = coded_pixels(file, id)?.saturating_add(
        alpha
            .map(|a| coded_pixels(file, a))
            .transpose()?
            .unwrap_or(0),
    );
    let icc = file
        .icc_profile(id)
        .map(|p| p.map(<[u8]>::to_vec))
        .map_err(|e| e.to_string());
    Ok(Still {
        id,
        coded,
        crop: clap.and_then(|(w, h, x, y)| crop_of(coded, w, h, x, y)),
        orientation: orientation_of(turns, mirror),
        alpha,
        nclx,
        icc,
        largest_picture,
        coded_pixels,
    })
}

/// An ICC profile for CICP code points that are not sRGB's, made by moxcms, so the colour
/// module takes them as it takes an embedded profile.
fn cicp_profile(primaries: u16, transfer: u16, matrix: u16, full_range: bool) -> Option<Vec<u8>> {
    use moxcms::{
        CicpColorPrimaries, CicpProfile, ColorProfile, MatrixCoefficients, TransferCharacteristics,
    };
    // BT.709 primaries (or none said) with sRGB's curve, or a BT.709-family curve that every
    // viewer shows as sRGB: nothing to convert.
    let srgb_primaries = matches!(primaries, 1 | 2);
    let srgb_transfer = matches!(transfer, 1 | 2 | 6 | 13 | 14 | 15);
    if srgb_primaries && srgb_transfer {
        return None;
    }
    let profile = CicpProfile {
        color_primaries: CicpColorPrimaries::try_from(u8::try_from(primaries).ok()?).ok()?,
        transfer_characteristics: TransferCharacteristics::try_from(u8::try_from(transfer).ok()?)
            .ok()?,
        matrix_coefficients: MatrixCoefficients::try_from(u8::try_from(matrix).ok()?).ok()?,
        full_range,
    };
    ColorProfile::new_from_cicp(profile).encode().ok()
}

/// A sequence's first video track: where each sample is and how long it shows.
struct Track {
    timescale: u32,
    /// (offset in the file, size) of each sample.
    samples: Vec<(u64, u32)>,
    /// Each sample's duration in the track's timescale.
    durations: Vec<u32>,
    width: u32,
    height: u32,
}

fn boxes(data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    BoxIter::new(data)
        .map_while(Result::ok)
        .map(|b| (b.header.box_type.0, b.content))
}

fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(data).find(|(k, _)| k == kind).map(|(_, c)| c)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The first track whose handler is `pict` or `vide`, and whose samples are AV1 (`av01`).
/// Sample tables are taken only up to [`MAX_SAMPLES`].
fn track(bytes: &[u8]) -> Result<Option<Track>, ImageError> {
    track_of(bytes, &[b"pict", b"vide"])
}

/// The alpha track of a sequence: an auxiliary video track (`auxv`) of AV1 samples.
fn alpha_track(bytes: &[u8]) -> Result<Option<Track>, ImageError> {
    track_of(bytes, &[b"auxv"])
}

fn track_of(bytes: &[u8], handlers: &[&[u8; 4]]) -> Result<Option<Track>, ImageError> {
    let Some(moov) = boxes(bytes).find(|(k, _)| k == b"moov").map(|(_, c)| c) else {
        return Ok(None);
    };
    let bad = |why: &str| avif_error(format!("image sequence: {why}"));
    for (kind, trak) in boxes(moov) {
        if &kind != b"trak" {
            continue;
        }
        let Some(mdia) = child(trak, b"mdia") else {
            continue;
        };
        let handler = child(mdia, b"hdlr").and_then(|h| h.get(8..12));
        if !handlers.iter().any(|h| handler == Some(&h[..])) {
            continue;
        }
        let mdhd = child(mdia, b"mdhd").ok_or_else(|| bad("no mdhd"))?;
        let timescale = if mdhd.first() == Some(&1) {
            be32(mdhd, 20)
        } else {
            be32(mdhd, 12)
        }
        .ok_or_else(|| bad("mdhd cut short"))?;
        let stbl = child(mdia, b"minf")
            .and_then(|m| child(m, b"stbl"))
            .ok_or_else(|| bad("no sample table"))?;
        let stsd = child(stbl, b"stsd").ok_or_else(|| bad("no stsd"))?;
        // Full box header, entry count, then the first sample entry: size, type, 6 reserved, data
        // reference index, 16 pre-defined/reserved, width, height.
        let entry = stsd.get(8..).ok_or_else(|| bad("stsd cut short"))?;
        if entry.get(4..8) != Some(b"av01") {
            continue;
        }
        let width = u32::from(u16::from_be_bytes(
            entry
                .get(32..34)
                .ok_or_else(|| bad("av01 entry cut short"))?
                .try_into()
                .unwrap(),
        ));
        let height = u32::from(u16::from_be_bytes(
            entry
                .get(34..36)
                .ok_or_else(|| bad("av01 entry cut short"))?
                .try_into()
                .unwrap(),
        ));
        let stsz = child(stbl, b"stsz").ok_or_else(|| bad("no stsz"))?;
        let constant = be32(stsz, 4).ok_or_else(|| bad("stsz cut short"))?;
        let count = u64::from(be32(stsz, 8).ok_or_else(|| bad("stsz cut short"))?);
        if count > MAX_SAMPLES {
            return Err(bad(&format!(
                "{count} samples (at most {MAX_SAMPLES} are taken)"
            )));
        }
        let sizes: Vec<u32> = (0..count as usize)
            .map(|i| {
                if constant != 0 {
                    Some(constant)
                } else {
                    be32(stsz, 12 + i * 4)
                }
            })
            .collect::<Option<_>>()
            .ok_or_else(|| bad("stsz cut short"))?;
        let offsets: Vec<u64> = if let Some(stco) = child(stbl, b"stco") {
            let n = be32(stco, 4).unwrap_or(0) as usize;
            (0..n.min(sizes.len().max(1)))
                .map(|i| be32(stco, 8 + i * 4).map(u64::from))
                .collect::<Option<_>>()
        } else if let Some(co64) = child(stbl, b"co64") {
            let n = be32(co64, 4).unwrap_or(0) as usize;
            (0..n.min(sizes.len().max(1)))
                .map(|i| be64(co64, 8 + i * 8))
                .collect::<Option<_>>()
        } else {
            None
        }
        .ok_or_else(|| bad("chunk offsets cut short"))?;
        let stsc = child(stbl, b"stsc").ok_or_else(|| bad("no stsc"))?;
        let runs = be32(stsc, 4).unwrap_or(0) as usize;
        let runs: Vec<(u32, u32)> = (0..runs.min(sizes.len().max(1)))
            .map(|i| Some((be32(stsc, 8 + i * 12)?, be32(stsc, 12 + i * 12)?)))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("stsc cut short"))?;
        // Walk chunks: each run gives the samples per chunk from its first chunk (1-based) on.
        let mut samples = Vec::with_capacity(sizes.len());
        let mut next = 0usize;
        for (c, &offset) in offsets.iter().enumerate() {
            let chunk = c as u32 + 1;
            let per_chunk = runs
                .iter()
                .rev()
                .find(|(first, _)| *first <= chunk)
                .map_or(0, |r| r.1);
            let mut at = offset;
            for _ in 0..per_chunk {
                let Some(&size) = sizes.get(next) else { break };
                samples.push((at, size));
                at += u64::from(size);
                next += 1;
            }
        }
        if samples.len() != sizes.len() {
            return Err(bad("the sample table does not place every sample"));
        }
        let stts = child(stbl, b"stts").ok_or_else(|| bad("no stts"))?;
        let entries = be32(stts, 4).unwrap_or(0) as usize;
        let mut durations = Vec::with_capacity(samples.len());
        for i in 0..entries {
            let (Some(n), Some(delta)) = (be32(stts, 8 + i * 8), be32(stts, 12 + i * 8)) else {
                return Err(bad("stts cut short"));
            };
            for _ in 0..n {
                if durations.len() == samples.len() {
                    break;
                }
                durations.push(delta);
            }
        }
        durations.resize(samples.len(), 0);
        return Ok(Some(Track {
            timescale,
            samples,
            durations,
            width,
            height,
        }));
    }
    Ok(None)
}

fn sample(bytes: &[u8], (offset, size): (u64, u32)) -> Result<&[u8], ImageError> {
    usize::try_from(offset)
        .ok()
        .and_then(|o| bytes.get(o..o.checked_add(size as usize)?))
        .ok_or_else(|| avif_error("a sample lies outside the file"))
}

fn ms(ticks: u32, timescale: u32) -> u32 {
    if timescale == 0 {
        return 0;
    }
    (u64::from(ticks) * 1000 / u64::from(timescale)).min(u64::from(u32::MAX)) as u32
}

pub(crate) fn probe(bytes: &[u8], settings: &Settings) -> Result<Header, ImageError> {
    let file = HeifFile::parse(bytes).ok();
    let still = file.as_ref().map(still).transpose()?;
    let track = track(bytes)?;
    let mut warnings = Vec::new();
    let (coded, crop, orientation, icc, largest, has_alpha) = match (&still, &track) {
        (Some(s), _) => {
            // A profile that cannot be used costs the profile, as in a HEIC.
            let icc = match &s.icc {
                Ok(None) => s.nclx.and_then(|(p, t, m, f)| cicp_profile(p, t, m, f)),
                read => probe::usable_icc(read.as_ref().map(Option::as_ref), &mut warnings),
            };
            (
                s.coded,
                s.crop,
                s.orientation,
                icc,
                s.largest_picture,
                s.alpha.is_some(),
            )
        }
        (None, Some(t)) => (
            (t.width, t.height),
            None,
            Orientation::NoTransforms,
            None,
            u64::from(t.width) * u64::from(t.height),
            false,
        ),
        (None, None) => return Err(avif_error("neither a primary image nor an AV1 track")),
    };
    let (width, height) = crop.map_or(coded, |c| (c.w, c.h));
    probe::check_pixels(coded.0, coded.1, settings)?;
    if largest > settings.max_pixels {
        return Err(avif_error(format!(
            "a picture of {largest} pixels, over the cap of {}",
            settings.max_pixels
        )));
    }
    if let Some(s) = still
        .as_ref()
        .filter(|s| s.coded_pixels > settings.max_coded_pixels())
    {
        return Err(avif_error(format!(
            "{} pixels of AV1 pictures to decode for a {}x{} image, over the budget of {} \
             pixels of decoding (twice the pixel budget)",
            s.coded_pixels,
            coded.0,
            coded.1,
            settings.max_coded_pixels()
        )));
    }
    let animation = track
        .as_ref()
        .filter(|t| t.samples.len() > 1)
        .map(|t| Animation {
            frames: t.samples.len() as u32,
            duration_ms: t
                .durations
                .iter()
                .map(|&d| u64::from(ms(d, t.timescale)))
                .sum(),
        });
    let (cw, ch) = (u64::from(coded.0), u64::from(coded.1));
    // rav1d's picture (three planes of up to 16 bits, padded) and its frame state, for the
    // largest picture: about 12 bytes a pixel at 8 bits, twice that above; a sequence keeps up to
    // eight reference pictures. Then the assembled RGB(A) image, the alpha plane, the RGBA merge
    // and the cropped copy.
    let per_picture = largest * 24 + 4 * MIB;
    // A sequence's alpha track has a decoder and references of its own.
    let pictures = match (&animation, alpha_track(bytes)?) {
        (Some(_), Some(_)) => 18,
        (Some(_), None) => 9,
        _ => 1,
    };
    let decode = per_picture * pictures + budget::pixels(cw, ch, 4 + 1 + 4 + 4) + 8 * MIB;
    let channels = if has_alpha || animation.is_some() {
        4
    } else {
        3
    };
    let metadata = icc.as_ref().map_or(0, |p| p.len() as u64 * 2);
    Ok(probe::header_of(
        MediaType::Avif,
        (width, height),
        Estimate {
            original: bytes.len() as u64,
            metadata,
            decode,
            fixed: 4 * MIB,
            ..Estimate::default()
        },
        channels,
        settings,
        |hd| {
            hd.orientation = orientation;
            hd.icc = icc;
            hd.animation = animation;
            hd.warnings = warnings;
        },
    ))
}

/// 8-bit samples, their channels (1 or 3), and the size they cover.
type Decoded = (Vec<u8>, u8, (u32, u32));

/// Decodes an `av01` item or a `grid` of them into gray or RGB (`channels` 1 or 3 at the
/// picture's own), at the item's coded size.
fn decode_item(
    file: &HeifFile<'_>,
    id: ItemId,
    decoder: &mut Decoder,
    matrix: Option<u16>,
    gray: bool,
) -> Result<Decoded, ImageError> {
    let item = file.item(id).map_err(avif_error)?;
    let to_8bit = |p: &Picture| -> Result<(Vec<u8>, u8), ImageError> {
        if gray {
            return av1::alpha8(p).map(|a| (a, 1));
        }
        let (seq_matrix, full) = p.matrix_and_range();
        let m = matrix.map_or(seq_matrix, |m| m as u8);
        av1::to_rgb8(p, m, full)
    };
    match &item.item_type.0 {
        b"av01" => {
            let data: Cow<'_, [u8]> = file.item_data(id).map_err(avif_error)?;
            let picture = decoder
                .decode(&data)?
                .ok_or_else(|| avif_error("no picture in the item"))?;
            let (buf, ch) = to_8bit(&picture)?;
            Ok((buf, ch, (picture.width(), picture.height())))
        }
        b"grid" => {
            let grid = file.grid(id).map_err(avif_error)?;
            let tiles = file.referenced_items(id, b"dimg");
            if tiles.len() != usize::from(grid.rows) * usize::from(grid.columns) {
                return Err(avif_error(
                    "a grid whose tile count differs from its rows x columns",
                ));
            }
            let (w, h) = (grid.output_width, grid.output_height);
            let mut out: Option<(Vec<u8>, u8)> = None;
            // Each distinct tile is decoded once and copied into every cell that lists it: a
            // grid may list one tile in all its cells.
            let mut cells: Vec<usize> = (0..tiles.len()).collect();
            cells.sort_by_key(|&i| tiles[i]);
            for group in cells.chunk_by(|&a, &b| tiles[a] == tiles[b]) {
                let data = file.item_data(tiles[group[0]]).map_err(avif_error)?;
                let picture = decoder
                    .decode(&data)?
                    .ok_or_else(|| avif_error("no picture in a tile"))?;
                super::decodes::count();
                let (tw, th) = (picture.width() as usize, picture.height() as usize);
                let (buf, ch) = to_8bit(&picture)?;
                drop(picture);
                let (canvas, cch) = out.get_or_insert_with(|| {
                    (vec![0; w as usize * h as usize * usize::from(ch)], ch)
                });
                if *cch != ch {
                    return Err(avif_error("grid tiles of different layouts"));
                }
                let ch = usize::from(ch);
                for &i in group {
                    let (col, row) = (i % usize::from(grid.columns), i / usize::from(grid.columns));
                    let (x0, y0) = (col * tw, row * th);
                    for y in 0..th {
                        let cy = y0 + y;
                        if cy >= h as usize || x0 >= w as usize {
                            break;
                        }
                        let n = tw.min(w as usize - x0);
                        canvas[(cy * w as usize + x0) * ch..][..n * ch]
                            .copy_from_slice(&buf[y * tw * ch..][..n * ch]);
                    }
                }
            }
            let (canvas, ch) = out.ok_or_else(|| avif_error("a grid without tiles"))?;
            Ok((canvas, ch, (w, h)))
        }
        _ => Err(avif_error("an item that is not AV1")),
    }
}

fn crop(p: Pixels, c: Option<Crop>) -> Pixels {
    let Some(c) = c else { return p };
    if (c.x, c.y, c.w, c.h) == (0, 0, p.width, p.height) {
        return p;
    }
    let ch = usize::from(p.channels);
    let mut buf = Vec::with_capacity(c.w as usize * c.h as usize * ch);
    for y in c.y..c.y + c.h {
        let at = (y as usize * p.width as usize + c.x as usize) * ch;
        buf.extend_from_slice(&p.buf[at..at + c.w as usize * ch]);
    }
    Pixels {
        width: c.w,
        height: c.h,
        channels: p.channels,
        buf,
    }
}

/// The still image, in its stored orientation (the header carries `irot`/`imir`), cropped.
pub(crate) fn decode(bytes: &[u8], header: &Header) -> Result<Pixels, ImageError> {
    let Ok(file) = HeifFile::parse(bytes) else {
        return Frames::new(bytes, header)?
            .next_frame()?
            .map(|f| f.pixels)
            .ok_or_else(|| avif_error("a sequence without samples"));
    };
    let s = still(&file)?;
    let mut decoder = Decoder::new(s.largest_picture)?;
    let matrix = s.nclx.map(|n| n.2);
    let (colour, ch, size) = decode_item(&file, s.id, &mut decoder, matrix, false)?;
    if size != s.coded {
        return Err(avif_error(
            "the decoded image differs from its declared size",
        ));
    }
    let mut pixels = formats::pixels(size.0, size.1, ch, colour);
    if let Some(alpha) = s.alpha {
        let (a, _, asize) = decode_item(&file, alpha, &mut decoder, None, true)?;
        if asize != size {
            return Err(avif_error("the alpha plane differs from the image in size"));
        }
        let rgb = if pixels.channels == 1 {
            pixels.buf.iter().flat_map(|&v| [v, v, v]).collect()
        } else {
            std::mem::take(&mut pixels.buf)
        };
        let buf = rgb
            .chunks_exact(3)
            .zip(&a)
            .flat_map(|(c, &a)| [c[0], c[1], c[2], a])
            .collect();
        pixels = Pixels {
            width: size.0,
            height: size.1,
            channels: 4,
            buf,
        };
    }
    Ok(crop(pixels, s.crop))
}

/// The samples of an image sequence, each decoded in turn (they reference each other), with
/// the samples of its alpha track when it has one.
pub struct Frames<'a> {
    bytes: &'a [u8],
    track: Track,
    decoder: Decoder,
    alpha: Option<(Track, Decoder)>,
    next: usize,
}

impl<'a> Frames<'a> {
    pub fn new(bytes: &'a [u8], _header: &Header) -> Result<Frames<'a>, ImageError> {
        let track = track(bytes)?.ok_or_else(|| avif_error("no AV1 track"))?;
        let pixels = u64::from(track.width) * u64::from(track.height);
        let decoder = Decoder::new(pixels)?;
        let alpha = match alpha_track(bytes)? {
            Some(a) if a.samples.len() == track.samples.len() => Some((a, Decoder::new(pixels)?)),
            _ => None,
        };
        Ok(Frames {
            bytes,
            track,
            decoder,
            alpha,
            next: 0,
        })
    }
}

impl FrameSource for Frames<'_> {
    fn next_frame(&mut self) -> Result<Option<Frame>, ImageError> {
        while self.next < self.track.samples.len() {
            let i = self.next;
            self.next += 1;
            let data = sample(self.bytes, self.track.samples[i])?;
            let alpha = match &mut self.alpha {
                Some((track, decoder)) => {
                    let data = sample(self.bytes, track.samples[i])?;
                    decoder.decode(data)?.map(|p| av1::alpha8(&p)).transpose()?
                }
                None => None,
            };
            let Some(picture) = self.decoder.decode(data)? else {
                continue;
            };
            let (m, full) = picture.matrix_and_range();
            let (buf, ch) = av1::to_rgb8(&picture, m, full)?;
            let (w, h) = (picture.width(), picture.height());
            drop(picture);
            let rgb: Vec<u8> = if ch == 1 {
                buf.iter().flat_map(|&v| [v, v, v]).collect()
            } else {
                buf
            };
            let alpha = alpha.filter(|a| a.len() == rgb.len() / 3);
            let buf = match alpha {
                Some(a) => rgb
                    .chunks_exact(3)
                    .zip(a)
                    .flat_map(|(c, a)| [c[0], c[1], c[2], a])
                    .collect(),
                None => rgb
                    .chunks_exact(3)
                    .flat_map(|c| [c[0], c[1], c[2], 255])
                    .collect(),
            };
            let rgba = Pixels {
                width: w,
                height: h,
                channels: 4,
                buf,
            };
            return Ok(Some(Frame {
                pixels: rgba,
                delay_ms: ms(self.track.durations[i], self.track.timescale),
            }));
        }
        Ok(None)
    }
}
