use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use state::ItemTable;

use crate::helpers::{client, eventually, fixture, mails, spawn_binary, PHOTOS};

/// Uploads every photo to a running engine, then SIGKILLs it at once: items are caught between
/// every pair of steps (stored but not processed, processed but not notified, mailed but not
/// marked). Three such crashes, then a clean start must finish everything, one mail per item.
#[tokio::test]
async fn sigkill_mid_flight_then_restart_loses_nothing_and_mails_once() {
    let dir = tempfile::tempdir().unwrap();
    let http = client();
    let mut ids = BTreeSet::new();
    for _round in 0..3 {
        let bin = spawn_binary(dir.path()).await;
        for photo in PHOTOS {
            let resp = http
                .post(format!("http://{}/upload", bin.addr))
                .header("content-type", "image/jpeg")
                .body(fixture(photo))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201);
            let item: Value = resp.json().await.unwrap();
            ids.insert(item["id"].as_str().unwrap().to_owned());
        }
        bin.kill();
    }

    // The crashes did interrupt work: some accepted items had not reached the end.
    {
        let engine = local::Engine::open(local::EngineConfig::new(dir.path())).unwrap();
        let unfinished = engine
            .table
            .list(1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.status != state::Status::Notified)
            .count();
        assert!(
            unfinished > 0,
            "the kills came too late to interrupt anything"
        );
    }

    let bin = spawn_binary(dir.path()).await;
    let url = format!("http://{}/items?limit=1000", bin.addr);
    let items: Vec<Value> = eventually(Duration::from_secs(90), "every item to finish", || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let body: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
            let items = body["items"].as_array()?.clone();
            items
                .iter()
                .all(|i| i["status"] == "notified")
                .then_some(items)
        }
    })
    .await;
    let found: BTreeSet<String> = items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(found, ids, "every accepted upload is still there");

    let mails = mails(dir.path());
    assert_eq!(mails.len(), ids.len(), "one mail per item");
    for id in &ids {
        let naming = mails
            .iter()
            .filter(|m| std::fs::read_to_string(m).unwrap().contains(id.as_str()))
            .count();
        assert_eq!(naming, 1, "{id}");
    }
    bin.kill();
}
