//! The web page at `GET /`, in a real browser: Debian's Chromium, headless, driven over WebDriver
//! (chromedriver) against the real `uploader` binary. `make test` installs both
//! (`scripts/browser-deps.sh`) and sets `BROWSER_REQUIRED`, so a missing browser fails there; a
//! plain `cargo test` without one skips with a message.
//!
//! Screenshots go to `target/browser/` at the top of the repository, for a person to look at.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::helpers::{
    all_items, client, eventually, fixture, item_at, spawn_binary, spawn_engine, world, PHOTOS,
};

/// Long enough for a debug build to process a photo on a shared 2-core machine.
const DEADLINE: Duration = Duration::from_secs(90);

/// A program on PATH, or at the path an environment variable names.
fn program(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path));
    }
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|path| path.is_file())
}

/// chromedriver and the Chromium session it drives. Dropping it kills both: chromedriver runs in
/// a process group of its own, which the browser it starts joins.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// `None` (after saying why) when Chromium or chromedriver is missing and `BROWSER_REQUIRED`
    /// is unset; with it set, their absence fails the test.
    pub async fn start() -> Option<Browser> {
        let chromium = program("CHROMIUM", &["chromium", "chromium-browser"]);
        let driver = program("CHROMEDRIVER", &["chromedriver"]);
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            let hint = "Chromium and chromedriver are not installed: run scripts/browser-deps.sh \
                        (Debian's chromium and chromium-driver), or set CHROMIUM and CHROMEDRIVER";
            if std::env::var_os("BROWSER_REQUIRED").is_some() {
                panic!("BROWSER_REQUIRED is set but {hint}");
            }
            eprintln!("skipped: {hint}");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(&driver);
        command
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", driver.display()));
        let profile = tempfile::tempdir().unwrap();
        let webdriver = format!("http://127.0.0.1:{port}");
        let http = client();
        let status = format!("{webdriver}/status");
        eventually(Duration::from_secs(30), "chromedriver to answer", || {
            let (http, status) = (http.clone(), status.clone());
            async move {
                let body: Value = http.get(&status).send().await.ok()?.json().await.ok()?;
                body["value"]["ready"].as_bool().filter(|r| *r).map(|_| ())
            }
        })
        .await;
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                // Without the background-networking flags Chromium calls Google's hosts, which
                // this machine refuses; a fresh profile keeps runs independent.
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-breakpad",
                    "--window-size=1280,1400", "--lang=en-US",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&webdriver)
            .await
            .unwrap_or_else(|e| panic!("a Chromium session through chromedriver: {e}"));
        Some(Browser {
            client,
            driver: child,
            _profile: profile,
        })
    }

    /// Ends the session, then chromedriver.
    pub async fn close(self) {
        // Clone: `close` takes the client, and `self` still owns the driver to kill on drop.
        self.client.clone().close().await.unwrap();
    }

    /// Evaluates `script` (a function body) until it returns something neither null nor false.
    pub async fn until(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        eventually(DEADLINE, what, || {
            let args = args.clone();
            async move {
                let v = self.client.execute(script, args).await.unwrap();
                (!v.is_null() && v != Value::Bool(false)).then_some(v)
            }
        })
        .await
    }

    /// Picks `file` in the page's file input; returns the id of the card the upload makes.
    pub async fn pick(&self, file: &str) -> Value {
        self.client
            .find(Locator::Css("#file"))
            .await
            .unwrap()
            .send_keys(file)
            .await
            .unwrap();
        self.until(
            "the upload's card",
            "const li = document.querySelector('#items li.card'); return li && li.dataset.id;",
            vec![],
        )
        .await
    }

    /// Waits for the card of `id` to say notified, with its thumbnail loaded.
    pub async fn notified_with_thumbnail(&self, id: &Value) {
        self.until(
            "the card to say notified, with its thumbnail",
            "const li = document.querySelector(`li[data-id='${arguments[0]}'][data-status=notified]`); \
             const img = li && li.querySelector('.thumb img'); \
             return img && img.complete && img.naturalWidth > 0;",
            vec![id.clone()],
        )
        .await;
    }

    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap()
    }

    /// Saves a screenshot of the window as `target/browser/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and every Chromium process it started.
        if let Some(pid) = rustix::process::Pid::from_raw(self.driver.id() as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.driver.wait();
    }
}

/// The ids of the cards on the page, top to bottom.
const CARD_IDS: &str =
    "return [...document.querySelectorAll('#items > li.card')].map(li => li.dataset.id);";

/// Writes `bytes` to a file the browser's file input can be given.
fn file_in(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_page_uploads_follows_filters_and_pages_items_in_chromium() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let aws = world().await;
    let backend = if aws.is_some() { "aws" } else { "embedded" };
    let data = tempfile::tempdir().unwrap();
    let mut env = aws.as_ref().map(|w| w.env()).unwrap_or_default();
    if let Some(w) = &aws {
        // moto cannot invoke `ingest`: the bucket's notifications go to a queue the engine reads.
        let queue = w.route_bucket_events().await;
        env.push(("BUCKET_EVENTS_QUEUE_URL".into(), queue));
    }
    let engine = spawn_binary(data.path(), &env).await;
    if let Some(w) = &aws {
        w.allow_uploads_from(&format!("http://{}", engine.addr))
            .await;
    }
    let http = client();
    let base = format!("http://{}/", engine.addr);
    let c = &browser.client;
    c.goto(&base).await.unwrap();

    // The script ran (the policy allowed its hash) and found nothing yet.
    let empty = browser
        .until(
            "the empty state",
            "const e = document.getElementById('empty'); return !e.hidden && e.textContent;",
            vec![],
        )
        .await;
    assert!(
        empty.as_str().unwrap().contains("No uploads yet"),
        "{empty}"
    );
    // The style applied too: the drop zone's dashed border comes from the inline stylesheet.
    let border = browser
        .eval(
            "return getComputedStyle(document.getElementById('drop')).borderStyle;",
            vec![],
        )
        .await;
    assert_eq!(border, "dashed");

    // A real photo through the file input: it reaches notified, and its thumbnail loads.
    let files = tempfile::tempdir().unwrap();
    let photo = file_in(files.path(), PHOTOS[0], &fixture(PHOTOS[0]));
    let input = c.find(Locator::Css("#file")).await.unwrap();
    input.send_keys(&photo).await.unwrap();
    let photo_id = browser
        .until(
            "the photo's card to say notified",
            "const li = document.querySelector('#items li.card[data-status=notified]'); return li && li.dataset.id;",
            vec![],
        )
        .await;
    let photo_id = photo_id.as_str().unwrap().to_owned();
    let natural = browser
        .until(
            "the thumbnail to load",
            "const img = document.querySelector(`li[data-id='${arguments[0]}'] .thumb img`); \
             return img && img.complete && img.naturalWidth > 0 && [img.naturalWidth, img.naturalHeight];",
            vec![json!(photo_id)],
        )
        .await;
    let item = item_at(&http, engine.addr, &photo_id).await.unwrap();
    assert_eq!(item["status"], "notified");
    // The thumbnail the browser loaded is the rendition (fit 128x128), not the original.
    let (w, h) = (natural[0].as_u64().unwrap(), natural[1].as_u64().unwrap());
    assert!(w.max(h) == 128 && w > 0 && h > 0, "thumbnail {w}x{h}");
    let facts = browser
        .eval(
            "return document.querySelector(`li[data-id='${arguments[0]}'] .facts`).textContent;",
            vec![json!(photo_id)],
        )
        .await;
    let dims = format!("{} × {}", item["width"], item["height"]);
    assert!(
        facts.as_str().unwrap().contains(&dims),
        "{facts} lacks {dims}"
    );
    let timeline = browser
        .eval(
            "return [...document.querySelectorAll(`li[data-id='${arguments[0]}'] .timeline li.done .step`)].map(s => s.textContent);",
            vec![json!(photo_id)],
        )
        .await;
    // The page uploads the direct way (reserve, then PUT), so the item starts pending.
    assert_eq!(
        timeline,
        json!(["pending", "uploaded", "processed", "notified"])
    );

    // A truncated JPEG: accepted, then it fails to decode; the page shows it failed, with the
    // error the item carries.
    let photo_bytes = fixture(PHOTOS[1]);
    let broken = file_in(
        files.path(),
        "truncated.jpg",
        &photo_bytes[..photo_bytes.len() / 3],
    );
    input.send_keys(&broken).await.unwrap();
    let failed = browser
        .until(
            "the truncated JPEG's card to say failed, with its error",
            "const li = document.querySelector('#items li.card[data-status=failed]'); \
             const err = li && li.querySelector('.error-text'); \
             return err && [li.dataset.id, err.textContent];",
            vec![],
        )
        .await;
    let failed_id = failed[0].as_str().unwrap().to_owned();
    let failed_item = item_at(&http, engine.addr, &failed_id).await.unwrap();
    assert_eq!(failed_item["status"], "failed");
    assert_eq!(failed[1], failed_item["error"]);
    assert!(!failed_item["error"].as_str().unwrap().is_empty());

    // The other photos, several files in one pick; then every item is terminal, and the page
    // stops polling.
    let more: Vec<String> = PHOTOS[1..]
        .iter()
        .map(|name| file_in(files.path(), name, &fixture(name)))
        .collect();
    input.send_keys(&more.join("\n")).await.unwrap();
    // And the upload rows gone (each leaves 4 s after its upload): until then the layout still
    // moves, and a click can land on what slid under the pointer.
    browser
        .until(
            "every card to be notified or failed, polling to stop and the upload rows to leave",
            "const cards = [...document.querySelectorAll('#items li.card')]; \
             return cards.length === 5 && cards.every(li => li.dataset.status === 'notified' || li.dataset.status === 'failed') \
               && document.body.dataset.polling === 'off' \
               && document.getElementById('live-text').textContent === 'Up to date' \
               && document.querySelectorAll('#transfers li').length === 0;",
            vec![],
        )
        .await;
    browser
        .until(
            "every thumbnail to load",
            "return [...document.querySelectorAll('#items li.card[data-status=notified] .thumb img')] \
               .filter(img => img.complete && img.naturalWidth > 0 && getComputedStyle(img).opacity === '1').length === 4;",
            vec![],
        )
        .await;
    // Newest first, as the API lists them.
    let api_order: Vec<Value> = all_items(&http, engine.addr)
        .await
        .unwrap()
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    assert_eq!(browser.eval(CARD_IDS, vec![]).await, json!(api_order));
    browser.screenshot(&format!("page-{backend}")).await;

    // The filter: only failed, then only notified, then all again; the address keeps it.
    for (status, count) in [("failed", 1), ("notified", 4)] {
        c.find(Locator::Css(&format!("label[for=filter-{status}]")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        browser
            .until(
                &format!("only {status} items"),
                "const cards = [...document.querySelectorAll('#items li.card')]; \
                 return cards.length === arguments[1] && cards.every(li => li.dataset.status === arguments[0]);",
                vec![json!(status), json!(count)],
            )
            .await;
        let url = c.current_url().await.unwrap();
        assert_eq!(url.query(), Some(format!("status={status}").as_str()));
    }
    c.find(Locator::Css("label[for=filter-stalled]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let none = browser
        .until(
            "the empty state of the stalled filter",
            "const e = document.getElementById('empty'); \
             return document.querySelectorAll('#items li.card').length === 0 && !e.hidden && e.textContent;",
            vec![],
        )
        .await;
    assert!(
        none.as_str().unwrap().contains("No stalled items"),
        "{none}"
    );

    // Paging: two at a time, older pages appended in the API's order until there is no cursor.
    c.goto(&format!("{base}?limit=2")).await.unwrap();
    browser
        .until(
            "the first page of two",
            "return document.querySelectorAll('#items li.card').length === 2 && !document.getElementById('more').hidden;",
            vec![],
        )
        .await;
    assert_eq!(browser.eval(CARD_IDS, vec![]).await, json!(api_order[..2]));
    for shown in [4, 5] {
        c.find(Locator::Id("more-button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        browser
            .until(
                &format!("{shown} cards after another page"),
                "return document.querySelectorAll('#items li.card').length === arguments[0];",
                vec![json!(shown)],
            )
            .await;
    }
    browser
        .until(
            "the last page to hide the button",
            "return document.getElementById('more').hidden;",
            vec![],
        )
        .await;
    assert_eq!(browser.eval(CARD_IDS, vec![]).await, json!(api_order));

    // The placeholder: the item's own `placeholder` (a ThumbHash the process step made of its
    // smallest rendition) is drawn on the card as the thumbhash crate decodes it.
    let item = item_at(&http, engine.addr, item["id"].as_str().unwrap())
        .await
        .unwrap();
    let served = item["placeholder"]
        .as_str()
        .unwrap_or_else(|| panic!("a processed item has a placeholder: {item}"));
    let hash = base64::engine::general_purpose::STANDARD
        .decode(served)
        .expect("the placeholder is base64");
    let thumb_url = item["urls"]["renditions"]["thumbnail"].as_str().unwrap();
    let thumb = http
        .get(thumb_url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let thumb = image::load_from_memory(&thumb)
        .unwrap()
        .thumbnail(100, 100)
        .to_rgba8();
    let (w, h, expected) = thumbhash::thumb_hash_to_rgba(&hash).unwrap();
    let drawn = browser
        .eval(
            "const [item, bytes] = arguments; \
             window.ImagePage.render(Object.assign({}, item, { placeholder: btoa(String.fromCharCode(...bytes)) })); \
             const canvas = document.querySelector(`li[data-id='${item.id}'] .thumb canvas`); \
             if (!canvas) return null; \
             const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data; \
             return [canvas.width, canvas.height, Array.from(px)];",
            vec![item.clone(), json!(hash)],
        )
        .await;
    assert!(!drawn.is_null(), "no placeholder canvas on the card");
    assert_eq!(
        (drawn[0].as_u64(), drawn[1].as_u64()),
        (Some(w as u64), Some(h as u64))
    );
    let drawn: Vec<u8> = serde_json::from_value(drawn[2].clone()).unwrap();
    assert_eq!(drawn.len(), expected.len());
    // The page computes in f64, the crate in f32: a channel may land one step apart.
    let worst = drawn
        .iter()
        .zip(&expected)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(worst <= 1, "placeholder pixels differ by up to {worst}");
    // The check could fail: the mirror image's hash decodes to other pixels.
    let mirrored = image::imageops::flip_horizontal(&thumb);
    let other = thumbhash::rgba_to_thumb_hash(
        mirrored.width() as usize,
        mirrored.height() as usize,
        mirrored.as_raw(),
    );
    assert_ne!(thumbhash::thumb_hash_to_rgba(&other).unwrap().2, expected);

    // An item's `warnings` are shown on its card as text: markup in one is not markup.
    let warnings = json!([
        "PNG iCCP chunk does not inflate; profile not used, taken as sRGB",
        "<img src=x onerror=\"document.title='owned'\">EXIF unreadable"
    ]);
    let shown = browser
        .eval(
            "const [item, warnings] = arguments; \
             window.ImagePage.render(Object.assign({}, item, { warnings })); \
             const card = document.querySelector(`li[data-id='${item.id}']`); \
             return [[...card.querySelectorAll('.warnings .warning-text')].map(w => w.textContent), \
                     card.querySelectorAll('.warnings img').length];",
            vec![item.clone(), warnings.clone()],
        )
        .await;
    assert_eq!(shown[0], warnings, "the card's warnings");
    assert_eq!(shown[1], 0, "a warning's markup became an element");

    // The narrow layout, for a person to look at.
    c.set_window_size(420, 1000).await.unwrap();
    c.goto(&base).await.unwrap();
    browser
        .until(
            "the list at phone width",
            "return document.querySelectorAll('#items li.card').length === 5 && \
               [...document.querySelectorAll('#items .thumb img')] \
                 .every(img => img.complete && getComputedStyle(img).opacity === '1');",
            vec![],
        )
        .await;
    browser.screenshot(&format!("page-{backend}-narrow")).await;

    browser.close().await;
}

/// API Gateway's key check, in front of an engine: `GET /` and the objects (presigned S3 URLs on
/// AWS) pass; any other request without the right `x-api-key` gets API Gateway's own 403.
struct Gateway {
    addr: std::net::SocketAddr,
    refused: Arc<AtomicUsize>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

const API_KEY: &str = "a-usage-plan-key-0123456789";

async fn gateway(engine: std::net::SocketAddr) -> Gateway {
    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::response::Response;

    #[derive(Clone)]
    struct Proxy {
        engine: std::net::SocketAddr,
        http: reqwest::Client,
        refused: Arc<AtomicUsize>,
    }
    async fn forward(State(p): State<Proxy>, req: Request) -> Response {
        let path = req.uri().path().to_owned();
        let open = (req.method() == "GET" && path == "/") || path.starts_with("/objects/");
        let key = req.headers().get("x-api-key").and_then(|v| v.to_str().ok());
        if !open && key != Some(API_KEY) {
            p.refused.fetch_add(1, Ordering::SeqCst);
            return Response::builder()
                .status(403)
                .header("content-type", "application/json")
                .body(Body::from(r#"{"message":"Forbidden"}"#))
                .unwrap();
        }
        let url = format!(
            "http://{}{}",
            p.engine,
            req.uri().path_and_query().unwrap().as_str()
        );
        let mut out = p.http.request(req.method().clone(), url);
        if let Some(t) = req.headers().get("content-type") {
            out = out.header("content-type", t);
        }
        let body = axum::body::to_bytes(req.into_body(), 64 << 20)
            .await
            .unwrap();
        let answer = out.body(body).send().await.unwrap();
        let mut resp = Response::builder().status(answer.status());
        for name in [
            "content-type",
            "content-security-policy",
            "etag",
            "cache-control",
        ] {
            if let Some(v) = answer.headers().get(name) {
                resp = resp.header(name, v);
            }
        }
        resp.body(Body::from(answer.bytes().await.unwrap()))
            .unwrap()
    }

    let refused = Arc::new(AtomicUsize::new(0));
    let proxy = Proxy {
        engine,
        http: client(),
        refused: refused.clone(),
    };
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap()
    });
    Gateway {
        addr,
        refused,
        _stop: stop,
    }
}

#[tokio::test]
async fn the_page_asks_for_the_api_key_once_keeps_it_and_sends_it() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let engine = spawn_engine().await;
    let gw = gateway(engine.addr).await;
    if let Some(w) = &engine.aws {
        // The page PUTs to moto's signed URL; moto sends the notification to a queue, and this
        // stands in for S3 invoking `ingest` (`uploader serve` reads the queue itself).
        w.allow_uploads_from(&format!("http://{}", gw.addr)).await;
        crate::stand_ins::forward_bucket_events(w, engine.engine.clone()).await;
    }
    // Links to objects go through the gateway too, as the page's own origin.
    engine.engine.set_public_url(&format!("http://{}", gw.addr));
    let base = format!("http://{}/", gw.addr);
    let c = &browser.client;
    c.goto(&base).await.unwrap();

    // The first call is refused: the page asks. A wrong key is refused too, and it asks again.
    let dialog_open = "return document.getElementById('key-dialog').open;";
    browser.until("the key dialog", dialog_open, vec![]).await;
    let input = c.find(Locator::Id("key-input")).await.unwrap();
    let save = "#key-form button[type=submit]";
    input.send_keys("not-the-key").await.unwrap();
    c.find(Locator::Css(save))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let said = browser
        .until(
            "the dialog to say the key was refused",
            "const d = document.getElementById('key-dialog'); \
             return d.open && document.getElementById('key-error').textContent;",
            vec![],
        )
        .await;
    assert!(said.as_str().unwrap().contains("refused"), "{said}");
    input.send_keys(API_KEY).await.unwrap();
    c.find(Locator::Css(save))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .until(
            "the list behind the key",
            "const e = document.getElementById('empty'); \
             return !document.getElementById('key-dialog').open && !e.hidden && e.textContent.includes('No uploads yet');",
            vec![],
        )
        .await;
    assert_eq!(gw.refused.load(Ordering::SeqCst), 2);
    let kept = browser
        .eval(
            "return localStorage.getItem('image-uploads.api-key');",
            vec![],
        )
        .await;
    assert_eq!(kept, API_KEY);

    // An upload carries the key (POST /uploads, then POST /upload, GET /items/{id} polls).
    let files = tempfile::tempdir().unwrap();
    let photo = file_in(files.path(), PHOTOS[0], &fixture(PHOTOS[0]));
    let id = browser.pick(&photo).await;
    engine.drain().await;
    browser.notified_with_thumbnail(&id).await;
    assert_eq!(
        gw.refused.load(Ordering::SeqCst),
        2,
        "a call went without the key"
    );

    // A reload asks nothing: the key is kept in the browser.
    c.goto(&base).await.unwrap();
    browser
        .until(
            "the item after a reload",
            "return document.querySelectorAll('#items li.card').length === 1;",
            vec![],
        )
        .await;
    assert_eq!(browser.eval(dialog_open, vec![]).await, false);
    assert_eq!(gw.refused.load(Ordering::SeqCst), 2);

    browser.close().await;
}

#[tokio::test]
async fn an_iphone_heic_picked_in_the_page_reaches_notified_upright_with_its_thumbnail() {
    if !cfg!(feature = "heic") {
        return; // a build without HEIC input refuses it, as docs/imaging.md says
    }
    let Some(browser) = Browser::start().await else {
        return;
    };
    let aws = world().await;
    let mut env = aws.as_ref().map(|w| w.env()).unwrap_or_default();
    if let Some(w) = &aws {
        let queue = w.route_bucket_events().await;
        env.push(("BUCKET_EVENTS_QUEUE_URL".into(), queue));
    }
    let data = tempfile::tempdir().unwrap();
    let engine = spawn_binary(data.path(), &env).await;
    if let Some(w) = &aws {
        w.allow_uploads_from(&format!("http://{}", engine.addr))
            .await;
    }
    let c = &browser.client;
    c.goto(&format!("http://{}/", engine.addr)).await.unwrap();

    // As an iPhone names it; the page takes it whatever type the browser gives the file.
    let files = tempfile::tempdir().unwrap();
    let heic = file_in(
        files.path(),
        "IMG_0001.HEIC",
        &fixture("iphone_grid_1008x756.heic"),
    );
    let id = browser.pick(&heic).await;
    browser.notified_with_thumbnail(&id).await;
    let item = item_at(&client(), engine.addr, id.as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(item["format"], "heic", "{item}");
    // The file's quarter turn applied once: upright, taller than wide.
    assert_eq!(
        (item["width"].as_u64(), item["height"].as_u64()),
        (Some(756), Some(1008)),
        "{item}"
    );
    browser.close().await;
}
