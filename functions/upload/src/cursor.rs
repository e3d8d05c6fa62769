//! Page cursors: opaque to clients, checked by us. A cursor holds where the last page ended and
//! which query it belongs to, signed (HMAC-SHA256, truncated to 16 bytes) with a key only the
//! API has, so a malformed, tampered or foreign cursor is refused rather than followed.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use state::{ImageId, Position, Selection, Status};

const VERSION: u8 = 1;
const TAG: usize = 16;
const BODY: usize = 1 + 1 + 8 + 16;

/// Why a cursor is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("cursor is not one this API gave out (malformed or altered)")]
    Invalid,
    #[error("cursor belongs to another query: pass the same status filter it came with")]
    OtherQuery,
}

/// The key cursors are signed with: 16 bytes or more.
#[derive(Clone)]
pub struct CursorKey(Vec<u8>);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)") // never the key itself, in logs or panics
    }
}

impl CursorKey {
    pub fn new(key: impl Into<Vec<u8>>) -> Option<CursorKey> {
        let key = key.into();
        (key.len() >= 16).then_some(CursorKey(key))
    }

    fn mac(&self, body: &[u8]) -> [u8; TAG] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("any key length");
        mac.update(body);
        let full = mac.finalize().into_bytes();
        let mut tag = [0; TAG];
        tag.copy_from_slice(&full[..TAG]);
        tag
    }

    pub fn encode(&self, selection: Selection, at: Position) -> String {
        let mut bytes = Vec::with_capacity(BODY + TAG);
        bytes.push(VERSION);
        bytes.push(selection_code(selection));
        bytes.extend_from_slice(&at.created_at.to_be_bytes());
        bytes.extend_from_slice(at.id.as_bytes());
        let tag = self.mac(&bytes);
        bytes.extend_from_slice(&tag);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The position `cursor` holds, if this key signed it for `selection`.
    pub fn decode(&self, cursor: &str, selection: Selection) -> Result<Position, CursorError> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| CursorError::Invalid)?;
        if bytes.len() != BODY + TAG || bytes[0] != VERSION {
            return Err(CursorError::Invalid);
        }
        let (body, tag) = bytes.split_at(BODY);
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("any key length");
        mac.update(body);
        mac.verify_truncated_left(tag)
            .map_err(|_| CursorError::Invalid)?;
        if body[1] != selection_code(selection) {
            return Err(CursorError::OtherQuery);
        }
        let created_at = i64::from_be_bytes(body[2..10].try_into().expect("8 bytes"));
        let id = ImageId::from_bytes(body[10..26].try_into().expect("16 bytes"));
        Ok(Position { created_at, id })
    }
}

fn selection_code(selection: Selection) -> u8 {
    match selection {
        Selection::All => 0,
        Selection::Stalled => 1,
        Selection::Status(s) => 2 + Status::ALL.iter().position(|x| *x == s).unwrap_or(0) as u8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CursorKey {
        CursorKey::new(*b"0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn a_cursor_round_trips_only_for_its_own_query_and_key() {
        let at = Position {
            created_at: 1_795_272_241_389,
            id: ImageId::generate(),
        };
        let processed = Selection::Status(Status::Processed);
        let c = key().encode(processed, at);
        assert_eq!(key().decode(&c, processed), Ok(at));
        assert_eq!(
            key().decode(&c, Selection::All),
            Err(CursorError::OtherQuery)
        );
        let other = CursorKey::new(*b"another key, sixteen bytes or so").unwrap();
        assert_eq!(other.decode(&c, processed), Err(CursorError::Invalid));
    }

    #[test]
    fn altered_or_malformed_cursors_are_refused() {
        let at = Position {
            created_at: 5,
            id: ImageId::generate(),
        };
        let c = key().encode(Selection::All, at);
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&c)
            .unwrap();
        bytes[5] ^= 1; // move the position
        let altered = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
        for bad in [altered.as_str(), "", "!!!", &c[..c.len() - 2], "AAAA"] {
            assert_eq!(
                key().decode(bad, Selection::All),
                Err(CursorError::Invalid),
                "{bad}"
            );
        }
    }
}
