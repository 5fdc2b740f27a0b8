//! WAIT numreplicas timeout: how many mirrors hold this client's writes. Every write
//! Tandem acknowledges is already on a quorum of the stripe (DESIGN.md §6); WAIT
//! tells a client which mirrors in particular, as Redis's counts the replicas that
//! acknowledged its writes.
//!
//! On the active, the mirrors counted are the data servers whose log holds every
//! entry applied when WAIT arrived (that covers the client's acknowledged writes;
//! for a restartable mirror "holds" means fsynced). It waits, without polling, on
//! the replication progress until `numreplicas` are there or the timeout (ms, 0 =
//! forever) passes, then answers the count. Voters hold no data and are not
//! counted. On a mirror the command goes to the active over the client's upstream,
//! after the client's forwarded writes, so the count is the same one the active gives.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use openraft::async_runtime::WatchReceiver as _;

use super::super::connection::Connection;
use super::super::errors::lost_in_flight;
use super::super::forward::{Exchange, Settled};
use super::super::request::Request;
use super::introspection::data_mirrors;
use crate::commands::args::parse_i64;
use crate::protocol::reply::Reply;
use crate::replication::replica::ReplicationView;

const ERR_NOT_INT: &str = "ERR value is not an integer or out of range";
const ERR_TIMEOUT: &str = "ERR timeout is not an integer or out of range";
const ERR_TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";

/// numreplicas and the timeout (`None`: forever), with Redis's errors.
fn parse(args: &[Bytes]) -> Result<(i64, Option<Duration>), Reply> {
    let wanted = parse_i64(&args[1]).ok_or(Reply::err(ERR_NOT_INT))?;
    let ms = parse_i64(&args[2]).ok_or(Reply::err(ERR_TIMEOUT))?;
    if ms < 0 {
        return Err(Reply::err(ERR_TIMEOUT_NEGATIVE));
    }
    Ok((wanted, (ms > 0).then(|| Duration::from_millis(ms as u64))))
}

/// The data mirrors whose log reaches `index`.
fn holding(view: &ReplicationView, index: u64) -> i64 {
    data_mirrors(view).filter(|m| m.matched.is_some_and(|matched| matched >= index)).count() as i64
}

/// Marks a client blocked in WAIT for as long as it lives, however the wait ends
/// (its connection task dropped included).
struct Waiting {
    shared: std::sync::Arc<crate::server::Shared>,
    info: std::sync::Arc<crate::server::clients::ClientInfo>,
}

impl Waiting {
    fn start(shared: std::sync::Arc<crate::server::Shared>, info: std::sync::Arc<crate::server::clients::ClientInfo>) -> Waiting {
        info.blocked.store(true, Ordering::Relaxed);
        shared.blocker.waiting_for_mirrors.fetch_add(1, Ordering::Relaxed);
        Waiting { shared, info }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.info.blocked.store(false, Ordering::Relaxed);
        self.shared.blocker.waiting_for_mirrors.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connection {
    /// WAIT as a command of its own; `None` when the active's reply was relayed.
    pub(super) async fn wait_for_mirrors(&mut self, request: &Request) -> Option<Reply> {
        let (wanted, timeout) = match parse(&request.args) {
            Ok(parsed) => parsed,
            Err(e) => return Some(e),
        };
        // The stripe's active in this server's view is another server: ask it. Here
        // (even an active that lost its quorum, whose mirrors then stay behind), count.
        if !self.shared.view().local_is_active() {
            if let Some(relayed) = self.wait_on_the_active(request, timeout).await {
                return relayed;
            }
        }
        Some(self.wait_here(wanted, timeout).await)
    }

    /// Counts this active's mirrors holding what it has applied, waiting for `wanted`.
    async fn wait_here(&mut self, wanted: i64, timeout: Option<Duration>) -> Reply {
        let shared = self.shared.clone();
        let replica = &shared.core.replica;
        let view = replica.replication_view();
        let target = view.applied_index.unwrap_or(0);
        let held = holding(&view, target);
        if held >= wanted {
            return Reply::Int(held);
        }
        // Blocked as Redis's WAIT is: replies pipelined before it go out first, and the
        // wait ends with the client gone, CLIENT KILL, or this server deposed.
        if self.flush().await.is_err() {
            self.session.closing = true;
            return Reply::Int(holding(&replica.replication_view(), target));
        }
        let _waiting = Waiting::start(shared.clone(), self.session.info.clone());
        let deadline = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::pin!(deadline);
        let kill = self.session.info.kill.clone();
        let mut progress = replica.raft.metrics();
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                changed = progress.changed() => {
                    let view = replica.replication_view();
                    if changed.is_err() || !view.state.is_leading() || holding(&view, target) >= wanted {
                        break;
                    }
                }
                _ = kill.notified() => {
                    self.session.closing = true;
                    break;
                }
                ok = self.frames.read_while_waiting() => {
                    if !ok {
                        self.session.closing = true;
                        break;
                    }
                }
            }
        }
        Reply::Int(holding(&replica.replication_view(), target))
    }

    /// WAIT inside MULTI: the count now, without waiting (as Redis).
    pub(super) fn mirrors_holding_now(&self) -> Reply {
        let view = self.shared.core.replica.replication_view();
        Reply::Int(holding(&view, view.applied_index.unwrap_or(0)))
    }

    /// A mirror's WAIT: asked of the active, over the upstream the client's writes
    /// took, with the relay's silence bound stretched by the wait. `None`: this
    /// server turned out to be the active (count here).
    async fn wait_on_the_active(&mut self, request: &Request, timeout: Option<Duration>) -> Option<Option<Reply>> {
        let stripe = self.shared.view().local;
        match self.settle_upstream(stripe).await {
            Settled::Upstream => {}
            Settled::Again => return None,
            Settled::Refused(reply) => return Some(Some(reply)),
        }
        let idle = timeout.map(|t| self.relay_idle() + t);
        let cmds: [&[Bytes]; 1] = [&request.args[..]];
        let (_, outcome) = self.relay(stripe, Exchange { cmds: &cmds, relay_last: 1, idle, blocking: true }).await;
        Some(match outcome {
            Ok(()) => None,
            Err(e) => {
                self.lose_upstream(stripe, &e);
                Some(lost_in_flight(false))
            }
        })
    }
}
