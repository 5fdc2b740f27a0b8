//! How many group-port connections may be waiting in their handshake at once, and
//! from where. Before its handshake a connection is anyone's: it has proven nothing.
//! A bound on all of them together let one stranger holding silent connections
//! open take every place, and the stripe's own members could no longer reconnect
//! (Raft traffic, votes, `tandem status`). So places are counted per peer address
//! (a few each: a member opens one connection per peer and the odd probe), and only
//! addresses that are not a member's count toward the bound for strangers. A
//! member's address is never crowded out by other addresses.
//!
//! It knows IP addresses and counts; nothing of the handshake itself.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Connections from one address in their handshake at once. A member has one Raft
/// connection per peer plus probes, joins and CLI requests, each over in
/// milliseconds: eight is plenty, and little for a stranger.
pub const PER_ADDRESS_MAX: usize = 8;
/// Connections in their handshake at once from addresses that are not a member's
/// (the CLI, monitoring, strangers).
pub const STRANGERS_MAX: usize = 64;

/// The places for connections in their handshake.
pub struct HandshakeSlots {
    /// The addresses of the stripe's members, from the config (hosts given by name
    /// are not resolved: they count as strangers, with their own per-address places).
    members: HashSet<IpAddr>,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    per_address: HashMap<IpAddr, usize>,
    strangers: usize,
}

/// One connection's place, given back when dropped.
pub struct Slot {
    slots: Arc<HandshakeSlots>,
    ip: IpAddr,
    stranger: bool,
}

impl HandshakeSlots {
    pub fn new<'a>(member_hosts: impl IntoIterator<Item = &'a str>) -> Arc<HandshakeSlots> {
        let members = member_hosts.into_iter().filter_map(|h| h.parse::<IpAddr>().ok()).map(|ip| ip.to_canonical()).collect();
        Arc::new(HandshakeSlots { members, counts: Mutex::new(Counts::default()) })
    }

    /// A place for a connection from `ip`, or `None` when its address (or, for a
    /// stranger, all strangers together) already hold all theirs.
    pub fn try_take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let ip = ip.to_canonical();
        let stranger = !self.members.contains(&ip);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mine = counts.per_address.get(&ip).copied().unwrap_or(0);
        if mine >= PER_ADDRESS_MAX || (stranger && counts.strangers >= STRANGERS_MAX) {
            return None;
        }
        counts.per_address.insert(ip, mine + 1);
        if stranger {
            counts.strangers += 1;
        }
        Some(Slot { slots: self.clone(), ip, stranger })
    }

    /// Connections from `ip` in their handshake now.
    #[cfg(test)]
    pub fn held_by(&self, ip: IpAddr) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).per_address.get(&ip.to_canonical()).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.slots.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_address.remove(&self.ip);
            }
        }
        if self.stranger {
            counts.strangers = counts.strangers.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn one_address_cannot_take_the_places_of_others() {
        let slots = HandshakeSlots::new(["127.0.0.10", "127.0.0.11", "member.example"]);
        let flood: Vec<Slot> = (0..100).filter_map(|_| slots.try_take(ip("127.0.0.99"))).collect();
        assert_eq!(flood.len(), PER_ADDRESS_MAX);
        assert!(slots.try_take(ip("127.0.0.10")).is_some(), "a member is crowded out by a stranger");
        assert!(slots.try_take(ip("127.0.0.98")).is_some(), "another stranger is crowded out by one address");
        drop(flood);
        assert_eq!(slots.held_by(ip("127.0.0.99")), 0, "places are given back");
    }

    #[test]
    fn many_strangers_together_never_crowd_out_a_member() {
        let slots = HandshakeSlots::new(["10.0.0.1"]);
        let mut held = Vec::new();
        for a in 0..=255u8 {
            held.extend((0..PER_ADDRESS_MAX).filter_map(|_| slots.try_take(IpAddr::from([192, 168, 1, a]))));
        }
        assert_eq!(held.len(), STRANGERS_MAX);
        let member: Vec<Slot> = (0..PER_ADDRESS_MAX).filter_map(|_| slots.try_take(ip("10.0.0.1"))).collect();
        assert_eq!(member.len(), PER_ADDRESS_MAX);
        // An IPv4 member reaching an IPv6 listener arrives as a mapped address.
        assert_eq!(slots.held_by(ip("::ffff:10.0.0.1")), PER_ADDRESS_MAX);
    }
}
