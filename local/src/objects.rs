//! `GET /objects/<key>`: the local bucket, read-only, for links in item responses and the web page
//! (the local twin of a presigned S3 GET). Only keys of objects that exist under the bucket's
//! folder are served: anything else is 400 (not a key) or 404 (no such object). Each answer has
//! the object's type (from its bytes, then its extension), a strong ETag (size and modification
//! time) for conditional requests, and cache headers; the body is streamed from the file.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use embedded_adapters::files::FileStore;
use futures::StreamExt;
use tokio::io::AsyncReadExt;

pub fn router(files: Arc<FileStore>) -> Router {
    Router::new()
        .route("/objects/{*key}", get(serve))
        .with_state(files)
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
    State(files): State<Arc<FileStore>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
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
