//! The contract suite: what every adapter of a port must do, written once and run against each
//! (memory, SQLite and DynamoDB Local for the table; memory, files and S3 for the object store;
//! the mailbox and SNS for the notifier). An adapter's test file calls the macros:
//!
//! ```ignore
//! async fn table() -> std::sync::Arc<dyn state::ItemTable> { /* a fresh table */ }
//! state::table_contract!(table);
//! ```
//!
//! Each check is a plain async function too, so a test can run one on its own.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::transition::{self, LEGAL};
use crate::{
    ImageId, Item, ItemTable, NewUpload, Notice, Notifier, ObjectStore, Outcome, ProcessedFacts,
    Stall, StateError, Status,
};

/// A new `uploaded` item with a fresh id.
pub fn new_item() -> Item {
    Item::uploaded(
        NewUpload {
            id: ImageId::generate(),
            bucket_name: "contract-bucket".into(),
            object_key: "uploads/contract.jpg".into(),
            content_type: "image/jpeg".into(),
            size: 3,
        },
        crate::now_ms(),
    )
}

/// What processing learned, with every attribute set.
pub fn facts() -> ProcessedFacts {
    ProcessedFacts {
        width: 4,
        height: 3,
        format: "jpeg".into(),
        renditions: BTreeMap::from([("thumbnail".into(), "processed/x/thumbnail.jpg".into())]),
        exif: BTreeMap::from([("make".into(), "Canon".into())]),
        placeholder: Some("1QcSHQRnh493V4dIh4eXh1h4kJUI".into()),
    }
}

/// Runs one contract check on a fresh table from `make`, in a runtime of its own.
pub fn run<M, MF, C, CF>(make: M, check: C)
where
    M: FnOnce() -> MF,
    MF: Future<Output = Arc<dyn ItemTable>>,
    C: FnOnce(Arc<dyn ItemTable>) -> CF,
    CF: Future<Output = ()>,
{
    let rt = runtime();
    rt.block_on(async move { check(make().await).await });
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a test runtime")
}

/// Insert, then read back the same item; a second insert of its id is `Duplicate`; an unknown id
/// reads as nothing.
pub async fn insert_get_and_duplicate(table: Arc<dyn ItemTable>) {
    let item = new_item();
    table.insert(&item).await.unwrap();
    assert_eq!(table.get(item.id).await.unwrap(), Some(item.clone()));
    let err = table.insert(&item).await.unwrap_err();
    assert!(
        matches!(err, StateError::Duplicate(id) if id == item.id),
        "{err}"
    );
    assert_eq!(table.get(ImageId::generate()).await.unwrap(), None);
}

/// A transition is applied once, sets its attributes and appends its history entry in the same
/// write; the same transition again is `AlreadyDone` and writes nothing.
pub async fn a_transition_applies_once_with_its_history(table: Arc<dyn ItemTable>) {
    let item = new_item();
    table.insert(&item).await.unwrap();
    let first = transition::processed(table.as_ref(), item.id, facts())
        .await
        .unwrap();
    let Outcome::Applied(after) = &first else {
        panic!("expected Applied, got {first:?}");
    };
    assert_eq!(after.status, Status::Processed);
    assert_eq!((after.width, after.height), (Some(4), Some(3)));
    assert_eq!(after.renditions, Some(facts().renditions));
    assert_eq!(after.exif, Some(facts().exif));
    assert_eq!(after.placeholder, facts().placeholder);
    assert_eq!(after.history.len(), 2);
    assert_eq!(after.history[1].status, Status::Processed);
    assert_eq!(after.history[1].at, after.updated_at);
    assert_eq!(table.get(item.id).await.unwrap().as_ref(), Some(after));

    let again = transition::processed(table.as_ref(), item.id, facts())
        .await
        .unwrap();
    assert_eq!(again, Outcome::AlreadyDone(after.clone()));
    assert_eq!(table.get(item.id).await.unwrap().as_ref(), Some(after));
}

/// A record that comes late (processing an item already notified) is `AlreadyDone`.
pub async fn a_late_record_is_already_done(table: Arc<dyn ItemTable>) {
    let item = new_item();
    table.insert(&item).await.unwrap();
    transition::processed(table.as_ref(), item.id, facts())
        .await
        .unwrap();
    let notified = transition::notified(table.as_ref(), item.id, "m-1".into())
        .await
        .unwrap();
    let Outcome::Applied(notified) = notified else {
        panic!("expected Applied");
    };
    assert_eq!(notified.message_id.as_deref(), Some("m-1"));
    assert_eq!(notified.notified_at, Some(notified.updated_at));
    let late = transition::processed(table.as_ref(), item.id, facts())
        .await
        .unwrap();
    assert_eq!(late, Outcome::AlreadyDone(notified));
}

/// An item that went another way is a `Conflict` naming what was expected and what was found.
pub async fn another_way_is_a_conflict(table: Arc<dyn ItemTable>) {
    let item = new_item();
    table.insert(&item).await.unwrap();
    let failed = transition::failed(table.as_ref(), item.id, Status::Uploaded, "bad".into())
        .await
        .unwrap();
    let Outcome::Applied(failed) = failed else {
        panic!("expected Applied");
    };
    assert_eq!(failed.error.as_deref(), Some("bad"));
    let err = transition::processed(table.as_ref(), item.id, facts())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StateError::Conflict {
                expected: Status::Uploaded,
                found: Status::Failed,
                ..
            }
        ),
        "{err}"
    );
    // Notifying an item that was never processed is a conflict too, and changes nothing.
    let other = new_item();
    table.insert(&other).await.unwrap();
    let err = transition::notified(table.as_ref(), other.id, "m".into())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StateError::Conflict {
                expected: Status::Processed,
                found: Status::Uploaded,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(table.get(other.id).await.unwrap(), Some(other));
}

/// A transition of an unknown item is `NotFound`.
pub async fn a_missing_item_is_not_found(table: Arc<dyn ItemTable>) {
    let id = ImageId::generate();
    let err = transition::notified(table.as_ref(), id, "m".into())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StateError::NotFound(found) if found == id),
        "{err}"
    );
}

/// Items come back newest first, at most `limit`.
pub async fn lists_newest_first(table: Arc<dyn ItemTable>) {
    let mut made = Vec::new();
    for n in 0..3 {
        let mut item = new_item();
        // Far in the future, so other tests' items sharing the table come after these.
        item.created_at = 9_000_000_000_000 + n;
        table.insert(&item).await.unwrap();
        made.push(item.id);
    }
    let listed: Vec<ImageId> = table
        .list(2)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(listed, [made[2], made[1]]);
}

/// A stall is marked only while the item is where the given-up record left it, shows on the
/// item, is cleared by a redrive (once), and does not outlive the item's next transition.
pub async fn a_stall_marks_the_item_until_it_moves_on(table: Arc<dyn ItemTable>) {
    let item = new_item();
    table.insert(&item).await.unwrap();
    let stall = Stall::new("process", "retries exhausted: store down", crate::now_ms());
    assert!(!table
        .mark_stalled(item.id, Status::Processed, &stall)
        .await
        .unwrap());
    assert_eq!(table.get(item.id).await.unwrap().unwrap().stall(), None);
    assert!(table
        .mark_stalled(item.id, Status::Uploaded, &stall)
        .await
        .unwrap());
    let marked = table.get(item.id).await.unwrap().unwrap();
    assert_eq!(marked.stall(), Some(stall.clone()));
    assert_eq!(marked.status, Status::Uploaded, "a stall is not a status");
    assert_eq!(marked.history, item.history);

    assert!(table.clear_stalled(item.id).await.unwrap());
    assert!(!table.clear_stalled(item.id).await.unwrap(), "once");
    assert_eq!(table.get(item.id).await.unwrap().unwrap().stall(), None);
    assert!(!table.clear_stalled(ImageId::generate()).await.unwrap());

    table
        .mark_stalled(item.id, Status::Uploaded, &stall)
        .await
        .unwrap();
    let Outcome::Applied(moved) = transition::processed(table.as_ref(), item.id, facts())
        .await
        .unwrap()
    else {
        panic!("expected Applied");
    };
    assert_eq!(moved.stall(), None, "the transition clears it");
    assert_eq!(table.get(item.id).await.unwrap().unwrap().stall(), None);
}

#[derive(Debug, Clone, Copy)]
enum Delivery {
    Process,
    Notify,
    FailFromUploaded,
    FailFromProcessed,
}

fn delivery() -> impl Strategy<Value = Delivery> {
    prop_oneof![
        4 => Just(Delivery::Process),
        4 => Just(Delivery::Notify),
        1 => Just(Delivery::FailFromUploaded),
        1 => Just(Delivery::FailFromProcessed),
    ]
}

async fn deliver(table: &dyn ItemTable, id: ImageId, d: Delivery) -> Result<Outcome, StateError> {
    match d {
        Delivery::Process => transition::processed(table, id, facts()).await,
        Delivery::Notify => transition::notified(table, id, "m-1".into()).await,
        Delivery::FailFromUploaded => {
            transition::failed(table, id, Status::Uploaded, "bad".into()).await
        }
        Delivery::FailFromProcessed => {
            transition::failed(table, id, Status::Processed, "bad".into()).await
        }
    }
}

fn rank(s: Status) -> u8 {
    match s {
        Status::Uploaded => 0,
        Status::Processed => 1,
        Status::Notified | Status::Failed => 2,
    }
}

/// Property: whatever duplicated, reordered or replayed deliveries a handler sees, an item never
/// moves backwards, each transition is applied at most once, and its history has one entry per
/// applied transition. `cases` random sequences of up to 40 deliveries, each on a fresh item.
pub fn deliveries_never_move_an_item_backwards<M, MF>(make: M, cases: u32)
where
    M: FnOnce() -> MF,
    MF: Future<Output = Arc<dyn ItemTable>>,
{
    let rt = runtime();
    let table = rt.block_on(make());
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = prop::collection::vec(delivery(), 1..40);
    let result = runner.run(&strategy, |deliveries| {
        rt.block_on(one_sequence(table.as_ref(), deliveries))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

async fn one_sequence(
    table: &dyn ItemTable,
    deliveries: Vec<Delivery>,
) -> Result<(), TestCaseError> {
    let item = new_item();
    table.insert(&item).await.unwrap();
    let mut applied = 0usize;
    let mut last = Status::Uploaded;
    for d in deliveries {
        let before = table.get(item.id).await.unwrap().unwrap();
        match deliver(table, item.id, d).await {
            Ok(Outcome::Applied(after)) => {
                applied += 1;
                prop_assert!(LEGAL.contains(&(before.status, after.status)));
                prop_assert_eq!(after.history.len(), before.history.len() + 1);
            }
            Ok(Outcome::AlreadyDone(seen)) => prop_assert_eq!(seen, before),
            Err(StateError::Conflict { found, .. }) => prop_assert_eq!(found, before.status),
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
        let now = table.get(item.id).await.unwrap().unwrap();
        prop_assert!(rank(now.status) >= rank(last), "{last} -> {}", now.status);
        prop_assert!(!(last == Status::Failed && now.status != Status::Failed));
        last = now.status;
    }
    let end = table.get(item.id).await.unwrap().unwrap();
    prop_assert_eq!(end.history.len(), applied + 1);
    let mut seen: Vec<Status> = end.history.iter().map(|h| h.status).collect();
    seen.dedup();
    prop_assert_eq!(seen.len(), end.history.len());
    Ok(())
}

/// Every check of the table contract, as tests over the table `$make()` gives (an async fn
/// returning `Arc<dyn ItemTable>`); `$cases` random sequences for the property. With
/// `if $ready`, each test first asks `$ready()` and is skipped (saying so) when it is false: for
/// adapters that need a server `make test` starts.
#[macro_export]
macro_rules! table_contract {
    ($make:ident, $cases:expr) => {
        $crate::table_contract!($make, $cases, if $crate::contract::always);
    };
    ($make:ident, $cases:expr, if $ready:path) => {
        mod table_contract {
            use $crate::contract;

            macro_rules! check {
                ($name:ident) => {
                    #[test]
                    fn $name() {
                        if contract::skip($ready()) {
                            return;
                        }
                        contract::run(super::$make, contract::$name);
                    }
                };
            }
            check!(insert_get_and_duplicate);
            check!(a_transition_applies_once_with_its_history);
            check!(a_late_record_is_already_done);
            check!(another_way_is_a_conflict);
            check!(a_missing_item_is_not_found);
            check!(lists_newest_first);
            check!(a_stall_marks_the_item_until_it_moves_on);

            #[test]
            fn deliveries_never_move_an_item_backwards() {
                if contract::skip($ready()) {
                    return;
                }
                contract::deliveries_never_move_an_item_backwards(super::$make, $cases);
            }
        }
    };
}

/// For contract tests that need nothing started.
pub fn always() -> bool {
    true
}

/// Whether to skip a contract test whose adapter is not `ready`, saying so.
pub fn skip(ready: bool) -> bool {
    if !ready {
        eprintln!("skipped: needs the AWS stand-ins (make test starts them)");
    }
    !ready
}

/// Runs one object-store check on a fresh store from `make`.
pub fn run_store<M, MF, C, CF>(make: M, check: C)
where
    M: FnOnce() -> MF,
    MF: Future<Output = Arc<dyn ObjectStore>>,
    C: FnOnce(Arc<dyn ObjectStore>) -> CF,
    CF: Future<Output = ()>,
{
    runtime().block_on(async move { check(make().await).await });
}

/// What is put is what is got, byte for byte; a second put replaces the first.
pub async fn store_puts_and_gets(store: Arc<dyn ObjectStore>) {
    assert!(!store.bucket().is_empty());
    let key = format!("processed/{}/thumbnail.jpg", ImageId::generate());
    let body = Bytes::from((0..=255u8).cycle().take(70_000).collect::<Vec<u8>>());
    store.put(&key, body.clone(), "image/jpeg").await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), body);
    store
        .put(&key, Bytes::from_static(b"second"), "image/jpeg")
        .await
        .unwrap();
    assert_eq!(
        store.get(&key).await.unwrap(),
        Bytes::from_static(b"second")
    );
}

/// A key that was never put is `ObjectMissing`, naming the key.
pub async fn store_names_a_missing_key(store: Arc<dyn ObjectStore>) {
    let key = format!("uploads/{}.jpg", ImageId::generate());
    let err = store.get(&key).await.unwrap_err();
    assert!(
        matches!(&err, StateError::ObjectMissing(k) if *k == key),
        "{err}"
    );
}

/// Every check of the object-store contract, as tests over the store `$make()` gives.
#[macro_export]
macro_rules! store_contract {
    ($make:ident) => {
        $crate::store_contract!($make, if $crate::contract::always);
    };
    ($make:ident, if $ready:path) => {
        mod store_contract {
            use $crate::contract;

            #[test]
            fn store_puts_and_gets() {
                if contract::skip($ready()) {
                    return;
                }
                contract::run_store(super::$make, contract::store_puts_and_gets);
            }
            #[test]
            fn store_names_a_missing_key() {
                if contract::skip($ready()) {
                    return;
                }
                contract::run_store(super::$make, contract::store_names_a_missing_key);
            }
        }
    };
}

/// A notice the notifier published, as its subscriber received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub subject: String,
    pub body: String,
}

/// A notifier under test, with a way to read what its subscriber received since the last read.
#[async_trait::async_trait]
pub trait Subscriber: Send + Sync {
    fn notifier(&self) -> Arc<dyn Notifier>;
    async fn received(&self) -> Vec<Received>;
}

/// Each publish gets its own message id, and the subscriber receives the subject and the body.
pub async fn notifier_publishes_what_the_subscriber_receives(sub: Arc<dyn Subscriber>) {
    let notifier = sub.notifier();
    let mut ids = Vec::new();
    for n in 0..2 {
        let notice = Notice {
            dedup_key: format!("{}/notified", ImageId::generate()),
            subject: format!("Image processed: {n}"),
            body: format!("body {n}\nsecond line"),
        };
        let id = notifier.publish(&notice).await.unwrap();
        assert!(!id.is_empty());
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1]);
    let mut got = Vec::new();
    let started = std::time::Instant::now();
    while got.len() < 2 && started.elapsed() < std::time::Duration::from_secs(10) {
        got.extend(sub.received().await);
        if got.len() < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    got.sort_by(|a, b| a.subject.cmp(&b.subject));
    assert_eq!(got.len(), 2, "{got:?}");
    for (n, r) in got.iter().enumerate() {
        assert_eq!(r.subject, format!("Image processed: {n}"));
        assert!(r.body.contains(&format!("body {n}")), "{r:?}");
        assert!(r.body.contains("second line"), "{r:?}");
    }
}

/// Runs the notifier check on a subscriber from `make`.
pub fn run_notifier<M, MF>(make: M)
where
    M: FnOnce() -> MF,
    MF: Future<Output = Arc<dyn Subscriber>>,
{
    runtime().block_on(async move {
        notifier_publishes_what_the_subscriber_receives(make().await).await
    });
}
