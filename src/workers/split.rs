//! How a run is split: which dialects can be split at all, and which source address each
//! worker binds (which worker runs which client is `crate::share::owners`).

use std::net::{IpAddr, Ipv4Addr};

use crate::dialect::{Attribution, DialectSpec, RoomOf};
use crate::share::MAX_WORKERS;

/// Whether every delivery of the dialect stays inside one fixture room, so that a worker that
/// holds whole rooms sees every receiver of every broadcast it sends. `Err` says which event
/// crosses rooms.
///
/// Dialects with deliveries to every connection or to named rooms and users (`lobby`:
/// `otherLogedin`, `gotPublicMessage`, `gotPrivateMessage`, rooms named by the scenario) are
/// refused: a worker would see receipts of sends made in another process and could not
/// require deliveries to receivers living elsewhere, so its verdict would be incomplete.
pub fn check_splittable(spec: &DialectSpec) -> Result<(), String> {
    let refuse = |what: String| {
        Err(format!(
            "dialect `{}` cannot be split across processes: {what}, so no worker sees every \
             receiver of its broadcasts; run it with one process (--workers 1)",
            spec.name
        ))
    };
    if spec.uses_everyone {
        return refuse("some of its events go to every connection".to_string());
    }
    if let Some(d) = spec.departure {
        if let Some(event) = d.everyone.or(d.each_room) {
            return refuse(format!("departures are announced with `{event}`"));
        }
    }
    for e in spec.events {
        if e.attribution == Attribution::Reply {
            continue; // a reply goes to its requester only
        }
        let to = match e.room {
            RoomOf::SenderHome => continue,
            RoomOf::Field(f) => format!("the room named by its `{f}` field"),
            RoomOf::Everyone => "every connection".to_string(),
            RoomOf::ReceiverUser => "a user named by the sender".to_string(),
        };
        return refuse(format!("`{}` goes to {to}", e.name));
    }
    Ok(())
}

/// The source address worker `k` binds its client sockets to: 127.0.0.(k + 2) when the target
/// is an IPv4 loopback address (or `localhost`), else none (the system picks).
///
/// A TCP connection is told apart by (source address, source port, target address, target
/// port). Against one server address, one source address has the ephemeral port range
/// (32768–60999 here, about 28k ports) to give; since a socket bound to an address before
/// `connect` takes its port at bind time, the range is shared by every connection from that
/// address. One address per worker gives each worker its own 28k ports, and the open-file
/// limit (20,000 per process here) keeps a worker below that anyway.
pub fn source_addr(target: &str, k: u32) -> Option<IpAddr> {
    let target = crate::transport::net::Target::parse(target).ok()?;
    let host = target.host();
    if host.starts_with('[') {
        return None; // IPv6
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
    (loopback && k < MAX_WORKERS).then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, (k + 2) as u8)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dialects_confined_to_fixture_rooms_split() {
        assert!(check_splittable(crate::dialect::spec("dorm")).is_ok());
        let err = check_splittable(crate::dialect::spec("lobby")).unwrap_err();
        assert!(
            err.contains("lobby") && err.contains("--workers 1"),
            "{err}"
        );
    }

    #[test]
    fn loopback_targets_get_one_source_address_per_worker() {
        let a = |t: &str, k| source_addr(t, k).map(|ip| ip.to_string());
        assert_eq!(a("http://127.0.0.1:3000", 0).as_deref(), Some("127.0.0.2"));
        assert_eq!(a("http://localhost:3000", 3).as_deref(), Some("127.0.0.5"));
        assert_eq!(a("ws://127.0.0.1", 1).as_deref(), Some("127.0.0.3"));
        assert_eq!(a("http://10.0.0.5:3000", 0), None);
        assert_eq!(a("http://[::1]:3000", 0), None);
        assert_eq!(a("http://example.com:80", 0), None);
    }
}
