//! The local bucket over HTTP, the twin of S3's presigned URLs:
//!
//! - `GET /objects/<key>`: read-only, for links in item responses and the web page. Only keys of
//!   objects that exist under the bucket's folder are served: anything else is 400 (not a key) or
//!   404 (no such object). Each answer has the object's type (from its bytes, then its
//!   extension), a strong ETag (size and modification time) for conditional requests, and cache
//!   headers; the body is streamed from the file.
//! - `PUT /objects/incoming/<id>?size=&type=&expires=&signature=`: a reservation's signed upload.
//!   The signature (over method, key, length, type and expiry) is checked, then the body is
//!   streamed to a temporary file, counted and hashed (its MD5 is the ETag, as S3's), its bucket
//!   notification queued, and the file put in place unless an object is there already. A URL
//!   writes once, as S3's presigned PUTs signed with `If-None-Match: *` do: a PUT to a key that
//!   has its object (a replay, or the loser of two at once) is 412 and stores nothing, so the
//!   first complete PUT wins and the item always describes the stored bytes. A bad or expired
//!   signature is 403, a body of another length or type is refused, and nothing is stored for
//!   any of them.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use embedded_adapters::files::FileStore;
use embedded_adapters::signed::{SignatureError, UploadGrant};

use crate::bucket::BucketEvents;
use crate::faults::{CrashPoint, Faults};
use futures::StreamExt;
use tokio::io::AsyncReadExt;

/// What the objects routes need: the bucket, its notifications, admission control (a signed PUT
/// brings work as an upload does), the crash drills.
#[derive(Clone)]
pub struct Objects {
    pub files: Arc<FileStore>,
    pub events: Arc<BucketEvents>,
    pub faults: Faults,
    pub admission: crate::admission::Admission,
    pub metrics: crate::metrics::Metrics,
    pub disk: crate::disk::DiskSpace,
}

pub fn router(objects: Objects) -> Router {
    Router::new()
        .route("/objects/{*key}", get(serve).put(receive))
        .with_state(objects)
}

/// An S3-style error: an XML body with a code and a message.
fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/xml")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"),
    )
        .into_response()
}

async fn receive(
    State(objects): State<Objects>,
    Path(key): Path<String>,
    Query(params): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(signer) = objects.files.signer() else {
        return s3_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "this bucket takes no uploads",
        );
    };
    let param = |name: &str| params.get(name).map(String::as_str);
    let (Some(size), Some(content_type), Some(expires), Some(signature)) = (
        param("size"),
        param("type"),
        param("expires"),
        param("signature"),
    ) else {
        return s3_error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            &SignatureError::Missing.to_string(),
        );
    };
    let (Ok(size), Ok(expires_at)) = (size.parse::<u64>(), expires.parse::<i64>()) else {
        return s3_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            &SignatureError::DoesNotMatch.to_string(),
        );
    };
    let grant = UploadGrant {
        key: key.clone(),
        size,
        content_type: content_type.to_owned(),
        expires_at,
    };
    match signer.verify(&grant, signature, state::now_ms()) {
        Ok(()) => {}
        Err(e @ SignatureError::Expired) => {
            return s3_error(StatusCode::FORBIDDEN, "AccessDenied", &e.to_string())
        }
        Err(e) => {
            return s3_error(
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                &e.to_string(),
            )
        }
    }
    // Type and length are signed: the request must send exactly what was signed.
    let sent_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if sent_type != Some(grant.content_type.as_str()) {
        return s3_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "the Content-Type is not the one signed",
        );
    }
    let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return s3_error(
            StatusCode::LENGTH_REQUIRED,
            "MissingContentLength",
            "send a Content-Length",
        );
    };
    if length != grant.size {
        return s3_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            &format!(
                "the Content-Length is {length}; {} bytes were signed",
                grant.size
            ),
        );
    }
    let Ok(path) = objects.files.path_of(&key) else {
        return s3_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "not an object key",
        );
    };
    // Refused before a byte is read when the object is there; checked again, atomically, when
    // the body is complete (another PUT may have finished meanwhile).
    if tokio::fs::symlink_metadata(&path).await.is_ok() {
        return written_once();
    }
    // Room on the disk for the signed length, before a byte is read.
    let _room = match objects.disk.reserve(grant.size) {
        Ok(room) => room,
        Err(why) => {
            tracing::warn!(%why, "PUT refused: the disk is nearly full");
            let mut response = s3_error(
                StatusCode::INSUFFICIENT_STORAGE,
                "InsufficientStorage",
                &why,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };
    // Admitted as an upload is, before a byte is read; refused, the URL stays good until it
    // expires.
    let ticket = match objects
        .admission
        .admit(crate::admission::Lane::SignedPut)
        .await
    {
        Ok(ticket) => ticket,
        Err(why) => return slow_down(&objects, &why),
    };
    match store(&objects, &key, &path, grant.size, body).await {
        Ok((etag, head)) => {
            let id = key.strip_prefix(INCOMING).unwrap_or(&key).to_owned();
            // Costed beside the answer, not before it (as `POST /upload` is).
            tokio::spawn(async move { ticket.accepted(&id, &head).await });
            (StatusCode::OK, [(header::ETAG, format!("\"{etag}\""))]).into_response()
        }
        Err(Refused::Taken) => written_once(),
        Err(Refused::Short(got)) => s3_error(
            StatusCode::BAD_REQUEST,
            "IncompleteBody",
            &format!("{got} bytes came; {} were signed", grant.size),
        ),
        Err(Refused::Long) => s3_error(
            StatusCode::BAD_REQUEST,
            "IncompleteBody",
            "more bytes came than were signed",
        ),
        Err(Refused::Body(e)) => s3_error(StatusCode::REQUEST_TIMEOUT, "RequestTimeout", &e),
        Err(Refused::Store(e)) => {
            tracing::error!(error = %format!("{e:#}"), key, "storing an upload failed");
            s3_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "try again shortly",
            )
        }
    }
}

/// Where a reservation's object goes: `incoming/<item id>`.
const INCOMING: &str = "incoming/";

/// How long a PUT refused for the backlog is asked to wait.
const RETRY_AFTER_S: u64 = 1;

/// S3's answer when it asks a client to slow down (`503 SlowDown`), with `Retry-After`, counted
/// as a throttle of the API.
fn slow_down(objects: &Objects, why: &str) -> Response {
    objects
        .metrics
        .throttles
        .with_label_values(&[crate::metrics::API_FUNCTION])
        .inc();
    let mut response = s3_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "SlowDown",
        &format!("{why}; retry after {RETRY_AFTER_S} s (this URL stays valid until it expires)"),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, RETRY_AFTER_S.into());
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// S3's answer to a conditional PUT whose key has an object: a signed URL writes once.
fn written_once() -> Response {
    s3_error(
        StatusCode::PRECONDITION_FAILED,
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold: this URL's object is stored already; a signed URL writes once",
    )
}

enum Refused {
    /// Another PUT's object is in place.
    Taken,
    Short(u64),
    Long,
    Body(String),
    Store(anyhow::Error),
}

/// Streams `body` into a temporary file beside `path`, exactly `size` bytes, queues the bucket
/// notification, then moves the file into place unless `path` exists (one atomic link or rename
/// without replacement: of two PUTs at once, exactly one wins); returns the MD5 (the ETag) and the
/// first [`crate::admission::HEAD_BYTES`] (what admission estimates the work from). On
/// any refusal the temporary file is removed and the notification withdrawn: nothing is stored.
async fn store(
    objects: &Objects,
    key: &str,
    path: &std::path::Path,
    size: u64,
    body: Body,
) -> Result<(String, Vec<u8>), Refused> {
    use md5::Digest;
    use tokio::io::AsyncWriteExt;
    let dir = path
        .parent()
        .ok_or_else(|| Refused::Store(anyhow::anyhow!("no parent")))?;
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| Refused::Store(e.into()))?;
    let tmp = tempfile::Builder::new()
        .suffix(PARTIAL)
        .tempfile_in(dir)
        .map_err(|e| Refused::Store(e.into()))?;
    let mut out = tokio::fs::File::from_std(
        tmp.as_file()
            .try_clone()
            .map_err(|e| Refused::Store(e.into()))?,
    );
    let mut md5 = md5::Md5::new();
    let mut got: u64 = 0;
    let mut head = Vec::new();
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| Refused::Body(e.to_string()))?;
        got += chunk.len() as u64;
        if got > size {
            return Err(Refused::Long);
        }
        md5.update(&chunk);
        let room = crate::admission::HEAD_BYTES.saturating_sub(head.len());
        head.extend_from_slice(&chunk[..chunk.len().min(room)]);
        out.write_all(&chunk)
            .await
            .map_err(|e| Refused::Store(e.into()))?;
    }
    if got != size {
        return Err(Refused::Short(got));
    }
    out.flush().await.map_err(|e| Refused::Store(e.into()))?;
    if objects.files.fsync() {
        out.sync_all().await.map_err(|e| Refused::Store(e.into()))?;
    }
    drop(out);
    let etag: String = md5.finalize().iter().map(|b| format!("{b:02x}")).collect();
    // The event is queued (held) before the rename and released after: a crash between them is
    // recovered at the next start, never an object without its event.
    let held = objects
        .events
        .object_created(key, size, &etag)
        .await
        .map_err(Refused::Store)?;
    if let Err(e) = tmp.persist_noclobber(path) {
        let taken = e.error.kind() == std::io::ErrorKind::AlreadyExists;
        objects
            .events
            .withdrawn(held)
            .await
            .map_err(Refused::Store)?;
        return Err(if taken {
            Refused::Taken
        } else {
            Refused::Store(e.error.into())
        });
    }
    objects.faults.crash_point(CrashPoint::AfterObjectWrite);
    objects
        .events
        .released(held)
        .await
        .map_err(Refused::Store)?;
    Ok((etag, head))
}

/// Where an upload's bytes go until they are complete: `<key>.part`, beside its object.
const PARTIAL: &str = ".part";

/// Removes what uploads cut short by a crash left under `incoming/` (`*.part`: never an object's
/// key, which is `incoming/<id>`). Called as the engine starts, before it serves: no PUT is in
/// progress then, so every such file is stale. Returns how many it removed.
pub fn remove_partial_uploads(files: &FileStore) -> std::io::Result<usize> {
    let dir = files.root().join("incoming");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let partial = entry.file_name().to_string_lossy().ends_with(PARTIAL);
        if partial && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "error": message }).to_string(),
    )
        .into_response()
}

/// The object's content type: sniffed from its first bytes, else by the extension the pipeline
/// gave it.
fn content_type(head: &[u8], key: &str) -> &'static str {
    if let Ok(kind) = state::media::sniff(head) {
        return kind.content_type();
    }
    match key.rsplit_once('.').map(|(_, ext)| ext) {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("avif") => "image/avif",
        _ => "application/octet-stream",
    }
}

async fn serve(
    State(objects): State<Objects>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    let files = &objects.files;
    let Ok(path) = files.path_of(&key) else {
        return error(StatusCode::BAD_REQUEST, "not an object key");
    };
    // The file must really be inside the bucket's folder (no symbolic link out of it).
    let (Ok(real), Ok(root)) = (
        tokio::fs::canonicalize(&path).await,
        tokio::fs::canonicalize(files.root()).await,
    ) else {
        return error(StatusCode::NOT_FOUND, "no such object");
    };
    if !real.starts_with(&root) {
        return error(StatusCode::NOT_FOUND, "no such object");
    }
    let Ok(mut file) = tokio::fs::File::open(&real).await else {
        return error(StatusCode::NOT_FOUND, "no such object");
    };
    let meta = match file.metadata().await {
        Ok(m) if m.is_file() => m,
        _ => return error(StatusCode::NOT_FOUND, "no such object"),
    };
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let etag = format!("\"{:x}-{modified:x}\"", meta.len());
    let cache = [
        (header::ETAG, etag.clone()),
        // Objects are written once under server-made keys; a rewrite changes the ETag.
        (header::CACHE_CONTROL, "private, max-age=3600".to_owned()),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    let mut head = [0u8; state::media::SNIFF_BYTES];
    let n = file.read(&mut head).await.unwrap_or(0);
    let kind = content_type(&head[..n], &key);
    // The bytes read to sniff, then the rest of the file as it is read.
    let first = bytes::Bytes::copy_from_slice(&head[..n]);
    let body = Body::from_stream(
        futures::stream::once(async move { Ok::<_, std::io::Error>(first) })
            .chain(tokio_util::io::ReaderStream::new(file)),
    );
    let mut response = (StatusCode::OK, cache, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
