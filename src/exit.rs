//! Exit codes: part of the interface CI scripts rely on (documented in the README).

/// How `roomrig` exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Exit {
    /// Every MUST rule held (and SHOULD with `--strict`), every threshold passed.
    Pass = 0,
    /// The server violated at least one MUST rule (or SHOULD with `--strict`).
    Violations = 1,
    /// Bad command line or bad scenario/users file: nothing was run.
    Usage = 2,
    /// The run conformed but a threshold of the scenario failed.
    Thresholds = 3,
    /// The generator fell behind its schedule: latencies would describe the generator.
    InvalidRun = 4,
    /// The target is unreachable or does not speak the protocol.
    Unreachable = 5,
    /// `roomrig report`: a result file of the directory is corrupt (cannot be parsed).
    Unreadable = 6,
    /// roomrig itself failed (e.g. the report could not be written).
    Internal = 70,
    /// Interrupted by Ctrl-C; the report of what ran was still written.
    Interrupted = 130,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }
}
