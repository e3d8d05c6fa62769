//! The template's SNS topics, on one machine: a publish goes to every subscription the template
//! gives its topic. An `email` subscription delivers to the mail folder: one RFC 5322 `.eml` per
//! notice ([`embedded_adapters::mailbox::Mailbox`], which also keeps every publish and sends a
//! notice once however often it is published), addressed to the engine's `email` (the template's
//! endpoint is an inbox given at deploy time). Any other protocol is refused at start-up.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use embedded_adapters::mailbox::Mailbox;
use embedded_adapters::sqlite::Database;
use sam_template::{Resource, Template, TemplateError};
use state::{Notice, Notifier, StateError};

/// One topic and its subscriptions.
pub struct LocalTopic {
    subscriptions: Vec<Arc<dyn Notifier>>,
}

#[async_trait]
impl Notifier for LocalTopic {
    /// Delivers to every subscription; the message id is the first's (a topic with none makes
    /// one up, as SNS does for a publish nobody receives).
    async fn publish(&self, notice: &Notice) -> Result<String, StateError> {
        let mut message_id = None;
        for subscription in &self.subscriptions {
            let id = subscription.publish(notice).await?;
            message_id.get_or_insert(id);
        }
        Ok(message_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()))
    }
}

/// Where the topics deliver.
pub struct Delivery<'a> {
    pub db: &'a Database,
    pub mail_dir: &'a Path,
    pub email: &'a str,
    pub fsync: bool,
}

/// Every topic of `template`, by logical id.
pub fn topics(
    template: &Template,
    to: &Delivery,
) -> Result<BTreeMap<String, Arc<dyn Notifier>>, crate::error::EngineError> {
    let mut topics = BTreeMap::new();
    for (id, spec) in template.resources_where(|r| match r {
        Resource::Topic(spec) => Some(spec),
        _ => None,
    }) {
        let mut subscriptions: Vec<Arc<dyn Notifier>> = Vec::new();
        for subscription in &spec.subscriptions {
            match subscription.protocol.as_str() {
                "email" => subscriptions.push(Arc::new(Mailbox::new(
                    to.db.clone(),
                    to.mail_dir.to_owned(),
                    to.email,
                    to.fsync,
                )?)),
                other => {
                    return Err(TemplateError::NotEmulated {
                        at: format!("{id}.Subscription"),
                        setting: format!("Protocol: {other}"),
                        why: "the local engine delivers email subscriptions only".into(),
                    }
                    .into())
                }
            }
        }
        topics.insert(
            id.to_owned(),
            Arc::new(LocalTopic { subscriptions }) as Arc<dyn Notifier>,
        );
    }
    Ok(topics)
}
