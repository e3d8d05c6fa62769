use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_sns::Client;

use state::{Notice, Notifier, StateError};

/// Publishes to a standard SNS topic. Standard topics do not deduplicate, so a crash between the
/// publish and the `notified` write can send one more email on retry (docs/operations.md, "Failure
/// semantics").
#[derive(Debug, Clone)]
pub struct SnsNotifier {
    client: Client,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

/// Subscription protocols that get the notice's JSON document; every other one (email, SMS,
/// mobile push) gets `default`, the readable text. Programs read `email-json` too: its mail body
/// is the JSON envelope, so the document is what a program would parse out of it.
pub const DOCUMENT_PROTOCOLS: [&str; 5] = ["http", "https", "sqs", "lambda", "email-json"];

/// The one message a notice is published as, with `MessageStructure: json`: an object of a string
/// per protocol, `default` required (SNS Publish API). The email gets the text, programs the
/// document, each as SNS delivers it (the envelope's `Message`).
pub fn structured_message(notice: &Notice) -> String {
    let mut message = serde_json::Map::new();
    message.insert("default".into(), notice.body.clone().into());
    message.insert("email".into(), notice.body.clone().into());
    for protocol in DOCUMENT_PROTOCOLS {
        message.insert(protocol.into(), notice.document.clone().into());
    }
    serde_json::Value::Object(message).to_string()
}

#[async_trait]
impl Notifier for SnsNotifier {
    /// Once, for every subscriber: each protocol's form is in the one message.
    async fn publish(&self, notice: &Notice) -> Result<String, StateError> {
        let out = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&notice.subject)
            .message_structure("json")
            .message(structured_message(notice))
            .send()
            .await
            .with_context(|| format!("Publish to {}", self.topic_arn))
            .map_err(StateError::Unavailable)?;
        out.message_id
            .ok_or_else(|| StateError::unavailable(anyhow::anyhow!("SNS returned no MessageId")))
    }
}
