//! `roomrig capacity SCENARIO`: finds the knee of a server, the highest load at which the SLO
//! still holds. Each step is a full run of the scenario at one load ([`step`]), the load as
//! [`load`] defines it; [`search`] steps up by a factor until a step fails and bisects to the
//! resolution; [`report`] writes `capacity.json`, the console tables and `report.html`.

pub mod load;
pub mod report;
pub mod search;
pub mod step;

use std::path::PathBuf;

use crate::exit::Exit;
use crate::report_dir::ReportDir;
use crate::scenario::Scenario;
use load::{Scaling, Vary};
use search::{Ending, Plan, Search, StepOutcome};

#[derive(clap::Args, Debug)]
pub(crate) struct CapacityArgs {
    /// The scenario file (YAML) whose load is varied.
    pub scenario: PathBuf,
    /// Drive this server (http://host:port) instead of a fresh reference server per step.
    #[arg(long)]
    pub target: Option<String>,
    /// With --target: the server's process id, whose CPU time (from /proc) each step reports.
    #[arg(long, value_name = "PID", requires = "target")]
    pub server_pid: Option<u32>,
    /// Split each step's clients across N driver processes (as `run --workers`).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::share::MAX_WORKERS)))]
    pub workers: u32,
    /// What the load varies: each client's send rate (a multiple of the scenario's own) or the
    /// number of clients.
    #[arg(long, value_enum, default_value_t = Vary::Rate)]
    pub vary: Vary,
    /// The first step's load [default: 1 for rate, the scenario's clients for clients].
    #[arg(long, value_name = "X")]
    pub start: Option<f64>,
    /// Each step's load is the last one's times this, until a step fails.
    #[arg(long, value_name = "F", default_value_t = 2.0)]
    pub factor: f64,
    /// The highest load tried [default: 16 × the start].
    #[arg(long, value_name = "X")]
    pub max: Option<f64>,
    /// Bisect until the first failing load is within this of the last passing one (`5%`).
    #[arg(long, value_name = "PCT", default_value = "5%", value_parser = parse_percent)]
    pub resolution: f64,
    /// A threshold each step must meet besides the scenario's (repeatable), in the scenario's
    /// threshold syntax, e.g. "message.fanout.p99 < 250ms".
    #[arg(long = "slo", value_name = "EXPR")]
    pub slo: Vec<String>,
    /// Change one value of the scenario before the load is applied (repeatable), as `run --set`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Write capacity.json, report.html and each step's report (step-NN/) here [default:
    /// reports/<time>-capacity-<scenario>]. A non-empty one is refused unless --overwrite.
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Use a non-empty --report-dir anyway.
    #[arg(long)]
    pub overwrite: bool,
    /// A step is invalid (the generator fell behind) if its send lateness p99, or its runtime
    /// lag p99, exceeds this (ms), as `run --max-lateness-ms`.
    #[arg(long, default_value_t = 100)]
    pub max_lateness_ms: u64,
    /// Test-only: break each step's reference server in one way (e.g. latency-above=1000).
    #[arg(long, hide = true)]
    pub server_fault: Vec<String>,
}

/// `5%`, `5` (percent) or `0.05`.
fn parse_percent(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (num, pct) = match t.strip_suffix('%') {
        Some(n) => (n.trim(), true),
        None => (t, false),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a percentage (e.g. 5%)"))?;
    let v = if pct || v >= 1.0 { v / 100.0 } else { v };
    if !(v > 0.0 && v < 1.0) {
        return Err(format!(
            "`{text}`: the resolution must be between 0% and 100%"
        ));
    }
    Ok(v)
}

fn usage(message: impl std::fmt::Display) -> i32 {
    eprintln!("error: {message}");
    Exit::Usage.code()
}

/// Runs the search; returns the exit code (see the README's `capacity` section).
pub(crate) async fn capacity(args: CapacityArgs) -> i32 {
    let base = match Scenario::load_with(&args.scenario, &args.set) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    if let Some(target) = &args.target {
        if let Err(e) = crate::transport::check_target(target) {
            return usage(e);
        }
        if !args.server_fault.is_empty() {
            return usage("--server-fault breaks the reference server roomrig starts; it cannot apply to --target");
        }
    }
    if base.restart_step.is_some() {
        return usage("`restart_server` restarts an embedded reference server; capacity runs each step against a server in its own process");
    }
    let scaling = match Scaling::new(&base, args.vary) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let start = args.start.unwrap_or(match args.vary {
        Vary::Rate => 1.0,
        Vary::Clients => scaling.base_clients as f64,
    });
    let plan = Plan {
        start,
        factor: args.factor,
        max: args.max.unwrap_or(start * 16.0),
        resolution: args.resolution,
        whole: args.vary == Vary::Clients,
    };
    if let Err(e) = plan.check() {
        return usage(e);
    }
    // Each --slo is judged on each step's summary, beside the scenario's own thresholds
    // (which the step's run judges): a misspelt one is said before anything runs.
    let mut slos = Vec::new();
    for text in &args.slo {
        let spec = crate::dialect::spec(&base.dialect.0);
        let known = crate::thresholds::known_metrics(spec, &[]);
        let parsed = crate::thresholds::Threshold::parse(text)
            .and_then(|t| crate::thresholds::check_metric(&t, &known, spec.name).map(|()| t));
        match parsed {
            Ok(t) => slos.push(t),
            Err(e) => return usage(format!("--slo \"{text}\": {e}")),
        }
    }
    let sets_at = |load: f64| -> Result<Vec<String>, String> {
        let mut sets = args.set.clone();
        sets.extend(scaling.sets(load)?);
        Ok(sets)
    };
    // The lowest and the highest step are read now: a load the scenario cannot take is said
    // before anything runs.
    for load in [plan.start, plan.max] {
        let checked = sets_at(load).and_then(|sets| {
            Scenario::load_with(&args.scenario, &sets)
                .map_err(|e| format!("at load {}: {e}", args.vary.show(load)))
        });
        if let Err(e) = checked {
            return usage(e);
        }
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot find the roomrig binary: {e}");
            return Exit::Internal.code();
        }
    };
    let started_at = chrono::Utc::now();
    let claimed = match &args.report_dir {
        Some(dir) => ReportDir::claim(dir, args.overwrite, None),
        None => ReportDir::claim_new(&PathBuf::from("reports").join(format!(
            "{}-capacity-{}",
            started_at.format("%Y%m%d-%H%M%S"),
            base.name
        ))),
    };
    let claimed = match claimed {
        Ok(d) => d,
        Err(e) => return usage(e),
    };
    let dir = claimed.path().to_path_buf();
    let setup = step::StepSetup {
        exe,
        scenario_path: args.scenario.clone(),
        target: args.target.clone(),
        workers: args.workers,
        max_lateness_ms: args.max_lateness_ms,
        server_faults: args.server_fault.clone(),
        server_pid: args.server_pid,
        slos,
    };
    let mut file = report::CapacityFile::new(&args, &base, &scaling, &plan, started_at);
    let key = report::key_metric(&base, &args.slo);
    crate::out::outln!(
        "capacity of {} ({}), varying {}: from {} by ×{} up to {}, resolution {}%{}",
        base.name,
        file.target,
        match args.vary {
            Vary::Rate => "each client's send rate",
            Vary::Clients => "the number of clients",
        },
        args.vary.show(plan.start),
        plan.factor,
        args.vary.show(plan.max),
        plan.resolution * 100.0,
        if file.slo.is_empty() {
            String::new()
        } else {
            format!("; SLO: {}", file.slo.join(", "))
        }
    );
    crate::out::out!("{}", report::row_header(&key));
    let clock = std::time::Instant::now();
    let mut search = Search::new(plan);
    let mut failure: Option<i32> = None;
    while let Some(load) = search.next() {
        if crate::signals::requested() {
            break;
        }
        let sets = match sets_at(load) {
            Ok(s) => s,
            Err(e) => {
                failure = Some(usage(e));
                break;
            }
        };
        let scenario = match Scenario::load_with(&args.scenario, &sets) {
            Ok(s) => s,
            Err(e) => {
                failure = Some(usage(format!("at load {}: {e}", args.vary.show(load))));
                break;
            }
        };
        let index = file.steps.len() + 1;
        let mut record = step::run(&setup, &scenario, &sets, index, load, &dir).await;
        report::fill_offered(&mut record, file.steps.first());
        crate::out::out!("{}", report::row(&record, args.vary, &key));
        let outcome = match record.outcome.as_str() {
            "pass" => Some(StepOutcome::Pass),
            "fail" => Some(StepOutcome::Fail),
            "invalid" => Some(StepOutcome::Invalid),
            _ => None,
        };
        let code = record.exit_code;
        let stop = record.outcome.clone();
        file.steps.push(record);
        match outcome {
            Some(o) => search.record(load, o),
            None => {
                if stop != "interrupted" {
                    for r in &file
                        .steps
                        .last()
                        .map(|s| s.reasons.clone())
                        .unwrap_or_default()
                    {
                        eprintln!("error: step {index}: {r}");
                    }
                    failure = Some(if code == Exit::Pass.code() {
                        Exit::Internal.code()
                    } else {
                        code
                    });
                }
                break;
            }
        }
    }
    file.duration_s = clock.elapsed().as_secs_f64();
    let interrupted = crate::signals::requested();
    let code = file.conclude(search.ending(), &search, interrupted, failure);
    crate::out::out!("{}", report::console(&file, &key));
    match report::write_files(&file, &dir) {
        Ok(paths) => {
            for p in paths {
                crate::out::outln!("wrote {}", p.display());
            }
            code
        }
        Err(e) => {
            eprintln!("error: cannot write the report into {}: {e}", dir.display());
            Exit::Internal.code()
        }
    }
}

/// The exit code of an ending.
pub fn exit_of(ending: &Ending) -> Exit {
    match ending {
        Ending::Knee { .. } | Ending::NoKneeBelowMax { .. } => Exit::Pass,
        Ending::FailedAtFirst { .. } => Exit::Thresholds,
        Ending::GeneratorLimit { .. } => Exit::InvalidRun,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolution_is_a_percentage() {
        assert_eq!(parse_percent("5%"), Ok(0.05));
        assert_eq!(parse_percent("10"), Ok(0.1));
        assert_eq!(parse_percent("0.02"), Ok(0.02));
        assert!(parse_percent("0%").is_err());
        assert!(parse_percent("100%").is_err());
        assert!(parse_percent("x").is_err());
    }
}
