//! The API on loopback: each `Type: Api` route of template.yaml, served by its function's handler
//! as API Gateway invokes it, plus `GET /metrics`.
//!
//! Only `POST` routes read a body, and only after admission control ([`Admission`]) lets them and
//! its bytes are reserved in a [`ByteBudget`] shared by all requests. A declared `Content-Length`
//! over the function's limit is answered 413 before the body is touched, so hyper never sends
//! `100 Continue` for it. The body's deadline comes from the transport ([`crate::server`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body as AxumBody;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;
use http_body_util::BodyExt;
use lambda_http::{Body, RequestExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use sam_template::Route;

use crate::admission::Admission;
use crate::disk::DiskSpace;
use crate::host::ApiFunction;
use crate::metrics::Metrics;
use crate::server::BodyError;

/// How long a client refused for want of buffer space is asked to wait.
const RETRY_AFTER_S: u64 = 1;

/// Bytes of request bodies the server may hold at once, across all requests. A request reserves
/// what it may buffer before it reads a byte, and gives it back when its response is made.
#[derive(Clone)]
pub struct ByteBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

impl ByteBudget {
    /// `total` must fit in a `u32` (checked by [`crate::server::ServerLimits::validate`]).
    pub fn new(total: usize) -> ByteBudget {
        ByteBudget {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// `bytes` of the budget, or `None` when that much is not free right now.
    pub fn try_reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(bytes).ok()?;
        self.bytes.clone().try_acquire_many_owned(n).ok()
    }
}

/// One of the template's routes, and the function behind it.
#[derive(Clone)]
pub struct ApiRoute {
    pub route: Route,
    pub function: Arc<dyn ApiFunction>,
}

/// What the API serves.
pub struct Api {
    pub routes: Vec<ApiRoute>,
    pub metrics: Metrics,
    /// The embedded bucket's `/objects/...`, if there is one.
    pub objects: Option<crate::objects::Objects>,
    pub budget: ByteBudget,
    pub admission: Admission,
    pub disk: DiskSpace,
}

/// What every route shares.
#[derive(Clone)]
struct Shared {
    metrics: Metrics,
    budget: ByteBudget,
    admission: Admission,
    disk: DiskSpace,
}

pub fn router(api: Api) -> anyhow::Result<Router> {
    let shared = Shared {
        metrics: api.metrics,
        budget: api.budget,
        admission: api.admission,
        disk: api.disk,
    };
    let mut router = Router::new().route("/metrics", axum::routing::get(metrics_text));
    for ApiRoute { route, function } in &api.routes {
        let method: Method = route.method.parse()?;
        let filter = MethodFilter::try_from(method.clone())
            .map_err(|e| anyhow::anyhow!("route {} {}: {e}", route.method, route.path))?;
        let function = function.clone();
        router = if method == Method::POST {
            router.route(
                &route.path,
                on(filter, move |State(shared): State<Shared>, req: Request| {
                    invoke_with_body(shared, function, req)
                }),
            )
        } else {
            router.route(
                &route.path,
                on(filter, move |req: Request| {
                    invoke_without_body(function, req)
                }),
            )
        };
    }
    // Unknown paths get the first function's own JSON 404, as API Gateway hands the template's
    // one API function every path it does not route.
    if let Some(first) = api.routes.first() {
        let first = first.function.clone();
        router = router.fallback(move |req: Request| invoke_without_body(first, req));
    }
    let router = router.with_state(shared);
    Ok(match api.objects {
        Some(objects) => router.merge(crate::objects::router(objects)),
        None => router,
    })
}

async fn metrics_text(State(shared): State<Shared>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
}

fn json_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    // The body was not (wholly) read: the connection cannot carry another request.
    resp.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    resp
}

/// 503 with `Retry-After`, counted as a throttle.
fn throttled(shared: &Shared, message: &str) -> Response {
    shared
        .metrics
        .throttles
        .with_label_values(&[crate::metrics::API_FUNCTION])
        .inc();
    let mut resp = json_error(StatusCode::SERVICE_UNAVAILABLE, message);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, RETRY_AFTER_S.into());
    resp
}

/// How long a client refused for want of disk space is asked to wait.
const DISK_RETRY_AFTER_S: u64 = 30;

/// 507 Insufficient Storage, with `Retry-After`.
fn insufficient_storage(why: &str) -> Response {
    let mut resp = json_error(StatusCode::INSUFFICIENT_STORAGE, why);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, DISK_RETRY_AFTER_S.into());
    resp
}

fn too_large(limit: usize) -> Response {
    json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("body is over the limit of {limit} bytes"),
    )
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    // hyper has already refused a malformed or repeated Content-Length.
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A route that takes a body (`POST /upload`, `POST /uploads`): check the declared length and
/// the backlog, reserve, read, invoke.
async fn invoke_with_body(
    shared: Shared,
    function: Arc<dyn ApiFunction>,
    req: Request,
) -> Response {
    let limit = function.max_body_bytes();
    let (parts, body) = req.into_parts();
    let declared = declared_length(&parts.headers);
    let reserve = match declared {
        // Before the body is polled, so no `100 Continue` goes out for it.
        Some(n) if n > limit as u64 => return too_large(limit),
        Some(n) => n as usize,
        // Chunked: it may run up to the limit.
        None => limit,
    };
    // Room on the disk for what the body may bring, before the body is read.
    let _room = match shared.disk.reserve(reserve as u64) {
        Ok(room) => room,
        Err(why) => {
            tracing::warn!(%why, "request refused: the disk is nearly full");
            return insufficient_storage(&why);
        }
    };
    let ticket = match shared.admission.admit(crate::admission::Lane::Api).await {
        Ok(ticket) => ticket,
        Err(why) => {
            tracing::debug!(%why, "request refused: the backlog is full");
            return throttled(&shared, &format!("{why}; retry after {RETRY_AFTER_S} s"));
        }
    };
    let Some(_reservation) = shared.budget.try_reserve(reserve) else {
        tracing::warn!(
            reserve,
            budget = shared.budget.total,
            "upload refused: the byte budget is spent"
        );
        return throttled(
            &shared,
            &format!(
                "the server is already buffering as many upload bytes as it may ({}); retry after {RETRY_AFTER_S} s",
                shared.budget.total
            ),
        );
    };
    let declared = declared.map(|n| n as usize);
    let bytes = match read_body(body, declared, reserve, limit).await {
        Ok(bytes) => bytes,
        Err(ReadError::TooLarge) => return too_large(limit),
        Err(ReadError::TimedOut(why)) => {
            tracing::info!(error = %why, "upload cut off");
            return json_error(StatusCode::REQUEST_TIMEOUT, &why);
        }
        Err(ReadError::Broken(why)) => {
            tracing::info!(error = %why, "upload body unreadable");
            return json_error(StatusCode::BAD_REQUEST, &why);
        }
    };
    let head = bytes[..bytes.len().min(crate::admission::HEAD_BYTES)].to_vec();
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        Body::Binary(bytes)
    };
    let response = invoke(function.as_ref(), parts, body).await;
    // An upload that made an item (`201` with its `id`) brought its image's work; anything else
    // (a reservation, a refusal) brought none yet.
    match created_item(response).await {
        (response, Some(id)) => {
            // Costed beside the answer, not before it: the item is written and its stream record
            // may already be in the process step, which a client must not wait behind.
            tokio::spawn(async move { ticket.accepted(&id, &head).await });
            response
        }
        (response, None) => response,
    }
}

/// The id of the item a `201` response made, and the response unchanged.
async fn created_item(response: Response) -> (Response, Option<String>) {
    if response.status() != StatusCode::CREATED {
        return (response, None);
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = body.collect().await.map(|b| b.to_bytes()) else {
        return (Response::from_parts(parts, AxumBody::empty()), None);
    };
    // An item made `uploaded`; a reservation's answer (`POST /uploads`) describes a `pending` one
    // under `item`, whose work comes with its PUT.
    let id = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .filter(|v| v["status"] == "uploaded")
        .and_then(|v| v.get("id")?.as_str().map(str::to_owned));
    (Response::from_parts(parts, AxumBody::from(bytes)), id)
}

/// Every other route: the body, if any, is never read.
async fn invoke_without_body(function: Arc<dyn ApiFunction>, req: Request) -> Response {
    let (parts, _unread) = req.into_parts();
    invoke(function.as_ref(), parts, Body::Empty).await
}

enum ReadError {
    TooLarge,
    TimedOut(String),
    Broken(String),
}

/// Reads `body` into one buffer whose capacity never passes `reserved` (what the request holds of
/// the budget); more than `limit` bytes is [`ReadError::TooLarge`].
async fn read_body(
    mut body: AxumBody,
    declared: Option<usize>,
    reserved: usize,
    limit: usize,
) -> Result<Vec<u8>, ReadError> {
    // A declared length is exact (hyper enforces it): one allocation. Chunked grows as it comes.
    let mut buf = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let inner = e.into_inner();
            match inner.downcast_ref::<BodyError>() {
                Some(BodyError::TimedOut(_)) => ReadError::TimedOut(inner.to_string()),
                _ => ReadError::Broken(format!("the body could not be read: {inner}")),
            }
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let needed = buf.len() + data.len();
        if needed > limit {
            return Err(ReadError::TooLarge);
        }
        if needed > buf.capacity() {
            let grown = (buf.capacity() * 2).clamp(needed, reserved.max(needed));
            buf.reserve_exact(grown - buf.len());
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf)
}

/// Hands the request to the function as the `lambda_http::Request` API Gateway would.
async fn invoke(
    function: &dyn ApiFunction,
    parts: axum::http::request::Parts,
    body: Body,
) -> Response {
    let query: HashMap<String, Vec<String>> = parts
        .uri
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes()).fold(
                HashMap::new(),
                |mut m: HashMap<String, Vec<String>>, (k, v)| {
                    m.entry(k.into_owned()).or_default().push(v.into_owned());
                    m
                },
            )
        })
        .unwrap_or_default();
    let request = lambda_http::Request::from_parts(parts, body).with_query_string_parameters(query);
    let response = function.invoke(request).await;
    let (parts, body) = response.into_parts();
    let body = match body {
        Body::Text(t) => AxumBody::from(t),
        Body::Binary(b) => AxumBody::from(b),
        _ => AxumBody::empty(),
    };
    Response::from_parts(parts, body)
}
