use std::time::Duration;

use serde_json::Value;

use crate::helpers::{eventually, fixture, spawn_engine, statuses, PHOTOS};

#[tokio::test]
async fn real_photos_reach_notified_with_renditions_and_one_mail_each() {
    let app = spawn_engine().await;
    let mut ids = Vec::new();
    for photo in PHOTOS {
        ids.push(app.upload_ok(fixture(photo)).await);
    }
    app.drain().await;

    for (id, photo) in ids.iter().zip(PHOTOS) {
        let item = app.item(id).await;
        assert_eq!(item["status"], "notified", "{photo}: {item}");
        assert_eq!(statuses(&item), ["uploaded", "processed", "notified"]);
        let thumb_key = item["renditions"]["thumbnail"].as_str().unwrap();
        assert_eq!(thumb_key, format!("processed/{id}/thumbnail.jpg"));
        let thumb = image::load_from_memory(&app.object(thumb_key).await).unwrap();
        assert!(
            thumb.width() <= 128 && thumb.height() <= 128,
            "{photo}: {}x{}",
            thumb.width(),
            thumb.height()
        );
        assert!(
            thumb.width() == 128 || thumb.height() == 128,
            "{photo}: the thumbnail fills its box"
        );
        assert!(item["width"].as_u64().unwrap() > 1000, "{photo}");
        assert!(item["message_id"].is_string());
    }
    let notices = app.notices().await;
    assert_eq!(notices.len(), PHOTOS.len());
    for id in &ids {
        let found = notices
            .iter()
            .filter(|n| n.text.contains(id.as_str()))
            .count();
        assert_eq!(found, 1, "exactly one notice names {id}");
        assert!(notices
            .iter()
            .any(|n| n.subject == format!("Image processed: {id}")));
    }
    if app.aws.is_none() {
        assert!(
            notices[0].text.contains("To: you@example.com"),
            "{}",
            notices[0].text
        );
    }
}

#[tokio::test]
async fn each_function_is_delivered_only_the_records_it_acts_on() {
    let app = spawn_engine().await;
    let n = 3;
    for _ in 0..n {
        app.upload_ok(fixture("FreshFlower.jpg")).await;
    }
    app.drain().await;
    // Three writes per item (INSERT, ->processed, ->notified); each function gets one of them.
    for function in ["process", "notice"] {
        assert_eq!(
            app.metric("pipeline_records_delivered_total", function)
                .await,
            n as f64,
            "{function}"
        );
        assert_eq!(
            app.metric("pipeline_records_filtered_total", function)
                .await,
            2.0 * n as f64,
            "{function}"
        );
        assert_eq!(
            app.metric("pipeline_errors_total", function).await,
            0.0,
            "{function}"
        );
        assert!(app.metric("pipeline_invocations_total", function).await >= 1.0);
    }
}

#[tokio::test]
async fn replaying_the_whole_stream_three_times_changes_nothing_and_sends_no_mail() {
    let app = spawn_engine().await;
    for photo in PHOTOS {
        app.upload_ok(fixture(photo)).await;
    }
    // One that fails, so replays also meet a failed item.
    app.upload_ok(fixture("Aqua.jpg")[..4000].to_vec()).await;
    app.drain().await;
    // Links are signed afresh on every read (presigned on AWS): compare the items themselves.
    let without_urls = |items: Vec<Value>| -> Vec<Value> {
        items
            .into_iter()
            .map(|mut i| {
                i.as_object_mut().unwrap().remove("urls");
                i
            })
            .collect()
    };
    let before = without_urls(app.items().await);
    let notices = app.notices().await;
    assert_eq!(notices.len(), PHOTOS.len());
    for round in 1..=3 {
        app.engine.stream().reset_checkpoints(true).await.unwrap();
        app.drain().await;
        assert_eq!(
            without_urls(app.items().await),
            before,
            "round {round}: items changed"
        );
        assert_eq!(
            app.notices().await,
            notices,
            "round {round}: notices changed"
        );
    }
    // Replays were delivered (so the test did replay), and every one was a no-op.
    let delivered = app
        .metric("pipeline_records_delivered_total", "process")
        .await;
    assert_eq!(delivered, 4.0 * (PHOTOS.len() + 1) as f64);
}

#[tokio::test]
async fn a_running_engine_notices_uploads_without_being_told() {
    // The serve loop (not drain) must pick up new records on its own.
    let dir = tempfile::tempdir().unwrap();
    let world = crate::helpers::world().await;
    let env = world.as_ref().map(|w| w.env()).unwrap_or_default();
    let bin = crate::helpers::spawn_binary(dir.path(), &env).await;
    let http = crate::helpers::client();
    let resp = http
        .post(format!("http://{}/upload", bin.addr))
        .header("content-type", "image/jpeg")
        .body(fixture("GreenMeadow.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("http://{}/items/{id}", bin.addr);
    eventually(Duration::from_secs(30), "the item to be notified", || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let item: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
            (item["status"] == "notified").then_some(())
        }
    })
    .await;
    match &world {
        None => assert_eq!(crate::helpers::mails(dir.path()).len(), 1),
        Some(w) => assert_eq!(w.take_notices().await.len(), 1),
    }
}
