//! The API on loopback: the routes of template.yaml's upload function, each served by the same
//! `upload::handle` API Gateway invokes, plus `GET /metrics`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body as AxumBody;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;
use lambda_http::{Body, RequestExt};

use crate::metrics::Metrics;
use crate::template::Route;

#[derive(Clone)]
struct Api {
    upload: Arc<upload::Deps>,
    metrics: Metrics,
}

pub fn router(
    upload: Arc<upload::Deps>,
    routes: &[Route],
    metrics: Metrics,
    files: Option<Arc<embedded_adapters::files::FileStore>>,
) -> anyhow::Result<Router> {
    let api = Api { upload, metrics };
    let mut router = Router::new().route("/metrics", axum::routing::get(metrics_text));
    for route in routes {
        let method: Method = route.method.parse()?;
        let filter = MethodFilter::try_from(method)
            .map_err(|e| anyhow::anyhow!("route {} {}: {e}", route.method, route.path))?;
        router = router.route(&route.path, on(filter, invoke_upload));
    }
    // Unknown paths get the function's own JSON 404, as one function owns the whole API.
    let router = router.fallback(invoke_upload).with_state(api);
    Ok(match files {
        Some(files) => router.merge(crate::objects::router(files)),
        None => router,
    })
}

async fn metrics_text(State(api): State<Api>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        api.metrics.render(),
    )
}

/// Turns the HTTP request into the `lambda_http::Request` API Gateway would hand the function.
async fn invoke_upload(State(api): State<Api>, req: Request) -> Response {
    let limit = api.upload.max_upload_bytes;
    let (parts, body) = req.into_parts();
    // Read one byte past the limit: enough to know it is over, without buffering a huge body.
    let bytes = match axum::body::to_bytes(body, limit.saturating_add(1)).await {
        Ok(b) => b,
        Err(_) => {
            let msg = format!("{{\"error\":\"body is over the limit of {limit} bytes\"}}");
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                [("content-type", "application/json")],
                msg,
            )
                .into_response();
        }
    };
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
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        Body::Binary(bytes.to_vec())
    };
    let request = lambda_http::Request::from_parts(parts, body).with_query_string_parameters(query);
    let response = upload::handle(request, &api.upload).await;
    let (parts, body) = response.into_parts();
    let body = match body {
        Body::Text(t) => AxumBody::from(t),
        Body::Binary(b) => AxumBody::from(b),
        _ => AxumBody::empty(),
    };
    Response::from_parts(parts, body)
}
