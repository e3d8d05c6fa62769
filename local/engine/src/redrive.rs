//! Redrive: every record and event the mappings gave up on is offered to its function again,
//! once its cause is fixed. The local twin of `make redrive`, which clears the stall marks on AWS.

use std::collections::BTreeSet;
use std::sync::Arc;

use embedded_adapters::sqlite::{Database, SqliteStream};
use serde::Serialize;
use state::{ItemTable, Query, Selection};

/// What a redrive did.
#[derive(Debug, Default, Serialize)]
pub struct Redrive {
    /// Dead letters offered again: a stream record whose item's stall mark was cleared (the write
    /// offers the item to its function again through the stream), or an event queued again (S3
    /// would not send it twice).
    pub redriven: usize,
    /// Dead letters whose items had already moved on (or are gone): nothing to redo.
    pub moved_on: usize,
}

/// Where a redrive reads and writes.
pub struct Redriver<'a> {
    pub stream: &'a SqliteStream,
    pub db: &'a Database,
    pub table: &'a Arc<dyn ItemTable>,
    /// The asynchronous queues, whose dead letters are events to queue again.
    pub async_queues: &'a BTreeSet<String>,
}

impl Redriver<'_> {
    /// Offers every dead letter again and removes it; then clears every stall mark left (an item
    /// marked by a letter already gone), as `make redrive` does. Call it once the failure queue
    /// has been consumed, so that every letter's item is marked.
    pub async fn redrive(&self) -> anyhow::Result<Redrive> {
        let mut report = Redrive::default();
        for letter in self.stream.dead_letters().await? {
            let offered = if self.async_queues.contains(&letter.mapping) {
                self.db
                    .enqueue(&letter.mapping, vec![letter.record.clone()], false)
                    .await?;
                true
            } else {
                match serde_json::from_value(letter.record.clone())
                    .ok()
                    .and_then(|record| state::stream::item_of(&record).ok())
                {
                    Some(item) => self.table.clear_stalled(item.id).await?,
                    None => false,
                }
            };
            if offered {
                report.redriven += 1;
            } else {
                report.moved_on += 1;
            }
            self.stream.remove_dead_letter(letter.id).await?;
        }
        let mut q = Query::first(Selection::Stalled, 100);
        loop {
            let page = self.table.query(&q).await?;
            for item in page.items {
                self.table.clear_stalled(item.id).await?;
            }
            match page.next {
                Some(next) => q.after = Some(next),
                None => return Ok(report),
            }
        }
    }
}
