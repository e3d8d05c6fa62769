//! GIF: its blocks walked by hand for the probe (no pixel is decoded to count frames), then the
//! `gif` crate's decoder frame by frame (interlacing, local palettes and transparency resolved to
//! RGBA), composited on an RGBA canvas ([`crate::animation::Canvas`]).

use std::io::Cursor;

use state::media::MediaType;

use crate::animation::{Animation, Canvas, Dispose, Frame, FrameSource, Rect};
use crate::budget::{self, Estimate, MIB};
use crate::probe::{self, Header};
use crate::{ImageError, Settings};

/// What the blocks of a GIF say, without decoding a pixel.
#[derive(Debug, Default)]
pub(crate) struct Blocks {
    pub width: u32,
    pub height: u32,
    pub frames: u32,
    pub duration_ms: u64,
    /// The largest frame, in pixels (a frame may be larger than the screen it is drawn on).
    pub largest_frame: u64,
}

/// How long a frame is shown, as browsers show it: a delay of 0 or 1 hundredth is 100 ms.
pub(crate) fn delay_ms(hundredths: u16) -> u32 {
    if hundredths <= 1 {
        100
    } else {
        u32::from(hundredths) * 10
    }
}

fn skip_sub_blocks(bytes: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = usize::from(*bytes.get(at)?);
        at += 1;
        if len == 0 {
            return Some(at);
        }
        at += len;
    }
}

/// Walks the blocks: the screen's size, each image descriptor (a frame) and each graphic control
/// extension (its delay). Stops at the trailer or where the data ends.
pub(crate) fn blocks(bytes: &[u8]) -> Result<Blocks, ImageError> {
    let bad = |why: &str| ImageError::decode(format!("GIF: {why}"));
    let screen = bytes
        .get(6..13)
        .ok_or_else(|| bad("no logical screen descriptor"))?;
    let mut b = Blocks {
        width: u32::from(u16::from_le_bytes([screen[0], screen[1]])),
        height: u32::from(u16::from_le_bytes([screen[2], screen[3]])),
        ..Blocks::default()
    };
    let table = |packed: u8| {
        if packed & 0x80 != 0 {
            3usize << ((packed & 7) + 1)
        } else {
            0
        }
    };
    let mut at = 13 + table(screen[4]);
    let mut delay = None;
    let mut first_extent = None;
    while let Some(&kind) = bytes.get(at) {
        match kind {
            0x21 => {
                let label = bytes.get(at + 1).copied();
                if label == Some(0xF9) {
                    if let Some(gce) = bytes.get(at + 2..at + 8).filter(|g| g[0] >= 4) {
                        delay = Some(u16::from_le_bytes([gce[2], gce[3]]));
                    }
                }
                match skip_sub_blocks(bytes, at + 2) {
                    Some(next) => at = next,
                    None => break,
                }
            }
            0x2C => {
                let Some(d) = bytes.get(at + 1..at + 10) else {
                    break;
                };
                let (x, y) = (
                    u16::from_le_bytes([d[0], d[1]]),
                    u16::from_le_bytes([d[2], d[3]]),
                );
                let (w, h) = (
                    u16::from_le_bytes([d[4], d[5]]),
                    u16::from_le_bytes([d[6], d[7]]),
                );
                b.largest_frame = b.largest_frame.max(u64::from(w) * u64::from(h));
                first_extent
                    .get_or_insert((u32::from(x) + u32::from(w), u32::from(y) + u32::from(h)));
                b.frames += 1;
                b.duration_ms += u64::from(delay_ms(delay.take().unwrap_or(0)));
                // Descriptor, local colour table, LZW code size, then the data's sub-blocks.
                match skip_sub_blocks(bytes, at + 10 + table(d[8]) + 1) {
                    Some(next) => at = next,
                    None => break,
                }
            }
            0x3B => break,
            _ => break,
        }
    }
    if b.frames == 0 {
        return Err(bad("no image in the file"));
    }
    if b.width == 0 || b.height == 0 {
        // A zero screen: players size it by the first frame.
        let (w, h) = first_extent.unwrap_or_default();
        (b.width, b.height) = (w, h);
    }
    Ok(b)
}

pub(crate) fn probe(bytes: &[u8], settings: &Settings) -> Result<Header, ImageError> {
    let b = blocks(bytes)?;
    let (width, height) = (b.width, b.height);
    probe::check_pixels(width, height, settings)?;
    // A frame is decoded whole before it is clipped to the screen: it is held to the pixel cap too.
    if b.largest_frame > settings.max_pixels {
        return Err(ImageError::decode(format!(
            "GIF: a frame of {} pixels, over the cap of {}",
            b.largest_frame, settings.max_pixels
        )));
    }
    let (w, h) = (u64::from(width), u64::from(height));
    // The canvas, the copy shown, the copy "dispose to previous" keeps, the largest frame as RGBA,
    // and the decoder's LZW tables and line buffers.
    let decode = budget::pixels(w, h, 4) * 3 + b.largest_frame * 4 + MIB;
    let animation = (b.frames > 1).then_some(Animation {
        frames: b.frames,
        duration_ms: b.duration_ms,
    });
    Ok(probe::header_of(
        MediaType::Gif,
        (width, height),
        Estimate {
            original: bytes.len() as u64,
            decode,
            fixed: 2 * MIB,
            ..Estimate::default()
        },
        4,
        settings,
        |h| h.animation = animation,
    ))
}

/// The frames of a GIF, composited.
pub struct Frames<'a> {
    decoder: gif::Decoder<Cursor<&'a [u8]>>,
    canvas: Canvas,
}

impl<'a> Frames<'a> {
    pub fn new(bytes: &'a [u8], header: &Header) -> Result<Frames<'a>, ImageError> {
        let mut options = gif::DecodeOptions::new();
        options.set_color_output(gif::ColorOutput::RGBA);
        // The probe held every frame to the pixel cap; the decoder is held to it too.
        let limit = header.width as u64 * header.height as u64 * 4 + 4 * MIB;
        options.set_memory_limit(gif::MemoryLimit::Bytes(
            std::num::NonZeroU64::new(limit.max(blocks(bytes)?.largest_frame * 4 + MIB))
                .expect("non-zero"),
        ));
        let decoder = options
            .read_info(Cursor::new(bytes))
            .map_err(ImageError::decode)?;
        Ok(Frames {
            decoder,
            canvas: Canvas::new(header.width, header.height)?,
        })
    }
}

impl FrameSource for Frames<'_> {
    fn next_frame(&mut self) -> Result<Option<Frame>, ImageError> {
        let Some(frame) = self.decoder.read_next_frame().map_err(ImageError::decode)? else {
            return Ok(None);
        };
        let rect = Rect {
            x: u32::from(frame.left),
            y: u32::from(frame.top),
            w: u32::from(frame.width),
            h: u32::from(frame.height),
        };
        let dispose = match frame.dispose {
            gif::DisposalMethod::Background => Dispose::Background,
            gif::DisposalMethod::Previous => Dispose::Previous,
            _ => Dispose::Keep,
        };
        let delay_ms = delay_ms(frame.delay);
        let pixels = self.canvas.draw(rect, &frame.buffer, true, dispose)?;
        Ok(Some(Frame { pixels, delay_ms }))
    }
}
