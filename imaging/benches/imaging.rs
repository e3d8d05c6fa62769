//! `cargo bench -p imaging --features bench`: the hot functions of the process step, on a committed fixture
//! (tests/fixtures/Aqua.jpg, 2560x1600 baseline). `make bench-images` compares the whole step
//! with sharp and Pillow on larger photos.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use imaging::bench;
use imaging::{render, Settings};

const AQUA: &[u8] = include_bytes!("../../tests/fixtures/Aqua.jpg");
const SPRING: &[u8] = include_bytes!("../../tests/fixtures/Spring.png");
/// A LUT-based profile (the ICC's sRGB v4): converted by LittleCMS.
const LUT_PROFILE: &[u8] = include_bytes!("../../tests/fixtures/icc/sRGB_v4_ICC_preference.icc");

fn imaging(c: &mut Criterion) {
    let settings = Settings::default();
    c.bench_function("render/jpeg 2560x1600", |b| {
        b.iter(|| render(black_box(AQUA), &settings).unwrap())
    });
    c.bench_function("render/png 1600x1200 rgba", |b| {
        b.iter(|| render(black_box(SPRING), &settings).unwrap())
    });
    for denom in [1, 2, 4, 8] {
        c.bench_function(&format!("decode/jpeg at 1/{denom}"), |b| {
            b.iter(|| bench::decode_jpeg_scaled(black_box(AQUA), denom).unwrap())
        });
    }
    // The pure-Rust alternative: jpeg-decoder's scale() picks the same DCT scales.
    for (denom, size) in [(1, (2560, 1600)), (4, (640, 400))] {
        c.bench_function(&format!("decode/jpeg-decoder at 1/{denom}"), |b| {
            b.iter(|| {
                let mut d = jpeg_decoder::Decoder::new(black_box(AQUA));
                d.read_info().unwrap();
                d.scale(size.0, size.1).unwrap();
                d.decode().unwrap()
            })
        });
    }
    let half = bench::decode_jpeg_scaled(AQUA, 2).unwrap();
    c.bench_function("resize/lanczos3 1280x800 -> 640x400", |b| {
        b.iter(|| bench::resize(black_box(&half), (640, 400)).unwrap())
    });
    c.bench_function("resize/lanczos3 1280x800 -> 128x80", |b| {
        b.iter(|| bench::resize(black_box(&half), (128, 80)).unwrap())
    });
    let mobile = bench::resize(&half, (640, 400)).unwrap();
    c.bench_function("encode/jpeg q80 640x400", |b| {
        b.iter(|| bench::encode_jpeg(black_box(&mobile)).unwrap())
    });
    let avatar = bench::resize(&half, (512, 320)).unwrap();
    c.bench_function("encode/png fast 512x320", |b| {
        b.iter(|| bench::encode_png(black_box(&avatar)).unwrap())
    });
    // What a profile costs a photo: the whole step with a LUT profile (LittleCMS) and with a
    // matrix one (moxcms), and the conversion alone on a whole 4 MP decode, by each engine.
    let p3 = moxcms::ColorProfile::new_display_p3().encode().unwrap();
    let with_lut = bench::with_icc_profile(AQUA, LUT_PROFILE);
    let with_p3 = bench::with_icc_profile(AQUA, &p3);
    c.bench_function("render/jpeg 2560x1600 + LUT profile (LittleCMS)", |b| {
        b.iter(|| render(black_box(&with_lut), &settings).unwrap())
    });
    c.bench_function("render/jpeg 2560x1600 + Display P3 (moxcms)", |b| {
        b.iter(|| render(black_box(&with_p3), &settings).unwrap())
    });
    let whole = bench::decode_jpeg_scaled(AQUA, 1).unwrap();
    let lut = bench::rgb_conversion(&with_lut).expect("a conversion");
    c.bench_function("colour/4 MP through a LUT profile: LittleCMS", |b| {
        b.iter_batched(
            || whole.clone(),
            |p| bench::to_srgb(p, &lut).unwrap(),
            BatchSize::LargeInput,
        )
    });
    let moxcms_lut = moxcms::ColorProfile::new_from_slice(LUT_PROFILE)
        .unwrap()
        .create_transform_8bit(
            moxcms::Layout::Rgb,
            &moxcms::ColorProfile::new_srgb(),
            moxcms::Layout::Rgb,
            moxcms::TransformOptions {
                rendering_intent: moxcms::RenderingIntent::RelativeColorimetric,
                ..Default::default()
            },
        )
        .unwrap();
    let mut out = vec![0u8; whole.buf.len()];
    c.bench_function("colour/4 MP through a LUT profile: moxcms", |b| {
        b.iter(|| {
            moxcms_lut
                .transform(black_box(&whole.buf), &mut out)
                .unwrap()
        })
    });
    let matrix = bench::rgb_conversion(&with_p3).expect("a conversion");
    c.bench_function("colour/4 MP through Display P3: moxcms", |b| {
        b.iter_batched(
            || whole.clone(),
            |p| bench::to_srgb(p, &matrix).unwrap(),
            BatchSize::LargeInput,
        )
    });
    c.bench_function("exif/subset", |b| {
        b.iter(|| bench::read_exif(black_box(AQUA)))
    });
}

criterion_group!(benches, imaging);
criterion_main!(benches);
