//! In-memory table, bucket and secrets, with the same semantics as the real stores, for handler unit
//! tests. The embedded engine uses SQLite and files, never these.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::transition::Outcome;
use crate::{ImageId, Item, ItemTable, Page, Query, Stall, StateError, Status, Transition};

#[derive(Debug, Default)]
pub struct MemoryTable {
    items: Mutex<HashMap<ImageId, Item>>,
}

#[async_trait]
impl ItemTable for MemoryTable {
    async fn insert(&self, item: &Item) -> Result<(), StateError> {
        let mut items = self.items.lock().expect("table lock");
        if items.contains_key(&item.id) {
            return Err(StateError::Duplicate(item.id));
        }
        items.insert(item.id, item.clone());
        Ok(())
    }

    async fn get(&self, id: ImageId) -> Result<Option<Item>, StateError> {
        Ok(self.items.lock().expect("table lock").get(&id).cloned())
    }

    async fn count_pending(&self, created_after: i64, at_most: usize) -> Result<usize, StateError> {
        let items = self.items.lock().expect("table lock");
        let n = items
            .values()
            .filter(|i| i.status == Status::Pending && i.created_at > created_after)
            .count();
        Ok(n.min(at_most))
    }

    async fn query(&self, q: &Query) -> Result<Page, StateError> {
        let all: Vec<Item> = self
            .items
            .lock()
            .expect("table lock")
            .values()
            .cloned()
            .collect();
        Ok(crate::query::page_of(all, q))
    }

    async fn advance(&self, id: ImageId, t: &Transition) -> Result<Outcome, StateError> {
        let mut items = self.items.lock().expect("table lock");
        match items.get(&id) {
            Some(current) if current.status == t.from() => {
                let next = t.apply_to(current);
                items.insert(id, next.clone());
                Ok(Outcome::Applied(next))
            }
            current => t.classify(id, current.cloned()),
        }
    }

    async fn mark_stalled(
        &self,
        id: ImageId,
        status: Status,
        stall: &Stall,
    ) -> Result<bool, StateError> {
        let mut items = self.items.lock().expect("table lock");
        match items.get(&id) {
            Some(current) if current.status == status => {
                let next = current.with_stall(Some(stall));
                items.insert(id, next);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn clear_stalled(&self, id: ImageId) -> Result<bool, StateError> {
        let mut items = self.items.lock().expect("table lock");
        match items.get(&id) {
            Some(current) if current.stalled_at.is_some() => {
                let next = current.with_stall(None);
                items.insert(id, next);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// An in-memory bucket, for handler unit tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<HashMap<String, (bytes::Bytes, String)>>,
}

impl MemoryStore {
    /// The object's bytes and content type.
    pub fn object(&self, key: &str) -> Option<(bytes::Bytes, String)> {
        self.objects.lock().expect("store lock").get(key).cloned()
    }

    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .objects
            .lock()
            .expect("store lock")
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    }
}

#[async_trait]
impl crate::ObjectStore for MemoryStore {
    fn bucket(&self) -> &str {
        "memory"
    }

    async fn put(
        &self,
        key: &str,
        body: bytes::Bytes,
        content_type: &str,
    ) -> Result<(), StateError> {
        self.objects
            .lock()
            .expect("store lock")
            .insert(key.to_owned(), (body, content_type.to_owned()));
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<bytes::Bytes, StateError> {
        self.object(key)
            .map(|(b, _)| b)
            .ok_or_else(|| StateError::ObjectMissing(key.to_owned()))
    }

    async fn link(&self, key: &str) -> Result<String, StateError> {
        Ok(format!("memory:///{key}"))
    }

    async fn head(&self, key: &str) -> Result<crate::ObjectInfo, StateError> {
        let (bytes, _) = self
            .object(key)
            .ok_or_else(|| StateError::ObjectMissing(key.to_owned()))?;
        Ok(crate::ObjectInfo {
            size: bytes.len() as u64,
        })
    }

    async fn get_prefix(&self, key: &str, len: usize) -> Result<bytes::Bytes, StateError> {
        let bytes = crate::ObjectStore::get(self, key).await?;
        Ok(bytes.slice(..len.min(bytes.len())))
    }

    async fn signed_upload(
        &self,
        key: &str,
        size: u64,
        content_type: &str,
        valid_for: std::time::Duration,
    ) -> Result<crate::SignedUpload, StateError> {
        Ok(crate::SignedUpload {
            url: format!("memory:///{key}?size={size}"),
            method: "PUT",
            headers: [("Content-Type".to_owned(), content_type.to_owned())].into(),
            expires_at: crate::now_ms() + valid_for.as_millis() as i64,
        })
    }
}

/// Secrets held in memory, by name, for handler unit tests.
#[derive(Debug, Default)]
pub struct MemorySecrets {
    values: HashMap<String, String>,
}

impl MemorySecrets {
    /// With `id` holding `value`.
    pub fn with(mut self, id: &str, value: &str) -> Self {
        self.values.insert(id.to_owned(), value.to_owned());
        self
    }
}

#[async_trait]
impl crate::Secrets for MemorySecrets {
    async fn string(&self, id: &str) -> Result<String, crate::ResourceError> {
        self.values
            .get(id)
            .cloned()
            .ok_or_else(|| crate::ResourceError::Missing {
                kind: "secret",
                name: id.to_owned(),
                have: format!("{} secrets in memory", self.values.len()),
            })
    }
}
