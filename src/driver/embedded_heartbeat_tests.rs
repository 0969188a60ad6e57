//! The embedded reference server of a scenario without a `server:` block keeps its dialect's
//! default heartbeat, and advertises it: seed 003's 15 s for voice, Engine.IO's for dorm.

use std::time::Duration;

use reference_server::fixtures::Fixtures;

use super::{start_embedded, websocket};
use crate::scenario::Scenario;

fn scenario(dialect: &str, op: &str) -> Scenario {
    let text = format!(
        "dialect: {dialect}\nusers: {{ generate: {{ count: 4, room_size: 2 }} }}\n\
         phases: [{{ duration: 1s, arrival_rate: 4 }}]\n\
         clients: [{{ name: a, flow: [{op}] }}]\n"
    );
    Scenario::parse(&text, "heartbeat.yaml").unwrap()
}

#[tokio::test]
async fn embedded_voice_server_advertises_the_seeds_ping_interval() {
    let scenario = scenario("voice", "enter_room");
    let server = start_embedded(&scenario, &Fixtures::generate(4, 2), &[])
        .await
        .unwrap();
    let body = websocket::http_get(&server.url(), "/api/websocket/end_point")
        .await
        .unwrap();
    let end_point: serde_json::Value = serde_json::from_str(&body).unwrap();
    // Whole seconds, as the seed writes it.
    assert_eq!(end_point["ping_interval"], 15, "{body}");

    // The driver's clients ping on the advertised interval and expect the close 20 s after
    // the last ping (the seed's words), the embedded server's own timeout.
    let wire = crate::dialect::find("voice").unwrap().websocket.unwrap();
    let settings = scenario.server_settings();
    let known = Some((settings.ping_interval.0, settings.ping_timeout.0));
    let setup = websocket::Setup::discover(&server.url(), wire, known, None)
        .await
        .unwrap();
    assert_eq!(setup.ping_interval, Duration::from_secs(15));
    assert_eq!(
        setup.ping_interval + setup.ping_timeout,
        Duration::from_secs(20)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn embedded_dorm_server_keeps_engine_ios_heartbeat() {
    let scenario = scenario("dorm", "join_room");
    let server = start_embedded(&scenario, &Fixtures::generate(4, 2), &[])
        .await
        .unwrap();
    let open = websocket::http_get(&server.url(), "/socket.io/?EIO=4&transport=polling")
        .await
        .unwrap();
    assert!(open.contains("\"pingInterval\":25000"), "{open}");
    assert!(open.contains("\"pingTimeout\":20000"), "{open}");
    server.shutdown().await;
}
