//! The function's start (`Deps::new`) over any host's resources: the keys its configuration names
//! are read from the host's secrets, once, and a CDN is the host's to put in front of the bucket.
//! Here the host is in memory; tests/cdn.rs holds the same start on AWS (moto), and the pipeline
//! tests on the engine.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use state::memory::{MemorySecrets, MemoryStore, MemoryTable};
use state::{
    Distribution, GivenUpRecords, ImageId, ItemTable, Notifier, ObjectStore, Position,
    ResourceError, Resources, Secrets, Selection,
};
use upload::{Cdn, CdnSigning, Config, CursorKey, CursorKeySource, Deps};

const CURSOR_KEY: &str = "a cursor key from the host's secret";

struct Host {
    secrets: Arc<MemorySecrets>,
    /// What the function asked to put in front of the bucket, if anything.
    behind: Mutex<Option<Distribution>>,
}

impl Host {
    fn new(secrets: MemorySecrets) -> Host {
        Host {
            secrets: Arc::new(secrets),
            behind: Mutex::new(None),
        }
    }
}

impl Resources for Host {
    fn table(&self, _: &str) -> Result<Arc<dyn ItemTable>, ResourceError> {
        Ok(Arc::new(MemoryTable::default()))
    }
    fn bucket(&self, _: &str, _: Duration) -> Result<Arc<dyn ObjectStore>, ResourceError> {
        Ok(Arc::new(MemoryStore::default()))
    }
    fn bucket_behind(
        &self,
        name: &str,
        links: Duration,
        distribution: Distribution,
    ) -> Result<Arc<dyn ObjectStore>, ResourceError> {
        *self.behind.lock().unwrap() = Some(distribution);
        self.bucket(name, links)
    }
    fn topic(&self, arn: &str) -> Result<Arc<dyn Notifier>, ResourceError> {
        Err(ResourceError::Missing {
            kind: "topic",
            name: arn.into(),
            have: "none".into(),
        })
    }
    fn given_up_records(&self) -> Result<Arc<dyn GivenUpRecords>, ResourceError> {
        Err(ResourceError::Missing {
            kind: "stream",
            name: String::new(),
            have: "none".into(),
        })
    }
    fn secrets(&self) -> Result<Arc<dyn Secrets>, ResourceError> {
        Ok(self.secrets.clone())
    }
}

fn config(cursor_key: CursorKeySource, cdn: Option<Cdn>) -> Config {
    Config {
        table_name: "t".into(),
        bucket_name: "b".into(),
        max_upload_bytes: 1 << 20,
        max_object_bytes: upload::DEFAULT_MAX_OBJECT_BYTES,
        upload_url_ttl: upload::DEFAULT_UPLOAD_URL_TTL,
        max_pending_reservations: upload::DEFAULT_MAX_PENDING_RESERVATIONS,
        cursor_key,
        link_ttl: Duration::from_secs(900),
        cdn,
    }
}

#[tokio::test]
async fn the_cursor_key_is_the_named_secrets_value() {
    let host = Host::new(MemorySecrets::default().with("CursorSecret", CURSOR_KEY));
    let deps = Deps::new(
        config(CursorKeySource::Secret("CursorSecret".into()), None),
        &host,
    )
    .await
    .unwrap();
    let at = Position {
        created_at: 1,
        id: ImageId::generate(),
    };
    let cursor = deps.cursor_key.encode(Selection::All, at);
    let from_secret = CursorKey::new(CURSOR_KEY).unwrap();
    assert_eq!(from_secret.decode(&cursor, Selection::All).unwrap(), at);
    assert!(host.behind.lock().unwrap().is_none(), "no CDN asked for");
}

#[tokio::test]
async fn a_missing_or_short_secret_stops_the_start_naming_it_and_never_showing_it() {
    let host = Host::new(MemorySecrets::default().with("Short", "too short"));
    let missing = Deps::new(config(CursorKeySource::Secret("Gone".into()), None), &host)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(missing.contains("\"Gone\""), "{missing}");
    let short = Deps::new(config(CursorKeySource::Secret("Short".into()), None), &host)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        short.contains("\"Short\"") && short.contains("16 bytes"),
        "{short}"
    );
    assert!(
        !short.contains("too short"),
        "the value is not shown: {short}"
    );
}

#[tokio::test]
async fn with_a_cdn_the_host_puts_it_in_front_of_the_bucket_with_the_key_from_its_secret() {
    let pem = "-----BEGIN PRIVATE KEY-----\nnot a real key\n-----END PRIVATE KEY-----\n";
    let host = Host::new(MemorySecrets::default().with("cdn-signing-key", pem));
    let key = CursorKey::new(CURSOR_KEY).unwrap();
    let cdn = |signing| Cdn {
        url: "https://d111111abcdef8.cloudfront.net".into(),
        signing,
    };
    Deps::new(
        config(
            CursorKeySource::Given(key.clone()),
            Some(cdn(Some(CdnSigning {
                key_pair_id: "K2JCJMDEHXQW5F".into(),
                private_key_secret: "cdn-signing-key".into(),
            }))),
        ),
        &host,
    )
    .await
    .unwrap();
    let asked = host.behind.lock().unwrap().take().unwrap();
    assert_eq!(asked.url, "https://d111111abcdef8.cloudfront.net");
    let signing = asked.signing.unwrap();
    assert_eq!(signing.key_pair_id, "K2JCJMDEHXQW5F");
    assert_eq!(signing.private_key_pem, pem);
    assert!(
        !format!("{signing:?}").contains("not a real key"),
        "a key's Debug never shows it"
    );
    // Public renditions: no key to read.
    Deps::new(config(CursorKeySource::Given(key), Some(cdn(None))), &host)
        .await
        .unwrap();
    assert!(host
        .behind
        .lock()
        .unwrap()
        .take()
        .unwrap()
        .signing
        .is_none());
}
