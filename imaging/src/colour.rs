//! Colour management: pixels come out in sRGB, whatever profile the image was saved in.
//!
//! The source profile is the embedded ICC profile (JPEG APP2, PNG `iCCP`), else for a PNG one made
//! from its `cHRM` primaries and `gAMA` when those say something other than sRGB (an `sRGB` chunk
//! says sRGB). A profile is read, checked and turned into a transform once, then kept for the next
//! images that carry it (see [`source`]). The conversion runs once per image, on the decoded buffer
//! (for a JPEG, at the DCT scale), before any rendition is resized, with `moxcms` (relative
//! colorimetric intent, as LittleCMS's `-t 1`; for matrix profiles every intent is the same). A
//! profile that is sRGB already (checked by converting a grid of colours through it) costs no pass
//! over the pixels, and an image without any profile costs nothing at all. CMYK JPEGs with a CMYK profile go through it;
//! without one they get the naive conversion in [`crate::decode`]. Gray images keep their values.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use moxcms::{
    Chromaticity, ColorPrimaries, ColorProfile, DataColorSpace, Layout, RenderingIntent,
    ToneReprCurve, Transform8BitExecutor, TransformOptions, XyY,
};

use crate::probe::{Header, PngHeader};
use crate::{ImageError, Pixels};

/// How the decoded pixels must be converted to reach sRGB.
#[derive(Clone)]
pub enum Source {
    /// Already sRGB, or nothing says otherwise.
    Srgb,
    /// RGB (or RGBA) in this profile.
    Rgb(Arc<Conversion>),
    /// CMYK in this profile.
    Cmyk(Arc<Conversion>),
}

/// A source profile and the transforms from it to sRGB, each made the first time it is needed and
/// then shared by every image that carries the same profile (see [`source`]).
pub struct Conversion {
    profile: ColorProfile,
    /// RGB to RGB (made up front: the sRGB check needs it) or CMYK to RGB (made on first use).
    transform: OnceLock<Arc<Transform8BitExecutor>>,
    /// RGBA to RGBA, for images with alpha.
    with_alpha: OnceLock<Arc<Transform8BitExecutor>>,
}

impl Conversion {
    fn new(profile: ColorProfile) -> Self {
        Conversion {
            profile,
            transform: OnceLock::new(),
            with_alpha: OnceLock::new(),
        }
    }

    fn get_or_make(
        cell: &OnceLock<Arc<Transform8BitExecutor>>,
        make: impl FnOnce() -> Result<Arc<Transform8BitExecutor>, moxcms::CmsError>,
    ) -> Result<Arc<Transform8BitExecutor>, ImageError> {
        if let Some(t) = cell.get() {
            return Ok(t.clone());
        }
        let t = make().map_err(cms_error)?;
        // Two images racing here both make one; either is right.
        Ok(cell.get_or_init(|| t).clone())
    }
}

fn options() -> TransformOptions {
    TransformOptions {
        rendering_intent: RenderingIntent::RelativeColorimetric,
        ..TransformOptions::default()
    }
}

/// Profiles resolved lately, most recent last. A camera or phone writes the same profile into every
/// photo, so reading it, building its transform (a few lookup tables) and checking it against sRGB
/// is done once per profile rather than once per image: that setup was most of what colour
/// management cost on a 4 MP photo. Bounded in entries and in the size of a profile kept, so
/// hostile profiles cost at most their one-off setup each.
static RECENT: Mutex<VecDeque<(Box<[u8]>, Source)>> = Mutex::new(VecDeque::new());
const RECENT_PROFILES: usize = 8;
/// Larger profiles (CMYK press profiles with big tables, say) are resolved every time.
const RECENT_PROFILE_MAX_BYTES: usize = 64 * 1024;

/// What `header` says about the image's colours.
pub fn source(header: &Header) -> Source {
    let key = match (&header.icc, &header.png) {
        (Some(icc), _) if icc.len() > RECENT_PROFILE_MAX_BYTES => return resolve(header),
        (Some(icc), _) => [b"icc:".as_slice(), icc].concat(),
        (None, Some(png)) => match png_colorimetry(png) {
            Some(colorimetry) => colorimetry.key(),
            None => return Source::Srgb,
        },
        (None, None) => return Source::Srgb,
    };
    {
        let mut recent = recent();
        if let Some(i) = recent.iter().position(|(k, _)| **k == *key) {
            let entry = recent.remove(i).expect("a position inside the queue");
            let source = entry.1.clone();
            recent.push_back(entry);
            return source;
        }
    }
    // Resolved outside the lock: the first image with a new profile does not hold up the others.
    let source = resolve(header);
    let mut recent = recent();
    if !recent.iter().any(|(k, _)| **k == *key) {
        if recent.len() == RECENT_PROFILES {
            recent.pop_front();
        }
        recent.push_back((key.into_boxed_slice(), source.clone()));
    }
    source
}

fn recent() -> MutexGuard<'static, VecDeque<(Box<[u8]>, Source)>> {
    // A panic elsewhere while holding it leaves the queue whole: entries are pushed complete.
    RECENT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// [`source`] without the cache.
fn resolve(header: &Header) -> Source {
    let profile = match (&header.icc, &header.png) {
        (Some(icc), _) => match ColorProfile::new_from_slice(icc) {
            Ok(p) => p,
            Err(e) => {
                // As browsers and libjpeg do: an unreadable profile is no profile.
                tracing::debug!(error = ?e, "unreadable ICC profile ignored; taken as sRGB");
                return Source::Srgb;
            }
        },
        (None, Some(png)) => match png_colorimetry(png) {
            Some(colorimetry) => colorimetry.profile(),
            None => return Source::Srgb,
        },
        (None, None) => return Source::Srgb,
    };
    match profile.color_space {
        DataColorSpace::Cmyk => Source::Cmyk(Arc::new(Conversion::new(profile))),
        DataColorSpace::Rgb => match rgb_transform(&profile, Layout::Rgb) {
            Ok(t) if !is_identity(t.as_ref()) => {
                let conversion = Conversion::new(profile);
                let _ = conversion.transform.set(t);
                Source::Rgb(Arc::new(conversion))
            }
            Ok(_) => Source::Srgb,
            Err(e) => {
                tracing::debug!(error = ?e, "ICC profile without a transform; taken as sRGB");
                Source::Srgb
            }
        },
        _ => Source::Srgb,
    }
}

/// What a PNG's `gAMA` and `cHRM` say where it differs from sRGB: the curve's exponent, and the
/// white point and primaries (x, y pairs).
struct PngColorimetry {
    gamma: Option<f32>,
    chromaticities: Option<[f64; 8]>,
}

/// The PNG's colorimetry when its chunks say something other than sRGB (an `sRGB` chunk wins, as
/// the PNG specification says); `None` otherwise. Either chunk alone takes sRGB's value for the other.
fn png_colorimetry(png: &PngHeader) -> Option<PngColorimetry> {
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
    let chromaticities = c.filter(|c| {
        c.iter()
            .zip(srgb_chromaticities)
            .any(|(a, b)| (a - b).abs() > 0.002)
    });
    if gamma.is_none() && chromaticities.is_none() {
        return None;
    }
    Some(PngColorimetry {
        gamma,
        chromaticities,
    })
}

impl PngColorimetry {
    /// Everything [`Self::profile`] is made from, as the key of [`RECENT`].
    fn key(&self) -> Vec<u8> {
        let mut key = b"png:".to_vec();
        if let Some(g) = self.gamma {
            key.extend(b"g");
            key.extend(g.to_le_bytes());
        }
        for v in self.chromaticities.iter().flatten() {
            key.extend(v.to_le_bytes());
        }
        key
    }

    /// sRGB's profile with this curve and these primaries.
    fn profile(&self) -> ColorProfile {
        let mut profile = ColorProfile::new_srgb();
        // Its CICP tag would stand for sRGB's curve over the one set below.
        profile.cicp = None;
        if let Some(c) = self.chromaticities {
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
        if let Some(g) = self.gamma {
            let curve = ToneReprCurve::Parametric(vec![g]);
            profile.red_trc = Some(curve.clone());
            profile.green_trc = Some(curve.clone());
            profile.blue_trc = Some(curve);
        }
        profile
    }
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

/// RGB or RGBA pixels in the conversion's profile, converted to sRGB (alpha kept). Gray pixels are
/// returned as they are. With `two_threads`, each half of the image is converted on a thread of its
/// own: the conversion is the one serial step between the decode and the renditions made side by
/// side, and on two cores it took 7% of a 2.5 MP photo's CPU time (`perf`, p2_storm_p3).
pub fn rgb_to_srgb(
    p: Pixels,
    conversion: &Conversion,
    two_threads: bool,
) -> Result<Pixels, ImageError> {
    let t = match p.channels {
        3 => Conversion::get_or_make(&conversion.transform, || {
            rgb_transform(&conversion.profile, Layout::Rgb)
        })?,
        4 => Conversion::get_or_make(&conversion.with_alpha, || {
            rgb_transform(&conversion.profile, Layout::Rgba)
        })?,
        _ => return Ok(p),
    };
    // In place, through a small buffer that stays in cache: a second image-sized buffer cost more
    // in page faults and memory traffic than the conversion itself.
    let convert = |part: &mut [u8]| -> Result<(), ImageError> {
        let mut scratch = vec![0u8; IN_PLACE_CHUNK.min(part.len())];
        for chunk in part.chunks_mut(IN_PLACE_CHUNK) {
            let out = &mut scratch[..chunk.len()];
            t.transform(chunk, out).map_err(cms_error)?;
            chunk.copy_from_slice(out);
        }
        Ok(())
    };
    let mut p = p;
    let chunks = p.buf.len().div_ceil(IN_PLACE_CHUNK);
    if two_threads && chunks >= 2 {
        // Split on a chunk boundary, which is a pixel boundary for RGB and RGBA alike.
        let (first, second) = p.buf.split_at_mut(chunks / 2 * IN_PLACE_CHUNK);
        crate::side_by_side(vec![first, second], convert)
            .into_iter()
            .collect::<Result<(), _>>()?;
    } else {
        convert(&mut p.buf)?;
    }
    Ok(p)
}

/// 48 KiB: whole RGB and RGBA pixels (a multiple of 12 bytes), within a core's L2 cache.
const IN_PLACE_CHUNK: usize = 12 * 4096;

/// CMYK samples as libjpeg gives them (inverted when an Adobe segment says so, as Photoshop writes
/// them) through the conversion's CMYK profile to sRGB.
pub fn cmyk_to_srgb(
    cmyk: &mut [u8],
    adobe_inverted: bool,
    conversion: &Conversion,
) -> Result<Vec<u8>, ImageError> {
    if adobe_inverted {
        // ICC CMYK counts ink: 0 is none. Adobe's samples count paper: 255 is none.
        cmyk.iter_mut().for_each(|v| *v = 255 - *v);
    }
    let t = Conversion::get_or_make(&conversion.transform, || {
        conversion.profile.create_transform_8bit(
            Layout::Rgba,
            &ColorProfile::new_srgb(),
            Layout::Rgb,
            options(),
        )
    })?;
    let mut out = vec![0u8; cmyk.len() / 4 * 3];
    t.transform(cmyk, &mut out).map_err(cms_error)?;
    Ok(out)
}
