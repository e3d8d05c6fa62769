//! The DynamoDB rendering of the table port: `attribute_not_exists(id)` on insert, and each
//! transition as one `UpdateItem` conditioned on `#status = :from`.
//!
//! Queries read global secondary indexes (template.yaml), never the whole table. Newest first over
//! all items must not be one hot partition at 1,000 uploads/s, so the feed and status indexes are
//! write-sharded: an item's partition is `f#<s>` (feed) or `<status>#<s>` (status), `s` the first
//! hex digit of its random id (16 shards), and its sort key `<created_at, 13 digits>#<id>`. A page
//! merges the 16 shards newest first, reading each only as far as the page needs. Stalled items
//! are few: their sparse index has one partition.
//!
//! Over 400 lines: the conditional writes and the sharded index queries share the item's
//! attribute rendering, which belongs to neither alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure,
};
use aws_sdk_dynamodb::Client;

use state::{
    ImageId, Item, ItemTable, Outcome, Page, Position, Query, Selection, Stall, StateError, Status,
    Transition,
};

/// The index attributes this adapter writes beside the item's own (never read back into items).
pub mod index {
    /// `ByFeed`: every item, `f#<shard>`.
    pub const FEED: &str = "feed_pk";
    /// `ByStatus`: `<status>#<shard>`.
    pub const STATUS: &str = "status_pk";
    /// `ByStalled` (sparse): `stalled`, only while the item is marked.
    pub const STALLED: &str = "stalled_pk";
    /// The sort key of all three: `<created_at, 13 digits>#<id>`, newest first when descending.
    pub const SORT: &str = "sort_key";
    pub const BY_FEED: &str = "ByFeed";
    pub const BY_STATUS: &str = "ByStatus";
    pub const BY_STALLED: &str = "ByStalled";
    /// Hex digits of the id's first character: 16.
    pub const SHARDS: u32 = 16;
}

fn shard(id: ImageId) -> char {
    id.to_string().chars().next().unwrap_or('0')
}

fn sort_key(created_at: i64, id: ImageId) -> String {
    format!("{created_at:013}#{id}")
}

fn status_pk(status: state::Status, id: ImageId) -> String {
    format!("{status}#{}", shard(id))
}

#[derive(Debug, Clone)]
pub struct DynamoTable {
    client: Client,
    table: String,
    reads: Arc<ReadMeter>,
}

/// What this table's index queries have read so far: `Query` calls, and the read capacity
/// units DynamoDB says they consumed (`ReturnConsumedCapacity`, which costs nothing).
#[derive(Debug, Default)]
struct ReadMeter {
    queries: AtomicU64,
    /// Thousandths of a unit, so the sum stays exact for the half units of eventual reads.
    milli_units: AtomicU64,
}

/// A reading of [`DynamoTable::reads`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reads {
    pub queries: u64,
    pub capacity_units: f64,
}

fn shards() -> impl Iterator<Item = char> {
    (0..index::SHARDS).filter_map(|d| char::from_digit(d, 16))
}

impl DynamoTable {
    /// Reads the next stretch of one shard, newest first, below `upper`.
    async fn read_shard(
        &self,
        index_name: &str,
        key: &str,
        upper: Option<&str>,
        limit: i32,
        cursor: &mut ShardCursor,
    ) -> Result<(), StateError> {
        let mut req = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index_name)
            .expression_attribute_names("#pk", key)
            .expression_attribute_values(":pk", AttributeValue::S(cursor.partition.clone()))
            .scan_index_forward(false)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .limit(limit)
            .set_exclusive_start_key(cursor.start.take());
        req = match upper {
            Some(upper) => req
                .key_condition_expression("#pk = :pk AND #sk < :upper")
                .expression_attribute_names("#sk", index::SORT)
                .expression_attribute_values(":upper", AttributeValue::S(upper.to_owned())),
            None => req.key_condition_expression("#pk = :pk"),
        };
        let out = req
            .send()
            .await
            .with_context(|| format!("Query {index_name} {} of {}", cursor.partition, self.table))
            .map_err(StateError::Unavailable)?;
        self.reads.queries.fetch_add(1, Ordering::Relaxed);
        if let Some(units) = out.consumed_capacity.and_then(|c| c.capacity_units) {
            let milli = (units * 1000.0).round() as u64;
            self.reads.milli_units.fetch_add(milli, Ordering::Relaxed);
        }
        for image in out.items.unwrap_or_default() {
            let sort = match image.get(index::SORT) {
                Some(AttributeValue::S(s)) => s.clone(),
                _ => String::new(),
            };
            cursor.buffered.push_back((sort, read(image)?));
        }
        cursor.start = out.last_evaluated_key;
        cursor.done = cursor.start.is_none();
        Ok(())
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            reads: Default::default(),
        }
    }

    /// The `Query` calls this table (and its clones) made so far, and the read capacity they
    /// consumed: what a page costs, measured (`make bench-queries`).
    pub fn reads(&self) -> Reads {
        Reads {
            queries: self.reads.queries.load(Ordering::Relaxed),
            capacity_units: self.reads.milli_units.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    fn key(id: ImageId) -> HashMap<String, AttributeValue> {
        HashMap::from([("id".to_owned(), AttributeValue::S(id.to_string()))])
    }
}

fn read(image: HashMap<String, AttributeValue>) -> Result<Item, StateError> {
    Item::from_image(image)
}

/// The item as stored: its attributes and its index keys.
fn image_with_index(item: &Item) -> HashMap<String, AttributeValue> {
    let mut image: HashMap<String, AttributeValue> = item.to_image();
    let s = |v: String| AttributeValue::S(v);
    image.insert(index::FEED.into(), s(format!("f#{}", shard(item.id))));
    image.insert(index::STATUS.into(), s(status_pk(item.status, item.id)));
    image.insert(index::SORT.into(), s(sort_key(item.created_at, item.id)));
    if item.stalled_at.is_some() {
        image.insert(index::STALLED.into(), s("stalled".into()));
    }
    image
}

/// One shard of an index query: what was read and not yet taken, and where to read on.
struct ShardCursor {
    partition: String,
    buffered: std::collections::VecDeque<(String, Item)>,
    start: Option<HashMap<String, AttributeValue>>,
    done: bool,
}

#[async_trait]
impl ItemTable for DynamoTable {
    async fn insert(&self, item: &Item) -> Result<(), StateError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(image_with_index(item)))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Err(StateError::Duplicate(item.id))
            }
            Err(e) => Err(StateError::unavailable(
                anyhow::Error::new(e).context(format!("PutItem {} into {}", item.id, self.table)),
            )),
        }
    }

    async fn get(&self, id: ImageId) -> Result<Option<Item>, StateError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id)))
            .consistent_read(true)
            .send()
            .await
            .with_context(|| format!("GetItem {id} from {}", self.table))
            .map_err(StateError::Unavailable)?;
        out.item.map(read).transpose()
    }

    /// Each of the 16 `ByStatus` partitions `pending#<shard>`, counted at once from the sort key
    /// just after `created_after` (`Select: COUNT`: no items come back, but DynamoDB bills the
    /// index entries it reads, about 1 KB each: half a read unit per 4 KB, at least half a unit
    /// per call). A shard stops at `at_most`.
    async fn count_pending(&self, created_after: i64, at_most: usize) -> Result<usize, StateError> {
        // After every id of that millisecond: `~` sorts after hex digits and dashes.
        let since = format!("{created_after:013}#~");
        let limit = i32::try_from(at_most.max(1)).unwrap_or(i32::MAX);
        let counts = shards().map(|shard| {
            let since = since.clone();
            async move {
                let partition = format!("{}#{shard}", state::Status::Pending);
                let mut counted: usize = 0;
                let mut start = None;
                loop {
                    let out = self
                        .client
                        .query()
                        .table_name(&self.table)
                        .index_name(index::BY_STATUS)
                        .key_condition_expression("#pk = :pk AND #sk > :since")
                        .expression_attribute_names("#pk", index::STATUS)
                        .expression_attribute_names("#sk", index::SORT)
                        .expression_attribute_values(":pk", AttributeValue::S(partition.clone()))
                        .expression_attribute_values(":since", AttributeValue::S(since.clone()))
                        .select(aws_sdk_dynamodb::types::Select::Count)
                        .return_consumed_capacity(ReturnConsumedCapacity::Total)
                        .limit(limit)
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .with_context(|| {
                            format!(
                                "Query (count) {} {partition} of {}",
                                index::BY_STATUS,
                                self.table
                            )
                        })
                        .map_err(StateError::Unavailable)?;
                    self.reads.queries.fetch_add(1, Ordering::Relaxed);
                    if let Some(units) = out.consumed_capacity.and_then(|c| c.capacity_units) {
                        let milli = (units * 1000.0).round() as u64;
                        self.reads.milli_units.fetch_add(milli, Ordering::Relaxed);
                    }
                    counted += out.count.max(0) as usize;
                    start = out.last_evaluated_key;
                    if start.is_none() || counted >= at_most {
                        return Ok::<usize, StateError>(counted);
                    }
                }
            }
        });
        let total: usize = futures::future::try_join_all(counts)
            .await?
            .into_iter()
            .sum();
        Ok(total.min(at_most))
    }

    async fn query(&self, q: &Query) -> Result<Page, StateError> {
        let (index_name, key, partitions): (&str, &str, Vec<String>) = match q.selection {
            Selection::All => (
                index::BY_FEED,
                index::FEED,
                shards().map(|s| format!("f#{s}")).collect(),
            ),
            Selection::Status(status) => (
                index::BY_STATUS,
                index::STATUS,
                shards().map(|s| format!("{status}#{s}")).collect(),
            ),
            Selection::Stalled => (index::BY_STALLED, index::STALLED, vec!["stalled".into()]),
        };
        let upper = q.after.map(|p| sort_key(p.created_at, p.id));
        let mut cursors: Vec<ShardCursor> = partitions
            .into_iter()
            .map(|partition| ShardCursor {
                partition,
                buffered: Default::default(),
                start: None,
                done: false,
            })
            .collect();
        // Each shard holds about limit/shards of the page: read that much (and a little more)
        // first, and more only from a shard the merge runs dry on.
        let per_read = (q.limit.div_ceil(cursors.len()) + 1).min(q.limit) as i32;
        let mut out: Vec<Item> = Vec::with_capacity(q.limit);
        while out.len() < q.limit {
            let reads = cursors
                .iter_mut()
                .filter(|c| c.buffered.is_empty() && !c.done)
                .map(|c| self.read_shard(index_name, key, upper.as_deref(), per_read, c));
            futures::future::try_join_all(reads).await?;
            let newest = cursors
                .iter_mut()
                .filter(|c| !c.buffered.is_empty())
                .max_by(|a, b| a.buffered[0].0.cmp(&b.buffered[0].0));
            match newest.and_then(|c| c.buffered.pop_front()) {
                Some((_, item)) => out.push(item),
                None => break, // every shard is read to its end
            }
        }
        // A shard that gave exactly as many items as it was asked for still has a
        // LastEvaluatedKey, whether or not anything follows: look (one item each), so the last
        // page says it is the last, as SQLite's does, rather than leading to an empty one.
        if out.len() == q.limit && cursors.iter().all(|c| c.buffered.is_empty()) {
            let peeks = cursors
                .iter_mut()
                .filter(|c| !c.done)
                .map(|c| self.read_shard(index_name, key, upper.as_deref(), 1, c));
            futures::future::try_join_all(peeks).await?;
        }
        let more = cursors.iter().any(|c| !c.buffered.is_empty());
        let next = if out.len() == q.limit && more {
            out.last().map(Position::of)
        } else {
            None
        };
        Ok(Page { items: out, next })
    }

    async fn advance(&self, id: ImageId, t: &Transition) -> Result<Outcome, StateError> {
        let updates: HashMap<String, AttributeValue> = serde_dynamo::to_item(t.updates())
            .map_err(|e| StateError::unavailable(anyhow::anyhow!("rendering {id}: {e}")))?;
        let mut names = HashMap::from([("#history".to_owned(), "history".to_owned())]);
        let mut values = HashMap::from([
            (
                ":from".to_owned(),
                AttributeValue::S(t.from().as_str().to_owned()),
            ),
            (
                ":entry".to_owned(),
                AttributeValue::L(vec![serde_dynamo::to_attribute_value(t.history_entry())
                    .map_err(|e| StateError::unavailable(anyhow::anyhow!("{e}")))?]),
            ),
            (":none".to_owned(), AttributeValue::L(vec![])),
        ]);
        let mut sets = Vec::with_capacity(updates.len() + 1);
        for (i, (name, value)) in updates.into_iter().enumerate() {
            names.insert(format!("#a{i}"), name);
            values.insert(format!(":a{i}"), value);
            sets.push(format!("#a{i} = :a{i}"));
        }
        sets.push("#history = list_append(if_not_exists(#history, :none), :entry)".to_owned());
        names.insert("#spk".to_owned(), index::STATUS.to_owned());
        values.insert(":spk".to_owned(), AttributeValue::S(status_pk(t.to(), id)));
        sets.push("#spk = :spk".to_owned());
        let mut removes = Vec::new();
        for (i, name) in t.removes().iter().chain([&index::STALLED]).enumerate() {
            names.insert(format!("#r{i}"), (*name).to_owned());
            removes.push(format!("#r{i}"));
        }
        // `status` is among the updates; the condition names it through its own placeholder.
        names.insert("#status".to_owned(), "status".to_owned());

        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id)))
            .update_expression(format!(
                "SET {} REMOVE {}",
                sets.join(", "),
                removes.join(", ")
            ))
            .condition_expression("#status = :from")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out.attributes.ok_or_else(|| {
                    StateError::unavailable(anyhow::anyhow!("UpdateItem {id} returned no item"))
                })?;
                Ok(Outcome::Applied(read(item)?))
            }
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                UpdateItemError::ConditionalCheckFailedException(ccf) => {
                    let current = ccf.item.map(read).transpose()?;
                    t.classify(id, current)
                }
                other => Err(StateError::unavailable(
                    anyhow::Error::new(other).context(format!("UpdateItem {id} in {}", self.table)),
                )),
            },
            Err(e) => Err(StateError::unavailable(
                anyhow::Error::new(e).context(format!("UpdateItem {id} in {}", self.table)),
            )),
        }
    }

    async fn mark_stalled(
        &self,
        id: ImageId,
        status: Status,
        stall: &Stall,
    ) -> Result<bool, StateError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id)))
            .update_expression(
                "SET stalled_at = :at, stalled_by = :by, stalled_reason = :why, #stalled = :stalled",
            )
            .expression_attribute_names("#stalled", index::STALLED)
            .expression_attribute_values(":stalled", AttributeValue::S("stalled".into()))
            .condition_expression("#status = :status")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", AttributeValue::S(status.as_str().into()))
            .expression_attribute_values(":at", AttributeValue::N(stall.at.to_string()))
            .expression_attribute_values(":by", AttributeValue::S(stall.function.clone()))
            .expression_attribute_values(":why", AttributeValue::S(stall.reason.clone()))
            .send()
            .await;
        conditional(result, || {
            format!("UpdateItem (stall) {id} in {}", self.table)
        })
    }

    async fn clear_stalled(&self, id: ImageId) -> Result<bool, StateError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id)))
            .update_expression("REMOVE stalled_at, stalled_by, stalled_reason, #stalled")
            .expression_attribute_names("#stalled", index::STALLED)
            .condition_expression("attribute_exists(stalled_at)")
            .send()
            .await;
        conditional(result, || {
            format!("UpdateItem (redrive) {id} in {}", self.table)
        })
    }
}

/// A conditional write's result: applied, or the condition was false (`false`), or an outage.
fn conditional<T>(
    result: Result<T, SdkError<UpdateItemError>>,
    what: impl FnOnce() -> String,
) -> Result<bool, StateError> {
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
            Ok(false)
        }
        Err(e) => Err(StateError::unavailable(
            anyhow::Error::new(e).context(what()),
        )),
    }
}
