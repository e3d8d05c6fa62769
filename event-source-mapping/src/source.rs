use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::watch;

/// The cause of a source or checkpoint failure, whatever the store.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One stream record as a mapping reads it: its position in the source (increasing, gaps allowed),
/// when it was written, and the JSON Lambda would deliver (which the filters match against).
/// Shared: every mapping on a stream reads the same records, and a source may parse each once.
#[derive(Debug, Clone)]
pub struct SourceRecord {
    pub position: u64,
    pub created_ms: i64,
    pub record: Arc<Value>,
}

/// Where a mapping's records come from.
#[async_trait]
pub trait RecordSource: Send + Sync {
    /// Records after `after`, oldest first, at most `limit`.
    async fn read(&self, after: u64, limit: usize) -> Result<Vec<SourceRecord>, BoxError>;
    /// Ticks when the source may have grown, so an idle dispatcher wakes without polling.
    fn subscribe(&self) -> watch::Receiver<u64>;
}

/// The attempt a dispatcher made, and had not finished, when it last wrote its cursor. Found at
/// start-up, it means the invocation took the process down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// Position of the batch's first record.
    pub first: u64,
    /// Failed attempts before this one.
    pub attempts: u32,
    /// The batch size of this attempt (smaller than `BatchSize` while bisecting).
    pub limit: usize,
}

/// A mapping's durable state: how far it has got, and the attempt in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Every record at or before this position is done (delivered, filtered or dead-lettered).
    pub position: u64,
    pub in_flight: Option<InFlight>,
}

/// One record a mapping gave up on, and why.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub record: SourceRecord,
    pub reason: String,
}

/// Where a mapping keeps its cursor and sends what it gives up on (the on-failure destination).
#[async_trait]
pub trait Checkpoints: Send + Sync {
    async fn cursor(&self, mapping: &str) -> Result<Cursor, BoxError>;
    async fn save(&self, mapping: &str, cursor: Cursor) -> Result<(), BoxError>;
    /// Stores `letters` and saves `cursor` (past them) in one write.
    async fn dead_letter(
        &self,
        mapping: &str,
        letters: Vec<DeadLetter>,
        cursor: Cursor,
    ) -> Result<(), BoxError>;
}
