//! Admission control: once the stream holds `max_backlog` records the mappings have not read, or
//! more seconds of work than `max_backlog_seconds` at the rate they read it, `POST /upload` and
//! `POST /uploads` answer 503 with Retry-After and store nothing; once the backlog is worked off
//! they are accepted again, and everything accepted before is finished.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{eventually, fixture, spawn_engine_with, TestEngine};

const BOUND: u64 = 2;

/// The backlog once the engine has seen at least `at_least` records (on AWS the mirror copies
/// DynamoDB's stream when polled; embedded, the first read already counts everything).
async fn backlog_reaching(app: &TestEngine, at_least: u64) -> u64 {
    eventually(
        Duration::from_secs(30),
        "the backlog to count the uploads",
        || async {
            app.engine.poll_mirror().await.unwrap();
            let backlog = app.engine.backlog().await.unwrap();
            (backlog >= at_least).then_some(backlog)
        },
    )
    .await
}

/// FreshFlower.jpg at 64x48: a hundred and more of them are processed in moments, even by a test
/// build.
fn tiny_jpeg() -> Vec<u8> {
    let small = image::load_from_memory(&fixture("FreshFlower.jpg"))
        .unwrap()
        .thumbnail(64, 48)
        .to_rgb8();
    let mut jpeg = std::io::Cursor::new(Vec::new());
    small.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
    jpeg.into_inner()
}

async fn assert_throttled(resp: reqwest::Response) {
    assert_eq!(resp.status(), 503);
    let retry_after: u64 = resp
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "Retry-After: {retry_after}");
    let body: Value = resp.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("backlog") || error.contains("accepted work"),
        "{error}"
    );
}

#[tokio::test]
async fn uploads_past_the_backlog_bound_get_503_and_are_accepted_again_once_it_drains() {
    // An in-process engine's mappings run only when drained: processing is held back until then.
    let app = spawn_engine_with(|cfg| cfg.max_backlog = BOUND).await;
    let photo = fixture("FreshFlower.jpg");

    // Each upload writes one record (its INSERT), read by no mapping yet.
    let mut accepted = Vec::new();
    for n in 1..=BOUND {
        accepted.push(app.upload_ok(photo.clone()).await);
        backlog_reaching(&app, n).await;
    }
    let backlog = app.engine.backlog().await.unwrap();
    assert_eq!(backlog, BOUND, "one record per upload");

    // At the bound: both POST routes are refused before their bodies are read.
    assert_throttled(app.upload(photo.clone(), "image/jpeg").await).await;
    assert_throttled(
        app.reserve(json!({ "size": photo.len(), "content_type": "image/jpeg" }))
            .await,
    )
    .await;
    assert_eq!(
        app.metric("pipeline_throttles_total", "upload").await,
        2.0,
        "each refusal is counted"
    );
    // Refused requests stored nothing: no item, no object, no stream record.
    app.engine.poll_mirror().await.unwrap();
    assert_eq!(app.engine.backlog().await.unwrap(), BOUND);
    let ids: Vec<String> = app
        .items()
        .await
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), accepted.len(), "{ids:?}");
    if app.aws.is_none() {
        let objects = std::fs::read_dir(app.dir.path().join("objects/images/uploads"))
            .unwrap()
            .count();
        assert_eq!(objects, accepted.len(), "one object per accepted upload");
    }
    // Reading is not refused.
    let resp = app.http.get(app.url("/items")).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    // The backlog is worked off; then uploads are accepted again.
    app.drain().await;
    assert_eq!(app.engine.backlog().await.unwrap(), 0);
    accepted.push(app.upload_ok(photo.clone()).await);
    app.drain().await;
    for id in &accepted {
        assert_eq!(app.item(id).await["status"], "notified", "{id}");
    }
    assert_eq!(app.notices().await.len(), accepted.len(), "one notice each");
    assert_eq!(app.metric("pipeline_throttles_total", "upload").await, 2.0);
}

#[tokio::test]
async fn a_backlog_nothing_is_reading_is_refused_by_the_seconds_bound_long_before_the_count() {
    use local_engine::admission::MIN_RECORDS_FOR_SECONDS;
    let app = spawn_engine_with(|cfg| cfg.max_backlog_seconds = Duration::from_secs(1)).await;
    let photo = tiny_jpeg();
    for _ in 0..MIN_RECORDS_FOR_SECONDS {
        app.upload_ok(photo.clone()).await;
    }
    backlog_reaching(&app, MIN_RECORDS_FOR_SECONDS).await;

    // Processing is held back, so the stream is read at 0 records/s: infinite seconds of work. The
    // engine says so once it has watched the rate for long enough (half a second); until then the
    // count (2000) is the only bound.
    let refused = eventually(
        Duration::from_secs(30),
        "an upload to be refused",
        || async {
            let resp = app.upload(photo.clone(), "image/jpeg").await;
            if resp.status() == 503 {
                return Some(resp);
            }
            assert_eq!(resp.status(), 201, "accepted while under the bounds");
            None
        },
    )
    .await;
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    let why = body["error"].as_str().unwrap();
    assert!(why.contains("has not read any"), "{why}");
    app.engine.poll_mirror().await.unwrap();
    let backlog = app.engine.backlog().await.unwrap();
    assert!(
        backlog < 2000 / 4,
        "refused at {backlog} records, far below the count bound"
    );

    // Worked off, everything accepted is finished, and uploads are accepted again.
    app.drain().await;
    let id = app.upload_ok(photo.clone()).await;
    app.drain().await;
    assert_eq!(app.item(&id).await["status"], "notified");
    let items = app.items().await;
    assert!(
        items.len() as u64 > MIN_RECORDS_FOR_SECONDS,
        "{}",
        items.len()
    );
    for item in &items {
        assert_eq!(item["status"], "notified", "{}", item["id"]);
    }
}
