//! voice's PHP JSON ([`php_json`]): what a voice server decodes from a client, and the
//! signature it checks.
//!
//! Properties: decoding any text gives a value or an error, never a panic; signing a decoded
//! frame never panics; the text PHP encodes a decoded value as decodes again, and going
//! through PHP once more changes it at most once (what a signature is computed over settles).
//! It need not settle at once, nor the value come back: PHP writes the float 0.0 as `0` and
//! -0.0 as `-0`, both of which read back as the integer 0 (found by this target, and php-cli
//! does the same).

use super::{fuzz_target, JSON_TOKENS};

fuzz_target!(php_json, php_json_mutated, JSON_TOKENS, check);

pub(crate) fn check(text: &str) {
    let Ok(value) = php_json::decode(text) else {
        return;
    };
    let _ = php_json::sign(&value, "sign");
    let round = |encoded: &str| {
        let again = php_json::decode(encoded).unwrap_or_else(|e| {
            panic!("{text:?} encoded as {encoded:?}, which does not decode: {e}")
        });
        php_json::encode(&again)
    };
    // PHP refuses some values it decodes (an infinity from `1e400`): nothing to compare then.
    let Some(first) = php_json::encode(&value) else {
        return;
    };
    let second = round(&first).expect("what PHP wrote it writes again");
    assert_eq!(round(&second).as_deref(), Some(second.as_str()), "{text:?}");
}
