//! `${VAR}` and `${VAR:-default}` in a scenario file, expanded from the environment before the
//! YAML is parsed (as Docker Compose does), so an expanded value is checked like any other.
//! `$$` writes one `$`; a `$` before anything else stays as it is. Comments are left alone: a
//! `#` at the start of a line or after a blank, outside quotes, starts one.

use crate::scenario_source::{Origin, Source};

/// A `${...}` that cannot be expanded, at a character offset of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    pub offset: usize,
    pub message: String,
}

/// Expands the variables of `source`, reading them with `lookup`; returns the variables read
/// from the environment with their values (a default used is not among them), in order of
/// first use.
pub fn expand(
    source: &mut Source,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, ExpandError> {
    let chars: Vec<char> = source.text.chars().collect();
    let mut edits = Vec::new();
    let mut used: Vec<(String, String)> = Vec::new();
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let after_blank = i == 0 || matches!(chars[i - 1], ' ' | '\t' | '\n');
        match c {
            '\n' => quote = None,
            '#' if quote.is_none() && after_blank => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '"' | '\'' if quote.is_none() && opens_scalar(&chars, i) => quote = Some(c),
            '"' if quote == Some('"') && !escaped(&chars, i) => quote = None,
            '\'' if quote == Some('\'') => quote = None,
            '$' if chars.get(i + 1) == Some(&'$') => {
                edits.push((i, 2, "$".to_string(), Origin::Escape));
                i += 2;
                continue;
            }
            '$' if chars.get(i + 1) == Some(&'{') => {
                let close = chars[i + 2..]
                    .iter()
                    .take_while(|c| **c != '\n')
                    .position(|c| *c == '}')
                    .ok_or_else(|| ExpandError {
                        offset: i,
                        message:
                            "`${` is not closed by `}` on its line (write `$$` for a dollar sign)"
                                .into(),
                    })?;
                let inner: String = chars[i + 2..i + 2 + close].iter().collect();
                let (name, default) = match inner.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (inner.as_str(), None),
                };
                if !is_name(name) {
                    return Err(ExpandError {
                        offset: i,
                        message: format!(
                            "`${{{inner}}}`: `{name}` is not a variable name (letters, digits and _, not starting with a digit); write `${{NAME}}` or `${{NAME:-default}}`"
                        ),
                    });
                }
                let value = match (lookup(name), default) {
                    (Some(v), Some(d)) if v.is_empty() => d.to_string(),
                    (Some(v), _) => {
                        if !used.iter().any(|(n, _)| n == name) {
                            used.push((name.to_string(), v.clone()));
                        }
                        v
                    }
                    (None, Some(d)) => d.to_string(),
                    (None, None) => {
                        return Err(ExpandError {
                            offset: i,
                            message: format!(
                                "environment variable `{name}` is not set (give it a default: `${{{name}:-value}}`)"
                            ),
                        })
                    }
                };
                edits.push((i, close + 3, value, Origin::Variable(name.to_string())));
                i += close + 3;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    source.edit(edits);
    Ok(used)
}

/// A quote opens a quoted scalar where a value may begin.
fn opens_scalar(chars: &[char], i: usize) -> bool {
    i == 0
        || matches!(
            chars[i - 1],
            ' ' | '\t' | '\n' | '[' | '{' | ',' | ':' | '-'
        )
}

/// A `"` after an odd number of backslashes is part of the string.
fn escaped(chars: &[char], i: usize) -> bool {
    chars[..i].iter().rev().take_while(|c| **c == '\\').count() % 2 == 1
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario_source::Place;

    fn env(name: &str) -> Option<String> {
        match name {
            "COUNT" => Some("2000".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn expanded(text: &str) -> Result<(String, Vec<(String, String)>), ExpandError> {
        let mut s = Source::new(text.to_string());
        let used = expand(&mut s, env)?;
        Ok((s.text, used))
    }

    #[test]
    fn variables_defaults_and_escapes() {
        let (text, used) =
            expanded("count: ${COUNT}\nrate: ${RATE:-4}\nname: \"$$HOME $5\"\n").unwrap();
        assert_eq!(text, "count: 2000\nrate: 4\nname: \"$HOME $5\"\n");
        assert_eq!(used, vec![("COUNT".to_string(), "2000".to_string())]);
        // `:-` also replaces an empty value, as in the shell; plain `${EMPTY}` is empty.
        assert_eq!(expanded("a: ${EMPTY:-x}${EMPTY}").unwrap().0, "a: x");
    }

    #[test]
    fn comments_are_left_alone() {
        let text = "# needs ${NOT_SET}\na: 1 # ${NOT_SET}\nb: \"x # ${COUNT}\"\n";
        assert_eq!(
            expanded(text).unwrap().0,
            "# needs ${NOT_SET}\na: 1 # ${NOT_SET}\nb: \"x # 2000\"\n"
        );
    }

    #[test]
    fn an_unset_variable_is_located_at_its_dollar() {
        let text = "a: 1\nphases:\n  - { duration: ${DURATION}, arrival_rate: 4 }\n";
        let mut s = Source::new(text.to_string());
        let err = expand(&mut s, env).unwrap_err();
        assert!(err.message.contains("`DURATION` is not set"), "{err:?}");
        let (line, column) = crate::scenario_source::line_column(text, err.offset);
        assert_eq!((line, column), (3, 17));
    }

    #[test]
    fn malformed_references_are_refused() {
        for (text, says) in [
            ("a: ${COUNT", "not closed"),
            ("a: ${1X}", "not a variable name"),
            ("a: ${}", "not a variable name"),
            ("a: ${X Y}", "not a variable name"),
        ] {
            let err = expanded(text).unwrap_err();
            assert!(err.message.contains(says), "{text}: {err:?}");
            assert_eq!(err.offset, 3, "{text}");
        }
    }

    #[test]
    fn a_position_in_a_value_points_at_the_variable() {
        let mut s = Source::new("x: 1\ncount: ${COUNT}\n".to_string());
        expand(&mut s, env).unwrap();
        assert_eq!(
            s.place(2, 10),
            Place::File {
                line: 2,
                column: 8,
                note: Some("in the value of ${COUNT}".into())
            }
        );
    }
}
