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
//! - Endpoints are `http://` URLs on loopback unless [`WebhookLimits::any_host`] is set; the engine
//!   has no TLS client, so an `https://` endpoint is refused at start-up.

use std::collections::BTreeMap;
use std::net::IpAddr;
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
#[derive(Debug, Clone, Copy)]
pub struct WebhookLimits {
    /// Deliver to endpoints that are not on loopback (off: they are refused at start-up).
    pub any_host: bool,
    /// How long one attempt may take, connection to status line (SNS: 15 s).
    pub timeout: Duration,
    /// Attempts in flight at once, across every subscription: the connections a slow or hanging
    /// receiver can hold.
    pub max_connections: usize,
}

impl Default for WebhookLimits {
    fn default() -> Self {
        WebhookLimits {
            any_host: false,
            timeout: Duration::from_secs(15),
            max_connections: 4,
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

/// `endpoint` as a URL the engine delivers to: `http://`, with a host, on loopback unless
/// `limits.any_host`.
fn check_endpoint(endpoint: &str, limits: &WebhookLimits) -> Result<Uri, String> {
    let uri: Uri = endpoint
        .parse()
        .map_err(|e| format!("{endpoint:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "{endpoint}: the local engine delivers over plain HTTP only (it has no TLS \
                 client); give an http:// URL, such as a receiver on 127.0.0.1"
            ))
        }
        _ => return Err(format!("{endpoint:?}: an http:// URL is needed")),
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
    fn only_loopback_http_endpoints_unless_allowed() {
        let local = WebhookLimits::default();
        for ok in [
            "http://127.0.0.1:9000/hook",
            "http://[::1]:9000/",
            "http://localhost/x",
        ] {
            assert!(check_endpoint(ok, &local).is_ok(), "{ok}");
        }
        for refused in [
            "http://192.168.1.5/hook",
            "http://example.com/hook",
            "https://127.0.0.1/hook",
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
        assert!(check_endpoint("https://example.com/hook", &anywhere).is_err());
    }
}
