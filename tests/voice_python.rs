//! An independent client speaks the voice protocol (seed 003) to the reference server: Python
//! `websockets` with its own PHP-style signature (tests/python/voice_client.py), installed by
//! this test into a virtualenv under the target directory.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{repo_file, Served};

/// The virtualenv's python, with tests/python/requirements.txt installed (once).
fn python() -> PathBuf {
    let target = PathBuf::from(env!("CARGO_BIN_EXE_roomrig"))
        .parent()
        .and_then(|p| p.parent())
        .expect("the target directory")
        .to_path_buf();
    let venv = target.join("voice-pyvenv");
    let python = venv.join("bin/python");
    let ready = venv.join("installed");
    if !ready.exists() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 runs (needed for the independent voice client)");
        assert!(made.success(), "python3 -m venv {} failed", venv.display());
        let pip = Command::new(&python)
            .args(["-m", "pip", "install", "-q", "-r"])
            .arg(repo_file("tests/python/requirements.txt"))
            .status()
            .expect("pip runs");
        assert!(
            pip.success(),
            "pip could not install tests/python/requirements.txt (is PyPI reachable?)"
        );
        std::fs::write(&ready, "").unwrap();
    }
    python
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
