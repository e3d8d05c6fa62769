//! Property: whatever duplicated, reordered or replayed deliveries a handler sees, an item never
//! moves backwards and each transition is applied at most once.

use proptest::prelude::*;
use state::memory::MemoryTable;
use state::transition::{self, LEGAL};
use state::{ImageId, Item, ItemTable, NewUpload, Outcome, ProcessedFacts, StateError, Status};

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

fn new_item() -> Item {
    Item::uploaded(
        NewUpload {
            id: ImageId::generate(),
            bucket_name: "b".into(),
            object_key: "uploads/x.jpg".into(),
            content_type: "image/jpeg".into(),
            size: 3,
        },
        1,
    )
}

async fn deliver(table: &MemoryTable, id: ImageId, d: Delivery) -> Result<Outcome, StateError> {
    match d {
        Delivery::Process => {
            let facts = ProcessedFacts {
                width: 1,
                height: 1,
                format: "jpeg".into(),
                ..Default::default()
            };
            transition::processed(table, id, facts).await
        }
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

proptest! {
    #[test]
    fn deliveries_never_move_an_item_backwards(deliveries in prop::collection::vec(delivery(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let table = MemoryTable::default();
            let item = new_item();
            table.insert(&item).await.unwrap();
            let mut applied = 0usize;
            let mut last = Status::Uploaded;
            for d in deliveries {
                let before = table.get(item.id).await.unwrap().unwrap();
                match deliver(&table, item.id, d).await {
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
            // The history holds the first entry plus one per applied transition, and no status twice.
            prop_assert_eq!(end.history.len(), applied + 1);
            let mut seen: Vec<Status> = end.history.iter().map(|h| h.status).collect();
            seen.dedup();
            prop_assert_eq!(seen.len(), end.history.len());
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_replayed_process_is_already_done_and_writes_nothing() {
    let table = MemoryTable::default();
    let item = new_item();
    table.insert(&item).await.unwrap();
    let facts = ProcessedFacts {
        width: 4,
        height: 3,
        format: "png".into(),
        ..Default::default()
    };
    let first = transition::processed(&table, item.id, facts.clone())
        .await
        .unwrap();
    assert!(
        matches!(first, Outcome::Applied(ref i) if i.status == Status::Processed && i.width == Some(4))
    );
    let again = transition::processed(&table, item.id, facts).await.unwrap();
    assert_eq!(again, Outcome::AlreadyDone(first.item().clone()));
}

#[tokio::test]
async fn processing_a_failed_item_is_a_conflict() {
    let table = MemoryTable::default();
    let item = new_item();
    table.insert(&item).await.unwrap();
    transition::failed(&table, item.id, Status::Uploaded, "not an image".into())
        .await
        .unwrap();
    let err = transition::processed(&table, item.id, ProcessedFacts::default())
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
}

#[tokio::test]
async fn a_missing_item_is_not_found_and_a_second_insert_is_duplicate() {
    let table = MemoryTable::default();
    let item = new_item();
    let err = transition::notified(&table, item.id, "m".into())
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::NotFound(id) if id == item.id));
    table.insert(&item).await.unwrap();
    assert!(matches!(
        table.insert(&item).await,
        Err(StateError::Duplicate(_))
    ));
}

#[test]
fn item_round_trips_through_a_dynamodb_image() {
    let mut item = new_item();
    item.renditions = Some(
        [(
            "thumbnail".to_owned(),
            "processed/x/thumbnail.jpg".to_owned(),
        )]
        .into(),
    );
    let image: serde_dynamo::Item = item.to_image();
    let json = serde_json::to_value(&image).unwrap();
    assert_eq!(json["status"], serde_json::json!({"S": "uploaded"}));
    assert_eq!(json["size"], serde_json::json!({"N": "3"}));
    assert_eq!(
        json["renditions"]["M"]["thumbnail"],
        serde_json::json!({"S": "processed/x/thumbnail.jpg"})
    );
    assert_eq!(Item::from_image(image).unwrap(), item);
}
