//! The lobby dialect (seed 004) over real sockets on loopback: rust_socketio (EIO4) clients for
//! every row of the protocol table, raw websocket frames (EIO3 and EIO4) for socket ids, hostile
//! arguments and ordering.
//!
//! Recipients are checked both ways: `take(n, QUIET)` returns the `n` expected events plus
//! anything else that arrives within `QUIET`, so a surplus event fails the comparison.

mod common;

use std::time::Duration;

use common::{RawWs, SioClient, TestServer, WAIT};
use futures_util::SinkExt as _;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const QUIET: Duration = Duration::from_millis(250);

fn ev(name: &str, data: Value) -> (String, Value) {
    (name.to_string(), data)
}

fn err(reason: &str) -> (String, Value) {
    ev("err", json!(reason))
}

/// Asserts that `clients` receive nothing within [`QUIET`].
fn silent(clients: &[&SioClient]) {
    std::thread::sleep(QUIET);
    for (i, c) in clients.iter().enumerate() {
        let got = c.drain(Duration::from_millis(1));
        assert!(got.is_empty(), "client #{i} got unexpected events {got:?}");
    }
}

/// Connects one client per name, then logs them in one by one; every earlier client sees each
/// later login (`otherLogedin`) and each login is answered with the running `numusers`.
fn logged_in(server: &TestServer, names: &[&str]) -> Vec<SioClient> {
    let clients: Vec<SioClient> = names
        .iter()
        .map(|_| SioClient::connect(&server.url))
        .collect();
    for (i, name) in names.iter().enumerate() {
        clients[i].emit("login", json!(name));
        let expected = json!({"username": name, "numusers": i + 1});
        assert_eq!(clients[i].expect("logedin"), expected);
        for (j, other) in clients.iter().enumerate() {
            if j != i {
                assert_eq!(other.expect("otherLogedin"), expected, "client {j}");
            }
        }
    }
    clients
}

fn join(c: &SioClient, room: &str, max_user: Option<Value>) -> Value {
    let mut args = vec![json!(room)];
    args.extend(max_user);
    c.emit_args("joinRoom", args);
    c.expect("joinedRoom")
}

#[test]
fn login_is_announced_to_every_other_socket() {
    let server = TestServer::lobby(vec![]);
    let anon = SioClient::connect(&server.url);
    let a = SioClient::connect(&server.url);
    let b = SioClient::connect(&server.url);

    a.emit("login", json!("alice"));
    let first = json!({"username": "alice", "numusers": 1});
    assert_eq!(a.take(1, QUIET), [ev("logedin", first.clone())]);
    // Every other connected socket, logged in or not.
    assert_eq!(
        b.take(1, Duration::ZERO),
        [ev("otherLogedin", first.clone())]
    );
    assert_eq!(anon.take(1, Duration::ZERO), [ev("otherLogedin", first)]);

    b.emit("login", json!("鲍勃 bob"));
    let second = json!({"username": "鲍勃 bob", "numusers": 2});
    assert_eq!(b.take(1, QUIET), [ev("logedin", second.clone())]);
    assert_eq!(
        a.take(1, Duration::ZERO),
        [ev("otherLogedin", second.clone())]
    );
    assert_eq!(anon.take(1, Duration::ZERO), [ev("otherLogedin", second)]);

    // Errors go to the requester alone.
    anon.emit("login", json!("alice"));
    assert_eq!(anon.take(1, Duration::ZERO), [err("duplicate username")]);
    a.emit("login", json!("alice2"));
    assert_eq!(a.take(1, Duration::ZERO), [err("already logged in")]);
    a.emit("login", json!("alice"));
    assert_eq!(a.take(1, Duration::ZERO), [err("already logged in")]);
    for args in [
        vec![],
        vec![json!("")],
        vec![json!(null)],
        vec![json!(7)],
        vec![json!(["alice"])],
        vec![json!({"username": "x"})],
        vec![json!("x".repeat(129))],
    ] {
        anon.emit_args("login", args.clone());
        assert_eq!(
            anon.take(1, Duration::ZERO),
            [err("invalid username")],
            "{args:?}"
        );
    }
    silent(&[&a, &b, &anon]);

    // A name of 128 bytes and names like `__proto__` are fine; extra arguments are ignored.
    let c = SioClient::connect(&server.url);
    c.emit_args("login", vec![json!("__proto__"), json!("extra"), json!(1)]);
    assert_eq!(
        c.expect("logedin"),
        json!({"username": "__proto__", "numusers": 3})
    );
    let long = "x".repeat(128);
    anon.emit("login", json!(long));
    assert_eq!(anon.expect("otherLogedin")["username"], "__proto__");
    assert_eq!(anon.expect("logedin")["numusers"], 4);
}

#[test]
fn every_event_needs_a_login_first() {
    let server = TestServer::lobby(vec![]);
    let clients = logged_in(&server, &["alice"]);
    let a = &clients[0];
    a.emit_args("joinRoom", vec![json!("r")]);
    a.expect("joinedRoom");

    let anon = SioClient::connect(&server.url);
    for (event, args) in [
        ("joinRoom", vec![json!("r"), json!(2)]),
        ("leaveRoom", vec![json!("r")]),
        ("roomMessage", vec![json!("r"), json!("hi")]),
        ("publicMessage", vec![json!("hi")]),
        ("privateMessage", vec![json!("alice"), json!("hi")]),
        ("joinRoom", vec![]),
    ] {
        anon.emit_args(event, args);
        assert_eq!(
            anon.take(1, Duration::ZERO),
            [err("not logged in")],
            "{event}"
        );
    }
    silent(&[a, &anon]);
}

#[test]
fn join_room_capacity_is_set_by_the_first_joiner() {
    let server = TestServer::lobby(vec![]);
    let c = logged_in(&server, &["a", "b", "c", "outsider"]);
    let (a, b, cc, outsider) = (&c[0], &c[1], &c[2], &c[3]);

    // a creates "r" for 2; b's maxUser 10 is ignored.
    assert_eq!(
        join(a, "r", Some(json!(2))),
        json!({"username": "a", "roomname": "r", "userlist": ["a"]})
    );
    let joined_b = json!({"username": "b", "roomname": "r", "userlist": ["a", "b"]});
    assert_eq!(join(b, "r", Some(json!(10))), joined_b);
    assert_eq!(a.take(1, QUIET), [ev("otherJoinedRoom", joined_b)]);
    cc.emit_args("joinRoom", vec![json!("r"), json!(10)]);
    assert_eq!(cc.take(1, Duration::ZERO), [err("room full")]);
    // A member asking again is told so, even in a full room.
    a.emit_args("joinRoom", vec![json!("r"), json!(2)]);
    assert_eq!(a.take(1, Duration::ZERO), [err("already in room")]);
    b.emit_args("joinRoom", vec![json!("r")]);
    assert_eq!(b.take(1, Duration::ZERO), [err("already in room")]);
    silent(&[a, b, cc, outsider]);

    // A refused maxUser creates nothing; the next valid one does.
    for bad in [
        json!(0),
        json!(-1),
        json!(1.5),
        json!("2"),
        json!([2]),
        json!({}),
        json!(true),
    ] {
        cc.emit_args("joinRoom", vec![json!("solo"), bad.clone()]);
        assert_eq!(
            cc.take(1, Duration::ZERO),
            [err("invalid maxUser")],
            "{bad}"
        );
    }
    assert_eq!(join(cc, "solo", Some(json!(1.0)))["userlist"], json!(["c"]));
    outsider.emit_args("joinRoom", vec![json!("solo"), json!("junk ignored")]);
    assert_eq!(outsider.take(1, Duration::ZERO), [err("room full")]);

    // No maxUser, or null: unlimited.
    for (i, client) in [a, b, cc, outsider].into_iter().enumerate() {
        let max = if i % 2 == 0 { None } else { Some(json!(1)) };
        let data = join(client, "open", max);
        assert_eq!(data["userlist"].as_array().unwrap().len(), i + 1);
    }
    assert_eq!(a.take(3, Duration::ZERO).len(), 3);
    assert_eq!(b.take(2, Duration::ZERO).len(), 2);
    assert_eq!(cc.take(1, Duration::ZERO).len(), 1);
    assert_eq!(
        join(a, "nullcap", Some(Value::Null))["userlist"],
        json!(["a"])
    );
    for client in [b, cc, outsider] {
        client.emit_args("joinRoom", vec![json!("nullcap"), json!(1)]);
        client.expect("joinedRoom");
    }
    let last = a.drain(QUIET);
    assert!(last.iter().all(|(e, _)| e == "otherJoinedRoom"), "{last:?}");
    assert_eq!(
        last.last().unwrap().1["userlist"],
        json!(["a", "b", "c", "outsider"])
    );
}

#[test]
fn join_room_refuses_bad_names_and_socket_ids() {
    let server = TestServer::lobby(vec![]);
    let clients = logged_in(&server, &["a"]);
    let a = &clients[0];
    for args in [
        vec![],
        vec![json!("")],
        vec![json!(null)],
        vec![json!(3)],
        vec![json!(["r"])],
        vec![json!({"room": "r"})],
        vec![json!("r".repeat(129))],
    ] {
        a.emit_args("joinRoom", args.clone());
        assert_eq!(
            a.take(1, Duration::ZERO),
            [err("invalid room name")],
            "{args:?}"
        );
    }

    // Socket ids (EIO4: the CONNECT answer; EIO3: the engine sid, which socket.io 2 clients use
    // as their socket id) are never rooms: neither one's own nor another connection's.
    let raw = server.block_on(async {
        let (mut v4, _) = RawWs::open(&server.ws_url(4), 4).await;
        v4.send("40").await;
        let connect = v4.next_text(WAIT).await.unwrap();
        let connect: Value = serde_json::from_str(connect.strip_prefix("40").unwrap()).unwrap();
        let sid4 = connect["sid"].as_str().unwrap().to_string();

        v4.send(r#"42["login","raw4"]"#).await;
        assert_eq!(v4.next_event(WAIT).await.unwrap().0, "logedin");
        assert_eq!(a.expect("otherLogedin")["username"], "raw4");

        let (mut v3, open) = RawWs::open(&server.ws_url(3), 3).await;
        let sid3 = open["sid"].as_str().unwrap().to_string();
        assert_eq!(v3.next_text(WAIT).await.as_deref(), Some("40"));
        v3.send(r#"42["login","raw3"]"#).await;
        assert_eq!(v3.next_event(WAIT).await.unwrap().0, "logedin");
        assert_eq!(v4.next_event(WAIT).await.unwrap().0, "otherLogedin");
        assert_eq!(a.expect("otherLogedin")["username"], "raw3");

        for (eio, room) in [(4, &sid4), (4, &sid3), (3, &sid3), (3, &sid4)] {
            let ws = if eio == 4 { &mut v4 } else { &mut v3 };
            ws.send(&format!("42{}", json!(["joinRoom", room, 2])))
                .await;
            assert_eq!(
                ws.next_event(WAIT).await,
                Some(err("invalid room name")),
                "EIO{eio} {room}"
            );
        }
        (v4, v3, sid4)
    });
    // rust_socketio's sync client cannot emit from inside a runtime.
    let (v4, v3, sid4) = raw;
    a.emit_args("joinRoom", vec![json!(sid4), json!(2)]);
    assert_eq!(a.take(1, Duration::ZERO), [err("invalid room name")]);
    server.block_on(async move { drop((v4, v3)) });
}

#[test]
fn object_prototype_names_are_ordinary_rooms_and_users_may_be_in_several() {
    let server = TestServer::lobby(vec![]);
    let c = logged_in(&server, &["a", "b", "c"]);
    let (a, b, cc) = (&c[0], &c[1], &c[2]);
    let rooms = [
        "__proto__",
        "constructor",
        "toString",
        "hasOwnProperty",
        "valueOf",
    ];
    for room in rooms {
        assert_eq!(
            join(a, room, Some(json!(3))),
            json!({"username": "a", "roomname": room, "userlist": ["a"]})
        );
    }
    // b joins the first two only.
    for room in &rooms[..2] {
        let data = join(b, room, None);
        assert_eq!(data["userlist"], json!(["a", "b"]));
        assert_eq!(a.expect("otherJoinedRoom"), data);
    }
    for room in rooms {
        a.emit_args(
            "roomMessage",
            vec![json!(room), json!(format!("to {room}"))],
        );
        let msg = json!({"username": "a", "roomname": room, "content": format!("to {room}")});
        assert_eq!(
            a.take(1, Duration::ZERO),
            [ev("gotRoomMessage", msg.clone())]
        );
        if rooms[..2].contains(&room) {
            assert_eq!(b.take(1, Duration::ZERO), [ev("gotRoomMessage", msg)]);
        }
    }
    cc.emit_args("roomMessage", vec![json!("__proto__"), json!("x")]);
    assert_eq!(
        cc.take(1, Duration::ZERO),
        [err("no such room or not in it")]
    );
    silent(&[a, b, cc]);
}

#[test]
fn leave_room_notifies_the_rest_and_the_last_leaver_removes_the_room() {
    let server = TestServer::lobby(vec![]);
    let c = logged_in(&server, &["a", "b", "c", "d", "e"]);
    let (a, b, cc, d, e) = (&c[0], &c[1], &c[2], &c[3], &c[4]);
    join(a, "r", Some(json!(3)));
    join(b, "r", None);
    join(cc, "r", None);
    a.take(2, Duration::ZERO);
    b.take(1, Duration::ZERO);

    b.emit("leaveRoom", json!("r"));
    assert_eq!(
        b.take(1, Duration::ZERO),
        [ev("leftRoom", json!({"username": "b", "roomname": "r"}))]
    );
    let left = json!({"username": "b", "roomname": "r", "userlist": ["a", "c"]});
    assert_eq!(
        a.take(1, Duration::ZERO),
        [ev("otherLeftRoom", left.clone())]
    );
    assert_eq!(cc.take(1, Duration::ZERO), [ev("otherLeftRoom", left)]);

    // Not a member any more: leave and message are refused; so are unknown rooms and non-strings.
    b.emit("leaveRoom", json!("r"));
    assert_eq!(
        b.take(1, Duration::ZERO),
        [err("no such room or not in it")]
    );
    b.emit_args("roomMessage", vec![json!("r"), json!("hi")]);
    assert_eq!(
        b.take(1, Duration::ZERO),
        [err("no such room or not in it")]
    );
    for args in [
        vec![json!("nowhere")],
        vec![],
        vec![json!(5)],
        vec![json!(null)],
    ] {
        d.emit_args("leaveRoom", args.clone());
        assert_eq!(
            d.take(1, Duration::ZERO),
            [err("no such room or not in it")],
            "{args:?}"
        );
    }
    silent(&[a, b, cc, d, e]);

    // The place b freed is usable again (capacity 3 still holds).
    join(d, "r", Some(json!(99)));
    a.expect("otherJoinedRoom");
    cc.expect("otherJoinedRoom");
    e.emit_args("joinRoom", vec![json!("r")]);
    assert_eq!(e.take(1, Duration::ZERO), [err("room full")]);

    // Everybody leaves; the room is gone: the next joiner sets a new capacity (1).
    a.emit("leaveRoom", json!("r"));
    assert_eq!(
        a.expect("leftRoom"),
        json!({"username": "a", "roomname": "r"})
    );
    assert_eq!(cc.expect("otherLeftRoom")["userlist"], json!(["c", "d"]));
    assert_eq!(d.expect("otherLeftRoom")["userlist"], json!(["c", "d"]));
    cc.emit("leaveRoom", json!("r"));
    cc.expect("leftRoom");
    assert_eq!(d.expect("otherLeftRoom")["userlist"], json!(["d"]));
    d.emit("leaveRoom", json!("r"));
    assert_eq!(
        d.take(1, QUIET),
        [ev("leftRoom", json!({"username": "d", "roomname": "r"}))]
    );
    silent(&[a, b, cc, e]);

    d.emit_args("roomMessage", vec![json!("r"), json!("anyone?")]);
    assert_eq!(
        d.take(1, Duration::ZERO),
        [err("no such room or not in it")]
    );
    assert_eq!(join(e, "r", Some(json!(1)))["userlist"], json!(["e"]));
    a.emit_args("joinRoom", vec![json!("r"), json!(5)]);
    assert_eq!(a.take(1, QUIET), [err("room full")]);
}

#[test]
fn room_message_reaches_every_member_including_the_sender() {
    let server = TestServer::lobby(vec![]);
    let c = logged_in(&server, &["a", "b", "outsider"]);
    let (a, b, outsider) = (&c[0], &c[1], &c[2]);
    join(a, "r", None);
    join(b, "r", None);
    a.expect("otherJoinedRoom");

    let text = "你好 lobby \"quoted\" \u{1F600}";
    b.emit_args("roomMessage", vec![json!("r"), json!(text), json!("extra")]);
    let msg = json!({"username": "b", "roomname": "r", "content": text});
    assert_eq!(a.take(1, QUIET), [ev("gotRoomMessage", msg.clone())]);
    assert_eq!(b.take(1, Duration::ZERO), [ev("gotRoomMessage", msg)]);
    silent(&[outsider]);

    // Exactly 8 KiB is accepted; one byte more, or a non-string, is refused.
    let max = "x".repeat(8 * 1024);
    a.emit_args("roomMessage", vec![json!("r"), json!(max)]);
    assert_eq!(
        b.expect("gotRoomMessage")["content"]
            .as_str()
            .unwrap()
            .len(),
        8192
    );
    assert_eq!(a.expect("gotRoomMessage")["username"], "a");
    a.emit_args("roomMessage", vec![json!("r"), json!(format!("{max}y"))]);
    assert_eq!(a.take(1, Duration::ZERO), [err("message too long")]);
    for args in [
        vec![json!("r")],
        vec![json!("r"), json!(null)],
        vec![json!("r"), json!(42)],
        vec![json!("r"), json!({"text": "hi"})],
    ] {
        a.emit_args("roomMessage", args.clone());
        assert_eq!(
            a.take(1, Duration::ZERO),
            [err("invalid content")],
            "{args:?}"
        );
    }
    // The empty string is a message.
    a.emit_args("roomMessage", vec![json!("r"), json!("")]);
    assert_eq!(b.expect("gotRoomMessage")["content"], "");
    assert_eq!(a.expect("gotRoomMessage")["content"], "");
    // Outsiders can neither send to the room nor see it.
    outsider.emit_args("roomMessage", vec![json!("r"), json!("let me in")]);
    assert_eq!(
        outsider.take(1, Duration::ZERO),
        [err("no such room or not in it")]
    );
    silent(&[a, b, outsider]);
}

#[test]
fn public_message_reaches_every_connected_socket() {
    let server = TestServer::lobby(vec![]);
    let c = logged_in(&server, &["a", "b"]);
    let (a, b) = (&c[0], &c[1]);
    let anon = SioClient::connect(&server.url);
    a.emit("publicMessage", json!("hello all"));
    let msg = json!({"username": "a", "content": "hello all"});
    for client in [a, b, &anon] {
        assert_eq!(
            client.take(1, Duration::ZERO),
            [ev("gotPublicMessage", msg.clone())]
        );
    }
    for (args, reason) in [
        (vec![], "invalid content"),
        (vec![json!(1)], "invalid content"),
        (vec![json!("z".repeat(8 * 1024 + 1))], "message too long"),
    ] {
        b.emit_args("publicMessage", args);
        assert_eq!(b.take(1, Duration::ZERO), [err(reason)]);
    }
    anon.emit("publicMessage", json!("from nobody"));
    assert_eq!(anon.take(1, Duration::ZERO), [err("not logged in")]);
    silent(&[a, b, &anon]);
}

#[test]
fn private_message_reaches_the_target_only() {
    let server = TestServer::lobby(vec![]);
    let c = logged_in(&server, &["a", "b", "c"]);
    let (a, b, cc) = (&c[0], &c[1], &c[2]);
    a.emit_args("privateMessage", vec![json!("b"), json!("psst")]);
    assert_eq!(
        b.take(1, QUIET),
        [ev(
            "gotPrivateMessage",
            json!({"username": "a", "content": "psst"})
        )]
    );
    silent(&[a, cc]);

    for (args, reason) in [
        (vec![json!("nobody"), json!("x")], "no such user"),
        (vec![json!(5), json!("x")], "no such user"),
        (vec![], "no such user"),
        (vec![json!("b")], "invalid content"),
        (vec![json!("b"), json!(["x"])], "invalid content"),
        (
            vec![json!("b"), json!("w".repeat(8 * 1024 + 1))],
            "message too long",
        ),
    ] {
        a.emit_args("privateMessage", args.clone());
        assert_eq!(a.take(1, Duration::ZERO), [err(reason)], "{args:?}");
    }
    // To oneself is allowed.
    cc.emit_args("privateMessage", vec![json!("c"), json!("note to self")]);
    assert_eq!(
        cc.take(1, QUIET),
        [ev(
            "gotPrivateMessage",
            json!({"username": "c", "content": "note to self"})
        )]
    );
    silent(&[a, b]);
}

#[test]
fn disconnect_leaves_rooms_then_logs_out_and_frees_the_name() {
    let server = TestServer::lobby(vec![]);
    let c = logged_in(&server, &["a", "b", "c"]);
    let (a, b, cc) = (&c[0], &c[1], &c[2]);
    let anon = SioClient::connect(&server.url);
    join(a, "r1", Some(json!(2)));
    join(a, "r2", None);
    join(a, "r3", Some(json!(5)));
    join(b, "r1", None);
    join(cc, "r2", None);
    assert_eq!(a.take(2, QUIET).len(), 2, "a saw b and c join");

    a.disconnect();
    assert_eq!(
        b.take(2, QUIET),
        [
            ev(
                "otherLeftRoom",
                json!({"username": "a", "roomname": "r1", "userlist": ["b"]})
            ),
            ev("otherLogedout", json!({"username": "a", "numusers": 2})),
        ]
    );
    assert_eq!(
        cc.take(2, Duration::ZERO),
        [
            ev(
                "otherLeftRoom",
                json!({"username": "a", "roomname": "r2", "userlist": ["c"]})
            ),
            ev("otherLogedout", json!({"username": "a", "numusers": 2})),
        ]
    );
    assert_eq!(
        anon.take(1, Duration::ZERO),
        [ev("otherLogedout", json!({"username": "a", "numusers": 2}))]
    );

    // r3 went with its only member: a new joiner sets a new capacity.
    assert_eq!(join(b, "r3", Some(json!(1)))["userlist"], json!(["b"]));
    cc.emit_args("joinRoom", vec![json!("r3")]);
    assert_eq!(cc.take(1, Duration::ZERO), [err("room full")]);
    // b's membership of r1 is intact; a is not listed any more.
    b.emit("leaveRoom", json!("r1"));
    b.expect("leftRoom");

    // The name is free again.
    anon.emit("login", json!("a"));
    assert_eq!(
        anon.expect("logedin"),
        json!({"username": "a", "numusers": 3})
    );
    assert_eq!(b.expect("otherLogedin")["username"], "a");
    assert_eq!(cc.expect("otherLogedin")["username"], "a");

    // A socket that never logged in leaves without a word.
    let silent_one = SioClient::connect(&server.url);
    silent_one.disconnect();
    silent(&[b, cc, &anon]);
}

#[test]
fn hostile_arguments_are_refused_and_the_server_keeps_serving() {
    let server = TestServer::lobby(vec![]);
    let clients = logged_in(&server, &["watcher"]);
    let watcher = &clients[0];
    join(watcher, "r", None);
    server.block_on(async {
        let mut ws = RawWs::connect_v4(&server.ws_url(4)).await;
        for (frame, reason) in [
            (r#"42["login",1e999]"#, "invalid arguments"),
            (r#"42["login",{"__proto__":{"x":1}}]"#, "invalid username"),
            (r#"42["login",["constructor"]]"#, "invalid username"),
            (r#"42["joinRoom","r"]"#, "not logged in"),
        ] {
            ws.send(frame).await;
            assert_eq!(ws.next_event(WAIT).await, Some(err(reason)), "{frame}");
        }
        // A binary attachment is not a username.
        ws.send(r#"451-["login",{"_placeholder":true,"num":0}]"#)
            .await;
        ws.ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
        assert_eq!(ws.next_event(WAIT).await, Some(err("invalid username")));

        ws.send(r#"42["login","raw"]"#).await;
        assert_eq!(ws.next_event(WAIT).await.unwrap().0, "logedin");
        for (frame, reason) in [
            (r#"42["joinRoom",{"toString":1}]"#, "invalid room name"),
            (r#"42["joinRoom","new",{"valueOf":2}]"#, "invalid maxUser"),
            (r#"42["joinRoom","new",1e999]"#, "invalid arguments"),
            (
                r#"42["roomMessage",{"r":1},"x"]"#,
                "no such room or not in it",
            ),
            (
                r#"42["privateMessage",{"__proto__":"watcher"},"x"]"#,
                "no such user",
            ),
            (
                r#"42["publicMessage",{"constructor":"x"}]"#,
                "invalid content",
            ),
        ] {
            ws.send(frame).await;
            assert_eq!(ws.next_event(WAIT).await, Some(err(reason)), "{frame}");
        }
        // Junk that does not parse closes that connection only.
        let mut junk = RawWs::connect_v4(&server.ws_url(4)).await;
        junk.send(r#"42["login""#).await;
        // engineioxide may say goodbye with an Engine.IO CLOSE (`1`) before closing.
        let started = std::time::Instant::now();
        while let Some(text) = junk.next_text(WAIT).await {
            assert_eq!(text, "1", "junk got an answer");
        }
        assert!(
            started.elapsed() < WAIT,
            "the junk connection was not closed"
        );
        drop(ws);
    });
    assert_eq!(watcher.expect("otherLogedin")["username"], "raw");
    assert_eq!(watcher.expect("otherLogedout")["username"], "raw");
    watcher.emit_args("roomMessage", vec![json!("r"), json!("still alive")]);
    assert_eq!(watcher.expect("gotRoomMessage")["content"], "still alive");
}

/// Events of one socket sent back to back are applied in arrival order (the handlers run
/// inline), and room broadcasts keep their order.
#[test]
fn events_of_one_socket_are_applied_in_arrival_order() {
    let server = TestServer::lobby(vec![]);
    server.block_on(async {
        let mut ws = RawWs::connect_v4(&server.ws_url(4)).await;
        let rounds = 150;
        ws.send(r#"42["login","fast"]"#).await;
        for i in 0..rounds {
            ws.send(&format!("42{}", json!(["joinRoom", "r", 1]))).await;
            ws.send(&format!("42{}", json!(["roomMessage", "r", i.to_string()])))
                .await;
            ws.send(r#"42["leaveRoom","r"]"#).await;
        }
        assert_eq!(ws.next_event(WAIT).await.unwrap().0, "logedin");
        for i in 0..rounds {
            let (e, data) = ws.next_event(WAIT).await.unwrap();
            assert_eq!(e, "joinedRoom", "round {i}: {data}");
            assert_eq!(data["userlist"], json!(["fast"]));
            let (e, data) = ws.next_event(WAIT).await.unwrap();
            assert_eq!(e, "gotRoomMessage", "round {i}: {data}");
            assert_eq!(data["content"], i.to_string());
            let (e, _) = ws.next_event(WAIT).await.unwrap();
            assert_eq!(e, "leftRoom", "round {i}");
        }
    });
}
