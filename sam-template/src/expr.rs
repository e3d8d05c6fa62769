//! A value the template gives as an intrinsic function (`!Ref`, `!Sub`, `!GetAtt`, `!If`), kept as
//! it is written until whoever runs the template says what the names stand for ([`Names`]).
//!
//! A name the host has no value for, of a resource the template declares with a type the reader
//! does not model (a CloudFront distribution, an IAM role), is not an error but [`NotHosted`]: the
//! value cannot exist where the template runs, and whoever resolves it says what to do (the
//! engine leaves such a variable unset). `!Ref AWS::NoValue` removes the value, as it does on AWS.

use std::collections::BTreeMap;

use serde_norway::Value;

use crate::conditions::Condition;
use crate::resources::Resource;
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
    /// `!If [Condition, then, otherwise]`: one of two values, by a condition of the template's
    /// `Conditions`.
    If {
        condition: String,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    /// Any other function (`!Join`, `!Select`, ...): what it is, for the error if it must be
    /// resolved.
    Other(String),
}

/// A value that names a resource the host does not have: `resource`, of type `kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotHosted {
    pub resource: String,
    pub kind: String,
}

impl std::fmt::Display for NotHosted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "it names {} ({})", self.resource, self.kind)
    }
}

/// Why a value was not resolved to text.
pub(crate) enum Unresolved {
    Error(TemplateError),
    /// It names a resource the host does not have.
    NotHosted(NotHosted),
    /// `!Ref AWS::NoValue`: the value is removed.
    NoValue,
}

impl From<TemplateError> for Unresolved {
    fn from(e: TemplateError) -> Self {
        Unresolved::Error(e)
    }
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
                    Some("Fn::If") => Expr::tagged("!If", value),
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
            ("If", Value::Sequence(parts)) if parts.len() == 3 => match scalar(&parts[0]) {
                Some(condition) => Expr::If {
                    condition,
                    then: Box::new(Expr::parse(&parts[1])),
                    otherwise: Box::new(Expr::parse(&parts[2])),
                },
                None => Expr::Other("!If".into()),
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
    pub conditions: &'a BTreeMap<String, Condition>,
    pub resources: &'a BTreeMap<String, Resource>,
    pub names: &'a dyn Names,
}

impl Resolver<'_> {
    pub fn resolve(&self, expr: &Expr, at: &str) -> Result<String, Unresolved> {
        let unresolved = |what: String| {
            Unresolved::Error(TemplateError::Unresolved {
                at: at.to_owned(),
                what,
            })
        };
        let value = match expr {
            Expr::Text(text) => text.clone(),
            Expr::Ref(name) if name == "AWS::NoValue" => return Err(Unresolved::NoValue),
            Expr::Ref(name) => match self.name(name) {
                Some(value) => value,
                None => {
                    return Err(self
                        .not_hosted(name)
                        .unwrap_or_else(|| unresolved(format!("!Ref {name}"))))
                }
            },
            Expr::GetAtt {
                resource,
                attribute,
            } => match self.names.attribute(resource, attribute) {
                Some(value) => value,
                None => {
                    return Err(self
                        .not_hosted(resource)
                        .unwrap_or_else(|| unresolved(format!("!GetAtt {resource}.{attribute}"))))
                }
            },
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
            Expr::If {
                condition,
                then,
                otherwise,
            } => {
                let chosen = if self.condition(condition, at, 0)? {
                    then
                } else {
                    otherwise
                };
                return self.resolve(chosen, at);
            }
            Expr::Other(what) => return Err(unresolved(what.clone())),
        };
        Ok(self.dynamic_references(&value, at)?)
    }

    /// The value of the template's condition `name`.
    pub fn condition(&self, name: &str, at: &str, depth: usize) -> Result<bool, Unresolved> {
        let condition = self
            .conditions
            .get(name)
            .ok_or_else(|| TemplateError::Invalid {
                at: at.to_owned(),
                what: format!("no condition {name} in Conditions"),
            })?;
        self.evaluate(condition, at, depth)
    }

    fn evaluate(&self, condition: &Condition, at: &str, depth: usize) -> Result<bool, Unresolved> {
        // CloudFormation refuses conditions that refer to themselves; so does a bound on depth.
        if depth > 32 {
            return Err(Unresolved::Error(TemplateError::Invalid {
                at: at.to_owned(),
                what: "conditions nest more than 32 deep (a condition refers to itself?)".into(),
            }));
        }
        Ok(match condition {
            Condition::Equals(a, b) => self.resolve(a, at)? == self.resolve(b, at)?,
            Condition::Not(c) => !self.evaluate(c, at, depth + 1)?,
            Condition::And(all) => {
                for c in all {
                    if !self.evaluate(c, at, depth + 1)? {
                        return Ok(false);
                    }
                }
                true
            }
            Condition::Or(any) => {
                for c in any {
                    if self.evaluate(c, at, depth + 1)? {
                        return Ok(true);
                    }
                }
                false
            }
            Condition::Named(name) => self.condition(name, at, depth + 1)?,
        })
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

    /// `name` is a resource of the template of a type the reader does not model, which the host
    /// therefore cannot have.
    fn not_hosted(&self, name: &str) -> Option<Unresolved> {
        match self.resources.get(name)? {
            Resource::Other { kind } => Some(Unresolved::NotHosted(NotHosted {
                resource: name.to_owned(),
                kind: kind.clone(),
            })),
            _ => None,
        }
    }

    fn substitute(
        &self,
        text: &str,
        variables: &BTreeMap<String, Expr>,
        at: &str,
    ) -> Result<String, Unresolved> {
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
