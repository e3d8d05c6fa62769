//! Admission control: once the stream holds `max_backlog` records the mappings have not read, or
//! more estimated seconds of work than `max_backlog_seconds`, `POST /upload`, `POST /uploads` and
//! a signed PUT answer 503 with Retry-After and store nothing; once the backlog is worked off they
//! are accepted again, and everything accepted before is finished. `flood.rs` measures what a
//! flood of signed PUTs costs a client that uploads now and then.

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
async fn uploads_are_refused_by_their_estimated_work_long_before_the_count() {
    let app = spawn_engine_with(|cfg| {
        cfg.max_backlog_seconds = Duration::from_secs(1);
        cfg.admission_wait = Duration::from_millis(200);
    })
    .await;
    let photo = fixture("FreshFlower.jpg");
    // Processing is held back (the in-process engine's mappings run only when drained): the work
    // accepted stays in the backlog, photo after photo, until it passes a second.
    let mut accepted = Vec::new();
    let refused = loop {
        let resp = app.upload(photo.clone(), "image/jpeg").await;
        if resp.status() == 503 {
            break resp;
        }
        assert_eq!(resp.status(), 201, "accepted while under the bounds");
        let item: Value = resp.json().await.unwrap();
        accepted.push(item["id"].as_str().unwrap().to_owned());
        assert!(accepted.len() < 1000, "never refused");
    };
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    let why = body["error"].as_str().unwrap();
    assert!(why.contains("estimated from their headers"), "{why}");
    app.engine.poll_mirror().await.unwrap();
    let backlog = app.engine.backlog().await.unwrap();
    assert!(
        backlog < 2000 / 4,
        "refused at {backlog} records, far below the count bound"
    );
    // What was refused stored nothing.
    assert_eq!(app.items().await.len(), accepted.len());

    // Worked off, everything accepted is finished, and uploads are accepted again.
    app.drain().await;
    accepted.push(app.upload_ok(photo.clone()).await);
    app.drain().await;
    for id in &accepted {
        assert_eq!(app.item(id).await["status"], "notified", "{id}");
    }
}

#[tokio::test]
async fn a_signed_put_over_the_bound_gets_503_stores_nothing_and_its_url_works_later() {
    if crate::helpers::aws_selected() {
        // On AWS the signed URL is S3's (moto's here): the engine is not on the PUT's path.
        eprintln!(
            "embedded engine only: on the AWS backend a signed PUT goes to S3, not the engine"
        );
    }
    let app = crate::helpers::spawn_embedded_engine_with(|cfg| {
        cfg.max_backlog_seconds = Duration::from_secs(1);
        cfg.admission_wait = Duration::from_millis(200);
    })
    .await;
    let heic = fixture("iphone_grid_1008x756.heic");
    let reservation = app.reserve_ok(heic.len(), "image/heic").await;
    let id = reservation["id"].as_str().unwrap().to_owned();
    let photo = fixture("FreshFlower.jpg");
    let mut uploaded = Vec::new();
    loop {
        let resp = app.upload(photo.clone(), "image/jpeg").await;
        if resp.status() == 503 {
            break;
        }
        let item: Value = resp.json().await.unwrap();
        uploaded.push(item["id"].as_str().unwrap().to_owned());
    }

    let refused = app.put(&reservation, heic.clone(), None).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let text = refused.text().await.unwrap();
    assert!(text.contains("<Code>SlowDown</Code>"), "{text}");
    // Nothing stored: no object, the reservation still pending.
    let incoming = app.dir.path().join("objects/images/incoming");
    let stored: Vec<_> = std::fs::read_dir(&incoming)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(stored.is_empty(), "{stored:?}");
    assert_eq!(app.item(&id).await["status"], "pending");

    // Once the backlog is worked off, the same URL takes the photo.
    app.drain().await;
    let resp = app.put(&reservation, heic.clone(), None).await;
    assert_eq!(resp.status(), 200);
    app.drain().await;
    assert_eq!(app.item(&id).await["status"], "notified");
    assert_eq!(
        std::fs::read(incoming.join(&id)).unwrap(),
        heic,
        "the object is the photo PUT"
    );
    for id in &uploaded {
        assert_eq!(app.item(id).await["status"], "notified", "{id}");
    }
}
