//! The legal status changes, and the one function for each that makes it.
//!
//! A [`Transition`] can only be built here, by [`processed`], [`notified`] and [`failed`]; stores
//! apply it with [`ItemTable::advance`] as one conditional write (`status = from`). A store that finds
//! the condition false hands the current item to [`Transition::classify`], which says whether the work
//! was already done (a duplicate or replayed record: success) or the item went another way (conflict).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{now_ms, HistoryEntry, ImageId, Item, ItemTable, ProcessedFacts, StateError, Status};

/// Every legal `(from, to)` pair; nothing else changes an item's status.
pub const LEGAL: [(Status, Status); 6] = [
    (Status::Pending, Status::Uploaded),
    (Status::Pending, Status::Failed),
    (Status::Uploaded, Status::Processed),
    (Status::Processed, Status::Notified),
    (Status::Uploaded, Status::Failed),
    (Status::Processed, Status::Failed),
];

pub fn is_legal(from: Status, to: Status) -> bool {
    LEGAL.contains(&(from, to))
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    from: Status,
    to: Status,
    at: i64,
    change: Change,
}

#[derive(Debug, Clone, PartialEq)]
enum Change {
    Arrived(Arrival),
    Processed(ProcessedFacts),
    Notified { message_id: String },
    Failed { error: String },
}

/// What arrived for a reservation: the object, where and what it is (sniffed, not declared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    pub object_key: String,
    pub size: u64,
    pub content_type: String,
}

/// The result of a transition whose write was accepted, or found already made.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// This call moved the item; here it is after the write.
    Applied(Item),
    /// The item is already at (or past) the target: a duplicate or late record. Nothing was written.
    AlreadyDone(Item),
}

impl Outcome {
    pub fn item(&self) -> &Item {
        match self {
            Outcome::Applied(item) | Outcome::AlreadyDone(item) => item,
        }
    }
}

/// The attributes a transition sets, by their table names; `history` is appended separately.
#[derive(Debug, Serialize)]
pub struct Updates<'a> {
    pub status: Status,
    pub updated_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renditions: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exif: Option<&'a BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notified_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

impl Transition {
    pub fn from(&self) -> Status {
        self.from
    }

    pub fn to(&self) -> Status {
        self.to
    }

    /// When the transition happens (epoch ms): its `updated_at` and history timestamp.
    pub fn at(&self) -> i64 {
        self.at
    }

    /// The attributes this transition sets.
    pub fn updates(&self) -> Updates<'_> {
        let at = self.at;
        let mut u = Updates {
            status: self.to,
            updated_at: at,
            object_key: None,
            size: None,
            content_type: None,
            width: None,
            height: None,
            format: None,
            renditions: None,
            exif: None,
            placeholder: None,
            frames: None,
            duration_ms: None,
            warnings: None,
            message_id: None,
            notified_at: None,
            error: None,
        };
        match &self.change {
            Change::Arrived(a) => {
                u.object_key = Some(&a.object_key);
                u.size = Some(a.size);
                u.content_type = Some(&a.content_type);
            }
            Change::Processed(f) => {
                u.width = Some(f.width);
                u.height = Some(f.height);
                u.format = Some(&f.format);
                u.renditions = Some(&f.renditions);
                u.exif = (!f.exif.is_empty()).then_some(&f.exif);
                u.placeholder = f.placeholder.as_deref();
                u.frames = f.frames;
                u.duration_ms = f.duration_ms;
                u.warnings = (!f.warnings.is_empty()).then_some(f.warnings.as_slice());
            }
            Change::Notified { message_id } => {
                u.message_id = Some(message_id);
                u.notified_at = Some(at);
            }
            Change::Failed { error } => u.error = Some(error),
        }
        u
    }

    /// The attributes this transition removes: a stall mark does not outlive the item moving on,
    /// and a reservation's TTL goes once it is no longer pending.
    pub fn removes(&self) -> &'static [&'static str] {
        &["stalled_at", "stalled_by", "stalled_reason", "ttl"]
    }

    /// The history entry this transition appends.
    pub fn history_entry(&self) -> HistoryEntry {
        HistoryEntry {
            status: self.to,
            at: self.at,
        }
    }

    /// The item after this transition, for stores that write whole items (SQLite). The caller has
    /// checked `item.status == self.from()` in the same transaction.
    pub fn apply_to(&self, item: &Item) -> Item {
        let at = self.at;
        let mut next = item.with_stall(None);
        next.status = self.to;
        next.updated_at = at;
        next.ttl = None;
        match &self.change {
            Change::Arrived(a) => {
                next.object_key = a.object_key.clone();
                next.size = a.size;
                next.content_type = a.content_type.clone();
            }
            Change::Processed(f) => {
                next.width = Some(f.width);
                next.height = Some(f.height);
                next.format = Some(f.format.clone());
                next.renditions = Some(f.renditions.clone());
                next.exif = (!f.exif.is_empty()).then(|| f.exif.clone());
                next.placeholder = f.placeholder.clone();
                next.frames = f.frames;
                next.duration_ms = f.duration_ms;
                next.warnings = f.warnings.clone();
            }
            Change::Notified { message_id } => {
                next.message_id = Some(message_id.clone());
                next.notified_at = Some(at);
            }
            Change::Failed { error } => next.error = Some(error.clone()),
        }
        next.history.push(self.history_entry());
        next
    }

    /// What a rejected write means, given the item as the store found it (`None`: no such item).
    pub fn classify(&self, id: ImageId, current: Option<Item>) -> Result<Outcome, StateError> {
        let current = current.ok_or(StateError::NotFound(id))?;
        let done = current.status == self.to
            || matches!(
                (current.status.rank(), self.to.rank()),
                (Some(now), Some(target)) if now > target
            );
        if done {
            Ok(Outcome::AlreadyDone(current))
        } else {
            Err(StateError::Conflict {
                id,
                expected: self.from,
                found: current.status,
            })
        }
    }
}

/// Whether the item is still at `status`, read strongly consistent. Handlers ask before costly or
/// unrepeatable work (a decode, an email), so a duplicate or replayed record costs one read.
pub async fn still_at(
    table: &dyn ItemTable,
    id: ImageId,
    status: Status,
) -> Result<bool, StateError> {
    match table.get(id).await? {
        Some(current) => {
            if current.status != status {
                tracing::debug!(image_id = %id, found = %current.status, expected = %status, "already moved on");
            }
            Ok(current.status == status)
        }
        None => Err(StateError::NotFound(id)),
    }
}

/// `pending -> uploaded`: a reservation's object arrived and is an image within the limits.
#[tracing::instrument(skip(table, arrival), fields(image_id = %id))]
pub async fn arrived(
    table: &dyn ItemTable,
    id: ImageId,
    arrival: Arrival,
) -> Result<Outcome, StateError> {
    let t = Transition {
        from: Status::Pending,
        to: Status::Uploaded,
        at: now_ms(),
        change: Change::Arrived(arrival),
    };
    table.advance(id, &t).await
}

/// `uploaded -> processed`, recording what processing found.
#[tracing::instrument(skip(table, facts), fields(image_id = %id))]
pub async fn processed(
    table: &dyn ItemTable,
    id: ImageId,
    facts: ProcessedFacts,
) -> Result<Outcome, StateError> {
    let t = Transition {
        from: Status::Uploaded,
        to: Status::Processed,
        at: now_ms(),
        change: Change::Processed(facts),
    };
    table.advance(id, &t).await
}

/// `processed -> notified`, recording the notice's message id.
#[tracing::instrument(skip(table), fields(image_id = %id))]
pub async fn notified(
    table: &dyn ItemTable,
    id: ImageId,
    message_id: String,
) -> Result<Outcome, StateError> {
    let t = Transition {
        from: Status::Processed,
        to: Status::Notified,
        at: now_ms(),
        change: Change::Notified { message_id },
    };
    table.advance(id, &t).await
}

/// `pending|uploaded|processed -> failed`, for a permanent error. `from` is the status the caller
/// saw.
#[tracing::instrument(skip(table, error), fields(image_id = %id))]
pub async fn failed(
    table: &dyn ItemTable,
    id: ImageId,
    from: Status,
    error: String,
) -> Result<Outcome, StateError> {
    let t = Transition {
        from,
        to: Status::Failed,
        at: now_ms(),
        change: Change::Failed { error },
    };
    if !is_legal(from, Status::Failed) {
        // Not a status that can fail (already notified or failed): say what the item is instead.
        return t.classify(id, table.get(id).await?);
    }
    table.advance(id, &t).await
}
