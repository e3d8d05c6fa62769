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

/// A queue held in memory, as SQS keeps one: a received message is hidden until it is deleted or
/// put back ([`MemoryQueue::reappear`], standing in for the visibility timeout).
#[derive(Default)]
pub struct MemoryQueue {
    messages: Mutex<Vec<(crate::queue::Message, bool)>>,
}

impl MemoryQueue {
    /// Sends a message; returns its id.
    pub fn send(&self, body: &str) -> String {
        let mut messages = self.messages.lock().expect("queue lock");
        let id = format!("m-{}", messages.len() + 1);
        messages.push((
            crate::queue::Message {
                id: id.clone(),
                body: body.to_owned(),
                receive_count: 0,
                sent_ms: 0,
            },
            true,
        ));
        id
    }

    /// Every hidden message becomes visible again: their visibility timeouts passed.
    pub fn reappear(&self) {
        for (_, visible) in self.messages.lock().expect("queue lock").iter_mut() {
            *visible = true;
        }
    }

    /// The ids of the messages still in the queue.
    pub fn ids(&self) -> Vec<String> {
        let messages = self.messages.lock().expect("queue lock");
        messages.iter().map(|(m, _)| m.id.clone()).collect()
    }
}

#[async_trait]
impl crate::queue::MessageQueue for MemoryQueue {
    async fn receive(&self, limit: usize) -> Result<Vec<crate::queue::Message>, BoxError> {
        let mut messages = self.messages.lock().expect("queue lock");
        let mut received = Vec::new();
        for (message, visible) in messages.iter_mut().filter(|(_, v)| *v).take(limit) {
            *visible = false;
            message.receive_count += 1;
            received.push(message.clone());
        }
        Ok(received)
    }

    async fn delete(&self, id: &str) -> Result<(), BoxError> {
        self.messages
            .lock()
            .expect("queue lock")
            .retain(|(m, _)| m.id != id);
        Ok(())
    }
}
