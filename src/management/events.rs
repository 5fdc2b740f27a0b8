//! Recent events of this server, in a bounded ring: its state changes, elections
//! and failovers it saw, refusals (a stop or failover refused, a member refused), and
//! the procedures asked through the management API. The API and the console read it;
//! other servers ask for it over the group port.
//!
//! One ring per process ([`global`]), like the metrics: events are recorded where
//! they are already logged (the Raft glue's state-change watcher, the procedures), and
//! a process is one server.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

/// Events kept per server: enough for the console's log and an hour of a flapping
/// stripe, small enough to send over the group port every second.
pub const EVENTS_MAX: usize = 256;

/// What kind of thing happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// This server's state changed (DESIGN.md §2).
    State,
    /// A new term began: an election.
    Election,
    /// The stripe's active changed to another member.
    Failover,
    /// Something was refused: a procedure, a joining member.
    Refusal,
    /// A procedure asked through the management API.
    Procedure,
}

/// One event, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Increases by one per event on this server (a restarted server starts again at 1).
    pub seq: u64,
    /// Wall-clock time, ms since the Unix epoch.
    pub time_ms: u64,
    /// The server that recorded it.
    pub server: String,
    pub kind: EventKind,
    /// The server state after the event, when it is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
    pub message: String,
}

/// The ring.
pub struct EventLog {
    inner: Mutex<Ring>,
}

struct Ring {
    server: String,
    next_seq: u64,
    events: VecDeque<Event>,
}

/// This process's events.
pub fn global() -> &'static EventLog {
    static LOG: OnceLock<EventLog> = OnceLock::new();
    LOG.get_or_init(EventLog::new)
}

/// Records an event in this process's ring.
pub fn record(kind: EventKind, state: Option<&str>, term: Option<u64>, message: String) {
    global().record(kind, state, term, message, crate::clock::wall_ms());
}

impl EventLog {
    pub fn new() -> EventLog {
        EventLog { inner: Mutex::new(Ring { server: String::new(), next_seq: 1, events: VecDeque::with_capacity(EVENTS_MAX) }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Names the server in events recorded from now on (once the process knows it).
    pub fn set_server(&self, name: &str) {
        let mut ring = self.lock();
        ring.server = name.to_string();
        for event in ring.events.iter_mut().filter(|e| e.server.is_empty()) {
            event.server = name.to_string();
        }
    }

    pub fn record(&self, kind: EventKind, state: Option<&str>, term: Option<u64>, message: String, time_ms: u64) {
        let mut ring = self.lock();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.events.len() == EVENTS_MAX {
            ring.events.pop_front();
        }
        let server = ring.server.clone();
        ring.events.push_back(Event { seq, time_ms, server, kind, state: state.map(str::to_string), term, message });
    }

    /// The newest `limit` events with a sequence number above `since`, oldest first.
    pub fn since(&self, since: u64, limit: usize) -> Vec<Event> {
        let ring = self.lock();
        let newer: Vec<&Event> = ring.events.iter().filter(|e| e.seq > since).collect();
        newer[newer.len().saturating_sub(limit)..].iter().map(|e| (*e).clone()).collect()
    }
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_events_in_order() {
        let log = EventLog::new();
        log.set_server("server1");
        for i in 0..(EVENTS_MAX as u64 + 10) {
            log.record(EventKind::State, Some("PASSIVE-STANDBY"), Some(i), format!("event {i}"), 1000 + i);
        }
        let all = log.since(0, usize::MAX);
        assert_eq!(all.len(), EVENTS_MAX);
        assert_eq!(all.first().map(|e| e.seq), Some(11));
        assert_eq!(all.last().map(|e| e.seq), Some(EVENTS_MAX as u64 + 10));
        assert!(all.iter().all(|e| e.server == "server1"));
        let last_two = log.since(0, 2);
        assert_eq!(last_two.iter().map(|e| e.seq).collect::<Vec<_>>(), [EVENTS_MAX as u64 + 9, EVENTS_MAX as u64 + 10]);
        assert!(log.since(EVENTS_MAX as u64 + 10, 10).is_empty());
    }
}

/// Turns the stream of (state, term, active) a server goes through into events and
/// metrics: state changes, elections (new terms), failovers (the active changed to
/// another member) and catch-up time (INITIALIZING until PASSIVE-STANDBY). Fed by the
/// Raft glue's state watcher (`replication::membership`), where each change is logged.
#[derive(Default)]
pub struct StateObserver {
    last: Option<(ServerState, u64)>,
    /// The last active this server knew of (an election in between forgets none).
    last_active: Option<String>,
    initializing_since: Option<std::time::Instant>,
}

use crate::replication::stripe::ServerState;

impl StateObserver {
    pub fn seen(&mut self, state: ServerState, term: u64, active: Option<String>) {
        let metrics = super::metrics::global();
        let name = state.name();
        match &self.last {
            None => record(EventKind::State, Some(name), Some(term), format!("{name} at start-up (term {term})")),
            Some((last_state, last_term)) => {
                if *last_term != term {
                    metrics.record_election();
                    let who = active.as_deref().unwrap_or("no active yet");
                    record(EventKind::Election, Some(name), Some(term), format!("new term {term}: {who}"));
                }
                if let (Some(before), Some(now)) = (&self.last_active, &active) {
                    if before != now {
                        metrics.record_failover();
                        record(EventKind::Failover, Some(name), Some(term), format!("the active changed from {before} to {now}"));
                    }
                }
                if *last_state != state {
                    record(EventKind::State, Some(name), Some(term), format!("{} → {name}", last_state.name()));
                }
            }
        }
        match state {
            ServerState::Initializing => {
                self.initializing_since.get_or_insert_with(std::time::Instant::now);
            }
            ServerState::PassiveStandby => {
                if let Some(since) = self.initializing_since.take() {
                    metrics.record_catch_up(since.elapsed());
                }
            }
            _ => {}
        }
        self.last = Some((state, term));
        if active.is_some() {
            self.last_active = active;
        }
    }
}
