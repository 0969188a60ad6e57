//! The Socket.IO transport with several namespaces on one Engine.IO connection, against a real
//! socketioxide server (EIO 3 and 4) on loopback sockets.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use roomrig::protocol::EioVersion;
use roomrig::transport::socketio::{ClientConfig, Connection};
use roomrig::transport::{
    Client, ConnectError, Incoming, RawEvent, RawIncoming, Transport, TransportConfig,
};
use serde_json::{json, Value};
use socketioxide::extract::{Data, SocketRef};
use socketioxide::handler::ConnectHandler;
use socketioxide::SocketIo;

/// Namespaces whose sockets the server saw disconnect.
#[derive(Clone, Default)]
struct Gone(Arc<Mutex<Vec<String>>>);

#[derive(Debug)]
struct Rejected;
impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no entry")
    }
}
impl std::error::Error for Rejected {}

/// `/`, `/friend` and `/group` greet each socket with `hello {ns, id}` and echo `echo` on
/// their own namespace; `poke` on `/friend` makes `/group` emit `poked` to everyone there;
/// `/private` refuses every connection.
async fn start_server() -> (SocketAddr, Gone) {
    let (layer, io) = SocketIo::builder().build_layer();
    let gone = Gone::default();
    for ns in ["/", "/friend", "/group"] {
        let gone = gone.clone();
        let io2 = io.clone();
        io.ns(ns, move |s: SocketRef| {
            let (gone, io) = (gone.clone(), io2.clone());
            async move {
                s.on("echo", async |s: SocketRef, Data(v): Data<Value>| {
                    s.emit("echo", &v).ok();
                });
                s.on("poke", move |Data(v): Data<Value>| {
                    let io = io.clone();
                    async move {
                        io.of("/group")
                            .expect("/group")
                            .emit("poked", &v)
                            .await
                            .ok();
                    }
                });
                s.on_disconnect(move |s: SocketRef| {
                    let gone = gone.clone();
                    async move {
                        gone.0.lock().unwrap().push(s.ns().to_owned());
                    }
                });
                s.emit("hello", &json!({"ns": s.ns(), "id": s.id.to_string()}))
                    .ok();
            }
        });
    }
    let reject = async |_: SocketRef| -> Result<(), Rejected> { Err(Rejected) };
    io.ns("/private", (async |_: SocketRef| {}).with(reject));
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, gone)
}

fn config(eio: EioVersion, first: &str, more: &[&str]) -> ClientConfig {
    ClientConfig {
        eio,
        namespace: first.to_owned(),
        more_namespaces: more.iter().map(|s| s.to_string()).collect(),
        connect_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

/// The next event, within 5 s.
async fn next_event(conn: &mut impl Transport) -> RawEvent {
    let item = tokio::time::timeout(Duration::from_secs(5), conn.recv_raw())
        .await
        .expect("an event within 5 s")
        .expect("recv");
    match item {
        RawIncoming::Event(e) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

fn payload(e: &RawEvent) -> Value {
    serde_json::from_str(&e.payload().expect("payload")).unwrap()
}

async fn namespaces_share_one_session(eio: EioVersion) {
    let (addr, gone) = start_server().await;
    let url = format!("http://{addr}");
    let mut conn = Connection::connect(&url, &config(eio, "/", &["/friend", "/group"]))
        .await
        .expect("connect");
    assert_eq!(
        conn.namespaces().collect::<Vec<_>>(),
        ["/", "/friend", "/group"]
    );

    // One greeting per namespace, each on its own namespace, none lost while the others were
    // still being connected.
    let mut greeted = Vec::new();
    for _ in 0..3 {
        let e = next_event(&mut conn).await;
        assert_eq!(e.name().as_deref(), Some("hello"));
        let p = payload(&e);
        let ns = e.namespace().expect("namespace").to_owned();
        assert_eq!(p["ns"], ns.as_str());
        if eio == EioVersion::V4 {
            // Each namespace has its own socket id, the one its CONNECT gave.
            assert_eq!(conn.socket_id_of(&ns), p["id"].as_str(), "{ns}");
        }
        greeted.push(ns);
    }
    greeted.sort();
    assert_eq!(greeted, ["/", "/friend", "/group"]);
    if eio == EioVersion::V4 {
        // (socketioxide gives the sockets of one session the same id; Node's socket.io gives
        // each its own: the client keeps what each CONNECT said.)
        assert_eq!(conn.socket_id(), conn.socket_id_of("/"));
        assert!(conn.socket_id().is_some());
    }

    // An emit goes to the namespace it names (the first one by default), and the answer comes
    // back on it.
    conn.emit_to("/friend", "echo", &[json!({"n": 1})])
        .await
        .unwrap();
    let e = next_event(&mut conn).await;
    assert_eq!(
        (e.namespace(), payload(&e)),
        (Some("/friend"), json!({"n": 1}))
    );
    Transport::send_event(&mut conn, Some("/group"), "echo", &[json!({"n": 2})])
        .await
        .unwrap();
    let e = next_event(&mut conn).await;
    assert_eq!(
        (e.namespace(), payload(&e)),
        (Some("/group"), json!({"n": 2}))
    );
    Transport::send_event(&mut conn, None, "echo", &[json!({"n": 3})])
        .await
        .unwrap();
    let e = next_event(&mut conn).await;
    assert_eq!((e.namespace(), payload(&e)), (Some("/"), json!({"n": 3})));

    // What is asked on one namespace may arrive on another.
    conn.emit_to("/friend", "poke", &[json!("p")])
        .await
        .unwrap();
    let e = next_event(&mut conn).await;
    assert_eq!(e.name().as_deref(), Some("poked"));
    assert_eq!(e.namespace(), Some("/group"));

    // A clean close leaves every namespace.
    conn.close().await;
    let end = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut seen = gone.0.lock().unwrap().clone();
        seen.sort();
        if seen == ["/", "/friend", "/group"] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "disconnects seen: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn namespaces_share_one_session_eio4() {
    namespaces_share_one_session(EioVersion::V4).await;
}

#[tokio::test]
async fn namespaces_share_one_session_eio3() {
    namespaces_share_one_session(EioVersion::V3).await;
}

/// Events of a namespace the client did not connect are not delivered: under EIO 3 the server
/// connects `/` by itself and greets it, but the client asked for `/friend` only.
#[tokio::test]
async fn other_namespaces_are_not_delivered() {
    let (addr, _) = start_server().await;
    let cfg = TransportConfig::SocketIo(config(EioVersion::V3, "/friend", &[]));
    let mut conn = Client::connect(&format!("http://{addr}"), &cfg)
        .await
        .expect("connect");
    let e = next_event(&mut conn).await;
    assert_eq!(e.namespace(), Some("/friend"));
    assert_eq!(payload(&e)["ns"], "/friend");
    // The first namespace is the default one.
    conn.send_event(None, "echo", &[json!("again")])
        .await
        .unwrap();
    let e = next_event(&mut conn).await;
    assert_eq!(e.namespace(), Some("/friend"));
    assert_eq!(
        e.parse().unwrap(),
        Incoming::Event {
            name: "echo".into(),
            args: vec![json!("again")],
            ack: None
        }
    );
}

#[tokio::test]
async fn a_refused_namespace_fails_the_connect() {
    let (addr, _) = start_server().await;
    for eio in [EioVersion::V4, EioVersion::V3] {
        let r = Connection::connect(
            &format!("http://{addr}"),
            &config(eio, "/", &["/friend", "/private"]),
        )
        .await;
        match r {
            Err(ConnectError::Refused(m)) => assert_eq!(m, "/private: no entry", "{eio}"),
            other => panic!("{eio}: expected a refusal, got {other:?}"),
        }
    }
}
