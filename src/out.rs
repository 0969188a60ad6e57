//! Standard output that may be closed early (`roomrig run … | head`): what cannot be written
//! is dropped quietly, so the run still ends with its verdict's exit code (`println!` panics on
//! a broken pipe, and the process would exit 101).

use std::fmt;
use std::io::Write as _;

/// Writes to stdout; a closed or broken stdout is ignored.
pub(crate) fn write(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.flush());
}

/// `print!` that does not panic when stdout is gone.
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::write(format_args!($($arg)*)) };
}

/// `println!` that does not panic when stdout is gone.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::out::write(format_args!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {out, outln};
