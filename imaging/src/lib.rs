//! Decode once, make every rendition from that one image.
//!
//! The order of work is what keeps it fast and bounded:
//! 1. [`probe`]: the header alone gives the format, the stored dimensions, the EXIF block and the
//!    colour profile, and from them what the decode and every rendition will allocate
//!    ([`budget`]); an image over the memory budget is refused before a single pixel is
//!    allocated, so a decompression bomb costs a header read;
//! 2. [`decode`]: a JPEG is decoded by libjpeg-turbo at the smallest DCT scale (1/8, 1/4, 1/2)
//!    that still covers the largest rendition, so a 20 MP photo is never expanded to 20 MP of
//!    pixels; a PNG is decoded whole, at 8 bits a channel;
//! 3. [`resize`]: every rendition is resized from that one buffer with `fast_image_resize` (SIMD,
//!    Lanczos3), one after another, and turned upright (EXIF orientation) band by band as it is
//!    made;
//! 4. [`encode`]: JPEG by libjpeg-turbo (alpha flattened on white), PNG by the `png` crate (alpha
//!    kept).
//!
//! Before any resize the pixels are converted to sRGB from the image's own profile ([`colour`]);
//! the smallest rendition also gives the item's [`placeholder`] (a ThumbHash). Large buffers are
//! kept from one image to the next ([`keep_at_most`]), so a batch faults its memory in once.
//!
//! Renditions carry no metadata at all (no EXIF, so no GPS). Width and height are reported as the
//! image is displayed, after orientation; [`metadata`] keeps a small EXIF subset for the item.

use std::collections::BTreeMap;

use bytes::Bytes;
use state::media::{self, MediaType};

pub mod animation;
#[cfg(feature = "bench")]
pub mod bench;
pub mod budget;
pub mod colour;
pub mod decode;
pub mod encode;
pub mod formats;
#[cfg(feature = "heic")]
pub mod heic;
#[cfg(any(test, feature = "hostile"))]
pub mod hostile;
mod jpeg_decode;
pub mod jpeg_memory;
pub mod metadata;
pub mod orientation;
mod pixels;
pub mod placeholder;
pub mod probe;
pub mod resize;
pub mod settings;

pub use budget::{Estimate, MemoryPlan};
pub use pixels::{keep_at_most, kept_bytes, Pixels};
pub use resize::target_size;
pub use settings::{Format, RenditionSpec, Settings, SettingsError, Size};

/// Why an image cannot be processed. All of these are permanent: the same bytes give the same error.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Unsupported(#[from] media::NotAnImage),
    #[error("image is {width}x{height} ({pixels} pixels), over the budget of {budget} pixels")]
    TooManyPixels {
        width: u32,
        height: u32,
        pixels: u64,
        budget: u64,
    },
    #[error(
        "image is {width}x{height} and would need about {estimate} to process; over the memory \
         budget of {budget_mb} MB"
    )]
    OverBudget {
        width: u32,
        height: u32,
        estimate: Estimate,
        budget_mb: u64,
    },
    #[error(
        "animation of {frames} frames of {width}x{height} ({pixels} pixels in all), over the \
         budget of {budget} pixels or {max_frames} frames"
    )]
    TooManyFrames {
        frames: u32,
        width: u32,
        height: u32,
        pixels: u64,
        budget: u64,
        max_frames: u32,
    },
    #[error("image does not decode: {0}")]
    Decode(BoxError),
    #[error("rendition {name} could not be made: {source}")]
    Encode {
        name: String,
        #[source]
        source: BoxError,
    },
}

/// The cause under a decode or encode error: the codec's own error type, or a message of ours.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl ImageError {
    pub(crate) fn decode(e: impl Into<BoxError>) -> Self {
        ImageError::Decode(e.into())
    }
}

/// One rendition, encoded.
#[derive(Clone)]
pub struct Output {
    pub spec: RenditionSpec,
    pub bytes: Bytes,
    /// Pixel size of the rendition, as displayed.
    pub width: u32,
    pub height: u32,
}

/// What [`render`] made of one image.
pub struct Rendered {
    /// As displayed (after EXIF orientation).
    pub width: u32,
    pub height: u32,
    pub format: MediaType,
    /// `make`, `model`, `taken_at` (ISO 8601, camera local time), `orientation` (1..=8), when present.
    pub exif: BTreeMap<String, String>,
    pub renditions: Vec<Output>,
    /// Size of the one decoded buffer every rendition was made from (stored orientation). For a JPEG
    /// this is the DCT-scaled size, e.g. 1/4 of the original's.
    pub decoded_width: u32,
    pub decoded_height: u32,
    /// What the probe expected this to cost in memory (an upper bound).
    pub estimate: Estimate,
    /// ThumbHash of the smallest rendition, base64: [`placeholder`].
    pub placeholder: Option<String>,
    /// For an animated input: its frames, and one loop's length in milliseconds.
    pub frames: Option<u32>,
    pub duration_ms: Option<u64>,
    /// Broken ancillary parts that were skipped (a profile, EXIF), in a few words each: the image
    /// was rendered without them. At most [`MAX_WARNINGS`].
    pub warnings: Vec<String>,
}

/// The most warnings an image reports, and the longest one: items stay small whatever a file
/// holds.
pub const MAX_WARNINGS: usize = 8;
pub const MAX_WARNING_CHARS: usize = 200;

/// The whole process step on one image in memory: probe, one decode, every rendition.
pub fn render(bytes: &[u8], settings: &Settings) -> Result<Rendered, ImageError> {
    let header = probe::probe(bytes, settings)?;
    render_probed(bytes, &header, settings)
}

/// The process step after [`probe::probe`]: a caller that shares memory between images reserves
/// `header.estimate` in between.
pub fn render_probed(
    bytes: &[u8],
    header: &probe::Header,
    settings: &Settings,
) -> Result<Rendered, ImageError> {
    let colour = colour::source(header);
    let mut warnings: Vec<String> = header
        .warnings
        .iter()
        .chain(&colour.warning)
        .cloned()
        .collect();
    let source = colour.source;
    let pixels = decode::decode(bytes, header, &source)?;
    // A first frame is RGBA on its canvas; most are opaque.
    let pixels = if header.animation.is_some() {
        formats::drop_opaque_alpha(pixels)
    } else {
        pixels
    };
    // Before any resize: resampling mixes values, which is only right in the output's space.
    let pixels = match &source {
        colour::Source::Rgb(conversion) => {
            let two_threads = probe::worth_a_second_thread(pixels.width, pixels.height);
            colour::rgb_to_srgb(pixels, conversion, two_threads)?
        }
        _ => pixels,
    };
    // A HEIC's crop (clap) is applied by its decoder: size the renditions by what came out.
    let recomputed;
    let targets = if header.format == MediaType::Heic
        && (pixels.width, pixels.height) != (header.width, header.height)
    {
        recomputed = probe::stored_targets(
            pixels.width,
            pixels.height,
            orientation::Orientation::NoTransforms,
            settings,
        );
        &recomputed
    } else {
        &header.targets
    };
    let wanted: Vec<_> = targets.iter().copied().zip(&settings.renditions).collect();
    // An animated rendition of an animated input decodes every frame again (below); of a still
    // input it is a still WebP like any other.
    let animates = |spec: &RenditionSpec| spec.animated.is_some() && header.animation.is_some();
    // Renditions that come out the same are encoded once: an image smaller than several renditions
    // is kept at its size in each, and the same pixels at the same settings make the same bytes.
    let same_output = |&(target, spec): &((u32, u32), &RenditionSpec)| {
        let quality = match spec.format {
            Format::Png => None,
            _ => Some(spec.quality(settings.jpeg_quality)),
        };
        let speed = (spec.format == Format::Avif).then(|| spec.speed());
        (target, spec.format, quality, speed)
    };
    let mut jobs: Vec<((u32, u32), &RenditionSpec)> = Vec::with_capacity(wanted.len());
    let job_of: Vec<Option<usize>> = wanted
        .iter()
        .map(|w| {
            (!animates(w.1)).then(|| {
                jobs.iter()
                    .position(|j| same_output(j) == same_output(w))
                    .unwrap_or_else(|| {
                        jobs.push(*w);
                        jobs.len() - 1
                    })
            })
        })
        .collect();
    let orientation = header.orientation;
    let render = |&(target, spec): &((u32, u32), &RenditionSpec)| {
        render_one(&pixels, target, orientation, spec, settings)
    };
    // One after another, each taking what buffers of the one before fit it: a batch's images are
    // what runs side by side, and renditions made side by side would each hold buffers of their own.
    let made = jobs.iter().map(render).collect::<Result<Vec<_>, _>>()?;
    let decoded_size = (pixels.width, pixels.height);
    drop(pixels);
    let renditions = wanted
        .iter()
        .zip(&job_of)
        .map(|(&(target, spec), &job)| match job {
            Some(job) => Ok(Output {
                spec: spec.clone(),
                ..made[job].0.clone()
            }),
            None => render_animated(
                bytes,
                header,
                &source,
                target,
                spec,
                settings,
                &mut warnings,
            ),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let warnings = warnings
        .into_iter()
        .take(MAX_WARNINGS)
        .map(|w| match w.char_indices().nth(MAX_WARNING_CHARS) {
            Some((end, _)) => format!("{}...", &w[..end]),
            None => w,
        })
        .collect();
    // The smallest rendition's pixels, for the placeholder.
    let (decoded_width, decoded_height) = decoded_size;
    let smallest = made
        .into_iter()
        .map(|(_, pixels)| pixels)
        .min_by_key(|pixels| pixels.buf.len());
    let placeholder = smallest
        .as_ref()
        .map(placeholder::thumbhash)
        .transpose()
        .map_err(|e| ImageError::Encode {
            name: "placeholder".into(),
            source: e.into(),
        })?;
    // A HEIC is shown as its decoder gave it (crop, rotation and mirror applied); its header's
    // size is the coded picture's, before any `clap` crop.
    let (width, height) = if header.format == MediaType::Heic {
        decoded_size
    } else {
        header.displayed_size()
    };
    Ok(Rendered {
        width,
        height,
        format: header.format,
        exif: header
            .exif
            .as_ref()
            .map(metadata::exif_subset)
            .unwrap_or_default(),
        renditions,
        decoded_width,
        decoded_height,
        estimate: header.estimate,
        placeholder,
        frames: header.animation.map(|a| a.frames),
        duration_ms: header.animation.map(|a| a.duration_ms),
        warnings,
    })
}

/// An animated WebP of the frames of an animated input, up to the spec's cap: each frame
/// composited, converted to sRGB, resized, turned upright and encoded before the next is decoded.
/// Frames left out past the cap are said in `warnings`.
fn render_animated(
    bytes: &[u8],
    header: &probe::Header,
    source: &colour::Source,
    target: (u32, u32),
    spec: &RenditionSpec,
    settings: &Settings,
    warnings: &mut Vec<String>,
) -> Result<Output, ImageError> {
    let encode_error = |source: ImageError| ImageError::Encode {
        name: spec.name.clone(),
        source: source.into(),
    };
    let cap = u32::from(spec.animated.unwrap_or(animation::DEFAULT_FRAME_CAP));
    let total = header.animation.map_or(1, |a| a.frames);
    if total > cap {
        tracing::warn!(
            rendition = %spec.name,
            frames = total,
            cap,
            "animated rendition keeps the first frames only"
        );
        warnings.push(format!(
            "animated rendition {} has the first {cap} of {total} frames (its frame cap)",
            spec.name
        ));
    }
    let mut frames = animation::frames(bytes, header)?;
    let mut encoder: Option<animation::WebpAnimation> = None;
    let mut taken = 0;
    while taken < cap {
        let Some(frame) = frames.next_frame()? else {
            break;
        };
        let mut pixels = frame.pixels;
        if let colour::Source::Rgb(conversion) = source {
            pixels = colour::rgb_to_srgb(pixels, conversion, false)?;
        }
        let small = resize::resize(&pixels, target)
            .map_err(|e| encode_error(ImageError::decode(e.to_string())))?;
        drop(pixels);
        let mut small = orientation::orient(small, header.orientation);
        if small.channels == 1 {
            small.buf = small.buf.iter().flat_map(|&v| [v, v, v]).collect();
            small.channels = 3;
        }
        let quality = spec.quality(settings.jpeg_quality);
        let encoder = match &mut encoder {
            Some(e) => e,
            None => encoder.insert(
                animation::WebpAnimation::new(small.width, small.height, quality)
                    .map_err(encode_error)?,
            ),
        };
        encoder.add(&small, frame.delay_ms).map_err(encode_error)?;
        taken += 1;
    }
    let encoder = encoder.ok_or_else(|| ImageError::decode("an animation without frames"))?;
    let (width, height) = (encoder_size(&encoder).0, encoder_size(&encoder).1);
    let bytes = encoder.finish().map_err(encode_error)?;
    Ok(Output {
        spec: spec.clone(),
        bytes,
        width,
        height,
    })
}

fn encoder_size(e: &animation::WebpAnimation) -> (u32, u32) {
    e.size()
}

fn render_one(
    pixels: &Pixels,
    target: (u32, u32),
    orientation: orientation::Orientation,
    spec: &RenditionSpec,
    settings: &Settings,
) -> Result<(Output, Pixels), ImageError> {
    let encode_error = |source: BoxError| ImageError::Encode {
        name: spec.name.clone(),
        source,
    };
    let small =
        resize::resize_upright(pixels, target, orientation).map_err(|e| encode_error(e.into()))?;
    let quality = spec.quality(settings.jpeg_quality);
    let bytes = match spec.format {
        Format::Jpeg => encode::jpeg(&small, quality).map_err(BoxError::from),
        Format::Png => encode::png(&small).map_err(BoxError::from),
        Format::Webp => encode::webp(&small, quality),
        Format::Avif => encode::avif(&small, quality, spec.speed()),
    }
    .map_err(encode_error)?;
    Ok((
        Output {
            spec: spec.clone(),
            bytes,
            width: small.width,
            height: small.height,
        },
        small,
    ))
}

/// `f` of each item, the first on this thread and each other one on a thread of its own, the
/// results in the items' order. A panic on another thread is raised again on this one.
pub(crate) fn side_by_side<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let f = &f;
    let mut items = items.into_iter();
    let Some(first) = items.next() else {
        return Vec::new();
    };
    std::thread::scope(|scope| {
        let others: Vec<_> = items.map(|item| scope.spawn(move || f(item))).collect();
        std::iter::once(f(first))
            .chain(others.into_iter().map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }))
            .collect()
    })
}

#[cfg(all(test, feature = "avif"))]
mod avif_grid_tests;
#[cfg(test)]
mod colour_tests;
#[cfg(test)]
mod forgiving_tests;
#[cfg(all(test, feature = "heic"))]
mod heic_tests;
#[cfg(test)]
mod tests;
