//! Connections that hold the server's resources without being clients: a reader that stopped
//! reading (its outgoing bytes are capped, then it is closed), and sockets that never finish
//! their handshake (closed after the handshake timeout). The healthy clients are served
//! throughout.

mod common;

use std::time::Duration;

use common::{RawWs, TestServer, WAIT};
use reference_server::fixtures::Fixtures;
use reference_server::outbound::OutboundLimits;
use reference_server::{lobby, ServerConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long the tests wait for something that must happen (far above what it takes).
const EVENTUALLY: Duration = Duration::from_secs(20);

fn lobby_server(handshake_timeout: Duration, outbound: OutboundLimits) -> TestServer {
    let mut config = ServerConfig::new(
        lobby::DIALECT,
        "127.0.0.1:0".parse().unwrap(),
        Fixtures::generate(0, 2),
    );
    config.handshake_timeout = handshake_timeout;
    config.outbound = outbound;
    TestServer::start(config)
}

/// One masked websocket text frame, as a client sends it.
fn client_text_frame(text: &str) -> Vec<u8> {
    let payload = text.as_bytes();
    let mask = [0x5a, 0x17, 0xc3, 0x88];
    let mut frame = vec![0x81];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= u16::MAX as usize => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// A client with a small receive buffer that upgrades to websocket, connects to `/` (reading
/// until the server's CONNECT answer), logs in as `name`, and then never reads again.
async fn never_reading_client(addr: std::net::SocketAddr, name: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(addr).await.unwrap();
    let mut hello = format!(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {addr}\r\n\
         Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .into_bytes();
    hello.extend(client_text_frame("40"));
    tcp.write_all(&hello).await.unwrap();
    // socketioxide refuses an event that arrives before the namespace is connected.
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("40{\"sid\"") {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut chunk))
            .await
            .expect("the CONNECT answer")
            .unwrap();
        assert!(n > 0, "closed before the CONNECT answer");
        seen.extend_from_slice(&chunk[..n]);
    }
    tcp.write_all(&client_text_frame(&format!(r#"42["login","{name}"]"#)))
        .await
        .unwrap();
    tcp
}

/// Next Socket.IO event of `ws`.
async fn next_event(ws: &mut RawWs) -> (String, Value) {
    ws.next_event(WAIT).await.expect("an event")
}

#[test]
fn a_client_that_never_reads_is_closed_while_a_reader_is_served() {
    let limits = OutboundLimits {
        per_connection: 128 << 10,
        total: 64 << 20,
    };
    let server = lobby_server(Duration::from_secs(10), limits);
    let addr = server.server().local_addr();
    server.block_on(async {
        let mut healthy = RawWs::connect_v4(&server.ws_url(4)).await;
        healthy.emit("login", &json!("alice")).await;
        assert_eq!(next_event(&mut healthy).await.0, "logedin");

        let mut slow = never_reading_client(addr, "bob").await;
        let (event, data) = next_event(&mut healthy).await;
        assert_eq!(
            (event.as_str(), &data["username"]),
            ("otherLogedin", &json!("bob"))
        );

        // 8 KB public messages reach both; bob reads none of them. Once more bytes wait for
        // him than his kernel buffers and the cap hold, he is closed and announced as gone.
        let content = "x".repeat(lobby::MAX_CONTENT_BYTES - 8);
        let mut gone_after = None;
        for i in 0..4000 {
            healthy
                .emit("publicMessage", &json!(format!("{i} {content}")))
                .await;
            loop {
                let (event, data) = next_event(&mut healthy).await;
                match event.as_str() {
                    "gotPublicMessage" => {
                        let text = data["content"].as_str().unwrap();
                        assert!(text.starts_with(&format!("{i} ")), "message {i} in order");
                        break;
                    }
                    "otherLogedout" => {
                        assert_eq!(data["username"], json!("bob"));
                        gone_after = Some(i);
                    }
                    other => panic!("unexpected {other}: {data}"),
                }
            }
            if gone_after.is_some() {
                break;
            }
        }
        let gone_after = gone_after.expect("the client that never reads is closed");
        assert!(server.server().outbound().closed_slow_readers() >= 1);
        // The healthy client goes on being served.
        healthy.emit("publicMessage", &json!("after")).await;
        let (event, data) = next_event(&mut healthy).await;
        assert_eq!(
            (event.as_str(), &data["content"]),
            ("gotPublicMessage", &json!("after"))
        );

        // Bob's connection is reset or ended: reading it comes to an end (with far fewer
        // bytes than were meant for him), it is not held open.
        let mut received = Vec::new();
        let _ = tokio::time::timeout(EVENTUALLY, slow.read_to_end(&mut received))
            .await
            .expect("the slow client's connection ends");
        assert!(
            received.len() < gone_after * content.len(),
            "{} bytes of {} messages",
            received.len(),
            gone_after
        );
        assert_eq!(server.server().outbound().queued_bytes(), 0);
    });
}

/// Reads until the server closes the connection (end of file or reset); what it sent.
async fn read_until_closed(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(EVENTUALLY, tcp.read_to_end(&mut got))
        .await
        .expect("the server closes the connection");
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn connections_that_never_finish_their_request_head_are_closed() {
    let server = lobby_server(Duration::from_millis(300), OutboundLimits::default());
    let addr = server.server().local_addr();
    server.block_on(async {
        // Connected, silent.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        // Half a request head.
        let mut half = TcpStream::connect(addr).await.unwrap();
        half.write_all(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // One byte at a time, each well within the timeout: the bound is on the whole head.
        let mut drip = TcpStream::connect(addr).await.unwrap();
        let dripping = async {
            for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().cycle() {
                if drip.write_all(&[*byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let _ = tokio::time::timeout(EVENTUALLY, dripping).await;
        for (what, tcp) in [
            ("silent", &mut silent),
            ("half", &mut half),
            ("drip", &mut drip),
        ] {
            let answer = read_until_closed(tcp).await;
            assert!(
                answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
                "{what}: {answer:?}"
            );
        }

        // A request within the bound is served, and a websocket session outlives the bound.
        let mut ws = RawWs::connect_v4(&server.ws_url(4)).await;
        tokio::time::sleep(Duration::from_millis(900)).await;
        ws.emit("login", &json!("carol")).await;
        assert_eq!(next_event(&mut ws).await.0, "logedin");
    });
}

#[test]
fn a_websocket_that_never_connects_a_namespace_is_closed() {
    let server = lobby_server(Duration::from_millis(300), OutboundLimits::default());
    server.block_on(async {
        let (mut ws, _open) = RawWs::open(&server.ws_url(4), 4).await;
        // No `40`: the Socket.IO handshake never completes, and the server closes the session
        // (an Engine.IO CLOSE packet, `1`, then the websocket's end).
        let mut got = Vec::new();
        while let Some(text) = ws.next_text(EVENTUALLY).await {
            got.push(text);
            assert!(got.len() < 10, "still open: {got:?}");
        }
        assert!(got.iter().all(|t| t == "1"), "{got:?}");
    });
}
