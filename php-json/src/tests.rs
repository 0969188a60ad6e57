//! Golden vectors: each input, the text PHP 8.2's `json_encode(ksort(json_decode($in, true)),
//! JSON_UNESCAPED_UNICODE)` wrote for it without `sign`, and that text's md5 (taken from PHP).

use super::*;

/// (frame text, what PHP signs, md5).
const GOLDEN: &[(&str, &str, &str)] = &[
    (
        r#"{"action":"ping","sid":"s1","online_token":"t","timestamp":1700000000}"#,
        r#"{"action":"ping","online_token":"t","sid":"s1","timestamp":1700000000}"#,
        "97f581f106d034a06b4223028cc5b95d",
    ),
    (
        // Empty object and list, integer-like keys, a list-shaped object, escapes, DEL raw,
        // a big integer, -0, 1.0.
        "{\"b\":{},\"a\":[],\"0\":1,\"x\":{\"0\":1,\"1\":2},\"y\":{\"1\":1},\"z\":\"\\/\\u2028\\u2029\u{e9}\\u007f\\u0001\\b\\f\\n\\r\\t\\\"\\\\\",\"big\":99999999999999999999,\"n\":-0,\"f\":1.0}",
        "{\"0\":1,\"a\":[],\"b\":[],\"big\":1.0e+20,\"f\":1,\"n\":0,\"x\":[1,2],\"y\":{\"1\":1},\"z\":\"\\/\\u2028\\u2029\u{e9}\u{7f}\\u0001\\b\\f\\n\\r\\t\\\"\\\\\"}",
        "6fe1a509ff72be51eb7e97c250b72312",
    ),
    (
        r#"{"f":[0.1,1e20,1e16,1e17,0.0001,0.00001,-0.0,123456789.125,5e-324,1.7976931348623157e308,-2.5e-7,0.30000000000000004]}"#,
        r#"{"f":[0.1,1.0e+20,10000000000000000,1.0e+17,0.0001,1.0e-5,-0,123456789.125,5.0e-324,1.7976931348623157e+308,-2.5e-7,0.30000000000000004]}"#,
        "143939025b2a1c26296aeecc5e80867c",
    ),
    (
        // Keys that stay strings ("05", "-0"), a repeated key (first place, last value),
        // raw non-ASCII, and the signature itself left out.
        r#"{"k":{"05":1,"-0":2,"-3":3,"1":4,"a":5,"a":6},"emoji":"😀 中文","sign":"ignored"}"#,
        r#"{"emoji":"😀 中文","k":{"05":1,"-0":2,"-3":3,"1":4,"a":6}}"#,
        "2a465f24c70c15631d3eb5762ab0caf6",
    ),
    (
        r#"{"action":"send_gift","gift":{"id":7,"name":"rose/花","num":2},"notify_type":"ptp"}"#,
        r#"{"action":"send_gift","gift":{"id":7,"name":"rose\/花","num":2},"notify_type":"ptp"}"#,
        "7d545adfd288359247817404f661e00b",
    ),
];

#[test]
fn golden_vectors_match_php() {
    for (input, text, md5) in GOLDEN {
        let frame = decode(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(
            signed_text(&frame, "sign").as_deref(),
            Some(*text),
            "{input}"
        );
        assert_eq!(sign(&frame, "sign").as_deref(), Some(*md5), "{input}");
    }
}

#[test]
// The tie cases are written as their exact binary values on purpose.
#[allow(clippy::excessive_precision)]
fn floats_in_php_layout() {
    for (f, php) in [
        (1.0, "1"),
        (-0.0, "-0"),
        (0.1, "0.1"),
        (1e20, "1.0e+20"),
        (1.5e20, "1.5e+20"),
        (1e16, "10000000000000000"),
        (1e17, "1.0e+17"),
        (0.0001, "0.0001"),
        (0.00001, "1.0e-5"),
        (-2.5e300, "-2.5e+300"),
        (123456789.125, "123456789.125"),
        // Exactly half-way between two shortest forms: PHP takes the even digit.
        (861547925026182.25, "861547925026182.2"),
        (25283371604871.0625, "25283371604871.062"),
    ] {
        assert_eq!(php_float(f), php, "{f}");
    }
}

#[test]
fn a_signed_frame_verifies_and_a_changed_one_does_not() {
    let mut fields = serde_json::Map::new();
    fields.insert("action".into(), "up".into());
    fields.insert("room_seat_id".into(), 3.into());
    fields.insert("note".into(), "a/b\u{2028}".into());
    fields.insert("x".into(), serde_json::json!({}));
    let sig = sign_json(&fields, "sign");
    fields.insert("sign".into(), sig.into());
    let text = serde_json::Value::Object(fields).to_string();
    assert_eq!(verify_text(&text, "sign"), Ok(true), "{text}");
    let changed = text.replace("\"room_seat_id\":3", "\"room_seat_id\":4");
    assert_eq!(verify_text(&changed, "sign"), Ok(false));
    let unsigned = r#"{"action":"up"}"#;
    assert_eq!(verify_text(unsigned, "sign"), Ok(false));
}

#[test]
fn rejects_what_php_rejects() {
    for bad in [
        "",
        "{",
        r#"{"a":1,}"#,
        "[1,]",
        "01",
        "1.",
        ".5",
        "\"\\ud800\"",
        "\"\\udc00x\"",
        "\"tab\there\"",
        "\"\\x\"",
        "nul",
        "{} {}",
        "{'a':1}",
    ] {
        assert!(decode(bad).is_err(), "{bad:?} must not decode");
    }
    let deep = "[".repeat(600) + &"]".repeat(600);
    assert!(decode(&deep).is_err(), "past PHP's depth");
    let ok = "[".repeat(512) + &"]".repeat(512);
    assert!(decode(&ok).is_ok(), "PHP's depth itself");
}

#[test]
fn infinity_decodes_but_cannot_be_signed() {
    let frame = decode(r#"{"a":1e400}"#).unwrap();
    assert_eq!(
        signed_text(&frame, "sign"),
        None,
        "json_encode returns false"
    );
    let replaced = decode(r#"{"a":1e400,"a":1}"#).unwrap();
    assert_eq!(
        signed_text(&replaced, "sign").as_deref(),
        Some(r#"{"a":1}"#)
    );
}

#[test]
fn surrogate_pairs_decode() {
    assert_eq!(
        decode("\"\\ud83d\\ude00\"").unwrap(),
        PhpValue::Str("😀".into())
    );
}
