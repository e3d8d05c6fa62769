//! The template's resources, as far as the engine runs them: the table (its keys, indexes and
//! stream), the bucket's name, the topics' subscriptions (inline, and `AWS::SNS::Subscription`
//! resources with their condition and delivery policy), the queues' visibility and redrive
//! policy, the secrets' values (generated, as `GenerateSecretString` says). Every other resource
//! is known by its type only.

use std::time::Duration;

use serde_norway::Value;

use crate::expr::Expr;
use crate::yaml::{boolean, field, int, invalid, only, scalar};
use crate::TemplateError;

#[derive(Debug, Clone)]
pub enum Resource {
    Table(TableSpec),
    Bucket(BucketSpec),
    Topic(TopicSpec),
    /// `AWS::SNS::Subscription`: a subscription of its own, attached to its topic.
    Subscription(SubscriptionSpec),
    Queue(QueueSpec),
    /// `AWS::SecretsManager::Secret`.
    Secret(SecretSpec),
    /// `AWS::Serverless::Function` (see [`crate::Function`]).
    Function,
    /// Any other type: alarms, roles, the API, log groups.
    Other {
        kind: String,
    },
}

/// An `AWS::DynamoDB::Table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// `AttributeDefinitions`: name and type (`S`, `N`, `B`).
    pub attributes: Vec<(String, String)>,
    pub key_schema: Vec<KeyElement>,
    pub indexes: Vec<IndexSpec>,
    /// `StreamSpecification.StreamViewType`, if the table has a stream.
    pub stream_view_type: Option<String>,
    /// `TimeToLiveSpecification.AttributeName`, when enabled.
    pub ttl_attribute: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyElement {
    pub attribute: String,
    /// `HASH` or `RANGE`.
    pub key_type: String,
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: String,
    pub key_schema: Vec<KeyElement>,
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection: String,
}

/// An `AWS::S3::Bucket`.
#[derive(Debug, Clone)]
pub struct BucketSpec {
    /// `BucketName`, when the template makes it.
    pub name: Option<Expr>,
}

/// An `AWS::SNS::Topic`.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub subscriptions: Vec<Subscription>,
}

#[derive(Debug, Clone)]
pub struct Subscription {
    /// `email`, `https`, `sqs`, ...
    pub protocol: String,
    pub endpoint: Expr,
}

/// An `AWS::SNS::Subscription` resource.
#[derive(Debug, Clone)]
pub struct SubscriptionSpec {
    /// The topic's logical id (`TopicArn: !Ref <topic>`).
    pub topic: String,
    pub subscription: Subscription,
    /// The resource's `Condition`: it exists only when that condition is true.
    pub condition: Option<String>,
    /// `DeliveryPolicy` (HTTP/S subscriptions), as JSON text.
    pub delivery_policy: Option<String>,
    /// `RedrivePolicy.deadLetterTargetArn`: the queue (logical id) that gets what SNS gives up on.
    pub dead_letters: Option<String>,
}

/// An `AWS::SecretsManager::Secret`'s value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSpec {
    /// `GenerateSecretString`: made once, where the template runs.
    Generated(GeneratedSecret),
    /// `SecretString`, as written.
    Given(Expr),
    /// Neither: the secret has no value until one is put.
    Empty,
}

/// A generated secret string, as `GenerateSecretString` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedSecret {
    /// `PasswordLength` (32 unless given).
    pub length: usize,
    /// The characters it is drawn from, by class (upper case, lower case, digits, punctuation,
    /// space), without the excluded ones; no class is empty.
    pub classes: Vec<Vec<char>>,
    /// `RequireEachIncludedType` (true unless given): at least one character of each class.
    pub require_each_class: bool,
}

impl GeneratedSecret {
    /// Secrets Manager's punctuation (`GetRandomPassword`).
    pub const PUNCTUATION: &'static str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
}

/// An `AWS::SQS::Queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// How long a received message stays hidden (`VisibilityTimeout`, SQS's default 30 s).
    pub visibility_timeout: Duration,
    pub redrive: Option<RedrivePolicy>,
}

/// `RedrivePolicy`: after `max_receive_count` receives a message moves to `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedrivePolicy {
    /// The dead-letter queue's logical id.
    pub target: String,
    pub max_receive_count: u32,
}

impl Resource {
    pub(crate) fn parse(id: &str, res: &Value) -> Result<Resource, TemplateError> {
        let kind = field(res, "Type").and_then(scalar).unwrap_or_default();
        let props = field(res, "Properties").unwrap_or(&Value::Null);
        Ok(match kind.as_str() {
            "AWS::DynamoDB::Table" => Resource::Table(table(id, props)?),
            "AWS::S3::Bucket" => Resource::Bucket(BucketSpec {
                name: field(props, "BucketName").map(Expr::parse),
            }),
            "AWS::SNS::Topic" => Resource::Topic(TopicSpec {
                subscriptions: field(props, "Subscription")
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten()
                    .map(|s| Subscription {
                        protocol: field(s, "Protocol").and_then(scalar).unwrap_or_default(),
                        endpoint: field(s, "Endpoint")
                            .map_or(Expr::Text(String::new()), Expr::parse),
                    })
                    .collect(),
            }),
            "AWS::SNS::Subscription" => Resource::Subscription(subscription(id, res, props)?),
            "AWS::SQS::Queue" => Resource::Queue(queue(id, props)?),
            "AWS::SecretsManager::Secret" => Resource::Secret(secret(id, props)?),
            "AWS::Serverless::Function" => Resource::Function,
            _ => Resource::Other { kind },
        })
    }
}

fn subscription(id: &str, res: &Value, props: &Value) -> Result<SubscriptionSpec, TemplateError> {
    only(
        props,
        &[
            "TopicArn",
            "Protocol",
            "Endpoint",
            "DeliveryPolicy",
            "RedrivePolicy",
        ],
        id,
    )?;
    let topic = field(props, "TopicArn")
        .map(Expr::parse)
        .and_then(|e| match e {
            Expr::Ref(name) => Some(name),
            _ => None,
        })
        .ok_or_else(|| {
            invalid(
                id,
                "TopicArn must be !Ref <a topic of this template>".into(),
            )
        })?;
    let protocol = field(props, "Protocol")
        .and_then(scalar)
        .ok_or_else(|| invalid(id, "a subscription needs a Protocol".into()))?;
    let endpoint = field(props, "Endpoint")
        .map(Expr::parse)
        .ok_or_else(|| invalid(id, "a subscription needs an Endpoint".into()))?;
    let delivery_policy = match field(props, "DeliveryPolicy") {
        None => None,
        // CloudFormation takes the policy as a JSON object, or as its text.
        Some(Value::String(text)) => Some(text.clone()),
        Some(policy) => Some(
            serde_json::to_string(policy)
                .map_err(|e| invalid(id, format!("DeliveryPolicy is not a JSON object: {e}")))?,
        ),
    };
    let dead_letters = field(props, "RedrivePolicy")
        .map(|policy| dead_letter_target(policy, id))
        .transpose()?;
    Ok(SubscriptionSpec {
        topic,
        subscription: Subscription { protocol, endpoint },
        condition: field(res, "Condition").and_then(scalar),
        delivery_policy,
        dead_letters,
    })
}

/// A `RedrivePolicy`'s `deadLetterTargetArn` (a queue's or a subscription's): the queue's logical id.
fn dead_letter_target(policy: &Value, id: &str) -> Result<String, TemplateError> {
    field(policy, "deadLetterTargetArn")
        .map(Expr::parse)
        .and_then(|e| e.resource_named().map(str::to_owned))
        .ok_or_else(|| {
            invalid(
                id,
                "RedrivePolicy.deadLetterTargetArn must be !GetAtt <a queue>.Arn".into(),
            )
        })
}

fn key_schema(v: Option<&Value>, at: &str) -> Result<Vec<KeyElement>, TemplateError> {
    v.and_then(Value::as_sequence)
        .ok_or_else(|| invalid(at, "a KeySchema is needed".into()))?
        .iter()
        .map(|k| {
            Ok(KeyElement {
                attribute: field(k, "AttributeName")
                    .and_then(scalar)
                    .ok_or_else(|| invalid(at, "a key needs an AttributeName".into()))?,
                key_type: field(k, "KeyType")
                    .and_then(scalar)
                    .ok_or_else(|| invalid(at, "a key needs a KeyType".into()))?,
            })
        })
        .collect()
}

fn table(id: &str, p: &Value) -> Result<TableSpec, TemplateError> {
    let attributes = field(p, "AttributeDefinitions")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .map(|a| {
            match (
                field(a, "AttributeName").and_then(scalar),
                field(a, "AttributeType").and_then(scalar),
            ) {
                (Some(name), Some(kind)) => Ok((name, kind)),
                _ => Err(invalid(id, "an attribute needs a name and a type".into())),
            }
        })
        .collect::<Result<_, _>>()?;
    let indexes = field(p, "GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .map(|g| {
            Ok(IndexSpec {
                name: field(g, "IndexName")
                    .and_then(scalar)
                    .ok_or_else(|| invalid(id, "an index needs an IndexName".into()))?,
                key_schema: key_schema(field(g, "KeySchema"), id)?,
                projection: field(g, "Projection")
                    .and_then(|p| field(p, "ProjectionType"))
                    .and_then(scalar)
                    .unwrap_or_else(|| "ALL".into()),
            })
        })
        .collect::<Result<_, TemplateError>>()?;
    let ttl = field(p, "TimeToLiveSpecification");
    Ok(TableSpec {
        attributes,
        key_schema: key_schema(field(p, "KeySchema"), id)?,
        indexes,
        stream_view_type: field(p, "StreamSpecification")
            .and_then(|s| field(s, "StreamViewType"))
            .and_then(scalar),
        ttl_attribute: ttl
            .filter(|t| field(t, "Enabled").and_then(Value::as_bool) == Some(true))
            .and_then(|t| field(t, "AttributeName"))
            .and_then(scalar),
    })
}

fn queue(id: &str, p: &Value) -> Result<QueueSpec, TemplateError> {
    let visibility = match int(p, "VisibilityTimeout", id)? {
        None => 30,
        Some(s @ 0..=43_200) => s as u64,
        Some(s) => {
            return Err(invalid(
                id,
                format!("VisibilityTimeout {s} is not 0..=43200"),
            ))
        }
    };
    let redrive = match field(p, "RedrivePolicy") {
        None => None,
        Some(policy) => {
            let target = dead_letter_target(policy, id)?;
            let max = match int(policy, "maxReceiveCount", id)? {
                Some(n @ 1..=1000) => n as u32,
                other => {
                    return Err(invalid(
                        id,
                        format!("RedrivePolicy.maxReceiveCount {other:?} is not 1..=1000"),
                    ))
                }
            };
            Some(RedrivePolicy {
                target,
                max_receive_count: max,
            })
        }
    };
    Ok(QueueSpec {
        visibility_timeout: Duration::from_secs(visibility),
        redrive,
    })
}

fn secret(id: &str, p: &Value) -> Result<SecretSpec, TemplateError> {
    let Some(g) = field(p, "GenerateSecretString") else {
        return Ok(field(p, "SecretString")
            .map_or(SecretSpec::Empty, |v| SecretSpec::Given(Expr::parse(v))));
    };
    let at = format!("{id}.GenerateSecretString");
    only(
        g,
        &[
            "PasswordLength",
            "ExcludeCharacters",
            "ExcludeLowercase",
            "ExcludeUppercase",
            "ExcludeNumbers",
            "ExcludePunctuation",
            "IncludeSpace",
            "RequireEachIncludedType",
        ],
        &at,
    )?;
    let length = match int(g, "PasswordLength", &at)? {
        None => 32,
        Some(n @ 1..=4096) => n as usize,
        Some(n) => return Err(invalid(&at, format!("PasswordLength {n} is not 1..=4096"))),
    };
    let flag = |key: &str| boolean(g, key, &at).map(|b| b.unwrap_or(false));
    let excluded: Vec<char> = field(g, "ExcludeCharacters")
        .and_then(scalar)
        .unwrap_or_default()
        .chars()
        .collect();
    let mut classes = Vec::new();
    for (key, chars) in [
        ("ExcludeUppercase", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
        ("ExcludeLowercase", "abcdefghijklmnopqrstuvwxyz"),
        ("ExcludeNumbers", "0123456789"),
        ("ExcludePunctuation", GeneratedSecret::PUNCTUATION),
    ] {
        if !flag(key)? {
            classes.push(chars.chars().filter(|c| !excluded.contains(c)).collect());
        }
    }
    if flag("IncludeSpace")? {
        classes.push(vec![' ']);
    }
    classes.retain(|c: &Vec<char>| !c.is_empty());
    if classes.is_empty() {
        return Err(invalid(&at, "every character is excluded".into()));
    }
    let require_each_class = boolean(g, "RequireEachIncludedType", &at)?.unwrap_or(true);
    if require_each_class && classes.len() > length {
        return Err(invalid(
            &at,
            format!(
                "PasswordLength {length} cannot hold one of each of {} included types",
                classes.len()
            ),
        ));
    }
    Ok(SecretSpec::Generated(GeneratedSecret {
        length,
        classes,
        require_each_class,
    }))
}
