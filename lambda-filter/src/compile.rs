//! A pattern object turned into rules: one per `$or` combination, each a tree of field paths.
//!
//! This follows event-ruler's `JsonRuleCompiler`: fields are named by their path joined with
//! dots, so `{"a": {"b": [..]}}` and `{"a.b": [..]}` name the same field; a field named again
//! in the same combination replaces the earlier conditions (the last one wins); and `$or`
//! copies the combinations built so far into each of its branches.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::condition::{parse_conditions, Condition};
use crate::error::{invalid, FilterError, MAX_OR_COMBINATIONS};
use crate::event::Reach;
use crate::json::Json;

/// One combination as a tree: the path `a.b.c` is the node reached by `a`, `b`, `c`.
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleNode {
    /// Conditions on the values at this node's path (ORed), if the rule names this path.
    pub(crate) conditions: Option<Arc<[Condition]>>,
    /// Fields below this path; all of them must match, within one element of any array above.
    pub(crate) children: BTreeMap<String, RuleNode>,
}

/// Field names event-ruler keeps for operators, which `$or` branches may not use as fields.
const RESERVED_IN_OR: &[&str] = &[
    "exactly",
    "equals-ignore-case",
    "prefix",
    "suffix",
    "anything-but",
    "exists",
    "wildcard",
    "numeric",
    "cidr",
    "=",
    "<",
    "<=",
    ">",
    ">=",
    "regex",
    "not-wildcard",
    "not-equals-ignore-case",
    "date-after",
    "date-on-or-after",
    "date-before",
    "date-on-or-before",
    "in-date-range",
    "ip-address-in-range",
    "ip-address-not-in-range",
];

/// One combination before it becomes a tree: `(dotted path, conditions)`, each path once.
#[derive(Debug, Clone, Default)]
struct FlatRule(Vec<(Arc<str>, Arc<[Condition]>)>);

impl FlatRule {
    fn put(&mut self, path: &Arc<str>, conditions: &Arc<[Condition]>) {
        match self.0.iter_mut().find(|(p, _)| p == path) {
            Some(slot) => slot.1 = conditions.clone(),
            None => self.0.push((path.clone(), conditions.clone())),
        }
    }

    fn into_tree(self) -> RuleNode {
        let mut root = RuleNode::default();
        for (path, conditions) in self.0 {
            let node = path.split('.').fold(&mut root, |node, segment| {
                node.children.entry(segment.to_owned()).or_default()
            });
            node.conditions = Some(conditions);
        }
        root
    }
}

/// Compiles the root object of a pattern.
pub(crate) fn compile(entries: &[(String, Json)]) -> Result<Vec<RuleNode>, FilterError> {
    let mut rules = Vec::new();
    add_object(&mut rules, entries, "", false)?;
    Ok(rules.into_iter().map(FlatRule::into_tree).collect())
}

/// How deep the rules' paths go and which field names they use.
pub(crate) fn reach(rules: &[RuleNode]) -> Reach {
    fn visit(node: &RuleNode, level: usize, reach: &mut Reach) {
        reach.depth = reach.depth.max(level);
        for (name, child) in &node.children {
            reach.names.insert(name.clone());
            visit(child, level + 1, reach);
        }
    }
    let mut reach = Reach::default();
    rules.iter().for_each(|rule| visit(rule, 0, &mut reach));
    reach
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn add_object(
    rules: &mut Vec<FlatRule>,
    entries: &[(String, Json)],
    path: &str,
    in_or: bool,
) -> Result<(), FilterError> {
    // An empty object names no field, so it would match anything; AWS refuses it.
    if entries.is_empty() {
        return Err(invalid(
            path,
            "empty object: a pattern must name at least one field",
        ));
    }
    for (key, value) in entries {
        if key == "$or" {
            add_or(rules, value, path)?;
            continue;
        }
        let here = join(path, key);
        if in_or && RESERVED_IN_OR.contains(&key.as_str()) {
            return Err(invalid(
                &here,
                format!("`{key}` is reserved for an operator and cannot name a field inside `$or`"),
            ));
        }
        match value {
            Json::Object(inner) => add_object(rules, inner, &here, in_or)?,
            Json::Array(items) => {
                let conditions: Arc<[Condition]> = parse_conditions(items, &here)?.into();
                let here: Arc<str> = here.into();
                if rules.is_empty() {
                    rules.push(FlatRule::default());
                }
                rules.iter_mut().for_each(|r| r.put(&here, &conditions));
            }
            other => {
                return Err(invalid(
                    &here,
                    format!(
                        "expected an array of match conditions or a nested object, got {}",
                        other.type_name()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `$or` at `path`: each branch continues every combination built so far.
fn add_or(rules: &mut Vec<FlatRule>, value: &Json, path: &str) -> Result<(), FilterError> {
    let at = join(path, "$or");
    let Json::Array(branches) = value else {
        return Err(invalid(&at, "`$or` must be an array of pattern objects"));
    };
    if branches.len() < 2 {
        return Err(invalid(&at, "`$or` needs at least two pattern objects"));
    }
    let before = std::mem::take(rules);
    for (i, branch) in branches.iter().enumerate() {
        let Json::Object(entries) = branch else {
            return Err(invalid(
                &format!("{at}[{i}]"),
                format!("`$or` branches must be objects, got {}", branch.type_name()),
            ));
        };
        let mut combinations = if before.is_empty() {
            vec![FlatRule::default()]
        } else {
            before.clone()
        };
        add_object(&mut combinations, entries, path, true)?;
        if rules.len() + combinations.len() > MAX_OR_COMBINATIONS {
            return Err(FilterError::TooManyCombinations);
        }
        rules.extend(combinations);
    }
    Ok(())
}
