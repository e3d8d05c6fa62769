//! The engine's SNS signing key and certificate, and the messages it signs with them.
//!
//! An RSA 2048 key and a self-signed X.509 certificate for it are made at the first start that
//! has an HTTP/S subscription and kept in `DATA_DIR/sns/` (the key readable by its owner only), so
//! a receiver that pinned the certificate keeps it across restarts. The engine serves the
//! certificate at [`Signer::cert_path`], the envelopes' `SigningCertURL`.
//!
//! Messages are signed as SNS's `SignatureVersion` 2: RSASSA-PKCS1-v1_5 with SHA-256 over the
//! canonical string (each signed field's name and value, each followed by a newline, in byte
//! order of the names: `Message`, `MessageId`, `Subject` if present, `Timestamp`, `TopicArn`,
//! `Type` for a notification; `Message`, `MessageId`, `SubscribeURL`, `Timestamp`, `Token`,
//! `TopicArn`, `Type` for a subscription confirmation).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use base64::Engine as _;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer as _};
use sha2::{Digest, Sha256};
use x509_cert::builder::{profile, Builder, CertificateBuilder};
use x509_cert::der::{Decode, DecodePem, Encode, EncodePem};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;
use x509_cert::Certificate;

/// The certificate is valid this long from its making (SNS rotates its own; a local one is
/// replaced by deleting `DATA_DIR/sns/`).
const VALIDITY: std::time::Duration = std::time::Duration::from_secs(10 * 365 * 24 * 3600);

pub struct Signer {
    key: SigningKey<Sha256>,
    cert_pem: String,
    /// `SimpleNotificationService-<hash>.pem`, as SNS names its certificates.
    cert_file: String,
}

impl Signer {
    /// The key and certificate in `data_dir/sns/`, made there if missing.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Signer> {
        let dir = data_dir.join("sns");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let key_path = dir.join("signing-key.pem");
        let cert_path = dir.join("signing-cert.pem");
        let (key, cert_pem) = match (
            std::fs::read_to_string(&key_path),
            std::fs::read_to_string(&cert_path),
        ) {
            (Ok(key), Ok(cert)) => (
                rsa::PrivateKey::from_pkcs8_pem(&key)
                    .with_context(|| format!("reading {}", key_path.display()))?,
                cert,
            ),
            _ => {
                tracing::info!(dir = %dir.display(), "making the SNS signing key and certificate");
                let key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048)
                    .context("making the signing key")?;
                let cert = self_signed(&key)?;
                let pem = key
                    .to_pkcs8_pem(LineEnding::LF)
                    .context("encoding the signing key")?;
                write_new(&key_path, pem.as_bytes(), true)?;
                write_new(&cert_path, cert.as_bytes(), false)?;
                (key, cert)
            }
        };
        let der = Certificate::from_pem(cert_pem.as_bytes())
            .with_context(|| format!("reading {}", cert_path.display()))?
            .to_der()
            .context("encoding the certificate")?;
        let hash: String = Sha256::digest(&der)[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Signer {
            key: SigningKey::<Sha256>::new(key),
            cert_pem,
            cert_file: format!("SimpleNotificationService-{hash}.pem"),
        })
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Where the engine serves the certificate: `/sns/SimpleNotificationService-<hash>.pem`.
    pub fn cert_path(&self) -> String {
        format!("/sns/{}", self.cert_file)
    }

    /// The base64 `Signature` of `canonical`.
    pub fn sign(&self, canonical: &str) -> String {
        let signature = self.key.sign(canonical.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(signature.to_bytes())
    }
}

/// A self-signed certificate for `key`, PEM.
fn self_signed(key: &rsa::PrivateKey) -> anyhow::Result<String> {
    let public = key
        .to_public_key()
        .to_public_key_der()
        .context("encoding the public key")?;
    let spki =
        SubjectPublicKeyInfoOwned::from_der(public.as_bytes()).context("reading the public key")?;
    let subject = Name::from_str("CN=sns.local,O=Local engine SNS signing,C=ZZ")
        .context("the certificate's name")?;
    let profile = profile::cabf::Root::new(false, subject).context("the certificate profile")?;
    let serial = SerialNumber::generate(&mut rsa::rand_core::UnwrapErr(getrandom::SysRng));
    let validity = Validity::from_now(VALIDITY).context("the certificate's validity")?;
    let signer = SigningKey::<Sha256>::new(key.clone());
    let cert = CertificateBuilder::new(profile, serial, validity, spki)
        .context("building the certificate")?
        .build::<_, rsa::pkcs1v15::Signature>(&signer)
        .context("signing the certificate")?;
    cert.to_pem(x509_cert::der::pem::LineEnding::LF)
        .context("encoding the certificate")
}

/// Writes `bytes` to `path` whole (renamed into place), readable by the owner only if `private`.
fn write_new(path: &PathBuf, bytes: &[u8], private: bool) -> anyhow::Result<()> {
    let dir = path.parent().context("a file in a folder")?;
    let mut tmp = tempfile::Builder::new()
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("writing {}", path.display()))?;
    if !private {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// An SNS timestamp: ISO 8601 in UTC with milliseconds (`2012-05-02T00:54:06.655Z`).
pub fn timestamp(epoch_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(epoch_ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// One message's signed fields, by name; `None` leaves a field out.
pub struct Signed<'a> {
    pub kind: &'a str,
    pub message_id: &'a str,
    pub topic_arn: &'a str,
    pub message: &'a str,
    pub timestamp: &'a str,
    pub subject: Option<&'a str>,
    pub subscribe_url: Option<&'a str>,
    pub token: Option<&'a str>,
}

impl Signed<'_> {
    /// SNS's string to sign: name, newline, value, newline, for each field present, in byte order
    /// of the names.
    pub fn canonical(&self) -> String {
        let fields = [
            ("Message", Some(self.message)),
            ("MessageId", Some(self.message_id)),
            ("Subject", self.subject),
            ("SubscribeURL", self.subscribe_url),
            ("Timestamp", Some(self.timestamp)),
            ("Token", self.token),
            ("TopicArn", Some(self.topic_arn)),
            ("Type", Some(self.kind)),
        ];
        let mut out = String::new();
        for (name, value) in fields {
            if let Some(value) = value {
                out.push_str(name);
                out.push('\n');
                out.push_str(value);
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of SNS's documentation ("Verifying the signatures of Amazon SNS messages").
    #[test]
    fn canonical_string_is_the_documented_one() {
        let signed = Signed {
            kind: "Notification",
            message_id: "4d4dc071-ddbf-465d-bba8-08f81c89da64",
            topic_arn: "arn:aws:sns:us-east-2:123456789012:s4-MySNSTopic-1G1WEFCOXTC0P",
            message: "My Test Message",
            timestamp: "2012-06-05T04:37:04.321Z",
            subject: Some("My subject"),
            subscribe_url: None,
            token: None,
        };
        assert_eq!(
            signed.canonical(),
            "Message\nMy Test Message\nMessageId\n4d4dc071-ddbf-465d-bba8-08f81c89da64\n\
             Subject\nMy subject\nTimestamp\n2012-06-05T04:37:04.321Z\n\
             TopicArn\narn:aws:sns:us-east-2:123456789012:s4-MySNSTopic-1G1WEFCOXTC0P\n\
             Type\nNotification\n"
        );
    }

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        assert_eq!(timestamp(1_338_870_224_321), "2012-06-05T04:23:44.321Z");
    }
}
