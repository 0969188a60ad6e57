//! `roomrig k8s SCENARIO --shards N --target URL`: prints the Kubernetes manifests that run a
//! scenario as N shards (`run --shard K/N`, see [`crate::shard`]) and merge them, on the
//! engine roomrig's users already run, with no coordinator of roomrig's own.
//!
//! - a **ConfigMap** with the scenario file (and `--users`), mounted at `/scenario`;
//! - a **PersistentVolumeClaim** (ReadWriteMany) that every pod mounts at `/results`: each
//!   shard writes its report directory there and the merge reads them all. One shared volume is
//!   the simplest correct collection: no upload step, no credentials, and `kubectl cp` or any
//!   pod mounting the claim reads the result;
//! - an **Indexed Job** (`completionMode: Indexed`, `completions` = `parallelism` = N): pod K
//!   runs shard K, its index read from the `batch.kubernetes.io/job-completion-index`
//!   annotation through the downward API as `JOB_COMPLETION_INDEX`. A failed index is not
//!   retried (`backoffLimitPerIndex: 0`): a second attempt would start late and find its
//!   directory taken; the merge reports it instead;
//! - a **merge Job** that waits for the N parts (or for the end of the schedule and a grace)
//!   and runs `roomrig merge`, whose exit code is the verdict.
//!
//! **The start time** is fixed when the pods start, not when the manifests are printed: the
//! first shard pod to run writes `now + --start-margin` into `/results/NAME/start-at`
//! (created exclusively, so one pod wins) and every shard reads it. `kubectl apply` minutes
//! after printing still works; pods scheduled later than the margin (a slow image pull) are
//! late shards, reported as such. Re-running with the same NAME reuses an old start and old
//! directories: print again with a new `--name`, or delete `/results/NAME`.
//!
//! **Resources** come from the measured driver memory: the README's runs measured 10–23 KiB
//! of RSS per client; each pod requests [`KIB_PER_CLIENT`] per client of its share (the
//! worst, with headroom) above [`BASE_MIB`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::exit::Exit;
use crate::scenario::Scenario;

/// Driver memory per client a pod is given: the worst measured (23 KiB), with half again of
/// headroom.
pub const KIB_PER_CLIENT: u64 = 35;
/// The driver's memory before any client (runtime, histograms, the oracle's tables).
pub const BASE_MIB: u64 = 64;
/// One source address against one target address has ~28k ephemeral ports (32768–60999).
pub const PORTS_PER_SOURCE_ADDRESS: u64 = 28_232;
/// A ConfigMap holds at most 1 MiB.
const CONFIGMAP_MAX: usize = 1 << 20;

/// What `roomrig k8s` prints for.
#[derive(Debug, Clone)]
pub struct K8sRequest {
    pub scenario_path: PathBuf,
    pub shards: u32,
    pub target: String,
    pub image: String,
    pub users: Option<PathBuf>,
    /// The name of the run: objects are `NAME-...`, results in `/results/NAME`.
    pub name: Option<String>,
    pub namespace: Option<String>,
    /// How far ahead of the first shard pod's start the schedule starts.
    pub start_margin: Duration,
    pub storage_class: Option<String>,
    /// `--set` changes, passed on to every shard.
    pub set: Vec<String>,
}

/// The figures of a plan: the most clients of any shard and the schedule's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub clients: u64,
    pub max_per_shard: u64,
    pub expected_end: Duration,
}

/// Plans the shards as `--workers` plans its workers: whole fixture rooms each.
pub fn plan(scenario: &Scenario, fixtures: &reference_server::fixtures::Fixtures, n: u32) -> Plan {
    let arrivals = crate::schedule::arrivals(scenario, fixtures.users.len());
    let per = crate::shard::planned_per_shard(fixtures, &arrivals, n);
    Plan {
        clients: arrivals.len() as u64,
        max_per_shard: per.iter().copied().max().unwrap_or(0),
        expected_end: crate::schedule::expected_end(scenario, &arrivals),
    }
}

/// A DNS-1123 label from a scenario's name.
fn label(name: &str) -> String {
    let mut out: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    out.truncate(40);
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "roomrig".into()
    } else {
        out
    }
}

/// A word the pods' `sh` reads back as is.
fn sh(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The manifests, as one multi-document YAML text. `Err` is a usage error's message.
pub fn manifests(req: &K8sRequest) -> Result<String, String> {
    let n = req.shards;
    let scenario = Scenario::load_with(&req.scenario_path, &req.set).map_err(|e| e.to_string())?;
    crate::workers::check_splittable(crate::dialect::spec(&scenario.dialect.0))
        .map_err(|e| format!("--shards {n}: {e}"))?;
    crate::transport::check_target(&req.target).map_err(|e| e.to_string())?;
    if scenario.restart_step.is_some() {
        return Err(
            "`restart_server` restarts an embedded reference server; shards drive a target".into(),
        );
    }
    let fixtures =
        crate::driver::load_fixtures(&scenario, req.users.as_deref()).map_err(|e| e.to_string())?;
    if let Some(reason) = crate::schedule::plans_nobody(&scenario, fixtures.users.len()) {
        return Err(reason);
    }
    let plan = plan(&scenario, &fixtures, n);
    let name = req.name.clone().unwrap_or_else(|| label(&scenario.name));
    if name.len() > 40 || label(&name) != name {
        return Err(format!(
            "--name {name:?}: lower-case letters, digits and '-', at most 40 characters"
        ));
    }
    let text = std::fs::read_to_string(&req.scenario_path)
        .map_err(|e| format!("{}: {e}", req.scenario_path.display()))?;
    let mut data = serde_json::Map::new();
    data.insert("scenario.yaml".into(), text.into());
    // The users travel in the ConfigMap: `--users`, or the file the scenario names.
    let users = req.users.clone().or(match &scenario.users {
        crate::scenario::UsersSpec::File(f) => Some(f.clone()),
        _ => None,
    });
    let users_key = users.as_ref().map(|u| users_key(u));
    if let (Some(path), Some(key)) = (&users, &users_key) {
        let users =
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        data.insert(key.clone(), users.into());
    }
    let size: usize = data.values().map(|v| v.as_str().map_or(0, str::len)).sum();
    if size > CONFIGMAP_MAX - 4096 {
        return Err(format!(
            "the scenario and users file take {size} bytes; a ConfigMap holds at most 1 MiB: \
             generate the users in the scenario (`users: {{generate: ...}}`) or put the file \
             on the results volume and pass --set users.file=/results/..."
        ));
    }
    let memory_mib = BASE_MIB + (plan.max_per_shard * KIB_PER_CLIENT).div_ceil(1024);
    let meta = |suffix: &str| {
        let mut m = json!({
            "name": format!("{name}-{suffix}"),
            "labels": {"app.kubernetes.io/name": "roomrig", "roomrig/run": name},
        });
        if let Some(ns) = &req.namespace {
            m["namespace"] = ns.clone().into();
        }
        m
    };
    let results = format!("/results/{name}");
    let margin_s = req.start_margin.as_secs().max(1);
    // The shard's command line: everything but the index and the start, which the pod knows.
    let mut run_args = vec![
        "run".to_string(),
        "/scenario/scenario.yaml".into(),
        "--target".into(),
        req.target.clone(),
        "--no-progress".into(),
    ];
    if let Some(key) = &users_key {
        run_args.extend(["--users".into(), format!("/scenario/{key}")]);
    }
    for s in &req.set {
        run_args.extend(["--set".into(), s.clone()]);
    }
    let run_words: Vec<String> = run_args.iter().map(|a| sh(a)).collect();
    let shard_script = format!(
        r#"set -eu
dir={results}
mkdir -p "$dir"
# The first shard pod to run fixes the start for all: now + {margin_s} s, created exclusively.
( set -C; echo $(( $(date +%s) + {margin_s} )) > "$dir/start-at" ) 2>/dev/null || true
while [ ! -s "$dir/start-at" ]; do sleep 0.2; done
exec roomrig {run} --shard "$JOB_COMPLETION_INDEX/{n}" --start-at "$(cat "$dir/start-at")" --report-dir "$dir/shard-$JOB_COMPLETION_INDEX"
"#,
        results = sh(&results),
        run = run_words.join(" "),
    );
    // The merge waits for every part, or for the schedule's end and a grace past it.
    let wait_s = margin_s + plan.expected_end.as_secs() + 120;
    let merge_script = format!(
        r#"set -u
dir={results}
while [ ! -s "$dir/start-at" ]; do sleep 2; done
deadline=$(( $(cat "$dir/start-at") + {wait_s} ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  ended=$(cat "$dir"/shard-*/shard.json 2>/dev/null | grep -c '"state": "\(ran\|late\|failed\)"' || true)
  [ "$ended" -ge {n} ] && break
  sleep 2
done
exec roomrig merge "$dir"/shard-*/ --report-dir "$dir/merged" --overwrite --junit "$dir/merged/junit.xml"
"#,
        results = sh(&results),
    );
    let volumes = json!([
        {"name": "scenario", "configMap": {"name": format!("{name}-scenario")}},
        {"name": "results", "persistentVolumeClaim": {"claimName": format!("{name}-results")}},
    ]);
    let mounts = json!([
        {"name": "scenario", "mountPath": "/scenario", "readOnly": true},
        {"name": "results", "mountPath": "/results"},
    ]);
    let mut pvc_spec = json!({
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "1Gi"}},
    });
    if let Some(class) = &req.storage_class {
        pvc_spec["storageClassName"] = class.clone().into();
    }
    let docs = vec![
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta("scenario"),
            "data": data,
        }),
        json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": meta("results"),
            "spec": pvc_spec,
        }),
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": meta("shards"),
            "spec": {
                "completionMode": "Indexed",
                "completions": n,
                "parallelism": n,
                "backoffLimitPerIndex": 0,
                "maxFailedIndexes": n,
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": "roomrig", "roomrig/run": name, "roomrig/part": "shard"}},
                    "spec": {
                        "restartPolicy": "Never",
                        // One shard per node where the nodes allow: each pod's address then has
                        // its own ephemeral ports, and its own CPU.
                        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                            "weight": 100,
                            "podAffinityTerm": {
                                "topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {"matchLabels": {"roomrig/run": name, "roomrig/part": "shard"}},
                            },
                        }]}},
                        "containers": [{
                            "name": "shard",
                            "image": req.image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", shard_script],
                            "env": [{
                                "name": "JOB_COMPLETION_INDEX",
                                "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}},
                            }],
                            "resources": {
                                "requests": {"cpu": "1", "memory": format!("{memory_mib}Mi")},
                                "limits": {"memory": format!("{}Mi", memory_mib * 3 / 2)},
                            },
                            "volumeMounts": mounts.clone(),
                        }],
                        "volumes": volumes.clone(),
                    },
                },
            },
        }),
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": meta("merge"),
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": "roomrig", "roomrig/run": name, "roomrig/part": "merge"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{
                            "name": "merge",
                            "image": req.image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", merge_script],
                            "resources": {
                                "requests": {"cpu": "250m", "memory": "256Mi"},
                                "limits": {"memory": "1Gi"},
                            },
                            "volumeMounts": mounts,
                        }],
                        "volumes": volumes,
                    },
                },
            },
        }),
    ];
    let yaml = serde_saphyr::to_string_multiple(&docs).map_err(|e| e.to_string())?;
    let header = format!(
        "# roomrig k8s: {scenario_name} as {n} shards against {target}\n\
         # {clients} clients planned, at most {max} per shard (whole fixture rooms each); the\n\
         # schedule lasts ~{secs} s. Each shard pod asks {memory_mib} MiB ({BASE_MIB} MiB + \
         {KIB_PER_CLIENT} KiB per client: the worst\n\
         # measured 23 KiB, with headroom) and one open file per client: the container\n\
         # runtime's open-file limit (usually 1048576) must exceed it. One pod address has\n\
         # ~{PORTS_PER_SOURCE_ADDRESS} source ports per target address: keep shards under that.\n\
         # Apply: kubectl apply -f THIS. The first shard pod fixes the start ({margin_s} s later);\n\
         # the merge Job writes {results}/merged (summary.json, report.html, junit.xml) on the\n\
         # claim {name}-results, and its exit code is the verdict.\n",
        scenario_name = scenario.name,
        target = req.target,
        clients = plan.clients,
        max = plan.max_per_shard,
        secs = plan.expected_end.as_secs(),
    );
    let mut warnings = String::new();
    if plan.max_per_shard > PORTS_PER_SOURCE_ADDRESS {
        warnings.push_str(&format!(
            "# WARNING: {} clients in one shard exceed the ~{PORTS_PER_SOURCE_ADDRESS} source \
             ports of one pod address against one target address: use more shards.\n",
            plan.max_per_shard
        ));
    }
    Ok(format!("{header}{warnings}---\n{yaml}"))
}

/// The file name of the users file inside the ConfigMap (its extension tells the format).
fn users_key(path: &Path) -> String {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("csv") => "users.csv".into(),
        _ => "users.json".into(),
    }
}

/// `roomrig k8s`: prints the manifests; a scenario that cannot be sharded is a usage error.
pub fn print(req: &K8sRequest) -> i32 {
    match manifests(req) {
        Ok(yaml) => {
            crate::out::out!("{yaml}");
            Exit::Pass.code()
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Usage.code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_dns_labels() {
        assert_eq!(label("Dorm Smoke_1"), "dorm-smoke-1");
        assert_eq!(label("--"), "roomrig");
        assert_eq!(sh("it's"), r"'it'\''s'");
    }

    #[test]
    fn a_plan_keeps_rooms_whole_and_counts_each_shard() {
        let scenario = Scenario::load_with(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/dorm-exact.yaml"),
            &[],
        )
        .unwrap();
        let fixtures = crate::driver::load_fixtures(&scenario, None).unwrap();
        let p = plan(&scenario, &fixtures, 2);
        assert_eq!((p.clients, p.max_per_shard), (8, 4));
        assert_eq!(plan(&scenario, &fixtures, 3).max_per_shard, 4);
        assert_eq!(plan(&scenario, &fixtures, 1).max_per_shard, 8);
    }
}
