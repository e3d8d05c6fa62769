//! Direct uploads of any photo (reserve, then PUT the bytes to the signed URL) and files dropped
//! into the bucket, through the public interfaces: the API, the signed URL, the bucket's
//! notifications, the mailbox. On the AWS backend the signed URL is moto's presigned S3 PUT; moto
//! does not notify, so the test hands the engine the notification S3 would send.

use std::io::Cursor;

use serde_json::{json, Value};

use crate::helpers::{fixture, spawn_engine, statuses, TestEngine};

/// A real photo larger than 10 MB, as a phone's would be: Aqua.jpg (2560x1600) at full detail
/// six times over, mirrored, into a 7680x3200 picture, as a lossless PNG.
fn photo_over_10_mb() -> Vec<u8> {
    let aqua = image::load_from_memory(&fixture("Aqua.jpg"))
        .unwrap()
        .to_rgb8();
    let (w, h) = aqua.dimensions();
    let mut big = image::RgbImage::new(3 * w, 2 * h);
    for (x, y, flip_h, flip_v) in [
        (0, 0, false, false),
        (w, 0, true, false),
        (2 * w, 0, false, false),
        (0, h, false, true),
        (w, h, true, true),
        (2 * w, h, false, true),
    ] {
        let mut tile = aqua.clone();
        if flip_h {
            image::imageops::flip_horizontal_in_place(&mut tile);
        }
        if flip_v {
            image::imageops::flip_vertical_in_place(&mut tile);
        }
        image::imageops::replace(&mut big, &tile, i64::from(x), i64::from(y));
    }
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(big)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    assert!(out.len() > 10_000_000, "{} bytes", out.len());
    out
}

impl TestEngine {
    pub async fn reserve(&self, ask: Value) -> reqwest::Response {
        self.http
            .post(self.url("/uploads"))
            .json(&ask)
            .send()
            .await
            .unwrap()
    }

    /// Reserves room for `body` (as `content_type`); returns the reservation, asserting a 201.
    pub async fn reserve_ok(&self, size: usize, content_type: &str) -> Value {
        let resp = self
            .reserve(json!({ "size": size, "content_type": content_type }))
            .await;
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    }

    /// PUTs `body` to a reservation's URL with its headers (and `content_type` instead of the
    /// signed one if given); on the AWS backend, hands the engine the event S3 would send.
    pub async fn put(
        &self,
        reservation: &Value,
        body: Vec<u8>,
        content_type: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.http.put(reservation["url"].as_str().unwrap());
        for (name, value) in reservation["headers"].as_object().unwrap() {
            req = req.header(name, value.as_str().unwrap());
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let size = body.len() as u64;
        let resp = req.body(body).send().await.unwrap();
        if self.aws.is_some() && resp.status().is_success() {
            let etag = resp.headers()["etag"]
                .to_str()
                .unwrap()
                .trim_matches('"')
                .to_owned();
            let key = format!("incoming/{}", reservation["id"].as_str().unwrap());
            self.engine.object_created(&key, size, &etag).await.unwrap();
        }
        resp
    }
}

#[tokio::test]
async fn a_photo_over_10_mb_reserved_then_put_reaches_notified_with_one_mail() {
    let app = spawn_engine().await;
    let photo = photo_over_10_mb();
    let reservation = app.reserve_ok(photo.len(), "image/png").await;
    assert_eq!(reservation["method"], "PUT");
    assert_eq!(reservation["headers"]["Content-Type"], "image/png");
    assert!(reservation["expires_at"].as_i64().unwrap() > state::now_ms());
    let id = reservation["id"].as_str().unwrap().to_owned();
    assert_eq!(app.item(&id).await["status"], "pending");

    let put = app.put(&reservation, photo.clone(), None).await;
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    app.drain().await;
    let item = app.item(&id).await;
    assert_eq!(
        statuses(&item),
        ["pending", "uploaded", "processed", "notified"]
    );
    assert_eq!(item["size"], photo.len());
    assert_eq!(item["object_key"], format!("incoming/{id}"));
    assert!(
        item.get("ttl").is_none(),
        "the reservation's TTL went: {item}"
    );
    assert_eq!(
        (item["width"].as_u64(), item["height"].as_u64()),
        (Some(7680), Some(3200))
    );
    let notices = app.notices().await;
    assert_eq!(
        notices.iter().filter(|n| n.subject.contains(&id)).count(),
        1
    );
}

#[tokio::test]
async fn reservations_are_checked_before_anything_is_signed_or_stored() {
    let app = spawn_engine().await;
    for (ask, status, says) in [
        (
            json!({"size": 60_000_000, "content_type": "image/jpeg"}),
            413,
            "limit",
        ),
        (
            json!({"content_type": "image/jpeg"}),
            400,
            "size is missing",
        ),
        (
            json!({"size": "big", "content_type": "image/jpeg"}),
            400,
            "not a number",
        ),
        (
            json!({"size": 0, "content_type": "image/jpeg"}),
            400,
            "positive",
        ),
        (
            json!({"size": 1000, "content_type": "image/bmp"}),
            415,
            "image/bmp",
        ),
        (json!({"size": 1000}), 400, "content_type is missing"),
    ] {
        let resp = app.reserve(ask.clone()).await;
        assert_eq!(resp.status(), status, "{ask}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(says),
            "{ask}: {body}"
        );
    }
    let not_json = app
        .http
        .post(app.url("/uploads"))
        .body("size=12")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    assert!(app.items().await.is_empty());
}

#[tokio::test]
async fn bytes_that_are_no_image_end_the_reservation_failed_with_why() {
    let app = spawn_engine().await;
    let text = b"this is not a photo, whatever the type says".to_vec();
    let reservation = app.reserve_ok(text.len(), "image/jpeg").await;
    assert_eq!(app.put(&reservation, text, None).await.status(), 200);
    app.drain().await;
    let item = app.item(reservation["id"].as_str().unwrap()).await;
    assert_eq!(statuses(&item), ["pending", "failed"]);
    assert!(
        item["error"]
            .as_str()
            .unwrap()
            .contains("not an image this pipeline takes (JPEG, PNG, HEIC, WebP, GIF, AVIF, TIFF, APNG or JPEG XL)"),
        "{item}"
    );
    assert!(app.notices().await.is_empty());
}

/// The engine's own signed URLs (embedded backend): S3's answers to a bad, expired or misused
/// signature, and nothing stored for any of them.
#[tokio::test]
async fn a_tampered_expired_or_misused_signed_url_is_refused_and_stores_nothing() {
    let app = spawn_engine().await;
    if app.aws.is_some() {
        return; // moto's presigned URLs are S3's to check
    }
    let body = fixture("FreshFlower.jpg");
    let reservation = app.reserve_ok(body.len(), "image/jpeg").await;
    let url = reservation["url"].as_str().unwrap().to_owned();
    let id = reservation["id"].as_str().unwrap().to_owned();
    let object = app.dir.path().join(format!("objects/images/incoming/{id}"));
    let send = |url: String, ct: &'static str, body: Vec<u8>| {
        let http = app.http.clone();
        async move {
            let resp = http
                .put(url)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap())
        }
    };
    // Tampered: another size, another signature.
    let bigger = url.replace(
        &format!("size={}", body.len()),
        &format!("size={}", body.len() + 1),
    );
    let (status, text) = send(bigger, "image/jpeg", [body.clone(), vec![0]].concat()).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    let sig_at = url.find("signature=").unwrap() + "signature=".len();
    let mut forged = url.clone();
    let flipped = if &url[sig_at..sig_at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    forged.replace_range(sig_at..sig_at + 1, flipped);
    assert_eq!(send(forged, "image/jpeg", body.clone()).await.0, 403);
    // Another type than the one signed.
    let (status, text) = send(url.clone(), "image/png", body.clone()).await;
    assert_eq!(status, 403, "{text}");
    // Another length than the one signed: too short, and too long.
    assert_eq!(
        send(url.clone(), "image/jpeg", body[..100].to_vec())
            .await
            .0,
        403
    );
    // Expired: a grant signed with the engine's own key whose time is past.
    let secret = std::fs::read(app.dir.path().join("secret.key")).unwrap();
    let signer = embedded_adapters::signed::UploadSigner::new(&secret);
    let grant = embedded_adapters::signed::UploadGrant {
        key: format!("incoming/{id}"),
        size: body.len() as u64,
        content_type: "image/jpeg".into(),
        expires_at: state::now_ms() - 1,
    };
    let expired = format!(
        "{}?size={}&type=image%2Fjpeg&expires={}&signature={}",
        url.split('?').next().unwrap(),
        grant.size,
        grant.expires_at,
        signer.sign(&grant)
    );
    let (status, text) = send(expired, "image/jpeg", body.clone()).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("expired"), "{text}");
    // No URL parameters at all.
    assert_eq!(
        send(
            url.split('?').next().unwrap().to_owned(),
            "image/jpeg",
            body.clone()
        )
        .await
        .0,
        403
    );

    assert!(!object.exists(), "nothing was stored");
    app.drain().await;
    assert_eq!(app.item(&id).await["status"], "pending");
    // The right request still works.
    assert_eq!(send(url, "image/jpeg", body).await.0, 200);
    app.drain().await;
    assert_eq!(app.item(&id).await["status"], "notified");
}

#[tokio::test]
async fn the_same_drop_in_twice_makes_one_item_and_one_mail() {
    let app = spawn_engine().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("red flower.jpg");
    std::fs::write(&file, fixture("FreshFlower.jpg")).unwrap();
    let (first, second) = match &app.aws {
        None => {
            let a = local::commands::drop_in(&app.engine, &file).await.unwrap();
            let b = local::commands::drop_in(&app.engine, &file).await.unwrap();
            assert_eq!((a.notified, b.notified), (1, 1));
            assert_eq!(a.key, "ingest/red flower.jpg");
            (a.id, b.id)
        }
        Some(world) => {
            // As `aws s3 cp` would put it, and as S3 would notify it (twice: at least once).
            let body = fixture("FreshFlower.jpg");
            let put = world
                .s3
                .put_object()
                .bucket(&world.bucket)
                .key("ingest/red flower.jpg")
                .body(body.clone().into())
                .send()
                .await
                .unwrap();
            let etag = put.e_tag().unwrap().trim_matches('"').to_owned();
            for _ in 0..2 {
                let n = app
                    .engine
                    .object_created("ingest/red flower.jpg", body.len() as u64, &etag)
                    .await
                    .unwrap();
                assert_eq!(n, 1);
            }
            let id = state::ImageId::derived(&format!(
                "s3://{}/ingest/red flower.jpg#{etag}",
                world.bucket
            ));
            (id.to_string(), id.to_string())
        }
    };
    assert_eq!(first, second, "one id for one object");
    app.drain().await;
    let items = app.items().await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["id"], first.as_str());
    assert_eq!(items[0]["status"], "notified");
    assert_eq!(items[0]["object_key"], "ingest/red flower.jpg");
    assert_eq!(app.notices().await.len(), 1);
    assert_eq!(
        app.metric("pipeline_records_delivered_total", "ingest")
            .await,
        2.0
    );
}

#[tokio::test]
async fn objects_the_rules_do_not_name_invoke_nothing() {
    let app = spawn_engine().await;
    for key in [
        "processed/fb26b789-54d5-436f-91c4-a8183cd39cc2/thumbnail.jpg",
        "uploads/fb26b789-54d5-436f-91c4-a8183cd39cc2.jpg",
        "ingest/notes.txt",
        "elsewhere/photo.jpg",
    ] {
        let n = app.engine.object_created(key, 10, "abc").await.unwrap();
        assert_eq!(n, 0, "{key}");
    }
    app.drain().await;
    assert_eq!(
        app.metric("pipeline_invocations_total", "ingest").await,
        0.0
    );
    assert!(app.items().await.is_empty());
}

#[tokio::test]
async fn an_unused_reservation_expires_and_its_removal_invokes_nothing() {
    let app = spawn_engine().await;
    if app.aws.is_some() {
        return; // DynamoDB's TTL deletes on its own schedule; events/stream-remove-ttl.json shows its record
    }
    let reservation = app.reserve_ok(1234, "image/jpeg").await;
    let id = reservation["id"].as_str().unwrap().to_owned();
    app.drain().await;
    assert_eq!(
        app.engine.expire_reservations().await.unwrap(),
        0,
        "not yet"
    );
    let after_ttl = reservation["expires_at"].as_i64().unwrap() / 1000 + 2 * 3600;
    assert_eq!(
        app.engine.expire_reservations_at(after_ttl).await.unwrap(),
        1
    );
    let gone = app
        .http
        .get(app.url(&format!("/items/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let before = app
        .metric("pipeline_records_filtered_total", "process")
        .await;
    app.drain().await;
    assert_eq!(
        app.metric("pipeline_records_filtered_total", "process")
            .await,
        before + 1.0
    );
    assert_eq!(
        app.metric("pipeline_records_delivered_total", "process")
            .await,
        0.0
    );
    assert_eq!(
        app.metric("pipeline_records_delivered_total", "notice")
            .await,
        0.0
    );
    // The object came too late: nothing is made of it.
    let late = app.put(&reservation, vec![0xFF; 1234], None).await;
    assert!(
        late.status() == 200 || late.status() == 403,
        "{}",
        late.status()
    );
    app.drain().await;
    assert!(app.items().await.is_empty());
}

#[tokio::test]
async fn an_arrival_ingest_gives_up_on_is_marked_and_redriven() {
    let faults = local_engine::faults::Faults::default();
    let app = crate::helpers::spawn_engine_with(|cfg| cfg.faults = faults.clone()).await;
    let photo = fixture("FreshFlower.jpg");
    let reservation = app.reserve_ok(photo.len(), "image/jpeg").await;
    let id = reservation["id"].as_str().unwrap().to_owned();
    // The object arrives while the bucket cannot be read: ingest fails, is retried twice
    // (EventInvokeConfig), then the event goes to dead letters and the reservation says so.
    faults.poison_key(&format!("incoming/{id}"));
    assert_eq!(app.put(&reservation, photo, None).await.status(), 200);
    app.drain().await;
    let stuck = app.item(&id).await;
    assert_eq!(stuck["status"], "pending");
    assert_eq!(stuck["stalled_by"], "ingest");
    assert!(
        stuck["stalled_reason"]
            .as_str()
            .unwrap()
            .contains("retries exhausted"),
        "{stuck}"
    );
    assert_eq!(
        app.metric("pipeline_invocations_total", "ingest").await,
        3.0
    );
    let stalled: Value = app
        .http
        .get(app.url("/items?status=stalled"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stalled["items"][0]["id"], id.as_str());

    faults.heal();
    let report = app.engine.redrive().await.unwrap();
    assert_eq!(report.redriven, 1);
    app.drain().await;
    let item = app.item(&id).await;
    assert_eq!(item["status"], "notified");
    assert!(item.get("stalled_at").is_none());
}

/// A granted URL writes once: after its photo reached `notified`, a replay of the same signed
/// PUT with other bytes of the same length (HTML) gets 412 and stores nothing; the item and its
/// one mail still describe the photo. On the AWS backend the URL is moto's presigned PUT, signed
/// with `If-None-Match: *`, and moto refuses the replay as S3 does.
#[tokio::test]
async fn a_replayed_signed_put_after_notified_gets_412_and_stores_nothing() {
    let app = spawn_engine().await;
    let photo = fixture("FreshFlower.jpg");
    let reservation = app.reserve_ok(photo.len(), "image/jpeg").await;
    assert_eq!(reservation["headers"]["If-None-Match"], "*");
    let id = reservation["id"].as_str().unwrap().to_owned();
    let key = format!("incoming/{id}");
    let put = app.put(&reservation, photo.clone(), None).await;
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    app.drain().await;
    let before = app.item(&id).await;
    assert_eq!(before["status"], "notified");

    let mut html = b"<html><script>alert(1)</script>".to_vec();
    html.resize(photo.len(), b' ');
    let replay = app.put(&reservation, html, None).await;
    assert_eq!(replay.status(), 412);
    assert!(
        replay.text().await.unwrap().contains("PreconditionFailed"),
        "S3's error code"
    );
    app.drain().await;
    assert_eq!(app.object(&key).await, photo, "the photo is still stored");
    let after = app.item(&id).await;
    assert_eq!(after["status"], "notified");
    assert_eq!(after["history"], before["history"]);
    assert_eq!(
        (&after["width"], &after["height"]),
        (&before["width"], &before["height"])
    );
    let notices = app.notices().await;
    assert_eq!(
        notices.iter().filter(|n| n.subject.contains(&id)).count(),
        1
    );
}

/// Sends a PUT as raw HTTP/1.1 on its own connection, all but the body's last byte, and returns
/// the connection; [`finish_put`] sends the last byte and reads the status.
async fn start_put(
    addr: std::net::SocketAddr,
    path_and_query: &str,
    body: &[u8],
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: image/jpeg\r\nIf-None-Match: *\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body[..body.len() - 1]).await.unwrap();
    conn
}

async fn finish_put(mut conn: tokio::net::TcpStream, last: u8) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(&[last]).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    (status, answer)
}

/// Two PUTs to one signed URL at once, a photo and junk of the same length, each sent whole but
/// its last byte before either is finished: exactly one gets 200, the other 412; the stored bytes
/// are the winner's, and the item ends as they say (`notified` for the photo, `failed` for the
/// junk). Three rounds. Embedded only: moto checks `If-None-Match` and then stores, not
/// atomically, where S3 (and the engine) decide atomically.
#[tokio::test]
async fn two_puts_at_once_to_one_url_store_exactly_the_winner_and_the_item_agrees() {
    let app = spawn_engine().await;
    if app.aws.is_some() {
        return;
    }
    let photo = fixture("FreshFlower.jpg");
    let mut junk = b"<html>not a photo</html>".to_vec();
    junk.resize(photo.len(), b'!');
    for round in 0..3 {
        let reservation = app.reserve_ok(photo.len(), "image/jpeg").await;
        let id = reservation["id"].as_str().unwrap().to_owned();
        let url = reservation["url"].as_str().unwrap();
        let path = &url[url.find("/objects/").unwrap()..];
        let (a, b) = tokio::join!(
            start_put(app.addr, path, &photo),
            start_put(app.addr, path, &junk)
        );
        let ((photo_status, photo_answer), (junk_status, junk_answer)) = tokio::join!(
            finish_put(a, *photo.last().unwrap()),
            finish_put(b, *junk.last().unwrap())
        );
        let mut statuses_seen = [photo_status, junk_status];
        statuses_seen.sort();
        assert_eq!(
            statuses_seen,
            [200, 412],
            "round {round}: {photo_answer}\n{junk_answer}"
        );
        let (winner, loser_answer) = if photo_status == 200 {
            (&photo, &junk_answer)
        } else {
            (&junk, &photo_answer)
        };
        assert!(
            loser_answer.contains("PreconditionFailed"),
            "{loser_answer}"
        );
        let key = format!("incoming/{id}");
        assert_eq!(&app.object(&key).await, winner, "round {round}");
        let incoming = app.dir.path().join("objects/images/incoming");
        let parts: Vec<_> = std::fs::read_dir(&incoming)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".part"))
            .collect();
        assert!(
            parts.is_empty(),
            "the loser's temporary file went: {parts:?}"
        );
        app.drain().await;
        let item = app.item(&id).await;
        if winner == &photo {
            assert_eq!(item["status"], "notified", "round {round}: {item}");
            assert_eq!(item["format"], "jpeg");
        } else {
            assert_eq!(item["status"], "failed", "round {round}: {item}");
        }
        assert_eq!(
            statuses(&item)
                .iter()
                .filter(|s| **s == "uploaded" || **s == "failed")
                .count(),
            1,
            "one arrival: {item}"
        );
    }
}

/// Names are data: a file dropped into the bucket whose name holds CR, LF and tabs (a header and a
/// blank line, then text) reaches `notified`, and its mail has exactly the headers the notice
/// function writes and a body with no line the name added: the name is there on one line, its
/// controls escaped. The item keeps the name as it is.
#[tokio::test]
async fn a_dropped_in_name_with_line_breaks_adds_no_line_or_header_to_the_mail() {
    let app = spawn_engine().await;
    // moto's server cannot route a key with a line feed (S3 takes any UTF-8), so on the AWS
    // backend the name breaks its lines with CR and the Unicode line separator instead.
    let (name, escaped) = match &app.aws {
        None => (
            "evil\r\nX-Evil: 1\r\n\r\ninjected text\tand a tab.jpg",
            "evil\\r\\nX-Evil: 1\\r\\n\\r\\ninjected text\\tand a tab.jpg",
        ),
        Some(_) => (
            "evil\rX-Evil: 1\r\u{2028}injected text\tand a tab.jpg",
            "evil\\rX-Evil: 1\\r\\u{2028}injected text\\tand a tab.jpg",
        ),
    };
    let key = format!("ingest/{name}");
    let body = fixture("FreshFlower.jpg");
    let id = match &app.aws {
        None => {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join(name);
            std::fs::write(&file, &body).unwrap();
            let dropped = local::commands::drop_in(&app.engine, &file).await.unwrap();
            assert_eq!(dropped.key, key);
            dropped.id.to_string()
        }
        Some(world) => {
            let put = world
                .s3
                .put_object()
                .bucket(&world.bucket)
                .key(&key)
                .body(body.clone().into())
                .send()
                .await
                .unwrap();
            let etag = put.e_tag().unwrap().trim_matches('"').to_owned();
            app.engine
                .object_created(&key, body.len() as u64, &etag)
                .await
                .unwrap();
            state::ImageId::derived(&format!("s3://{}/{key}#{etag}", world.bucket)).to_string()
        }
    };
    app.drain().await;
    let item = app.item(&id).await;
    assert_eq!(item["status"], "notified", "{item}");
    assert_eq!(item["object_key"], key.as_str(), "the item keeps the name");

    let notices = app.notices().await;
    assert_eq!(notices.len(), 1, "{notices:?}");
    // What the reader sees: the SNS message on AWS; locally the .eml's body, decoded.
    let text = match &app.aws {
        Some(_) => notices[0].text.clone(),
        None => {
            // Its headers end at the first blank line, and none is the client's.
            let mail = std::fs::read_to_string(&crate::helpers::mails(app.dir.path())[0]).unwrap();
            let (headers, body) = mail.split_once("\r\n\r\n").unwrap();
            let names: Vec<&str> = headers
                .split("\r\n")
                .filter(|l| !l.starts_with(' ') && !l.starts_with('\t'))
                .filter_map(|l| l.split_once(':').map(|(n, _)| n))
                .collect();
            let ours = [
                "From",
                "To",
                "Subject",
                "Message-ID",
                "Content-Type",
                "Content-Transfer-Encoding",
                "Date",
                "MIME-Version",
            ];
            assert!(
                names.iter().all(|n| ours.contains(n)),
                "only the notice function's headers: {headers}"
            );
            assert!(!headers.contains("X-Evil"), "{headers}");
            if headers.contains("Content-Transfer-Encoding: quoted-printable") {
                let decoded =
                    quoted_printable::decode(body, quoted_printable::ParseMode::Strict).unwrap();
                String::from_utf8(decoded).unwrap()
            } else {
                body.to_owned()
            }
        }
    };
    let text = text.replace("\r\n", "\n");
    assert!(text.contains("Your image has been processed."), "{text}");
    let original_line = text
        .lines()
        .find(|l| l.starts_with("original: "))
        .unwrap_or_else(|| panic!("no original line in\n{text}"));
    assert!(
        original_line.ends_with(&format!("/ingest/{escaped}")),
        "the name on its own line, escaped: {original_line:?}"
    );
    for line in text.lines() {
        assert!(!line.starts_with("X-Evil"), "an injected header: {text}");
        assert!(!line.starts_with("injected"), "an injected line: {text}");
        assert!(!line.chars().any(state::text::is_unsafe), "{line:?}");
    }
}

/// Reservations are bounded: with `MaxPendingReservations=5`, five reservations are granted and
/// the sixth is 503 with `Retry-After` and a message naming the bound, writing nothing. A
/// reservation whose photo arrived is no longer outstanding, so it frees its room; locally so do
/// expired ones, deleted by the engine's sweep.
#[tokio::test]
async fn reservations_beyond_the_bound_are_503_with_retry_after_and_write_nothing() {
    let app = crate::helpers::spawn_engine_with(|cfg| {
        cfg.parameters
            .insert("MaxPendingReservations".into(), "5".into());
    })
    .await;
    let photo = fixture("FreshFlower.jpg");
    let mut granted = Vec::new();
    for _ in 0..5 {
        granted.push(app.reserve_ok(photo.len(), "image/jpeg").await);
    }
    let pending = |items: Vec<Value>| items.iter().filter(|i| i["status"] == "pending").count();
    let refused = app
        .reserve(json!({ "size": photo.len(), "content_type": "image/jpeg" }))
        .await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "30");
    let answer: Value = refused.json().await.unwrap();
    let message = answer["error"].as_str().unwrap();
    assert!(
        message.contains("5 reservations are outstanding")
            && message.contains("MaxPendingReservations"),
        "{message}"
    );
    assert_eq!(pending(app.items().await), 5, "the refusal wrote nothing");

    // One photo arrives: its reservation is no longer outstanding, and one more is granted.
    let put = app.put(&granted[0], photo.clone(), None).await;
    assert_eq!(put.status(), 200);
    app.drain().await;
    assert_eq!(
        app.item(granted[0]["id"].as_str().unwrap()).await["status"],
        "notified"
    );
    app.reserve_ok(photo.len(), "image/jpeg").await;
    let again = app
        .reserve(json!({ "size": photo.len(), "content_type": "image/jpeg" }))
        .await;
    assert_eq!(again.status(), 503);
    assert_eq!(pending(app.items().await), 5);

    if app.aws.is_none() {
        // Expired reservations are gone, and so is the bound's hold.
        let after_ttl = granted[1]["expires_at"].as_i64().unwrap() / 1000 + 2 * 3600;
        assert_eq!(
            app.engine.expire_reservations_at(after_ttl).await.unwrap(),
            5
        );
        app.reserve_ok(photo.len(), "image/jpeg").await;
    }
}

/// Expiring many reservations goes in small steps: each step deletes at most what it is given
/// (the engine's sweep gives 200), oldest first, and the API answers between steps.
#[tokio::test]
async fn many_reservations_expire_in_small_steps_with_the_api_answering_between() {
    let app = spawn_engine().await;
    if app.aws.is_some() {
        return; // DynamoDB's TTL deletes on AWS
    }
    let mut last = Value::Null;
    for _ in 0..45 {
        last = app.reserve_ok(1234, "image/jpeg").await;
    }
    app.drain().await;
    let after_ttl = last["expires_at"].as_i64().unwrap() / 1000 + 2 * 3600;
    let mut steps = Vec::new();
    loop {
        let n = app
            .engine
            .expire_reservations_step(after_ttl, 20)
            .await
            .unwrap();
        steps.push(n);
        // The API answers between two steps.
        let page = app
            .http
            .get(app.url("/items?status=pending&limit=1"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        if n == 0 {
            break;
        }
    }
    assert_eq!(steps, [20, 20, 5, 0]);
    assert!(app.items().await.is_empty());
}

/// A kill during a PUT leaves its partial file (`incoming/.tmpXXXXXX.part`) for ever, unless the
/// engine removes it: it does as it starts, before it serves, and removes nothing else (an object
/// under `incoming/`, a file named `.part` elsewhere in the bucket).
#[tokio::test]
async fn partial_uploads_a_stop_left_are_removed_when_the_engine_starts() {
    if crate::helpers::aws_selected() {
        return; // S3 keeps no partial PUTs
    }
    let planted = std::sync::Mutex::new(None);
    let app = crate::helpers::spawn_engine_with(|cfg| {
        let bucket = cfg.data_dir.join("objects/images");
        std::fs::create_dir_all(bucket.join("incoming")).unwrap();
        std::fs::create_dir_all(bucket.join("ingest")).unwrap();
        let stale = bucket.join("incoming/.tmpk3J9xQ.part");
        std::fs::write(&stale, vec![0xA5; 1 << 20]).unwrap();
        let object = bucket.join(format!("incoming/{}", state::ImageId::generate()));
        std::fs::write(&object, fixture("FreshFlower.jpg")).unwrap();
        let elsewhere = bucket.join("ingest/holiday.part");
        std::fs::write(&elsewhere, b"a drop-in's own name").unwrap();
        *planted.lock().unwrap() = Some((stale, object, elsewhere));
    })
    .await;
    let (stale, object, elsewhere) = planted.lock().unwrap().take().unwrap();
    assert!(!stale.exists(), "the partial upload was removed");
    assert!(object.exists(), "an object under incoming/ stays");
    assert!(
        elsewhere.exists(),
        "a .part outside incoming/ is not the engine's"
    );
    // The engine serves as before.
    let id = app.upload_ok(fixture("FreshFlower.jpg")).await;
    app.drain().await;
    assert_eq!(app.item(&id).await["status"], "notified");
}
