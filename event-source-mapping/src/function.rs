use async_trait::async_trait;
use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;

/// A Lambda function error: what the Runtime API's `/error` carries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct FunctionError {
    pub error_type: String,
    pub message: String,
}

impl FunctionError {
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            message: message.into(),
        }
    }
}

/// A function a mapping invokes with a batch of stream records.
#[async_trait]
pub trait StreamFunction: Send + Sync {
    async fn invoke(&self, event: Event) -> Result<DynamoDbEventResponse, FunctionError>;
}
