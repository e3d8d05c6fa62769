use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An item's key: a server-generated UUID, never anything a client chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ImageId(Uuid);

impl ImageId {
    pub fn generate() -> Self {
        Self(Uuid::new_v4())
    }

    /// The id of the object `name` names (e.g. `s3://bucket/key#etag`): the same name always
    /// gives the same id (UUIDv5), so a duplicated event makes one item, not two.
    pub fn derived(name: &str) -> Self {
        /// This pipeline's namespace for derived ids (a random UUID, fixed forever).
        const NAMESPACE: Uuid = Uuid::from_u128(0x6e1c_0c3c_8a8b_4f7e_9f2e_5b1d_3c7a_9e41);
        Self(Uuid::new_v5(&NAMESPACE, name.as_bytes()))
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(bytes))
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for ImageId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(s).map(Self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Reserved for a direct upload whose object has not arrived yet.
    Pending,
    Uploaded,
    Processed,
    Notified,
    Failed,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Uploaded,
        Status::Processed,
        Status::Notified,
        Status::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Uploaded => "uploaded",
            Status::Processed => "processed",
            Status::Notified => "notified",
            Status::Failed => "failed",
        }
    }

    /// Position on the happy path; `failed` is off it.
    pub(crate) fn rank(self) -> Option<u8> {
        match self {
            Status::Pending => Some(0),
            Status::Uploaded => Some(1),
            Status::Processed => Some(2),
            Status::Notified => Some(3),
            Status::Failed => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown status {s:?}"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub status: Status,
    pub at: i64,
}

/// One uploaded image, as stored in the table (docs/data-model.md, "The item").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: ImageId,
    pub status: Status,
    pub bucket_name: String,
    pub object_key: String,
    pub content_type: String,
    pub size: u64,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renditions: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exif: Option<BTreeMap<String, String>>,
    /// A ThumbHash of the image (base64, about 30 characters), to paint while a rendition loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    /// For an animated image: how many frames, and one loop's length in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Broken ancillary parts processing skipped (a profile, EXIF), a short sentence each: the
    /// renditions were made without them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notified_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// When a function gave up on this item's records (its dead letters, or the failure queue on
    /// AWS). Set with `stalled_by` and `stalled_reason`; cleared by the item's next transition or
    /// by a redrive. Only the item's functions' failure consumers write it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled_at: Option<i64>,
    /// A reservation's expiry (epoch seconds): DynamoDB's TTL attribute, so an unused reservation
    /// is deleted. Removed when the object arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    /// The function that gave up (`process`, `notice`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled_by: Option<String>,
    /// Why, as the mapping said it (retries exhausted, record too old, the function's error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled_reason: Option<String>,
}

/// A function gave up on an item: when, which function, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    pub at: i64,
    pub function: String,
    pub reason: String,
}

impl Stall {
    /// The longest reason kept on an item: failure messages can be long, items must stay small.
    pub const MAX_REASON_CHARS: usize = 500;

    pub fn new(function: impl Into<String>, reason: impl AsRef<str>, at: i64) -> Stall {
        let reason: String = reason
            .as_ref()
            .chars()
            .take(Self::MAX_REASON_CHARS)
            .collect();
        Stall {
            at,
            function: function.into(),
            reason,
        }
    }
}

/// What the upload function knows when it accepts an image.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub id: ImageId,
    pub bucket_name: String,
    pub object_key: String,
    pub content_type: String,
    pub size: u64,
}

impl Item {
    /// An item whose image is here: it starts `uploaded`, with that first step in its history.
    pub fn uploaded(new: NewUpload, at: i64) -> Item {
        Item::new(new, Status::Uploaded, at)
    }

    /// A reservation for a direct upload: `pending` until its object arrives, deleted by TTL after
    /// `expires_at_s` (epoch seconds) if it never does. `new` says what the client declared.
    pub fn pending(new: NewUpload, at: i64, expires_at_s: i64) -> Item {
        let mut item = Item::new(new, Status::Pending, at);
        item.ttl = Some(expires_at_s);
        item
    }

    fn new(new: NewUpload, status: Status, at: i64) -> Item {
        Item {
            id: new.id,
            status,
            bucket_name: new.bucket_name,
            object_key: new.object_key,
            content_type: new.content_type,
            size: new.size,
            created_at: at,
            updated_at: at,
            width: None,
            height: None,
            format: None,
            renditions: None,
            exif: None,
            placeholder: None,
            frames: None,
            duration_ms: None,
            warnings: Vec::new(),
            message_id: None,
            notified_at: None,
            error: None,
            history: vec![HistoryEntry { status, at }],
            ttl: None,
            stalled_at: None,
            stalled_by: None,
            stalled_reason: None,
        }
    }

    /// The stall this item carries, if any.
    pub fn stall(&self) -> Option<Stall> {
        Some(Stall {
            at: self.stalled_at?,
            function: self.stalled_by.clone().unwrap_or_default(),
            reason: self.stalled_reason.clone().unwrap_or_default(),
        })
    }

    /// This item with `stall` set (or cleared, with `None`).
    pub fn with_stall(&self, stall: Option<&Stall>) -> Item {
        let mut next = self.clone();
        next.stalled_at = stall.map(|s| s.at);
        next.stalled_by = stall.map(|s| s.function.clone());
        next.stalled_reason = stall.map(|s| s.reason.clone());
        next
    }

    /// Reads an item from a DynamoDB image: a stream record's NewImage/OldImage or an SDK item.
    pub fn from_image(image: impl Into<serde_dynamo::Item>) -> Result<Item, StateError> {
        let image: serde_dynamo::Item = image.into();
        let id = match image.get("id") {
            Some(serde_dynamo::AttributeValue::S(id)) => id.clone(),
            _ => "<no id>".to_owned(),
        };
        serde_dynamo::from_item(image).map_err(|e| StateError::Corrupt {
            id,
            reason: e.to_string(),
        })
    }

    /// The item as a DynamoDB image (an SDK item or a stream image).
    pub fn to_image<I: From<serde_dynamo::Item>>(&self) -> I {
        serde_dynamo::to_item(self).expect("an Item always serialises to a DynamoDB map")
    }
}

/// What processing learned about an image: the facts `uploaded -> processed` records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessedFacts {
    pub width: u32,
    pub height: u32,
    pub format: String,
    pub renditions: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exif: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    /// An animated image's frame count and loop length (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Milliseconds since the epoch, the unit of every timestamp in an item.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

use crate::StateError;
