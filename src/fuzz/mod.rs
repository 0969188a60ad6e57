//! Fuzz targets for every parser that reads input from outside roomrig: the Engine.IO /
//! Socket.IO packet codec and the transport's view of a received event, the borrowed JSON
//! reader, the plain-WebSocket `JsonFraming`, voice's PHP JSON, the scenario parser and the
//! users-file parser.
//!
//! Each target is a `#[test]` driven by [bolero](https://crates.io/crates/bolero), so plain
//! `cargo test` on the stable toolchain runs it for a bounded number of inputs; a longer
//! campaign only raises the bound (see the README, "Fuzzing"). Each target runs two ways:
//!
//! - `<target>`: bolero's raw random bytes, after replaying the seed corpus in
//!   `src/fuzz/__fuzz__/fuzz__<module>__<target>/corpus/` (bolero's layout, so `cargo bolero test`
//!   with libFuzzer or AFL finds and grows the same corpus);
//! - `<target>_mutated`: structured mutations of those seeds (byte edits, deletions, splices
//!   between seeds, repeated slices and tokens of the format), which reach far deeper into a
//!   JSON or YAML parser than random bytes do.
//!
//! Every input is checked for properties, not only for "no panic": an error is a value whose
//! message stays short; encode then decode gives back what was encoded; two readers of the
//! same text agree; no input makes the parser allocate more than a bound (see [`alloc`]).
//! A crash found here becomes a named regression test beside the parser's unit tests.

pub(crate) mod alloc;
mod framing;
mod json;
mod php;
mod protocol;
mod scenario;
mod users;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bolero::generator::TypeGenerator;

/// Inputs per target in `cargo test` (with [`TIME_CAP`]: 0.3 to 4 s a target on the CI
/// machine's debug build). `BOLERO_RANDOM_ITERATIONS` / `BOLERO_RANDOM_TEST_TIME_MS` in the
/// environment override both (a longer campaign).
pub(crate) const ITERATIONS: usize = 200_000;
/// A ceiling on a target's run time so a loaded machine does not stretch the test suite: the
/// bound is on how much is tried, never on the verdict.
pub(crate) const TIME_CAP: Duration = Duration::from_secs(4);
/// Longest input bolero generates, in bytes.
pub(crate) const MAX_LEN: usize = 4096;

/// The seed corpus of the test `test` of module `module` (`roomrig::fuzz::protocol`), where
/// bolero looks for it: `src/fuzz/__fuzz__/fuzz__protocol__engineio_packet/corpus`.
pub(crate) fn corpus_dir(module: &str, test: &str) -> PathBuf {
    let path = module.split_once("::").map_or(module, |(_, p)| p);
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/fuzz/__fuzz__")
        .join(format!("{}__{test}", path.replace("::", "__")))
        .join("corpus")
}

/// The seeds of a target (every file of its corpus directory), sorted by name.
pub(crate) fn seeds(module: &str, test: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(module, test);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let seeds: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| std::fs::read(p).expect("reading a seed"))
        .collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// One edit of a seed; positions and lengths wrap around the text they apply to.
#[derive(Debug, TypeGenerator)]
pub(crate) enum Edit {
    /// Overwrite one byte.
    Byte { at: u16, byte: u8 },
    /// Delete a run of bytes.
    Delete { at: u16, len: u8 },
    /// Insert one of the format's tokens.
    Token { at: u16, token: u8 },
    /// Repeat a slice of the text in place (deep nesting, long runs).
    Repeat { at: u16, len: u8, times: u8 },
    /// Insert a slice of another seed.
    Splice {
        at: u16,
        seed: u8,
        from: u16,
        len: u8,
    },
    /// Cut the text here.
    Truncate { at: u16 },
}

/// A seed and the edits applied to it, in order.
#[derive(Debug, TypeGenerator)]
pub(crate) struct Mutation {
    seed: u8,
    edits: Vec<Edit>,
}

/// Most edits applied to one seed.
const MAX_EDITS: usize = 8;

impl Mutation {
    /// The mutated text (invalid UTF-8 replaced, as every parser here reads text).
    pub(crate) fn apply(&self, seeds: &[Vec<u8>], tokens: &[&str]) -> String {
        let pick = |i: u8| &seeds[usize::from(i) % seeds.len()];
        let mut text = pick(self.seed).clone();
        for edit in self.edits.iter().take(MAX_EDITS) {
            let at = |p: u16| usize::from(p) % (text.len() + 1);
            match *edit {
                Edit::Byte { at: p, byte } => {
                    if !text.is_empty() {
                        let i = usize::from(p) % text.len();
                        text[i] = byte;
                    }
                }
                Edit::Delete { at: p, len } => {
                    let i = at(p);
                    let end = (i + usize::from(len) % 16 + 1).min(text.len());
                    text.drain(i..end);
                }
                Edit::Token { at: p, token } => {
                    let i = at(p);
                    let token = tokens[usize::from(token) % tokens.len()].as_bytes();
                    text.splice(i..i, token.iter().copied());
                }
                Edit::Repeat { at: p, len, times } => {
                    let i = at(p);
                    let end = (i + usize::from(len) % 32 + 1).min(text.len());
                    let slice = text[i..end].to_vec();
                    for _ in 0..usize::from(times) % 64 {
                        text.splice(end..end, slice.iter().copied());
                    }
                }
                Edit::Splice {
                    at: p,
                    seed,
                    from,
                    len,
                } => {
                    let other = pick(seed);
                    let from = usize::from(from) % (other.len() + 1);
                    let end = (from + usize::from(len)).min(other.len());
                    let i = at(p);
                    text.splice(i..i, other[from..end].iter().copied());
                }
                Edit::Truncate { at: p } => {
                    let i = at(p);
                    text.truncate(i);
                }
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    }
}

/// Tokens of JSON that mutations insert: structure, escapes, edge numbers.
pub(crate) const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\\\"",
    "\\u0000",
    "\\ud800",
    "\\udc00",
    "\\u00e9",
    "é",
    "\u{1F600}",
    "null",
    "true",
    "false",
    "0",
    "-0",
    "-1",
    "1e400",
    "-1e400",
    "1.5",
    "1e-400",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "9223372036854775807",
    "\"\"",
    "[]",
    "{}",
    " ",
    "\n",
    "\t",
    "\u{0}",
];

/// Counts the inputs a target ran and reports its rate when dropped (shown with
/// `--nocapture`: the execs/s the README quotes).
pub(crate) struct Rate {
    name: &'static str,
    start: Instant,
    pub(crate) runs: u64,
}

impl Rate {
    pub(crate) fn new(name: &'static str) -> Rate {
        Rate {
            name,
            start: Instant::now(),
            runs: 0,
        }
    }
}

impl Drop for Rate {
    fn drop(&mut self) {
        let secs = self.start.elapsed().as_secs_f64();
        eprintln!(
            "fuzz {}: {} inputs in {secs:.1} s ({:.0}/s)",
            self.name,
            self.runs,
            self.runs as f64 / secs.max(1e-9)
        );
    }
}

/// Declares the two tests of a target: `$raw` (random bytes after the seed corpus) and
/// `$mutated` (mutations of the seeds), both calling `$check(&str)`.
macro_rules! fuzz_target {
    ($raw:ident, $mutated:ident, $tokens:expr, $check:path) => {
        #[test]
        fn $raw() {
            let mut rate = $crate::fuzz::Rate::new(stringify!($raw));
            bolero::check!()
                .with_iterations($crate::fuzz::ITERATIONS)
                .with_test_time($crate::fuzz::TIME_CAP)
                .with_max_len($crate::fuzz::MAX_LEN)
                .for_each(|bytes: &[u8]| {
                    rate.runs += 1;
                    let text = String::from_utf8_lossy(bytes);
                    $crate::fuzz::alloc::bounded(&text, || $check(&text));
                });
        }

        #[test]
        fn $mutated() {
            let seeds = $crate::fuzz::seeds(module_path!(), stringify!($raw));
            let mut rate = $crate::fuzz::Rate::new(stringify!($mutated));
            bolero::check!()
                .with_type::<$crate::fuzz::Mutation>()
                .with_iterations($crate::fuzz::ITERATIONS)
                .with_test_time($crate::fuzz::TIME_CAP)
                .for_each(|m: &$crate::fuzz::Mutation| {
                    rate.runs += 1;
                    let text = m.apply(&seeds, $tokens);
                    $crate::fuzz::alloc::bounded(&text, || $check(&text));
                });
        }
    };
}
pub(crate) use fuzz_target;
