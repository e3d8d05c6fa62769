//! One JPEG decode by libjpeg-turbo through libjpeg's own API (`jpeg_decode.c`): every warning is
//! seen, not only TurboJPEG's first (a harmless one early, junk between two header segments, hid a
//! corrupt scan after it), and 12-bit and lossless samples of up to 16 bits are read
//! (`jpeg12_read_scanlines`, `jpeg16_read_scanlines`) and brought to 8 bits here.

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr};

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
}

/// libjpeg's `JMSG_LENGTH_MAX`.
const MESSAGE_BYTES: usize = 200;

/// `struct imaging_jpeg_report` in `jpeg_decode.c`.
#[repr(C)]
struct Report {
    benign_warnings: c_uint,
    bad_warnings: c_uint,
    message: [c_char; MESSAGE_BYTES],
}

extern "C" {
    fn imaging_jpeg_decode(
        data: *const u8,
        len: c_ulong,
        scale_denom: c_uint,
        layout: c_int,
        max_scans: c_int,
        precision: c_int,
        width: c_uint,
        height: c_uint,
        out: *mut c_void,
        report: *mut Report,
    ) -> c_int;
}

/// Why a JPEG's pixels cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum JpegError {
    /// libjpeg stopped.
    #[error("{0}")]
    Failed(String),
    /// libjpeg wrote every row, but some are not as encoded (a corrupt or cut scan is filled
    /// with grey): libjpeg's first such warning.
    #[error("{message} ({count} such warning(s))")]
    Corrupt { message: String, count: u32 },
}

/// A JPEG decoded to 8 bits a sample, at 1/`scale_denom` of its size.
pub struct Decoded {
    pub buf: Vec<u8>,
    pub width: usize,
    pub height: usize,
    /// Warnings after which every pixel is still as encoded (bytes skipped between markers, an
    /// unknown JFIF version), and the first one's words.
    pub benign_warnings: u32,
    pub first_warning: Option<String>,
}

/// Decodes `jpeg`, whose frame the probe read as `width` x `height` at `precision` bits, at
/// 1/`scale_denom` (1 for a lossless JPEG), to 8 bits a sample in `layout`.
pub fn decompress(
    jpeg: &[u8],
    (width, height): (u32, u32),
    precision: u8,
    scale_denom: u32,
    layout: Layout,
    max_scans: u32,
) -> Result<Decoded, JpegError> {
    let (w, h) = (
        (width as usize).div_ceil(scale_denom as usize),
        (height as usize).div_ceil(scale_denom as usize),
    );
    let samples = w * h * layout.channels();
    let mut report = Report {
        benign_warnings: 0,
        bad_warnings: 0,
        message: [0; MESSAGE_BYTES],
    };
    let mut narrow = Vec::new();
    let mut wide = Vec::new();
    let out: *mut c_void = if precision <= 8 {
        // Kept between images (pixels.rs): every sample is written before it is read.
        narrow = crate::pixels::buffer(samples);
        narrow.as_mut_ptr().cast()
    } else {
        wide = vec![0u16; samples];
        wide.as_mut_ptr().cast()
    };
    // SAFETY: `out` holds `h` rows of `w * channels` samples of the width the precision calls
    // for; jpeg_decode.c writes no more than that (it checks libjpeg's output size first) and
    // reads `jpeg` only.
    let status = unsafe {
        imaging_jpeg_decode(
            jpeg.as_ptr(),
            jpeg.len() as c_ulong,
            scale_denom,
            layout.channels() as c_int,
            max_scans as c_int,
            c_int::from(precision),
            w as c_uint,
            h as c_uint,
            out,
            &mut report,
        )
    };
    // SAFETY: jpeg_decode.c leaves a NUL-terminated message (libjpeg formats at most
    // JMSG_LENGTH_MAX bytes with the NUL; the report starts zeroed).
    let message = unsafe { CStr::from_ptr(report.message.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    if status != 0 {
        return Err(JpegError::Failed(message));
    }
    if report.bad_warnings > 0 {
        return Err(JpegError::Corrupt {
            message,
            count: report.bad_warnings,
        });
    }
    let buf = match precision {
        8 => narrow,
        p if p < 8 => to_8_bits(&narrow.iter().map(|&v| u16::from(v)).collect::<Vec<_>>(), p),
        p => to_8_bits(&wide, p),
    };
    Ok(Decoded {
        buf,
        width: w,
        height: h,
        benign_warnings: report.benign_warnings,
        first_warning: (report.benign_warnings > 0).then_some(message),
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
