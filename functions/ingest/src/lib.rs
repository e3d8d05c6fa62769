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
use lambda_runtime::LambdaEvent;
use state::media::{self, SNIFF_BYTES};
use state::{
    now_ms, transition, Arrival, ImageId, Item, ItemTable, NewUpload, ObjectStore, StateError,
    Status,
};

/// Reserved uploads land here, at `incoming/<id>`.
pub const INCOMING: &str = "incoming/";
/// Files dropped into the bucket land here.
pub const DROP_INS: &str = "ingest/";

pub struct Deps {
    pub table: Arc<dyn ItemTable>,
    pub store: Arc<dyn ObjectStore>,
    /// The largest object taken in (`MaxObjectBytes`).
    pub max_object_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("configuration: {0}")]
    Config(String),
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
    Refused(ImageId, String),
    /// Nothing to do: a duplicate, a late or expired event, a deleted object, a key not ours.
    Nothing(String),
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
    tracing::Span::current().record("key", key.as_str());
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
    tracing::info!(%why, "nothing to ingest");
    Ingested::Nothing(why)
}

/// What an arrived object is, from its size and first bytes: an image within the limit, or why not.
async fn inspect(
    key: &str,
    deps: &Deps,
) -> Result<Option<Result<(u64, media::MediaType), String>>, StateError> {
    let info = match deps.store.head(key).await {
        Ok(info) => info,
        Err(StateError::ObjectMissing(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    if info.size > deps.max_object_bytes {
        return Ok(Some(Err(format!(
            "the object is {} bytes; the limit is {}",
            info.size, deps.max_object_bytes
        ))));
    }
    let head = match deps.store.get_prefix(key, SNIFF_BYTES).await {
        Ok(head) => head,
        Err(StateError::ObjectMissing(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(
        media::sniff(&head)
            .map(|kind| (info.size, kind))
            .map_err(|e| e.to_string()),
    ))
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
    let Some(inspected) = inspect(key, deps).await? else {
        return Ok(nothing(format!("{key} is gone: deleted after its event")));
    };
    let (size, kind) = match inspected {
        Ok(found) => found,
        Err(why) => return refuse(deps, &item, why).await,
    };
    if size != item.size {
        let why = format!(
            "the object is {size} bytes; the reservation said {}",
            item.size
        );
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

async fn refuse(deps: &Deps, item: &Item, why: String) -> Result<Ingested, StateError> {
    tracing::info!(image_id = %item.id, %why, "object refused");
    match transition::failed(deps.table.as_ref(), item.id, item.status, why.clone()).await {
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
    let Some(inspected) = inspect(key, deps).await? else {
        return Ok(nothing(format!("{key} is gone: deleted after its event")));
    };
    let (size, content_type, refused) = match &inspected {
        Ok((size, kind)) => (*size, kind.content_type(), None),
        Err(why) => (0, "application/octet-stream", Some(why.clone())),
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
