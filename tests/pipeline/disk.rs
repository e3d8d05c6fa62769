//! The disk is bounded: the engine keeps `--min-free-space` free on its data directory's file
//! system, refusing uploads and PUTs with 507 before their bodies are read, and takes them again
//! once space returns, with nothing accepted lost; originals past `OriginalsDays` that no live item
//! names are removed, as the bucket's lifecycle does, and nothing of a `notified` item is.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::helpers::{
    client, eventually, fixture, mails, spawn_binary, spawn_embedded_engine_with, upload_jpeg_ok,
};

/// Bytes free on the file system of `dir`, as the engine counts them (`f_bavail`).
fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("stat")
        .args(["-f", "-c", "%a %S"])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut parts = text.split_whitespace().map(|n| n.parse::<u64>().unwrap());
    parts.next().unwrap() * parts.next().unwrap()
}

/// A small file system of its own for the data directory: a 64 MB tmpfs, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` where mounting is not permitted, or `DISK_TEST_NO_MOUNT` is set (to try the other
    /// path).
    fn mount() -> Option<SmallDisk> {
        if std::env::var_os("DISK_TEST_NO_MOUNT").is_some() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(SmallDisk { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Grows or shrinks the ballast file at `path` until `margin` bytes above `floor` are free on its
/// file system (measured again each time: other writers may share it).
fn leave(path: &Path, floor: u64, margin: u64) {
    use std::io::{Seek, Write};
    let mut file = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap();
    let len = file.metadata().unwrap().len();
    let free = free_bytes(path.parent().unwrap());
    let excess = free as i64 - (floor + margin) as i64;
    if excess <= 0 {
        // Real blocks are freed by shortening the file.
        file.set_len(len.saturating_sub(excess.unsigned_abs()))
            .unwrap();
        return;
    }
    file.seek(std::io::SeekFrom::End(0)).unwrap();
    let chunk = vec![1u8; 1 << 20];
    let mut left = excess as u64;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    file.sync_all().unwrap();
}

/// Sends only a request's head, declaring a body of `length` bytes that never comes, and reads
/// the answer: what the engine says before it reads a byte of the body. Returns the status and the
/// answer's body.
async fn head_only(url: &str, method: &str, content_type: &str, length: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut tcp = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut answer))
        .await
        .expect("the engine answers and closes without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

#[tokio::test]
async fn a_full_disk_refuses_uploads_with_507_and_the_engine_recovers_when_space_returns() {
    // A tmpfs of 64 MB when the test may mount one (as root); otherwise the temp dir's own file
    // system, with the floor set just under its free space (real statvfs, real files) and the
    // ballast levelled before each request. That path needs a disk nothing else is filling at the
    // same time: a margin of 3 MB is gone in a moment on a disk shared with busy builds.
    let (small, fallback, data_dir, floor) = match SmallDisk::mount() {
        Some(small) => {
            let dir = small.path().join("data");
            std::fs::create_dir_all(&dir).unwrap();
            eprintln!("disk: a 64 MB tmpfs mounted at {}", small.path().display());
            (Some(small), None, dir, 24u64 << 20)
        }
        None => {
            let temp = tempfile::tempdir().unwrap();
            let dir = temp.path().to_path_buf();
            let free = free_bytes(&dir);
            eprintln!(
                "disk: mount not permitted; floor set 40 MB under the free space of {} ({free} bytes)",
                dir.display()
            );
            (None, Some(temp), dir, free.saturating_sub(40 << 20))
        }
    };
    let engine = spawn_binary(
        &data_dir,
        &[("MIN_FREE_SPACE".to_owned(), floor.to_string())],
    )
    .await;
    let base = format!("http://{}", engine.addr);
    let http = client();
    let photo = fixture("FreshFlower.jpg");

    // Fill the disk until about 3 MB above the floor are left.
    let ballast_path = data_dir.join("ballast");
    let margin = 3 << 20;

    // A photo still fits; a PUT of 8 MB, or an upload of 4 MB, would go below the floor: 507,
    // before the body is read.
    let mut accepted = Vec::new();
    for _ in 0..2 {
        leave(&ballast_path, floor, margin);
        accepted.push(upload_jpeg_ok(&http, &base, photo.clone()).await);
    }
    let big = {
        // A real photo's bytes, padded: a JPEG decoder stops at the end-of-image marker.
        let mut big = photo.clone();
        big.resize(8 << 20, 0);
        big
    };
    let reservation: Value = http
        .post(format!("{base}/uploads"))
        .json(&json!({ "size": big.len(), "content_type": "image/jpeg" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let put = |body: Vec<u8>| {
        let mut req = http.put(reservation["url"].as_str().unwrap());
        for (name, value) in reservation["headers"].as_object().unwrap() {
            req = req.header(name, value.as_str().unwrap());
        }
        req.body(body).send()
    };
    leave(&ballast_path, floor, margin);
    let (status, text) = head_only(
        reservation["url"].as_str().unwrap(),
        "PUT",
        "image/jpeg",
        big.len(),
    )
    .await;
    assert_eq!(status, 507, "{text}");
    assert!(
        text.contains("InsufficientStorage") && text.contains("free"),
        "{text}"
    );
    leave(&ballast_path, floor, margin);
    let (status, text) = head_only(&format!("{base}/upload"), "POST", "image/jpeg", 4 << 20).await;
    assert_eq!(status, 507, "{text}");
    assert!(text.contains("--min-free-space"), "{text}");
    let free_now = free_bytes(&data_dir);
    assert!(
        free_now >= floor,
        "the engine wrote below the floor: {free_now} < {floor}"
    );
    let incoming = data_dir.join("objects/images/incoming");
    let stored: Vec<_> = std::fs::read_dir(&incoming)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        stored.is_empty(),
        "nothing of the refused PUT is stored: {stored:?}"
    );

    // Space returns: the same URL takes the photo, and uploads are taken again.
    std::fs::remove_file(&ballast_path).unwrap();
    let resp = put(big.clone()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let id = reservation["id"].as_str().unwrap().to_owned();
    accepted.push(id.clone());
    accepted.push(upload_jpeg_ok(&http, &base, photo.clone()).await);

    // Nothing accepted is lost: each reaches `notified`, with its mail.
    for id in &accepted {
        let url = format!("{base}/items/{id}");
        eventually(
            Duration::from_secs(120),
            "an accepted upload to be notified",
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
    assert_eq!(std::fs::read(incoming.join(&id)).unwrap(), big);
    assert_eq!(mails(&data_dir).len(), accepted.len(), "one mail each");
    drop(engine);
    drop((small, fallback));
}

#[tokio::test]
async fn originals_past_originals_days_go_unless_a_live_item_names_them() {
    let app = spawn_embedded_engine_with(|_| {}).await;
    let kept = app.upload_ok(fixture("FreshFlower.jpg")).await;
    // A reservation whose PUT brings no image: its item ends `failed`.
    let junk = vec![0x42u8; 4096];
    let reservation = app.reserve_ok(junk.len(), "image/jpeg").await;
    assert_eq!(app.put(&reservation, junk, None).await.status(), 200);
    let failed = reservation["id"].as_str().unwrap().to_owned();
    app.drain().await;
    assert_eq!(app.item(&kept).await["status"], "notified");
    assert_eq!(app.item(&failed).await["status"], "failed");

    let bucket = app.dir.path().join("objects/images");
    let kept_item = app.item(&kept).await;
    let kept_original = bucket.join(kept_item["object_key"].as_str().unwrap());
    let failed_original = bucket.join(format!("incoming/{failed}"));
    let kept_bytes = std::fs::read(&kept_original).unwrap();
    // Both arrived 31 days ago.
    let long_ago = SystemTime::now() - Duration::from_secs(31 * 24 * 3600);
    for path in [&kept_original, &failed_original] {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
    }

    // Two days earlier, they were 29 days old (OriginalsDays is 30): nothing goes.
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
    assert_eq!(
        app.engine.expire_originals_at(two_days_ago).await.unwrap(),
        0
    );
    assert!(failed_original.exists());

    // Now: the failed item's original goes, the notified one's stays, with its renditions.
    assert_eq!(
        app.engine
            .expire_originals_at(SystemTime::now())
            .await
            .unwrap(),
        1
    );
    assert!(!failed_original.exists());
    assert_eq!(std::fs::read(&kept_original).unwrap(), kept_bytes);
    for key in kept_item["renditions"].as_object().unwrap().values() {
        assert!(bucket.join(key.as_str().unwrap()).exists(), "{key}");
    }
    assert_eq!(app.item(&kept).await["status"], "notified");
}
