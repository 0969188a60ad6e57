//! What a load value means, as `--set` changes to the scenario (so each step's scenario is
//! checked and reported as a file's would be, and its summary shows the changes).
//!
//! - `--vary rate`: the load multiplies each client's send rate. Every `think` inside a `loop`
//!   is divided by it (a `{min, max}` think has both divided); a `loop` with a `count` that is
//!   not inside another loop has its count multiplied, so it lasts as long as before; the push
//!   backend's `rate` is multiplied. Connects, joins and the pauses outside loops stay as they
//!   are: 2 is twice the messages per second for the same time.
//! - `--vary clients`: the load is the number of clients. Every phase's `arrival_rate` (and
//!   `ramp_to`) is scaled by load / the scenario's own number of clients, so the clients
//!   arrive over the same time, and generated users are `load` (`users.generate.count`). A
//!   users file must have at least as many users.

use crate::scenario::{Scenario, Step, Think, UsersSpec};

/// What the load varies.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Vary {
    /// Each client's send rate, as a multiple of the scenario's own (1 = as written).
    Rate,
    /// The number of clients.
    Clients,
}

impl Vary {
    /// A load as the console shows it: `×2.5`, or `2000 clients`.
    pub fn show(self, load: f64) -> String {
        match self {
            Vary::Rate => format!("×{}", trim(load)),
            Vary::Clients => format!("{load:.0} clients"),
        }
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The scenario as the load scales it.
#[derive(Debug, Clone)]
pub struct Scaling {
    pub vary: Vary,
    /// The scenario's own number of clients (its arrivals, capped by its users).
    pub base_clients: u64,
    /// Users available to clients: generated ones can be made as many as needed; a file's
    /// cannot (`None`: generated).
    pub users_in_file: Option<u64>,
    /// (path, think) of every think to divide, for `--vary rate`.
    thinks: Vec<(String, Think)>,
    /// (path, count) of every top-level counted loop.
    counts: Vec<(String, u32)>,
    /// The push backend's rate.
    push_rate: Option<f64>,
    /// (path, rate, ramp_to) of every phase.
    phases: Vec<(String, f64, Option<f64>)>,
    generated: bool,
}

impl Scaling {
    /// Reads what the load will change from the scenario; says why a vary cannot apply.
    pub fn new(scenario: &Scenario, vary: Vary) -> Result<Scaling, String> {
        let (users, users_in_file, generated) = match &scenario.users {
            UsersSpec::Generate { count, .. } => (*count, None, true),
            UsersSpec::File(path) => {
                let n = reference_server::fixtures::Fixtures::load(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?
                    .users
                    .len() as u64;
                (n, Some(n), false)
            }
        };
        let base_clients = crate::schedule::arrivals(scenario, users as usize).len() as u64;
        let mut thinks = Vec::new();
        let mut counts = Vec::new();
        for (g, group) in scenario.clients.iter().enumerate() {
            walk(
                &group.flow,
                &format!("clients[{g}].flow"),
                0,
                &mut thinks,
                &mut counts,
            );
        }
        let phases = scenario
            .phases
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("phases[{i}]"), p.arrival_rate, p.ramp_to))
            .collect();
        let scaling = Scaling {
            vary,
            base_clients,
            users_in_file,
            thinks,
            counts,
            push_rate: scenario.push.as_ref().map(|p| p.rate),
            phases,
            generated,
        };
        if vary == Vary::Rate && scaling.thinks.is_empty() && scaling.push_rate.is_none() {
            return Err(
                "--vary rate: the scenario has no `think` inside a `loop` (and no push \
                        backend), so there is no send rate to scale; use --vary clients"
                    .into(),
            );
        }
        if vary == Vary::Clients && base_clients == 0 {
            return Err("--vary clients: the scenario plans no clients".into());
        }
        Ok(scaling)
    }

    /// The `--set` changes that put the scenario at `load`.
    pub fn sets(&self, load: f64) -> Result<Vec<String>, String> {
        let mut sets = Vec::new();
        match self.vary {
            Vary::Rate => {
                for (path, think) in &self.thinks {
                    let div = |d: &crate::scenario::Dur| micros(d.0.as_secs_f64() * 1e6 / load);
                    match think {
                        Think::Fixed(d) => sets.push(format!("{path}={}", div(d))),
                        Think::Range { min, max } => {
                            sets.push(format!("{path}.min={}", div(min)));
                            sets.push(format!("{path}.max={}", div(max)));
                        }
                    }
                }
                for (path, count) in &self.counts {
                    let scaled = (f64::from(*count) * load).round().max(1.0);
                    sets.push(format!("{path}={scaled:.0}"));
                }
                if let Some(rate) = self.push_rate {
                    sets.push(format!("push.rate={}", rate * load));
                }
            }
            Vary::Clients => {
                let clients = load.round().max(1.0) as u64;
                if let Some(n) = self.users_in_file {
                    if clients > n {
                        return Err(format!(
                            "--vary clients: {clients} clients need {clients} users, but the users file has {n}; lower --max or use a larger users file"
                        ));
                    }
                }
                let k = clients as f64 / self.base_clients as f64;
                for (path, rate, ramp_to) in &self.phases {
                    sets.push(format!("{path}.arrival_rate={}", rate * k));
                    if let Some(r) = ramp_to {
                        sets.push(format!("{path}.ramp_to={}", r * k));
                    }
                }
                if self.generated {
                    sets.push(format!("users.generate.count={clients}"));
                }
            }
        }
        Ok(sets)
    }
}

/// A duration in microseconds as a scenario writes it.
fn micros(us: f64) -> String {
    format!("{}us", trim(us.max(0.0)))
}

/// Collects the thinks inside loops and the top-level counted loops of `flow` at `path`.
fn walk(
    flow: &[Step],
    path: &str,
    depth: usize,
    thinks: &mut Vec<(String, Think)>,
    counts: &mut Vec<(String, u32)>,
) {
    for (i, step) in flow.iter().enumerate() {
        match step {
            Step::Think(t) if depth > 0 => thinks.push((format!("{path}[{i}].think"), *t)),
            Step::Loop(l) => {
                if let (0, Some(count)) = (depth, l.count) {
                    counts.push((format!("{path}[{i}].loop.count"), count));
                }
                walk(
                    &l.steps,
                    &format!("{path}[{i}].loop.steps"),
                    depth + 1,
                    thinks,
                    counts,
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SCENARIO: &str = "name: t
dialect: dorm
users:
  generate: { count: 40, room_size: 4 }
phases:
  - { duration: 2s, arrival_rate: 10, ramp_to: 30 }
clients:
  - name: a
    flow:
      - join_room
      - think: 1s
      - loop:
          duration: 10s
          steps:
            - message: { size: 16 }
            - think: 500ms
      - loop:
          count: 4
          steps:
            - message: { size: 16 }
            - think: { min: 200ms, max: 400ms }
            - loop:
                count: 2
                steps: [ { think: 100ms } ]
      - leave_room
";

    fn load(sets: &[String]) -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.yaml");
        std::fs::write(&path, SCENARIO).unwrap();
        Scenario::load_with(&path, sets).unwrap()
    }

    fn think_ms(step: &Step) -> (f64, f64) {
        match step {
            Step::Think(Think::Fixed(d)) => (d.0.as_secs_f64() * 1e3, d.0.as_secs_f64() * 1e3),
            Step::Think(Think::Range { min, max }) => {
                (min.0.as_secs_f64() * 1e3, max.0.as_secs_f64() * 1e3)
            }
            other => panic!("not a think: {other:?}"),
        }
    }

    fn loop_of(step: &Step) -> &crate::scenario::LoopStep {
        match step {
            Step::Loop(l) => l,
            other => panic!("not a loop: {other:?}"),
        }
    }

    #[test]
    fn rate_divides_the_thinks_inside_loops_and_keeps_counted_loops_as_long() {
        let base = load(&[]);
        let scaling = Scaling::new(&base, Vary::Rate).unwrap();
        let scaled = load(&scaling.sets(2.5).unwrap());
        let flow = &scaled.clients[0].flow;
        // The pause before the loops is not a send rate.
        assert_eq!(think_ms(&flow[1]), (1000.0, 1000.0));
        let first = loop_of(&flow[2]);
        assert_eq!(first.duration.unwrap().0, Duration::from_secs(10));
        assert_eq!(think_ms(&first.steps[1]), (200.0, 200.0));
        let second = loop_of(&flow[3]);
        assert_eq!(second.count, Some(10));
        assert_eq!(think_ms(&second.steps[1]), (80.0, 160.0));
        // A nested counted loop keeps its count; its thinks are divided.
        let inner = loop_of(&second.steps[2]);
        assert_eq!(inner.count, Some(2));
        assert_eq!(think_ms(&inner.steps[0]), (40.0, 40.0));
        // The rest of the scenario is untouched.
        assert_eq!(scaled.phases[0].arrival_rate, 10.0);
        assert_eq!(scaling.base_clients, 40);
    }

    #[test]
    fn clients_scale_the_arrivals_and_the_generated_users() {
        let base = load(&[]);
        let scaling = Scaling::new(&base, Vary::Clients).unwrap();
        let scaled = load(&scaling.sets(100.0).unwrap());
        assert_eq!(scaled.phases[0].arrival_rate, 25.0);
        assert_eq!(scaled.phases[0].ramp_to, Some(75.0));
        assert!(matches!(
            scaled.users,
            UsersSpec::Generate { count: 100, .. }
        ));
        let planned = crate::schedule::arrivals(&scaled, 100).len();
        assert_eq!(planned, 100);
        // The think times are not touched.
        assert_eq!(
            think_ms(&loop_of(&scaled.clients[0].flow[2]).steps[1]).0,
            500.0
        );
    }

    #[test]
    fn more_clients_than_a_users_file_holds_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users.json");
        reference_server::fixtures::Fixtures::generate(8, 4)
            .save(&users)
            .unwrap();
        let text = SCENARIO
            .replace("  generate: { count: 40, room_size: 4 }\n", "")
            .replace("users:\n", "users:\n  file: users.json\n");
        let path = dir.path().join("s.yaml");
        std::fs::write(&path, text).unwrap();
        let base = Scenario::load_with(&path, &[]).unwrap();
        let scaling = Scaling::new(&base, Vary::Clients).unwrap();
        assert_eq!(scaling.base_clients, 8);
        assert!(scaling.sets(8.0).is_ok());
        let err = scaling.sets(9.0).unwrap_err();
        assert!(err.contains("users file has 8"), "{err}");
    }

    #[test]
    fn rate_needs_a_think_inside_a_loop() {
        let text = "name: t\ndialect: dorm\nusers:\n  generate: { count: 4, room_size: 4 }\nphases:\n  - { duration: 1s, arrival_rate: 4 }\nclients:\n  - name: a\n    flow: [ join_room, { think: 1s }, leave_room ]\n";
        let s = Scenario::parse(text, "t").unwrap();
        let err = Scaling::new(&s, Vary::Rate).unwrap_err();
        assert!(err.contains("--vary clients"), "{err}");
        assert!(Scaling::new(&s, Vary::Clients).is_ok());
    }
}
