//! What a capacity search leaves: `capacity.json` (its shape is an interface, documented in
//! the README), the console tables, and `report.html` rendered from `capacity.json` alone.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::load::{Scaling, Vary};
use super::search::{Ending, Plan, Search};
use super::step::StepRecord;
use super::CapacityArgs;
use crate::exit::Exit;
use crate::scenario::Scenario;

/// The file's name inside the capacity report directory.
pub const FILE: &str = "capacity.json";

/// `capacity.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapacityFile {
    /// Always `capacity`: tells this file from a run's summary.
    pub kind: String,
    pub tool_version: String,
    pub scenario: ScenarioRef,
    /// The server's URL, or `reference server (a fresh process per step)`.
    pub target: String,
    pub embedded_reference_server: bool,
    /// `rate` or `clients`.
    pub vary: Vary,
    /// What a load of 1 (rate) means, or the scenario's own number of clients.
    pub load_unit: String,
    pub base_clients: u64,
    pub search: SearchParams,
    /// Every step's SLO: the scenario's thresholds, then every `--slo`.
    pub slo: Vec<String>,
    pub workers: u32,
    pub steps: Vec<StepRecord>,
    /// `knee`, `no_knee_below_max`, `failed_at_first_step`, `generator_limit`,
    /// `interrupted` or `error`.
    pub outcome: String,
    /// The highest load that met the SLO and the lowest that broke it (null when there is
    /// none), with the step numbers that measured them.
    pub knee: Option<Knee>,
    /// What the outcome means, in a sentence.
    pub message: String,
    pub exit_code: i32,
    pub started_at: String,
    pub duration_s: f64,
    pub machine: crate::resources::Machine,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioRef {
    pub name: String,
    pub path: String,
    pub dialect: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchParams {
    pub start: f64,
    pub factor: f64,
    pub max: f64,
    pub resolution: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Knee {
    pub load: f64,
    pub step: usize,
    /// The lowest failing load (null: none failed below --max).
    pub first_fail: Option<f64>,
    pub first_fail_step: Option<usize>,
}

impl CapacityFile {
    pub fn new(
        args: &CapacityArgs,
        base: &Scenario,
        scaling: &Scaling,
        plan: &Plan,
        started_at: chrono::DateTime<chrono::Utc>,
    ) -> CapacityFile {
        let mut slo: Vec<String> = base
            .thresholds
            .iter()
            .map(|t| t.value.threshold.text.clone())
            .collect();
        slo.extend(args.slo.iter().cloned());
        CapacityFile {
            kind: "capacity".into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            scenario: ScenarioRef {
                name: base.name.clone(),
                path: args.scenario.display().to_string(),
                dialect: base.dialect.0.clone(),
            },
            target: args
                .target
                .clone()
                .unwrap_or_else(|| "reference server (a fresh process per step)".into()),
            embedded_reference_server: args.target.is_none(),
            vary: args.vary,
            load_unit: match args.vary {
                Vary::Rate => "multiple of each client's send rate in the scenario".into(),
                Vary::Clients => "clients".into(),
            },
            base_clients: scaling.base_clients,
            search: SearchParams {
                start: plan.start,
                factor: plan.factor,
                max: plan.max,
                resolution: plan.resolution,
            },
            slo,
            workers: args.workers,
            steps: Vec::new(),
            outcome: String::new(),
            knee: None,
            message: String::new(),
            exit_code: 0,
            started_at: started_at.to_rfc3339(),
            duration_s: 0.0,
            machine: crate::resources::Machine::this(),
        }
    }

    fn step_at(&self, load: f64) -> Option<usize> {
        self.steps
            .iter()
            .rev()
            .find(|s| s.load == load)
            .map(|s| s.index)
    }

    /// When roomrig started the server on this machine: what the driver and the server used of
    /// its cores at the last step (they compete for them).
    fn shared_machine_note(&self) -> String {
        let Some(last) = self.steps.last() else {
            return String::new();
        };
        match (self.embedded_reference_server, last.server_cpu_cores) {
            (true, Some(server)) => format!(
                " (the driver used {:.2} and the reference server {server:.2} of this machine's {} cores, which they share with anything else running; a server on another machine, --target, leaves the driver the whole machine)",
                last.driver_cpu_cores, self.machine.cpus
            ),
            _ => String::new(),
        }
    }

    /// Sets the outcome, knee and message from how the search ended; returns the exit code.
    pub fn conclude(
        &mut self,
        ending: Option<Ending>,
        search: &Search,
        interrupted: bool,
        failure: Option<i32>,
    ) -> i32 {
        let show = |l: f64| self.vary.show(l);
        let knee_of = |pass: Option<f64>, fail: Option<f64>| {
            pass.map(|load| Knee {
                load,
                step: self.step_at(load).unwrap_or(0),
                first_fail: fail,
                first_fail_step: fail.and_then(|f| self.step_at(f)),
            })
        };
        let (outcome, message, code) = match (ending, interrupted, failure) {
            (_, true, _) => (
                "interrupted",
                format!(
                    "interrupted: the {} step(s) measured are reported{}",
                    self.steps.len(),
                    search
                        .last_pass()
                        .map_or(String::new(), |p| format!("; the highest load that met the SLO so far is {}", show(p)))
                ),
                crate::signals::interrupted_code(),
            ),
            (_, false, Some(code)) => (
                "error",
                format!("a step could not run (exit {code}); see its run.log"),
                code,
            ),
            (Some(e @ Ending::Knee { pass, fail }), ..) => (
                "knee",
                format!(
                    "knee at {}: the highest load that met the SLO; {} broke it (within {}%)",
                    show(pass),
                    show(fail),
                    self.search.resolution * 100.0
                ),
                super::exit_of(&e).code(),
            ),
            (Some(e @ Ending::NoKneeBelowMax { max }), ..) => (
                "no_knee_below_max",
                format!(
                    "no knee below {}: every step up to --max met the SLO (raise --max to look further)",
                    show(max)
                ),
                super::exit_of(&e).code(),
            ),
            (Some(e @ Ending::FailedAtFirst { load }), ..) => (
                "failed_at_first_step",
                format!(
                    "the SLO broke at the first step ({}): lower --start to find the knee",
                    show(load)
                ),
                super::exit_of(&e).code(),
            ),
            (Some(e @ Ending::GeneratorLimit { load }), ..) => (
                "generator_limit",
                format!(
                    "the generator was the limit at {}: that step's run was invalid ({}), so it says nothing about the server{}{}. Add generator capacity: --workers N (more driver processes), or drive the target from more machines (one capacity run per machine, --target, a share of the clients each)",
                    show(load),
                    self.steps
                        .last()
                        .and_then(|s| s.reasons.first())
                        .map_or("the driver fell behind its schedule", String::as_str),
                    search
                        .last_pass()
                        .map_or(String::new(), |p| format!("; the server met the SLO up to {}", show(p))),
                    self.shared_machine_note()
                ),
                super::exit_of(&e).code(),
            ),
            (None, false, None) => ("error", "the search ended without a result".to_string(), Exit::Internal.code()),
        };
        self.knee = match outcome {
            "knee" | "no_knee_below_max" | "generator_limit" | "interrupted" => {
                knee_of(search.last_pass(), search.first_fail())
            }
            _ => None,
        };
        self.outcome = outcome.into();
        self.message = message;
        self.exit_code = code;
        code
    }
}

/// `offered = sent/s × the first step's deliveries per send` (the lowest load is taken as
/// the one where every send fans out as the workload asks).
pub fn fill_offered(record: &mut StepRecord, first: Option<&StepRecord>) {
    let per_send = first.unwrap_or(record).deliveries_per_send;
    if per_send > 0.0 {
        record.offered_deliveries_per_s = Some(record.sent_per_s * per_send);
    }
}

/// The latency metric the step rows show: the first one an SLO names, else the one with the
/// dialect's broadcast (`message.fanout` and the like).
pub fn key_metric(base: &Scenario, slo: &[String]) -> String {
    let named = slo
        .iter()
        .filter_map(|s| crate::thresholds::Threshold::parse(s).ok())
        .chain(base.thresholds.iter().map(|t| t.value.threshold.clone()))
        .find_map(|t| match t.kind {
            crate::thresholds::Figure::Latency { metric, .. } => Some(metric),
            _ => None,
        });
    named.unwrap_or_else(|| {
        crate::thresholds::known_metrics(crate::dialect::spec(&base.dialect.0), &[])
            .into_iter()
            .find(|m| m.ends_with(".fanout"))
            .unwrap_or_else(|| "message.fanout".into())
    })
}

pub fn row_header(key: &str) -> String {
    format!(
        "{:>4} {:>12} {:>7} {:>12} {:>12} {:>22} {:>9} {:>7} {:>7}  {}\n",
        "step",
        "load",
        "clients",
        "offered d/s",
        "achieved d/s",
        format!("{key} p50/p99 ms"),
        "viol M/S",
        "driver",
        "server",
        "verdict"
    )
}

pub fn row(r: &StepRecord, vary: Vary, key: &str) -> String {
    let lat = r.metrics.get(key).map_or("-".to_string(), |m| {
        format!("{:.1} / {:.1}", m.p50_ms, m.p99_ms)
    });
    format!(
        "{:>4} {:>12} {:>7} {:>12} {:>12.0} {:>22} {:>9} {:>7.2} {:>7}  {}\n",
        r.index,
        vary.show(r.load),
        r.clients,
        r.offered_deliveries_per_s
            .map_or("-".into(), |o| format!("{o:.0}")),
        r.achieved_deliveries_per_s,
        lat,
        format!("{}/{}", r.violations.must, r.violations.should),
        r.driver_cpu_cores,
        r.server_cpu_cores.map_or("-".into(), |c| format!("{c:.2}")),
        match r.outcome.as_str() {
            "pass" => "pass".to_string(),
            o => format!("{o} ({})", r.status),
        }
    )
}

/// The end of the console report: every metric's p50/p99 per step, then the outcome.
pub fn console(file: &CapacityFile, key: &str) -> String {
    let mut out = String::new();
    let mut names: Vec<&String> = file.steps.iter().flat_map(|s| s.metrics.keys()).collect();
    names.sort();
    names.dedup();
    if !file.steps.is_empty() {
        let _ = writeln!(out, "\nlatency p50 / p99 (ms, CO-corrected) by step");
        let _ = write!(out, "{:<26}", "metric");
        for s in &file.steps {
            let _ = write!(out, " {:>15}", file.vary.show(s.load));
        }
        out.push('\n');
        for name in names {
            let _ = write!(out, "{name:<26}");
            for s in &file.steps {
                let cell = s
                    .metrics
                    .get(name)
                    .map_or("-".into(), |m| format!("{:.1} / {:.1}", m.p50_ms, m.p99_ms));
                let _ = write!(out, " {cell:>15}");
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "driver/server in CPU cores; server CPU only where measurable (the reference server roomrig starts, or --server-pid)"
        );
    }
    if let Some(k) = &file.knee {
        if let Some(s) = file.steps.iter().find(|s| s.index == k.step) {
            let lat = s.metrics.get(key).map_or(String::new(), |m| {
                format!(", {key} p50 {:.1} ms, p99 {:.1} ms", m.p50_ms, m.p99_ms)
            });
            let _ = writeln!(
                out,
                "\nhighest load meeting the SLO: {} (step {}): {} clients, {:.0} deliveries/s achieved{lat}, driver {:.2} cores{}",
                file.vary.show(k.load),
                k.step,
                s.clients,
                s.achieved_deliveries_per_s,
                s.driver_cpu_cores,
                s.server_cpu_cores
                    .map_or(String::new(), |c| format!(", server {c:.2} cores"))
            );
        }
    }
    let _ = writeln!(out, "\n{} (exit {})", file.message, file.exit_code);
    out
}

/// Writes `capacity.json` and `report.html` into `dir`; returns their paths.
pub fn write_files(file: &CapacityFile, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let json = serde_json::to_string_pretty(file).map_err(std::io::Error::other)?;
    let path = dir.join(FILE);
    std::fs::write(&path, json + "\n")?;
    let value: serde_json::Value = serde_json::to_value(file).map_err(std::io::Error::other)?;
    let page = dir.join(crate::report_cmd::PAGE);
    std::fs::write(&page, crate::html::capacity_page(&value))?;
    Ok(vec![path, page])
}
