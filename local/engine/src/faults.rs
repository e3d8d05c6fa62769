//! Injected failures, for tests and drills: ports that fail their next N calls (or every call
//! naming a key), and crash points where the process aborts as if killed.
//!
//! `UPLOADER_CRASH_AT=<point>[:<n>]` makes `uploader serve` abort at the n-th (default first) time it
//! passes `<point>`: `after-object-write`, `after-item-write`, `after-publish` or
//! `before-checkpoint`. An abort runs no shutdown code, like SIGKILL.
//!
//! `UPLOADER_ABORT_ON_SIZE=<bytes>` makes every read of an object of exactly that size abort the
//! process: a poison upload that takes the engine down each time it is handled.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use config_vars::{ConfigError, Vars};
use state::{
    ImageId, Item, ItemTable, Notice, Notifier, ObjectStore, Outcome, Page, Query, Stall,
    StateError, Status, Transition,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    AfterObjectWrite,
    AfterItemWrite,
    AfterPublish,
    BeforeCheckpoint,
}

impl CrashPoint {
    pub const ALL: [CrashPoint; 4] = [
        CrashPoint::AfterObjectWrite,
        CrashPoint::AfterItemWrite,
        CrashPoint::AfterPublish,
        CrashPoint::BeforeCheckpoint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CrashPoint::AfterObjectWrite => "after-object-write",
            CrashPoint::AfterItemWrite => "after-item-write",
            CrashPoint::AfterPublish => "after-publish",
            CrashPoint::BeforeCheckpoint => "before-checkpoint",
        }
    }
}

impl FromStr for CrashPoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CrashPoint::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown crash point {s:?}"))
    }
}

#[derive(Default)]
struct Inner {
    store: AtomicU64,
    table: AtomicU64,
    notifier: AtomicU64,
    poisoned_keys: Mutex<Vec<String>>,
    crash: Option<(CrashPoint, AtomicU64)>,
    abort_on_size: Option<u64>,
}

/// Shared switches; cloning shares them.
#[derive(Clone, Default)]
pub struct Faults {
    inner: Arc<Inner>,
}

fn take(counter: &AtomicU64) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

fn injected(what: &str) -> StateError {
    StateError::unavailable(anyhow::anyhow!("injected fault: {what} unavailable"))
}

impl Faults {
    /// Crashes at `point`, the `nth` time it is passed (1 = the first).
    pub fn crashing_at(point: CrashPoint, nth: u64) -> Faults {
        Faults {
            inner: Arc::new(Inner {
                crash: Some((point, AtomicU64::new(nth.max(1)))),
                ..Default::default()
            }),
        }
    }

    /// From `UPLOADER_CRASH_AT` and `UPLOADER_ABORT_ON_SIZE`, if set.
    pub fn from_vars(vars: &Vars) -> Result<Faults, ConfigError> {
        let crash = vars.get("UPLOADER_CRASH_AT").map(|_| {
            vars.with("UPLOADER_CRASH_AT", "", |spec| {
                let (point, nth) = spec.split_once(':').unwrap_or((spec, "1"));
                let point: CrashPoint = point.parse()?;
                let nth: u64 = nth
                    .parse()
                    .map_err(|_| "the count after `:` must be a number".to_owned())?;
                Ok::<_, String>((point, nth))
            })
        });
        let mut faults = match crash.transpose()? {
            Some((point, nth)) => {
                tracing::warn!(point = point.as_str(), nth, "crash drill armed");
                Faults::crashing_at(point, nth)
            }
            None => Faults::default(),
        };
        if let Some(size) = vars.parsed::<u64>("UPLOADER_ABORT_ON_SIZE", "a byte count")? {
            tracing::warn!(
                size,
                "poison drill armed: reading an object of this size aborts"
            );
            let inner = Arc::get_mut(&mut faults.inner).expect("not shared yet");
            inner.abort_on_size = Some(size);
        }
        Ok(faults)
    }

    pub fn fail_store(&self, calls: u64) {
        self.inner.store.store(calls, Ordering::SeqCst);
    }

    pub fn fail_table(&self, calls: u64) {
        self.inner.table.store(calls, Ordering::SeqCst);
    }

    pub fn fail_notifier(&self, calls: u64) {
        self.inner.notifier.store(calls, Ordering::SeqCst);
    }

    /// Every object-store call on a key containing `fragment` fails, until [`Faults::heal`].
    pub fn poison_key(&self, fragment: &str) {
        self.inner
            .poisoned_keys
            .lock()
            .expect("faults lock")
            .push(fragment.to_owned());
    }

    pub fn heal(&self) {
        self.inner
            .poisoned_keys
            .lock()
            .expect("faults lock")
            .clear();
        self.fail_store(0);
        self.fail_table(0);
        self.fail_notifier(0);
    }

    fn poisoned(&self, key: &str) -> bool {
        self.inner
            .poisoned_keys
            .lock()
            .expect("faults lock")
            .iter()
            .any(|f| key.contains(f.as_str()))
    }

    /// Aborts the process if the drill is armed for `point` and this is its turn.
    pub fn crash_point(&self, point: CrashPoint) {
        if let Some((armed, countdown)) = &self.inner.crash {
            if *armed == point && countdown.fetch_sub(1, Ordering::SeqCst) == 1 {
                eprintln!("crash drill: aborting {}", point.as_str());
                std::process::abort();
            }
        }
    }
}

pub struct FaultyTable {
    pub inner: Arc<dyn ItemTable>,
    pub faults: Faults,
}

#[async_trait]
impl ItemTable for FaultyTable {
    async fn insert(&self, item: &Item) -> Result<(), StateError> {
        if take(&self.faults.inner.table) {
            return Err(injected("table"));
        }
        self.inner.insert(item).await?;
        self.faults.crash_point(CrashPoint::AfterItemWrite);
        Ok(())
    }

    async fn get(&self, id: ImageId) -> Result<Option<Item>, StateError> {
        if take(&self.faults.inner.table) {
            return Err(injected("table"));
        }
        self.inner.get(id).await
    }

    async fn query(&self, q: &Query) -> Result<Page, StateError> {
        self.inner.query(q).await
    }

    async fn count_pending(&self, created_after: i64, at_most: usize) -> Result<usize, StateError> {
        if take(&self.faults.inner.table) {
            return Err(injected("table"));
        }
        self.inner.count_pending(created_after, at_most).await
    }

    async fn advance(&self, id: ImageId, t: &Transition) -> Result<Outcome, StateError> {
        if take(&self.faults.inner.table) {
            return Err(injected("table"));
        }
        let outcome = self.inner.advance(id, t).await?;
        if matches!(outcome, Outcome::Applied(_)) {
            self.faults.crash_point(CrashPoint::AfterItemWrite);
        }
        Ok(outcome)
    }

    async fn mark_stalled(
        &self,
        id: ImageId,
        status: Status,
        stall: &Stall,
    ) -> Result<bool, StateError> {
        if take(&self.faults.inner.table) {
            return Err(injected("table"));
        }
        self.inner.mark_stalled(id, status, stall).await
    }

    async fn clear_stalled(&self, id: ImageId) -> Result<bool, StateError> {
        if take(&self.faults.inner.table) {
            return Err(injected("table"));
        }
        self.inner.clear_stalled(id).await
    }
}

pub struct FaultyStore {
    pub inner: Arc<dyn ObjectStore>,
    pub faults: Faults,
}

#[async_trait]
impl ObjectStore for FaultyStore {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), StateError> {
        if take(&self.faults.inner.store) || self.faults.poisoned(key) {
            return Err(injected("object store"));
        }
        self.inner.put(key, body, content_type).await?;
        self.faults.crash_point(CrashPoint::AfterObjectWrite);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Bytes, StateError> {
        if take(&self.faults.inner.store) || self.faults.poisoned(key) {
            return Err(injected("object store"));
        }
        let body = self.inner.get(key).await?;
        if self.faults.inner.abort_on_size == Some(body.len() as u64) {
            eprintln!("poison drill: aborting on {key} ({} bytes)", body.len());
            std::process::abort();
        }
        Ok(body)
    }

    async fn link(&self, key: &str) -> Result<String, StateError> {
        self.inner.link(key).await
    }

    async fn head(&self, key: &str) -> Result<state::ObjectInfo, StateError> {
        if take(&self.faults.inner.store) || self.faults.poisoned(key) {
            return Err(injected("object store"));
        }
        self.inner.head(key).await
    }

    async fn get_prefix(&self, key: &str, len: usize) -> Result<Bytes, StateError> {
        if take(&self.faults.inner.store) || self.faults.poisoned(key) {
            return Err(injected("object store"));
        }
        self.inner.get_prefix(key, len).await
    }

    async fn signed_upload(
        &self,
        key: &str,
        size: u64,
        content_type: &str,
        valid_for: std::time::Duration,
    ) -> Result<state::SignedUpload, StateError> {
        self.inner
            .signed_upload(key, size, content_type, valid_for)
            .await
    }
}

pub struct FaultyNotifier {
    pub inner: Arc<dyn Notifier>,
    pub faults: Faults,
}

#[async_trait]
impl Notifier for FaultyNotifier {
    async fn publish(&self, notice: &Notice) -> Result<String, StateError> {
        if take(&self.faults.inner.notifier) {
            return Err(injected("notifier"));
        }
        let id = self.inner.publish(notice).await?;
        self.faults.crash_point(CrashPoint::AfterPublish);
        Ok(id)
    }
}
