//! A connection's activity: when it last moved a byte, and how many requests it has in progress,
//! which the idle timeout reads.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// When a connection last read or wrote a byte, and how many requests it has in progress.
pub(super) struct Activity {
    start: Instant,
    last_nanos: AtomicU64,
    in_progress: Arc<AtomicUsize>,
}

/// A request in progress, until dropped.
pub(super) struct Busy(Arc<AtomicUsize>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Activity {
    pub(super) fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_nanos: AtomicU64::new(0),
            in_progress: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub(super) fn touch(&self) {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_nanos.store(nanos, Ordering::Relaxed);
    }

    pub(super) fn begin(&self) -> Busy {
        self.in_progress.fetch_add(1, Ordering::SeqCst);
        Busy(self.in_progress.clone())
    }

    pub(super) fn last(&self) -> Instant {
        self.start + Duration::from_nanos(self.last_nanos.load(Ordering::Relaxed))
    }

    pub(super) fn idle_deadline(&self, idle: Duration) -> Instant {
        if self.in_progress.load(Ordering::SeqCst) > 0 {
            // A handler at work; look again later.
            return Instant::now() + idle;
        }
        self.last() + idle
    }

    pub(super) fn is_idle(&self, idle: Duration) -> bool {
        self.in_progress.load(Ordering::SeqCst) == 0 && self.last().elapsed() >= idle
    }
}

/// The TCP stream, noting every byte moved in [`Activity`].
pub(super) struct TrackedIo {
    pub(super) inner: TcpStream,
    pub(super) activity: Arc<Activity>,
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
