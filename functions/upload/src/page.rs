//! `GET /`: the web page (one HTML file with its style and script inline, embedded in the binary),
//! under a Content-Security-Policy that allows that style and script by their hashes and nothing
//! else inline.
//!
//! What the policy lets the page reach:
//! - `connect-src 'self'` for the API (same origin: the page is served by the API), plus the
//!   object store's origin, where the direct-upload flow PUTs the bytes (an S3 presigned URL on
//!   AWS; the engine itself locally).
//! - `img-src 'self'` plus the origins of the store's links: thumbnails are renditions, linked at
//!   the stack's CloudFront distribution when it has one (`https://<id>.cloudfront.net`, signed or
//!   not), else presigned S3 GET URLs (`https://<bucket>.s3.<region>.amazonaws.com`), and
//!   `/objects/...` on the engine locally. ThumbHash placeholders are drawn on a canvas, so no
//!   `data:` is needed.
//! - No other origin, no frames, no forms posting anywhere, no `<base>` rewriting, no plugins.
//!
//! The origins are read from links the store makes ([`ObjectStore::link`] of an original and of a
//! rendition: presigning and CloudFront signing are local computations), so the policy names
//! exactly the hosts the item links use.

use std::sync::LazyLock;

use base64::Engine as _;
use lambda_http::http::{header, StatusCode};
use lambda_http::{Body, Response};
use sha2::{Digest, Sha256};
use state::ObjectStore;

/// The page, as served.
pub const PAGE: &str = include_str!("page.html");

/// `'sha256-…'` sources for every inline `<script>` and every `<style>` of the page.
struct InlineHashes {
    scripts: Vec<String>,
    styles: Vec<String>,
}

static HASHES: LazyLock<InlineHashes> = LazyLock::new(|| InlineHashes {
    scripts: inline_blocks(PAGE, "script").map(csp_hash).collect(),
    styles: inline_blocks(PAGE, "style").map(csp_hash).collect(),
});

/// The text between each `<tag>` (no attributes) and its `</tag>`: what the browser hashes.
fn inline_blocks<'a>(html: &'a str, tag: &str) -> impl Iterator<Item = &'a str> + 'a {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut rest = html;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let block = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        Some(block)
    })
}

fn csp_hash(block: &str) -> String {
    let digest = Sha256::digest(block.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// `scheme://host[:port]` of an http(s) URL.
fn origin_of(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.find(['/', '?', '#']).map_or(rest, |end| &rest[..end]);
    if authority.is_empty() {
        return None;
    }
    Some(&url[..url.len() - rest.len() + authority.len()])
}

/// The page's policy, given the origins of the store's links (those a browser can use): the
/// store's own (originals, and where a direct upload PUTs its bytes) and the renditions' (the CDN,
/// when it is not the store's).
pub fn content_security_policy(
    store_origin: Option<&str>,
    renditions_origin: Option<&str>,
) -> String {
    let uploads = store_origin.map(|o| format!(" {o}")).unwrap_or_default();
    let mut images = uploads.clone();
    if let Some(cdn) = renditions_origin.filter(|&o| Some(o) != store_origin) {
        images.push_str(&format!(" {cdn}"));
    }
    format!(
        "default-src 'none'; script-src {scripts}; style-src {styles}; img-src 'self'{images}; \
         connect-src 'self'{uploads}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        scripts = HASHES.scripts.join(" "),
        styles = HASHES.styles.join(" "),
    )
}

/// The origin of the store's link for `key`, if it has one a browser can use.
async fn link_origin(store: &dyn ObjectStore, key: &str) -> Option<String> {
    match store.link(key).await {
        Ok(url) => origin_of(&url).map(str::to_owned),
        Err(e) => {
            tracing::warn!(error = %e, key, "no link from the store: the page's policy leaves its origin out");
            None
        }
    }
}

/// The page, with its policy and headers that keep it from being framed, sniffed or cached stale.
pub async fn response(store: &dyn ObjectStore) -> Response<Body> {
    // Any keys will do (an original's, a rendition's: the process function writes renditions
    // under processed/): only the origins of the links are used.
    let store_origin = link_origin(store, "uploads/page").await;
    let renditions_origin = link_origin(store, "processed/page/thumbnail.jpg").await;
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(
            header::CONTENT_SECURITY_POLICY,
            content_security_policy(store_origin.as_deref(), renditions_origin.as_deref()),
        )
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::Text(PAGE.to_owned()))
        .expect("a static response is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_one_inline_script_and_one_style_and_nothing_else_inline() {
        assert_eq!(inline_blocks(PAGE, "script").count(), 1);
        assert_eq!(inline_blocks(PAGE, "style").count(), 1);
        // Any other <script ...> or <style ...> would not be hashed and would be blocked.
        assert_eq!(PAGE.matches("<script").count(), 1);
        assert_eq!(PAGE.matches("<style").count(), 1);
        // Hash-allowed styles do not cover style="" attributes, nor scripts inline handlers.
        assert!(
            !PAGE.contains(" style="),
            "style attributes are blocked by the policy"
        );
        assert!(
            !PAGE.contains(" onclick=") && !PAGE.contains(" onload="),
            "inline handlers are blocked by the policy"
        );
        // Nothing from elsewhere.
        assert!(
            !PAGE.contains("src=\"http"),
            "the page loads nothing from elsewhere"
        );
    }

    #[test]
    fn the_hash_is_of_the_block_between_the_tags() {
        let html = "<p><script>let a = 1;</script><style>p{}</style><script>b()</script>";
        let scripts: Vec<_> = inline_blocks(html, "script").collect();
        assert_eq!(scripts, ["let a = 1;", "b()"]);
        // sha256("let a = 1;"), base64: computed with `printf 'let a = 1;' | sha256sum`.
        assert_eq!(
            csp_hash("let a = 1;"),
            "'sha256-xY6QKfH9PRsQnLz56nj6MBwiK5oHg+im1Jkpdp1x/Ck='"
        );
    }

    #[test]
    fn the_policy_names_the_store_origin_for_images_and_uploads_only() {
        let s3 = "https://b.s3.eu-west-1.amazonaws.com";
        let csp = content_security_policy(Some(s3), Some(s3));
        assert!(csp.starts_with("default-src 'none'; script-src 'sha256-"));
        assert!(csp.contains("img-src 'self' https://b.s3.eu-west-1.amazonaws.com;"));
        assert!(csp.contains("connect-src 'self' https://b.s3.eu-west-1.amazonaws.com;"));
        assert!(!csp.contains("unsafe"));
        assert!(csp.contains("frame-ancestors 'none'"));
        let local = content_security_policy(None, None);
        assert!(local.contains("img-src 'self';") && local.contains("connect-src 'self';"));
    }

    #[test]
    fn with_a_cdn_images_may_come_from_it_and_uploads_still_go_only_to_the_bucket() {
        let s3 = "https://b.s3.eu-west-1.amazonaws.com";
        let cdn = "https://d111111abcdef8.cloudfront.net";
        let csp = content_security_policy(Some(s3), Some(cdn));
        assert!(
            csp.contains(&format!("img-src 'self' {s3} {cdn};")),
            "{csp}"
        );
        assert!(csp.contains(&format!("connect-src 'self' {s3};")), "{csp}");
    }

    #[test]
    fn origins_of_links() {
        assert_eq!(
            origin_of("https://b.s3.us-east-1.amazonaws.com/uploads/x.jpg?X-Amz-Signature=1"),
            Some("https://b.s3.us-east-1.amazonaws.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:3000/objects/uploads/x.jpg"),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:4566?x"),
            Some("http://127.0.0.1:4566")
        );
        assert_eq!(origin_of("memory:///uploads/x"), None);
        assert_eq!(origin_of("https:///x"), None);
    }
}
