//! Forwarding (DESIGN.md §4, `Forward(stripe)`): commands routed to another server's
//! active go over the client's upstream to it, and every reply is relayed byte for
//! byte. A client of a mirror is served this way transparently, and so (in an array)
//! is a plain client's command for another stripe's keys.
//!
//! An upstream that fails mid-command leaves the outcome of the writes in flight
//! unknown: each gets the unknown-outcome error (`server::errors`), reads get
//! `-TRYAGAIN`, and the next command looks the active up again. A WATCH held on a
//! lost upstream is lost with it (EXEC then answers nil, as if a watched key had
//! changed).
//!
//! **Order.** A client's commands run on the active in the order it sent them, even
//! across a lost upstream. Commands whose replies stopped coming may still run on
//! the active, so a silent upstream is not closed: the next commands to the same
//! active go over it, after the replies it owes (`Upstream::owed`); one that cannot
//! carry more (cut mid-command) is closed for sending and new commands wait until
//! the active has ended it, i.e. has run everything it received. An upstream to a
//! server that is no longer the active is parked while it owes replies, and used in
//! the same way should that server be the active again. Commands sent to a *newer*
//! active need nothing more: whatever the old active may still commit was appended
//! in its term, and Raft commits an entry of an older term only as part of the new
//! active's log, before the new active's own entries (a stripe's log never lets an
//! older term's entry follow a newer term's).
//!
//! It knows nothing of Raft: where actives are comes from the cluster view.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;

use super::connection::Connection;
use super::core::write_wait;
use super::errors::{active_unreachable, forward_refused, lost_in_flight, ERR_EARLIER_STILL_RUNNING};
use super::request::Request;
use super::upstream::{encode_command, relay_limits, Hello, Upstream, UpstreamError};
use crate::cluster::view::Active;
use crate::protocol::reply::Reply;

/// Added to the active's own write bound before a silent upstream counts as failed:
/// the active answers a write it could not commit by then, and this covers the trip.
const REPLY_SLACK: Duration = Duration::from_secs(1);

/// Longest pause between attempts to reach an active that refused a connection.
const CONNECT_RETRY_MAX: Duration = Duration::from_millis(500);
const CONNECT_RETRY_FIRST: Duration = Duration::from_millis(20);

/// Bounds of a handshake with the active, so a stopped active cannot hold a client.
const HANDSHAKE_MIN: Duration = Duration::from_secs(1);

/// Whether a forwarded command goes tagged (`store::once`): a write that applies
/// through the log as it arrives (a blocking one may wait first; not tagged).
pub(super) fn once_taggable(request: &Request) -> bool {
    request.spec.is_write() && !request.spec.blocks(&request.args) && request.srv().is_none()
}

/// Whether an exchange failed because the active is gone, or is not the active any
/// more (not merely slow): what it did not answer goes to the new active.
pub(super) fn active_lost(error: &UpstreamError) -> bool {
    matches!(error, UpstreamError::Io(_) | UpstreamError::Closed | UpstreamError::ActiveChanged | UpstreamError::Bounced)
}

/// How a run of forwarded commands can go.
pub(super) enum Settled {
    Upstream,
    /// Not to be forwarded after all (this server is the stripe's active now): route
    /// the commands again.
    Again,
    /// Every command gets this error.
    Refused(Reply),
}

/// The longest silence from the active a run of commands allows, and whether it
/// holds a blocking command: the active's own bound for a write plus the trip, plus
/// each blocking command's timeout; no bound for one that blocks without a timeout
/// (the client going away or the active changing still end the wait).
pub fn run_idle<'a>(cmds: impl IntoIterator<Item = &'a Request>, election_time: Duration) -> (Option<Duration>, bool) {
    let mut idle = Some(write_wait(election_time) + election_time + REPLY_SLACK);
    let mut blocking = false;
    for request in cmds {
        if request.spec.blocks(&request.args) {
            blocking = true;
            idle = match request.spec.wait_ms(&request.args) {
                Ok(Some(0)) => None,
                Ok(Some(ms)) => idle.and_then(|d| d.checked_add(Duration::from_millis(ms))),
                // The active answers a bad timeout at once.
                Ok(None) | Err(_) => idle,
            };
        }
    }
    (idle, blocking)
}

/// What one exchange with an upstream sends: the commands, and how many replies of
/// the end are the client's (a shipped transaction relays only EXEC's).
pub(super) struct Exchange<'a> {
    pub cmds: &'a [&'a [Bytes]],
    pub relay_last: usize,
    pub idle: Option<Duration>,
    pub blocking: bool,
}

impl Connection {
    /// The longest silence from an active allowed for commands that do not block.
    pub(super) fn relay_idle(&self) -> Duration {
        let election = self.shared.core.replica.election_time();
        write_wait(election) + election + REPLY_SLACK
    }

    /// Sends a run of commands to `stripe`'s active and relays the replies. Returns
    /// the commands to route again (see [`Settled::Again`]), in order.
    ///
    /// Writes go tagged (`store::once`): when the active is lost, or answers that it
    /// is not the active any more, before every reply came back, the rest of the run
    /// goes to the new active — waiting for it up to twice the election time — and a
    /// write the old one applied answers its first reply without applying again
    /// (DESIGN.md §6, transparent failover for clients of mirrors).
    pub(super) async fn forward_run(&mut self, stripe: usize, mut run: Vec<Request>) -> Vec<Request> {
        match self.settle_upstream(stripe).await {
            Settled::Upstream => {}
            Settled::Again => return run,
            Settled::Refused(reply) => {
                // Nothing was sent; an upstream still owing replies is kept (parked).
                self.upstreams.drop_stripe(stripe);
                for request in &run {
                    self.reply(request.unless_sent(reply.clone()));
                }
                return Vec::new();
            }
        }
        for request in run.iter_mut() {
            if request.once.is_none() && once_taggable(request) {
                request.once = Some(self.upstreams.next_tag());
            }
        }
        let (idle, blocking) = run_idle(&run, self.shared.core.replica.election_time());
        let wrapped: Vec<Option<Vec<Bytes>>> = run.iter().map(|r| r.once.map(|tag| self.upstreams.wrap(stripe, &tag, &r.args))).collect();
        let cmds: Vec<&[Bytes]> = run.iter().zip(&wrapped).map(|(r, w)| w.as_deref().unwrap_or(&r.args[..])).collect();
        let active = self.upstreams.get_mut(stripe).map(|u| u.active.clone()).unwrap_or_default();
        let (relayed, outcome) = self.relay(stripe, Exchange { cmds: &cmds, relay_last: cmds.len(), idle, blocking }).await;
        crate::management::metrics::global().record_forwarded(relayed);
        if let Some(seq) = run[..relayed.min(run.len())].iter().filter_map(|r| r.once.map(|t| t.seq)).max() {
            self.upstreams.acknowledge(stripe, seq);
        }
        if let Err(e) = &outcome {
            tracing::debug!(client = self.session.info.id, error = %e, relayed, sent = run.len(), "forwarding to the active failed");
            self.lose_upstream(stripe, e);
            let rest = run.get(relayed..).unwrap_or_default();
            if self.resendable(rest, e) {
                tracing::info!(client = self.session.info.id, error = %e, lost = %active, commands = rest.len(), "the active was lost with commands in flight: sending them to the new active");
                // Wait for the successor for up to twice the election time, then
                // route again (DESIGN.md §6).
                self.shared.wait_for_new_active(stripe, &active, self.shared.active_wait()).await;
                let mut back: Vec<Request> = run.into_iter().skip(relayed).collect();
                for request in &mut back {
                    request.sent = true;
                }
                return back;
            }
        }
        for request in run.get(relayed..).unwrap_or_default() {
            self.reply(lost_in_flight(request.spec.is_write()));
        }
        Vec::new()
    }

    /// Whether the commands left unanswered when the upstream failed with `error` may
    /// go to the new active: the active was lost (not merely slow), the client is
    /// still here, and each is a tagged write, a read, or — as the last — a wait its
    /// spec allows to start again (XREAD, XREADGROUP; see
    /// `WaitSpec::resend_after_failover`).
    fn resendable(&self, rest: &[Request], error: &UpstreamError) -> bool {
        let lost = active_lost(error);
        let again = |(i, r): (usize, &Request)| match r.spec.blocks(&r.args) {
            true => i + 1 == rest.len() && r.spec.resend_after_failover(),
            false => r.once.is_some() || !r.spec.is_write(),
        };
        lost && !self.session.closing && !rest.is_empty() && rest.iter().enumerate().all(again)
    }

    /// After a failed exchange with `stripe`'s active: an upstream whose replies
    /// merely stopped coming is kept, owing them, so the client's next commands run
    /// after those on the active; a broken one is closed.
    pub(super) fn lose_upstream(&mut self, stripe: usize, e: &UpstreamError) {
        match e {
            UpstreamError::Timeout(_) | UpstreamError::ActiveChanged | UpstreamError::ClientGone | UpstreamError::Bounced => {
                self.upstreams.failed_silently(stripe)
            }
            _ => self.upstreams.close_stripe(stripe),
        }
    }

    /// Makes sure an upstream to `stripe`'s current active exists, waiting out an
    /// election and the new active's first moments for up to `Shared::active_wait`
    /// in all.
    pub(super) async fn settle_upstream(&mut self, stripe: usize) -> Settled {
        let shared = self.shared.clone();
        let deadline = Instant::now() + shared.active_wait();
        let mut active = shared.view().active(stripe).clone();
        if active == Active::Unknown {
            active = shared.wait_for_active(stripe, shared.active_wait()).await;
        }
        let (name, client_addr) = match active {
            Active::Here => {
                self.upstreams.drop_stripe(stripe);
                return Settled::Again;
            }
            Active::Unknown => return Settled::Refused(shared.no_active(stripe)),
            Active::There { name, client_addr } => (name, client_addr),
        };
        if let Some(settled) = self.earlier_upstream(stripe, &name).await {
            return settled;
        }
        self.connect_upstream(stripe, name, client_addr, deadline).await
    }

    /// Deals with the upstreams this client already has to `stripe`, so that what it
    /// sent earlier runs on `active` before anything it sends now: `Some(Upstream)`
    /// to go on over the current one, `Some(Refused)` while `active` may still be
    /// running earlier commands, `None` when a new upstream may be opened.
    async fn earlier_upstream(&mut self, stripe: usize, active: &str) -> Option<Settled> {
        if self.upstreams.get_mut(stripe).is_some_and(|u| u.active != active) {
            self.upstreams.drop_stripe(stripe);
        }
        // An upstream parked when `active` lost the role earlier comes back.
        if self.upstreams.get_mut(stripe).is_none() {
            self.upstreams.unpark(stripe, active);
        }
        let wait = self.relay_idle();
        let upstream = self.upstreams.get_mut(stripe)?;
        if !upstream.alive() {
            // The active ended the connection: it runs nothing more of it.
            self.upstreams.close_stripe(stripe);
            return None;
        }
        if !upstream.torn() {
            return Some(Settled::Upstream);
        }
        if !upstream.close_and_wait(wait).await {
            return Some(Settled::Refused(Reply::err(ERR_EARLIER_STILL_RUNNING)));
        }
        self.upstreams.close_stripe(stripe);
        None
    }

    /// Opens an upstream to `stripe`'s active, trying again until `deadline` (the
    /// active may just have died and an election be on its way).
    async fn connect_upstream(&mut self, stripe: usize, mut name: String, mut addr: String, deadline: Instant) -> Settled {
        let shared = self.shared.clone();
        let election = shared.core.replica.election_time();
        let mut pause = CONNECT_RETRY_FIRST;
        let password = shared.settings.forward_password();
        loop {
            let hello = Hello { resp3: self.session.resp3, password: password.as_deref(), from: &shared.server_name };
            let error = match Upstream::open(&addr, name.clone(), &hello, election.max(HANDSHAKE_MIN)).await {
                Ok(upstream) => {
                    tracing::debug!(client = self.session.info.id, active = %name, %addr, "forwarding to the active");
                    self.upstreams.insert(stripe, upstream);
                    return Settled::Upstream;
                }
                Err(UpstreamError::Refused(text)) => {
                    return Settled::Refused(forward_refused(&name, &text));
                }
                Err(e) => e,
            };
            let now = Instant::now();
            if now + pause >= deadline {
                return Settled::Refused(active_unreachable(&name, &addr, &error));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(CONNECT_RETRY_MAX);
            match shared.wait_for_active(stripe, deadline.saturating_duration_since(Instant::now())).await {
                Active::There { name: n, client_addr } => (name, addr) = (n, client_addr),
                Active::Here => return Settled::Again,
                Active::Unknown => return Settled::Refused(shared.no_active(stripe)),
            }
        }
    }

    /// Sends commands over the upstream to `stripe` (which must exist) and relays
    /// their last `relay_last` replies into the output buffer, while watching for
    /// CLIENT KILL, for the client going away (during a blocking command) and for
    /// another server becoming the active. Returns how many replies were relayed,
    /// and why the rest were not.
    pub(super) async fn relay(&mut self, stripe: usize, exchange: Exchange<'_>) -> (usize, Result<(), UpstreamError>) {
        // Let the client see replies to what it pipelined before a blocking command.
        if exchange.blocking && self.flush().await.is_err() {
            self.session.closing = true;
            return (0, Err(UpstreamError::ClientGone));
        }
        let resp3 = self.session.resp3;
        let Some(upstream) = self.upstreams.get_mut(stripe) else { return (0, Err(UpstreamError::Closed)) };
        let mut request = BytesMut::new();
        let mut skip = 0;
        if upstream.resp3 != resp3 {
            encode_command(&mut request, &[Bytes::from_static(b"HELLO"), Bytes::from_static(if resp3 { b"3" } else { b"2" })]);
            upstream.resp3 = resp3;
            skip += 1;
        }
        if std::mem::take(&mut upstream.dirty) {
            // A failed run may have left a transaction or WATCH open there: end both
            // (DISCARD without MULTI is an error reply, skipped like the rest).
            encode_command(&mut request, &[Bytes::from_static(b"DISCARD")]);
            encode_command(&mut request, &[Bytes::from_static(b"UNWATCH")]);
            upstream.unwatch_pending = false;
            skip += 2;
        }
        if std::mem::take(&mut upstream.unwatch_pending) {
            encode_command(&mut request, &[Bytes::from_static(b"UNWATCH")]);
            skip += 1;
        }
        for args in exchange.cmds {
            encode_command(&mut request, args);
        }
        skip += exchange.cmds.len() - exchange.relay_last.min(exchange.cmds.len());
        let limits = relay_limits(self.shared.settings.bulk_bytes_max.load(std::sync::atomic::Ordering::Relaxed));
        let active = upstream.active.clone();
        let kill = self.session.info.kill.clone();
        let mut view = self.shared.view_changes();
        self.session.info.blocked.store(exchange.blocking, std::sync::atomic::Ordering::Relaxed);
        let mut relayed = 0;
        let outcome = {
            let out = &mut self.frames.out;
            let exchanging = upstream.exchange(&request, skip, exchange.relay_last, out, &mut relayed, exchange.idle, &limits);
            tokio::pin!(exchanging);
            loop {
                tokio::select! {
                    biased;
                    _ = kill.notified() => {
                        self.session.closing = true;
                        break Err(UpstreamError::ClientGone);
                    }
                    outcome = &mut exchanging => break outcome,
                    changed = view.changed() => {
                        let moved = changed.is_err() || match view.borrow_and_update().active(stripe) {
                            Active::There { name, .. } => *name != active,
                            Active::Here => true,
                            Active::Unknown => false,
                        };
                        if moved {
                            break Err(UpstreamError::ActiveChanged);
                        }
                    }
                    read = super::frames::read_more(&mut self.frames.socket, &mut self.frames.inbuf), if exchange.blocking => {
                        if !read {
                            self.session.closing = true;
                            break Err(UpstreamError::ClientGone);
                        }
                    }
                }
            }
        };
        self.session.info.blocked.store(false, std::sync::atomic::Ordering::Relaxed);
        (relayed, outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(parts: &[&str]) -> Request {
        Request::parse(parts.iter().map(|p| Bytes::copy_from_slice(p.as_bytes())).collect())
            .map_err(|(reply, _)| reply)
            .expect("a known command")
    }

    #[test]
    fn a_blocking_command_extends_the_wait_by_its_timeout_or_lifts_it() {
        let election = Duration::from_secs(1);
        let base = write_wait(election) + election + REPLY_SLACK;
        assert_eq!(run_idle(&[request(&["GET", "k"]), request(&["SET", "k", "v"])], election), (Some(base), false));
        assert_eq!(run_idle(&[request(&["BLPOP", "l", "2.5"])], election), (Some(base + Duration::from_millis(2500)), true));
        assert_eq!(run_idle(&[request(&["GET", "k"]), request(&["BRPOP", "l", "0"])], election), (None, true));
        assert_eq!(run_idle(&[request(&["BLMOVE", "a", "b", "LEFT", "RIGHT", "1e300"])], election), (Some(base), true));
    }
}
