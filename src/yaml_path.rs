//! Where a node of a YAML document stands (line and column), found by the path that an error
//! message names (`clients[talker].flow[2].loop.steps[0]`): checks that need the whole scenario
//! run after parsing, when the parser's locations are gone, and still point at the node.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

/// A YAML document reduced to its shape, every node with its location; scalars keep their text
/// (a list item is found by its `name`).
enum Node {
    Map(Vec<(Option<String>, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar(Option<String>),
}

/// The line and column (1-based) of the node at `path`, if the text parses and has it.
///
/// `path` is `key`, `key[i]` (the i-th item of a list) or `key[name]` (the item whose `name`
/// is `name`), joined with dots.
pub(crate) fn locate(text: &str, path: &str) -> Option<(u64, u64)> {
    let root: Spanned<Node> = serde_saphyr::from_str(text).ok()?;
    let mut at = &root;
    for segment in path.split('.') {
        let (key, selectors) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            at = field(at, key)?;
        }
        for selector in selectors.split_terminator(']') {
            at = item(at, selector.strip_prefix('[')?)?;
        }
    }
    Some((at.referenced.line(), at.referenced.column()))
}

/// The location of the node an error message starts with: `` field `PATH`: … `` or
/// `PATH: …` (also `PATH (op): …`).
pub(crate) fn locate_message(text: &str, message: &str) -> Option<(u64, u64)> {
    let path = match message.strip_prefix("field `") {
        Some(rest) => &rest[..rest.find('`')?],
        None => &message[..message.find([':', ' '])?],
    };
    if !path.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    locate(text, path)
}

fn field<'a>(node: &'a Spanned<Node>, key: &str) -> Option<&'a Spanned<Node>> {
    match &node.value {
        Node::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_deref() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// An item of a list by its `name`, else by its index.
fn item<'a>(node: &'a Spanned<Node>, selector: &str) -> Option<&'a Spanned<Node>> {
    let Node::Seq(items) = &node.value else {
        return None;
    };
    let named = |i: &&Spanned<Node>| matches!(field(i, "name"), Some(n) if matches!(&n.value, Node::Scalar(Some(s)) if s == selector));
    items
        .iter()
        .find(named)
        .or_else(|| items.get(selector.parse::<usize>().ok()?))
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

/// A mapping key: its text when it is a scalar.
struct Key(Option<String>);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Node::deserialize(d)? {
            Node::Scalar(s) => Ok(Key(s)),
            _ => Ok(Key(None)),
        }
    }
}

struct NodeVisitor;

macro_rules! scalar {
    ($($name:ident: $ty:ty),*) => {$(
        fn $name<E: de::Error>(self, v: $ty) -> Result<Node, E> {
            Ok(Node::Scalar(Some(v.to_string())))
        }
    )*};
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    scalar!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar(None))
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar(None))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some((Key(k), v)) = map.next_entry::<Key, Spanned<Node>>()? {
            entries.push((k, v));
        }
        Ok(Node::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
name: x
clients:
  - name: first
    flow: [join_room]
  - name: talker
    flow:
      - join_room
      - loop:
          count: 2
          steps:
            - dance
";

    #[test]
    fn a_path_finds_its_node() {
        assert_eq!(
            locate(TEXT, "clients[talker].flow[1].loop.steps[0]"),
            Some((11, 15))
        );
        assert_eq!(locate(TEXT, "clients[1].flow[0]"), Some((7, 9)));
        assert_eq!(locate(TEXT, "clients[first].flow"), Some((4, 11)));
        assert_eq!(locate(TEXT, "clients[nobody].flow"), None);
        assert_eq!(locate(TEXT, "clients[talker].flow[9]"), None);
    }

    #[test]
    fn a_message_names_its_node() {
        assert_eq!(
            locate_message(
                TEXT,
                "clients[talker].flow[1].loop.steps[0]: `dance` is not an operation"
            ),
            Some((11, 15))
        );
        assert_eq!(
            locate_message(TEXT, "field `clients[first].flow`: at least one"),
            Some((4, 11))
        );
        assert_eq!(locate_message(TEXT, "the scenario plans nothing"), None);
    }
}
