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
