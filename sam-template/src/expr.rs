//! A value the template gives as an intrinsic function (`!Ref`, `!Sub`, `!GetAtt`), kept as it is
//! written until whoever runs the template says what the names stand for ([`Names`]).

use std::collections::BTreeMap;

use serde_norway::Value;

use crate::yaml::scalar;
use crate::TemplateError;

/// One value of the template, unresolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A literal (a string, number or boolean as written).
    Text(String),
    /// `!Ref Name`: a parameter, a pseudo parameter (`AWS::Region`) or a resource.
    Ref(String),
    /// `!GetAtt Resource.Attribute`.
    GetAtt { resource: String, attribute: String },
    /// `!Sub "text ${Name} ${Resource.Attribute}"`, with its own variables if it has any.
    Sub {
        text: String,
        variables: BTreeMap<String, Expr>,
    },
    /// Any other function (`!If`, `!Join`, ...): what it is, for the error if it must be resolved.
    Other(String),
}

/// What the names of a template stand for where it runs: its resources' physical names and
/// attributes, the pseudo parameters, and the secrets dynamic references read.
pub trait Names {
    /// `!Ref` of a resource: its physical name (a table's name, a topic's ARN, a queue's URL).
    fn resource(&self, logical_id: &str) -> Option<String>;
    /// `!GetAtt Resource.Attribute`.
    fn attribute(&self, logical_id: &str, attribute: &str) -> Option<String>;
    /// `AWS::Region`, `AWS::AccountId`, ...
    fn pseudo(&self, name: &str) -> Option<String>;
    /// `{{resolve:secretsmanager:ID:SecretString}}`: the secret called `id` (its physical name).
    fn secret(&self, id: &str) -> Option<String>;
}

impl Expr {
    pub(crate) fn parse(v: &Value) -> Expr {
        match v {
            Value::Tagged(t) => Expr::tagged(&t.tag.to_string(), &t.value),
            Value::Mapping(m) if m.len() == 1 => {
                let (key, value) = m.iter().next().expect("one entry");
                match key.as_str() {
                    Some("Ref") => Expr::tagged("!Ref", value),
                    Some("Fn::GetAtt") => Expr::tagged("!GetAtt", value),
                    Some("Fn::Sub") => Expr::tagged("!Sub", value),
                    Some(other) => Expr::Other(other.to_owned()),
                    None => Expr::Other("a mapping".into()),
                }
            }
            other => scalar(other).map_or_else(|| Expr::Other("a list".into()), Expr::Text),
        }
    }

    fn tagged(tag: &str, value: &Value) -> Expr {
        match (tag.trim_start_matches('!'), value) {
            ("Ref", v) => scalar(v).map_or(Expr::Other("!Ref".into()), Expr::Ref),
            ("GetAtt", Value::Sequence(parts)) if parts.len() == 2 => {
                match (scalar(&parts[0]), scalar(&parts[1])) {
                    (Some(resource), Some(attribute)) => Expr::GetAtt {
                        resource,
                        attribute,
                    },
                    _ => Expr::Other("!GetAtt".into()),
                }
            }
            ("GetAtt", v) => match scalar(v).as_deref().and_then(|s| s.split_once('.')) {
                Some((resource, attribute)) => Expr::GetAtt {
                    resource: resource.to_owned(),
                    attribute: attribute.to_owned(),
                },
                None => Expr::Other("!GetAtt".into()),
            },
            ("Sub", Value::Sequence(parts)) if parts.len() == 2 => {
                let text = scalar(&parts[0]).unwrap_or_default();
                let variables = parts[1]
                    .as_mapping()
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, v)| Some((scalar(k)?, Expr::parse(v))))
                    .collect();
                Expr::Sub { text, variables }
            }
            ("Sub", v) => Expr::Sub {
                text: scalar(v).unwrap_or_default(),
                variables: BTreeMap::new(),
            },
            (other, _) => Expr::Other(format!("!{other}")),
        }
    }

    /// The logical id a `!Ref X` or `!GetAtt X.Attribute` names.
    pub fn resource_named(&self) -> Option<&str> {
        match self {
            Expr::Ref(name) => Some(name),
            Expr::GetAtt { resource, .. } => Some(resource),
            _ => None,
        }
    }
}

/// Resolves expressions against a template's parameter values and a [`Names`].
pub(crate) struct Resolver<'a> {
    pub parameters: &'a BTreeMap<String, String>,
    /// A `!Sub` whose text is a bucket's own `BucketName` names that bucket (logical id).
    pub bucket_names: &'a BTreeMap<String, String>,
    pub names: &'a dyn Names,
}

impl Resolver<'_> {
    pub fn resolve(&self, expr: &Expr, at: &str) -> Result<String, TemplateError> {
        let unresolved = |what: String| TemplateError::Unresolved {
            at: at.to_owned(),
            what,
        };
        let value = match expr {
            Expr::Text(text) => text.clone(),
            Expr::Ref(name) => self
                .name(name)
                .ok_or_else(|| unresolved(format!("!Ref {name}")))?,
            Expr::GetAtt {
                resource,
                attribute,
            } => self
                .names
                .attribute(resource, attribute)
                .ok_or_else(|| unresolved(format!("!GetAtt {resource}.{attribute}")))?,
            Expr::Sub { text, variables } if variables.is_empty() => {
                match self.bucket_names.get(text) {
                    Some(bucket) => self
                        .names
                        .resource(bucket)
                        .ok_or_else(|| unresolved(format!("the name of {bucket}")))?,
                    None => self.substitute(text, variables, at)?,
                }
            }
            Expr::Sub { text, variables } => self.substitute(text, variables, at)?,
            Expr::Other(what) => return Err(unresolved(what.clone())),
        };
        self.dynamic_references(&value, at)
    }

    /// A parameter, a pseudo parameter, or a resource.
    fn name(&self, name: &str) -> Option<String> {
        if let Some(value) = self.parameters.get(name) {
            return Some(value.clone());
        }
        if name.starts_with("AWS::") {
            return self.names.pseudo(name);
        }
        self.names.resource(name)
    }

    fn substitute(
        &self,
        text: &str,
        variables: &BTreeMap<String, Expr>,
        at: &str,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| TemplateError::Invalid {
                at: at.to_owned(),
                what: format!("!Sub {text:?}: an unclosed ${{"),
            })?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(expr) = variables.get(name) {
                out.push_str(&self.resolve(expr, at)?);
            } else {
                let expr = match name.split_once('.') {
                    Some((resource, attribute)) if !name.starts_with("AWS::") => Expr::GetAtt {
                        resource: resource.to_owned(),
                        attribute: attribute.to_owned(),
                    },
                    _ => Expr::Ref(name.to_owned()),
                };
                out.push_str(&self.resolve(&expr, at)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `{{resolve:secretsmanager:ID:SecretString}}` (CloudFormation's dynamic reference).
    fn dynamic_references(&self, value: &str, at: &str) -> Result<String, TemplateError> {
        const OPEN: &str = "{{resolve:";
        let Some(start) = value.find(OPEN) else {
            return Ok(value.to_owned());
        };
        let end = value[start..]
            .find("}}")
            .map(|e| start + e)
            .ok_or_else(|| TemplateError::Invalid {
                at: at.to_owned(),
                what: format!("{value:?}: an unclosed dynamic reference"),
            })?;
        let reference = &value[start + OPEN.len()..end];
        let secret = match reference.split(':').collect::<Vec<_>>().as_slice() {
            ["secretsmanager", id] | ["secretsmanager", id, "SecretString"] => {
                self.names.secret(id)
            }
            _ => None,
        }
        .ok_or_else(|| TemplateError::Unresolved {
            at: at.to_owned(),
            what: format!("{{{{resolve:{reference}}}}}"),
        })?;
        let resolved = format!("{}{secret}{}", &value[..start], &value[end + 2..]);
        self.dynamic_references(&resolved, at)
    }
}
