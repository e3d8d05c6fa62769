//! The `ingest` function, on the bucket's `s3:ObjectCreated:*` notifications (template.yaml's
//! key rules send it `incoming/` and `ingest/*.jpg|jpeg|png`, never the pipeline's own writes):
//!
//! - `incoming/<id>`: the object of a reservation arrived. If the reservation is still `pending`
//!   (and not expired), the object's first bytes are sniffed and its size checked:
//!   `pending -> uploaded`, or `pending -> failed` with why.
//! - `ingest/<anything>`: a file dropped into the bucket. It becomes a new `uploaded` item whose
//!   id is derived from the bucket, key and ETag, so a duplicated event makes one item.
//!
//! It reads only a HEAD and the first bytes, never the whole object. S3 events are at least once
//! and unordered: a duplicate or late event finds the work done and changes nothing; an event for
//! an object deleted since finds nothing to ingest; a reservation that expired (or never was)
//! ignores the object, which the bucket's lifecycle rule removes later.

use std::sync::Arc;

use aws_lambda_events::s3::{S3Event, S3EventRecord};
use config_vars::{ConfigError, Vars};
use lambda_runtime::LambdaEvent;
use state::media::{self, MediaType, NotAnImage, SNIFF_BYTES};
use state::text::one_line;
use state::{
    now_ms, transition, Arrival, ImageId, Item, ItemTable, NewUpload, ObjectStore, ResourceError,
    Resources, StateError, Status, DEFAULT_LINK_TTL,
};

/// Reserved uploads land here, at `incoming/<id>`.
pub const INCOMING: &str = "incoming/";
/// Files dropped into the bucket land here.
pub const DROP_INS: &str = "ingest/";
/// The largest object taken in unless `MAX_OBJECT_BYTES` says (template.yaml's `MaxObjectBytes`).
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 50_000_000;

/// The ingest function's settings: template.yaml's `Environment` of `IngestFunction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table_name: String,
    pub bucket_name: String,
    pub max_object_bytes: u64,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        Ok(Config {
            table_name: vars.required("TABLE_NAME")?,
            bucket_name: vars.required("BUCKET_NAME")?,
            max_object_bytes: vars.parsed_or(
                "MAX_OBJECT_BYTES",
                DEFAULT_MAX_OBJECT_BYTES,
                "a byte count",
            )?,
        })
    }
}

pub struct Deps {
    pub table: Arc<dyn ItemTable>,
    pub store: Arc<dyn ObjectStore>,
    /// The largest object taken in (`MaxObjectBytes`).
    pub max_object_bytes: u64,
}

/// The function's name in its metrics (template.yaml's binary).
pub const FUNCTION: &str = "ingest";

impl Deps {
    /// The ports `config` names, from `resources` (the SDK's on Lambda, the engine's locally).
    pub fn new(config: Config, resources: &dyn Resources) -> Result<Deps, ResourceError> {
        pipeline_metrics::cold_start(FUNCTION);
        Ok(Deps {
            table: resources.table(&config.table_name)?,
            store: resources.bucket(&config.bucket_name, DEFAULT_LINK_TTL)?,
            max_object_bytes: config.max_object_bytes,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The table or bucket did not answer: Lambda retries the event.
    #[error(transparent)]
    Unavailable(StateError),
}

impl From<IngestError> for lambda_runtime::Diagnostic {
    fn from(e: IngestError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "IngestError".into(),
            error_message: e.to_string(),
        }
    }
}

/// What became of one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// A reservation's object arrived: the item is `uploaded` now.
    Arrived(ImageId),
    /// A drop-in became a new item.
    Created(ImageId),
    /// The object was refused; the item says why (`failed`).
    Refused(ImageId, Refusal),
    /// Nothing to do: a duplicate, a late or expired event, a deleted object, a key not ours.
    Nothing(String),
}

/// Why an arrived object is not taken in; the item's `error` says it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the object is {size} bytes; the limit is {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error("the object is {size} bytes; the reservation said {reserved}")]
    NotAsReserved { size: u64, reserved: u64 },
    #[error(transparent)]
    NotAnImage(#[from] NotAnImage),
}

/// What an arrived object is, from its size and first bytes.
#[derive(Debug)]
enum Inspection {
    /// An image the pipeline takes, within the limit.
    Image {
        size: u64,
        kind: MediaType,
    },
    Refused(Refusal),
    /// Deleted since its event.
    Gone,
}

pub async fn handle(
    event: LambdaEvent<S3Event>,
    deps: &Deps,
) -> Result<Vec<Ingested>, IngestError> {
    let mut done = Vec::with_capacity(event.payload.records.len());
    for record in &event.payload.records {
        done.push(ingest(record, deps).await?);
    }
    Ok(done)
}

/// The reservation an object event is for: its key is `incoming/<id>` (`raw` as the event has
/// it, URL-encoded). `None` for any other key, a drop-in's among them.
pub fn reservation_of(raw: &str) -> Option<ImageId> {
    decoded_key(raw).strip_prefix(INCOMING)?.parse().ok()
}

/// The object key an event names: S3 writes it URL-encoded (`red+flower.jpg`).
pub fn decoded_key(raw: &str) -> String {
    let plus_as_space = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

#[tracing::instrument(skip_all, fields(key))]
async fn ingest(record: &S3EventRecord, deps: &Deps) -> Result<Ingested, IngestError> {
    let key = decoded_key(record.s3.object.key.as_deref().unwrap_or_default());
    // The key is the client's (a dropped-in file's name): one line in the log, whatever it holds.
    tracing::Span::current().record("key", one_line(&key).as_ref());
    let bucket = record.s3.bucket.name.as_deref().unwrap_or_default();
    if bucket != deps.store.bucket() {
        return Ok(nothing(format!("bucket {bucket:?} is not this pipeline's")));
    }
    let result = if let Some(id) = key.strip_prefix(INCOMING) {
        match id.parse::<ImageId>() {
            Ok(id) => reservation(id, &key, deps).await,
            Err(_) => Ok(nothing(format!("{key}: not a reservation's key"))),
        }
    } else if key.starts_with(DROP_INS) {
        let etag = record.s3.object.e_tag.as_deref().unwrap_or_default();
        drop_in(bucket, &key, etag.trim_matches('"'), deps).await
    } else {
        Ok(nothing(format!("{key}: not a key this function takes")))
    };
    result.map_err(IngestError::Unavailable)
}

fn nothing(why: String) -> Ingested {
    tracing::info!(why = %one_line(&why), "nothing to ingest");
    Ingested::Nothing(why)
}

/// Inspects an arrived object from its HEAD and its first bytes, never the whole.
async fn inspect(key: &str, deps: &Deps) -> Result<Inspection, StateError> {
    let info = match deps.store.head(key).await {
        Ok(info) => info,
        Err(StateError::ObjectMissing(_)) => return Ok(Inspection::Gone),
        Err(e) => return Err(e),
    };
    if info.size > deps.max_object_bytes {
        return Ok(Inspection::Refused(Refusal::TooLarge {
            size: info.size,
            limit: deps.max_object_bytes,
        }));
    }
    let head = match deps.store.get_prefix(key, SNIFF_BYTES).await {
        Ok(head) => head,
        Err(StateError::ObjectMissing(_)) => return Ok(Inspection::Gone),
        Err(e) => return Err(e),
    };
    Ok(match media::sniff(&head) {
        Ok(kind) => Inspection::Image {
            size: info.size,
            kind,
        },
        Err(e) => Inspection::Refused(e.into()),
    })
}

async fn reservation(id: ImageId, key: &str, deps: &Deps) -> Result<Ingested, StateError> {
    let Some(item) = deps.table.get(id).await? else {
        return Ok(nothing(format!(
            "no reservation {id} (never made, or expired and deleted)"
        )));
    };
    if item.status != Status::Pending {
        return Ok(nothing(format!(
            "{id} is {} already: a duplicate or late event",
            item.status
        )));
    }
    if item.ttl.is_some_and(|ttl| ttl * 1000 < now_ms()) {
        return Ok(nothing(format!(
            "reservation {id} expired before its object arrived"
        )));
    }
    let (size, kind) = match inspect(key, deps).await? {
        Inspection::Image { size, kind } => (size, kind),
        Inspection::Refused(why) => return refuse(deps, &item, why).await,
        Inspection::Gone => return Ok(nothing(format!("{key} is gone: deleted after its event"))),
    };
    if size != item.size {
        let why = Refusal::NotAsReserved {
            size,
            reserved: item.size,
        };
        return refuse(deps, &item, why).await;
    }
    let arrival = Arrival {
        object_key: key.to_owned(),
        size,
        content_type: kind.content_type().to_owned(),
    };
    match transition::arrived(deps.table.as_ref(), id, arrival).await {
        Ok(_) => Ok(Ingested::Arrived(id)),
        // It went another way meanwhile (a duplicate event won, or it failed): nothing to redo.
        Err(StateError::Conflict { found, .. }) => Ok(nothing(format!("{id} is {found} already"))),
        Err(e) => Err(e),
    }
}

async fn refuse(deps: &Deps, item: &Item, why: Refusal) -> Result<Ingested, StateError> {
    tracing::info!(image_id = %item.id, why = %one_line(&why.to_string()), "object refused");
    match transition::failed(deps.table.as_ref(), item.id, item.status, why.to_string()).await {
        Ok(_) | Err(StateError::Conflict { .. }) => Ok(Ingested::Refused(item.id, why)),
        Err(e) => Err(e),
    }
}

async fn drop_in(bucket: &str, key: &str, etag: &str, deps: &Deps) -> Result<Ingested, StateError> {
    let id = ImageId::derived(&format!("s3://{bucket}/{key}#{etag}"));
    if deps.table.get(id).await?.is_some() {
        return Ok(nothing(format!(
            "{key} is item {id} already: a duplicate event"
        )));
    }
    let (size, content_type, refused) = match inspect(key, deps).await? {
        Inspection::Image { size, kind } => (size, kind.content_type(), None),
        Inspection::Refused(why) => (0, "application/octet-stream", Some(why)),
        Inspection::Gone => return Ok(nothing(format!("{key} is gone: deleted after its event"))),
    };
    let item = Item::uploaded(
        NewUpload {
            id,
            bucket_name: bucket.to_owned(),
            object_key: key.to_owned(),
            content_type: content_type.to_owned(),
            size,
        },
        now_ms(),
    );
    match deps.table.insert(&item).await {
        Ok(()) => {}
        Err(StateError::Duplicate(_)) => {
            return Ok(nothing(format!(
                "{key} is item {id} already: a duplicate event"
            )))
        }
        Err(e) => return Err(e),
    }
    match refused {
        // A drop-in that is no image still becomes an item, which says why it went no further.
        Some(why) => refuse(deps, &item, why).await,
        None => Ok(Ingested::Created(id)),
    }
}
