//! voice: `users_me` (`GET /api/users/me?sid=`) after the user's connection ended. The seed
//! gives the value (an empty `current_room_id`: MUST); the endpoint, its status and the body's
//! shape are the reference server's (SHOULD, `Effect::HttpBodyAbsent`).

use super::*;

/// Client 0 performs voice's own `users_me` at `D`; the response comes with `status` and
/// `body` at `D + 10`.
fn users_me(status: u16, body: &str) -> BTreeMap<String, u64> {
    let (w, mut cs) = World::new(&VOICE_TABLE, 2);
    w.judge().connected(&mut cs[0], 0);
    let op = VOICE_TABLE.op("users_me").expect("voice has users_me");
    let ctx = w.roster.context(cs[0].me, 0);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let request = (op.build)(&ctx, &BTreeMap::new(), &mut rng);
    assert_eq!(request.args, vec![serde_json::json!({"sid": "token0"})]);
    w.judge().request(
        &mut cs[0],
        request.event,
        request.effects,
        Intent::Valid,
        D,
        D,
    );
    w.judge().http_response_to(
        &mut cs[0],
        "users_me",
        Some(D),
        status,
        Some(body.as_bytes()),
        D + 10,
    );
    w.verdicts(100 * D)
}

#[test]
fn an_empty_current_room_after_the_departure_is_clean() {
    assert_eq!(
        users_me(200, r#"{"error_code":0,"user_id":1,"current_room_id":""}"#),
        only(&[])
    );
}

#[test]
fn a_room_still_named_after_the_departure_breaks_the_seeds_rule() {
    assert_eq!(
        users_me(200, r#"{"current_room_id":"room1"}"#),
        only(&[("voice/current_room_id/reply-content", 1)])
    );
}

#[test]
fn another_shape_or_status_is_the_reference_servers_decision_only() {
    assert_eq!(
        users_me(200, r#"{"data":{"current_room_id":""}}"#),
        only(&[("voice/users_me/reply-content", 1)])
    );
    assert_eq!(
        users_me(200, "not json"),
        only(&[("voice/users_me/reply-content", 1)])
    );
    assert_eq!(
        users_me(404, "{}"),
        only(&[("voice/users_me/reply-content", 1)])
    );
}
