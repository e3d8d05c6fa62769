//! Colour management: pixels come out in sRGB, whatever profile the image was saved in
//! (docs/colour.md).
//!
//! The source profile is the embedded ICC profile (JPEG APP2, PNG `iCCP`, HEIC `colr`), else for a
//! PNG one made from its `cHRM` primaries and `gAMA` when those say something other than sRGB (an
//! `sRGB` chunk says sRGB). A profile is read, checked and turned into a transform once, then kept
//! for the next images that carry it (see [`source`]). The conversion runs once per image, on the
//! decoded buffer (for a JPEG, at the DCT scale), before any rendition is resized, with the
//! relative colorimetric intent (LittleCMS's `-t 1`), by one of two engines:
//! - matrix/TRC profiles (Display P3, Adobe RGB, a PNG's `cHRM`/`gAMA`: nearly every photo) by
//!   `moxcms`, which agrees with LittleCMS on them within a level and is the faster;
//! - LUT-based profiles (`A2B0`/`A2B1`, `mft1`/`mft2`/`mAB`, jpegli's XYB) and every CMYK profile
//!   by LittleCMS itself (the `lcms2` crate): moxcms refuses some of them (a profile with only a
//!   perceptual table, as XYB's) and converts others far from LittleCMS.
//!
//! A profile that is sRGB already (checked by converting a grid of colours through it) costs no
//! pass over the pixels, and an image without any profile costs nothing at all. CMYK JPEGs without
//! a profile get the naive conversion in [`crate::decode`]. Gray images keep their values.
//!
//! A profile that cannot be used (unreadable, neither engine can make a transform from it, or made
//! for another kind of image) costs the profile, not the image: the pixels are taken as sRGB and
//! [`Resolved::warning`] says so, for the item's `warnings`.
//!
//! Over 400 lines: ICC (matrix and LUT), CICP, PNG's gAMA/cHRM and CMYK are one decision, which
//! transform an image goes through, and share its cache and its fallbacks.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use lcms2::{Flags, Intent, PixelFormat};
use moxcms::{
    Chromaticity, ColorPrimaries, ColorProfile, DataColorSpace, Layout, RenderingIntent,
    ToneReprCurve, Transform8BitExecutor, TransformOptions, XyY,
};

use crate::probe::{Header, PngHeader};
use crate::{ImageError, Pixels};

/// How the decoded pixels must be converted to reach sRGB.
#[derive(Clone)]
pub enum Source {
    /// Already sRGB, or nothing usable says otherwise.
    Srgb,
    /// RGB (or RGBA) in this profile.
    Rgb(Arc<Conversion>),
    /// CMYK in this profile.
    Cmyk(Arc<Conversion>),
}

/// What [`source`] made of an image's colour information.
#[derive(Clone)]
pub struct Resolved {
    pub source: Source,
    /// Why a profile the image carries is not used, in a few words (for the item's `warnings`).
    pub warning: Option<String>,
}

impl Resolved {
    fn srgb() -> Self {
        Resolved {
            source: Source::Srgb,
            warning: None,
        }
    }

    fn ignored(why: impl Into<String>) -> Self {
        Resolved {
            source: Source::Srgb,
            warning: Some(why.into()),
        }
    }
}

/// A source profile and the transforms from it to sRGB, each made the first time it is needed and
/// then shared by every image that carries the same profile (see [`source`]).
pub struct Conversion {
    engine: Engine,
}

enum Engine {
    /// Matrix/TRC profiles.
    Moxcms {
        /// Boxed: a profile is 2.6 KB, a LittleCMS conversion a few pointers.
        profile: Box<ColorProfile>,
        /// RGB to RGB (made up front: the sRGB check needs it).
        rgb: OnceLock<Arc<Transform8BitExecutor>>,
        /// RGBA to RGBA, for images with alpha.
        rgba: OnceLock<Arc<Transform8BitExecutor>>,
    },
    /// LUT-based and CMYK profiles: LittleCMS.
    Lcms {
        /// The profile's bytes: LittleCMS reads a profile again for each transform it makes.
        icc: Box<[u8]>,
        rgb: OnceLock<Arc<LcmsRgb>>,
        rgba: OnceLock<Arc<LcmsRgba>>,
        cmyk: OnceLock<Arc<LcmsCmyk>>,
    },
}

/// Made without LittleCMS's one-pixel cache, so one transform serves several threads at once.
type LcmsRgb = lcms2::Transform<[u8; 3], [u8; 3], lcms2::GlobalContext, lcms2::DisallowCache>;
type LcmsRgba = lcms2::Transform<[u8; 4], [u8; 4], lcms2::GlobalContext, lcms2::DisallowCache>;
type LcmsCmyk = lcms2::Transform<[u8; 4], [u8; 3], lcms2::GlobalContext, lcms2::DisallowCache>;

/// One pass of a transform over whole pixels, in place.
enum InPlace {
    Moxcms(Arc<Transform8BitExecutor>),
    LcmsRgb(Arc<LcmsRgb>),
    LcmsRgba(Arc<LcmsRgba>),
}

impl InPlace {
    fn run(&self, pixels: &mut [u8], scratch: &mut [u8]) -> Result<(), ImageError> {
        match self {
            InPlace::Moxcms(t) => {
                let out = &mut scratch[..pixels.len()];
                t.transform(pixels, out).map_err(cms_error)?;
                pixels.copy_from_slice(out);
            }
            InPlace::LcmsRgb(t) => t.transform_in_place(as_pixels(pixels)),
            InPlace::LcmsRgba(t) => t.transform_in_place(as_pixels(pixels)),
        }
        Ok(())
    }

    /// Whether this pass needs a scratch buffer (moxcms writes to another buffer).
    fn needs_scratch(&self) -> bool {
        matches!(self, InPlace::Moxcms(_))
    }
}

/// Whole pixels of `N` bytes.
fn as_pixels<const N: usize>(bytes: &mut [u8]) -> &mut [[u8; N]] {
    let (pixels, rest) = bytes.as_chunks_mut::<N>();
    debug_assert!(rest.is_empty(), "a buffer of whole pixels");
    pixels
}

fn get_or_make<T: ?Sized>(
    cell: &OnceLock<Arc<T>>,
    make: impl FnOnce() -> Result<Arc<T>, ImageError>,
) -> Result<Arc<T>, ImageError> {
    if let Some(t) = cell.get() {
        return Ok(t.clone());
    }
    let t = make()?;
    // Two images racing here both make one; either is right.
    Ok(cell.get_or_init(|| t).clone())
}

impl Conversion {
    fn moxcms(profile: ColorProfile) -> Self {
        Conversion {
            engine: Engine::Moxcms {
                profile: Box::new(profile),
                rgb: OnceLock::new(),
                rgba: OnceLock::new(),
            },
        }
    }

    fn lcms(icc: &[u8]) -> Self {
        Conversion {
            engine: Engine::Lcms {
                icc: icc.into(),
                rgb: OnceLock::new(),
                rgba: OnceLock::new(),
                cmyk: OnceLock::new(),
            },
        }
    }

    /// Which engine converts through this profile: `moxcms` or `littlecms`.
    pub fn engine(&self) -> &'static str {
        match self.engine {
            Engine::Moxcms { .. } => "moxcms",
            Engine::Lcms { .. } => "littlecms",
        }
    }

    /// The in-place pass for pixels of `channels` (3 or 4) channels.
    fn in_place(&self, channels: u8) -> Result<InPlace, ImageError> {
        Ok(match (&self.engine, channels) {
            (Engine::Moxcms { profile, rgb, .. }, 3) => {
                InPlace::Moxcms(get_or_make(rgb, || moxcms_transform(profile, Layout::Rgb))?)
            }
            (Engine::Moxcms { profile, rgba, .. }, _) => {
                InPlace::Moxcms(get_or_make(rgba, || {
                    moxcms_transform(profile, Layout::Rgba)
                })?)
            }
            (Engine::Lcms { icc, rgb, .. }, 3) => InPlace::LcmsRgb(get_or_make(rgb, || {
                lcms_transform(icc, PixelFormat::RGB_8, PixelFormat::RGB_8, Flags::NO_CACHE)
                    .map(Arc::new)
            })?),
            (Engine::Lcms { icc, rgba, .. }, _) => InPlace::LcmsRgba(get_or_make(rgba, || {
                lcms_transform(
                    icc,
                    PixelFormat::RGBA_8,
                    PixelFormat::RGBA_8,
                    Flags::NO_CACHE | Flags::COPY_ALPHA,
                )
                .map(Arc::new)
            })?),
        })
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
static RECENT: Mutex<VecDeque<(Box<[u8]>, Resolved)>> = Mutex::new(VecDeque::new());
const RECENT_PROFILES: usize = 8;
/// Larger profiles (CMYK press profiles with big tables, say) are resolved every time.
const RECENT_PROFILE_MAX_BYTES: usize = 64 * 1024;

/// The kinds of pixels the decoder gives for an image, which a profile must describe (each probe
/// sets [`Header::model`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Model {
    Gray,
    Rgb,
    Cmyk,
}

impl Model {
    /// A JPEG's, from its components.
    pub(crate) fn of_jpeg(components: u8) -> Model {
        match components {
            1 => Model::Gray,
            4 => Model::Cmyk,
            _ => Model::Rgb,
        }
    }

    /// A PNG's, from its colour type.
    pub(crate) fn of_png(color_type: u8) -> Model {
        if matches!(color_type, 0 | 4) {
            Model::Gray
        } else {
            Model::Rgb
        }
    }
}

/// What `header` says about the image's colours.
pub fn source(header: &Header) -> Resolved {
    let model = header.model;
    let key = match (&header.icc, &header.png) {
        (Some(icc), _) if icc.len() > RECENT_PROFILE_MAX_BYTES => {
            return fit(resolve(header), model)
        }
        (Some(icc), _) => [b"icc:".as_slice(), icc].concat(),
        (None, Some(png)) => match png_colorimetry(png) {
            Some(colorimetry) => colorimetry.key(),
            None => return Resolved::srgb(),
        },
        (None, None) => return Resolved::srgb(),
    };
    {
        let mut recent = recent();
        if let Some(i) = recent.iter().position(|(k, _)| **k == *key) {
            let entry = recent.remove(i).expect("a position inside the queue");
            let resolved = entry.1.clone();
            recent.push_back(entry);
            return fit(resolved, model);
        }
    }
    // Resolved outside the lock: the first image with a new profile does not hold up the others.
    let resolved = resolve(header);
    let mut recent = recent();
    if !recent.iter().any(|(k, _)| **k == *key) {
        if recent.len() == RECENT_PROFILES {
            recent.pop_front();
        }
        recent.push_back((key.into_boxed_slice(), resolved.clone()));
    }
    fit(resolved, model)
}

/// `resolved` for an image of `model`: a profile for another kind of pixels is not used. Gray
/// images keep their values whatever their profile says.
fn fit(resolved: Resolved, model: Model) -> Resolved {
    match (&resolved.source, model) {
        (_, Model::Gray) => Resolved::srgb(),
        (Source::Rgb(_), Model::Cmyk) => {
            Resolved::ignored("ICC profile is for RGB but the image is CMYK; profile not used")
        }
        (Source::Cmyk(_), Model::Rgb) => {
            Resolved::ignored("ICC profile is for CMYK but the image is RGB; profile not used")
        }
        _ => resolved,
    }
}

fn recent() -> MutexGuard<'static, VecDeque<(Box<[u8]>, Resolved)>> {
    // A panic elsewhere while holding it leaves the queue whole: entries are pushed complete.
    RECENT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// [`source`] without the cache.
fn resolve(header: &Header) -> Resolved {
    match (&header.icc, &header.png) {
        (Some(icc), _) => resolve_icc(icc),
        (None, Some(png)) => match png_colorimetry(png) {
            Some(colorimetry) => resolve_rgb(Conversion::moxcms(colorimetry.profile())),
            None => Resolved::srgb(),
        },
        (None, None) => Resolved::srgb(),
    }
}

/// An embedded ICC profile: LUT-based and CMYK ones to LittleCMS, matrix/TRC ones to moxcms (and
/// to LittleCMS when moxcms cannot read them).
fn resolve_icc(icc: &[u8]) -> Resolved {
    let lut = has_lut(icc);
    match ColorProfile::new_from_slice(icc) {
        Ok(p) if p.color_space == DataColorSpace::Rgb && !lut => {
            match resolve_rgb(Conversion::moxcms(p)) {
                Resolved {
                    warning: Some(_), ..
                } => resolve_lcms(icc),
                resolved => resolved,
            }
        }
        // Gray profiles go with gray images, which keep their values ([`fit`]).
        Ok(p) if p.color_space == DataColorSpace::Gray => Resolved::srgb(),
        Ok(_) => resolve_lcms(icc),
        Err(e) => {
            tracing::debug!(error = ?e, "moxcms cannot read the ICC profile; LittleCMS tries");
            resolve_lcms(icc)
        }
    }
}

fn resolve_lcms(icc: &[u8]) -> Resolved {
    let profile = match lcms2::Profile::new_icc(icc) {
        Ok(p) => p,
        // As browsers and libjpeg do: an unreadable profile is no profile.
        Err(e) => {
            return Resolved::ignored(format!(
                "ICC profile unreadable ({}); taken as sRGB",
                first_line(&e.to_string())
            ))
        }
    };
    let conversion = Conversion::lcms(icc);
    match profile.color_space() {
        lcms2::ColorSpaceSignature::RgbData => resolve_rgb(conversion),
        lcms2::ColorSpaceSignature::CmykData => {
            let Engine::Lcms { cmyk, .. } = &conversion.engine else {
                unreachable!("made for LittleCMS above")
            };
            let made = get_or_make(cmyk, || {
                lcms_transform(
                    icc,
                    PixelFormat::CMYK_8,
                    PixelFormat::RGB_8,
                    Flags::NO_CACHE,
                )
                .map(Arc::new)
            });
            match made {
                Ok(_) => Resolved {
                    source: Source::Cmyk(Arc::new(conversion)),
                    warning: None,
                },
                Err(e) => Resolved::ignored(format!(
                    "CMYK ICC profile not usable ({}); naive CMYK conversion",
                    first_line(&e.to_string())
                )),
            }
        }
        lcms2::ColorSpaceSignature::GrayData => Resolved::srgb(),
        other => Resolved::ignored(format!(
            "ICC profile for {other:?} pixels, not RGB or CMYK; taken as sRGB"
        )),
    }
}

/// An RGB conversion, unless it changes nothing (then sRGB) or cannot be made (then a warning).
fn resolve_rgb(conversion: Conversion) -> Resolved {
    match conversion.in_place(3) {
        Ok(t) if is_identity(&t) => Resolved::srgb(),
        Ok(_) => Resolved {
            source: Source::Rgb(Arc::new(conversion)),
            warning: None,
        },
        Err(e) => {
            tracing::debug!(error = %e, "ICC profile without a transform; taken as sRGB");
            Resolved::ignored(format!(
                "ICC profile not usable ({}); taken as sRGB",
                first_line(&e.to_string())
            ))
        }
    }
}

/// A library's message up to its first line break (LittleCMS adds a paragraph of guesses).
fn first_line(message: &str) -> &str {
    message
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches('.')
}

/// Whether a profile has an A2B (device to PCS) table, which LittleCMS uses in preference to a
/// matrix and curves (and so do we): `A2B0`/`A2B1`/`A2B2`, or their floating-point `D2Bx`.
fn has_lut(icc: &[u8]) -> bool {
    let count = icc
        .get(128..132)
        .map_or(0, |c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize);
    (0..count.min(1024)).any(|i| {
        icc.get(132 + i * 12..136 + i * 12).is_some_and(|sig| {
            matches!(
                sig,
                b"A2B0" | b"A2B1" | b"A2B2" | b"D2B0" | b"D2B1" | b"D2B2"
            )
        })
    })
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

fn moxcms_transform(
    profile: &ColorProfile,
    layout: Layout,
) -> Result<Arc<Transform8BitExecutor>, ImageError> {
    profile
        .create_transform_8bit(layout, &ColorProfile::new_srgb(), layout, options())
        .map_err(cms_error)
}

/// A LittleCMS transform from `icc` to sRGB, relative colorimetric. A profile without the table
/// for that intent is converted through its default (`A2B0`), as LittleCMS does.
fn lcms_transform<I: Copy + lcms2::Pod, O: Copy + lcms2::Pod>(
    icc: &[u8],
    from: PixelFormat,
    to: PixelFormat,
    flags: Flags<lcms2::DisallowCache>,
) -> Result<lcms2::Transform<I, O, lcms2::GlobalContext, lcms2::DisallowCache>, ImageError> {
    let profile = lcms2::Profile::new_icc(icc).map_err(lcms_error)?;
    lcms2::Transform::new_flags_context(
        lcms2::GlobalContext::new(),
        &profile,
        from,
        &lcms2::Profile::new_srgb(),
        to,
        Intent::RelativeColorimetric,
        flags,
    )
    .map_err(lcms_error)
}

/// Whether a transform to sRGB changes no colour by more than one level: a grid of 6x6x6 colours
/// (primaries, ramps and greys included) goes through it.
fn is_identity(t: &InPlace) -> bool {
    let levels = [0u8, 51, 102, 153, 204, 255];
    let mut grid = Vec::with_capacity(6 * 6 * 6 * 3);
    for r in levels {
        for g in levels {
            for b in levels {
                grid.extend_from_slice(&[r, g, b]);
            }
        }
    }
    let mut out = grid.clone();
    let mut scratch = vec![0u8; grid.len()];
    t.run(&mut out, &mut scratch).is_ok() && grid.iter().zip(&out).all(|(a, b)| a.abs_diff(*b) <= 1)
}

fn cms_error(e: moxcms::CmsError) -> ImageError {
    ImageError::decode(format!(
        "colour conversion through the embedded profile: {e}"
    ))
}

fn lcms_error(e: lcms2::Error) -> ImageError {
    ImageError::decode(format!(
        "colour conversion through the embedded profile: {}",
        first_line(&e.to_string())
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
    if !matches!(p.channels, 3 | 4) {
        return Ok(p);
    }
    let t = conversion.in_place(p.channels)?;
    // In place, through a small buffer that stays in cache: a second image-sized buffer cost more
    // in page faults and memory traffic than the conversion itself.
    let convert = |part: &mut [u8]| -> Result<(), ImageError> {
        let scratch_len = if t.needs_scratch() {
            IN_PLACE_CHUNK.min(part.len())
        } else {
            0
        };
        let mut scratch = vec![0u8; scratch_len];
        for chunk in part.chunks_mut(IN_PLACE_CHUNK) {
            t.run(chunk, &mut scratch)?;
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
    let Engine::Lcms {
        icc, cmyk: cell, ..
    } = &conversion.engine
    else {
        return Err(ImageError::decode(
            "a CMYK profile without a CMYK transform",
        ));
    };
    let t = get_or_make(cell, || {
        lcms_transform(
            icc,
            PixelFormat::CMYK_8,
            PixelFormat::RGB_8,
            Flags::NO_CACHE,
        )
        .map(Arc::new)
    })?;
    let mut out = vec![0u8; cmyk.len() / 4 * 3];
    let (pixels, _) = cmyk.as_chunks::<4>();
    t.transform_pixels(pixels, as_pixels::<3>(&mut out));
    Ok(out)
}
