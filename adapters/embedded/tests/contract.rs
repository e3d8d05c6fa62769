//! The contract suite on the embedded adapters: SQLite for the table, files for the bucket, the
//! mailbox for the topic.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use embedded_adapters::files::FileStore;
use embedded_adapters::mailbox::Mailbox;
use embedded_adapters::sqlite::{Database, SqliteTable};
use state::contract::{Received, Subscriber};
use state::{
    ImageId, Item, ItemTable, Notifier, ObjectInfo, ObjectStore, Outcome, Page, Query,
    SignedUpload, Stall, StateError, Status, Transition,
};
use tempfile::TempDir;

/// An adapter with the folder it keeps its files in, removed when the adapter is dropped (at the
/// end of its test), so the suite leaves nothing behind in the temp directory.
struct InFolder<T> {
    adapter: T,
    _folder: TempDir,
}

#[async_trait]
impl<T: ItemTable> ItemTable for InFolder<T> {
    async fn insert(&self, item: &Item) -> Result<(), StateError> {
        self.adapter.insert(item).await
    }
    async fn get(&self, id: ImageId) -> Result<Option<Item>, StateError> {
        self.adapter.get(id).await
    }
    async fn query(&self, q: &Query) -> Result<Page, StateError> {
        self.adapter.query(q).await
    }
    async fn advance(&self, id: ImageId, t: &Transition) -> Result<Outcome, StateError> {
        self.adapter.advance(id, t).await
    }
    async fn mark_stalled(
        &self,
        id: ImageId,
        status: Status,
        stall: &Stall,
    ) -> Result<bool, StateError> {
        self.adapter.mark_stalled(id, status, stall).await
    }
    async fn clear_stalled(&self, id: ImageId) -> Result<bool, StateError> {
        self.adapter.clear_stalled(id).await
    }
    async fn count_pending(&self, created_after: i64, at_most: usize) -> Result<usize, StateError> {
        self.adapter.count_pending(created_after, at_most).await
    }
}

#[async_trait]
impl<T: ObjectStore> ObjectStore for InFolder<T> {
    fn bucket(&self) -> &str {
        self.adapter.bucket()
    }
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), StateError> {
        self.adapter.put(key, body, content_type).await
    }
    async fn get(&self, key: &str) -> Result<Bytes, StateError> {
        self.adapter.get(key).await
    }
    async fn link(&self, key: &str) -> Result<String, StateError> {
        self.adapter.link(key).await
    }
    async fn head(&self, key: &str) -> Result<ObjectInfo, StateError> {
        self.adapter.head(key).await
    }
    async fn get_prefix(&self, key: &str, len: usize) -> Result<Bytes, StateError> {
        self.adapter.get_prefix(key, len).await
    }
    async fn signed_upload(
        &self,
        key: &str,
        size: u64,
        content_type: &str,
        valid_for: Duration,
    ) -> Result<SignedUpload, StateError> {
        self.adapter
            .signed_upload(key, size, content_type, valid_for)
            .await
    }
}

async fn table() -> Arc<dyn ItemTable> {
    let folder = tempfile::tempdir().unwrap();
    let db = Database::open(&folder.path().join("pipeline.db")).unwrap();
    Arc::new(InFolder {
        adapter: SqliteTable::new(db),
        _folder: folder,
    })
}

async fn store() -> Arc<dyn ObjectStore> {
    let folder = tempfile::tempdir().unwrap();
    let signer = embedded_adapters::signed::UploadSigner::new(b"the contract suite's test secret");
    let files = FileStore::new(&folder.path().join("objects"), "images", false).with_signer(signer);
    Arc::new(InFolder {
        adapter: files,
        _folder: folder,
    })
}

state::table_contract!(table, 128);
state::store_contract!(store);

struct MailFolder {
    mailbox: Arc<Mailbox>,
    _folder: TempDir,
    seen: std::sync::Mutex<usize>,
}

#[async_trait::async_trait]
impl Subscriber for MailFolder {
    fn notifier(&self) -> Arc<dyn Notifier> {
        self.mailbox.clone()
    }

    async fn received(&self) -> Vec<Received> {
        let mut files: Vec<_> = std::fs::read_dir(self.mailbox.dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        let mut seen = self.seen.lock().unwrap();
        let all: Vec<Received> = files
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).unwrap();
                let subject = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Subject: "))
                    .unwrap()
                    .to_owned();
                let body = text.split_once("\r\n\r\n").unwrap().1.replace("\r\n", "\n");
                // A mail folder has only the email's form.
                Received {
                    subject,
                    body,
                    document: None,
                }
            })
            .collect();
        let fresh = all[*seen..].to_vec();
        *seen = all.len();
        fresh
    }
}

async fn mail_folder() -> Arc<dyn Subscriber> {
    let folder = tempfile::tempdir().unwrap();
    let d = folder.path();
    let db = Database::open(&d.join("pipeline.db")).unwrap();
    let mailbox = Mailbox::new(db, d.join("mail"), "you@example.com", false).unwrap();
    Arc::new(MailFolder {
        mailbox: Arc::new(mailbox),
        seen: std::sync::Mutex::new(0),
        _folder: folder,
    })
}

#[test]
fn the_mailbox_delivers_what_is_published() {
    state::contract::run_notifier(mail_folder);
}

#[tokio::test]
async fn the_mailbox_writes_one_mail_per_dedup_key() {
    let folder = tempfile::tempdir().unwrap();
    let d = folder.path();
    let db = Database::open(&d.join("pipeline.db")).unwrap();
    let mailbox = Mailbox::new(db, d.join("mail"), "you@example.com", false).unwrap();
    let notice = state::Notice {
        dedup_key: "x/notified".into(),
        subject: "s".into(),
        body: "b".into(),
        document: "{}".into(),
    };
    let first = mailbox.publish(&notice).await.unwrap();
    let again = mailbox.publish(&notice).await.unwrap();
    assert_eq!(first, again, "a repeat publish is the same message");
    assert_eq!(std::fs::read_dir(d.join("mail")).unwrap().count(), 1);
}
