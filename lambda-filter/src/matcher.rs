//! One rule (one `$or` combination) against the record's view.
//!
//! A rule node matches the values found at its path when its own conditions hold for them and
//! all its child fields match within one candidate object. Candidates are the object at the
//! path and each object inside arrays there, so fields under an array must come from the same
//! element: AWS's array consistency (event-ruler's `rulesForJSONEvent`, "JSON Array Matching"
//! in its README).

use serde_json::Value;

use crate::compile::RuleNode;
use crate::condition::Condition;
use crate::event::{Fields, Node};

impl RuleNode {
    /// `found`: every node of the record at this rule node's path.
    pub(crate) fn matches(&self, found: &[&Node<'_>]) -> bool {
        self.conditions_hold(found) && self.children_match(found)
    }

    fn conditions_hold(&self, found: &[&Node<'_>]) -> bool {
        let Some(conditions) = &self.conditions else {
            return true;
        };
        let mut leaves = Vec::new();
        found
            .iter()
            .for_each(|node| collect_leaves(node, &mut leaves));
        conditions.iter().any(|condition| match condition {
            // Objects are inner nodes: only leaves make a field exist.
            Condition::Exists(wanted) => *wanted != leaves.is_empty(),
            other => leaves.iter().any(|leaf| other.matches_value(leaf)),
        })
    }

    fn children_match(&self, found: &[&Node<'_>]) -> bool {
        if self.children.is_empty() {
            return true;
        }
        let candidates = candidates(found);
        if candidates.is_empty() {
            // Nothing here: only `exists: false` below can still match.
            return self.children_match_in(&Candidate::default());
        }
        candidates.iter().any(|c| self.children_match_in(c))
    }

    fn children_match_in(&self, candidate: &Candidate<'_, '_>) -> bool {
        self.children
            .iter()
            .all(|(name, child)| child.matches(&candidate.get(name)))
    }
}

/// The values at a path that conditions test: scalars, and the scalars inside arrays there.
fn collect_leaves<'a>(node: &Node<'a>, out: &mut Vec<&'a Value>) {
    match node {
        Node::Scalar(value) => out.push(value),
        Node::Array(items) => items.iter().for_each(|item| collect_leaves(item, out)),
        Node::Object(_) => {}
    }
}

/// Where a rule node's children are looked up: the object at the path (`shared`), one object
/// from an array there (`element`), or both, since fields outside the array go with any element.
#[derive(Default)]
struct Candidate<'n, 'a> {
    shared: Option<&'n Fields<'a>>,
    element: Option<&'n Fields<'a>>,
}

impl<'n, 'a> Candidate<'n, 'a> {
    fn get(&self, name: &str) -> Vec<&'n Node<'a>> {
        [self.shared, self.element]
            .into_iter()
            .flatten()
            .flat_map(|fields| fields.get(name))
            .collect()
    }
}

fn candidates<'n, 'a>(found: &[&'n Node<'a>]) -> Vec<Candidate<'n, 'a>> {
    let shared = found.iter().find_map(|node| match node {
        Node::Object(fields) => Some(fields),
        _ => None,
    });
    let mut elements = Vec::new();
    for node in found {
        if let Node::Array(items) = node {
            items
                .iter()
                .for_each(|item| collect_objects(item, &mut elements));
        }
    }
    shared
        .map(|shared| Candidate {
            shared: Some(shared),
            element: None,
        })
        .into_iter()
        .chain(elements.into_iter().map(|element| Candidate {
            shared,
            element: Some(element),
        }))
        .collect()
}

/// The objects inside an array element, descending into nested arrays.
fn collect_objects<'n, 'a>(node: &'n Node<'a>, out: &mut Vec<&'n Fields<'a>>) {
    match node {
        Node::Object(fields) => out.push(fields),
        Node::Array(items) => items.iter().for_each(|item| collect_objects(item, out)),
        Node::Scalar(_) => {}
    }
}
