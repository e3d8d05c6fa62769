//! Spawning the engine for tests: in-process (`spawn_engine`, with `drain` to pump the stream) or
//! as the real `uploader` binary (`spawn_binary`, for crashes). No sleeps: every wait is a condition
//! polled against a deadline.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use local_engine::{Engine, EngineConfig};
use serde_json::Value;
use tempfile::TempDir;

use crate::stand_ins::{backend, endpoints, AwsWorld};

/// `PIPELINE_BACKEND=aws` runs these tests on DynamoDB Local and moto instead of the embedded
/// backend (`make test` does both).
pub fn aws_selected() -> bool {
    std::env::var("PIPELINE_BACKEND").as_deref() == Ok("aws")
}

/// This backend's resources, when it is AWS.
pub async fn world() -> Option<AwsWorld> {
    if !aws_selected() {
        return None;
    }
    let eps = endpoints().expect("PIPELINE_BACKEND=aws needs the stand-ins: run `make test`");
    Some(AwsWorld::create(eps).await)
}

/// One notice as the subscriber got it.
#[derive(Debug, Clone, PartialEq)]
pub struct SentNotice {
    pub subject: String,
    pub text: String,
}

pub fn init_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        local_engine::telemetry::init("info", std::io::stderr);
    }
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub const PHOTOS: [&str; 4] = [
    "FreshFlower.jpg",
    "GreenMeadow.jpg",
    "Aqua.jpg",
    "Spring.png",
];

/// A client that drops a pooled connection before any test's server would close it as idle (1 s
/// at the least, 5 s by default): a request sent on a connection the server is closing at that
/// moment fails with a reset (seen once in CI, after a table outage's retries kept a test quiet
/// for longer than the idle timeout).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_idle_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

pub struct TestEngine {
    pub engine: Arc<Engine>,
    pub addr: SocketAddr,
    pub dir: TempDir,
    pub http: reqwest::Client,
    pub aws: Option<AwsWorld>,
    received: tokio::sync::Mutex<Vec<SentNotice>>,
    _stop_server: tokio::sync::watch::Sender<bool>,
}

/// An engine over a fresh data dir, serving HTTP on an ephemeral loopback port. Its mappings do not
/// run by themselves: call [`TestEngine::drain`].
pub async fn spawn_engine() -> TestEngine {
    spawn_engine_with(|_| {}).await
}

pub async fn spawn_engine_with(configure: impl FnOnce(&mut EngineConfig)) -> TestEngine {
    spawn_engine_on(world().await, configure).await
}

/// [`spawn_engine_with`] on the embedded backend whichever backend the run selected: for what
/// only the engine's own bucket does (its signed PUTs).
pub async fn spawn_embedded_engine_with(configure: impl FnOnce(&mut EngineConfig)) -> TestEngine {
    spawn_engine_on(None, configure).await
}

async fn spawn_engine_on(
    aws: Option<AwsWorld>,
    configure: impl FnOnce(&mut EngineConfig),
) -> TestEngine {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = local::engine_config(dir.path());
    cfg.retry_backoff = Duration::from_millis(1);
    if let Some(w) = &aws {
        cfg.backend = backend(w).await;
    }
    configure(&mut cfg);
    let engine = Arc::new(Engine::open(cfg).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    engine.set_public_url(&format!("http://{addr}"));
    // The engine's own server and limits; it stops when the TestEngine is dropped.
    let (stop_server, stop) = tokio::sync::watch::channel(false);
    let server = engine.clone();
    tokio::spawn(async move { server.serve_http(listener, stop).await.unwrap() });
    TestEngine {
        engine,
        addr,
        dir,
        http: client(),
        aws,
        received: Default::default(),
        _stop_server: stop_server,
    }
}

impl TestEngine {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn upload(&self, body: Vec<u8>, content_type: &str) -> reqwest::Response {
        self.http
            .post(self.url("/upload"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Uploads and returns the new item's id, asserting a 201.
    pub async fn upload_ok(&self, body: Vec<u8>) -> String {
        upload_jpeg_ok(&self.http, &self.url(""), body).await
    }

    pub async fn drain(&self) {
        self.engine.drain().await.unwrap();
    }

    pub async fn item(&self, id: &str) -> Value {
        let resp = self
            .http
            .get(self.url(&format!("/items/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "GET /items/{id}");
        resp.json().await.unwrap()
    }

    /// Every item, newest first, through as many pages of `GET /items` as it takes.
    pub async fn items(&self) -> Vec<Value> {
        all_items(&self.http, self.addr).await.unwrap()
    }

    /// Every notice the topic's subscriber has received so far.
    pub async fn notices(&self) -> Vec<SentNotice> {
        match &self.aws {
            None => mail_notices(self.dir.path()),
            Some(world) => {
                let mut received = self.received.lock().await;
                for (subject, text, _) in world.take_notices().await {
                    received.push(SentNotice { subject, text });
                }
                received.clone()
            }
        }
    }

    pub async fn object(&self, key: &str) -> Vec<u8> {
        self.engine.store().get(key).await.unwrap().to_vec()
    }

    pub async fn metrics_text(&self) -> String {
        let resp = self.http.get(self.url("/metrics")).send().await.unwrap();
        resp.text().await.unwrap()
    }

    pub async fn metric(&self, name: &str, function: &str) -> f64 {
        metric(&self.metrics_text().await, name, function)
    }
}

/// One item of an engine at `addr` (`GET /items/{id}`); `None` if it does not answer with JSON.
/// `POST {base}/upload` of a JPEG to a running engine; returns the new item's id, asserting a 201.
pub async fn upload_jpeg_ok(http: &reqwest::Client, base: &str, body: Vec<u8>) -> String {
    let resp = http
        .post(format!("{base}/upload"))
        .header("content-type", "image/jpeg")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let item: Value = resp.json().await.unwrap();
    item["id"].as_str().unwrap().to_owned()
}

pub async fn item_at(http: &reqwest::Client, addr: SocketAddr, id: &str) -> Option<Value> {
    http.get(format!("http://{addr}/items/{id}"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// The statuses an item went through, from its `history`.
pub fn statuses(item: &Value) -> Vec<&str> {
    item["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect()
}

/// Every item an engine at `addr` lists, paging through `GET /items`; `None` if it does not answer.
pub async fn all_items(http: &reqwest::Client, addr: SocketAddr) -> Option<Vec<Value>> {
    let mut items = Vec::new();
    let mut url = format!("http://{addr}/items?limit=100");
    loop {
        let page: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
        items.extend(page["items"].as_array()?.iter().cloned());
        match page["next"].as_str() {
            Some(next) => url = format!("http://{addr}/items?limit=100&cursor={next}"),
            None => return Some(items),
        }
    }
}

/// The mailbox's messages as notices.
pub fn mail_notices(data_dir: &Path) -> Vec<SentNotice> {
    mails(data_dir)
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            let subject = text
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or_default()
                .to_owned();
            SentNotice { subject, text }
        })
        .collect()
}

/// The `.eml` files in a data dir's mailbox.
pub fn mails(data_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("mail")) else {
        return Vec::new();
    };
    let mut mails: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    mails.sort();
    mails
}

pub fn metric(text: &str, name: &str, function: &str) -> f64 {
    let prefix = format!("{name}{{function=\"{function}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
        .parse()
        .unwrap()
}

/// Polls `check` until it returns `Some`, failing the test after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The real `uploader serve`, on its own port, over `data_dir`.
pub struct Binary {
    pub child: Child,
    pub addr: SocketAddr,
}

/// The AWS backend when `env` names a table (an [`AwsWorld::env`]), else the embedded one.
pub async fn spawn_binary(data_dir: &Path, env: &[(String, String)]) -> Binary {
    spawn_binary_with_nofile(data_dir, env, None).await
}

/// [`spawn_binary`], under a file-descriptor limit (`ulimit -n`) when one is given.
pub async fn spawn_binary_with_nofile(
    data_dir: &Path,
    env: &[(String, String)],
    nofile: Option<u64>,
) -> Binary {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = if std::env::var_os("TEST_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    let mut command = match nofile {
        None => Command::new(env!("CARGO_BIN_EXE_uploader")),
        Some(n) => {
            // The shell lowers its own limit, then becomes the engine (same pid).
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(env!("CARGO_BIN_EXE_uploader"));
            sh
        }
    };
    let child = command
        .args(["serve", "--addr", &addr.to_string(), "--data-dir"])
        .arg(data_dir)
        .args(if !env.iter().any(|(k, _)| k == "TABLE_NAME") {
            vec![]
        } else {
            vec!["--backend", "aws"]
        })
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let http = client();
    let url = format!("http://{addr}/metrics");
    eventually(Duration::from_secs(30), "the engine to answer", || {
        let http = http.clone();
        let url = url.clone();
        async move {
            http.get(&url)
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ())
        }
    })
    .await;
    Binary { child, addr }
}

impl Binary {
    /// The engine's peak resident set so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmHWM in\n{status}"));
        kb * 1024
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
