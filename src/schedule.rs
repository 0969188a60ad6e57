//! The open-loop schedule: when each client arrives and which group it runs, fixed by the seed
//! before any connection is made, so the same seed gives the same run.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::scenario::{Phase, Scenario};

/// One planned client.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    /// Index of the client (and of its user in the fixture).
    pub client: u32,
    /// Intended connect time, from the start of the run.
    pub at: Duration,
    /// Index of the client group.
    pub group: usize,
}

/// Arrival times of all phases, evenly spaced at the phase's (linearly ramping) rate, capped at
/// `max_clients` (one client per user).
pub fn arrivals(scenario: &Scenario, max_clients: usize) -> Vec<Arrival> {
    // Never more arrivals than clients can run: a high rate over a long phase plans only as
    // many as there are users.
    let mut times = Vec::new();
    let mut offset = 0.0f64;
    for phase in &scenario.phases {
        phase_times(phase, offset, max_clients, &mut times);
        offset += phase.duration.0.as_secs_f64();
    }
    // Counted groups take the earliest arrivals, in file order; the rest pick by weight.
    let counted: Vec<usize> = scenario
        .clients
        .iter()
        .enumerate()
        .flat_map(|(g, group)| std::iter::repeat_n(g, group.count.unwrap_or(0) as usize))
        .collect();
    let weights: Vec<u32> = scenario
        .clients
        .iter()
        .map(|g| if g.count.is_some() { 0 } else { g.weight })
        .collect();
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    if total == 0 {
        // Only counted groups: nobody else arrives.
        times.truncate(counted.len());
    }
    times.truncate(max_clients);
    let mut rng = client_rng(scenario.seed, u32::MAX);
    times
        .into_iter()
        .enumerate()
        .map(|(i, at)| {
            let group = match counted.get(i) {
                Some(&g) => g,
                None => {
                    let mut pick = rng.random_range(0..total);
                    weights
                        .iter()
                        .position(|&w| {
                            if pick < u64::from(w) {
                                true
                            } else {
                                pick -= u64::from(w);
                                false
                            }
                        })
                        .expect("pick < total")
                }
            };
            Arrival {
                client: i as u32,
                at: Duration::from_secs_f64(at),
                group,
            }
        })
        .collect()
}

/// Why a scenario plans no client at all (a run of nothing must not pass): `None` when it
/// plans at least one. `users`: how many users the run can use.
pub fn plans_nobody(scenario: &Scenario, users: usize) -> Option<String> {
    if !arrivals(scenario, users).is_empty() {
        return None;
    }
    Some(if users == 0 {
        "the scenario plans no client: there are no users to connect as (an empty users file?)"
            .to_string()
    } else {
        "the scenario plans no client: its phases make no arrival (an `arrival_rate` of 0 \
         without `ramp_to`, or a `duration` of 0s)"
            .to_string()
    })
}

/// What the schedule leaves out that the scenario seems to ask for, one sentence each: arrivals
/// cut off because there are fewer users than the phases plan, and counted groups (`count:`)
/// that the planned arrivals do not reach. The run goes on; these are warnings.
pub fn warnings(scenario: &Scenario, users: usize) -> Vec<String> {
    let mut out = Vec::new();
    let phases: u64 = scenario
        .phases
        .iter()
        .map(|p| {
            let (r0, d) = (p.arrival_rate.max(0.0), p.duration.0.as_secs_f64());
            let r1 = p.ramp_to.unwrap_or(r0).max(0.0);
            ((r0 + r1) / 2.0 * d).floor() as u64
        })
        .sum();
    let counted: u64 = scenario
        .clients
        .iter()
        .map(|g| u64::from(g.count.unwrap_or(0)))
        .sum();
    let weighted = scenario
        .clients
        .iter()
        .any(|g| g.count.is_none() && g.weight > 0);
    let wanted = if weighted {
        phases
    } else {
        phases.min(counted)
    };
    if wanted > users as u64 {
        out.push(format!(
            "the phases plan {wanted} arrivals but there are {users} users (one client per              user): arrivals stop after {users}; add users or lower the arrival rates"
        ));
    }
    let planned = wanted.min(users as u64);
    let mut taken = 0u64;
    for g in &scenario.clients {
        let Some(count) = g.count else { continue };
        let got = planned.saturating_sub(taken).min(u64::from(count));
        taken += u64::from(count);
        if got < u64::from(count) {
            out.push(format!(
                "client group `{}` (count: {count}) gets {got} of its {count} arrivals: the                  run plans {planned} arrivals and the counted groups before it take them first",
                g.name
            ));
        }
    }
    out
}

/// About when the scenario ends: the latest arrival plus the nominal length of its group's
/// flow (thinks at their mean, loops as counted or timed, `absent` expects and stalls in full,
/// reconnect waits), for the live view's time remaining. An estimate: replies and server
/// closes take what they take.
pub fn expected_end(scenario: &Scenario, arrivals: &[Arrival]) -> Duration {
    let lengths: Vec<Duration> = scenario.clients.iter().map(|g| nominal(&g.flow)).collect();
    arrivals
        .iter()
        .map(|a| a.at + lengths[a.group])
        .max()
        .unwrap_or(Duration::ZERO)
}

fn nominal(steps: &[crate::scenario::Step]) -> Duration {
    use crate::scenario::{Fault, Step, Think};
    steps
        .iter()
        .map(|step| match step {
            Step::Think(Think::Fixed(d)) => d.0,
            Step::Think(Think::Range { min, max }) => (min.0 + max.0) / 2,
            Step::Loop(l) => {
                let body = nominal(&l.steps);
                let counted = l.count.map(|n| body.saturating_mul(n));
                match (counted, l.duration) {
                    (Some(c), Some(d)) => c.min(d.0),
                    (Some(c), None) => c,
                    (None, Some(d)) => d.0,
                    (None, None) => body,
                }
            }
            Step::Expect(e) if e.absent => e.within.0,
            Step::Fault(Fault::Stall(d)) => d.0,
            Step::Fault(Fault::Reconnect(r)) => r.after.map_or(Duration::ZERO, |a| a.0),
            _ => Duration::ZERO,
        })
        .sum()
}

/// Arrival k of a phase happens when the integral of its rate reaches k:
/// N(t) = r0·t + (r1 − r0)·t² / (2D).
fn phase_times(phase: &Phase, offset: f64, cap: usize, out: &mut Vec<f64>) {
    let d = phase.duration.0.as_secs_f64();
    let r0 = phase.arrival_rate.max(0.0);
    let r1 = phase.ramp_to.unwrap_or(r0).max(0.0);
    let total = (r0 + r1) / 2.0 * d;
    let n = (total.floor() as u64).min(cap.saturating_sub(out.len()) as u64);
    let a = (r1 - r0) / (2.0 * d);
    for k in 0..n {
        let k = k as f64;
        let t = if a.abs() < 1e-12 {
            k / r0
        } else {
            // a·t² + r0·t − k = 0, the positive root.
            (-r0 + (r0 * r0 + 4.0 * a * k).sqrt()) / (2.0 * a)
        };
        out.push(offset + t.clamp(0.0, d));
    }
}

/// The random stream of one client: seeded by the run's seed and the client index only, so a
/// client's choices do not depend on how tasks interleave.
pub fn client_rng(seed: u64, client: u32) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(u64::from(client));
    rng
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn scenario(phases: &str) -> Scenario {
        Scenario::parse(
            &format!(
                "dialect: dorm\nseed: 7\nusers: {{ generate: {{ count: 1000, room_size: 4 }} }}\nphases:\n{phases}\nclients:\n  - {{ name: a, weight: 1, flow: [join_room] }}\n  - {{ name: b, weight: 3, flow: [join_room] }}\n"
            ),
            "t.yaml",
        )
        .unwrap()
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let a = arrivals(&scenario("  - { duration: 2s, arrival_rate: 10 }"), 1000);
        assert_eq!(a.len(), 20);
        assert_eq!(a[1].at, Duration::from_millis(100));
        assert_eq!(a[19].at, Duration::from_millis(1900));
    }

    #[test]
    fn ramp_counts_the_area_and_phases_follow_each_other() {
        let a = arrivals(
            &scenario("  - { duration: 10s, arrival_rate: 0, ramp_to: 20 }\n  - { duration: 1s, arrival_rate: 5 }"),
            1000,
        );
        assert_eq!(a.len(), 100 + 5);
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(a[99].at < Duration::from_secs(10));
        assert_eq!(a[100].at, Duration::from_secs(10));
    }

    #[test]
    fn same_seed_same_schedule_and_weights_hold() {
        let s = scenario("  - { duration: 100s, arrival_rate: 10 }");
        let a = arrivals(&s, 1000);
        assert_eq!(a, arrivals(&s, 1000));
        let b = a.iter().filter(|x| x.group == 1).count();
        assert!((650..850).contains(&b), "weight 3 of 4 got {b} of 1000");
    }

    #[test]
    fn counted_groups_take_the_first_arrivals() {
        let mut s = scenario("  - { duration: 1s, arrival_rate: 20 }");
        s.clients[1].count = Some(2);
        let a = super::arrivals(&s, 1000);
        assert_eq!(a.len(), 20);
        assert_eq!(a[0].group, 1);
        assert_eq!(a[1].group, 1);
        assert!(a[2..].iter().all(|x| x.group == 0));
        // Only counted groups: the arrivals stop at their sum.
        s.clients[0].count = Some(3);
        let a = super::arrivals(&s, 1000);
        let groups: Vec<usize> = a.iter().map(|x| x.group).collect();
        assert_eq!(groups, vec![0, 0, 0, 1, 1]);
    }

    #[test]
    fn a_cap_by_users_and_a_counted_group_without_arrival_are_warned() {
        let s = scenario("  - { duration: 10s, arrival_rate: 10 }");
        assert!(warnings(&s, 1000).is_empty());
        let w = warnings(&s, 30);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("plan 100 arrivals but there are 30 users"),
            "{w:?}"
        );
        // Two arrivals, three counted clients: the last group gets none.
        let mut s = scenario("  - { duration: 1s, arrival_rate: 2 }");
        s.clients[0].count = Some(2);
        s.clients[1].count = Some(1);
        let w = warnings(&s, 1000);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("`b` (count: 1) gets 0 of its 1"), "{w:?}");
        assert_eq!(
            arrivals(&s, 1000).iter().filter(|a| a.group == 1).count(),
            0
        );
        s.clients[0].count = Some(1);
        assert!(warnings(&s, 1000).is_empty());
    }

    #[test]
    fn the_expected_end_is_the_last_arrival_plus_its_flow() {
        let s = Scenario::parse(
            "dialect: dorm\nusers: { generate: { count: 10, room_size: 2 } }\nphases:\n  - { duration: 2s, arrival_rate: 2 }\nclients:\n  - name: a\n    flow:\n      - join_room\n      - loop: { count: 3, steps: [message, { think: { min: 1s, max: 3s } }] }\n      - { expect: { event: message, within: 500ms, absent: true } }\n",
            "t.yaml",
        )
        .unwrap();
        let a = arrivals(&s, 10);
        assert_eq!(a.last().unwrap().at, Duration::from_millis(1500));
        // 1.5 s + 3 x 2 s + 0.5 s.
        assert_eq!(expected_end(&s, &a), Duration::from_secs(8));
    }

    #[test]
    fn capped_at_users() {
        assert_eq!(
            arrivals(&scenario("  - { duration: 100s, arrival_rate: 10 }"), 30).len(),
            30
        );
    }
}
