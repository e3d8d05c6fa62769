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

/// An ICC profile in one APP2 segment.
fn with_icc_jpeg(jpeg: &[u8], icc: &[u8]) -> Vec<u8> {
    let mut body = b"ICC_PROFILE\0\x01\x01".to_vec();
    body.extend_from_slice(icc);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE2]);
    out.extend_from_slice(&((2 + body.len()) as u16).to_be_bytes());
    out.extend_from_slice(&body);
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
