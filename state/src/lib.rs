//! The item model and its state machine.
//!
//! `pending -> uploaded -> processed -> notified`, and `pending|uploaded|processed -> failed`
//! (`pending` is a reservation whose object has not arrived yet). Every status change goes
//! through one of the functions in [`transition`], each a single conditional write on a [`ItemTable`];
//! a write whose condition fails is a typed [`Outcome`] or [`StateError::Conflict`], never a string.
//! This crate knows nothing of AWS: the adapters that render the ports for DynamoDB, S3 and SNS
//! (`adapters/aws`) and for SQLite, files and a mailbox (`adapters/embedded`) sit at the edge, and
//! [`contract`] (feature `contract`) holds every adapter of a port to the same semantics.

#[cfg(feature = "contract")]
pub mod contract;
mod error;
mod item;
pub mod links;
pub mod media;
pub mod memory;
mod ports;
pub mod query;
pub mod stream;
pub mod text;
pub mod transition;

pub use error::StateError;
pub use item::{now_ms, HistoryEntry, ImageId, Item, NewUpload, ProcessedFacts, Stall, Status};
pub use ports::{
    Distribution, GivenUpBatch, GivenUpRecords, ItemTable, Notice, Notifier, ObjectInfo,
    ObjectStore, ResourceError, Resources, Secrets, SignedUpload, SigningKey, DEFAULT_LINK_TTL,
};
pub use query::{Page, Position, Query, Selection};
pub use transition::{Arrival, Outcome, Transition};
