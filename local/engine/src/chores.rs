//! The engine's own chore beside the functions: expiring reservations and recovering interrupted
//! writes' events. (The AWS backend's, mirroring DynamoDB Streams and taking the bucket's
//! notifications from SQS, are in `backend/aws.rs`.)

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use state::ObjectStore;

use crate::backend::BackendState;
use crate::bucket::{BucketEvents, Recovered};
use crate::lifecycle::Originals;
use crate::runner::{Pace, Runner};

/// Deletes expired reservations, as DynamoDB's TTL does (it takes minutes to days there; here a
/// sweep every 5 seconds, [`EXPIRE_STEP`] at a time), and settles bucket events an interrupted write left held.
pub struct Housekeeping {
    pub backend: Arc<BackendState>,
    pub bucket: Arc<BucketEvents>,
    pub store: Arc<dyn ObjectStore>,
    /// The bucket's lifecycle for originals (embedded bucket only: on AWS, S3 runs the rules).
    pub originals: Option<Arc<Originals>>,
    /// When the originals were last looked at.
    pub originals_checked: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How often the originals are looked at: `OriginalsDays` is counted in days.
const ORIGINALS_EVERY: Duration = Duration::from_secs(600);

/// Reservations deleted in one step (one write transaction): expiring 85,000 at once held the
/// database's writer for seconds, and every upload behind it; a step of this many takes
/// milliseconds, and the API's writes interleave with the steps.
pub const EXPIRE_STEP: usize = 200;

/// A write takes milliseconds, so an event held for this long was cut short (a crash, a killed
/// `uploader ingest`).
const HELD_FOR: Duration = Duration::from_secs(5);

#[async_trait]
impl Runner for Housekeeping {
    fn name(&self) -> &str {
        "housekeeping"
    }

    async fn step(&self) -> anyhow::Result<Pace> {
        let expired = self
            .backend
            .expire(state::now_ms() / 1000, EXPIRE_STEP)
            .await?;
        if expired > 0 {
            tracing::info!(reservations = expired, "expired reservations deleted");
        }
        let recovered = self.bucket.recover(self.store.as_ref(), HELD_FOR).await?;
        if recovered != Recovered::default() {
            tracing::warn!(
                released = recovered.released,
                dropped = recovered.dropped,
                "bucket events held by an interrupted write recovered"
            );
        }
        if let Some(originals) = &self.originals {
            let due = {
                let mut checked = self.originals_checked.lock().expect("lifecycle clock");
                let due = checked.is_none_or(|at| at.elapsed() >= ORIGINALS_EVERY);
                if due {
                    *checked = Some(std::time::Instant::now());
                }
                due
            };
            if due {
                originals.expire(std::time::SystemTime::now()).await?;
            }
        }
        // A full step may have left more: step again at once (other writes go between).
        Ok(if expired == EXPIRE_STEP {
            Pace::Busy
        } else {
            Pace::Idle
        })
    }

    fn idle_wait(&self) -> Duration {
        Duration::from_secs(5)
    }
}
