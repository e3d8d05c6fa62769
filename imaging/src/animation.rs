//! Animated inputs (GIF, APNG, animated WebP and JPEG XL, AVIF image sequences).
//!
//! A still rendition is made from the first frame. A rendition that asks for animation
//! (`:animated`, [`crate::settings`]) is an animated WebP of every frame up to its cap: the frames
//! are decoded one after another, each composited onto the canvas, converted to sRGB, resized,
//! turned upright and handed to libwebp's animation encoder, so memory holds one canvas and one
//! frame at a time whatever the frame count. The probe counts the frames from the headers alone
//! and refuses an animation whose frames x canvas is over [`crate::Settings::max_animation_pixels`].

use bytes::Bytes;
use state::media::MediaType;

use crate::probe::Header;
use crate::{formats, ImageError, Pixels};

/// The most frames an animation may have before it is refused unread, whatever its size.
pub const MAX_FRAMES: u32 = 10_000;
/// The most frames an animated rendition takes when its spec names no cap (`:animated`).
pub const DEFAULT_FRAME_CAP: u16 = 100;
/// The largest cap a spec may name (`:animated=N`).
pub const MAX_FRAME_CAP: u16 = 1000;

/// What an animated image's headers say: its frames, and one loop's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Animation {
    pub frames: u32,
    pub duration_ms: u64,
}

/// One frame as it is shown: the whole canvas, RGBA (or the decoder's own channels for formats
/// whose frames are whole pictures), and how long it stays.
pub struct Frame {
    pub pixels: Pixels,
    pub delay_ms: u32,
}

/// Frames one after another, each composited onto what came before.
pub trait FrameSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, ImageError>;
}

/// The frames of the animated image `header` describes.
pub fn frames<'a>(
    bytes: &'a [u8],
    header: &Header,
) -> Result<Box<dyn FrameSource + 'a>, ImageError> {
    match header.format {
        MediaType::Gif => Ok(Box::new(formats::gif::Frames::new(bytes, header)?)),
        MediaType::Apng => Ok(Box::new(formats::apng::Frames::new(bytes, header)?)),
        MediaType::Webp => Ok(Box::new(formats::webp::Frames::new(bytes)?)),
        MediaType::Jxl => Ok(Box::new(formats::jxl::Frames::new(bytes, header)?)),
        #[cfg(feature = "avif")]
        MediaType::Avif => Ok(Box::new(formats::avif::Frames::new(bytes, header)?)),
        other => Err(ImageError::decode(format!(
            "{other} has no frames to animate"
        ))),
    }
}

/// A frame's place on the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// What happens to a frame's area once it has been shown (GIF and APNG say it the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dispose {
    Keep,
    /// Cleared to transparent, as browsers do (not to the GIF's background colour).
    Background,
    /// Put back as it was before the frame.
    Previous,
}

/// An RGBA canvas that GIF and APNG frames are drawn on, with the copy that "dispose to
/// previous" restores.
pub(crate) struct Canvas {
    pub width: u32,
    pub height: u32,
    buf: Vec<u8>,
    saved: Option<Vec<u8>>,
    /// What the last frame asked for once shown.
    pending: Option<(Rect, Dispose)>,
}

impl Canvas {
    pub fn new(width: u32, height: u32) -> Result<Canvas, ImageError> {
        Ok(Canvas {
            width,
            height,
            buf: vec![0; formats::buffer_len(width, height, 4)?],
            saved: None,
            pending: None,
        })
    }

    /// Draws `rgba` (the frame's `rect`, clipped to the canvas) over the canvas (`over`: alpha
    /// blended; else replacing), after disposing of the previous frame; returns the canvas as
    /// shown.
    pub fn draw(
        &mut self,
        rect: Rect,
        rgba: &[u8],
        over: bool,
        dispose: Dispose,
    ) -> Result<Pixels, ImageError> {
        match self.pending.take() {
            Some((r, Dispose::Background)) => self.clear(r),
            Some((_, Dispose::Previous)) => {
                if let Some(saved) = self.saved.take() {
                    self.buf = saved;
                }
            }
            _ => {}
        }
        if dispose == Dispose::Previous {
            self.saved = Some(self.buf.clone());
        }
        let cw = self.width as usize;
        let (x0, y0) = (rect.x as usize, rect.y as usize);
        let w = (rect.w as usize).min(cw.saturating_sub(x0));
        let h = (rect.h as usize).min((self.height as usize).saturating_sub(y0));
        for row in 0..h {
            let src = &rgba[row * rect.w as usize * 4..][..w * 4];
            let dst = &mut self.buf[((y0 + row) * cw + x0) * 4..][..w * 4];
            if over {
                for (d, s) in dst.chunks_exact_mut(4).zip(src.chunks_exact(4)) {
                    blend_over(d, s);
                }
            } else {
                dst.copy_from_slice(src);
            }
        }
        self.pending = Some((rect, dispose));
        Ok(Pixels {
            width: self.width,
            height: self.height,
            channels: 4,
            buf: self.buf.clone(),
        })
    }

    fn clear(&mut self, r: Rect) {
        let cw = self.width as usize;
        let w = (r.w as usize).min(cw.saturating_sub(r.x as usize));
        let h = (r.h as usize).min((self.height as usize).saturating_sub(r.y as usize));
        for row in 0..h {
            let at = ((r.y as usize + row) * cw + r.x as usize) * 4;
            self.buf[at..at + w * 4].fill(0);
        }
    }
}

/// `s` over `d`, straight (not premultiplied) alpha.
fn blend_over(d: &mut [u8], s: &[u8]) {
    match s[3] {
        0 => {}
        255 => d.copy_from_slice(s),
        sa => {
            let sa = u32::from(sa);
            let da = u32::from(d[3]) * (255 - sa) / 255;
            let oa = sa + da;
            for c in 0..3 {
                d[c] = ((u32::from(s[c]) * sa + u32::from(d[c]) * da + oa / 2) / oa) as u8;
            }
            d[3] = oa as u8;
        }
    }
}

/// An animated WebP being written frame by frame with libwebp's `WebPAnimEncoder`, which keeps
/// only the previous canvas and its candidate encodings, not every frame.
pub(crate) struct WebpAnimation {
    encoder: std::ptr::NonNull<libwebp_sys::WebPAnimEncoder>,
    config: libwebp_sys::WebPConfig,
    width: u32,
    height: u32,
    timestamp_ms: i32,
}

impl WebpAnimation {
    pub fn new(width: u32, height: u32, quality: u8) -> Result<WebpAnimation, ImageError> {
        use libwebp_sys as w;
        let fail = |what: &str| ImageError::decode(format!("libwebp: {what}"));
        let config =
            w::WebPConfig::new_with_preset(w::WebPPreset::WEBP_PRESET_DEFAULT, f32::from(quality))
                .map_err(|()| fail("no encoder configuration"))?;
        // SAFETY: the options are initialised by libwebp before they are read, and the encoder it
        // returns is owned here and deleted once, in Drop.
        let encoder = unsafe {
            let abi = w::WebPGetMuxABIVersion();
            let mut options = std::mem::MaybeUninit::<w::WebPAnimEncoderOptions>::uninit();
            if w::WebPAnimEncoderOptionsInitInternal(options.as_mut_ptr(), abi) == 0 {
                return Err(fail("animation options"));
            }
            let mut options = options.assume_init();
            options.anim_params.loop_count = 0;
            w::WebPAnimEncoderNewInternal(width as i32, height as i32, &options, abi)
        };
        Ok(WebpAnimation {
            encoder: std::ptr::NonNull::new(encoder).ok_or_else(|| fail("animation encoder"))?,
            config,
            width,
            height,
            timestamp_ms: 0,
        })
    }

    /// Adds a frame (RGB or RGBA, the animation's size) shown for `delay_ms`.
    pub fn add(&mut self, frame: &Pixels, delay_ms: u32) -> Result<(), ImageError> {
        use libwebp_sys as w;
        if (frame.width, frame.height) != (self.width, self.height) || frame.channels < 3 {
            return Err(ImageError::decode("an animation frame of another size"));
        }
        let mut picture =
            w::WebPPicture::new().map_err(|()| ImageError::decode("libwebp: picture"))?;
        picture.use_argb = 1;
        picture.width = self.width as i32;
        picture.height = self.height as i32;
        let stride = (self.width * u32::from(frame.channels)) as i32;
        // SAFETY: `frame.buf` holds `height` rows of `stride` bytes (checked above); the picture
        // copies them, and is freed before returning.
        let ok = unsafe {
            let imported = if frame.channels == 4 {
                w::WebPPictureImportRGBA(&mut picture, frame.buf.as_ptr(), stride)
            } else {
                w::WebPPictureImportRGB(&mut picture, frame.buf.as_ptr(), stride)
            };
            let added = imported != 0
                && w::WebPAnimEncoderAdd(
                    self.encoder.as_ptr(),
                    &mut picture,
                    self.timestamp_ms,
                    &self.config,
                ) != 0;
            w::WebPPictureFree(&mut picture);
            added
        };
        if !ok {
            return Err(ImageError::decode(format!("libwebp: {}", self.error())));
        }
        // GIF and APNG players show a zero delay as about 100 ms; so does this.
        let delay = if delay_ms == 0 { 100 } else { delay_ms };
        self.timestamp_ms = self
            .timestamp_ms
            .saturating_add(delay.min(i32::MAX as u32) as i32);
        Ok(())
    }

    /// The animation's canvas size.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn error(&self) -> String {
        // SAFETY: the encoder is alive; libwebp returns a static or encoder-owned C string.
        unsafe {
            let e = libwebp_sys::WebPAnimEncoderGetError(self.encoder.as_ptr());
            if e.is_null() {
                "unknown error".into()
            } else {
                std::ffi::CStr::from_ptr(e).to_string_lossy().into_owned()
            }
        }
    }

    /// The animated WebP file.
    pub fn finish(self) -> Result<Bytes, ImageError> {
        use libwebp_sys as w;
        // SAFETY: a null frame ends the animation at the timestamp; the assembled data is copied
        // out and freed by libwebp's own free.
        unsafe {
            if w::WebPAnimEncoderAdd(
                self.encoder.as_ptr(),
                std::ptr::null_mut(),
                self.timestamp_ms,
                std::ptr::null(),
            ) == 0
            {
                return Err(ImageError::decode(format!("libwebp: {}", self.error())));
            }
            let mut data = w::WebPData::default();
            if w::WebPAnimEncoderAssemble(self.encoder.as_ptr(), &mut data) == 0 {
                return Err(ImageError::decode(format!("libwebp: {}", self.error())));
            }
            let bytes = Bytes::copy_from_slice(std::slice::from_raw_parts(data.bytes, data.size));
            w::WebPDataClear(&mut data);
            Ok(bytes)
        }
    }
}

impl Drop for WebpAnimation {
    fn drop(&mut self) {
        // SAFETY: made by WebPAnimEncoderNew and deleted only here.
        unsafe { libwebp_sys::WebPAnimEncoderDelete(self.encoder.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_composited_and_disposed_as_players_do() {
        let mut canvas = Canvas::new(2, 1).unwrap();
        let red = [255, 0, 0, 255];
        let half_blue = [0, 0, 255, 128];
        let whole = Rect {
            x: 0,
            y: 0,
            w: 2,
            h: 1,
        };
        let right = Rect {
            x: 1,
            y: 0,
            w: 1,
            h: 1,
        };
        let first = canvas
            .draw(whole, &[red, red].concat(), false, Dispose::Keep)
            .unwrap();
        assert_eq!(first.buf, [red, red].concat());
        // Blended over red, then put back before the next frame.
        let second = canvas
            .draw(right, &half_blue, true, Dispose::Previous)
            .unwrap();
        assert_eq!(&second.buf[4..], &[127, 0, 128, 255]);
        let third = canvas
            .draw(right, &[0, 0, 0, 0], true, Dispose::Background)
            .unwrap();
        assert_eq!(third.buf, [red, red].concat());
        let fourth = canvas
            .draw(
                Rect {
                    x: 0,
                    y: 0,
                    w: 1,
                    h: 1,
                },
                &red,
                false,
                Dispose::Keep,
            )
            .unwrap();
        assert_eq!(
            &fourth.buf[4..],
            &[0, 0, 0, 0],
            "cleared by the third frame's disposal"
        );
    }

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../tests/fixtures/conformance/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn an_animated_rendition_is_an_animated_webp_of_at_most_its_cap() {
        let settings = crate::Settings::parse(
            "still:fit=64x64:jpeg,loop:fit=64x64:webp:animated=3",
            50_000_000,
        )
        .unwrap();
        for file in [
            "gif/dispose_prev.gif",
            "apng/dispose_op_none.png",
            "webp/random_lossy.webp",
            "avif/star-8bpc.avifs",
        ] {
            let rendered = crate::render(&fixture(file), &settings).unwrap();
            let frames = rendered.frames.unwrap();
            assert!(frames > 1 && rendered.duration_ms.is_some(), "{file}");
            let out = &rendered.renditions[1].bytes;
            let decoder = image_webp::WebPDecoder::new(std::io::Cursor::new(out.as_ref())).unwrap();
            assert!(decoder.is_animated(), "{file}");
            // libwebp merges a frame identical to the one before it (adding up their durations).
            let n = decoder.num_frames();
            assert!(
                n >= 2 && n <= frames.min(3),
                "{file}: {n} frames of {frames}"
            );
            let (w, h) = decoder.dimensions();
            assert!(
                w <= 64 && h <= 64 && (w == 64 || h == 64),
                "{file}: {w}x{h}"
            );
            // Frames left out past the cap are not dropped silently.
            let capped = format!("animated rendition loop has the first 3 of {frames} frames");
            assert_eq!(
                rendered.warnings.iter().any(|w| w.starts_with(&capped)),
                frames > 3,
                "{file}: {:?}",
                rendered.warnings
            );
            // The still is the first frame, as a JPEG.
            assert_eq!(&rendered.renditions[0].bytes[..2], &[0xFF, 0xD8], "{file}");
        }
    }

    #[test]
    fn a_still_input_asked_for_animation_gives_a_still_webp() {
        let settings = crate::Settings::parse("loop:fit=64x64:webp:animated", 50_000_000).unwrap();
        let rendered = crate::render(&fixture("webp/lossless1.webp"), &settings).unwrap();
        assert_eq!(rendered.frames, None);
        assert_eq!(rendered.warnings, Vec::<String>::new());
        let out = &rendered.renditions[0].bytes;
        let decoder = image_webp::WebPDecoder::new(std::io::Cursor::new(out.as_ref())).unwrap();
        assert!(!decoder.is_animated());
    }
}
