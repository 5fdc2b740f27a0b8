//! CLUSTER and ASKING: the Redis Cluster protocol, so slot-routing clients (redis-py
//! `RedisCluster`, ioredis `Cluster`, node-redis `createCluster`, the `redis` crate's
//! cluster client) connect to the array. The topology comes from the config (which
//! servers each stripe has) and the cluster view (which one is active right now); it
//! is changed with Tandem's own procedures, so Redis's commands that reshape a
//! cluster are refused with a sentence saying so.

use bytes::Bytes;

use super::text;
use crate::cluster::slot::{key_slot, SLOTS};
use crate::cluster::topology::{node_id, shard_id, Node, Shard, Topology};
use crate::cluster::view::Active;
use crate::commands::{args::*, unknown_subcommand, wrong_args};
use crate::protocol::reply::Reply;
use crate::replication::stripe::{ServerState, STANDBY_LAG_MAX};
use crate::server::connection::Connection;

const HELP: &[&str] = &[
    "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "COUNTKEYSINSLOT <slot>",
    "    Return the number of keys in <slot> held by this server's stripe.",
    "GETKEYSINSLOT <slot> <count>",
    "    Return key names stored in <slot>, at most <count>.",
    "INFO",
    "    Return information about the array.",
    "KEYSLOT <key>",
    "    Return the hash slot for <key>.",
    "LINKS",
    "    Return this server's links to the other servers of its stripe.",
    "MYID",
    "    Return this server's node id.",
    "MYSHARDID",
    "    Return the id of this server's stripe.",
    "NODES",
    "    Return the array's servers in Redis Cluster's format.",
    "REPLICAS <node-id>",
    "    Return the servers following the active with that id.",
    "SHARDS",
    "    Return the stripes, their slots and servers.",
    "SLOTS",
    "    Return the slot ranges and the servers serving each.",
    "HELP",
    "    Print this help.",
];

/// Redis's commands that reshape a cluster: in Tandem the config and the CLI do.
const RESHAPING: &[&str] = &[
    "addslots",
    "addslotsrange",
    "bumpepoch",
    "count-failure-reports",
    "delslots",
    "delslotsrange",
    "failover",
    "flushslots",
    "forget",
    "meet",
    "replicate",
    "reset",
    "saveconfig",
    "set-config-epoch",
    "setslot",
];

impl Connection {
    pub(super) fn cluster(&mut self, args: &[Bytes]) -> Reply {
        let sub = text(&args[1]).to_ascii_lowercase();
        let arity_ok = match sub.as_str() {
            "keyslot" | "countkeysinslot" | "replicas" | "slaves" => args.len() == 3,
            "getkeysinslot" => args.len() == 4,
            _ => true,
        };
        if !arity_ok {
            return wrong_args(&format!("cluster|{sub}"));
        }
        match sub.as_str() {
            "help" => Reply::Array(HELP.iter().map(|l| Reply::Status((*l).into())).collect()),
            "info" => Reply::Verbatim(Bytes::from(self.topology().info_text())),
            "slots" => self.topology().slots(),
            "shards" => self.topology().shards(),
            "nodes" => Reply::Verbatim(Bytes::from(self.topology().nodes_text())),
            "replicas" | "slaves" => match self.topology().replicas_text(&text(&args[2])) {
                Some(lines) => Reply::Array(lines.lines().map(Reply::bulk_str).collect()),
                None => Reply::error(format!("ERR Unknown node {}", text(&args[2]))),
            },
            "myid" => Reply::bulk_str(&self.my_ids().0),
            "myshardid" => Reply::bulk_str(&self.my_ids().1),
            "keyslot" => Reply::Int(key_slot(&args[2]).into()),
            "countkeysinslot" => match slot_arg(&args[2]) {
                Ok(slot) => Reply::Int(self.shared.core.store().db.count_in_slot(slot) as i64),
                Err(e) => e,
            },
            "getkeysinslot" => self.keys_in_slot(&args[2], &args[3]),
            "links" => self.links(),
            s if RESHAPING.contains(&s) => Reply::error(format!(
                "ERR CLUSTER {} is not supported: Tandem's stripes and their slots come from the config file, and a stripe's active changes with `tandem failover`",
                s.to_ascii_uppercase()
            )),
            _ => unknown_subcommand("CLUSTER", &args[1]),
        }
    }

    fn keys_in_slot(&self, slot: &[u8], count: &[u8]) -> Reply {
        let (slot, count) = match (int_arg(slot), int_arg(count)) {
            (Err(e), _) | (_, Err(e)) => return e,
            (Ok(slot), Ok(count)) => (slot, count),
        };
        let slot = match u16::try_from(slot) {
            Ok(s) if s < SLOTS && count >= 0 => s,
            _ => return Reply::err("ERR Invalid slot or number of keys"),
        };
        let mut store = self.shared.core.store();
        let keys = store.db.keys_in_slot(slot, usize::try_from(count).unwrap_or(usize::MAX));
        Reply::Array(keys.into_iter().map(Reply::bulk).collect())
    }

    /// This server's node id and its stripe's shard id.
    fn my_ids(&self) -> (String, String) {
        let layout = &self.shared.core.replica.group.layout;
        (node_id(&layout.cluster, &layout.stripe, &self.shared.server_name), shard_id(&layout.cluster, &layout.stripe))
    }

    /// `CLUSTER LINKS`: one entry per other server of the stripe this server keeps a
    /// group connection with (Raft's links are both ways, so each is `to` and `from`).
    fn links(&self) -> Reply {
        let topology = self.topology();
        let links = topology
            .shards
            .iter()
            .flat_map(|s| s.nodes.iter())
            .filter(|n| !n.myself && (n.healthy || n.primary))
            .flat_map(|n| {
                ["to", "from"].map(|direction| {
                    Reply::Map(vec![
                        (Reply::bulk(b"direction"), Reply::bulk_str(direction)),
                        (Reply::bulk(b"node"), Reply::bulk_str(&n.id)),
                        (Reply::bulk(b"create-time"), Reply::Int(0)),
                        (Reply::bulk(b"events"), Reply::bulk(b"rw")),
                        (Reply::bulk(b"send-buffer-allocated"), Reply::Int(0)),
                        (Reply::bulk(b"send-buffer-used"), Reply::Int(0)),
                    ])
                })
            })
            .collect();
        Reply::Array(links)
    }

    /// The array as cluster clients see it, from the config and the cluster view.
    pub(super) fn topology(&self) -> Topology {
        let replica = &self.shared.core.replica;
        let status = replica.replication_view();
        let view = self.shared.view();
        let i_am_active = status.state == ServerState::ActiveCoordinator;
        let shards = self
            .shared
            .array
            .iter()
            .enumerate()
            .map(|(s, layout)| {
                let active = match view.active(s) {
                    Active::Here => Some(self.shared.server_name.as_str()),
                    Active::There { name, .. } => Some(name.as_str()),
                    Active::Unknown => None,
                };
                let remote = (s != view.local).then(|| self.shared.remote.of(s));
                let nodes = layout
                    .members
                    .iter()
                    .filter_map(|m| {
                        let port = m.client_port?;
                        let healthy = match &remote {
                            // Another stripe's servers: as they last answered.
                            Some(members) => members.iter().any(|r| {
                                r.name == m.name && matches!(r.state, ServerState::ActiveCoordinator | ServerState::PassiveStandby)
                            }),
                            // The active knows how far each mirror trails; elsewhere,
                            // membership is what this server can say.
                            None => status
                                .members
                                .iter()
                                .find(|v| v.name == m.name)
                                .is_some_and(|v| !i_am_active || v.lag.is_some_and(|lag| lag <= STANDBY_LAG_MAX)),
                        };
                        let myself = m.name == self.shared.server_name;
                        Some(Node {
                            id: node_id(&layout.cluster, &layout.stripe, &m.name),
                            host: m.host.clone(),
                            // Slot-routing clients belong on the cluster port; without one,
                            // the client port (`--port` overrides this server's).
                            port: match m.cluster_port {
                                Some(cluster_port) => cluster_port,
                                None if myself => self.shared.settings.port,
                                None => port,
                            },
                            bus_port: m.group_port,
                            primary: active == Some(m.name.as_str()),
                            myself,
                            healthy,
                        })
                    })
                    .collect();
                Shard { id: shard_id(&layout.cluster, &layout.stripe), slots: view.ranges_of(s), nodes }
            })
            .collect();
        Topology { shards, epoch: status.term }
    }
}

/// A slot number argument, with Redis's errors.
fn slot_arg(arg: &[u8]) -> Result<u16, Reply> {
    match u16::try_from(int_arg(arg)?) {
        Ok(slot) if slot < SLOTS => Ok(slot),
        _ => Err(Reply::err("ERR Invalid slot")),
    }
}
