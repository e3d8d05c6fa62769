//! The Secrets Manager adapter on moto (which `make test` starts): what the upload function reads
//! at cold start. A plain `cargo test` skips these, saying so.

use aws_adapters::testing::{endpoints, sdk, unique};
use aws_adapters::SecretsManager;
use aws_sdk_secretsmanager::primitives::Blob;
use state::Secrets;

async fn client() -> Option<aws_sdk_secretsmanager::Client> {
    let (_, moto) = endpoints()?;
    Some(aws_sdk_secretsmanager::Client::new(&sdk(&moto).await))
}

#[tokio::test]
async fn a_secret_is_read_by_name_and_by_arn_as_the_stack_generated_it() {
    let Some(client) = client().await else {
        return eprintln!("skipped: needs the AWS stand-ins (make test starts them)");
    };
    // As the template's CursorSecret: a generated 48-character string without punctuation.
    let value = client
        .get_random_password()
        .password_length(48)
        .exclude_punctuation(true)
        .send()
        .await
        .unwrap()
        .random_password
        .unwrap();
    let name = unique("cursor-key");
    let arn = client
        .create_secret()
        .name(&name)
        .secret_string(&value)
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let secrets = SecretsManager::new(client.clone());
    assert_eq!(secrets.string(&arn).await.unwrap(), value);
    assert_eq!(secrets.string(&name).await.unwrap(), value);
    // A new version is what the next cold start reads.
    client
        .put_secret_value()
        .secret_id(&arn)
        .secret_string("rotated, and long enough to sign")
        .send()
        .await
        .unwrap();
    assert_eq!(
        secrets.string(&arn).await.unwrap(),
        "rotated, and long enough to sign"
    );
}

#[tokio::test]
async fn a_missing_or_binary_secret_is_an_error_naming_it() {
    let Some(client) = client().await else {
        return eprintln!("skipped: needs the AWS stand-ins (make test starts them)");
    };
    let secrets = SecretsManager::new(client.clone());
    let missing = unique("no-such-secret");
    let err = format!("{:#}", secrets.string(&missing).await.unwrap_err());
    assert!(err.contains(&missing), "{err}");
    assert!(err.contains("ResourceNotFound"), "{err}");

    let binary = unique("binary");
    client
        .create_secret()
        .name(&binary)
        .secret_binary(Blob::new(vec![0u8, 1, 2]))
        .send()
        .await
        .unwrap();
    let err = format!("{:#}", secrets.string(&binary).await.unwrap_err());
    assert!(
        err.contains(&binary) && err.contains("holds no string"),
        "{err}"
    );
}
