//! The report directory of a run: claimed before the first connection, so two runs never
//! write into one directory and a report never sits beside an earlier run's files.
//!
//! - **In use**: a run holds an exclusive `flock` on `<dir>/.roomrig.lock` for its whole life;
//!   a second run into the same directory is refused (naming the holder's pid). The kernel
//!   releases the lock when the holder exits, however it exits, so a lock file left by a
//!   killed run blocks nothing.
//! - **Not empty**: a directory holding anything but the lock file is refused unless the run
//!   is told `--overwrite`; then the files a run writes ([`RUN_FILES`], `worker-*`, the JUnit
//!   file when it is inside) are removed before the run starts, so a failing run's
//!   `transcripts.txt` cannot outlive it beside a later passing summary. Other files stay.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// The lock file inside a claimed directory.
pub const LOCK_FILE: &str = ".roomrig.lock";

/// The files a run (or a worker of one) writes into its report directory.
pub const RUN_FILES: &[&str] = &[
    "summary.json",
    "histograms.hlog",
    "transcripts.txt",
    "ops.log",
    "worker.json",
    "report.html",
    "check.json",
    "compare.html",
];

/// Why a directory cannot be this run's report directory.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("report directory {} is in use by another roomrig run{}", .dir.display(), .holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    InUse { dir: PathBuf, holder: Option<u32> },
    #[error("report directory {} is not empty ({}); pass --overwrite to replace a report there, or choose another directory", .dir.display(), .entries.join(", "))]
    NotEmpty { dir: PathBuf, entries: Vec<String> },
    #[error("cannot write {}: {source}", .dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A report directory this process holds: locked until dropped.
#[derive(Debug)]
pub struct ReportDir {
    path: PathBuf,
    /// Holds the flock; closing it (drop, or process exit) releases the directory.
    _lock: File,
}

impl ReportDir {
    /// Claims `dir` (created if missing): refused if another run holds it, or if it holds
    /// anything unless `overwrite`, which first removes what a run writes (and `junit` when
    /// that file is inside `dir`).
    pub fn claim(
        dir: &Path,
        overwrite: bool,
        junit: Option<&Path>,
    ) -> Result<ReportDir, ClaimError> {
        let io = |source| ClaimError::Io {
            dir: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        use rustix::fs::{flock, FlockOperation};
        match flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut text = String::new();
                let _ = lock.read_to_string(&mut text);
                return Err(ClaimError::InUse {
                    dir: dir.to_path_buf(),
                    holder: text.trim().parse().ok(),
                });
            }
            Err(e) => return Err(io(e.into())),
        }
        // The holder's pid, for the message of a run refused meanwhile.
        lock.set_len(0).map_err(io)?;
        lock.rewind().map_err(io)?;
        write!(lock, "{}", std::process::id()).map_err(io)?;

        let junit_name = junit
            .filter(|j| j.parent().is_some_and(|p| same_dir(p, dir)))
            .and_then(|j| j.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        let mut entries: Vec<String> = std::fs::read_dir(dir)
            .map_err(io)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != LOCK_FILE)
            .collect();
        entries.sort();
        if !entries.is_empty() {
            if !overwrite {
                return Err(ClaimError::NotEmpty {
                    dir: dir.to_path_buf(),
                    entries,
                });
            }
            for name in &entries {
                let path = dir.join(name);
                if name.starts_with("worker-") && path.is_dir() {
                    std::fs::remove_dir_all(&path).map_err(io)?;
                } else if RUN_FILES.contains(&name.as_str()) || Some(name) == junit_name.as_ref() {
                    std::fs::remove_file(&path).map_err(io)?;
                }
            }
        }
        Ok(ReportDir {
            path: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// Claims `base`, or the first of `base-2`, `base-3`, ... that is free and empty: the
    /// default directory `reports/<run-id>` of two runs started in the same second.
    pub fn claim_new(base: &Path) -> Result<ReportDir, ClaimError> {
        let mut last = None;
        for n in 1..=100 {
            let dir = if n == 1 {
                base.to_path_buf()
            } else {
                let mut name = base.as_os_str().to_owned();
                name.push(format!("-{n}"));
                PathBuf::from(name)
            };
            match ReportDir::claim(&dir, false, None) {
                Ok(d) => return Ok(d),
                Err(e @ ClaimError::Io { .. }) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("tried at least once"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether two directory paths name the same directory (`reports` and `./reports/`).
fn same_dir(a: &Path, b: &Path) -> bool {
    let a = if a.as_os_str().is_empty() {
        Path::new(".")
    } else {
        a
    };
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_directory_is_refused_and_free_again_once_released() {
        let tmp = tempfile::tempdir().unwrap();
        let first = ReportDir::claim(tmp.path(), false, None).unwrap();
        match ReportDir::claim(tmp.path(), true, None) {
            Err(ClaimError::InUse { holder, .. }) => {
                assert_eq!(holder, Some(std::process::id()))
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        // The lock file stays behind, as after a killed run: it blocks nothing.
        assert!(tmp.path().join(LOCK_FILE).exists());
        ReportDir::claim(tmp.path(), false, None).unwrap();
    }

    #[test]
    fn a_directory_with_a_report_is_refused_without_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("summary.json"), "{}").unwrap();
        match ReportDir::claim(tmp.path(), false, None) {
            Err(ClaimError::NotEmpty { entries, .. }) => assert_eq!(entries, ["summary.json"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn overwrite_removes_what_a_run_writes_and_keeps_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for f in [
            "summary.json",
            "histograms.hlog",
            "transcripts.txt",
            "ops.log",
            "junit.xml",
            "notes.md",
        ] {
            std::fs::write(d.join(f), "x").unwrap();
        }
        std::fs::create_dir(d.join("worker-0")).unwrap();
        std::fs::write(d.join("worker-0/worker.json"), "{}").unwrap();
        let junit = d.join("junit.xml");
        let claimed = ReportDir::claim(d, true, Some(&junit)).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [LOCK_FILE, "notes.md"]);
        assert_eq!(claimed.path(), d);
    }

    #[test]
    fn a_new_directory_steps_past_one_in_use() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("run");
        let first = ReportDir::claim_new(&base).unwrap();
        let second = ReportDir::claim_new(&base).unwrap();
        assert_eq!(first.path(), base);
        assert_eq!(second.path(), tmp.path().join("run-2"));
    }
}
