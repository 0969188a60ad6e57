//! `--set path=value`: changes one value of the scenario from the command line, e.g.
//! `users.generate.count=2000`, `phases[0].duration=60s`, `clients[1].weight=2`.
//!
//! The value is written into the YAML text before it is parsed (a key the document lacks is
//! added to its mapping), so every check of the scenario applies to it as to the file, and an
//! error in it names the `--set` argument. A path the scenario does not know is refused: by
//! the walk (an item past the end of a list, a key under a plain value) or by the parser (an
//! unknown field).

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::scenario_source::{Origin, Source};

/// One step of a path: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Key(k) => write!(f, ".{k}"),
            Segment::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A parsed `--set` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SetArg {
    path: Vec<Segment>,
    value: String,
}

/// Why a `--set` argument could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetError {
    pub arg: String,
    pub message: String,
}

/// The path up to (not including) segment `n`, as written.
fn shown(path: &[Segment], n: usize) -> String {
    let mut s = String::new();
    for seg in &path[..n] {
        s.push_str(&seg.to_string());
    }
    s.trim_start_matches('.').to_string()
}

fn parse_arg(arg: &str) -> Result<SetArg, String> {
    let (path, value) = arg
        .split_once('=')
        .ok_or("expected PATH=VALUE, e.g. users.generate.count=2000")?;
    let mut segments = Vec::new();
    let path = path.trim();
    if path.is_empty() {
        return Err("the path before `=` is empty".into());
    }
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if key.is_empty() && (segments.is_empty() || rest.is_empty()) {
            return Err(format!("`{path}`: a key is empty"));
        }
        if !key.is_empty() {
            if key.contains(']') {
                return Err(format!("`{path}`: `]` without `[`"));
            }
            segments.push(Segment::Key(key.to_string()));
        }
        while !rest.is_empty() {
            let close = rest
                .find(']')
                .ok_or_else(|| format!("`{path}`: `[` without `]`"))?;
            let index: usize = rest[1..close].trim().parse().map_err(|_| {
                format!(
                    "`{path}`: `{}` is not a list index (0, 1, ...)",
                    &rest[1..close]
                )
            })?;
            segments.push(Segment::Index(index));
            rest = &rest[close + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(format!("`{path}`: expected `.` or `[` after `]`"));
            }
        }
    }
    Ok(SetArg {
        path: segments,
        value: value.to_string(),
    })
}

/// Applies each `--set` argument, in order, to the text of `source`.
pub fn apply(source: &mut Source, args: &[String]) -> Result<(), SetError> {
    for arg in args {
        let fail = |message: String| SetError {
            arg: arg.clone(),
            message,
        };
        let set = parse_arg(arg).map_err(fail)?;
        // A document that is not YAML is reported by the scenario's parser, with its position.
        let Ok(root) = serde_saphyr::from_str::<Spanned<Node>>(&source.text) else {
            return Ok(());
        };
        let edit = plan(&source.text, &root, &set).map_err(fail)?;
        source.edit(vec![(edit.0, edit.1, edit.2, Origin::Set(arg.clone()))]);
    }
    Ok(())
}

/// The edit (character offset, characters replaced, new text) that writes `set` into `text`.
fn plan(text: &str, root: &Spanned<Node>, set: &SetArg) -> Result<(usize, usize, String), String> {
    let value = yaml_value(&set.value);
    let mut node = root;
    for (n, seg) in set.path.iter().enumerate() {
        if node.referenced != node.defined {
            return Err(format!(
                "`{}` comes from a YAML alias or merge; set it where it is defined",
                shown(&set.path, n)
            ));
        }
        let here = if n == 0 {
            "the scenario".to_string()
        } else {
            format!("`{}`", shown(&set.path, n))
        };
        node = match (seg, &node.value) {
            (Segment::Key(k), Node::Map(entries)) => {
                match entries.iter().find(|(key, _)| key.value == *k) {
                    Some((_, v)) => v,
                    None => return insert(text, node, entries, &set.path[n..], &value, &here),
                }
            }
            (Segment::Index(i), Node::Seq(items)) => items.get(*i).ok_or_else(|| {
                format!(
                    "{here} has {} item(s), so `{}` does not exist",
                    items.len(),
                    shown(&set.path, n + 1)
                )
            })?,
            (Segment::Key(k), other) => {
                return Err(format!(
                    "{here} is {}, not a mapping, so it has no key `{k}`",
                    other.kind()
                ))
            }
            (Segment::Index(i), other) => {
                return Err(format!(
                    "{here} is {}, not a list, so it has no item [{i}]",
                    other.kind()
                ))
            }
        };
    }
    let path = shown(&set.path, set.path.len());
    match &node.value {
        Node::Scalar => {
            let span = node.referenced.span();
            Ok((span.offset() as usize, span.len() as usize, value))
        }
        Node::Map(entries) => Err(format!(
            "`{path}` is a mapping; set its keys one by one{}",
            entries
                .first()
                .map_or(String::new(), |(k, _)| format!(", e.g. {path}.{}", k.value))
        )),
        Node::Seq(_) => Err(format!(
            "`{path}` is a list; set its items one by one, e.g. {path}[0]"
        )),
    }
}

/// Adds the missing keys `rest` (with `value` at the end) to the mapping `map`.
fn insert(
    text: &str,
    map: &Spanned<Node>,
    entries: &[(Spanned<String>, Spanned<Node>)],
    rest: &[Segment],
    value: &str,
    here: &str,
) -> Result<(usize, usize, String), String> {
    let mut keys = Vec::new();
    for seg in rest {
        match seg {
            Segment::Key(k) => keys.push(k.as_str()),
            Segment::Index(_) => {
                return Err(format!(
                    "{here} has no `{}`, so `{}` cannot be set (add the list to the file)",
                    keys.first().copied().unwrap_or_default(),
                    rest.iter()
                        .map(|s| s.to_string())
                        .collect::<String>()
                        .trim_start_matches('.')
                ))
            }
        }
    }
    // `a: {b: {c: value}}`: flow style fits in a block or a flow mapping alike.
    let mut entry = format!("{}: {value}", keys[keys.len() - 1]);
    for k in keys[..keys.len() - 1].iter().rev() {
        entry = format!("{k}: {{{entry}}}");
    }
    let start = map.referenced.span().offset() as usize;
    let flow = text.chars().nth(start) == Some('{');
    match (entries.first(), flow) {
        (None, true) => Ok((start + 1, 0, format!(" {entry} "))),
        (None, false) => Err(format!(
            "{here} is an empty mapping that cannot be extended"
        )),
        (Some((first, _)), true) => Ok((
            first.referenced.span().offset() as usize,
            0,
            format!("{entry}, "),
        )),
        (Some((first, _)), false) => {
            // Before the first key, at its indentation.
            let indent = " ".repeat(first.referenced.column().saturating_sub(1) as usize);
            Ok((
                first.referenced.span().offset() as usize,
                0,
                format!("{entry}\n{indent}"),
            ))
        }
    }
}

/// The value as YAML text: a flow collection or a quoted string as given; a plain scalar as
/// given when it reads back as one (numbers, durations, words); anything else double-quoted.
fn yaml_value(v: &str) -> String {
    if v.starts_with(['[', '{', '"', '\'']) {
        return v.to_string();
    }
    let plain = !v.is_empty()
        && v.trim() == v
        && !v.contains([',', '[', ']', '{', '}', '#', '\n', '\r', '\t'])
        && !v.contains(": ")
        && !v.ends_with(':')
        && !v.starts_with(['?', ':', '&', '*', '!', '|', '>', '%', '@', '`'])
        && !(v.starts_with('-') && v[1..].starts_with([' ', '\0']))
        && v != "-";
    if plain {
        v.to_string()
    } else {
        let escaped = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .replace('\r', "\\r")
            .replace('\t', "\\t");
        format!("\"{escaped}\"")
    }
}

/// A YAML document as a tree of nodes with their positions.
#[derive(Debug)]
enum Node {
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
}

impl Node {
    fn kind(&self) -> &'static str {
        match self {
            Node::Map(_) => "a mapping",
            Node::Seq(_) => "a list",
            Node::Scalar => "a plain value",
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML node")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i128<E: de::Error>(self, _: i128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u128<E: de::Error>(self, _: u128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_none<E: de::Error>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(Node::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
dialect: dorm
users:
  generate: { count: 8, room_size: 4 }
phases:
  - { duration: 2s, arrival_rate: 4 }
clients:
  - name: talker
    flow:
      - join_room
  - name: idler
    weight: 0
    flow: [join_room]
";

    fn set(args: &[&str]) -> Result<String, SetError> {
        let mut s = Source::new(DOC.to_string());
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        apply(&mut s, &args)?;
        Ok(s.text)
    }

    #[test]
    fn paths_parse() {
        assert_eq!(
            parse_arg("phases[0].duration=60s").unwrap(),
            SetArg {
                path: vec![
                    Segment::Key("phases".into()),
                    Segment::Index(0),
                    Segment::Key("duration".into())
                ],
                value: "60s".into()
            }
        );
        assert_eq!(parse_arg("a[1][2]=x=y").unwrap().value, "x=y");
        for bad in [
            "count", "=3", "a..b=1", "a[x]=1", "a[1=1", "a]=1", "a[0]b=1",
        ] {
            assert!(parse_arg(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_are_replaced_where_they_stand() {
        let text = set(&[
            "users.generate.count=2000",
            "phases[0].duration=60s",
            "clients[1].weight=2",
        ])
        .unwrap();
        assert!(
            text.contains("generate: { count: 2000, room_size: 4 }"),
            "{text}"
        );
        assert!(
            text.contains("- { duration: 60s, arrival_rate: 4 }"),
            "{text}"
        );
        assert!(text.contains("    weight: 2\n"), "{text}");
    }

    #[test]
    fn missing_keys_are_added() {
        let text = set(&[
            "seed=7",
            "phases[0].ramp_to=8",
            "clients[0].weight=3",
            "server.ping_interval=5s",
        ])
        .unwrap();
        assert!(
            text.starts_with("server: {ping_interval: 5s}\nseed: 7\ndialect: dorm\n"),
            "{text}"
        );
        assert!(text.contains("- { ramp_to: 8, duration: 2s"), "{text}");
        assert!(text.contains("  - weight: 3\n    name: talker\n"), "{text}");
    }

    #[test]
    fn values_that_would_break_the_yaml_are_quoted() {
        assert_eq!(yaml_value("60s"), "60s");
        assert_eq!(yaml_value("-1"), "-1");
        assert_eq!(yaml_value("a: b"), "\"a: b\"");
        assert_eq!(yaml_value("x, y"), "\"x, y\"");
        assert_eq!(yaml_value("[1, 2]"), "[1, 2]");
        assert_eq!(yaml_value(""), "\"\"");
        let text = set(&["phases[0].name=warm up, then go"]).unwrap();
        assert!(
            text.contains("{ name: \"warm up, then go\", duration"),
            "{text}"
        );
    }

    #[test]
    fn paths_the_document_cannot_have_are_refused() {
        for (arg, says) in [
            (
                "phases[3].duration=1s",
                "has 1 item(s), so `phases[3]` does not exist",
            ),
            (
                "dialect.name=x",
                "`dialect` is a plain value, not a mapping",
            ),
            ("users[0]=x", "`users` is a mapping, not a list"),
            (
                "users=x",
                "`users` is a mapping; set its keys one by one, e.g. users.generate",
            ),
            ("phases=x", "`phases` is a list"),
            (
                "thresholds[0]=violations == 0",
                "the scenario has no `thresholds`",
            ),
        ] {
            let err = set(&[arg]).unwrap_err();
            assert_eq!(err.arg, arg);
            assert!(err.message.contains(says), "{arg}: {}", err.message);
        }
    }
}
