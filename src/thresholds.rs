//! Pass/fail conditions on a run's figures: `message.fanout.p99 < 50ms`, `violations == 0`,
//! `connect.errors < 1%`. Latency statistics are the coordinated-omission-corrected ones; add
//! `.raw` before the statistic (`message.fanout.raw.p99`) for the raw figures.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

/// One parsed threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Threshold {
    pub text: String,
    pub figure: String,
    pub op: Op,
    /// In the figure's unit: milliseconds for latencies, percent for rates, plain counts.
    pub limit: f64,
}

/// A threshold's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub threshold: String,
    pub actual: Option<f64>,
    pub passed: bool,
}

impl Threshold {
    pub fn parse(text: &str) -> Result<Threshold, String> {
        let ops = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let (pos, sym, op) = ops
            .iter()
            .filter_map(|(sym, op)| text.find(sym).map(|p| (p, *sym, *op)))
            .min_by_key(|(p, sym, _)| (*p, std::cmp::Reverse(sym.len())))
            .ok_or("expected `<figure> <op> <value>` with op one of < <= > >= ==")?;
        let figure = text[..pos].trim();
        let value = text[pos + sym.len()..].trim();
        if figure.is_empty() {
            return Err("the figure name is missing".into());
        }
        let limit = parse_value(value)?;
        Ok(Threshold {
            text: text.trim().to_string(),
            figure: figure.to_string(),
            op,
            limit,
        })
    }

    /// Evaluates against a run's figures (see `report::figures`); an unknown figure fails.
    pub fn evaluate(&self, figures: &BTreeMap<String, f64>) -> Outcome {
        let actual = figures.get(&self.figure).copied();
        let passed = actual.is_some_and(|a| match self.op {
            Op::Lt => a < self.limit,
            Op::Le => a <= self.limit,
            Op::Gt => a > self.limit,
            Op::Ge => a >= self.limit,
            Op::Eq => (a - self.limit).abs() < 1e-9,
        });
        Outcome {
            threshold: self.text.clone(),
            actual,
            passed,
        }
    }
}

fn parse_value(v: &str) -> Result<f64, String> {
    let (num, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('%') {
        (n, 1.0)
    } else {
        (v, 1.0)
    };
    num.trim()
        .parse::<f64>()
        .map(|n| n * scale)
        .map_err(|_| format!("`{v}` is not a number with an optional unit (us, ms, s, %)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_evaluates() {
        let t = Threshold::parse("message.fanout.p99 < 50ms").unwrap();
        assert_eq!(t.figure, "message.fanout.p99");
        assert_eq!(t.limit, 50.0);
        let mut f = BTreeMap::new();
        f.insert("message.fanout.p99".to_string(), 12.0);
        assert!(t.evaluate(&f).passed);
        f.insert("message.fanout.p99".to_string(), 60.0);
        assert!(!t.evaluate(&f).passed);
        assert_eq!(Threshold::parse("violations <= 0").unwrap().op, Op::Le);
        assert_eq!(Threshold::parse("connect.errors < 1%").unwrap().limit, 1.0);
        assert_eq!(Threshold::parse("x < 1s").unwrap().limit, 1000.0);
        assert!(
            !Threshold::parse("missing.figure < 1")
                .unwrap()
                .evaluate(&f)
                .passed
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(Threshold::parse("p99 fast").is_err());
        assert!(Threshold::parse("< 5").is_err());
        assert!(Threshold::parse("a < lots").is_err());
    }
}
