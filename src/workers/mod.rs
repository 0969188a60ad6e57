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
//! - **Measuring and presenting stay apart**: each worker writes `summary.json` and
//!   `histograms.hlog` (its own report) and `worker.json` (its [`RunResult`] as JSON: counters,
//!   histograms, violations with examples, transcripts, resource use) into
//!   `<report-dir>/worker-K/`; the parent reads the results back, judges each share with the
//!   ordinary report code, merges them losslessly ([`merge`]: histograms added, counters
//!   summed, violation tallies summed by rule id keeping the earliest examples) and hands the
//!   merged summary to its caller, which writes the one report. Thresholds are judged on the
//!   merged result; an invalid worker makes the run invalid; Ctrl-C is forwarded to the
//!   workers and the report of what ran is still written.

mod merge;
mod procs;
mod split;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncWriteExt as _;

pub use merge::read_hlog;
pub(crate) use merge::{read_result, write_result, Context as MergeContext, PART_FILE};
// Public though only this module uses them: crate-private, `check_splittable` leaves the
// dialect table's unused `DialectSpec::is_error` unreachable, which the table's rework settles.
pub use split::{check_splittable, source_addr};

use crate::driver::RunResult;
use crate::exit::Exit;
use crate::report::{Processes, ServerInfo, Status, SummaryFile, WorkerInfo, WorkerStatus};
use crate::scenario::Scenario;
use crate::share::{owners, Live, WorkerShare};
use procs::ServerProc;

/// What a `--workers N` run needs beyond the scenario (the seed is the scenario's).
#[derive(Debug, Clone)]
pub(crate) struct ParentOptions {
    /// The scenario file, which each worker loads itself.
    pub scenario_path: PathBuf,
    /// N, more than one.
    pub workers: u32,
    /// Without a target: this many reference-server processes.
    pub server_procs: u32,
    pub target: Option<String>,
    pub users: Option<PathBuf>,
    /// `--set` changes, passed on to every worker.
    pub set: Vec<String>,
    pub server_faults: Vec<String>,
    /// Show the live view of the workers' summed counters.
    pub progress: bool,
    /// Without a terminal: how often a progress line is printed.
    pub progress_interval: Duration,
    pub max_lateness: Duration,
    pub op_log: bool,
    pub strict: bool,
    /// `--metrics-listen`: the workers' summed counters go here as they come.
    pub live_metrics: Option<crate::live_metrics::Board>,
}

/// The report directory of worker `k` inside the run's report directory.
fn worker_dir(dir: &Path, k: u32) -> PathBuf {
    dir.join(format!("worker-{k}"))
}

/// The end of a worker: its own report files and its result for the parent, quietly.
pub(crate) fn finish_worker(
    share: &WorkerShare,
    summary: &SummaryFile,
    result: &RunResult,
    dir: &Path,
) -> i32 {
    let written = crate::report::write_files(summary, result, dir)
        .and_then(|_| merge::write_result(result, dir));
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

fn usage_error<T>(message: String) -> Result<T, i32> {
    eprintln!("error: {message}");
    Err(Exit::Usage.code())
}

/// `roomrig run --workers N` (N > 1): starts the servers and workers, follows them and merges
/// their results into the summary of the whole run, written into `dir` by the caller. `Err`
/// is the exit code of a run that could not start or merge.
pub(crate) async fn run_parent(
    args: &ParentOptions,
    mut scenario: Scenario,
    run_id: &str,
    dir: &Path,
) -> Result<(SummaryFile, RunResult), i32> {
    let n = args.workers;
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
            return Err(Exit::Internal.code());
        }
    };
    if let Some(reason) = crate::schedule::plans_nobody(&scenario, fixtures.users.len()) {
        eprintln!("error: {reason}");
        return Err(Exit::Usage.code());
    }
    crate::driver::warn_schedule(&scenario, fixtures.users.len());
    // The plan: which worker runs which client (the workers compute the same).
    let owners = owners(fixtures.users.iter().map(|u| u.room_id), n);
    let mut planned = vec![0u64; n as usize];
    let arrivals = crate::schedule::arrivals(&scenario, fixtures.users.len());
    for a in &arrivals {
        planned[owners[a.client as usize] as usize] += 1;
    }
    let expected_end = crate::schedule::expected_end(&scenario, &arrivals);
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!(
            "error: cannot create the report directory {}: {e}",
            dir.display()
        );
        return Err(Exit::Internal.code());
    }
    let mut ctrl_c = Box::pin(crate::signals::stop_requested());

    // The servers: the target, or M reference-server processes.
    let servers = match &target {
        Some(_) => Vec::new(),
        None => match start_servers(&exe, &scenario, &fixtures, args, dir).await {
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
    // The default client settings (the workers bind their own source addresses later).
    let probe_config = Default::default();
    let (eio, detected) =
        match crate::driver::resolve_eio(&targets[0], &probe_config, scenario.eio).await {
            Ok(r) => r,
            Err(e) => {
                stop_servers(servers).await;
                return Err(crate::run::run_error(e));
            }
        };
    let eio_detected = detected
        .filter(|_| asked == crate::protocol::EioSetting::Auto)
        .map(|d| d.signal);
    if let Some(signal) = &eio_detected {
        crate::out::outln!("detected Engine.IO {eio} at {}: {signal}", targets[0]);
    }
    scenario.eio = crate::protocol::EioSetting::Fixed(eio);

    // The workers: started together, each connects once and waits for the start.
    let live = Arc::new(Mutex::new(vec![Live::default(); n as usize]));
    // With --metrics-listen, the workers' seconds are gathered for the endpoint.
    let gatherer = args
        .live_metrics
        .as_ref()
        .map(|_| Arc::new(crate::live_feed::Gatherer::new(n)));
    let mut workers = Vec::new();
    let mut placement = Vec::new();
    for k in 0..n {
        let t = targets[k as usize % targets.len()].clone();
        let source = source_addr(&t, k);
        let wargs = worker_args(args, &scenario, k, &t, source, &worker_dir(dir, k));
        match procs::start_worker(&exe, k, &wargs, live.clone(), gatherer.clone()) {
            Ok(w) => workers.push(w),
            Err(e) => {
                eprintln!("error: {e}");
                stop_servers(servers).await;
                return Err(Exit::Internal.code());
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
                return Err(match code {
                    Some(c) if c != 0 => c,
                    _ => Exit::Internal.code(),
                });
            },
            _ = &mut ctrl_c => {
                eprintln!("interrupted before the load started: nothing ran");
                drop(workers);
                stop_servers(servers).await;
                return Err(Exit::Interrupted.code());
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
    let started = tokio::time::Instant::now();
    let mut view = args.progress.then(|| {
        crate::driver::ProgressView::new(
            planned.iter().sum(),
            expected_end,
            crate::driver::progress_interval(args.progress_interval),
        )
    });
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
                if let Some(view) = &mut view {
                    view.show(crate::driver::Snapshot::of_live(&now, started.elapsed()));
                }
                if let Some(board) = &args.live_metrics {
                    crate::live_metrics::show_live(
                        board,
                        &now,
                        started.elapsed(),
                        gatherer.as_deref(),
                    );
                }
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
    // Clears the bar.
    drop(view);
    let servers: Vec<ServerInfo> = {
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

    // The merge: every worker's result into one, each share judged on its own first.
    let parts = (0..n)
        .map(|k| {
            let wdir = worker_dir(dir, k);
            let (t, source) = &placement[k as usize];
            Part {
                index: k,
                source_addr: source.map(|s| s.to_string()),
                target: t.clone(),
                planned: planned[k as usize],
                exit_code: codes[k as usize],
                result: merge::read_result(&wdir).map_err(|e| match codes[k as usize] {
                    None => format!("ended by a signal: {e}"),
                    Some(_) => e.to_string(),
                }),
                dir: wdir,
            }
        })
        .collect();
    let ctx = merge::Context {
        seed: scenario.seed,
        target: targets.join(", "),
        embedded: target.is_none(),
        eio,
        eio_detected,
        started_at: start.into(),
        interrupted: interrupted.is_some(),
        users_file: args.users.clone(),
        max_lateness: args.max_lateness,
        op_log: args.op_log,
    };
    let (result, workers, worker_reasons) =
        match merge_parts("worker", &scenario, args.strict, ctx, parts) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: cannot merge the workers' histograms: {e}");
                return Err(Exit::Internal.code());
            }
        };
    let mut summary =
        crate::report::summarize(&result, &scenario, &args.scenario_path, run_id, args.strict);
    summary.verdict.invalid_if_a_worker_was(worker_reasons);
    summary.driver.includes_embedded_server = false;
    summary.replay = format!(
        "{} --workers {n}{}",
        summary.replay,
        if servers.len() > 1 {
            format!(" --server-procs {}", servers.len())
        } else {
            String::new()
        }
    );
    let processes = Processes {
        peak_open,
        servers,
        workers,
    };
    crate::out::out!("{}", processes_table(&processes));
    summary.processes = Some(processes);
    Ok((summary, result))
}

/// One share of a split run as the merge finds it: a worker of `--workers` or a shard of
/// `--shard` (`roomrig merge`).
pub(crate) struct Part {
    pub index: u32,
    /// Its report directory.
    pub dir: PathBuf,
    pub source_addr: Option<String>,
    pub target: String,
    /// Its clients as planned, when it left no result to say.
    pub planned: u64,
    pub exit_code: Option<i32>,
    /// Its result, or why there is none.
    pub result: Result<RunResult, String>,
}

/// The one merge of `--workers` and `roomrig merge`: judges each share on its own (an invalid
/// or missing share makes the whole run invalid: the returned reasons, named `{kind} K`),
/// then merges their results losslessly into the result of the whole run.
pub(crate) fn merge_parts(
    kind: &str,
    scenario: &Scenario,
    strict: bool,
    ctx: merge::Context,
    parts: Vec<Part>,
) -> Result<(RunResult, Vec<WorkerInfo>, Vec<String>), String> {
    let mut results = Vec::new();
    let mut infos = Vec::new();
    let mut reasons = Vec::new();
    for part in parts {
        let k = part.index;
        let mut info = WorkerInfo {
            worker: k,
            dir: part.dir.display().to_string(),
            source_addr: part.source_addr,
            target: part.target,
            planned: part.planned,
            connected: 0,
            sent: 0,
            received: 0,
            violations: 0,
            cpu_s: 0.0,
            peak_rss_mb: 0.0,
            status: WorkerStatus::NoResults,
            exit_code: part.exit_code,
        };
        match part.result {
            Ok(r) => {
                let verdict = crate::report::verdict_of(&r, scenario, strict);
                info.planned = r.planned_clients;
                info.connected = r.connected;
                info.sent = r.sent;
                info.received = r.received;
                info.violations = r.violations.values().map(|t| t.count).sum();
                info.cpu_s = r.usage_after.cpu_s() - r.usage_before.cpu_s();
                info.peak_rss_mb = r.usage_after.peak_rss_mb();
                info.status = WorkerStatus::Judged(verdict.status);
                if verdict.status == Status::Invalid {
                    reasons.push(format!(
                        "{kind} {k}: {}",
                        verdict
                            .reasons
                            .first()
                            .map_or("invalid run", String::as_str)
                    ));
                }
                results.push(r);
            }
            Err(e) => reasons.push(match part.exit_code {
                Some(c) => format!("{kind} {k} (exit {c}) left no results: {e}"),
                None => format!("{kind} {k} left no results: {e}"),
            }),
        }
        infos.push(info);
    }
    let result = merge::merge(ctx, results)?;
    Ok((result, infos, reasons))
}

/// The command line of worker `k`.
fn worker_args(
    args: &ParentOptions,
    scenario: &Scenario,
    k: u32,
    target: &str,
    source: Option<std::net::IpAddr>,
    dir: &Path,
) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        args.scenario_path.clone().into(),
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
        args.max_lateness.as_millis().to_string().into(),
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
    for (on, flag) in [
        (args.op_log, "--op-log"),
        (args.strict, "--strict"),
        (args.live_metrics.is_some(), "--live-feed"),
    ] {
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
    args: &ParentOptions,
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
    for f in &args.server_faults {
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

/// The sum of the workers' last progress lines.
fn sum_live(live: &Mutex<Vec<Live>>) -> Live {
    let mut sum = Live::default();
    for l in crate::oracle::lock(live).iter() {
        sum.add(l);
    }
    sum
}

/// The per-process lines of the console report.
pub(crate) fn processes_table(p: &Processes) -> String {
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
    for w in &p.workers {
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
            w.status.as_str()
        );
    }
    for s in &p.servers {
        let _ = writeln!(
            out,
            "server   {:<35} reference server process: {:.2} CPU s, peak RSS {:.1} MB",
            s.url, s.cpu_s, s.peak_rss_mb
        );
    }
    let _ = writeln!(
        out,
        "peak open connections: {} (the workers' live counts, summed twice a second)",
        p.peak_open
    );
    out
}
