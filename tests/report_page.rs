//! report.html in a real browser: a run with violations writes the page, headless Chromium
//! (Debian's package, installed by tests/browser/ensure-chromium.sh when missing) opens it
//! from file:// without a console message, draws every chart with one point per interval of
//! histograms.hlog (latency) or per second of the timeline (traffic, violations), and leaves a
//! screenshot under target/ (`$CARGO_TARGET_TMPDIR/report-page/`). `roomrig report` renders the
//! same page again from the files alone, compares two runs, and refuses a missing or corrupt
//! directory with its exit code; `roomrig check` writes check.json and its page.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{permit, repo_file};

/// The browser, installed when missing.
fn chromium() -> PathBuf {
    let out = Command::new("sh")
        .arg(repo_file("tests/browser/ensure-chromium.sh"))
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "cannot get chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Headless Chromium on `page` with `args`: (stdout, stderr).
fn browse(browser: &Path, page: &Path, args: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every chart of a DOM: its id and the `data-drawn` count the page's script noted from the
/// browser's parsed SVG (the fewest points of its lines).
fn drawn_charts(dom: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for fig in dom.split("<figure").skip(1) {
        let tag = &fig[..fig.find('>').unwrap()];
        let attr = |name: &str| {
            let at = tag
                .find(&format!("{name}=\""))
                .map(|i| i + name.len() + 2)?;
            Some(tag[at..at + tag[at..].find('"')?].to_string())
        };
        let id = attr("id").expect("a chart has an id");
        let drawn = attr("data-drawn")
            .unwrap_or_else(|| panic!("{id}: the browser's script did not note its points"));
        out.insert(id, drawn.parse().unwrap());
    }
    out
}

fn roomrig(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_roomrig"))
        .args(args)
        .output()
        .expect("roomrig runs")
}

#[test]
fn the_report_page_renders_in_chromium_with_a_point_per_interval() {
    let browser = chromium();
    let run = {
        let _permit = permit();
        common::roomrig_run(
            &repo_file("tests/scenarios/dorm-faults.yaml"),
            &[
                "--server-fault",
                "drop-broadcast=0.2",
                "--max-lateness-ms",
                "60000",
            ],
        )
    };
    assert_eq!(run.code, 1, "{}", run.explain());
    let dir = run.dir.path();
    let page = dir.join("report.html");
    assert!(run.stdout.contains("report.html"), "{}", run.stdout);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.len() < 2_000_000);

    // What the charts must show: the hlog's intervals per metric, the timeline's seconds.
    let hlog = roomrig::hlog::by_tag(roomrig::hlog::read(&dir.join("histograms.hlog")).unwrap());
    let summary = run.report();
    let seconds = summary["timeline"]["sent"].as_array().unwrap().len();
    assert!(seconds >= 2, "a run of ~3 s has several seconds");
    let mut expected: BTreeMap<String, usize> = hlog
        .iter()
        .filter_map(|(tag, iv)| Some((format!("latency:{}", tag.strip_suffix(".co")?), iv.len())))
        .collect();
    assert!(
        expected["latency:message.fanout"] >= 2,
        "one interval per second: {expected:?}"
    );
    for id in [
        "traffic:connections",
        "traffic:messages",
        "violations:timeline",
    ] {
        expected.insert(id.into(), seconds);
    }

    let (dom, log) = browse(&browser, &page, &["--dump-dom"]);
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert!(dom.contains("data-ready=\"yes\""), "the page's script ran");
    assert_eq!(drawn_charts(&dom), expected);
    assert!(dom.contains("dorm/message/missing"));
    assert!(dom.contains("received: <code>nothing</code>"));

    // The artefact a person looks at.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-page");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("report.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &browser,
        &page,
        &[
            "--hide-scrollbars",
            "--window-size=1000,3000",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);

    // The page is a function of the result files: rendered again, it is the same page.
    let again = dir.join("again.html");
    let o = roomrig(&[
        "report",
        dir.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(std::fs::read_to_string(&again).unwrap(), html);

    // Two runs side by side.
    let compare = dir.join("cmp.html");
    let o = roomrig(&[
        "report",
        dir.to_str().unwrap(),
        dir.to_str().unwrap(),
        "--out",
        compare.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let (dom, log) = browse(&browser, &compare, &["--dump-dom"]);
    assert!(!log.contains(":CONSOLE"), "{log}");
    let charts = drawn_charts(&dom);
    assert_eq!(
        charts["latency:message.fanout"],
        hlog["message.fanout.co"].len()
    );
    assert_eq!(charts["traffic:received"], seconds);
}

#[test]
fn report_refuses_a_missing_or_corrupt_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nothing-here");
    let o = roomrig(&["report", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a directory"));
    // A directory without results is no report directory: a usage error too.
    let o = roomrig(&["report", tmp.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no summary.json"));
    // A result file that cannot be parsed: exit 6, naming the file.
    std::fs::write(tmp.path().join("summary.json"), "{\"verdict\":").unwrap();
    let o = roomrig(&["report", tmp.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&o.stderr).contains("summary.json"));
    std::fs::write(
        tmp.path().join("summary.json"),
        r#"{"verdict":{"status":"pass"}}"#,
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("histograms.hlog"),
        "Tag=x,0.0,1.0,1.0,not-a-histogram\n",
    )
    .unwrap();
    let o = roomrig(&["report", tmp.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&o.stderr).contains("histograms.hlog"));
    let o = roomrig(&["report"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn check_writes_its_results_and_a_page_with_a_row_per_case() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("check");
    let cases = [
        "dorm/join_room/last-data-to-joiner",
        "dorm/action/broadcast-and-cancel",
    ];
    let o = {
        let _permit = permit();
        roomrig(&[
            "check",
            "--dialect",
            "dorm",
            "--case",
            cases[0],
            "--case",
            cases[1],
            "--report-dir",
            dir.to_str().unwrap(),
        ])
    };
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let check: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("check.json")).unwrap()).unwrap();
    assert_eq!(check["verdict"]["status"], "pass");
    assert_eq!(check["cases"].as_array().unwrap().len(), 2);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert_eq!(html.matches("<tr class=\"pass\">").count(), 2);
    for id in cases {
        assert!(html.contains(id), "{id}");
    }
    // Rendered again from check.json alone.
    std::fs::remove_file(dir.join("report.html")).unwrap();
    let o = roomrig(&["report", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(
        std::fs::read_to_string(dir.join("report.html")).unwrap(),
        html
    );
}
