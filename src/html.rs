//! `report.html`: one self-contained page per run or check, a pure function of the result
//! files (`summary.json` + `histograms.hlog` + `transcripts.txt`, or `check.json`). Nothing
//! here measures; `roomrig report DIR` renders the same page again from the files alone.
//!
//! Charts are SVG drawn here, in Rust (see the README's "The HTML report" for why): one
//! `<figure class="chart">` per chart, one `<polyline>` per series with one point per
//! interval (a second of the hlog or of the timeline). The page has no external resource; a
//! short inline script only adds a read-out of the values under the pointer, and notes on each
//! chart how many points the browser drew (`data-drawn`), which the browser test compares with
//! the hlog.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::hlog::Interval;

/// The result files of one run, as read from its directory.
pub struct RunFiles {
    /// Where they were read from (shown on the page).
    pub dir: String,
    pub summary: Value,
    /// `histograms.hlog` by tag, in time order.
    pub intervals: BTreeMap<String, Vec<Interval>>,
    /// `transcripts.txt`, when the run had violations.
    pub transcripts: Option<String>,
}

/// The most transcript text one page carries (the page stays small for long runs; the file
/// beside it has everything).
const TRANSCRIPT_BYTES: usize = 256 * 1024;

/// Quantiles drawn per latency chart: label, quantile, line style.
const QUANTILES: [(&str, f64, &str); 4] = [
    ("p50", 0.5, "s0"),
    ("p90", 0.9, "s1"),
    ("p99", 0.99, "s2"),
    ("max", 1.0, "s3"),
];

/// The page of one run.
pub fn run_page(run: &RunFiles) -> String {
    let s = &run.summary;
    let mut body = String::new();
    let title = format!("roomrig run · {}", text(&s["scenario"]["name"]));
    verdict_block(&mut body, s);
    facts(&mut body, s, &run.dir);
    thresholds(&mut body, s);
    body.push_str("<h2 id=\"latency\">Latency over time</h2>\n");
    body.push_str(
        "<p class=\"note\">Per second, from <code>histograms.hlog</code>: percentiles of the \
         latency from the intended send time (co), in ms. One point per second with samples.</p>\n",
    );
    let metrics = latency_metrics(run);
    // Every chart spans the whole run, so their seconds line up.
    let span = s["duration_s"].as_f64().unwrap_or(0.0).ceil();
    if metrics.is_empty() {
        body.push_str("<p>No latency samples.</p>\n");
    }
    for name in &metrics {
        body.push_str(&latency_chart(
            name,
            &run.intervals[&format!("{name}.co")],
            span,
        ));
    }
    body.push_str("<h2 id=\"traffic\">Traffic over time</h2>\n");
    let tl = &s["timeline"];
    if tl.is_object() {
        traffic_charts(&mut body, tl, span);
    } else {
        body.push_str("<p>This report has no timeline (written by an older roomrig).</p>\n");
    }
    body.push_str("<h2 id=\"violations\">Violations</h2>\n");
    violations_chart(&mut body, s, span);
    violations_table(&mut body, &s["violations"]["by_rule"]);
    latency_table(&mut body, s);
    transcripts(&mut body, run.transcripts.as_deref());
    body.push_str("<h2 id=\"scenario\">Scenario (defaults filled in)</h2>\n");
    let _ = writeln!(
        body,
        "<pre class=\"scenario\">{}</pre>",
        esc(&serde_json::to_string_pretty(&s["scenario"]["config"]).unwrap_or_default())
    );
    resources(&mut body, s);
    page(&title, &body)
}

/// Two runs side by side: key figures with their change, and each metric's p99 and the
/// deliveries per second of both runs on one chart.
pub fn compare_page(a: &RunFiles, b: &RunFiles) -> String {
    let (sa, sb) = (&a.summary, &b.summary);
    let mut body = String::new();
    let title = format!(
        "roomrig compare · {} vs {}",
        text(&sa["scenario"]["name"]),
        text(&sb["scenario"]["name"])
    );
    let _ = writeln!(
        body,
        "<table class=\"facts\"><tr><th></th><th>A</th><th>B</th></tr>\
         <tr><th>directory</th><td>{}</td><td>{}</td></tr>\
         <tr><th>scenario</th><td>{}</td><td>{}</td></tr>\
         <tr><th>started</th><td>{}</td><td>{}</td></tr>\
         <tr><th>verdict</th><td>{}</td><td>{}</td></tr></table>",
        esc(&a.dir),
        esc(&b.dir),
        esc(&text(&sa["scenario"]["name"])),
        esc(&text(&sb["scenario"]["name"])),
        esc(&text(&sa["started_at"])),
        esc(&text(&sb["started_at"])),
        badge(sa),
        badge(sb),
    );
    body.push_str("<h2>Figures</h2>\n<table class=\"grid\"><tr><th>figure</th><th>A</th><th>B</th><th>B − A</th></tr>\n");
    let mut rows: Vec<(String, Option<f64>, Option<f64>)> = vec![
        (
            "duration (s)".into(),
            sa["duration_s"].as_f64(),
            sb["duration_s"].as_f64(),
        ),
        (
            "clients connected".into(),
            sa["clients"]["connected"].as_f64(),
            sb["clients"]["connected"].as_f64(),
        ),
        (
            "messages sent".into(),
            sa["events"]["sent"].as_f64(),
            sb["events"]["sent"].as_f64(),
        ),
        (
            "events received".into(),
            sa["events"]["received"].as_f64(),
            sb["events"]["received"].as_f64(),
        ),
        (
            "violations (MUST)".into(),
            sa["violations"]["must"].as_f64(),
            sb["violations"]["must"].as_f64(),
        ),
        (
            "driver CPU s".into(),
            sa["driver"]["cpu_s"].as_f64(),
            sb["driver"]["cpu_s"].as_f64(),
        ),
    ];
    let names: std::collections::BTreeSet<String> = [sa, sb]
        .iter()
        .filter_map(|s| s["metrics"].as_object())
        .flat_map(|m| m.keys().cloned())
        .chain(latency_metrics(a))
        .chain(latency_metrics(b))
        .collect();
    for name in &names {
        for stat in ["p50_ms", "p99_ms"] {
            rows.push((
                format!("{name} {} (ms)", &stat[..3]),
                sa["metrics"][name]["co"][stat].as_f64(),
                sb["metrics"][name]["co"][stat].as_f64(),
            ));
        }
    }
    for (label, x, y) in rows {
        let delta = match (x, y) {
            (Some(x), Some(y)) if x != 0.0 => format!("{:+.3} ({:+.1}%)", y - x, (y - x) / x * 1e2),
            (Some(x), Some(y)) => format!("{:+.3}", y - x),
            _ => "–".into(),
        };
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{delta}</td></tr>",
            esc(&label),
            x.map_or("–".into(), num),
            y.map_or("–".into(), num)
        );
    }
    body.push_str("</table>\n<h2>Latency p99 over time</h2>\n");
    let span = [sa, sb]
        .iter()
        .filter_map(|s| s["duration_s"].as_f64())
        .fold(0.0, f64::max)
        .ceil();
    for name in &names {
        let tag = format!("{name}.co");
        let series: Vec<Series> = [(a, "A", "s0"), (b, "B", "s2")]
            .iter()
            .filter_map(|(run, label, style)| {
                let iv = run.intervals.get(&tag)?;
                Some(Series {
                    label: format!("{label} p99"),
                    style,
                    points: iv
                        .iter()
                        .map(|i| (i.start_s, Some(quantile_ms(&i.histogram, 0.99))))
                        .collect(),
                })
            })
            .collect();
        if !series.is_empty() {
            body.push_str(&chart(
                &format!("latency:{name}"),
                name,
                "ms",
                span,
                &series,
            ));
        }
    }
    body.push_str("<h2>Events received per second</h2>\n");
    let series: Vec<Series> = [(sa, "A", "s0"), (sb, "B", "s2")]
        .iter()
        .map(|(s, label, style)| Series {
            label: format!("{label} received/s"),
            style,
            points: per_second(&s["timeline"]["received"]),
        })
        .collect();
    body.push_str(&chart(
        "traffic:received",
        "received per second",
        "/s",
        span,
        &series,
    ));
    page(&title, &body)
}

/// The page of a `roomrig check`: one row per case with its level, status and evidence.
pub fn check_page(check: &Value, dir: &str) -> String {
    let mut body = String::new();
    let cases = check["cases"].as_array().cloned().unwrap_or_default();
    let count = |status: &str| cases.iter().filter(|c| c["status"] == status).count();
    let status = text(&check["verdict"]["status"]);
    let _ = writeln!(
        body,
        "<section class=\"verdict {}\"><h1>{} <small>exit {}</small></h1>\
         <p>{} cases: {} pass, {} fail, {} warn, {} skipped</p></section>",
        esc(&status),
        esc(&status.to_uppercase()),
        esc(&text(&check["verdict"]["exit_code"])),
        cases.len(),
        count("pass"),
        count("fail"),
        count("warn"),
        count("skipped"),
    );
    let _ = writeln!(
        body,
        "<table class=\"facts\"><tr><th>dialect</th><td>{}</td></tr>\
         <tr><th>target</th><td>{}</td></tr><tr><th>Engine.IO</th><td>{}</td></tr>\
         <tr><th>strict</th><td>{}</td></tr><tr><th>started</th><td>{}</td></tr>\
         <tr><th>duration</th><td>{} s</td></tr><tr><th>directory</th><td>{}</td></tr></table>",
        esc(&text(&check["dialect"])),
        esc(&text(&check["target"])),
        esc(&text(&check["eio"])),
        esc(&text(&check["strict"])),
        esc(&text(&check["started_at"])),
        num(check["duration_s"].as_f64().unwrap_or(0.0)),
        esc(dir),
    );
    body.push_str("<h2>Cases</h2>\n<table class=\"grid cases\"><tr><th>case</th><th>level</th><th>status</th><th>s</th><th>violations</th><th>evidence</th></tr>\n");
    for c in &cases {
        let violations: Vec<String> = c["violations"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|p| format!("{} ×{}", text(&p[0]), text(&p[1])))
                    .collect()
            })
            .unwrap_or_default();
        let evidence = match &c["evidence"] {
            Value::Null => esc(&text(&c["reason"])),
            e => example(e),
        };
        let st = text(&c["status"]);
        let _ = writeln!(
            body,
            "<tr class=\"{}\"><td><b>{}</b><br><small>{} [{}]</small></td><td>{}</td><td class=\"status\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&st),
            esc(&text(&c["id"])),
            esc(&text(&c["description"])),
            esc(&text(&c["section"])),
            esc(&text(&c["level"])),
            esc(&st),
            num(c["seconds"].as_f64().unwrap_or(0.0)),
            esc(&violations.join(", ")),
            evidence,
        );
    }
    body.push_str("</table>\n");
    machine(&mut body, &check["machine"]);
    page(
        &format!("roomrig check · {}", text(&check["dialect"])),
        &body,
    )
}

/// The page of a `roomrig capacity` search, a function of its `capacity.json` alone: the
/// outcome, each latency metric's p50 and p99 against the load, achieved against offered
/// deliveries per second, and the steps table (each step's own report is in its directory).
pub fn capacity_page(c: &Value) -> String {
    let mut body = String::new();
    let steps = c["steps"].as_array().cloned().unwrap_or_default();
    let outcome = text(&c["outcome"]);
    let class = match outcome.as_str() {
        "knee" | "no_knee_below_max" => "pass",
        "generator_limit" | "interrupted" => "invalid",
        _ => "fail",
    };
    let vary = text(&c["vary"]);
    let show = |load: f64| match vary.as_str() {
        "clients" => format!("{load:.0} clients"),
        _ => format!("×{}", num(load)),
    };
    let _ = writeln!(
        body,
        "<section class=\"verdict {class}\"><h1>{} <small>exit {}</small></h1><p>{}</p></section>",
        esc(&outcome.replace('_', " ").to_uppercase()),
        esc(&text(&c["exit_code"])),
        esc(&text(&c["message"])),
    );
    let search = &c["search"];
    let _ = writeln!(
        body,
        "<table class=\"facts\"><tr><th>scenario</th><td>{} ({}, {})</td></tr>\
         <tr><th>target</th><td>{}</td></tr><tr><th>load</th><td>{} ({}; the scenario has {} clients)</td></tr>\
         <tr><th>search</th><td>from {} by ×{} up to {}, resolution {}%</td></tr>\
         <tr><th>SLO</th><td>{} and no MUST violation</td></tr>\
         <tr><th>started</th><td>{}</td></tr><tr><th>duration</th><td>{} s</td></tr></table>",
        esc(&text(&c["scenario"]["name"])),
        esc(&text(&c["scenario"]["path"])),
        esc(&text(&c["scenario"]["dialect"])),
        esc(&text(&c["target"])),
        esc(&vary),
        esc(&text(&c["load_unit"])),
        esc(&text(&c["base_clients"])),
        esc(&show(search["start"].as_f64().unwrap_or(0.0))),
        num(search["factor"].as_f64().unwrap_or(0.0)),
        esc(&show(search["max"].as_f64().unwrap_or(0.0))),
        num(search["resolution"].as_f64().unwrap_or(0.0) * 100.0),
        esc(&c["slo"]
            .as_array()
            .map(|a| a.iter().map(text).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()),
        esc(&text(&c["started_at"])),
        num(c["duration_s"].as_f64().unwrap_or(0.0)),
    );
    // The charts plot the steps in order of load (bisection runs them out of order).
    let mut by_load: Vec<&Value> = steps.iter().collect();
    by_load.sort_by(|a, b| {
        let l = |v: &Value| v["load"].as_f64().unwrap_or(0.0);
        l(a).total_cmp(&l(b))
    });
    let x_max = by_load
        .last()
        .and_then(|s| s["load"].as_f64())
        .unwrap_or(1.0);
    let x_unit = if vary == "clients" { "" } else { "×" };
    // chart_of draws a point in the middle of its second (x + 0.5): loads are shifted back.
    let at = |s: &Value| s["load"].as_f64().unwrap_or(0.0) - 0.5;
    let series = |label: &str, style: &'static str, y: &dyn Fn(&Value) -> Option<f64>| Series {
        label: label.to_string(),
        style,
        points: by_load.iter().map(|s| (at(s), y(s))).collect(),
    };
    body.push_str("<h2>Throughput against load</h2>\n");
    body.push_str(&chart_of(
        "capacity-throughput",
        "deliveries per second: offered and achieved",
        "/s",
        (x_max, x_unit),
        &[
            series("offered", "s0", &|s| s["offered_deliveries_per_s"].as_f64()),
            series("achieved", "s1", &|s| {
                s["achieved_deliveries_per_s"].as_f64()
            }),
        ],
    ));
    body.push_str("<h2>Latency against load</h2>\n");
    let mut metrics: Vec<String> = steps
        .iter()
        .filter_map(|s| s["metrics"].as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    metrics.sort();
    metrics.dedup();
    for (i, m) in metrics.iter().enumerate() {
        let stat = |key: &'static str| {
            let m = m.clone();
            move |s: &Value| s["metrics"][&m][key].as_f64()
        };
        body.push_str(&chart_of(
            &format!("capacity-latency-{i}"),
            &format!("{m} (CO-corrected)"),
            " ms",
            (x_max, x_unit),
            &[
                series("p50", "s0", &stat("p50_ms")),
                series("p99", "s2", &stat("p99_ms")),
            ],
        ));
    }
    body.push_str("<h2>Steps</h2>\n<table class=\"grid steps\"><tr><th>step</th><th>load</th><th>clients</th><th>offered d/s</th><th>achieved d/s</th><th>p50 / p99 ms</th><th>violations M/S</th><th>driver cores</th><th>server cores</th><th>verdict</th><th>report</th></tr>\n");
    for s in &steps {
        let lat: Vec<String> = s["metrics"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        format!(
                            "{k}: {} / {}",
                            num(v["p50_ms"].as_f64().unwrap_or(0.0)),
                            num(v["p99_ms"].as_f64().unwrap_or(0.0))
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let o = text(&s["outcome"]);
        let row_class = match o.as_str() {
            "pass" => "pass",
            "invalid" | "interrupted" => "warn",
            _ => "fail",
        };
        let opt = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.0}"));
        let cores = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.2}"));
        let dir = text(&s["dir"]);
        let _ = writeln!(
            body,
            "<tr class=\"{row_class}\"><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td><small>{}</small></td><td class=\"num\">{}/{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}<br><small>{}</small></td><td><a href=\"{}/report.html\">{}</a></td></tr>",
            esc(&text(&s["index"])),
            esc(&show(s["load"].as_f64().unwrap_or(0.0))),
            esc(&text(&s["clients"])),
            opt(&s["offered_deliveries_per_s"]),
            opt(&s["achieved_deliveries_per_s"]),
            lat.iter().map(|l| esc(l)).collect::<Vec<_>>().join("<br>"),
            esc(&text(&s["violations"]["must"])),
            esc(&text(&s["violations"]["should"])),
            cores(&s["driver_cpu_cores"]),
            cores(&s["server_cpu_cores"]),
            esc(&o),
            esc(&s["reasons"]
                .as_array()
                .map(|a| a.iter().map(text).collect::<Vec<_>>().join("; "))
                .unwrap_or_default()),
            esc(&dir),
            esc(&dir),
        );
    }
    body.push_str("</table>\n");
    machine(&mut body, &c["machine"]);
    page(
        &format!("roomrig capacity · {}", text(&c["scenario"]["name"])),
        &body,
    )
}

fn verdict_block(out: &mut String, s: &Value) {
    let status = text(&s["verdict"]["status"]);
    let _ = write!(
        out,
        "<section class=\"verdict {}\"><h1>{} <small>exit {}</small></h1><ul>",
        esc(&status),
        esc(&status.to_uppercase()),
        esc(&text(&s["verdict"]["exit_code"]))
    );
    for r in s["verdict"]["reasons"].as_array().into_iter().flatten() {
        let _ = write!(out, "<li>{}</li>", esc(&text(r)));
    }
    out.push_str("</ul>");
    if status != "pass" {
        let _ = write!(
            out,
            "<p>replay: <code>{}</code></p>",
            esc(&text(&s["replay"]))
        );
    }
    out.push_str("</section>\n");
}

fn badge(s: &Value) -> String {
    let status = text(&s["verdict"]["status"]);
    format!(
        "<span class=\"badge {}\">{}</span>",
        esc(&status),
        esc(&status)
    )
}

fn facts(out: &mut String, s: &Value, dir: &str) {
    let sc = &s["scenario"];
    let _ = writeln!(
        out,
        "<table class=\"facts\"><tr><th>scenario</th><td>{} <small>({})</small></td></tr>\
         <tr><th>dialect</th><td>{} · Engine.IO {}</td></tr><tr><th>target</th><td>{}{}</td></tr>\
         <tr><th>started</th><td>{} · {} s · seed {}</td></tr>\
         <tr><th>clients</th><td>{} planned, {} connected, {} connect errors, {} closed by the server</td></tr>\
         <tr><th>traffic</th><td>{} sent, {} received</td></tr>\
         <tr><th>violations</th><td>{} (MUST {}, SHOULD {}, INFO {})</td></tr>\
         <tr><th>directory</th><td>{}</td></tr></table>",
        esc(&text(&sc["name"])),
        esc(&text(&sc["path"])),
        esc(&text(&sc["dialect"])),
        esc(&text(&sc["eio"])),
        esc(&text(&s["target"]["url"])),
        if s["target"]["embedded_reference_server"] == true {
            " (embedded reference server)"
        } else {
            ""
        },
        esc(&text(&s["started_at"])),
        num(s["duration_s"].as_f64().unwrap_or(0.0)),
        esc(&text(&sc["seed"])),
        text(&s["clients"]["planned"]),
        text(&s["clients"]["connected"]),
        text(&s["clients"]["connect_errors"]),
        text(&s["clients"]["unexpected_closes"]),
        text(&s["events"]["sent"]),
        text(&s["events"]["received"]),
        text(&s["violations"]["total"]),
        text(&s["violations"]["must"]),
        text(&s["violations"]["should"]),
        text(&s["violations"]["info"]),
        esc(dir),
    );
}

fn thresholds(out: &mut String, s: &Value) {
    let Some(all) = s["thresholds"].as_array().filter(|a| !a.is_empty()) else {
        return;
    };
    out.push_str("<h2 id=\"thresholds\">Thresholds</h2>\n<table class=\"grid\"><tr><th>threshold</th><th>result</th><th>actual</th></tr>\n");
    for t in all {
        let passed = t["passed"] == true;
        let actual = match t["actual"].as_f64() {
            Some(v) => format!("{} {}", num(v), text(&t["unit"])),
            None => "no samples".into(),
        };
        let _ = writeln!(
            out,
            "<tr class=\"{}\"><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td></tr>",
            if passed { "pass" } else { "fail" },
            esc(&text(&t["threshold"])),
            if passed { "ok" } else { "FAILED" },
            esc(&actual)
        );
    }
    out.push_str("</table>\n");
    if let Some(a) = s["aborted"].as_object() {
        let _ = writeln!(
            out,
            "<p>Stopped early at {} s by <code>{}</code>.</p>",
            num(a.get("at_s").and_then(Value::as_f64).unwrap_or(0.0)),
            esc(&text(&a["outcome"]["threshold"]))
        );
    }
}

/// The metrics with a `.co` tag in the hlog, in name order.
fn latency_metrics(run: &RunFiles) -> Vec<String> {
    run.intervals
        .keys()
        .filter_map(|t| t.strip_suffix(".co"))
        .map(str::to_string)
        .collect()
}

fn quantile_ms(h: &hdrhistogram::Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else if q >= 1.0 {
        h.max() as f64 / 1e3
    } else {
        h.value_at_quantile(q) as f64 / 1e3
    }
}

fn latency_chart(name: &str, intervals: &[Interval], span: f64) -> String {
    let series: Vec<Series> = QUANTILES
        .iter()
        .map(|(label, q, style)| Series {
            label: label.to_string(),
            style,
            points: intervals
                .iter()
                .map(|i| {
                    let y = (!i.histogram.is_empty()).then(|| quantile_ms(&i.histogram, *q));
                    (i.start_s, y)
                })
                .collect(),
        })
        .collect();
    let samples: u64 = intervals.iter().map(|i| i.histogram.len()).sum();
    chart(
        &format!("latency:{name}"),
        &format!("{name} ({samples} samples)"),
        "ms",
        span,
        &series,
    )
}

/// A timeline series: one point per second, at the second's start.
fn per_second(v: &Value) -> Vec<(f64, Option<f64>)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .enumerate()
                .map(|(i, n)| (i as f64, n.as_f64()))
                .collect()
        })
        .unwrap_or_default()
}

fn traffic_charts(out: &mut String, tl: &Value, span: f64) {
    out.push_str(
        "<p class=\"note\">Per second, from the <code>timeline</code> of <code>summary.json</code> \
         (the driver's counters, sampled at the end of each second).</p>\n",
    );
    let series = |items: &[(&str, &str, &'static str)]| -> Vec<Series> {
        items
            .iter()
            .map(|(key, label, style)| Series {
                label: label.to_string(),
                style,
                points: per_second(&tl[key]),
            })
            .collect()
    };
    out.push_str(&chart(
        "traffic:connections",
        "connections",
        "",
        span,
        &series(&[
            ("open", "open", "s0"),
            ("connected", "connected/s", "s1"),
            ("connect_errors", "failed/s", "s2"),
        ]),
    ));
    out.push_str(&chart(
        "traffic:messages",
        "sends and deliveries",
        "/s",
        span,
        &series(&[("sent", "sent/s", "s0"), ("received", "received/s", "s1")]),
    ));
}

fn violations_chart(out: &mut String, s: &Value, span: f64) {
    let seconds = s["timeline"]["sent"].as_array().map_or(0, Vec::len);
    let Some(rules) = s["timeline"]["violations"]
        .as_object()
        .filter(|r| !r.is_empty())
    else {
        out.push_str("<p>No violations.</p>\n");
        return;
    };
    let styles = ["s2", "s3", "s0", "s1", "s4", "s5"];
    let series: Vec<Series> = rules
        .iter()
        .enumerate()
        .map(|(k, (rule, at))| {
            let mut counts = vec![0.0; seconds];
            for p in at.as_array().into_iter().flatten() {
                let (sec, n) = (p[0].as_u64().unwrap_or(0) as usize, p[1].as_f64());
                if let (Some(c), Some(n)) = (counts.get_mut(sec), n) {
                    *c += n;
                }
            }
            Series {
                label: rule.clone(),
                style: styles[k % styles.len()],
                points: counts
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| (i as f64, Some(c)))
                    .collect(),
            }
        })
        .collect();
    out.push_str(&chart(
        "violations:timeline",
        "violations per second by rule id",
        "/s",
        span,
        &series,
    ));
}

fn violations_table(out: &mut String, by_rule: &Value) {
    let Some(rules) = by_rule.as_object().filter(|r| !r.is_empty()) else {
        return;
    };
    out.push_str("<table class=\"grid\"><tr><th>level</th><th>rule</th><th>count</th><th>why / source</th><th>first examples</th></tr>\n");
    for (rule, t) in rules {
        let examples: String = t["examples"]
            .as_array()
            .into_iter()
            .flatten()
            .map(example)
            .collect();
        let _ = writeln!(
            out,
            "<tr class=\"{}\"><td>{}</td><td><code>{}</code></td><td class=\"num\">{}</td><td>{}<br><small>{}</small></td><td>{}</td></tr>",
            esc(&text(&t["level"]).to_lowercase()),
            esc(&text(&t["level"])),
            esc(rule),
            text(&t["count"]),
            esc(&text(&t["reason"])),
            esc(&text(&t["source"])),
            examples,
        );
    }
    out.push_str("</table>\n");
}

/// One violation: who and when, expected vs received, and the client's transcript around it.
fn example(e: &Value) -> String {
    let transcript: Vec<String> = e["transcript"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    format!(
        "<div class=\"example\">client {} ({}) at {} ms<br>expected: <code>{}</code><br>received: <code>{}</code>\
         <details><summary>transcript</summary><pre>{}</pre></details></div>",
        esc(&text(&e["client"])),
        esc(&text(&e["user"])),
        num(e["at_ms"].as_f64().unwrap_or(0.0)),
        esc(&text(&e["expected"])),
        esc(&text(&e["received"])),
        esc(&transcript.join("\n")),
    )
}

fn latency_table(out: &mut String, s: &Value) {
    let Some(metrics) = s["metrics"].as_object().filter(|m| !m.is_empty()) else {
        return;
    };
    out.push_str("<h2 id=\"latency-table\">Latency over the whole run (ms)</h2>\n<table class=\"grid\"><tr><th>metric</th><th></th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>\n");
    for (name, m) in metrics {
        for variant in ["co", "raw"] {
            let h = &m[variant];
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{variant}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(name),
                text(&h["count"]),
                num(h["p50_ms"].as_f64().unwrap_or(0.0)),
                num(h["p90_ms"].as_f64().unwrap_or(0.0)),
                num(h["p99_ms"].as_f64().unwrap_or(0.0)),
                num(h["p999_ms"].as_f64().unwrap_or(0.0)),
                num(h["max_ms"].as_f64().unwrap_or(0.0)),
            );
        }
    }
    out.push_str("</table>\n");
}

fn transcripts(out: &mut String, text: Option<&str>) {
    let Some(all) = text.filter(|t| !t.trim().is_empty()) else {
        return;
    };
    out.push_str("<h2 id=\"transcripts\">Transcripts of clients with violations</h2>\n");
    let mut used = 0;
    for block in all.split("\n\n").filter(|b| !b.trim().is_empty()) {
        if used + block.len() > TRANSCRIPT_BYTES {
            out.push_str("<p>… more in <code>transcripts.txt</code>.</p>\n");
            break;
        }
        used += block.len();
        let (head, rest) = block.split_once('\n').unwrap_or((block, ""));
        let _ = writeln!(
            out,
            "<details><summary>{}</summary><pre>{}</pre></details>",
            esc(head.trim_start_matches("== ")),
            esc(rest)
        );
    }
}

fn resources(out: &mut String, s: &Value) {
    let d = &s["driver"];
    out.push_str("<h2 id=\"resources\">Resources</h2>\n");
    let _ = writeln!(
        out,
        "<table class=\"facts\"><tr><th>{}</th><td>{} CPU s, {} µs CPU per received event, peak RSS {} MB ({} KiB per client)</td></tr>\
         <tr><th>bytes</th><td>{} sent, {} received (WebSocket payloads)</td></tr></table>",
        if s["processes"].is_object() {
            "roomrig workers (summed)"
        } else if d["includes_embedded_server"] == true {
            "roomrig (with the embedded server)"
        } else {
            "roomrig"
        },
        num(d["cpu_s"].as_f64().unwrap_or(0.0)),
        num(d["cpu_us_per_received_event"].as_f64().unwrap_or(0.0)),
        num(d["peak_rss_mb"].as_f64().unwrap_or(0.0)),
        num(d["rss_per_client_kib"].as_f64().unwrap_or(0.0)),
        text(&s["events"]["bytes_sent"]),
        text(&s["events"]["bytes_received"]),
    );
    if let Some(p) = s["processes"].as_object() {
        out.push_str("<table class=\"grid\"><tr><th>process</th><th>status</th><th>connected</th><th>sent</th><th>received</th><th>CPU s</th><th>peak RSS MB</th></tr>\n");
        for w in p
            .get("workers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let _ = writeln!(
                out,
                "<tr><td>worker {}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                text(&w["worker"]),
                esc(&text(&w["status"])),
                text(&w["connected"]),
                text(&w["sent"]),
                text(&w["received"]),
                num(w["cpu_s"].as_f64().unwrap_or(0.0)),
                num(w["peak_rss_mb"].as_f64().unwrap_or(0.0)),
            );
        }
        for sv in p
            .get("servers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let _ = writeln!(
                out,
                "<tr><td>server {}</td><td></td><td></td><td></td><td></td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&text(&sv["url"])),
                num(sv["cpu_s"].as_f64().unwrap_or(0.0)),
                num(sv["peak_rss_mb"].as_f64().unwrap_or(0.0)),
            );
        }
        out.push_str("</table>\n");
    }
    machine(out, &s["machine"]);
}

fn machine(out: &mut String, m: &Value) {
    if !m.is_object() {
        return;
    }
    let _ = writeln!(
        out,
        "<h2 id=\"machine\">Machine</h2>\n<table class=\"facts\"><tr><th>CPUs</th><td>{}</td></tr>\
         <tr><th>memory</th><td>{} MB</td></tr><tr><th>system</th><td>{} {} ({})</td></tr></table>",
        text(&m["cpus"]),
        m["memory_bytes"].as_u64().unwrap_or(0) / 1_000_000,
        esc(&text(&m["os"])),
        esc(&text(&m["kernel"])),
        esc(&text(&m["arch"])),
    );
}

/// One line of a chart.
struct Series {
    label: String,
    /// A class of the page's style sheet (colour and dash).
    style: &'static str,
    /// (x in seconds, y); a `None` y is a gap.
    points: Vec<(f64, Option<f64>)>,
}

/// Series with at most this many points also get a dot per point.
const DOTS_UP_TO: usize = 60;
const W: f64 = 880.0;
const H: f64 = 180.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// An SVG line chart: x from 0 to `x_span` (seconds since the start for a run's charts; the
/// axis labels carry `x_unit`, so a chart of latency against load draws the same way), y from
/// 0 to a round maximum. Each series is
/// one `<polyline>` with one point per entry (a gap is drawn at the axis and marked
/// `data-gaps`); the figure says how many points each series has (`data-points`).
fn chart(id: &str, title: &str, unit: &str, x_span: f64, series: &[Series]) -> String {
    chart_of(id, title, unit, (x_span, "s"), series)
}

fn chart_of(
    id: &str,
    title: &str,
    unit: &str,
    (x_span, x_unit): (f64, &str),
    series: &[Series],
) -> String {
    // The run's length, or the last point's second if one lies beyond it.
    let x_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0 + 1.0))
        .fold(x_span.max(1.0), f64::max);
    let y_top = series
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|p| p.1))
        .fold(0.0_f64, f64::max);
    let y_max = nice(y_top);
    let points = series.first().map_or(0, |s| s.points.len());
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let sx = |x: f64| LEFT + x / x_max * pw;
    let sy = |y: f64| TOP + ph - y / y_max * ph;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<figure class=\"chart\" id=\"{}\" data-points=\"{points}\"><figcaption>{} <output></output></figcaption>\
         <svg viewBox=\"0 0 {W} {H}\" role=\"img\" data-xmax=\"{x_max}\" data-ymax=\"{y_max}\" data-unit=\"{}\">",
        esc(id),
        esc(title),
        esc(unit)
    );
    // Grid and labels.
    for k in 0..=4 {
        let y = y_max * k as f64 / 4.0;
        let py = sy(y);
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{py:.1}\" y2=\"{py:.1}\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 4.0,
            py + 4.0,
            num(y)
        );
    }
    let step = nice(x_max / 8.0).max(1.0);
    let mut x = 0.0;
    while x <= x_max {
        let px = sx(x);
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{TOP}\" y2=\"{}\"/><text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{}{}</text>",
            TOP + ph,
            H - 6.0,
            num(x),
            esc(x_unit)
        );
        x += step;
    }
    for s in series {
        let mut pts = String::with_capacity(s.points.len() * 12);
        let mut gaps = 0;
        for (x, y) in &s.points {
            // The point's middle of its second; a second without samples sits on the axis.
            let y = y.unwrap_or_else(|| {
                gaps += 1;
                0.0
            });
            let _ = write!(pts, "{:.1},{:.1} ", sx(x + 0.5), sy(y));
        }
        let _ = write!(
            svg,
            "<polyline class=\"{}\" data-series=\"{}\" data-gaps=\"{gaps}\" points=\"{}\"><title>{}</title></polyline>",
            s.style,
            esc(&s.label),
            pts.trim_end(),
            esc(&s.label)
        );
        // A line of one point is invisible: short series get a dot per point.
        if s.points.len() <= DOTS_UP_TO {
            let _ = write!(svg, "<g class=\"dots {}\">", s.style);
            for (x, y) in &s.points {
                let _ = write!(
                    svg,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\"/>",
                    sx(x + 0.5),
                    sy(y.unwrap_or(0.0))
                );
            }
            svg.push_str("</g>");
        }
    }
    svg.push_str("</svg><div class=\"legend\">");
    for s in series {
        let _ = write!(
            svg,
            "<span class=\"key {}\"></span>{} ",
            s.style,
            esc(&s.label)
        );
    }
    svg.push_str("</div></figure>\n");
    svg
}

/// A round number at or above `v` (1, 2, 5 × a power of ten).
fn nice(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

/// A figure for people: at most three decimals, no trailing zeros.
fn num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// A JSON value as plain text (strings without quotes; null as empty).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:960px;padding:12px;color:#222}
h1{margin:0;font-size:26px}h1 small{font-size:14px;font-weight:normal;color:#555}
h2{margin-top:28px;border-bottom:1px solid #ddd;font-size:18px}
.verdict{padding:10px 14px;border-radius:6px;background:#fdecea;border-left:6px solid #c62828}
.verdict.pass{background:#e8f5e9;border-color:#2e7d32}
.verdict.thresholds,.verdict.invalid,.verdict.interrupted{background:#fff8e1;border-color:#f9a825}
.verdict ul{margin:4px 0;padding-left:20px}
.badge{padding:1px 6px;border-radius:4px;background:#fdecea}.badge.pass{background:#e8f5e9}
table{border-collapse:collapse;margin:8px 0}
.facts th{text-align:left;padding:2px 12px 2px 0;color:#555;font-weight:normal;vertical-align:top}
.grid td,.grid th{border:1px solid #ddd;padding:3px 6px;vertical-align:top}
.grid th{background:#f5f5f5}.num{text-align:right;font-variant-numeric:tabular-nums}
tr.fail td:first-child,tr.must td:first-child{border-left:4px solid #c62828}
tr.warn td:first-child,tr.should td:first-child{border-left:4px solid #f9a825}
tr.pass td:first-child{border-left:4px solid #2e7d32}
tr.skipped td:first-child{border-left:4px solid #9e9e9e}
pre{background:#f7f7f7;padding:6px;overflow-x:auto;font-size:12px;max-height:420px}
.example{margin-bottom:6px}.note{color:#555}
.grid code{white-space:pre-wrap;word-break:break-all}
.chart{margin:10px 0}.chart figcaption{font-weight:600}.chart output{font-weight:normal;color:#555;margin-left:8px}
.chart svg{width:100%;height:auto;background:#fff}
.chart text{font-size:10px;fill:#666}.chart line.grid{stroke:#eee}
polyline{fill:none!important;stroke-width:1.5}.dots{stroke:none!important}
.s0{stroke:#1565c0;fill:#1565c0;background:#1565c0}.s1{stroke:#2e7d32;fill:#2e7d32;background:#2e7d32}
.s2{stroke:#c62828;fill:#c62828;background:#c62828}.s3{stroke:#6a1b9a;fill:#6a1b9a;background:#6a1b9a;stroke-dasharray:4 3}
.s4{stroke:#ef6c00;fill:#ef6c00;background:#ef6c00}.s5{stroke:#00838f;fill:#00838f;background:#00838f}
.legend{font-size:12px}.key{display:inline-block;width:14px;height:3px;margin:0 4px 3px 10px}
"#;

/// The pointer read-out: the values of every series at the second under the pointer. It also
/// notes on each chart how many points the browser parsed per line (`data-drawn`: the fewest).
const SCRIPT: &str = r#"
document.querySelectorAll('figure.chart').forEach(function (fig) {
  var svg = fig.querySelector('svg'), out = fig.querySelector('output');
  var lines = Array.prototype.slice.call(svg.querySelectorAll('polyline'));
  var drawn = lines.length ? Math.min.apply(null, lines.map(function (l) { return l.points.numberOfItems; })) : 0;
  fig.dataset.drawn = String(drawn);
  var ymax = parseFloat(svg.dataset.ymax), unit = svg.dataset.unit;
  svg.addEventListener('mousemove', function (ev) {
    var box = svg.getBoundingClientRect(), vb = svg.viewBox.baseVal;
    var px = (ev.clientX - box.left) * vb.width / box.width;
    var parts = [];
    lines.forEach(function (l) {
      var best = null;
      for (var i = 0; i < l.points.numberOfItems; i++) {
        var p = l.points.getItem(i);
        if (best === null || Math.abs(p.x - px) < Math.abs(best.x - px)) best = p;
      }
      if (best) {
        var v = (vb.height - 24 - best.y) / (vb.height - 34) * ymax;
        parts.push(l.dataset.series + ' ' + v.toPrecision(3) + unit);
      }
    });
    out.textContent = parts.join(' · ');
  });
});
document.documentElement.dataset.ready = 'yes';
"#;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{}</title>\
         <style>{STYLE}</style></head><body>\n<p class=\"note\">{} · roomrig {}</p>\n{body}\
         <script>{SCRIPT}</script></body></html>\n",
        esc(title),
        esc(title),
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(tag: &str, start_s: f64, values: &[u64]) -> Interval {
        let mut h = crate::metrics::empty_histogram();
        for &v in values {
            h.record(v).unwrap();
        }
        Interval {
            tag: tag.into(),
            start_s,
            length_s: 1.0,
            histogram: h,
        }
    }

    fn run() -> RunFiles {
        let summary = serde_json::json!({
            "scenario": {"name": "smoke <1>", "config": {"name": "smoke"}},
            "verdict": {"status": "violations", "exit_code": 1, "reasons": ["1 MUST violation(s)"]},
            "timeline": {"interval_s": 1.0, "open": [2, 2, 0], "connected": [2, 0, 0],
                "connect_errors": [0, 0, 0], "sent": [1, 3, 0], "received": [2, 6, 0],
                "violations": {"dorm/message/missing": [[1, 1]]}},
            "violations": {"total": 1, "must": 1, "should": 0, "info": 0, "by_rule": {
                "dorm/message/missing": {"level": "MUST", "reason": "r", "source": "§3", "count": 1,
                    "examples": [{"client": 1, "user": "u1", "at_ms": 1200.0,
                        "expected": "message from u0", "received": "nothing",
                        "transcript": ["a", "!! <x>"]}]}}},
            "metrics": {},
        });
        let intervals = crate::hlog::by_tag(vec![
            interval("message.fanout.co", 0.0, &[1000, 2000]),
            interval("message.fanout.raw", 0.0, &[900]),
            interval("message.fanout.co", 1.0, &[3000]),
            interval("message.fanout.raw", 1.0, &[2900]),
        ]);
        RunFiles {
            dir: "reports/x".into(),
            summary,
            intervals,
            transcripts: Some("== client 1 (u1)\nline <1>\n\n".into()),
        }
    }

    /// The `points` attribute of every polyline in the chart with `id`.
    fn points_of(page: &str, id: &str) -> Vec<usize> {
        let at = page.find(&format!("id=\"{id}\"")).expect(id);
        let fig = &page[at..at + page[at..].find("</figure>").unwrap()];
        fig.split(" points=\"")
            .skip(1)
            .map(|p| p[..p.find('"').unwrap()].split(' ').count())
            .collect()
    }

    #[test]
    fn each_chart_has_a_point_per_interval() {
        let page = run_page(&run());
        // Latency: one point per hlog interval of the metric, per quantile.
        assert_eq!(points_of(&page, "latency:message.fanout"), [2, 2, 2, 2]);
        // Traffic and violations: one point per second of the timeline.
        assert_eq!(points_of(&page, "traffic:connections"), [3, 3, 3]);
        assert_eq!(points_of(&page, "traffic:messages"), [3, 3]);
        assert_eq!(points_of(&page, "violations:timeline"), [3]);
        assert!(page.contains("data-points=\"2\""));
    }

    #[test]
    fn the_page_is_self_contained_and_escapes_what_it_shows() {
        let page = run_page(&run());
        assert!(page.contains("smoke &lt;1&gt;"));
        assert!(page.contains("!! &lt;x&gt;"));
        assert!(page.contains("line &lt;1&gt;"));
        assert!(page.contains("message from u0"));
        for outside in ["http://", "https://", "src=", "href="] {
            assert!(!page.contains(outside), "{outside}");
        }
    }

    #[test]
    fn two_runs_side_by_side() {
        let (a, b) = (run(), run());
        let page = compare_page(&a, &b);
        assert_eq!(points_of(&page, "latency:message.fanout"), [2, 2]);
        assert_eq!(points_of(&page, "traffic:received"), [3, 3]);
    }

    #[test]
    fn a_check_page_has_a_row_per_case() {
        let check = serde_json::json!({
            "dialect": "dorm", "verdict": {"status": "violations", "exit_code": 1},
            "cases": [
                {"id": "dorm/a", "level": "MUST", "status": "pass", "seconds": 0.5, "violations": []},
                {"id": "dorm/b", "level": "MUST", "status": "fail", "seconds": 1.5,
                 "violations": [["dorm/message/missing", 2]],
                 "evidence": {"client": 0, "user": "u", "at_ms": 5.0, "expected": "e <1>",
                    "received": "r", "transcript": []}}
            ]
        });
        let page = check_page(&check, "reports/c");
        assert_eq!(page.matches("<tr class=\"pass\">").count(), 1);
        assert_eq!(page.matches("<tr class=\"fail\">").count(), 1);
        assert!(page.contains("e &lt;1&gt;"));
        assert!(page.contains("dorm/message/missing ×2"));
    }

    #[test]
    fn round_numbers_for_axes() {
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(3.2), 5.0);
        assert_eq!(nice(120.0), 200.0);
        assert_eq!(num(1.5000), "1.5");
        assert_eq!(num(2.0), "2");
    }
}
