//! Secrets Manager: a function's keys (the API's cursor key, the CDN's signing key), read once in
//! its `main` at cold start and kept for the life of the execution environment, so they are never
//! in the function's environment and each start costs one `GetSecretValue` per key.

use anyhow::Context;
use aws_sdk_secretsmanager::Client;

#[derive(Debug, Clone)]
pub struct SecretsManager {
    client: Client,
}

impl SecretsManager {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The current value of the secret `id` (its name or ARN), which must be a string: a secret
    /// that holds binary, or nothing yet, is an error that says so.
    pub async fn string(&self, id: &str) -> anyhow::Result<String> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .with_context(|| format!("GetSecretValue {id}"))?;
        out.secret_string
            .with_context(|| format!("secret {id} holds no string (binary, or no value yet)"))
    }
}
