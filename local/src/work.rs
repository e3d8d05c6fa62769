//! What an image will cost the process step, in seconds of one core, from its header alone: the
//! engine's admission control counts accepted work in these (`local_engine::admission`).
//!
//! The cost model: `FIXED_S + rate(format) x megapixels x factor`, where
//! - a JPEG's megapixels are its stored pixels; a progressive or multi-scan one costs its rate times
//!   `max(1, scans / 10)` (each scan is a pass over every coefficient), a baseline one half its
//!   rate (docs/benchmarks-process.md: 4 MP baseline 21 ms, progressive 49 ms);
//! - a PNG costs 1.1 times the JPEG rate (a 4 MP PNG 54 ms), 1.5 times that interlaced;
//! - a HEIC costs the coded pictures its decode makes (`Header::heic_coded_pixels`: a grid's
//!   distinct tiles once each, as the decoder decodes a tile once however many cells list it) at
//!   the HEIC rate, plus its canvas at the canvas rate: filling it, and the renditions made from it
//!   at full size. A file that declares more decoding than the process step's budget
//!   (`Settings::max_coded_pixels`) is refused from its header, and costs [`UNREADABLE_S`].
//!
//! The rates are measured once per process, on this machine and this build, by rendering a
//! progressive JPEG (FreshFlower.jpg, 1600x1203) and two HEIC grids with the default renditions:
//! iphone_grid_1008x756.heic (four 512x512 tiles for a 1008x756 canvas) and a grid made from its
//! first tile listed in all 4 cells of a 1024x1024 canvas; the two HEIC rates are what make both
//! renders' times. (The samples are small: the engine measures them while it serves, and its peak
//! memory is bounded.) A debug build and a release one differ tenfold, and so do machines. Anything
//! the header cannot be read from costs [`UNREADABLE_S`].

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use imaging::probe::{probe, Header};
use imaging::Settings;
use state::media::MediaType;

/// What an item costs whatever its size: the table's writes, the stream, the notice.
const FIXED_S: f64 = 0.002;
/// A PNG's megapixel against a progressive JPEG's (docs/benchmarks-process.md: a 4 MP PNG 54 ms).
const PNG_FACTOR: f64 = 1.1;
/// A head that is not an image, or not one imaging can read: refused at once by the process step.
pub const UNREADABLE_S: f64 = 0.01;

const JPEG_SAMPLE: &[u8] = include_bytes!("../../tests/fixtures/FreshFlower.jpg");
#[cfg(feature = "heic")]
const HEIC_SAMPLE: &[u8] = include_bytes!("../../tests/fixtures/iphone_grid_1008x756.heic");

/// Seconds per megapixel, measured.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    /// A progressive JPEG's.
    pub jpeg: f64,
    /// A HEIC's, per coded megapixel (the pictures decoded).
    pub heic: f64,
    /// A HEIC's, per megapixel of its canvas (filled, then rendered from).
    pub heic_canvas: f64,
}

/// The rates on this machine and build, measured on first use.
pub fn rates() -> Rates {
    static RATES: OnceLock<Rates> = OnceLock::new();
    *RATES.get_or_init(|| {
        let settings = Settings::default();
        let (header, seconds) = render_time(JPEG_SAMPLE, &settings);
        let jpeg = seconds / stored_mp(&header);
        #[cfg(feature = "heic")]
        let (heic, heic_canvas) = heic_rates(&settings);
        // Without HEIC support a HEIC is refused at its header: it costs nothing to decode.
        #[cfg(not(feature = "heic"))]
        let (heic, heic_canvas) = (0.0, 0.0);
        let rates = Rates {
            jpeg,
            heic,
            heic_canvas,
        };
        tracing::info!(
            jpeg_s_per_mp = rates.jpeg,
            heic_s_per_mp = rates.heic,
            heic_canvas_s_per_mp = rates.heic_canvas,
            "the work estimate's rates, measured"
        );
        rates
    })
}

/// The per-coded and per-canvas megapixel rates that give both HEIC samples' times: two
/// equations, `time = heic x coded + canvas x canvas pixels`, one a sample mostly decoding (four
/// tiles for less canvas), the other mostly canvas (one tile for 1 MP).
#[cfg(feature = "heic")]
fn heic_rates(settings: &Settings) -> (f64, f64) {
    let canvas_sample = imaging::heic::grid_of_first_tile(HEIC_SAMPLE, 2, 2, (1024, 1024), false)
        .expect("the HEIC sample has a grid");
    let (h1, t1) = render_time(HEIC_SAMPLE, settings);
    let (h2, t2) = render_time(&canvas_sample, settings);
    let (c1, a1, c2, a2) = (coded_mp(&h1), stored_mp(&h1), coded_mp(&h2), stored_mp(&h2));
    let det = c1 * a2 - c2 * a1;
    let heic = (t1 * a2 - t2 * a1) / det;
    let canvas = (c1 * t2 - c2 * t1) / det;
    if heic > 0.0 && canvas > 0.0 {
        (heic, canvas)
    } else {
        // A noisy measure (another process took the core meanwhile): all of the first sample's
        // time on its tiles, all of the second's on its canvas, which overstates both.
        (t1 / c1, t2 / a2)
    }
}

/// The probe of `sample` and the faster of two renders of it, less [`FIXED_S`].
fn render_time(sample: &[u8], settings: &Settings) -> (Header, f64) {
    let header = probe(sample, settings).expect("the calibration sample probes");
    let best = (0..2)
        .map(|_| {
            let started = Instant::now();
            imaging::render(sample, settings).expect("the calibration sample renders");
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    (header, (best - FIXED_S).max(1e-6))
}

fn stored_mp(header: &Header) -> f64 {
    f64::from(header.width) * f64::from(header.height) / 1e6
}

fn coded_mp(header: &Header) -> f64 {
    header.heic_coded_pixels as f64 / 1e6
}

/// Frames the renditions decode: the first only, unless a rendition is animated.
fn frames_decoded(header: &Header, settings: &Settings) -> f64 {
    let cap = settings
        .renditions
        .iter()
        .filter_map(|r| r.animated)
        .map(u32::from)
        .max()
        .unwrap_or(1);
    f64::from(header.animation.map_or(1, |a| a.frames.clamp(1, cap)))
}

/// The cost of the image whose first bytes are `head`, by [`rates`].
pub fn estimate(head: &[u8]) -> Duration {
    Duration::from_secs_f64(estimate_with(head, rates()))
}

/// The cost model, in seconds.
pub fn estimate_with(head: &[u8], rates: Rates) -> f64 {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    let settings = SETTINGS.get_or_init(Settings::default);
    let Ok(header) = probe(head, settings) else {
        return UNREADABLE_S;
    };
    let variable = match header.format {
        MediaType::Jpeg => {
            let factor = match &header.jpeg {
                Some(j) if j.multi_scan => (j.scans as f64 / 10.0).max(1.0),
                _ => 0.5,
            };
            rates.jpeg * stored_mp(&header) * factor
        }
        MediaType::Png => {
            let interlaced = header.png.as_ref().is_some_and(|p| p.interlaced);
            rates.jpeg * PNG_FACTOR * stored_mp(&header) * if interlaced { 1.5 } else { 1.0 }
        }
        MediaType::Heic => rates.heic * coded_mp(&header) + rates.heic_canvas * stored_mp(&header),
        // No calibration sample of their own: AV1 decodes at about HEVC's cost, the others at
        // about PNG's. An animated rendition decodes every frame up to its cap.
        MediaType::Avif => rates.heic * stored_mp(&header) * frames_decoded(&header, settings),
        MediaType::Webp | MediaType::Gif | MediaType::Tiff | MediaType::Apng | MediaType::Jxl => {
            rates.jpeg * PNG_FACTOR * stored_mp(&header) * frames_decoded(&header, settings)
        }
    };
    FIXED_S + variable
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATES: Rates = Rates {
        jpeg: 0.01,
        heic: 0.06,
        heic_canvas: 0.005,
    };

    #[test]
    fn a_progressive_jpeg_costs_its_pixels_at_the_jpeg_rate() {
        let cost = estimate_with(JPEG_SAMPLE, RATES);
        let mp = 1600.0 * 1203.0 / 1e6;
        assert!((cost - (FIXED_S + 0.01 * mp)).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn what_is_not_an_image_costs_the_unreadable_rate() {
        assert_eq!(estimate_with(b"<html>", RATES), UNREADABLE_S);
        assert_eq!(estimate_with(&JPEG_SAMPLE[..20], RATES), UNREADABLE_S);
    }

    /// The canvas rate of a canvas of `w` x `h`.
    fn canvas(w: f64, h: f64) -> f64 {
        0.005 * w * h / 1e6
    }

    #[cfg(feature = "heic")]
    #[test]
    fn a_heic_costs_its_coded_tiles_and_its_canvas() {
        let cost = estimate_with(HEIC_SAMPLE, RATES);
        // Four 512x512 tiles (more than the 1008x756 it shows).
        let mp = 4.0 * 512.0 * 512.0 / 1e6;
        let expected = FIXED_S + 0.06 * mp + canvas(1008.0, 756.0);
        assert!(
            (cost - expected).abs() < 0.06 * 0.2,
            "{cost} against {expected}"
        );
    }

    #[cfg(feature = "heic")]
    #[test]
    fn a_heic_grid_costs_each_distinct_tile_once() {
        use imaging::hostile::{heic_grid, heic_tile};
        let settings = Settings::default();
        let tile = probe(&heic_tile(), &settings).unwrap().heic_coded_pixels as f64 / 1e6;
        assert!(tile >= 512.0 * 512.0 / 1e6, "{tile}");
        // One tile in all 169 cells: one decode, and the 6656x6656 canvas to fill.
        let repeated = estimate_with(&heic_grid(13, 13, (6656, 6656), false), RATES);
        let expected = FIXED_S + 0.06 * tile + canvas(6656.0, 6656.0);
        assert!(
            (repeated - expected).abs() < 1e-9,
            "{repeated} against {expected}"
        );
        // A tile item of its own in each cell: 169 decodes.
        let distinct = estimate_with(&heic_grid(13, 13, (6656, 6656), true), RATES);
        let expected = FIXED_S + 0.06 * 169.0 * tile + canvas(6656.0, 6656.0);
        assert!(
            (distinct - expected).abs() < 1e-9,
            "{distinct} against {expected}"
        );
    }

    #[test]
    fn the_measured_rates_are_positive() {
        let rates = rates();
        assert!(rates.jpeg > 0.0, "{rates:?}");
        #[cfg(feature = "heic")]
        assert!(rates.heic > 0.0 && rates.heic_canvas > 0.0, "{rates:?}");
    }
}
