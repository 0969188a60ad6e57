//! The chat dialect (seed 001) over real sockets on loopback: a raw websocket client that
//! opens `/`, `/friend`, `/group` and `/server` on one Engine.IO connection (EIO 3 and 4), for
//! authentication, friend and group delivery to every connection, presence, offline messages
//! kept once (also across a restart on a file store), history, hostile input and the defect
//! switches.

mod common;

use std::time::Duration;

use common::{RawWs, TestServer};
use reference_server::faults::Fault;
use reference_server::fixtures::Fixtures;
use reference_server::{chat, ServerConfig};
use serde_json::{json, Value};

const QUIET: Duration = Duration::from_millis(200);
const WAIT: Duration = Duration::from_secs(3);

/// A chat server with `users` generated users in rooms of 2 (friends: roommates and
/// neighbours; groups `g1`, `g2`, ...), its store in memory unless `db` names a file.
fn server(users: u64, faults: Vec<Fault>, db: Option<&str>) -> TestServer {
    let mut config = ServerConfig::new(
        chat::DIALECT,
        "127.0.0.1:0".parse().unwrap(),
        Fixtures::generate(users, 2),
    );
    config.faults = faults;
    if let Some(db) = db {
        config.chat_db = db.to_string();
    }
    TestServer::start(config)
}

/// One Engine.IO connection with the four chat namespaces.
struct Chat {
    raw: RawWs,
}

/// An event as received: (namespace, name, first argument).
type Got = (String, String, Value);

impl Chat {
    async fn connect(s: &TestServer, eio: u8) -> Chat {
        let (mut raw, _) = RawWs::open(&s.ws_url(eio), eio).await;
        if eio == 4 {
            raw.send("40").await;
        }
        for ns in ["/friend", "/group", "/server"] {
            raw.send(&format!("40{ns},")).await;
        }
        let mut chat = Chat { raw };
        // One CONNECT answer per namespace (EIO3: `/` is connected unasked).
        let mut connected = 0;
        while connected < 4 {
            let frame = chat.raw.next_text(WAIT).await.expect("CONNECT answers");
            if frame.starts_with("40") {
                connected += 1;
            }
        }
        chat
    }

    async fn emit(&mut self, ns: &str, event: &str, data: Value) {
        let prefix = if ns == "/" {
            String::new()
        } else {
            format!("{ns},")
        };
        let frame = format!("42{prefix}{}", json!([event, data]));
        self.raw.send(&frame).await;
    }

    /// Authenticates as generated user `i` and reads `auth-s`.
    async fn auth(&mut self, s: &TestServer, i: u64) -> Value {
        self.emit("/", "auth-c", json!({"sid": s.token(i)})).await;
        let (ns, name, data) = self.next().await.expect("auth-s");
        assert_eq!((ns.as_str(), name.as_str()), ("/", "auth-s"), "{data}");
        data
    }

    async fn next_within(&mut self, wait: Duration) -> Option<Got> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.checked_duration_since(tokio::time::Instant::now())?;
            let text = self.raw.next_text(left).await?;
            let Some(rest) = text.strip_prefix("42") else {
                continue;
            };
            let (ns, json) = match rest.strip_prefix('/') {
                Some(r) => {
                    let (ns, json) = r.split_once(',').expect("namespace ends with a comma");
                    (format!("/{ns}"), json)
                }
                None => ("/".to_string(), rest),
            };
            let v: Vec<Value> = serde_json::from_str(json).expect("event array");
            return Some((
                ns,
                v[0].as_str().unwrap().to_string(),
                v.get(1).cloned().unwrap_or(Value::Null),
            ));
        }
    }

    async fn next(&mut self) -> Option<Got> {
        self.next_within(WAIT).await
    }

    /// Waits until the server has handled this user's friend message `msg` to `to` (it is in
    /// their history), so that what another connection does next is ordered after it: events
    /// of two connections are handled in any order.
    async fn until_handled(&mut self, to: &str, msg: &str) {
        loop {
            self.emit(
                "/server",
                "chistory",
                json!({"to": to, "type": "friend", "len": 1}),
            )
            .await;
            let (_, name, data) = self.next().await.expect("shistory");
            if name == "shistory" && data["data"][0]["msg"] == msg {
                return;
            }
        }
    }

    /// Everything arriving within [`QUIET`].
    async fn drain(&mut self) -> Vec<Got> {
        let mut got = Vec::new();
        while let Some(e) = self.next_within(QUIET).await {
            got.push(e);
        }
        got
    }

    async fn close(mut self) {
        self.raw.ws.close(None).await.ok();
    }
}

fn names(got: &[Got]) -> Vec<(&str, &str)> {
    got.iter()
        .map(|(ns, n, _)| (ns.as_str(), n.as_str()))
        .collect()
}

#[test]
fn auth_codes_and_nothing_before_auth_on_both_generations() {
    let s = server(4, vec![], None);
    for eio in [3, 4] {
        s.block_on(async {
            let mut a = Chat::connect(&s, eio).await;
            let mut b = Chat::connect(&s, eio).await;
            assert_eq!(b.auth(&s, 2).await, json!({"code": 1}));
            // Before auth: refused on the asking namespace, delivered to nobody.
            a.emit(
                "/friend",
                "sendfsmg",
                json!({"from": "user1", "to": "user2", "msg": "x"}),
            )
            .await;
            let (ns, name, data) = a.next().await.unwrap();
            assert_eq!((ns.as_str(), name.as_str()), ("/friend", "err"));
            assert_eq!(data["error"], chat::errors::NOT_AUTHENTICATED);
            a.emit("/server", "caoff", json!({})).await;
            assert_eq!(a.next().await.unwrap().1, "err");
            a.emit("/", "auth-c", json!({"sid": "nope"})).await;
            assert_eq!(a.next().await.unwrap().2, json!({"code": 0}));
            a.emit("/", "auth-c", json!("__proto__")).await;
            assert_eq!(a.next().await.unwrap().2, json!({"code": 0}));
            assert_eq!(b.drain().await, vec![], "eio {eio}");
            // user1's auth tells its online friend user2.
            assert_eq!(a.auth(&s, 1).await, json!({"code": 1}));
            let got = b.drain().await;
            assert_eq!(names(&got), vec![("/friend", "fonline")], "eio {eio}");
            assert_eq!(
                got[0].2,
                json!({"from": "user1", "to": "user2", "msg": "online"})
            );
            // Authenticating again as another user is refused.
            a.emit("/", "auth-c", json!({"sid": s.token(3)})).await;
            assert_eq!(
                a.next().await.unwrap().2["error"],
                chat::errors::ALREADY_AUTHENTICATED
            );
            a.close().await;
            assert_eq!(names(&b.drain().await), vec![("/friend", "foffline")]);
            b.close().await;
        });
    }
}

#[test]
fn friend_messages_reach_every_connection_of_the_target_and_nobody_else() {
    let s = server(4, vec![], None);
    s.block_on(async {
        let mut a = Chat::connect(&s, 4).await;
        a.auth(&s, 1).await;
        let mut b1 = Chat::connect(&s, 3).await;
        b1.auth(&s, 2).await;
        let mut b2 = Chat::connect(&s, 4).await;
        b2.auth(&s, 2).await;
        let mut c = Chat::connect(&s, 4).await;
        c.auth(&s, 3).await;
        a.drain().await;
        b1.drain().await;
        b2.drain().await;
        c.drain().await;
        a.emit(
            "/friend",
            "sendfsmg",
            json!({"from": "user1", "to": "user2", "msg": "hi"}),
        )
        .await;
        let expected = (
            "/friend".to_string(),
            "receivefsmg".to_string(),
            json!({"from": "user1", "to": "user2", "msg": "hi"}),
        );
        assert_eq!(b1.drain().await, vec![expected.clone()]);
        assert_eq!(b2.drain().await, vec![expected]);
        assert_eq!(c.drain().await, vec![]);
        assert_eq!(a.drain().await, vec![]);
        // Forged `from`, a non-friend, an unknown user, a huge text: refused, no effect.
        for (payload, error) in [
            (
                json!({"from": "user3", "to": "user2", "msg": "x"}),
                chat::errors::FORGED_FROM,
            ),
            (
                json!({"to": "user4", "msg": "x"}),
                chat::errors::NOT_A_FRIEND,
            ),
            (
                json!({"to": "__proto__", "msg": "x"}),
                chat::errors::NO_SUCH_USER,
            ),
            (
                json!({"to": "user2", "msg": 5}),
                chat::errors::INVALID_PAYLOAD,
            ),
            (
                json!({"to": "user2", "msg": "x".repeat(chat::MAX_MSG_BYTES + 1)}),
                chat::errors::MESSAGE_TOO_LONG,
            ),
        ] {
            a.emit("/friend", "sendfsmg", payload.clone()).await;
            let (_, name, data) = a.next().await.unwrap();
            assert_eq!(
                (name.as_str(), data["error"].as_str()),
                ("err", Some(error)),
                "{payload}"
            );
        }
        assert_eq!(b1.drain().await, vec![]);
        assert_eq!(b2.drain().await, vec![]);
        // The second device closing is no foffline; the last one is.
        b2.close().await;
        assert_eq!(a.drain().await, vec![]);
        b1.close().await;
        assert_eq!(names(&a.drain().await), vec![("/friend", "foffline")]);
    });
}

#[test]
fn group_messages_reach_online_members_and_are_kept_once_for_the_others() {
    // Users 1..4 in rooms of 2: group g1 = {user1, user2}.
    let s = server(4, vec![], None);
    s.block_on(async {
        let mut a = Chat::connect(&s, 4).await;
        a.auth(&s, 1).await;
        for i in 0..3 {
            a.emit(
                "/group",
                "sendfsmg",
                json!({"to": "g1", "msg": format!("m{i}")}),
            )
            .await;
            a.emit(
                "/friend",
                "sendfsmg",
                json!({"to": "user2", "msg": format!("f{i}")}),
            )
            .await;
        }
        let got = a.drain().await;
        assert_eq!(got.len(), 3, "the sender's own copies: {got:?}");
        assert!(got
            .iter()
            .all(|(ns, n, _)| ns == "/group" && n == "receivefsmg"));
        a.emit("/group", "sendfsmg", json!({"to": "g2", "msg": "x"}))
            .await;
        assert_eq!(
            a.next().await.unwrap().2["error"],
            chat::errors::NOT_A_MEMBER
        );
        a.emit("/group", "sendfsmg", json!({"to": "__proto__", "msg": "x"}))
            .await;
        assert_eq!(
            a.next().await.unwrap().2["error"],
            chat::errors::NO_SUCH_GROUP
        );

        let mut b = Chat::connect(&s, 3).await;
        b.auth(&s, 2).await;
        b.emit("/server", "caoff", json!({"from": "user2"})).await;
        let (ns, name, saoff) = b.next().await.unwrap();
        assert_eq!((ns.as_str(), name.as_str()), ("/server", "saoff"));
        assert_eq!(saoff["from"], "off-line");
        assert_eq!(saoff["to"], "user2");
        let texts = |list: &Value| -> Vec<String> {
            list.as_array()
                .unwrap()
                .iter()
                .map(|m| m["msg"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(texts(&saoff["flogs"]), ["f0", "f1", "f2"]);
        assert_eq!(texts(&saoff["glogs"]), ["m0", "m1", "m2"]);
        // Handed over once.
        b.emit("/server", "caoff", json!({})).await;
        let (_, _, again) = b.next().await.unwrap();
        assert_eq!(
            (again["flogs"].clone(), again["glogs"].clone()),
            (json!([]), json!([]))
        );

        // History: the newest `len`, oldest first; time.
        b.emit(
            "/server",
            "chistory",
            json!({"id": "user2", "to": "user1", "type": "friend", "len": 2}),
        )
        .await;
        let (_, name, h) = b.next().await.unwrap();
        assert_eq!(name, "shistory");
        assert_eq!(texts(&h["data"]), ["f1", "f2"]);
        b.emit(
            "/server",
            "chistory",
            json!({"to": "g1", "type": "group", "len": 10}),
        )
        .await;
        assert_eq!(
            texts(&b.next().await.unwrap().2["data"]),
            ["m0", "m1", "m2"]
        );
        b.emit("/server", "ctime", json!({})).await;
        let (_, name, t) = b.next().await.unwrap();
        assert_eq!(name, "stime");
        assert!(common::is_rfc3339_millis_utc(&t["time"]), "{t}");
    });
}

#[test]
fn hostile_input_on_every_namespace_leaves_the_others_served() {
    let s = server(4, vec![], None);
    s.block_on(async {
        let mut a = Chat::connect(&s, 4).await;
        a.auth(&s, 1).await;
        // An unknown namespace is refused with CONNECT_ERROR.
        a.raw.send("40/nope,").await;
        let refused = a.raw.next_text(WAIT).await.unwrap();
        assert!(refused.starts_with("44/nope,"), "{refused}");
        // Events on the wrong namespace.
        for (ns, event) in [
            ("/", "sendfsmg"),
            ("/friend", "caoff"),
            ("/server", "auth-c"),
            ("/group", "__proto__"),
        ] {
            a.emit(ns, event, json!({"to": "user2", "msg": "x"})).await;
            let (got_ns, name, data) = a.next().await.unwrap();
            assert_eq!(
                (got_ns.as_str(), name.as_str()),
                (ns, "err"),
                "{ns} {event}"
            );
            assert_eq!(data["error"], chat::errors::UNKNOWN_EVENT);
        }
        // A 2 MB frame is over maxPayload: that connection is closed, nobody else is affected.
        let mut big = Chat::connect(&s, 4).await;
        big.auth(&s, 3).await;
        // The server may close it while the frame is still being written: the send may fail.
        let frame = format!(
            "42/friend,{}",
            json!(["sendfsmg", {"to": "user2", "msg": "x".repeat(2_000_000)}])
        );
        let _ = big.raw.try_send(&frame).await;
        assert_eq!(big.next_within(Duration::from_secs(2)).await, None);
        let mut b = Chat::connect(&s, 3).await;
        b.auth(&s, 2).await;
        a.drain().await;
        a.emit(
            "/friend",
            "sendfsmg",
            json!({"to": "user2", "msg": "still"}),
        )
        .await;
        assert_eq!(b.next().await.unwrap().2["msg"], "still");
    });
}

#[test]
fn a_thousand_kept_messages_survive_a_restart_on_a_file_store_and_come_once() {
    let dir = std::env::temp_dir().join(format!("roomrig-chat-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("chat.sqlite3");
    let db = db.to_str().unwrap();
    {
        let s = server(4, vec![], Some(db));
        s.block_on(async {
            let mut a = Chat::connect(&s, 4).await;
            a.auth(&s, 1).await;
            for i in 0..1000 {
                a.emit(
                    "/friend",
                    "sendfsmg",
                    json!({"to": "user2", "msg": format!("k{i}")}),
                )
                .await;
            }
            // The last one is kept once this answer comes (events are handled in order).
            a.emit("/server", "ctime", json!({})).await;
            assert_eq!(a.next().await.unwrap().1, "stime");
        });
    }
    let s = server(4, vec![], Some(db));
    s.block_on(async {
        let mut b = Chat::connect(&s, 3).await;
        b.auth(&s, 2).await;
        b.emit("/server", "caoff", json!({})).await;
        let (_, _, saoff) = b.next().await.unwrap();
        let got: Vec<&str> = saoff["flogs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["msg"].as_str().unwrap())
            .collect();
        let expected: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
        assert_eq!(got, expected);
        // Once: a later caoff finds nothing.
        b.emit("/server", "caoff", json!({})).await;
        assert_eq!(b.next().await.unwrap().2["flogs"], json!([]));
    });
    drop(s);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_unwritable_store_is_a_clear_start_error() {
    let mut config = ServerConfig::new(
        chat::DIALECT,
        "127.0.0.1:0".parse().unwrap(),
        Fixtures::generate(2, 2),
    );
    config.chat_db = "/nonexistent-dir/x/chat.sqlite3".into();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt.block_on(reference_server::start(config)).unwrap_err();
    assert!(
        err.to_string().contains("cannot open the chat store"),
        "{err}"
    );
}

/// Each defect switch shows its misbehaviour on the wire (the checker catching each one is
/// proved in the driver's tests).
#[test]
fn defect_switches_misbehave_as_documented() {
    // Lost: nothing kept for an offline user.
    let s = server(4, vec![Fault::ChatLoseOffline], None);
    s.block_on(async {
        let mut a = Chat::connect(&s, 4).await;
        a.auth(&s, 1).await;
        a.emit("/friend", "sendfsmg", json!({"to": "user2", "msg": "lost"}))
            .await;
        a.until_handled("user2", "lost").await;
        let mut b = Chat::connect(&s, 4).await;
        b.auth(&s, 2).await;
        b.emit("/server", "caoff", json!({})).await;
        assert_eq!(b.next().await.unwrap().2["flogs"], json!([]));
    });
    // Twice: a second caoff repeats them.
    let s = server(4, vec![Fault::ChatOfflineTwice], None);
    s.block_on(async {
        let mut a = Chat::connect(&s, 4).await;
        a.auth(&s, 1).await;
        a.emit(
            "/friend",
            "sendfsmg",
            json!({"to": "user2", "msg": "again"}),
        )
        .await;
        a.until_handled("user2", "again").await;
        let mut b = Chat::connect(&s, 4).await;
        b.auth(&s, 2).await;
        for _ in 0..2 {
            b.emit("/server", "caoff", json!({})).await;
            assert_eq!(b.next().await.unwrap().2["flogs"][0]["msg"], "again");
        }
    });
    // Misdelivered: user2's message goes to user3.
    let s = server(4, vec![Fault::ChatMisdeliver], None);
    s.block_on(async {
        let mut a = Chat::connect(&s, 4).await;
        a.auth(&s, 1).await;
        let mut c = Chat::connect(&s, 4).await;
        c.auth(&s, 3).await;
        a.emit(
            "/friend",
            "sendfsmg",
            json!({"to": "user2", "msg": "wrong"}),
        )
        .await;
        assert_eq!(c.next().await.unwrap().2["to"], "user2");
    });
    // Presence on every connection: a second device announces again.
    let s = server(4, vec![Fault::ChatPresenceEveryConnection], None);
    s.block_on(async {
        let mut a = Chat::connect(&s, 4).await;
        a.auth(&s, 1).await;
        let mut b1 = Chat::connect(&s, 4).await;
        b1.auth(&s, 2).await;
        let mut b2 = Chat::connect(&s, 4).await;
        b2.auth(&s, 2).await;
        assert_eq!(names(&a.drain().await), vec![("/friend", "fonline"); 2]);
    });
    // Accepted before auth, as whoever `from` names.
    let s = server(4, vec![Fault::ChatAcceptBeforeAuth], None);
    s.block_on(async {
        let mut b = Chat::connect(&s, 4).await;
        b.auth(&s, 2).await;
        let mut x = Chat::connect(&s, 4).await;
        x.emit(
            "/friend",
            "sendfsmg",
            json!({"from": "user1", "to": "user2", "msg": "sneak"}),
        )
        .await;
        assert_eq!(b.next().await.unwrap().2["msg"], "sneak");
    });
    // History newest first.
    let s = server(4, vec![Fault::ChatHistoryUnordered], None);
    s.block_on(async {
        let mut a = Chat::connect(&s, 4).await;
        a.auth(&s, 1).await;
        for m in ["1", "2"] {
            a.emit("/friend", "sendfsmg", json!({"to": "user2", "msg": m}))
                .await;
        }
        a.emit(
            "/server",
            "chistory",
            json!({"to": "user2", "type": "friend", "len": 2}),
        )
        .await;
        assert_eq!(a.next().await.unwrap().2["data"][0]["msg"], "2");
    });
}
