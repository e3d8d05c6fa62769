//! The engine's secrets, kept in the data dir and never anywhere else.
//!
//! - Its own key, 32 random bytes in `DATA_DIR/secret.key` (mode 0600), which signs its bucket's
//!   upload URLs ([`load_or_create`]), as S3's keys are AWS's.
//! - The template's secrets ([`TemplateSecrets`]): each `AWS::SecretsManager::Secret` with
//!   `GenerateSecretString` is generated as it says on first start, kept in
//!   `DATA_DIR/secrets/<LogicalId>` (mode 0600) and served by its name (its logical id) to a
//!   function that reads it (`state::Secrets`), as Secrets Manager serves the stack's. They outlive
//!   a restart, so page cursors do.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;
use async_trait::async_trait;
use sam_template::{Expr, GeneratedSecret, Resource, SecretSpec, Template};
use state::{ResourceError, Secrets};

const LEN: usize = 32;

/// Reads the data dir's secret, making it first if there is none.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<[u8; LEN]> {
    let path = data_dir.join("secret.key");
    let read = read_or_create(&path, || {
        let mut key = [0u8; LEN];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        Ok(key.to_vec())
    })?;
    anyhow::ensure!(
        read.len() == LEN,
        "{} is not a {LEN}-byte key; remove it to make a new one",
        path.display()
    );
    let mut key = [0u8; LEN];
    key.copy_from_slice(&read);
    Ok(key)
}

/// The file at `path`, made with `make`'s bytes (mode 0600, synced) if there is none.
fn read_or_create(
    path: &Path,
    make: impl FnOnce() -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Vec<u8>> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            let bytes = make()?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            Ok(bytes)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mut file =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let mut read = Vec::new();
            file.read_to_end(&mut read)?;
            Ok(read)
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// The template's secrets, by name, with their values.
#[derive(Debug, Default)]
pub struct TemplateSecrets {
    values: BTreeMap<String, String>,
}

impl TemplateSecrets {
    /// Each secret of `template` that has a value here: generated ones from `DATA_DIR/secrets/`,
    /// made on first start; a literal `SecretString` as written.
    pub fn load_or_create(template: &Template, data_dir: &Path) -> anyhow::Result<TemplateSecrets> {
        let dir = data_dir.join("secrets");
        let mut values = BTreeMap::new();
        for (id, resource) in &template.resources {
            let Resource::Secret(spec) = resource else {
                continue;
            };
            let value = match spec {
                SecretSpec::Generated(how) => {
                    let mut builder = std::fs::DirBuilder::new();
                    builder.recursive(true);
                    #[cfg(unix)]
                    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                    builder
                        .create(&dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                    let path = dir.join(id);
                    let bytes = read_or_create(&path, || Ok(generate(how)?.into_bytes()))?;
                    String::from_utf8(bytes)
                        .ok()
                        .filter(|v| !v.is_empty())
                        .with_context(|| {
                            format!(
                                "{} is not a secret string; remove it to make a new one",
                                path.display()
                            )
                        })?
                }
                SecretSpec::Given(Expr::Text(text)) => text.clone(),
                SecretSpec::Given(_) | SecretSpec::Empty => continue,
            };
            values.insert(id.clone(), value);
        }
        Ok(TemplateSecrets { values })
    }

    /// The value of the secret called `name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

#[async_trait]
impl Secrets for TemplateSecrets {
    async fn string(&self, id: &str) -> Result<String, ResourceError> {
        self.value(id)
            .map(str::to_owned)
            .ok_or_else(|| ResourceError::Missing {
                kind: "secret",
                name: id.to_owned(),
                have: format!(
                    "the engine's secrets are the template's generated ones: {}",
                    self.values.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            })
    }
}

/// A string as `GenerateSecretString` describes it: each character drawn uniformly from the
/// included classes' characters, drawn again until every class is there when required.
pub fn generate(how: &GeneratedSecret) -> anyhow::Result<String> {
    let alphabet: Vec<char> = how.classes.concat();
    // Bytes at or above the largest multiple of the alphabet's size are drawn again: no bias.
    let limit = 256 - 256 % alphabet.len();
    loop {
        let mut out = String::with_capacity(how.length);
        while out.chars().count() < how.length {
            let mut bytes = [0u8; 64];
            getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            for b in bytes.into_iter().filter(|&b| (b as usize) < limit) {
                if out.chars().count() == how.length {
                    break;
                }
                out.push(alphabet[b as usize % alphabet.len()]);
            }
        }
        let each = how
            .classes
            .iter()
            .all(|class| out.chars().any(|c| class.contains(&c)));
        if each || !how.require_each_class {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_has_its_length_and_draws_from_its_classes_only() {
        let how = GeneratedSecret {
            length: 48,
            classes: vec![
                ('A'..='Z').collect(),
                ('a'..='z').collect(),
                ('0'..='9').collect(),
            ],
            require_each_class: true,
        };
        for _ in 0..50 {
            let s = generate(&how).unwrap();
            assert_eq!(s.chars().count(), 48);
            assert!(s.chars().all(|c| c.is_ascii_alphanumeric()), "{s}");
            assert!(s.chars().any(|c| c.is_ascii_digit()), "{s}");
        }
        assert_ne!(generate(&how).unwrap(), generate(&how).unwrap());
        // Every class required, as short as it can be: one of each.
        let tight = GeneratedSecret {
            length: 2,
            classes: vec![vec!['a'], vec!['1']],
            require_each_class: true,
        };
        for _ in 0..20 {
            let s = generate(&tight).unwrap();
            assert!(s == "a1" || s == "1a", "{s}");
        }
    }

    #[test]
    fn the_templates_secrets_are_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let template = Template::parse(
            "Resources:\n  Key:\n    Type: AWS::SecretsManager::Secret\n    Properties:\n      GenerateSecretString:\n        PasswordLength: 40\n  Given:\n    Type: AWS::SecretsManager::Secret\n    Properties:\n      SecretString: plain\n  Empty:\n    Type: AWS::SecretsManager::Secret\n",
            &BTreeMap::new(),
        )
        .unwrap();
        let first = TemplateSecrets::load_or_create(&template, dir.path()).unwrap();
        let key = first.value("Key").unwrap().to_owned();
        assert_eq!(key.chars().count(), 40);
        assert_eq!(first.value("Given"), Some("plain"));
        assert_eq!(first.value("Empty"), None);
        let path = dir.path().join("secrets/Key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = TemplateSecrets::load_or_create(&template, dir.path()).unwrap();
        assert_eq!(again.value("Key"), Some(key.as_str()), "kept across starts");
        let err = futures::executor::block_on(again.string("Empty"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"Empty\"") && err.contains("Key"), "{err}");
    }
}
