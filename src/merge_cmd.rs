//! `roomrig merge DIR... --report-dir OUT`: the shards of a run across machines (`run --shard
//! K/N`, see [`crate::shard`]) joined into one report and one verdict, through the very merge
//! `--workers` uses ([`crate::workers::merge_parts`]): histograms added, counters summed,
//! each shard judged on its own, thresholds judged on the merged data.
//!
//! Parts of different scenarios, seeds or shard counts, and two parts of one shard, are
//! refused (exit 2, naming the directories): they are not one run. A missing shard, one
//! stopped before its end or one that started late makes the merged run invalid (exit 4); the
//! report still covers the shards that ran.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::exit::Exit;
use crate::report::Processes;
use crate::shard::ShardFile;
use crate::workers::{MergeContext, Part};

fn usage(message: String) -> i32 {
    eprintln!("error: {message}");
    Exit::Usage.code()
}

/// Checks that the parts are shards of one run, one part per shard: `Err` names the parts
/// that disagree.
fn check_parts(found: &[(PathBuf, ShardFile)]) -> Result<(), String> {
    let (d0, first) = &found[0];
    for (dir, f) in &found[1..] {
        let differ = |what: &str, a: String, b: String| {
            Err(format!(
                "{} and {} are parts of different runs: their {what} differ ({a} and {b})",
                d0.display(),
                dir.display()
            ))
        };
        if f.scenario_hash != first.scenario_hash {
            return differ(
                "scenarios (the scenario as it ran, with its users file)",
                first.scenario_hash.clone(),
                f.scenario_hash.clone(),
            );
        }
        if f.seed != first.seed {
            return differ("seeds", first.seed.to_string(), f.seed.to_string());
        }
        if f.shards != first.shards {
            return differ(
                "shard counts",
                format!("N={}", first.shards),
                format!("N={}", f.shards),
            );
        }
        if f.start_at != first.start_at {
            return differ("start times", first.start_at.clone(), f.start_at.clone());
        }
    }
    let mut seen: BTreeMap<u32, &PathBuf> = BTreeMap::new();
    for (dir, f) in found {
        if let Some(other) = seen.insert(f.shard, dir) {
            return Err(format!(
                "{} and {} are both shard {} of {}: each shard's directory is given once",
                other.display(),
                dir.display(),
                f.shard,
                f.shards
            ));
        }
    }
    Ok(())
}

/// What `roomrig merge` is asked (the command line's, without its parser).
pub(crate) struct MergeRequest {
    /// The shards' report directories.
    pub dirs: Vec<PathBuf>,
    pub report_dir: PathBuf,
    pub overwrite: bool,
    pub strict: bool,
    pub junit: Option<PathBuf>,
}

/// `roomrig merge`: returns the exit code of the merged verdict.
pub(crate) fn merge(args: &MergeRequest) -> i32 {
    let mut found = Vec::new();
    for dir in &args.dirs {
        match crate::shard::read_file(dir) {
            Ok(f) => found.push((dir.clone(), f)),
            Err(e) => {
                return usage(format!(
                    "{} is not the report directory of a shard (`roomrig run --shard K/N`): {e}",
                    dir.display()
                ))
            }
        }
    }
    if let Err(e) = check_parts(&found) {
        return usage(e);
    }
    let first = found[0].1.clone();
    let n = first.shards;
    let scenario = match first.scenario.scenario(first.seed) {
        Ok(s) => s,
        Err(e) => return usage(format!("the shards' scenario does not read: {e}")),
    };
    let claimed = match crate::report_dir::ReportDir::claim(
        &args.report_dir,
        args.overwrite,
        args.junit.as_deref(),
    ) {
        Ok(d) => d,
        Err(e) => return usage(e.to_string()),
    };
    let dir = claimed.path().to_path_buf();
    let strict = args.strict || found.iter().any(|(_, f)| f.strict);
    // What each shard was to run, for the shards that left no result (when the users can be
    // read here: generated, or the file at the path the shards were given).
    let planned = crate::driver::load_fixtures(&scenario, first.users.as_deref())
        .map(|f| {
            let arrivals = crate::schedule::arrivals(&scenario, f.users.len());
            crate::shard::planned_per_shard(&f, &arrivals, n)
        })
        .unwrap_or_else(|_| vec![0; n as usize]);
    let mut by_shard: BTreeMap<u32, (PathBuf, ShardFile)> =
        found.into_iter().map(|(d, f)| (f.shard, (d, f))).collect();
    let parts: Vec<Part> = (0..n)
        .map(|k| match by_shard.remove(&k) {
            Some((d, f)) => Part {
                index: k,
                source_addr: f.source_addr.clone(),
                target: f.target.clone(),
                planned: planned[k as usize],
                exit_code: f.exit_code,
                result: match (f.state.as_str(), &f.reason) {
                    ("late" | "failed", Some(why)) => Err(why.clone()),
                    // Its result is whole only once shard.json says it ran.
                    ("running", _) => Err(
                        "it was stopped before its end (its shard.json still says `running`)"
                            .into(),
                    ),
                    _ => crate::workers::read_result(&d).map_err(|e| e.to_string()),
                },
                dir: d,
            },
            None => Part {
                index: k,
                dir: PathBuf::new(),
                source_addr: None,
                target: first.target.clone(),
                planned: planned[k as usize],
                exit_code: None,
                result: Err(
                    "missing: no directory of this shard was given (it never ran, or its \
                     directory was not passed to the merge)"
                        .into(),
                ),
            },
        })
        .collect();
    let ran: Vec<&crate::driver::RunResult> = parts
        .iter()
        .filter_map(|p| p.result.as_ref().ok())
        .collect();
    let mut targets: Vec<String> = parts.iter().map(|p| p.target.clone()).collect();
    targets.dedup();
    let ctx = MergeContext {
        seed: first.seed,
        target: targets.join(", "),
        embedded: false,
        eio: ran
            .first()
            .map_or(crate::protocol::EioVersion::V4, |r| r.eio),
        eio_detected: ran.first().and_then(|r| r.eio_detected.clone()),
        started_at: chrono::DateTime::parse_from_rfc3339(&first.start_at)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(|_| chrono::Utc::now()),
        interrupted: false,
        users_file: first.users.clone(),
        max_lateness: ran
            .first()
            .map_or(Duration::from_millis(100), |r| r.max_lateness),
        op_log: !ran.is_empty() && ran.iter().all(|r| r.op_log.is_some()),
    };
    let (result, infos, reasons) =
        match crate::workers::merge_parts("shard", &scenario, strict, ctx, parts) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: cannot merge the shards' histograms: {e}");
                return Exit::Internal.code();
            }
        };
    let run_id = format!(
        "{}-merged",
        crate::run::run_id(result.started_at, &scenario.name, scenario.seed)
    );
    let mut summary =
        crate::report::summarize(&result, &scenario, &first.scenario.path, &run_id, strict);
    summary.verdict.invalid_if_a_worker_was(reasons);
    summary.replay = format!(
        "{} --shard K/{n} --start-at TIME --report-dir DIR-K (K = 0..{}), then roomrig merge DIR-0..DIR-{} --report-dir OUT",
        summary.replay,
        n - 1,
        n - 1
    );
    let processes = Processes {
        peak_open: result.timeline.open.iter().copied().max().unwrap_or(0),
        servers: Vec::new(),
        workers: infos,
    };
    crate::out::out!("{}", crate::workers::processes_table(&processes));
    summary.processes = Some(processes);
    crate::out::out!("{}", crate::report::console(&summary));
    let mut code = summary.verdict.exit_code;
    match crate::report::write_files(&summary, &result, &dir) {
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
    if let Some(path) = &args.junit {
        let xml = crate::junit::render(
            &format!("roomrig merge {}", scenario.name),
            &crate::report::junit_cases(&summary),
        );
        if let Err(internal) = crate::run::write_output(path, xml) {
            code = internal;
        }
    }
    code
}
