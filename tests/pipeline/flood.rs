//! A flood of signed PUTs against a client that uploads now and then, on the real `uploader serve`
//! (embedded backend: on AWS the PUTs go to S3, not the engine). 120 reservations are made while
//! the engine is idle; four connections then PUT a HEIC to each as fast as they are answered
//! (a refused PUT is tried again at once, as a hostile client would), while a normal client
//! uploads a small photo every 0.5 s for 45 s. The normal client may be refused while the
//! backlog is at its bound, but never for long: its longest run of 503s is at most 10 s, and
//! every upload it got accepted reaches `notified`.
//!
//! `cargo test -p local --features heic --test pipeline flood -- --nocapture` prints the figures.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{client, eventually, fixture, spawn_binary};

const RESERVATIONS: usize = 120;
const FLOODERS: usize = 4;
const RUN: Duration = Duration::from_secs(45);
const EVERY: Duration = Duration::from_millis(500);
const LONGEST_REFUSAL: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_signed_puts_refuses_a_normal_client_for_at_most_ten_seconds() {
    if crate::helpers::aws_selected() {
        eprintln!("flood: runs on the embedded engine (on AWS a signed PUT goes to S3)");
    }
    let dir = tempfile::tempdir().unwrap();
    let engine = spawn_binary(dir.path(), &[]).await;
    let base = format!("http://{}", engine.addr);
    let http = client();
    // The heaviest HEIC of the fixtures: a grid of four 512x512 tiles, 35 KB.
    let heic = fixture("iphone_grid_1008x756.heic");
    let photo = fixture("FreshFlower.jpg");

    let mut reservations = Vec::new();
    for _ in 0..RESERVATIONS {
        let resp = http
            .post(format!("{base}/uploads"))
            .json(&json!({ "size": heic.len(), "content_type": "image/heic" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        reservations.push(resp.json::<Value>().await.unwrap());
    }
    let queue = Arc::new(Mutex::new(reservations));
    let started = Instant::now();
    let stop_at = started + RUN;

    let flooders: Vec<_> = (0..FLOODERS)
        .map(|_| {
            let (queue, heic) = (queue.clone(), heic.clone());
            tokio::spawn(async move {
                // One connection each (a client of its own).
                let http = client();
                let (mut stored, mut refused) = (0usize, 0usize);
                while Instant::now() < stop_at {
                    let Some(reservation) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let mut req = http.put(reservation["url"].as_str().unwrap());
                    for (name, value) in reservation["headers"].as_object().unwrap() {
                        req = req.header(name, value.as_str().unwrap());
                    }
                    let status = req.body(heic.clone()).send().await.unwrap().status();
                    if status == 200 {
                        stored += 1;
                    } else {
                        assert_eq!(status, 503, "a PUT is stored or refused for the backlog");
                        refused += 1;
                        queue.lock().unwrap().insert(0, reservation);
                    }
                }
                (stored, refused)
            })
        })
        .collect();

    // The normal client: one small photo every 0.5 s, one request at a time.
    let mut answers: Vec<(Duration, u16)> = Vec::new();
    let mut accepted = Vec::new();
    let mut next = started;
    while Instant::now() < stop_at {
        tokio::time::sleep_until(next.into()).await;
        next += EVERY;
        let resp = http
            .post(format!("{base}/upload"))
            .header("content-type", "image/jpeg")
            .body(photo.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        answers.push((started.elapsed(), status));
        match status {
            201 => {
                let item: Value = resp.json().await.unwrap();
                accepted.push(item["id"].as_str().unwrap().to_owned());
            }
            503 => {
                assert!(resp.headers().contains_key("retry-after"));
                if std::env::var_os("FLOOD_VERBOSE").is_some() {
                    eprintln!("{:?}: {}", started.elapsed(), resp.text().await.unwrap());
                }
            }
            other => panic!("the normal client got {other}"),
        }
    }
    let (mut stored, mut refused_puts) = (0, 0);
    for f in flooders {
        let (s, r) = f.await.unwrap();
        stored += s;
        refused_puts += r;
    }

    // The longest run of 503s: from the first refusal of a run to the next acceptance (or the end).
    let (mut longest, mut run_start) = (Duration::ZERO, None);
    for &(at, status) in &answers {
        match (status, run_start) {
            (503, None) => run_start = Some(at),
            (201, Some(from)) => {
                longest = longest.max(at - from);
                run_start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = run_start {
        longest = longest.max(started.elapsed() - from);
    }
    let refusals = answers.iter().filter(|(_, s)| *s == 503).count();
    eprintln!(
        "flood: {stored} of {RESERVATIONS} HEIC PUTs stored, {refused_puts} refused; normal client: \
         {} accepted, {refusals} refused, longest run of 503s {:.1} s",
        accepted.len(),
        longest.as_secs_f64()
    );
    assert!(
        longest <= LONGEST_REFUSAL,
        "the normal client was refused for {:.1} s in a row",
        longest.as_secs_f64()
    );
    assert!(!accepted.is_empty());

    // Everything the normal client got accepted is finished.
    for id in &accepted {
        let url = format!("{base}/items/{id}");
        eventually(
            Duration::from_secs(300),
            "the normal client's upload to be notified",
            || {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    let item: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
                    (item["status"] == "notified").then_some(())
                }
            },
        )
        .await;
    }
}
