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
use crate::replication::stripe::ServerState;

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

impl Connection {
    /// WAIT as a command of its own; `None` when the active's reply was relayed.
    pub(super) async fn wait_for_mirrors(&mut self, request: &Request) -> Option<Reply> {
        let (wanted, timeout) = match parse(&request.args) {
            Ok(parsed) => parsed,
            Err(e) => return Some(e),
        };
        let shared = self.shared.clone();
        let replica = &shared.core.replica;
        let view = replica.replication_view();
        if view.state != ServerState::ActiveCoordinator {
            return self.wait_on_the_active(request, timeout).await;
        }
        let target = view.applied_index.unwrap_or(0);
        if holding(&view, target) >= wanted {
            return Some(Reply::Int(holding(&view, target)));
        }
        // Blocked as Redis's WAIT is: replies pipelined before it go out first, and the
        // wait ends with the client gone, CLIENT KILL, or this server deposed.
        if self.flush().await.is_err() {
            self.session.closing = true;
            return None;
        }
        self.session.info.blocked.store(true, std::sync::atomic::Ordering::Relaxed);
        shared.blocker.blocked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
                    if changed.is_err() || replica.replication_view().state != ServerState::ActiveCoordinator {
                        break;
                    }
                    if holding(&replica.replication_view(), target) >= wanted {
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
        self.session.info.blocked.store(false, std::sync::atomic::Ordering::Relaxed);
        shared.blocker.blocked.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        Some(Reply::Int(holding(&replica.replication_view(), target)))
    }

    /// WAIT inside MULTI: the count now, without waiting (as Redis).
    pub(super) fn mirrors_holding_now(&self) -> Reply {
        let view = self.shared.core.replica.replication_view();
        Reply::Int(holding(&view, view.applied_index.unwrap_or(0)))
    }

    /// A mirror's WAIT: asked of the active, over the upstream the client's writes
    /// took, with the relay's silence bound stretched by the wait.
    async fn wait_on_the_active(&mut self, request: &Request, timeout: Option<Duration>) -> Option<Reply> {
        let stripe = self.shared.view().local;
        match self.settle_upstream(stripe).await {
            Settled::Upstream => {}
            // This server became the active meanwhile: it counts itself.
            Settled::Again => return Box::pin(self.wait_for_mirrors(request)).await,
            Settled::Refused(reply) => return Some(reply),
        }
        let idle = timeout.map(|t| self.relay_idle() + t);
        let cmds: [&[Bytes]; 1] = [&request.args[..]];
        let (_, outcome) = self.relay(stripe, Exchange { cmds: &cmds, relay_last: 1, idle, blocking: true }).await;
        match outcome {
            Ok(()) => None,
            Err(e) => {
                self.lose_upstream(stripe, &e);
                Some(lost_in_flight(false))
            }
        }
    }
}
