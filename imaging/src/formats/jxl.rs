//! JPEG XL by `jxl-oxide` (pure Rust), on the calling thread (no thread pool) and with its
//! allocations held to the probe's estimate by its own tracker. The decoder applies the
//! codestream's orientation itself, and renders in the image's colour space, which its ICC
//! description ([`jxl_oxide::JxlImage::rendered_icc`]) gives to [`crate::colour`].

use std::io::Cursor;

use jxl_oxide::{AllocTracker, JxlImage, JxlThreadPool, PixelFormat};
use state::media::MediaType;

use crate::animation::{Animation, Frame, FrameSource};
use crate::budget::{self, Estimate, MIB};
use crate::probe::{self, Header};
use crate::{formats, ImageError, Pixels, Settings};

/// jxl-oxide's buffers per pixel of a frame, as measured on photos (VarDCT) and on lossless art
/// (Modular): f32 planes for each channel at each stage it keeps (coefficients, the decoded
/// planes, the rendered and composited image) and the 8-bit output.
const DECODER_BYTES_PER_PIXEL: u64 = 64;

fn jxl_error(e: impl std::fmt::Display) -> ImageError {
    ImageError::decode(format!("JPEG XL: {e}"))
}

fn read(bytes: &[u8], limit: Option<u64>) -> Result<JxlImage, ImageError> {
    let mut builder = JxlImage::builder().pool(JxlThreadPool::none());
    if let Some(limit) = limit {
        builder = builder.alloc_tracker(AllocTracker::with_limit(
            usize::try_from(limit).unwrap_or(usize::MAX),
        ));
    }
    builder.read(Cursor::new(bytes)).map_err(jxl_error)
}

fn channels(format: PixelFormat) -> Result<u8, ImageError> {
    match format {
        PixelFormat::Gray => Ok(1),
        PixelFormat::Graya => Ok(2),
        PixelFormat::Rgb => Ok(3),
        PixelFormat::Rgba => Ok(4),
        other => Err(ImageError::decode(format!(
            "JPEG XL: {other:?} pixels are not taken"
        ))),
    }
}

/// Milliseconds a frame of `ticks` is shown at the animation's ticks per second.
fn ticks_ms(image: &JxlImage, ticks: u32) -> u64 {
    match &image.image_header().metadata.animation {
        Some(a) if a.tps_numerator > 0 => {
            u64::from(ticks) * 1000 * u64::from(a.tps_denominator) / u64::from(a.tps_numerator)
        }
        _ => 0,
    }
}

pub(crate) fn probe(bytes: &[u8], settings: &Settings) -> Result<Header, ImageError> {
    let image = read(bytes, None)?;
    let (width, height) = (image.width(), image.height());
    probe::check_pixels(width, height, settings)?;
    let ch = channels(image.pixel_format())?;
    let frames = image.num_loaded_keyframes() as u32;
    if frames == 0 {
        return Err(ImageError::decode("JPEG XL: no frame in the file"));
    }
    let duration_ms = (0..frames as usize)
        .filter_map(|i| image.frame_header(i))
        .map(|f| ticks_ms(&image, f.duration))
        .sum();
    let mut warnings = Vec::new();
    let icc = probe::usable_icc(
        Ok::<_, ImageError>(Some(image.rendered_icc()).filter(|p| !p.is_empty())),
        &mut warnings,
    );
    let exif_block = match image.aux_boxes().first_exif() {
        Ok(jxl_oxide::AuxBoxData::Data(raw)) => Some(raw.payload().to_vec()),
        Ok(_) => None,
        Err(e) => {
            warnings.push(format!("EXIF unreadable ({e}); skipped"));
            None
        }
    };
    let exif = probe::read_exif(exif_block.as_deref(), &mut warnings);
    let decode = limit_of(width, height) + bytes.len() as u64 * 2;
    let animation =
        (image.image_header().metadata.animation.is_some() && frames > 1).then_some(Animation {
            frames,
            duration_ms,
        });
    let channels = if ch == 2 { 4 } else { ch };
    let metadata =
        probe::exif_cost(exif_block.as_deref()) + icc.as_ref().map_or(0, |p| p.len() as u64 * 2);
    Ok(probe::header_of(
        MediaType::Jxl,
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
            hd.exif = exif;
            hd.warnings = warnings;
            hd.icc = icc;
            hd.animation = animation;
        },
    ))
}

/// What the decoder may allocate for a `width` x `height` image: its share of the estimate. The
/// fixed part covers its per-group buffers, which do not shrink with a small image.
fn limit_of(width: u32, height: u32) -> u64 {
    budget::pixels(u64::from(width), u64::from(height), DECODER_BYTES_PER_PIXEL) + 48 * MIB
}

fn limit(header: &Header) -> u64 {
    limit_of(header.width, header.height)
}

fn render(
    image: &JxlImage,
    index: usize,
    (width, height): (u32, u32),
) -> Result<(Pixels, u64), ImageError> {
    let render = image.render_frame(index).map_err(jxl_error)?;
    let mut stream = render.stream();
    if (stream.width(), stream.height()) != (width, height) {
        return Err(ImageError::decode(
            "JPEG XL frame size differs from its header",
        ));
    }
    let ch = stream.channels() as u8;
    let mut buf = vec![0u8; formats::buffer_len(width, height, u64::from(ch))?];
    stream.write_to_buffer(&mut buf);
    let delay = ticks_ms(image, render.duration());
    Ok((formats::pixels(width, height, ch, buf), delay))
}

pub(crate) fn decode(bytes: &[u8], header: &Header) -> Result<Pixels, ImageError> {
    let image = read(bytes, Some(limit(header)))?;
    render(&image, 0, (header.width, header.height)).map(|(p, _)| p)
}

/// The frames of an animated JPEG XL, each rendered composited.
pub struct Frames {
    image: JxlImage,
    header_size: (u32, u32),
    next: usize,
}

impl Frames {
    pub fn new(bytes: &[u8], header: &Header) -> Result<Frames, ImageError> {
        Ok(Frames {
            image: read(bytes, Some(limit(header)))?,
            header_size: (header.width, header.height),
            next: 0,
        })
    }
}

impl FrameSource for Frames {
    fn next_frame(&mut self) -> Result<Option<Frame>, ImageError> {
        if self.next >= self.image.num_loaded_keyframes() {
            return Ok(None);
        }
        let (pixels, delay) = render(&self.image, self.next, self.header_size)?;
        self.next += 1;
        Ok(Some(Frame {
            pixels,
            delay_ms: u32::try_from(delay).unwrap_or(u32::MAX),
        }))
    }
}
