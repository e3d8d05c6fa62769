//! An in-memory record source and checkpoint store: for tests, and to show what a source must do.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::watch;

use crate::{BoxError, Checkpoints, Cursor, DeadLetter, RecordSource, SourceRecord};

/// A stream held in memory; positions start at 1.
pub struct MemorySource {
    records: Mutex<Vec<SourceRecord>>,
    changes: watch::Sender<u64>,
}

impl Default for MemorySource {
    fn default() -> Self {
        Self {
            records: Mutex::new(Vec::new()),
            changes: watch::channel(0).0,
        }
    }
}

impl MemorySource {
    /// Appends a record written at `created_ms`; returns its position.
    pub fn append(&self, created_ms: i64, record: Value) -> u64 {
        let mut records = self.records.lock().expect("source lock");
        let position = records.len() as u64 + 1;
        records.push(SourceRecord {
            position,
            created_ms,
            record: record.into(),
        });
        self.changes.send_replace(position);
        position
    }
}

#[async_trait]
impl RecordSource for MemorySource {
    async fn read(&self, after: u64, limit: usize) -> Result<Vec<SourceRecord>, BoxError> {
        let records = self.records.lock().expect("source lock");
        Ok(records
            .iter()
            .filter(|r| r.position > after)
            .take(limit)
            .cloned()
            .collect())
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// Cursors and dead letters held in memory.
#[derive(Default)]
pub struct MemoryCheckpoints {
    cursors: Mutex<HashMap<String, Cursor>>,
    letters: Mutex<Vec<(String, DeadLetter)>>,
}

impl MemoryCheckpoints {
    /// Every dead letter so far, with its mapping.
    pub fn dead_letters(&self) -> Vec<(String, DeadLetter)> {
        self.letters.lock().expect("letters lock").clone()
    }
}

#[async_trait]
impl Checkpoints for MemoryCheckpoints {
    async fn cursor(&self, mapping: &str) -> Result<Cursor, BoxError> {
        Ok(self
            .cursors
            .lock()
            .expect("cursor lock")
            .get(mapping)
            .copied()
            .unwrap_or_default())
    }

    async fn save(&self, mapping: &str, cursor: Cursor) -> Result<(), BoxError> {
        self.cursors
            .lock()
            .expect("cursor lock")
            .insert(mapping.to_owned(), cursor);
        Ok(())
    }

    async fn dead_letter(
        &self,
        mapping: &str,
        letters: Vec<DeadLetter>,
        cursor: Cursor,
    ) -> Result<(), BoxError> {
        let mut all = self.letters.lock().expect("letters lock");
        let mut cursors = self.cursors.lock().expect("cursor lock");
        all.extend(letters.into_iter().map(|l| (mapping.to_owned(), l)));
        cursors.insert(mapping.to_owned(), cursor);
        Ok(())
    }
}
