//! `roomrig k8s` prints Kubernetes manifests: they are validated offline against the
//! Kubernetes JSON schemas by `kubernetes-validate` (PyPI, its schemas bundled; installed by
//! this test into a virtualenv under the target directory), their shard/index wiring is
//! checked, and the pods' own scripts are played on loopback: two "pods" of the Indexed Job
//! and the merge Job, with /results and /scenario as local directories, against one
//! reference server.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use common::{permit, repo_file, Served};

const SCENARIO: &str = "tests/scenarios/dorm-exact.yaml";

/// The virtualenv's bin directory, with tests/python/k8s-requirements.txt installed (once).
fn venv_bin() -> PathBuf {
    common::python_venv("k8s-pyvenv", "tests/python/k8s-requirements.txt").join("bin")
}

fn k8s(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_roomrig"))
        .arg("k8s")
        .arg(repo_file(SCENARIO))
        .args(args)
        .output()
        .expect("roomrig k8s runs")
}

/// The documents of a YAML file, read by PyYAML (another parser than the one that wrote it).
fn documents(bin: &Path, yaml: &Path) -> Vec<Value> {
    let out = Command::new(bin.join("python"))
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(yaml)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn validate(bin: &Path, yaml: &Path) -> std::process::Output {
    Command::new(bin.join("kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", "1.29.0"])
        .arg(yaml)
        .output()
        .unwrap()
}

fn kind<'a>(docs: &'a [Value], kind: &str, suffix: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"].as_str().unwrap().ends_with(suffix))
        .unwrap_or_else(|| panic!("no {kind} *{suffix}"))
}

fn script(job: &Value) -> String {
    let c = &job["spec"]["template"]["spec"]["containers"][0]["command"];
    assert_eq!(c[0], "sh");
    assert_eq!(c[1], "-c");
    c[2].as_str().unwrap().to_string()
}

#[test]
fn manifests_validate_and_wire_each_pod_to_its_shard() {
    let bin = venv_bin();
    let tmp = tempfile::tempdir().unwrap();
    let out = k8s(&[
        "--shards",
        "3",
        "--target",
        "http://dorm-server.load.svc:3000",
        "--image",
        "registry.example/roomrig:1",
        "--namespace",
        "load",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = tmp.path().join("run.yaml");
    std::fs::write(&yaml, &out.stdout).unwrap();
    let v = validate(&bin, &yaml);
    assert!(
        v.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    // The validator bites: an unknown field of a Job is refused in strict mode.
    let broken = tmp.path().join("broken.yaml");
    let text = String::from_utf8_lossy(&out.stdout).replace("completionMode:", "completionMod:");
    std::fs::write(&broken, text).unwrap();
    assert!(!validate(&bin, &broken).status.success());

    let docs = documents(&bin, &yaml);
    assert_eq!(docs.len(), 4);
    for d in &docs {
        assert_eq!(d["metadata"]["namespace"], "load", "{d}");
    }
    let cm = kind(&docs, "ConfigMap", "-scenario");
    assert_eq!(
        cm["data"]["scenario.yaml"].as_str().unwrap(),
        std::fs::read_to_string(repo_file(SCENARIO)).unwrap()
    );
    let pvc = kind(&docs, "PersistentVolumeClaim", "-results");
    assert_eq!(pvc["spec"]["accessModes"][0], "ReadWriteMany");
    let job = kind(&docs, "Job", "-shards");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(
        (spec["completions"].as_u64(), spec["parallelism"].as_u64()),
        (Some(3), Some(3))
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "registry.example/roomrig:1");
    assert_eq!(c["env"][0]["name"], "JOB_COMPLETION_INDEX");
    assert_eq!(
        c["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    );
    let s = script(job);
    assert!(s.contains(r#"--shard "$JOB_COMPLETION_INDEX/3""#), "{s}");
    assert!(
        s.contains("'--target' 'http://dorm-server.load.svc:3000'"),
        "{s}"
    );
    assert!(
        s.contains(r#"--report-dir "$dir/shard-$JOB_COMPLETION_INDEX""#),
        "{s}"
    );
    // 4 clients at most per shard (whole rooms of 4): 64 MiB + 4 x 35 KiB.
    assert_eq!(c["resources"]["requests"]["memory"], "65Mi");
    let merge = script(kind(&docs, "Job", "-merge"));
    assert!(
        merge.contains("roomrig merge") && merge.contains("-ge 3"),
        "{merge}"
    );

    // A dialect that cannot be split is refused, as --workers refuses it.
    let lobby = Command::new(env!("CARGO_BIN_EXE_roomrig"))
        .arg("k8s")
        .arg(repo_file("scenarios/lobby-smoke.yaml"))
        .args(["--shards", "2", "--target", "http://x:3000"])
        .output()
        .unwrap();
    assert_eq!(lobby.status.code(), Some(2));
}

#[test]
fn the_pods_scripts_run_the_shards_and_the_merge() {
    let _permit = permit();
    let bin = venv_bin();
    let served = Served::dorm_of_eight();
    let tmp = tempfile::tempdir().unwrap();
    let out = k8s(&[
        "--shards",
        "2",
        "--target",
        &served.url,
        "--start-margin",
        "3s",
        "--name",
        "play",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = tmp.path().join("run.yaml");
    std::fs::write(&yaml, &out.stdout).unwrap();
    let docs = documents(&bin, &yaml);
    // The volumes as local directories: the ConfigMap's files and an empty results volume.
    let (scenario_dir, results_dir) = (tmp.path().join("scenario"), tmp.path().join("results"));
    std::fs::create_dir_all(&scenario_dir).unwrap();
    std::fs::create_dir_all(&results_dir).unwrap();
    for (file, text) in kind(&docs, "ConfigMap", "-scenario")["data"]
        .as_object()
        .unwrap()
    {
        std::fs::write(scenario_dir.join(file), text.as_str().unwrap()).unwrap();
    }
    let local = |s: String| {
        s.replace("/results/", &format!("{}/", results_dir.display()))
            .replace("/scenario/", &format!("{}/", scenario_dir.display()))
    };
    let path = format!(
        "{}:{}",
        Path::new(env!("CARGO_BIN_EXE_roomrig"))
            .parent()
            .unwrap()
            .display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let pod = |script: &str, index: Option<u32>| {
        let mut c = Command::new("sh");
        c.args(["-c", script]).env("PATH", &path);
        if let Some(k) = index {
            c.env("JOB_COMPLETION_INDEX", k.to_string());
        }
        c.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let shard_script = local(script(kind(&docs, "Job", "-shards")));
    let merge_script = local(script(kind(&docs, "Job", "-merge")));
    let merger = pod(&merge_script, None);
    let shards: Vec<_> = (0..2).map(|k| pod(&shard_script, Some(k))).collect();
    for (k, s) in shards.into_iter().enumerate() {
        let o = s.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "pod {k}: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = merger.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "merge: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let merged = results_dir.join("play/merged");
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(merged.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(s["verdict"]["status"], "pass");
    assert_eq!(s["clients"]["connected"], 8);
    assert_eq!(s["events"]["received"], 136);
    assert!(merged.join("junit.xml").is_file());
    // One start for both shards, fixed by the first pod.
    let start = std::fs::read_to_string(results_dir.join("play/start-at")).unwrap();
    for k in 0..2 {
        let f: Value = serde_json::from_str(
            &std::fs::read_to_string(results_dir.join(format!("play/shard-{k}/shard.json")))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(f["shard"], k);
        let at = f["start_at"].as_str().unwrap();
        let secs: i64 = start.trim().parse().unwrap();
        assert_eq!(
            chrono::DateTime::parse_from_rfc3339(at)
                .unwrap()
                .timestamp(),
            secs,
            "{at} vs {start}"
        );
    }
}
