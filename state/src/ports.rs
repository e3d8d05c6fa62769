//! The small traits the functions depend on. Each has an AWS adapter (`adapters/aws`) and an
//! embedded one (`adapters/embedded`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::transition::Outcome;
use crate::{ImageId, Item, Page, Query, Stall, StateError, Status, Transition};

/// The items table.
#[async_trait]
pub trait ItemTable: Send + Sync {
    /// Writes a new item (`uploaded`, or a `pending` reservation); an existing id is
    /// [`StateError::Duplicate`].
    async fn insert(&self, item: &Item) -> Result<(), StateError>;
    /// Reads one item, strongly consistent.
    async fn get(&self, id: ImageId) -> Result<Option<Item>, StateError>;
    /// One page of a query, newest first, from an index (never by reading every item).
    async fn query(&self, q: &Query) -> Result<Page, StateError>;
    /// Applies `t` as one conditional write (`status = t.from()`). A false condition is classified
    /// by [`Transition::classify`]. Only `state::transition` calls this.
    async fn advance(&self, id: ImageId, t: &Transition) -> Result<Outcome, StateError>;
    /// Marks the item stalled, in one conditional write, if it is still at `status` (the status
    /// the given-up record left it at); `false`, writing nothing, if it moved on or is gone.
    async fn mark_stalled(
        &self,
        id: ImageId,
        status: Status,
        stall: &Stall,
    ) -> Result<bool, StateError>;
    /// Clears the item's stall mark, in one conditional write; `false` if it had none. The write's
    /// stream record offers the item to its function again (a redrive).
    async fn clear_stalled(&self, id: ImageId) -> Result<bool, StateError>;
    /// How many `pending` items (reservations) were created after `created_after` (epoch ms),
    /// counting no further than `at_most`: a range read of the status index, whose cost grows
    /// with the count it finds (never with the table) and stops at `at_most`.
    async fn count_pending(&self, created_after: i64, at_most: usize) -> Result<usize, StateError>;
}

/// What a HEAD of an object tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
}

/// A URL a client can PUT one object to, without credentials of its own, until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignedUpload {
    pub url: String,
    /// Always `PUT`.
    pub method: &'static str,
    /// Headers the client must send exactly as given (they are signed).
    pub headers: std::collections::BTreeMap<String, String>,
    /// Epoch ms.
    pub expires_at: i64,
}

/// The bucket holding originals and renditions.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    fn bucket(&self) -> &str;
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), StateError>;
    /// A missing key is [`StateError::ObjectMissing`].
    async fn get(&self, key: &str) -> Result<Bytes, StateError>;
    /// A URL a browser can GET the object at, for a while: presigned on S3, the engine's own
    /// `/objects/<key>` locally. It does not check that the object exists.
    async fn link(&self, key: &str) -> Result<String, StateError>;
    /// The object's size, without its bytes. A missing key is [`StateError::ObjectMissing`].
    async fn head(&self, key: &str) -> Result<ObjectInfo, StateError>;
    /// The object's first `len` bytes (fewer if it is shorter): enough to sniff, never the whole.
    async fn get_prefix(&self, key: &str, len: usize) -> Result<Bytes, StateError>;
    /// A signed PUT for `key` that accepts exactly `size` bytes of `content_type`, valid for
    /// `valid_for`: an S3 presigned PUT, or the engine's own signed URL locally.
    async fn signed_upload(
        &self,
        key: &str,
        size: u64,
        content_type: &str,
        valid_for: std::time::Duration,
    ) -> Result<SignedUpload, StateError>;
}

/// One notice about one item.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// Names the event this notice is about; a notifier that can deduplicate (the local mailbox)
    /// sends one notice per key, however often it is published.
    pub dedup_key: String,
    pub subject: String,
    /// The readable text: what an email subscriber gets.
    pub body: String,
    /// The same notice for programs: a JSON document (docs/webhooks.md) that HTTP(S) and SQS
    /// subscribers get instead of `body`.
    pub document: String,
}

/// The SNS topic.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Publishes and returns the message id.
    async fn publish(&self, notice: &Notice) -> Result<String, StateError>;
}

/// Which records a function gave up on, as an on-failure destination describes them: a stretch of
/// one shard of a stream (the records themselves are not in the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenUpBatch {
    pub stream_arn: String,
    pub shard_id: String,
    pub first_sequence: String,
    pub last_sequence: String,
}

/// Reads the records of a [`GivenUpBatch`] back from the stream (DynamoDB Streams keeps them for
/// 24 hours). An empty answer means they are gone.
#[async_trait]
pub trait GivenUpRecords: Send + Sync {
    async fn records(
        &self,
        batch: &GivenUpBatch,
    ) -> Result<Vec<aws_lambda_events::dynamodb::EventRecord>, StateError>;
}

/// How long an object's link stays valid where links expire (S3's presigned GETs), unless a
/// function's configuration says otherwise.
pub const DEFAULT_LINK_TTL: Duration = Duration::from_secs(15 * 60);

/// Where a function reads the secrets its configuration names (keys it must not carry in its
/// configuration, read once as it starts): Secrets Manager on AWS, the engine's own locally.
#[async_trait]
pub trait Secrets: Send + Sync {
    /// The current value of the secret `id` (its name or ARN, as the configuration gives it),
    /// which must be text.
    async fn string(&self, id: &str) -> Result<String, ResourceError>;
}

/// A content delivery network in front of a bucket: links to the objects it serves (renditions)
/// are its own URLs, signed when `signing` is given.
#[derive(Debug, Clone)]
pub struct Distribution {
    /// Its base URL (`https://d111111abcdef8.cloudfront.net`).
    pub url: String,
    pub signing: Option<SigningKey>,
}

/// The key a distribution's signed URLs are made with.
#[derive(Clone)]
pub struct SigningKey {
    /// The public key's id, which the distribution trusts.
    pub key_pair_id: String,
    /// The private key, in PEM.
    pub private_key_pem: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("SigningKey")
            .field("key_pair_id", &self.key_pair_id)
            .finish_non_exhaustive()
    }
}

/// Where a function finds the ports its configuration names: the table, bucket and topic by the
/// names its environment gives, the stream's given-up records, and its secrets. On Lambda, an
/// SDK client for each (`aws_adapters::AwsResources`); in the local engine, the ports of its
/// backend. A function's `Deps::new(config, resources)` is the same code on both.
pub trait Resources: Send + Sync {
    /// The items table called `name`.
    fn table(&self, name: &str) -> Result<Arc<dyn ItemTable>, ResourceError>;
    /// The bucket called `name`, whose links ([`ObjectStore::link`]) stay valid for `links_valid_for`
    /// where they expire.
    fn bucket(
        &self,
        name: &str,
        links_valid_for: Duration,
    ) -> Result<Arc<dyn ObjectStore>, ResourceError>;
    /// The bucket called `name`, as [`Resources::bucket`], with links to what `distribution`
    /// serves at the distribution (valid for `links_valid_for` to twice that, when signed).
    fn bucket_behind(
        &self,
        name: &str,
        links_valid_for: Duration,
        distribution: Distribution,
    ) -> Result<Arc<dyn ObjectStore>, ResourceError>;
    /// The topic whose ARN is `arn`.
    fn topic(&self, arn: &str) -> Result<Arc<dyn Notifier>, ResourceError>;
    /// The table stream's records, read back for an on-failure message.
    fn given_up_records(&self) -> Result<Arc<dyn GivenUpRecords>, ResourceError>;
    /// The secrets the host keeps.
    fn secrets(&self) -> Result<Arc<dyn Secrets>, ResourceError>;
}

/// The cause of an unusable resource.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A resource a function's configuration names that its host does not have, or cannot use.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("no {kind} {name:?} here ({have})")]
    Missing {
        /// `table`, `bucket`, `topic`, `stream`, `secret`, `distribution`.
        kind: &'static str,
        name: String,
        /// What the host has instead, for the message.
        have: String,
    },
    /// It is there, but could not be read or its value is not what the function needs.
    #[error("{kind} {name:?}: {source}")]
    Unusable {
        kind: &'static str,
        name: String,
        #[source]
        source: BoxError,
    },
}

impl ResourceError {
    pub fn unusable(kind: &'static str, name: &str, source: impl Into<BoxError>) -> Self {
        ResourceError::Unusable {
            kind,
            name: name.to_owned(),
            source: source.into(),
        }
    }
}
