//! Users, tokens and rooms: the fixture data both the reference server and the driver read.
//!
//! The users file is the interface between roomrig and any server under test: it states each
//! user's id, name, token and room, so the driver can authenticate against a foreign server and
//! the oracle knows who must receive what even from a server that never sends `last_data`.
//! Only the data format is shared; the oracle's rules live in the driver and never call into
//! the server.

use std::path::Path;

use serde::{Deserialize, Serialize};

pub mod csv;
pub mod social;

/// The users file's expected shape, shown when a file has another.
pub const SHAPE: &str = r#"a JSON object {"users": [{"user_id": 1, "username": "user1", "token": "t1", "room_id": 1}, ...], "rooms": [{"room_id": 1, "room_name": "room1", "owner_id": 1, "room_size": 4}, ...]}, or CSV with the header row user_id,username,token,room_id"#;

/// One user of the fixture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub user_id: u64,
    pub username: String,
    pub token: String,
    /// The dorm room this user belongs to (`dorm`); dialects without fixed rooms leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<u64>,
}

/// One room of the fixture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    pub room_id: u64,
    pub room_name: String,
    pub owner_id: u64,
    /// Capacity: 2 or 4 in `dorm`.
    pub room_size: u32,
    #[serde(default)]
    pub notice: String,
}

/// The whole fixture: what a users file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fixtures {
    pub users: Vec<User>,
    #[serde(default)]
    pub rooms: Vec<Room>,
    /// Friendships (`chat`), each a pair of user ids, both ways; see [`social`] for the rule
    /// that applies when a file lists neither friends nor groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub friends: Vec<[u64; 2]>,
    /// Chat groups (`chat`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<social::Group>,
}

/// Why a users file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("cannot read users file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("users file {path}: line {line}, column {column}: {message}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("users file {path}: {message}")]
    Invalid { path: String, message: String },
}

/// Reads a text file of at most `max` bytes: a path such as `/dev/zero` or a wrong, huge file
/// is refused after `max` bytes instead of filling memory.
pub fn read_capped(path: &Path, max: u64) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB: not the file meant here?",
            max >> 20
        )));
    }
    Ok(text)
}

/// The largest users file read (a million users take about 100 MB of JSON).
pub const MAX_USERS_FILE: u64 = 512 << 20;

/// The most users one generated fixture may hold (about 150 MB of them in memory): twenty
/// times what one machine's driver holds, so a run is never refused for it, while a typo of a
/// few zeros is refused before it allocates gigabytes.
pub const MAX_GENERATED_USERS: u64 = 1_000_000;

impl Fixtures {
    /// Deterministic fixture: `count` users filling rooms of `room_size` in order.
    ///
    /// User `i` (1-based) has id `i`, name `user{i}`, token `t{splitmix64(i):016x}` and room
    /// `(i - 1) / room_size + 1`; room `r` is named `room{r}` and owned by its first user. The
    /// README documents this so another implementation can generate the same users.
    pub fn generate(count: u64, room_size: u32) -> Fixtures {
        Fixtures::generate_with(count, room_size, None)
    }

    /// [`Fixtures::generate`], with the tokens keyed by `secret` when there is one: user `i`'s
    /// token is then `t` and the first 16 bytes, in hex, of HMAC-SHA256(secret, `i` as 8
    /// big-endian bytes). Whoever knows the secret (the driver given the same `--fixture-secret`)
    /// derives the same users; nobody else can guess a token.
    pub fn generate_with(count: u64, room_size: u32, secret: Option<&FixtureSecret>) -> Fixtures {
        let size = u64::from(room_size.max(1));
        let users = (1..=count)
            .map(|i| User {
                user_id: i,
                username: format!("user{i}"),
                token: match secret {
                    Some(secret) => secret.token(i),
                    None => format!("t{:016x}", splitmix64(i)),
                },
                room_id: Some((i - 1) / size + 1),
            })
            .collect();
        let rooms = (1..=count.div_ceil(size))
            .map(|r| Room {
                room_id: r,
                room_name: format!("room{r}"),
                owner_id: (r - 1) * size + 1,
                room_size,
                notice: String::new(),
            })
            .collect();
        Fixtures {
            users,
            rooms,
            ..Fixtures::default()
        }
    }

    /// Reads a users file and checks that it is consistent: JSON (an object of users and
    /// rooms) or CSV (a header row, one user a row; see [`csv`]), told apart by the extension
    /// `.csv` or else by the content.
    pub fn load(path: &Path) -> Result<Fixtures, FixtureError> {
        let shown = path.display().to_string();
        let text = read_capped(path, MAX_USERS_FILE).map_err(|source| FixtureError::Read {
            path: shown.clone(),
            source,
        })?;
        let fixtures =
            Self::parse(&text, is_csv(path, &text)).map_err(|(line, column, message)| {
                FixtureError::Parse {
                    path: shown.clone(),
                    line,
                    column,
                    message,
                }
            })?;
        fixtures
            .validate()
            .map_err(|message| FixtureError::Invalid {
                path: shown,
                message,
            })?;
        Ok(fixtures)
    }

    /// Users file text: CSV or JSON; `Err` is (line, column, message).
    pub fn parse(text: &str, csv: bool) -> Result<Fixtures, (usize, usize, String)> {
        if csv {
            return csv::parse(text).map_err(|(line, message)| (line, 1, message));
        }
        if text.trim_start().starts_with('[') {
            // serde would read the list as the object's fields in order and complain about a
            // sequence; say what the file is and what it should be.
            return Err((1, 1, format!("the file is a JSON list; expected {SHAPE}")));
        }
        serde_json::from_str(text).map_err(|e| {
            let text = e.to_string();
            // serde_json ends its message with the location the error names already.
            let message = match text.rfind(" at line ") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            let message = if e.classify() == serde_json::error::Category::Data {
                format!("{message}; expected {SHAPE}")
            } else {
                message
            };
            // serde_json says column 0 at the start of a line (an empty file): a place in the
            // file counts from 1.
            (e.line().max(1), e.column().max(1), message)
        })
    }

    /// Writes the fixture as a users file: CSV for a `.csv` path, pretty JSON otherwise.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let text = if has_csv_extension(path) {
            csv::write(self)
        } else {
            serde_json::to_string_pretty(self).map_err(std::io::Error::other)?
        };
        std::fs::write(path, text)
    }

    /// Unique ids, names and tokens; every user's room exists and no room is over capacity.
    pub fn validate(&self) -> Result<(), String> {
        use std::collections::{HashMap, HashSet};
        let mut ids = HashSet::new();
        let mut names = HashSet::new();
        let mut tokens = HashSet::new();
        for u in &self.users {
            // As the CSV reader requires; a line break would also not survive a CSV file.
            if u.username.is_empty() || u.token.is_empty() {
                return Err(format!("user {} has no username or no token", u.user_id));
            }
            if u.username.contains(['\n', '\r']) || u.token.contains(['\n', '\r']) {
                return Err(format!(
                    "user {} has a line break in its username or token",
                    u.user_id
                ));
            }
            if !ids.insert(u.user_id) {
                return Err(format!("user_id {} appears twice", u.user_id));
            }
            if !names.insert(u.username.as_str()) {
                return Err(format!("username {:?} appears twice", u.username));
            }
            if !tokens.insert(u.token.as_str()) {
                return Err(format!("the token of user {} is not unique", u.user_id));
            }
        }
        let rooms: HashMap<u64, &Room> = self.rooms.iter().map(|r| (r.room_id, r)).collect();
        let mut occupancy: HashMap<u64, u32> = HashMap::new();
        for u in &self.users {
            if let Some(room_id) = u.room_id {
                let Some(room) = rooms.get(&room_id) else {
                    return Err(format!(
                        "user {} is in room {room_id}, which the file does not list",
                        u.user_id
                    ));
                };
                let n = occupancy.entry(room_id).or_default();
                *n += 1;
                if *n > room.room_size {
                    return Err(format!(
                        "room {room_id} has more users than its room_size {}",
                        room.room_size
                    ));
                }
            }
        }
        social::validate(self)
    }

    pub fn user_by_token(&self, token: &str) -> Option<&User> {
        self.users.iter().find(|u| u.token == token)
    }
}

/// The key of generated tokens (`--fixture-secret`). Without one, tokens follow from the user
/// index alone (anyone can compute them), which suits a server on one's own machine; a server
/// reachable by others needs a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct FixtureSecret(Vec<u8>);

impl FixtureSecret {
    /// The secret from its text (its UTF-8 bytes are the HMAC key); empty text is refused, as
    /// it would key nothing.
    pub fn new(text: &str) -> Result<FixtureSecret, String> {
        if text.is_empty() {
            return Err("the fixture secret is empty".into());
        }
        Ok(FixtureSecret(text.as_bytes().to_vec()))
    }

    /// User `index`'s token: `t` + hex of the first 16 bytes of HMAC-SHA256(secret, index).
    pub fn token(&self, index: u64) -> String {
        use hmac::{Mac as _, SimpleHmac};
        use std::fmt::Write as _;
        let mut mac = SimpleHmac::<sha2::Sha256>::new_from_slice(&self.0)
            .expect("HMAC takes a key of any length");
        mac.update(&index.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let mut token = String::with_capacity(33);
        token.push('t');
        for byte in &digest[..16] {
            write!(token, "{byte:02x}").expect("writing to a String");
        }
        token
    }
}

impl std::str::FromStr for FixtureSecret {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FixtureSecret::new(s)
    }
}

// The secret never shows in logs or debug output.
impl std::fmt::Debug for FixtureSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FixtureSecret(..)")
    }
}

fn has_csv_extension(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// A `.csv` file, or one whose first line is a CSV header naming `user_id` (JSON starts with
/// `{` or `[`).
fn is_csv(path: &Path, text: &str) -> bool {
    has_csv_extension(path) || {
        let first = text.trim_start().lines().next().unwrap_or_default();
        !first.starts_with(['{', '[']) && first.contains("user_id") && first.contains(',')
    }
}

/// SplitMix64: a tiny, fully specified mixer, so other implementations can derive the same tokens.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `users_file` fuzz target: a JSON users file could give a user an empty
    /// token (or a line break in one), which the CSV reader refuses, so the same users
    /// written as CSV did not read back. Both formats now refuse it.
    #[test]
    fn a_user_without_a_token_is_refused_in_json_as_in_csv() {
        for (name, token) in [("u", ""), ("", "t"), ("u", "t\nx"), ("a\rb", "t")] {
            let f = Fixtures {
                users: vec![User {
                    user_id: 3,
                    username: name.into(),
                    token: token.into(),
                    room_id: None,
                }],
                ..Fixtures::default()
            };
            let e = f.validate().unwrap_err();
            assert!(e.starts_with("user 3 has"), "{e}");
        }
        let csv = "user_id,username,token,room_id\n3,u,,\n";
        assert!(csv::parse(csv).is_err());
    }

    /// Found by the `users_file` fuzz target: an empty JSON users file was refused at
    /// `1:0`, a column that does not exist.
    #[test]
    fn an_empty_json_users_file_is_refused_at_a_real_column() {
        for text in ["", "\n", "  "] {
            let (line, column, message) = Fixtures::parse(text, false).unwrap_err();
            assert!(
                line >= 1 && column >= 1,
                "{text:?}: {line}:{column} {message}"
            );
            assert!(message.contains("EOF"), "{message}");
        }
    }

    #[test]
    fn generated_fixture_fills_rooms_in_order() {
        let f = Fixtures::generate(10, 4);
        assert_eq!(f.users.len(), 10);
        assert_eq!(f.rooms.len(), 3);
        assert_eq!(f.users[3].room_id, Some(1));
        assert_eq!(f.users[4].room_id, Some(2));
        assert_eq!(f.rooms[1].owner_id, 5);
        assert!(f.validate().is_ok());
        assert_eq!(f, Fixtures::generate(10, 4), "generation is deterministic");
    }

    #[test]
    fn without_a_secret_tokens_are_the_documented_splitmix64_ones() {
        let f = Fixtures::generate_with(3, 2, None);
        assert_eq!(f, Fixtures::generate(3, 2));
        // splitmix64(1), as the README documents it.
        assert_eq!(f.users[0].token, format!("t{:016x}", splitmix64(1)));
        assert_eq!(f.users[0].token, "t910a2dec89025cc1");
    }

    #[test]
    fn a_secret_keys_the_tokens() {
        let a = FixtureSecret::new("correct horse").unwrap();
        let b = FixtureSecret::new("battery staple").unwrap();
        let with_a = Fixtures::generate_with(50, 4, Some(&a));
        // Same secret, same users: a driver given the secret derives the server's tokens.
        assert_eq!(with_a, Fixtures::generate_with(50, 4, Some(&a.clone())));
        assert!(with_a.validate().is_ok());
        let with_b = Fixtures::generate_with(50, 4, Some(&b));
        let plain = Fixtures::generate(50, 4);
        for ((ua, ub), up) in with_a.users.iter().zip(&with_b.users).zip(&plain.users) {
            // Only the tokens change: ids, names and rooms stay those of the plain fixture.
            assert_eq!(
                (ua.user_id, &ua.username, ua.room_id),
                (up.user_id, &up.username, up.room_id)
            );
            assert_ne!(ua.token, ub.token, "another secret, other tokens");
            assert_ne!(
                ua.token, up.token,
                "a secret changes the predictable tokens"
            );
            assert_eq!(ua.token.len(), 33);
            assert!(ua.token.starts_with('t'));
        }
        assert_eq!(with_a.rooms, plain.rooms);
    }

    /// HMAC-SHA256 test vector (RFC 4231, test case 2: key "Jefe") checks the construction
    /// another implementation must follow, on the message the token uses.
    #[test]
    fn token_is_hmac_sha256_of_the_big_endian_index() {
        use hmac::{Mac as _, SimpleHmac};
        let mut mac = SimpleHmac::<sha2::Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let secret = FixtureSecret::new("Jefe").unwrap();
        let mut mac = SimpleHmac::<sha2::Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(&7u64.to_be_bytes());
        let expected: String = mac.finalize().into_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(secret.token(7), format!("t{expected}"));
    }

    #[test]
    fn an_empty_secret_is_refused_and_a_secret_is_never_printed() {
        assert!("".parse::<FixtureSecret>().is_err());
        let secret: FixtureSecret = "hunter2".parse().unwrap();
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn overfull_room_is_rejected() {
        let mut f = Fixtures::generate(4, 2);
        f.users[2].room_id = Some(1);
        assert!(f.validate().unwrap_err().contains("room_size"));
    }

    #[test]
    fn parse_error_names_line_and_column() {
        let dir = std::env::temp_dir().join(format!("rr-fixture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users.json");
        std::fs::write(&path, "{\n  \"users\": [\n    {\"user_id\": \"x\"}\n  ]\n}").unwrap();
        let err = Fixtures::load(&path).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        assert_eq!(err.matches("line 3").count(), 1, "said once: {err}");
        assert!(err.contains("\"users\": [{"), "the expected shape: {err}");
    }

    #[test]
    fn a_json_list_is_refused_with_the_expected_shape() {
        let list = r#"[{"user_id": 1, "username": "a", "token": "t", "room_id": 1}]"#;
        let err = Fixtures::parse(list, false).unwrap_err().2;
        assert!(err.contains("is a JSON list"), "{err}");
        assert!(!err.contains("expected a sequence"), "{err}");
        assert!(err.contains(r#"{"users": [{"user_id": 1"#), "{err}");
        assert!(err.contains("user_id,username,token,room_id"), "{err}");
    }

    #[test]
    fn csv_is_told_by_extension_or_content() {
        let csv = "user_id,username,token,room_id\n1,a,t,1\n";
        assert!(is_csv(Path::new("u.csv"), "{}"));
        assert!(is_csv(Path::new("users.txt"), csv));
        assert!(!is_csv(Path::new("users.json"), r#"{"users": []}"#));
        let dir = std::env::temp_dir().join(format!("rr-fixture-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["users.csv", "users"] {
            let path = dir.join(name);
            std::fs::write(&path, csv).unwrap();
            let f = Fixtures::load(&path).unwrap();
            assert_eq!((f.users.len(), f.rooms.len()), (1, 1), "{name}");
        }
        let path = dir.join("written.csv");
        Fixtures::generate(6, 2).save(&path).unwrap();
        assert_eq!(Fixtures::load(&path).unwrap(), Fixtures::generate(6, 2));
    }
}
