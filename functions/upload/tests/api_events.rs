//! The upload function fed the API Gateway events in events/, as Lambda would deliver them.

use std::sync::Arc;

use lambda_http::request::LambdaRequest;
use lambda_http::{Body, Request};
use state::memory::{MemoryStore, MemoryTable};
use state::ItemTable;
use upload::{handle, Deps};

fn request(file: &str) -> Request {
    let text = std::fs::read_to_string(format!(
        "{}/../../events/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let event: LambdaRequest = serde_json::from_str(&text).unwrap();
    event.into()
}

fn deps() -> (Deps, Arc<MemoryTable>, Arc<MemoryStore>) {
    let table = Arc::new(MemoryTable::default());
    let store = Arc::new(MemoryStore::default());
    let deps = Deps {
        table: table.clone(),
        store: store.clone(),
        max_upload_bytes: 1 << 20,
        max_object_bytes: upload::DEFAULT_MAX_OBJECT_BYTES,
        upload_url_ttl: upload::DEFAULT_UPLOAD_URL_TTL,
        max_pending_reservations: upload::DEFAULT_MAX_PENDING_RESERVATIONS,
        cursor_key: upload::CursorKey::new(*b"test cursor key, 32 bytes long..").unwrap(),
    };
    (deps, table, store)
}

fn json(body: &Body) -> serde_json::Value {
    match body {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("expected a JSON text body, got {other:?}"),
    }
}

#[tokio::test]
async fn an_api_gateway_upload_stores_the_object_then_an_uploaded_item() {
    let (deps, table, store) = deps();
    let resp = handle(request("api-upload.json"), &deps).await;
    assert_eq!(resp.status(), 201);
    let item = json(resp.body());
    assert_eq!(item["status"], "uploaded");
    assert_eq!(item["content_type"], "image/jpeg");
    let key = item["object_key"].as_str().unwrap();
    assert_eq!(key, format!("uploads/{}.jpg", item["id"].as_str().unwrap()));
    let (bytes, content_type) = store.object(key).expect("object stored");
    assert_eq!(content_type, "image/jpeg");
    assert_eq!(&bytes[..3], &[0xFF, 0xD8, 0xFF]);
    assert_eq!(item["size"], bytes.len());
    assert_eq!(
        table
            .query(&state::Query::first(state::Selection::All, 10))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(
        resp.headers()["location"],
        format!("/items/{}", item["id"].as_str().unwrap())
    );
}

#[tokio::test]
async fn text_labelled_as_jpeg_is_refused_and_nothing_is_stored() {
    let (deps, table, store) = deps();
    let resp = handle(request("api-upload-not-an-image.json"), &deps).await;
    assert_eq!(resp.status(), 415);
    assert!(json(resp.body())["error"]
        .as_str()
        .unwrap()
        .contains("not an image this pipeline takes (JPEG, PNG, HEIC, WebP, GIF, AVIF, TIFF, APNG or JPEG XL)"));
    assert!(store.keys().is_empty());
    assert!(table
        .query(&state::Query::first(state::Selection::All, 10))
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn items_can_be_listed_and_read_back_and_unknown_ids_are_404() {
    let (deps, _, _) = deps();
    let created = json(handle(request("api-upload.json"), &deps).await.body());
    let listed = handle(request("api-list-items.json"), &deps).await;
    assert_eq!(listed.status(), 200);
    assert_eq!(json(listed.body())["items"][0]["id"], created["id"]);
    // api-get-item.json names an id this table never had.
    let missing = handle(request("api-get-item.json"), &deps).await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn get_on_the_stage_root_is_the_page_under_its_policy() {
    let (deps, _, _) = deps();
    let resp = handle(request("api-get-page.json"), &deps).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'none'; script-src 'sha256-"),
        "{csp}"
    );
    // The memory store's links are no URLs a browser could use: only the page's own origin.
    assert!(csp.contains("img-src 'self';"), "{csp}");
    match resp.body() {
        Body::Text(html) => {
            assert_eq!(html, upload::page::PAGE);
            assert!(html.contains("<title>Image uploads</title>"));
        }
        other => panic!("expected the page as text, got {other:?}"),
    }
}
