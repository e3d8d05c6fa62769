use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{
    all_items, client, eventually, fixture, item_at, mail_notices, spawn_binary, upload_jpeg_ok,
    world, PHOTOS,
};

/// Uploads every photo to a running engine, then SIGKILLs it at once: items are caught between
/// every pair of steps (stored but not processed, processed but not notified, mailed but not
/// marked). Three such crashes, then a clean start must finish everything, one mail per item.
/// On AWS, SNS cannot deduplicate: a crash between a publish and its `notified` write sends that
/// email again, so there the bound is what one batch publishes at once, per crash.
#[tokio::test]
async fn sigkill_mid_flight_then_restart_loses_nothing_and_mails_once() {
    let dir = tempfile::tempdir().unwrap();
    let world = world().await;
    let env = world.as_ref().map(|w| w.env()).unwrap_or_default();
    let http = client();
    let mut ids = BTreeSet::new();
    for _round in 0..3 {
        let bin = spawn_binary(dir.path(), &env).await;
        for photo in PHOTOS {
            let base = format!("http://{}", bin.addr);
            ids.insert(upload_jpeg_ok(&http, &base, fixture(photo)).await);
        }
        bin.kill();
    }

    // The crashes did interrupt work: some accepted items had not reached the end.
    {
        let mut cfg = local::engine_config(dir.path().join("inspect"));
        match &world {
            None => cfg.data_dir = dir.path().to_owned(),
            Some(w) => cfg.backend = crate::stand_ins::backend(w).await,
        }
        let engine = local_engine::Engine::open(cfg).await.unwrap();
        let unfinished = local::commands::items(engine.table().as_ref(), state::Selection::All, 0)
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

    let bin = spawn_binary(dir.path(), &env).await;
    let items = all_notified(&bin).await;
    let found: BTreeSet<String> = items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(found, ids, "every accepted upload is still there");

    let (extra, most) = duplicate_notices(&world, dir.path(), &ids).await;
    // On AWS each kill can catch every publish of a batch between SNS and its `notified` write: at
    // most the notices published at once, and one more for an item, a kill.
    let kills = 3;
    let (allowed, allowed_per_item) = match world {
        Some(_) => (kills * notice::CONCURRENCY, kills),
        None => (0, 0),
    };
    assert!(
        extra <= allowed && most <= allowed_per_item,
        "{extra} duplicate notices, {most} for one item (allowed {allowed}, {allowed_per_item} \
         for one item)"
    );
    bin.kill();
}

/// Waits until every item the engine holds is notified; returns them.
async fn all_notified(bin: &crate::helpers::Binary) -> Vec<Value> {
    let http = client();
    let addr = bin.addr;
    eventually(Duration::from_secs(90), "every item to finish", || {
        let http = http.clone();
        async move {
            let items = all_items(&http, addr).await?;
            items
                .iter()
                .all(|i| i["status"] == "notified")
                .then_some(items)
        }
    })
    .await
}

/// Checks every item was notified at least once; returns how many notices were extra, in all and
/// for the item with the most.
async fn duplicate_notices(
    world: &Option<crate::stand_ins::AwsWorld>,
    dir: &std::path::Path,
    ids: &BTreeSet<String>,
) -> (usize, usize) {
    let notices: Vec<String> = match world {
        None => mail_notices(dir).into_iter().map(|n| n.text).collect(),
        Some(w) => w
            .take_notices()
            .await
            .into_iter()
            .map(|(_, text, _)| text)
            .collect(),
    };
    let (mut extra, mut most) = (0, 0);
    for id in ids {
        let naming = notices.iter().filter(|n| n.contains(id.as_str())).count();
        assert!(naming >= 1, "{id} was never notified");
        extra += naming - 1;
        most = most.max(naming - 1);
    }
    assert_eq!(notices.len(), ids.len() + extra, "a notice names no item");
    (extra, most)
}

/// Arms a crash at `point` (its `nth` pass), uploads until the engine dies, restarts it cleanly,
/// and checks that every item in the table ends notified, every 201 is among them, and each is
/// mailed once (on AWS: once more at most, and only for a crash right after a publish).
async fn crash_at(point: local_engine::faults::CrashPoint, nth: u64) {
    let dir = tempfile::tempdir().unwrap();
    let world = world().await;
    let base_env = world.as_ref().map(|w| w.env()).unwrap_or_default();
    let mut armed = base_env.clone();
    armed.push((
        "UPLOADER_CRASH_AT".into(),
        format!("{}:{nth}", point.as_str()),
    ));
    let http = client();

    let mut bin = spawn_binary(dir.path(), &armed).await;
    let mut accepted = BTreeSet::new();
    for photo in PHOTOS.iter().chain(PHOTOS.iter()) {
        let resp = http
            .post(format!("http://{}/upload", bin.addr))
            .header("content-type", "image/jpeg")
            .body(fixture(photo))
            .send()
            .await;
        if let Ok(resp) = resp {
            if resp.status() == 201 {
                let item: Value = resp.json().await.unwrap();
                accepted.insert(item["id"].as_str().unwrap().to_owned());
            }
        }
    }
    eventually(
        Duration::from_secs(60),
        "the drill to crash the engine",
        || {
            let exited = bin.child.try_wait().unwrap().is_some();
            async move { exited.then_some(()) }
        },
    )
    .await;
    drop(bin);

    let bin = spawn_binary(dir.path(), &base_env).await;
    let items = all_notified(&bin).await;
    let found: BTreeSet<String> = items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        accepted.is_subset(&found),
        "{point:?}: an accepted upload was lost"
    );
    assert!(
        !found.is_empty(),
        "{point:?}: nothing was accepted before the crash"
    );

    let (extra, most) = duplicate_notices(&world, dir.path(), &found).await;
    // On AWS a crash sends again every notice whose publish had completed and was not yet marked:
    // one more at most for an item, and at most as many as the notice function publishes at once.
    // The drill's crash takes the whole engine down, so whatever point it is armed at, a notice
    // batch running beside it may be in that gap (AfterPublish only makes it certain). Locally the
    // mailbox deduplicates: none.
    let gap = world.is_some();
    let (allowed, allowed_per_item) = if gap {
        (notice::CONCURRENCY, 1)
    } else {
        (0, 0)
    };
    assert!(
        extra <= allowed && most <= allowed_per_item,
        "{point:?}: {extra} duplicate notices, {most} for one item (allowed {allowed}, \
         {allowed_per_item} for one item)"
    );
    bin.kill();
}

#[tokio::test]
async fn a_crash_right_after_an_object_write_loses_nothing() {
    crash_at(local_engine::faults::CrashPoint::AfterObjectWrite, 3).await;
}

#[tokio::test]
async fn a_crash_right_after_an_item_write_loses_nothing() {
    crash_at(local_engine::faults::CrashPoint::AfterItemWrite, 3).await;
}

#[tokio::test]
async fn a_crash_right_after_a_publish_loses_nothing_and_mails_once_locally() {
    crash_at(local_engine::faults::CrashPoint::AfterPublish, 1).await;
}

#[tokio::test]
async fn a_crash_right_before_a_checkpoint_loses_nothing() {
    crash_at(local_engine::faults::CrashPoint::BeforeCheckpoint, 2).await;
}

/// A poison upload that takes the engine down every time it is handled (the process step aborts
/// on it). Each restart finds the batch that was in flight, counts it as a failed attempt, and
/// after the mapping's retries dead-letters it: the engine stops crash-looping, the item says it
/// was given up on, and every other upload, before and after, is notified once.
#[tokio::test]
async fn a_record_that_aborts_the_engine_is_dead_lettered_after_its_retries_not_crashed_on_forever()
{
    let dir = tempfile::tempdir().unwrap();
    let world = world().await;
    let poison = fixture("FreshFlower.jpg");
    let mut env = world.as_ref().map(|w| w.env()).unwrap_or_default();
    env.push(("UPLOADER_ABORT_ON_SIZE".into(), poison.len().to_string()));
    // Retries that back off from 2 s to a minute are right for a burst, not for a test.
    env.push(("RETRY_BACKOFF".into(), "0.05".into()));
    let http = client();
    // The id, or None when the engine died before its answer was out: the upload can be stored and
    // its record processed (and the engine aborted) before the 201 reaches the client, as on AWS
    // a function can act on a stream record before the API's answer arrives.
    let upload = |addr: std::net::SocketAddr, body: Vec<u8>| {
        let http = http.clone();
        async move {
            let resp = http
                .post(format!("http://{addr}/upload"))
                .header("content-type", "image/jpeg")
                .body(body)
                .send()
                .await
                .ok()?;
            assert_eq!(resp.status(), 201);
            let item: Value = resp.json().await.ok()?;
            Some(item["id"].as_str().unwrap().to_owned())
        }
    };

    let mut bin = spawn_binary(dir.path(), &env).await;
    let before = upload(bin.addr, fixture("Aqua.jpg"))
        .await
        .expect("the engine answers a healthy upload");
    let poison_size = poison.len();
    let mut poisoned = upload(bin.addr, poison).await;
    // Each time the engine dies, start it again on the same data, as a supervisor would.
    let mut restarts = 0;
    let started = std::time::Instant::now();
    let stuck = loop {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the poison was not given up on within 3 minutes ({restarts} restarts, id {poisoned:?})"
        );
        let exited = bin.child.try_wait().unwrap().is_some();
        if exited {
            restarts += 1;
            assert!(restarts <= 12, "still crashing after {restarts} restarts");
            bin = spawn_binary(dir.path(), &env).await;
            continue;
        }
        // Its answer was cut off: it is the item of the poison's size.
        if poisoned.is_none() {
            poisoned = all_items(&http, bin.addr).await.and_then(|items| {
                items
                    .iter()
                    .find(|i| i["size"] == poison_size)
                    .map(|i| i["id"].as_str().unwrap().to_owned())
            });
        }
        let Some(poisoned) = &poisoned else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // None: it died under us; the next round restarts it.
        let item = item_at(&http, bin.addr, poisoned).await.unwrap_or_default();
        if item["stalled_at"].is_i64() {
            break item;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("the poison took the engine down {restarts} times");
    assert!(restarts >= 1, "the poison never took the engine down");
    assert_eq!(stuck["status"], "uploaded");
    assert_eq!(stuck["stalled_by"], "process");
    let why = stuck["stalled_reason"].as_str().unwrap();
    assert!(why.contains("process stopped"), "{why}");

    // The engine stays up now and keeps working.
    let after = upload(bin.addr, fixture("GreenMeadow.jpg"))
        .await
        .expect("the engine answers a healthy upload");
    let items = eventually(Duration::from_secs(60), "the others to be notified", || {
        let http = http.clone();
        let addr = bin.addr;
        async move {
            let items = all_items(&http, addr).await?;
            let done = items.iter().filter(|i| i["status"] == "notified").count();
            (done == 2).then_some(items)
        }
    })
    .await;
    let notified: BTreeSet<&str> = items
        .iter()
        .filter(|i| i["status"] == "notified")
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(notified, BTreeSet::from([before.as_str(), after.as_str()]));
    assert!(bin.child.try_wait().unwrap().is_none(), "the engine is up");
    bin.kill();
}

/// The engine dies right after a PUT's object is in place, before its notification is released:
/// at the next start the held event is released and the photo is ingested, processed and mailed.
#[tokio::test]
async fn a_crash_between_a_signed_put_and_its_notification_loses_nothing() {
    if world().await.is_some() {
        return; // on AWS, S3 itself writes the object and notifies
    }
    let dir = tempfile::tempdir().unwrap();
    let crash = [(
        "UPLOADER_CRASH_AT".to_owned(),
        "after-object-write:1".to_owned(),
    )];
    let mut bin = spawn_binary(dir.path(), &crash).await;
    let http = client();
    let photo = fixture("GreenMeadow.jpg");
    let reservation: Value = http
        .post(format!("http://{}/uploads", bin.addr))
        .json(&serde_json::json!({ "size": photo.len(), "content_type": "image/jpeg" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = reservation["id"].as_str().unwrap().to_owned();
    let put = http
        .put(reservation["url"].as_str().unwrap())
        .header("content-type", "image/jpeg")
        .body(photo)
        .send()
        .await;
    assert!(
        put.is_err() || !put.unwrap().status().is_success(),
        "the engine died first"
    );
    let status = bin.child.wait().unwrap();
    assert!(!status.success(), "aborted at the crash point");
    assert!(
        dir.path()
            .join(format!("objects/images/incoming/{id}"))
            .exists(),
        "the object was in place"
    );
    bin = spawn_binary(dir.path(), &[]).await;
    let addr = bin.addr;
    let item = eventually(Duration::from_secs(60), "the photo to be notified", || {
        let http = http.clone();
        let id = id.clone();
        async move {
            let item = item_at(&http, addr, &id).await?;
            (item["status"] == "notified").then_some(item)
        }
    })
    .await;
    assert_eq!(item["object_key"], format!("incoming/{id}"));
    assert_eq!(mail_notices(dir.path()).len(), 1);
    bin.kill();
}

/// `uploader ingest` drops files into the bucket of a running engine, which makes items of them:
/// one per file however often it is dropped, and none for a file the rules do not name.
#[tokio::test]
async fn uploader_ingest_drops_files_that_a_running_engine_ingests() {
    if world().await.is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = spawn_binary(dir.path(), &[]).await;
    let files = tempfile::tempdir().unwrap();
    let photo = files.path().join("IMG_0001.JPG");
    std::fs::write(&photo, fixture("Aqua.jpg")).unwrap();
    let notes = files.path().join("notes.txt");
    std::fs::write(&notes, "not an image").unwrap();
    let run = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_uploader"))
            .args(["--data-dir"])
            .arg(dir.path())
            .arg("ingest")
            .args([&photo, &notes])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let first = run();
    let again = run();
    assert_eq!(first[0]["key"], "ingest/IMG_0001.JPG");
    assert_eq!(first[0]["notified"], 1);
    assert_eq!(first[1]["notified"], 0, "no rule names .txt");
    assert_eq!(first[0]["id"], again[0]["id"]);
    let id = first[0]["id"].as_str().unwrap().to_owned();
    let http = client();
    let addr = bin.addr;
    eventually(
        Duration::from_secs(60),
        "the drop-in to be notified",
        || {
            let http = http.clone();
            let id = id.clone();
            async move {
                let item = item_at(&http, addr, &id).await?;
                (item["status"] == "notified").then_some(())
            }
        },
    )
    .await;
    let items = all_items(&http, addr).await.unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(mail_notices(dir.path()).len(), 1);
    bin.kill();
}
