use std::collections::BTreeMap;
use std::io::Cursor;

use image::DynamicImage;
use state::media::MediaType;

use super::*;
use crate::probe::{dct_scale, jpeg_segments};

use image::codecs::jpeg::JpegEncoder;
use image::{GenericImageView, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

const AQUA: &[u8] = include_bytes!("../../tests/fixtures/Aqua.jpg");
const GREEN_MEADOW: &[u8] = include_bytes!("../../tests/fixtures/GreenMeadow.jpg");
const FRESH_FLOWER: &[u8] = include_bytes!("../../tests/fixtures/FreshFlower.jpg");

fn png(image: DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

fn jpeg(image: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 95)
        .encode_image(image)
        .unwrap();
    out
}

fn rendition<'a>(r: &'a Rendered, name: &str) -> &'a Output {
    r.renditions.iter().find(|o| o.spec.name == name).unwrap()
}

fn decoded(out: &Output) -> DynamicImage {
    image::load_from_memory(&out.bytes).unwrap()
}

/// A 200x100 picture: left half red, right half blue.
fn red_left_blue_right() -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(200, 100, |x, _| {
        if x < 100 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    }))
}

/// A JPEG with an EXIF APP1 segment holding only an Orientation tag (big-endian TIFF).
fn with_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn is_red(p: Rgb<u8>) -> bool {
    p[0] > 200 && p[1] < 60 && p[2] < 60
}

fn is_blue(p: Rgb<u8>) -> bool {
    p[0] < 60 && p[1] < 60 && p[2] > 200
}

#[test]
fn target_sizes_fit_and_never_upscale() {
    let fit = Size::Fit {
        width: 128,
        height: 128,
    };
    assert_eq!(target_size(4000, 3000, fit), (128, 96));
    assert_eq!(target_size(3000, 4000, fit), (96, 128));
    assert_eq!(target_size(100, 50, fit), (100, 50));
    assert_eq!(target_size(1920, 1280, Size::Width(640)), (640, 427));
    assert_eq!(target_size(10_000, 1, fit), (128, 1));
}

#[test]
fn the_dct_scale_is_the_smallest_that_covers_the_largest_rendition() {
    // 12 MP: 1/4 gives 1056x792, which covers 640x480; 1/8 (528 wide) would not.
    assert_eq!(dct_scale(4224, 3168, (640, 480)), 4);
    // 20 MP, 6028 wide: 1/8 gives 754, enough for 640.
    assert_eq!(dct_scale(6028, 3391, (640, 360)), 8);
    // 2.5 MP: 1/2 gives 960; 1/4 (480) is too small.
    assert_eq!(dct_scale(1920, 1280, (640, 427)), 2);
    // Rounded up as libjpeg does: 2560/4 = 640 exactly covers 640.
    assert_eq!(dct_scale(2560, 1600, (640, 400)), 4);
    assert_eq!(dct_scale(2556, 1600, (640, 400)), 2);
    // Portrait: the height is what limits.
    assert_eq!(dct_scale(3000, 4000, (640, 853)), 4);
    // Smaller than a rendition: full size.
    assert_eq!(dct_scale(600, 400, (600, 400)), 1);
}

#[test]
fn a_photo_is_decoded_once_at_the_dct_scale_and_rendered_to_every_spec() {
    let r = render(AQUA, &Settings::default()).unwrap();
    assert_eq!((r.width, r.height, r.format), (2560, 1600, MediaType::Jpeg));
    // 1/4 scale: exactly the 640x400 the mobile rendition needs.
    assert_eq!((r.decoded_width, r.decoded_height), (640, 400));
    let sizes: Vec<_> = r
        .renditions
        .iter()
        .map(|o| {
            let d = decoded(o);
            assert_eq!((d.width(), d.height()), (o.width, o.height));
            (o.spec.name.as_str(), d.width(), d.height())
        })
        .collect();
    assert_eq!(
        sizes,
        [
            ("thumbnail", 128, 80),
            ("mobile", 640, 400),
            ("avatar", 512, 320)
        ]
    );
    assert!(image::guess_format(&rendition(&r, "avatar").bytes).unwrap() == ImageFormat::Png);
    // Renditions carry no metadata: no EXIF segment, so no GPS.
    for o in &r.renditions {
        assert!(
            !o.bytes.windows(6).any(|w| w == b"Exif\0\0"),
            "{}",
            o.spec.name
        );
    }
}

/// A `w` x `h` picture with detail everywhere (so that every resize and encoder has work to do).
fn textured(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 7 + y) as u8, ((y * 5) ^ x) as u8, (x * y / 3) as u8])
    }))
}

#[test]
fn a_rendition_looks_like_its_original() {
    // Progressive photo, decoded at 1/2 (800 wide for a 640 rendition); compare the mobile rendition
    // with a plain full decode resized by the image crate: same picture, only filter differences.
    let r = render(FRESH_FLOWER, &Settings::default()).unwrap();
    assert_eq!((r.decoded_width, r.decoded_height), (800, 602));
    let mobile = decoded(rendition(&r, "mobile")).to_rgb8();
    let reference = image::load_from_memory(FRESH_FLOWER)
        .unwrap()
        .resize_exact(
            mobile.width(),
            mobile.height(),
            image::imageops::FilterType::Lanczos3,
        )
        .to_rgb8();
    let psnr = psnr(mobile.as_raw(), reference.as_raw());
    assert!(psnr > 30.0, "PSNR {psnr:.1} dB");
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0 * 255.0 / mse).log10()
}

#[test]
fn orientation_6_turns_the_picture_clockwise() {
    let jpeg = with_orientation(&jpeg(&red_left_blue_right()), 6);
    let r = render(&jpeg, &Settings::default()).unwrap();
    assert_eq!((r.width, r.height), (100, 200), "displayed size");
    assert_eq!(r.exif.get("orientation").map(String::as_str), Some("6"));
    let thumb = decoded(rendition(&r, "thumbnail")).to_rgb8();
    assert_eq!((thumb.width(), thumb.height()), (64, 128));
    // The left (red) half comes to the top.
    assert!(
        is_red(*thumb.get_pixel(32, 10)),
        "{:?}",
        thumb.get_pixel(32, 10)
    );
    assert!(
        is_blue(*thumb.get_pixel(32, 118)),
        "{:?}",
        thumb.get_pixel(32, 118)
    );
    let avatar = decoded(rendition(&r, "avatar"));
    assert_eq!(avatar.dimensions(), (100, 200));
}

#[test]
fn orientation_8_turns_the_picture_anticlockwise() {
    let jpeg = with_orientation(&jpeg(&red_left_blue_right()), 8);
    let r = render(&jpeg, &Settings::default()).unwrap();
    assert_eq!((r.width, r.height), (100, 200));
    let thumb = decoded(rendition(&r, "thumbnail")).to_rgb8();
    assert_eq!((thumb.width(), thumb.height()), (64, 128));
    // The left (red) half goes to the bottom.
    assert!(
        is_blue(*thumb.get_pixel(32, 10)),
        "{:?}",
        thumb.get_pixel(32, 10)
    );
    assert!(
        is_red(*thumb.get_pixel(32, 118)),
        "{:?}",
        thumb.get_pixel(32, 118)
    );
}

#[test]
fn orientation_1_changes_nothing() {
    let jpeg = with_orientation(&jpeg(&red_left_blue_right()), 1);
    let r = render(&jpeg, &Settings::default()).unwrap();
    assert_eq!((r.width, r.height), (200, 100));
    let thumb = decoded(rendition(&r, "thumbnail")).to_rgb8();
    assert_eq!((thumb.width(), thumb.height()), (128, 64));
    assert!(is_red(*thumb.get_pixel(10, 32)));
    assert!(is_blue(*thumb.get_pixel(118, 32)));
}

#[test]
fn a_grayscale_jpeg_stays_gray() {
    let gray = DynamicImage::ImageLuma8(image::GrayImage::from_fn(300, 200, |x, _| {
        image::Luma([if x < 150 { 30 } else { 220 }])
    }));
    let mut one_channel = Vec::new();
    jpeg_encoder::Encoder::new(&mut one_channel, 95)
        .encode(gray.as_bytes(), 300, 200, jpeg_encoder::ColorType::Luma)
        .unwrap();
    let header = turbojpeg::read_header(&one_channel).unwrap();
    assert_eq!(header.colorspace, turbojpeg::Colorspace::Gray);
    let r = render(&one_channel, &Settings::default()).unwrap();
    assert_eq!((r.width, r.height), (300, 200));
    let thumb = decoded(rendition(&r, "thumbnail"));
    assert_eq!(thumb.color(), image::ColorType::L8, "a one-channel JPEG");
    let thumb = thumb.to_luma8();
    assert!(thumb.get_pixel(10, 40)[0].abs_diff(30) < 8);
    assert!(thumb.get_pixel(118, 40)[0].abs_diff(220) < 8);
    let avatar = decoded(rendition(&r, "avatar"));
    assert_eq!(avatar.color(), image::ColorType::L8);
}

/// 160x80 CMYK: left half pure cyan ink, right half pure black ink.
fn cmyk_jpeg(color: jpeg_encoder::ColorType) -> Vec<u8> {
    let mut data = Vec::new();
    for _y in 0..80 {
        for x in 0..160 {
            data.extend_from_slice(if x < 80 {
                &[255, 0, 0, 0]
            } else {
                &[0, 0, 0, 255]
            });
        }
    }
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 95)
        .encode(&data, 160, 80, color)
        .unwrap();
    out
}

fn assert_cyan_and_black(jpeg: &[u8]) {
    let r = render(jpeg, &Settings::default()).unwrap();
    assert_eq!((r.width, r.height), (160, 80));
    let thumb = decoded(rendition(&r, "thumbnail")).to_rgb8();
    let cyan = *thumb.get_pixel(20, 40);
    let black = *thumb.get_pixel(108, 40);
    assert!(cyan[0] < 40 && cyan[1] > 215 && cyan[2] > 215, "{cyan:?}");
    assert!(black.0.iter().all(|&c| c < 40), "{black:?}");
}

#[test]
fn an_adobe_cmyk_jpeg_with_inverted_samples_comes_out_in_the_right_colours() {
    let jpeg = cmyk_jpeg(jpeg_encoder::ColorType::Cmyk);
    assert!(
        jpeg_segments(&jpeg).adobe,
        "jpeg-encoder writes an Adobe segment"
    );
    assert_cyan_and_black(&jpeg);
}

#[test]
fn a_ycck_jpeg_comes_out_in_the_right_colours() {
    assert_cyan_and_black(&cmyk_jpeg(jpeg_encoder::ColorType::CmykAsYcck));
}

#[test]
fn a_16_bit_png_is_rendered_as_8_bit() {
    let deep = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(300, 200, |x, _| {
        if x < 150 {
            image::Rgb([0xFFFF, 0x8000, 0])
        } else {
            image::Rgb([0, 0, 0x4000])
        }
    });
    let r = render(&png(DynamicImage::ImageRgb16(deep)), &Settings::default()).unwrap();
    assert_eq!((r.width, r.height, r.format), (300, 200, MediaType::Png));
    let avatar = decoded(rendition(&r, "avatar"));
    assert_eq!(avatar.color(), image::ColorType::Rgb8);
    let avatar = avatar.to_rgb8();
    assert_eq!(*avatar.get_pixel(10, 100), Rgb([255, 128, 0]));
    assert_eq!(*avatar.get_pixel(290, 100), Rgb([0, 0, 64]));
    let thumb = decoded(rendition(&r, "thumbnail")).to_rgb8();
    let p = thumb.get_pixel(10, 40);
    assert!(p[0] > 240 && p[1].abs_diff(128) < 10 && p[2] < 15, "{p:?}");
}

/// 300x200 RGBA: left half fully transparent, right half opaque red.
fn half_transparent() -> Vec<u8> {
    png(DynamicImage::ImageRgba8(RgbaImage::from_fn(
        300,
        200,
        |x, _| {
            if x < 150 {
                Rgba([0, 0, 0, 0])
            } else {
                Rgba([255, 0, 0, 255])
            }
        },
    )))
}

#[test]
fn transparent_pixels_become_white_in_jpeg_renditions() {
    let r = render(&half_transparent(), &Settings::default()).unwrap();
    let thumb = decoded(rendition(&r, "thumbnail")).to_rgb8();
    assert_eq!((thumb.width(), thumb.height()), (128, 85));
    let p = thumb.get_pixel(20, 40);
    assert!(p.0.iter().all(|&c| c > 245), "transparent -> white: {p:?}");
    assert!(is_red(*thumb.get_pixel(110, 40)));
}

#[test]
fn png_renditions_keep_the_alpha_channel() {
    let r = render(&half_transparent(), &Settings::default()).unwrap();
    let avatar = decoded(rendition(&r, "avatar"));
    assert_eq!(avatar.color(), image::ColorType::Rgba8);
    let avatar = avatar.to_rgba8();
    assert_eq!(avatar.get_pixel(20, 100)[3], 0, "still transparent");
    assert_eq!(*avatar.get_pixel(280, 100), Rgba([255, 0, 0, 255]));
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// A 60-byte PNG whose header declares 50000x50000 RGBA (10 GB of pixels).
fn png_bomb() -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&50_000u32.to_be_bytes());
    ihdr.extend_from_slice(&50_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(b"IEND", &[]);
    out
}

/// A small real JPEG whose frame header is rewritten to declare 50000x50000.
fn jpeg_bomb() -> Vec<u8> {
    let mut bytes = jpeg(&red_left_blue_right());
    let sof = bytes
        .windows(2)
        .position(|w| w[0] == 0xFF && (w[1] == 0xC0 || w[1] == 0xC2))
        .unwrap();
    bytes[sof + 5..sof + 7].copy_from_slice(&50_000u16.to_be_bytes()); // height
    bytes[sof + 7..sof + 9].copy_from_slice(&50_000u16.to_be_bytes()); // width
    bytes
}

fn assert_refused_fast(bytes: &[u8]) {
    let started = std::time::Instant::now();
    let err = render(bytes, &Settings::default()).err().unwrap();
    assert!(
        matches!(
            err,
            ImageError::TooManyPixels {
                width: 50_000,
                height: 50_000,
                pixels: 2_500_000_000,
                ..
            }
        ),
        "{err}"
    );
    // Refused from the header: no pixel buffer, so no time spent filling one.
    assert!(started.elapsed() < std::time::Duration::from_millis(200));
}

#[test]
fn a_png_bomb_is_refused_from_its_header() {
    assert_refused_fast(&png_bomb());
}

#[test]
fn a_jpeg_bomb_is_refused_from_its_header() {
    assert_refused_fast(&jpeg_bomb());
}

#[test]
fn an_image_over_the_budget_is_refused_from_its_header() {
    let big = png(DynamicImage::new_luma8(2000, 2000));
    let settings = Settings {
        max_pixels: 1_000_000,
        ..Settings::default()
    };
    let err = render(&big, &settings).err().unwrap();
    assert!(
        matches!(
            err,
            ImageError::TooManyPixels {
                pixels: 4_000_000,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_truncated_jpeg_is_a_decode_error() {
    let cut = &AQUA[..AQUA.len() * 6 / 10];
    let err = render(cut, &Settings::default()).err().unwrap();
    assert!(matches!(err, ImageError::Decode(_)), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn corrupt_scan_data_is_a_decode_error() {
    let mut bytes = AQUA.to_vec();
    let sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap();
    // Overwrite a run of entropy-coded data with bytes that are not valid Huffman codes.
    for b in &mut bytes[sos + 2000..sos + 6000] {
        *b = 0xFF;
    }
    for b in bytes[sos + 2001..sos + 6000].iter_mut().step_by(2) {
        *b = 0x00;
    }
    let err = render(&bytes, &Settings::default()).err();
    assert!(
        matches!(err, Some(ImageError::Decode(_))),
        "{:?}",
        err.map(|e| e.to_string())
    );
}

#[test]
fn junk_before_the_end_marker_is_only_a_warning() {
    // Many real files carry a few stray bytes before EOI; libjpeg warns, and the picture is whole.
    let mut bytes = AQUA.to_vec();
    let eoi = bytes.len() - 2;
    assert_eq!(&bytes[eoi..], [0xFF, 0xD9]);
    bytes.splice(eoi..eoi, [0x12, 0x34, 0x56]);
    let r = render(&bytes, &Settings::default()).unwrap();
    assert_eq!((r.width, r.height), (2560, 1600));
}

#[test]
fn text_is_not_an_image() {
    assert!(matches!(
        render(b"hello, world", &Settings::default()),
        Err(ImageError::Unsupported(_))
    ));
}

#[test]
fn the_fixture_photos_carry_an_empty_exif_block() {
    // Aqua.jpg and GreenMeadow.jpg hold an APP1 "Exif" segment whose IFD0 has no entries (GIMP
    // wrote it); FreshFlower.jpg has none. Each reads as an empty map, not an error.
    for photo in [AQUA, GREEN_MEADOW] {
        let tiff = jpeg_segments(photo).exif.expect("an EXIF segment");
        assert_eq!(&tiff[..8], b"MM\0\x2a\0\0\0\x08");
        assert!(exif::Reader::new().read_raw(tiff.to_vec()).is_ok());
        assert!(render(photo, &Settings::default()).unwrap().exif.is_empty());
    }
    assert!(jpeg_segments(FRESH_FLOWER).exif.is_none());
    assert!(render(FRESH_FLOWER, &Settings::default())
        .unwrap()
        .exif
        .is_empty());
}

/// One IFD (big-endian) that starts at `at` in the TIFF, with its out-of-line values after it.
/// Entries: (tag, type, count, value bytes); type 2 = ASCII, 3 = SHORT, 4 = LONG, 5 = RATIONAL.
fn ifd(at: usize, entries: &[(u16, u16, u32, Vec<u8>)]) -> Vec<u8> {
    let mut head = (entries.len() as u16).to_be_bytes().to_vec();
    let mut data = Vec::new();
    let data_at = at + 2 + 12 * entries.len() + 4;
    for (tag, kind, count, value) in entries {
        head.extend_from_slice(&tag.to_be_bytes());
        head.extend_from_slice(&kind.to_be_bytes());
        head.extend_from_slice(&count.to_be_bytes());
        if value.len() <= 4 {
            let mut inline = value.clone();
            inline.resize(4, 0);
            head.extend_from_slice(&inline);
        } else {
            head.extend_from_slice(&((data_at + data.len()) as u32).to_be_bytes());
            data.extend_from_slice(value);
            if data.len() % 2 == 1 {
                data.push(0);
            }
        }
    }
    head.extend_from_slice(&0u32.to_be_bytes());
    head.extend_from_slice(&data);
    head
}

fn ascii(s: &str) -> (u16, u32, Vec<u8>) {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    (2, v.len() as u32, v)
}

/// A camera-like EXIF block: make, model, orientation, DateTime, and in the EXIF sub-IFD the
/// DateTimeOriginal; plus a GPS sub-IFD with a latitude.
fn camera_tiff() -> Vec<u8> {
    let entry = |tag: u16, (kind, count, value): (u16, u32, Vec<u8>)| (tag, kind, count, value);
    let ifd0 = |exif_at: u32, gps_at: u32| {
        vec![
            entry(0x010F, ascii("Canon")),
            entry(0x0110, ascii("Canon EOS 400D DIGITAL")),
            entry(0x0112, (3, 1, 6u16.to_be_bytes().to_vec())),
            entry(0x0132, ascii("2009:01:02 03:04:05")),
            entry(0x8769, (4, 1, exif_at.to_be_bytes().to_vec())),
            entry(0x8825, (4, 1, gps_at.to_be_bytes().to_vec())),
        ]
    };
    let len0 = ifd(8, &ifd0(0, 0)).len();
    let exif_entries = [entry(0x9003, ascii("2008:05:30 15:56:01"))];
    let exif_at = 8 + len0;
    let len1 = ifd(exif_at, &exif_entries).len();
    let gps_at = exif_at + len1;
    let latitude: Vec<u8> = [48u32, 1, 51, 1, 0, 1]
        .iter()
        .flat_map(|n| n.to_be_bytes())
        .collect();
    let gps_entries = [entry(0x0001, ascii("N")), (0x0002, 5, 3, latitude)];
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend(ifd(8, &ifd0(exif_at as u32, gps_at as u32)));
    tiff.extend(ifd(exif_at, &exif_entries));
    tiff.extend(ifd(gps_at, &gps_entries));
    tiff
}

fn with_exif(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((2 + 6 + tiff.len()) as u16).to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(tiff);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn the_exif_subset_is_make_model_taken_at_and_orientation() {
    let tiff = camera_tiff();
    let parsed = exif::Reader::new().read_raw(tiff.clone()).unwrap();
    assert!(
        parsed
            .get_field(exif::Tag::GPSLatitude, exif::In::PRIMARY)
            .is_some(),
        "the sample does carry GPS"
    );
    let photo = with_exif(&jpeg(&red_left_blue_right()), &tiff);
    let r = render(&photo, &Settings::default()).unwrap();
    assert_eq!(
        r.exif,
        map(&[
            ("make", "Canon"),
            ("model", "Canon EOS 400D DIGITAL"),
            // DateTimeOriginal wins over DateTime (the time of the last edit).
            ("taken_at", "2008-05-30T15:56:01"),
            ("orientation", "6"),
        ])
    );
    assert_eq!((r.width, r.height), (100, 200));
    for o in &r.renditions {
        assert!(!o.bytes.windows(4).any(|w| w == b"Exif"), "{}", o.spec.name);
        assert!(
            !o.bytes.windows(5).any(|w| w == b"Canon"),
            "{}",
            o.spec.name
        );
    }
}

#[test]
fn a_huge_exif_make_is_kept_only_up_to_the_cap() {
    let huge = "M".repeat(40_000);
    let ifd0 = [(0x010F, 2, (huge.len() + 1) as u32, {
        let mut v = huge.clone().into_bytes();
        v.push(0);
        v
    })];
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend(ifd(8, &ifd0));
    let photo = with_exif(&jpeg(&red_left_blue_right()), &tiff);
    let r = render(&photo, &Settings::default()).unwrap();
    assert_eq!(
        r.exif["make"],
        "M".repeat(crate::metadata::MAX_EXIF_TEXT),
        "40,000 characters in the file, the cap on the item"
    );
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `jpeg` with `segment` (marker and body) inserted after SOI.
fn with_segment(jpeg: &[u8], marker: u8, body: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&((2 + body.len()) as u16).to_be_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// What libjpeg-turbo says when it decodes `bytes` in full, if anything.
fn libjpeg_warning(bytes: &[u8]) -> Option<String> {
    let mut d = turbojpeg::Decompressor::new().unwrap();
    let (w, h) = (2560, 1600);
    let mut buf = vec![0u8; w * h * 3];
    d.decompress(
        bytes,
        turbojpeg::Image {
            pixels: buf.as_mut_slice(),
            width: w,
            pitch: w * 3,
            height: h,
            format: turbojpeg::PixelFormat::RGB,
        },
    )
    .err()
    .map(|e| e.to_string())
}

/// A real photo changed to trigger each warning after which every pixel is still as encoded:
/// libjpeg says so (so each change does what it is meant to), and the photo is rendered whole, to
/// the very pixels of the clean photo.
#[test]
fn each_benign_libjpeg_warning_is_triggered_by_a_real_file_and_kept() {
    let mut junk_before_eoi = AQUA.to_vec();
    let eoi = junk_before_eoi.len() - 2;
    junk_before_eoi.splice(eoi..eoi, [0x12, 0x34, 0x56]);
    let mut jfif_3 = AQUA.to_vec();
    assert_eq!(&jfif_3[6..11], b"JFIF\0");
    jfif_3[11] = 3; // major version 3
                    // libjpeg reads the Adobe transform only when there is no JFIF segment: drop Aqua's.
    let no_jfif = [&AQUA[..2], &AQUA[20..]].concat();
    let adobe_transform_5 = with_segment(&no_jfif, 0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x05");
    // An ICC chunk numbered 0 of 1: libjpeg-turbo reads ICC chunks and calls this one bogus.
    let bad_icc = with_segment(AQUA, 0xE2, b"ICC_PROFILE\0\x00\x01abcdefgh");
    // Junk between two header segments, as in Google's imagetestsuite files.
    let junk_in_header = [&AQUA[..2], b"\x00\x10junk", &AQUA[2..]].concat();
    let settings = Settings::parse("same:fit=2560x1600:png", 1 << 40).unwrap();
    let clean = render(AQUA, &settings).unwrap();
    let cases = [
        (&junk_before_eoi, "extraneous bytes before marker"),
        (&jfif_3, "unknown JFIF revision"),
        (&adobe_transform_5, "Unknown Adobe color transform"),
        (&bad_icc, "bad ICC marker"),
        (&junk_in_header, "extraneous bytes before marker"),
    ];
    for (bytes, expected) in cases {
        let warning = libjpeg_warning(bytes);
        assert!(
            warning.as_deref().is_some_and(|w| w.contains(expected)),
            "expected libjpeg to warn {expected:?}, it said {warning:?}"
        );
        let r = render(bytes, &settings).unwrap_or_else(|e| panic!("{expected}: {e}"));
        assert_eq!((r.width, r.height), (2560, 1600), "{expected}");
        let same = |r: &Rendered| decoded(rendition(r, "same")).to_rgb8().into_raw();
        // The Adobe case has no JFIF segment, which changes nothing libjpeg decodes here.
        assert!(
            same(&r) == same(&clean),
            "{expected}: pixels differ from the clean photo's"
        );
    }
    // The clean photo draws no warning at all, so each case above is the change's doing.
    assert_eq!(libjpeg_warning(AQUA), None);
}

/// A harmless warning early does not hide a corrupt scan after it: the photo with junk in its
/// header and its scan cut short is refused, as the cut photo alone is.
#[test]
fn junk_in_the_header_does_not_hide_a_corrupt_scan() {
    let eoi = AQUA.len() - 2;
    // Half the scan, then the end marker: libjpeg fills the rest with grey and warns.
    let cut = [&AQUA[..eoi / 2], &AQUA[eoi..]].concat();
    let junk_then_cut = [&cut[..2], b"\x00\x10junk", &cut[2..]].concat();
    for bytes in [&cut, &junk_then_cut] {
        let err = render(bytes, &Settings::default())
            .err()
            .expect("a corrupt scan is refused");
        assert!(err.to_string().contains("Corrupt JPEG data"), "{err}");
    }
}

#[test]
fn webp_renditions_are_lossy_vp8_and_look_like_their_original() {
    let settings = Settings::parse("web:width=640:webp:q=80,same:width=640:png", 1 << 40).unwrap();
    let r = render(AQUA, &settings).unwrap();
    let (web, png) = (rendition(&r, "web"), rendition(&r, "same"));
    assert_eq!(&web.bytes[..4], b"RIFF");
    assert_eq!(
        &web.bytes[8..16],
        b"WEBPVP8 ",
        "simple lossy format, not VP8L"
    );
    assert!(
        web.bytes.len() * 4 < png.bytes.len(),
        "a lossy WebP is far smaller than the PNG: {} vs {}",
        web.bytes.len(),
        png.bytes.len()
    );
    let decoded = webp::Decoder::new(&web.bytes).decode().unwrap();
    assert_eq!((decoded.width(), decoded.height()), (640, 400));
    let reference = decoded_rgb(png);
    assert!(!decoded.is_alpha());
    let got: Vec<u8> = decoded.to_vec();
    let db = psnr(&got, &reference);
    assert!(
        db > 32.0,
        "WebP q80 against the lossless rendition: {db:.1} dB"
    );
}

fn decoded_rgb(out: &Output) -> Vec<u8> {
    decoded(out).to_rgb8().into_raw()
}

#[cfg(feature = "avif")]
#[test]
fn avif_renditions_are_avif_in_srgb() {
    let settings = Settings::parse("a:fit=128x128:avif:q=60:speed=10", 1 << 40).unwrap();
    let r = render(AQUA, &settings).unwrap();
    let avif = &r.renditions[0].bytes;
    assert_eq!(&avif[4..12], b"ftypavif");
    // ravif writes BT.709 primaries and the sRGB transfer into the AV1 sequence header, and the
    // container's colr box only when it differs from that default: there must be none here.
    assert!(
        !avif.windows(4).any(|w| w == b"colr"),
        "a colr box other than sRGB"
    );
}

#[test]
fn the_placeholder_is_a_thumbhash_of_the_picture() {
    use base64::Engine;
    // Left half red, right half blue: the hash's average is purple, its aspect 2:1.
    let r = render(&png(red_left_blue_right()), &Settings::default()).unwrap();
    let text = r.placeholder.expect("a placeholder");
    assert!(text.len() < 48, "{text}");
    let hash = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .unwrap();
    let (red, green, blue, alpha) = thumbhash::thumb_hash_to_average_rgba(&hash).unwrap();
    assert!(
        (red - 0.5).abs() < 0.1 && green < 0.1 && (blue - 0.5).abs() < 0.1,
        "{red} {green} {blue}"
    );
    assert!(alpha > 0.99);
    let aspect = thumbhash::thumb_hash_to_approximate_aspect_ratio(&hash).unwrap();
    assert!((aspect - 2.0).abs() < 0.3, "{aspect}");
}

#[test]
fn renditions_that_come_out_the_same_are_encoded_once() {
    // 200x100 fits inside all three, so each keeps the image's size.
    let settings = Settings::parse(
        "thumb:fit=256x256:jpeg,mobile:width=640:jpeg,sharper:width=800:jpeg:q=95,avatar:fit=512x512:png",
        crate::settings::DEFAULT_MAX_PIXELS,
    )
    .unwrap();
    let r = render(&jpeg(&red_left_blue_right()), &settings).unwrap();
    let names: Vec<_> = r.renditions.iter().map(|o| o.spec.name.as_str()).collect();
    assert_eq!(names, ["thumb", "mobile", "sharper", "avatar"]);
    let (thumb, mobile) = (rendition(&r, "thumb"), rendition(&r, "mobile"));
    assert_eq!((thumb.width, thumb.height), (200, 100));
    assert_eq!((mobile.width, mobile.height), (200, 100));
    // One encoding, shared: the same buffer, not two equal ones.
    assert_eq!(thumb.bytes.as_ptr(), mobile.bytes.as_ptr());
    assert_eq!(mobile.spec.name, "mobile");
    // Another quality or format is another encoding.
    let sharper = rendition(&r, "sharper");
    assert_ne!(sharper.bytes, thumb.bytes);
    assert!(rendition(&r, "avatar").bytes.starts_with(b"\x89PNG"));
}

#[test]
fn renditions_of_different_sizes_are_each_encoded() {
    let settings = Settings::parse(
        "small:fit=64x64:jpeg,large:width=640:jpeg",
        crate::settings::DEFAULT_MAX_PIXELS,
    )
    .unwrap();
    let r = render(&jpeg(&red_left_blue_right()), &settings).unwrap();
    let (small, large) = (rendition(&r, "small"), rendition(&r, "large"));
    assert_eq!((small.width, large.width), (64, 200));
    assert_ne!(small.bytes.as_ptr(), large.bytes.as_ptr());
}

/// `picture` as a JPEG by libjpeg-turbo, at 4:2:0 and quality 90, baseline or progressive.
fn turbo_jpeg(picture: &RgbImage, progressive: bool) -> Vec<u8> {
    let mut c = turbojpeg::Compressor::new().unwrap();
    c.set_quality(90).unwrap();
    c.set_subsamp(turbojpeg::Subsamp::Sub2x2).unwrap();
    c.set_progressive(progressive).unwrap();
    c.compress_to_vec(turbojpeg::Image {
        pixels: picture.as_raw().as_slice(),
        width: picture.width() as usize,
        pitch: picture.width() as usize * 3,
        height: picture.height() as usize,
        format: turbojpeg::PixelFormat::RGB,
    })
    .unwrap()
}

#[test]
fn a_progressive_photo_decodes_through_kept_pools_to_the_pixels_of_its_baseline_twin() {
    // 2048x1024 at 4:2:0: the luma's whole-image coefficient buffer alone is 4 MiB, which
    // jpeg_memory.c takes from the kept buffers (and zeroes nothing itself: libjpeg does).
    let picture = textured(2048, 1024).to_rgb8();
    let (baseline, progressive) = (turbo_jpeg(&picture, false), turbo_jpeg(&picture, true));
    let settings = Settings::default();
    let before = jpeg_memory::kept_pools();
    let from_progressive = render(&progressive, &settings).unwrap();
    let after = jpeg_memory::kept_pools();
    assert!(after > before, "no pool came from the kept buffers");
    // Again: the same pools, whatever memory they come from this time.
    let again = render(&progressive, &settings).unwrap();
    // The same coefficients, entropy-coded in one scan or in several: the same renditions.
    let from_baseline = render(&baseline, &settings).unwrap();
    for ((p, a), b) in from_progressive
        .renditions
        .iter()
        .zip(&again.renditions)
        .zip(&from_baseline.renditions)
    {
        assert_eq!(p.bytes, b.bytes, "{}", p.spec.name);
        assert_eq!(a.bytes, b.bytes, "{}, decoded again", p.spec.name);
    }
    assert_eq!(from_progressive.placeholder, from_baseline.placeholder);
}

#[test]
fn the_budget_counts_a_large_pool_with_its_headers() {
    const MIB: u64 = 1 << 20;
    // Small pools are malloc's: their size, with libjpeg's header.
    assert_eq!(jpeg_memory::pool_footprint(1000), 1064);
    // From 64 KiB on a pool comes from the kept buffers, with jpeg_memory.c's header too.
    assert_eq!(jpeg_memory::pool_footprint(64 * 1024 - 65), 64 * 1024 - 1);
    assert_eq!(jpeg_memory::pool_footprint(64 * 1024 - 64), 64 * 1024 + 64);
    assert_eq!(jpeg_memory::pool_footprint(53 * MIB), 53 * MIB + 128);
    assert_eq!(jpeg_memory::pool_footprint(u64::MAX), u64::MAX);
}
