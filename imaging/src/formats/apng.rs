//! APNG by the `png` crate: the PNG probe's colour and metadata (iCCP, gAMA/cHRM, eXIf), each
//! frame's control chunk (`fcTL`) counted and timed from the chunk headers alone, and the frames
//! decoded one after another at 8 bits and composited as the APNG specification says (blend
//! source or over; dispose none, background or previous).

use std::io::Cursor;

use state::media::MediaType;

use crate::animation::{Animation, Canvas, Dispose, Frame, FrameSource, Rect};
use crate::budget::{self, MIB};
use crate::probe::{self, Header};
use crate::{ImageError, Settings};

/// A frame's delay in milliseconds from its fraction of a second (a zero denominator is 1/100).
fn delay_ms(num: u16, den: u16) -> u32 {
    let den = if den == 0 { 100 } else { u32::from(den) };
    u32::from(num) * 1000 / den
}

/// What the chunk headers say of the animation.
struct Controls {
    /// The frames' control chunks (`fcTL`): how many (no more than `acTL` says, as players
    /// play), and how long in all.
    animation: Animation,
    /// The frames the animation control chunk (`acTL`) declares.
    declared: u32,
}

/// The animation's controls, from the chunk headers alone. None when the animation control is
/// broken (no `acTL`, or more than one): the file is then its default image, as players show
/// it. A frame control chunk without its frame's data is an error.
fn frame_controls(bytes: &[u8]) -> Result<Option<Controls>, ImageError> {
    let mut animation = Animation {
        frames: 0,
        duration_ms: 0,
    };
    let mut declared = None;
    let mut data_since_control = true;
    let mut at = 8;
    while let Some(head) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        match &head[4..8] {
            b"acTL" => {
                let Some(d) = bytes.get(at + 8..at + 12) else {
                    return Ok(None);
                };
                if declared.is_some() {
                    return Ok(None);
                }
                declared = Some(u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
            }
            b"fcTL" => {
                if !std::mem::replace(&mut data_since_control, false) {
                    return Err(ImageError::decode("APNG frame control without frame data"));
                }
                if let Some(d) = bytes.get(at + 8..at + 8 + 26) {
                    if declared.is_some_and(|n| animation.frames >= n) {
                        break;
                    }
                    animation.frames += 1;
                    animation.duration_ms += u64::from(delay_ms(
                        u16::from_be_bytes([d[20], d[21]]),
                        u16::from_be_bytes([d[22], d[23]]),
                    ));
                }
            }
            b"IDAT" | b"fdAT" => data_since_control = true,
            b"IEND" => break,
            _ => {}
        }
        at = at.saturating_add(12).saturating_add(len);
    }
    Ok(declared.map(|declared| Controls {
        animation,
        declared,
    }))
}

pub(crate) fn probe(bytes: &[u8], settings: &Settings) -> Result<Header, ImageError> {
    let mut header = probe::probe_png(bytes, settings)?;
    header.format = MediaType::Apng;
    let animation = frame_controls(bytes)?.map(|c| c.animation);
    let (w, h) = (u64::from(header.width), u64::from(header.height));
    // Besides the PNG decode (a frame at 8 bits): the frame as RGBA, the canvas, the copy shown
    // and the copy "dispose to previous" keeps.
    header.estimate.decode += budget::pixels(w, h, 4) * 4 + MIB;
    header.animation = animation.filter(|a| a.frames > 1);
    probe::finish_costs(&mut header, 4, settings);
    Ok(header)
}

/// The frames of an APNG, composited. A default image that is not part of the animation is
/// skipped: the first frame is the animation's.
pub struct Frames<'a> {
    reader: png::Reader<Cursor<&'a [u8]>>,
    canvas: Canvas,
    buf: Vec<u8>,
    skip_default: bool,
    first: bool,
    /// The frames still to come, as the animation control chunk declares them.
    left: u32,
}

impl<'a> Frames<'a> {
    pub fn new(bytes: &'a [u8], header: &Header) -> Result<Frames<'a>, ImageError> {
        let mut decoder = png::Decoder::new(Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        decoder.set_ignore_iccp_chunk(true);
        decoder.set_ignore_text_chunk(true);
        let reader = decoder.read_info().map_err(ImageError::decode)?;
        if (reader.info().width, reader.info().height) != (header.width, header.height) {
            return Err(ImageError::decode("APNG size differs from its header"));
        }
        let size = reader
            .output_buffer_size()
            .ok_or_else(|| ImageError::decode("APNG too large for this machine's address space"))?;
        let skip_default = reader.info().frame_control.is_none();
        // A broken animation control is shown as the default image (by the still decode). The
        // frames are read up to the count `acTL` declares: one missing is an error.
        let left = frame_controls(bytes)?
            .ok_or_else(|| ImageError::decode("APNG animation control is broken"))?
            .declared;
        Ok(Frames {
            reader,
            canvas: Canvas::new(header.width, header.height)?,
            buf: vec![0; size],
            skip_default,
            first: true,
            left,
        })
    }
}

impl FrameSource for Frames<'_> {
    fn next_frame(&mut self) -> Result<Option<Frame>, ImageError> {
        loop {
            if self.left == 0 {
                return Ok(None);
            }
            let output = match self.reader.next_frame(&mut self.buf) {
                Ok(o) => o,
                Err(png::DecodingError::Parameter(_)) => return Ok(None),
                Err(e) => return Err(ImageError::decode(e)),
            };
            if std::mem::take(&mut self.skip_default) {
                continue;
            }
            let control = self.reader.info().frame_control().copied();
            let (rect, over, dispose, delay_ms) = match control {
                Some(c) => (
                    Rect {
                        x: c.x_offset,
                        y: c.y_offset,
                        w: c.width,
                        h: c.height,
                    },
                    c.blend_op == png::BlendOp::Over,
                    match c.dispose_op {
                        png::DisposeOp::None => Dispose::Keep,
                        png::DisposeOp::Background => Dispose::Background,
                        // On the first frame, "previous" is the cleared canvas.
                        png::DisposeOp::Previous if self.first => Dispose::Background,
                        png::DisposeOp::Previous => Dispose::Previous,
                    },
                    delay_ms(c.delay_num, c.delay_den),
                ),
                None => (
                    Rect {
                        x: 0,
                        y: 0,
                        w: output.width,
                        h: output.height,
                    },
                    false,
                    Dispose::Keep,
                    0,
                ),
            };
            if (rect.w, rect.h) != (output.width, output.height) {
                return Err(ImageError::decode("APNG frame size differs from its fcTL"));
            }
            self.first = false;
            self.left -= 1;
            let samples = &self.buf[..output.line_size * output.height as usize];
            let rgba = to_rgba(samples, output.color_type)?;
            let pixels = self.canvas.draw(rect, &rgba, over, dispose)?;
            return Ok(Some(Frame { pixels, delay_ms }));
        }
    }
}

/// 8-bit samples of `color` as RGBA.
fn to_rgba(samples: &[u8], color: png::ColorType) -> Result<Vec<u8>, ImageError> {
    Ok(match color {
        png::ColorType::Rgba => samples.to_vec(),
        png::ColorType::Rgb => samples
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        png::ColorType::Grayscale => samples.iter().flat_map(|&v| [v, v, v, 255]).collect(),
        png::ColorType::GrayscaleAlpha => samples
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0], p[1]])
            .collect(),
        png::ColorType::Indexed => return Err(ImageError::decode("APNG palette was not expanded")),
    })
}
