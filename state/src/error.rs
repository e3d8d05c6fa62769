use crate::{ImageId, Status};

/// Everything that can go wrong with an item, its object or its notice.
///
/// `Unavailable` is the transient class (a store, table or notifier that did not answer): stream
/// handlers report it as a batch item failure so the record is retried. Every other variant is an
/// answer, not an outage.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{id}: is {found}, not {expected}; transition rejected")]
    Conflict {
        id: ImageId,
        expected: Status,
        found: Status,
    },
    #[error("{0}: no such item")]
    NotFound(ImageId),
    #[error("{0}: an item with this id exists already")]
    Duplicate(ImageId),
    #[error("object {0}: not found")]
    ObjectMissing(String),
    #[error("item {id} is not readable: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("unavailable: {0:#}")]
    Unavailable(#[source] anyhow::Error),
}

impl StateError {
    pub fn unavailable(e: impl Into<anyhow::Error>) -> Self {
        Self::Unavailable(e.into())
    }

    /// Worth retrying: the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}
