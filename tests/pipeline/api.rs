use serde_json::Value;

use crate::helpers::{fixture, spawn_engine, spawn_engine_with};

async fn error_of(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn bad_uploads_get_clear_errors_and_store_nothing() {
    let app = spawn_engine_with(|cfg| {
        cfg.parameters
            .insert("MaxUploadBytes".into(), "500000".into());
    })
    .await;
    let (status, error) = error_of(app.upload(Vec::new(), "image/jpeg").await).await;
    assert_eq!(
        (status, error.contains("empty body")),
        (400, true),
        "{error}"
    );

    let (status, error) = error_of(
        app.upload(
            b"BM6\0\0\0\0\0\0\x006\0\0\0(\0\0\0 a bitmap".to_vec(),
            "image/jpeg",
        )
        .await,
    )
    .await;
    assert_eq!(status, 415, "{error}");
    assert!(error.contains("image/bmp"), "{error}");

    let (status, error) = error_of(app.upload(b"just text".to_vec(), "image/png").await).await;
    assert_eq!(status, 415, "{error}");

    let big = vec![0xFFu8; 600_000];
    let (status, error) = error_of(app.upload(big, "image/jpeg").await).await;
    assert_eq!(status, 413, "{error}");
    assert!(error.contains("500000"), "{error}");

    assert!(app.items().await.is_empty(), "nothing was accepted");
    assert!(
        !app.dir.path().join("objects/images/uploads").exists(),
        "no object was written"
    );
}

#[tokio::test]
async fn the_content_type_header_is_not_trusted() {
    let app = spawn_engine().await;
    let resp = app.upload(fixture("Spring.png"), "image/jpeg").await;
    assert_eq!(resp.status(), 201);
    let item: Value = resp.json().await.unwrap();
    assert_eq!(item["content_type"], "image/png");
    assert!(item["object_key"].as_str().unwrap().ends_with(".png"));
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_404() {
    let app = spawn_engine().await;
    for path in [
        "/items/6f1c1a52-0000-4000-8000-000000000000",
        "/items/..%2F..%2Fpipeline.db",
        "/items/not-a-uuid",
        "/nothing-here",
    ] {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    let resp = app
        .http
        .get(app.url("/items?limit=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn an_accepted_file_that_does_not_decode_ends_failed_without_blocking_others() {
    let app = spawn_engine().await;
    let truncated = app.upload_ok(fixture("Aqua.jpg")[..5000].to_vec()).await;
    let good = app.upload_ok(fixture("FreshFlower.jpg")).await;
    app.drain().await;
    let bad = app.item(&truncated).await;
    assert_eq!(bad["status"], "failed", "{bad}");
    assert!(
        bad["error"].as_str().unwrap().contains("truncated"),
        "{bad}"
    );
    assert_eq!(app.item(&good).await["status"], "notified");
    assert_eq!(app.notices().await.len(), 1);
    assert_eq!(
        app.metric("pipeline_errors_total", "process").await,
        0.0,
        "a bad image is not a function error"
    );
}

#[tokio::test]
async fn the_metrics_page_lists_every_series_for_both_functions() {
    let app = spawn_engine().await;
    let text = app.metrics_text().await;
    for name in [
        "pipeline_invocations_total",
        "pipeline_records_delivered_total",
        "pipeline_records_filtered_total",
        "pipeline_errors_total",
        "pipeline_iterator_age_seconds",
    ] {
        for function in ["process", "notice"] {
            assert_eq!(
                crate::helpers::metric(&text, name, function),
                0.0,
                "{name} {function}"
            );
        }
    }
}

/// The value of the series `name{labels}` in Prometheus text, 0 when it is not there yet.
fn sample(text: &str, name: &str, labels: &str) -> f64 {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn the_functions_own_metrics_are_on_the_metrics_page_once_an_upload_is_notified() {
    use pipeline_metrics as pm;
    let app = spawn_engine().await;
    // Engines of this test binary share the process's `metrics` recorder, so counts are compared
    // with those taken before, and other tests' images can only add to them.
    let before = app.metrics_text().await;
    let good = app.upload_ok(fixture("FreshFlower.jpg")).await;
    let truncated = app.upload_ok(fixture("Aqua.jpg")[..5000].to_vec()).await;
    app.drain().await;
    let item = app.item(&good).await;
    assert_eq!(item["status"], "notified", "{item}");
    assert_eq!(app.item(&truncated).await["status"], "failed");
    let renditions = item["renditions"].as_object().unwrap().len() as f64;
    let size = item["size"].as_f64().unwrap();
    let text = app.metrics_text().await;

    for m in pm::ALL {
        assert!(
            text.contains(&format!("# TYPE {} ", m.name)),
            "{} is not on /metrics:\n{text}",
            m.name
        );
    }
    let grew =
        |name: &str, labels: &str| sample(&text, name, labels) - sample(&before, name, labels);
    let process = r#"function="process""#;
    assert!(grew(pm::IMAGES_PROCESSED, process) >= 1.0, "{text}");
    assert!(grew(pm::RENDITIONS, process) >= renditions, "{text}");
    assert!(grew(pm::INPUT_BYTES, process) >= size, "{text}");
    assert!(grew(pm::OUTPUT_BYTES, process) > 0.0, "{text}");
    assert!(
        grew(pm::NOTICES_PUBLISHED, r#"function="notice""#) >= 1.0,
        "{text}"
    );
    let undecodable = r#"function="process",reason="undecodable""#;
    assert!(grew(pm::IMAGES_FAILED, undecodable) >= 1.0, "{text}");
    for function in ["upload", "process", "notice", "ingest", "failures"] {
        let labels = format!(r#"function="{function}""#);
        assert!(
            sample(&text, pm::COLD_STARTS, &labels) >= 1.0,
            "{function}: {text}"
        );
    }
    // The histograms: one observation per image, each a positive number of milliseconds.
    for name in [pm::PROCESSING_MS, pm::MS_PER_MEGAPIXEL] {
        assert!(grew(&format!("{name}_count"), process) >= 1.0, "{text}");
        assert!(grew(&format!("{name}_sum"), process) > 0.0, "{text}");
    }
}

/// A PNG that declares `width`x`height` and holds almost nothing: a decompression bomb's header.
pub fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8-bit RGBA
    chunk(&mut out, b"IHDR", &ihdr);
    // The start of a zlib stream of zeros: a real bomb continues it for gigabytes.
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9C, 0xED, 0xC1, 0x01, 0x0D, 0x00, 0x00],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

#[tokio::test]
async fn a_decompression_bomb_is_accepted_then_fails_fast_without_holding_anything_up() {
    let app = spawn_engine().await;
    let bomb = app.upload_ok(png_bomb(50_000, 50_000)).await;
    let good = app.upload_ok(fixture("GreenMeadow.jpg")).await;
    app.drain().await;
    let item = app.item(&bomb).await;
    assert_eq!(item["status"], "failed", "{item}");
    assert!(item["error"].as_str().unwrap().contains("pixels"), "{item}");
    assert_eq!(app.item(&good).await["status"], "notified");
}

#[tokio::test]
async fn a_40_mb_body_is_refused_with_413_at_the_default_limit() {
    let app = spawn_engine().await;
    let mut body = fixture("Aqua.jpg");
    body.resize(40 * 1024 * 1024, 0);
    let resp = app.upload(body, "image/jpeg").await;
    assert_eq!(resp.status(), 413);
    assert!(app.items().await.is_empty());
}
