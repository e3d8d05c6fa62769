//! The topics' HTTP/S subscriptions (webhooks), delivered as SNS delivers them.
//!
//! - Each subscription starts pending: the engine sends its endpoint a `SubscriptionConfirmation`
//!   whose `SubscribeURL` (`GET /sns/?Action=ConfirmSubscription&TopicArn=..&Token=..`, served by
//!   the engine) confirms it. The confirmation is kept in the database, so a restart does not ask
//!   again; a subscription still pending at a start is sent a confirmation again.
//! - A notice published while a subscription is pending is not sent to it, as SNS drops it
//!   (counted in `pipeline_webhook_unconfirmed_total`). Once confirmed, each notice is queued for
//!   it in the same transaction that records the publish (`embedded_adapters::sqlite::Publish`),
//!   and a worker ([`delivery::Deliveries`]) posts it as a signed `Notification`
//!   ([`signing::Signer`]) until the endpoint answers 2xx, it answers 3xx or 4xx (which SNS takes
//!   as a permanent failure), or the delivery policy ([`policy::DeliveryPolicy`]) is spent.
//! - Endpoints are `http://` or `https://` URLs on loopback unless [`WebhookLimits::any_host`] is
//!   set. An `https://` endpoint's certificate is verified (rustls, [`tls_client`]) against the
//!   system's roots plus [`WebhookLimits::ca_file`]'s, for the URL's host.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use embedded_adapters::sqlite::Database;
use prometheus::IntCounterVec;
use tokio::sync::watch;

pub mod delivery;
pub mod policy;
pub mod signing;

use policy::DeliveryPolicy;
use signing::Signer;

/// What a webhook delivery may cost, and where it may go.
#[derive(Debug, Clone)]
pub struct WebhookLimits {
    /// Deliver to endpoints that are not on loopback (off: they are refused at start-up).
    pub any_host: bool,
    /// How long one attempt may take, connection to status line (SNS: 15 s).
    pub timeout: Duration,
    /// Attempts in flight at once, across every subscription: the connections a slow or hanging
    /// receiver can hold.
    pub max_connections: usize,
    /// CA certificates (PEM) trusted for `https://` endpoints besides the system's, for a
    /// receiver with a CA of its own.
    pub ca_file: Option<PathBuf>,
}

impl Default for WebhookLimits {
    fn default() -> Self {
        WebhookLimits {
            any_host: false,
            timeout: Duration::from_secs(15),
            max_connections: 4,
            ca_file: None,
        }
    }
}

/// One HTTP/S subscription, as the template gives it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The subscription's logical id in the template (or its topic's, for an inline one).
    pub logical_id: String,
    pub topic_arn: String,
    /// `<topic ARN>:<uuid>`, the same for the same topic and endpoint.
    pub arn: String,
    pub endpoint: Uri,
    pub policy: DeliveryPolicy,
}

impl Target {
    /// The subscription of `endpoint` (checked) to `topic_arn`.
    pub fn new(
        logical_id: &str,
        topic_arn: &str,
        endpoint: &str,
        policy: DeliveryPolicy,
        limits: &WebhookLimits,
    ) -> Result<Target, String> {
        let endpoint = check_endpoint(endpoint, limits)?;
        let id = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_URL,
            format!("{topic_arn} {endpoint}").as_bytes(),
        );
        Ok(Target {
            logical_id: logical_id.to_owned(),
            topic_arn: topic_arn.to_owned(),
            arn: format!("{topic_arn}:{id}"),
            endpoint,
            policy,
        })
    }
}

/// `endpoint` as a URL the engine delivers to: `http://` or `https://`, with a host, on loopback
/// unless `limits.any_host`.
fn check_endpoint(endpoint: &str, limits: &WebhookLimits) -> Result<Uri, String> {
    let uri: Uri = endpoint
        .parse()
        .map_err(|e| format!("{endpoint:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(format!(
                "{endpoint:?}: an http:// or https:// URL is needed"
            ))
        }
    }
    let host = uri
        .host()
        .ok_or_else(|| format!("{endpoint:?} has no host"))?;
    if !limits.any_host && !is_loopback_host(host) {
        return Err(format!(
            "{endpoint}: webhook targets are loopback only (127.0.0.1, ::1, localhost); \
             start with --webhook-any-host (WEBHOOK_ANY_HOST=1) to deliver elsewhere"
        ));
    }
    Ok(uri)
}

/// The TLS client of `https://` deliveries: rustls (the AWS SDK's stack) on ring, trusting the
/// system's root certificates plus those in `ca_file`. The server's certificate must chain to one
/// of them, be valid now, and name the URL's host (rustls's WebPKI verifier).
pub fn tls_client(ca_file: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    use anyhow::Context;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    for error in &system.errors {
        tracing::warn!(%error, "reading the system's root certificates");
    }
    let (added, ignored) = roots.add_parsable_certificates(system.certs);
    if ignored > 0 {
        tracing::warn!(ignored, "system root certificates rustls cannot use");
    }
    if let Some(path) = ca_file {
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("reading the webhook CA file {}", path.display()))?;
        if certs.is_empty() {
            anyhow::bail!(
                "the webhook CA file {} holds no PEM certificate",
                path.display()
            );
        }
        for cert in certs {
            roots.add(cert).with_context(|| {
                format!("a certificate in the webhook CA file {}", path.display())
            })?;
        }
    }
    if roots.is_empty() {
        tracing::warn!(
            "no root certificates (the system has none and no --webhook-ca-file is given): \
             every https:// webhook delivery will fail"
        );
    }
    tracing::debug!(system = added, total = roots.len(), "webhook TLS roots");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("the TLS client's protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A host that names this machine's loopback: a loopback address, or `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// The webhook metrics, by message type (`pipeline_metrics::WEBHOOK`).
#[derive(Clone)]
pub struct WebhookMetrics {
    pub deliveries: IntCounterVec,
    pub failures: IntCounterVec,
    pub retries: IntCounterVec,
    pub given_up: IntCounterVec,
    pub unconfirmed: IntCounterVec,
}

impl WebhookMetrics {
    pub fn new(metrics: &crate::metrics::Metrics) -> WebhookMetrics {
        use pipeline_metrics as pm;
        let help = |name: &str| {
            pm::WEBHOOK
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, h)| *h)
                .unwrap_or("")
        };
        let counter = |name: &str| {
            let c = metrics.counter(name, help(name), &[pm::MESSAGE_TYPE]);
            for kind in [
                embedded_adapters::sqlite::NOTIFICATION,
                embedded_adapters::sqlite::CONFIRMATION,
            ] {
                c.with_label_values(&[kind]);
            }
            c
        };
        WebhookMetrics {
            deliveries: counter(pm::WEBHOOK_DELIVERIES),
            failures: counter(pm::WEBHOOK_FAILURES),
            retries: counter(pm::WEBHOOK_RETRIES),
            given_up: counter(pm::WEBHOOK_GIVEN_UP),
            unconfirmed: counter(pm::WEBHOOK_UNCONFIRMED),
        }
    }
}

/// The engine's webhooks: their subscriptions, the signer, and the URLs they are sent.
pub struct Webhooks {
    db: Database,
    signer: Signer,
    /// Subscriptions by ARN, each with its token.
    targets: BTreeMap<String, (Target, String)>,
    /// Where the engine is reached (`http://127.0.0.1:3000`); nothing is sent before it is known.
    base_url: RwLock<Option<String>>,
    metrics: WebhookMetrics,
    limits: WebhookLimits,
    /// The TLS client, made at start if an endpoint is `https://` or a CA file is given.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Webhooks {
    /// Registers `targets` (pending unless confirmed before) and queues a confirmation for each
    /// pending one.
    pub async fn start(
        db: Database,
        data_dir: &std::path::Path,
        targets: Vec<Target>,
        metrics: WebhookMetrics,
        limits: WebhookLimits,
    ) -> anyhow::Result<Webhooks> {
        // Made at start, so that a bad CA file stops the engine rather than every delivery.
        let tls = if limits.ca_file.is_some()
            || targets
                .iter()
                .any(|t| t.endpoint.scheme_str() == Some("https"))
        {
            Some(Arc::new(tls_client(limits.ca_file.as_deref())?))
        } else {
            None
        };
        let data_dir = data_dir.to_owned();
        // RSA key generation takes a while: not on the runtime's threads.
        let signer = tokio::task::spawn_blocking(move || Signer::load_or_create(&data_dir))
            .await
            .map_err(|e| anyhow::anyhow!("making the signing key: {e}"))??;
        let mut by_arn = BTreeMap::new();
        for target in targets {
            let mut token = [0u8; 32];
            getrandom::fill(&mut token).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            let token: String = token.iter().map(|b| format!("{b:02x}")).collect();
            let stored = db
                .webhook_subscription(
                    target.topic_arn.clone(),
                    target.endpoint.to_string(),
                    target.arn.clone(),
                    token,
                )
                .await?;
            if stored.confirmed {
                tracing::info!(endpoint = %target.endpoint, subscription = %stored.arn, "webhook confirmed");
            } else {
                let message = format!(
                    "You have chosen to subscribe to the topic {}.\nTo confirm the subscription, \
                     visit the SubscribeURL included in this message.",
                    target.topic_arn
                );
                db.queue_confirmation(
                    stored.arn.clone(),
                    uuid::Uuid::new_v4().to_string(),
                    message,
                )
                .await?;
                tracing::warn!(
                    endpoint = %target.endpoint,
                    "webhook pending confirmation: a SubscriptionConfirmation is on its way; \
                     notices published before its SubscribeURL is visited are not sent to it"
                );
            }
            by_arn.insert(stored.arn, (target, stored.token));
        }
        Ok(Webhooks {
            db,
            signer,
            targets: by_arn,
            base_url: RwLock::new(None),
            metrics,
            limits,
            tls,
        })
    }

    pub fn set_base_url(&self, base: &str) {
        *self.base_url.write().unwrap_or_else(|e| e.into_inner()) =
            Some(base.trim_end_matches('/').to_owned());
    }

    fn base_url(&self) -> Option<String> {
        self.base_url
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The signing certificate, the SubscribeURL and the UnsubscribeURL, under `/sns/`.
    pub fn router(self: &Arc<Self>) -> Router {
        let cert = self.signer.cert_path();
        let pem = self.signer.cert_pem().to_owned();
        Router::new()
            .route(
                &cert,
                axum::routing::get(move || async move {
                    ([(header::CONTENT_TYPE, "application/x-pem-file")], pem)
                }),
            )
            .route("/sns/", axum::routing::get(action))
            .with_state(self.clone())
    }
}

/// `GET /sns/?Action=ConfirmSubscription&TopicArn=..&Token=..` or
/// `GET /sns/?Action=Unsubscribe&SubscriptionArn=..`, answered with SNS's XML.
async fn action(
    State(webhooks): State<Arc<Webhooks>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let get = |k: &str| query.get(k).cloned().unwrap_or_default();
    let request_id = uuid::Uuid::new_v4();
    match get("Action").as_str() {
        "ConfirmSubscription" => {
            match webhooks
                .db
                .confirm_webhook(get("TopicArn"), get("Token"))
                .await
            {
                Ok(Some(arn)) => {
                    tracing::info!(subscription = %arn, "webhook confirmed");
                    xml(
                        StatusCode::OK,
                        format!(
                            "<ConfirmSubscriptionResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">\
                             <ConfirmSubscriptionResult><SubscriptionArn>{arn}</SubscriptionArn></ConfirmSubscriptionResult>\
                             <ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>\
                             </ConfirmSubscriptionResponse>"
                        ),
                    )
                }
                Ok(None) => error_xml(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "no subscription has this token",
                ),
                Err(e) => error_xml(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    &format!("{e:#}"),
                ),
            }
        }
        "Unsubscribe" => match webhooks
            .db
            .unsubscribe_webhook(get("SubscriptionArn"))
            .await
        {
            Ok(true) => {
                tracing::warn!(subscription = %get("SubscriptionArn"), "webhook unsubscribed");
                xml(
                    StatusCode::OK,
                    format!(
                        "<UnsubscribeResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">\
                         <ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>\
                         </UnsubscribeResponse>"
                    ),
                )
            }
            Ok(false) => error_xml(StatusCode::NOT_FOUND, "NotFound", "no such subscription"),
            Err(e) => error_xml(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &format!("{e:#}"),
            ),
        },
        other => error_xml(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            &format!("{other:?}: the engine answers ConfirmSubscription and Unsubscribe"),
        ),
    }
}

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

fn error_xml(status: StatusCode, code: &str, message: &str) -> Response {
    let message = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    xml(
        status,
        format!(
            "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error>\
             <Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error></ErrorResponse>"
        ),
    )
}

/// Ticks when a publish queued something, so the idle worker wakes.
pub type Wake = Arc<watch::Sender<u64>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_and_https_endpoints_unless_allowed() {
        let local = WebhookLimits::default();
        for ok in [
            "http://127.0.0.1:9000/hook",
            "http://[::1]:9000/",
            "http://localhost/x",
            "https://127.0.0.1/hook",
            "https://localhost:8443/hook",
        ] {
            assert!(check_endpoint(ok, &local).is_ok(), "{ok}");
        }
        for refused in [
            "http://192.168.1.5/hook",
            "http://example.com/hook",
            "https://example.com/hook",
            "ftp://127.0.0.1/",
            "not a url",
        ] {
            assert!(check_endpoint(refused, &local).is_err(), "{refused}");
        }
        let anywhere = WebhookLimits {
            any_host: true,
            ..local
        };
        assert!(check_endpoint("http://example.com/hook", &anywhere).is_ok());
        assert!(check_endpoint("https://example.com/hook", &anywhere).is_ok());
        assert!(check_endpoint("ftp://example.com/", &anywhere).is_err());
    }
}
