//! A request body with a deadline from its request head.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Sleep;

/// Why a request body stopped.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the body did not arrive within {} s of the request head", .0.as_secs_f64())]
    TimedOut(Duration),
    #[error("reading the body: {0}")]
    Read(#[from] hyper::Error),
}

/// A request body that fails with [`BodyError::TimedOut`] once `timeout` has passed since the
/// request head, however the bytes trickle in. A route that streams the body somewhere gets the
/// same bound as one that buffers it.
pub struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
}

impl DeadlineBody {
    pub(super) fn new(inner: Incoming, timeout: Duration) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        }
    }
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        // The deadline first: a body that never pauses (an endless fast chunked one) is cut too.
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyError::TimedOut(self.timeout))));
        }
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map(|frame| frame.map(|r| r.map_err(BodyError::Read)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
