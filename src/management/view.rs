//! What the API and the console show: the array as stripes (name, slot ranges,
//! active, term, commit index), each stripe's servers and voters with their state and
//! light, a server's clients. These types cross the group port too (one server asks
//! another for its report), so they are plain data with serde, built in
//! [`super::state`] (this server) and [`super::peer`] (the others).

use serde::{Deserialize, Serialize};

use crate::replication::stripe::ServerState;

/// Hash slots of the array (DESIGN.md §7).
pub const SLOTS: u32 = 16_384;

/// One server or voter as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerReport {
    pub name: String,
    pub stripe: String,
    /// `server` or `voter`.
    pub kind: String,
    pub host: String,
    pub client_port: Option<u16>,
    pub management_port: Option<u16>,
    /// False when the server did not answer: its state is then `STOPPED`, its light red.
    pub reachable: bool,
    /// DESIGN.md §2's state name and its light (`red`, `orange`, `cyan`, `green`).
    pub state: String,
    pub light: String,
    /// `active`, `mirror` or `voter`.
    pub role: String,
    pub node_id: Option<u64>,
    pub term: Option<u64>,
    pub commit_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub last_log_index: Option<u64>,
    /// The last log index removed from this member's log (its snapshot holds it);
    /// absent from a report of an older server.
    #[serde(default)]
    pub purged_index: Option<u64>,
    /// Entries behind the active's log, as the active sees it (none for the active
    /// itself, or when no active answers).
    pub lag: Option<u64>,
    /// The stripe's active as this server knows it.
    pub active: Option<String>,
    pub used_memory_bytes: Option<u64>,
    pub data_storage_bytes: Option<u64>,
    pub keys: Option<u64>,
    pub clients: Option<u64>,
    pub ops_per_sec: Option<f64>,
    pub uptime_s: Option<u64>,
    pub version: Option<String>,
    /// Why it is red, or the last thing that went wrong on it.
    pub last_error: Option<String>,
    /// On the active: every member's lag behind its log.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberLag>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberLag {
    pub name: String,
    pub node_id: u64,
    pub voting: bool,
    pub lag: Option<u64>,
}

impl ServerReport {
    /// A member that did not answer: red, with the reason.
    pub fn unreachable(name: &str, stripe: &str, voter: bool, host: &str, why: String) -> ServerReport {
        let mut report = ServerReport::empty(name, stripe, voter, host);
        report.last_error = Some(why);
        report
    }

    /// A member nothing is known about yet: `STOPPED`, red.
    pub fn empty(name: &str, stripe: &str, voter: bool, host: &str) -> ServerReport {
        ServerReport {
            name: name.to_string(),
            stripe: stripe.to_string(),
            kind: if voter { "voter" } else { "server" }.to_string(),
            host: host.to_string(),
            client_port: None,
            management_port: None,
            reachable: false,
            state: ServerState::Stopped.name().to_string(),
            light: ServerState::Stopped.light().to_string(),
            role: role_of(ServerState::Stopped, voter).to_string(),
            node_id: None,
            term: None,
            commit_index: None,
            applied_index: None,
            last_log_index: None,
            purged_index: None,
            lag: None,
            active: None,
            used_memory_bytes: None,
            data_storage_bytes: None,
            keys: None,
            clients: None,
            ops_per_sec: None,
            uptime_s: None,
            version: None,
            last_error: None,
            members: Vec::new(),
        }
    }

    pub fn set_state(&mut self, state: ServerState) {
        self.state = state.name().to_string();
        self.light = state.light().to_string();
        self.role = role_of(state, self.kind == "voter").to_string();
    }

    pub fn server_state(&self) -> Option<ServerState> {
        ServerState::parse(&self.state)
    }
}

/// DESIGN.md §2's roles: the active, its mirrors, and voters.
pub fn role_of(state: ServerState, voter: bool) -> &'static str {
    if voter {
        "voter"
    } else if state.is_leading() {
        // A suspended active still leads its stripe: it is orange, not a mirror.
        "active"
    } else {
        "mirror"
    }
}

/// One stripe: its slots, its active and its members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StripeView {
    pub name: String,
    /// Inclusive ranges of hash slots this stripe owns.
    pub slots: Vec<[u32; 2]>,
    pub active: Option<String>,
    pub term: Option<u64>,
    pub commit_index: Option<u64>,
    pub servers: Vec<ServerReport>,
}

/// The whole array as one server sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    pub name: String,
    pub version: String,
    /// The server that answered (every server answers for the whole array).
    pub answered_by: String,
    pub time_ms: u64,
    pub stripes: Vec<StripeView>,
}

impl ClusterView {
    pub fn servers(&self) -> impl Iterator<Item = &ServerReport> {
        self.stripes.iter().flat_map(|s| s.servers.iter())
    }
}

/// One client connection of a server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientReport {
    pub id: u64,
    pub address: String,
    pub name: String,
    pub age_s: u64,
    pub idle_s: u64,
    pub last_command: String,
    /// The client session it belongs to, once sessions exist (DESIGN.md §6).
    pub session: Option<String>,
}

/// The slots of stripe `index` of `count`: 16384 split evenly in config order
/// (DESIGN.md §7), the remainder going to the first stripes.
pub fn slot_ranges(index: usize, count: usize) -> Vec<[u32; 2]> {
    let count = count.max(1) as u64;
    let index = index as u64;
    let slots = u64::from(SLOTS);
    let start = index * slots / count;
    let end = (index + 1) * slots / count;
    if index >= count || end <= start {
        return Vec::new();
    }
    vec![[start as u32, (end - 1) as u32]]
}

/// Fills in each stripe's active, term and commit index from its members' reports,
/// and each member's lag from the active's report.
pub fn summarize(stripe: &mut StripeView) {
    // A suspended active's report still has every member's lag; the stripe has no
    // active then (it serves nothing), as `tandem status` says.
    let active = stripe.servers.iter().find(|s| s.reachable && s.server_state().is_some_and(ServerState::is_leading)).cloned();
    if let Some(active) = &active {
        stripe.active = (active.server_state() == Some(ServerState::ActiveCoordinator)).then(|| active.name.clone());
        stripe.term = active.term;
        stripe.commit_index = active.commit_index;
        for server in stripe.servers.iter_mut().filter(|s| s.reachable && s.name != active.name) {
            server.lag = active.members.iter().find(|m| m.name == server.name && Some(m.node_id) == server.node_id).and_then(|m| m.lag);
        }
    } else {
        stripe.active = None;
        stripe.term = stripe.servers.iter().filter_map(|s| s.term).max();
        stripe.commit_index = stripe.servers.iter().filter_map(|s| s.commit_index).max();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_split_evenly_and_cover_everything() {
        assert_eq!(slot_ranges(0, 1), vec![[0, 16383]]);
        for count in 1..=7 {
            let ranges: Vec<[u32; 2]> = (0..count).flat_map(|i| slot_ranges(i, count)).collect();
            assert_eq!(ranges.first().map(|r| r[0]), Some(0));
            assert_eq!(ranges.last().map(|r| r[1]), Some(SLOTS - 1));
            assert!(ranges.windows(2).all(|w| w[1][0] == w[0][1] + 1), "{ranges:?}");
        }
        assert!(slot_ranges(3, 2).is_empty());
    }

    #[test]
    fn the_active_gives_its_stripe_term_commit_and_lags() {
        let mut active = ServerReport::empty("server1", "A", false, "h");
        active.reachable = true;
        active.set_state(ServerState::ActiveCoordinator);
        active.term = Some(4);
        active.commit_index = Some(100);
        active.members = vec![MemberLag { name: "server2".into(), node_id: 2, voting: true, lag: Some(3) }];
        let mut mirror = ServerReport::empty("server2", "A", false, "h");
        mirror.reachable = true;
        mirror.node_id = Some(2);
        mirror.set_state(ServerState::PassiveStandby);
        let dead = ServerReport::unreachable("server3", "A", false, "h", "connection refused".into());
        let mut stripe = StripeView {
            name: "A".into(),
            slots: slot_ranges(0, 1),
            active: None,
            term: None,
            commit_index: None,
            servers: vec![active, mirror, dead],
        };
        summarize(&mut stripe);
        assert_eq!((stripe.active.as_deref(), stripe.term, stripe.commit_index), (Some("server1"), Some(4), Some(100)));
        assert_eq!(stripe.servers[1].lag, Some(3));
        assert_eq!((stripe.servers[1].role.as_str(), stripe.servers[1].light.as_str()), ("mirror", "cyan"));
        assert_eq!((stripe.servers[2].state.as_str(), stripe.servers[2].light.as_str()), ("STOPPED", "red"));
    }
}
