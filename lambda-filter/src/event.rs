//! The record as AWS sees it when matching: field names split at dots.
//!
//! AWS flattens a record into dotted paths, so `{"a.b": 1}` and `{"a": {"b": 1}}` both hold the
//! field `a.b`. This view splits every key at its dots and merges the objects that meet at one
//! path, keeping arrays as they are (matching needs their elements apart). Like AWS's engine,
//! it keeps only the fields a pattern can name.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// The values found at one path, all present at once (usually one).
pub(crate) type Found<'a> = Vec<Node<'a>>;

#[derive(Debug)]
pub(crate) enum Node<'a> {
    Scalar(&'a Value),
    Object(Fields<'a>),
    Array(Vec<Node<'a>>),
}

#[derive(Debug, Default)]
pub(crate) struct Fields<'a>(HashMap<&'a str, Found<'a>>);

/// What patterns can name: how many levels deep, and with which field names.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reach {
    pub(crate) depth: usize,
    pub(crate) names: HashSet<String>,
}

impl<'a> Node<'a> {
    /// The view of `value` as far as `reach` goes. A field deeper than the deepest pattern
    /// path, or with a name no pattern uses, cannot be named, so it is left out; that also
    /// bounds what a large record or a hostile key like `"a.a.a…"` costs.
    pub(crate) fn new(value: &'a Value, reach: &Reach) -> Node<'a> {
        Node::within(value, reach, reach.depth)
    }

    fn within(value: &'a Value, reach: &Reach, depth: usize) -> Node<'a> {
        match value {
            Value::Object(map) => {
                let mut fields = Fields::default();
                for (key, value) in map {
                    fields.insert_dotted(key, value, reach, depth);
                }
                Node::Object(fields)
            }
            Value::Array(items) => Node::Array(
                items
                    .iter()
                    .map(|v| Node::within(v, reach, depth))
                    .collect(),
            ),
            scalar => Node::Scalar(scalar),
        }
    }
}

impl<'a> Fields<'a> {
    pub(crate) fn get(&self, name: &str) -> &[Node<'a>] {
        self.0.get(name).map_or(&[], Vec::as_slice)
    }

    /// Adds `value` under the dotted `key`, if a pattern can name it within `depth` levels.
    fn insert_dotted(&mut self, key: &'a str, value: &'a Value, reach: &Reach, depth: usize) {
        let mut levels = 0;
        for segment in key.split('.') {
            levels += 1;
            if levels > depth || !reach.names.contains(segment) {
                return;
            }
        }
        let mut segments = key.split('.');
        let last = segments
            .next_back()
            .expect("split yields at least one segment");
        let parent = segments.fold(self, |fields, segment| fields.object_at(segment));
        parent.push(last, Node::within(value, reach, depth - levels));
    }

    /// The object at `name`, created if none is there yet.
    fn object_at(&mut self, name: &'a str) -> &mut Fields<'a> {
        let found = self.0.entry(name).or_default();
        let index = match found.iter().position(|n| matches!(n, Node::Object(_))) {
            Some(index) => index,
            None => {
                found.push(Node::Object(Fields::default()));
                found.len() - 1
            }
        };
        match &mut found[index] {
            Node::Object(fields) => fields,
            _ => unreachable!("position found an object"),
        }
    }

    /// Adds a node at `name`, merging it into the object already there if both are objects.
    fn push(&mut self, name: &'a str, node: Node<'a>) {
        match node {
            Node::Object(fields) => self.object_at(name).merge(fields),
            other => self.0.entry(name).or_default().push(other),
        }
    }

    fn merge(&mut self, other: Fields<'a>) {
        for (name, found) in other.0 {
            for node in found {
                self.push(name, node);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn root<'a>(node: &'a Node<'a>) -> &'a Fields<'a> {
        match node {
            Node::Object(fields) => fields,
            other => panic!("not an object: {other:?}"),
        }
    }

    fn object<'a>(found: &'a [Node<'a>]) -> &'a Fields<'a> {
        match found {
            [Node::Object(fields)] => fields,
            other => panic!("not one object: {other:?}"),
        }
    }

    fn reach(depth: usize, names: &[&str]) -> Reach {
        Reach {
            depth,
            names: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn dotted_keys_and_nested_objects_merge() {
        let value = json!({"a.b": 1, "a": {"c": 2, "b": 3}});
        let node = Node::new(&value, &reach(5, &["a", "b", "c"]));
        let a = object(root(&node).get("a"));
        assert!(matches!(a.get("b"), [Node::Scalar(_), Node::Scalar(_)]));
        assert!(matches!(a.get("c"), [Node::Scalar(_)]));
    }

    #[test]
    fn fields_past_the_depth_are_left_out() {
        let value = json!({"a.b.c": 1, "x": {"y": {"z": 2}}});
        let node = Node::new(&value, &reach(2, &["a", "b", "c", "x", "y", "z"]));
        assert!(root(&node).get("a").is_empty());
        let y = object(object(root(&node).get("x")).get("y"));
        assert!(y.get("z").is_empty());
    }

    #[test]
    fn fields_no_pattern_names_are_left_out() {
        let value = json!({"a": {"b": 1, "other": 2}, "a.other": 3, "unused": 4});
        let node = Node::new(&value, &reach(5, &["a", "b"]));
        assert!(root(&node).get("unused").is_empty());
        let a = object(root(&node).get("a"));
        assert!(matches!(a.get("b"), [Node::Scalar(_)]));
        assert!(a.get("other").is_empty());
    }
}
