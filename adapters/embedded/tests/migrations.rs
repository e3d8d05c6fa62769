//! A `pipeline.db` made before migrations existed opens, is brought to the latest schema, and
//! keeps everything in it.

use embedded_adapters::sqlite::{Database, SqliteStream, SqliteTable, V1};
use event_source_mapping::{Checkpoints, RecordSource};
use state::ItemTable;

#[tokio::test]
async fn a_database_from_before_migrations_is_migrated_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.db");
    // The schema as the first release wrote it (no user_version), with an item, its stream record
    // and a mapping's checkpoint.
    let item = state::contract::new_item();
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(V1).unwrap();
        c.execute(
            "INSERT INTO items (id, status, created_at, doc) VALUES (?1, 'uploaded', ?2, ?3)",
            rusqlite::params![
                item.id.to_string(),
                item.created_at,
                serde_json::to_string(&item).unwrap()
            ],
        )
        .unwrap();
        c.execute(
            "INSERT INTO stream (item_id, created_ms, record) VALUES (?1, 1, ?2)",
            rusqlite::params![
                item.id.to_string(),
                r#"{"eventName":"INSERT","awsRegion":"local","dynamodb":{"SizeBytes":1}}"#
            ],
        )
        .unwrap();
        c.execute(
            "INSERT INTO checkpoints (mapping, seq) VALUES ('ProcessFunction.Uploads', 1)",
            [],
        )
        .unwrap();
        let version: u32 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 0);
    }
    let db = Database::open(&path).unwrap();
    let latest = embedded_adapters::sqlite::migrations()
        .current_version(&rusqlite::Connection::open(&path).unwrap())
        .unwrap();
    assert_eq!(
        latest,
        rusqlite_migration::SchemaVersion::Inside(std::num::NonZeroUsize::new(7).unwrap())
    );
    assert_eq!(db.schema_version().await.unwrap(), 7);
    let table = SqliteTable::new(db.clone());
    assert_eq!(table.get(item.id).await.unwrap(), Some(item));
    let stream = SqliteStream::new(db.clone());
    let cursor = stream.cursor("ProcessFunction.Uploads").await.unwrap();
    assert_eq!(cursor.position, 1);
    assert_eq!(cursor.in_flight, None);
    assert_eq!(stream.read(0, 10).await.unwrap().len(), 1);
    // Opening again is a no-op.
    drop(db);
    let again = Database::open(&path).unwrap();
    assert_eq!(again.schema_version().await.unwrap(), 7);
}
