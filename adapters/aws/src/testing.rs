//! The local AWS stand-ins `make test` starts (DynamoDB Local for the table and its stream, moto
//! for S3, SNS, SQS and Secrets Manager), for tests: where they listen, clients for them, and a
//! world of uniquely named resources per test. Feature `testing`.

use aws_config::BehaviorVersion;
use serde_json::Value;

/// Where the stand-ins listen (DynamoDB Local, moto); `None` when they are not running (a plain
/// `cargo test`). With `STANDINS_REQUIRED` set (as `make test` sets it), their absence panics.
pub fn endpoints() -> Option<(String, String)> {
    let ddb = std::env::var("DYNAMODB_LOCAL_ENDPOINT").ok();
    let moto = std::env::var("MOTO_ENDPOINT").ok();
    match (ddb, moto) {
        (Some(d), Some(m)) => Some((d, m)),
        _ if std::env::var_os("STANDINS_REQUIRED").is_some() => {
            panic!("STANDINS_REQUIRED is set but DYNAMODB_LOCAL_ENDPOINT/MOTO_ENDPOINT are not: run `make test`")
        }
        _ => None,
    }
}

/// Whether the stand-ins are running.
pub fn available() -> bool {
    endpoints().is_some()
}

/// An SDK config for one stand-in: fixed region and test credentials.
pub async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region("us-east-1")
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// `prefix-<12 hex>`: a name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// The template the stack deploys: test tables are made from its table.
const TEMPLATE: &str = include_str!("../../../template.yaml");

/// Creates the items table exactly as template.yaml declares it: its keys, its global secondary
/// indexes and its stream (read from the template, so tests cannot drift from the deployed table).
pub async fn create_table(ddb: &aws_sdk_dynamodb::Client, name: &str) {
    let template =
        sam_template::Template::parse(TEMPLATE, &Default::default()).expect("template.yaml parses");
    let (_, spec) = template
        .resources_where(|r| match r {
            sam_template::Resource::Table(spec) => Some(spec),
            _ => None,
        })
        .next()
        .expect("template.yaml has a table");
    crate::provision::create_table(ddb, name, spec)
        .await
        .expect("CreateTable on DynamoDB Local");
}

/// An SQS queue's ARN, for subscriptions and notification rules.
async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .expect("queue attributes")[&QueueAttributeName::QueueArn]
        .clone()
}

/// One test's resources on the stand-ins.
pub struct AwsWorld {
    pub ddb_endpoint: String,
    pub moto_endpoint: String,
    pub ddb: aws_sdk_dynamodb::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub table: String,
    pub bucket: String,
    pub topic_arn: String,
    /// The email subscription's stand-in: an SQS queue subscribed to the topic.
    pub queue_url: String,
    /// The upload function's cursor key, as the stack's `CursorSecret` holds it (its ARN).
    pub cursor_secret: String,
}

impl AwsWorld {
    /// A table, a bucket, a topic and a queue subscribed to it, all new.
    pub async fn create((ddb_endpoint, moto_endpoint): (String, String)) -> AwsWorld {
        let ddb_sdk = sdk(&ddb_endpoint).await;
        let moto_sdk = sdk(&moto_endpoint).await;
        let ddb = aws_sdk_dynamodb::Client::new(&ddb_sdk);
        let streams = aws_sdk_dynamodbstreams::Client::new(&ddb_sdk);
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&moto_sdk)
                .force_path_style(true)
                .build(),
        );
        let sns = aws_sdk_sns::Client::new(&moto_sdk);
        let sqs = aws_sdk_sqs::Client::new(&moto_sdk);
        let secrets = aws_sdk_secretsmanager::Client::new(&moto_sdk);

        let table = unique("images");
        create_table(&ddb, &table).await;
        let bucket = unique("images");
        s3.create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("CreateBucket");
        let topic_arn = sns
            .create_topic()
            .name(unique("notices"))
            .send()
            .await
            .expect("CreateTopic")
            .topic_arn
            .expect("a topic ARN");
        let queue_url = sqs
            .create_queue()
            .queue_name(unique("mail"))
            .send()
            .await
            .expect("CreateQueue")
            .queue_url
            .expect("a queue URL");
        let queue_arn = queue_arn(&sqs, &queue_url).await;
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .send()
            .await
            .expect("Subscribe");
        let cursor_secret = secrets
            .create_secret()
            .name(unique("cursor-key"))
            .secret_string(format!("a cursor key for {table}"))
            .send()
            .await
            .expect("CreateSecret")
            .arn
            .expect("a secret ARN");
        AwsWorld {
            ddb_endpoint,
            moto_endpoint,
            ddb,
            streams,
            s3,
            sns,
            sqs,
            table,
            bucket,
            topic_arn,
            queue_url,
            secrets,
            cursor_secret,
        }
    }

    /// Routes the bucket's object-created notifications to a new SQS queue, as S3's
    /// `QueueConfigurations` does (moto delivers them; it cannot invoke a Lambda function), and
    /// returns the queue's URL: the engine's `BUCKET_EVENTS_QUEUE_URL`.
    pub async fn route_bucket_events(&self) -> String {
        use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
        let url = self
            .sqs
            .create_queue()
            .queue_name(unique("bucket-events"))
            .send()
            .await
            .expect("CreateQueue")
            .queue_url
            .expect("a queue URL");
        let arn = queue_arn(&self.sqs, &url).await;
        let rule = QueueConfiguration::builder()
            .queue_arn(arn)
            .events(Event::S3ObjectCreated)
            .build()
            .expect("a queue configuration");
        self.s3
            .put_bucket_notification_configuration()
            .bucket(&self.bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .queue_configurations(rule)
                    .build(),
            )
            .send()
            .await
            .expect("PutBucketNotificationConfiguration");
        url
    }

    /// Lets a page served at `origin` PUT to the bucket's signed URLs (the bucket's CORS rule, as
    /// the template's `CorsConfiguration` gives the API's origin).
    pub async fn allow_uploads_from(&self, origin: &str) {
        use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
        let rule = CorsRule::builder()
            .allowed_origins(origin)
            .allowed_methods("PUT")
            .allowed_headers("*")
            .expose_headers("ETag")
            .max_age_seconds(600)
            .build()
            .expect("a CORS rule");
        self.s3
            .put_bucket_cors()
            .bucket(&self.bucket)
            .cors_configuration(
                CorsConfiguration::builder()
                    .cors_rules(rule)
                    .build()
                    .expect("a CORS configuration"),
            )
            .send()
            .await
            .expect("PutBucketCors");
    }

    /// The environment a process needs to reach these resources (the `uploader` binary, a Lambda).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_ENDPOINT_URL_DYNAMODB", self.ddb_endpoint.as_str()),
            (
                "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
                self.ddb_endpoint.as_str(),
            ),
            ("AWS_ENDPOINT_URL_S3", self.moto_endpoint.as_str()),
            ("AWS_ENDPOINT_URL_SNS", self.moto_endpoint.as_str()),
            ("AWS_ENDPOINT_URL_SQS", self.moto_endpoint.as_str()),
            (
                "AWS_ENDPOINT_URL_SECRETS_MANAGER",
                self.moto_endpoint.as_str(),
            ),
            ("S3_FORCE_PATH_STYLE", "true"),
            ("TABLE_NAME", self.table.as_str()),
            ("BUCKET_NAME", self.bucket.as_str()),
            ("TOPIC_ARN", self.topic_arn.as_str()),
            ("CURSOR_KEY_SECRET", self.cursor_secret.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Takes every notice waiting in the queue: (subject, the email's text, SNS MessageId), as
    /// [`AwsWorld::take_deliveries`] finds them.
    pub async fn take_notices(&self) -> Vec<(String, String, String)> {
        self.take_deliveries()
            .await
            .into_iter()
            .map(|d| (d.subject, d.email, d.message_id))
            .collect()
    }

    /// Takes every notification waiting in the queue, with what the same publish gave the email
    /// subscriber: moto sends no mail, but keeps each publish's message on its topic
    /// (`/moto-api/data.json`), from which the email's part is read as SNS would pick it.
    pub async fn take_deliveries(&self) -> Vec<Delivered> {
        let mut envelopes = Vec::new();
        loop {
            let got = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("ReceiveMessage");
            let messages = got.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let envelope: Value =
                    serde_json::from_str(m.body().unwrap_or_default()).unwrap_or_default();
                envelopes.push(envelope);
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("DeleteMessage");
            }
        }
        if envelopes.is_empty() {
            return Vec::new();
        }
        let published = self.published().await;
        envelopes
            .into_iter()
            .map(|envelope| {
                let text = |key: &str| envelope[key].as_str().unwrap_or_default().to_owned();
                let message_id = text("MessageId");
                let email = published
                    .get(&message_id)
                    .map(|p| p.part_for("email"))
                    .unwrap_or_default();
                Delivered {
                    subject: text("Subject"),
                    document: text("Message"),
                    email,
                    message_id,
                    envelope,
                }
            })
            .collect()
    }

    /// Every message published to this world's topic, by message id, as moto recorded it.
    ///
    /// moto's `data.json` dumps every model it holds; a dump that races another test's write to
    /// the same server fails with a 500 (an object changed while it was being encoded), so a 500 is
    /// asked again, a bounded number of times.
    pub async fn published(&self) -> std::collections::HashMap<String, Published> {
        const ATTEMPTS: usize = 20;
        let url = format!("{}/moto-api/data.json", self.moto_endpoint);
        let mut attempt = 0;
        let data: Value = loop {
            attempt += 1;
            let response = reqwest::get(&url).await.expect("moto's data.json");
            if response.status().is_server_error() && attempt < ATTEMPTS {
                continue;
            }
            break response
                .error_for_status()
                .expect("moto's data.json")
                .json()
                .await
                .expect("moto's data.json is JSON");
        };
        let topic = data["sns"]["Topic"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["arn"] == self.topic_arn.as_str())
            .cloned()
            .unwrap_or_default();
        topic["sent_notifications"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|sent| {
                let field = |i: usize| sent[i].as_str().unwrap_or_default().to_owned();
                (
                    field(0),
                    Published {
                        message: field(1),
                        subject: field(2),
                    },
                )
            })
            .collect()
    }
}

/// One notification an SQS subscriber received, and what the same publish gave the email.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub subject: String,
    pub message_id: String,
    /// The envelope's `Message`: what SNS sends SQS (and HTTP/S) subscribers.
    pub document: String,
    /// The email's text: the publish's `email` part (or `default`), as SNS would pick it.
    pub email: String,
    /// The whole SNS envelope the queue received.
    pub envelope: Value,
}

/// One publish to a topic, as moto keeps it: the message as given (with `MessageStructure: json`,
/// the object of a part per protocol), and its subject.
#[derive(Debug, Clone)]
pub struct Published {
    pub message: String,
    pub subject: String,
}

impl Published {
    /// What a subscriber over `protocol` is sent: its own part of a structured message, else
    /// `default`; the message itself when it is not a JSON object of parts.
    pub fn part_for(&self, protocol: &str) -> String {
        match serde_json::from_str::<serde_json::Map<String, Value>>(&self.message) {
            Ok(parts) => parts
                .get(protocol)
                .or_else(|| parts.get("default"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            Err(_) => self.message.clone(),
        }
    }
}
