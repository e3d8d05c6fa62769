//! `make run-dynamodb`: the template's resources made on the local stand-ins (DynamoDB Local and
//! moto) for the AWS backend to run on: the table as the template declares it (keys, indexes,
//! stream), the bucket, a topic, and the queues that stand in for what S3 and SNS deliver there:
//! the bucket's notifications (S3 cannot invoke a function on this machine, so they go to a queue
//! the engine reads) and the topic's email (moto sends no mail, so a queue is subscribed in its
//! place). Each is made only where it is missing, so a second run finds them.

use anyhow::Context;
use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;
use sam_template::{Resource, Template};

use super::aws::{AwsClients, AwsNames};

/// Makes what is missing and returns the names the backend runs on. The topic and queues are
/// named after the table: `<table>-notices`, `<table>-bucket-events`, `<table>-mail`.
pub async fn provision(
    clients: &AwsClients,
    template: &str,
    table: &str,
    bucket: &str,
) -> anyhow::Result<AwsNames> {
    let template = Template::parse(template, &Default::default())?;
    let (_, spec) = template
        .resources_where(|r| match r {
            Resource::Table(spec) => Some(spec),
            _ => None,
        })
        .next()
        .context("the template has no table")?;
    let exists = clients
        .dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await;
    if exists.is_err() {
        aws_adapters::provision::create_table(&clients.dynamodb, table, spec).await?;
    }
    if clients
        .s3
        .head_bucket()
        .bucket(bucket)
        .send()
        .await
        .is_err()
    {
        clients
            .s3
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .with_context(|| format!("CreateBucket {bucket}"))?;
    }
    let topic_arn = clients
        .sns
        .create_topic()
        .name(format!("{table}-notices"))
        .send()
        .await
        .context("CreateTopic")?
        .topic_arn
        .context("CreateTopic gave no ARN")?;
    let mail = queue(clients, &format!("{table}-mail")).await?;
    clients
        .sns
        .subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(&mail.arn)
        .send()
        .await
        .context("Subscribe")?;
    let events = queue(clients, &format!("{table}-bucket-events")).await?;
    clients
        .s3
        .put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(
                    QueueConfiguration::builder()
                        .queue_arn(&events.arn)
                        .events(Event::S3ObjectCreated)
                        .build()
                        .context("a queue configuration")?,
                )
                .build(),
        )
        .send()
        .await
        .context("PutBucketNotificationConfiguration")?;
    Ok(AwsNames {
        table: table.to_owned(),
        bucket: bucket.to_owned(),
        topic_arn,
        bucket_events_queue: Some(events.url),
    })
}

struct Queue {
    url: String,
    arn: String,
}

/// Makes queue `name` (CreateQueue returns the one that is there) and reads its ARN.
async fn queue(clients: &AwsClients, name: &str) -> anyhow::Result<Queue> {
    let url = clients
        .sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .with_context(|| format!("CreateQueue {name}"))?
        .queue_url
        .context("CreateQueue gave no URL")?;
    let arn = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .with_context(|| format!("GetQueueAttributes {name}"))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .context("no QueueArn")?;
    Ok(Queue { url, arn })
}
