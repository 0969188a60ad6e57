//! A dialect's conformance suite as data (`roomrig check`): the cases written out, the
//! robustness cases generated one per hostile input, and how the suite's listeners sit in a
//! room of the dialect. `crate::check` runs them; each dialect lists its own next to its table
//! (`src/dialect/NAME/suite.rs`), its scenarios in `src/check/cases/`.

use std::collections::HashMap;

use reference_server::fixtures::User;
use serde_json::Value;

use crate::oracle::rules::Level;

/// Everything `roomrig check` needs of one dialect.
pub struct Suite {
    /// The cases written out one by one, in suite order.
    pub cases: &'static [Case],
    /// Then the robustness cases, generated one per hostile input.
    pub families: &'static [Family],
    pub listening: Listening,
}

/// How the suite's listeners (a bystander in each room next to a case's, the watch against a
/// target) join a room of this dialect and tell a room event of another room: a leak.
pub struct Listening {
    /// The room a listener of fixture user `user` joins, named as the dialect's requests and
    /// events name it (`fixture_room`: the name of the user's fixture room, if any; `role`:
    /// "bystander" or "watch"); `None`: it joins no room.
    pub room: fn(user: &User, fixture_room: Option<&str>, role: &str) -> Option<String>,
    /// The requests that put a listener in `room`, in order.
    pub join: fn(token: &str, username: &str, room: Option<&str>) -> Vec<JoinStep>,
    /// Whether `event` (first argument `payload`) belongs to a room other than the listener's
    /// `room` (`None`: the listener joined nothing); `homes` maps a user id to its fixture room.
    pub foreign:
        fn(event: &str, payload: &Value, room: Option<&str>, homes: &HashMap<u64, u64>) -> bool,
}

/// One request of a listener's join.
pub struct JoinStep {
    pub event: &'static str,
    pub args: Vec<Value>,
    /// The events that answer it (a reply or an error); others arriving meanwhile are judged.
    pub answers: &'static [&'static str],
}

/// One case of a suite.
#[derive(Clone)]
pub struct Case {
    /// Stable id: `<dialect>/<event>/<what>`, for a generated robustness case
    /// `<dialect>/robustness/<family>/<input>`.
    pub id: &'static str,
    pub level: Level,
    pub description: &'static str,
    /// Where the rule comes from.
    pub section: &'static str,
    /// The scenario (YAML) the case runs.
    pub scenario: &'static str,
    /// The one hostile request of a robustness case, named when the server dies after it.
    pub trigger: Option<&'static str>,
}

/// A case written out.
pub const fn case(
    id: &'static str,
    level: Level,
    section: &'static str,
    description: &'static str,
    scenario: &'static str,
) -> Case {
    Case {
        id,
        level,
        description,
        section,
        scenario,
        trigger: None,
    }
}

/// A robustness case that sends one hostile request, `trigger`.
pub const fn hostile(
    id: &'static str,
    description: &'static str,
    trigger: &'static str,
    scenario: &'static str,
) -> Case {
    Case {
        id,
        level: Level::Must,
        description,
        section: "common rule: keep serving every other client",
        scenario,
        trigger: Some(trigger),
    }
}

/// One hostile input of a robustness family: the last segment of its case id, the request as
/// the evidence names it when the server dies after it, and the scenario steps that send it.
pub struct Input {
    pub name: &'static str,
    pub trigger: &'static str,
    pub steps: &'static [&'static str],
}

/// Robustness cases generated from a template scenario, one case per hostile input, so that a
/// server that dies on one input is still judged on the others and the case id names it.
pub struct Family {
    pub id: &'static str,
    /// `{input}` stands for the input's trigger.
    pub description: &'static str,
    /// The line `- HOSTILE` is replaced by the input's steps.
    pub template: &'static str,
    pub inputs: &'static [Input],
}

pub const fn input(
    name: &'static str,
    trigger: &'static str,
    steps: &'static [&'static str],
) -> Input {
    Input {
        name,
        trigger,
        steps,
    }
}

impl Family {
    /// One case per input, in input order.
    pub fn cases(&self) -> impl Iterator<Item = Case> + '_ {
        let (_, indent) = self
            .template
            .split_once("- HOSTILE\n")
            .and_then(|(head, _)| head.rsplit_once('\n'))
            .unwrap_or_else(|| panic!("template of {} has no `- HOSTILE` line", self.id));
        let placeholder = format!("{indent}- HOSTILE\n");
        self.inputs.iter().map(move |i| {
            let steps: String = i
                .steps
                .iter()
                .map(|step| format!("{indent}- {step}\n"))
                .collect();
            // Generated once per process (check's case list is built once), so leaking is
            // bounded.
            let leak = |s: String| -> &'static str { s.leak() };
            Case {
                id: leak(format!("{}/{}", self.id, i.name)),
                level: Level::Must,
                description: leak(self.description.replace("{input}", i.trigger)),
                section: "common rule: keep serving every other client",
                scenario: leak(self.template.replace(&placeholder, &steps)),
                trigger: Some(i.trigger),
            }
        })
    }
}

/// Frames that are not valid Socket.IO: `event` is an event of the dialect, then a `42` frame
/// with an object payload, an unterminated request (as shown, as sent) and a 2 MB event frame.
macro_rules! malformed_frames {
    ($event:literal, $object:literal, $unterminated_shown:literal, $unterminated:literal, $huge:literal) => {
        &[
            $crate::dialect::suite::input(
                "event-without-payload",
                "the frame `42`",
                &[r#"send: { frame: "42", lenient: true }"#],
            ),
            $crate::dialect::suite::input(
                "unterminated-array",
                "the frame `42[`",
                &[r#"send: { frame: "42[", lenient: true }"#],
            ),
            $crate::dialect::suite::input(
                "unterminated-event",
                concat!("the frame `42[\"", $event, "\"` (unterminated)"),
                &[concat!(
                    r#"send: { frame: "42[\""#,
                    $event,
                    r#"\"", lenient: true }"#
                )],
            ),
            $crate::dialect::suite::input(
                "object-not-array",
                "a `42` frame whose payload is an object",
                &[concat!(
                    r#"send: { frame: ""#,
                    $object,
                    r#"", lenient: true }"#
                )],
            ),
            $crate::dialect::suite::input(
                "empty-array",
                "the frame `42[]`",
                &[r#"send: { frame: "42[]", lenient: true }"#],
            ),
            $crate::dialect::suite::input(
                "null-event-name",
                "the frame `42[null]`",
                &[r#"send: { frame: "42[null]", lenient: true }"#],
            ),
            $crate::dialect::suite::input(
                "number-event-name",
                "the frame `42[1,2,3]`",
                &[r#"send: { frame: "42[1,2,3]", lenient: true }"#],
            ),
            $crate::dialect::suite::input(
                "bare-message-packet",
                "the frame `4`",
                &[r#"send: { frame: "4", lenient: true }"#],
            ),
            $crate::dialect::suite::input(
                "unknown-packet-type",
                "the frame `49[]`",
                &[r#"send: { frame: "49[]", lenient: true }"#],
            ),
            $crate::dialect::suite::input(
                "unknown-namespace",
                "an event to the namespace /no-such-namespace",
                &[concat!(
                    r#"send: { frame: "42/no-such-namespace,[\""#,
                    $event,
                    r#"\",{}]", lenient: true }"#
                )],
            ),
            $crate::dialect::suite::input(
                "binary-without-attachment",
                "a binary event (`451-`) whose attachment never comes",
                &[concat!(
                    r#"send: { frame: "451-[\""#,
                    $event,
                    r#"\",{\"_placeholder\":true,\"num\":0}]", lenient: true }"#
                )],
            ),
            $crate::dialect::suite::input(
                "unknown-engine-packet",
                "the Engine.IO frame `9`",
                &[r#"send: { frame: "9", lenient: true }"#],
            ),
            $crate::dialect::suite::input(
                "empty-frame",
                "an empty frame",
                &[r#"send: { frame: "", lenient: true }"#],
            ),
            $crate::dialect::suite::input(
                "unterminated-request",
                concat!("the unterminated frame `", $unterminated_shown, "`"),
                &[concat!(
                    r#"send: { frame: ""#,
                    $unterminated,
                    r#"", lenient: true }"#
                )],
            ),
            $crate::dialect::suite::input(
                "over-1mb",
                "a 2 MB event frame",
                &[concat!(
                    r#"send: { frame: ""#,
                    $huge,
                    r#"", lenient: true }"#
                )],
            ),
        ]
    };
}

pub(crate) use malformed_frames;
