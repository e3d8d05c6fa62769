//! The upload API: `POST /upload`, `GET /items`, `GET /items/{id}`, and the web page at `GET /`,
//! one function behind API Gateway (and behind the local engine's HTTP server, which calls
//! [`handle`] the same way).
//!
//! `GET /items?status=&limit=&cursor=` answers `{"items": [...], "next": cursor-or-null}`, newest
//! first, from the table's index queries; `status` is a status or `stalled`. Items carry `urls`:
//! where a browser can fetch the original and each rendition.
//!
//! Over 400 lines: the five routes and the one error type they all answer with, read top to bottom.

use std::sync::Arc;

use bytes::Bytes;
use lambda_http::http::{header, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;
use state::media::{self, NotAnImage};
use state::{
    links, now_ms, ImageId, Item, ItemTable, NewUpload, ObjectStore, Query, ResourceError,
    Resources, Selection, StateError, Status,
};

mod config;
mod cursor;
pub mod page;
pub use config::{Config, CursorKeySource};
pub use cursor::{CursorError, CursorKey};
pub use state::links::{Cdn, CdnSigning};

/// What one upload may weigh unless configured: about 4.5 MB, because Lambda's 6 MB request
/// payload carries the body base64-encoded (template.yaml's `MaxUploadBytes` says the same).
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 4_500_000;
/// Items per page unless `limit` says otherwise, and the most it may say: a page of the largest
/// items (EXIF strings are capped, history has at most four entries) stays far under Lambda's
/// 6 MB response limit.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 100;

/// The largest object a reservation may announce unless configured (`MaxObjectBytes`): 50 MB.
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 50_000_000;
/// How long a reservation's signed PUT stays valid unless configured (`UploadUrlMinutes`).
pub const DEFAULT_UPLOAD_URL_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// Reservations whose URLs are still valid, at most, unless configured
/// (`MaxPendingReservations`): each may bring `MaxObjectBytes`, so this bounds what the unused
/// ones can cost (items, and disk or bucket space once their PUTs arrive).
pub const DEFAULT_MAX_PENDING_RESERVATIONS: usize = 1000;
/// What a refused reservation is told to wait: one frees when its photo arrives or its URL
/// expires.
pub const RESERVATIONS_RETRY_AFTER_S: u64 = 30;
/// A reservation outlives its URL by this much before TTL deletes it: a PUT that started just in
/// time may still be arriving.
pub const RESERVATION_GRACE_S: i64 = 3600;

pub struct Deps {
    pub table: Arc<dyn ItemTable>,
    pub store: Arc<dyn ObjectStore>,
    pub max_upload_bytes: usize,
    /// The largest object `POST /uploads` reserves room for.
    pub max_object_bytes: u64,
    /// How long a reservation's signed PUT stays valid.
    pub upload_url_ttl: std::time::Duration,
    /// Reservations whose URLs are still valid, at most; beyond, `POST /uploads` is 503.
    pub max_pending_reservations: usize,
    /// Signs page cursors.
    pub cursor_key: CursorKey,
}

/// The function's name in its metrics (template.yaml's binary).
pub const FUNCTION: &str = "upload";

impl Deps {
    /// The ports `config` names, from `resources` (the SDK's on Lambda, the engine's locally),
    /// and the keys its secrets hold, read once, now: both secrets at once. With a CDN, the
    /// bucket's renditions are linked through it (how is the resources' business: CloudFront's
    /// signed URLs on AWS).
    pub async fn new(config: Config, resources: &dyn Resources) -> Result<Deps, ResourceError> {
        pipeline_metrics::cold_start(FUNCTION);
        let cursor_key = async {
            match &config.cursor_key {
                CursorKeySource::Given(key) => Ok(key.clone()),
                CursorKeySource::Secret(id) => {
                    let value = resources.secrets()?.string(id).await?;
                    CursorKey::new(value).ok_or_else(|| {
                        ResourceError::unusable("secret", id, "a cursor key needs 16 bytes or more")
                    })
                }
            }
        };
        let store = links::open_bucket(
            resources,
            &config.bucket_name,
            config.link_ttl,
            config.cdn.as_ref(),
        );
        let (cursor_key, store) = tokio::try_join!(cursor_key, store)?;
        Ok(Deps {
            table: resources.table(&config.table_name)?,
            store,
            max_upload_bytes: config.max_upload_bytes,
            max_object_bytes: config.max_object_bytes,
            upload_url_ttl: config.upload_url_ttl,
            max_pending_reservations: config.max_pending_reservations,
            cursor_key,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("empty body: send the image bytes, e.g. curl --data-binary @photo.jpg")]
    Empty,
    #[error("body is {size} bytes; the limit is {limit}")]
    TooLarge { size: u64, limit: u64 },
    #[error("invalid reservation: {0}; send JSON {{\"size\": <bytes>, \"content_type\": \"image/jpeg\"}} (or another of {taken})", taken = media::accepted_content_types())]
    BadReservation(String),
    #[error("content type {0:?} is not taken: one of {taken}", taken = media::accepted_content_types())]
    UnsupportedType(String),
    #[error(transparent)]
    NotAnImage(#[from] NotAnImage),
    #[error("no item {0}")]
    NotFound(String),
    #[error("no route for {method} {path}")]
    NoRoute { method: Method, path: String },
    #[error("invalid query: {0}")]
    BadQuery(String),
    #[error(transparent)]
    BadCursor(#[from] CursorError),
    #[error("{limit} reservations are outstanding, the most this API allows (MaxPendingReservations); one frees when its photo arrives or its URL expires: try again in {RESERVATIONS_RETRY_AFTER_S} seconds, or upload a small photo with POST /upload")]
    TooManyReservations { limit: usize },
    #[error(transparent)]
    State(#[from] StateError),
}

impl UploadError {
    pub fn status(&self) -> StatusCode {
        match self {
            UploadError::Empty
            | UploadError::BadQuery(_)
            | UploadError::BadCursor(_)
            | UploadError::BadReservation(_) => StatusCode::BAD_REQUEST,
            UploadError::UnsupportedType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            UploadError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UploadError::NotAnImage(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            UploadError::NotFound(_) | UploadError::NoRoute { .. } => StatusCode::NOT_FOUND,
            UploadError::TooManyReservations { .. } => StatusCode::SERVICE_UNAVAILABLE,
            UploadError::State(e) if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            UploadError::State(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Routes one request. Never fails: every error becomes a JSON response with its status.
pub async fn handle(req: Request, deps: &Deps) -> Response<Body> {
    let method = req.method().clone();
    let path = route_path(&req);
    let result = match (method.clone(), segments(&path).as_slice()) {
        (Method::GET, []) => Ok(page::response(deps.store.as_ref()).await),
        (Method::POST, ["upload"]) => upload(req, deps).await,
        (Method::POST, ["uploads"]) => reserve(req, deps).await,
        (Method::GET, ["items"]) => list(&req, deps).await,
        (Method::GET, ["items", id]) => get(id, deps).await,
        _ => Err(UploadError::NoRoute { method, path }),
    };
    result.unwrap_or_else(|e| {
        let status = e.status();
        if let UploadError::TooManyReservations { .. } = e {
            tracing::warn!(error = %e, "reservation refused");
            let mut resp = json_response(status, &json!({ "error": e.to_string() }));
            resp.headers_mut()
                .insert(header::RETRY_AFTER, RESERVATIONS_RETRY_AFTER_S.into());
            return resp;
        }
        let message = if status.is_server_error() {
            // The cause (a store's error, with its paths and endpoints) goes to the log only.
            tracing::error!(error = %e, "request failed");
            if status == StatusCode::SERVICE_UNAVAILABLE {
                "the table or the bucket did not answer; try again shortly".to_owned()
            } else {
                "internal error; the request was logged".to_owned()
            }
        } else {
            tracing::info!(error = %e, status = status.as_u16(), "request rejected");
            e.to_string()
        };
        json_response(status, &json!({ "error": message }))
    })
}

/// The path API Gateway matched, without a stage; a plain HTTP request's own path.
fn route_path(req: &Request) -> String {
    let raw = req.raw_http_path();
    if raw.is_empty() {
        req.uri().path()
    } else {
        raw
    }
    .to_owned()
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

#[tracing::instrument(skip_all, fields(image_id))]
async fn upload(req: Request, deps: &Deps) -> Result<Response<Body>, UploadError> {
    let body = match req.into_body() {
        Body::Empty => Bytes::new(),
        Body::Text(t) => Bytes::from(t),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    if body.is_empty() {
        return Err(UploadError::Empty);
    }
    if body.len() > deps.max_upload_bytes {
        return Err(UploadError::TooLarge {
            size: body.len() as u64,
            limit: deps.max_upload_bytes as u64,
        });
    }
    let kind = media::sniff(&body)?;
    let content_type = kind.content_type();
    let id = ImageId::generate();
    tracing::Span::current().record("image_id", tracing::field::display(id));
    let object_key = format!("uploads/{id}.{}", kind.extension());
    // The object first: an item never names an object that is not there.
    deps.store
        .put(&object_key, body.clone(), content_type)
        .await?;
    let item = Item::uploaded(
        NewUpload {
            id,
            bucket_name: deps.store.bucket().to_owned(),
            object_key,
            content_type: content_type.to_owned(),
            size: body.len() as u64,
        },
        now_ms(),
    );
    deps.table.insert(&item).await?;
    tracing::info!(size = item.size, content_type, "accepted upload");
    let mut resp = json_response(StatusCode::CREATED, &view(&item, deps).await?);
    resp.headers_mut().insert(
        header::LOCATION,
        format!("/items/{id}")
            .parse()
            .expect("a UUID path is a valid header"),
    );
    Ok(resp)
}

/// `POST /uploads`: a reservation for a direct upload of any photo up to `MaxObjectBytes`. The
/// answer says where to PUT the bytes (a signed URL for `incoming/<id>` that takes exactly the
/// announced length and type); the item is `pending` until they arrive.
#[tracing::instrument(skip_all, fields(image_id))]
async fn reserve(req: Request, deps: &Deps) -> Result<Response<Body>, UploadError> {
    let body: Vec<u8> = match req.into_body() {
        Body::Text(t) => t.into_bytes(),
        Body::Binary(b) => b,
        _ => Vec::new(),
    };
    let asked: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| UploadError::BadReservation(format!("not JSON ({e})")))?;
    let size = match &asked["size"] {
        serde_json::Value::Number(n) => n.as_u64().filter(|&n| n > 0).ok_or_else(|| {
            UploadError::BadReservation(format!("size {n} is not a positive whole number of bytes"))
        })?,
        serde_json::Value::Null => {
            return Err(UploadError::BadReservation("size is missing".into()))
        }
        other => {
            return Err(UploadError::BadReservation(format!(
                "size {other} is not a number"
            )))
        }
    };
    if size > deps.max_object_bytes {
        return Err(UploadError::TooLarge {
            size,
            limit: deps.max_object_bytes,
        });
    }
    let declared = asked["content_type"]
        .as_str()
        .ok_or_else(|| UploadError::BadReservation("content_type is missing".into()))?;
    let kind = media::MediaType::from_content_type(declared)
        .ok_or_else(|| UploadError::UnsupportedType(declared.to_owned()))?;
    // Outstanding: pending, and its URL still valid. Counted, then written: reservations made at
    // the same moment may pass the bound together, by at most as many as are made at once.
    let since = now_ms() - deps.upload_url_ttl.as_millis() as i64;
    let limit = deps.max_pending_reservations;
    if deps.table.count_pending(since, limit).await? >= limit {
        return Err(UploadError::TooManyReservations { limit });
    }
    let id = ImageId::generate();
    tracing::Span::current().record("image_id", tracing::field::display(id));
    let object_key = format!("incoming/{id}");
    // Signed first: a reservation is only written once there is a way to fill it.
    let signed = deps
        .store
        .signed_upload(&object_key, size, kind.content_type(), deps.upload_url_ttl)
        .await?;
    let now = now_ms();
    let item = Item::pending(
        NewUpload {
            id,
            bucket_name: deps.store.bucket().to_owned(),
            object_key,
            content_type: kind.content_type().to_owned(),
            size,
        },
        now,
        signed.expires_at / 1000 + RESERVATION_GRACE_S,
    );
    deps.table.insert(&item).await?;
    tracing::info!(
        size,
        content_type = kind.content_type(),
        "reserved a direct upload"
    );
    let mut answer = serde_json::to_value(&signed).expect("a signed upload serialises");
    answer["id"] = json!(id.to_string());
    answer["item"] = view(&item, deps).await?;
    let mut resp = json_response(StatusCode::CREATED, &answer);
    resp.headers_mut().insert(
        header::LOCATION,
        format!("/items/{id}")
            .parse()
            .expect("a UUID path is a valid header"),
    );
    Ok(resp)
}

/// The query `GET /items` asks for: `status` (a status, or `stalled`), `limit`, `cursor`.
fn query_of(req: &Request, key: &CursorKey) -> Result<Query, UploadError> {
    let params = req.query_string_parameters_ref();
    let param = |name: &str| params.and_then(|q| q.first(name));
    let selection = match param("status") {
        None | Some("") => Selection::All,
        Some("stalled") => Selection::Stalled,
        Some(s) => Selection::Status(s.parse::<Status>().map_err(|_| {
            let known: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
            UploadError::BadQuery(format!(
                "unknown status {s:?}: one of {}, or stalled",
                known.join(", ")
            ))
        })?),
    };
    let limit = match param("limit") {
        None => DEFAULT_PAGE,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                UploadError::BadQuery(format!("limit must be 1..={MAX_PAGE}, not {v:?}"))
            })?,
    };
    let after = match param("cursor") {
        None | Some("") => None,
        Some(c) => Some(key.decode(c, selection)?),
    };
    Ok(Query {
        selection,
        limit,
        after,
    })
}

async fn list(req: &Request, deps: &Deps) -> Result<Response<Body>, UploadError> {
    let q = query_of(req, &deps.cursor_key)?;
    let page = deps.table.query(&q).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for item in &page.items {
        items.push(view(item, deps).await?);
    }
    let next = page.next.map(|p| deps.cursor_key.encode(q.selection, p));
    Ok(json_response(
        StatusCode::OK,
        &json!({ "items": items, "next": next }),
    ))
}

async fn get(id: &str, deps: &Deps) -> Result<Response<Body>, UploadError> {
    // Ids are server-generated UUIDs: anything else cannot name an item.
    let parsed: ImageId = id
        .parse()
        .map_err(|_| UploadError::NotFound(id.to_owned()))?;
    let item = deps
        .table
        .get(parsed)
        .await?
        .ok_or_else(|| UploadError::NotFound(id.to_owned()))?;
    Ok(json_response(StatusCode::OK, &view(&item, deps).await?))
}

/// An item as the API shows it: its attributes, and `urls` to fetch the original and each
/// rendition (presigned on AWS, the engine's own `/objects/...` locally).
async fn view(item: &Item, deps: &Deps) -> Result<serde_json::Value, UploadError> {
    let mut json = serde_json::to_value(item).expect("an item serialises");
    let mut renditions = serde_json::Map::new();
    for (name, key) in item.renditions.iter().flatten() {
        renditions.insert(name.clone(), deps.store.link(key).await?.into());
    }
    json["urls"] = json!({
        "original": deps.store.link(&item.object_key).await?,
        "renditions": renditions,
    });
    Ok(json)
}

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::Text(
            serde_json::to_string(body).expect("responses serialise to JSON"),
        ))
        .expect("a static response is valid")
}
