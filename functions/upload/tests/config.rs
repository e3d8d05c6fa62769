//! The function's configuration as the template gives it (template.yaml, UploadFunction's
//! Environment), read by `Config::from_vars`.

use std::collections::BTreeMap;

use config_vars::Vars;
use upload::{Config, CursorKeySource};

const CDN: &str = "https://d111111abcdef8.cloudfront.net";

/// The configuration read from exactly `vars`.
fn config(vars: &[(&str, &str)]) -> Result<Config, config_vars::ConfigError> {
    let map: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_vars(&Vars::owned(map))
}

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
    let cfg = config(&vars).unwrap();
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
    let cfg = config(&public).unwrap();
    assert!(cfg.cdn.unwrap().signing.is_none());

    // Half a signing configuration, or two cursor keys, or none, is refused by name.
    let half = [
        ("TABLE_NAME", "t"),
        ("BUCKET_NAME", "b"),
        ("CURSOR_KEY_SECRET", "c"),
        ("CDN_URL", CDN),
        ("CDN_KEY_PAIR_ID", "K1"),
    ];
    let err = config(&half).unwrap_err().to_string();
    assert!(err.contains("CDN_SIGNING_KEY_SECRET"), "{err}");
    let both = [
        ("TABLE_NAME", "t"),
        ("BUCKET_NAME", "b"),
        ("CURSOR_KEY_SECRET", "c"),
        ("CURSOR_KEY", "a key that is long enough"),
    ];
    let err = config(&both).unwrap_err().to_string();
    assert!(err.contains("both"), "{err}");
    let none = [("TABLE_NAME", "t"), ("BUCKET_NAME", "b")];
    let err = config(&none).unwrap_err().to_string();
    assert!(err.contains("CURSOR_KEY_SECRET"), "{err}");
    // No CDN: renditions are presigned by the store, as locally.
    let given = [
        ("TABLE_NAME", "t"),
        ("BUCKET_NAME", "b"),
        ("CURSOR_KEY", "a key that is long enough"),
    ];
    let cfg = config(&given).unwrap();
    assert!(cfg.cdn.is_none());
    assert!(matches!(cfg.cursor_key, CursorKeySource::Given(_)));
}

#[test]
fn a_key_given_in_the_configuration_is_refused_short_and_never_shown() {
    let short = [
        ("TABLE_NAME", "t"),
        ("BUCKET_NAME", "b"),
        ("CURSOR_KEY", "too short"),
    ];
    let err = config(&short).unwrap_err().to_string();
    assert!(
        err.contains("CURSOR_KEY") && err.contains("16 bytes"),
        "{err}"
    );
    assert!(
        !err.contains("too short"),
        "the key is not in the message: {err}"
    );
    // Without a distribution, its signing settings are not read (the engine hosts none).
    let no_cdn = [
        ("TABLE_NAME", "t"),
        ("BUCKET_NAME", "b"),
        ("CURSOR_KEY_SECRET", "CursorSecret"),
        ("CDN_SIGNING_KEY_SECRET", "local/cdn-signing-key"),
    ];
    assert!(config(&no_cdn).unwrap().cdn.is_none());
}
