//! Secrets Manager: a function's keys (the API's cursor key, the CDN's signing key), read once as
//! it starts (`Deps::new`) and kept for the life of the execution environment, so they are never
//! in the function's environment and each start costs one `GetSecretValue` per key.

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use state::{ResourceError, Secrets};

#[derive(Debug, Clone)]
pub struct SecretsManager {
    client: Client,
}

impl SecretsManager {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Secrets for SecretsManager {
    /// The current value of the secret `id` (its name or ARN), which must be a string: a secret
    /// that holds binary, or nothing yet, is an error that says so.
    async fn string(&self, id: &str) -> Result<String, ResourceError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            // The service's error names its code (ResourceNotFoundException, AccessDenied...).
            .map_err(|e| ResourceError::unusable("secret", id, e.into_service_error()))?;
        out.secret_string.ok_or_else(|| {
            ResourceError::unusable("secret", id, "holds no string (binary, or no value yet)")
        })
    }
}
