//! What the template's names stand for on this engine, and the ports behind them.
//!
//! [`Names`]: a `!Ref` of the table, bucket or a topic is its physical name on the backend (the
//! embedded ones are named after their logical ids, the bucket `images`); a function's is its
//! binary name (as items and metrics name it); a secret's is its logical id, and its value (a
//! dynamic reference, or a function's read through `state::Secrets`) is the engine's secret of
//! that name ([`TemplateSecrets`]). A resource of any other type (a CloudFront distribution, an IAM
//! role) has no name here: the engine hosts no such thing. [`Resources`]: a function that names
//! the table, the bucket, a topic or a secret gets the engine's port for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sam_template::{Names, Resource, Template};
use state::{
    Distribution, GivenUpRecords, ItemTable, Notifier, ObjectStore, ResourceError, Resources,
    Secrets,
};

use crate::secret::TemplateSecrets;

/// The account the local ARNs name.
pub const ACCOUNT: &str = "000000000000";

/// Makes the bucket's port, with links valid for a while where they expire.
pub type BucketPort = dyn Fn(Duration) -> Arc<dyn ObjectStore> + Send + Sync;

/// The physical names of the backend's resources.
#[derive(Debug, Clone)]
pub struct Site {
    pub region: String,
    pub table: String,
    pub bucket: String,
    /// The table's stream ARN.
    pub stream_arn: String,
    /// Each template topic's ARN, by logical id.
    pub topics: BTreeMap<String, String>,
}

/// The engine's resources, as the template's functions see them.
pub struct LocalResources {
    site: Site,
    /// Each resource's kind, by logical id, and each function's binary.
    kinds: BTreeMap<String, Kind>,
    /// The template's secrets, by name.
    secrets: Arc<TemplateSecrets>,
    table: Arc<dyn ItemTable>,
    bucket: Box<BucketPort>,
    /// The topics' ports, by ARN.
    topics: BTreeMap<String, Arc<dyn Notifier>>,
    given_up: Arc<dyn GivenUpRecords>,
}

#[derive(Debug, Clone)]
enum Kind {
    Table,
    Bucket,
    Topic,
    Queue,
    Secret,
    Function { binary: String },
}

/// The ports the resources hand out.
pub struct Ports {
    pub table: Arc<dyn ItemTable>,
    pub bucket: Box<BucketPort>,
    /// By ARN.
    pub topics: BTreeMap<String, Arc<dyn Notifier>>,
    pub given_up: Arc<dyn GivenUpRecords>,
}

impl LocalResources {
    pub fn new(
        template: &Template,
        site: Site,
        secrets: TemplateSecrets,
        ports: Ports,
    ) -> LocalResources {
        let mut kinds: BTreeMap<String, Kind> = template
            .resources
            .iter()
            .filter_map(|(id, r)| {
                let kind = match r {
                    Resource::Table(_) => Kind::Table,
                    Resource::Bucket(_) => Kind::Bucket,
                    Resource::Topic(_) => Kind::Topic,
                    Resource::Queue(_) => Kind::Queue,
                    Resource::Secret(_) => Kind::Secret,
                    Resource::Function | Resource::Subscription(_) | Resource::Other { .. } => {
                        return None
                    }
                };
                Some((id.clone(), kind))
            })
            .collect();
        for f in &template.functions {
            kinds.insert(
                f.logical_id.clone(),
                Kind::Function {
                    binary: f.binary.clone(),
                },
            );
        }
        LocalResources {
            site,
            kinds,
            secrets: Arc::new(secrets),
            table: ports.table,
            bucket: ports.bucket,
            topics: ports.topics,
            given_up: ports.given_up,
        }
    }

    fn arn(&self, service: &str, name: &str) -> String {
        format!("arn:aws:{service}:{}:{ACCOUNT}:{name}", self.site.region)
    }
}

impl Names for LocalResources {
    fn resource(&self, logical_id: &str) -> Option<String> {
        Some(match self.kinds.get(logical_id)? {
            Kind::Table => self.site.table.clone(),
            Kind::Bucket => self.site.bucket.clone(),
            Kind::Topic => self.site.topics.get(logical_id)?.clone(),
            Kind::Queue => format!("http://sqs.local/{ACCOUNT}/{logical_id}"),
            Kind::Secret => logical_id.to_owned(),
            Kind::Function { binary } => binary.clone(),
        })
    }

    fn attribute(&self, logical_id: &str, attribute: &str) -> Option<String> {
        Some(match (self.kinds.get(logical_id)?, attribute) {
            (Kind::Table, "StreamArn") => self.site.stream_arn.clone(),
            (Kind::Table, "Arn") => self.arn("dynamodb", &format!("table/{}", self.site.table)),
            (Kind::Bucket, "Arn") => format!("arn:aws:s3:::{}", self.site.bucket),
            (Kind::Queue, "Arn") => self.arn("sqs", logical_id),
            (Kind::Queue, "QueueName") => logical_id.to_owned(),
            (Kind::Topic, "TopicArn") => self.site.topics.get(logical_id)?.clone(),
            (Kind::Function { binary }, "Arn") => self.arn("lambda", &format!("function:{binary}")),
            _ => return None,
        })
    }

    fn pseudo(&self, name: &str) -> Option<String> {
        Some(match name {
            "AWS::Region" => self.site.region.clone(),
            "AWS::AccountId" => ACCOUNT.to_owned(),
            "AWS::StackName" => "local".to_owned(),
            "AWS::Partition" => "aws".to_owned(),
            "AWS::URLSuffix" => "amazonaws.com".to_owned(),
            _ => return None,
        })
    }

    fn secret(&self, id: &str) -> Option<String> {
        self.secrets.value(id).map(str::to_owned)
    }
}

impl Resources for LocalResources {
    fn table(&self, name: &str) -> Result<Arc<dyn ItemTable>, ResourceError> {
        if name != self.site.table {
            return Err(unknown("table", name, &self.site.table));
        }
        Ok(self.table.clone())
    }

    fn bucket(
        &self,
        name: &str,
        links_valid_for: Duration,
    ) -> Result<Arc<dyn ObjectStore>, ResourceError> {
        if name != self.site.bucket {
            return Err(unknown("bucket", name, &self.site.bucket));
        }
        Ok((self.bucket)(links_valid_for))
    }

    /// The engine hosts no CDN: renditions are linked where the bucket links them (`/objects/...`
    /// when embedded). It leaves a variable that names a distribution unset, so a function's
    /// configuration has none to ask for.
    fn bucket_behind(
        &self,
        _name: &str,
        _links_valid_for: Duration,
        distribution: Distribution,
    ) -> Result<Arc<dyn ObjectStore>, ResourceError> {
        Err(ResourceError::Missing {
            kind: "distribution",
            name: distribution.url,
            have: "the engine hosts no CDN; its bucket links objects itself".into(),
        })
    }

    fn topic(&self, arn: &str) -> Result<Arc<dyn Notifier>, ResourceError> {
        self.topics.get(arn).cloned().ok_or_else(|| {
            let have: Vec<&str> = self.topics.keys().map(String::as_str).collect();
            unknown("topic", arn, &have.join(", "))
        })
    }

    fn given_up_records(&self) -> Result<Arc<dyn GivenUpRecords>, ResourceError> {
        Ok(self.given_up.clone())
    }

    fn secrets(&self) -> Result<Arc<dyn Secrets>, ResourceError> {
        Ok(self.secrets.clone())
    }
}

fn unknown(kind: &'static str, name: &str, have: &str) -> ResourceError {
    ResourceError::Missing {
        kind,
        name: name.to_owned(),
        have: format!("the engine's {kind} is {have}"),
    }
}
