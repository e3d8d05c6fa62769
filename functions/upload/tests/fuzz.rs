//! Fuzzing the upload parsing: any body under any Content-Type gets one of the documented answers,
//! never a panic, and only bodies that really are JPEG or PNG are stored. `make test` runs a bounded
//! number of cases; `make fuzz` runs many more (PROPTEST_CASES).

use std::sync::Arc;

use lambda_http::http::Request;
use lambda_http::Body;
use proptest::prelude::*;
use state::memory::{MemoryStore, MemoryTable};
use state::ItemTable;
use upload::{handle, Deps};

const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF];
const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        // Real magic numbers followed by anything, and cut short.
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|t| [JPEG, &t].concat()),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|t| [PNG, &t].concat()),
        prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|t| [PNG, &[0, 0, 0, 13], b"IHDR", &t].concat()),
        (0..PNG.len()).prop_map(|n| PNG[..n].to_vec()),
        // Near the size limit.
        (990usize..1010).prop_map(|n| [JPEG, &vec![0u8; n]].concat()),
    ]
}

fn content_type() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("image/jpeg".to_owned()),
        Just("image/png".to_owned()),
        Just("text/plain".to_owned()),
        "[ -~]{0,40}",
    ]
}

proptest! {
    #[test]
    fn any_upload_gets_a_documented_answer(body in body(), content_type in content_type(), as_text in any::<bool>()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let table = Arc::new(MemoryTable::default());
            let store = Arc::new(MemoryStore::default());
            let deps = Deps {
                table: table.clone(),
                store: store.clone(),
                max_upload_bytes: 1000,
                max_object_bytes: upload::DEFAULT_MAX_OBJECT_BYTES,
        upload_url_ttl: upload::DEFAULT_UPLOAD_URL_TTL,
        max_pending_reservations: upload::DEFAULT_MAX_PENDING_RESERVATIONS,
        cursor_key: upload::CursorKey::new(*b"test cursor key, 32 bytes long..").unwrap(),
            };
            let payload = match (as_text, String::from_utf8(body.clone())) {
                (true, Ok(text)) if !text.is_empty() => Body::Text(text),
                _ if body.is_empty() => Body::Empty,
                _ => Body::Binary(body.clone()),
            };
            let mut req = Request::builder().method("POST").uri("/upload");
            if let Ok(v) = lambda_http::http::HeaderValue::from_str(&content_type) {
                req = req.header("content-type", v);
            }
            let resp = handle(req.body(payload).unwrap(), &deps).await;
            let status = resp.status().as_u16();
            prop_assert!([201, 400, 413, 415].contains(&status), "status {}", status);
            let stored = store.keys();
            // What the handler may take for an image: a JPEG's SOI and a marker, or a PNG's whole
            // signature and its IHDR chunk.
            let is_image = (body.len() >= 4 && body.starts_with(JPEG) && body[3] >= 0xC0)
                || (body.len() >= 16 && body.starts_with(PNG) && &body[12..16] == b"IHDR");
            match status {
                201 => {
                    prop_assert!(is_image && body.len() <= 1000);
                    prop_assert_eq!(stored.len(), 1);
                    prop_assert_eq!(table.query(&state::Query::first(state::Selection::All, 10)).await.unwrap().items.len(), 1);
                }
                _ => {
                    prop_assert!(stored.is_empty());
                    prop_assert!(table.query(&state::Query::first(state::Selection::All, 10)).await.unwrap().items.is_empty());
                }
            }
            Ok(())
        })?;
    }
}
