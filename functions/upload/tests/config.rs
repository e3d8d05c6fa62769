//! The function's configuration as the template gives it (template.yaml, UploadFunction's
//! Environment). One test in its own binary: it sets the process's environment.

use upload::{Config, CursorKeySource};

const CDN: &str = "https://d111111abcdef8.cloudfront.net";

#[test]
fn the_stacks_configuration_names_secrets_and_the_distribution() {
    // What the template gives the function (template.yaml, UploadFunction's Environment).
    let vars = [
        ("TABLE_NAME", "t"),
        ("BUCKET_NAME", "b"),
        (
            "CURSOR_KEY_SECRET",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:c-AbCdEf",
        ),
        ("CDN_URL", CDN),
        ("CDN_KEY_PAIR_ID", "K2JCJMDEHXQW5F"),
        ("CDN_SIGNING_KEY_SECRET", "image-pipeline/cdn-signing-key"),
    ];
    let cfg = with_env(&vars, Config::from_env).unwrap();
    assert!(
        matches!(cfg.cursor_key, CursorKeySource::Secret(ref s) if s.ends_with(":secret:c-AbCdEf"))
    );
    let cdn = cfg.cdn.unwrap();
    assert_eq!(cdn.url, CDN);
    assert_eq!(cdn.signing.unwrap().key_pair_id, "K2JCJMDEHXQW5F");

    // Public renditions: the template passes "" for the key.
    let public = [
        ("TABLE_NAME", "t"),
        ("BUCKET_NAME", "b"),
        ("CURSOR_KEY_SECRET", "c"),
        ("CDN_URL", CDN),
        ("CDN_KEY_PAIR_ID", ""),
        ("CDN_SIGNING_KEY_SECRET", ""),
    ];
    let cfg = with_env(&public, Config::from_env).unwrap();
    assert!(cfg.cdn.unwrap().signing.is_none());

    // Half a signing configuration, or two cursor keys, or none, is refused by name.
    let half = [
        ("TABLE_NAME", "t"),
        ("BUCKET_NAME", "b"),
        ("CURSOR_KEY_SECRET", "c"),
        ("CDN_URL", CDN),
        ("CDN_KEY_PAIR_ID", "K1"),
    ];
    let err = with_env(&half, Config::from_env).unwrap_err().to_string();
    assert!(err.contains("CDN_SIGNING_KEY_SECRET"), "{err}");
    let both = [
        ("TABLE_NAME", "t"),
        ("BUCKET_NAME", "b"),
        ("CURSOR_KEY_SECRET", "c"),
        ("CURSOR_KEY", "a key that is long enough"),
    ];
    let err = with_env(&both, Config::from_env).unwrap_err().to_string();
    assert!(err.contains("both"), "{err}");
    let none = [("TABLE_NAME", "t"), ("BUCKET_NAME", "b")];
    let err = with_env(&none, Config::from_env).unwrap_err().to_string();
    assert!(err.contains("CURSOR_KEY_SECRET"), "{err}");
    // No CDN: renditions are presigned by the store, as locally.
    let cfg = with_env(&none[..], || {
        std::env::set_var("CURSOR_KEY", "a key that is long enough");
        Config::from_env()
    })
    .unwrap();
    assert!(cfg.cdn.is_none());
}

/// Runs `f` with exactly `vars` set among the variables the function reads.
fn with_env<T>(vars: &[(&str, &str)], f: impl FnOnce() -> T) -> T {
    const READ: [&str; 11] = [
        "TABLE_NAME",
        "BUCKET_NAME",
        "MAX_UPLOAD_BYTES",
        "MAX_OBJECT_BYTES",
        "UPLOAD_URL_MINUTES",
        "LINK_MINUTES",
        "CURSOR_KEY_SECRET",
        "CURSOR_KEY",
        "CDN_URL",
        "CDN_KEY_PAIR_ID",
        "CDN_SIGNING_KEY_SECRET",
    ];
    for name in READ {
        std::env::remove_var(name);
    }
    for (name, value) in vars {
        std::env::set_var(name, value);
    }
    let out = f();
    for name in READ {
        std::env::remove_var(name);
    }
    out
}
