//! The embedded adapters of the three ports, for the engine on one machine:
//! - [`sqlite`]: the items table and its stream in SQLite (with the mappings' checkpoints and dead
//!   letters, and versioned migrations);
//! - [`files::FileStore`]: the bucket as files, each written whole (temporary file, rename);
//! - [`mailbox::Mailbox`]: the topic's email subscription as one RFC 5322 `.eml` per notice.
//!
//! `tests/contract.rs` holds them to the same contract suite as the in-memory and AWS adapters.

pub mod files;
mod in_place;
pub mod mailbox;
pub mod signed;
pub mod sqlite;
