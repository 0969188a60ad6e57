//! The `roomrig` command line: parses the arguments and calls `run` (a scenario, see
//! [`crate::run`]), `check` (a dialect's conformance suite), `serve` (the reference server) or
//! `rules` (the rule catalogue).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::exit::Exit;
use crate::protocol::EioSetting;
use crate::run::{self, run_error, write_output, RunRequest};
use crate::share::{WorkerShare, MAX_WORKERS};

#[derive(Parser, Debug)]
#[command(
    name = "roomrig",
    version,
    about = "Load-testing and conformance harness for real-time room protocols over Socket.IO and WebSocket"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Run a scenario against a target (or the embedded reference server) and report.
    Run(RunArgs),
    /// Run a dialect's conformance suite against a server (or the embedded one).
    Check(CheckArgs),
    /// Run the bundled reference server on its own.
    Serve(reference_server::ServeArgs),
    /// Print the rule catalogue: every rule id with its level, source and reason.
    Rules(RulesArgs),
    /// Render report.html again from a report directory's result files, or compare two runs.
    Report(ReportArgs),
    /// Merge the report directories of a run's shards (`run --shard K/N`) into one report and
    /// one verdict.
    Merge(MergeArgs),
    /// Print Kubernetes manifests that run a scenario as N shards and merge them (an Indexed
    /// Job, a ConfigMap, a results volume, a merge Job).
    K8s(K8sArgs),
    /// Find the knee: step a scenario's load up until the SLO breaks, then bisect.
    Capacity(crate::capacity::CapacityArgs),
}

#[derive(clap::Args, Debug)]
pub(crate) struct ReportArgs {
    /// The report directory of a run or check; a second run's directory puts the two side by
    /// side.
    #[arg(value_name = "DIR", required = true, num_args = 1..=2)]
    pub dirs: Vec<PathBuf>,
    /// Write the page here [default: DIR/report.html; comparing: DIR/compare.html of the first].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub(crate) struct RulesArgs {
    /// Only this dialect (default: every implemented dialect).
    #[arg(long)]
    pub dialect: Option<String>,
    /// The dialect's page in Markdown (docs/dialects/<dialect>.md), with the rule table.
    #[arg(long)]
    pub markdown: bool,
}

#[derive(clap::Args, Debug)]
pub(crate) struct CheckArgs {
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
    /// Generated users' tokens are keyed by this secret, as the server's (`serve
    /// --fixture-secret`); without it, the predictable default tokens.
    #[arg(
        long,
        value_name = "S",
        env = "ROOMRIG_FIXTURE_SECRET",
        hide_env_values = true
    )]
    pub fixture_secret: Option<reference_server::fixtures::FixtureSecret>,
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
    /// voice: how long the target gives the member told of a departure to report it back
    /// (`exit_room_report`) before it tells another member (ms); the protocol advertises none.
    /// Unstated: another member told after 5 s is on time, and one is owed by 30 s
    #[arg(long, value_name = "MS")]
    pub exit_report_timeout_ms: Option<u64>,
    /// Write JUnit XML here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write check.json and report.html into this directory [default:
    /// reports/<time>-check-<dialect>]. A non-empty one is refused unless --overwrite.
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Replace the report in a non-empty --report-dir.
    #[arg(long)]
    pub overwrite: bool,
    /// Test-only: break each case's embedded reference server in one way (without --target).
    #[arg(long, hide = true, conflicts_with = "target")]
    pub server_fault: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub(crate) struct RunArgs {
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
    /// Users file (JSON, or CSV with the header user_id,username,token,room_id) to use instead
    /// of the scenario's users.
    #[arg(long)]
    pub users: Option<PathBuf>,
    /// Change one value of the scenario before it is read (repeatable), e.g.
    /// `--set users.generate.count=2000 --set phases[0].duration=60s`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Generated users' tokens are keyed by this secret, as the server's (`serve
    /// --fixture-secret`); without it, the predictable default tokens.
    #[arg(
        long,
        value_name = "S",
        env = "ROOMRIG_FIXTURE_SECRET",
        hide_env_values = true
    )]
    pub fixture_secret: Option<reference_server::fixtures::FixtureSecret>,
    /// Write summary.json and histograms.hlog into this directory [default: reports/<run-id>].
    /// A directory another run is using is refused, and so is a non-empty one unless
    /// --overwrite.
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Replace the report in a non-empty --report-dir: the files a run writes (summary.json,
    /// histograms.hlog, transcripts.txt, ops.log, worker-*/, the JUnit file inside it) are
    /// removed before the run; other files stay.
    #[arg(long)]
    pub overwrite: bool,
    /// SHOULD violations fail the run too.
    #[arg(long)]
    pub strict: bool,
    /// No live progress view.
    #[arg(long)]
    pub no_progress: bool,
    /// Without a terminal (CI logs): print a progress line this often (e.g. 10s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_interval)]
    pub progress_interval: Duration,
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
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_WORKERS)))]
    pub workers: u32,
    /// With --workers and no target: serve from M reference-server processes (worker k drives
    /// server k mod M).
    #[arg(long, value_name = "M", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub server_procs: u32,
    /// Internal (set by --workers): this process is worker K of N.
    #[arg(long, hide = true, value_name = "K/N", conflicts_with = "workers")]
    pub worker: Option<WorkerShare>,
    /// Bind every client socket to this source address (a local address of this machine).
    /// Against one target address, one source address has one ephemeral port range (~28k
    /// connections); shards on one machine each take their own (127.0.0.2, 127.0.0.3, ...
    /// on loopback).
    #[arg(long, value_name = "IP")]
    pub source_addr: Option<std::net::IpAddr>,
    /// Run shard K of N (0-based) of a run across machines: the clients of every Nth fixture
    /// room, as worker K of `--workers N` would, with no parent; `roomrig merge` joins the
    /// shards' report directories into one verdict. Needs --start-at, --report-dir, a target.
    #[arg(long, value_name = "K/N", value_parser = crate::shard::parse_shard,
          conflicts_with_all = ["workers", "worker", "server_procs"],
          requires_all = ["start_at", "report_dir"])]
    pub shard: Option<(u32, u32)>,
    /// With --shard: start the schedule at this wall-clock time, the same for every shard
    /// (RFC 3339 such as 2026-05-01T12:00:00Z, or Unix seconds). Clocks must agree (NTP).
    #[arg(long, value_name = "TIME", value_parser = crate::shard::parse_start_at,
          requires = "shard")]
    pub start_at: Option<std::time::SystemTime>,
    /// With --shard: a shard ready more than this after --start-at runs no load and exits 4
    /// (its part makes the merged run invalid) [default: --max-lateness-ms].
    #[arg(long, value_name = "MS", requires = "shard")]
    pub max_start_lateness_ms: Option<u64>,
    /// Serve the live counters and latency percentiles at http://ADDR/metrics (Prometheus text
    /// format) while the run goes, e.g. 127.0.0.1:9464 (port 0: a free one, printed on stderr).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Internal (set by --workers with --metrics-listen): tell the parent each second's figures.
    #[arg(long, hide = true, requires = "worker")]
    pub live_feed: bool,
    /// With --metrics-listen: after the report is written, keep serving the final figures this
    /// long (e.g. the scrape interval, 15s), so the last scrape sees them.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_linger,
          requires = "metrics_listen")]
    pub metrics_linger: Duration,
}

#[derive(clap::Args, Debug)]
pub(crate) struct K8sArgs {
    /// The scenario file (YAML).
    pub scenario: PathBuf,
    /// Run this many shards (pods of the Indexed Job).
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::shard::MAX_SHARDS)))]
    pub shards: u32,
    /// The server under test, as the pods reach it (http://host:port).
    #[arg(long)]
    pub target: String,
    /// The roomrig image the pods run (built from the repository's Dockerfile).
    #[arg(long, default_value = concat!("roomrig:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// A users file (JSON or CSV), put into the ConfigMap beside the scenario.
    #[arg(long)]
    pub users: Option<PathBuf>,
    /// Change one value of the scenario (repeatable), passed on to every shard.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// The run's name: objects are NAME-scenario, NAME-results, NAME-shards, NAME-merge and the
    /// results go to /results/NAME [default: from the scenario's name].
    #[arg(long)]
    pub name: Option<String>,
    /// Put every object into this namespace.
    #[arg(long)]
    pub namespace: Option<String>,
    /// The schedule starts this long after the first shard pod runs: enough for every other
    /// shard pod to be scheduled, pull the image and connect (e.g. 60s, 2m).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_interval)]
    pub start_margin: Duration,
    /// The storage class of the results claim (one that offers ReadWriteMany, e.g. NFS).
    #[arg(long)]
    pub storage_class: Option<String>,
}

#[derive(clap::Args, Debug)]
pub(crate) struct MergeArgs {
    /// The report directories of the shards (`run --shard K/N --report-dir DIR`).
    #[arg(value_name = "DIR", required = true, num_args = 1..)]
    pub dirs: Vec<PathBuf>,
    /// Write the merged report here.
    #[arg(long)]
    pub report_dir: PathBuf,
    /// Replace the report in a non-empty --report-dir.
    #[arg(long)]
    pub overwrite: bool,
    /// SHOULD violations fail the run too (as do they when a shard ran with --strict).
    #[arg(long)]
    pub strict: bool,
    /// Also write JUnit XML here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
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
        Command::Run(args) => stopped(runtime.block_on(run::run(args.into()))),
        Command::Check(args) => stopped(runtime.block_on(check(args))),
        Command::Rules(args) => rules(args),
        Command::Report(args) => crate::report_cmd::report(&args.dirs, args.out.as_deref()),
        Command::Merge(args) => crate::merge_cmd::merge(&crate::merge_cmd::MergeRequest {
            dirs: args.dirs,
            report_dir: args.report_dir,
            overwrite: args.overwrite,
            strict: args.strict,
            junit: args.junit,
        }),
        Command::K8s(args) => crate::k8s::print(&crate::k8s::K8sRequest {
            scenario_path: args.scenario,
            shards: args.shards,
            target: args.target,
            image: args.image,
            users: args.users,
            name: args.name,
            namespace: args.namespace,
            start_margin: args.start_margin,
            storage_class: args.storage_class,
            set: args.set,
        }),
        Command::Capacity(args) => stopped(runtime.block_on(crate::capacity::capacity(args))),
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

/// The run as the run module takes it.
impl From<RunArgs> for RunRequest {
    fn from(args: RunArgs) -> RunRequest {
        RunRequest {
            scenario_path: args.scenario,
            target: args.target,
            seed: args.seed,
            eio: args.eio,
            users: args.users,
            set: args.set,
            fixture_secret: args.fixture_secret,
            report_dir: args.report_dir,
            overwrite: args.overwrite,
            strict: args.strict,
            progress: !args.no_progress,
            progress_interval: args.progress_interval,
            max_lateness: Duration::from_millis(args.max_lateness_ms),
            junit: args.junit,
            op_log: args.op_log,
            server_faults: args.server_fault,
            workers: args.workers,
            server_procs: args.server_procs,
            worker: args.worker.or_else(|| {
                let (index, count) = args.shard?;
                Some(WorkerShare {
                    index,
                    count,
                    shard_start: Some(crate::share::ShardStart {
                        at: args.start_at.unwrap_or_else(std::time::SystemTime::now),
                        bound: Duration::from_millis(
                            args.max_start_lateness_ms.unwrap_or(args.max_lateness_ms),
                        ),
                    }),
                })
            }),
            source_addr: args.source_addr,
            metrics_listen: args.metrics_listen,
            metrics_linger: args.metrics_linger,
            live_feed: args.live_feed,
        }
    }
}

/// A positive duration as scenarios write them (`500ms`, `10s`, `1m`).
fn parse_interval(text: &str) -> Result<Duration, String> {
    let d = crate::scenario::Dur::parse(text)?.0;
    if d.is_zero() {
        return Err("must be longer than 0s".into());
    }
    Ok(d)
}

/// A duration as scenarios write them, zero allowed.
fn parse_linger(text: &str) -> Result<Duration, String> {
    Ok(crate::scenario::Dur::parse(text)?.0)
}

async fn check(args: CheckArgs) -> i32 {
    use crate::check::{self, Status};
    let suite = check::suite(&args.dialect);
    if suite.is_empty() {
        eprintln!(
            "error: no conformance suite for dialect `{}`; known: {}",
            args.dialect,
            crate::dialect::implemented().join(", ")
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
        // Against a target, the users `serve --fixture-secret` generates by default.
        None => match (&args.fixture_secret, &args.target) {
            (Some(secret), Some(_)) => Some(reference_server::fixtures::Fixtures::generate_with(
                reference_server::DEFAULT_GENERATED_USERS,
                4,
                Some(secret),
            )),
            _ => None,
        },
    };
    let opts = check::CheckOptions {
        target: args.target.clone(),
        eio: args.eio,
        users,
        strict: args.strict,
        heartbeat_deadline: Duration::from_millis(args.heartbeat_deadline_ms),
        exit_report_timeout: args
            .exit_report_timeout_ms
            .map(|ms| Duration::from_millis(ms.max(1))),
        server_faults: args.server_fault.clone(),
    };
    if args.list {
        for c in &cases {
            crate::out::outln!(
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
            crate::out::outln!(
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
    // The report directory is claimed before the first case, as a run's is.
    let started_at = chrono::Utc::now();
    let claimed = match &args.report_dir {
        Some(dir) => {
            crate::report_dir::ReportDir::claim(dir, args.overwrite, args.junit.as_deref())
        }
        None => crate::report_dir::ReportDir::claim_new(&PathBuf::from("reports").join(format!(
            "{}-check-{}",
            started_at.format("%Y%m%d-%H%M%S"),
            args.dialect
        ))),
    };
    let claimed = match claimed {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage.code();
        }
    };
    let clock = std::time::Instant::now();
    // The target's generation is detected once, after the users are laid out and before the
    // first case; the suite's reports name it.
    let (results, eio) = match check::run(&cases, &opts).await {
        Ok(r) => r,
        Err(e) => return run_error(e),
    };
    crate::out::out!("{}", check::table(&results));
    let code = if crate::signals::requested() {
        Exit::Interrupted.code()
    } else if results.iter().any(|r| r.status == Status::Fail) {
        Exit::Violations.code()
    } else {
        Exit::Pass.code()
    };

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
    let file = check::CheckFile {
        dialect: args.dialect.clone(),
        target: args
            .target
            .clone()
            .unwrap_or_else(|| "embedded reference server".into()),
        eio: eio.to_string(),
        strict: args.strict,
        started_at: started_at.to_rfc3339(),
        duration_s: clock.elapsed().as_secs_f64(),
        verdict: check::CheckVerdict {
            status: if code == Exit::Pass.code() {
                "pass"
            } else if code == Exit::Violations.code() {
                "violations"
            } else {
                "interrupted"
            },
            exit_code: if code == Exit::Interrupted.code() {
                crate::signals::interrupted_code()
            } else {
                code
            },
        },
        machine: crate::resources::Machine::this(),
        cases: &results,
    };
    if let Err(e) = check::write_report(&file, claimed.path()) {
        eprintln!(
            "error: cannot write the report into {}: {e}",
            claimed.path().display()
        );
        return Exit::Internal.code();
    }
    code
}

/// `roomrig rules`: the catalogue as text, or a dialect's page in Markdown.
fn rules(args: RulesArgs) -> i32 {
    let dialects: Vec<&crate::dialect::Dialect> = match &args.dialect {
        Some(d) => match crate::dialect::find(d) {
            Some(dialect) => vec![dialect],
            None => {
                eprintln!(
                    "error: unknown dialect `{d}`; known: {}",
                    crate::dialect::implemented().join(", ")
                );
                return Exit::Usage.code();
            }
        },
        None => crate::dialect::DIALECTS.iter().collect(),
    };
    for dialect in dialects {
        let spec = dialect.spec;
        if args.markdown {
            crate::out::out!("{}", crate::catalogue::markdown(spec));
        } else {
            crate::out::out!("{}", crate::catalogue::text(spec));
        }
    }
    Exit::Pass.code()
}
