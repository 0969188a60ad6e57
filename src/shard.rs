//! `roomrig run SCENARIO --shard K/N --start-at TIME --report-dir DIR`: one shard of a run
//! across machines, with no parent process.
//!
//! - **The split is `--workers`' split**: a shard is worker K of N ([`crate::share::owners`],
//!   whole fixture rooms each), driven by the same driver code; only its start differs. A
//!   worker is told its start by its parent; a shard starts its open-loop schedule at a
//!   wall-clock time agreed in advance (`--start-at`, RFC 3339 or Unix seconds), so N shards
//!   on N machines with synchronised clocks run one schedule.
//! - **A late shard is said, never hidden**: one ready more than its bound after the start
//!   (`--max-start-lateness-ms`, by default the run's own lateness bound `--max-lateness-ms`:
//!   a shard that late would have every send that late) runs no load and exits 4; its part
//!   says so, and the merged run is invalid. One ready within the bound starts at the agreed
//!   instant, its first sends counted as late as they are.
//! - **Its files**: what a worker writes (summary.json, histograms.hlog, worker.json, ops.log
//!   with `--op-log`) plus [`SHARD_FILE`], the identity `roomrig merge` checks (scenario hash,
//!   seed, K, N) and the scenario text it judges thresholds with. It is written before the
//!   load starts (state `running`) and again at the end, so a shard killed mid-run leaves a
//!   part that says what it was.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::driver::RunError;
use crate::exit::Exit;
use crate::report_dir::ReportDir;
use crate::run::RunRequest;
use crate::scenario::{Scenario, UsersSpec};
use crate::scenario_source::Source;
use crate::share::ShardStart;
use reference_server::fixtures::Fixtures;

/// The identity file of a shard's report directory.
pub const SHARD_FILE: &str = "shard.json";

/// The most shards of one run.
pub const MAX_SHARDS: u32 = 10_000;

/// `K/N` of `--shard`: shard K (0-based) of N.
pub fn parse_shard(text: &str) -> Result<(u32, u32), String> {
    let (k, n) = text
        .split_once('/')
        .ok_or_else(|| format!("expected K/N (e.g. 0/4), not {text:?}"))?;
    let k: u32 = k.trim().parse().map_err(|e| format!("K: {e}"))?;
    let n: u32 = n.trim().parse().map_err(|e| format!("N: {e}"))?;
    if n == 0 || n > MAX_SHARDS {
        return Err(format!("N must be 1 to {MAX_SHARDS}, not {n}"));
    }
    if k >= n {
        return Err(format!(
            "shards are numbered 0 to {}: there is no shard {k} of {n}",
            n - 1
        ));
    }
    Ok((k, n))
}

/// `--start-at`: an RFC 3339 time (`2026-05-01T12:00:00Z`) or seconds since the Unix epoch
/// (`1777636800`, fractions allowed).
pub fn parse_start_at(text: &str) -> Result<SystemTime, String> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        let micros = t.timestamp_micros();
        return u64::try_from(micros)
            .map(|m| UNIX_EPOCH + Duration::from_micros(m))
            .map_err(|_| format!("{text} is before 1970"));
    }
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(UNIX_EPOCH + Duration::from_secs_f64(s)),
        _ => Err(format!(
            "expected an RFC 3339 time (2026-05-01T12:00:00Z) or Unix seconds, not {text:?}"
        )),
    }
}

/// The clients each of `n` shards runs (the split of [`crate::share::owners`]).
pub fn planned_per_shard(
    fixtures: &Fixtures,
    arrivals: &[crate::schedule::Arrival],
    n: u32,
) -> Vec<u64> {
    let owners = crate::share::owners(fixtures.users.iter().map(|u| u.room_id), n);
    let mut per = vec![0u64; n as usize];
    for a in arrivals {
        per[owners[a.client as usize] as usize] += 1;
    }
    per
}

/// A time as RFC 3339 with microseconds.
pub fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// `shard.json`: who a shard was, in which run, and how it ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardFile {
    pub shard: u32,
    pub shards: u32,
    pub seed: u64,
    /// SHA-256 of the scenario as it ran (after `${VAR}` and `--set`) and of its users file:
    /// parts of one run have the same.
    pub scenario_hash: String,
    pub scenario: ScenarioText,
    /// `--users`, as given.
    pub users: Option<PathBuf>,
    /// The agreed start (`--start-at`), RFC 3339.
    pub start_at: String,
    pub max_start_lateness_ms: u64,
    pub target: String,
    pub source_addr: Option<String>,
    pub strict: bool,
    /// `running` while it runs (a part left so was stopped before its end), then `ran`,
    /// `late` (ready after its bound: no load ran) or `failed` (could not start).
    pub state: String,
    pub exit_code: Option<i32>,
    /// Why it did not run, when it did not.
    pub reason: Option<String>,
}

/// The scenario as a shard read it, so that the merge judges with the very same.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioText {
    pub path: PathBuf,
    /// The file's text as written.
    pub text: String,
    pub sets: Vec<String>,
    /// The environment variables it expanded, with their values.
    pub env: Vec<(String, String)>,
}

impl ScenarioText {
    /// The scenario this text reads as, with the seed of the run.
    pub fn scenario(&self, seed: u64) -> Result<Scenario, String> {
        let env: HashMap<&str, &str> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let source = self.effective(|name| env.get(name).map(|v| v.to_string()))?;
        let shown = self.path.display().to_string();
        let mut s = Scenario::parse_source(&source, &shown).map_err(|e| e.to_string())?;
        s.inputs = crate::scenario::Inputs {
            env: self.env.clone(),
            sets: self.sets.clone(),
        };
        if s.name.is_empty() {
            s.name = self
                .path
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
        }
        s.seed = seed;
        Ok(s)
    }

    /// The text after `${VAR}` and `--set`, as [`Scenario::load_with`] reads it.
    fn effective(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<Source, String> {
        let mut source = Source::new(self.text.clone());
        crate::env_expand::expand(&mut source, lookup).map_err(|e| e.message)?;
        crate::overrides::apply(&mut source, &self.sets)
            .map_err(|e| format!("--set {}: {}", e.arg, e.message))?;
        Ok(source)
    }
}

/// The identity hash of a scenario as it runs: its effective text and its users file's bytes.
fn scenario_hash(text: &ScenarioText, users: Option<&[u8]>) -> Result<String, String> {
    use sha2::Digest as _;
    let env: HashMap<&str, &str> = text
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let source = text.effective(|name| env.get(name).map(|v| v.to_string()))?;
    let mut h = sha2::Sha256::new();
    h.update(source.text.as_bytes());
    h.update([0u8]);
    h.update(users.unwrap_or_default());
    Ok(format!("sha256:{:x}", h.finalize()))
}

pub fn write_file(dir: &Path, f: &ShardFile) -> std::io::Result<()> {
    let mut json = serde_json::to_vec_pretty(f).map_err(std::io::Error::other)?;
    json.push(b'\n');
    // Written whole or not at all: a merge never reads half a file.
    let tmp = dir.join(format!(".{SHARD_FILE}.tmp"));
    std::fs::write(&tmp, json)?;
    std::fs::rename(tmp, dir.join(SHARD_FILE))
}

pub fn read_file(dir: &Path) -> Result<ShardFile, String> {
    let path = dir.join(SHARD_FILE);
    let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs shard K of N (`req.worker` is a shard) and returns the exit code: the verdict on its
/// own share, 4 when it was ready too late.
pub(crate) async fn run(
    req: &RunRequest,
    scenario: Scenario,
    keyed: Option<Fixtures>,
    claimed: Option<ReportDir>,
    live: Option<crate::live_metrics::Board>,
) -> i32 {
    let share = req.worker.clone().expect("a shard");
    let start: ShardStart = share.shard_start.clone().expect("a shard");
    let (k, n) = (share.index, share.count);
    let usage = |message: String| {
        eprintln!("error: {message}");
        Exit::Usage.code()
    };
    let Some(claimed) = claimed else {
        return usage("--shard needs --report-dir: the merge reads each shard's directory".into());
    };
    let dir = claimed.path().to_path_buf();
    if let Err(why) = crate::workers::check_splittable(crate::dialect::spec(&scenario.dialect.0)) {
        return usage(format!("--shard {k}/{n}: {why}"));
    }
    let Some(target) = req.target.clone().or_else(|| scenario.target.clone()) else {
        return usage(
            "--shard needs a target (--target URL, or the scenario's): every shard drives the \
             one server under test"
                .into(),
        );
    };
    // The identity: the scenario file read again, as `Scenario::load_with` read it.
    let text = match reference_server::fixtures::read_capped(
        &req.scenario_path,
        crate::scenario::MAX_SCENARIO_FILE,
    ) {
        Ok(t) => t,
        Err(e) => return usage(format!("{}: {e}", req.scenario_path.display())),
    };
    let users_path = req.users.clone().or(match &scenario.users {
        UsersSpec::File(f) => Some(f.clone()),
        _ => None,
    });
    let users_bytes = match &users_path {
        Some(p) => match std::fs::read(p) {
            Ok(b) => Some(b),
            Err(e) => return usage(format!("{}: {e}", p.display())),
        },
        None => None,
    };
    let text = ScenarioText {
        path: req.scenario_path.clone(),
        text,
        sets: scenario.inputs.sets.clone(),
        env: scenario.inputs.env.clone(),
    };
    let hash = match scenario_hash(&text, users_bytes.as_deref()) {
        Ok(h) => h,
        Err(e) => return usage(e),
    };
    let mut file = ShardFile {
        shard: k,
        shards: n,
        seed: scenario.seed,
        scenario_hash: hash,
        scenario: text,
        users: req.users.clone(),
        start_at: rfc3339(start.at),
        max_start_lateness_ms: start.bound.as_millis() as u64,
        target,
        source_addr: req.source_addr.map(|a| a.to_string()),
        strict: req.strict,
        state: "running".into(),
        exit_code: None,
        reason: None,
    };
    let save = |f: &ShardFile| {
        write_file(&dir, f).map_err(|e| {
            eprintln!(
                "error: cannot write {}: {e}",
                dir.join(SHARD_FILE).display()
            );
            Exit::Internal.code()
        })
    };
    // A start already past its bound is said before anything connects.
    let late = SystemTime::now()
        .duration_since(start.at)
        .ok()
        .filter(|late| *late > start.bound);
    let outcome = match late {
        Some(late) => Err(RunError::LateStart(crate::share::late_start(
            k,
            late,
            start.bound,
        ))),
        None => {
            // A part left by an earlier run into this directory (--overwrite) is not this one's.
            let stale = dir.join(crate::workers::PART_FILE);
            if stale.exists() {
                if let Err(e) = std::fs::remove_file(&stale) {
                    eprintln!("error: cannot remove {}: {e}", stale.display());
                    return Exit::Internal.code();
                }
            }
            if let Err(code) = save(&file) {
                return code;
            }
            crate::driver::run(
                scenario.clone(),
                crate::run::run_options(req, keyed, live.clone()),
            )
            .await
        }
    };
    let result = match outcome {
        Ok(r) => r,
        Err(e) => {
            file.state = if matches!(e, RunError::LateStart(_)) {
                "late"
            } else {
                "failed"
            }
            .into();
            file.reason = Some(e.to_string());
            let code = crate::run::run_error(e);
            file.exit_code = Some(code);
            return save(&file).err().unwrap_or(code);
        }
    };
    if let Some(board) = &live {
        board.publish(crate::live_metrics::final_figures(&result), Duration::ZERO);
    }
    let name = scenario.name.clone();
    let run_id = format!(
        "{}-shard{k}of{n}",
        crate::run::run_id(result.started_at, &name, result.seed)
    );
    let mut summary =
        crate::report::summarize(&result, &scenario, &req.scenario_path, &run_id, req.strict);
    summary.replay = format!(
        "{} --shard {k}/{n} --start-at {}",
        summary.replay, file.start_at
    );
    let mut code = crate::run::finish_run(req, &name, &mut summary, &result, &dir);
    if let Err(e) = crate::workers::write_result(&result, &dir) {
        eprintln!("error: cannot write its part into {}: {e}", dir.display());
        code = Exit::Internal.code();
    }
    file.state = "ran".into();
    file.exit_code = Some(code);
    save(&file).err().unwrap_or(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse() {
        assert_eq!(parse_shard("0/3"), Ok((0, 3)));
        assert_eq!(parse_shard(" 2 / 3 "), Ok((2, 3)));
        assert!(parse_shard("3/3").unwrap_err().contains("no shard 3 of 3"));
        assert!(parse_shard("0/0").is_err());
        assert!(parse_shard("1").is_err());
        assert!(parse_shard("0/20000").is_err());
    }

    #[test]
    fn start_times_parse_as_rfc3339_or_unix_seconds() {
        let a = parse_start_at("2026-05-01T12:00:00Z").unwrap();
        let b = parse_start_at("1777636800").unwrap();
        assert_eq!(a, b);
        let c = parse_start_at("2026-05-01T14:00:00.5+02:00").unwrap();
        assert_eq!(c.duration_since(a).unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse_start_at("1777636800.25").unwrap(),
            a + Duration::from_millis(250)
        );
        assert_eq!(rfc3339(a), "2026-05-01T12:00:00.000000Z");
        assert!(parse_start_at("tomorrow").is_err());
        assert!(parse_start_at("-5").is_err());
    }

    #[test]
    fn a_start_is_ahead_within_the_bound_or_refused() {
        let bound = Duration::from_millis(500);
        let ahead = ShardStart {
            at: SystemTime::now() + Duration::from_secs(2),
            bound,
        };
        let i = ahead.instant(0).unwrap();
        assert!(i > tokio::time::Instant::now() + Duration::from_secs(1));
        let slightly_late = ShardStart {
            at: SystemTime::now() - Duration::from_millis(100),
            bound,
        };
        assert!(slightly_late.instant(0).unwrap() <= tokio::time::Instant::now());
        let late = ShardStart {
            at: SystemTime::now() - Duration::from_secs(3),
            bound,
        };
        let why = late.instant(1).unwrap_err();
        assert!(
            why.contains("shard 1") && why.contains("ran no load"),
            "{why}"
        );
    }

    #[test]
    fn the_identity_is_the_scenario_as_it_runs() {
        let text = |body: &str, sets: &[&str]| ScenarioText {
            path: "s.yaml".into(),
            text: body.into(),
            sets: sets.iter().map(|s| s.to_string()).collect(),
            env: vec![],
        };
        let body = "name: x\nseed: 1\n";
        let h = scenario_hash(&text(body, &[]), None).unwrap();
        assert_eq!(h, scenario_hash(&text(body, &[]), None).unwrap());
        assert!(h.starts_with("sha256:"));
        assert_ne!(h, scenario_hash(&text(body, &["seed=2"]), None).unwrap());
        assert_ne!(h, scenario_hash(&text(body, &[]), Some(b"users")).unwrap());
    }
}
