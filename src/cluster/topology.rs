//! The array as cluster clients see it: shards (stripes), their slot ranges and
//! nodes (servers), rendered as `CLUSTER SLOTS`, `SHARDS`, `NODES` and `INFO`. Pure:
//! the server fills a [`Topology`] from its config and its cluster view, and these
//! functions only shape it into Redis Cluster's replies, so every reply agrees with
//! the others and with routing.

use crate::protocol::reply::Reply;

/// One data server of a stripe, as a Redis Cluster node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// 40 hex digits, stable across restarts (derived from the names).
    pub id: String,
    pub host: String,
    /// The client port.
    pub port: u16,
    /// Where Redis puts its cluster bus port: Tandem's group port.
    pub bus_port: u16,
    /// The stripe's active: the node clients send this shard's requests to.
    pub primary: bool,
    /// The server answering.
    pub myself: bool,
    /// A member of its stripe's Raft group that this server can see (a mirror) or the
    /// active itself; `false` for a server the stripe does not count right now.
    pub healthy: bool,
}

/// One stripe: its slots and servers, the active first when one is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub id: String,
    /// Inclusive slot ranges.
    pub slots: Vec<(u16, u16)>,
    pub nodes: Vec<Node>,
}

impl Shard {
    fn primary(&self) -> Option<&Node> {
        self.nodes.iter().find(|n| n.primary)
    }
}

/// The whole array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub shards: Vec<Shard>,
    /// The Raft term of this server's stripe (Redis's config epoch).
    pub epoch: u64,
}

impl Topology {
    fn nodes(&self) -> impl Iterator<Item = (&Shard, &Node)> {
        self.shards.iter().flat_map(|s| s.nodes.iter().map(move |n| (s, n)))
    }

    pub fn myself(&self) -> Option<(&Shard, &Node)> {
        self.nodes().find(|(_, n)| n.myself)
    }

    /// Slots whose stripe has an active.
    fn slots_served(&self) -> usize {
        self.shards.iter().filter(|s| s.primary().is_some()).map(slot_count).sum()
    }

    /// `CLUSTER SLOTS`: per slot range, the node to send requests to, then the other
    /// healthy servers. With no active known (an election), the stripe's servers are
    /// still listed, this one first: a request sent there waits for the new active.
    pub fn slots(&self) -> Reply {
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut nodes: Vec<&Node> = shard.nodes.iter().filter(|n| n.primary || n.healthy).collect();
            nodes.sort_by_key(|n| (!n.primary, !n.myself));
            for &(start, end) in &shard.slots {
                let mut range = vec![Reply::Int(start.into()), Reply::Int(end.into())];
                range.extend(nodes.iter().map(|n| {
                    Reply::Array(vec![Reply::bulk_str(&n.host), Reply::Int(n.port.into()), Reply::bulk_str(&n.id), Reply::Map(Vec::new())])
                }));
                out.push(Reply::Array(range));
            }
        }
        Reply::Array(out)
    }

    /// `CLUSTER SHARDS` (Redis 7): per shard its slot ranges and nodes with their
    /// role and health.
    pub fn shards(&self) -> Reply {
        let shards = self.shards.iter().map(|shard| {
            let slots = shard.slots.iter().flat_map(|&(s, e)| [Reply::Int(s.into()), Reply::Int(e.into())]).collect();
            let nodes = shard
                .nodes
                .iter()
                .map(|n| {
                    Reply::Map(vec![
                        (Reply::bulk(b"id"), Reply::bulk_str(&n.id)),
                        (Reply::bulk(b"port"), Reply::Int(n.port.into())),
                        (Reply::bulk(b"ip"), Reply::bulk_str(&n.host)),
                        (Reply::bulk(b"endpoint"), Reply::bulk_str(&n.host)),
                        (Reply::bulk(b"role"), Reply::bulk(if n.primary { b"master" } else { b"replica" })),
                        (Reply::bulk(b"replication-offset"), Reply::Int(0)),
                        (Reply::bulk(b"health"), Reply::bulk(if n.primary || n.healthy { b"online" } else { b"failed" })),
                    ])
                })
                .collect();
            Reply::Map(vec![(Reply::bulk(b"slots"), Reply::Array(slots)), (Reply::bulk(b"nodes"), Reply::Array(nodes))])
        });
        Reply::Array(shards.collect())
    }

    /// `CLUSTER NODES`: one line per server, in Redis's format.
    pub fn nodes_text(&self) -> String {
        self.nodes().map(|(shard, node)| self.node_line(shard, node)).collect()
    }

    /// `CLUSTER REPLICAS id`: the lines of the servers following that node, or `None`
    /// when no active has that id.
    pub fn replicas_text(&self, primary_id: &str) -> Option<String> {
        let shard = self.shards.iter().find(|s| s.primary().is_some_and(|p| p.id == primary_id))?;
        Some(shard.nodes.iter().filter(|n| !n.primary).map(|n| self.node_line(shard, n)).collect())
    }

    fn node_line(&self, shard: &Shard, node: &Node) -> String {
        let mut flags = Vec::new();
        if node.myself {
            flags.push("myself");
        }
        flags.push(if node.primary { "master" } else { "slave" });
        if !node.primary && !node.healthy {
            flags.push("fail");
        }
        let follows = match (node.primary, shard.primary()) {
            (false, Some(p)) => p.id.as_str(),
            _ => "-",
        };
        let link = if node.myself || node.primary || node.healthy { "connected" } else { "disconnected" };
        let mut line =
            format!("{} {}:{}@{} {} {follows} 0 0 {} {link}", node.id, node.host, node.port, node.bus_port, flags.join(","), self.epoch);
        if node.primary {
            for &(start, end) in &shard.slots {
                if start == end {
                    line.push_str(&format!(" {start}"));
                } else {
                    line.push_str(&format!(" {start}-{end}"));
                }
            }
        }
        line.push('\n');
        line
    }

    /// `CLUSTER INFO`: `cluster_state:ok` while every slot's stripe has an active.
    pub fn info_text(&self) -> String {
        let assigned: usize = self.shards.iter().map(slot_count).sum();
        let served = self.slots_served();
        let state = if served == assigned && assigned == usize::from(super::slot::SLOTS) { "ok" } else { "fail" };
        let known = self.nodes().count();
        let size = self.shards.iter().filter(|s| s.primary().is_some()).count();
        format!(
            "cluster_state:{state}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{served}\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:{}\r\ncluster_known_nodes:{known}\r\ncluster_size:{size}\r\ncluster_current_epoch:{e}\r\ncluster_my_epoch:{e}\r\ncluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n",
            assigned - served,
            e = self.epoch,
        )
    }
}

fn slot_count(shard: &Shard) -> usize {
    shard.slots.iter().map(|&(s, e)| usize::from(e.saturating_sub(s)) + 1).sum()
}

/// A node id: 40 hex digits from the SHA-1 of the names, so it survives restarts and
/// is the same on every server that names it.
pub fn node_id(cluster: &str, stripe: &str, server: &str) -> String {
    crate::store::scripts::sha1_hex(format!("tandem node\0{cluster}\0{stripe}\0{server}").as_bytes())
}

/// A shard id (`CLUSTER MYSHARDID`), from the stripe's names.
pub fn shard_id(cluster: &str, stripe: &str) -> String {
    crate::store::scripts::sha1_hex(format!("tandem stripe\0{cluster}\0{stripe}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::reply::Reply;

    fn node(name: &str, port: u16, primary: bool, myself: bool, healthy: bool) -> Node {
        Node { id: node_id("c", "s", name), host: "127.0.0.1".into(), port, bus_port: port + 1, primary, myself, healthy }
    }

    fn one_stripe(active: Option<usize>, me: usize) -> Topology {
        let nodes = (0..3).map(|i| node(&format!("n{i}"), 7000 + 10 * i as u16, active == Some(i), me == i, true)).collect();
        Topology { shards: vec![Shard { id: shard_id("c", "s"), slots: vec![(0, 16383)], nodes }], epoch: 7 }
    }

    fn entries(reply: &Reply) -> Vec<Vec<String>> {
        let Reply::Array(ranges) = reply else { panic!("not an array: {reply:?}") };
        ranges
            .iter()
            .map(|r| {
                let Reply::Array(items) = r else { panic!("range not an array") };
                items
                    .iter()
                    .map(|i| match i {
                        Reply::Int(n) => n.to_string(),
                        Reply::Array(n) => match &n[1] {
                            Reply::Int(port) => port.to_string(),
                            other => panic!("port {other:?}"),
                        },
                        other => panic!("item {other:?}"),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn slots_list_the_active_first_then_this_server() {
        // Asked on n2 while n1 is active: n1 first (clients send there), then n2.
        assert_eq!(entries(&one_stripe(Some(1), 2).slots()), vec![vec!["0", "16383", "7010", "7020", "7000"]]);
        // During an election this server comes first: a request sent to it waits.
        assert_eq!(entries(&one_stripe(None, 2).slots()), vec![vec!["0", "16383", "7020", "7000", "7010"]]);
    }

    #[test]
    fn nodes_lines_have_redis_fields_and_the_primary_holds_the_slots() {
        let text = one_stripe(Some(0), 1).nodes_text();
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
        assert_eq!(lines.len(), 3);
        let primary_id = node_id("c", "s", "n0");
        assert_eq!(lines[0], vec![primary_id.as_str(), "127.0.0.1:7000@7001", "master", "-", "0", "0", "7", "connected", "0-16383"]);
        assert_eq!(lines[1][2], "myself,slave");
        assert_eq!(lines[1][3], primary_id);
        assert_eq!(lines[1].len(), 8, "a mirror holds no slots");
        assert_eq!(lines[0][0].len(), 40);
    }

    #[test]
    fn info_says_ok_only_while_the_stripe_has_an_active() {
        assert!(one_stripe(Some(0), 0)
            .info_text()
            .starts_with("cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n"));
        let election = one_stripe(None, 0).info_text();
        assert!(election.starts_with("cluster_state:fail\r\n"));
        assert!(election.contains("cluster_slots_fail:16384\r\n"));
        assert!(election.contains("cluster_size:0\r\n"));
    }

    #[test]
    fn an_unhealthy_mirror_is_flagged_and_left_out_of_slots() {
        let mut t = one_stripe(Some(0), 0);
        t.shards[0].nodes[2].healthy = false;
        assert_eq!(entries(&t.slots()), vec![vec!["0", "16383", "7000", "7010"]]);
        assert!(t.nodes_text().lines().nth(2).is_some_and(|l| l.contains(" slave,fail ") && l.ends_with("disconnected")));
        assert_eq!(t.replicas_text(&node_id("c", "s", "n0")).map(|r| r.lines().count()), Some(2));
        assert_eq!(t.replicas_text("nope"), None);
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(node_id("c", "s", "a"), node_id("c", "s", "a"));
        assert_ne!(node_id("c", "s", "a"), node_id("c", "s", "b"));
        assert_ne!(node_id("c", "s", "a"), node_id("c", "t", "a"));
        assert_ne!(shard_id("c", "s"), node_id("c", "s", ""));
    }
}
