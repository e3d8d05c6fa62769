//! The bucket's event notifications, on one machine: when an object is created, every rule of
//! template.yaml's `Type: S3` events that matches its key (events, prefix, suffix; nothing
//! restated in Rust) queues an `s3:ObjectCreated:Put` event for the rule's function, as S3 sends
//! it (`aws_lambda_events` S3 event record, key URL-encoded). Whichever functions the template
//! gives such events are notified. The queue is durable; the functions' asynchronous invokers
//! deliver it at least once.

use aws_lambda_events::s3::{
    S3Bucket, S3Entity, S3EventRecord, S3Object, S3RequestParameters, S3UserIdentity,
};
use embedded_adapters::sqlite::Database;

use sam_template::NotificationRule;

/// The event name of a plain PUT, as S3 writes it in records (rules say `s3:ObjectCreated:*`).
pub const OBJECT_CREATED_PUT: &str = "ObjectCreated:Put";

/// The notification rules of one bucket and the queue each one feeds.
pub struct BucketEvents {
    db: Database,
    bucket: String,
    rules: Vec<Notified>,
}

/// A rule of the bucket's notifications, and the asynchronous queue of the function it invokes.
#[derive(Debug, Clone)]
pub struct Notified {
    pub rule: NotificationRule,
    pub queue: String,
}

/// What [`BucketEvents::recover`] did with the events an interrupted write left held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Their objects are there: due now.
    pub released: usize,
    /// Their objects never arrived: forgotten.
    pub dropped: usize,
}

/// A key as S3 puts it in an event: URL-encoded (form style: a space is `+`), `/` kept.
pub fn encoded_key(key: &str) -> String {
    key.split('/')
        .map(|segment| form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>())
        .collect::<Vec<_>>()
        .join("/")
}

/// The key an event names, decoded ([`encoded_key`]'s inverse: `red+flower.jpg` is
/// `red flower.jpg`); `None` if it does not decode to UTF-8.
pub fn decoded_key(encoded: &str) -> Option<String> {
    let plus_as_space = encoded.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|key| key.into_owned())
}

impl BucketEvents {
    pub fn new(db: Database, bucket: impl Into<String>, rules: Vec<Notified>) -> Self {
        BucketEvents {
            db,
            bucket: bucket.into(),
            rules,
        }
    }

    /// The rules (with their queues) that match a PUT of `key`.
    pub fn matching(&self, key: &str) -> impl Iterator<Item = &Notified> {
        let encoded = encoded_key(key);
        self.rules.iter().filter(move |n| {
            n.rule
                .matches(&format!("s3:{OBJECT_CREATED_PUT}"), &encoded)
        })
    }

    /// The event S3 sends for a PUT of `key` (`size` bytes, `etag` the MD5 in hex).
    pub fn record(
        &self,
        rule: &NotificationRule,
        key: &str,
        size: u64,
        etag: &str,
    ) -> S3EventRecord {
        let mut bucket = S3Bucket::default();
        bucket.name = Some(self.bucket.clone());
        bucket.arn = Some(format!("arn:aws:s3:::{}", self.bucket));
        let mut owner = S3UserIdentity::default();
        owner.principal_id = Some("local".into());
        bucket.owner_identity = Some(owner.clone());
        let mut object = S3Object::default();
        object.key = Some(encoded_key(key));
        object.size = Some(size as i64);
        object.e_tag = Some(etag.to_owned());
        // Orders the events of one key, as S3's sequencer does: hex, growing.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        object.sequencer = Some(format!("{nanos:024X}"));
        let mut entity = S3Entity::default();
        entity.schema_version = Some("1.0".into());
        entity.configuration_id = Some(rule.name.clone());
        entity.bucket = bucket;
        entity.object = object;
        let mut params = S3RequestParameters::default();
        params.source_ip_address = Some("127.0.0.1".into());
        let mut record = S3EventRecord::default();
        record.event_version = Some("2.1".into());
        record.event_source = Some("aws:s3".into());
        record.aws_region = Some("local".into());
        record.event_time = chrono::Utc::now();
        record.event_name = Some(OBJECT_CREATED_PUT.into());
        record.principal_id = owner;
        record.request_parameters = params;
        record.s3 = entity;
        record
    }

    /// Queues the events of a PUT of `key` for every function whose rules match, held back
    /// until [`BucketEvents::released`]: call it before the object is put in place, and release
    /// the events after. A crash between the two leaves held events, which
    /// [`BucketEvents::recover`] releases (object there) or drops (object not there) at the next
    /// start: never an object without its event, never an event before its object.
    pub async fn object_created(&self, key: &str, size: u64, etag: &str) -> anyhow::Result<Held> {
        let mut ids = Vec::new();
        for notified in self.matching(key) {
            let record = serde_json::to_value(self.record(&notified.rule, key, size, etag))?;
            ids.extend(self.db.enqueue(&notified.queue, vec![record], true).await?);
        }
        Ok(Held(ids))
    }

    /// The object is in place: its events are due.
    pub async fn released(&self, held: Held) -> anyhow::Result<usize> {
        let n = held.0.len();
        if n > 0 {
            self.db.release(held.0).await?;
        }
        Ok(n)
    }

    /// The object's write lost (another PUT put its object in place first): its events are
    /// forgotten, never delivered.
    pub async fn withdrawn(&self, held: Held) -> anyhow::Result<()> {
        for id in held.0 {
            self.db.drop_held(id).await?;
        }
        Ok(())
    }

    /// Releases the events held for longer than `held_for` whose objects are there, and drops
    /// the others (their writes never finished).
    pub async fn recover(
        &self,
        store: &dyn state::ObjectStore,
        held_for: std::time::Duration,
    ) -> anyhow::Result<Recovered> {
        let mut recovered = Recovered::default();
        let before = state::now_ms() - held_for.as_millis() as i64;
        for (id, record) in self.db.held(before).await? {
            let key = record["s3"]["object"]["key"]
                .as_str()
                .and_then(decoded_key)
                .unwrap_or_default();
            match store.head(&key).await {
                Ok(_) => {
                    self.db.release(vec![id]).await?;
                    recovered.released += 1;
                }
                Err(state::StateError::ObjectMissing(_)) => {
                    self.db.drop_held(id).await?;
                    recovered.dropped += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(recovered)
    }
}

/// Events queued for an object not yet in place.
#[must_use = "release the events once the object is in place"]
pub struct Held(Vec<i64>);

impl Held {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_as_s3_encodes_them_and_decoded_back() {
        for key in [
            "ingest/red flower.jpg",
            "ingest/a+b=c&d.png",
            "ingest/été/ü.JPG",
        ] {
            let encoded = encoded_key(key);
            assert!(!encoded.contains(' '), "{encoded}");
            assert_eq!(decoded_key(&encoded).as_deref(), Some(key));
        }
        assert_eq!(
            encoded_key("ingest/red flower.jpg"),
            "ingest/red+flower.jpg"
        );
        assert_eq!(
            decoded_key("ingest%2Fred+flower.jpg").as_deref(),
            Some("ingest/red flower.jpg")
        );
    }
}
