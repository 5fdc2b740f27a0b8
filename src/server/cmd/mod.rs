//! The commands the server serves itself (`Handler::Server` in the command table):
//! each [`Srv`] maps to its handler here, in one place; the handlers live with their
//! family (connection, transactions, pub/sub, introspection).

mod acl;
pub(crate) use acl::load_at_first_start as acl_load_at_first_start;
mod cluster;
mod connection;
mod introspection;
mod migrate;
mod pubsub;
mod stats;
mod transactions;
mod wait;

use super::connection::Connection;
use super::request::Request;
use crate::commands::Srv;
use crate::protocol::reply::Reply;
use pubsub::Names;

impl Connection {
    /// Runs a server command; its replies go to the client, and it is counted
    /// (INFO commandstats, the slow log, the latency monitor) once it has run.
    pub(super) async fn server_command(&mut self, srv: Srv, request: Request) {
        // CLIENT PAUSE holds PUBLISH under WRITE, everything under ALL.
        self.shared.core.pause.wait(crate::server::pause::held_by_write_pause(request.spec, &request.args)).await;
        let started = std::time::Instant::now();
        let reply = self.run_server_command(srv, &request).await;
        let failed = matches!(reply, Some(Reply::Error(_)));
        if let Some(reply) = reply {
            self.reply(reply);
        }
        self.record_served(&request, started.elapsed(), failed);
    }

    /// A server command's reply; `None` when it replied itself (subscriptions,
    /// replies relayed from another server).
    async fn run_server_command(&mut self, srv: Srv, request: &Request) -> Option<Reply> {
        let args = &request.args;
        // CONFIG, MEMORY and CLUSTER read the store in place: first wait, without
        // blocking the runtime, for a script that holds it (or answer -BUSY).
        if matches!(srv, Srv::Config | Srv::Memory | Srv::Cluster) {
            // Not a moment when the store is free, but one when no script's thread is
            // in flight: a thread already handed a script may take the store between
            // any check and the lock.
            if let Err(busy) = self.shared.core.scripts_quiet().await {
                return Some(busy);
            }
        }
        Some(match srv {
            Srv::Ping => self.ping(args),
            Srv::Echo => Reply::Bulk(args[1].clone()),
            Srv::Hello => self.hello(args),
            Srv::Auth => self.auth(args),
            Srv::Select => crate::commands::connection::select(args),
            Srv::ClientUnblock => self.client_unblock(args).await,
            Srv::ClientPause => self.client_pause(args),
            Srv::ClientTracking => self.client_tracking(args).await,
            Srv::Migrate => self.migrate(request).await,
            Srv::Client => {
                let reply = self.client(args);
                self.expire_after_unpause(args, &reply).await;
                reply
            }
            Srv::Quit => self.quit(),
            Srv::Reset => self.reset(),
            Srv::Readonly => self.set_readonly(true),
            Srv::Readwrite => self.set_readonly(false),
            Srv::Multi => self.multi(),
            Srv::Exec => return self.exec(request.once).await,
            Srv::Discard => self.discard(),
            Srv::Watch => return self.watch(request).await,
            Srv::Unwatch => self.unwatch(),
            Srv::Subscribe => {
                self.subscribe(&args[1..], Names::Channels);
                return None;
            }
            Srv::Psubscribe => {
                self.subscribe(&args[1..], Names::Patterns);
                return None;
            }
            Srv::Ssubscribe => match self.shard_channels_elsewhere(&args[1..]).await {
                Some(reply) => reply,
                None => {
                    self.subscribe(&args[1..], Names::Shard);
                    return None;
                }
            },
            Srv::Unsubscribe => {
                self.unsubscribe(&args[1..], Names::Channels);
                return None;
            }
            Srv::Punsubscribe => {
                self.unsubscribe(&args[1..], Names::Patterns);
                return None;
            }
            Srv::Sunsubscribe => {
                self.unsubscribe(&args[1..], Names::Shard);
                return None;
            }
            Srv::Publish => self.publish_counted(&args[1], &args[2], false).await,
            Srv::Spublish => match self.shard_channels_elsewhere(&args[1..2]).await {
                Some(reply) => reply,
                None => self.publish_counted(&args[1], &args[2], true).await,
            },
            Srv::Pubsub => self.pubsub(args),
            Srv::Info => self.info_async(args).await,
            Srv::Command => introspection::command(args),
            Srv::Config => match self.config(args, false) {
                Ok(reply) => {
                    self.evict_after_config(args, &reply).await;
                    if reply == Reply::ok() {
                        self.requirepass_to_default_user(args).await
                    } else {
                        reply
                    }
                }
                Err(limits) => self.propose_node_limits(limits).await,
            },
            Srv::Time => introspection::time(),
            Srv::Memory => self.memory(args),
            Srv::Save => self.save().await,
            Srv::Bgsave => self.bgsave().await,
            Srv::Shutdown => return self.shutdown(args).await,
            Srv::Lastsave => Reply::Int(self.shared.core.replica.last_snapshot_unix_secs() as i64),
            Srv::Role => self.role(),
            Srv::Cluster => self.cluster(args),
            // No slot is ever being moved (no -ASK is given): nothing to remember.
            Srv::Asking => Reply::ok(),
            Srv::ScriptKill => self.shared.core.kill_script(false),
            Srv::FunctionKill => self.shared.core.kill_script(true),
            Srv::Acl => self.acl(args).await,
            Srv::Slowlog => self.slowlog(args),
            Srv::Latency => self.latency(args),
            Srv::Monitor => self.monitor(),
            Srv::Wait => return self.wait_for_mirrors(request).await,
        })
    }

    /// The reply of a server command queued inside MULTI, when EXEC runs it (the
    /// transaction's data commands ran as one entry; these answer from here).
    pub(super) fn inline_server_reply(&mut self, srv: Srv, args: &[bytes::Bytes]) -> Reply {
        match srv {
            Srv::Ping => self.ping(args),
            Srv::Echo => Reply::Bulk(args[1].clone()),
            Srv::Publish => self.publish(&args[1], &args[2], false),
            Srv::Spublish => self.publish(&args[1], &args[2], true),
            Srv::Time => introspection::time(),
            Srv::Info => self.info(args),
            Srv::Config => self.config(args, true).unwrap_or_else(|_| {
                Reply::err("ERR CONFIG SET stream-node-max-* is not allowed inside a transaction: it is a log entry of its own")
            }),
            Srv::Command => introspection::command(args),
            Srv::Memory => self.memory(args),
            Srv::Pubsub => self.pubsub(args),
            Srv::Client => self.client(args),
            Srv::ClientPause => self.client_pause(args),
            Srv::Select => crate::commands::connection::select(args),
            Srv::Cluster => self.cluster(args),
            Srv::Slowlog => self.slowlog(args),
            Srv::Latency => self.latency(args),
            Srv::Wait => self.mirrors_holding_now(),
            _ => Reply::error(format!(
                "ERR Command '{}' is not allowed inside a transaction",
                args.first().map(|n| String::from_utf8_lossy(n).to_ascii_lowercase()).unwrap_or_default()
            )),
        }
    }
}

/// Bytes as text, for messages and option names.
fn text(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}
