//! The record as AWS sees it when matching: field names split at dots.
//!
//! AWS flattens a record into dotted paths, so `{"a.b": 1}` and `{"a": {"b": 1}}` both hold the
//! field `a.b`. This view splits every key at its dots and merges the objects that meet at one
//! path, keeping arrays as they are (matching needs their elements apart).

use std::collections::HashMap;

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

impl<'a> Node<'a> {
    /// The view of `value`, down to `depth` levels of fields: deeper fields cannot be named by
    /// a pattern of that depth, so they are left out (which also bounds what a hostile key like
    /// `"a.a.a…"` costs).
    pub(crate) fn new(value: &'a Value, depth: usize) -> Node<'a> {
        match value {
            Value::Object(map) => {
                let mut fields = Fields::default();
                for (key, value) in map {
                    fields.insert_dotted(key, value, depth);
                }
                Node::Object(fields)
            }
            Value::Array(items) => Node::Array(items.iter().map(|v| Node::new(v, depth)).collect()),
            scalar => Node::Scalar(scalar),
        }
    }
}

impl<'a> Fields<'a> {
    pub(crate) fn get(&self, name: &str) -> &[Node<'a>] {
        self.0.get(name).map_or(&[], Vec::as_slice)
    }

    /// Adds `value` under the dotted `key`, within `depth` levels.
    fn insert_dotted(&mut self, key: &'a str, value: &'a Value, depth: usize) {
        let levels = key.split('.').count();
        if levels > depth {
            return;
        }
        let mut segments = key.split('.');
        let last = segments
            .next_back()
            .expect("split yields at least one segment");
        let parent = segments.fold(self, |fields, segment| fields.object_at(segment));
        parent.push(last, Node::new(value, depth - levels));
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

    #[test]
    fn dotted_keys_and_nested_objects_merge() {
        let value = json!({"a.b": 1, "a": {"c": 2, "b": 3}});
        let node = Node::new(&value, 5);
        let a = object(root(&node).get("a"));
        assert!(matches!(a.get("b"), [Node::Scalar(_), Node::Scalar(_)]));
        assert!(matches!(a.get("c"), [Node::Scalar(_)]));
    }

    #[test]
    fn fields_past_the_depth_are_left_out() {
        let value = json!({"a.b.c": 1, "x": {"y": {"z": 2}}});
        let node = Node::new(&value, 2);
        assert!(root(&node).get("a").is_empty());
        let y = object(object(root(&node).get("x")).get("y"));
        assert!(y.get("z").is_empty());
    }
}
