//! Colour management: pixels come out in sRGB, whatever profile the image was saved in.
//!
//! The source profile is the embedded ICC profile (JPEG APP2, PNG `iCCP`), else for a PNG one made
//! from its `cHRM` primaries and `gAMA` when those say something other than sRGB (an `sRGB` chunk
//! says sRGB). The conversion runs once, on the decoded buffer (for a JPEG, at the DCT scale),
//! before any rendition is resized, with `moxcms` (relative colorimetric intent, as LittleCMS's
//! `-t 1`; for matrix profiles every intent is the same). A profile that is sRGB
//! already (checked by converting a grid of colours through it) costs no pass over the pixels, and
//! an image without any profile costs nothing at all. CMYK JPEGs with a CMYK profile go through it;
//! without one they get the naive conversion in [`crate::decode`]. Gray images keep their values.

use std::sync::Arc;

use moxcms::{
    Chromaticity, ColorPrimaries, ColorProfile, DataColorSpace, Layout, RenderingIntent,
    ToneReprCurve, Transform8BitExecutor, TransformOptions, XyY,
};

use crate::probe::{Header, PngHeader};
use crate::{ImageError, Pixels};

/// How the decoded pixels must be converted to reach sRGB.
pub enum Source {
    /// Already sRGB, or nothing says otherwise.
    Srgb,
    /// RGB (or RGBA) in this profile, with its RGB to sRGB transform (made once, for the sRGB check
    /// and the conversion both).
    Rgb(Box<ColorProfile>, Arc<Transform8BitExecutor>),
    /// CMYK in this profile.
    Cmyk(Box<ColorProfile>),
}

fn options() -> TransformOptions {
    TransformOptions {
        rendering_intent: RenderingIntent::RelativeColorimetric,
        ..TransformOptions::default()
    }
}

/// What `header` says about the image's colours.
pub fn source(header: &Header) -> Source {
    let profile = match (&header.icc, &header.png) {
        (Some(icc), _) => match ColorProfile::new_from_slice(icc) {
            Ok(p) => p,
            Err(e) => {
                // As browsers and libjpeg do: an unreadable profile is no profile.
                tracing::debug!(error = ?e, "unreadable ICC profile ignored; taken as sRGB");
                return Source::Srgb;
            }
        },
        (None, Some(png)) => match png_profile(png) {
            Some(p) => p,
            None => return Source::Srgb,
        },
        (None, None) => return Source::Srgb,
    };
    match profile.color_space {
        DataColorSpace::Cmyk => Source::Cmyk(Box::new(profile)),
        DataColorSpace::Rgb => match rgb_transform(&profile, Layout::Rgb) {
            Ok(t) if !is_identity(t.as_ref()) => Source::Rgb(Box::new(profile), t),
            Ok(_) => Source::Srgb,
            Err(e) => {
                tracing::debug!(error = ?e, "ICC profile without a transform; taken as sRGB");
                Source::Srgb
            }
        },
        _ => Source::Srgb,
    }
}

/// A profile from a PNG's `cHRM` and `gAMA`, when they differ from sRGB's (an `sRGB` chunk wins,
/// as the PNG specification says). Either alone takes sRGB's value for the other.
fn png_profile(png: &PngHeader) -> Option<ColorProfile> {
    if png.srgb || !matches!(png.color_type, 2 | 3 | 6) {
        return None;
    }
    // gAMA 45455 is 1/2.2, which every viewer takes as sRGB's curve.
    let gamma = png
        .gamma
        .filter(|&g| g > 0 && g.abs_diff(45_455) > 500)
        .map(|g| 100_000.0 / g as f32);
    let c = png.chromaticities.map(|c| c.map(|v| v as f64 / 100_000.0));
    let srgb_chromaticities = [0.3127, 0.329, 0.64, 0.33, 0.3, 0.6, 0.15, 0.06];
    let c = c.filter(|c| {
        c.iter()
            .zip(srgb_chromaticities)
            .any(|(a, b)| (a - b).abs() > 0.002)
    });
    if gamma.is_none() && c.is_none() {
        return None;
    }
    let mut profile = ColorProfile::new_srgb();
    // Its CICP tag would stand for sRGB's curve over the one set below.
    profile.cicp = None;
    if let Some(c) = c {
        let xy = |i: usize| Chromaticity {
            x: c[i] as f32,
            y: c[i + 1] as f32,
        };
        profile.update_rgb_colorimetry(
            XyY {
                x: c[0],
                y: c[1],
                yb: 1.0,
            },
            ColorPrimaries {
                red: xy(2),
                green: xy(4),
                blue: xy(6),
            },
        );
    }
    if let Some(g) = gamma {
        let curve = ToneReprCurve::Parametric(vec![g]);
        profile.red_trc = Some(curve.clone());
        profile.green_trc = Some(curve.clone());
        profile.blue_trc = Some(curve);
    }
    Some(profile)
}

fn rgb_transform(
    profile: &ColorProfile,
    layout: Layout,
) -> Result<Arc<Transform8BitExecutor>, moxcms::CmsError> {
    profile.create_transform_8bit(layout, &ColorProfile::new_srgb(), layout, options())
}

/// Whether a transform to sRGB changes no colour by more than one level: a grid of 6x6x6 colours
/// (primaries, ramps and greys included) goes through it.
fn is_identity(t: &Transform8BitExecutor) -> bool {
    let levels = [0u8, 51, 102, 153, 204, 255];
    let mut grid = Vec::with_capacity(6 * 6 * 6 * 3);
    for r in levels {
        for g in levels {
            for b in levels {
                grid.extend_from_slice(&[r, g, b]);
            }
        }
    }
    let mut out = vec![0u8; grid.len()];
    t.transform(&grid, &mut out).is_ok() && grid.iter().zip(&out).all(|(a, b)| a.abs_diff(*b) <= 1)
}

fn cms_error(e: moxcms::CmsError) -> ImageError {
    ImageError::decode(format!(
        "colour conversion through the embedded profile: {e}"
    ))
}

/// RGB or RGBA pixels in `profile`, converted to sRGB by `rgb` (the profile's RGB transform) or,
/// with alpha, a transform made for it (alpha kept). Gray pixels are returned as they are.
pub fn rgb_to_srgb(
    p: Pixels,
    profile: &ColorProfile,
    rgb: &Arc<Transform8BitExecutor>,
) -> Result<Pixels, ImageError> {
    let t = match p.channels {
        3 => rgb.clone(),
        4 => rgb_transform(profile, Layout::Rgba).map_err(cms_error)?,
        _ => return Ok(p),
    };
    let mut out = vec![0u8; p.buf.len()];
    t.transform(&p.buf, &mut out).map_err(cms_error)?;
    Ok(Pixels { buf: out, ..p })
}

/// CMYK samples as libjpeg gives them (inverted when an Adobe segment says so, as Photoshop writes
/// them) through a CMYK `profile` to sRGB.
pub fn cmyk_to_srgb(
    cmyk: &mut [u8],
    adobe_inverted: bool,
    profile: &ColorProfile,
) -> Result<Vec<u8>, ImageError> {
    if adobe_inverted {
        // ICC CMYK counts ink: 0 is none. Adobe's samples count paper: 255 is none.
        cmyk.iter_mut().for_each(|v| *v = 255 - *v);
    }
    let t = profile
        .create_transform_8bit(
            Layout::Rgba,
            &ColorProfile::new_srgb(),
            Layout::Rgb,
            options(),
        )
        .map_err(cms_error)?;
    let mut out = vec![0u8; cmyk.len() / 4 * 3];
    t.transform(cmyk, &mut out).map_err(cms_error)?;
    Ok(out)
}
