//! AV1 decoding by `rav1d` (the Rust port of dav1d), through its dav1d-compatible API, and the
//! decoded YUV planes to 8-bit RGB(A).
//!
//! rav1d is asked for one thread and no frame delay (images are the unit of parallelism here,
//! and a still image has nothing to pipeline), for film grain as encoders meant it, and to refuse
//! any frame larger than the container declared (`frame_size_limit`), so a stream cannot make it
//! allocate past the probe's estimate.

use std::ptr::NonNull;

use rav1d::include::dav1d::data::Dav1dData;
use rav1d::include::dav1d::dav1d::{Dav1dContext, Dav1dSettings};
use rav1d::include::dav1d::headers::{
    DAV1D_PIXEL_LAYOUT_I400, DAV1D_PIXEL_LAYOUT_I420, DAV1D_PIXEL_LAYOUT_I422,
    DAV1D_PIXEL_LAYOUT_I444,
};
use rav1d::include::dav1d::picture::Dav1dPicture;
use rav1d::src::lib::{
    dav1d_close, dav1d_data_create, dav1d_data_unref, dav1d_default_settings, dav1d_get_picture,
    dav1d_open, dav1d_picture_unref, dav1d_send_data,
};

use crate::ImageError;

fn rav1d_error(what: &str, code: i32) -> ImageError {
    ImageError::decode(format!("AV1: {what} (rav1d error {})", code.unsigned_abs()))
}

/// dav1d's "try again" (`DAV1D_ERR(EAGAIN)`, EAGAIN being 11 on Linux): the decoder wants its
/// output read before it takes more data, or has no picture yet.
const EAGAIN: i32 = -11;

/// A rav1d decoder context.
pub struct Decoder {
    ctx: Option<Dav1dContext>,
}

// SAFETY: the context is used from one thread at a time (`&mut self`), as dav1d allows.
unsafe impl Send for Decoder {}

impl Decoder {
    /// A decoder that refuses frames of more than `max_pixels`.
    pub fn new(max_pixels: u64) -> Result<Decoder, ImageError> {
        // SAFETY: the settings are initialised by dav1d_default_settings before any field is
        // read; the context dav1d_open writes is owned here and closed once, in Drop.
        unsafe {
            let mut settings = std::mem::MaybeUninit::<Dav1dSettings>::uninit();
            dav1d_default_settings(NonNull::from(&mut settings).cast());
            let mut settings = settings.assume_init();
            settings.n_threads = 1;
            settings.max_frame_delay = 1;
            settings.apply_grain = 1;
            settings.frame_size_limit = u32::try_from(max_pixels.max(1)).unwrap_or(u32::MAX);
            let mut ctx = None;
            let res = dav1d_open(
                Some(NonNull::from(&mut ctx)),
                Some(NonNull::from(&mut settings)),
            );
            if res.0 != 0 {
                return Err(rav1d_error("the decoder did not start", res.0));
            }
            Ok(Decoder { ctx })
        }
    }

    /// Feeds one temporal unit (an AVIF item, or a sample of a sequence) and returns the picture
    /// it shows, if any (for a layered item, its last and complete layer).
    pub fn decode(&mut self, unit: &[u8]) -> Result<Option<Picture>, ImageError> {
        let ctx = self
            .ctx
            .ok_or_else(|| ImageError::decode("AV1: decoder closed"))?;
        let mut shown: Option<Picture> = None;
        // SAFETY: `data` is created by dav1d with room for `unit` and filled before it is sent;
        // dav1d takes ownership when send_data consumes it, and it is unreferenced otherwise.
        // Pictures returned are owned by `Picture`, which unreferences them on drop.
        unsafe {
            let mut data = Dav1dData::default();
            let buf = dav1d_data_create(Some(NonNull::from(&mut data)), unit.len());
            if buf.is_null() {
                return Err(ImageError::decode("AV1: out of memory for the data"));
            }
            std::ptr::copy_nonoverlapping(unit.as_ptr(), buf, unit.len());
            let sent = loop {
                let res = dav1d_send_data(Some(ctx), Some(NonNull::from(&mut data)));
                if res.0 == 0 {
                    break Ok(());
                }
                if res.0 != EAGAIN {
                    break Err(rav1d_error("the data does not decode", res.0));
                }
                match self.take_picture(ctx)? {
                    Some(p) => shown = Some(p),
                    None => break Err(rav1d_error("the decoder is stuck", res.0)),
                }
            };
            dav1d_data_unref(Some(NonNull::from(&mut data)));
            sent?;
        }
        while let Some(p) = self.take_picture(ctx)? {
            shown = Some(p);
        }
        Ok(shown)
    }

    fn take_picture(&mut self, ctx: Dav1dContext) -> Result<Option<Picture>, ImageError> {
        let mut pic = Dav1dPicture::default();
        // SAFETY: `pic` is written by dav1d only on success, and handed to `Picture` then.
        let res = unsafe { dav1d_get_picture(Some(ctx), Some(NonNull::from(&mut pic))) };
        match res.0 {
            0 => Ok(Some(Picture(pic))),
            e if e == EAGAIN => Ok(None),
            e => Err(rav1d_error("the picture does not decode", e)),
        }
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: the context came from dav1d_open and is closed only here.
        unsafe { dav1d_close(Some(NonNull::from(&mut self.ctx))) };
    }
}

/// A decoded picture: YUV planes at 8 to 12 bits.
pub struct Picture(Dav1dPicture);

impl Drop for Picture {
    fn drop(&mut self) {
        // SAFETY: the picture came from dav1d_get_picture and is unreferenced only here.
        unsafe { dav1d_picture_unref(Some(NonNull::from(&mut self.0))) };
    }
}

/// How chroma is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Monochrome,
    Yuv420,
    Yuv422,
    Yuv444,
}

impl Picture {
    pub fn width(&self) -> u32 {
        self.0.p.w as u32
    }

    pub fn height(&self) -> u32 {
        self.0.p.h as u32
    }

    pub fn bit_depth(&self) -> u8 {
        self.0.p.bpc as u8
    }

    pub fn layout(&self) -> Result<Layout, ImageError> {
        Ok(match self.0.p.layout {
            DAV1D_PIXEL_LAYOUT_I400 => Layout::Monochrome,
            DAV1D_PIXEL_LAYOUT_I420 => Layout::Yuv420,
            DAV1D_PIXEL_LAYOUT_I422 => Layout::Yuv422,
            DAV1D_PIXEL_LAYOUT_I444 => Layout::Yuv444,
            _ => return Err(ImageError::decode("AV1: unknown chroma layout")),
        })
    }

    /// The sequence header's matrix coefficients (ITU-T H.273) and full range flag.
    pub fn matrix_and_range(&self) -> (u8, bool) {
        match self.0.seq_hdr {
            // SAFETY: the sequence header lives as long as the picture that references it.
            Some(h) => unsafe {
                let h = h.as_ref();
                (h.mtrx as u8, h.color_range != 0)
            },
            None => (2, false),
        }
    }

    /// Plane `n` (0 Y, 1 U, 2 V) as rows of samples widened to u16: (samples, stride, w, h).
    pub fn plane(&self, n: usize) -> Result<Plane<'_>, ImageError> {
        let layout = self.layout()?;
        let (sx, sy) = match (n, layout) {
            (0, _) | (_, Layout::Yuv444) => (0, 0),
            (_, Layout::Yuv420) => (1, 1),
            (_, Layout::Yuv422) => (1, 0),
            (_, Layout::Monochrome) => return Err(ImageError::decode("AV1: no chroma plane")),
        };
        let w = (self.width() as usize + sx) >> sx;
        let h = (self.height() as usize + sy) >> sy;
        let ptr = self.0.data[n].ok_or_else(|| ImageError::decode("AV1: a plane is missing"))?;
        let wide = self.bit_depth() > 8;
        let stride = self.0.stride[usize::from(n > 0)];
        let unit = if wide { 2 } else { 1 };
        if stride <= 0 || (stride as usize) < w * unit || !(stride as usize).is_multiple_of(unit) {
            return Err(ImageError::decode("AV1: a plane's stride"));
        }
        let stride = stride as usize / unit;
        // SAFETY: dav1d allocates `stride` samples for each of the plane's `h` rows, and the
        // picture (borrowed by the plane) keeps them alive.
        let samples = unsafe {
            if wide {
                Samples::Wide(std::slice::from_raw_parts(
                    ptr.as_ptr().cast::<u16>(),
                    stride * h,
                ))
            } else {
                Samples::Narrow(std::slice::from_raw_parts(
                    ptr.as_ptr().cast::<u8>(),
                    stride * h,
                ))
            }
        };
        Ok(Plane {
            samples,
            stride,
            width: w,
            height: h,
        })
    }
}

enum Samples<'a> {
    Narrow(&'a [u8]),
    Wide(&'a [u16]),
}

/// One plane of a picture.
pub struct Plane<'a> {
    samples: Samples<'a>,
    stride: usize,
    pub width: usize,
    pub height: usize,
}

impl Plane<'_> {
    #[inline]
    pub fn at(&self, x: usize, y: usize) -> u16 {
        let x = x.min(self.width - 1);
        let y = y.min(self.height - 1);
        match self.samples {
            Samples::Narrow(s) => u16::from(s[y * self.stride + x]),
            Samples::Wide(s) => s[y * self.stride + x],
        }
    }
}

/// YUV to RGB coefficients of an H.273 matrix: (Kr, Kb), or `None` for identity (GBR).
fn coefficients(matrix: u8) -> Result<Option<(f32, f32)>, ImageError> {
    Ok(Some(match matrix {
        0 => return Ok(None),
        1 => (0.2126, 0.0722),
        // Unspecified, BT.470BG, BT.601: libavif and browsers take BT.601 when nothing is said.
        2 | 5 | 6 => (0.299, 0.114),
        4 => (0.30, 0.11),
        7 => (0.212, 0.087),
        9 | 10 => (0.2627, 0.0593),
        other => {
            return Err(ImageError::decode(format!(
                "AV1: matrix coefficients {other} are not taken"
            )))
        }
    }))
}

/// The picture as 8-bit gray or RGB (`matrix` and `full_range` as the container or the sequence
/// header say), chroma upsampled bilinearly as libavif's best-quality path does.
pub fn to_rgb8(p: &Picture, matrix: u8, full_range: bool) -> Result<(Vec<u8>, u8), ImageError> {
    let (w, h) = (p.width() as usize, p.height() as usize);
    let depth = u32::from(p.bit_depth());
    let max = ((1u32 << depth) - 1) as f32;
    let (y_off, y_scale, c_scale) = if full_range {
        (0.0, max, max)
    } else {
        let s = (1u32 << (depth - 8)) as f32;
        (16.0 * s, 219.0 * s, 224.0 * s)
    };
    let half = (1u32 << (depth - 1)) as f32;
    let luma = p.plane(0)?;
    let norm_y = |v: u16| (f32::from(v) - y_off) / y_scale;
    let layout = p.layout()?;
    if layout == Layout::Monochrome {
        let mut out = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                out.push((norm_y(luma.at(x, y)) * 255.0).round().clamp(0.0, 255.0) as u8);
            }
        }
        return Ok((out, 1));
    }
    let (u, v) = (p.plane(1)?, p.plane(2)?);
    let (sx, sy) = match layout {
        Layout::Yuv420 => (true, true),
        Layout::Yuv422 => (true, false),
        _ => (false, false),
    };
    let identity = coefficients(matrix)?;
    let mut out = Vec::with_capacity(w * h * 3);
    // Bilinear chroma: a chroma sample sits at the centre of the luma samples it covers, so each
    // luma sample takes 3/4 of its own chroma sample and 1/4 of the next one out.
    let chroma = |plane: &Plane<'_>, x: usize, y: usize| -> f32 {
        let taps = |pos: usize, sub: bool| -> [(usize, f32); 2] {
            if !sub {
                return [(pos, 1.0), (pos, 0.0)];
            }
            let c = pos / 2;
            let other = if pos.is_multiple_of(2) {
                c.saturating_sub(1)
            } else {
                c + 1
            };
            [(c, 0.75), (other, 0.25)]
        };
        let mut acc = 0.0;
        for (cy, wy) in taps(y, sy) {
            for (cx, wx) in taps(x, sx) {
                if wx * wy > 0.0 {
                    acc += f32::from(plane.at(cx, cy)) * wx * wy;
                }
            }
        }
        acc
    };
    for y in 0..h {
        for x in 0..w {
            let yy = norm_y(luma.at(x, y));
            let cb = (chroma(&u, x, y) - half) / c_scale;
            let cr = (chroma(&v, x, y) - half) / c_scale;
            let (r, g, b) = match identity {
                // GBR: Y is green, U blue, V red.
                None => (cr + half / c_scale, yy, cb + half / c_scale),
                Some((kr, kb)) => {
                    let kg = 1.0 - kr - kb;
                    let r = yy + 2.0 * (1.0 - kr) * cr;
                    let b = yy + 2.0 * (1.0 - kb) * cb;
                    let g = (yy - kr * r - kb * b) / kg;
                    (r, g, b)
                }
            };
            for c in [r, g, b] {
                out.push((c * 255.0).round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    Ok((out, 3))
}

/// An alpha picture (its luma plane) as 8-bit alpha.
pub fn alpha8(p: &Picture) -> Result<Vec<u8>, ImageError> {
    let (_, full) = p.matrix_and_range();
    let (gray, _) = to_rgb8_gray(p, full)?;
    Ok(gray)
}

fn to_rgb8_gray(p: &Picture, full_range: bool) -> Result<(Vec<u8>, u8), ImageError> {
    let (w, h) = (p.width() as usize, p.height() as usize);
    let depth = u32::from(p.bit_depth());
    let max = ((1u32 << depth) - 1) as f32;
    let (off, scale) = if full_range {
        (0.0, max)
    } else {
        let s = (1u32 << (depth - 8)) as f32;
        (16.0 * s, 219.0 * s)
    };
    let luma = p.plane(0)?;
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            out.push(
                (((f32::from(luma.at(x, y)) - off) / scale) * 255.0)
                    .round()
                    .clamp(0.0, 255.0) as u8,
            );
        }
    }
    Ok((out, 1))
}
