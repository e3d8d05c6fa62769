//! Admission control: how much accepted work the engine holds before it refuses more with 503 and
//! Retry-After. Everything that brings work is counted, whichever way it came in: `POST /upload`,
//! a PUT to a reservation's signed URL, a file dropped into the bucket. Two bounds:
//! - a count of stream records the slowest mapping has not read (`--max-backlog`), which caps what
//!   a backlog can cost in disk and memory;
//! - estimated seconds of work (`--max-backlog-seconds`): each unfinished item's cost, worked out
//!   from its image's header (pixels, frames, tiles, progressive scans) by the [`WorkEstimate`]
//!   the engine was given, summed. A 35 KB HEIC can be seconds of decoding and a 4 MB JPEG a few
//!   milliseconds, so neither records nor bytes say what a backlog will take.
//!
//! `POST /upload` and `POST /uploads` ask before they read a body, and so does a signed PUT; drop-ins
//! cannot be refused (the bucket has them), but their work counts. A request over the bound waits
//! its turn for up to `max_wait` before it is refused, in one of two queues, first come first
//! served: the API's `POST`s and the signed PUTs ([`Lane`]). When both have a request waiting,
//! room goes to them in turn. Whoever floods one way holds at most as many places in its queue as
//! it has connections waiting, and none in the other: a client that uploads now and then is let in
//! within an item's work or two, not starved by retries that happen to come first.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use embedded_adapters::sqlite::SqliteStream;
use state::{ItemTable, ObjectStore, Status};

/// An image's work, in seconds of one core, from its first bytes (at most [`HEAD_BYTES`]).
pub type WorkEstimate = Arc<dyn Fn(&[u8]) -> Duration + Send + Sync>;

/// Bytes of an object read to estimate its work: a JPEG's EXIF segment is at most 64 KB and the
/// frame header follows it; a HEIC's `meta` box (its grid and tiles) comes before the image data.
pub const HEAD_BYTES: usize = 256 * 1024;
/// An item's work when nothing better is known (no estimator, a head that is not an image):
/// about what a small photo costs.
pub const DEFAULT_ITEM_SECONDS: f64 = 0.05;
/// An accepted object's item not yet seen in the stream after this long is looked up in the table.
const UNSEEN_FOR: Duration = Duration::from_millis(500);
/// How often a waiting request looks again.
const POLL: Duration = Duration::from_millis(50);
/// An accepted object whose item has not reached the stream after this long is no longer
/// counted on its own (its item, once there, is).
const ARRIVING_FOR: Duration = Duration::from_secs(60);

/// The bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Records of backlog (`--max-backlog`).
    pub max_records: u64,
    /// Estimated seconds of work in the backlog (`--max-backlog-seconds`).
    pub max_seconds: Duration,
    /// How long a request over the bound waits for room before it is refused
    /// (`--admission-wait`).
    pub max_wait: Duration,
}

/// The engine's admission control, shared by the API and the bucket's signed PUTs.
#[derive(Clone)]
pub struct Admission(Arc<Inner>);

struct Inner {
    stream: SqliteStream,
    /// The stream mappings (template.yaml's), by name.
    mappings: Arc<[String]>,
    limits: Limits,
    estimate: Option<WorkEstimate>,
    table: Arc<dyn ItemTable>,
    store: Arc<dyn ObjectStore>,
    /// Requests over the bound wait here, in the order they came, one queue a [`Lane`].
    queues: [tokio::sync::Mutex<()>; 2],
    /// Whether each lane's first request is waiting for room.
    waiting: [AtomicBool; 2],
    /// The lane last let in: with both waiting, the other goes next.
    last: AtomicUsize,
    ledger: Mutex<Ledger>,
}

/// What the engine knows of the work it holds.
#[derive(Default)]
struct Ledger {
    /// The cost of each item the stream has unread records of, by item id.
    known: HashMap<String, f64>,
    /// Accepted objects whose items may not be in the stream yet (a PUT's item is written by
    /// `ingest`, after the PUT is answered), by item id.
    arriving: HashMap<String, (f64, Instant)>,
    /// Requests admitted whose cost is not known yet (their bodies are being read).
    provisional: usize,
    /// What recent items cost (a moving average): what a provisional request counts as.
    typical: f64,
}

/// The way a request brings its work: each has its own queue, and they take turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// `POST /upload`, `POST /uploads`.
    Api = 0,
    /// A PUT to a reservation's signed URL.
    SignedPut = 1,
}

/// Clears a lane's waiting mark however its first request leaves.
struct Waiting<'a>(&'a AtomicBool);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// The backlog, as admission control sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    pub records: u64,
    pub items: usize,
    pub seconds: f64,
}

impl Admission {
    pub fn new(
        stream: SqliteStream,
        mappings: Arc<[String]>,
        limits: Limits,
        estimate: Option<WorkEstimate>,
        table: Arc<dyn ItemTable>,
        store: Arc<dyn ObjectStore>,
    ) -> Self {
        Admission(Arc::new(Inner {
            stream,
            mappings,
            limits,
            estimate,
            table,
            store,
            queues: Default::default(),
            waiting: Default::default(),
            last: AtomicUsize::new(0),
            ledger: Mutex::new(Ledger {
                typical: DEFAULT_ITEM_SECONDS,
                ..Default::default()
            }),
        }))
    }

    /// A place for one request's work, or why not. Over the bound, the request waits its turn
    /// (first come, first served) for up to `max_wait`, then is refused. A backlog that cannot be
    /// read admits the request: the request itself then meets whatever is wrong with the table.
    pub async fn admit(&self, lane: Lane) -> Result<Ticket, String> {
        let inner = &self.0;
        let (mine, other) = (lane as usize, 1 - lane as usize);
        let deadline = Instant::now() + inner.limits.max_wait;
        let turn = tokio::time::timeout(inner.limits.max_wait, inner.queues[mine].lock()).await;
        let _turn = match turn {
            Ok(turn) => turn,
            Err(_) => {
                return Err(match self.refusal().await {
                    Some(why) => why,
                    None => "requests ahead of this one are waiting for room".into(),
                })
            }
        };
        inner.waiting[mine].store(true, Ordering::SeqCst);
        let _waiting = Waiting(&inner.waiting[mine]);
        loop {
            // The other lane's turn if it is waiting and this one went last.
            let yields = inner.waiting[other].load(Ordering::SeqCst)
                && inner.last.load(Ordering::SeqCst) == mine;
            let refusal = if yields {
                Some("requests that came the other way are let in first".to_owned())
            } else {
                self.refusal().await
            };
            match refusal {
                None => {
                    inner.last.store(mine, Ordering::SeqCst);
                    inner.ledger.lock().expect("ledger").provisional += 1;
                    return Ok(Ticket {
                        admission: Some(self.clone()),
                    });
                }
                Some(why) if Instant::now() + POLL > deadline => {
                    return Err(if yields {
                        self.refusal().await.unwrap_or(why)
                    } else {
                        why
                    })
                }
                Some(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Why a request would be refused now, or `None`.
    pub async fn refusal(&self) -> Option<String> {
        let backlog = match self.backlog().await {
            Ok(backlog) => backlog,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "reading the backlog failed; admitting");
                return None;
            }
        };
        judge(backlog, &self.0.limits)
    }

    /// The records the slowest mapping has not read, and the estimated work of their items and
    /// of what was accepted and is not in the stream yet.
    pub async fn backlog(&self) -> anyhow::Result<Backlog> {
        let inner = &self.0;
        let unread = inner.stream.unread(&inner.mappings).await?;
        let ids = inner
            .stream
            .items_after(unread.read, inner.limits.max_records as usize)
            .await?;
        let unknown: Vec<String> = {
            let mut ledger = inner.ledger.lock().expect("ledger");
            let ledger = &mut *ledger;
            ids.iter()
                .filter(|id| {
                    if let Some((cost, _)) = ledger.arriving.remove(*id) {
                        ledger.known.insert((*id).clone(), cost);
                    }
                    !ledger.known.contains_key(*id)
                })
                .cloned()
                .collect()
        };
        let mut costs = Vec::with_capacity(unknown.len());
        for id in unknown {
            costs.push((id.clone(), self.cost_of(&id).await));
        }
        // An arrival whose records were never seen unread may be finished already (on AWS the
        // mirror copies the stream when polled): the table says.
        let unseen: Vec<String> = {
            let ledger = inner.ledger.lock().expect("ledger");
            ledger
                .arriving
                .iter()
                .filter(|(_, (_, at))| at.elapsed() >= UNSEEN_FOR)
                .map(|(id, _)| id.clone())
                .collect()
        };
        let mut finished = Vec::new();
        for id in unseen {
            if self.past_processing(&id).await {
                finished.push(id);
            }
        }
        let mut ledger = inner.ledger.lock().expect("ledger");
        for id in &finished {
            ledger.arriving.remove(id);
        }
        ledger.known.extend(costs);
        let unfinished: HashSet<&String> = ids.iter().collect();
        ledger.known.retain(|id, _| unfinished.contains(id));
        ledger
            .arriving
            .retain(|_, (_, at)| at.elapsed() < ARRIVING_FOR);
        let seconds = ledger.known.values().sum::<f64>()
            + ledger.arriving.values().map(|(c, _)| c).sum::<f64>()
            + ledger.provisional as f64 * ledger.typical;
        Ok(Backlog {
            records: unread.records(),
            items: ids.len() + ledger.arriving.len(),
            seconds,
        })
    }

    /// Whether the item is past the process step (or gone).
    async fn past_processing(&self, id: &str) -> bool {
        let Ok(image_id) = id.parse() else {
            return true;
        };
        match self.0.table.get(image_id).await {
            Ok(Some(item)) => !matches!(item.status, Status::Pending | Status::Uploaded),
            Ok(None) => false,
            Err(_) => false,
        }
    }

    /// An item's work, from its object's first bytes, while it is `uploaded`; 0 for a reservation
    /// whose object has not come (its PUT, when it comes, says what it brings) and for an item past
    /// the process step (what is left, the notice, is milliseconds).
    async fn cost_of(&self, id: &str) -> f64 {
        let item = match id.parse() {
            Ok(image_id) => self.0.table.get(image_id).await.ok().flatten(),
            Err(_) => None,
        };
        let Some(item) = item else {
            return 0.0;
        };
        if item.status != Status::Uploaded {
            return 0.0;
        }
        match self.0.store.get_prefix(&item.object_key, HEAD_BYTES).await {
            Ok(head) => self.estimate(head.to_vec()).await,
            Err(_) => 0.0,
        }
    }

    async fn estimate(&self, head: Vec<u8>) -> f64 {
        let Some(estimate) = self.0.estimate.clone() else {
            return DEFAULT_ITEM_SECONDS;
        };
        tokio::task::spawn_blocking(move || estimate(&head).as_secs_f64())
            .await
            .unwrap_or(DEFAULT_ITEM_SECONDS)
    }
}

/// An admitted request's place in the backlog: it counts as a typical item until
/// [`Ticket::accepted`] says what it brought, and nothing once dropped without that (refused,
/// cut short, or no work: a reservation).
#[must_use = "say what the request brought, or drop it"]
pub struct Ticket {
    admission: Option<Admission>,
}

impl Ticket {
    /// The request stored item `id`'s image, whose first bytes are `head`: its work counts until
    /// the item's records are read.
    pub async fn accepted(mut self, id: &str, head: &[u8]) {
        let Some(admission) = self.admission.take() else {
            return;
        };
        let head = head[..head.len().min(HEAD_BYTES)].to_vec();
        let cost = admission.estimate(head).await;
        let mut ledger = admission.0.ledger.lock().expect("ledger");
        ledger.provisional = ledger.provisional.saturating_sub(1);
        ledger.typical = 0.8 * ledger.typical + 0.2 * cost;
        ledger
            .arriving
            .insert(id.to_owned(), (cost, Instant::now()));
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(admission) = self.admission.take() {
            let mut ledger = admission.0.ledger.lock().expect("ledger");
            ledger.provisional = ledger.provisional.saturating_sub(1);
        }
    }
}

/// The decision.
fn judge(backlog: Backlog, limits: &Limits) -> Option<String> {
    let Backlog {
        records, seconds, ..
    } = backlog;
    if records >= limits.max_records {
        return Some(format!(
            "the engine has {records} stream records of accepted work to finish (its bound is {})",
            limits.max_records
        ));
    }
    let bound = limits.max_seconds.as_secs_f64();
    (seconds >= bound).then(|| {
        format!(
            "the engine has about {seconds:.1} s of accepted work to finish ({} items, estimated from their headers; its bound is {bound} s)",
            backlog.items
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_records: 2000,
        max_seconds: Duration::from_secs(5),
        max_wait: Duration::from_secs(2),
    };

    fn backlog(records: u64, seconds: f64) -> Backlog {
        Backlog {
            records,
            items: records as usize,
            seconds,
        }
    }

    #[test]
    fn the_record_bound_holds_whatever_the_work() {
        assert!(judge(backlog(2000, 0.0), &LIMITS).is_some());
        assert!(judge(backlog(1999, 0.0), &LIMITS).is_none());
    }

    #[test]
    fn a_backlog_of_more_seconds_than_the_bound_is_refused_whatever_its_records() {
        let why = judge(backlog(3, 6.04), &LIMITS).expect("refused");
        assert!(why.contains("about 6.0 s"), "{why}");
        assert!(judge(backlog(1500, 4.9), &LIMITS).is_none());
    }
}
