//! `roomrig run --workers N`: one scenario split across N local driver processes, merged into
//! one report and one verdict.
//!
//! - **Split by fixture room** ([`owners`]): every worker plans the same open-loop schedule
//!   from the same seed and spawns only the clients of its rooms, so the union of the workers
//!   is exactly the single-process run, and each broadcast is sent, received, timed (one
//!   process clock) and judged (one oracle) inside one process. Dialects with deliveries
//!   across fixture rooms are refused ([`check_splittable`]).
//! - **Processes**: the parent starts the reference server(s) when the scenario has no
//!   target (`--server-procs M` processes of `roomrig serve`, worker `k` driving server
//!   `k mod M`), then N workers (`roomrig run SCENARIO --worker K/N ...`), each with its own
//!   open-file limit and its own loopback source address ([`source_addr`]). A worker connects
//!   once, says `@ready`, and starts its schedule at the wall-clock time the parent sends, so
//!   all workers run one schedule; it reports `@progress` lines while it runs.
//! - **Measuring and presenting stay apart**: each worker writes `summary.json`,
//!   `histograms.hlog` and `worker.json` (counters, violations with examples, transcripts,
//!   resource use, its own verdict) into `<report-dir>/worker-K/`; the parent reads them back,
//!   merges losslessly ([`merge`]: histograms added, counters summed, violation tallies summed
//!   by rule id keeping the earliest examples) and writes the one report with the ordinary
//!   report code. Thresholds are judged on the merged result; an invalid worker makes the run
//!   invalid; Ctrl-C is forwarded to the workers and the report of what ran is still written.

mod merge;
mod procs;
mod split;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::io::AsyncWriteExt as _;

pub use merge::{metric_pairs, read_hlog, Part, PART_FILE};
pub use split::{check_splittable, owners, source_addr, MAX_WORKERS};

use crate::cli::RunArgs;
use crate::driver::{RunResult, Shared};
use crate::exit::Exit;
use crate::report::{SummaryFile, Verdict};
use crate::scenario::Scenario;
use procs::{Live, ServerProc};

/// Which share of a run this process drives: worker `index` of `count` (`--worker K/N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerShare {
    pub index: u32,
    pub count: u32,
}

impl FromStr for WorkerShare {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("expected K/N, not {s:?}"))?;
        let (index, count) = (
            k.trim().parse::<u32>().map_err(|e| e.to_string())?,
            n.trim().parse::<u32>().map_err(|e| e.to_string())?,
        );
        if index >= count || count > MAX_WORKERS {
            return Err(format!("worker {index} of {count} does not exist"));
        }
        Ok(WorkerShare { index, count })
    }
}

impl WorkerShare {
    /// Tells the parent this worker is ready (`@ready` on stdout) and waits for the start time
    /// it sends on stdin (`start <µs since the Unix epoch>`), returned as an instant.
    pub async fn wait_for_start(&self) -> Result<tokio::time::Instant, String> {
        use std::io::Write as _;
        use tokio::io::AsyncBufReadExt as _;
        // From now on a Ctrl-C forwarded by the parent must not kill the worker before the
        // run watches for it (the parent repeats it until the worker stops).
        #[cfg(unix)]
        let _ = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "@ready")
                .and_then(|()| out.flush())
                .map_err(|e| format!("worker {}: cannot talk to the parent: {e}", self.index))?;
        }
        let mut line = String::new();
        tokio::io::BufReader::new(tokio::io::stdin())
            .read_line(&mut line)
            .await
            .map_err(|e| format!("worker {}: cannot read the start: {e}", self.index))?;
        let micros: u64 = line
            .trim()
            .strip_prefix("start ")
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| {
                format!(
                    "worker {}: the parent sent no start time (got {:?})",
                    self.index,
                    line.trim()
                )
            })?;
        let at = UNIX_EPOCH + Duration::from_micros(micros);
        let wait = at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Ok(tokio::time::Instant::now() + wait)
    }
}

/// A worker's live counters for the parent, twice a second on stdout.
pub async fn progress_lines(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let c = &shared.counters;
        let live = Live {
            planned: c.planned.get(),
            connected: c.connected.get(),
            connect_errors: c.connect_errors.get(),
            active: c.active.get(),
            sent: c.sent.get(),
            received: c.received.get(),
            violations: shared.oracle.violation_count(),
        };
        println!("{}", live.line());
    }
}

/// The report directory of worker `k` inside the run's report directory.
pub fn worker_dir(dir: &Path, k: u32) -> PathBuf {
    dir.join(format!("worker-{k}"))
}

/// The end of a worker: its own report files and its part for the parent, quietly.
pub fn finish_worker(
    share: &WorkerShare,
    source_addr: Option<std::net::IpAddr>,
    summary: &SummaryFile,
    result: &RunResult,
    dir: &Path,
) -> i32 {
    let written = crate::report::write_files(summary, result, dir)
        .and_then(|_| Part::of(result, summary, share, source_addr).write(dir));
    match written {
        Ok(()) => summary.verdict.exit_code,
        Err(e) => {
            eprintln!(
                "error: worker {}: cannot write its results into {}: {e}",
                share.index,
                dir.display()
            );
            Exit::Internal.code()
        }
    }
}

/// One worker in the merged report's `processes` section.
#[derive(Debug, Serialize)]
struct WorkerInfo {
    worker: u32,
    dir: String,
    source_addr: Option<String>,
    target: String,
    planned: u64,
    connected: u64,
    sent: u64,
    received: u64,
    violations: u64,
    cpu_s: f64,
    peak_rss_mb: f64,
    status: String,
    exit_code: Option<i32>,
}

/// One reference-server process in the merged report's `processes` section.
#[derive(Debug, Serialize)]
struct ServerInfo {
    url: String,
    cpu_s: f64,
    peak_rss_mb: f64,
}

fn usage_error(message: String) -> i32 {
    eprintln!("error: {message}");
    Exit::Usage.code()
}

/// `roomrig run --workers N` (N > 1): starts the servers and workers, follows them, merges
/// their results and presents one report. Returns the exit code.
pub async fn run_parent(args: &RunArgs, mut scenario: Scenario) -> i32 {
    let n = args.workers;
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    if let Err(why) = check_splittable(crate::dialect::spec(&scenario.dialect.0)) {
        return usage_error(format!("--workers {n}: {why}"));
    }
    let target = args.target.clone().or_else(|| scenario.target.clone());
    if target.is_some() && args.server_procs > 1 {
        return usage_error(
            "--server-procs starts reference servers, so it cannot go with a target".into(),
        );
    }
    if args.server_procs > n {
        return usage_error(format!(
            "--server-procs {} exceeds --workers {n}: each server process needs its own workers",
            args.server_procs
        ));
    }
    let fixtures = match crate::driver::load_fixtures(&scenario, args.users.as_deref()) {
        Ok(f) => f,
        Err(e) => return usage_error(e.to_string()),
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("error: cannot find the roomrig executable to start workers: {e}");
            return Exit::Internal.code();
        }
    };
    if let Some(reason) = crate::schedule::plans_nobody(&scenario, fixtures.users.len()) {
        eprintln!("error: {reason}");
        return Exit::Usage.code();
    }
    // The plan: which worker runs which client (the workers compute the same).
    let owners = owners(fixtures.users.iter().map(|u| u.room_id), n);
    let mut planned = vec![0u64; n as usize];
    for a in crate::schedule::arrivals(&scenario, fixtures.users.len()) {
        planned[owners[a.client as usize] as usize] += 1;
    }
    let run_id = crate::cli::run_id(chrono::Utc::now(), &scenario.name, scenario.seed);
    let dir = args
        .report_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports").join(&run_id));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!(
            "error: cannot create the report directory {}: {e}",
            dir.display()
        );
        return Exit::Internal.code();
    }
    let mut ctrl_c = Box::pin(crate::signals::stop_requested());

    // The servers: the target, or M reference-server processes.
    let servers = match &target {
        Some(_) => Vec::new(),
        None => match start_servers(&exe, &scenario, &fixtures, args, &dir).await {
            Ok(s) => s,
            Err(e) => return usage_error(format!("cannot start the reference server: {e}")),
        },
    };
    let targets: Vec<String> = match &target {
        Some(t) => vec![t.clone()],
        None => servers.iter().map(|s| s.url.clone()).collect(),
    };

    // One generation for every worker: detected here once, passed on as a fixed version.
    if target.is_some() && scenario.server.is_some() {
        crate::driver::warn_server_block();
    }
    let asked = scenario.eio;
    let probe_config = crate::client::ClientConfig::default();
    let (eio, detected) =
        match crate::driver::resolve_eio(&targets[0], &probe_config, scenario.eio).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                stop_servers(servers).await;
                return Exit::Unreachable.code();
            }
        };
    let eio_detected = detected
        .filter(|_| asked == crate::protocol::EioSetting::Auto)
        .map(|d| d.signal);
    if let Some(signal) = &eio_detected {
        println!("detected Engine.IO {eio} at {}: {signal}", targets[0]);
    }
    scenario.eio = crate::protocol::EioSetting::Fixed(eio);

    // The workers: started together, each connects once and waits for the start.
    let live = Arc::new(Mutex::new(vec![Live::default(); n as usize]));
    let mut workers = Vec::new();
    let mut placement = Vec::new();
    for k in 0..n {
        let t = targets[k as usize % targets.len()].clone();
        let source = source_addr(&t, k);
        let wargs = worker_args(args, &scenario, k, &t, source, &worker_dir(&dir, k));
        match procs::start_worker(&exe, k, &wargs, live.clone()) {
            Ok(w) => workers.push(w),
            Err(e) => {
                eprintln!("error: {e}");
                stop_servers(servers).await;
                return Exit::Internal.code();
            }
        }
        placement.push((t, source));
    }
    for w in workers.iter_mut() {
        tokio::select! {
            ready = &mut w.ready => if ready.is_err() {
                // It exited before connecting: a usage error or an unreachable target, which
                // it reported on stderr. The other workers go with it.
                let code = w.child.wait().await.ok().and_then(|s| s.code());
                drop(workers);
                stop_servers(servers).await;
                return match code {
                    Some(c) if c != 0 => c,
                    _ => Exit::Internal.code(),
                };
            },
            _ = &mut ctrl_c => {
                eprintln!("interrupted before the load started: nothing ran");
                drop(workers);
                stop_servers(servers).await;
                return Exit::Interrupted.code();
            }
        }
    }
    // One start for all, a moment ahead so every worker has it in time.
    let start = SystemTime::now() + Duration::from_millis(250);
    let micros = start
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    for w in workers.iter_mut() {
        if let Some(mut stdin) = w.stdin.take() {
            let _ = stdin
                .write_all(format!("start {micros}\n").as_bytes())
                .await;
            let _ = stdin.flush().await;
        }
    }

    // The run: follow the workers; Ctrl-C is forwarded (and repeated) until they stop.
    let bar = (!args.no_progress).then(|| progress_bar(planned.iter().sum()));
    let mut pids = BTreeMap::new();
    let mut waits = tokio::task::JoinSet::new();
    for mut w in workers {
        if let Some(pid) = w.child.id() {
            pids.insert(w.index, pid);
        }
        let k = w.index;
        waits.spawn(async move { (k, w.child.wait().await.ok().and_then(|s| s.code())) });
    }
    let mut codes: Vec<Option<i32>> = vec![None; n as usize];
    let mut interrupted: Option<tokio::time::Instant> = None;
    let mut last_signal = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last = (Live::default(), tokio::time::Instant::now());
    // The most connections open at once, from the workers' live counts.
    let mut peak_open = 0u64;
    loop {
        tokio::select! {
            done = waits.join_next() => match done {
                None => break,
                Some(Ok((k, code))) => {
                    pids.remove(&k);
                    codes[k as usize] = code;
                }
                Some(Err(e)) => eprintln!("warning: lost track of a worker: {e}"),
            },
            _ = &mut ctrl_c, if interrupted.is_none() => {
                interrupted = Some(tokio::time::Instant::now());
                last_signal = tokio::time::Instant::now();
                for &pid in pids.values() {
                    procs::signal(pid, libc::SIGINT);
                }
            },
            _ = tick.tick() => {
                let now = sum_live(&live);
                peak_open = peak_open.max(now.active);
                if let Some(bar) = &bar {
                    show_progress(bar, &now, &last, n);
                }
                last = (now, tokio::time::Instant::now());
                if let Some(since) = interrupted {
                    if last_signal.elapsed() >= Duration::from_secs(1) {
                        last_signal = tokio::time::Instant::now();
                        for &pid in pids.values() {
                            procs::signal(pid, libc::SIGINT);
                        }
                    }
                    if since.elapsed() > Duration::from_secs(60) {
                        for &pid in pids.values() {
                            procs::signal(pid, libc::SIGKILL);
                        }
                    }
                }
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let server_costs: Vec<ServerInfo> = {
        let mut out = Vec::new();
        for s in servers {
            let url = s.url.clone();
            let cost = s.stop().await;
            out.push(ServerInfo {
                url,
                cpu_s: cost.cpu_s,
                peak_rss_mb: cost.peak_rss_mb,
            });
        }
        out
    };

    // The merge: every worker's part and histograms into one result.
    let mut parts = Vec::new();
    let mut infos = Vec::new();
    let mut worker_reasons = Vec::new();
    for k in 0..n {
        let wdir = worker_dir(&dir, k);
        let (t, source) = &placement[k as usize];
        let read = Part::read(&wdir).and_then(|p| {
            let m = read_hlog(&wdir.join("histograms.hlog"))?;
            Ok((p, metric_pairs(m)))
        });
        let mut info = WorkerInfo {
            worker: k,
            dir: wdir.display().to_string(),
            source_addr: source.map(|s| s.to_string()),
            target: t.clone(),
            planned: planned[k as usize],
            connected: 0,
            sent: 0,
            received: 0,
            violations: 0,
            cpu_s: 0.0,
            peak_rss_mb: 0.0,
            status: "no results".into(),
            exit_code: codes[k as usize],
        };
        match read {
            Ok((p, metrics)) => {
                info.planned = p.planned_clients;
                info.connected = p.connected;
                info.sent = p.sent;
                info.received = p.received;
                info.violations = p.violations.values().map(|t| t.count).sum();
                info.cpu_s = p.usage_after.cpu_s() - p.usage_before.cpu_s();
                info.peak_rss_mb = p.usage_after.peak_rss_bytes as f64 / 1048576.0;
                info.status = p.status.clone();
                if p.status == "invalid" {
                    worker_reasons.push(format!(
                        "worker {k}: {}",
                        p.reasons.first().map_or("invalid run", String::as_str)
                    ));
                }
                parts.push((p, metrics));
            }
            Err(e) => worker_reasons.push(format!(
                "worker {k} (exit {}) left no results: {e}",
                codes[k as usize].map_or("by a signal".to_string(), |c| c.to_string())
            )),
        }
        infos.push(info);
    }
    let ctx = merge::Context {
        scenario: Arc::new(scenario.clone()),
        target: targets.join(", "),
        embedded: target.is_none(),
        eio,
        eio_detected,
        started_at: start.into(),
        interrupted: interrupted.is_some(),
        users_file: args.users.clone(),
        max_lateness: Duration::from_millis(args.max_lateness_ms),
        op_log: args.op_log,
    };
    let result = match merge::merge(ctx, parts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot merge the workers' histograms: {e}");
            return Exit::Internal.code();
        }
    };
    let mut summary = crate::report::summarize(&result, &args.scenario, &run_id, args.strict);
    invalid_if_a_worker_was(&mut summary.verdict, worker_reasons);
    summary.driver.includes_embedded_server = false;
    summary.replay = format!(
        "{} --workers {n}{}",
        summary.replay,
        if server_costs.len() > 1 {
            format!(" --server-procs {}", server_costs.len())
        } else {
            String::new()
        }
    );
    print!("{}", processes_table(&infos, &server_costs, peak_open));
    summary.processes = Some(serde_json::json!({
        "workers": infos,
        "servers": server_costs,
        "peak_open": peak_open,
    }));
    crate::cli::finish_run(args, &scenario.name, &summary, &result, &dir)
}

/// An invalid (or lost) worker makes the merged run invalid, unless it was interrupted.
fn invalid_if_a_worker_was(verdict: &mut Verdict, worker_reasons: Vec<String>) {
    if worker_reasons.is_empty() {
        return;
    }
    if verdict.status != "interrupted" {
        verdict.status = "invalid";
        verdict.exit_code = Exit::InvalidRun.code();
    }
    verdict.reasons.extend(worker_reasons);
}

/// The command line of worker `k`.
fn worker_args(
    args: &RunArgs,
    scenario: &Scenario,
    k: u32,
    target: &str,
    source: Option<std::net::IpAddr>,
    dir: &Path,
) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        args.scenario.clone().into(),
        "--worker".into(),
        format!("{k}/{}", args.workers).into(),
        "--target".into(),
        target.into(),
        "--report-dir".into(),
        dir.into(),
        "--seed".into(),
        scenario.seed.to_string().into(),
        "--eio".into(),
        scenario.eio.to_string().into(),
        "--max-lateness-ms".into(),
        args.max_lateness_ms.to_string().into(),
    ];
    if let Some(users) = &args.users {
        a.extend(["--users".into(), users.into()]);
    }
    for set in &args.set {
        a.extend(["--set".into(), set.into()]);
    }
    if let Some(source) = source {
        a.extend(["--source-addr".into(), source.to_string().into()]);
    }
    for (on, flag) in [(args.op_log, "--op-log"), (args.strict, "--strict")] {
        if on {
            a.push(flag.into());
        }
    }
    a
}

/// Starts `--server-procs` reference servers, each serving the run's whole fixture (a server
/// only ever sees the rooms of the workers that drive it).
async fn start_servers(
    exe: &Path,
    scenario: &Scenario,
    fixtures: &reference_server::fixtures::Fixtures,
    args: &RunArgs,
    dir: &Path,
) -> Result<Vec<ServerProc>, String> {
    let users = dir.join(".reference-server-users.json");
    fixtures
        .save(&users)
        .map_err(|e| format!("cannot write {}: {e}", users.display()))?;
    let mut sargs: Vec<String> = vec![
        "--dialect".into(),
        scenario.dialect.0.clone(),
        "--users".into(),
        users.display().to_string(),
        "--ping-interval-ms".into(),
        scenario
            .server_settings()
            .ping_interval
            .0
            .as_millis()
            .to_string(),
        "--ping-timeout-ms".into(),
        scenario
            .server_settings()
            .ping_timeout
            .0
            .as_millis()
            .to_string(),
    ];
    for f in &args.server_fault {
        sargs.extend(["--fault".into(), f.clone()]);
    }
    let mut servers = Vec::new();
    let mut failed = None;
    for _ in 0..args.server_procs {
        match procs::start_server(exe, &sargs).await {
            Ok(s) => servers.push(s),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    // Every server has read the users by now.
    std::fs::remove_file(&users).ok();
    match failed {
        None => Ok(servers),
        Some(e) => {
            stop_servers(servers).await;
            Err(e)
        }
    }
}

async fn stop_servers(servers: Vec<ServerProc>) {
    for s in servers {
        s.stop().await;
    }
}

fn progress_bar(planned: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(planned);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} arrived  {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// The sum of the workers' last progress lines.
fn sum_live(live: &Mutex<Vec<Live>>) -> Live {
    let mut sum = Live::default();
    for l in crate::oracle::lock(live).iter() {
        sum.add(l);
    }
    sum
}

/// Redraws the aggregate view: `sum` now, `before` at `at`.
fn show_progress(
    bar: &indicatif::ProgressBar,
    sum: &Live,
    (before, at): &(Live, tokio::time::Instant),
    workers: u32,
) {
    let dt = at.elapsed().as_secs_f64().max(1e-3);
    let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / dt;
    bar.set_position(sum.connected + sum.connect_errors);
    bar.set_message(format!(
        "open {}  sent {} ({:.0}/s)  recv {} ({:.0}/s)  errors {}  violations {}  ({workers} workers)",
        sum.active,
        sum.sent,
        rate(sum.sent, before.sent),
        sum.received,
        rate(sum.received, before.received),
        sum.connect_errors,
        sum.violations,
    ));
    bar.tick();
}

/// The per-process lines of the console report.
fn processes_table(workers: &[WorkerInfo], servers: &[ServerInfo], peak_open: u64) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<8} {:<10} {:<24} {:>8} {:>9} {:>9} {:>10} {:>10} {:>7} {:>9}  verdict",
        "worker",
        "source",
        "target",
        "planned",
        "connected",
        "sent",
        "received",
        "violations",
        "CPU s",
        "peak MB"
    );
    for w in workers {
        let _ = writeln!(
            out,
            "{:<8} {:<10} {:<24} {:>8} {:>9} {:>9} {:>10} {:>10} {:>7.2} {:>9.1}  {}",
            w.worker,
            w.source_addr.as_deref().unwrap_or("-"),
            w.target,
            w.planned,
            w.connected,
            w.sent,
            w.received,
            w.violations,
            w.cpu_s,
            w.peak_rss_mb,
            w.status
        );
    }
    for s in servers {
        let _ = writeln!(
            out,
            "server   {:<35} reference server process: {:.2} CPU s, peak RSS {:.1} MB",
            s.url, s.cpu_s, s.peak_rss_mb
        );
    }
    let _ = writeln!(
        out,
        "peak open connections: {peak_open} (the workers' live counts, summed twice a second)"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_share_parses() {
        assert_eq!(
            "1/3".parse::<WorkerShare>(),
            Ok(WorkerShare { index: 1, count: 3 })
        );
        assert!("3/3".parse::<WorkerShare>().is_err());
        assert!("x".parse::<WorkerShare>().is_err());
        assert!("0/1000".parse::<WorkerShare>().is_err());
    }

    #[test]
    fn an_invalid_worker_makes_the_run_invalid_unless_interrupted() {
        let mut v = Verdict {
            status: "violations",
            exit_code: 1,
            reasons: vec!["2 MUST violation(s)".into()],
        };
        invalid_if_a_worker_was(&mut v, vec![]);
        assert_eq!(v.status, "violations");
        invalid_if_a_worker_was(&mut v, vec!["worker 1: behind".into()]);
        assert_eq!((v.status, v.exit_code), ("invalid", 4));
        assert_eq!(v.reasons.len(), 2);
        let mut v = Verdict {
            status: "interrupted",
            exit_code: 130,
            reasons: vec![],
        };
        invalid_if_a_worker_was(&mut v, vec!["worker 0 left no results".into()]);
        assert_eq!((v.status, v.exit_code), ("interrupted", 130));
    }
}
