//! `roomrig run`: runs a scenario, in this process or split across worker processes, and
//! finishes it: the console summary, the report files, JUnit, the exit code of the verdict.
//! A target that cannot be reached still leaves a JUnit file and a summary that say so.
//!
//! The command line fills a [`RunRequest`]; the driver runs one process's clients
//! ([`crate::driver`]), the workers module a split run ([`crate::workers`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::driver::{self, RunError, RunOptions, RunResult};
use crate::exit::Exit;
use crate::protocol::EioSetting;
use crate::report::{self, SummaryFile};
use crate::report_dir::ReportDir;
use crate::scenario::Scenario;
use crate::share::WorkerShare;
use crate::workers;
use reference_server::fixtures::{FixtureSecret, Fixtures};

/// What to run and where to report it.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The scenario file (YAML).
    pub scenario_path: PathBuf,
    /// Drive this server instead of the scenario's target or the embedded server.
    pub target: Option<String>,
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Overrides the scenario's Engine.IO version.
    pub eio: Option<EioSetting>,
    /// A users file instead of the scenario's users.
    pub users: Option<PathBuf>,
    /// `PATH=VALUE` changes to the scenario before it is read (`--set`).
    pub set: Vec<String>,
    /// The key of generated users' tokens (`--fixture-secret`), as the server was given.
    pub fixture_secret: Option<FixtureSecret>,
    /// Where the report files go [default: reports/<run-id>].
    pub report_dir: Option<PathBuf>,
    /// Replace the report in a non-empty `report_dir` (its run files are removed first).
    pub overwrite: bool,
    /// SHOULD violations fail the run too.
    pub strict: bool,
    /// Show the live progress view.
    pub progress: bool,
    /// Without a terminal: how often a progress line is printed.
    pub progress_interval: Duration,
    /// The run is invalid if the p99 lateness of sends behind their schedule exceeds this.
    pub max_lateness: Duration,
    /// Also write JUnit XML here.
    pub junit: Option<PathBuf>,
    /// Write every client's sequence of operations to `ops.log`.
    pub op_log: bool,
    /// Test-only defects of the embedded reference server.
    pub server_faults: Vec<String>,
    /// Split the clients across this many driver processes.
    pub workers: u32,
    /// With workers and no target: this many reference-server processes.
    pub server_procs: u32,
    /// This process is one worker of a split run (set by the parent).
    pub worker: Option<WorkerShare>,
    /// Bind every client socket to this source address.
    pub source_addr: Option<IpAddr>,
    /// Serve the live figures at `http://ADDR/metrics` (Prometheus text format).
    pub metrics_listen: Option<String>,
    /// After the report is written, keep serving the final figures this long.
    pub metrics_linger: Duration,
    /// In a worker of `--workers`: tell the parent each second's figures (`--live-feed`).
    pub live_feed: bool,
}

/// Runs the scenario and returns the process exit code.
pub async fn run(req: RunRequest) -> i32 {
    let mut scenario = match Scenario::load_with(&req.scenario_path, &req.set) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage.code();
        }
    };
    if let Some(eio) = req.eio {
        scenario.eio = eio;
    }
    // From here the scenario is the one that runs: the report shows its seed.
    if let Some(seed) = req.seed {
        scenario.seed = seed;
    }
    // A target that is no URL roomrig can drive (https, a path, no host) is a usage error,
    // said before anything connects, not an unreachable server.
    if let Some(target) = req.target.as_ref().or(scenario.target.as_ref()) {
        if let Err(e) = crate::transport::check_target(target) {
            eprintln!("error: {e}");
            return Exit::Usage.code();
        }
    }
    // `restart_server` restarts the embedded server of this process: said before anything
    // connects, naming the step.
    if let Some(at) = &scenario.restart_step {
        let refused = match req.target.as_ref().or(scenario.target.as_ref()) {
            Some(target) => Some(driver::restart_refused(at, target)),
            None if req.workers > 1 => Some(format!(
                "{at}: `restart_server` restarts the embedded reference server of a run in one process; it cannot run with --workers"
            )),
            None => None,
        };
        if let Some(refused) = refused {
            eprintln!("error: {refused}");
            return Exit::Usage.code();
        }
    }
    // The endpoint is bound before anything connects: a bad or busy address is a usage error.
    let endpoint = match (&req.metrics_listen, &req.worker) {
        (Some(addr), w) if w.as_ref().is_none_or(WorkerShare::is_shard) => {
            match crate::live_metrics::Endpoint::bind(addr, &scenario.name) {
                Ok(e) => {
                    eprintln!("metrics: serving http://{}/metrics", e.addr);
                    Some(e)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return Exit::Usage.code();
                }
            }
        }
        _ => None,
    };
    let keyed = keyed_fixtures(&req, &scenario);
    // The report directory is this run's alone from before the first connection to the end
    // (a worker's belongs to its parent, which claimed the whole tree).
    let claimed = match (&req.report_dir, &req.worker) {
        // A shard has no parent: its directory is its own, as a run's.
        (Some(dir), None)
        | (
            Some(dir),
            Some(WorkerShare {
                shard_start: Some(_),
                ..
            }),
        ) => match ReportDir::claim(dir, req.overwrite, req.junit.as_deref()) {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Usage.code();
            }
        },
        _ => None,
    };
    if req.worker.as_ref().is_some_and(WorkerShare::is_shard) {
        let live = endpoint.as_ref().map(|e| e.board.clone());
        let code = crate::shard::run(&req, scenario, keyed, claimed, live).await;
        linger(endpoint.as_ref(), req.metrics_linger).await;
        return code;
    }
    if req.workers > 1 {
        if scenario.thresholds.iter().any(|t| t.value.abort_on_fail) {
            eprintln!("warning: with --workers, thresholds are judged on the merged run at its end: abort_on_fail does not stop it early");
        }
        return run_with_workers(&req, scenario, keyed, claimed, endpoint.as_ref()).await;
    }
    if req.server_procs > 1 {
        eprintln!("error: --server-procs needs --workers N with N > 1");
        return Exit::Usage.code();
    }
    if req.worker.is_some() && req.target.is_none() {
        eprintln!("error: --worker is internal to --workers and needs --target");
        return Exit::Usage.code();
    }
    let live = match &endpoint {
        Some(e) => Some(e.board.clone()),
        None => (req.live_feed && req.worker.is_some()).then(Default::default),
    };
    let opts = run_options(&req, keyed, live);
    let name = scenario.name.clone();
    // Every output path is checked before the first connection: a run must not execute for
    // minutes and then find that it cannot write its report.
    let report_parent = req
        .report_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports"));
    for (path, is_dir) in [(Some(&report_parent), true), (req.junit.as_ref(), false)] {
        if let Some(path) = path {
            if let Err(e) = check_writable(path, is_dir) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return Exit::Usage.code();
            }
        }
    }
    let result = match driver::run(scenario.clone(), opts).await {
        Ok(r) => r,
        Err(e) => {
            // The most common CI failure (the server did not come up) still leaves a JUnit
            // file and a summary for the CI page to show.
            if let RunError::Unreachable { .. } = &e {
                write_unreachable(&req, &name, &e.to_string());
            }
            return run_error(e);
        }
    };
    if let Some(e) = &endpoint {
        e.board
            .publish(crate::live_metrics::final_figures(&result), Duration::ZERO);
    }
    let run_id = run_id(result.started_at, &name, result.seed);
    let mut summary =
        report::summarize(&result, &scenario, &req.scenario_path, &run_id, req.strict);
    if let Some(share) = &req.worker {
        // The parent names it (`<report-dir>/worker-K`) and claimed the tree it is in.
        let dir = req
            .report_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("reports").join(&run_id));
        return workers::finish_worker(share, &summary, &result, &dir);
    }
    let claimed = match claimed {
        Some(d) => Some(d),
        // The default directory is named after the run: claimed now, a fresh one.
        None => ReportDir::claim_new(&PathBuf::from("reports").join(&run_id))
            .map_err(|e| eprintln!("warning: {e}"))
            .ok(),
    };
    let dir = claimed.as_ref().map_or_else(
        || PathBuf::from("reports").join(&run_id),
        |d| d.path().to_path_buf(),
    );
    let code = finish_run(&req, &name, &mut summary, &result, &dir);
    linger(endpoint.as_ref(), req.metrics_linger).await;
    code
}

/// Keeps serving the final figures for `--metrics-linger` after the report is written, so
/// a scraper's next scrape still finds them.
async fn linger(endpoint: Option<&crate::live_metrics::Endpoint>, how_long: Duration) {
    if endpoint.is_some() && !how_long.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep(how_long) => {}
            _ = crate::signals::stop_requested() => {}
        }
    }
}

/// The driver's options of a run in this process (one process, a worker, a shard).
pub(crate) fn run_options(
    req: &RunRequest,
    keyed: Option<Fixtures>,
    live_metrics: Option<crate::live_metrics::Board>,
) -> RunOptions {
    RunOptions {
        target: req.target.clone(),
        seed: None,
        users_file: req.users.clone(),
        server_faults: req.server_faults.clone(),
        progress: req.progress,
        progress_interval: req.progress_interval,
        max_lateness: req.max_lateness,
        op_log: req.op_log,
        fixtures: keyed,
        users_skip: 0,
        local_addr: req.source_addr,
        worker: req.worker.clone(),
        // The scenario's `server: {exit_report_timeout}` says it.
        report_window: None,
        target_heartbeat: None,
        live_metrics,
    }
}

/// `--workers N` (N > 1): the workers module runs and merges the shares, this finishes.
async fn run_with_workers(
    req: &RunRequest,
    scenario: Scenario,
    keyed: Option<Fixtures>,
    claimed: Option<ReportDir>,
    endpoint: Option<&crate::live_metrics::Endpoint>,
) -> i32 {
    let name = scenario.name.clone();
    let run_id = run_id(chrono::Utc::now(), &name, scenario.seed);
    let claimed = match claimed {
        Some(d) => d,
        None => match ReportDir::claim_new(&PathBuf::from("reports").join(&run_id)) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Usage.code();
            }
        },
    };
    let dir = claimed.path().to_path_buf();
    // Keyed users reach the workers as a users file, so the secret is on no command line.
    let mut users = req.users.clone();
    if let Some(fixtures) = keyed {
        let path = dir.join(".fixture-users.json");
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| fixtures.save(&path)) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return Exit::Usage.code();
        }
        users = Some(path);
    }
    let opts = workers::ParentOptions {
        scenario_path: req.scenario_path.clone(),
        workers: req.workers,
        server_procs: req.server_procs,
        target: req.target.clone(),
        users,
        set: req.set.clone(),
        server_faults: req.server_faults.clone(),
        progress: req.progress,
        progress_interval: req.progress_interval,
        max_lateness: req.max_lateness,
        op_log: req.op_log,
        strict: req.strict,
        live_metrics: endpoint.map(|e| e.board.clone()),
    };
    match workers::run_parent(&opts, scenario, &run_id, &dir).await {
        Ok((mut summary, result)) => {
            if let Some(e) = endpoint {
                e.board
                    .publish(crate::live_metrics::final_figures(&result), Duration::ZERO);
            }
            let code = finish_run(req, &name, &mut summary, &result, &dir);
            linger(endpoint, req.metrics_linger).await;
            code
        }
        Err(code) => code,
    }
}

/// The scenario's generated users keyed by `--fixture-secret`, when there is a secret and the
/// users are generated (a users file brings its own tokens).
fn keyed_fixtures(req: &RunRequest, scenario: &Scenario) -> Option<Fixtures> {
    let secret = req.fixture_secret.as_ref()?;
    match (&req.users, &scenario.users) {
        (None, crate::scenario::UsersSpec::Generate { count, room_size }) => {
            Some(Fixtures::generate_with(*count, *room_size, Some(secret)))
        }
        _ => None,
    }
}

/// Can `path` be written (a directory to write into, or a file to create)? Creates what is
/// missing of a directory; leaves no file behind.
fn check_writable(path: &Path, is_dir: bool) -> std::io::Result<()> {
    let dir = if is_dir {
        std::fs::create_dir_all(path)?;
        path.to_path_buf()
    } else {
        match path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => {
                std::fs::create_dir_all(parent)?;
                parent.to_path_buf()
            }
            None => PathBuf::from("."),
        }
    };
    let probe = dir.join(format!(".roomrig-write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)?;
    if !is_dir && path.is_dir() {
        return Err(std::io::Error::other("it is a directory"));
    }
    Ok(())
}

/// The target could not be reached: a JUnit file with one failed case and a summary that say
/// why, where the run would have written its report.
fn write_unreachable(req: &RunRequest, name: &str, reason: &str) {
    if let Some(path) = &req.junit {
        let case = crate::junit::TestCase {
            name: "target-reachable".into(),
            seconds: 0.0,
            outcome: crate::junit::Outcome::Fail {
                kind: "unreachable".into(),
                message: reason.to_string(),
                body: reason.to_string(),
            },
        };
        let xml = crate::junit::render(&format!("roomrig run {name}"), &[case]);
        let _ = write_output(path, xml);
    }
    let dir = req.report_dir.clone().unwrap_or_else(|| {
        PathBuf::from("reports").join(run_id(chrono::Utc::now(), name, req.seed.unwrap_or(0)))
    });
    let summary = report::UnreachableSummary::new(name, reason);
    if std::fs::create_dir_all(&dir).is_ok() {
        let path = dir.join("summary.json");
        if write_output(&path, summary.json()).is_ok() {
            crate::out::outln!("wrote {}", path.display());
        }
    }
}

/// A run's id: its start time, scenario name and seed.
pub(crate) fn run_id(started_at: chrono::DateTime<chrono::Utc>, name: &str, seed: u64) -> String {
    format!(
        "{}-{}-s{}",
        started_at.format("%Y%m%d-%H%M%S"),
        sanitize(name),
        seed
    )
}

/// Presents a finished run (one process or merged workers): the console summary, JUnit if
/// asked, the report files; returns the verdict's exit code. A run stopped because the server
/// disagreed with the users file is a usage error and says so instead.
pub(crate) fn finish_run(
    req: &RunRequest,
    name: &str,
    summary: &mut SummaryFile,
    result: &RunResult,
    dir: &Path,
) -> i32 {
    if let Some(mismatch) = &result.fixture_mismatch {
        eprintln!(
            "error: the users file does not describe the server: {mismatch}. The run was \
             stopped: its verdicts would blame the server for the users file. Run with the \
             users file the server uses (--users FILE; `roomrig serve --write-users FILE` \
             writes the reference server's)."
        );
        return Exit::Usage.code();
    }
    summary.replay = pasteable(&summary.replay, &program());
    crate::out::out!("{}", report::console(summary));
    // Each output on its own: one that cannot be written does not lose the others.
    let mut code = summary.verdict.exit_code;
    match report::write_files(summary, result, dir) {
        Ok(paths) => {
            for p in paths {
                crate::out::outln!("wrote {}", p.display());
            }
        }
        Err(e) => {
            eprintln!("error: cannot write the report into {}: {e}", dir.display());
            code = Exit::Internal.code();
        }
    }
    if let Some(path) = &req.junit {
        let xml = crate::junit::render(
            &format!("roomrig run {name}"),
            &report::junit_cases(summary),
        );
        if let Err(internal) = write_output(path, xml) {
            code = internal;
        }
    }
    code
}

/// How a user runs this very binary again: `roomrig` when the first `roomrig` on PATH is
/// this binary (after `cargo install --path .`), else its path (relative to the current
/// directory when inside it, e.g. `target/release/roomrig`), so a printed command runs as
/// given.
fn program() -> String {
    let Ok(exe) = std::env::current_exe().and_then(|e| e.canonicalize()) else {
        return "roomrig".into();
    };
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("roomrig"))
            .find(|candidate| candidate.is_file())
    });
    if on_path.and_then(|p| p.canonicalize().ok()).as_ref() == Some(&exe) {
        return "roomrig".into();
    }
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| cwd.canonicalize().ok())
        .and_then(|cwd| exe.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or(exe);
    shell_word(&shown.display().to_string())
}

/// `replay` (a `roomrig …` command) with `program` in place of `roomrig`.
fn pasteable(replay: &str, program: &str) -> String {
    match replay.strip_prefix("roomrig ") {
        Some(args) => format!("{program} {args}"),
        None => replay.to_string(),
    }
}

/// A word a POSIX shell reads back as is.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:=@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Reports why a run could not start and gives its exit code.
pub(crate) fn run_error(e: RunError) -> i32 {
    eprintln!("error: {e}");
    match e {
        RunError::Unreachable { .. } | RunError::Generation(_) => Exit::Unreachable.code(),
        RunError::Setup(_) => Exit::Usage.code(),
        RunError::Interrupted => crate::signals::interrupted_code(),
        RunError::LateStart(_) => Exit::InvalidRun.code(),
    }
}

/// Writes an output file; a failure is reported and is an internal error.
pub(crate) fn write_output(path: &Path, contents: String) -> Result<(), i32> {
    std::fs::write(path, contents).map_err(|e| {
        eprintln!("error: cannot write {}: {e}", path.display());
        Exit::Internal.code()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_names_a_program_the_shell_can_run() {
        let replay = "roomrig run s.yaml --seed 4 --eio 4";
        assert_eq!(pasteable(replay, "roomrig"), replay);
        assert_eq!(
            pasteable(replay, "target/release/roomrig"),
            "target/release/roomrig run s.yaml --seed 4 --eio 4"
        );
        assert_eq!(
            shell_word("/opt/my tools/roomrig"),
            "'/opt/my tools/roomrig'"
        );
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        // This test binary is not `roomrig` on PATH: its path is named.
        assert_ne!(program(), "roomrig");
    }

    #[test]
    fn a_run_id_names_its_start_scenario_and_seed() {
        let at = chrono::DateTime::parse_from_rfc3339("2024-05-06T07:08:09Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            run_id(at, "dorm smoke/1", 42),
            "20240506-070809-dorm_smoke_1-s42"
        );
    }
}
