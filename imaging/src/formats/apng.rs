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

/// The frames' control chunks, from the chunk headers: how many, and how long in all.
fn frame_controls(bytes: &[u8]) -> Animation {
    let mut a = Animation {
        frames: 0,
        duration_ms: 0,
    };
    let mut at = 8;
    while let Some(head) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        match &head[4..8] {
            b"fcTL" => {
                if let Some(d) = bytes.get(at + 8..at + 8 + 26) {
                    a.frames += 1;
                    a.duration_ms += u64::from(delay_ms(
                        u16::from_be_bytes([d[20], d[21]]),
                        u16::from_be_bytes([d[22], d[23]]),
                    ));
                }
            }
            b"IEND" => break,
            _ => {}
        }
        at = at.saturating_add(12).saturating_add(len);
    }
    a
}

pub(crate) fn probe(bytes: &[u8], settings: &Settings) -> Result<Header, ImageError> {
    let mut header = probe::probe_png(bytes, settings)?;
    header.format = MediaType::Apng;
    let animation = frame_controls(bytes);
    let (w, h) = (u64::from(header.width), u64::from(header.height));
    // Besides the PNG decode (a frame at 8 bits): the frame as RGBA, the canvas, the copy shown
    // and the copy "dispose to previous" keeps.
    header.estimate.decode += budget::pixels(w, h, 4) * 4 + MIB;
    header.animation = (animation.frames > 1).then_some(animation);
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
        Ok(Frames {
            reader,
            canvas: Canvas::new(header.width, header.height)?,
            buf: vec![0; size],
            skip_default,
            first: true,
        })
    }
}

impl FrameSource for Frames<'_> {
    fn next_frame(&mut self) -> Result<Option<Frame>, ImageError> {
        loop {
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
