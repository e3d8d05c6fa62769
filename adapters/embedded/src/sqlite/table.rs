//! The items table port over [`Database`]: each write and its stream record in one transaction.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use state::stream::{change_record, change_record_json, lambda_json, Change};
use state::{
    ImageId, Item, ItemTable, Outcome, Page, Position, Query, Selection, Stall, StateError, Status,
    Transition,
};

use super::{Database, REGION, STREAM_ARN};

/// The items table, as SQLite rows holding each item's JSON.
#[derive(Clone)]
pub struct SqliteTable {
    db: Database,
}

impl SqliteTable {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Rewrites one item (not its status) if `applies` holds for it, with its MODIFY record, in one
    /// transaction; `false` if it did not apply or there is no such item.
    async fn rewrite(
        &self,
        id: ImageId,
        applies: impl FnOnce(&Item) -> bool + Send + 'static,
        change: impl FnOnce(&Item) -> Item + Send + 'static,
    ) -> Result<bool, StateError> {
        let seq = self
            .db
            .write(move |c| {
                let doc: Option<String> = c
                    .prepare_cached("SELECT doc FROM items WHERE id = ?1")?
                    .query_row([id.to_string()], |r| r.get(0))
                    .optional()?;
                let Some(current) = doc.as_deref().map(read_item).transpose()? else {
                    return Ok(None);
                };
                if !applies(&current) {
                    return Ok(None);
                }
                let next = change(&current);
                c.prepare_cached(
                    "UPDATE items SET doc = ?1, stalled_at = ?2 WHERE id = ?3 AND status = ?4",
                )?
                .execute(params![
                    serde_json::to_string(&next)?,
                    next.stalled_at,
                    id.to_string(),
                    current.status.as_str()
                ])?;
                let seq = append(c, Change::Modify, Some(&current), &next, state::now_ms())?;
                Ok(Some(seq))
            })
            .await
            .map_err(unavailable)?;
        if let Some(seq) = seq {
            self.db.appended(seq);
        }
        Ok(seq.is_some())
    }
}

impl SqliteTable {
    /// Inserts many items, each as [`ItemTable::insert`] would (its row and its INSERT record), in
    /// one transaction: all or none. For loading a table in bulk (the query benchmark); the
    /// pipeline itself inserts one item per upload.
    pub async fn insert_many(&self, items: Vec<Item>) -> Result<(), StateError> {
        let seq = self
            .db
            .write(move |c| {
                let mut last = None;
                for item in &items {
                    last = Some(insert_row(c, item)?);
                }
                Ok(last)
            })
            .await
            .map_err(unavailable)?;
        if let Some(seq) = seq {
            self.db.appended(seq);
        }
        Ok(())
    }
}

/// Deletes up to `at_most` items whose `ttl` (epoch seconds) is before `now_s`, the longest
/// expired first, as DynamoDB's TTL does, each with its REMOVE record (old image only,
/// `userIdentity` the DynamoDB service, as TTL deletions carry it), in one transaction. Returns
/// how many it deleted. Small steps keep each transaction short, so writes that wait behind one
/// (an upload's, a reservation's) wait milliseconds however many reservations expire.
impl SqliteTable {
    pub async fn expire(&self, now_s: i64, at_most: usize) -> Result<usize, StateError> {
        let at_most = i64::try_from(at_most).unwrap_or(i64::MAX);
        let last = self
            .db
            .write(move |c| {
                let docs: Vec<String> = c
                    .prepare_cached(
                        "SELECT doc FROM items WHERE ttl IS NOT NULL AND ttl < ?1
                         ORDER BY ttl LIMIT ?2",
                    )?
                    .query_map(params![now_s, at_most], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let mut last = None;
                for doc in &docs {
                    let item = read_item(doc)?;
                    c.execute("DELETE FROM items WHERE id = ?1", [item.id.to_string()])?;
                    let at = state::now_ms();
                    let mut record =
                        change_record(Change::Remove, Some(&item), None, at, REGION, STREAM_ARN);
                    let mut service = aws_lambda_events::dynamodb::UserIdentity::default();
                    service.type_ = "Service".into();
                    service.principal_id = "dynamodb.amazonaws.com".into();
                    record.user_identity = Some(service);
                    c.execute(
                        "INSERT INTO stream (item_id, created_ms, record) VALUES (?1, ?2, ?3)",
                        params![
                            item.id.to_string(),
                            at,
                            serde_json::to_string(&lambda_json(&record))?
                        ],
                    )?;
                    last = Some((c.last_insert_rowid() as u64, docs.len()));
                }
                Ok(last)
            })
            .await
            .map_err(unavailable)?;
        Ok(match last {
            Some((seq, n)) => {
                self.db.appended(seq);
                n
            }
            None => 0,
        })
    }
}

/// Writes a new item's row and its INSERT record; an existing id is [`StateError::Duplicate`].
fn insert_row(c: &rusqlite::Connection, item: &Item) -> anyhow::Result<u64> {
    let inserted = c
        .prepare_cached(
            "INSERT OR IGNORE INTO items (id, status, created_at, doc, ttl, stalled_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            item.id.to_string(),
            item.status.as_str(),
            item.created_at,
            serde_json::to_string(item)?,
            item.ttl,
            item.stalled_at
        ])?;
    if inserted == 0 {
        return Err(StateError::Duplicate(item.id).into());
    }
    Ok(append(c, Change::Insert, None, item, item.created_at)?)
}

/// Appends the stream record of one change; returns its position.
fn append(
    c: &rusqlite::Connection,
    change: Change,
    old: Option<&Item>,
    new: &Item,
    at_ms: i64,
) -> rusqlite::Result<u64> {
    let json = change_record_json(change, old, Some(new), at_ms, REGION, STREAM_ARN);
    c.prepare_cached("INSERT INTO stream (item_id, created_ms, record) VALUES (?1, ?2, ?3)")?
        .execute(params![new.id.to_string(), at_ms, json])?;
    Ok(c.last_insert_rowid() as u64)
}

fn read_item(doc: &str) -> Result<Item, StateError> {
    serde_json::from_str(doc).map_err(|e| StateError::Corrupt {
        id: String::new(),
        reason: e.to_string(),
    })
}

/// A failure inside a call is the table's answer when it is a [`StateError`], else an outage.
fn unavailable(e: anyhow::Error) -> StateError {
    match e.downcast::<StateError>() {
        Ok(state) => state,
        Err(e) => StateError::Unavailable(e),
    }
}

#[async_trait]
impl ItemTable for SqliteTable {
    async fn insert(&self, item: &Item) -> Result<(), StateError> {
        let item = item.clone();
        let seq = self
            .db
            .write(move |c| {
                let seq = insert_row(c, &item)?;
                Ok(seq)
            })
            .await
            .map_err(unavailable)?;
        self.db.appended(seq);
        Ok(())
    }

    async fn get(&self, id: ImageId) -> Result<Option<Item>, StateError> {
        let doc: Option<String> = self
            .db
            .read(move |c| {
                Ok(c.prepare_cached("SELECT doc FROM items WHERE id = ?1")?
                    .query_row([id.to_string()], |r| r.get(0))
                    .optional()?)
            })
            .await
            .map_err(unavailable)?;
        doc.as_deref().map(read_item).transpose()
    }

    async fn count_pending(&self, created_after: i64, at_most: usize) -> Result<usize, StateError> {
        let at_most = i64::try_from(at_most).unwrap_or(i64::MAX);
        let n: i64 = self
            .db
            .read(move |c| {
                // A range of the index items_status (status, created_at, id), read no further
                // than at_most rows.
                Ok(c.prepare_cached(
                    "SELECT count(*) FROM (SELECT 1 FROM items
                       WHERE status = 'pending' AND created_at > ?1 LIMIT ?2)",
                )?
                .query_row(params![created_after, at_most], |r| r.get(0))?)
            })
            .await
            .map_err(unavailable)?;
        Ok(n as usize)
    }

    async fn query(&self, q: &Query) -> Result<Page, StateError> {
        let q = *q;
        let docs: Vec<String> = self
            .db
            .read(move |c| {
                // Strictly after the cursor: row values compare (created_at, id) in index order.
                let (at, id) = match q.after {
                    Some(p) => (p.created_at, p.id.to_string()),
                    None => (i64::MAX, String::new()),
                };
                let fetch = q.limit as i64 + 1; // one more, to know whether another page follows
                let rows = match q.selection {
                    Selection::All => c
                        .prepare_cached(
                            "SELECT doc FROM items WHERE (created_at, id) < (?1, ?2)
                             ORDER BY created_at DESC, id DESC LIMIT ?3",
                        )?
                        .query_map(params![at, id, fetch], |r| r.get(0))?
                        .collect::<Result<Vec<String>, _>>()?,
                    Selection::Status(status) => c
                        .prepare_cached(
                            "SELECT doc FROM items WHERE status = ?4 AND (created_at, id) < (?1, ?2)
                             ORDER BY created_at DESC, id DESC LIMIT ?3",
                        )?
                        .query_map(params![at, id, fetch, status.as_str()], |r| r.get(0))?
                        .collect::<Result<Vec<String>, _>>()?,
                    Selection::Stalled => c
                        .prepare_cached(
                            "SELECT doc FROM items WHERE stalled_at IS NOT NULL
                               AND (created_at, id) < (?1, ?2)
                             ORDER BY created_at DESC, id DESC LIMIT ?3",
                        )?
                        .query_map(params![at, id, fetch], |r| r.get(0))?
                        .collect::<Result<Vec<String>, _>>()?,
                };
                Ok(rows)
            })
            .await
            .map_err(unavailable)?;
        let mut items = docs
            .iter()
            .map(|d| read_item(d))
            .collect::<Result<Vec<_>, _>>()?;
        let more = items.len() > q.limit;
        items.truncate(q.limit);
        let next = if more {
            items.last().map(Position::of)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn advance(&self, id: ImageId, t: &Transition) -> Result<Outcome, StateError> {
        let t = t.clone();
        let (outcome, seq) = self
            .db
            .write(move |c| {
                let doc: Option<String> = c
                    .prepare_cached("SELECT doc FROM items WHERE id = ?1")?
                    .query_row([id.to_string()], |r| r.get(0))
                    .optional()?;
                let current = doc.as_deref().map(read_item).transpose()?;
                let current = match current {
                    Some(item) if item.status == t.from() => item,
                    other => return Ok((t.classify(id, other)?, None)),
                };
                let next = t.apply_to(&current);
                // The same condition DynamoDB checks, in SQL.
                let changed = c.prepare_cached(
                    "UPDATE items SET status = ?1, doc = ?2, stalled_at = NULL, ttl = NULL WHERE id = ?3 AND status = ?4",
                )?
                .execute(params![
                        next.status.as_str(),
                        serde_json::to_string(&next)?,
                        id.to_string(),
                        t.from().as_str()
                    ],
                )?;
                if changed == 0 {
                    return Ok((t.classify(id, Some(current))?, None));
                }
                let seq = append(c, Change::Modify, Some(&current), &next, t.at())?;
                Ok((Outcome::Applied(next), Some(seq)))
            })
            .await
            .map_err(unavailable)?;
        if let Some(seq) = seq {
            self.db.appended(seq);
        }
        Ok(outcome)
    }

    async fn mark_stalled(
        &self,
        id: ImageId,
        status: Status,
        stall: &Stall,
    ) -> Result<bool, StateError> {
        let stall = stall.clone();
        self.rewrite(
            id,
            move |current| current.status == status,
            move |current| current.with_stall(Some(&stall)),
        )
        .await
    }

    async fn clear_stalled(&self, id: ImageId) -> Result<bool, StateError> {
        self.rewrite(
            id,
            |current| current.stalled_at.is_some(),
            |current| current.with_stall(None),
        )
        .await
    }
}
