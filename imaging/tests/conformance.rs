//! Conformance: every file of the public test suites under `tests/fixtures/conformance/` (one
//! folder per suite, each with its PROVENANCE.md) decoded by this crate and by a reference
//! decoder (Pillow, or libjxl for JPEG XL; `reference.py` there), then compared: the same
//! dimensions, the same frame count, and at least [`MIN_PSNR`] dB on each of the first frames
//! (RGBA with colour premultiplied by alpha, so a fully transparent pixel's colour does not count;
//! both turned upright by the file's orientation). PngSuite's `x*.png` files are broken on purpose
//! and must be refused.
//!
//! The references are computed here, by the reference decoders `scripts/tools.sh reference`
//! installs (pinned) in `.tools/reference`; `make test` installs them and sets REFERENCE_REQUIRED,
//! so there the test fails rather than skips without them. Run with `-- --nocapture` for the
//! per-suite table the docs quote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use imaging::colour::Source;
use imaging::{animation, decode, orientation, probe, Pixels, Settings};

const MIN_PSNR: f64 = 40.0;

/// Files where this pipeline and the reference differ, each with why. The test fails if one of
/// them stops differing (so the list only shrinks), and reports them apart from the passes.
/// "design": the pipeline does what browsers do, the reference does not. "gap": a limit of the
/// decoder here, documented in docs/formats.md.
const KNOWN: [(&str, &str); 41] = [
    ("avif/Link-U-kimono.crop.avif", "design: the clean aperture (clap) is applied; libavif leaves it to the caller and Pillow does not crop"),
    ("avif/Link-U-kimono.mirror-vertical.rotate270.crop.avif", "design: clap applied (as above)"),
    ("avif/Microsoft-Chimera_8bit_cropped_480x256.avif", "design: clap applied (as above)"),
    ("avif/xmp_tags_orientation.avif", "design: an orientation in XMP is not applied (irot/imir are AVIF's orientation; browsers ignore XMP); Pillow applies it"),
    ("gif/dispose_bgnd.gif", "design: disposal to background clears to transparent, as browsers do; Pillow paints the background colour"),
    ("gif/test_extents.gif", "design: a frame larger than the logical screen is clipped to it, as browsers do; Pillow grows the image"),
    ("gif/test_extents_transparency.gif", "design: the file holds a second GIF header after its first image; the walk stops there (no trailer), Pillow reads on"),
    ("apng/chunk_no_fctl.png", "design: an APNG whose frame controls are missing is shown as its default image; Pillow refuses it"),
    ("apng/chunk_multi_actl.png", "gap: a second acTL chunk is not ignored as Pillow ignores it"),
    ("apng/syntax_num_frames_low.png", "gap: frames past acTL's count are counted (Pillow stops at the count)"),
    ("apng/dispose_op_previous.png", "gap: dispose-to-previous after a frame drawn over the default image differs from Pillow"),
    ("apng/dispose_op_previous_region.png", "gap: as dispose_op_previous.png"),
    ("apng/blend_op_over_near_transparent.png", "gap: blending over near-transparent pixels rounds differently (38.6 dB)"),
    ("apng/mode_16bit.png", "gap: a frame after the first of a non-RGBA APNG differs from Pillow"),
    ("apng/mode_grayscale_alpha.png", "gap: as mode_16bit.png"),
    ("apng/mode_palette_1bit_alpha.png", "gap: as mode_16bit.png"),
    ("jxl/alpha_nonpremultiplied.jxl", "gap: JPEG XL with alpha differs from libjxl's output (jxl-oxide's rendering, under investigation)"),
    ("jxl/alpha_premultiplied.jxl", "gap: as alpha_nonpremultiplied.jxl"),
    ("jxl/alpha_triangles.jxl", "gap: as alpha_nonpremultiplied.jxl"),
    ("jxl/blendmodes.jxl", "gap: as alpha_nonpremultiplied.jxl (blended layers with alpha)"),
    ("jxl/sunset_logo.jxl", "gap: as alpha_nonpremultiplied.jxl"),
    ("jxl/grayscale.jxl", "gap: grey JPEG XL comes out in a different tone curve than libjxl's"),
    ("pngsuite/tbbn0g04.png", "gap: the png crate's tRNS on 4-bit grey (the existing PNG path)"),
    ("pngsuite/tbwn0g16.png", "gap: the png crate's tRNS on 16-bit grey (the existing PNG path)"),
    ("tiff/BigTIFFMotorola.tif", "design: big-endian BigTIFF decodes here; Pillow's libtiff build refuses it"),
    ("tiff/compression.tif", "gap: CCITT modified Huffman (compression 2) is not in the tiff crate"),
    ("tiff/seq-1c-1b-fax3-71f6a21a.tiff", "gap: CCITT Group 3 fax is not in the tiff crate (Group 4 is)"),
    ("tiff/seq-1c-1b-fax3-fillbits-71f6a21a.tiff", "gap: as above"),
    ("tiff/seq-1c-1b-fax3-lsb-71f6a21a.tiff", "gap: as above"),
    ("tiff/multipage.tiff", "gap: palette (RGBPalette) TIFF is refused by the tiff crate"),
    ("tiff/palette-1c-1b.tiff", "gap: palette TIFF (as above)"),
    ("tiff/palette-1c-4b.tiff", "gap: palette TIFF (as above)"),
    ("tiff/palette-1c-8b.tiff", "gap: palette TIFF (as above)"),
    ("tiff/seq-1c-4b-palette-85108c5a.tiff", "gap: palette TIFF (as above)"),
    ("tiff/seq-1c-8b-palette-89b39bc3.tiff", "gap: palette TIFF (as above)"),
    ("tiff/seq-1c-12b-47c39b31.tiff", "gap: 12-bit samples are refused"),
    ("tiff/seq-1c-12b-hpredict-47c39b31.tiff", "gap: 12-bit samples are refused"),
    ("tiff/seq-1c-i16-63af2488.tiff", "gap: signed integer samples are refused"),
    ("tiff/seq-1c-i32-99fddec2.tiff", "gap: signed integer samples are refused"),
    ("tiff/seq-1c-i8-f8446bbe.tiff", "gap: signed integer samples are refused"),
    ("tiff/tiff_tiled_planar_16bit_RGB.tiff", "gap: tiled 16-bit separate planes trip an assertion in the tiff crate (caught: refused)"),
];
/// As many frames as reference.py writes.
const MAX_FRAMES: usize = 8;
const SUITES: [&str; 8] = [
    "pngsuite",
    "webp",
    "gif",
    "avif",
    "tiff",
    "apng",
    "jxl",
    "orientation",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/conformance")
}

fn reference_python() -> Option<PathBuf> {
    let python = std::env::var_os("REFERENCE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/reference/bin/python")
        });
    python.exists().then_some(python)
}

/// Our decode of `bytes`: size as displayed, frame count, and the first frames as RGBA, upright.
struct Ours {
    width: u32,
    height: u32,
    frames: u32,
    rgba: Vec<Vec<u8>>,
}

fn rgba(p: &Pixels) -> Vec<u8> {
    match p.channels {
        1 => p.buf.iter().flat_map(|&v| [v, v, v, 255]).collect(),
        3 => p
            .buf
            .chunks_exact(3)
            .flat_map(|c| [c[0], c[1], c[2], 255])
            .collect(),
        _ => p.buf.clone(),
    }
}

fn ours(bytes: &[u8]) -> Result<Ours, String> {
    // One rendition larger than any file here: the decode is at full size (no DCT scaling).
    let settings = Settings::parse("full:width=10000:png", 60_000_000).unwrap();
    let header = probe::probe(bytes, &settings).map_err(|e| e.to_string())?;
    let (width, height) = header.displayed_size();
    let upright = |p: Pixels| rgba(&orientation::orient(p, header.orientation));
    let mut frames = Vec::new();
    match header.animation {
        Some(_) => {
            let mut source = animation::frames(bytes, &header).map_err(|e| e.to_string())?;
            while frames.len() < MAX_FRAMES {
                match source.next_frame().map_err(|e| e.to_string())? {
                    Some(f) => frames.push(upright(f.pixels)),
                    None => break,
                }
            }
        }
        None => frames.push(upright(
            decode::decode(bytes, &header, &Source::Srgb).map_err(|e| e.to_string())?,
        )),
    }
    Ok(Ours {
        width,
        height,
        frames: header.animation.map_or(1, |a| a.frames),
        rgba: frames,
    })
}

/// PSNR of two RGBA buffers, colour premultiplied by alpha.
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let premul = |px: &[u8]| {
        let al = f64::from(px[3]);
        [
            f64::from(px[0]) * al / 255.0,
            f64::from(px[1]) * al / 255.0,
            f64::from(px[2]) * al / 255.0,
            al,
        ]
    };
    let mut sum = 0.0;
    for (x, y) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        for (u, v) in premul(x).iter().zip(premul(y)) {
            sum += (u - v) * (u - v);
        }
    }
    let mse = sum / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

#[derive(Default)]
struct Tally {
    files: usize,
    passed: usize,
    both_refuse: usize,
    known: usize,
    min_psnr: f64,
    failures: Vec<String>,
}

#[test]
fn every_suite_file_decodes_as_the_reference_decoder_does() {
    let Some(python) = reference_python() else {
        assert!(
            std::env::var_os("REFERENCE_REQUIRED").is_none(),
            "REFERENCE_REQUIRED is set but the reference decoders are missing: scripts/tools.sh reference"
        );
        eprintln!("conformance: skipped, no reference decoders (scripts/tools.sh reference installs them)");
        return;
    };
    let mut table = BTreeMap::new();
    for suite in SUITES {
        if suite == "avif" && !cfg!(feature = "avif") {
            eprintln!("conformance: the avif suite needs the `avif` feature");
            continue;
        }
        let dir = root().join(suite);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e != "md" && e != "py"))
            .collect();
        files.sort();
        let out = tempfile::tempdir().unwrap();
        let run = Command::new(&python)
            .arg(root().join("reference.py"))
            .arg(out.path())
            .args(&files)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "reference.py: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let lines: Vec<serde_json::Value> = String::from_utf8(run.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines.len(),
            files.len(),
            "{suite}: a reference line per file"
        );
        let mut t = Tally {
            min_psnr: f64::INFINITY,
            ..Tally::default()
        };
        for (file, reference) in files.iter().zip(&lines) {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            t.files += 1;
            let bytes = std::fs::read(file).unwrap();
            let mine = ours(&bytes);
            let must_refuse = suite == "pngsuite" && name.starts_with('x');
            let fail = |why: String| format!("{suite}/{name}: {why}");
            let verdict: Result<Option<f64>, String> = match (&mine, reference.get("error")) {
                (Err(_), _) if must_refuse => Ok(None),
                (Ok(_), _) if must_refuse => {
                    Err(fail("decoded; PngSuite's x files must be refused".into()))
                }
                (Err(_), Some(_)) => {
                    t.both_refuse += 1;
                    Ok(None)
                }
                (Err(e), None) => Err(fail(format!("refused ({e}); the reference decodes it"))),
                (Ok(_), Some(e)) => Err(fail(format!("decoded; the reference refuses it ({e})"))),
                (Ok(m), None) => compare(m, reference, out.path(), &name)
                    .map(Some)
                    .map_err(fail),
            };
            let key = format!("{suite}/{name}");
            if !cfg!(feature = "avif") && name.ends_with(".avif") {
                continue; // the orientation suite's irot/imir files
            }
            let known = KNOWN.iter().find(|(f, _)| *f == key);
            match (verdict, known) {
                (Ok(psnr), None) => {
                    t.passed += 1;
                    if let Some(p) = psnr {
                        t.min_psnr = t.min_psnr.min(p);
                    }
                }
                (Err(why), None) => t.failures.push(why),
                (Err(why), Some((_, reason))) => {
                    t.known += 1;
                    println!("known: {why}\n       {reason}");
                }
                (Ok(_), Some(_)) => t.failures.push(format!(
                    "{key}: agrees with the reference now; take it off KNOWN"
                )),
            }
        }
        table.insert(suite, t);
    }
    println!("| suite | files | passed | of which both refuse | known differences | min PSNR dB |\n| --- | ---: | ---: | ---: | ---: | ---: |");
    for (suite, t) in &table {
        println!(
            "| {suite} | {} | {} | {} | {} | {} |",
            t.files,
            t.passed,
            t.both_refuse,
            t.known,
            if t.min_psnr.is_finite() {
                format!("{:.1}", t.min_psnr)
            } else {
                "identical".into()
            }
        );
    }
    let failures: Vec<&String> = table.values().flat_map(|t| &t.failures).collect();
    assert!(
        failures.is_empty(),
        "{} file(s) differ:\n{}",
        failures.len(),
        failures
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn compare(m: &Ours, reference: &serde_json::Value, out: &Path, name: &str) -> Result<f64, String> {
    let (w, h) = (
        reference["width"].as_u64().unwrap() as u32,
        reference["height"].as_u64().unwrap() as u32,
    );
    if (m.width, m.height) != (w, h) {
        return Err(format!("{}x{}, the reference {w}x{h}", m.width, m.height));
    }
    let frames = reference["frames"].as_u64().unwrap() as u32;
    if m.frames != frames {
        return Err(format!("{} frames, the reference {frames}", m.frames));
    }
    let mut worst = f64::INFINITY;
    for (i, mine) in m.rgba.iter().enumerate() {
        let theirs = std::fs::read(out.join(format!("{name}.{i}.rgba")))
            .map_err(|e| format!("frame {i}: no reference ({e})"))?;
        if theirs.len() != mine.len() {
            return Err(format!(
                "frame {i}: {} bytes, the reference {}",
                mine.len(),
                theirs.len()
            ));
        }
        let p = psnr(mine, &theirs);
        if p < MIN_PSNR {
            return Err(format!("frame {i}: {p:.1} dB against the reference"));
        }
        worst = worst.min(p);
    }
    Ok(worst)
}
