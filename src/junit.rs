//! JUnit XML, the format CI systems render: one `testsuite` of `testcase`s that pass, fail with
//! a message and a body, or are skipped. `check` writes one case per conformance case, `run`
//! one for conformance and one per threshold.

use std::fmt::Write as _;

/// How one test case ended.
pub enum Outcome {
    Pass,
    /// `message` is one line (the rules violated); `body` the evidence.
    Fail {
        kind: String,
        message: String,
        body: String,
    },
    /// Passed, with something to say (a SHOULD violation without `--strict`).
    Warn {
        body: String,
    },
    Skip {
        reason: String,
    },
}

/// One test case.
pub struct TestCase {
    pub name: String,
    pub seconds: f64,
    pub outcome: Outcome,
}

/// Renders one suite as a JUnit XML document.
pub fn render(suite: &str, cases: &[TestCase]) -> String {
    let failures = cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Fail { .. }))
        .count();
    let skipped = cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Skip { .. }))
        .count();
    let time: f64 = cases.iter().map(|c| c.seconds).sum();
    let suite = escape(suite);
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites><testsuite name=\"{suite}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">",
        cases.len()
    );
    for c in cases {
        let _ = write!(
            x,
            "  <testcase classname=\"{suite}\" name=\"{}\" time=\"{:.3}\">",
            escape(&c.name),
            c.seconds
        );
        match &c.outcome {
            Outcome::Pass => {}
            Outcome::Fail {
                kind,
                message,
                body,
            } => {
                let _ = write!(
                    x,
                    "<failure message=\"{}\" type=\"{}\">{}</failure>",
                    escape(message),
                    escape(kind),
                    escape(body)
                );
            }
            Outcome::Warn { body } => {
                let _ = write!(x, "<system-out>warning: {}</system-out>", escape(body));
            }
            Outcome::Skip { reason } => {
                let _ = write!(x, "<skipped message=\"{}\"/>", escape(reason));
            }
        }
        x.push_str("</testcase>\n");
    }
    x.push_str("</testsuite></testsuites>\n");
    x
}

/// XML text and attribute escaping; control characters (invalid in XML 1.0) become `?`.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(c),
            c if (c as u32) < 0x20 => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("<a b=\"c\">&\u{1}"),
            "&lt;a b=&quot;c&quot;&gt;&amp;?"
        );
    }

    #[test]
    fn counts_failures_and_skips() {
        let cases = [
            TestCase {
                name: "a".into(),
                seconds: 1.0,
                outcome: Outcome::Pass,
            },
            TestCase {
                name: "b".into(),
                seconds: 0.5,
                outcome: Outcome::Fail {
                    kind: "MUST".into(),
                    message: "x/y/z".into(),
                    body: "<why>".into(),
                },
            },
            TestCase {
                name: "c".into(),
                seconds: 0.0,
                outcome: Outcome::Skip {
                    reason: "no users".into(),
                },
            },
        ];
        let x = render("s", &cases);
        assert!(
            x.contains("tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"1.500\""),
            "{x}"
        );
        assert!(
            x.contains("<failure message=\"x/y/z\" type=\"MUST\">&lt;why&gt;</failure>"),
            "{x}"
        );
    }
}
