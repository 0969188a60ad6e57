//! One step of a capacity search: a full `roomrig run` of the scaled scenario in a child
//! process (its own connect, hold and teardown), against a fresh reference server in its own
//! process (or the `--target`), and what its summary says.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::resources::Usage;
use crate::scenario::{Scenario, UsersSpec};

/// How long a reference server may take to load its users and listen.
const SERVER_START: Duration = Duration::from_secs(60);

/// What a step is run with.
#[derive(Debug, Clone)]
pub struct StepSetup {
    pub exe: PathBuf,
    pub scenario_path: PathBuf,
    pub target: Option<String>,
    pub workers: u32,
    pub max_lateness_ms: u64,
    pub server_faults: Vec<String>,
    /// `--server-pid`: the target's process, whose CPU time is read from /proc.
    pub server_pid: Option<u32>,
    /// The `--slo` thresholds, judged on each step's summary.
    pub slos: Vec<crate::thresholds::Threshold>,
}

/// A step as `capacity.json` records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    /// 1-based, in the order run.
    pub index: usize,
    pub load: f64,
    /// `pass`, `fail`, `invalid` (the generator fell behind), `interrupted` or `error`.
    pub outcome: String,
    /// The step run's verdict (`summary.json` `verdict.status`) and exit code.
    pub status: String,
    pub exit_code: i32,
    pub reasons: Vec<String>,
    /// The step's report directory, relative to the capacity report directory.
    pub dir: String,
    pub clients: u64,
    pub duration_s: f64,
    /// Sends and deliveries per second while every client was connected and sending.
    pub sent_per_s: f64,
    pub achieved_deliveries_per_s: f64,
    /// `sent_per_s` × the first step's `deliveries_per_send` (what the server was asked to
    /// deliver, if each send fans out as at the lowest load).
    pub offered_deliveries_per_s: Option<f64>,
    /// `achieved_deliveries_per_s` / `sent_per_s`: the workload's fan-out as this step saw it.
    pub deliveries_per_send: f64,
    pub violations: Violations,
    /// p50/p99 (CO-corrected) and sample count of each latency metric.
    pub metrics: std::collections::BTreeMap<String, Latency>,
    /// The step's thresholds (the scenario's and every `--slo`) with their values.
    pub thresholds: Vec<Value>,
    /// CPU of the driver process(es), in cores (CPU seconds / wall seconds).
    pub driver_cpu_cores: f64,
    /// CPU of the server process, in cores, where measurable: the reference server roomrig
    /// started, or `--server-pid`.
    pub server_cpu_cores: Option<f64>,
    pub replay: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Violations {
    pub must: u64,
    pub should: u64,
    pub info: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A child process in its own process group (the terminal's Ctrl-C reaches the capacity
/// process, which forwards it), killed with us.
fn command(exe: &Path) -> Command {
    let mut cmd = Command::new(exe);
    cmd.process_group(0).kill_on_drop(true);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_PDEATHSIG is async-signal-safe and touches only this child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

fn signal(child: &Child, sig: libc::c_int) {
    if let Some(pid) = child.id() {
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(pid as libc::pid_t, sig) };
    }
}

/// A reference server started for one step.
struct Server {
    child: Child,
    url: String,
}

/// `roomrig serve` for the step's scenario: its dialect, its users, its heartbeat.
async fn start_server(
    setup: &StepSetup,
    scenario: &Scenario,
    dir: &Path,
) -> Result<Server, String> {
    let settings = scenario.server_settings();
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--dialect".into(),
        scenario.dialect.0.clone(),
        "--ping-interval-ms".into(),
        settings.ping_interval.0.as_millis().to_string(),
        "--ping-timeout-ms".into(),
        settings.ping_timeout.0.as_millis().to_string(),
    ];
    if let Some(t) = settings.exit_report_timeout {
        args.extend([
            "--exit-report-timeout-ms".into(),
            t.0.as_millis().to_string(),
        ]);
    }
    if scenario.dialect.0 == "chat" {
        // A fresh server keeps nothing of the step before.
        args.extend([
            "--chat-db".into(),
            reference_server::store::IN_MEMORY.into(),
        ]);
    }
    match &scenario.users {
        UsersSpec::Generate { count, room_size } => args.extend([
            "--generate-users".into(),
            count.to_string(),
            "--room-size".into(),
            room_size.to_string(),
        ]),
        UsersSpec::File(path) => args.extend(["--users".into(), path.display().to_string()]),
    }
    for f in &setup.server_faults {
        args.extend(["--fault".into(), f.clone()]);
    }
    let log = std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
    let mut child = command(&setup.exe)
        .args(&args)
        // The server and the step's run use the same (default) tokens.
        .env_remove("ROOMRIG_FIXTURE_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start `{} serve`: {e}", setup.exe.display()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(SERVER_START, lines.next_line())
        .await
        .map_err(|_| "the reference server did not start listening in time".to_string())?
        .map_err(|e| format!("reading the reference server's output: {e}"))?;
    let url = first
        .as_deref()
        .and_then(|l| l.trim().strip_prefix("listening on "))
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "the reference server did not start (see {})",
                dir.join("server.log").display()
            )
        })?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Server { child, url })
}

impl Server {
    async fn stop(mut self) {
        signal(&self.child, libc::SIGTERM);
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await.ok();
        }
    }
}

/// Runs one step: `sets` put the scenario at the step's load; the step's report goes to
/// `base/dir_name`, its console output to `base/dir_name/run.log`. A stop request (Ctrl-C)
/// is forwarded to the run, which then writes what it measured.
pub async fn run(
    setup: &StepSetup,
    scenario: &Scenario,
    sets: &[String],
    index: usize,
    load: f64,
    base: &Path,
) -> StepRecord {
    let dir_name = format!("step-{index:02}");
    let dir = base.join(&dir_name);
    let mut record = StepRecord {
        index,
        load,
        outcome: "error".into(),
        status: String::new(),
        exit_code: crate::exit::Exit::Internal.code(),
        reasons: Vec::new(),
        dir: dir_name.clone(),
        clients: 0,
        duration_s: 0.0,
        sent_per_s: 0.0,
        achieved_deliveries_per_s: 0.0,
        offered_deliveries_per_s: None,
        deliveries_per_send: 0.0,
        violations: Violations::default(),
        metrics: Default::default(),
        thresholds: Vec::new(),
        driver_cpu_cores: 0.0,
        server_cpu_cores: None,
        replay: String::new(),
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        record
            .reasons
            .push(format!("cannot create {}: {e}", dir.display()));
        return record;
    }
    let server = match &setup.target {
        Some(_) => None,
        None => match start_server(setup, scenario, &dir).await {
            Ok(s) => Some(s),
            Err(e) => {
                record.reasons.push(e);
                return record;
            }
        },
    };
    let target = setup
        .target
        .clone()
        .or_else(|| server.as_ref().map(|s| s.url.clone()))
        .unwrap_or_default();
    let server_pid = server
        .as_ref()
        .and_then(|s| s.child.id())
        .or(setup.server_pid);
    let server_cpu_before = server_pid.map(|pid| Usage::of_process(pid).cpu_s());
    let started = Instant::now();
    let code = run_child(setup, sets, &target, &dir).await;
    let wall = started.elapsed().as_secs_f64().max(1e-3);
    record.server_cpu_cores = server_pid
        .zip(server_cpu_before)
        .map(|(pid, before)| (Usage::of_process(pid).cpu_s() - before).max(0.0) / wall);
    if let Some(s) = server {
        s.stop().await;
    }
    record.exit_code = code;
    let slo_failed = match read_summary(&dir.join("summary.json"), &mut record) {
        Some(summary) => judge_slos(&setup.slos, &summary, &mut record),
        None => false,
    };
    record.outcome = match record.status.as_str() {
        "pass" if slo_failed => "fail",
        "pass" => "pass",
        "thresholds" | "violations" => "fail",
        "invalid" => "invalid",
        "interrupted" => "interrupted",
        _ => "error",
    }
    .into();
    if record.outcome == "error" && record.reasons.is_empty() {
        record.reasons.push(format!(
            "the step's run exited {code} without a verdict (see {})",
            dir.join("run.log").display()
        ));
    }
    record
}

/// `roomrig run SCENARIO --target URL --report-dir DIR ...`; returns its exit code.
async fn run_child(setup: &StepSetup, sets: &[String], target: &str, dir: &Path) -> i32 {
    let log = match std::fs::File::create(dir.join("run.log")) {
        Ok(f) => f,
        Err(_) => return crate::exit::Exit::Internal.code(),
    };
    let err_log = match log.try_clone() {
        Ok(f) => f,
        Err(_) => return crate::exit::Exit::Internal.code(),
    };
    let mut cmd = command(&setup.exe);
    cmd.arg("run")
        .arg(&setup.scenario_path)
        .args(["--target", target])
        .arg("--report-dir")
        .arg(dir)
        .arg("--overwrite")
        .arg("--no-progress")
        .args(["--max-lateness-ms", &setup.max_lateness_ms.to_string()])
        .args(["--workers", &setup.workers.to_string()]);
    for s in sets {
        cmd.arg("--set").arg(s);
    }
    if setup.target.is_none() {
        cmd.env_remove("ROOMRIG_FIXTURE_SECRET");
    }
    let mut child = match cmd.stdin(Stdio::null()).stdout(log).stderr(err_log).spawn() {
        Ok(c) => c,
        Err(_) => return crate::exit::Exit::Internal.code(),
    };
    let status = tokio::select! {
        status = child.wait() => status,
        () = crate::signals::stop_requested() => {
            // The run stops as at Ctrl-C: it closes its clients and writes its report.
            signal(&child, libc::SIGINT);
            child.wait().await
        }
    };
    status
        .ok()
        .and_then(|s| s.code())
        .unwrap_or(crate::exit::Exit::Internal.code())
}

/// Judges each `--slo` on the step's summary: its outcome joins the step's thresholds, a
/// failure its reasons. Returns whether one failed.
fn judge_slos(
    slos: &[crate::thresholds::Threshold],
    summary: &Value,
    record: &mut StepRecord,
) -> bool {
    let figures = figures(summary);
    let mut failed = false;
    for t in slos {
        let outcome = t.evaluate(&figures);
        if !outcome.passed {
            failed = true;
            record.reasons.push(format!(
                "SLO `{}` failed (actual {})",
                t.text,
                outcome.actual_shown()
            ));
        }
        record
            .thresholds
            .push(serde_json::to_value(&outcome).unwrap_or_default());
    }
    failed
}

/// A run's figures (as thresholds name them) from its `summary.json`, as the run computed
/// them for its own thresholds.
pub fn figures(s: &Value) -> std::collections::BTreeMap<String, f64> {
    let mut f = std::collections::BTreeMap::new();
    if let Some(metrics) = s["metrics"].as_object() {
        for (name, m) in metrics {
            for (prefix, stats) in [(name.clone(), &m["co"]), (format!("{name}.raw"), &m["raw"])] {
                for (stat, _) in crate::thresholds::Stat::ALL {
                    if let Some(v) = stats[format!("{stat}_ms")].as_f64() {
                        f.insert(format!("{prefix}.{stat}"), v);
                    }
                }
            }
            if let Some(c) = m["co"]["count"].as_f64() {
                f.insert(format!("{name}.count"), c);
            }
        }
    }
    let v = &s["violations"];
    for (key, field) in [
        ("violations", "total"),
        ("violations.must", "must"),
        ("violations.should", "should"),
        ("violations.info", "info"),
    ] {
        f.insert(key.into(), v[field].as_f64().unwrap_or(0.0));
    }
    let planned = s["clients"]["planned"].as_f64().unwrap_or(0.0).max(1.0);
    f.insert(
        "connect.errors".into(),
        s["clients"]["connect_errors"].as_f64().unwrap_or(0.0) * 100.0 / planned,
    );
    f.insert("sent".into(), s["events"]["sent"].as_f64().unwrap_or(0.0));
    f.insert(
        "received".into(),
        s["events"]["received"].as_f64().unwrap_or(0.0),
    );
    f
}

/// Fills the record from the step's `summary.json` and returns it (absent: the record stays
/// an error).
fn read_summary(path: &Path, record: &mut StepRecord) -> Option<Value> {
    let text = std::fs::read(path).ok()?;
    let Ok(s) = serde_json::from_slice::<Value>(&text) else {
        record
            .reasons
            .push(format!("{} is not JSON", path.display()));
        return None;
    };
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let u = |v: &Value| v.as_u64().unwrap_or(0);
    record.status = s["verdict"]["status"].as_str().unwrap_or("").to_string();
    record.reasons = s["verdict"]["reasons"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    record.clients = u(&s["clients"]["planned"]);
    record.duration_s = f(&s["duration_s"]);
    record.violations = Violations {
        must: u(&s["violations"]["must"]),
        should: u(&s["violations"]["should"]),
        info: u(&s["violations"]["info"]),
    };
    if let Some(m) = s["metrics"].as_object() {
        for (name, v) in m {
            record.metrics.insert(
                name.clone(),
                Latency {
                    count: u(&v["co"]["count"]),
                    p50_ms: f(&v["co"]["p50_ms"]),
                    p99_ms: f(&v["co"]["p99_ms"]),
                },
            );
        }
    }
    record.thresholds = s["thresholds"].as_array().cloned().unwrap_or_default();
    record.replay = s["replay"].as_str().unwrap_or("").to_string();
    // Split runs: the workers' CPU; one process: the driver's.
    let workers_cpu: f64 = s["processes"]["workers"]
        .as_array()
        .map(|w| w.iter().map(|x| f(&x["cpu_s"])).sum())
        .unwrap_or(0.0);
    let cpu = if workers_cpu > 0.0 {
        workers_cpu
    } else {
        f(&s["driver"]["cpu_s"])
    };
    record.driver_cpu_cores = cpu / record.duration_s.max(1e-3);
    let (sent, received) = steady_rates(&s["timeline"]);
    record.sent_per_s = sent;
    record.achieved_deliveries_per_s = received;
    if sent > 0.0 {
        record.deliveries_per_send = received / sent;
    }
    Some(s)
}

/// Sends and receipts per second over the steady part of a run: the seconds when every client
/// was connected (open at ≥ 98 % of its peak) and sending (at least half the busiest such
/// second's sends), so the arrival ramp and the teardown do not dilute the rate.
pub fn steady_rates(timeline: &Value) -> (f64, f64) {
    let series = |key: &str| -> Vec<f64> {
        timeline[key]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_f64().unwrap_or(0.0)).collect())
            .unwrap_or_default()
    };
    let (open, sent, received) = (series("open"), series("sent"), series("received"));
    let n = open.len().min(sent.len()).min(received.len());
    if n == 0 {
        return (0.0, 0.0);
    }
    let peak_open = open[..n].iter().copied().fold(0.0, f64::max);
    let full: Vec<usize> = (0..n).filter(|&i| open[i] >= 0.98 * peak_open).collect();
    let busiest = full.iter().map(|&i| sent[i]).fold(0.0, f64::max);
    let steady: Vec<usize> = full
        .into_iter()
        .filter(|&i| sent[i] >= 0.5 * busiest)
        .collect();
    if steady.is_empty() {
        return (0.0, 0.0);
    }
    let mean = |v: &[f64]| steady.iter().map(|&i| v[i]).sum::<f64>() / steady.len() as f64;
    (mean(&sent), mean(&received))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_rates_skip_the_ramp_and_the_teardown() {
        let tl = serde_json::json!({
            "open": [10, 40, 40, 40, 40, 40, 20, 0],
            "sent": [5, 20, 100, 100, 100, 100, 30, 0],
            "received": [10, 60, 400, 400, 400, 400, 90, 0],
        });
        assert_eq!(steady_rates(&tl), (100.0, 400.0));
        assert_eq!(steady_rates(&serde_json::json!({})), (0.0, 0.0));
    }

    #[test]
    fn an_slo_is_judged_on_the_summary_as_the_run_judges_its_thresholds() {
        let summary = serde_json::json!({
            "metrics": { "message.fanout": {
                "co": { "count": 10, "p50_ms": 2.0, "p99_ms": 180.0 },
                "raw": { "count": 10, "p50_ms": 0.5, "p99_ms": 20.0 } } },
            "violations": { "total": 3, "must": 1, "should": 2, "info": 0 },
            "clients": { "planned": 50, "connect_errors": 1 },
            "events": { "sent": 100, "received": 400 },
        });
        let f = figures(&summary);
        assert_eq!(f["message.fanout.p99"], 180.0);
        assert_eq!(f["message.fanout.raw.p99"], 20.0);
        assert_eq!(f["violations.must"], 1.0);
        assert_eq!(f["connect.errors"], 2.0);
        let mut record: StepRecord =
            serde_json::from_value(serde_json::json!({
                "index": 1, "load": 1.0, "outcome": "", "status": "pass", "exit_code": 0,
                "reasons": [], "dir": "step-01", "clients": 50, "duration_s": 1.0,
                "sent_per_s": 0.0, "achieved_deliveries_per_s": 0.0,
                "offered_deliveries_per_s": null, "deliveries_per_send": 0.0, "violations": {"must": 0, "should": 0, "info": 0},
                "metrics": {}, "thresholds": [], "driver_cpu_cores": 0.0,
                "server_cpu_cores": null, "replay": ""
            }))
            .unwrap();
        let slo = |t: &str| crate::thresholds::Threshold::parse(t).unwrap();
        assert!(!judge_slos(
            &[slo("message.fanout.p99 < 250ms")],
            &summary,
            &mut record
        ));
        assert!(judge_slos(
            &[slo("message.fanout.p99 < 100ms")],
            &summary,
            &mut record
        ));
        assert_eq!(record.thresholds.len(), 2);
        assert!(
            record.reasons[0].contains("message.fanout.p99 < 100ms"),
            "{:?}",
            record.reasons
        );
    }
}
