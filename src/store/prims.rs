//! The clustering primitives' replicated state (DESIGN.md §6, §8): client sessions
//! with their reconnect window, fenced locks with FIFO waiters, and group
//! membership. Changed only by entries (`commands::tandem`), kept in snapshots (from
//! format 6), equal on every member.
//!
//! - A **session** lives until `expires_at_ms`: its last renewal (or use) plus its
//!   window. Only an entry ends it (`TANDEM.SESSION CLOSE`, or the active's
//!   `TANDEM.SESSIONEXPIRED`, checked again here against the entry's time), so every
//!   member releases what it owned at the same log position.
//! - A **lock** has at most one holder (a session, a fencing token, an optional lease
//!   end) and a FIFO queue of waiting sessions. Tokens come from one counter per
//!   stripe (`last_token`), so a lock's tokens only grow, across failover and
//!   restart. A release grants the lock to the first waiter still eligible (its
//!   session alive, its wait not over) here, in apply: FIFO order is exact.
//! - A **group** maps member names to the session that joined them and their info,
//!   in join order; joins and leaves produce messages on `__tandem__:group:<group>`.
//!
//! This module reads no clock: every time is the caller's (the entry's).

use std::collections::VecDeque;

use bytes::Bytes;
use indexmap::IndexMap;

use super::codec::{put_bytes, put_varint, CodecError, Decoder};

/// The pub/sub channel prefix of group events: `__tandem__:group:<group>`.
pub const GROUP_CHANNEL_PREFIX: &str = "__tandem__:group:";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The reconnect window this session was opened with.
    pub window_ms: u64,
    /// When it ends unless renewed (last renewal + window).
    pub expires_at_ms: u64,
    pub opened_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub session: Bytes,
    pub token: u64,
    /// The lease's end (`TTL`); 0: held until unlocked or the session ends.
    pub expires_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiter {
    pub session: Bytes,
    /// The lease asked for (`TTL`), 0 for none.
    pub ttl_ms: u64,
    /// When the wait ends (0: never); past it the waiter is skipped.
    pub deadline_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lock {
    pub holder: Option<Holder>,
    pub waiters: VecDeque<Waiter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub session: Bytes,
    pub info: Bytes,
}

/// What a lock request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// Held by the caller's session with this token (granted now or before).
    Token(u64),
    /// Held by another session; the caller does not wait.
    Busy,
    /// Held by another session; the caller waits in the queue.
    Queued,
}

/// What a JOIN came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    New,
    /// The session's member already: its info is replaced.
    Again,
    /// Another session's member: nothing changes.
    Taken,
}

/// Why a fenced write is refused (`-FENCED …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fence {
    NotHeld,
    Newer,
    NotCurrent,
}

/// What applying a change produced beside its reply: locks granted (blocked
/// clients waiting on them must look again) and group events to publish.
#[derive(Debug, Default)]
pub struct Effects {
    pub granted: Vec<Bytes>,
    pub messages: Vec<(Bytes, Bytes)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prims {
    pub sessions: IndexMap<Bytes, Session>,
    pub locks: IndexMap<Bytes, Lock>,
    pub groups: IndexMap<Bytes, IndexMap<Bytes, Member>>,
    /// The last fencing token handed out on this stripe.
    pub last_token: u64,
}

impl Prims {
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty() && self.locks.is_empty() && self.groups.is_empty() && self.last_token == 0
    }

    pub fn alive(&self, session: &[u8], now_ms: u64) -> bool {
        self.sessions.get(session).is_some_and(|s| s.expires_at_ms > now_ms)
    }

    /// Opens session `id`; false if it exists already.
    pub fn open(&mut self, id: &Bytes, window_ms: u64, now_ms: u64) -> bool {
        if self.sessions.contains_key(id) {
            return false;
        }
        let session = Session { window_ms, expires_at_ms: now_ms.saturating_add(window_ms), opened_at_ms: now_ms };
        self.sessions.insert(owned(id), session);
        true
    }

    /// Renews session `id` (a renewal, a RESUME, any use): it lives a window from
    /// now. False if it does not exist or its window is over (an entry ends it).
    pub fn touch(&mut self, id: &[u8], now_ms: u64) -> bool {
        match self.sessions.get_mut(id) {
            Some(s) if s.expires_at_ms > now_ms => {
                s.expires_at_ms = s.expires_at_ms.max(now_ms.saturating_add(s.window_ms));
                true
            }
            _ => false,
        }
    }

    /// Ends session `id` now, releasing what it owned. False if there was none.
    pub fn end(&mut self, id: &[u8], now_ms: u64, fx: &mut Effects) -> bool {
        if self.sessions.shift_remove(id).is_none() {
            return false;
        }
        let held: Vec<Bytes> =
            self.locks.iter().filter(|(_, l)| l.holder.as_ref().is_some_and(|h| h.session[..] == *id)).map(|(n, _)| n.clone()).collect();
        for lock in self.locks.values_mut() {
            lock.waiters.retain(|w| w.session[..] != *id);
        }
        for name in held {
            self.release(&name, now_ms, fx);
        }
        let mut emptied = Vec::new();
        for (group, members) in self.groups.iter_mut() {
            let leaving: Vec<Bytes> = members.iter().filter(|(_, m)| m.session[..] == *id).map(|(n, _)| n.clone()).collect();
            for member in leaving {
                members.shift_remove(&member);
                fx.messages.push(group_event(group, "leave", &member));
            }
            if members.is_empty() {
                emptied.push(group.clone());
            }
        }
        for group in emptied {
            self.groups.shift_remove(&group);
        }
        true
    }

    /// Sessions whose window is over at `now_ms` (the active proposes their end).
    pub fn due_sessions(&self, now_ms: u64, max: usize) -> Vec<Bytes> {
        self.sessions.iter().filter(|(_, s)| s.expires_at_ms <= now_ms).take(max).map(|(id, _)| id.clone()).collect()
    }

    /// Locks whose lease is over at `now_ms`, with the holder's token.
    pub fn due_locks(&self, now_ms: u64, max: usize) -> Vec<(Bytes, u64)> {
        self.locks
            .iter()
            .filter_map(|(name, l)| {
                l.holder.as_ref().filter(|h| h.expires_at_ms != 0 && h.expires_at_ms <= now_ms).map(|h| (name.clone(), h.token))
            })
            .take(max)
            .collect()
    }

    /// The live holder of `name` at `now_ms` (a lease that is over holds nothing,
    /// even before the entry that releases it applies).
    pub fn holder(&self, name: &[u8], now_ms: u64) -> Option<&Holder> {
        self.locks.get(name)?.holder.as_ref().filter(|h| h.expires_at_ms == 0 || h.expires_at_ms > now_ms)
    }

    /// Releases a lease that is over before `name` is used.
    fn settle_lease(&mut self, name: &[u8], now_ms: u64, fx: &mut Effects) {
        let over = self.locks.get(name).and_then(|l| l.holder.as_ref()).is_some_and(|h| h.expires_at_ms != 0 && h.expires_at_ms <= now_ms);
        if over {
            self.release(name, now_ms, fx);
        }
    }

    /// `session` asks for `name`, with a lease of `ttl_ms` (0: none); `wait` is
    /// `Some(ms)` (0: forever) when it waits in the queue if the lock is held.
    pub fn lock(&mut self, name: &Bytes, session: &Bytes, ttl_ms: u64, wait: Option<u64>, now_ms: u64, fx: &mut Effects) -> Acquired {
        self.settle_lease(name, now_ms, fx);
        let lock = self.locks.entry(owned(name)).or_default();
        match &lock.holder {
            Some(h) if h.session == *session => return Acquired::Token(h.token),
            Some(_) => {}
            None => {
                self.last_token += 1;
                let token = self.last_token;
                lock.holder = Some(Holder { session: owned(session), token, expires_at_ms: lease_end(now_ms, ttl_ms) });
                return Acquired::Token(token);
            }
        }
        let Some(wait_ms) = wait else { return Acquired::Busy };
        let deadline_ms = if wait_ms == 0 { 0 } else { now_ms.saturating_add(wait_ms) };
        // Asked again (a waiter woken, a client that reconnected, a mirror that
        // re-sent the wait): it keeps its place, and its first wait's end.
        if !lock.waiters.iter().any(|w| w.session == *session) {
            lock.waiters.push_back(Waiter { session: owned(session), ttl_ms, deadline_ms });
        }
        Acquired::Queued
    }

    /// `session` stops waiting for `name`: its token if it was granted the lock
    /// meanwhile (a grant that won the race with the client's timeout), else none.
    pub fn withdraw(&mut self, name: &[u8], session: &[u8], now_ms: u64, fx: &mut Effects) -> Option<u64> {
        self.settle_lease(name, now_ms, fx);
        let lock = self.locks.get_mut(name)?;
        if let Some(h) = lock.holder.as_ref().filter(|h| h.session[..] == *session) {
            return Some(h.token);
        }
        lock.waiters.retain(|w| w.session[..] != *session);
        if lock.holder.is_none() && lock.waiters.is_empty() {
            self.locks.swap_remove(name);
        }
        None
    }

    /// Releases `name` if `token` is its holder's: true if it was.
    pub fn unlock(&mut self, name: &[u8], token: u64, now_ms: u64, fx: &mut Effects) -> bool {
        if self.holder(name, now_ms).is_none_or(|h| h.token != token) {
            return false;
        }
        self.release(name, now_ms, fx);
        true
    }

    /// Ends the lease of `name` held with `token` if it is over at `now_ms`.
    pub fn expire_lock(&mut self, name: &[u8], token: u64, now_ms: u64, fx: &mut Effects) -> bool {
        let due = self
            .locks
            .get(name)
            .and_then(|l| l.holder.as_ref())
            .is_some_and(|h| h.token == token && h.expires_at_ms != 0 && h.expires_at_ms <= now_ms);
        if due {
            self.release(name, now_ms, fx);
        }
        due
    }

    /// Whether a write fenced by `token` may apply: `token` is the live holder's.
    pub fn fence(&self, name: &[u8], token: u64, now_ms: u64) -> Result<(), Fence> {
        match self.holder(name, now_ms) {
            None => Err(Fence::NotHeld),
            Some(h) if h.token == token => Ok(()),
            Some(h) if h.token > token => Err(Fence::Newer),
            Some(_) => Err(Fence::NotCurrent),
        }
    }

    /// Frees `name` and grants it to the first eligible waiter.
    fn release(&mut self, name: &[u8], now_ms: u64, fx: &mut Effects) {
        let Some(lock) = self.locks.get_mut(name) else { return };
        lock.holder = None;
        while let Some(w) = lock.waiters.pop_front() {
            let alive = self.sessions.get(&w.session).is_some_and(|s| s.expires_at_ms > now_ms);
            if !alive || (w.deadline_ms != 0 && w.deadline_ms <= now_ms) {
                continue;
            }
            self.last_token += 1;
            lock.holder = Some(Holder { session: w.session, token: self.last_token, expires_at_ms: lease_end(now_ms, w.ttl_ms) });
            fx.granted.push(Bytes::copy_from_slice(name));
            return;
        }
        self.locks.swap_remove(name);
    }

    /// `session` joins `group` as `member`.
    pub fn join(&mut self, group: &Bytes, member: &Bytes, info: &Bytes, session: &Bytes, fx: &mut Effects) -> Joined {
        let members = self.groups.entry(owned(group)).or_default();
        match members.get_mut(member) {
            Some(m) if m.session == *session => {
                m.info = owned(info);
                Joined::Again
            }
            Some(_) => Joined::Taken,
            None => {
                members.insert(owned(member), Member { session: owned(session), info: owned(info) });
                fx.messages.push(group_event(group, "join", member));
                Joined::New
            }
        }
    }

    /// Removes `member` from `group`: true if it was there.
    pub fn leave(&mut self, group: &[u8], member: &[u8], fx: &mut Effects) -> bool {
        let Some(members) = self.groups.get_mut(group) else { return false };
        if members.shift_remove(member).is_none() {
            return false;
        }
        fx.messages.push(group_event(group, "leave", member));
        if members.is_empty() {
            self.groups.shift_remove(group);
        }
        true
    }

    /// Encodes everything (snapshot record 9).
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.last_token);
        put_varint(out, self.sessions.len() as u64);
        for (id, s) in &self.sessions {
            put_bytes(out, id);
            put_varint(out, s.window_ms);
            put_varint(out, s.expires_at_ms);
            put_varint(out, s.opened_at_ms);
        }
        put_varint(out, self.locks.len() as u64);
        for (name, lock) in &self.locks {
            put_bytes(out, name);
            match &lock.holder {
                None => out.push(0),
                Some(h) => {
                    out.push(1);
                    put_bytes(out, &h.session);
                    put_varint(out, h.token);
                    put_varint(out, h.expires_at_ms);
                }
            }
            put_varint(out, lock.waiters.len() as u64);
            for w in &lock.waiters {
                put_bytes(out, &w.session);
                put_varint(out, w.ttl_ms);
                put_varint(out, w.deadline_ms);
            }
        }
        put_varint(out, self.groups.len() as u64);
        for (group, members) in &self.groups {
            put_bytes(out, group);
            put_varint(out, members.len() as u64);
            for (name, m) in members {
                put_bytes(out, name);
                put_bytes(out, &m.session);
                put_bytes(out, &m.info);
            }
        }
    }

    /// Decodes what [`Prims::encode`] wrote; counts are bounded by the bytes left.
    pub fn decode(d: &mut Decoder) -> Result<Prims, CodecError> {
        let mut prims = Prims { last_token: d.varint("last fencing token")?, ..Prims::default() };
        let bytes = |d: &mut Decoder, what: &'static str| d.bytes(what).map(Bytes::copy_from_slice);
        for _ in 0..d.count("sessions", 4)? {
            let id = bytes(d, "session id")?;
            let session =
                Session { window_ms: d.varint("window")?, expires_at_ms: d.varint("session end")?, opened_at_ms: d.varint("opened at")? };
            prims.sessions.insert(id, session);
        }
        for _ in 0..d.count("locks", 3)? {
            let name = bytes(d, "lock name")?;
            let holder = match d.u8("holder tag")? {
                0 => None,
                1 => {
                    Some(Holder { session: bytes(d, "holder session")?, token: d.varint("token")?, expires_at_ms: d.varint("lease end")? })
                }
                other => {
                    return Err(CodecError::Invalid {
                        what: "lock holder tag",
                        offset: d.offset(),
                        why: format!("{other}, expected 0 or 1"),
                    })
                }
            };
            let mut waiters = VecDeque::new();
            for _ in 0..d.count("waiters", 3)? {
                waiters.push_back(Waiter {
                    session: bytes(d, "waiter session")?,
                    ttl_ms: d.varint("waiter lease")?,
                    deadline_ms: d.varint("wait end")?,
                });
            }
            prims.locks.insert(name, Lock { holder, waiters });
        }
        for _ in 0..d.count("groups", 2)? {
            let group = bytes(d, "group")?;
            let mut members = IndexMap::new();
            for _ in 0..d.count("members", 3)? {
                let name = bytes(d, "member")?;
                members.insert(name, Member { session: bytes(d, "member session")?, info: bytes(d, "member info")? });
            }
            prims.groups.insert(group, members);
        }
        Ok(prims)
    }
}

fn lease_end(now_ms: u64, ttl_ms: u64) -> u64 {
    if ttl_ms == 0 {
        0
    } else {
        now_ms.saturating_add(ttl_ms)
    }
}

/// A group event: on `__tandem__:group:<group>`, the message `join <member>` or
/// `leave <member>`.
fn group_event(group: &[u8], what: &str, member: &[u8]) -> (Bytes, Bytes) {
    let mut channel = GROUP_CHANNEL_PREFIX.as_bytes().to_vec();
    channel.extend_from_slice(group);
    let mut message = format!("{what} ").into_bytes();
    message.extend_from_slice(member);
    (channel.into(), message.into())
}

/// A name kept in the primitives' state, copied out of the command's arguments: an
/// argument is a slice of a buffer its whole batch shares (`store::ArgArena`), which
/// a long-lived slice would hold.
fn owned(b: &Bytes) -> Bytes {
    Bytes::copy_from_slice(b)
}
