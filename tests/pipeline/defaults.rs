//! template.yaml's parameter defaults are the code's defaults: a function run with no value for a
//! setting (its own default) behaves as the deployed one does with the template's.

use std::collections::BTreeMap;

use config_vars::Vars;
use sam_template::{Names, Template};

/// Any resource's name: the settings compared here are parameters.
struct Anything;

impl Names for Anything {
    fn resource(&self, id: &str) -> Option<String> {
        Some(id.to_owned())
    }
    fn attribute(&self, id: &str, attribute: &str) -> Option<String> {
        Some(format!("{id}.{attribute}"))
    }
    fn pseudo(&self, name: &str) -> Option<String> {
        Some(name.to_owned())
    }
    fn secret(&self, _: &str) -> Option<String> {
        Some("a secret of sixteen bytes or more".into())
    }
}

/// The function `binary`'s environment as the template gives it, and with only what has no
/// default.
fn environments(binary: &str) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let template = Template::parse(local::TEMPLATE, &Default::default()).unwrap();
    let function = template.function(binary).unwrap();
    let full = template.environment(function, &Anything).unwrap().vars;
    let required = [
        "TABLE_NAME",
        "BUCKET_NAME",
        "TOPIC_ARN",
        "CURSOR_KEY_SECRET",
    ];
    let bare = full
        .iter()
        .filter(|(k, _)| required.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (full, bare)
}

#[test]
fn upload_limits_and_link_times_default_to_the_template_parameters() {
    let (full, bare) = environments("upload");
    assert!(full.contains_key("MAX_UPLOAD_BYTES") && full.contains_key("LINK_MINUTES"));
    let from_template = upload::Config::from_vars(&Vars::map(&full)).unwrap();
    let by_default = upload::Config::from_vars(&Vars::map(&bare)).unwrap();
    assert_eq!(from_template.max_upload_bytes, by_default.max_upload_bytes);
    assert_eq!(from_template.max_object_bytes, by_default.max_object_bytes);
    assert_eq!(from_template.upload_url_ttl, by_default.upload_url_ttl);
    assert_eq!(from_template.link_ttl, by_default.link_ttl);
}

#[test]
fn renditions_and_the_pixel_limit_default_to_the_template_parameters() {
    let (full, bare) = environments("process");
    assert!(full.contains_key("RENDITIONS") && full.contains_key("MAX_PIXELS"));
    let from_template = process::Config::from_vars(&Vars::map(&full)).unwrap();
    let by_default = process::Config::from_vars(&Vars::map(&bare)).unwrap();
    assert_eq!(from_template.settings, by_default.settings);
    // The memory budget's default is the process function's MemorySize.
    let template = Template::parse(local::TEMPLATE, &Default::default()).unwrap();
    assert_eq!(
        template.function("process").unwrap().memory_size,
        Some(imaging::budget::DEFAULT_FUNCTION_MEMORY_MB)
    );
}

#[test]
fn the_object_limit_defaults_to_the_template_parameter() {
    let (full, bare) = environments("ingest");
    assert!(full.contains_key("MAX_OBJECT_BYTES"));
    assert_eq!(
        ingest::Config::from_vars(&Vars::map(&full)).unwrap(),
        ingest::Config::from_vars(&Vars::map(&bare)).unwrap()
    );
}
