//! Payload shapes as data, and the one generic checker that reads them.

use serde_json::Value;

use super::json::Json;

/// The type of a payload value.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    Str,
    StrOrNull,
    Int,
    /// An id: a non-negative integer or a string.
    Id,
    /// A datetime string: RFC 3339 preferred, `YYYY-MM-DD HH:MM:SS[.f]` accepted (INFO).
    Time,
    /// One of these strings, or null when `nullable`.
    Enum {
        values: &'static [&'static str],
        nullable: bool,
    },
    Obj(&'static [Field]),
    Arr(&'static Ty),
}

/// A field of an object.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
    /// Required only by the reference server, not by the seed: its absence is a
    /// [`Problem::Unstated`] (SHOULD), not a [`Problem::Shape`].
    pub ours: bool,
}

impl Field {
    pub const fn req(name: &'static str, ty: Ty) -> Field {
        Field {
            name,
            ty,
            required: true,
            ours: false,
        }
    }

    /// A field the reference server sends but the seed's payload does not have.
    pub const fn ours(name: &'static str, ty: Ty) -> Field {
        Field {
            name,
            ty,
            required: true,
            ours: true,
        }
    }
}

/// One thing wrong with a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// MUST: a required field is missing or has the wrong type.
    Shape(String),
    /// INFO: a datetime in the accepted non-RFC 3339 form.
    TimeFormat(String),
    /// SHOULD: a field that only the reference server requires is missing.
    Unstated(String),
}

/// Where a value sits in a payload; rendered only when a problem is reported, so a clean
/// payload is checked without allocating.
#[derive(Clone, Copy)]
pub enum Path<'a> {
    Root(&'a str),
    Field(&'a Path<'a>, &'static str),
    Index(&'a Path<'a>, usize),
}

impl std::fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Root(name) => f.write_str(name),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// What the checker needs to know about a JSON value: implemented by `serde_json::Value` and
/// by the borrowed [`Json`] of the receive path, so both are judged by the same code.
pub trait Node {
    fn is_string(&self) -> bool;
    fn is_null(&self) -> bool;
    fn is_int(&self) -> bool;
    fn is_u64(&self) -> bool;
    fn as_str(&self) -> Option<&str>;
    /// None: not an object; Some(None): an object without `name`.
    fn member(&self, name: &str) -> Option<Option<&Self>>;
    /// None: not an array.
    fn items(&self) -> Option<&[Self]>
    where
        Self: Sized;
    /// A short rendering for messages (see [`excerpt`]).
    fn excerpt(&self) -> String;
}

impl Node for Value {
    fn is_string(&self) -> bool {
        Value::is_string(self)
    }
    fn is_null(&self) -> bool {
        Value::is_null(self)
    }
    fn is_int(&self) -> bool {
        Value::is_u64(self) || Value::is_i64(self)
    }
    fn is_u64(&self) -> bool {
        Value::is_u64(self)
    }
    fn as_str(&self) -> Option<&str> {
        Value::as_str(self)
    }
    fn member(&self, name: &str) -> Option<Option<&Value>> {
        self.as_object().map(|m| m.get(name))
    }
    fn items(&self) -> Option<&[Value]> {
        self.as_array().map(Vec::as_slice)
    }
    fn excerpt(&self) -> String {
        excerpt(self)
    }
}

impl<'a> Node for Json<'a> {
    fn is_string(&self) -> bool {
        Json::is_string(self)
    }
    fn is_null(&self) -> bool {
        Json::is_null(self)
    }
    fn is_int(&self) -> bool {
        Json::is_u64(self) || Json::is_i64(self)
    }
    fn is_u64(&self) -> bool {
        Json::is_u64(self)
    }
    fn as_str(&self) -> Option<&str> {
        Json::as_str(self)
    }
    fn member(&self, name: &str) -> Option<Option<&Json<'a>>> {
        match self {
            Json::Obj(_) => Some(self.get(name)),
            _ => None,
        }
    }
    fn items(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Arr(items) => Some(items),
            _ => None,
        }
    }
    fn excerpt(&self) -> String {
        excerpt(&self.to_value())
    }
}

/// Checks `value` against `ty`; `root` names the value in messages.
pub fn check<N: Node>(value: &N, ty: &Ty, root: &str, out: &mut Vec<Problem>) {
    check_at(value, ty, &Path::Root(root), out)
}

fn check_at<N: Node>(value: &N, ty: &Ty, path: &Path<'_>, out: &mut Vec<Problem>) {
    let bad = |out: &mut Vec<Problem>, what: &str| {
        out.push(Problem::Shape(format!(
            "{path}: expected {what}, got {}",
            value.excerpt()
        )))
    };
    match ty {
        Ty::Str => {
            if !value.is_string() {
                bad(out, "a string")
            }
        }
        Ty::StrOrNull => {
            if !(value.is_string() || value.is_null()) {
                bad(out, "a string or null")
            }
        }
        Ty::Int => {
            if !value.is_int() {
                bad(out, "an integer")
            }
        }
        Ty::Id => {
            if !(value.is_u64() || value.as_str().is_some_and(|s| !s.is_empty())) {
                bad(out, "an id (integer or non-empty string)")
            }
        }
        Ty::Time => match value.as_str() {
            Some(s) => match time_form(s) {
                TimeForm::Rfc3339 => {}
                TimeForm::Accepted => out.push(Problem::TimeFormat(format!(
                    "{path}: {s:?} is not RFC 3339 (accepted form)"
                ))),
                TimeForm::Invalid => bad(out, "a datetime string"),
            },
            None => bad(out, "a datetime string"),
        },
        Ty::Enum { values, nullable } => {
            let ok = if value.is_null() {
                *nullable
            } else {
                value.as_str().is_some_and(|v| values.contains(&v))
            };
            if !ok {
                let mut what = format!("one of {values:?}");
                if *nullable {
                    what.push_str(" or null");
                }
                bad(out, &what)
            }
        }
        Ty::Obj(fields) => {
            if value.member("").is_none() {
                return bad(out, "an object");
            }
            for f in *fields {
                match value.member(f.name).flatten() {
                    Some(v) => check_at(v, &f.ty, &Path::Field(path, f.name), out),
                    None if f.required && f.ours => out.push(Problem::Unstated(format!(
                        "{path}.{}: missing (the reference server sends it; the seed's payload does not have it)",
                        f.name
                    ))),
                    None if f.required => out.push(Problem::Shape(format!(
                        "{path}.{}: required field is missing",
                        f.name
                    ))),
                    None => {}
                }
            }
        }
        Ty::Arr(item) => {
            let Some(items) = value.items() else {
                return bad(out, "an array");
            };
            for (i, v) in items.iter().enumerate() {
                check_at(v, item, &Path::Index(path, i), out);
            }
        }
    }
}

enum TimeForm {
    Rfc3339,
    Accepted,
    Invalid,
}

fn time_form(s: &str) -> TimeForm {
    if chrono::DateTime::parse_from_rfc3339(s).is_ok() {
        return TimeForm::Rfc3339;
    }
    if chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").is_ok() {
        return TimeForm::Accepted;
    }
    TimeForm::Invalid
}

/// A short rendering of a value for messages.
pub fn excerpt(v: &Value) -> String {
    // Up to 120 bytes; a longer one is cut to 117 and marked `...` (as ops.log files of
    // earlier versions show it, so that two runs' logs compare).
    let mut s = v.to_string();
    if s.len() > 120 {
        crate::text::cut_to_bytes(&mut s, 117);
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MSG: Ty = Ty::Obj(&[
        Field::req("user_id", Ty::Id),
        Field::req("message", Ty::Str),
        Field::req("time", Ty::Time),
    ]);

    fn problems(v: Value) -> Vec<Problem> {
        let mut out = Vec::new();
        check(&v, &MSG, "message", &mut out);
        out
    }

    #[test]
    fn good_payload_has_no_problem() {
        assert!(problems(
            json!({"user_id": 1, "message": "hi", "time": "2026-11-22T00:00:00.123Z"})
        )
        .is_empty());
    }

    #[test]
    fn missing_and_wrong_fields_are_named() {
        let p = problems(json!({"user_id": 1, "message": 5}));
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(matches!(&p[0], Problem::Shape(s) if s.contains("message.message")));
        assert!(matches!(&p[1], Problem::Shape(s) if s.contains("message.time: required")));
    }

    #[test]
    fn borrowed_json_is_judged_like_value() {
        for v in [
            json!({"user_id": 1, "message": 5}),
            json!({"user_id": "", "message": "x", "time": "2026-11-22 00:00:00"}),
            json!({"user_id": 1, "message": "hi", "time": "2026-11-22T00:00:00Z"}),
            json!([1]),
            json!(null),
        ] {
            let text = v.to_string();
            let j = Json::parse(&text).unwrap();
            let mut out = Vec::new();
            check(&j, &MSG, "message", &mut out);
            assert_eq!(out, problems(v), "{text}");
        }
    }

    #[test]
    fn accepted_time_form_is_info() {
        let p = problems(json!({"user_id": "7", "message": "x", "time": "2026-11-22 00:00:00"}));
        assert!(matches!(&p[..], [Problem::TimeFormat(_)]), "{p:?}");
    }
}
