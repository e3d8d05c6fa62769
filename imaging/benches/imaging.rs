//! `cargo bench -p imaging --features bench`: the hot functions of the process step, on a committed fixture
//! (tests/fixtures/Aqua.jpg, 2560x1600 baseline). `make bench-images` compares the whole step
//! with sharp and Pillow on larger photos.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use imaging::bench;
use imaging::{render, Settings};

const AQUA: &[u8] = include_bytes!("../../tests/fixtures/Aqua.jpg");
const SPRING: &[u8] = include_bytes!("../../tests/fixtures/Spring.png");

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
    c.bench_function("exif/subset", |b| {
        b.iter(|| bench::read_exif(black_box(AQUA)))
    });
}

criterion_group!(benches, imaging);
criterion_main!(benches);
