//! The SNS topic with an email subscription, on one machine: every publish is kept in the
//! database, and the subscription gets one RFC 5322 message in `DATA_DIR/mail/<message-id>.eml`.
//!
//! Publishing is idempotent on the notice's dedup key: the first publish records a message id, a
//! repeat (a retry after a crash) finds it and writes no second mail. The `.eml` is renamed into
//! place whole, so a crash leaves either no mail or one complete mail.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use async_trait::async_trait;
use lettre::message::{header::ContentType, Mailbox as Address, Message};
use state::{Notice, Notifier, StateError};

use crate::in_place;
use crate::sqlite::Database;

#[derive(Clone)]
pub struct Mailbox {
    db: Database,
    dir: PathBuf,
    from: Address,
    to: Address,
    fsync: bool,
}

impl Mailbox {
    /// `fsync`: sync each mail before it is renamed into place (power-cut durability).
    pub fn new(db: Database, dir: PathBuf, to: &str, fsync: bool) -> anyhow::Result<Mailbox> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Mailbox {
            db,
            dir,
            from: "Image uploads <no-reply@sns.local>"
                .parse()
                .expect("a valid sender"),
            to: to
                .parse()
                .with_context(|| format!("{to:?} is not an email address"))?,
            fsync,
        })
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    fn render(&self, message_id: &str, notice: &Notice) -> anyhow::Result<Vec<u8>> {
        let mail = Message::builder()
            .from(self.from.clone())
            .to(self.to.clone())
            .subject(&notice.subject)
            .message_id(Some(format!("<{message_id}@sns.local>")))
            .header(ContentType::TEXT_PLAIN)
            .body(notice.body.clone())
            .context("building the mail")?;
        Ok(mail.formatted())
    }
}

impl Mailbox {
    /// Writes the mail of the notice published as `message_id`, unless it is there already (a
    /// repeat of the publish after a crash).
    pub async fn deliver(&self, message_id: &str, notice: &Notice) -> Result<(), StateError> {
        let path = self.dir.join(format!("{message_id}.eml"));
        let mail = self
            .render(message_id, notice)
            .map_err(StateError::Unavailable)?;
        let dir = self.dir.clone();
        let fsync = self.fsync;
        in_place::run(!fsync, move || -> anyhow::Result<()> {
            if path.exists() {
                return Ok(()); // delivered before this retry
            }
            let mut tmp = tempfile::Builder::new().suffix(".tmp").tempfile_in(&dir)?;
            tmp.write_all(&mail)?;
            if fsync {
                tmp.as_file().sync_all()?;
            }
            if let Err(e) = tmp.persist_noclobber(&path) {
                // Lost a race with another delivery of the same notice: that one stands.
                if !path.exists() {
                    return Err(e.error.into());
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| StateError::Unavailable(e.context("delivering the mail")))
    }
}

#[async_trait]
impl Notifier for Mailbox {
    async fn publish(&self, notice: &Notice) -> Result<String, StateError> {
        let message_id = self
            .db
            .record_notice(
                notice.dedup_key.clone(),
                uuid::Uuid::new_v4().to_string(),
                notice.subject.clone(),
                notice.body.clone(),
            )
            .await
            .map_err(StateError::Unavailable)?;
        self.deliver(&message_id, notice).await?;
        Ok(message_id)
    }
}
