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
    /// Where the report files go [default: reports/<run-id>].
    pub report_dir: Option<PathBuf>,
    /// Replace the report in a non-empty `report_dir` (its run files are removed first).
    pub overwrite: bool,
    /// SHOULD violations fail the run too.
    pub strict: bool,
    /// Show the live progress view.
    pub progress: bool,
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
    // The report directory is this run's alone from before the first connection to the end
    // (a worker's belongs to its parent, which claimed the whole tree).
    let claimed = match (&req.report_dir, &req.worker) {
        (Some(dir), None) => match ReportDir::claim(dir, req.overwrite, req.junit.as_deref()) {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Usage.code();
            }
        },
        _ => None,
    };
    if req.workers > 1 {
        if scenario.thresholds.iter().any(|t| t.value.abort_on_fail) {
            eprintln!("warning: with --workers, thresholds are judged on the merged run at its end: abort_on_fail does not stop it early");
        }
        return run_with_workers(&req, scenario, claimed).await;
    }
    if req.server_procs > 1 {
        eprintln!("error: --server-procs needs --workers N with N > 1");
        return Exit::Usage.code();
    }
    if req.worker.is_some() && req.target.is_none() {
        eprintln!("error: --worker is internal to --workers and needs --target");
        return Exit::Usage.code();
    }
    let opts = RunOptions {
        target: req.target.clone(),
        seed: None,
        users_file: req.users.clone(),
        server_faults: req.server_faults.clone(),
        progress: req.progress,
        max_lateness: req.max_lateness,
        op_log: req.op_log,
        fixtures: None,
        users_skip: 0,
        local_addr: req.source_addr,
        worker: req.worker.clone(),
    };
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
    let run_id = run_id(result.started_at, &name, result.seed);
    let summary = report::summarize(&result, &scenario, &req.scenario_path, &run_id, req.strict);
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
    finish_run(&req, &name, &summary, &result, &dir)
}

/// `--workers N` (N > 1): the workers module runs and merges the shares, this finishes.
async fn run_with_workers(req: &RunRequest, scenario: Scenario, claimed: Option<ReportDir>) -> i32 {
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
    let opts = workers::ParentOptions {
        scenario_path: req.scenario_path.clone(),
        workers: req.workers,
        server_procs: req.server_procs,
        target: req.target.clone(),
        users: req.users.clone(),
        set: req.set.clone(),
        server_faults: req.server_faults.clone(),
        progress: req.progress,
        max_lateness: req.max_lateness,
        op_log: req.op_log,
        strict: req.strict,
    };
    match workers::run_parent(&opts, scenario, &run_id, &dir).await {
        Ok((summary, result)) => finish_run(req, &name, &summary, &result, &dir),
        Err(code) => code,
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
            println!("wrote {}", path.display());
        }
    }
}

/// A run's id: its start time, scenario name and seed.
fn run_id(started_at: chrono::DateTime<chrono::Utc>, name: &str, seed: u64) -> String {
    format!(
        "{}-{}-s{}",
        started_at.format("%Y%m%d-%H%M%S"),
        sanitize(name),
        seed
    )
}

/// Presents a finished run (one process or merged workers): the console summary, JUnit if
/// asked, the report files; returns the verdict's exit code.
fn finish_run(
    req: &RunRequest,
    name: &str,
    summary: &SummaryFile,
    result: &RunResult,
    dir: &Path,
) -> i32 {
    print!("{}", report::console(summary));
    // Each output on its own: one that cannot be written does not lose the others.
    let mut code = summary.verdict.exit_code;
    match report::write_files(summary, result, dir) {
        Ok(paths) => {
            for p in paths {
                println!("wrote {}", p.display());
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
