//! An independent client speaks the voice protocol (seed 003) to the reference server: Python
//! `websockets` with its own PHP-style signature (tests/python/voice_client.py), installed by
//! this test into a virtualenv under the target directory.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{repo_file, Served};

/// The virtualenv's python, with tests/python/requirements.txt installed (once).
fn python() -> PathBuf {
    common::python_venv("voice-pyvenv", "tests/python/requirements.txt").join("bin/python")
}

#[test]
fn a_python_websockets_client_speaks_voice_to_the_reference_server() {
    let python = python();
    let server = Served::start(&["--dialect", "voice", "--generate-users", "4"]);
    // Generated users' tokens: `t` + splitmix64(i) in hex (see the README).
    let sid = |i: u64| format!("t{:016x}", reference_server::fixtures::splitmix64(i));
    let out = Command::new(python)
        .arg(repo_file("tests/python/voice_client.py"))
        .arg(&server.url)
        .arg(sid(1))
        .arg(sid(2))
        .output()
        .expect("the client runs");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}
