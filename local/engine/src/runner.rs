//! What runs beside the API until the engine stops: each stream mapping, each function's
//! asynchronous invoker, each queue mapping, and the backend's own chores (the stream mirror,
//! the bucket's notification queue, expiring reservations). Each is a [`Runner`]: one step at a
//! time, in one loop ([`run`]), or stepped until all are idle ([`drain`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use event_source_mapping::async_invoke::{AsyncInvoker, AsyncStep};
use event_source_mapping::queue::{QueuePoller, Received};
use event_source_mapping::{Dispatcher, Step};
use tokio::sync::{watch, Mutex};

/// What a step did, and when to step again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// It did work: step again at once.
    Busy,
    /// Nothing to do: wait for a change, or [`Runner::idle_wait`].
    Idle,
    /// Work waits for a retry: step again after this pause, whatever changes.
    Retry(Duration),
    /// Work is due after this pause, or sooner if something changes.
    Due(Duration),
}

#[async_trait]
pub trait Runner: Send + Sync {
    /// For the log.
    fn name(&self) -> &str;
    async fn step(&self) -> anyhow::Result<Pace>;
    /// Ticks when there may be new work, so an idle runner wakes without polling.
    fn changes(&self) -> Option<watch::Receiver<u64>> {
        None
    }
    /// How long an idle runner waits before it looks again.
    fn idle_wait(&self) -> Duration;
    /// The least time between two busy steps.
    fn min_interval(&self) -> Duration {
        Duration::ZERO
    }
    /// Whether [`drain`] steps it (the bucket's SQS queue is not drained: tests forward it).
    fn drains(&self) -> bool {
        true
    }
}

/// Steps `runner` until `stop` turns true (or its sender is dropped). A step is never cut short:
/// only the waits between steps are.
pub async fn run(runner: Arc<dyn Runner>, mut stop: watch::Receiver<bool>) {
    let mut changes = runner.changes();
    loop {
        if *stop.borrow() {
            return;
        }
        if let Some(c) = changes.as_mut() {
            c.borrow_and_update();
        }
        let (pause, wake) = match runner.step().await {
            Ok(Pace::Busy) => (runner.min_interval(), false),
            Ok(Pace::Idle) => (runner.idle_wait(), true),
            Ok(Pace::Retry(pause)) => (pause, false),
            Ok(Pace::Due(pause)) => (pause.min(runner.idle_wait()), true),
            Err(e) => {
                tracing::error!(runner = runner.name(), error = %format!("{e:#}"), "step failed");
                (Duration::from_secs(1), false)
            }
        };
        if pause.is_zero() {
            continue;
        }
        let changed = async {
            match changes.as_mut().filter(|_| wake) {
                Some(c) => {
                    let _ = c.changed().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = changed => {}
            _ = stop.changed() => {}
        }
    }
}

/// Steps every drainable runner until none has work left; retries pause as they would in [`run`].
pub async fn drain(runners: &[Arc<dyn Runner>]) -> anyhow::Result<()> {
    loop {
        let mut idle = true;
        for runner in runners.iter().filter(|r| r.drains()) {
            loop {
                match runner.step().await? {
                    Pace::Idle => break,
                    Pace::Busy => idle = false,
                    Pace::Retry(pause) | Pace::Due(pause) => {
                        idle = false;
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        }
        if idle {
            return Ok(());
        }
    }
}

/// A stream mapping. Locked only while it steps, so [`drain`] can interleave with [`run`].
pub struct Mapping {
    pub name: String,
    pub dispatcher: Arc<Mutex<Dispatcher>>,
    pub changes: watch::Receiver<u64>,
}

#[async_trait]
impl Runner for Mapping {
    fn name(&self) -> &str {
        &self.name
    }

    async fn step(&self) -> anyhow::Result<Pace> {
        Ok(match self.dispatcher.lock().await.step().await? {
            Step::Progressed => Pace::Busy,
            Step::Idle => Pace::Idle,
            Step::Retrying(pause) => Pace::Retry(pause),
        })
    }

    fn changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.changes.clone())
    }

    /// Another process (the CLI's replay) may have moved a checkpoint.
    fn idle_wait(&self) -> Duration {
        Duration::from_secs(1)
    }
}

/// A function's asynchronous invoker. Events are queued in this process, or by another
/// (`uploader ingest`), which the idle wait picks up.
pub struct Invoker {
    pub invoker: Arc<AsyncInvoker>,
    pub queued: watch::Receiver<u64>,
}

#[async_trait]
impl Runner for Invoker {
    fn name(&self) -> &str {
        &self.invoker.config().name
    }

    async fn step(&self) -> anyhow::Result<Pace> {
        Ok(
            match self.invoker.step().await.map_err(|e| anyhow::anyhow!(e))? {
                AsyncStep::Progressed => Pace::Busy,
                AsyncStep::Idle => Pace::Idle,
                AsyncStep::Waiting(pause) => Pace::Due(pause),
            },
        )
    }

    fn changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.queued.clone())
    }

    fn idle_wait(&self) -> Duration {
        Duration::from_secs(1)
    }
}

/// An SQS mapping (the failure queue's consumer), polling twice a second when idle.
pub struct Queue(pub Arc<QueuePoller>);

#[async_trait]
impl Runner for Queue {
    fn name(&self) -> &str {
        &self.0.config().name
    }

    async fn step(&self) -> anyhow::Result<Pace> {
        Ok(match self.0.step().await.map_err(|e| anyhow::anyhow!(e))? {
            Received::Delivered => Pace::Busy,
            Received::Nothing => Pace::Idle,
        })
    }

    fn idle_wait(&self) -> Duration {
        Duration::from_millis(500)
    }
}
