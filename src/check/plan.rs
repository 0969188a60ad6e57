//! Which users of the shared users file each case takes, decided before any case runs, so a
//! users file too small for the suite is a usage error and not a row of skipped cases.
//!
//! Every case takes a run of consecutive users starting at a room boundary, plus bystanders:
//! one user from each of the next [`BYSTANDER_ROOMS`] fixture rooms that no user of the case
//! is in. Against a target, the users of the first and the last room of the users file are
//! reserved for the suite-wide watch, which no case touches.

use std::collections::BTreeSet;

use reference_server::fixtures::Fixtures;

/// Neighbouring rooms a case has a bystander in.
pub const BYSTANDER_ROOMS: usize = 2;

/// The users of one case, as indices into the users file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseUsers {
    /// The case's clients are users `skip..skip + count` (the driver's `users_skip`).
    pub skip: usize,
    /// One user per neighbouring room, connected and joined while the case runs.
    pub bystanders: Vec<usize>,
}

/// The users of a whole suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One user per watched room (the first and the last room of the users file).
    pub watch: Vec<usize>,
    pub cases: Vec<CaseUsers>,
}

/// A room, or for a user without one, the user alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum RoomKey {
    Room(u64),
    Alone(usize),
}

fn room_of(f: &Fixtures, i: usize) -> RoomKey {
    match f.users[i].room_id {
        Some(r) => RoomKey::Room(r),
        None => RoomKey::Alone(i),
    }
}

/// The rooms the watch holds: the first and the last room of the users file (its room list,
/// or the rooms of its first and last users when it lists none).
fn watched_rooms(f: &Fixtures) -> Vec<RoomKey> {
    let n = f.users.len();
    let mut rooms: Vec<RoomKey> = match (f.rooms.first(), f.rooms.last()) {
        (Some(a), Some(b)) => vec![RoomKey::Room(a.room_id), RoomKey::Room(b.room_id)],
        _ if n > 0 => vec![room_of(f, 0), room_of(f, n - 1)],
        _ => Vec::new(),
    };
    rooms.dedup();
    rooms
}

/// Lays out `counts[k]` users for case `k`, in order. `watch`: reserve the watched rooms.
/// `Err(needed)`: the users file is too small; `needed` is what the suite would take from a
/// users file laid out like this one (rooms of the same size).
pub fn plan(counts: &[usize], f: &Fixtures, watch: bool) -> Result<Plan, usize> {
    match lay_out(counts, f, watch) {
        Some(plan) => Ok(plan),
        None => Err(needed(counts, f, watch)),
    }
}

/// How many users the suite takes from a users file with rooms like `f`'s.
pub fn needed(counts: &[usize], f: &Fixtures, watch: bool) -> usize {
    let size = f.rooms.first().map_or(4, |r| r.room_size.max(1));
    let total: usize = counts.iter().sum::<usize>() + 64;
    // A layout that always fits: enough rooms for every case, its bystanders and the watch.
    let big = Fixtures::generate((total * (2 + 2 * BYSTANDER_ROOMS)) as u64, size);
    let plan = lay_out(counts, &big, watch).expect("a large enough fixture");
    // The whole room of the last bystander (a file that ends inside it lacks its roommates).
    let mut end = plan
        .cases
        .iter()
        .flat_map(|c| c.bystanders.iter().copied())
        .max()
        .map_or(0, |last| last + 1);
    while end > 0 && end < big.users.len() && room_of(&big, end) == room_of(&big, end - 1) {
        end += 1;
    }
    // The watched last room of a file that ends right after the suite.
    end + if watch { size as usize } else { 0 }
}

fn lay_out(counts: &[usize], f: &Fixtures, watch: bool) -> Option<Plan> {
    let n = f.users.len();
    let reserved_rooms = if watch { watched_rooms(f) } else { Vec::new() };
    let reserved = |i: usize| reserved_rooms.contains(&room_of(f, i));
    let watch_users = reserved_rooms
        .iter()
        .filter_map(|room| (0..n).find(|&i| room_of(f, i) == *room))
        .collect();
    // The first user at or after `i` that starts a room and is not reserved.
    let next_start = |mut i: usize| {
        while i < n && (reserved(i) || (i > 0 && room_of(f, i) == room_of(f, i - 1))) {
            i += 1;
        }
        i
    };
    let mut cursor = 0;
    let mut cases = Vec::with_capacity(counts.len());
    for &count in counts {
        let mut skip = next_start(cursor);
        // A reserved user inside the window: start after it.
        while let Some(r) = (skip..(skip + count).min(n)).find(|&i| reserved(i)) {
            skip = next_start(r + 1);
        }
        if skip + count > n {
            return None;
        }
        let mut seen: BTreeSet<RoomKey> = (skip..skip + count).map(|i| room_of(f, i)).collect();
        let mut bystanders = Vec::with_capacity(BYSTANDER_ROOMS);
        let mut j = skip + count;
        while bystanders.len() < BYSTANDER_ROOMS && j < n {
            if !reserved(j) && seen.insert(room_of(f, j)) {
                bystanders.push(j);
            }
            j += 1;
        }
        if bystanders.len() < BYSTANDER_ROOMS {
            return None;
        }
        cases.push(CaseUsers { skip, bystanders });
        cursor = j;
    }
    Some(Plan {
        watch: watch_users,
        cases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_start_at_rooms_and_bystanders_sit_in_other_rooms() {
        let f = Fixtures::generate(100, 4);
        let plan = plan(&[4, 8, 2], &f, false).unwrap();
        assert!(plan.watch.is_empty());
        assert_eq!(plan.cases[0].skip, 0);
        assert_eq!(plan.cases[0].bystanders, vec![4, 8]);
        // After the last bystander's room: user 12 starts room 4.
        assert_eq!(plan.cases[1].skip, 12);
        assert_eq!(plan.cases[1].bystanders, vec![20, 24]);
        assert_eq!(plan.cases[2].skip, 28);
        // A case of 2 in a room of 4: its roommates are not bystanders.
        assert_eq!(plan.cases[2].bystanders, vec![32, 36]);
    }

    #[test]
    fn the_watch_keeps_the_first_and_last_rooms_to_itself() {
        let f = Fixtures::generate(40, 4);
        let plan = plan(&[4, 4], &f, true).unwrap();
        assert_eq!(plan.watch, vec![0, 36]);
        let used: Vec<usize> = plan
            .cases
            .iter()
            .flat_map(|c| (c.skip..c.skip + 4).chain(c.bystanders.iter().copied()))
            .collect();
        assert!(used.iter().all(|&i| (4..36).contains(&i)), "{used:?}");
    }

    #[test]
    fn too_few_users_says_how_many_are_needed() {
        let small = Fixtures::generate(12, 4);
        let needed = plan(&[4, 8], &small, true).unwrap_err();
        // Watch room, case 4 + 2 bystander rooms, case 8 + 2 bystander rooms, last room.
        assert_eq!(needed, 4 + 12 + 16 + 4);
        let enough = Fixtures::generate(needed as u64, 4);
        assert!(plan(&[4, 8], &enough, true).is_ok());
        assert!(plan(&[4, 8], &Fixtures::generate(needed as u64 - 4, 4), true).is_err());
    }

    #[test]
    fn users_without_rooms_are_rooms_of_one() {
        let mut f = Fixtures::generate(10, 4);
        for u in &mut f.users {
            u.room_id = None;
        }
        f.rooms.clear();
        let plan = plan(&[3], &f, true).unwrap();
        assert_eq!(plan.watch, vec![0, 9]);
        assert_eq!(plan.cases[0].skip, 1);
        assert_eq!(plan.cases[0].bystanders, vec![4, 5]);
    }
}
