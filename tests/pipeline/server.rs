//! The local server cannot be held open: each limit of `local_engine::server` and `local_engine::http`, met by
//! a real slow client over TCP (raw bytes, so the client does exactly what an attacker would).
//! Elapsed times are asserted only as generous upper bounds that prove a connection was cut.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use local_engine::server::ServerLimits;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::helpers::{
    client, eventually, fixture, spawn_binary, spawn_binary_with_nofile, spawn_engine_with,
    TestEngine,
};

const SECOND: Duration = Duration::from_secs(1);

/// Generous limits, with the ones a test is about set by `tune`.
async fn engine(tune: impl FnOnce(&mut ServerLimits)) -> TestEngine {
    let mut limits = ServerLimits {
        header_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        body_timeout: Duration::from_secs(30),
        max_connections: 64,
        max_buffered_bytes: 64 << 20,
    };
    tune(&mut limits);
    spawn_engine_with(move |cfg| cfg.server = limits).await
}

/// One raw HTTP/1.1 connection.
struct Raw {
    read: OwnedReadHalf,
    /// `None` once handed to [`Raw::trickle`].
    write: Option<OwnedWriteHalf>,
    /// Read but not yet consumed.
    buf: Vec<u8>,
}

#[derive(Debug)]
struct RawResponse {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        let (read, write) = TcpStream::connect(addr).await.unwrap().into_split();
        Raw {
            read,
            write: Some(write),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        let w = self.write.as_mut().expect("still writable");
        w.write_all(bytes).await.unwrap();
    }

    /// From now on, writes `piece` every `every` until the server stops taking it.
    fn trickle(&mut self, piece: &'static [u8], every: Duration) {
        let mut w = self.write.take().expect("still writable");
        tokio::spawn(async move {
            while w.write_all(piece).await.is_ok() {
                tokio::time::sleep(every).await;
            }
        });
    }

    /// Reads more bytes; `None` once the server has closed (EOF or reset).
    async fn fill(&mut self) -> Option<usize> {
        let mut chunk = [0u8; 8192];
        match self.read.read(&mut chunk).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Some(n)
            }
        }
    }

    /// The next response head and its Content-Length body; panics if none comes within `bound`.
    async fn response(&mut self, bound: Duration) -> RawResponse {
        tokio::time::timeout(bound, self.next_response())
            .await
            .unwrap_or_else(|_| panic!("no response within {bound:?}"))
            .expect("the server closed before a whole response")
    }

    async fn next_response(&mut self) -> Option<RawResponse> {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while self.buf.len() < end + length {
            self.fill().await?;
        }
        let body = self.buf[end..end + length].to_vec();
        self.buf.drain(..end + length);
        Some(RawResponse { status, head, body })
    }

    /// Waits until the server closes the connection, discarding what it sends; panics if it is
    /// still open after `bound`.
    async fn closed_within(&mut self, bound: Duration) {
        tokio::time::timeout(bound, async { while self.fill().await.is_some() {} })
            .await
            .unwrap_or_else(|_| panic!("the server kept the connection open for {bound:?}"));
    }

    /// Whether a response starts within `wait` (a short look, for what must not happen yet).
    async fn answers_within(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.fill()).await.is_ok()
    }
}

fn upload_head(length: Option<u64>, extra: &str) -> Vec<u8> {
    let length = match length {
        Some(n) => format!("Content-Length: {n}\r\n"),
        None => "Transfer-Encoding: chunked\r\n".into(),
    };
    format!(
        "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/jpeg\r\n{length}{extra}\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_request_head_sent_slowly_is_cut_off_by_the_header_timeout() {
    let header_timeout = SECOND;
    let app = engine(|l| {
        l.header_timeout = header_timeout;
        l.idle_timeout = header_timeout;
    })
    .await;
    let mut raw = Raw::connect(app.addr).await;
    raw.send(b"GET /items HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await;
    // A byte every 100 ms: never idle, never a whole head.
    raw.trickle(b"a", Duration::from_millis(100));
    raw.closed_within(header_timeout * 3).await;
    assert!(
        !String::from_utf8_lossy(&raw.buf).contains(" 200 "),
        "a half-sent head was served"
    );
    // The server itself is fine.
    let resp = app.http.get(app.url("/items")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn silent_and_idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    // The header timeout is far off: only the idle timer can close these in time.
    let idle_timeout = SECOND;
    let app = engine(|l| l.idle_timeout = idle_timeout).await;

    let mut kept_alive = Raw::connect(app.addr).await;
    kept_alive
        .send(b"GET /items HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    let resp = kept_alive.response(5 * SECOND).await;
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert!(!resp.head.to_ascii_lowercase().contains("connection: close"));

    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(Raw::connect(app.addr).await);
    }
    let started = Instant::now();
    kept_alive.closed_within(idle_timeout * 3).await;
    for raw in &mut silent {
        raw.closed_within((idle_timeout * 3).saturating_sub(started.elapsed()))
            .await;
    }
}

#[tokio::test]
async fn a_trickled_body_is_cut_off_by_the_body_timeout() {
    let body_timeout = SECOND;
    let app = engine(|l| l.body_timeout = body_timeout).await;
    let mut raw = Raw::connect(app.addr).await;
    // Within the upload limit, so it is read: 100 bytes every 100 ms of a declared 4 MB.
    raw.send(&upload_head(Some(4_000_000), "")).await;
    raw.send(&[0xFF, 0xD8, 0xFF]).await;
    raw.trickle(&[0u8; 100], Duration::from_millis(100));
    let resp = raw.response(body_timeout * 3).await;
    assert_eq!(resp.status, 408, "{}", resp.head);
    let error: Value = serde_json::from_slice(&resp.body).unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("did not arrive"),
        "{error}"
    );
    raw.closed_within(body_timeout * 3).await;
    assert!(app.items().await.is_empty(), "nothing was accepted");
}

#[tokio::test]
async fn a_chunked_body_that_never_ends_is_cut_off() {
    let body_timeout = SECOND;
    let app = engine(|l| l.body_timeout = body_timeout).await;
    let mut raw = Raw::connect(app.addr).await;
    raw.send(&upload_head(None, "")).await;
    raw.send(b"3\r\n\xFF\xD8\xFF\r\n").await;
    // A 16-byte chunk every 50 ms, and never the last (zero-length) one.
    raw.trickle(b"10\r\n0123456789abcdef\r\n", Duration::from_millis(50));
    let resp = raw.response(body_timeout * 3).await;
    assert_eq!(resp.status, 408, "{}", resp.head);
    raw.closed_within(body_timeout * 3).await;
    assert!(app.items().await.is_empty(), "nothing was accepted");
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_at_once_without_100_continue() {
    // A body timeout far off: an answer well before it proves nothing waited for the body.
    let app = engine(|_| {}).await;
    let started = Instant::now();
    let mut raw = Raw::connect(app.addr).await;
    raw.send(&upload_head(
        Some(5_000_000_000),
        "Expect: 100-continue\r\n",
    ))
    .await;
    let resp = raw.response(5 * SECOND).await;
    assert_eq!(resp.status, 413, "the first answer: {}", resp.head);
    let error: Value = serde_json::from_slice(&resp.body).unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains(&upload::DEFAULT_MAX_UPLOAD_BYTES.to_string()),
        "{error}"
    );
    raw.closed_within(5 * SECOND).await;
    assert!(started.elapsed() < 5 * SECOND);

    // Without Expect, likewise: the 5 GB are never waited for.
    let mut raw = Raw::connect(app.addr).await;
    raw.send(&upload_head(Some(5_000_000_000), "")).await;
    raw.send(&[0u8; 1000]).await;
    assert_eq!(raw.response(5 * SECOND).await.status, 413);

    // The control: a length within the limit does get its 100 Continue, then its answer.
    let mut raw = Raw::connect(app.addr).await;
    raw.send(&upload_head(Some(9), "Expect: 100-continue\r\n"))
        .await;
    let resp = raw.response(5 * SECOND).await;
    assert_eq!(resp.status, 100, "{}", resp.head);
    raw.send(b"just text").await;
    assert_eq!(raw.response(5 * SECOND).await.status, 415);
}

#[tokio::test]
async fn routes_other_than_upload_do_not_read_a_body() {
    let app = engine(|_| {}).await;
    for path in ["/items", "/metrics", "/nothing-here"] {
        let mut raw = Raw::connect(app.addr).await;
        // A declared megabyte that never comes: answered without waiting for it.
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n"
        );
        raw.send(head.as_bytes()).await;
        let resp = raw.response(5 * SECOND).await;
        assert!(
            resp.status == 200 || resp.status == 404,
            "{path}: {}",
            resp.head
        );
    }
}

#[tokio::test]
async fn the_connection_cap_holds_the_next_connection_until_one_closes() {
    let cap = 4;
    let app = engine(|l| l.max_connections = cap).await;
    let request = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..cap {
        let mut raw = Raw::connect(app.addr).await;
        raw.send(request).await;
        assert_eq!(raw.response(5 * SECOND).await.status, 200);
        held.push(raw);
    }
    // The kernel completes the handshake (the backlog), but the server does not accept it.
    let mut next = Raw::connect(app.addr).await;
    next.send(request).await;
    assert!(
        !next.answers_within(Duration::from_millis(500)).await,
        "connection {} was served with {cap} open",
        cap + 1
    );
    drop(held.pop());
    let resp = next.response(5 * SECOND).await;
    assert_eq!(resp.status, 200, "{}", resp.head);
}

#[tokio::test]
async fn a_spent_byte_budget_answers_503_with_retry_after_until_bytes_are_freed() {
    let limit = 100_000;
    let app = spawn_engine_with(|cfg| {
        cfg.parameters
            .insert("MaxUploadBytes".into(), limit.to_string());
        cfg.server = ServerLimits {
            max_buffered_bytes: limit,
            ..ServerLimits::DEFAULT
        };
    })
    .await;
    // The whole budget, reserved by a declared length and held while its body is awaited.
    let mut holder = Raw::connect(app.addr).await;
    holder.send(&upload_head(Some(limit as u64), "")).await;
    holder.send(&[0xFF, 0xD8, 0xFF]).await;
    let other = || app.upload(fixture("Spring.png"), "image/png");
    let resp = eventually(5 * SECOND, "the budget to be spent", || async {
        let resp = other().await;
        (resp.status() == 503).then_some(resp)
    })
    .await;
    assert_eq!(resp.headers()["retry-after"], "1");
    let error: Value = resp.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("retry"),
        "{error}"
    );
    // The holder sends the rest: its upload is answered and its bytes come back.
    holder.send(&vec![0u8; limit - 3]).await;
    assert_eq!(holder.response(5 * SECOND).await.status, 415);
    let resp = other().await;
    assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
}

/// What the engine may add to its baseline under the slow-upload flood below, besides the byte
/// budget: each connection's read buffer (64 KB at most, 200 connections) and allocator slack.
/// Without the budget the same flood buffers 200 x 3.9 MB (measured: 790 MB).
const FLOOD_RSS_OVER_BUDGET: u64 = 32 << 20;

#[tokio::test]
async fn many_slow_uploads_stay_within_the_byte_budget_and_later_uploads_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let budget = 16_000_000u64;
    let env = [
        ("MAX_BUFFERED_BYTES", budget.to_string()),
        ("BODY_TIMEOUT", "3".to_string()),
        ("HEADER_TIMEOUT", "5".to_string()),
        ("IDLE_TIMEOUT", "5".to_string()),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    let bin = spawn_binary(dir.path(), &env).await;
    let baseline = bin.peak_rss();

    // 200 uploads declaring 4 MB each send 3.9 MB at once, then stall.
    let mut flood = Vec::new();
    for _ in 0..200 {
        let addr = bin.addr;
        flood.push(tokio::spawn(async move {
            let mut raw = Raw::connect(addr).await;
            raw.send(&upload_head(Some(4_000_000), "")).await;
            let w = raw.write.as_mut().unwrap();
            let piece = vec![0u8; 65_000];
            for _ in 0..60 {
                if w.write_all(&piece).await.is_err() {
                    break;
                }
            }
            match tokio::time::timeout(20 * SECOND, raw.next_response()).await {
                Ok(Some(resp)) => resp.status,
                _ => 0,
            }
        }));
    }
    let mut statuses = Vec::new();
    for task in flood {
        statuses.push(task.await.unwrap());
    }
    let peak = bin.peak_rss();
    let count = |s| statuses.iter().filter(|&&x| x == s).count();
    eprintln!(
        "slow-upload flood: baseline VmHWM {} MB, peak {} MB; 503: {}, 408: {}, other: {}",
        baseline >> 20,
        peak >> 20,
        count(503),
        count(408),
        statuses.len() - count(503) - count(408)
    );
    assert!(count(503) > 0, "the budget was never spent: {statuses:?}");
    let bound = baseline + budget + FLOOD_RSS_OVER_BUDGET;
    assert!(
        peak < bound,
        "peak RSS {} MB over the bound of {} MB",
        peak >> 20,
        bound >> 20
    );

    // Normal uploads go through, and through the pipeline.
    let http = client();
    for name in ["Aqua.jpg", "Spring.png"] {
        let resp = http
            .post(format!("http://{}/upload", bin.addr))
            .body(fixture(name))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{name}");
        let id = resp.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let url = format!("http://{}/items/{id}", bin.addr);
        eventually(60 * SECOND, "the upload to be notified", || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let item: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
                (item["status"] == "notified").then_some(())
            }
        })
        .await;
    }
}

#[tokio::test]
async fn a_connection_flood_under_a_low_descriptor_limit_loses_no_accepted_work() {
    let dir = tempfile::tempdir().unwrap();
    let env =
        [("IDLE_TIMEOUT", "2"), ("HEADER_TIMEOUT", "2")].map(|(k, v)| (k.to_owned(), v.to_owned()));
    // 256 descriptors: without a cap below it, 600 connections would leave the engine none.
    let bin = spawn_binary_with_nofile(dir.path(), &env, Some(256)).await;
    let http = client();
    let mut ids = Vec::new();
    for name in crate::helpers::PHOTOS {
        let resp = http
            .post(format!("http://{}/upload", bin.addr))
            .body(fixture(name))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{name}");
        ids.push(
            resp.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // The flood, while the accepted uploads are processed.
    let mut flood = Vec::new();
    for _ in 0..600 {
        flood.push(TcpStream::connect(bin.addr).await.unwrap());
    }
    let metrics = format!("http://{}/metrics", bin.addr);
    for id in &ids {
        let url = format!("http://{}/items/{id}", bin.addr);
        eventually(90 * SECOND, "every upload to be notified", || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let item: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
                (item["status"] == "notified").then_some(())
            }
        })
        .await;
    }
    let text = http
        .get(&metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for function in ["process", "notice"] {
        assert_eq!(
            crate::helpers::metric(&text, "pipeline_dead_letters_total", function),
            0.0,
            "{function} dead-lettered work during the flood"
        );
    }
    drop(flood);
}
