//! `GET /objects/<key>`, the local twin of S3's presigned GET links in item responses: the right
//! type, ETag and cache headers for what the pipeline wrote; nothing outside the bucket's folder,
//! however the path is spelled; nothing written through it. (The AWS backend links to S3 instead,
//! so these run on the embedded backend only.)

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{aws_selected, fixture, spawn_engine_with, TestEngine};

/// A rendition of every format the local store can be asked for, JPEG, PNG and WebP.
const RENDITIONS: &str = "thumbnail:fit=128x128:jpeg,avatar:fit=64x64:png,small:width=96:webp";

fn embedded_only() -> bool {
    if aws_selected() {
        eprintln!(
            "skipped: GET /objects is the embedded backend's; on AWS links are presigned S3 URLs"
        );
    }
    !aws_selected()
}

/// One request sent byte for byte as written (no client normalises the path), and the answer's
/// status and body.
async fn raw_request(app: &TestEngine, method: &str, path: &str) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

/// An engine with a processed JPEG and PNG (each with a JPEG, PNG and WebP rendition); returns
/// both items as `GET /items/{id}` shows them.
async fn processed_items() -> (TestEngine, Vec<Value>) {
    let app = spawn_engine_with(|cfg| {
        cfg.parameters
            .insert("Renditions".into(), RENDITIONS.into());
    })
    .await;
    let jpeg = app.upload_ok(fixture("FreshFlower.jpg")).await;
    let png = app.upload_ok(fixture("Spring.png")).await;
    app.drain().await;
    let mut items = Vec::new();
    for id in [jpeg, png] {
        let item = app.item(&id).await;
        assert_eq!(item["status"], "notified", "{item}");
        items.push(item);
    }
    (app, items)
}

#[tokio::test]
async fn links_serve_each_object_with_its_type_etag_and_cache_headers() {
    if !embedded_only() {
        return;
    }
    let (app, items) = processed_items().await;
    let mut served = Vec::new();
    for item in &items {
        let urls = &item["urls"];
        let mut links = vec![(
            item["object_key"].as_str().unwrap().to_owned(),
            urls["original"].as_str().unwrap().to_owned(),
        )];
        for (name, key) in item["renditions"].as_object().unwrap() {
            let url = urls["renditions"][name].as_str().unwrap();
            links.push((key.as_str().unwrap().to_owned(), url.to_owned()));
        }
        assert_eq!(links.len(), 4, "the original and three renditions");
        served.extend(links);
    }
    for (key, url) in &served {
        assert_eq!(*url, app.url(&format!("/objects/{key}")), "absolute link");
        let want_type = match key.rsplit_once('.').unwrap().1 {
            "jpg" => "image/jpeg",
            "png" => "image/png",
            "webp" => "image/webp",
            other => panic!("unexpected extension {other} in {key}"),
        };
        let resp = app.http.get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{key}");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_else(|| panic!("{key}: no {name}"))
        };
        assert_eq!(header("content-type"), want_type, "{key}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{key}");
        let cache = header("cache-control");
        assert!(cache.contains("max-age="), "{key}: {cache}");
        assert!(cache.contains("private"), "{key}: {cache}");
        let etag = header("etag");
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
            "a strong ETag: {etag}"
        );
        let body = resp.bytes().await.unwrap();
        assert_eq!(
            body.to_vec(),
            app.object(key).await,
            "{key}: the stored bytes"
        );
        assert!(state::media::sniff(&body).is_ok() || want_type == "image/webp");

        // Conditional requests: the same ETag (or `*`) is 304 with no body, another is 200.
        for (tag, want) in [(etag.as_str(), 304), ("\"not-it\"", 200), ("*", 304)] {
            let resp = app
                .http
                .get(url)
                .header("if-none-match", tag)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), want, "{key}, If-None-Match: {tag}");
            if want == 304 {
                assert_eq!(resp.headers()["etag"].to_str().unwrap(), etag);
                assert!(resp.headers().contains_key("cache-control"));
                assert!(resp.bytes().await.unwrap().is_empty(), "304 has no body");
            }
        }
        let listed = format!("\"other\", {etag}");
        let resp = app
            .http
            .get(url)
            .header("if-none-match", &listed)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 304, "{key}: one of a list matches");
    }
    // Distinct objects, distinct ETags.
    let mut etags = Vec::new();
    for (_, url) in &served {
        let resp = app.http.get(url).send().await.unwrap();
        etags.push(resp.headers()["etag"].to_str().unwrap().to_owned());
    }
    etags.sort();
    etags.dedup();
    assert_eq!(etags.len(), served.len());
}

#[tokio::test]
async fn no_path_leaves_the_bucket_and_nothing_is_written_through_it() {
    if !embedded_only() {
        return;
    }
    let (app, items) = processed_items().await;
    let data = app.dir.path();
    let bucket = data.join("objects/images");
    // Files beside and above the bucket's folder, each with a marker that must never be served,
    // and a link inside the bucket that points out of it.
    let marker = "SECRET-OUTSIDE-THE-BUCKET";
    std::fs::write(data.join("objects/secret.txt"), marker).unwrap();
    std::fs::write(data.join("secret.txt"), marker).unwrap();
    std::os::unix::fs::symlink(data.join("secret.txt"), bucket.join("uploads/link.jpg")).unwrap();
    std::os::unix::fs::symlink(data, bucket.join("uploads/up")).unwrap();
    let db = data.join("pipeline.db");
    assert!(db.exists());

    let outside = [
        "/objects/../secret.txt",
        "/objects/../../secret.txt",
        "/objects/../../pipeline.db",
        "/objects/uploads/../../secret.txt",
        "/objects/%2e%2e/secret.txt",
        "/objects/%2e%2e/%2e%2e/pipeline.db",
        "/objects/%2E%2E%2F%2E%2E%2Fsecret.txt",
        "/objects/..%2f..%2fpipeline.db",
        "/objects/uploads%2f..%2f..%2f..%2fsecret.txt",
        "/objects/%252e%252e/%252e%252e/secret.txt",
        "/objects//etc/passwd",
        "/objects/%2fetc%2fpasswd",
        &format!("/objects/{}", db.display()),
        &format!(
            "/objects/%2F{}",
            db.display().to_string().trim_start_matches('/')
        ),
        "/objects/uploads/link.jpg",
        "/objects/uploads/up/secret.txt",
        "/objects/uploads/up/pipeline.db",
        "/objects/uploads%00.jpg",
        "/objects/uploads",
        "/objects/",
    ];
    for path in outside {
        let (status, text) = raw_request(&app, "GET", path).await;
        assert!(status == 400 || status == 404, "{path}: {status}\n{text}");
        assert!(
            !text.contains(marker),
            "{path} served a file outside the bucket"
        );
        assert!(
            !text.contains("SQLite format"),
            "{path} served the database"
        );
        assert!(!text.contains("root:"), "{path} served /etc/passwd");
    }

    // An unknown key under a real prefix is 404, with a JSON error.
    let unknown = "/objects/uploads/6f1c1a52-0000-4000-8000-000000000000.jpg";
    let resp = app.http.get(app.url(unknown)).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].as_str().is_some(), "{body}");

    // No method writes or deletes through the read-only route: PUT needs a signature (only a
    // reservation's incoming/ key gets one), the others are not routed.
    let key = items[0]["object_key"].as_str().unwrap();
    let before = app.object(key).await;
    let path = format!("/objects/{key}");
    for method in ["POST", "DELETE", "PATCH"] {
        let (status, text) = raw_request(&app, method, &path).await;
        assert_eq!(status, 405, "{method} {path}\n{text}");
    }
    let (status, text) = raw_request(&app, "PUT", &path).await;
    assert_eq!(status, 403, "PUT {path}\n{text}");
    let resp = app
        .http
        .put(app.url("/objects/uploads/new.jpg"))
        .body(fixture("FreshFlower.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(app.object(key).await, before, "the object is unchanged");
    assert!(
        !bucket.join("uploads/new.jpg").exists(),
        "nothing was created"
    );
}
