//! The contract suite on the in-memory adapters (the same suite runs on SQLite and files in
//! `adapters/embedded`, and on DynamoDB Local and moto in `adapters/aws`).

use std::sync::Arc;

use state::memory::{MemoryStore, MemoryTable};
use state::{ItemTable, ObjectStore};

async fn table() -> Arc<dyn ItemTable> {
    Arc::new(MemoryTable::default())
}

async fn store() -> Arc<dyn ObjectStore> {
    Arc::new(MemoryStore::default())
}

state::table_contract!(table, 256);
state::store_contract!(store);

#[test]
fn item_round_trips_through_a_dynamodb_image() {
    let mut item = state::contract::new_item();
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
    assert_eq!(state::Item::from_image(image).unwrap(), item);
}
