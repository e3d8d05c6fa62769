//! The topics' HTTP/S subscriptions and their outbox (schema V7).
//!
//! A subscription is pending until its token is confirmed; the confirmation survives restarts. A
//! publish records the notice and, in the same transaction, one outbox row for every confirmed
//! subscription it goes to ([`Database::record_publish`]); a repeat of the publish (same dedup key)
//! finds the notice and queues nothing. Rows are taken by the engine's delivery worker, which
//! marks each done once delivered or given up on.

use rusqlite::{params, OptionalExtension};

use super::Database;

/// The outbox row's kind: a `SubscriptionConfirmation` message.
pub const CONFIRMATION: &str = "SubscriptionConfirmation";
/// The outbox row's kind: a `Notification` (a published notice).
pub const NOTIFICATION: &str = "Notification";

/// One subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSubscription {
    pub arn: String,
    pub token: String,
    pub confirmed: bool,
}

/// A notice to publish to a topic.
#[derive(Debug, Clone)]
pub struct Publish {
    pub dedup_key: String,
    /// The message id to record if the notice is new.
    pub fresh_id: String,
    pub subject: String,
    /// The mail's text (the `notices` row).
    pub body: String,
    /// What HTTP/S subscriptions get as `Message`.
    pub document: String,
    /// The topic's HTTP/S subscriptions, by ARN.
    pub subscriptions: Vec<String>,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub message_id: String,
    /// Whether the notice was new (false: a repeat, nothing queued).
    pub new: bool,
    /// Outbox rows written (one per confirmed subscription).
    pub queued: usize,
    /// Subscriptions still pending, which the notice does not go to (as SNS drops it for them).
    pub unconfirmed: usize,
}

/// One message waiting to be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub subscription: String,
    pub message_id: String,
    /// [`CONFIRMATION`] or [`NOTIFICATION`].
    pub kind: String,
    pub subject: Option<String>,
    pub message: String,
    /// When it was published (epoch ms): the envelope's `Timestamp`.
    pub timestamp_ms: i64,
    /// Attempts made so far.
    pub attempts: u32,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempted {
    Delivered,
    /// Failed; try again at this time (epoch ms).
    RetryAt(i64),
    /// Failed for good (the policy is spent, or the endpoint refused it): why.
    GaveUp(String),
}

impl Database {
    /// The subscription of `endpoint` to `topic_arn`, made pending with `fresh_arn` and
    /// `fresh_token` if there is none.
    pub async fn webhook_subscription(
        &self,
        topic_arn: String,
        endpoint: String,
        fresh_arn: String,
        fresh_token: String,
    ) -> anyhow::Result<WebhookSubscription> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT OR IGNORE INTO webhook_subscriptions (arn, topic_arn, endpoint, token, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![fresh_arn, topic_arn, endpoint, fresh_token, state::now_ms()])?;
            Ok(c.prepare_cached(
                "SELECT arn, token, confirmed_ms IS NOT NULL FROM webhook_subscriptions
                 WHERE topic_arn = ?1 AND endpoint = ?2",
            )?
            .query_row(params![topic_arn, endpoint], |r| {
                Ok(WebhookSubscription {
                    arn: r.get(0)?,
                    token: r.get(1)?,
                    confirmed: r.get(2)?,
                })
            })?)
        })
        .await
    }

    /// Confirms the subscription to `topic_arn` whose token is `token`: its ARN, or `None` if no
    /// subscription has that token. Confirming again is harmless.
    pub async fn confirm_webhook(
        &self,
        topic_arn: String,
        token: String,
    ) -> anyhow::Result<Option<String>> {
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE webhook_subscriptions SET confirmed_ms = ?3
                 WHERE topic_arn = ?1 AND token = ?2 AND confirmed_ms IS NULL",
            )?
            .execute(params![topic_arn, token, state::now_ms()])?;
            // A confirmation still queued has done its work.
            c.prepare_cached(
                "UPDATE webhook_outbox SET done_ms = ?3, outcome = 'confirmed'
                 WHERE done_ms IS NULL AND kind = 'SubscriptionConfirmation' AND subscription IN
                   (SELECT arn FROM webhook_subscriptions WHERE topic_arn = ?1 AND token = ?2)",
            )?
            .execute(params![topic_arn, token, state::now_ms()])?;
            Ok(c.prepare_cached(
                "SELECT arn FROM webhook_subscriptions WHERE topic_arn = ?1 AND token = ?2",
            )?
            .query_row(params![topic_arn, token], |r| r.get(0))
            .optional()?)
        })
        .await
    }

    /// Deletes the subscription `arn` and gives up on what it had queued; whether there was one.
    pub async fn unsubscribe_webhook(&self, arn: String) -> anyhow::Result<bool> {
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE webhook_outbox SET done_ms = ?2, outcome = 'unsubscribed'
                 WHERE done_ms IS NULL AND subscription = ?1",
            )?
            .execute(params![arn, state::now_ms()])?;
            Ok(
                c.prepare_cached("DELETE FROM webhook_subscriptions WHERE arn = ?1")?
                    .execute([&arn])?
                    > 0,
            )
        })
        .await
    }

    /// Queues a `SubscriptionConfirmation` for the pending subscription `arn`, unless one is
    /// queued already or it is confirmed; whether it queued one.
    pub async fn queue_confirmation(
        &self,
        arn: String,
        message_id: String,
        message: String,
    ) -> anyhow::Result<bool> {
        self.write(move |c| {
            let pending: bool = c
                .prepare_cached(
                    "SELECT confirmed_ms IS NULL FROM webhook_subscriptions WHERE arn = ?1",
                )?
                .query_row([&arn], |r| r.get(0))
                .optional()?
                .unwrap_or(false);
            let queued: bool = c
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM webhook_outbox
                     WHERE subscription = ?1 AND kind = 'SubscriptionConfirmation' AND done_ms IS NULL)",
                )?
                .query_row([&arn], |r| r.get(0))?;
            if !pending || queued {
                return Ok(false);
            }
            let now = state::now_ms();
            c.prepare_cached(
                "INSERT INTO webhook_outbox (subscription, message_id, kind, message, timestamp_ms, next_at_ms)
                 VALUES (?1, ?2, 'SubscriptionConfirmation', ?3, ?4, ?4)",
            )?
            .execute(params![arn, message_id, message, now])?;
            Ok(true)
        })
        .await
    }

    /// Records the notice (once per dedup key, as [`Database::record_notice`]) and, if it is new,
    /// queues it for every confirmed subscription of `publish.subscriptions`, in one transaction:
    /// the notice is either recorded and queued, or neither.
    pub async fn record_publish(&self, publish: Publish) -> anyhow::Result<Published> {
        self.write(move |c| {
            let now = state::now_ms();
            let new = c
                .prepare_cached(
                    "INSERT OR IGNORE INTO notices (dedup_key, message_id, subject, body, published_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    publish.dedup_key,
                    publish.fresh_id,
                    publish.subject,
                    publish.body,
                    now
                ])?
                == 1;
            let message_id: String = c
                .prepare_cached("SELECT message_id FROM notices WHERE dedup_key = ?1")?
                .query_row([&publish.dedup_key], |r| r.get(0))?;
            let mut published = Published {
                message_id,
                new,
                queued: 0,
                unconfirmed: 0,
            };
            if !new {
                return Ok(published);
            }
            for arn in &publish.subscriptions {
                let confirmed: bool = c
                    .prepare_cached(
                        "SELECT confirmed_ms IS NOT NULL FROM webhook_subscriptions WHERE arn = ?1",
                    )?
                    .query_row([arn], |r| r.get(0))
                    .optional()?
                    .unwrap_or(false);
                if !confirmed {
                    published.unconfirmed += 1;
                    continue;
                }
                published.queued += c
                    .prepare_cached(
                        "INSERT OR IGNORE INTO webhook_outbox
                           (subscription, message_id, kind, subject, message, timestamp_ms, next_at_ms)
                         VALUES (?1, ?2, 'Notification', ?3, ?4, ?5, ?5)",
                    )?
                    .execute(params![
                        arn,
                        published.message_id,
                        publish.subject,
                        publish.document,
                        now
                    ])?;
            }
            Ok(published)
        })
        .await
    }

    /// Up to `limit` messages due at `now_ms`, oldest first.
    pub async fn due_webhooks(&self, now_ms: i64, limit: usize) -> anyhow::Result<Vec<OutboxRow>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, subscription, message_id, kind, subject, message, timestamp_ms, attempts
                 FROM webhook_outbox WHERE done_ms IS NULL AND next_at_ms <= ?1
                 ORDER BY next_at_ms, id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now_ms, limit as i64], |r| {
                Ok(OutboxRow {
                    id: r.get(0)?,
                    subscription: r.get(1)?,
                    message_id: r.get(2)?,
                    kind: r.get(3)?,
                    subject: r.get(4)?,
                    message: r.get(5)?,
                    timestamp_ms: r.get(6)?,
                    attempts: r.get(7)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// When the next undelivered message is due (epoch ms), if any.
    pub async fn next_webhook_due(&self) -> anyhow::Result<Option<i64>> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT MIN(next_at_ms) FROM webhook_outbox WHERE done_ms IS NULL",
            )?
            .query_row([], |r| r.get(0))?)
        })
        .await
    }

    /// Records an attempt at the message `id`.
    pub async fn webhook_attempted(&self, id: i64, outcome: Attempted) -> anyhow::Result<()> {
        self.write(move |c| {
            let now = state::now_ms();
            match outcome {
                Attempted::Delivered => c
                    .prepare_cached(
                        "UPDATE webhook_outbox SET attempts = attempts + 1, done_ms = ?2, outcome = 'delivered'
                         WHERE id = ?1 AND done_ms IS NULL",
                    )?
                    .execute(params![id, now])?,
                Attempted::RetryAt(at) => c
                    .prepare_cached(
                        "UPDATE webhook_outbox SET attempts = attempts + 1, next_at_ms = ?2
                         WHERE id = ?1 AND done_ms IS NULL",
                    )?
                    .execute(params![id, at])?,
                Attempted::GaveUp(why) => c
                    .prepare_cached(
                        "UPDATE webhook_outbox SET attempts = attempts + 1, done_ms = ?2, outcome = ?3
                         WHERE id = ?1 AND done_ms IS NULL",
                    )?
                    .execute(params![id, now, why])?,
            };
            Ok(())
        })
        .await
    }
}
