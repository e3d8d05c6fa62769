//! CloudFront signed URLs, held to URLs that botocore's `CloudFrontSigner` and the
//! `cloudfront_sign` crate made with the same key (tests/data/cloudfront/PROVENANCE.md), and the
//! links a CDN-fronted store gives: renditions at the distribution, everything else as before.

use std::time::Duration;

use aws_adapters::{expiry, CdnLinks, CloudFrontSigner};
use base64::Engine as _;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::Verifier;
use serde::Deserialize;
use sha1::Sha1;
use state::memory::MemoryStore;
use state::ObjectStore;

const PKCS1: &str = include_str!("data/cloudfront/cloudfront-sign-rs-test-key.pem");
const PKCS8: &str = include_str!("data/cloudfront/cloudfront-sign-rs-test-key.pkcs8.pem");
const VECTORS: &str = include_str!("data/cloudfront/vectors.jsonl");

#[derive(Deserialize)]
struct Vector {
    source: String,
    key: String,
    key_pair_id: String,
    url: String,
    expires: u64,
    policy: String,
    signed_url: String,
}

fn vectors() -> Vec<Vector> {
    VECTORS
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn signed_urls_match_botocore_and_cloudfront_sign_byte_for_byte() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 6);
    for v in &vectors {
        assert_eq!(v.key, "cloudfront-sign-rs-test-key.pem", "{}", v.source);
        assert_eq!(
            CloudFrontSigner::canned_policy(&v.url, v.expires),
            v.policy,
            "{}",
            v.source
        );
        let signer = CloudFrontSigner::from_pem(&v.key_pair_id, PKCS1).unwrap();
        assert_eq!(
            signer.sign(&v.url, v.expires),
            v.signed_url,
            "{}: {}",
            v.source,
            v.url
        );
    }
    // Both sources are there: two implementations, one answer.
    assert!(vectors.iter().any(|v| v.source.starts_with("botocore")));
    assert!(vectors
        .iter()
        .any(|v| v.source.starts_with("cloudfront_sign")));
}

#[test]
fn a_pkcs8_key_signs_as_its_pkcs1_form_does() {
    let v = &vectors()[1];
    let signer = CloudFrontSigner::from_pem(&v.key_pair_id, PKCS8).unwrap();
    assert_eq!(signer.sign(&v.url, v.expires), v.signed_url);
}

#[test]
fn a_key_that_is_not_an_rsa_pem_is_refused_saying_what_was_tried() {
    let err = CloudFrontSigner::from_pem(
        "K1",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("PKCS#8") && err.contains("PKCS#1"), "{err}");
    assert!(CloudFrontSigner::from_pem("K1", "").is_err());
}

#[test]
fn the_signer_never_shows_its_key() {
    let signer = CloudFrontSigner::from_pem("K2JCJMDEHXQW5F", PKCS1).unwrap();
    let shown = format!("{signer:?}");
    assert!(shown.contains("K2JCJMDEHXQW5F"), "{shown}");
    assert!(!shown.contains("MII") && shown.len() < 100, "{shown}");
}

/// The URL, expiry and signature of a signed link, the signature decoded.
fn parts(link: &str) -> (&str, u64, Vec<u8>, &str) {
    let (url, query) = link.split_once("?Expires=").unwrap();
    let (expires, rest) = query.split_once("&Signature=").unwrap();
    let (signature, key_pair_id) = rest.split_once("&Key-Pair-Id=").unwrap();
    let signature = signature
        .replace('-', "+")
        .replace('_', "=")
        .replace('~', "/");
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .unwrap();
    (url, expires.parse().unwrap(), signature, key_pair_id)
}

const DOMAIN: &str = "https://d111111abcdef8.cloudfront.net";
const ID: &str = "0b6a1c9e-3f52-4d7e-9a41-2c8f7d5e6b10";

fn signed_links() -> CdnLinks<MemoryStore> {
    CdnLinks::new(
        MemoryStore::default(),
        format!("{DOMAIN}/"),
        Some(CloudFrontSigner::from_pem("K2JCJMDEHXQW5F", PKCS1).unwrap()),
        Duration::from_secs(15 * 60),
    )
}

#[test]
fn a_signed_rendition_link_is_the_distributions_url_signed_for_that_url() {
    let links = signed_links();
    let now = 1_767_290_000;
    let link = links
        .rendition_link(&format!("processed/{ID}/thumbnail.jpg"), now)
        .unwrap();
    let (url, expires, signature, key_pair_id) = parts(&link);
    // The origin path is /processed: the key's prefix is not in the URL.
    assert_eq!(url, format!("{DOMAIN}/{ID}/thumbnail.jpg"));
    assert_eq!(key_pair_id, "K2JCJMDEHXQW5F");
    assert_eq!(expires, expiry(now, Duration::from_secs(900)));
    // What CloudFront does with it: the policy it rebuilds from the requested URL and Expires
    // verifies under the key group's public key.
    let public = rsa::PrivateKey::from_pkcs8_pem(PKCS8)
        .unwrap()
        .to_public_key();
    let verifier = VerifyingKey::<Sha1>::new(public);
    let policy = CloudFrontSigner::canned_policy(url, expires);
    let signature = Signature::try_from(signature.as_slice()).unwrap();
    verifier.verify(policy.as_bytes(), &signature).unwrap();
    // Another URL, or another expiry, does not.
    let other = CloudFrontSigner::canned_policy(&format!("{DOMAIN}/{ID}/avatar.png"), expires);
    assert!(verifier.verify(other.as_bytes(), &signature).is_err());
    let later = CloudFrontSigner::canned_policy(url, expires + 1);
    assert!(verifier.verify(later.as_bytes(), &signature).is_err());
}

#[test]
fn links_last_one_to_two_windows_and_are_the_same_url_within_a_window() {
    let ttl = Duration::from_secs(900);
    for now in [
        1_767_290_000u64,
        1_767_290_099,
        1_767_290_100,
        1_767_290_999,
    ] {
        let expires = expiry(now, ttl);
        assert!(
            expires >= now + 900 && expires <= now + 1800,
            "{now} -> {expires}"
        );
        assert_eq!(expires % 900, 0);
    }
    let links = signed_links();
    let key = format!("processed/{ID}/mobile.jpg");
    // 1_767_290_400 is a multiple of 900: one window is [..400, ..1300).
    let start = 1_767_290_400;
    let first = links.rendition_link(&key, start).unwrap();
    assert_eq!(links.rendition_link(&key, start + 899).unwrap(), first);
    assert_ne!(links.rendition_link(&key, start + 900).unwrap(), first);
    assert_ne!(links.rendition_link(&key, start - 1).unwrap(), first);
}

#[tokio::test]
async fn a_public_rendition_link_is_a_plain_url_and_originals_stay_the_stores() {
    let store = MemoryStore::default();
    let plain = store.link(&format!("uploads/{ID}.jpg")).await.unwrap();
    let links = CdnLinks::new(store, DOMAIN, None, Duration::from_secs(900));
    assert_eq!(
        links
            .link(&format!("processed/{ID}/avatar.png"))
            .await
            .unwrap(),
        format!("{DOMAIN}/{ID}/avatar.png")
    );
    // Originals, reservations and drop-ins keep the store's own links (presigned on S3).
    assert_eq!(
        links.link(&format!("uploads/{ID}.jpg")).await.unwrap(),
        plain
    );
    assert!(links
        .link("incoming/x")
        .await
        .unwrap()
        .starts_with("memory://"));
    // A key merely containing the prefix is not a rendition.
    assert!(links
        .link("uploads/processed/x")
        .await
        .unwrap()
        .starts_with("memory://"));
    // Whatever a key holds, the URL keeps its shape: one path, no query, no fragment.
    assert_eq!(
        links.rendition_link("processed/a b/x?y#z/..", 0).unwrap(),
        format!("{DOMAIN}/a%20b/x%3Fy%23z/..")
    );
    // Everything else is the inner store's.
    links
        .put(
            "processed/x/t.jpg",
            bytes::Bytes::from_static(b"jpeg"),
            "image/jpeg",
        )
        .await
        .unwrap();
    assert_eq!(links.get("processed/x/t.jpg").await.unwrap(), "jpeg");
    assert_eq!(links.head("processed/x/t.jpg").await.unwrap().size, 4);
}

#[test]
fn a_kept_link_is_the_link_signing_would_give() {
    // Kept links are reused within their window only, and past the bound the oldest windows'
    // go first, then all: a fresh store signs the same URL each time.
    let links = signed_links().keeping(8);
    let fresh = signed_links();
    let now = 1_767_290_400;
    for i in 0..20 {
        let key = format!("processed/{i}/thumbnail.jpg");
        let link = links.rendition_link(&key, now).unwrap();
        assert_eq!(links.rendition_link(&key, now + 1).unwrap(), link);
        assert_eq!(fresh.rendition_link(&key, now).unwrap(), link);
    }
    let key = "processed/0/thumbnail.jpg";
    let next = links.rendition_link(key, now + 900).unwrap();
    assert_eq!(next, fresh.rendition_link(key, now + 900).unwrap());
    assert_ne!(next, links.rendition_link(key, now).unwrap());
}
