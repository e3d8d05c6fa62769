//! libjpeg-turbo's decompressor through its TurboJPEG 3 API directly (`turbojpeg-sys`), for what
//! the `turbojpeg` crate's wrapper does not reach: 12-bit and lossless (2 to 16-bit) JPEGs
//! (`tj3Decompress12`, `tj3Decompress16`), and a decode that goes on past a warning in the header
//! (the wrapper reads the header first and stops on any warning there, an odd JFIF version or junk
//! between two segments, before a single row is decoded).

use std::ffi::{c_int, CStr};

use turbojpeg_sys as tj;

/// Pixel layouts asked of libjpeg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Gray,
    Rgb,
    /// As libjpeg gives it (from CMYK or YCCK), inverted when an Adobe segment says so.
    Cmyk,
}

impl Layout {
    pub fn channels(self) -> usize {
        match self {
            Layout::Gray => 1,
            Layout::Rgb => 3,
            Layout::Cmyk => 4,
        }
    }

    fn tjpf(self) -> c_int {
        match self {
            Layout::Gray => tj::TJPF_TJPF_GRAY,
            Layout::Rgb => tj::TJPF_TJPF_RGB,
            Layout::Cmyk => tj::TJPF_TJPF_CMYK,
        }
    }
}

/// What libjpeg said when it could not decode, or decoded with a warning.
#[derive(Debug, thiserror::Error)]
#[error("libjpeg-turbo: {message}")]
pub struct TurboError {
    pub message: String,
    /// A warning: libjpeg went on and every row was written, though perhaps not as encoded.
    pub warning: bool,
}

/// One decompressor handle.
struct Handle(tj::tjhandle);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: made by tj3Init and destroyed once, here.
        unsafe { tj::tj3Destroy(self.0) }
    }
}

impl Handle {
    fn new() -> Result<Self, TurboError> {
        // SAFETY: no arguments but the init type.
        let handle = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as c_int) };
        if handle.is_null() {
            return Err(TurboError {
                message: "cannot make a decompressor".into(),
                warning: false,
            });
        }
        Ok(Handle(handle))
    }

    fn set(&self, param: tj::TJPARAM, value: c_int) -> Result<(), TurboError> {
        // SAFETY: a live handle; TurboJPEG checks the parameter and value.
        self.check(unsafe { tj::tj3Set(self.0, param as c_int, value) })
    }

    fn get(&self, param: tj::TJPARAM) -> c_int {
        // SAFETY: a live handle.
        unsafe { tj::tj3Get(self.0, param as c_int) }
    }

    /// `status` as a result, with TurboJPEG's message and whether it was a warning.
    fn check(&self, status: c_int) -> Result<(), TurboError> {
        if status == 0 {
            return Ok(());
        }
        // SAFETY: a live handle; the string is TurboJPEG's own and copied at once.
        let message = unsafe { CStr::from_ptr(tj::tj3GetErrorStr(self.0)) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: a live handle.
        let code = unsafe { tj::tj3GetErrorCode(self.0) };
        Err(TurboError {
            message,
            warning: code == tj::TJERR_TJERR_WARNING as c_int,
        })
    }
}

/// A JPEG decoded to 8 bits a sample, at 1/`scale_denom` of its size (1 for a lossless JPEG).
pub struct Decoded {
    pub buf: Vec<u8>,
    pub width: usize,
    pub height: usize,
    /// The warning libjpeg gave while decoding every row, if any.
    pub warning: Option<TurboError>,
}

/// Decodes `jpeg` (`width` x `height` at `precision` bits, as the probe read them) to 8 bits a
/// sample in `layout`. Samples of more than 8 bits are decoded at 16 bits and scaled to 8.
pub fn decompress(
    jpeg: &[u8],
    (width, height): (u32, u32),
    precision: u8,
    scale_denom: u32,
    layout: Layout,
    scan_limit: u32,
) -> Result<Decoded, TurboError> {
    let handle = Handle::new()?;
    handle.set(tj::TJPARAM_TJPARAM_SCANLIMIT, scan_limit as c_int)?;
    // SAFETY: a live handle and the file's bytes, read only.
    let header =
        handle.check(unsafe { tj::tj3DecompressHeader(handle.0, jpeg.as_ptr(), jpeg.len() as _) });
    match header {
        Err(e) if !e.warning => return Err(e),
        _ => {} // a warning in the header: the decode below reads it again and goes on
    }
    // libjpeg must see the frame the probe saw, which the budget was made for.
    let seen = (
        handle.get(tj::TJPARAM_TJPARAM_JPEGWIDTH),
        handle.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT),
        handle.get(tj::TJPARAM_TJPARAM_PRECISION),
    );
    if seen != (width as c_int, height as c_int, c_int::from(precision)) {
        return Err(TurboError {
            message: format!(
                "libjpeg reads a frame of {}x{} at {} bits where the header parser read \
                 {width}x{height} at {precision}",
                seen.0, seen.1, seen.2
            ),
            warning: false,
        });
    }
    if scale_denom > 1 {
        let factor = tj::tjscalingfactor {
            num: 1,
            denom: scale_denom as c_int,
        };
        // SAFETY: a live handle.
        handle.check(unsafe { tj::tj3SetScalingFactor(handle.0, factor) })?;
    }
    let (w, h) = (
        (width as usize).div_ceil(scale_denom as usize),
        (height as usize).div_ceil(scale_denom as usize),
    );
    let channels = layout.channels();
    let samples = w * h * channels;
    let pitch = (w * channels) as c_int;
    let (buf, status) = match precision {
        ..=8 => {
            let mut buf = vec![0u8; samples];
            // SAFETY: `buf` holds `h` rows of `pitch` samples, the scaled size libjpeg writes.
            let status = unsafe {
                tj::tj3Decompress8(
                    handle.0,
                    jpeg.as_ptr(),
                    jpeg.len() as _,
                    buf.as_mut_ptr(),
                    pitch,
                    layout.tjpf(),
                )
            };
            if precision < 8 {
                // Lossless of 2 to 7 bits: values up to 2^precision - 1 in 8-bit samples.
                let wide: Vec<u16> = buf.iter().map(|&v| u16::from(v)).collect();
                (to_8_bits(&wide, precision), status)
            } else {
                (buf, status)
            }
        }
        p => {
            let mut wide = vec![0u16; samples];
            // SAFETY: as above, in 16-bit samples (12-bit ones are written as shorts).
            let status = unsafe {
                if p <= 12 {
                    tj::tj3Decompress12(
                        handle.0,
                        jpeg.as_ptr(),
                        jpeg.len() as _,
                        wide.as_mut_ptr().cast(),
                        pitch,
                        layout.tjpf(),
                    )
                } else {
                    tj::tj3Decompress16(
                        handle.0,
                        jpeg.as_ptr(),
                        jpeg.len() as _,
                        wide.as_mut_ptr(),
                        pitch,
                        layout.tjpf(),
                    )
                }
            };
            (to_8_bits(&wide, p), status)
        }
    };
    let warning = match handle.check(status) {
        Ok(()) => header.err(),
        Err(e) if e.warning => Some(e),
        Err(e) => return Err(e),
    };
    Ok(Decoded {
        buf,
        width: w,
        height: h,
        warning,
    })
}

/// Samples of `precision` bits (values 0 to 2^precision - 1) to 8 bits, rounded.
fn to_8_bits(samples: &[u16], precision: u8) -> Vec<u8> {
    let max = (1u32 << precision) - 1;
    samples
        .iter()
        .map(|&v| ((u32::from(v).min(max) * 255 + max / 2) / max) as u8)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::to_8_bits;

    #[test]
    fn wide_samples_are_scaled_to_8_bits_with_rounding() {
        assert_eq!(to_8_bits(&[0, 2048, 4095], 12), [0, 128, 255]);
        assert_eq!(to_8_bits(&[0, 32768, 65535], 16), [0, 128, 255]);
        assert_eq!(to_8_bits(&[0, 511, 1023], 10), [0, 127, 255]);
        // Values past the precision (a corrupt lossless file) are clamped, not wrapped.
        assert_eq!(to_8_bits(&[4096, 65535], 12), [255, 255]);
    }
}
