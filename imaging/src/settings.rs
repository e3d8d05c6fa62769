//! What the process step makes of every image: the renditions (template.yaml's `Renditions`
//! parameter), the budget, and the encoder settings.

use std::fmt;
use std::str::FromStr;

use crate::budget::MemoryPlan;

/// A setting that does not parse or makes no sense; says which and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(String);

impl SettingsError {
    pub(crate) fn new(why: String) -> Self {
        SettingsError(why)
    }
}

/// The renditions made when nothing is configured. The deployed stack and the local engine both take
/// theirs from template.yaml's `Renditions` parameter, which holds this same text.
pub const DEFAULT_RENDITIONS: &str =
    "thumbnail:fit=128x128:jpeg,mobile:width=640:jpeg,avatar:fit=512x512:png";
/// Pixels an image may have before it is refused unread (a decompression-bomb guard): 50 MP.
pub const DEFAULT_MAX_PIXELS: u64 = 50_000_000;
pub const DEFAULT_JPEG_QUALITY: u8 = 80;

pub const DEFAULT_WEBP_QUALITY: u8 = 80;
pub const DEFAULT_AVIF_QUALITY: u8 = 60;
/// rav1e's speed, 1 (slowest, smallest) to 10. At 8 a 640x400 rendition takes about a second on
/// one core; at 10 about a tenth of that, 15% larger (docs/imaging.md, "Renditions").
pub const DEFAULT_AVIF_SPEED: u8 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    /// Lossy WebP (libwebp's VP8), alpha kept.
    Webp,
    /// AVIF (rav1e), alpha kept; needs the `avif` feature.
    Avif,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::Webp => "webp",
            Format::Avif => "avif",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Webp => "image/webp",
            Format::Avif => "image/avif",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            other => other.extension(),
        }
    }
}

/// Whether this build can encode AVIF (the `avif` feature).
pub const AVIF_ENABLED: bool = cfg!(feature = "avif");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Fits inside the box, aspect ratio kept.
    Fit { width: u32, height: u32 },
    /// This wide, height by aspect ratio.
    Width(u32),
}

/// Pixels an animation may have in all (frames x canvas) before it is refused unread: what an
/// animated rendition would decode.
pub const DEFAULT_MAX_ANIMATION_PIXELS: u64 = 1_000_000_000;

/// One rendition: `name:fit=WxH:format` or `name:width=W:format`, then optionally `q=1..100`
/// (JPEG, WebP, AVIF), `speed=1..10` (AVIF) and `animated` or `animated=N` (WebP: an animated
/// input gives an animated WebP of its first N frames, 100 when not said, at most 1000), e.g.
/// `hero:width=1600:avif:q=55:speed=6` or `loop:fit=480x480:webp:animated=50`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionSpec {
    pub name: String,
    pub size: Size,
    pub format: Format,
    /// Encoder quality; the format's default when not given.
    pub quality: Option<u8>,
    /// AVIF encoder speed; [`DEFAULT_AVIF_SPEED`] when not given.
    pub speed: Option<u8>,
    /// An animated WebP of an animated input, of at most this many frames (WebP only).
    pub animated: Option<u16>,
}

impl RenditionSpec {
    /// The quality this rendition is encoded at.
    pub fn quality(&self, jpeg_default: u8) -> u8 {
        self.quality.unwrap_or(match self.format {
            Format::Jpeg | Format::Png => jpeg_default,
            Format::Webp => DEFAULT_WEBP_QUALITY,
            Format::Avif => DEFAULT_AVIF_QUALITY,
        })
    }

    pub fn speed(&self) -> u8 {
        self.speed.unwrap_or(DEFAULT_AVIF_SPEED)
    }
}

impl FromStr for RenditionSpec {
    type Err = SettingsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            SettingsError(format!(
                "rendition {s:?}: {why} (expected name:fit=WxH:FORMAT or name:width=W:FORMAT, \
                 FORMAT jpeg, png, webp or avif, then optionally :q=1..100, for avif \
                 :speed=1..10, for webp :animated or :animated=1..1000)"
            ))
        };
        let parts: Vec<&str> = s.trim().split(':').collect();
        let [name, size, format, options @ ..] = parts.as_slice() else {
            return Err(bad("at least three fields separated by ':'"));
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad("the name must be letters, digits, '-' or '_'"));
        }
        let px = |v: &str| v.parse::<u32>().ok().filter(|n| (1..=10_000).contains(n));
        let size = match size.split_once('=') {
            Some(("fit", wh)) => {
                let (w, h) = wh.split_once('x').ok_or_else(|| bad("fit needs WxH"))?;
                Size::Fit {
                    width: px(w).ok_or_else(|| bad("width must be 1..=10000"))?,
                    height: px(h).ok_or_else(|| bad("height must be 1..=10000"))?,
                }
            }
            Some(("width", w)) => Size::Width(px(w).ok_or_else(|| bad("width must be 1..=10000"))?),
            _ => return Err(bad("size must be fit=WxH or width=W")),
        };
        let format = match *format {
            "jpeg" | "jpg" => Format::Jpeg,
            "png" => Format::Png,
            "webp" => Format::Webp,
            "avif" if AVIF_ENABLED => Format::Avif,
            "avif" => {
                return Err(bad(
                    "this build has no AVIF encoder (build with the `avif` feature: \
                     cargo build --features local/avif, or make run FEATURES=heic,avif)",
                ))
            }
            _ => return Err(bad("format must be jpeg, png, webp or avif")),
        };
        let (mut quality, mut speed, mut animated) = (None, None, None);
        for option in options {
            match option.split_once('=') {
                Some(("q", v)) if format != Format::Png => {
                    quality = Some(
                        v.parse()
                            .ok()
                            .filter(|q| (1..=100).contains(q))
                            .ok_or_else(|| bad("q must be 1..=100"))?,
                    );
                }
                Some(("speed", v)) if format == Format::Avif => {
                    speed = Some(
                        v.parse()
                            .ok()
                            .filter(|s| (1..=10).contains(s))
                            .ok_or_else(|| bad("speed must be 1..=10"))?,
                    );
                }
                None if *option == "animated" && format == Format::Webp => {
                    animated = Some(crate::animation::DEFAULT_FRAME_CAP);
                }
                Some(("animated", v)) if format == Format::Webp => {
                    animated = Some(
                        v.parse()
                            .ok()
                            .filter(|n| (1..=crate::animation::MAX_FRAME_CAP).contains(n))
                            .ok_or_else(|| bad("animated=N needs N of 1..=1000 frames"))?,
                    );
                }
                _ => {
                    return Err(bad(&format!(
                        "unknown option {option:?} for {}",
                        format.name()
                    )))
                }
            }
        }
        Ok(RenditionSpec {
            name: (*name).to_owned(),
            size,
            format,
            quality,
            speed,
            animated,
        })
    }
}

impl fmt::Display for RenditionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = self.format.name();
        match self.size {
            Size::Fit { width, height } => {
                write!(f, "{}:fit={width}x{height}:{format}", self.name)?
            }
            Size::Width(w) => write!(f, "{}:width={w}:{format}", self.name)?,
        }
        if let Some(q) = self.quality {
            write!(f, ":q={q}")?;
        }
        if let Some(s) = self.speed {
            write!(f, ":speed={s}")?;
        }
        match self.animated {
            Some(crate::animation::DEFAULT_FRAME_CAP) => write!(f, ":animated")?,
            Some(n) => write!(f, ":animated={n}")?,
            None => {}
        }
        Ok(())
    }
}

/// What `process` makes of every image.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub renditions: Vec<RenditionSpec>,
    pub max_pixels: u64,
    /// Frames x canvas pixels an animation may have ([`DEFAULT_MAX_ANIMATION_PIXELS`]).
    pub max_animation_pixels: u64,
    /// The most one image may need ([`crate::budget`]): the pool of the function's memory plan.
    pub memory_budget: u64,
    pub jpeg_quality: u8,
}

impl Default for Settings {
    fn default() -> Self {
        Settings::parse(DEFAULT_RENDITIONS, DEFAULT_MAX_PIXELS)
            .expect("the default renditions parse")
    }
}

impl Settings {
    /// `renditions` is a comma-separated list of [`RenditionSpec`]s.
    pub fn parse(renditions: &str, max_pixels: u64) -> Result<Settings, SettingsError> {
        let renditions = renditions
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<RenditionSpec>, _>>()?;
        if renditions.is_empty() {
            return Err(SettingsError("no renditions configured".into()));
        }
        let mut names: Vec<&str> = renditions.iter().map(|r| r.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(SettingsError("rendition names must be unique".into()));
        }
        Ok(Settings {
            renditions,
            max_pixels,
            max_animation_pixels: DEFAULT_MAX_ANIMATION_PIXELS,
            memory_budget: MemoryPlan::default().pool_bytes,
            jpeg_quality: DEFAULT_JPEG_QUALITY,
        })
    }

    /// Pixels of coded pictures an image's decode may make in all (a HEIC's tiles, each distinct
    /// one once, and its alpha plane): twice [`Settings::max_pixels`], room for whole tiles past
    /// the image's edges and an alpha plane of its size. What a decode costs in time grows with
    /// this, so a file that declares more is refused from its header.
    pub fn max_coded_pixels(&self) -> u64 {
        self.max_pixels.saturating_mul(2)
    }

    /// The same settings with the budget of `plan`.
    pub fn with_memory(self, plan: &MemoryPlan) -> Settings {
        Settings {
            memory_budget: plan.pool_bytes,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webp_and_avif_renditions_take_quality_and_speed() {
        let s = Settings::parse("web:width=1280:webp:q=70,thumb:fit=64x64:webp", 1).unwrap();
        assert_eq!(s.renditions[0].format, Format::Webp);
        assert_eq!(s.renditions[0].quality(80), 70);
        assert_eq!(s.renditions[1].quality(80), DEFAULT_WEBP_QUALITY);
        assert_eq!(s.renditions[0].to_string(), "web:width=1280:webp:q=70");
        let avif = Settings::parse("hero:width=1600:avif:q=55:speed=6", 1);
        if AVIF_ENABLED {
            let avif = avif.unwrap();
            assert_eq!(avif.renditions[0].speed(), 6);
            assert_eq!(
                avif.renditions[0].to_string(),
                "hero:width=1600:avif:q=55:speed=6"
            );
        } else {
            // Said at start-up, not at upload time.
            assert!(avif.unwrap_err().to_string().contains("no AVIF encoder"));
        }
    }

    #[test]
    fn an_animated_webp_rendition_takes_a_frame_cap() {
        let s = Settings::parse(
            "a:fit=64x64:webp:animated,b:width=320:webp:q=70:animated=24",
            1,
        )
        .unwrap();
        assert_eq!(
            s.renditions[0].animated,
            Some(crate::animation::DEFAULT_FRAME_CAP)
        );
        assert_eq!(s.renditions[1].animated, Some(24));
        assert_eq!(s.renditions[0].to_string(), "a:fit=64x64:webp:animated");
        assert_eq!(
            s.renditions[1].to_string(),
            "b:width=320:webp:q=70:animated=24"
        );
    }

    #[test]
    fn the_default_renditions_are_the_three_of_the_labs() {
        let s = Settings::default();
        let shown: Vec<String> = s.renditions.iter().map(ToString::to_string).collect();
        assert_eq!(shown.join(","), DEFAULT_RENDITIONS);
        assert_eq!(s.renditions[1].size, Size::Width(640));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, why) in [
            ("thumb:fit=128:jpeg", "fit needs WxH"),
            ("thumb:fit=0x5:jpeg", "width must be"),
            ("thumb:width=64:gif", "format must be"),
            ("web:width=64:webp:q=0", "q must be"),
            ("web:width=64:webp:speed=3", "unknown option"),
            ("web:width=64:png:q=50", "unknown option"),
            ("loop:width=64:jpeg:animated", "unknown option"),
            ("loop:width=64:webp:animated=0", "animated=N needs"),
            ("loop:width=64:webp:animated=1001", "animated=N needs"),
            ("../x:width=64:png", "the name must be"),
            ("a:width=1:png,a:width=2:png", "unique"),
            ("", "no renditions"),
        ] {
            let err = Settings::parse(spec, 1).unwrap_err().to_string();
            assert!(err.contains(why), "{spec}: {err}");
        }
    }
}
