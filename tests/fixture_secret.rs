//! `--fixture-secret`: a server whose generated tokens are keyed by a secret admits the driver
//! given the same secret, and only it.

mod common;

use common::{roomrig_run, Served};

const SCENARIO: &str = "\
name: fixture-secret
dialect: dorm
eio: 4
seed: 7
users:
  generate: { count: 8, room_size: 4 }
deadline: 2s
phases:
  - { name: arrive, duration: 1s, arrival_rate: 8 }
clients:
  - name: member
    flow:
      - join_room
      - expect: { event: last_data, within: 2s }
      - message: { size: 16 }
      - think: 500ms
      - leave_room
thresholds:
  - violations == 0
";

#[test]
fn only_the_driver_with_the_servers_secret_logs_in() {
    let _permit = common::permit();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("fixture-secret.yaml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let server = Served::start(&[
        "--dialect",
        "dorm",
        "--generate-users",
        "8",
        "--fixture-secret",
        "s3cret",
    ]);

    let keyed = roomrig_run(
        &scenario,
        &["--target", &server.url, "--fixture-secret", "s3cret"],
    );
    assert_eq!(keyed.code, 0, "{}", keyed.explain());
    assert_eq!(
        keyed.report()["clients"]["planned"],
        8,
        "{}",
        keyed.explain()
    );
    // Split across workers, which get the keyed users without the secret on a command line.
    let split = roomrig_run(
        &scenario,
        &[
            "--target",
            &server.url,
            "--fixture-secret",
            "s3cret",
            "--workers",
            "2",
        ],
    );
    assert_eq!(split.code, 0, "{}", split.explain());

    // With the predictable default tokens, or another secret's, the joins are refused: the
    // clients never get their rooms (MUST violations, exit 1).
    for args in [vec![], vec!["--fixture-secret", "other"]] {
        let mut all = vec!["--target", server.url.as_str()];
        all.extend(args.iter().copied());
        let refused = roomrig_run(&scenario, &all);
        assert_eq!(refused.code, 1, "{args:?}: {}", refused.explain());
    }
}
