//! The schema, as numbered migrations (SQLite's `user_version` says which have run). Never edit a
//! migration that has shipped: add the next one.

use rusqlite_migration::{Migrations, M};

/// Version 1: the schema as it first shipped. Its `IF NOT EXISTS` lets a database made before
/// migrations existed (`user_version` 0, same tables) open as version 1 unchanged.
pub const V1: &str = "
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_created ON items (created_at DESC, id);
CREATE TABLE IF NOT EXISTS stream (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    mapping TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    mapping TEXT NOT NULL,
    seq INTEGER NOT NULL,
    reason TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shards (
    shard_id TEXT PRIMARY KEY,
    last_sequence TEXT,
    done INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS notices (
    dedup_key TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    published_ms INTEGER NOT NULL
);
";

/// Version 2: the attempt a mapping has in flight, so a batch that takes the process down is
/// counted as a failed attempt after the restart (instead of crashing it again forever).
pub const V2: &str = "
ALTER TABLE checkpoints ADD COLUMN in_flight_first INTEGER;
ALTER TABLE checkpoints ADD COLUMN in_flight_attempts INTEGER;
ALTER TABLE checkpoints ADD COLUMN in_flight_limit INTEGER;
";

/// Version 3: when the failure consumer marked a dead letter's item stalled; NULL until then.
pub const V3: &str = "
ALTER TABLE dead_letters ADD COLUMN consumed_ms INTEGER;
CREATE INDEX dead_letters_unconsumed ON dead_letters (id) WHERE consumed_ms IS NULL;
";

/// Version 4: the indexes of the item queries (all, by status, stalled), newest first. The
/// `stalled_at` column mirrors the item's attribute so the stalled index can be partial.
pub const V4: &str = "
ALTER TABLE items ADD COLUMN stalled_at INTEGER;
UPDATE items SET stalled_at = json_extract(doc, '$.stalled_at');
DROP INDEX IF EXISTS items_by_created;
CREATE INDEX items_feed ON items (created_at, id);
CREATE INDEX items_status ON items (status, created_at, id);
CREATE INDEX items_stalled ON items (created_at, id) WHERE stalled_at IS NOT NULL;
";

/// Version 5: the queue of asynchronous invocations (S3 bucket notifications) and reservations'
/// expiry (`ttl`, as DynamoDB's TTL attribute), which the engine's sweep deletes by.
pub const V5: &str = "
CREATE TABLE async_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at_ms INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX async_events_due ON async_events (queue, next_at_ms, id);
ALTER TABLE items ADD COLUMN ttl INTEGER;
UPDATE items SET ttl = json_extract(doc, '$.ttl');
CREATE INDEX items_ttl ON items (ttl) WHERE ttl IS NOT NULL;
";

/// Version 6: dead letters are the messages of the on-failure queue, which the failure function
/// consumes as an SQS mapping does: how often each was received, when it is visible again, and
/// when the queue's redrive policy moved it to the archive (`consumed_ms` is set then too).
pub const V6: &str = "
ALTER TABLE dead_letters ADD COLUMN receives INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dead_letters ADD COLUMN visible_at_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dead_letters ADD COLUMN archived_ms INTEGER;
";

/// Version 7: the topics' HTTP/S subscriptions (webhooks) and their outbox. A subscription is
/// one endpoint of one topic, pending until its token is confirmed; every notice published while
/// it is confirmed gets one outbox row, in the same transaction as the notice's own row, and a
/// row is done once delivered or given up on (`outcome` says which).
pub const V7: &str = "
CREATE TABLE webhook_subscriptions (
    arn TEXT PRIMARY KEY,
    topic_arn TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    token TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    confirmed_ms INTEGER,
    UNIQUE (topic_arn, endpoint)
);
CREATE TABLE webhook_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription TEXT NOT NULL,
    message_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT,
    message TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at_ms INTEGER NOT NULL,
    done_ms INTEGER,
    outcome TEXT,
    UNIQUE (subscription, message_id)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_at_ms, id) WHERE done_ms IS NULL;
";

pub fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(V1),
        M::up(V2),
        M::up(V3),
        M::up(V4),
        M::up(V5),
        M::up(V6),
        M::up(V7),
    ])
}
