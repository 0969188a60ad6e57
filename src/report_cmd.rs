//! `roomrig report DIR [DIR2]`: the HTML page of a run (or check) from its result files alone,
//! or two runs side by side. `run` and `check` call the same functions after writing their
//! files, so the page they leave is the page this command renders again.

use std::path::{Path, PathBuf};

use crate::exit::Exit;
use crate::html::RunFiles;

/// The page's file name inside a report directory.
pub const PAGE: &str = "report.html";
/// The results of `roomrig check` inside its report directory.
pub const CHECK_FILE: &str = "check.json";

/// Why a directory's result files cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The directory, or the files a report needs, are not there.
    #[error("{0}")]
    Missing(String),
    /// A file is there but cannot be parsed.
    #[error("{0}")]
    Corrupt(String),
}

impl ReadError {
    pub fn exit(&self) -> Exit {
        match self {
            ReadError::Missing(_) => Exit::Usage,
            ReadError::Corrupt(_) => Exit::Unreadable,
        }
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value, ReadError> {
    let text = std::fs::read(path)
        .map_err(|e| ReadError::Missing(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_slice(&text).map_err(|e| {
        ReadError::Corrupt(format!(
            "{} is not a roomrig result (not JSON: {e})",
            path.display()
        ))
    })
}

/// Reads a run's result files: `summary.json`, `histograms.hlog`, `transcripts.txt`.
pub fn read_run(dir: &Path) -> Result<RunFiles, ReadError> {
    if !dir.is_dir() {
        return Err(ReadError::Missing(format!(
            "{} is not a directory (give the report directory of a run)",
            dir.display()
        )));
    }
    let summary_path = dir.join("summary.json");
    if !summary_path.is_file() {
        return Err(ReadError::Missing(format!(
            "{} holds no summary.json: not the report directory of a run",
            dir.display()
        )));
    }
    let summary = read_json(&summary_path)?;
    if !summary["verdict"]["status"].is_string() {
        return Err(ReadError::Corrupt(format!(
            "{} has no verdict: not a roomrig summary",
            summary_path.display()
        )));
    }
    let hlog_path = dir.join("histograms.hlog");
    let intervals = if hlog_path.is_file() {
        crate::hlog::read(&hlog_path).map_err(|e| ReadError::Corrupt(e.to_string()))?
    } else if summary["verdict"]["status"] == "unreachable" {
        // Nothing ran, nothing was measured.
        Vec::new()
    } else {
        return Err(ReadError::Missing(format!(
            "{} holds no histograms.hlog",
            dir.display()
        )));
    };
    let transcripts = std::fs::read_to_string(dir.join("transcripts.txt")).ok();
    Ok(RunFiles {
        dir: dir.display().to_string(),
        summary,
        intervals: crate::hlog::by_tag(intervals),
        transcripts,
    })
}

/// Renders `dir/report.html` from the run's result files; returns its path.
pub fn render_run_dir(dir: &Path) -> Result<PathBuf, ReadError> {
    let run = read_run(dir)?;
    let path = dir.join(PAGE);
    write(&path, crate::html::run_page(&run))?;
    Ok(path)
}

/// Reads a check's `check.json`.
fn read_check(dir: &Path) -> Result<serde_json::Value, ReadError> {
    let check = read_json(&dir.join(CHECK_FILE))?;
    if !check["cases"].is_array() {
        return Err(ReadError::Corrupt(format!(
            "{} has no cases: not a roomrig check result",
            dir.join(CHECK_FILE).display()
        )));
    }
    Ok(check)
}

/// Renders `dir/report.html` from a check's `check.json`; returns its path.
pub fn render_check_dir(dir: &Path) -> Result<PathBuf, ReadError> {
    let check = read_check(dir)?;
    let path = dir.join(PAGE);
    write(
        &path,
        crate::html::check_page(&check, &dir.display().to_string()),
    )?;
    Ok(path)
}

/// The results of `roomrig capacity` inside its report directory.
pub const CAPACITY_FILE: &str = crate::capacity::report::FILE;

/// Reads a capacity search's `capacity.json`.
fn read_capacity(dir: &Path) -> Result<serde_json::Value, ReadError> {
    let c = read_json(&dir.join(CAPACITY_FILE))?;
    if c["kind"] != "capacity" || !c["steps"].is_array() {
        return Err(ReadError::Corrupt(format!(
            "{} has no steps: not a roomrig capacity result",
            dir.join(CAPACITY_FILE).display()
        )));
    }
    Ok(c)
}

fn write(path: &Path, page: String) -> Result<(), ReadError> {
    std::fs::write(path, page)
        .map_err(|e| ReadError::Missing(format!("cannot write {}: {e}", path.display())))
}

/// `roomrig report DIR [DIR2] [--out FILE]`; returns the exit code.
pub fn report(dirs: &[PathBuf], out: Option<&Path>) -> i32 {
    let done: Result<PathBuf, ReadError> = match dirs {
        [dir] => (|| {
            let path = out.map_or_else(|| dir.join(PAGE), Path::to_path_buf);
            let page = if dir.join(CHECK_FILE).is_file() {
                crate::html::check_page(&read_check(dir)?, &dir.display().to_string())
            } else if dir.join(CAPACITY_FILE).is_file() {
                crate::html::capacity_page(&read_capacity(dir)?)
            } else {
                crate::html::run_page(&read_run(dir)?)
            };
            write(&path, page)?;
            Ok(path)
        })(),
        [a, b] => (|| {
            let (ra, rb) = (read_run(a)?, read_run(b)?);
            let path = out.map_or_else(|| a.join("compare.html"), Path::to_path_buf);
            write(&path, crate::html::compare_page(&ra, &rb))?;
            Ok(path)
        })(),
        _ => {
            eprintln!("error: roomrig report takes one report directory, or two to compare");
            return Exit::Usage.code();
        }
    };
    match done {
        Ok(path) => {
            crate::out::outln!("wrote {}", path.display());
            Exit::Pass.code()
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit().code()
        }
    }
}
