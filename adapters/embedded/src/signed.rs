//! The local bucket's signed PUT URLs, the twin of S3 presigned PUTs: an HMAC-SHA256 (RustCrypto
//! `hmac`) over the method, key, length, content type and expiry, with the data dir's own secret.
//! The engine gives them out (`POST /uploads`) and checks them when the PUT comes.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// What a signed PUT allows: exactly this many bytes of this type, to this key, until then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadGrant {
    pub key: String,
    pub size: u64,
    pub content_type: String,
    /// Epoch ms.
    pub expires_at: i64,
}

/// Why a signed PUT is refused; each is a `403` as S3 gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("SignatureDoesNotMatch: the request signature we calculated does not match the signature you provided")]
    DoesNotMatch,
    #[error("AccessDenied: request has expired")]
    Expired,
    #[error(
        "AccessDenied: the URL is not signed (size, type, expires and signature are all needed)"
    )]
    Missing,
}

/// Signs and checks upload grants with one secret.
#[derive(Clone)]
pub struct UploadSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for UploadSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UploadSigner(..)")
    }
}

impl UploadSigner {
    pub fn new(secret: &[u8]) -> UploadSigner {
        UploadSigner {
            key: secret.to_vec(),
        }
    }

    fn mac(&self, grant: &UploadGrant) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("any key length");
        // One field per line: no field can run into the next.
        let text = format!(
            "PUT\n{}\n{}\n{}\n{}",
            grant.key, grant.size, grant.content_type, grant.expires_at
        );
        mac.update(text.as_bytes());
        mac
    }

    /// The signature of `grant`, in hex.
    pub fn sign(&self, grant: &UploadGrant) -> String {
        let tag = self.mac(grant).finalize().into_bytes();
        tag.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Checks `signature` (hex) for `grant` at `now_ms`, in constant time.
    pub fn verify(
        &self,
        grant: &UploadGrant,
        signature: &str,
        now_ms: i64,
    ) -> Result<(), SignatureError> {
        let bytes = decode_hex(signature).ok_or(SignatureError::DoesNotMatch)?;
        self.mac(grant)
            .verify_slice(&bytes)
            .map_err(|_| SignatureError::DoesNotMatch)?;
        if now_ms > grant.expires_at {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> UploadGrant {
        UploadGrant {
            key: "incoming/0b8ef5a4-0000-4000-8000-00000000000a".into(),
            size: 1234,
            content_type: "image/jpeg".into(),
            expires_at: 2_000,
        }
    }

    #[test]
    fn a_signature_holds_for_its_grant_until_it_expires() {
        let signer = UploadSigner::new(b"a secret of the data dir........");
        let sig = signer.sign(&grant());
        assert_eq!(signer.verify(&grant(), &sig, 1_999), Ok(()));
        assert_eq!(
            signer.verify(&grant(), &sig, 2_001),
            Err(SignatureError::Expired)
        );
        for changed in [
            UploadGrant {
                size: 1235,
                ..grant()
            },
            UploadGrant {
                content_type: "image/png".into(),
                ..grant()
            },
            UploadGrant {
                key: "incoming/other".into(),
                ..grant()
            },
            UploadGrant {
                expires_at: 9_999_999,
                ..grant()
            },
        ] {
            assert_eq!(
                signer.verify(&changed, &sig, 1_000),
                Err(SignatureError::DoesNotMatch),
                "{changed:?}"
            );
        }
        let other = UploadSigner::new(b"another data dir's secret.......");
        assert_eq!(
            other.verify(&grant(), &sig, 1_000),
            Err(SignatureError::DoesNotMatch)
        );
        assert_eq!(
            signer.verify(&grant(), "zz", 1_000),
            Err(SignatureError::DoesNotMatch)
        );
    }
}
