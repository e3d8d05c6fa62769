//! The hot steps one at a time, for the criterion benches (`cargo bench -p imaging`, feature
//! `bench`). Not part of the API the pipeline uses.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::{encode, metadata, probe, resize, ImageError, Pixels};

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
