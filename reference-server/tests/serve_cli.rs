//! The `reference-server` binary's command line, in its own process.

use std::io::BufRead as _;
use std::process::{Command, Stdio};

use reference_server::fixtures::Fixtures;

/// `--write-users FILE` writes the served users before the server listens: the file parses
/// back as a users file and holds exactly the generated users.
#[test]
fn write_users_exports_the_generated_users() {
    let dir = std::env::temp_dir().join(format!("roomrig-write-users-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("users.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_reference-server"))
        .args(["--listen", "127.0.0.1:0", "--generate-users", "10"])
        .args(["--room-size", "4", "--write-users"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("reference-server starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    child.kill().ok();
    child.wait().ok();
    assert!(
        line.starts_with("listening on http://127.0.0.1:"),
        "{line:?}"
    );

    let written = Fixtures::load(&file).expect("the written file is a valid users file");
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(written.users.len(), 10);
    assert_eq!(written.rooms.len(), 3);
    assert_eq!(written, Fixtures::generate(10, 4));
}

/// `--fixture-secret` (or `ROOMRIG_FIXTURE_SECRET`) keys the generated tokens: the written users
/// are those of `Fixtures::generate_with` and the secret, not the predictable ones.
#[test]
fn fixture_secret_keys_the_written_users() {
    use reference_server::fixtures::FixtureSecret;
    let dir = std::env::temp_dir().join(format!("roomrig-secret-users-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let written = |how: &str| {
        let file = dir.join(format!("{how}.json"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_reference-server"));
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--generate-users",
            "6",
            "--write-users",
        ])
        .arg(&file)
        .env_remove("ROOMRIG_FIXTURE_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        match how {
            "flag" => {
                cmd.args(["--fixture-secret", "k1"]);
            }
            "env" => {
                cmd.env("ROOMRIG_FIXTURE_SECRET", "k1");
            }
            _ => {}
        }
        let mut child = cmd.spawn().expect("reference-server starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        child.kill().ok();
        child.wait().ok();
        assert!(line.starts_with("listening on"), "{how}: {line:?}");
        Fixtures::load(&file).expect("a valid users file")
    };
    let keyed = Fixtures::generate_with(6, 4, Some(&FixtureSecret::new("k1").unwrap()));
    assert_eq!(written("flag"), keyed);
    assert_eq!(written("env"), keyed);
    assert_eq!(written("none"), Fixtures::generate(6, 4));
    std::fs::remove_dir_all(&dir).ok();
}
