//! The scenario parser, as `roomrig run` reads a file: `${VAR}` expansion, then the YAML, then
//! the checks of the whole file; and the schedule a parsed scenario plans.
//!
//! Properties: every refusal is an error value; one that points into the file names a line
//! and a column inside it (1-based); a scenario that parses plans no more arrivals than there
//! are users, in time order, and builds its schedule within the allocation bound however large
//! its numbers.

use super::fuzz_target;
use crate::scenario::{Scenario, ScenarioError};
use crate::scenario_source::Source;
use crate::schedule;

const TOKENS: &[&str] = &[
    "\n",
    "\n  ",
    "\n    ",
    "\n- ",
    ": ",
    "- ",
    "#",
    "'",
    "\"",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a ",
    "*a",
    "<<: *a",
    "!!str ",
    "!!binary ",
    "? ",
    "|\n  ",
    ">\n  ",
    "~",
    "null",
    ".inf",
    "-.inf",
    ".nan",
    "1e12",
    "1e308",
    "-1",
    "0",
    "18446744073709551615",
    "18446744073709551616",
    "9999999999999999999s",
    "0s",
    "1ms",
    "10s",
    "1h",
    "${ROOMS}",
    "${NOPE}",
    "${NOPE:-3}",
    "${MULTI}",
    "$$",
    "${",
    "\t",
    "\u{feff}",
    "é",
    "dialect: ",
    "dorm",
    "lobby",
    "phases:",
    "duration: ",
    "arrival_rate: ",
    "ramp_to: ",
    "clients:",
    "weight: ",
    "count: ",
    "flow:",
    "users:",
    "generate: ",
    "thresholds:",
    "seed: ",
    "deadline: ",
];

fuzz_target!(scenario, scenario_mutated, TOKENS, check);

/// The environment a fuzzed scenario sees: a few variables, one of them spanning lines.
fn lookup(name: &str) -> Option<String> {
    match name {
        "ROOMS" => Some("4".into()),
        "ROOMRIG_TEST_DURATION" => Some("2s".into()),
        "EMPTY" => Some(String::new()),
        "MULTI" => Some("1\nclients: []".into()),
        _ => None,
    }
}

/// Users a fuzzed run may connect as.
const USERS: usize = 500;

pub(crate) fn check(text: &str) {
    let lines = text.lines().count() as u64 + 1;
    let located = |line: u64, column: u64, message: &str| {
        assert!(
            (1..=lines).contains(&line) && column >= 1,
            "{line}:{column} is not a place in the {lines}-line file: {message}"
        );
    };
    let mut source = Source::new(text.to_string());
    if let Err(e) = crate::env_expand::expand(&mut source, lookup) {
        let (line, column) = crate::scenario_source::line_column(text, e.offset);
        return located(line, column, &e.message);
    }
    let scenario = match Scenario::parse_source(&source, "fuzz.yaml") {
        Ok(s) => s,
        Err(ScenarioError::Invalid {
            line,
            column,
            message,
            ..
        }) => return located(line, column, &message),
        Err(_) => return,
    };
    let arrivals = schedule::arrivals(&scenario, USERS);
    assert!(arrivals.len() <= USERS);
    assert!(
        arrivals.windows(2).all(|w| w[0].at <= w[1].at),
        "arrivals out of time order"
    );
    assert!(arrivals.iter().all(|a| a.group < scenario.clients.len()));
    let _ = schedule::plans_nobody(&scenario, USERS);
    let _ = schedule::warnings(&scenario, USERS);
    let _ = schedule::expected_end(&scenario, &arrivals);
    let _ = scenario.deadline();
}
