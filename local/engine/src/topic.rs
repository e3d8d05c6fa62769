//! The template's SNS topics, on one machine: a publish goes to every subscription the template
//! gives its topic, inline (`Subscription`) or as an `AWS::SNS::Subscription` resource whose
//! `Condition` holds.
//!
//! - An `email` subscription delivers to the mail folder: one RFC 5322 `.eml` per notice
//!   ([`embedded_adapters::mailbox::Mailbox`]), addressed to the engine's `email` (the template's
//!   endpoint is an inbox given at deploy time).
//! - An `http` or `https` subscription is a webhook ([`crate::webhook`]): its endpoint must be an
//!   `http://` URL (loopback unless the engine allows any host), whatever the protocol says.
//!
//! Every publish is kept in the database, once per notice's dedup key, and queued for the
//! confirmed webhooks in the same transaction, so a notice published twice (a retry after a
//! crash) is mailed and posted once. Any other protocol is refused at start-up.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use embedded_adapters::mailbox::Mailbox;
use embedded_adapters::sqlite::{Database, Publish};
use sam_template::{Names, Resource, Subscription, Template, TemplateError};
use state::{Notice, Notifier, StateError};

use crate::webhook::policy::DeliveryPolicy;
use crate::webhook::{Target, Wake, WebhookLimits, WebhookMetrics};

/// One topic and its subscriptions.
pub struct LocalTopic {
    db: Database,
    mailboxes: Vec<Mailbox>,
    /// Its webhooks' subscription ARNs.
    webhooks: Vec<String>,
    wake: Wake,
    metrics: Option<WebhookMetrics>,
}

#[async_trait]
impl Notifier for LocalTopic {
    /// Records the publish (and queues it for the confirmed webhooks), then mails it.
    async fn publish(&self, notice: &Notice) -> Result<String, StateError> {
        let published = self
            .db
            .record_publish(Publish {
                dedup_key: notice.dedup_key.clone(),
                fresh_id: uuid::Uuid::new_v4().to_string(),
                subject: notice.subject.clone(),
                body: notice.body.clone(),
                document: notice.document.clone(),
                subscriptions: self.webhooks.clone(),
            })
            .await
            .map_err(StateError::Unavailable)?;
        if published.queued > 0 {
            self.wake.send_modify(|n| *n += 1);
        }
        if published.unconfirmed > 0 {
            if let Some(m) = &self.metrics {
                m.unconfirmed
                    .with_label_values(&[embedded_adapters::sqlite::NOTIFICATION])
                    .inc_by(published.unconfirmed as u64);
            }
            tracing::warn!(
                message_id = %published.message_id,
                subscriptions = published.unconfirmed,
                "a notice was not sent to webhooks that are not confirmed yet"
            );
        }
        for mailbox in &self.mailboxes {
            mailbox.deliver(&published.message_id, notice).await?;
        }
        Ok(published.message_id)
    }
}

/// Where the topics deliver.
pub struct Delivery<'a> {
    pub db: &'a Database,
    pub mail_dir: &'a Path,
    pub email: &'a str,
    pub fsync: bool,
    /// Each topic's ARN, by logical id.
    pub arns: &'a BTreeMap<String, String>,
    pub webhook_limits: WebhookLimits,
    /// Where the webhook counters are registered.
    pub metrics: &'a crate::metrics::Metrics,
}

/// The topics, and what their webhooks need.
pub struct Topics {
    /// By logical id.
    pub notifiers: BTreeMap<String, Arc<dyn Notifier>>,
    pub webhooks: Vec<Target>,
    pub wake: Wake,
    pub webhook_metrics: Option<WebhookMetrics>,
}

/// A template's values need no resource names to be subscriptions: their endpoints are
/// parameters.
struct NoNames;

impl Names for NoNames {
    fn resource(&self, _: &str) -> Option<String> {
        None
    }
    fn attribute(&self, _: &str, _: &str) -> Option<String> {
        None
    }
    fn pseudo(&self, _: &str) -> Option<String> {
        None
    }
    fn secret(&self, _: &str) -> Option<String> {
        None
    }
}

/// Every topic of `template`, by logical id, with its subscriptions.
pub fn topics(template: &Template, to: &Delivery) -> Result<Topics, crate::error::EngineError> {
    // (topic, subscription's logical id, the subscription, its delivery policy)
    let mut subscriptions: Vec<(&str, String, &Subscription, Option<&str>)> = Vec::new();
    for (id, spec) in template.resources_where(|r| match r {
        Resource::Topic(spec) => Some(spec),
        _ => None,
    }) {
        for s in &spec.subscriptions {
            subscriptions.push((id, format!("{id}.Subscription"), s, None));
        }
    }
    for (id, spec) in template.resources_where(|r| match r {
        Resource::Subscription(spec) => Some(spec),
        _ => None,
    }) {
        if let Some(condition) = &spec.condition {
            if !template.condition(condition, &NoNames)? {
                continue;
            }
        }
        if !matches!(
            template.resources.get(&spec.topic),
            Some(Resource::Topic(_))
        ) {
            return Err(TemplateError::Invalid {
                at: format!("{id}.TopicArn"),
                what: format!("{} is not a topic of this template", spec.topic),
            }
            .into());
        }
        // What the engine gives up on stays in its outbox, marked given up with the reason
        // (docs/webhooks.md, "On one machine"); the named queue must still be the template's.
        if let Some(queue) = &spec.dead_letters {
            if !matches!(template.resources.get(queue), Some(Resource::Queue(_))) {
                return Err(TemplateError::Invalid {
                    at: format!("{id}.RedrivePolicy"),
                    what: format!("{queue} is not a queue of this template"),
                }
                .into());
            }
        }
        subscriptions.push((
            spec.topic.as_str(),
            id.to_owned(),
            &spec.subscription,
            spec.delivery_policy.as_deref(),
        ));
    }
    let mut mailboxes: BTreeMap<&str, Vec<Mailbox>> = BTreeMap::new();
    let mut hooks: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut targets = Vec::new();
    for (topic, at, subscription, policy) in subscriptions {
        match subscription.protocol.as_str() {
            "email" => mailboxes.entry(topic).or_default().push(Mailbox::new(
                to.db.clone(),
                to.mail_dir.to_owned(),
                to.email,
                to.fsync,
            )?),
            "http" | "https" => {
                let refused = |why: String| TemplateError::NotEmulated {
                    at: at.clone(),
                    setting: format!("Protocol: {}", subscription.protocol),
                    why,
                };
                let endpoint = template.resolve(
                    &subscription.endpoint,
                    &NoNames,
                    &format!("{at}.Endpoint"),
                )?;
                let policy = match policy {
                    None => DeliveryPolicy::default(),
                    Some(json) => DeliveryPolicy::parse(json)
                        .map_err(|e| refused(format!("its DeliveryPolicy: {e}")))?,
                };
                let arn = to.arns.get(topic).cloned().unwrap_or_default();
                let target = Target::new(&at, &arn, &endpoint, policy, &to.webhook_limits)
                    .map_err(refused)?;
                hooks.entry(topic).or_default().push(target.arn.clone());
                targets.push(target);
            }
            other => {
                return Err(TemplateError::NotEmulated {
                    at,
                    setting: format!("Protocol: {other}"),
                    why: "the local engine delivers email and HTTP (webhook) subscriptions only"
                        .into(),
                }
                .into())
            }
        }
    }
    let wake: Wake = Arc::new(tokio::sync::watch::channel(0).0);
    let webhook_metrics = (!targets.is_empty()).then(|| WebhookMetrics::new(to.metrics));
    let mut notifiers = BTreeMap::new();
    for (id, _) in template.resources_where(|r| match r {
        Resource::Topic(_) => Some(()),
        _ => None,
    }) {
        notifiers.insert(
            id.to_owned(),
            Arc::new(LocalTopic {
                db: to.db.clone(),
                mailboxes: mailboxes.remove(id).unwrap_or_default(),
                webhooks: hooks.remove(id).unwrap_or_default(),
                wake: wake.clone(),
                metrics: webhook_metrics.clone(),
            }) as Arc<dyn Notifier>,
        );
    }
    Ok(Topics {
        notifiers,
        webhooks: targets,
        wake,
        webhook_metrics,
    })
}
