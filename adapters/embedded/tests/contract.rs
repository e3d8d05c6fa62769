//! The contract suite on the embedded adapters: SQLite for the table, files for the bucket, the
//! mailbox for the topic.

use std::path::Path;
use std::sync::Arc;

use embedded_adapters::files::FileStore;
use embedded_adapters::mailbox::Mailbox;
use embedded_adapters::sqlite::{Database, SqliteTable};
use state::contract::{Received, Subscriber};
use state::{ItemTable, Notifier, ObjectStore};

/// Each test gets its own folder, kept for the life of the process (tests are short).
fn dir() -> &'static Path {
    Box::leak(Box::new(tempfile::tempdir().unwrap())).path()
}

async fn table() -> Arc<dyn ItemTable> {
    let db = Database::open(&dir().join("pipeline.db")).unwrap();
    Arc::new(SqliteTable::new(db))
}

async fn store() -> Arc<dyn ObjectStore> {
    let signer = embedded_adapters::signed::UploadSigner::new(b"the contract suite's test secret");
    Arc::new(FileStore::new(&dir().join("objects"), "images", false).with_signer(signer))
}

state::table_contract!(table, 128);
state::store_contract!(store);

struct MailFolder {
    mailbox: Arc<Mailbox>,
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
                Received { subject, body }
            })
            .collect();
        let fresh = all[*seen..].to_vec();
        *seen = all.len();
        fresh
    }
}

async fn mail_folder() -> Arc<dyn Subscriber> {
    let d = dir();
    let db = Database::open(&d.join("pipeline.db")).unwrap();
    let mailbox = Mailbox::new(db, d.join("mail"), "you@example.com", false).unwrap();
    Arc::new(MailFolder {
        mailbox: Arc::new(mailbox),
        seen: std::sync::Mutex::new(0),
    })
}

#[test]
fn the_mailbox_delivers_what_is_published() {
    state::contract::run_notifier(mail_folder);
}

#[tokio::test]
async fn the_mailbox_writes_one_mail_per_dedup_key() {
    let d = dir();
    let db = Database::open(&d.join("pipeline.db")).unwrap();
    let mailbox = Mailbox::new(db, d.join("mail"), "you@example.com", false).unwrap();
    let notice = state::Notice {
        dedup_key: "x/notified".into(),
        subject: "s".into(),
        body: "b".into(),
    };
    let first = mailbox.publish(&notice).await.unwrap();
    let again = mailbox.publish(&notice).await.unwrap();
    assert_eq!(first, again, "a repeat publish is the same message");
    assert_eq!(std::fs::read_dir(d.join("mail")).unwrap().count(), 1);
}
