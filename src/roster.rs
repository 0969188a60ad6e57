//! The users of a run as the driver and the judge know them: each client's user, and the
//! lookups from what a payload names (user id, token, username) back to the client.

use std::collections::HashMap;
use std::sync::Mutex;

/// A user as the driver needs it.
pub struct UserInfo {
    pub user_id: u64,
    pub username: String,
    pub token: String,
    /// The fixture room and its capacity.
    pub room: Option<u64>,
    pub room_size: u32,
    /// The next user of the same fixture room (wrapping; the user itself when alone).
    pub roommate: u32,
}

/// Every client's user (client `n` is user `users[n]`), with reverse lookups.
pub struct Roster {
    pub users: Vec<UserInfo>,
    pub by_user_id: HashMap<u64, u32>,
    /// Clients by token (a seed-literal dorm broadcast names its sender by token).
    pub by_token: HashMap<String, u32>,
    pub by_username: HashMap<String, u32>,
    /// Each client's current Socket.IO id (for the `{sid:N}` template of hostile input).
    pub socket_ids: Box<[Mutex<String>]>,
    /// Friends and groups by user name (chat; empty unless [`Roster::with_social`]).
    pub social: Social,
}

/// The fixture's friend graph and groups, by user name (every user of the fixture, also
/// those without a client in this run).
#[derive(Default)]
pub struct Social {
    pub friends: HashMap<u64, Vec<String>>,
    pub groups: std::collections::BTreeMap<String, Vec<String>>,
    pub groups_of: HashMap<u64, Vec<String>>,
}

impl Roster {
    pub fn new(users: Vec<UserInfo>) -> Roster {
        let index = |key: fn(&UserInfo) -> _| {
            users
                .iter()
                .enumerate()
                .map(|(i, u)| (key(u), i as u32))
                .collect::<HashMap<String, u32>>()
        };
        let by_token = index(|u| u.token.clone());
        let by_username = index(|u| u.username.clone());
        Roster {
            by_user_id: users
                .iter()
                .enumerate()
                .map(|(i, u)| (u.user_id, i as u32))
                .collect(),
            by_token,
            by_username,
            socket_ids: users.iter().map(|_| Mutex::default()).collect(),
            users,
            social: Social::default(),
        }
    }

    /// Adds the fixture's friends and groups (see `reference_server::fixtures::social`).
    pub fn with_social(mut self, fixtures: &reference_server::fixtures::Fixtures) -> Roster {
        let graph = reference_server::fixtures::social::Social::of(fixtures);
        let names: HashMap<u64, &str> = fixtures
            .users
            .iter()
            .map(|u| (u.user_id, u.username.as_str()))
            .collect();
        let name = |id: &u64| names.get(id).map(|n| n.to_string());
        self.social.friends = graph
            .friends
            .iter()
            .map(|(&u, fs)| (u, fs.iter().filter_map(name).collect()))
            .collect();
        for (g, members) in &graph.groups {
            for m in members {
                self.social.groups_of.entry(*m).or_default().push(g.clone());
            }
            self.social
                .groups
                .insert(g.clone(), members.iter().filter_map(name).collect());
        }
        self
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }
}

impl crate::dialect::RunClients for Roster {
    fn username(&self, n: usize) -> Option<&str> {
        self.users.get(n).map(|u| u.username.as_str())
    }
    fn socket_id(&self, n: usize) -> Option<String> {
        self.socket_ids
            .get(n)
            .map(|id| crate::oracle::lock(id).clone())
    }
    fn token(&self, n: usize) -> Option<&str> {
        self.users.get(n).map(|u| u.token.as_str())
    }
    fn friends(&self, user_id: u64) -> Vec<String> {
        self.social
            .friends
            .get(&user_id)
            .cloned()
            .unwrap_or_default()
    }
    fn groups_of(&self, user_id: u64) -> Vec<String> {
        self.social
            .groups_of
            .get(&user_id)
            .cloned()
            .unwrap_or_default()
    }
    fn group_members(&self, group: &str) -> Vec<String> {
        self.social.groups.get(group).cloned().unwrap_or_default()
    }
    fn user_id(&self, username: &str) -> Option<u64> {
        let n = *self.by_username.get(username)?;
        Some(self.users[n as usize].user_id)
    }
}

impl Roster {
    /// What the dialect's request builders and reply checks know about client `client`.
    pub fn context(&self, client: u32, seq: u64) -> crate::dialect::OpContext<'_> {
        let user = &self.users[client as usize];
        crate::dialect::OpContext {
            client,
            user_id: user.user_id,
            username: &user.username,
            token: &user.token,
            home: user.room.map(|r| (r, user.room_size)),
            roommate: &self.users[user.roommate as usize].username,
            seq,
            run: self,
        }
    }
}
