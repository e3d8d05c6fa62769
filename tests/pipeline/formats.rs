//! Every input format reaches `notified` through the engine, by `POST /upload` and by a
//! reservation and its signed PUT: sniffed from the bytes (the declared type is a generic one),
//! stored under its own extension and content type, its size as displayed, and for an animated
//! one its frame count and loop length on the item.

use serde_json::Value;

use crate::helpers::{fixture, spawn_engine, statuses};

struct Sample {
    file: &'static str,
    format: &'static str,
    extension: &'static str,
    content_type: &'static str,
    size: (u64, u64),
    frames: Option<u64>,
}

const SAMPLES: [Sample; 10] = [
    Sample {
        file: "conformance/webp/lossless1.webp",
        format: "webp",
        extension: "webp",
        content_type: "image/webp",
        size: (1000, 307),
        frames: None,
    },
    Sample {
        file: "conformance/webp/random_lossy.webp",
        format: "webp",
        extension: "webp",
        content_type: "image/webp",
        size: (99, 87),
        frames: Some(4),
    },
    Sample {
        file: "conformance/gif/interlaced.gif",
        format: "gif",
        extension: "gif",
        content_type: "image/gif",
        size: (540, 330),
        frames: None,
    },
    Sample {
        file: "conformance/gif/dispose_prev.gif",
        format: "gif",
        extension: "gif",
        content_type: "image/gif",
        size: (100, 100),
        frames: Some(5),
    },
    Sample {
        file: "conformance/avif/Link-U-fox.profile0.8bpc.yuv420.avif",
        format: "avif",
        extension: "avif",
        content_type: "image/avif",
        size: (1204, 800),
        frames: None,
    },
    Sample {
        file: "conformance/avif/star-8bpc.avifs",
        format: "avif",
        extension: "avif",
        content_type: "image/avif",
        size: (159, 159),
        frames: Some(5),
    },
    Sample {
        // Stored 427x640, with irot and imir: shown turned, 640 wide.
        file: "conformance/orientation/rot1mir0.avif",
        format: "avif",
        extension: "avif",
        content_type: "image/avif",
        size: (640, 427),
        frames: None,
    },
    Sample {
        file: "conformance/tiff/hopper_lzw.tif",
        format: "tiff",
        extension: "tif",
        content_type: "image/tiff",
        size: (128, 128),
        frames: None,
    },
    Sample {
        file: "conformance/apng/blend_op_over.png",
        format: "apng",
        extension: "apng",
        content_type: "image/apng",
        size: (128, 64),
        frames: Some(2),
    },
    Sample {
        file: "conformance/jxl/bicycles.jxl",
        format: "jxl",
        extension: "jxl",
        content_type: "image/jxl",
        size: (1024, 631),
        frames: None,
    },
];

fn check(sample: &Sample, item: &Value) {
    let file = sample.file;
    assert_eq!(item["status"], "notified", "{file}: {item}");
    assert_eq!(item["format"], sample.format, "{file}");
    assert_eq!(item["content_type"], sample.content_type, "{file}");
    assert_eq!(
        (item["width"].as_u64(), item["height"].as_u64()),
        (Some(sample.size.0), Some(sample.size.1)),
        "{file}"
    );
    assert_eq!(item["frames"].as_u64(), sample.frames, "{file}: {item}");
    assert_eq!(
        item["duration_ms"].is_u64(),
        sample.frames.is_some(),
        "{file}"
    );
    let thumb = item["renditions"]["thumbnail"].as_str().unwrap();
    assert!(thumb.ends_with("/thumbnail.jpg"), "{file}: {thumb}");
    assert!(
        item["placeholder"].as_str().is_some_and(|p| !p.is_empty()),
        "{file}"
    );
}

/// The samples this build takes: AVIF needs the `avif` feature.
fn samples() -> Vec<&'static Sample> {
    SAMPLES
        .iter()
        .filter(|s| cfg!(feature = "avif") || s.format != "avif")
        .collect()
}

#[tokio::test]
async fn every_format_reaches_notified_by_post_upload() {
    let app = spawn_engine().await;
    let mut ids = Vec::new();
    let samples = samples();
    for sample in &samples {
        // A generic declared type: the bytes decide.
        let resp = app
            .upload(fixture(sample.file), "application/octet-stream")
            .await;
        assert_eq!(resp.status(), 201, "{}", sample.file);
        let item: Value = resp.json().await.unwrap();
        let key = item["object_key"].as_str().unwrap().to_owned();
        assert!(
            key.ends_with(&format!(".{}", sample.extension)),
            "{}: {key}",
            sample.file
        );
        ids.push(item["id"].as_str().unwrap().to_owned());
    }
    app.drain().await;
    for (sample, id) in samples.iter().zip(&ids) {
        let item = app.item(id).await;
        assert_eq!(
            statuses(&item),
            ["uploaded", "processed", "notified"],
            "{}",
            sample.file
        );
        check(sample, &item);
    }
    assert_eq!(app.notices().await.len(), samples.len());
}

#[tokio::test]
async fn every_format_reaches_notified_by_a_signed_put() {
    let app = spawn_engine().await;
    let mut ids = Vec::new();
    let samples = samples();
    for sample in &samples {
        let bytes = fixture(sample.file);
        let reservation = app.reserve_ok(bytes.len(), sample.content_type).await;
        assert_eq!(
            app.put(&reservation, bytes, None).await.status(),
            200,
            "{}",
            sample.file
        );
        ids.push(reservation["id"].as_str().unwrap().to_owned());
    }
    app.drain().await;
    for (sample, id) in samples.iter().zip(&ids) {
        let item = app.item(id).await;
        assert_eq!(
            statuses(&item),
            ["pending", "uploaded", "processed", "notified"],
            "{}",
            sample.file
        );
        check(sample, &item);
    }
}

/// A 12 KB HEIC whose grid lists one 512x512 tile in all 169 cells of a 6656x6656 image (issue
/// 26's hostile grid) reaches `notified` at its full size: decoded once and copied
/// (`imaging/src/heic_tests.rs` counts the decodes and checks every cell).
#[cfg(feature = "heic")]
#[tokio::test]
async fn a_heic_grid_listing_one_tile_169_times_reaches_notified() {
    let app = spawn_engine().await;
    let bytes = imaging::hostile::heic_grid(13, 13, (6656, 6656), false);
    assert!(bytes.len() < 40_000, "{} bytes", bytes.len());
    let id = app.upload_ok(bytes).await;
    app.drain().await;
    let item = app.item(&id).await;
    assert_eq!(item["format"], "heic", "{item}");
    assert_eq!(
        (&item["width"], &item["height"]),
        (&6656.into(), &6656.into()),
        "{item}"
    );
    assert_eq!(statuses(&item), ["uploaded", "processed", "notified"]);
    assert_eq!(app.notices().await.len(), 1);
}
