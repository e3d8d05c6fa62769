//! Colour management against reference conversions: Display P3 and Adobe RGB from their published
//! primaries and curves (computed here, independently of moxcms), CMYK from LittleCMS on a real
//! CMYK profile (tests/fixtures/README.md). Tolerances, in 8-bit levels per channel: 2 for a
//! lossless PNG through a matrix profile (rounding in two CMMs), 4 for a q95 JPEG (its own error
//! added), 6 for CMYK (a q95 JPEG, and two CMMs interpolating the same LUT differently).

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, RgbImage};
use moxcms::ColorProfile;
#[cfg(feature = "heic")]
use state::media::MediaType;

use super::*;

const FOGRA: &[u8] = include_bytes!("../../tests/fixtures/fogra39l-test.icc");

/// The test patches, as stored in the source space.
const PATCHES: [[u8; 3]; 10] = [
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
    [255, 255, 0],
    [0, 200, 200],
    [200, 60, 120],
    [128, 128, 128],
    [240, 200, 160],
    [30, 90, 40],
    [255, 255, 255],
];
const PATCH: u32 = 32;

/// 32x32 flat patches side by side.
fn patches(colours: &[[u8; 3]]) -> RgbImage {
    RgbImage::from_fn(PATCH * colours.len() as u32, PATCH, |x, _| {
        image::Rgb(colours[(x / PATCH) as usize])
    })
}

fn with_icc_png(img: &RgbImage, icc: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    DynamicImage::ImageRgb8(img.clone())
        .write_to(&mut Cursor::new(&mut plain), ImageFormat::Png)
        .unwrap();
    // iCCP right after IHDR (8 + 25 bytes).
    let mut data = b"test\0\0".to_vec();
    data.extend(zlib(icc));
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(b"iCCP");
    chunk.extend_from_slice(&data);
    chunk.extend_from_slice(&crc32_update(crc32(b"iCCP"), &data).to_be_bytes());
    [&plain[..33], &chunk, &plain[33..]].concat()
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn crc32(bytes: &[u8]) -> u32 {
    crc32_update(0, bytes)
}

fn crc32_update(crc: u32, bytes: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// An ICC profile in APP2 segments (one, unless it is over 65519 bytes), right after SOI.
fn with_icc_jpeg(jpeg: &[u8], icc: &[u8]) -> Vec<u8> {
    let chunks: Vec<&[u8]> = icc.chunks(65_519).collect();
    let mut out = jpeg[..2].to_vec();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut body = b"ICC_PROFILE\0".to_vec();
        body.extend([i as u8 + 1, chunks.len() as u8]);
        body.extend_from_slice(chunk);
        out.extend_from_slice(&[0xFF, 0xE2]);
        out.extend_from_slice(&((2 + body.len()) as u16).to_be_bytes());
        out.extend_from_slice(&body);
    }
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Every patch's centre in a lossless rendition of the whole image (no resize).
fn rendered_patches(bytes: &[u8], n: usize) -> Vec<[u8; 3]> {
    let settings = Settings::parse(
        &format!("same:fit={}x{PATCH}:png", PATCH * n as u32),
        1 << 30,
    )
    .unwrap();
    let r = render(bytes, &settings).unwrap();
    let img = image::load_from_memory(&r.renditions[0].bytes)
        .unwrap()
        .to_rgb8();
    (0..n as u32)
        .map(|i| img.get_pixel(i * PATCH + PATCH / 2, PATCH / 2).0)
        .collect()
}

type M3 = [[f64; 3]; 3];

fn mul(a: &M3, b: &M3) -> M3 {
    let mut m = [[0.0; 3]; 3];
    for (i, row) in m.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    m
}

fn inverse(m: &M3) -> M3 {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    let c =
        |r0: usize, c0: usize, r1: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    [
        [
            c(1, 1, 2, 2) / det,
            -c(0, 1, 2, 2) / det,
            c(0, 1, 1, 2) / det,
        ],
        [
            -c(1, 0, 2, 2) / det,
            c(0, 0, 2, 2) / det,
            -c(0, 0, 1, 2) / det,
        ],
        [
            c(1, 0, 2, 1) / det,
            -c(0, 0, 2, 1) / det,
            c(0, 0, 1, 1) / det,
        ],
    ]
}

/// RGB to XYZ for primaries (x, y) and a D65 white.
fn rgb_to_xyz(p: [(f64, f64); 3]) -> M3 {
    let (wx, wy) = (0.3127, 0.3290);
    let xyz = |(x, y): (f64, f64)| [x / y, 1.0, (1.0 - x - y) / y];
    let cols = p.map(xyz);
    let m: M3 = [
        [cols[0][0], cols[1][0], cols[2][0]],
        [cols[0][1], cols[1][1], cols[2][1]],
        [cols[0][2], cols[1][2], cols[2][2]],
    ];
    let w = [wx / wy, 1.0, (1.0 - wx - wy) / wy];
    let inv = inverse(&m);
    let s: Vec<f64> = (0..3)
        .map(|i| (0..3).map(|k| inv[i][k] * w[k]).sum())
        .collect();
    let mut out = m;
    for row in out.iter_mut() {
        for (j, v) in row.iter_mut().enumerate() {
            *v *= s[j];
        }
    }
    out
}

const SRGB: [(f64, f64); 3] = [(0.64, 0.33), (0.30, 0.60), (0.15, 0.06)];
const P3: [(f64, f64); 3] = [(0.680, 0.320), (0.265, 0.690), (0.150, 0.060)];
const ADOBE: [(f64, f64); 3] = [(0.64, 0.33), (0.21, 0.71), (0.15, 0.06)];

fn srgb_decode(v: f64) -> f64 {
    if v <= 0.04045 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

fn srgb_encode(l: f64) -> f64 {
    if l <= 0.003_130_8 {
        l * 12.92
    } else {
        1.055 * l.powf(1.0 / 2.4) - 0.055
    }
}

/// The reference: decode with the source curve, primaries to sRGB's through XYZ, clip, encode.
fn reference(c: [u8; 3], primaries: [(f64, f64); 3], decode: fn(f64) -> f64) -> [u8; 3] {
    let m = mul(&inverse(&rgb_to_xyz(SRGB)), &rgb_to_xyz(primaries));
    let lin = c.map(|v| decode(f64::from(v) / 255.0));
    let mut out = [0u8; 3];
    for (i, o) in out.iter_mut().enumerate() {
        let l: f64 = (0..3).map(|k| m[i][k] * lin[k]).sum();
        *o = (srgb_encode(l.clamp(0.0, 1.0)) * 255.0).round() as u8;
    }
    out
}

fn adobe_decode(v: f64) -> f64 {
    v.powf(563.0 / 256.0)
}

fn max_error(got: &[[u8; 3]], want: &[[u8; 3]]) -> u8 {
    got.iter()
        .zip(want)
        .flat_map(|(g, w)| (0..3).map(move |i| g[i].abs_diff(w[i])))
        .max()
        .unwrap()
}

fn check_rgb_profile(icc: &[u8], primaries: [(f64, f64); 3], decode: fn(f64) -> f64) {
    let want: Vec<[u8; 3]> = PATCHES
        .iter()
        .map(|&c| reference(c, primaries, decode))
        .collect();
    // Ignoring the profile would be far off: the test can fail.
    assert!(max_error(&PATCHES, &want) > 20, "{want:?}");
    let img = patches(&PATCHES);

    let png = with_icc_png(&img, icc);
    let got = rendered_patches(&png, PATCHES.len());
    assert!(
        max_error(&got, &want) <= 2,
        "PNG: got {got:?}, want {want:?}"
    );

    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .encode_image(&DynamicImage::ImageRgb8(img))
        .unwrap();
    let got = rendered_patches(&with_icc_jpeg(&jpeg, icc), PATCHES.len());
    assert!(
        max_error(&got, &want) <= 4,
        "JPEG: got {got:?}, want {want:?}"
    );
}

#[test]
fn display_p3_comes_out_as_srgb_within_two_levels_of_the_reference() {
    let icc = ColorProfile::new_display_p3().encode().unwrap();
    check_rgb_profile(&icc, P3, srgb_decode);
}

#[test]
fn adobe_rgb_comes_out_as_srgb_within_two_levels_of_the_reference() {
    let icc = ColorProfile::new_adobe_rgb().encode().unwrap();
    check_rgb_profile(&icc, ADOBE, adobe_decode);
}

#[test]
fn a_cmyk_jpeg_converts_through_its_profile_like_littlecms() {
    // Ink (0 none, 255 full) and LittleCMS's sRGB for it (tests/fixtures/README.md).
    let cases: [([u8; 4], [u8; 3]); 8] = [
        ([0, 0, 0, 0], [255, 255, 255]),
        ([255, 0, 0, 0], [0, 161, 228]),
        ([0, 255, 0, 0], [230, 10, 128]),
        ([0, 0, 255, 0], [255, 237, 0]),
        ([0, 0, 0, 255], [44, 44, 43]),
        ([128, 128, 128, 0], [150, 131, 126]),
        ([51, 153, 0, 26], [192, 123, 170]),
        ([0, 77, 204, 0], [252, 188, 74]),
    ];
    let n = cases.len() as u32;
    let mut data = Vec::new();
    for _ in 0..PATCH {
        for x in 0..PATCH * n {
            data.extend_from_slice(&cases[(x / PATCH) as usize].0);
        }
    }
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 95)
        .encode(
            &data,
            (PATCH * n) as u16,
            PATCH as u16,
            jpeg_encoder::ColorType::Cmyk,
        )
        .unwrap();
    let want: Vec<[u8; 3]> = cases.iter().map(|c| c.1).collect();
    let naive = rendered_patches(&jpeg, cases.len());
    assert!(
        max_error(&naive, &want) > 40,
        "without the profile: {naive:?}"
    );
    let got = rendered_patches(&with_icc_jpeg(&jpeg, FOGRA), cases.len());
    assert!(max_error(&got, &want) <= 6, "got {got:?}, want {want:?}");
}

#[test]
fn a_cmyk_tiff_converts_through_its_profile_like_littlecms() {
    // Ink (0 none), as TIFF's separated photometric stores it, as in the CMYK JPEG test above.
    let inks: [[u8; 4]; 8] = [
        [0, 0, 0, 0],
        [255, 0, 0, 0],
        [0, 255, 0, 0],
        [0, 0, 255, 0],
        [0, 0, 0, 255],
        [128, 128, 128, 0],
        [51, 153, 0, 26],
        [0, 77, 204, 0],
    ];
    let n = inks.len() as u32;
    let data: Vec<u8> = (0..PATCH * PATCH * n)
        .flat_map(|i| inks[(i % (PATCH * n) / PATCH) as usize])
        .collect();
    let tiff = |icc: Option<&[u8]>| {
        let mut out = Cursor::new(Vec::new());
        let mut enc = tiff::encoder::TiffEncoder::new(&mut out).unwrap();
        let mut image = enc
            .new_image::<tiff::encoder::colortype::CMYK8>(PATCH * n, PATCH)
            .unwrap();
        if let Some(icc) = icc {
            image
                .encoder()
                .write_tag(tiff::tags::Tag::IccProfile, icc)
                .unwrap();
        }
        image.write_data(&data).unwrap();
        out.into_inner()
    };
    let want: Vec<[u8; 3]> = littlecms_reference(FOGRA, &inks.concat(), true)
        .chunks_exact(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    let naive = rendered_patches(&tiff(None), inks.len());
    assert!(
        max_error(&naive, &want) > 40,
        "without the profile: {naive:?}"
    );
    let with_profile = tiff(Some(FOGRA));
    let header = probe::probe(&with_profile, &Settings::default()).unwrap();
    assert!(matches!(
        colour::source(&header).source,
        colour::Source::Cmyk(_)
    ));
    let got = rendered_patches(&with_profile, inks.len());
    // Lossless pixels: only the 8-bit transform's rounding and interpolation differ.
    assert!(max_error(&got, &want) <= 2, "got {got:?}, want {want:?}");
}

fn plain_png(img: &RgbImage) -> Vec<u8> {
    let mut plain = Vec::new();
    DynamicImage::ImageRgb8(img.clone())
        .write_to(&mut Cursor::new(&mut plain), ImageFormat::Png)
        .unwrap();
    plain
}

#[test]
fn an_srgb_profile_or_none_costs_no_conversion() {
    let img = patches(&PATCHES);
    let srgb = ColorProfile::new_srgb().encode().unwrap();
    for bytes in [with_icc_png(&img, &srgb), plain_png(&img)] {
        let header = probe::probe(&bytes, &Settings::default()).unwrap();
        assert!(matches!(
            colour::source(&header).source,
            colour::Source::Srgb
        ));
        assert_eq!(rendered_patches(&bytes, PATCHES.len()), PATCHES.to_vec());
    }
}

#[test]
fn a_profile_is_resolved_once_for_every_image_that_carries_it() {
    let p3 = ColorProfile::new_display_p3().encode().unwrap();
    let adobe = ColorProfile::new_adobe_rgb().encode().unwrap();
    let conversion = |pixels: &[[u8; 3]], icc: &[u8]| {
        let header =
            probe::probe(&with_icc_png(&patches(pixels), icc), &Settings::default()).unwrap();
        match colour::source(&header).source {
            colour::Source::Rgb(c) => c,
            _ => panic!("a wide-gamut profile taken as sRGB"),
        }
    };
    let first = conversion(&PATCHES, &p3);
    // Other pixels, the same profile: the same transform, not a new one.
    let second = conversion(&[[10, 200, 30]], &p3);
    assert!(std::sync::Arc::ptr_eq(&first, &second));
    assert!(!std::sync::Arc::ptr_eq(
        &first,
        &conversion(&PATCHES, &adobe)
    ));
}

#[test]
fn a_conversion_split_over_two_threads_is_the_one_made_on_one() {
    let p3 = ColorProfile::new_display_p3().encode().unwrap();
    let header =
        probe::probe(&with_icc_png(&patches(&PATCHES), &p3), &Settings::default()).unwrap();
    let colour::Source::Rgb(conversion) = colour::source(&header).source else {
        panic!("Display P3 taken as sRGB");
    };
    // Every 8-bit colour, and a tail that is not a whole chunk, with and without alpha.
    for channels in [3u8, 4] {
        let pixels = (1 << 24) + 777;
        let buf: Vec<u8> = (0..pixels as u32)
            .flat_map(|i| {
                let [_, r, g, b] = i.to_be_bytes();
                [r, g, b, (i % 251) as u8]
                    .into_iter()
                    .take(channels as usize)
            })
            .collect();
        let image = || Pixels {
            width: pixels as u32,
            height: 1,
            channels,
            buf: buf.clone(),
        };
        let one = colour::rgb_to_srgb(image(), &conversion, false).unwrap();
        let two = colour::rgb_to_srgb(image(), &conversion, true).unwrap();
        assert_ne!(one.buf, buf, "nothing was converted");
        assert!(one.buf == two.buf, "{channels} channels: the halves differ");
    }
}

#[test]
fn a_png_with_linear_gamma_is_encoded_to_srgb() {
    // gAMA 100000 (gamma 1.0): a stored 128 is linear 0.5, which sRGB writes as 188.
    let plain = plain_png(&patches(&[[128, 128, 128]]));
    let data = 100_000u32.to_be_bytes();
    let mut chunk = 4u32.to_be_bytes().to_vec();
    chunk.extend_from_slice(b"gAMA");
    chunk.extend_from_slice(&data);
    chunk.extend_from_slice(&crc32_update(crc32(b"gAMA"), &data).to_be_bytes());
    let png = [&plain[..33], &chunk, &plain[33..]].concat();
    let got = rendered_patches(&png, 1)[0];
    assert!(got.iter().all(|&v| v.abs_diff(188) <= 1), "{got:?}");
}

#[test]
fn png_renditions_say_srgb() {
    let p3 = ColorProfile::new_display_p3().encode().unwrap();
    let r = render(&with_icc_png(&patches(&PATCHES), &p3), &Settings::default()).unwrap();
    let avatar = &r
        .renditions
        .iter()
        .find(|o| o.spec.name == "avatar")
        .unwrap()
        .bytes;
    assert!(avatar.windows(4).any(|w| w == b"sRGB"), "no sRGB chunk");
}

/// An iPhone-style HEIC (8x6 grid of 512 tiles, `irot`, a Display P3 profile, EXIF; made from
/// GreenMeadow.jpg with libheif and x265, tests/fixtures/README.md) against libheif's own decode,
/// quartered by 4x4 box averages and taken through the file's profile to sRGB.
#[cfg(feature = "heic")]
#[test]
fn an_iphone_style_heic_is_decoded_upright_once_and_in_srgb() {
    const HEIC: &[u8] = include_bytes!("../../tests/fixtures/iphone_grid_1008x756.heic");
    const LIBHEIF: &[u8] =
        include_bytes!("../../tests/fixtures/iphone_grid_1008x756.libheif-quarter.png");
    let header = probe::probe(HEIC, &Settings::default()).unwrap();
    let profile = ColorProfile::new_from_slice(header.icc.as_deref().expect("a profile")).unwrap();
    assert!(
        matches!(colour::source(&header).source, colour::Source::Rgb(..)),
        "P3, not sRGB"
    );

    let settings =
        Settings::parse("same:fit=756x1008:png,thumbnail:fit=128x128:jpeg", 1 << 40).unwrap();
    let r = render(HEIC, &settings).unwrap();
    // Stored 1008x756 with a quarter turn: shown upright, and turned only once.
    assert_eq!((r.width, r.height, r.format), (756, 1008, MediaType::Heic));
    assert_eq!(r.exif.get("make").map(String::as_str), Some("Apple"));
    let same = image::load_from_memory(&r.renditions[0].bytes)
        .unwrap()
        .to_rgb8();
    assert_eq!(same.dimensions(), (756, 1008));
    let ours: Vec<u8> = quarter(&same);

    let reference = image::load_from_memory(LIBHEIF).unwrap().to_rgb8();
    let t = profile
        .create_transform_8bit(
            moxcms::Layout::Rgb,
            &ColorProfile::new_srgb(),
            moxcms::Layout::Rgb,
            moxcms::TransformOptions::default(),
        )
        .unwrap();
    let mut want = vec![0u8; reference.as_raw().len()];
    t.transform(reference.as_raw(), &mut want).unwrap();
    let db = psnr(&ours, &want);
    assert!(db > 38.0, "against libheif: {db:.1} dB");
}

#[cfg(feature = "heic")]
fn quarter(img: &RgbImage) -> Vec<u8> {
    let (w, h) = (img.width() / 4, img.height() / 4);
    let mut out = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let mut sum = 0u32;
                for dy in 0..4 {
                    for dx in 0..4 {
                        sum += u32::from(img.get_pixel(x * 4 + dx, y * 4 + dy)[c]);
                    }
                }
                out.push(((sum + 8) / 16) as u8);
            }
        }
    }
    out
}

#[cfg(feature = "heic")]
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0 * 255.0 / mse).log10()
}

/// The source pictures of the LittleCMS test: GreenMeadow.jpg at 320x256, then every colour of a
/// 17x17x17 grid, as RGB rows 320 wide.
fn photo_and_grid() -> (u32, u32, Vec<u8>) {
    const PHOTO: &[u8] = include_bytes!("../../tests/fixtures/GreenMeadow.jpg");
    let photo = image::load_from_memory(PHOTO)
        .unwrap()
        .resize_exact(320, 256, image::imageops::FilterType::Triangle)
        .to_rgb8();
    let mut rgb = photo.into_raw();
    for r in 0..17u32 {
        for g in 0..17u32 {
            for b in 0..17u32 {
                rgb.extend([r, g, b].map(|v| (v * 255 / 16) as u8));
            }
        }
    }
    // Whole rows of 320: the grid padded with white.
    rgb.resize(rgb.len().div_ceil(320 * 3) * 320 * 3, 255);
    let height = (rgb.len() / (320 * 3)) as u32;
    (320, height, rgb)
}

/// sRGB pixels to the "scaled XYB" an XYB JPEG stores, as jpegli computes it
/// (`lib/extras/xyb_transform.cc`, constants from `lib/cms/opsin_params.h`; BSD-3-Clause).
fn to_scaled_xyb(rgb: &[u8]) -> Vec<u8> {
    const M: [[f64; 3]; 3] = [
        [0.30, 0.622, 0.078],
        [0.23, 0.692, 0.078],
        [
            0.243_422_689_245_478_2,
            0.204_767_444_244_968_2,
            1.0 - 0.243_422_689_245_478_2 - 0.204_767_444_244_968_2,
        ],
    ];
    const BIAS: f64 = 0.003_793_073_255_275_449_3;
    rgb.chunks_exact(3)
        .flat_map(|px| {
            let lin = [0, 1, 2].map(|i| srgb_decode(f64::from(px[i]) / 255.0));
            let [l, m, s] = M.map(|row| {
                let mixed = (row[0] * lin[0] + row[1] * lin[1] + row[2] * lin[2] + BIAS).max(0.0);
                mixed.cbrt() - BIAS.cbrt()
            });
            let (x, y, b) = ((l - m) / 2.0, (l + m) / 2.0, s);
            let scaled = [
                (x + 0.015_386_134) * 22.995_788_804,
                y * 1.183_000_077,
                (b - y + 0.277_704_59) * 1.502_141_333,
            ];
            scaled.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        })
        .collect()
}

/// LittleCMS's conversion of 8-bit device values through `icc` to sRGB, relative colorimetric,
/// computed in floating point without its 8-bit optimisations (`cmsFLAGS_NOOPTIMIZE`): the
/// reference. CMYK is in ink (0 none), as ICC CMYK profiles count it.
fn littlecms_reference(icc: &[u8], device: &[u8], cmyk: bool) -> Vec<u8> {
    use lcms2::{Flags, Intent, PixelFormat, Profile, Transform};
    let profile = Profile::new_icc(icc).unwrap();
    let srgb = Profile::new_srgb();
    let out: Vec<[f64; 3]> = if cmyk {
        // LittleCMS's floating-point CMYK is in percent.
        let src: Vec<[f64; 4]> = device
            .chunks_exact(4)
            .map(|p| [0, 1, 2, 3].map(|i| f64::from(p[i]) / 2.55))
            .collect();
        let t: Transform<[f64; 4], [f64; 3]> = Transform::new_flags(
            &profile,
            PixelFormat::CMYK_DBL,
            &srgb,
            PixelFormat::RGB_DBL,
            Intent::RelativeColorimetric,
            Flags::NO_OPTIMIZE,
        )
        .unwrap();
        let mut out = vec![[0.0; 3]; src.len()];
        t.transform_pixels(&src, &mut out);
        out
    } else {
        let src: Vec<[f64; 3]> = device
            .chunks_exact(3)
            .map(|p| [0, 1, 2].map(|i| f64::from(p[i]) / 255.0))
            .collect();
        let t: Transform<[f64; 3], [f64; 3]> = Transform::new_flags(
            &profile,
            PixelFormat::RGB_DBL,
            &srgb,
            PixelFormat::RGB_DBL,
            Intent::RelativeColorimetric,
            Flags::NO_OPTIMIZE,
        )
        .unwrap();
        let mut out = vec![[0.0; 3]; src.len()];
        t.transform_pixels(&src, &mut out);
        out
    };
    out.iter()
        .flatten()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect()
}

/// What this pipeline did before LUT profiles went to LittleCMS: moxcms, relative colorimetric,
/// and the pixels as they were when it could not make a transform (`None`: the image failed).
fn moxcms_alone(icc: &[u8], device: &[u8], cmyk: bool) -> Option<Vec<u8>> {
    let profile = ColorProfile::new_from_slice(icc).ok()?;
    let options = moxcms::TransformOptions {
        rendering_intent: moxcms::RenderingIntent::RelativeColorimetric,
        ..moxcms::TransformOptions::default()
    };
    let layout = if cmyk {
        moxcms::Layout::Rgba
    } else {
        moxcms::Layout::Rgb
    };
    match profile.create_transform_8bit(
        layout,
        &ColorProfile::new_srgb(),
        moxcms::Layout::Rgb,
        options,
    ) {
        Ok(t) => {
            let mut out = vec![0u8; device.len() / if cmyk { 4 } else { 3 } * 3];
            t.transform(device, &mut out).ok()?;
            Some(out)
        }
        // A CMYK image failed to convert; an RGB one was taken as sRGB.
        Err(_) if cmyk => None,
        Err(_) => Some(device.to_vec()),
    }
}

/// Mean absolute difference per channel value, and PSNR in dB.
fn agreement(got: &[u8], want: &[u8]) -> (f64, f64) {
    assert_eq!(got.len(), want.len());
    let n = got.len() as f64;
    let mean = got
        .iter()
        .zip(want)
        .map(|(a, b)| f64::from(a.abs_diff(*b)))
        .sum::<f64>()
        / n;
    let mse = got
        .iter()
        .zip(want)
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
        .sum::<f64>()
        / n;
    (mean, 10.0 * (255.0 * 255.0 / mse.max(1e-9)).log10())
}

/// The whole image as a lossless PNG rendition, at its own size.
fn rendered_rgb(bytes: &[u8], (w, h): (u32, u32)) -> (Rendered, Vec<u8>) {
    let settings = Settings::parse(&format!("same:fit={w}x{h}:png"), 1 << 30).unwrap();
    let r = render(bytes, &settings).unwrap();
    let img = image::load_from_memory(&r.renditions[0].bytes)
        .unwrap()
        .to_rgb8();
    assert_eq!(img.dimensions(), (w, h));
    (r, img.into_raw())
}

fn icc_fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../tests/fixtures/icc/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Every LUT-based profile in tests/fixtures/icc (and the FOGRA39 one), a photo and a colour grid
/// through each, end to end (embedded in a PNG, an XYB JPEG, a CMYK JPEG) against LittleCMS:
/// within 1.5 levels of mean channel difference and at least 40 dB. The table printed (with
/// `--nocapture`) also gives moxcms alone, which this pipeline used before (docs/colour.md).
#[test]
fn lut_profiles_agree_with_littlecms() {
    let (w, h, photo) = photo_and_grid();
    let cases: [(&str, Vec<u8>, &str); 7] = [
        (
            "sRGB_v4_ICC_preference.icc",
            icc_fixture("sRGB_v4_ICC_preference.icc"),
            "png",
        ),
        ("lcms-test3.icc", icc_fixture("lcms-test3.icc"), "png"),
        ("lcms-test4.icc", icc_fixture("lcms-test4.icc"), "png"),
        ("jpegli-xyb.icc", icc_fixture("jpegli-xyb.icc"), "xyb jpeg"),
        (
            "lcms-test1-cmyk.icc",
            icc_fixture("lcms-test1-cmyk.icc"),
            "cmyk jpeg",
        ),
        (
            "ghostscript-ps_cmyk.icc",
            icc_fixture("ghostscript-ps_cmyk.icc"),
            "cmyk jpeg",
        ),
        ("fogra39l-test.icc", FOGRA.to_vec(), "cmyk jpeg"),
    ];
    println!("| profile | as | moxcms alone: mean diff, PSNR | now: mean diff, PSNR | engine |");
    println!("| --- | --- | --- | --- | --- |");
    let mut failures = Vec::new();
    for (name, icc, container) in cases {
        // The file, and the device values a decoder reads back from it (JPEG is lossy, so those,
        // not the values encoded, are what both sides convert).
        let (bytes, device, cmyk) = match container {
            "png" => {
                let img = RgbImage::from_raw(w, h, photo.clone()).unwrap();
                (with_icc_png(&img, &icc), photo.clone(), false)
            }
            "xyb jpeg" => {
                let xyb = RgbImage::from_raw(w, h, to_scaled_xyb(&photo)).unwrap();
                let mut jpeg = Vec::new();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
                    .encode_image(&DynamicImage::ImageRgb8(xyb))
                    .unwrap();
                let jpeg = with_icc_jpeg(&jpeg, &icc);
                let device = turbo_decoded(&jpeg, turbojpeg::PixelFormat::RGB);
                (jpeg, device, false)
            }
            _ => {
                let ink: Vec<u8> = photo
                    .chunks_exact(3)
                    .flat_map(|p| {
                        let k = 255 - p[0].max(p[1]).max(p[2]);
                        [255 - p[0] - k, 255 - p[1] - k, 255 - p[2] - k, k]
                    })
                    .collect();
                let mut jpeg = Vec::new();
                jpeg_encoder::Encoder::new(&mut jpeg, 95)
                    .encode(&ink, w as u16, h as u16, jpeg_encoder::ColorType::Cmyk)
                    .unwrap();
                let jpeg = with_icc_jpeg(&jpeg, &icc);
                let mut device = turbo_decoded(&jpeg, turbojpeg::PixelFormat::CMYK);
                let header = probe::probe(&jpeg, &Settings::default()).unwrap();
                if header.jpeg.as_ref().unwrap().adobe {
                    device.iter_mut().for_each(|v| *v = 255 - *v);
                }
                (jpeg, device, true)
            }
        };
        let want = littlecms_reference(&icc, &device, cmyk);
        let header = probe::probe(&bytes, &Settings::default()).unwrap();
        let resolved = colour::source(&header);
        assert_eq!(resolved.warning, None, "{name}");
        let engine = match &resolved.source {
            colour::Source::Rgb(c) | colour::Source::Cmyk(c) => c.engine(),
            colour::Source::Srgb => "none (taken as sRGB)",
        };
        let (rendered, got) = rendered_rgb(&bytes, (w, h));
        assert!(
            rendered.warnings.is_empty(),
            "{name}: {:?}",
            rendered.warnings
        );
        let (mean, db) = agreement(&got, &want);
        let before = match moxcms_alone(&icc, &device, cmyk) {
            Some(before) => {
                let (m, d) = agreement(&before, &want);
                format!("{m:.2}, {d:.1} dB")
            }
            None => "image refused".into(),
        };
        println!("| `{name}` | {container} | {before} | {mean:.2}, {db:.1} dB | {engine} |");
        if mean > 1.5 || db < 40.0 {
            failures.push(format!("{name}: {mean:.2} levels, {db:.1} dB"));
        }
    }
    assert!(failures.is_empty(), "off LittleCMS: {failures:?}");
}

/// A JPEG decoded whole by libjpeg-turbo, in `format`.
fn turbo_decoded(jpeg: &[u8], format: turbojpeg::PixelFormat) -> Vec<u8> {
    let mut d = turbojpeg::Decompressor::new().unwrap();
    let header = d.read_header(jpeg).unwrap();
    let mut out = turbojpeg::Image {
        pixels: vec![0u8; header.width * header.height * format.size()],
        width: header.width,
        pitch: header.width * format.size(),
        height: header.height,
        format,
    };
    d.decompress(jpeg, out.as_deref_mut()).unwrap();
    out.pixels
}

/// RGBA through a LUT profile (LittleCMS): the colours as RGB's, the alpha as it was, on one
/// thread or two.
#[test]
fn rgba_through_a_lut_profile_keeps_its_alpha() {
    let icc = icc_fixture("sRGB_v4_ICC_preference.icc");
    let header = probe::probe(
        &with_icc_png(&patches(&PATCHES), &icc),
        &Settings::default(),
    )
    .unwrap();
    let colour::Source::Rgb(conversion) = colour::source(&header).source else {
        panic!("a LUT profile taken as sRGB");
    };
    assert_eq!(conversion.engine(), "littlecms");
    let (_, _, rgb) = photo_and_grid();
    let pixels = rgb.len() / 3;
    let rgba: Vec<u8> = rgb
        .chunks_exact(3)
        .enumerate()
        .flat_map(|(i, p)| [p[0], p[1], p[2], (i % 256) as u8])
        .collect();
    let image = |channels: u8, buf: &[u8]| Pixels {
        width: pixels as u32,
        height: 1,
        channels,
        buf: buf.to_vec(),
    };
    let want = colour::rgb_to_srgb(image(3, &rgb), &conversion, false).unwrap();
    assert_ne!(want.buf, rgb, "nothing was converted");
    for two_threads in [false, true] {
        let got = colour::rgb_to_srgb(image(4, &rgba), &conversion, two_threads).unwrap();
        for (i, (px, want)) in got
            .buf
            .chunks_exact(4)
            .zip(want.buf.chunks_exact(3))
            .enumerate()
        {
            assert_eq!(&px[..3], want, "pixel {i}");
            assert_eq!(px[3], (i % 256) as u8, "alpha of pixel {i}");
        }
    }
}
