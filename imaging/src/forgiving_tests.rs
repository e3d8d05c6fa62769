//! Files that are broken where the formats allow it (an ancillary part, a header segment), or
//! valid in ways that were refused (lossless and 12-bit JPEG, HEIC pictures larger than the image
//! shown): each a real file from a public test suite (provenance beside it under
//! tests/fixtures/<suite>/), decoded and compared with a reference decoder's pixels.

use image::DynamicImage;

use super::*;

fn fixture(path: &str) -> Vec<u8> {
    let path = format!("{}/../tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The whole image as a lossless rendition at its own size, and what processing said.
fn rendered_whole(bytes: &[u8]) -> (Rendered, DynamicImage) {
    let header = probe::probe(bytes, &Settings::default()).unwrap();
    let (w, h) = header.displayed_size();
    let settings = Settings::parse(&format!("same:fit={w}x{h}:png"), 1 << 30).unwrap();
    let r = render(bytes, &settings).unwrap();
    let img = image::load_from_memory(&r.renditions[0].bytes).unwrap();
    (r, img)
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0 * 255.0 / mse.max(1e-9)).log10()
}

/// The rendition against a reference decoder's pixels: same size, at least 40 dB.
fn assert_like_reference(name: &str, got: &DynamicImage, reference: &DynamicImage) {
    assert_eq!(got.width(), reference.width(), "{name}: width");
    assert_eq!(got.height(), reference.height(), "{name}: height");
    let (got, want) = if reference.color().has_alpha() {
        (got.to_rgba8().into_raw(), reference.to_rgba8().into_raw())
    } else {
        (got.to_rgb8().into_raw(), reference.to_rgb8().into_raw())
    };
    let db = psnr(&got, &want);
    println!("{name}: {db:.1} dB against the reference");
    assert!(db >= 40.0, "{name}: {db:.1} dB against the reference");
}

fn reference(path: &str) -> DynamicImage {
    image::load_from_memory(&fixture(path)).unwrap()
}

#[test]
fn a_png_whose_iccp_chunk_does_not_inflate_is_decoded_without_its_profile() {
    let bytes = fixture("image-png/broken_iccp.png");
    let (r, img) = rendered_whole(&bytes);
    assert_eq!(
        r.warnings,
        ["PNG iCCP chunk does not inflate (InsufficientInput); profile not used, taken as sRGB"]
    );
    assert_like_reference(
        "broken_iccp.png",
        &img,
        &reference("image-png/broken_iccp.reference.png"),
    );
}

#[test]
fn a_png_colour_chunk_with_a_wrong_crc_is_skipped_with_a_warning() {
    // A wrong CRC on an ancillary chunk drops the chunk (libpng, Chromium): here a gAMA of 1.0,
    // which would brighten the picture, is the one with the wrong CRC.
    let mut png = fixture("image-png/broken_iccp.png");
    let data = 100_000u32.to_be_bytes();
    let mut chunk = 4u32.to_be_bytes().to_vec();
    chunk.extend_from_slice(b"gAMA");
    chunk.extend_from_slice(&data);
    chunk.extend_from_slice(&[0, 0, 0, 0]); // not its CRC
    png.splice(33..33, chunk);
    let (r, img) = rendered_whole(&png);
    assert_eq!(r.warnings[0], "PNG gAMA chunk has a wrong CRC; skipped");
    assert_like_reference(
        "broken_iccp.png + gAMA with a wrong CRC",
        &img,
        &reference("image-png/broken_iccp.reference.png"),
    );
}

#[test]
fn icc_profiles_mis_chunked_over_app2_segments_cost_the_profile_not_the_image() {
    let cases = [
        ("icc_missing_chunk", "chunk 100 of 254 missing"),
        ("icc_chunk_double_seq_no", "chunk 100 repeated"),
        ("icc_chunk_seq_no_0", "a chunk numbered 0"),
        ("icc_chunk_count_mismatch", "chunk 251 of 250"),
    ];
    for (name, why) in cases {
        let bytes = fixture(&format!("jpeg-decoder/{name}.jpeg"));
        let (r, img) = rendered_whole(&bytes);
        assert_eq!(r.warnings.len(), 1, "{name}: {:?}", r.warnings);
        assert!(
            r.warnings[0].starts_with("ICC profile in ")
                && r.warnings[0].contains(&format!("do not make a whole ({why})")),
            "{name}: {:?}",
            r.warnings
        );
        let want = reference(&format!("jpeg-decoder/{name}.reference.png")).to_rgb8();
        let got = img.to_rgb8();
        assert_eq!(got.dimensions(), want.dimensions(), "{name}");
        // One pixel: a PSNR says little; the values themselves, within a level.
        let worst = got
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max();
        assert!(
            worst <= Some(1),
            "{name}: {:?} against {:?}",
            got.as_raw(),
            want.as_raw()
        );
    }
}

#[test]
fn broken_exif_costs_the_exif_not_the_image() {
    let cases = [
        (
            "invalid-exif",
            "EXIF unreadable (Invalid TIFF byte order); skipped",
        ),
        (
            "truncated_exif_dpi",
            "EXIF unreadable (Truncated TIFF header); skipped",
        ),
    ];
    for (name, warning) in cases {
        let bytes = fixture(&format!("pillow/{name}.jpg"));
        let (r, img) = rendered_whole(&bytes);
        assert_eq!(r.warnings, [warning], "{name}");
        assert!(r.exif.is_empty(), "{name}: {:?}", r.exif);
        assert_like_reference(
            name,
            &img,
            &reference(&format!("pillow/{name}.reference.png")),
        );
    }
}

#[test]
fn a_jpeg_whose_app_segment_is_mis_sized_decodes_as_libjpeg_decodes_it() {
    // Its JFXX APP0 segment ends 2 bytes short of the next marker: libjpeg skips them.
    let bytes = fixture("jpeg-decoder/imagetestsuite-4838ece0.jpg");
    assert_eq!(
        state::media::sniff(&bytes).unwrap(),
        state::media::MediaType::Jpeg
    );
    let segments = probe::jpeg_segments(&bytes);
    assert_eq!(segments.junk_bytes, 2);
    let (r, img) = rendered_whole(&bytes);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_like_reference(
        "imagetestsuite-4838ece0.jpg",
        &img,
        &reference("jpeg-decoder/imagetestsuite-4838ece0.reference.png"),
    );
}

#[test]
fn a_lossless_jpeg_is_decoded_whole_where_renditions_would_scale_a_dct_one() {
    // 16-bit gray, SOF3. A 32-pixel thumbnail would have a DCT JPEG decoded at 1/8.
    let bytes = fixture("jpeg-decoder/jpeg_lossless_sel1.jpg");
    let settings = Settings::parse("small:fit=32x32:png,same:fit=256x256:png", 1 << 30).unwrap();
    let header = probe::probe(&bytes, &settings).unwrap();
    let jpeg = header.jpeg.as_ref().unwrap();
    assert!(jpeg.lossless && jpeg.precision == 16 && jpeg.scale_denom == 1);
    let r = render(&bytes, &settings).unwrap();
    assert_eq!((r.decoded_width, r.decoded_height), (256, 256));
    let same = image::load_from_memory(&r.renditions[1].bytes)
        .unwrap()
        .to_luma8();
    // The reference is the 16-bit decode; lossless, so ours is it at 8 bits, rounded.
    let want: Vec<u8> = reference("jpeg-decoder/jpeg_lossless_sel1.png")
        .to_luma16()
        .iter()
        .map(|&v| ((u32::from(v) * 255 + 32767) / 65535) as u8)
        .collect();
    assert_eq!(same.as_raw(), &want);
}

#[test]
fn an_8_bit_lossless_jpeg_of_a_photo_comes_back_exactly() {
    // Made here from a real photo with libjpeg-turbo's lossless mode (SOF3, 8-bit RGB).
    let photo = image::load_from_memory(include_bytes!("../../tests/fixtures/GreenMeadow.jpg"))
        .unwrap()
        .to_rgb8();
    let (w, h) = photo.dimensions();
    let mut compressor = turbojpeg::Compressor::new().unwrap();
    compressor.set_lossless(true).unwrap();
    let jpeg = compressor
        .compress_to_vec(turbojpeg::Image {
            pixels: photo.as_raw().as_slice(),
            width: w as usize,
            pitch: w as usize * 3,
            height: h as usize,
            format: turbojpeg::PixelFormat::RGB,
        })
        .unwrap();
    let header = probe::probe(&jpeg, &Settings::default()).unwrap();
    assert!(header.jpeg.as_ref().unwrap().lossless);
    let (r, img) = rendered_whole(&jpeg);
    assert_eq!((r.decoded_width, r.decoded_height), (w, h));
    assert!(
        img.to_rgb8().as_raw() == photo.as_raw(),
        "not the photo's pixels"
    );
}

#[test]
fn a_12_bit_jpeg_is_decoded_to_8_bits() {
    let bytes = fixture("libjpeg-turbo/monkey12.jpg");
    let header = probe::probe(&bytes, &Settings::default()).unwrap();
    assert_eq!(header.jpeg.as_ref().unwrap().precision, 12);
    let (r, img) = rendered_whole(&bytes);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    // The 16-bit picture it was compressed from, at 8 bits: what a 12-bit decode should show,
    // give or take the compression.
    let original = reference("libjpeg-turbo/monkey16.png").to_rgb16();
    let (w, h) = original.dimensions();
    let original = DynamicImage::ImageRgb8(
        image::RgbImage::from_raw(
            w,
            h,
            original
                .iter()
                .map(|&v| ((u32::from(v) * 255 + 32767) / 65535) as u8)
                .collect(),
        )
        .unwrap(),
    );
    assert_like_reference("monkey12.jpg", &img, &original);
    // 12-bit samples scale in the DCT too: a 20-pixel thumbnail decodes it at 1/8.
    let settings = Settings::parse("tiny:fit=20x20:png", 1 << 30).unwrap();
    let r = render(&bytes, &settings).unwrap();
    assert_eq!(
        (r.decoded_width, r.decoded_height),
        (149u32.div_ceil(8), 227u32.div_ceil(8))
    );
}

#[cfg(feature = "heic")]
#[test]
fn a_10_bit_heic_grid_with_tiles_larger_than_the_image_and_alpha_decodes() {
    let bytes = fixture("pillow-heif/RGBA_10__29x100.heif");
    let header = probe::probe(&bytes, &Settings::default()).unwrap();
    // The decoder is allowed its tiles, which the budget counts.
    assert!(
        header.heic_largest_picture > 29 * 100,
        "{}",
        header.heic_largest_picture
    );
    assert!(header.estimate.decode >= header.heic_largest_picture * 8);
    let (r, img) = rendered_whole(&bytes);
    assert_eq!((r.width, r.height), (29, 100));
    assert!(img.color().has_alpha());
    let ours = img.to_rgba8();
    let libheif = reference("pillow-heif/RGBA_10__29x100.reference.png").to_rgba8();
    // Its rainbow is all chroma, which each decoder upsamples its own way from 4:2:0 (libheif
    // repeats a sample, heifer interpolates): luma and alpha are compared with libheif's, and
    // the colours with the 16-bit picture the file was encoded from, where both decoders stand
    // at the same distance.
    let plane = |img: &image::RgbaImage, f: fn(&[u8]) -> f64| -> Vec<u8> {
        img.pixels().map(|p| f(&p.0).round() as u8).collect()
    };
    let luma =
        |p: &[u8]| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]);
    let alpha = |p: &[u8]| f64::from(p[3]);
    let (luma_db, alpha_db) = (
        psnr(&plane(&ours, luma), &plane(&libheif, luma)),
        psnr(&plane(&ours, alpha), &plane(&libheif, alpha)),
    );
    let source = reference("pillow-heif/RGBA_16__29x100.png").to_rgba16();
    let source: Vec<u8> = source
        .iter()
        .map(|&v| ((u32::from(v) * 255 + 32767) / 65535) as u8)
        .collect();
    let rgb = |img: &image::RgbaImage| -> Vec<u8> {
        img.pixels().flat_map(|p| [p[0], p[1], p[2]]).collect()
    };
    let source_rgb: Vec<u8> = source
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    let (ours_db, libheif_db) = (
        psnr(&rgb(&ours), &source_rgb),
        psnr(&rgb(&libheif), &source_rgb),
    );
    println!(
        "RGBA_10__29x100.heif against libheif: luma {luma_db:.1} dB, alpha {alpha_db:.1} dB; \
         colours against the source: ours {ours_db:.1} dB, libheif's {libheif_db:.1} dB"
    );
    assert!(
        luma_db >= 40.0 && alpha_db >= 40.0,
        "luma {luma_db:.1}, alpha {alpha_db:.1} dB"
    );
    assert!(
        ours_db >= libheif_db - 0.5,
        "{ours_db:.1} dB against libheif's {libheif_db:.1}"
    );
}

#[cfg(feature = "heic")]
#[test]
fn a_heic_cropped_by_clap_is_shown_at_its_cropped_size() {
    let bytes = fixture("libheif/rainbow-451x461.heic");
    let header = probe::probe(&bytes, &Settings::default()).unwrap();
    assert_eq!((header.width, header.height), (452, 462), "ispe");
    let (r, img) = rendered_whole(&bytes);
    assert_eq!((r.width, r.height), (451, 461));
    assert_like_reference(
        "rainbow-451x461.heic",
        &img,
        &reference("libheif/rainbow-451x461.reference.png"),
    );
}

#[cfg(feature = "heic")]
#[test]
fn a_heic_whose_tiles_are_over_the_pixel_cap_is_refused_from_its_header() {
    // The 29x100 grid with a cap over its 2,900 pixels but under its tiles': the probe refuses it
    // before any decode, as it would a declared bomb.
    let bytes = fixture("pillow-heif/RGBA_10__29x100.heif");
    let largest = probe::probe(&bytes, &Settings::default())
        .unwrap()
        .heic_largest_picture;
    let settings = Settings {
        max_pixels: largest - 1,
        ..Settings::default()
    };
    assert!(settings.max_pixels >= 29 * 100);
    let err = probe::probe(&bytes, &settings).err().expect("refused");
    assert!(err.to_string().contains("HEIC codes a picture of"), "{err}");
}

/// A WebP (VP8 or VP8L) given a VP8X header and an `ICCP` chunk of `icc`.
fn webp_with_icc(simple: &[u8], icc: &[u8]) -> Vec<u8> {
    let decoder = image_webp::WebPDecoder::new(std::io::Cursor::new(simple)).unwrap();
    let (w, h) = decoder.dimensions();
    let chunk = |fourcc: &[u8], data: &[u8]| {
        let mut c = fourcc.to_vec();
        c.extend_from_slice(&(data.len() as u32).to_le_bytes());
        c.extend_from_slice(data);
        if data.len() % 2 == 1 {
            c.push(0);
        }
        c
    };
    // The ICC flag, and the alpha flag if the image has alpha.
    let mut vp8x = vec![0x20 | if decoder.has_alpha() { 0x10 } else { 0 }, 0, 0, 0];
    vp8x.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
    vp8x.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
    let mut body = b"WEBP".to_vec();
    body.extend(chunk(b"VP8X", &vp8x));
    body.extend(chunk(b"ICCP", icc));
    body.extend_from_slice(&simple[12..]); // the image chunk as it was
    let mut file = b"RIFF".to_vec();
    file.extend_from_slice(&(body.len() as u32).to_le_bytes());
    file.extend(body);
    file
}

#[test]
fn a_webp_or_tiff_profile_over_the_limit_costs_the_profile_not_the_image() {
    let oversized = vec![0u8; probe::MAX_ICC_BYTES + 1];
    let simple = fixture("conformance/webp/lossless1.webp");
    let (plain, plain_img) = rendered_whole(&simple);
    assert!(plain.warnings.is_empty(), "{:?}", plain.warnings);
    let (r, img) = rendered_whole(&webp_with_icc(&simple, &oversized));
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(
        r.warnings[0].starts_with("ICC profile unreadable (")
            && r.warnings[0].ends_with("taken as sRGB"),
        "{:?}",
        r.warnings
    );
    assert!(
        img.to_rgba8() == plain_img.to_rgba8(),
        "WebP: not decoded as without the chunk"
    );

    let (w, h) = (48u32, 32u32);
    let pixels: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
    let tiff = |icc: Option<&[u8]>| {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut enc = tiff::encoder::TiffEncoder::new(&mut out).unwrap();
        let mut image = enc
            .new_image::<tiff::encoder::colortype::RGB8>(w, h)
            .unwrap();
        if let Some(icc) = icc {
            image
                .encoder()
                .write_tag(tiff::tags::Tag::IccProfile, icc)
                .unwrap();
        }
        image.write_data(&pixels).unwrap();
        out.into_inner()
    };
    let (plain, plain_img) = rendered_whole(&tiff(None));
    assert!(plain.warnings.is_empty(), "{:?}", plain.warnings);
    assert!(plain_img.to_rgb8().into_raw() == pixels);
    let (r, img) = rendered_whole(&tiff(Some(&oversized)));
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(
        r.warnings[0].starts_with("ICC profile unreadable (")
            && r.warnings[0].ends_with("taken as sRGB"),
        "{:?}",
        r.warnings
    );
    assert!(
        img.to_rgb8().into_raw() == pixels,
        "TIFF: not decoded as without the tag"
    );
}
