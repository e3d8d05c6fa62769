//! The engine's AWS backend (feature `aws`): the handlers over DynamoDB, S3 and SNS, and the
//! table's stream read through DynamoDB Streams into the local stream, where the mappings read it
//! exactly as they read the embedded table's own.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_adapters::streams::StreamReader;
use aws_adapters::{DynamoTable, S3Store, SnsNotifier};
use embedded_adapters::sqlite::Database;
use sam_template::{Resource, Template};
use state::{Notifier, ObjectStore};

use super::{BackendState, Built};
use crate::resources::Site;

mod bucket_queue;
mod mirror;

pub use bucket_queue::{object_created_events, BucketEventQueue, BucketQueueRunner, ObjectCreated};
pub use mirror::{Mirror, MirrorRunner};

/// The SDK clients the backend uses; each may have its own endpoint (DynamoDB Local for the
/// table and its stream, moto for the rest).
#[derive(Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl AwsClients {
    /// Clients from one SDK config (endpoints, region and credentials from the environment).
    pub fn new(sdk: &aws_config::SdkConfig, s3_path_style: bool) -> AwsClients {
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            streams: aws_sdk_dynamodbstreams::Client::new(sdk),
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(sdk)
                    .force_path_style(s3_path_style)
                    .build(),
            ),
            sns: aws_sdk_sns::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
        }
    }
}

/// The physical resources the backend runs on: the template's table, bucket and topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsNames {
    pub table: String,
    pub bucket: String,
    pub topic_arn: String,
    /// An SQS queue the bucket's notifications are routed to, if they are (see
    /// [`BucketEventQueue`]).
    pub bucket_events_queue: Option<String>,
}

#[derive(Clone)]
pub struct AwsBackend {
    pub names: AwsNames,
    pub region: String,
    pub stream_arn: String,
    pub table: DynamoTable,
    pub store: S3Store,
    pub notifier: SnsNotifier,
    pub reader: Arc<StreamReader>,
    pub bucket_events: Option<BucketEventQueue>,
}

impl AwsBackend {
    /// The backend over `names`, reached with `clients`; the table's stream is looked up.
    pub async fn new(clients: &AwsClients, names: AwsNames) -> anyhow::Result<AwsBackend> {
        let stream_arn = StreamReader::stream_arn_of(&clients.dynamodb, &names.table).await?;
        Ok(AwsBackend {
            table: DynamoTable::new(clients.dynamodb.clone(), &names.table),
            store: S3Store::new(clients.s3.clone(), &names.bucket),
            notifier: SnsNotifier::new(clients.sns.clone(), &names.topic_arn),
            reader: Arc::new(StreamReader::new(
                clients.streams.clone(),
                stream_arn.clone(),
            )),
            region: clients
                .dynamodb
                .config()
                .region()
                .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string()),
            stream_arn,
            bucket_events: names
                .bucket_events_queue
                .as_ref()
                .map(|url| BucketEventQueue::new(clients.sqs.clone(), url)),
            names,
        })
    }
}

/// The backend's ports and what it runs: every topic of the template is the one the backend names
/// (`--topic-arn`), and the table's stream is mirrored into the local one.
pub(super) fn build(aws: AwsBackend, template: &Template, db: &Database) -> Built {
    let notifier: Arc<dyn Notifier> = Arc::new(aws.notifier.clone());
    let topics: BTreeMap<String, Arc<dyn Notifier>> = template
        .resources_where(|r| matches!(r, Resource::Topic(_)).then_some(()))
        .map(|(id, _)| (id.to_owned(), notifier.clone()))
        .collect();
    let store = aws.store.clone();
    Built {
        site: Site {
            region: aws.region.clone(),
            table: aws.names.table.clone(),
            bucket: aws.names.bucket.clone(),
            stream_arn: aws.stream_arn.clone(),
            topics: topics
                .keys()
                .map(|id| (id.clone(), aws.names.topic_arn.clone()))
                .collect(),
        },
        table: Arc::new(aws.table.clone()),
        bucket: Box::new(move |links_valid_for| {
            Arc::new(store.clone().with_link_ttl(links_valid_for)) as Arc<dyn ObjectStore>
        }),
        topics,
        // The topic is SNS's: the template's HTTP/S subscriptions are SNS's to deliver.
        webhooks: None,
        state: BackendState::Aws {
            mirror: Arc::new(Mirror::new(aws.reader.clone(), db.clone())),
            bucket_queue: aws.bucket_events,
        },
    }
}
