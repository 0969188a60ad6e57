//! The chat conformance suite (`roomrig check --dialect chat`): its cases, whose scenarios are
//! in `src/check/cases/chat-*.yaml`. Listeners join no room: every chat delivery names its
//! receiver, and the cases' own clients are judged on everything they receive.

use std::collections::HashMap;

use reference_server::fixtures::User;
use serde_json::Value;

use crate::dialect::suite::{case, input, Family, JoinStep, Listening, Suite};
use crate::oracle::rules::Level;

pub static SUITE: Suite = Suite {
    cases: &[
        case(
            "chat/auth-s/codes",
            Level::Must,
            "seed 001 §事件接口 room \"/\" (auth-c / auth-s codes -1, 0, 1)",
            "an unknown session is answered auth-s {code: 0}, the user's own session {code: 1}",
            include_str!("../../check/cases/chat-auth.yaml"),
        ),
        case(
            "chat/receivefsmg/friend-and-group-delivery",
            Level::Must,
            "seed 001 §事件接口 rooms \"/friend\" and \"/group\"",
            "friend messages reach every connection of the target, group messages every online member, nobody else; time and history answer",
            include_str!("../../check/cases/chat-messages.yaml"),
        ),
        case(
            "chat/saoff/offline-exactly-once",
            Level::Must,
            "seed 001 §通信模型 (离线数据) and §系统事件 (离线消息同步)",
            "messages sent while the target had no connection come in its next saoff, once, and never again",
            include_str!("../../check/cases/chat-offline.yaml"),
        ),
        case(
            "chat/saoff/survives-restart",
            Level::Must,
            "seed 001 §通信模型 (离线数据) and §系统事件 (离线消息同步); not lost across a restart of the server (a decision: MUST)",
            "messages kept for an offline user survive a restart of the server: they come in its next saoff after it, once (check's own server only; skipped against a target)",
            include_str!("../../check/cases/chat-restart.yaml"),
        ),
        case(
            "chat/sendfsmg/no-effect-before-auth-or-forged",
            Level::Must,
            "seed 001 §通信模型 (得到验证后即可使用: the socket system is used once verified); `from` is the sender",
            "friend and group messages before auth-c, and one with a forged `from`, reach nobody",
            include_str!("../../check/cases/chat-refused.yaml"),
        ),
        case(
            "chat/receivefsmg/every-device-presence-once",
            Level::Must,
            "seed 001 §事件接口 room \"/friend\" (receivefsmg to the user `to`); presence on the first connection and the last disconnect is a decision (SHOULD)",
            "a friend message reaches both connections of a user; a second device's arrival and departure send no fonline/foffline",
            include_str!("../../check/cases/chat-second-device.yaml"),
        ),
        case(
            "chat/connection/dead-heartbeat-closed",
            Level::Must,
            "common rule: Engine.IO heartbeat; foffline on the last disconnect (dead heartbeat included) is a decision (SHOULD)",
            "a user whose heartbeat stops is closed in time, and its friend is told foffline",
            include_str!("../../check/cases/chat-heartbeat.yaml"),
        ),
    ],
    families: &[Family {
        id: "chat/robustness/hostile-requests",
        description: "after {input}, everyone else (and a later wave) is served",
        template: include_str!("../../check/cases/chat-hostile-input.yaml"),
        inputs: &[
            input(
                "unknown-namespace",
                "a CONNECT to the namespace /nope",
                &[r#"send: { frame: "40/nope,", lenient: true }"#],
            ),
            input(
                "friend-message-on-root",
                "sendfsmg on / (its namespace is /friend)",
                &[r#"send: { event: sendfsmg, args: [ { to: "{mate}", msg: "x" } ], lenient: true }"#],
            ),
            input(
                "offline-sync-on-friend",
                "caoff on /friend (its namespace is /server)",
                &[r#"send: { frame: '42/friend,["caoff",{}]', lenient: true }"#],
            ),
            input(
                "auth-on-server",
                "auth-c on /server (its namespace is /)",
                &[r#"send: { frame: '42/server,["auth-c",{"sid":"{token}"}]', lenient: true }"#],
            ),
            input(
                "group-__proto__",
                "sendfsmg on /group to the group __proto__",
                &[r#"send: { frame: '42/group,["sendfsmg",{"to":"__proto__","msg":"x"}]', lenient: true }"#],
            ),
            input(
                "history-__proto__",
                "chistory of the group __proto__ with a huge len",
                &[r#"send: { frame: '42/server,["chistory",{"to":"__proto__","type":"group","len":1e300}]', lenient: true }"#],
            ),
            input(
                "friend-message-over-1mb",
                "a 2 MB friend message",
                &[r#"send: { frame: '42/friend,["sendfsmg",{"to":"{mate}","msg":"{pad:2000000}"}]', lenient: true }"#],
            ),
            input(
                "group-message-over-1mb",
                "a 2 MB group message",
                &[r#"send: { frame: '42/group,["sendfsmg",{"to":"g1","msg":"{pad:2000000}"}]', lenient: true }"#],
            ),
        ],
    }],
    listening: Listening {
        room,
        join,
        foreign,
    },
};

fn room(_user: &User, _fixture_room: Option<&str>, _role: &str) -> Option<String> {
    None
}

fn join(_token: &str, _username: &str, _room: Option<&str>) -> Vec<JoinStep> {
    Vec::new()
}

fn foreign(
    _event: &str,
    _payload: &Value,
    _room: Option<&str>,
    _homes: &HashMap<u64, u64>,
) -> bool {
    false
}
