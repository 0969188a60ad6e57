//! Hostile numbers and files: refused with exit 2 and a clear sentence before anything is
//! allocated or connected; a scenario that plans nobody never passes.

mod common;

use std::path::Path;
use std::process::Command;

use common::{repo_file, roomrig_run};

#[test]
fn a_scenario_that_plans_no_client_is_a_usage_error() {
    let o = roomrig_run(&repo_file("tests/scenarios/nobody.yaml"), &[]);
    assert_eq!(o.code, 2, "{}", o.explain());
    assert!(o.stderr.contains("plans no client"), "{}", o.stderr);
    assert!(o.summary().is_none(), "nothing ran");
}

#[test]
fn a_device_as_scenario_is_refused_without_filling_memory() {
    let o = roomrig_run(Path::new("/dev/zero"), &[]);
    assert_eq!(o.code, 2, "{}", o.explain());
    assert!(o.stderr.contains("larger than"), "{}", o.stderr);
}

#[test]
fn serve_refuses_a_billion_generated_users() {
    let out = Command::new(env!("CARGO_BIN_EXE_roomrig"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--generate-users",
            "1000000000",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1000000000"), "{stderr}");
}
