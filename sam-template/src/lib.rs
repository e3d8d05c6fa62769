//! template.yaml, read for the local engine: each function's binary, environment, memory and
//! event sources (API routes, stream mappings, bucket notifications, queue mappings), and the
//! resources they name (the table, the bucket, topics, queues, secrets). The filters and mapping
//! settings are written once, in the template; this is where the engine learns them.
//!
//! Whatever the engine cannot emulate is refused here, by name: an event type other than `Api`,
//! `DynamoDB`, `S3` and `SQS`, and any property of an event (or of `EventInvokeConfig`) that is not
//! emulated, such as `ParallelizationFactor` above 1 ([`TemplateError::NotEmulated`]).
//!
//! Environment values stay as written ([`Expr`]) until [`Template::environment`] resolves them
//! against what the names stand for where the template runs ([`Names`]), `!If` by the template's
//! `Conditions`. A variable whose value names a resource of a type the reader does not model (a
//! CloudFront distribution, say) is left out and said so ([`Environment::unset`]).

use std::collections::BTreeMap;

use serde_norway::Value;

mod bucket;
mod conditions;
mod events;
mod expr;
mod resources;
mod yaml;

pub use bucket::NotificationRule;
pub use conditions::Condition;
pub use event_source_mapping::async_invoke::AsyncConfig;
pub use events::{Event, Route, Source};
pub use expr::{Expr, Names, NotHosted};
pub use resources::{
    BucketSpec, GeneratedSecret, IndexSpec, KeyElement, QueueSpec, RedrivePolicy, Resource,
    SecretSpec, Subscription, SubscriptionSpec, TableSpec, TopicSpec,
};

use expr::{Resolver, Unresolved};

use yaml::{field, invalid, scalar};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template.yaml is not YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("{at}: {what}")]
    Invalid { at: String, what: String },
    #[error("{at}: {setting} is refused: {why}")]
    NotEmulated {
        at: String,
        setting: String,
        why: String,
    },
    #[error("{at}: {what} has no value here")]
    Unresolved { at: String, what: String },
}

#[derive(Debug)]
pub struct Template {
    /// Parameter values: defaults, replaced by the overrides given to [`Template::parse`].
    pub parameters: BTreeMap<String, String>,
    /// The parameters without a default or an override.
    pub unset_parameters: Vec<String>,
    pub functions: Vec<Function>,
    /// Every resource, by logical id.
    pub resources: BTreeMap<String, Resource>,
    /// `Conditions`, by name.
    pub conditions: BTreeMap<String, Condition>,
    /// `!Sub` texts that are a bucket's own `BucketName`, to the bucket's logical id: a function
    /// that restates the name names the bucket.
    bucket_names: BTreeMap<String, String>,
}

/// A function's environment, resolved where the template runs.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// What the function's configuration reads.
    pub vars: BTreeMap<String, String>,
    /// The variables left out because their value names what is not hosted here.
    pub unset: Vec<Unset>,
}

/// A variable left out of an [`Environment`], and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unset {
    pub key: String,
    pub why: NotHosted,
}

impl std::fmt::Display for Unset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.key, self.why)
    }
}

#[derive(Debug)]
pub struct Function {
    pub logical_id: String,
    /// The cargo binary (`Metadata.BuildProperties.Binary`): which handler this is.
    pub binary: String,
    /// `Environment.Variables` (Globals' and the function's own), unresolved.
    pub environment: BTreeMap<String, Expr>,
    /// `MemorySize` in MB (the function's own, else Globals').
    pub memory_size: Option<u64>,
    pub events: Vec<Event>,
    /// How Lambda invokes it asynchronously (`EventInvokeConfig`, else Lambda's defaults).
    pub async_config: AsyncConfig,
}

impl Template {
    /// Parses `text`; `overrides` replace parameter defaults (as `--parameter-overrides` does).
    pub fn parse(
        text: &str,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Template, TemplateError> {
        let doc: Value = serde_norway::from_str(text)?;
        let mut parameters = BTreeMap::new();
        let mut unset_parameters = Vec::new();
        for (name, spec) in field(&doc, "Parameters")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
        {
            let Some(name) = scalar(name) else { continue };
            match overrides
                .get(&name)
                .cloned()
                .or_else(|| field(spec, "Default").and_then(scalar))
            {
                Some(value) => {
                    parameters.insert(name, value);
                }
                None => unset_parameters.push(name),
            }
        }
        if let Some(unknown) = overrides.keys().find(|k| !parameters.contains_key(*k)) {
            return Err(invalid(
                "Parameters",
                format!("{unknown} is not a parameter of this template"),
            ));
        }
        let conditions = conditions::parse_all(&doc)?;
        let globals = field(&doc, "Globals").and_then(|g| field(g, "Function"));
        let resources_yaml = field(&doc, "Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| invalid("template.yaml", "no Resources".into()))?;
        let mut resources = BTreeMap::new();
        let mut functions = Vec::new();
        for (id, res) in resources_yaml {
            let id = scalar(id).unwrap_or_default();
            let resource = Resource::parse(&id, res)?;
            if matches!(resource, Resource::Function) {
                functions.push(Function::parse(&id, res, globals, &parameters)?);
            }
            resources.insert(id, resource);
        }
        let bucket_names = resources
            .iter()
            .filter_map(|(id, r)| match r {
                Resource::Bucket(BucketSpec {
                    name: Some(Expr::Sub { text, variables }),
                }) if variables.is_empty() => Some((text.clone(), id.clone())),
                _ => None,
            })
            .collect();
        Ok(Template {
            parameters,
            unset_parameters,
            functions,
            resources,
            conditions,
            bucket_names,
        })
    }

    /// The function built from `binary`.
    pub fn function(&self, binary: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.binary == binary)
    }

    /// The stream mappings of the function built from `binary`.
    pub fn mappings(&self, binary: &str) -> Vec<&event_source_mapping::MappingConfig> {
        self.function(binary)
            .into_iter()
            .flat_map(|f| &f.events)
            .filter_map(|e| match &e.source {
                Source::Stream { mapping, .. } => Some(mapping),
                _ => None,
            })
            .collect()
    }

    /// The bucket notification rules of the function built from `binary`.
    pub fn notification_rules(&self, binary: &str) -> Vec<&NotificationRule> {
        self.function(binary)
            .into_iter()
            .flat_map(|f| &f.events)
            .filter_map(|e| match &e.source {
                Source::Bucket { rule, .. } => Some(rule),
                _ => None,
            })
            .collect()
    }

    /// The resources of one kind, by logical id.
    pub fn resources_where<'a, T>(
        &'a self,
        kind: impl Fn(&'a Resource) -> Option<T> + 'a,
    ) -> impl Iterator<Item = (&'a str, T)> + 'a {
        self.resources
            .iter()
            .filter_map(move |(id, r)| Some((id.as_str(), kind(r)?)))
    }

    fn resolver<'a>(&'a self, names: &'a dyn Names) -> Resolver<'a> {
        Resolver {
            parameters: &self.parameters,
            bucket_names: &self.bucket_names,
            conditions: &self.conditions,
            resources: &self.resources,
            names,
        }
    }

    /// `expr` resolved against this template's parameters and `names`; `at` says where it is, for
    /// the error.
    pub fn resolve(
        &self,
        expr: &Expr,
        names: &dyn Names,
        at: &str,
    ) -> Result<String, TemplateError> {
        self.resolver(names)
            .resolve(expr, at)
            .map_err(|e| unresolved(e, at))
    }

    /// The value of the condition `name` of `Conditions`.
    pub fn condition(&self, name: &str, names: &dyn Names) -> Result<bool, TemplateError> {
        let at = format!("Conditions.{name}");
        self.resolver(names)
            .condition(name, &at, 0)
            .map_err(|e| unresolved(e, &at))
    }

    /// `function`'s environment with every value resolved: what Lambda would set, and what the
    /// function's `Config::from_vars` reads. A variable whose value is `!Ref AWS::NoValue` is not
    /// set (as on AWS); one whose value names what `names` does not have, of a type the reader does
    /// not model, is left out and listed in [`Environment::unset`].
    pub fn environment(
        &self,
        function: &Function,
        names: &dyn Names,
    ) -> Result<Environment, TemplateError> {
        let resolver = self.resolver(names);
        let mut environment = Environment::default();
        for (key, expr) in &function.environment {
            let at = format!("{}.Environment.{key}", function.logical_id);
            match resolver.resolve(expr, &at) {
                Ok(value) => {
                    environment.vars.insert(key.clone(), value);
                }
                Err(Unresolved::NoValue) => {}
                Err(Unresolved::NotHosted(why)) => environment.unset.push(Unset {
                    key: key.clone(),
                    why,
                }),
                Err(Unresolved::Error(e)) => return Err(e),
            }
        }
        Ok(environment)
    }
}

/// Where a single value is needed, what it names must be here.
fn unresolved(e: Unresolved, at: &str) -> TemplateError {
    match e {
        Unresolved::Error(e) => e,
        Unresolved::NotHosted(why) => TemplateError::Unresolved {
            at: at.to_owned(),
            what: format!("{} ({}, not hosted here)", why.resource, why.kind),
        },
        Unresolved::NoValue => TemplateError::Unresolved {
            at: at.to_owned(),
            what: "!Ref AWS::NoValue".into(),
        },
    }
}

impl Function {
    fn parse(
        logical_id: &str,
        res: &Value,
        globals: Option<&Value>,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Function, TemplateError> {
        let binary = field(res, "Metadata")
            .and_then(|m| field(m, "BuildProperties"))
            .and_then(|b| field(b, "Binary"))
            .and_then(scalar)
            .ok_or_else(|| invalid(logical_id, "no Metadata.BuildProperties.Binary".into()))?;
        let props = field(res, "Properties");
        fn variables(v: Option<&Value>) -> Option<&Value> {
            v.and_then(|v| field(v, "Environment"))
                .and_then(|e| field(e, "Variables"))
        }
        let mut environment = BTreeMap::new();
        for vars in [variables(globals), variables(props)].into_iter().flatten() {
            for (k, v) in vars.as_mapping().into_iter().flatten() {
                if let Some(k) = scalar(k) {
                    environment.insert(k, Expr::parse(v));
                }
            }
        }
        let memory_size = match props
            .and_then(|p| field(p, "MemorySize"))
            .or_else(|| globals.and_then(|g| field(g, "MemorySize")))
        {
            None => None,
            Some(v) => Some(
                match Expr::parse(v) {
                    Expr::Text(t) => Some(t),
                    Expr::Ref(p) => parameters.get(&p).cloned(),
                    _ => None,
                }
                .and_then(|m| m.parse::<u64>().ok())
                .ok_or_else(|| invalid(logical_id, "MemorySize is not a number".into()))?,
            ),
        };
        let events = props
            .and_then(|p| field(p, "Events"))
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
            .map(|(name, ev)| Event::parse(logical_id, &scalar(name).unwrap_or_default(), ev))
            .collect::<Result<_, _>>()?;
        Ok(Function {
            logical_id: logical_id.to_owned(),
            binary,
            environment,
            memory_size,
            events,
            async_config: events::async_config(logical_id, props)?,
        })
    }
}
