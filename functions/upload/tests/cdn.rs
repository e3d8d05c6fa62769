//! Renditions through the stack's CloudFront distribution: the links the API gives (signed or
//! public, originals still presigned by the store), the page's policy for them, and the function's
//! start on AWS (`Deps::new` over `AwsResources`), which reads its keys from Secrets Manager (on
//! moto: `make test`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_adapters::{AwsResources, CdnLinks, CloudFrontSigner};
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, Request};
use state::memory::{MemoryStore, MemoryTable};
use state::{ImageId, ObjectStore, Position, ProcessedFacts, Selection};
use upload::{handle, Cdn, CdnSigning, Config, CursorKey, CursorKeySource, Deps};

const CDN: &str = "https://d111111abcdef8.cloudfront.net";
/// A published test key (adapters/aws/tests/data/cloudfront/PROVENANCE.md), never a real one.
const TEST_KEY: &str = include_str!(
    "../../../adapters/aws/tests/data/cloudfront/cloudfront-sign-rs-test-key.pkcs8.pem"
);

fn request(file: &str) -> Request {
    let text = std::fs::read_to_string(format!(
        "{}/../../events/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let event: LambdaRequest = serde_json::from_str(&text).unwrap();
    event.into()
}

/// `GET /items/{id}` as API Gateway sends it.
fn get_item(id: &str) -> Request {
    let text = std::fs::read_to_string(format!(
        "{}/../../events/api-get-item.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut event: serde_json::Value = serde_json::from_str(&text).unwrap();
    let old = event["pathParameters"]["id"].as_str().unwrap().to_owned();
    let text = serde_json::to_string(&event).unwrap().replace(&old, id);
    event = serde_json::from_str(&text).unwrap();
    let event: LambdaRequest = serde_json::from_value(event).unwrap();
    event.into()
}

fn json(body: &Body) -> serde_json::Value {
    match body {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("expected a JSON text body, got {other:?}"),
    }
}

fn deps(store: Arc<dyn ObjectStore>) -> (Deps, Arc<MemoryTable>) {
    let table = Arc::new(MemoryTable::default());
    let deps = Deps {
        table: table.clone(),
        store,
        max_upload_bytes: 1 << 20,
        max_object_bytes: upload::DEFAULT_MAX_OBJECT_BYTES,
        upload_url_ttl: upload::DEFAULT_UPLOAD_URL_TTL,
        max_pending_reservations: upload::DEFAULT_MAX_PENDING_RESERVATIONS,
        cursor_key: CursorKey::new(*b"test cursor key, 32 bytes long..").unwrap(),
    };
    (deps, table)
}

/// Uploads the sample event's image and processes it as `process` would: its id.
async fn processed_item(deps: &Deps, table: &MemoryTable) -> String {
    let created = json(handle(request("api-upload.json"), deps).await.body());
    let id = created["id"].as_str().unwrap().to_owned();
    let facts = ProcessedFacts {
        width: 4,
        height: 3,
        format: "jpeg".into(),
        renditions: BTreeMap::from([
            ("thumbnail".into(), format!("processed/{id}/thumbnail.jpg")),
            ("avatar".into(), format!("processed/{id}/avatar.png")),
        ]),
        exif: BTreeMap::new(),
        placeholder: None,
        frames: None,
        duration_ms: None,
        warnings: Vec::new(),
    };
    state::transition::processed(table, id.parse::<ImageId>().unwrap(), facts)
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn signed_renditions_are_at_the_distribution_and_originals_stay_with_the_store() {
    let signer = CloudFrontSigner::from_pem("K2JCJMDEHXQW5F", TEST_KEY).unwrap();
    let store = Arc::new(CdnLinks::new(
        MemoryStore::default(),
        CDN,
        Some(signer),
        Duration::from_secs(15 * 60),
    ));
    let (deps, table) = deps(store);
    let id = processed_item(&deps, &table).await;

    let item = json(handle(get_item(&id), &deps).await.body());
    assert_eq!(item["status"], "processed");
    let urls = &item["urls"];
    assert!(
        urls["original"]
            .as_str()
            .unwrap()
            .starts_with("memory:///uploads/"),
        "{urls}"
    );
    for (name, ext) in [("thumbnail", "jpg"), ("avatar", "png")] {
        let url = urls["renditions"][name].as_str().unwrap();
        let (base, query) = url.split_once('?').unwrap();
        assert_eq!(base, format!("{CDN}/{id}/{name}.{ext}"));
        let params: Vec<&str> = query
            .split('&')
            .map(|p| p.split('=').next().unwrap())
            .collect();
        assert_eq!(params, ["Expires", "Signature", "Key-Pair-Id"], "{url}");
        assert!(query.ends_with("&Key-Pair-Id=K2JCJMDEHXQW5F"), "{url}");
    }
    // The list gives the same links: one URL per rendition per window, which browsers cache.
    let listed = json(handle(request("api-list-items.json"), &deps).await.body());
    assert_eq!(listed["items"][0]["urls"]["renditions"], urls["renditions"]);
}

#[tokio::test]
async fn public_renditions_are_plain_distribution_urls() {
    let store = Arc::new(CdnLinks::new(
        MemoryStore::default(),
        CDN,
        None,
        Duration::from_secs(15 * 60),
    ));
    let (deps, table) = deps(store);
    let id = processed_item(&deps, &table).await;
    let item = json(handle(get_item(&id), &deps).await.body());
    assert_eq!(
        item["urls"]["renditions"]["thumbnail"],
        format!("{CDN}/{id}/thumbnail.jpg")
    );
    assert!(item["urls"]["original"]
        .as_str()
        .unwrap()
        .starts_with("memory:///"));
}

#[tokio::test]
async fn the_page_lets_images_come_from_the_distribution_and_nothing_else_go_there() {
    for signer in [
        None,
        Some(CloudFrontSigner::from_pem("K2JCJMDEHXQW5F", TEST_KEY).unwrap()),
    ] {
        let store = Arc::new(CdnLinks::new(
            MemoryStore::default(),
            CDN,
            signer,
            Duration::from_secs(900),
        ));
        let (deps, _) = deps(store);
        let resp = handle(request("api-get-page.json"), &deps).await;
        assert_eq!(resp.status(), 200);
        let csp = resp.headers()["content-security-policy"].to_str().unwrap();
        // The memory store's own links are no URLs a browser could use; the distribution's are.
        assert!(csp.contains(&format!("img-src 'self' {CDN};")), "{csp}");
        assert!(csp.contains("connect-src 'self';"), "{csp}");
    }
}

#[tokio::test]
async fn on_aws_the_keys_come_from_secrets_manager_once_at_start() {
    use aws_adapters::testing::{endpoints, sdk, unique};
    let Some((_, moto)) = endpoints() else {
        return eprintln!("skipped: needs the AWS stand-ins (make test starts them)");
    };
    let aws = sdk(&moto).await;
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let create = |name: String, value: &'static str| {
        let secrets = secrets.clone();
        async move {
            secrets
                .create_secret()
                .name(name)
                .secret_string(value)
                .send()
                .await
                .unwrap()
                .arn
                .unwrap()
        }
    };
    let cursor_secret = create(unique("cursor-key"), "a cursor key from the stack's secret").await;
    let cdn_secret = create(unique("cdn-signing-key"), TEST_KEY).await;
    let cfg = Config {
        table_name: "t".into(),
        bucket_name: "b".into(),
        max_upload_bytes: 1 << 20,
        max_object_bytes: upload::DEFAULT_MAX_OBJECT_BYTES,
        upload_url_ttl: upload::DEFAULT_UPLOAD_URL_TTL,
        max_pending_reservations: upload::DEFAULT_MAX_PENDING_RESERVATIONS,
        cursor_key: CursorKeySource::Secret(cursor_secret.clone()),
        link_ttl: Duration::from_secs(900),
        cdn: Some(Cdn {
            url: CDN.into(),
            signing: Some(CdnSigning {
                key_pair_id: "K2JCJMDEHXQW5F".into(),
                private_key_secret: cdn_secret.clone(),
            }),
        }),
    };
    let deps = Deps::new(cfg.clone(), &AwsResources::new(&aws))
        .await
        .unwrap();

    // The cursor key is the secret's: a cursor it signs is one the secret's value accepts.
    let at = Position {
        created_at: 1,
        id: ImageId::generate(),
    };
    let cursor = deps.cursor_key.encode(Selection::All, at);
    let from_secret = CursorKey::new("a cursor key from the stack's secret").unwrap();
    assert_eq!(from_secret.decode(&cursor, Selection::All).unwrap(), at);
    let other = CursorKey::new("some other key, long enough").unwrap();
    assert!(other.decode(&cursor, Selection::All).is_err());

    // Renditions are signed with the secret's key; originals are presigned S3 links.
    let id = ImageId::generate();
    let link = deps
        .store
        .link(&format!("processed/{id}/thumbnail.jpg"))
        .await
        .unwrap();
    assert!(
        link.starts_with(&format!("{CDN}/{id}/thumbnail.jpg?Expires=")),
        "{link}"
    );
    let original = deps.store.link(&format!("uploads/{id}.jpg")).await.unwrap();
    assert!(original.contains("X-Amz-Signature="), "{original}");

    // Read once: the function keeps working when the secrets change or go.
    for arn in [&cursor_secret, &cdn_secret] {
        secrets
            .delete_secret()
            .secret_id(arn)
            .force_delete_without_recovery(true)
            .send()
            .await
            .unwrap();
    }
    assert_eq!(deps.cursor_key.encode(Selection::All, at), cursor);
    assert!(deps
        .store
        .link(&format!("processed/{id}/avatar.png"))
        .await
        .is_ok());
    // And a start without them fails, naming the secret.
    let err = format!(
        "{:#}",
        Deps::new(cfg, &AwsResources::new(&aws))
            .await
            .err()
            .unwrap()
    );
    assert!(
        err.contains(&cursor_secret) || err.contains(&cdn_secret),
        "{err}"
    );
}

/// `make deploy`'s key (scripts/stack.py cdn-key, on moto): one the function reads and signs with,
/// whose public half, as the template rebuilds it from CdnPublicKey, checks those signatures.
#[tokio::test]
async fn the_key_make_deploy_makes_is_the_one_the_function_signs_with() {
    use aws_adapters::testing::{endpoints, sdk, unique};
    use base64::Engine as _;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    let Some((_, moto)) = endpoints() else {
        return eprintln!("skipped: needs the AWS stand-ins (make test starts them)");
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".tools/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: scripts/tools.sh validate",
        python.display()
    );
    let stack = unique("stack");
    let stack_py = |cmd: &str| {
        let out = std::process::Command::new(&python)
            .arg(root.join("scripts/stack.py"))
            .args([cmd, stack.as_str()])
            .env("AWS_ENDPOINT_URL", &moto)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let parameter = stack_py("cdn-key");
    let (fingerprint, lines) = parameter
        .strip_prefix("CdnPublicKey=")
        .unwrap()
        .split_once(':')
        .unwrap();
    // It names the CloudFront public key (letters and digits only).
    assert_eq!(fingerprint.len(), 16);
    assert!(
        fingerprint.bytes().all(|b| b.is_ascii_hexdigit()),
        "{fingerprint}"
    );
    // What the template's RenditionsPublicKey makes of it.
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.replace(',', "\n")
    );
    let public = rsa::PublicKey::from_public_key_pem(&pem).unwrap();
    // A second deploy keeps the key; so does one after make undeploy scheduled its deletion.
    assert_eq!(stack_py("cdn-key"), parameter);
    stack_py("delete-cdn-key");
    assert_eq!(stack_py("cdn-key"), parameter);

    let aws = sdk(&moto).await;
    let cfg = Config {
        table_name: "t".into(),
        bucket_name: "b".into(),
        max_upload_bytes: 1 << 20,
        max_object_bytes: upload::DEFAULT_MAX_OBJECT_BYTES,
        upload_url_ttl: upload::DEFAULT_UPLOAD_URL_TTL,
        max_pending_reservations: upload::DEFAULT_MAX_PENDING_RESERVATIONS,
        cursor_key: CursorKeySource::Given(CursorKey::new("a key that is long enough").unwrap()),
        link_ttl: Duration::from_secs(900),
        cdn: Some(Cdn {
            url: CDN.into(),
            // As template.yaml names it.
            signing: Some(CdnSigning {
                key_pair_id: "K2JCJMDEHXQW5F".into(),
                private_key_secret: format!("{stack}/cdn-signing-key"),
            }),
        }),
    };
    let deps = Deps::new(cfg, &AwsResources::new(&aws)).await.unwrap();
    let id = ImageId::generate();
    let link = deps
        .store
        .link(&format!("processed/{id}/thumbnail.jpg"))
        .await
        .unwrap();
    let (url, query) = link.split_once("?Expires=").unwrap();
    let (expires, rest) = query.split_once("&Signature=").unwrap();
    let signature = rest.split_once("&Key-Pair-Id=").unwrap().0;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(
            signature
                .replace('-', "+")
                .replace('_', "=")
                .replace('~', "/"),
        )
        .unwrap();
    let policy = CloudFrontSigner::canned_policy(url, expires.parse().unwrap());
    rsa::pkcs1v15::VerifyingKey::<sha1::Sha1>::new(public)
        .verify(
            policy.as_bytes(),
            &rsa::pkcs1v15::Signature::try_from(signature.as_slice()).unwrap(),
        )
        .unwrap();
}
