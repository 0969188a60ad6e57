//! The users-file parser (JSON, and CSV as Artillery's payload files), as `roomrig run
//! --users` and `serve --users` read a file.
//!
//! Properties: a refusal is an error value naming a line and a column inside the file; a
//! file that reads is checked for consistency without a panic; and users written as CSV read
//! back the same.

use reference_server::fixtures::{csv, Fixtures};

use super::{fuzz_target, JSON_TOKENS};

const TOKENS: &[&str] = &[
    "user_id",
    "username",
    "token",
    "room_id",
    "room_size",
    ",",
    "\"",
    "\"\"",
    "\n",
    "\r\n",
    "\r",
    " ",
    "user_id,username,token,room_id\n",
    "1,u1,t1,1\n",
    "\"a,b\"",
    "\"a\nb\"",
    r#"{"users":[],"rooms":[]}"#,
    r#"{"user_id":1,"username":"u","token":"t","room_id":1}"#,
    r#"{"room_id":1,"room_name":"r","owner_id":1,"room_size":4}"#,
    "4294967296",
];

fuzz_target!(
    users_file,
    users_file_mutated,
    &[TOKENS, JSON_TOKENS].concat(),
    check
);

pub(crate) fn check(text: &str) {
    let lines = text.lines().count() + 1;
    for is_csv in [true, false] {
        match Fixtures::parse(text, is_csv) {
            Err((line, column, message)) => {
                assert!(
                    (1..=lines).contains(&line) && column >= 1,
                    "{line}:{column} is not a place in the {lines}-line file (csv: {is_csv}): \
                     {message}"
                );
            }
            Ok(fixtures) => {
                if fixtures.validate().is_err() {
                    continue;
                }
                let written = csv::write(&fixtures);
                let back = csv::parse(&written)
                    .unwrap_or_else(|e| panic!("written users do not read back: {e:?}\n{written}"));
                assert_eq!(
                    back.users, fixtures.users,
                    "users written as CSV:\n{written}"
                );
            }
        }
    }
}
