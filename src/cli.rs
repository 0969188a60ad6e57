//! The `roomrig` command line: `run` drives a scenario, `serve` runs the reference server.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::driver::{self, RunError, RunOptions};
use crate::exit::Exit;
use crate::protocol::EioSetting;
use crate::report;
use crate::scenario::Scenario;

#[derive(Parser, Debug)]
#[command(
    name = "roomrig",
    version,
    about = "Load-testing and conformance harness for real-time room protocols over Socket.IO and WebSocket"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a scenario against a target (or the embedded reference server) and report.
    Run(RunArgs),
    /// Run a dialect's conformance suite against a server (or the embedded one).
    Check(CheckArgs),
    /// Run the bundled reference server on its own.
    Serve(reference_server::ServeArgs),
    /// Print the rule catalogue: every rule id with its level, source and reason.
    Rules(RulesArgs),
}

#[derive(clap::Args, Debug)]
pub struct RulesArgs {
    /// Only this dialect (default: every implemented dialect).
    #[arg(long)]
    pub dialect: Option<String>,
    /// The dialect's page in Markdown (docs/dialects/<dialect>.md), with the rule table.
    #[arg(long)]
    pub markdown: bool,
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The dialect whose suite runs.
    #[arg(long)]
    pub dialect: String,
    /// The server to check (http://host:port); absent: the embedded reference server.
    #[arg(long)]
    pub target: Option<String>,
    /// Engine.IO version: 3, 4, or auto (detect the target's generation first).
    #[arg(long, default_value = "auto")]
    pub eio: EioSetting,
    /// Users file of the target's accounts; default: the generated users (`serve --generate-users`).
    #[arg(long)]
    pub users: Option<PathBuf>,
    /// SHOULD violations fail too.
    #[arg(long)]
    pub strict: bool,
    /// Run only these cases (repeatable); a family's id (`dorm/robustness/malformed-frames`)
    /// selects each of its cases.
    #[arg(long = "case", value_name = "ID")]
    pub cases: Vec<String>,
    /// Print the cases without running them.
    #[arg(long)]
    pub list: bool,
    /// The longest a server may take to close a client whose heartbeat stopped (ms).
    #[arg(long, value_name = "MS", default_value_t = 60_000)]
    pub heartbeat_deadline_ms: u64,
    /// Write JUnit XML here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The scenario file (YAML).
    pub scenario: PathBuf,
    /// Drive this server (http://host:port) instead of the scenario's target or the embedded server.
    #[arg(long)]
    pub target: Option<String>,
    /// Override the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override the scenario's Engine.IO version: 3, 4, or auto (detect the target's
    /// generation first; the scenario's default).
    #[arg(long)]
    pub eio: Option<EioSetting>,
    /// Users file (JSON) to use instead of the scenario's users.
    #[arg(long)]
    pub users: Option<PathBuf>,
    /// Change one value of the scenario before it is read (repeatable), e.g.
    /// `--set users.generate.count=2000 --set phases[0].duration=60s`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Write summary.json and histograms.hlog into this directory [default: reports/<run-id>].
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// SHOULD violations fail the run too.
    #[arg(long)]
    pub strict: bool,
    /// No live progress view.
    #[arg(long)]
    pub no_progress: bool,
    /// The run is invalid if the p99 lateness of sends behind their schedule exceeds this (ms).
    #[arg(long, default_value_t = 100)]
    pub max_lateness_ms: u64,
    /// Also write JUnit XML here (conformance, valid run, each threshold).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write every client's sequence of operations to ops.log (proves a seed's schedule).
    #[arg(long)]
    pub op_log: bool,
    /// Test-only: break the embedded reference server in one way (e.g. drop-broadcast=0.2).
    #[arg(long, hide = true)]
    pub server_fault: Vec<String>,
    /// Split the clients across N driver processes (whole fixture rooms each) and merge their
    /// results into one report.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::workers::MAX_WORKERS)))]
    pub workers: u32,
    /// With --workers and no target: serve from M reference-server processes (worker k drives
    /// server k mod M).
    #[arg(long, value_name = "M", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub server_procs: u32,
    /// Internal (set by --workers): this process is worker K of N.
    #[arg(long, hide = true, value_name = "K/N", conflicts_with = "workers")]
    pub worker: Option<crate::workers::WorkerShare>,
    /// Bind every client socket to this source address.
    #[arg(long, hide = true, value_name = "IP")]
    pub source_addr: Option<std::net::IpAddr>,
}

/// Parses the command line, runs, and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage.code()
            } else {
                Exit::Pass.code()
            };
        }
    };
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return Exit::Internal.code();
        }
    };
    {
        let _context = runtime.enter();
        crate::signals::install();
    }
    // A run stopped by SIGTERM or SIGHUP says so in its code (143, 129), as SIGINT does (130).
    let stopped = |code: i32| {
        if code == Exit::Interrupted.code() {
            crate::signals::interrupted_code()
        } else {
            code
        }
    };
    match cli.command {
        Command::Run(args) => stopped(runtime.block_on(run(args))),
        Command::Check(args) => stopped(runtime.block_on(check(args))),
        Command::Rules(args) => rules(args),
        Command::Serve(args) => match runtime.block_on(reference_server::serve_cli(args)) {
            Ok(()) => Exit::Pass.code(),
            Err(e) => {
                eprintln!("error: {e:#}");
                Exit::Usage.code()
            }
        },
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROOMRIG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(args: RunArgs) -> i32 {
    let scenario = match Scenario::load_with(&args.scenario, &args.set) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage.code();
        }
    };
    let mut scenario = scenario;
    if let Some(eio) = args.eio {
        scenario.eio = eio;
    }
    if args.workers > 1 {
        if scenario.thresholds.iter().any(|t| t.value.abort_on_fail) {
            eprintln!("warning: with --workers, thresholds are judged on the merged run at its end: abort_on_fail does not stop it early");
        }
        return crate::workers::run_parent(&args, scenario).await;
    }
    if args.server_procs > 1 {
        eprintln!("error: --server-procs needs --workers N with N > 1");
        return Exit::Usage.code();
    }
    if args.worker.is_some() && args.target.is_none() {
        eprintln!("error: --worker is internal to --workers and needs --target");
        return Exit::Usage.code();
    }
    let opts = RunOptions {
        target: args.target.clone(),
        seed: args.seed,
        users_file: args.users.clone(),
        server_faults: args.server_fault.clone(),
        progress: !args.no_progress,
        max_lateness: Duration::from_millis(args.max_lateness_ms),
        op_log: args.op_log,
        fixtures: None,
        users_skip: 0,
        local_addr: args.source_addr,
        worker: args.worker.clone(),
    };
    let name = scenario.name.clone();
    // Every output path is checked before the first connection: a run must not execute for
    // minutes and then find that it cannot write its report.
    let report_parent = args
        .report_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports"));
    for (path, is_dir) in [(Some(&report_parent), true), (args.junit.as_ref(), false)] {
        if let Some(path) = path {
            if let Err(e) = check_writable(path, is_dir) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return Exit::Usage.code();
            }
        }
    }
    let result = match driver::run(scenario, opts).await {
        Ok(r) => r,
        Err(e) => {
            // The most common CI failure (the server did not come up) still leaves a JUnit
            // file and a summary for the CI page to show.
            if let RunError::Unreachable { .. } = &e {
                write_unreachable(&args, &name, &e.to_string());
            }
            return run_error(e);
        }
    };
    let run_id = run_id(result.started_at, &name, result.seed);
    let summary = report::summarize(&result, &args.scenario, &run_id, args.strict);
    let dir = args
        .report_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports").join(&run_id));
    if let Some(share) = &args.worker {
        return crate::workers::finish_worker(share, args.source_addr, &summary, &result, &dir);
    }
    finish_run(&args, &name, &summary, &result, &dir)
}

/// Can `path` be written (a directory to write into, or a file to create)? Creates what is
/// missing of a directory; leaves no file behind.
fn check_writable(path: &std::path::Path, is_dir: bool) -> std::io::Result<()> {
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
fn write_unreachable(args: &RunArgs, name: &str, reason: &str) {
    if let Some(path) = &args.junit {
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
    let dir = args.report_dir.clone().unwrap_or_else(|| {
        PathBuf::from("reports").join(run_id(chrono::Utc::now(), name, args.seed.unwrap_or(0)))
    });
    let summary = serde_json::json!({
        "scenario": name,
        "verdict": { "status": "unreachable", "exit_code": Exit::Unreachable.code(), "reasons": [reason] },
    });
    if std::fs::create_dir_all(&dir).is_ok() {
        let path = dir.join("summary.json");
        if write_output(&path, format!("{summary:#}\n")).is_ok() {
            println!("wrote {}", path.display());
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
/// asked, the report files; returns the verdict's exit code.
pub(crate) fn finish_run(
    args: &RunArgs,
    name: &str,
    summary: &report::SummaryFile,
    result: &driver::RunResult,
    dir: &std::path::Path,
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
    if let Some(path) = &args.junit {
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

async fn check(args: CheckArgs) -> i32 {
    use crate::check::{self, Status};
    let suite = check::suite(&args.dialect);
    if suite.is_empty() {
        let known: Vec<&str> = crate::dialect::IMPLEMENTED.to_vec();
        eprintln!(
            "error: no conformance suite for dialect `{}`; known: {}",
            args.dialect,
            known.join(", ")
        );
        return Exit::Usage.code();
    }
    let mut cases = suite;
    if !args.cases.is_empty() {
        if let Some(unknown) = args
            .cases
            .iter()
            .find(|id| !cases.iter().any(|c| check::selects(id, c)))
        {
            eprintln!(
                "error: no case `{unknown}` in the {} suite (see --list)",
                args.dialect
            );
            return Exit::Usage.code();
        }
        cases.retain(|c| args.cases.iter().any(|id| check::selects(id, c)));
    }
    let users = match &args.users {
        Some(path) => match reference_server::fixtures::Fixtures::load(path) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Usage.code();
            }
        },
        None => None,
    };
    let opts = check::CheckOptions {
        target: args.target.clone(),
        eio: args.eio,
        users,
        strict: args.strict,
        heartbeat_deadline: Duration::from_millis(args.heartbeat_deadline_ms),
    };
    if args.list {
        for c in &cases {
            println!(
                "{:<64} {:<6} {:>2}+{} users  {}  [{}]",
                c.id,
                c.level.to_string(),
                check::users_of(c),
                check::plan::BYSTANDER_ROOMS,
                c.description,
                c.section
            );
        }
        if let Some(n) = check::users_needed(&cases, &opts) {
            println!(
                "\n{} cases need {n} users of the users file (each case's own, a bystander in \
                 each of {} neighbouring rooms{})",
                cases.len(),
                check::plan::BYSTANDER_ROOMS,
                if opts.target.is_some() {
                    ", the first and last rooms for the watch"
                } else {
                    ""
                }
            );
        }
        return Exit::Pass.code();
    }
    // The target's generation is detected once, after the users are laid out and before the
    // first case; the suite's reports name it.
    let (results, eio) = match check::run(&cases, &opts).await {
        Ok(r) => r,
        Err(e) => return run_error(e),
    };
    print!("{}", check::table(&results));
    let suite_name = format!("roomrig check {} (EIO={eio})", args.dialect);
    if let Some(path) = &args.junit {
        let xml = crate::junit::render(&suite_name, &check::junit_cases(&results));
        if let Err(code) = write_output(path, xml) {
            return code;
        }
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&results).unwrap_or_default();
        if let Err(code) = write_output(path, json) {
            return code;
        }
    }
    if crate::signals::requested() {
        Exit::Interrupted.code()
    } else if results.iter().any(|r| r.status == Status::Fail) {
        Exit::Violations.code()
    } else {
        Exit::Pass.code()
    }
}

/// `roomrig rules`: the catalogue as text, or a dialect's page in Markdown.
fn rules(args: RulesArgs) -> i32 {
    let names: Vec<&str> = match &args.dialect {
        Some(d) if crate::dialect::IMPLEMENTED.contains(&d.as_str()) => vec![d.as_str()],
        Some(d) => {
            eprintln!(
                "error: unknown dialect `{d}`; known: {}",
                crate::dialect::IMPLEMENTED.join(", ")
            );
            return Exit::Usage.code();
        }
        None => crate::dialect::IMPLEMENTED.to_vec(),
    };
    for name in names {
        let spec = crate::dialect::spec(name);
        if args.markdown {
            print!("{}", crate::catalogue::markdown(spec));
        } else {
            print!("{}", crate::catalogue::text(spec));
        }
    }
    Exit::Pass.code()
}

/// Reports why a run could not start and gives its exit code.
fn run_error(e: RunError) -> i32 {
    eprintln!("error: {e}");
    match e {
        RunError::Unreachable { .. } | RunError::Generation(_) => Exit::Unreachable.code(),
        RunError::Setup(_) => Exit::Usage.code(),
    }
}

/// Writes an output file; a failure is reported and is an internal error.
fn write_output(path: &std::path::Path, contents: String) -> Result<(), i32> {
    std::fs::write(path, contents).map_err(|e| {
        eprintln!("error: cannot write {}: {e}", path.display());
        Exit::Internal.code()
    })
}
