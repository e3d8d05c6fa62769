//! Named configuration keys with contextual errors: the one way every binary reads its settings.
//!
//! Each binary has one `Config` with `Config::from_vars(&Vars)`. A Lambda function's `main.rs`
//! passes [`Vars::env`] (the process environment Lambda sets from the template's `Environment`);
//! the local engine passes [`Vars::map`] of the same `Environment`, with its references resolved.
//! A missing or malformed key is a [`ConfigError`] that names the key and says what was expected.

use std::collections::BTreeMap;
use std::str::FromStr;

/// The cause of a value refused by its own parser (a renditions list, a memory size).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What is wrong with a configuration, always naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{key} is not set")]
    Missing { key: String },
    #[error("{key}={value:?} is not {expected}")]
    Invalid {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("{key}={value:?}: {source}")]
    Refused {
        key: String,
        value: String,
        #[source]
        source: BoxError,
    },
    /// A secret refused by its parser: the value is not shown.
    #[error("{key} (a secret, not shown) is not {expected}")]
    SecretRefused { key: String, expected: &'static str },
    /// Keys that go together, or exclude each other, given otherwise.
    #[error("{}: {rule}", keys.join(" and "))]
    Combination {
        keys: Vec<String>,
        rule: &'static str,
    },
}

impl ConfigError {
    /// The keys the error is about.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            ConfigError::Missing { key }
            | ConfigError::Invalid { key, .. }
            | ConfigError::Refused { key, .. }
            | ConfigError::SecretRefused { key, .. } => vec![key],
            ConfigError::Combination { keys, .. } => keys.iter().map(String::as_str).collect(),
        }
    }
}

/// Looks a key up.
type Lookup<'a> = dyn Fn(&str) -> Option<String> + Send + Sync + 'a;

/// A set of named values: the process environment, or a map of them.
pub struct Vars<'a> {
    lookup: Box<Lookup<'a>>,
}

impl<'a> Vars<'a> {
    /// Values from `lookup`.
    pub fn new(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'a) -> Vars<'a> {
        Vars {
            lookup: Box::new(lookup),
        }
    }

    /// The process environment (a value that is not UTF-8 counts as unset).
    pub fn env() -> Vars<'static> {
        Vars::new(|key| std::env::var(key).ok())
    }

    /// The values of `map`.
    pub fn map(map: &'a BTreeMap<String, String>) -> Vars<'a> {
        Vars::new(move |key| map.get(key).cloned())
    }

    /// The values of `map`, owned.
    pub fn owned(map: BTreeMap<String, String>) -> Vars<'static> {
        Vars::new(move |key| map.get(key).cloned())
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<String> {
        (self.lookup)(key)
    }

    /// The value of `key`, if set to something other than the empty string (templates pass "" for
    /// "none", as `!If [Condition, value, ""]`).
    pub fn given(&self, key: &str) -> Option<String> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// The value of `key`, which must be set.
    pub fn required(&self, key: &str) -> Result<String, ConfigError> {
        self.get(key)
            .ok_or_else(|| ConfigError::Missing { key: key.into() })
    }

    /// `key` parsed as a `T` (`expected` says what it should be, for the error), if set.
    pub fn parsed<T: FromStr>(
        &self,
        key: &str,
        expected: &'static str,
    ) -> Result<Option<T>, ConfigError> {
        self.get(key)
            .map(|value| {
                value.trim().parse().map_err(|_| ConfigError::Invalid {
                    key: key.into(),
                    value,
                    expected,
                })
            })
            .transpose()
    }

    /// `key` parsed as a `T`, or `default` when it is not set.
    pub fn parsed_or<T: FromStr>(
        &self,
        key: &str,
        default: T,
        expected: &'static str,
    ) -> Result<T, ConfigError> {
        Ok(self.parsed(key, expected)?.unwrap_or(default))
    }

    /// `key`'s value (or `default`) given to `parse`, whose error is kept as the cause.
    pub fn with<T, E>(
        &self,
        key: &str,
        default: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, ConfigError>
    where
        E: Into<BoxError>,
    {
        let value = self.get(key).unwrap_or_else(|| default.to_owned());
        parse(&value).map_err(|e| ConfigError::Refused {
            key: key.into(),
            value,
            source: e.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_error_names_its_key_and_what_was_expected() {
        let map = vars(&[("SIZE", "ten"), ("NAME", "images")]);
        let v = Vars::map(&map);
        assert_eq!(v.required("NAME").unwrap(), "images");
        assert_eq!(
            v.required("TABLE_NAME").unwrap_err().to_string(),
            "TABLE_NAME is not set"
        );
        assert_eq!(
            v.parsed::<u64>("SIZE", "a byte count")
                .unwrap_err()
                .to_string(),
            "SIZE=\"ten\" is not a byte count"
        );
        assert_eq!(v.parsed_or::<u64>("LIMIT", 7, "a number").unwrap(), 7);
        let refused = v
            .with("NAME", "", |s| s.parse::<u8>())
            .unwrap_err()
            .to_string();
        assert!(refused.starts_with("NAME=\"images\": "), "{refused}");
    }

    #[test]
    fn empty_is_not_given_and_combinations_name_every_key() {
        let map = vars(&[("EMPTY", ""), ("SET", "x")]);
        let v = Vars::map(&map);
        assert_eq!(v.get("EMPTY").as_deref(), Some(""));
        assert_eq!(v.given("EMPTY"), None);
        assert_eq!(v.given("SET").as_deref(), Some("x"));
        let e = ConfigError::Combination {
            keys: vec!["A".into(), "B".into()],
            rule: "give both or neither",
        };
        assert_eq!(e.to_string(), "A and B: give both or neither");
        assert_eq!(e.keys(), ["A", "B"]);
        let secret = ConfigError::SecretRefused {
            key: "KEY".into(),
            expected: "16 bytes or more",
        };
        assert_eq!(secret.keys(), ["KEY"]);
        assert!(!secret.to_string().contains('='), "{secret}");
    }

    #[test]
    fn a_default_goes_through_the_same_parser() {
        let empty = BTreeMap::new();
        let v = Vars::map(&empty);
        assert_eq!(v.with("N", "42", |s| s.parse::<u32>()).unwrap(), 42);
        assert!(v.with("N", "x", |s| s.parse::<u32>()).is_err());
    }
}
