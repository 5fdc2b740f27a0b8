//! A stripe as the config describes it (its servers and voters, where each listens)
//! and the server states of DESIGN.md §2, derived from Raft's view of the group.

use std::fmt;

use crate::config::{Config, Stripe};

/// One member of a stripe from the config: a server (holds data, serves clients) or
/// a voter (votes, keeps the log's tail, holds no data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub host: String,
    pub group_port: u16,
    /// `None` for a voter.
    pub client_port: Option<u16>,
    /// The port for slot-routing clients, if the server has one.
    pub cluster_port: Option<u16>,
    pub data_storage_bytes: u64,
}

impl Member {
    pub fn group_addr(&self) -> String {
        format!("{}:{}", self.host, self.group_port)
    }

    pub fn client_addr(&self) -> Option<String> {
        self.client_port.map(|p| format!("{}:{p}", self.host))
    }

    /// Where slot-routing clients reach this server: its cluster port, or else its
    /// client port.
    pub fn cluster_addr(&self) -> Option<String> {
        self.cluster_port.or(self.client_port).map(|p| format!("{}:{p}", self.host))
    }

    pub fn is_voter(&self) -> bool {
        self.client_port.is_none()
    }
}

/// A stripe's members in config order (servers, then voters), and what they share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeLayout {
    pub cluster: String,
    pub stripe: String,
    pub secret: Option<String>,
    pub election_time_ms: u64,
    pub members: Vec<Member>,
}

impl StripeLayout {
    pub fn from_config(config: &Config, stripe: &Stripe) -> StripeLayout {
        let servers = stripe.servers.iter().map(|s| Member {
            name: s.name.clone(),
            host: s.host.clone(),
            group_port: s.group_port,
            client_port: Some(s.client_port),
            cluster_port: s.cluster_port,
            data_storage_bytes: s.data_storage_bytes,
        });
        let voters = stripe.voters.iter().map(|v| Member {
            name: v.name.clone(),
            host: v.host.clone(),
            group_port: v.group_port,
            client_port: None,
            cluster_port: None,
            data_storage_bytes: 0,
        });
        StripeLayout {
            cluster: config.cluster.name.clone(),
            stripe: stripe.name.clone(),
            secret: config.cluster.secret.clone(),
            election_time_ms: stripe.election_time_ms,
            members: servers.chain(voters).collect(),
        }
    }

    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    pub fn position(&self, name: &str) -> Option<usize> {
        self.members.iter().position(|m| m.name == name)
    }

    /// The member whose group address is `addr` (Raft knows members by it).
    pub fn by_group_addr(&self, addr: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.group_addr() == addr)
    }

    /// The first server in config order: the one that forms the stripe on its very
    /// first start.
    pub fn founder(&self) -> &Member {
        &self.members[0]
    }

    pub fn is_single(&self) -> bool {
        self.members.len() == 1
    }
}

/// A server's state (DESIGN.md §2), as `tandem status`, `ROLE`, `INFO` and the logs show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerState {
    Starting,
    PassiveUninitialized,
    Initializing,
    PassiveStandby,
    ActiveCoordinator,
    Election,
    /// The active of a stripe that no quorum acknowledges any more: it acknowledges
    /// nothing and waits to hear a quorum again or to be deposed.
    ActiveSuspended,
    Stopped,
}

impl ServerState {
    pub fn name(self) -> &'static str {
        match self {
            ServerState::Starting => "STARTING",
            ServerState::PassiveUninitialized => "PASSIVE-UNINITIALIZED",
            ServerState::Initializing => "INITIALIZING",
            ServerState::PassiveStandby => "PASSIVE-STANDBY",
            ServerState::ActiveCoordinator => "ACTIVE-COORDINATOR",
            ServerState::Election => "ELECTION",
            ServerState::ActiveSuspended => "ACTIVE-SUSPENDED",
            ServerState::Stopped => "STOPPED",
        }
    }

    pub fn light(self) -> &'static str {
        match self {
            ServerState::PassiveStandby => "cyan",
            ServerState::ActiveCoordinator => "green",
            ServerState::Stopped => "red",
            _ => "orange",
        }
    }

    /// Every state, in the order of DESIGN.md §2's table.
    pub const ALL: [ServerState; 8] = [
        ServerState::Starting,
        ServerState::PassiveUninitialized,
        ServerState::Initializing,
        ServerState::PassiveStandby,
        ServerState::ActiveCoordinator,
        ServerState::Election,
        ServerState::ActiveSuspended,
        ServerState::Stopped,
    ];

    pub fn parse(name: &str) -> Option<ServerState> {
        ServerState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The stripe's Raft leader, whether it can commit (ACTIVE-COORDINATOR) or no
    /// quorum answers it (ACTIVE-SUSPENDED).
    pub fn is_leading(self) -> bool {
        matches!(self, ServerState::ActiveCoordinator | ServerState::ActiveSuspended)
    }
}

impl fmt::Display for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Entries a voting member may trail the active's commit index by and still count
/// as caught up (`PASSIVE-STANDBY`): a few group commits' worth.
pub const STANDBY_LAG_MAX: u64 = 64;

/// What a member knows of itself, enough to name its state.
#[derive(Debug, Clone, Default)]
pub struct LocalView {
    pub running: bool,
    pub initialized: bool,
    /// This member's node id is among the stripe's voters.
    pub voting: bool,
    /// This member's node id is in the membership at all (voter or learner).
    pub member: bool,
    pub leader: bool,
    /// On the active: no quorum of the stripe's voters has acknowledged it for an
    /// election time (see `Group::quorum_lost`).
    pub quorum_lost: bool,
    pub candidate: bool,
    pub leader_known: bool,
    /// The active's commit index as last heard from it, and this member's applied index.
    pub active_commit: Option<u64>,
    pub applied: Option<u64>,
    pub receiving_snapshot: bool,
    /// This member heard an active within the time a failover takes: one election
    /// time to find the active gone, one for the election (its timeouts are drawn
    /// from a quarter to half of it). A mirror cut off from its stripe is thus ready
    /// for at most one election time longer than before it would have been.
    pub heard_within_failover: bool,
}

impl LocalView {
    pub fn state(&self) -> ServerState {
        if !self.running {
            return ServerState::Stopped;
        }
        if !self.initialized || !self.member {
            return ServerState::PassiveUninitialized;
        }
        if self.leader {
            return if self.quorum_lost { ServerState::ActiveSuspended } else { ServerState::ActiveCoordinator };
        }
        if self.candidate || !self.leader_known {
            return ServerState::Election;
        }
        if !self.voting || self.receiving_snapshot {
            return ServerState::Initializing;
        }
        if self.caught_up() {
            ServerState::PassiveStandby
        } else {
            ServerState::Initializing
        }
    }

    /// Applied within `STANDBY_LAG_MAX` of the active's commit index as last heard.
    fn caught_up(&self) -> bool {
        self.active_commit.is_some_and(|commit| commit.saturating_sub(self.applied.unwrap_or(0)) <= STANDBY_LAG_MAX)
    }

    /// Serves clients as a mirror (`/readyz?role=mirror`): PASSIVE-STANDBY, or a
    /// caught-up voting mirror in an ELECTION for as long as its clients' requests
    /// wait for the new active rather than fail. A load balancer that took it out
    /// for the election would have no mirror left (the old active is gone, the new
    /// one is no mirror) and would close its clients' new connections.
    pub fn serves_as_mirror(&self) -> bool {
        match self.state() {
            ServerState::PassiveStandby => true,
            ServerState::Election => {
                !self.leader && self.voting && !self.receiving_snapshot && self.caught_up() && self.heard_within_failover
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standby() -> LocalView {
        LocalView {
            running: true,
            initialized: true,
            voting: true,
            member: true,
            leader_known: true,
            active_commit: Some(100),
            applied: Some(100),
            ..LocalView::default()
        }
    }

    #[test]
    fn states_follow_raft_roles_and_lag() {
        assert_eq!(standby().state(), ServerState::PassiveStandby);
        assert_eq!(LocalView { leader: true, ..standby() }.state(), ServerState::ActiveCoordinator);
        assert_eq!(LocalView { leader: true, quorum_lost: true, ..standby() }.state(), ServerState::ActiveSuspended);
        assert_eq!(ServerState::ActiveSuspended.light(), "orange");
        assert_eq!(LocalView { leader_known: false, ..standby() }.state(), ServerState::Election);
        assert_eq!(LocalView { candidate: true, ..standby() }.state(), ServerState::Election);
        assert_eq!(LocalView { voting: false, ..standby() }.state(), ServerState::Initializing);
        assert_eq!(LocalView { applied: Some(100 - STANDBY_LAG_MAX - 1), ..standby() }.state(), ServerState::Initializing);
        assert_eq!(LocalView { applied: Some(100 - STANDBY_LAG_MAX), ..standby() }.state(), ServerState::PassiveStandby);
        assert_eq!(LocalView { member: false, ..standby() }.state(), ServerState::PassiveUninitialized);
        assert_eq!(LocalView { running: false, ..standby() }.state(), ServerState::Stopped);
    }

    #[test]
    fn a_caught_up_mirror_serves_through_an_election_it_can_wait_out() {
        assert!(standby().serves_as_mirror());
        let electing = LocalView { leader_known: false, heard_within_failover: true, ..standby() };
        assert_eq!(electing.state(), ServerState::Election);
        assert!(electing.serves_as_mirror());
        assert!(LocalView { candidate: true, ..electing.clone() }.serves_as_mirror());
        // Past the time a request waits, behind, not voting, or never having heard an active: not ready.
        assert!(!LocalView { heard_within_failover: false, ..electing.clone() }.serves_as_mirror());
        assert!(!LocalView { applied: Some(100 - STANDBY_LAG_MAX - 1), ..electing.clone() }.serves_as_mirror());
        assert!(!LocalView { active_commit: None, ..electing.clone() }.serves_as_mirror());
        assert!(!LocalView { voting: false, ..electing.clone() }.serves_as_mirror());
        assert!(!LocalView { receiving_snapshot: true, ..electing }.serves_as_mirror());
        assert!(!LocalView { leader: true, ..standby() }.serves_as_mirror());
        assert!(!LocalView { voting: false, ..standby() }.serves_as_mirror());
    }

    #[test]
    fn state_names_round_trip() {
        for s in ServerState::ALL {
            assert_eq!(ServerState::parse(s.name()), Some(s));
        }
    }
}
