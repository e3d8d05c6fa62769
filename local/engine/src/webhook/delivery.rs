//! The outbox's worker: posts what is due, at most [`super::WebhookLimits::max_connections`] at
//! once, each attempt under [`super::WebhookLimits::timeout`], and records how each ended.
//!
//! What counts, as SNS counts it: a 2xx answer delivers the message; 3xx and 4xx give it up at once
//! (SNS takes them as permanent); 1xx, 5xx, a timeout or a connection error fail the attempt,
//! which is tried again after the delivery policy's delay until its retries are spent. An attempt
//! is recorded after it ends: a message in flight when the engine stops is sent again at the next
//! start (at least once); one recorded as delivered is never sent again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::http::{header, Request, Uri};
use embedded_adapters::sqlite::{Attempted, OutboxRow, CONFIRMATION};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::sync::{watch, Mutex};

use super::signing::{timestamp, Signed};
use super::{Target, Webhooks};
use crate::runner::{Pace, Runner};

/// The `User-Agent` SNS sends.
const USER_AGENT: &str = "Amazon Simple Notification Service Agent";

/// The worker, as a [`Runner`] of the engine.
pub struct Deliveries {
    webhooks: Arc<Webhooks>,
    wake: watch::Receiver<u64>,
    /// When each subscription may next be called (its `maxReceivesPerSecond`).
    next_call: Mutex<HashMap<String, Instant>>,
}

impl Deliveries {
    pub fn new(webhooks: Arc<Webhooks>, wake: watch::Receiver<u64>) -> Deliveries {
        Deliveries {
            webhooks,
            wake,
            next_call: Default::default(),
        }
    }
}

/// The JSON body SNS posts, fields in SNS's order.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Envelope<'a> {
    #[serde(rename = "Type")]
    kind: &'a str,
    message_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    topic_arn: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    message: &'a str,
    #[serde(rename = "SubscribeURL", skip_serializing_if = "Option::is_none")]
    subscribe_url: Option<&'a str>,
    timestamp: &'a str,
    signature_version: &'a str,
    signature: &'a str,
    #[serde(rename = "SigningCertURL")]
    signing_cert_url: &'a str,
    #[serde(rename = "UnsubscribeURL", skip_serializing_if = "Option::is_none")]
    unsubscribe_url: Option<&'a str>,
}

/// How one attempt ended.
enum Answer {
    Status(u16),
    Failed(String),
}

#[async_trait]
impl Runner for Deliveries {
    fn name(&self) -> &str {
        "webhooks"
    }

    async fn step(&self) -> anyhow::Result<Pace> {
        let webhooks = &self.webhooks;
        let Some(base) = webhooks.base_url() else {
            return Ok(Pace::Idle);
        };
        let now = state::now_ms();
        let due = webhooks
            .db
            .due_webhooks(now, webhooks.limits.max_connections)
            .await?;
        if due.is_empty() {
            return Ok(match webhooks.db.next_webhook_due().await? {
                Some(at) => Pace::Due(Duration::from_millis((at - now).max(1) as u64)),
                None => Pace::Idle,
            });
        }
        // Each subscription's throttle: a row whose subscription may not be called yet waits.
        let mut ready = Vec::new();
        let mut wait = None::<Duration>;
        {
            let mut next_call = self.next_call.lock().await;
            let now = Instant::now();
            for row in due {
                let Some((target, _)) = webhooks.targets.get(&row.subscription) else {
                    // A subscription the template no longer has: nothing to send it with.
                    webhooks
                        .db
                        .webhook_attempted(row.id, Attempted::GaveUp("no such subscription".into()))
                        .await?;
                    continue;
                };
                let at = next_call.get(&row.subscription).copied().unwrap_or(now);
                if at > now {
                    wait = Some(wait.map_or(at - now, |w| w.min(at - now)));
                    continue;
                }
                next_call.insert(row.subscription.clone(), now + target.policy.min_interval);
                ready.push(row);
            }
        }
        if ready.is_empty() {
            return Ok(match wait {
                Some(pause) => Pace::Retry(pause),
                None => Pace::Busy,
            });
        }
        let attempts = ready.into_iter().map(|row| {
            let base = base.clone();
            async move {
                let answer = self.attempt(&base, &row).await;
                (row, answer)
            }
        });
        for (row, answer) in futures::future::join_all(attempts).await {
            self.record(&row, answer).await?;
        }
        Ok(Pace::Busy)
    }

    fn changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.wake.clone())
    }

    fn idle_wait(&self) -> Duration {
        Duration::from_secs(1)
    }

    /// Not stepped by [`crate::runner::drain`]: a receiver's retries take the policy's delays,
    /// so tests deliver with [`crate::Engine::drain_webhooks`] when they mean to.
    fn drains(&self) -> bool {
        false
    }
}

impl Deliveries {
    /// Posts `row` once.
    async fn attempt(&self, base: &str, row: &OutboxRow) -> Answer {
        let webhooks = &self.webhooks;
        let Some((target, token)) = webhooks.targets.get(&row.subscription) else {
            return Answer::Failed("no such subscription".into());
        };
        let body = envelope(webhooks, base, target, token, row);
        let request = Request::post(target.endpoint.clone())
            .header(header::HOST, host_header(&target.endpoint))
            .header(header::CONTENT_TYPE, &target.policy.content_type)
            .header(header::USER_AGENT, USER_AGENT)
            .header("x-amz-sns-message-type", &row.kind)
            .header("x-amz-sns-message-id", &row.message_id)
            .header("x-amz-sns-topic-arn", &target.topic_arn);
        let request = if row.kind == CONFIRMATION {
            request
        } else {
            request.header("x-amz-sns-subscription-arn", &target.arn)
        };
        let request = match request.body(Full::new(bytes::Bytes::from(body))) {
            Ok(r) => r,
            Err(e) => return Answer::Failed(format!("building the request: {e}")),
        };
        match tokio::time::timeout(
            webhooks.limits.timeout,
            post(
                &target.endpoint,
                request,
                webhooks.limits.any_host,
                webhooks.tls.as_ref(),
            ),
        )
        .await
        {
            Ok(Ok(status)) => Answer::Status(status),
            Ok(Err(e)) => Answer::Failed(e),
            Err(_) => Answer::Failed(format!(
                "no answer within {} s",
                webhooks.limits.timeout.as_secs_f64()
            )),
        }
    }

    /// Records how the attempt at `row` ended, and counts it.
    async fn record(&self, row: &OutboxRow, answer: Answer) -> anyhow::Result<()> {
        let webhooks = &self.webhooks;
        let m = &webhooks.metrics;
        let kind = [row.kind.as_str()];
        let Some((target, _)) = webhooks.targets.get(&row.subscription) else {
            return Ok(());
        };
        let failure = match answer {
            Answer::Status(s @ 200..=299) => {
                tracing::debug!(endpoint = %target.endpoint, status = s, kind = %row.kind, "webhook delivered");
                m.deliveries.with_label_values(&kind).inc();
                return webhooks
                    .db
                    .webhook_attempted(row.id, Attempted::Delivered)
                    .await;
            }
            Answer::Status(s @ 300..=499) => {
                m.failures.with_label_values(&kind).inc();
                m.given_up.with_label_values(&kind).inc();
                tracing::warn!(endpoint = %target.endpoint, status = s, kind = %row.kind, message_id = %row.message_id,
                    "webhook refused the message: not retried (SNS takes 3xx and 4xx as permanent)");
                return webhooks
                    .db
                    .webhook_attempted(row.id, Attempted::GaveUp(format!("answered {s}")))
                    .await;
            }
            Answer::Status(s) => format!("answered {s}"),
            Answer::Failed(why) => why,
        };
        m.failures.with_label_values(&kind).inc();
        let retry = row.attempts + 1;
        if retry > target.policy.retries {
            m.given_up.with_label_values(&kind).inc();
            tracing::warn!(endpoint = %target.endpoint, kind = %row.kind, message_id = %row.message_id,
                attempts = retry, error = %failure, "webhook delivery given up: its delivery policy is spent");
            return webhooks
                .db
                .webhook_attempted(
                    row.id,
                    Attempted::GaveUp(format!("policy spent: {failure}")),
                )
                .await;
        }
        m.retries.with_label_values(&kind).inc();
        let delay = target.policy.delay(retry);
        tracing::info!(endpoint = %target.endpoint, kind = %row.kind, message_id = %row.message_id,
            retry, delay_s = delay.as_secs_f64(), error = %failure, "webhook delivery failed; retrying");
        webhooks
            .db
            .webhook_attempted(
                row.id,
                Attempted::RetryAt(state::now_ms() + delay.as_millis() as i64),
            )
            .await
    }
}

/// The signed JSON body of `row` for `target`.
fn envelope(
    webhooks: &Webhooks,
    base: &str,
    target: &Target,
    token: &str,
    row: &OutboxRow,
) -> String {
    let query = |pairs: &[(&str, &str)]| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        format!("{base}/sns/?{}", q.finish())
    };
    let confirmation = row.kind == CONFIRMATION;
    let subscribe_url = confirmation.then(|| {
        query(&[
            ("Action", "ConfirmSubscription"),
            ("TopicArn", &target.topic_arn),
            ("Token", token),
        ])
    });
    let unsubscribe_url = (!confirmation)
        .then(|| query(&[("Action", "Unsubscribe"), ("SubscriptionArn", &target.arn)]));
    let timestamp = timestamp(row.timestamp_ms);
    let subject = if confirmation {
        None
    } else {
        row.subject.as_deref()
    };
    let signed = Signed {
        kind: &row.kind,
        message_id: &row.message_id,
        topic_arn: &target.topic_arn,
        message: &row.message,
        timestamp: &timestamp,
        subject,
        subscribe_url: subscribe_url.as_deref(),
        token: confirmation.then_some(token),
    };
    let signature = webhooks.signer.sign(&signed.canonical());
    let cert_url = format!("{base}{}", webhooks.signer.cert_path());
    serde_json::to_string_pretty(&Envelope {
        kind: &row.kind,
        message_id: &row.message_id,
        token: confirmation.then_some(token),
        topic_arn: &target.topic_arn,
        subject,
        message: &row.message,
        subscribe_url: subscribe_url.as_deref(),
        timestamp: &timestamp,
        signature_version: "2",
        signature: &signature,
        signing_cert_url: &cert_url,
        unsubscribe_url: unsubscribe_url.as_deref(),
    })
    .expect("an envelope serialises")
}

fn host_header(uri: &Uri) -> String {
    match (uri.host(), uri.port_u16()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => String::new(),
    }
}

/// Connects to `endpoint` (refusing a name that resolves off loopback unless `any_host`), over TLS
/// with `tls` for an `https://` one, sends `request` on a connection of its own, and returns the
/// answer's status. The answer's body is not read: the connection is closed with it.
async fn post(
    endpoint: &Uri,
    request: Request<Full<bytes::Bytes>>,
    any_host: bool,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<u16, String> {
    let host = endpoint.host().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let https = endpoint.scheme_str() == Some("https");
    let port = endpoint.port_u16().unwrap_or(if https { 443 } else { 80 });
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| format!("resolving {host}: {e}"))?
        .collect();
    // A name checked at start-up may resolve elsewhere later.
    let addr = addrs
        .into_iter()
        .find(|a| any_host || a.ip().is_loopback())
        .ok_or_else(|| format!("{host} resolves to no loopback address"))?;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    if !https {
        return exchange(stream, addr, endpoint, request).await;
    }
    let tls = tls.ok_or_else(|| format!("{endpoint}: no TLS client was made at start"))?;
    // SNI and the name the certificate must hold: the URL's host (an IP address is checked
    // against the certificate's IP addresses).
    let name = rustls_pki_types::ServerName::try_from(bare.to_owned())
        .map_err(|e| format!("{host} as a TLS server name: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS handshake with {host} ({addr}): {e}"))?;
    exchange(stream, addr, endpoint, request).await
}

/// Sends `request` over `io` (a TCP or TLS stream to `addr`) and returns the answer's status.
async fn exchange<Io>(
    io: Io,
    addr: std::net::SocketAddr,
    endpoint: &Uri,
    request: Request<Full<bytes::Bytes>>,
) -> Result<u16, String>
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    // Closed with this future, whether it ends or is dropped (the attempt's timeout): a receiver
    // that never answers holds no connection past it.
    let _connection = AbortOnDrop(tokio::spawn(connection));
    let response = sender.send_request(request).await;
    let response = response.map_err(|e| format!("posting to {endpoint}: {e}"))?;
    // The body is not read: dropping the answer closes the connection.
    Ok(response.status().as_u16())
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
