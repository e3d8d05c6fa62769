//! Where a function's links to the bucket's objects point, as its configuration says: the bucket,
//! how long links stay valid, and the CDN in front of the renditions (if any). The upload function
//! (items' `urls`) and the notice function (the notice's `renditions`) read the same keys and open
//! the bucket the same way, so both give the same kind of link.

use std::sync::Arc;
use std::time::Duration;

use config_vars::{ConfigError, Vars};

use crate::{Distribution, ObjectStore, ResourceError, Resources, SigningKey, DEFAULT_LINK_TTL};

/// The distribution that serves renditions (`CDN_URL`, e.g. `https://d111111abcdef8.cloudfront.net`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cdn {
    pub url: String,
    /// Set when the distribution only serves signed URLs (`CDN_KEY_PAIR_ID`,
    /// `CDN_SIGNING_KEY_SECRET`); unset, its URLs are plain and never expire.
    pub signing: Option<CdnSigning>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdnSigning {
    /// The CloudFront public key's id, in the distribution's trusted key group.
    pub key_pair_id: String,
    /// The secret holding its private key (PEM), read as the function starts.
    pub private_key_secret: String,
}

impl Cdn {
    /// `CDN_URL`, and with it `CDN_KEY_PAIR_ID` and `CDN_SIGNING_KEY_SECRET`. An empty value counts
    /// as unset (the template passes "" for "none"); the signing keys are read only with `CDN_URL`:
    /// without a distribution there is nothing to sign for.
    pub fn from_vars(vars: &Vars) -> Result<Option<Cdn>, ConfigError> {
        let Some(url) = vars.given("CDN_URL") else {
            return Ok(None);
        };
        let signing = match (
            vars.given("CDN_KEY_PAIR_ID"),
            vars.given("CDN_SIGNING_KEY_SECRET"),
        ) {
            (Some(key_pair_id), Some(private_key_secret)) => Some(CdnSigning {
                key_pair_id,
                private_key_secret,
            }),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Combination {
                    keys: vec!["CDN_KEY_PAIR_ID".into(), "CDN_SIGNING_KEY_SECRET".into()],
                    rule: "they go together: both (signed links), or neither (public ones)",
                })
            }
        };
        Ok(Some(Cdn { url, signing }))
    }
}

/// How long links stay valid where they expire (`LINK_MINUTES`, whole minutes; default
/// [`DEFAULT_LINK_TTL`]).
pub fn link_ttl(vars: &Vars) -> Result<Duration, ConfigError> {
    Ok(vars
        .parsed::<u64>("LINK_MINUTES", "a whole number of minutes")?
        .map_or(DEFAULT_LINK_TTL, |m| Duration::from_secs(60 * m)))
}

/// The bucket `name` from `resources`, its renditions linked through `cdn` when there is one
/// (signed with the key its secret holds, read now: once, as the function starts).
pub async fn open_bucket(
    resources: &dyn Resources,
    name: &str,
    link_ttl: Duration,
    cdn: Option<&Cdn>,
) -> Result<Arc<dyn ObjectStore>, ResourceError> {
    let Some(cdn) = cdn else {
        return resources.bucket(name, link_ttl);
    };
    let signing = match &cdn.signing {
        None => None,
        Some(signing) => Some(SigningKey {
            key_pair_id: signing.key_pair_id.clone(),
            private_key_pem: resources
                .secrets()?
                .string(&signing.private_key_secret)
                .await?,
        }),
    };
    resources.bucket_behind(
        name,
        link_ttl,
        Distribution {
            url: cdn.url.clone(),
            signing,
        },
    )
}
