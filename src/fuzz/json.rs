//! The borrowed JSON reader of the receive path ([`Json`]).
//!
//! Property: it is `serde_json::Value` by other means. Both accept the same texts, give the
//! same value, and look members up the same way (the last of duplicate keys wins).

use serde_json::Value;

use super::{fuzz_target, JSON_TOKENS};
use crate::oracle::json::Json;

fuzz_target!(borrowed_json, borrowed_json_mutated, JSON_TOKENS, check);

pub(crate) fn check(text: &str) {
    let borrowed = Json::parse(text);
    let value = serde_json::from_str::<Value>(text);
    match (&borrowed, &value) {
        (Ok(json), Ok(value)) => {
            assert_eq!(&json.to_value(), value, "{text:?}");
            if let (Json::Obj(pairs), Value::Object(map)) = (json, value) {
                for (key, _) in pairs {
                    let member = json.field(key).to_value();
                    assert_eq!(Some(&member), map.get(&**key), "member {key:?}");
                    assert!(json.has_key(key));
                }
                assert!(json.field("\u{0}no such key").is_null());
            }
            assert_eq!(json.as_u64(), value.as_u64());
            assert_eq!(json.as_str(), value.as_str());
            assert_eq!(json.is_i64(), value.is_i64());
        }
        (Err(_), Err(_)) => {}
        _ => panic!(
            "the readers disagree on {text:?}: borrowed {:?}, Value {:?}",
            borrowed.map(|_| ()),
            value.map(|_| ())
        ),
    }
}
