//! The resources a Lambda function's configuration names, as SDK clients: one client of each
//! service, made once at cold start from the environment's SDK configuration.

use std::sync::Arc;
use std::time::Duration;

use state::{
    Distribution, GivenUpRecords, ItemTable, Notifier, ObjectStore, ResourceError, Resources,
    Secrets,
};

use crate::streams::StreamReader;
use crate::{CdnLinks, CloudFrontSigner, DynamoTable, S3Store, SecretsManager, SnsNotifier};

pub struct AwsResources {
    dynamodb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    s3: aws_sdk_s3::Client,
    sns: aws_sdk_sns::Client,
    secrets: Arc<SecretsManager>,
}

impl AwsResources {
    /// Clients from the environment (region, credentials and endpoints as the SDK reads them).
    pub async fn from_env() -> AwsResources {
        AwsResources::new(&aws_config::load_from_env().await)
    }

    pub fn new(sdk: &aws_config::SdkConfig) -> AwsResources {
        AwsResources {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            streams: aws_sdk_dynamodbstreams::Client::new(sdk),
            s3: aws_sdk_s3::Client::new(sdk),
            sns: aws_sdk_sns::Client::new(sdk),
            secrets: Arc::new(SecretsManager::new(aws_sdk_secretsmanager::Client::new(
                sdk,
            ))),
        }
    }

    fn s3_bucket(&self, name: &str, links_valid_for: Duration) -> S3Store {
        S3Store::new(self.s3.clone(), name).with_link_ttl(links_valid_for)
    }
}

impl Resources for AwsResources {
    fn table(&self, name: &str) -> Result<Arc<dyn ItemTable>, ResourceError> {
        Ok(Arc::new(DynamoTable::new(self.dynamodb.clone(), name)))
    }

    fn bucket(
        &self,
        name: &str,
        links_valid_for: Duration,
    ) -> Result<Arc<dyn ObjectStore>, ResourceError> {
        Ok(Arc::new(self.s3_bucket(name, links_valid_for)))
    }

    /// A CloudFront distribution in front of the bucket's renditions ([`CdnLinks`]); every other
    /// key keeps S3's presigned links.
    fn bucket_behind(
        &self,
        name: &str,
        links_valid_for: Duration,
        distribution: Distribution,
    ) -> Result<Arc<dyn ObjectStore>, ResourceError> {
        let signer = distribution
            .signing
            .map(|key| {
                CloudFrontSigner::from_pem(&key.key_pair_id, &key.private_key_pem)
                    .map_err(|e| ResourceError::unusable("CloudFront key", &key.key_pair_id, e))
            })
            .transpose()?;
        Ok(Arc::new(CdnLinks::new(
            self.s3_bucket(name, links_valid_for),
            distribution.url,
            signer,
            links_valid_for,
        )))
    }

    fn topic(&self, arn: &str) -> Result<Arc<dyn Notifier>, ResourceError> {
        Ok(Arc::new(SnsNotifier::new(self.sns.clone(), arn)))
    }

    /// The stream ARN comes with each on-failure message; the reader's own is not used for these
    /// reads.
    fn given_up_records(&self) -> Result<Arc<dyn GivenUpRecords>, ResourceError> {
        Ok(Arc::new(StreamReader::new(
            self.streams.clone(),
            String::new(),
        )))
    }

    fn secrets(&self) -> Result<Arc<dyn Secrets>, ResourceError> {
        Ok(self.secrets.clone())
    }
}
