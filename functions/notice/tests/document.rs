//! The notice's JSON document (docs/webhooks.md, version 1): its fields for a processed item, its
//! renditions as links made by the function's bucket (as items' `urls.renditions` are), names that
//! stay data, and the function's start on AWS, where those links are the CDN's, signed with the
//! key it reads from Secrets Manager (on moto: `make test`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use lambda_runtime::{Context, LambdaEvent};
use notice::{handle, Config, Deps, DOCUMENT_VERSION};
use serde_json::Value;
use state::memory::{MemoryStore, MemoryTable};
use state::stream::{change_record, Change};
use state::{
    transition, ImageId, Item, ItemTable, NewUpload, Notice, Notifier, ObjectStore, ProcessedFacts,
    StateError, Status,
};

#[derive(Default)]
struct Kept(Mutex<Vec<Notice>>);

#[async_trait::async_trait]
impl Notifier for Kept {
    async fn publish(&self, notice: &Notice) -> Result<String, StateError> {
        let mut kept = self.0.lock().unwrap();
        kept.push(notice.clone());
        Ok(format!("message-{}", kept.len()))
    }
}

/// An item as `process` leaves it, with `renditions`, in `table`: the stream record of that step.
async fn processed(
    table: &dyn ItemTable,
    object_key: &str,
    renditions: &[(&str, &str)],
) -> (Item, Event) {
    let id = ImageId::generate();
    let uploaded = Item::uploaded(
        NewUpload {
            id,
            bucket_name: "images".into(),
            object_key: object_key.into(),
            content_type: "image/jpeg".into(),
            size: 123_456,
        },
        1_700_000_000_123,
    );
    table.insert(&uploaded).await.unwrap();
    let facts = ProcessedFacts {
        width: 4032,
        height: 3024,
        format: "jpeg".into(),
        renditions: renditions
            .iter()
            .map(|(name, key)| (name.to_string(), key.replace("{id}", &id.to_string())))
            .collect(),
        ..ProcessedFacts::default()
    };
    transition::processed(table, id, facts).await.unwrap();
    let now = table.get(id).await.unwrap().unwrap();
    let record = change_record(
        Change::Modify,
        Some(&uploaded),
        Some(&now),
        now.updated_at,
        "us-east-1",
        "arn:aws:dynamodb:us-east-1:123456789012:table/images/stream/1",
    );
    let mut event = Event::default();
    event.records.push(record);
    (now, event)
}

/// Runs the handler on `event`; the one notice it published.
async fn notice_of(deps: &Deps, kept: &Kept, event: Event) -> Notice {
    let resp = handle(LambdaEvent::new(event, Context::default()), deps)
        .await
        .unwrap();
    assert!(resp.batch_item_failures.is_empty(), "{resp:?}");
    let kept = kept.0.lock().unwrap();
    assert_eq!(kept.len(), 1, "one notice");
    kept[0].clone()
}

fn rfc3339_ms(text: &Value) -> chrono::DateTime<chrono::Utc> {
    let text = text.as_str().unwrap();
    // Milliseconds, UTC, as `Z`: what the schema promises.
    assert!(text.ends_with('Z') && text.len() == 24, "{text}");
    chrono::DateTime::parse_from_rfc3339(text).unwrap().into()
}

#[tokio::test]
async fn the_document_names_the_item_and_links_its_renditions_as_the_bucket_does() {
    let table = Arc::new(MemoryTable::default());
    let store = Arc::new(MemoryStore::default());
    let kept = Arc::new(Kept::default());
    let deps = Deps {
        table: table.clone(),
        notifier: kept.clone(),
        store: store.clone(),
        concurrency: 2,
    };
    let (item, event) = processed(
        table.as_ref(),
        "uploads/photo.jpg",
        &[
            ("thumbnail", "processed/{id}/thumbnail.jpg"),
            ("avatar", "processed/{id}/avatar.png"),
        ],
    )
    .await;
    let before = chrono::Utc::now();
    let notice = notice_of(&deps, &kept, event).await;
    let after = chrono::Utc::now();

    let doc: Value = serde_json::from_str(&notice.document).unwrap();
    let fields: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        [
            "created_at",
            "format",
            "height",
            "id",
            "notified_at",
            "renditions",
            "size",
            "status",
            "version",
            "width"
        ]
    );
    assert_eq!(doc["version"], DOCUMENT_VERSION);
    assert_eq!(doc["id"], item.id.to_string());
    assert_eq!(doc["status"], "notified");
    assert_eq!(doc["width"], 4032);
    assert_eq!(doc["height"], 3024);
    assert_eq!(doc["format"], "jpeg");
    assert_eq!(doc["size"], 123_456);
    assert_eq!(doc["created_at"], "2023-11-14T22:13:20.123Z");
    let notified_at = rfc3339_ms(&doc["notified_at"]);
    assert!(
        notified_at >= before - chrono::Duration::milliseconds(1) && notified_at <= after,
        "{notified_at}"
    );
    // Each rendition is the link the bucket gives for its key, as in GET /items/{id}'s urls.
    let mut expected = BTreeMap::new();
    for (name, key) in item.renditions.as_ref().unwrap() {
        expected.insert(name.clone(), Value::from(store.link(key).await.unwrap()));
    }
    assert_eq!(doc["renditions"].as_object().unwrap().len(), 2);
    assert_eq!(
        doc["renditions"],
        Value::Object(expected.into_iter().collect())
    );
    assert_eq!(
        doc["renditions"]["thumbnail"],
        format!("memory:///processed/{}/thumbnail.jpg", item.id)
    );
    // The mail keeps its text, and the item is marked with the notice's message id.
    assert!(
        notice.body.starts_with("Your image has been processed."),
        "{}",
        notice.body
    );
    assert!(notice.body.contains(&item.id.to_string()));
    let now = table.get(item.id).await.unwrap().unwrap();
    assert_eq!(now.status, Status::Notified);
    assert_eq!(now.message_id.as_deref(), Some("message-1"));
}

#[tokio::test]
async fn names_with_control_characters_stay_valid_json_and_single_lines_in_the_mail() {
    let table = Arc::new(MemoryTable::default());
    let kept = Arc::new(Kept::default());
    let deps = Deps {
        table: table.clone(),
        notifier: kept.clone(),
        store: Arc::new(MemoryStore::default()),
        concurrency: 2,
    };
    let hostile = "evil\"}\n,\"id\":\"x\u{0}\u{7}\u{1b}[31m\u{2028}end";
    let (item, event) = processed(
        table.as_ref(),
        &format!("ingest/{hostile}.jpg"),
        &[(hostile, "processed/{id}/evil.jpg")],
    )
    .await;
    let notice = notice_of(&deps, &kept, event).await;
    let doc: Value = serde_json::from_str(&notice.document).unwrap();
    // The name is one key, exactly as given; it adds no fields and changes none.
    assert_eq!(doc["id"], item.id.to_string());
    assert_eq!(doc["renditions"].as_object().unwrap().len(), 1);
    assert!(doc["renditions"][hostile].is_string(), "{doc}");
    // JSON's own escapes only: no raw control character is left in the text.
    assert!(
        !notice.document.chars().any(|c| c.is_control()),
        "{:?}",
        notice.document
    );
    // The mail text has as many lines as for a plain name: the name cannot add one.
    assert_eq!(notice.body.lines().count(), 8, "{}", notice.body);
}

/// On AWS the function links renditions through the stack's distribution, signed with the key
/// `CDN_SIGNING_KEY_SECRET` names: read once, at start (as the upload function does).
#[tokio::test]
async fn on_aws_the_document_links_renditions_through_the_cdn_signed_with_the_stacks_key() {
    use aws_adapters::testing::{endpoints, sdk, unique};
    use aws_adapters::AwsResources;
    use state::links::{Cdn, CdnSigning};
    let Some((_, moto)) = endpoints() else {
        return eprintln!("skipped: needs the AWS stand-ins (make test starts them)");
    };
    const CDN: &str = "https://d111111abcdef8.cloudfront.net";
    // A published test key (adapters/aws/tests/data/cloudfront/PROVENANCE.md), never a real one.
    const TEST_KEY: &str = include_str!(
        "../../../adapters/aws/tests/data/cloudfront/cloudfront-sign-rs-test-key.pkcs8.pem"
    );
    let aws = sdk(&moto).await;
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let secret = secrets
        .create_secret()
        .name(unique("cdn-signing-key"))
        .secret_string(TEST_KEY)
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let config = Config {
        table_name: "t".into(),
        topic_arn: "arn:aws:sns:us-east-1:123456789012:notices".into(),
        bucket_name: "b".into(),
        link_ttl: Duration::from_secs(900),
        cdn: Some(Cdn {
            url: CDN.into(),
            signing: Some(CdnSigning {
                key_pair_id: "K2JCJMDEHXQW5F".into(),
                private_key_secret: secret.clone(),
            }),
        }),
        concurrency: notice::CONCURRENCY,
    };
    let started = Deps::new(config.clone(), &AwsResources::new(&aws))
        .await
        .unwrap();

    let table = Arc::new(MemoryTable::default());
    let kept = Arc::new(Kept::default());
    let deps = Deps {
        table: table.clone(),
        notifier: kept.clone(),
        store: started.store.clone(),
        concurrency: 2,
    };
    let (item, event) = processed(
        table.as_ref(),
        "uploads/photo.jpg",
        &[("thumbnail", "processed/{id}/thumbnail.jpg")],
    )
    .await;
    let notice = notice_of(&deps, &kept, event).await;
    let doc: Value = serde_json::from_str(&notice.document).unwrap();
    let link = doc["renditions"]["thumbnail"].as_str().unwrap();
    assert!(
        link.starts_with(&format!("{CDN}/{}/thumbnail.jpg?Expires=", item.id)),
        "{link}"
    );
    assert!(
        link.contains("&Signature=") && link.contains("&Key-Pair-Id=K2JCJMDEHXQW5F"),
        "{link}"
    );

    // Without its secret the function does not start, and says which secret it needed.
    secrets
        .delete_secret()
        .secret_id(&secret)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let err = format!(
        "{:#}",
        Deps::new(config, &AwsResources::new(&aws))
            .await
            .err()
            .unwrap()
    );
    assert!(err.contains(&secret), "{err}");
}

#[test]
fn the_stacks_configuration_names_the_bucket_and_the_distribution() {
    use config_vars::Vars;
    let vars: BTreeMap<String, String> = [
        ("TABLE_NAME", "t"),
        ("TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:notices"),
        ("BUCKET_NAME", "b"),
        ("LINK_MINUTES", "30"),
        ("CDN_URL", "https://d111111abcdef8.cloudfront.net"),
        ("CDN_KEY_PAIR_ID", ""),
        ("CDN_SIGNING_KEY_SECRET", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let config = Config::from_vars(&Vars::map(&vars)).unwrap();
    assert_eq!(config.bucket_name, "b");
    assert_eq!(config.link_ttl, Duration::from_secs(30 * 60));
    let cdn = config.cdn.unwrap();
    assert_eq!(cdn.url, "https://d111111abcdef8.cloudfront.net");
    assert!(cdn.signing.is_none(), "public renditions: nothing to sign");

    let mut half = vars.clone();
    half.insert("CDN_KEY_PAIR_ID".into(), "K2JCJMDEHXQW5F".into());
    let err = Config::from_vars(&Vars::map(&half))
        .unwrap_err()
        .to_string();
    assert!(err.contains("CDN_SIGNING_KEY_SECRET"), "{err}");

    let mut no_bucket = vars;
    no_bucket.remove("BUCKET_NAME");
    let err = Config::from_vars(&Vars::map(&no_bucket))
        .unwrap_err()
        .to_string();
    assert_eq!(err, "BUCKET_NAME is not set");
}
