//! Ports failing for a while: transient outages are retried until the work is done, once; a record
//! that keeps failing goes to the dead-letter store after the retry policy, holds up nothing else,
//! and `redrive` finishes it once the fault is gone.

use local_engine::faults::Faults;
use serde_json::Value;

use crate::helpers::{fixture, spawn_engine_with, TestEngine, PHOTOS};

async fn engine_with(faults: &Faults) -> TestEngine {
    let faults = faults.clone();
    spawn_engine_with(move |cfg| cfg.faults = faults).await
}

async fn upload_all(app: &TestEngine) -> Vec<String> {
    let mut ids = Vec::new();
    for photo in PHOTOS {
        ids.push(app.upload_ok(fixture(photo)).await);
    }
    ids
}

async fn assert_all_notified_once(app: &TestEngine, ids: &[String]) {
    for id in ids {
        assert_eq!(app.item(id).await["status"], "notified", "{id}");
    }
    let notices = app.notices().await;
    for id in ids {
        assert_eq!(
            notices
                .iter()
                .filter(|n| n.text.contains(id.as_str()))
                .count(),
            1,
            "{id}"
        );
    }
    assert!(app.engine.stream().dead_letters().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_object_store_outage_is_retried_until_every_item_is_done() {
    let faults = Faults::default();
    let app = engine_with(&faults).await;
    let ids = upload_all(&app).await;
    faults.fail_store(3);
    app.drain().await;
    assert_all_notified_once(&app, &ids).await;
    assert!(app.metric("pipeline_errors_total", "process").await >= 1.0);
}

#[tokio::test]
async fn a_table_outage_is_retried_until_every_item_is_done() {
    let faults = Faults::default();
    let app = engine_with(&faults).await;
    let ids = upload_all(&app).await;
    faults.fail_table(4);
    app.drain().await;
    assert_all_notified_once(&app, &ids).await;
}

#[tokio::test]
async fn a_notifier_outage_is_retried_and_still_mails_once() {
    let faults = Faults::default();
    let app = engine_with(&faults).await;
    let ids = upload_all(&app).await;
    faults.fail_notifier(5);
    app.drain().await;
    assert_all_notified_once(&app, &ids).await;
    assert!(app.metric("pipeline_errors_total", "notice").await >= 1.0);
}

#[tokio::test]
async fn an_upload_during_an_outage_is_refused_with_503_and_leaves_nothing() {
    let faults = Faults::default();
    let app = engine_with(&faults).await;
    faults.fail_table(1);
    let resp = app.upload(fixture("FreshFlower.jpg"), "image/jpeg").await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("try again"),
        "{body}"
    );
    assert!(app.items().await.is_empty());
    // The client's retry goes through.
    app.upload_ok(fixture("FreshFlower.jpg")).await;
}

#[tokio::test]
async fn an_error_body_names_no_filesystem_path() {
    let app = crate::helpers::spawn_engine().await;
    if app.aws.is_some() {
        return; // the bucket is S3 there: no folder to break
    }
    // Where the originals go is a file, not a folder: every write of one fails, and the store's
    // error names the path it could not create.
    let bucket = app.dir.path().join("objects/images");
    std::fs::create_dir_all(&bucket).unwrap();
    std::fs::write(bucket.join("uploads"), b"in the way").unwrap();
    let resp = app.upload(fixture("FreshFlower.jpg"), "image/jpeg").await;
    assert_eq!(resp.status(), 503);
    let text = resp.text().await.unwrap();
    let dir = app.dir.path().display().to_string();
    assert!(
        !text.contains(&dir) && !text.contains("/objects/"),
        "{text}"
    );
    assert!(text.contains("try again"), "{text}");
}

#[tokio::test]
async fn a_poison_item_is_dead_lettered_without_holding_up_the_others_then_redriven() {
    let faults = Faults::default();
    let app = engine_with(&faults).await;
    let ids = upload_all(&app).await;
    let poison = ids[1].clone();
    faults.poison_key(&poison);
    app.drain().await;

    for id in ids.iter().filter(|id| **id != poison) {
        assert_eq!(app.item(id).await["status"], "notified", "{id} was held up");
    }
    assert_eq!(app.item(&poison).await["status"], "uploaded");
    let letters = app.engine.stream().dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].record["dynamodb"]["Keys"]["id"]["S"],
        poison.as_str()
    );
    assert!(
        letters[0].mapping.starts_with("ProcessFunction"),
        "{}",
        letters[0].mapping
    );
    assert_eq!(
        app.metric("pipeline_dead_letters_total", "process").await,
        1.0
    );

    // The item says it was given up on: when, by which function, why. The template's `failures`
    // function marked it, reading the failure queue as it does on AWS.
    assert!(app.metric("pipeline_invocations_total", "failures").await >= 1.0);
    let stuck = app.item(&poison).await;
    assert_eq!(stuck["stalled_by"], "process");
    assert!(stuck["stalled_at"].as_i64().unwrap() > 0);
    let why = stuck["stalled_reason"].as_str().unwrap();
    assert!(why.contains("retries exhausted"), "{why}");

    // A redrive while the fault lasts re-offers the item; it fails again and is marked again.
    let again = app.engine.redrive().await.unwrap();
    assert_eq!((again.redriven, again.moved_on), (1, 0));
    assert!(app.engine.stream().dead_letters().await.unwrap().is_empty());
    app.drain().await;
    assert_eq!(app.item(&poison).await["stalled_by"], "process");
    assert_eq!(app.engine.stream().dead_letters().await.unwrap().len(), 1);

    // Fixed, then redriven: it moves on, and the mark goes with the transition.
    faults.heal();
    let report = app.engine.redrive().await.unwrap();
    assert_eq!((report.redriven, report.moved_on), (1, 0));
    app.drain().await;
    assert_all_notified_once(&app, &ids).await;
    let done = app.item(&poison).await;
    assert!(done.get("stalled_at").is_none(), "{done}");
}
