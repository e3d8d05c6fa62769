//! WebP by `image-webp`: lossy (VP8, with an ALPH chunk for alpha), lossless (VP8L), and
//! animated (ANMF frames, composited by the decoder onto its own canvas). The header walk that
//! `WebPDecoder::new` does reads chunk headers only: it counts the frames and sums their
//! durations without decoding any.

use std::io::Cursor;

use state::media::MediaType;

use crate::animation::{Animation, Frame, FrameSource};
use crate::budget::{self, Estimate, MIB};
use crate::orientation::Orientation;
use crate::probe::{self, Header, MAX_ICC_BYTES};
use crate::{formats, metadata, ImageError, Pixels, Settings};

fn decoder(bytes: &[u8]) -> Result<image_webp::WebPDecoder<Cursor<&[u8]>>, ImageError> {
    let mut d = image_webp::WebPDecoder::new(Cursor::new(bytes)).map_err(ImageError::decode)?;
    // Metadata chunks are read whole; none may be larger than the largest profile taken.
    d.set_memory_limit(MAX_ICC_BYTES);
    Ok(d)
}

pub(crate) fn probe(bytes: &[u8], settings: &Settings) -> Result<Header, ImageError> {
    let mut d = decoder(bytes)?;
    let (width, height) = d.dimensions();
    probe::check_pixels(width, height, settings)?;
    // A metadata chunk over the decoder's limit, or cut short, costs that chunk, not the image.
    let mut warnings = Vec::new();
    let icc = probe::usable_icc(d.icc_profile(), &mut warnings);
    let exif_block = d.exif_metadata().unwrap_or_else(|e| {
        warnings.push(format!("EXIF unreadable ({e}); skipped"));
        None
    });
    let exif_block = exif_block.map(|e| match e.strip_prefix(b"Exif\0\0") {
        Some(rest) => rest.to_vec(),
        None => e,
    });
    let exif = probe::read_exif(exif_block.as_deref(), &mut warnings);
    let orientation = exif
        .as_ref()
        .map_or(Orientation::NoTransforms, metadata::orientation);
    let (w, h) = (u64::from(width), u64::from(height));
    let channels: u8 = if d.has_alpha() || d.is_animated() {
        4
    } else {
        3
    };
    let px = budget::pixels(w, h, 1);
    let decode = if d.is_animated() {
        // The decoder's canvas and our copy of it, the frame as RGBA, a lossy frame's YUV planes
        // and alpha plane.
        px * (4 + 4 + 4) + px * 3 + MIB
    } else {
        // The output; a lossless image without alpha is decoded as RGBA first; a lossy one's YUV
        // planes (with their borders) and alpha plane.
        px * u64::from(channels) + px * 4 + px * 3 + MIB
    };
    let animation = d.is_animated().then(|| Animation {
        frames: d.num_frames(),
        duration_ms: d.loop_duration(),
    });
    let metadata =
        probe::exif_cost(exif_block.as_deref()) + icc.as_ref().map_or(0, |p| p.len() as u64 * 2);
    Ok(probe::header_of(
        MediaType::Webp,
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
            hd.animation = animation;
        },
    ))
}

/// A still WebP (or the first frame of an animated one).
pub(crate) fn decode(bytes: &[u8], header: &Header) -> Result<Pixels, ImageError> {
    let mut d = decoder(bytes)?;
    if (d.dimensions()) != (header.width, header.height) {
        return Err(ImageError::decode("WebP size differs from its header"));
    }
    if d.is_animated() {
        return Frames::new(bytes)?
            .next_frame()?
            .map(|f| f.pixels)
            .ok_or_else(|| ImageError::decode("an animated WebP without frames"));
    }
    let channels: u8 = if d.has_alpha() { 4 } else { 3 };
    let mut buf = vec![0; formats::buffer_len(header.width, header.height, u64::from(channels))?];
    d.read_image(&mut buf).map_err(ImageError::decode)?;
    Ok(Pixels {
        width: header.width,
        height: header.height,
        channels,
        buf,
    })
}

/// The frames of an animated WebP, composited by the decoder.
pub struct Frames<'a> {
    decoder: image_webp::WebPDecoder<Cursor<&'a [u8]>>,
    channels: u8,
}

impl<'a> Frames<'a> {
    pub fn new(bytes: &'a [u8]) -> Result<Frames<'a>, ImageError> {
        let decoder = decoder(bytes)?;
        if !decoder.is_animated() {
            return Err(ImageError::decode("not an animated WebP"));
        }
        let channels = if decoder.has_alpha() { 4 } else { 3 };
        Ok(Frames { decoder, channels })
    }
}

impl FrameSource for Frames<'_> {
    fn next_frame(&mut self) -> Result<Option<Frame>, ImageError> {
        let (width, height) = self.decoder.dimensions();
        let mut buf = vec![0; formats::buffer_len(width, height, u64::from(self.channels))?];
        match self.decoder.read_frame(&mut buf) {
            Ok(delay_ms) => Ok(Some(Frame {
                pixels: Pixels {
                    width,
                    height,
                    channels: self.channels,
                    buf,
                },
                delay_ms,
            })),
            Err(image_webp::DecodingError::NoMoreFrames) => Ok(None),
            Err(e) => Err(ImageError::decode(e)),
        }
    }
}
