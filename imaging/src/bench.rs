//! The hot steps one at a time, for the criterion benches (`cargo bench -p imaging`, feature
//! `bench`). Not part of the API the pipeline uses.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::colour::{self, Conversion, Source};
use crate::{encode, metadata, probe, resize, ImageError, Pixels, Settings};

/// Decodes a JPEG at 1/`denom` scale to packed RGB.
pub fn decode_jpeg_scaled(bytes: &[u8], denom: u32) -> Result<Pixels, ImageError> {
    let err = ImageError::decode;
    let mut d = turbojpeg::Decompressor::new().map_err(err)?;
    let scale = turbojpeg::ScalingFactor::new(1, denom as usize);
    d.set_scaling_factor(scale).map_err(err)?;
    let h = d.read_header(bytes).map_err(err)?.scaled(scale);
    let mut buf = vec![0; h.width * h.height * 3];
    d.decompress(
        bytes,
        turbojpeg::Image {
            pixels: buf.as_mut_slice(),
            width: h.width,
            pitch: h.width * 3,
            height: h.height,
            format: turbojpeg::PixelFormat::RGB,
        },
    )
    .map_err(err)?;
    Ok(Pixels {
        width: h.width as u32,
        height: h.height as u32,
        channels: 3,
        buf,
    })
}

/// Lanczos3 resize.
pub fn resize(src: &Pixels, to: (u32, u32)) -> Result<Pixels, resize::ResizeError> {
    resize::resize(src, to)
}

/// JPEG q80 encode.
pub fn encode_jpeg(p: &Pixels) -> Result<Bytes, turbojpeg::Error> {
    encode::jpeg(p, 80)
}

/// PNG (fast) encode.
pub fn encode_png(p: &Pixels) -> Result<Bytes, png::EncodingError> {
    encode::png(p)
}

/// The EXIF subset of a JPEG.
pub fn read_exif(bytes: &[u8]) -> BTreeMap<String, String> {
    probe::jpeg_segments(bytes)
        .exif
        .and_then(|t| exif::Reader::new().read_raw(t.to_vec()).ok())
        .map(|e| metadata::exif_subset(&e))
        .unwrap_or_default()
}

/// `jpeg` with `icc` in APP2 segments right after SOI.
pub fn with_icc_profile(jpeg: &[u8], icc: &[u8]) -> Vec<u8> {
    let chunks: Vec<&[u8]> = icc.chunks(65_519).collect();
    let mut out = jpeg[..2].to_vec();
    for (i, chunk) in chunks.iter().enumerate() {
        out.extend_from_slice(&[0xFF, 0xE2]);
        out.extend_from_slice(&((2 + 14 + chunk.len()) as u16).to_be_bytes());
        out.extend_from_slice(b"ICC_PROFILE\0");
        out.extend([i as u8 + 1, chunks.len() as u8]);
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// The conversion the pipeline makes for an RGB image that carries the profile `jpeg` does.
pub fn rgb_conversion(jpeg: &[u8]) -> Option<Arc<Conversion>> {
    let header = probe::probe(jpeg, &Settings::default()).ok()?;
    match colour::source(&header).source {
        Source::Rgb(conversion) => Some(conversion),
        _ => None,
    }
}

/// RGB pixels through `conversion` to sRGB, on one thread.
pub fn to_srgb(p: Pixels, conversion: &Conversion) -> Result<Pixels, ImageError> {
    colour::rgb_to_srgb(p, conversion, false)
}
