//! JUnit XML for CI systems: one `testcase` per check case, failures with their evidence.

use std::fmt::Write as _;

use super::{CaseResult, Status};

/// Renders results as a JUnit XML document (one `testsuite` named after the suite).
pub fn render(suite: &str, results: &[CaseResult]) -> String {
    let failures = results.iter().filter(|r| r.status == Status::Fail).count();
    let skipped = results
        .iter()
        .filter(|r| r.status == Status::Skipped)
        .count();
    let time: f64 = results.iter().map(|r| r.seconds).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites><testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">",
        escape(suite),
        results.len()
    );
    for r in results {
        let _ = write!(
            x,
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">",
            escape(suite),
            escape(r.id),
            r.seconds
        );
        match r.status {
            Status::Pass => {}
            Status::Skipped => {
                let _ = write!(
                    x,
                    "<skipped message=\"{}\"/>",
                    escape(r.reason.as_deref().unwrap_or("skipped"))
                );
            }
            Status::Fail | Status::Warn => {
                let rules: Vec<String> = r
                    .violations
                    .iter()
                    .map(|(rule, n)| format!("{rule} x{n}"))
                    .collect();
                let mut body = format!("{} ({}): {}\n", r.id, r.level, r.description);
                if let Some(e) = &r.evidence {
                    let _ = writeln!(
                        body,
                        "client {} ({}): expected {}; received {}",
                        e.client, e.user, e.expected, e.received
                    );
                    for line in &e.transcript {
                        let _ = writeln!(body, "  {line}");
                    }
                }
                let tag = if r.status == Status::Fail {
                    "failure"
                } else {
                    "system-out"
                };
                if tag == "failure" {
                    let _ = write!(
                        x,
                        "<failure message=\"{}\" type=\"{}\">{}</failure>",
                        escape(&rules.join(", ")),
                        r.level,
                        escape(&body)
                    );
                } else {
                    let _ = write!(x, "<system-out>warning: {}</system-out>", escape(&body));
                }
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
    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            super::escape("<a b=\"c\">&\u{1}"),
            "&lt;a b=&quot;c&quot;&gt;&amp;?"
        );
    }
}
