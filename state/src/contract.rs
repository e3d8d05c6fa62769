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
//!
//! Long by nature: one suite, each test a clause of the ports' contract, shared by every adapter.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::transition::{self, LEGAL};
use crate::{
    ImageId, Item, ItemTable, NewUpload, Notice, Notifier, ObjectStore, Outcome, ProcessedFacts,
    Query, Selection, Stall, StateError, Status,
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
        frames: Some(12),
        duration_ms: Some(1_200),
        warnings: vec![
            "PNG iCCP chunk does not inflate (InsufficientInput); profile not used, taken as sRGB"
                .into(),
            "EXIF unreadable (Invalid format: Truncated IFD); skipped".into(),
        ],
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
    assert_eq!((after.frames, after.duration_ms), (Some(12), Some(1_200)));
    // A list, in its order: DynamoDB keeps it as L of S (a string set would lose the order).
    assert_eq!(after.warnings, facts().warnings);
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

/// `n` new items created at `base + offsets[k]` (equal offsets share a `created_at`).
async fn items_at(table: &dyn ItemTable, base: i64, offsets: &[i64]) -> Vec<Item> {
    let mut made = Vec::new();
    for &offset in offsets {
        let mut item = new_item();
        item.created_at = base + offset;
        item.updated_at = item.created_at;
        item.history[0].at = item.created_at;
        table.insert(&item).await.unwrap();
        made.push(item);
    }
    made
}

/// Every page of `q` from the start, and the ids in the order they came.
pub async fn all_pages(table: &dyn ItemTable, selection: Selection, limit: usize) -> Vec<ImageId> {
    let mut q = Query::first(selection, limit);
    let mut ids = Vec::new();
    for _ in 0..1000 {
        let page = table.query(&q).await.unwrap();
        assert!(page.items.len() <= limit, "a page holds at most its limit");
        ids.extend(page.items.iter().map(|i| i.id));
        match page.next {
            Some(next) => q.after = Some(next),
            None => return ids,
        }
    }
    panic!("more than 1000 pages");
}

/// Pages come newest first (ties in `created_at` by id), each item once; uploads that arrive
/// between pages do not shift or repeat what the later pages hold.
pub async fn pages_come_newest_first_without_gaps_or_repeats(table: Arc<dyn ItemTable>) {
    let base = 1_700_000_000_000;
    let made = items_at(table.as_ref(), base, &[5, 1, 3, 3, 9, 0, 7, 3]).await;
    let mut expected = made.clone();
    expected.sort_by(crate::query::newest_first);
    let expected: Vec<ImageId> = expected.iter().map(|i| i.id).collect();
    for limit in [1, 3, 8, 50] {
        assert_eq!(
            all_pages(table.as_ref(), Selection::All, limit).await,
            expected,
            "limit {limit}"
        );
    }
    // Two pages in, new uploads arrive (newer than everything): the rest is unchanged.
    let first = table.query(&Query::first(Selection::All, 3)).await.unwrap();
    let second = table
        .query(&Query {
            after: first.next,
            ..Query::first(Selection::All, 3)
        })
        .await
        .unwrap();
    items_at(table.as_ref(), base, &[100, 101, 3]).await;
    let mut rest = Vec::new();
    let mut after = second.next;
    while let Some(position) = after {
        let page = table
            .query(&Query {
                after: Some(position),
                ..Query::first(Selection::All, 3)
            })
            .await
            .unwrap();
        rest.extend(page.items.iter().map(|i| i.id));
        after = page.next;
    }
    let seen: Vec<ImageId> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|i| i.id)
        .chain(rest.iter().copied())
        .collect();
    // The late item at offset 3 sorts among the old ones: it is either before the cursor (not
    // shown) or after it (shown once); every original item is shown exactly once either way.
    let originals: Vec<ImageId> = seen
        .iter()
        .copied()
        .filter(|id| expected.contains(id))
        .collect();
    assert_eq!(originals, expected);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no item twice");
}

/// A status query holds exactly the items at that status, newest first; the stalled query holds
/// exactly the marked items; an item leaves both when it moves on.
pub async fn status_and_stalled_queries_hold_exactly_their_items(table: Arc<dyn ItemTable>) {
    let base = 1_700_000_000_000;
    let made = items_at(table.as_ref(), base, &[1, 2, 3, 4, 5]).await;
    for item in &made[..3] {
        transition::processed(table.as_ref(), item.id, facts())
            .await
            .unwrap();
    }
    transition::failed(table.as_ref(), made[3].id, Status::Uploaded, "bad".into())
        .await
        .unwrap();
    let stall = Stall::new("notice", "retries exhausted", crate::now_ms());
    assert!(table
        .mark_stalled(made[1].id, Status::Processed, &stall)
        .await
        .unwrap());
    let ids = |idx: &[usize]| idx.iter().map(|&k| made[k].id).collect::<Vec<_>>();
    assert_eq!(
        all_pages(table.as_ref(), Selection::Status(Status::Processed), 2).await,
        ids(&[2, 1, 0])
    );
    assert_eq!(
        all_pages(table.as_ref(), Selection::Status(Status::Failed), 2).await,
        ids(&[3])
    );
    assert_eq!(
        all_pages(table.as_ref(), Selection::Status(Status::Uploaded), 2).await,
        ids(&[4])
    );
    assert_eq!(
        all_pages(table.as_ref(), Selection::Stalled, 2).await,
        ids(&[1])
    );
    transition::notified(table.as_ref(), made[1].id, "m".into())
        .await
        .unwrap();
    assert_eq!(
        all_pages(table.as_ref(), Selection::Status(Status::Processed), 5).await,
        ids(&[2, 0])
    );
    assert_eq!(
        all_pages(table.as_ref(), Selection::Status(Status::Notified), 5).await,
        ids(&[1])
    );
    assert!(all_pages(table.as_ref(), Selection::Stalled, 5)
        .await
        .is_empty());
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

/// `count_pending` counts the `pending` items created after a time, and no further than its cap:
/// not older reservations, not items at other statuses, not a reservation once it arrived.
pub async fn pending_reservations_are_counted_since_a_time_up_to_a_cap(table: Arc<dyn ItemTable>) {
    let now = crate::now_ms();
    let reservation = |created_at: i64| {
        let id = ImageId::generate();
        Item::pending(
            NewUpload {
                id,
                bucket_name: "contract-bucket".into(),
                object_key: format!("incoming/{id}"),
                content_type: "image/jpeg".into(),
                size: 1234,
            },
            created_at,
            4_102_444_800,
        )
    };
    assert_eq!(table.count_pending(now - 60_000, 100).await.unwrap(), 0);
    let old = reservation(now - 120_000);
    table.insert(&old).await.unwrap();
    let mut recent = Vec::new();
    for i in 0..20 {
        let item = reservation(now - 1_000 + i);
        table.insert(&item).await.unwrap();
        recent.push(item);
    }
    let boundary = reservation(now - 60_000);
    table.insert(&boundary).await.unwrap();
    table.insert(&new_item()).await.unwrap(); // uploaded, not pending
    assert_eq!(table.count_pending(now - 60_000, 100).await.unwrap(), 20);
    assert_eq!(table.count_pending(now - 60_001, 100).await.unwrap(), 21);
    assert_eq!(table.count_pending(now - 200_000, 100).await.unwrap(), 22);
    assert_eq!(
        table.count_pending(now - 60_000, 7).await.unwrap(),
        7,
        "capped"
    );
    assert_eq!(table.count_pending(now, 100).await.unwrap(), 0);
    let arrived = &recent[0];
    transition::arrived(
        table.as_ref(),
        arrived.id,
        crate::Arrival {
            object_key: arrived.object_key.clone(),
            size: 1234,
            content_type: "image/jpeg".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(table.count_pending(now - 60_000, 100).await.unwrap(), 19);
}

/// A reservation is `pending` with a TTL; its arrival moves it to `uploaded` once, with what
/// arrived, and removes the TTL in the same write; a late duplicate is `AlreadyDone`.
pub async fn a_reservation_arrives_once_and_loses_its_ttl(table: Arc<dyn ItemTable>) {
    let declared = new_item();
    let reservation = Item::pending(
        NewUpload {
            id: declared.id,
            bucket_name: "contract-bucket".into(),
            object_key: format!("incoming/{}", declared.id),
            content_type: "image/jpeg".into(),
            size: 1234,
        },
        crate::now_ms(),
        4_102_444_800,
    );
    table.insert(&reservation).await.unwrap();
    let stored = table.get(reservation.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.ttl),
        (Status::Pending, Some(4_102_444_800))
    );
    assert_eq!(
        all_pages(table.as_ref(), Selection::Status(Status::Pending), 10).await,
        [reservation.id]
    );
    let arrival = crate::Arrival {
        object_key: format!("incoming/{}", reservation.id),
        size: 1200,
        content_type: "image/png".into(),
    };
    let Outcome::Applied(arrived) =
        transition::arrived(table.as_ref(), reservation.id, arrival.clone())
            .await
            .unwrap()
    else {
        panic!("expected Applied");
    };
    assert_eq!(arrived.status, Status::Uploaded);
    assert_eq!(
        (arrived.size, arrived.content_type.as_str()),
        (1200, "image/png")
    );
    assert_eq!(arrived.ttl, None);
    assert_eq!(arrived.history.len(), 2);
    assert_eq!(table.get(reservation.id).await.unwrap().unwrap(), arrived);
    assert_eq!(
        transition::arrived(table.as_ref(), reservation.id, arrival)
            .await
            .unwrap(),
        Outcome::AlreadyDone(arrived)
    );
    // A reservation whose bytes are no image fails from pending, and loses its TTL too.
    let other = Item::pending(
        NewUpload {
            id: ImageId::generate(),
            bucket_name: "contract-bucket".into(),
            object_key: "incoming/x".into(),
            content_type: "image/jpeg".into(),
            size: 1,
        },
        crate::now_ms(),
        4_102_444_800,
    );
    table.insert(&other).await.unwrap();
    let Outcome::Applied(failed) = transition::failed(
        table.as_ref(),
        other.id,
        Status::Pending,
        "not an image".into(),
    )
    .await
    .unwrap() else {
        panic!("expected Applied");
    };
    assert_eq!((failed.status, failed.ttl), (Status::Failed, None));
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
        Status::Pending => 0,
        Status::Uploaded => 1,
        Status::Processed => 2,
        Status::Notified | Status::Failed => 3,
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
            check!(pages_come_newest_first_without_gaps_or_repeats);
            check!(status_and_stalled_queries_hold_exactly_their_items);
            check!(a_stall_marks_the_item_until_it_moves_on);
            check!(a_reservation_arrives_once_and_loses_its_ttl);
            check!(pending_reservations_are_counted_since_a_time_up_to_a_cap);

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
    let err = store.head(&key).await.unwrap_err();
    assert!(
        matches!(&err, StateError::ObjectMissing(k) if *k == key),
        "{err}"
    );
    let err = store.get_prefix(&key, 16).await.unwrap_err();
    assert!(
        matches!(&err, StateError::ObjectMissing(k) if *k == key),
        "{err}"
    );
}

/// A HEAD tells the size without the bytes; a prefix read gives the first bytes only; a signed
/// upload says how to PUT (method, the signed headers, until when).
pub async fn store_heads_and_reads_a_prefix(store: Arc<dyn ObjectStore>) {
    let key = format!("ingest/{}.jpg", ImageId::generate());
    let body = Bytes::from((0..=255u8).cycle().take(10_000).collect::<Vec<u8>>());
    store.put(&key, body.clone(), "image/jpeg").await.unwrap();
    assert_eq!(store.head(&key).await.unwrap().size, 10_000);
    assert_eq!(store.get_prefix(&key, 64).await.unwrap(), body.slice(..64));
    assert_eq!(store.get_prefix(&key, 20_000).await.unwrap(), body);
    let upload = store
        .signed_upload(
            &key,
            10_000,
            "image/png",
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(upload.method, "PUT");
    assert_eq!(
        upload.headers.get("Content-Type").map(String::as_str),
        Some("image/png")
    );
    assert!(upload.expires_at > crate::now_ms());
    assert!(!upload.url.is_empty());
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
            #[test]
            fn store_heads_and_reads_a_prefix() {
                if contract::skip($ready()) {
                    return;
                }
                contract::run_store(super::$make, contract::store_heads_and_reads_a_prefix);
            }
        }
    };
}

/// A notice the notifier published, as its subscriber received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub subject: String,
    /// The readable text (what an email gets).
    pub body: String,
    /// What a program subscriber got (an HTTP(S) or SQS subscriber: the notice's document), where
    /// the subscriber under test has one.
    pub document: Option<String>,
}

/// A notifier under test, with a way to read what its subscriber received since the last read.
#[async_trait::async_trait]
pub trait Subscriber: Send + Sync {
    fn notifier(&self) -> Arc<dyn Notifier>;
    async fn received(&self) -> Vec<Received>;
}

/// Each publish gets its own message id, and the subscriber receives the subject and the body;
/// a program subscriber receives the document, exactly as published.
pub async fn notifier_publishes_what_the_subscriber_receives(sub: Arc<dyn Subscriber>) {
    let notifier = sub.notifier();
    let mut ids = Vec::new();
    for n in 0..2 {
        let notice = Notice {
            dedup_key: format!("{}/notified", ImageId::generate()),
            subject: format!("Image processed: {n}"),
            body: format!("body {n}\nsecond line"),
            document: format!(r#"{{"version":1,"n":{n}}}"#),
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
        if let Some(document) = &r.document {
            assert_eq!(document, &format!(r#"{{"version":1,"n":{n}}}"#), "{r:?}");
        }
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
