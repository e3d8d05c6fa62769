use rusqlite::params;

use super::Database;

impl Database {
    /// The message id already published under `dedup_key`, or `fresh` recorded as it.
    pub async fn record_notice(
        &self,
        dedup_key: String,
        fresh: String,
        subject: String,
        body: String,
    ) -> anyhow::Result<String> {
        self.write(move |c| {
            c.prepare_cached(
                "INSERT OR IGNORE INTO notices (dedup_key, message_id, subject, body, published_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![dedup_key, fresh, subject, body, state::now_ms()])?;
            let id: String = c
                .prepare_cached("SELECT message_id FROM notices WHERE dedup_key = ?1")?
                .query_row([&dedup_key], |r| r.get(0))?;
            Ok(id)
        })
        .await
    }
}
