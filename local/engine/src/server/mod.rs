//! The local API's transport: hyper's HTTP/1 connections over a loopback listener, with the
//! limits that keep a client from holding the server open (docs/operations.md, "Limits and hostile
//! input: the local server").
//!
//! - At most `max_connections` connections are served at once, kept below the file-descriptor
//!   limit; the next one waits in the listen backlog until one closes.
//! - A request head must be complete within `header_timeout` of the connection being ready for
//!   it (accepted, or its last response written): hyper's header timer.
//! - A connection that reads and writes nothing, with no request in progress, for `idle_timeout`
//!   is closed (silent new connections and idle keep-alive ones alike).
//! - A request body must arrive within `body_timeout` of its head: every route gets its body
//!   wrapped in a [`DeadlineBody`], so a route that streams its body (to a file, say) has the same
//!   deadline as one that buffers it, without buffering anything itself.
//! - Bytes buffered across all requests are bounded by the router's [`crate::http::ByteBudget`].
//!
//! When accepting fails for want of file descriptors, the loop waits (backing off to 1 s) instead
//! of spinning, and the connections already open carry on.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body as AxumBody;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

mod activity;
mod deadline;

use activity::{Activity, TrackedIo};
pub use deadline::{BodyError, DeadlineBody};

/// What a client may cost the server. `uploader serve` takes each as a flag (docs/operations.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// From the connection being ready for a request to its head being complete.
    pub header_timeout: Duration,
    /// No request in progress and no byte read or written for this long: the connection closes.
    /// At most `header_timeout`, whose timer also runs while a connection waits for a request.
    pub idle_timeout: Duration,
    /// From a request's head to the last byte of its body.
    pub body_timeout: Duration,
    /// Connections served at once; lowered to fit the file-descriptor limit.
    pub max_connections: usize,
    /// Bytes of request bodies buffered across all requests at once.
    pub max_buffered_bytes: usize,
}

impl ServerLimits {
    pub const DEFAULT: ServerLimits = ServerLimits {
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(5),
        body_timeout: Duration::from_secs(20),
        max_connections: 512,
        max_buffered_bytes: 64 << 20,
    };

    /// Checks the limits against each other and against the largest upload.
    pub fn validate(&self, max_upload_bytes: usize) -> Result<(), LimitError> {
        for (name, d) in [
            ("header timeout", self.header_timeout),
            ("idle timeout", self.idle_timeout),
            ("body timeout", self.body_timeout),
        ] {
            if d.is_zero() {
                return Err(LimitError::Zero(name));
            }
        }
        if self.idle_timeout > self.header_timeout {
            return Err(LimitError::IdleOverHeader {
                idle: self.idle_timeout,
                header: self.header_timeout,
            });
        }
        if self.max_connections == 0 {
            return Err(LimitError::Zero("max connections"));
        }
        if self.max_buffered_bytes < max_upload_bytes {
            return Err(LimitError::BufferBelowUpload {
                buffered: self.max_buffered_bytes,
                upload: max_upload_bytes,
            });
        }
        if u32::try_from(self.max_buffered_bytes).is_err() {
            return Err(LimitError::BufferTooLarge(self.max_buffered_bytes));
        }
        Ok(())
    }
}

/// Limits that contradict each other, or the largest upload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("the {0} must be more than 0")]
    Zero(&'static str),
    #[error("the idle timeout ({idle:?}) must not exceed the header timeout ({header:?}): the header timer also runs while a connection waits for its next request")]
    IdleOverHeader { idle: Duration, header: Duration },
    #[error("max buffered bytes ({buffered}) is below the upload limit ({upload}): an upload at the limit could never be buffered")]
    BufferBelowUpload { buffered: usize, upload: usize },
    #[error("max buffered bytes ({0}) must be under 4 GiB")]
    BufferTooLarge(usize),
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits::DEFAULT
    }
}

/// hyper's read buffer per connection (it holds a request head whole): small, so that
/// `max_connections` connections cost little memory however they behave.
const MAX_READ_BUFFER: usize = 64 * 1024;

/// File descriptors kept for the engine itself (SQLite, objects, mail, the runtime) whatever the
/// connections do: a quarter of the limit, and at least this many.
const MIN_RESERVED_FDS: u64 = 64;

/// `requested`, lowered so that connections leave the engine a quarter of RLIMIT_NOFILE.
pub fn connection_cap(requested: usize) -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let Some(soft) = soft else {
        return requested;
    };
    let reserved = (soft / 4).max(MIN_RESERVED_FDS);
    let allowed = usize::try_from(soft.saturating_sub(reserved))
        .unwrap_or(usize::MAX)
        .max(1);
    if requested > allowed {
        tracing::warn!(
            requested,
            allowed,
            nofile = soft,
            "lowering max connections to stay below the file-descriptor limit"
        );
    }
    requested.min(allowed)
}

/// Serves `router` on `listener` until `stop` turns true (or its sender is dropped), then lets
/// the open connections finish their requests, for at most a header plus a body timeout.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    mut stop: watch::Receiver<bool>,
) {
    let cap = connection_cap(limits.max_connections);
    let slots = Arc::new(Semaphore::new(cap));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_READ_BUFFER)
        .keep_alive(true);
    tracing::info!(
        max_connections = cap,
        header_timeout_s = limits.header_timeout.as_secs_f64(),
        idle_timeout_s = limits.idle_timeout.as_secs_f64(),
        body_timeout_s = limits.body_timeout.as_secs_f64(),
        max_buffered_bytes = limits.max_buffered_bytes,
        "HTTP limits"
    );
    let mut accept_pause = Duration::ZERO;
    loop {
        // A slot first: at the cap, the next connection waits in the backlog, unaccepted.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the slots are never closed"),
            _ = stop.wait_for(|s| *s) => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        match accepted {
            Ok((stream, _)) => {
                accept_pause = Duration::ZERO;
                let conn = connection(
                    stream,
                    builder.clone(),
                    router.clone(),
                    limits,
                    stop.clone(),
                    slot,
                );
                tokio::spawn(conn);
            }
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS: the connection stays in the backlog; try again once
                // something has had time to close, rather than spin on the same error.
                accept_pause =
                    (accept_pause * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                tracing::warn!(error = %e, pause_ms = accept_pause.as_millis() as u64, "accept failed; waiting");
                tokio::select! {
                    _ = tokio::time::sleep(accept_pause) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        }
    }
    drop(listener);
    let grace = limits.header_timeout + limits.body_timeout;
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One connection, holding its slot until it closes.
async fn connection(
    stream: TcpStream,
    builder: http1::Builder,
    router: Router,
    limits: ServerLimits,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(TrackedIo {
        inner: stream,
        activity: activity.clone(),
    });
    let body_timeout = limits.body_timeout;
    let service = {
        let activity = activity.clone();
        service_fn(move |req: hyper::Request<Incoming>| {
            let router = router.clone();
            let busy = activity.begin();
            async move {
                let _busy = busy;
                let req = req.map(|body| AxumBody::new(DeadlineBody::new(body, body_timeout)));
                Ok::<_, Infallible>(
                    router
                        .oneshot(req)
                        .await
                        .unwrap_or_else(|never| match never {}),
                )
            }
        })
    };
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let idle_at = activity.idle_deadline(limits.idle_timeout);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection closed");
                }
                return;
            }
            _ = tokio::time::sleep_until(idle_at) => {
                if activity.is_idle(limits.idle_timeout) {
                    // Nothing in progress: dropping the connection closes it. (hyper's graceful
                    // shutdown would wait for a first request on a new connection.)
                    tracing::debug!("closing an idle connection");
                    return;
                }
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
