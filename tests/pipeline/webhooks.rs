//! The topic's webhook (`WebhookUrl`), delivered as SNS delivers to an HTTP subscription, to a
//! receiver on loopback that checks every message the way SNS's documentation says: the
//! `SigningCertURL` is the engine's, the certificate is fetched from it, the string to sign is
//! rebuilt from the message's fields, and the `SignatureVersion` 2 signature (RSA, SHA-256) is
//! verified with ring, not with the engine's own RSA code.
//!
//! The test template is template.yaml with a short `DeliveryPolicy` on the webhook subscription
//! (1 s between retries instead of SNS's default 20 s); the engine reads it as SNS would.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use local_engine::{Engine, EngineConfig};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Mutex};
use x509_cert::der::DecodePem;

use crate::helpers::{client, fixture, init_logging, upload_jpeg_ok};

/// Retries 1 s apart, three of them.
const POLICY: &str = "      DeliveryPolicy:
        healthyRetryPolicy:
          minDelayTarget: 1
          maxDelayTarget: 1
          numRetries: 3
";

fn test_template() -> String {
    let template = local::TEMPLATE.replace(
        "      Endpoint: !Ref WebhookUrl\n",
        &format!("      Endpoint: !Ref WebhookUrl\n{POLICY}"),
    );
    assert_ne!(template, local::TEMPLATE, "the webhook subscription moved");
    template
}

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: String,
}

/// A webhook receiver on loopback: records every POST and answers with the status it is told to
/// (the next `fail` posts get 500).
struct Receiver {
    got: Mutex<mpsc::UnboundedReceiver<Received>>,
    fail: Arc<AtomicUsize>,
    /// `https://<host>` when it serves TLS, `http://<addr>` otherwise.
    origin: String,
    /// Why each failed TLS handshake failed (the client refused the certificate, say).
    tls_failed: TlsFailures,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        Receiver::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    async fn start_on(addr: SocketAddr) -> Receiver {
        Receiver::serve(addr, None).await
    }

    /// A receiver on `addr` that serves HTTP, or HTTPS as `tls.0` with `tls.1`'s certificate.
    async fn serve(addr: SocketAddr, tls: Option<(String, Arc<rustls::ServerConfig>)>) -> Receiver {
        let (tx, rx) = mpsc::unbounded_channel();
        let fail = Arc::new(AtomicUsize::new(0));
        let failing = fail.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let tx = tx.clone();
                let failing = failing.clone();
                async move {
                    tx.send(Received { headers, body }).unwrap();
                    let fail = failing
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    if fail {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let tls_failed = TlsFailures::default();
        let origin = match tls {
            None => {
                tokio::spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await
                        .unwrap()
                });
                format!("http://{addr}")
            }
            Some((host, config)) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let failed = tls_failed.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = stopped => {}
                        _ = serve_tls(listener, acceptor, app, failed) => {}
                    }
                });
                format!("https://{host}:{}", addr.port())
            }
        };
        Receiver {
            got: Mutex::new(rx),
            fail,
            origin,
            tls_failed,
            _stop: stop,
        }
    }

    fn url(&self) -> String {
        format!("{}/hook", self.origin)
    }

    /// Everything received since the last call.
    async fn take(&self) -> Vec<Received> {
        let mut got = self.got.lock().await;
        let mut out = Vec::new();
        while let Ok(r) = got.try_recv() {
            out.push(r);
        }
        out
    }
}

type TlsFailures = Arc<std::sync::Mutex<Vec<String>>>;

/// Accepts TLS connections on `listener` and serves `app` on each; records failed handshakes.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: axum::Router,
    failed: TlsFailures,
) {
    use tower::ServiceExt as _;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let failed = failed.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(stream).await {
                Ok(s) => s,
                Err(e) => {
                    failed.lock().unwrap().push(e.to_string());
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                app.clone().oneshot(req.map(axum::body::Body::new))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A CA made here, and a server certificate it signed for `localhost` and 127.0.0.1 and ::1:
/// returns the CA's certificate (PEM) and the server's TLS configuration.
fn test_ca_and_server() -> (String, Arc<rustls::ServerConfig>) {
    use p256::ecdsa::{DerSignature, SigningKey};
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey};
    use std::str::FromStr;
    use x509_cert::builder::{profile, Builder, CertificateBuilder};
    use x509_cert::der::asn1::{Ia5String, OctetString};
    use x509_cert::der::{Decode, Encode, EncodePem};
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::name::Name;
    use x509_cert::serial_number::SerialNumber;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    use x509_cert::time::Validity;

    let key = || {
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
        SigningKey::from_slice(&bytes).unwrap()
    };
    let spki = |key: &SigningKey| {
        let der = key.verifying_key().to_public_key_der().unwrap();
        SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).unwrap()
    };
    let validity = || Validity::from_now(Duration::from_secs(24 * 3600)).unwrap();

    let ca_key = key();
    let ca_name = Name::from_str("CN=Webhook test CA,O=Local engine tests,C=ZZ").unwrap();
    let ca = CertificateBuilder::new(
        profile::cabf::Root::new(false, ca_name.clone()).unwrap(),
        SerialNumber::new(&[1]).unwrap(),
        validity(),
        spki(&ca_key),
    )
    .unwrap()
    .build::<_, DerSignature>(&ca_key)
    .unwrap();

    let server_key = key();
    let names = vec![
        GeneralName::DnsName(Ia5String::new("localhost").unwrap()),
        GeneralName::IpAddress(OctetString::new(vec![127, 0, 0, 1]).unwrap()),
        GeneralName::IpAddress(
            OctetString::new(std::net::Ipv6Addr::LOCALHOST.octets().to_vec()).unwrap(),
        ),
    ];
    let subscriber = profile::cabf::tls::Subscriber {
        certificate_type: profile::cabf::tls::CertificateType::domain_validated(
            Name::from_str("CN=localhost").unwrap(),
            names.clone(),
        )
        .unwrap(),
        issuer: ca_name,
        client_auth: false,
    };
    let mut builder = CertificateBuilder::new(
        subscriber,
        SerialNumber::new(&[2]).unwrap(),
        validity(),
        spki(&server_key),
    )
    .unwrap();
    builder.add_extension(&SubjectAltName(names)).unwrap();
    let server = builder.build::<_, DerSignature>(&ca_key).unwrap();

    let chain = vec![rustls::pki_types::CertificateDer::from(
        server.to_der().unwrap(),
    )];
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(
        server_key
            .to_pkcs8_der()
            .unwrap()
            .as_bytes()
            .to_vec()
            .into(),
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .unwrap();
    let ca_pem = ca.to_pem(x509_cert::der::pem::LineEnding::LF).unwrap();
    (ca_pem, Arc::new(config))
}

/// An engine serving on loopback, over `dir`, with the webhook at `webhook`.
struct Running {
    engine: Arc<Engine>,
    base: String,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn open(
    dir: &std::path::Path,
    webhook: &str,
    configure: impl FnOnce(&mut EngineConfig),
) -> Running {
    init_logging();
    let mut cfg = local::engine_config(dir);
    cfg.retry_backoff = Duration::from_millis(1);
    cfg.template = test_template();
    cfg.parameters
        .insert("WebhookUrl".into(), webhook.to_owned());
    configure(&mut cfg);
    let engine = Arc::new(Engine::open(cfg).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    engine.set_public_url(&base);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server = engine.clone();
    tokio::spawn(async move { server.serve_http(listener, stopped).await.unwrap() });
    Running {
        engine,
        base,
        _stop: stop,
    }
}

impl Running {
    async fn upload(&self, body: Vec<u8>) -> String {
        upload_jpeg_ok(&client(), &self.base, body).await
    }

    async fn metric(&self, name: &str, kind: &str) -> f64 {
        let text = client()
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let prefix = format!("{name}{{type=\"{kind}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{prefix} is not on /metrics:\n{text}"))
            .parse()
            .unwrap()
    }
}

/// Verifies `r` as SNS's documentation says a receiver should, for an engine reached at `base`;
/// returns the message's JSON.
async fn verify(base: &str, r: &Received) -> Result<Value, String> {
    let msg: Value = serde_json::from_str(&r.body).map_err(|e| format!("not JSON: {e}"))?;
    let field = |k: &str| msg[k].as_str().map(str::to_owned);
    let kind = field("Type").ok_or("no Type")?;
    let header = |k: &str| {
        r.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if header("x-amz-sns-message-type") != Some(kind.clone())
        || header("x-amz-sns-message-id") != field("MessageId")
        || header("x-amz-sns-topic-arn") != field("TopicArn")
    {
        return Err(format!("headers disagree with the body: {:?}", r.headers));
    }
    if header("content-type").as_deref() != Some("text/plain; charset=UTF-8") {
        return Err(format!("content type {:?}", header("content-type")));
    }
    if field("SignatureVersion").as_deref() != Some("2") {
        return Err("not SignatureVersion 2".into());
    }
    // The certificate must come from the engine (on AWS: https://sns.<region>.amazonaws.com/).
    let cert_url = field("SigningCertURL").ok_or("no SigningCertURL")?;
    let rest = cert_url
        .strip_prefix(&format!("{base}/sns/SimpleNotificationService-"))
        .ok_or_else(|| format!("{cert_url} is not the engine's"))?;
    if !rest.ends_with(".pem") || rest.contains('/') {
        return Err(format!("{cert_url} is not a certificate of the engine's"));
    }
    let pem = client()
        .get(&cert_url)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    let cert = x509_cert::Certificate::from_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
    let spki = cert.tbs_certificate().subject_public_key_info();
    let public_key = spki.subject_public_key.raw_bytes();
    let names: &[&str] = match kind.as_str() {
        "Notification" => &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ],
        "SubscriptionConfirmation" | "UnsubscribeConfirmation" => &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ],
        other => return Err(format!("unknown Type {other}")),
    };
    let mut canonical = String::new();
    for name in names {
        match field(name) {
            Some(value) => canonical.push_str(&format!("{name}\n{value}\n")),
            None if *name == "Subject" => {}
            None => return Err(format!("no {name}")),
        }
    }
    let signature = base64::engine::general_purpose::STANDARD
        .decode(field("Signature").ok_or("no Signature")?)
        .map_err(|e| format!("Signature is not base64: {e}"))?;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public_key,
    )
    .verify(canonical.as_bytes(), &signature)
    .map_err(|_| "the signature does not verify".to_owned())?;
    Ok(msg)
}

/// Verifies every message of `got` and returns them, asserting they are all of `kind`.
async fn verified(base: &str, got: &[Received], kind: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for r in got {
        let msg = verify(base, r)
            .await
            .unwrap_or_else(|e| panic!("{e}: {}", r.body));
        assert_eq!(msg["Type"], kind, "{msg}");
        out.push(msg);
    }
    out
}

/// Confirms the subscription as a receiver does: GET its SubscribeURL. Returns its ARN.
async fn confirm(confirmation: &Value) -> String {
    let url = confirmation["SubscribeURL"].as_str().unwrap();
    let resp = client().get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let xml = resp.text().await.unwrap();
    xml.split("<SubscriptionArn>")
        .nth(1)
        .and_then(|s| s.split("</SubscriptionArn>").next())
        .unwrap_or_else(|| panic!("no SubscriptionArn in {xml}"))
        .to_owned()
}

/// The engine's pending subscription sends its confirmation: the receiver gets it, verifies it,
/// confirms. Returns the subscription's ARN.
async fn handshake(engine: &Running, receiver: &Receiver) -> String {
    engine.engine.drain_webhooks().await.unwrap();
    let got = receiver.take().await;
    assert_eq!(got.len(), 1, "one confirmation: {got:?}");
    let confirmation = &verified(&engine.base, &got, "SubscriptionConfirmation").await[0];
    confirm(confirmation).await
}

#[tokio::test]
async fn the_webhook_is_confirmed_first_then_gets_each_notice_once_signed() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), &receiver.url(), |_| {}).await;

    // Published before the subscription is confirmed: the receiver gets only the confirmation.
    let early = engine.upload(fixture("FreshFlower.jpg")).await;
    engine.engine.drain().await.unwrap();
    engine.engine.drain_webhooks().await.unwrap();
    let got = receiver.take().await;
    assert_eq!(got.len(), 1, "only the confirmation: {got:?}");
    let confirmation = verified(&engine.base, &got, "SubscriptionConfirmation").await;
    let confirmation = &confirmation[0];
    assert!(confirmation["Token"].as_str().unwrap().len() >= 32);
    assert!(got[0].headers.get("x-amz-sns-subscription-arn").is_none());
    if std::env::var_os("WEBHOOK_ENVELOPE").is_some() {
        println!(
            "--- headers\n{:#?}\n--- body\n{}",
            got[0].headers, got[0].body
        );
    }
    assert_eq!(
        engine
            .metric(pipeline_metrics::WEBHOOK_UNCONFIRMED, "Notification")
            .await,
        1.0
    );
    let arn = confirm(confirmation).await;
    assert!(
        arn.starts_with(confirmation["TopicArn"].as_str().unwrap()),
        "{arn}"
    );

    let id = engine.upload(fixture("GreenMeadow.jpg")).await;
    engine.engine.drain().await.unwrap();
    engine.engine.drain_webhooks().await.unwrap();
    let got = receiver.take().await;
    assert_eq!(got.len(), 1, "one notification: {got:?}");
    let notification = &verified(&engine.base, &got, "Notification").await[0];
    assert_eq!(
        got[0].headers["x-amz-sns-subscription-arn"]
            .to_str()
            .unwrap(),
        arn
    );
    assert_eq!(
        got[0].headers["user-agent"].to_str().unwrap(),
        "Amazon Simple Notification Service Agent"
    );
    // The Message is the notice's document; the Subject is the mail's.
    let document: Value = serde_json::from_str(notification["Message"].as_str().unwrap()).unwrap();
    assert_eq!(document["id"], id.as_str());
    assert_eq!(document["status"], "notified");
    assert_eq!(notification["Subject"], format!("Image processed: {id}"));
    assert_ne!(document["id"], early.as_str());
    let unsubscribe = notification["UnsubscribeURL"].as_str().unwrap();
    assert!(unsubscribe.starts_with(&format!("{}/sns/?Action=Unsubscribe&", engine.base)));
    if std::env::var_os("WEBHOOK_ENVELOPE").is_some() {
        println!(
            "--- headers\n{:#?}\n--- body\n{}",
            got[0].headers, got[0].body
        );
    }

    // Nothing more: not the early notice, not this one again.
    engine.engine.drain().await.unwrap();
    engine.engine.drain_webhooks().await.unwrap();
    assert!(receiver.take().await.is_empty());
    assert_eq!(
        engine
            .metric(pipeline_metrics::WEBHOOK_DELIVERIES, "Notification")
            .await,
        1.0
    );

    // The verifier is real: any change to a signed field, or a certificate from elsewhere, fails.
    let tamper = |from: &str, to: &str| {
        let mut r = got[0].clone();
        assert!(r.body.contains(from), "{from} in {}", r.body);
        r.body = r.body.replacen(from, to, 1);
        r
    };
    let status = r#"\"status\":\"notified\""#;
    for bad in [
        tamper(status, r#"\"status\":\"failed\""#),
        tamper("Image processed", "Image deleted"),
        tamper(
            notification["Timestamp"].as_str().unwrap(),
            "2012-05-02T00:54:06.655Z",
        ),
        tamper(&engine.base, "http://127.0.0.2:1"),
    ] {
        assert!(verify(&engine.base, &bad).await.is_err(), "{}", bad.body);
    }
    assert!(verify(&engine.base, &got[0]).await.is_ok());

    // The UnsubscribeURL ends the subscription: the next notice is not sent.
    let resp = client().get(unsubscribe).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("<UnsubscribeResponse"));
    engine.upload(fixture("Aqua.jpg")).await;
    engine.engine.drain().await.unwrap();
    engine.engine.drain_webhooks().await.unwrap();
    assert!(receiver.take().await.is_empty());
    assert_eq!(
        engine
            .metric(pipeline_metrics::WEBHOOK_UNCONFIRMED, "Notification")
            .await,
        2.0
    );
}

#[tokio::test]
async fn a_receiver_answering_500_gets_retries_then_the_message() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), &receiver.url(), |_| {}).await;
    handshake(&engine, &receiver).await;

    receiver.fail.store(2, Ordering::SeqCst);
    let id = engine.upload(fixture("FreshFlower.jpg")).await;
    engine.engine.drain().await.unwrap();
    engine.engine.drain_webhooks().await.unwrap();
    let got = receiver.take().await;
    assert_eq!(
        got.len(),
        3,
        "two failed attempts, then the one answered 200"
    );
    let messages = verified(&engine.base, &got, "Notification").await;
    // The same message each time: its id, its signature.
    for m in &messages {
        assert_eq!(m, &messages[0]);
    }
    let document: Value = serde_json::from_str(messages[0]["Message"].as_str().unwrap()).unwrap();
    assert_eq!(document["id"], id.as_str());
    let kind = "Notification";
    assert_eq!(
        engine
            .metric(pipeline_metrics::WEBHOOK_FAILURES, kind)
            .await,
        2.0
    );
    assert_eq!(
        engine.metric(pipeline_metrics::WEBHOOK_RETRIES, kind).await,
        2.0
    );
    assert_eq!(
        engine
            .metric(pipeline_metrics::WEBHOOK_DELIVERIES, kind)
            .await,
        1.0
    );

    // A receiver that keeps failing gets the first attempt and the policy's 3 retries, no more.
    receiver.fail.store(usize::MAX, Ordering::SeqCst);
    engine.upload(fixture("GreenMeadow.jpg")).await;
    engine.engine.drain().await.unwrap();
    engine.engine.drain_webhooks().await.unwrap();
    assert_eq!(receiver.take().await.len(), 4);
    assert_eq!(
        engine
            .metric(pipeline_metrics::WEBHOOK_GIVEN_UP, kind)
            .await,
        1.0
    );
}

#[tokio::test]
async fn each_notice_is_delivered_once_across_a_restart() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path(), &receiver.url(), |_| {}).await;
    handshake(&first, &receiver).await;
    // Published, queued in the outbox, not yet delivered when the engine stops.
    let mut ids = vec![
        first.upload(fixture("FreshFlower.jpg")).await,
        first.upload(fixture("GreenMeadow.jpg")).await,
    ];
    first.engine.drain().await.unwrap();
    drop(first);

    // The restarted engine neither asks for confirmation again nor loses what was queued.
    let second = open(dir.path(), &receiver.url(), |_| {}).await;
    second.engine.drain().await.unwrap();
    second.engine.drain_webhooks().await.unwrap();
    let got = receiver.take().await;
    let mut delivered: Vec<String> = verified(&second.base, &got, "Notification")
        .await
        .iter()
        .map(|m| {
            let d: Value = serde_json::from_str(m["Message"].as_str().unwrap()).unwrap();
            d["id"].as_str().unwrap().to_owned()
        })
        .collect();
    delivered.sort();
    ids.sort();
    assert_eq!(delivered, ids, "each notice once");
    drop(second);

    // Delivered is delivered: a third start sends nothing.
    let third = open(dir.path(), &receiver.url(), |_| {}).await;
    third.engine.drain().await.unwrap();
    third.engine.drain_webhooks().await.unwrap();
    assert!(receiver.take().await.is_empty());
}

#[tokio::test]
async fn a_hanging_receiver_holds_a_bounded_number_of_connections() {
    // A receiver that answers the confirmation and then never answers: it counts the connections
    // open at once (each is open until the engine closes it).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let open_now = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let hung = Arc::new(AtomicUsize::new(0));
    let (confirmations, mut confirmation) = mpsc::unbounded_channel::<String>();
    let (o, m, h) = (open_now.clone(), most.clone(), hung.clone());
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let (o, m, h, confirmations) = (o.clone(), m.clone(), h.clone(), confirmations.clone());
            tokio::spawn(async move {
                let now = o.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        break; // the engine closed it
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request);
                    if text.contains("x-amz-sns-message-type: SubscriptionConfirmation")
                        && text.trim_end().ends_with('}')
                    {
                        let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
                        confirmations.send(body.to_owned()).unwrap();
                        let _ = socket
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await;
                        break;
                    }
                    if text.contains("x-amz-sns-message-type: Notification") {
                        h.fetch_add(1, Ordering::SeqCst);
                        // Never answers; waits for the engine to give up on it.
                        while socket.read(&mut buf).await.unwrap_or(0) > 0 {}
                        break;
                    }
                }
                o.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), &url, |cfg| {
        cfg.webhooks.timeout = Duration::from_millis(300);
        cfg.webhooks.max_connections = 2;
    })
    .await;
    engine.engine.drain_webhooks().await.unwrap();
    let body = confirmation.recv().await.unwrap();
    let resp = client()
        .get(
            serde_json::from_str::<Value>(&body).unwrap()["SubscribeURL"]
                .as_str()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    for photo in ["FreshFlower.jpg", "GreenMeadow.jpg", "Aqua.jpg"] {
        engine.upload(fixture(photo)).await;
    }
    engine.engine.drain().await.unwrap();
    // Every attempt times out; the policy is spent for all three notices, two at a time at most.
    engine.engine.drain_webhooks().await.unwrap();
    assert_eq!(
        hung.load(Ordering::SeqCst),
        3 * 4,
        "each notice: 1 attempt + 3 retries"
    );
    assert!(
        most.load(Ordering::SeqCst) <= 2,
        "{} connections at once",
        most.load(Ordering::SeqCst)
    );
    assert_eq!(
        engine
            .metric(pipeline_metrics::WEBHOOK_GIVEN_UP, "Notification")
            .await,
        3.0
    );
}

#[tokio::test]
async fn a_receiver_stalling_the_tls_handshake_is_given_up_on_under_the_timeout() {
    // Takes the connection and the ClientHello, never answers it: each attempt's timeout must
    // cover the handshake and close the connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/hook", listener.local_addr().unwrap());
    let open_now = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let hellos = Arc::new(AtomicUsize::new(0));
    let (o, m, h) = (open_now.clone(), most.clone(), hellos.clone());
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let (o, m, h) = (o.clone(), m.clone(), h.clone());
            tokio::spawn(async move {
                let now = o.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                // A TLS handshake record (content type 22) opens the connection.
                if socket.read(&mut buf).await.unwrap_or(0) > 0 && buf[0] == 22 {
                    h.fetch_add(1, Ordering::SeqCst);
                }
                while socket.read(&mut buf).await.unwrap_or(0) > 0 {}
                o.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), &url, |cfg| {
        cfg.webhooks.timeout = Duration::from_millis(300);
    })
    .await;
    engine.engine.drain_webhooks().await.unwrap();
    let kind = "SubscriptionConfirmation";
    assert_eq!(hellos.load(Ordering::SeqCst), 4, "1 attempt + 3 retries");
    assert_eq!(
        engine
            .metric(pipeline_metrics::WEBHOOK_FAILURES, kind)
            .await,
        4.0
    );
    assert_eq!(
        engine
            .metric(pipeline_metrics::WEBHOOK_GIVEN_UP, kind)
            .await,
        1.0
    );
    assert_eq!(most.load(Ordering::SeqCst), 1);
    // The engine closed every one of them (the receiver sees the end a moment later).
    eventually("every stalled connection closed", || {
        let open = open_now.load(Ordering::SeqCst);
        async move { open == 0 }
    })
    .await;
}

#[tokio::test]
async fn an_https_receiver_is_delivered_to_only_when_its_certificate_is_trusted() {
    let (ca_pem, server_tls) = test_ca_and_server();
    // By name, as a real receiver is reached: `localhost`, on the address the engine will pick
    // for it (the first loopback one it resolves to).
    let addr = tokio::net::lookup_host(("localhost", 0))
        .await
        .unwrap()
        .find(|a| a.ip().is_loopback())
        .expect("localhost resolves to loopback");
    let receiver = Receiver::serve(addr, Some(("localhost".into(), server_tls))).await;
    assert!(receiver.url().starts_with("https://localhost:"));
    let kind = "SubscriptionConfirmation";

    // Without the CA file the certificate is not trusted: every attempt (the first and the
    // policy's 3 retries) fails in the TLS handshake, is counted, and nothing is delivered.
    let untrusting = tempfile::tempdir().unwrap();
    let engine = open(untrusting.path(), &receiver.url(), |_| {}).await;
    engine.engine.drain_webhooks().await.unwrap();
    assert!(receiver.take().await.is_empty());
    // The receiver sees the last refusal a moment after the engine has recorded it.
    let refused = || receiver.tls_failed.lock().unwrap().clone();
    eventually("the receiver's 4 failed handshakes", || {
        let n = refused().len();
        async move { n >= 4 }
    })
    .await;
    let refused = refused();
    assert_eq!(refused.len(), 4, "{refused:?}");
    // The engine's TLS client refused the certificate: an unknown issuer.
    for why in &refused {
        assert!(why.contains("UnknownCA"), "{why}");
    }
    assert_eq!(
        engine
            .metric(pipeline_metrics::WEBHOOK_FAILURES, kind)
            .await,
        4.0
    );
    assert_eq!(
        engine.metric(pipeline_metrics::WEBHOOK_RETRIES, kind).await,
        3.0
    );
    assert_eq!(
        engine
            .metric(pipeline_metrics::WEBHOOK_GIVEN_UP, kind)
            .await,
        1.0
    );
    assert_eq!(
        engine
            .metric(pipeline_metrics::WEBHOOK_DELIVERIES, kind)
            .await,
        0.0
    );
    drop(engine);

    // With the test CA in the CA file: the confirmation and then a notice arrive over TLS, and
    // verify as over plain HTTP.
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("webhook-ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let engine = open(dir.path(), &receiver.url(), |cfg| {
        cfg.webhooks.ca_file = Some(ca_file.clone())
    })
    .await;
    let arn = handshake(&engine, &receiver).await;
    let id = engine.upload(fixture("GreenMeadow.jpg")).await;
    engine.engine.drain().await.unwrap();
    engine.engine.drain_webhooks().await.unwrap();
    let got = receiver.take().await;
    assert_eq!(got.len(), 1, "one notification: {got:?}");
    let notification = &verified(&engine.base, &got, "Notification").await[0];
    assert_eq!(
        got[0].headers["x-amz-sns-subscription-arn"]
            .to_str()
            .unwrap(),
        arn
    );
    let document: Value = serde_json::from_str(notification["Message"].as_str().unwrap()).unwrap();
    assert_eq!(document["id"], id.as_str());
    assert_eq!(
        engine
            .metric(pipeline_metrics::WEBHOOK_DELIVERIES, "Notification")
            .await,
        1.0
    );
    assert_eq!(
        receiver.tls_failed.lock().unwrap().len(),
        4,
        "no new failure"
    );
}

#[tokio::test]
async fn a_webhook_off_loopback_is_refused_at_start_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = local::engine_config(dir.path());
    cfg.parameters
        .insert("WebhookUrl".into(), "http://192.0.2.1/hook".into());
    let err = Engine::open(cfg.clone())
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("loopback only") && err.contains("--webhook-any-host"),
        "{err}"
    );

    cfg.webhooks.any_host = true;
    Engine::open(cfg.clone()).await.unwrap();

    cfg.parameters
        .insert("WebhookUrl".into(), "https://example.com/hook".into());
    Engine::open(cfg.clone()).await.unwrap();

    // A CA file that cannot be read, or holds no certificate, stops the start.
    for (contents, says) in [
        (None, "reading the webhook CA file"),
        (Some("not PEM\n"), "no PEM"),
    ] {
        let path = dir.path().join("ca.pem");
        let _ = std::fs::remove_file(&path);
        if let Some(c) = contents {
            std::fs::write(&path, c).unwrap();
        }
        let mut with_ca = cfg.clone();
        with_ca.webhooks.ca_file = Some(path);
        let err = Engine::open(with_ca)
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains(says), "{err}");
    }
    cfg.parameters
        .insert("WebhookUrl".into(), "ftp://127.0.0.1/hook".into());
    let err = Engine::open(cfg.clone())
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("http:// or https:// URL"), "{err}");

    // A delivery policy SNS would refuse is refused, by name.
    cfg.parameters
        .insert("WebhookUrl".into(), "http://127.0.0.1:9/hook".into());
    cfg.template = test_template().replace("numRetries: 3", "numRetries: 101");
    let err = Engine::open(cfg).await.err().expect("refused").to_string();
    assert!(
        err.contains("WebhookSubscription")
            && err.contains("DeliveryPolicy")
            && err.contains("101"),
        "{err}"
    );
}

#[test]
fn uploader_serve_refuses_a_webhook_off_loopback_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |any_host: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_uploader"));
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(["--parameter", "WebhookUrl=http://192.0.2.1/hook"])
            .env_remove("WEBHOOK_ANY_HOST")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if any_host {
            // Boolean settings from the environment take 1 as well as true (clap's own flag
            // parser took only true/false); S3_FORCE_PATH_STYLE is another.
            command
                .env("WEBHOOK_ANY_HOST", "1")
                .env("S3_FORCE_PATH_STYLE", "1");
        }
        command.spawn().unwrap()
    };
    let refused = serve(false).wait_with_output().unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("loopback only") && stderr.contains("--webhook-any-host"),
        "{stderr}"
    );

    // Told, it starts (and is stopped here once it says where it listens).
    let mut started = serve(true);
    let stdout = started.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap_or_default());
        }
    });
    let listening = std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(120)).ok())
        .any(|line| line.starts_with("Upload API listening"));
    started.kill().unwrap();
    let output = started.wait_with_output().unwrap();
    assert!(
        listening,
        "it did not start: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `uploader serve` on `addr` over `dir`, with the test template and the webhook at `webhook`;
/// returns once it listens.
fn spawn_uploader(dir: &std::path::Path, addr: SocketAddr, webhook: &str) -> std::process::Child {
    let template = dir.join("template.yaml");
    std::fs::write(&template, test_template()).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_uploader"))
        .args(["serve", "--addr", &addr.to_string(), "--data-dir"])
        .arg(dir.join("data"))
        .arg("--template")
        .arg(&template)
        .args(["--parameter", &format!("WebhookUrl={webhook}")])
        .stdout(std::process::Stdio::piped())
        .stderr(if std::env::var_os("TEST_LOG").is_some() {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::null()
        })
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap_or_default());
        }
    });
    let listening = std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(120)).ok())
        .any(|line| line.starts_with("Upload API listening"));
    assert!(listening, "uploader serve did not start");
    child
}

/// Polls `check` until it holds, for up to a minute.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test]
async fn notices_published_while_the_receiver_is_down_arrive_once_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let hook_addr = free_port();
    let hook = format!("http://{hook_addr}/hook");
    let engine_addr = free_port();
    let base = format!("http://{engine_addr}");

    // The running engine (the real binary): the receiver confirms, then goes away.
    let mut uploader = spawn_uploader(dir.path(), engine_addr, &hook);
    let receiver = Receiver::start_on(hook_addr).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let got = loop {
        let got = receiver.take().await;
        if !got.is_empty() {
            break got;
        }
        assert!(std::time::Instant::now() < deadline, "no confirmation");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let confirmation = &verified(&base, &got, "SubscriptionConfirmation").await[0];
    confirm(confirmation).await;
    drop(receiver);

    let http = client();
    let mut ids = Vec::new();
    for photo in ["FreshFlower.jpg", "GreenMeadow.jpg"] {
        ids.push(upload_jpeg_ok(&http, &base, fixture(photo)).await);
    }
    // Each notice was tried (the receiver is down: no connection) and waits for its retry.
    eventually("a failed attempt at each notice", || {
        let http = &http;
        let base = &base;
        async move {
            let text = match http.get(format!("{base}/metrics")).send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => return false,
            };
            let prefix = format!(
                "{}{{type=\"Notification\"}} ",
                pipeline_metrics::WEBHOOK_FAILURES
            );
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|n| n >= 2.0)
        }
    })
    .await;
    // A crash: no chance to record anything more.
    uploader.kill().unwrap();
    uploader.wait().unwrap();

    // The receiver is back; the engine starts again (in this process) and delivers each once.
    let receiver = Receiver::start_on(hook_addr).await;
    let engine = open(&dir.path().join("data"), &hook, |_| {}).await;
    engine.engine.drain().await.unwrap();
    engine.engine.drain_webhooks().await.unwrap();
    let got = receiver.take().await;
    let mut delivered: Vec<String> = verified(&engine.base, &got, "Notification")
        .await
        .iter()
        .map(|m| {
            let d: Value = serde_json::from_str(m["Message"].as_str().unwrap()).unwrap();
            d["id"].as_str().unwrap().to_owned()
        })
        .collect();
    delivered.sort();
    ids.sort();
    assert_eq!(delivered, ids, "each notice once, and no new confirmation");
}
