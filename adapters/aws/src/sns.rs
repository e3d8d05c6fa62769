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

#[async_trait]
impl Notifier for SnsNotifier {
    async fn publish(&self, notice: &Notice) -> Result<String, StateError> {
        let out = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&notice.subject)
            .message(&notice.body)
            .send()
            .await
            .with_context(|| format!("Publish to {}", self.topic_arn))
            .map_err(StateError::Unavailable)?;
        out.message_id
            .ok_or_else(|| StateError::unavailable(anyhow::anyhow!("SNS returned no MessageId")))
    }
}
