//! Writes made together share one transaction (a group commit), and each is answered as if it had
//! been alone: with its own result, only once that transaction has committed.

use embedded_adapters::sqlite::{Database, SqliteTable};
use state::ItemTable;

fn open() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&dir.path().join("pipeline.db")).unwrap();
    (dir, db)
}

async fn numbers(db: &Database) -> Vec<i64> {
    db.read(|c| {
        let mut stmt = c.prepare("SELECT x FROM t ORDER BY x")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
    .await
    .unwrap()
}

async fn insert(db: &Database, x: i64) -> anyhow::Result<()> {
    db.write(move |c| {
        c.execute("INSERT INTO t (x) VALUES (?1)", [x])?;
        Ok(())
    })
    .await
}

async fn with_table(db: &Database) {
    db.write(|c| Ok(c.execute_batch("CREATE TABLE t (x INTEGER UNIQUE)")?))
        .await
        .unwrap();
}

#[tokio::test]
async fn items_written_together_share_a_commit_and_are_all_there() {
    let (_dir, db) = open();
    let table = SqliteTable::new(db.clone());
    let items: Vec<_> = (0..64).map(|_| state::contract::new_item()).collect();
    let before = db.commits();
    let mut writers = tokio::task::JoinSet::new();
    for item in items.clone() {
        let table = table.clone();
        writers.spawn(async move { table.insert(&item).await });
    }
    while let Some(written) = writers.join_next().await {
        written.unwrap().unwrap();
    }
    let commits = db.commits() - before;
    assert!(
        (1..=8).contains(&commits),
        "64 inserts made at once took {commits} commits"
    );
    for item in &items {
        assert_eq!(table.get(item.id).await.unwrap().as_ref(), Some(item));
    }
}

#[tokio::test]
async fn a_failed_write_is_undone_alone_and_its_batch_commits() {
    let (_dir, db) = open();
    with_table(&db).await;
    let before = db.commits();
    let (failed, two, three) = tokio::join!(
        db.write(|c| {
            let savepoint = c.savepoint()?;
            savepoint.execute("INSERT INTO t (x) VALUES (1)", [])?;
            savepoint.execute("INSERT INTO t (x) VALUES (1)", [])?;
            savepoint.commit()?;
            Ok(())
        }),
        insert(&db, 2),
        insert(&db, 3),
    );
    assert!(failed.is_err(), "the duplicate fails");
    two.unwrap();
    three.unwrap();
    assert_eq!(
        db.commits() - before,
        1,
        "the three writes share one commit"
    );
    assert_eq!(
        numbers(&db).await,
        [2, 3],
        "the failed write's first insert is undone"
    );
}

#[tokio::test]
async fn a_batch_that_cannot_commit_answers_every_write_with_the_error() {
    let (_dir, db) = open();
    // Checked only at COMMIT: a child without its parent passes its INSERT and fails the batch.
    db.read(|c| Ok(c.execute_batch("PRAGMA foreign_keys = ON")?))
        .await
        .unwrap();
    db.write(|c| {
        Ok(c.execute_batch(
            "CREATE TABLE t (x INTEGER UNIQUE);
             CREATE TABLE child (parent INTEGER REFERENCES t (x) DEFERRABLE INITIALLY DEFERRED);",
        )?)
    })
    .await
    .unwrap();
    let (orphan, fine) = tokio::join!(
        db.write(|c| {
            c.execute("INSERT INTO child (parent) VALUES (99)", [])?;
            Ok(())
        }),
        insert(&db, 5),
    );
    let orphan = orphan.unwrap_err().to_string();
    let fine = fine.unwrap_err().to_string();
    assert!(orphan.contains("committing"), "{orphan}");
    assert!(
        fine.contains("committing"),
        "a write that succeeded is not answered Ok when its batch did not commit: {fine}"
    );
    assert_eq!(
        numbers(&db).await,
        Vec::<i64>::new(),
        "nothing of the batch stays"
    );
    insert(&db, 6).await.expect("the next batch commits");
    assert_eq!(numbers(&db).await, [6]);
}

#[tokio::test]
async fn a_write_that_panics_answers_its_caller_and_spares_its_batch() {
    let (_dir, db) = open();
    with_table(&db).await;
    let (panicked, seven) = tokio::join!(
        db.write(|c| -> anyhow::Result<()> {
            c.execute("INSERT INTO t (x) VALUES (8)", [])?;
            panic!("a bug in a write")
        }),
        insert(&db, 7),
    );
    let panicked = panicked.unwrap_err().to_string();
    assert!(panicked.contains("panicked"), "{panicked}");
    seven.unwrap();
    assert_eq!(
        numbers(&db).await,
        [7],
        "the panicking write's insert is undone"
    );
}

#[tokio::test]
async fn a_write_that_fails_after_writing_leaves_nothing_behind() {
    let (_dir, db) = open();
    with_table(&db).await;
    let (failed, ten) = tokio::join!(
        db.write(|c| -> anyhow::Result<()> {
            c.execute("INSERT INTO t (x) VALUES (9)", [])?;
            anyhow::bail!("refused after writing")
        }),
        insert(&db, 10),
    );
    assert!(failed.is_err());
    ten.unwrap();
    assert_eq!(numbers(&db).await, [10]);
}
