//! Client-side caching: CLIENT TRACKING (DESIGN.md §8, the near cache). A client that
//! tracks keys is told when one it read changes, so it may keep a copy of what it read
//! until then.
//!
//! Every server of a stripe applies the same entries, so each one invalidates for its
//! own clients from what its own apply modified (`Db::record_touched`): a client of a
//! mirror is told about a write made on the active when the mirror applies it. A
//! server that changes active (a failover, an election, a lost active) tells every
//! tracking client to drop everything (a null invalidation), as it does for FLUSHALL
//! and for a snapshot installed.
//!
//! Two modes, as in Redis:
//! - default: the keys a client read are remembered (`keys`); the first modification
//!   of one is sent to the clients that read it, and the key is forgotten;
//! - BCAST: every modified key under one of the client's prefixes is sent, read or not.
//!
//! When a remembered key is forgotten. A read's keys are remembered *before* the
//! read runs (so a write applied between the two is not missed). A write's
//! invalidation then forgets the key for a reader only if that reader's reads are
//! done and ran before the write (the log index applied when the last one finished
//! is below the write's): a write applied before a read ran, whose invalidation is
//! handled after the read's reply, leaves the key remembered, since the reply may
//! hold that write and the next write must be told too. So every write applied
//! after a read ran reaches its client, in every mode (with REDIRECT the
//! invalidation may still overtake the reply on the other connection, as in Redis:
//! clients drop what a read in flight returns when an invalidation arrives meanwhile).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::clients::{ClientInfo, Clients};
use super::pubsub::ClientId;
use crate::protocol::reply::Reply;
use crate::replication::state_machine::Touch;

/// The channel RESP2 clients subscribe to for redirected invalidations.
pub const INVALIDATE_CHANNEL: &[u8] = b"__redis__:invalidate";

/// What CLIENT TRACKING ON asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// REDIRECT: the client that receives the invalidations (0: the client itself).
    pub redirect: u64,
    pub bcast: bool,
    pub prefixes: Vec<Bytes>,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
}

impl Options {
    /// Parses the options of `CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p]… [BCAST]
    /// [OPTIN] [OPTOUT] [NOLOOP]`; `exists` says whether a client id is connected.
    pub fn parse(args: &[Bytes], exists: impl Fn(u64) -> bool) -> Result<Options, Reply> {
        let mut options = Options::default();
        let mut i = 0;
        while i < args.len() {
            let word = String::from_utf8_lossy(&args[i]).to_ascii_lowercase();
            let more = i + 1 < args.len();
            match word.as_str() {
                "redirect" if more => {
                    i += 1;
                    if options.redirect != 0 {
                        return Err(Reply::err("ERR A client can only redirect to a single other client"));
                    }
                    let id = std::str::from_utf8(&args[i])
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                        .ok_or_else(|| Reply::err("ERR value is not an integer or out of range"))?;
                    if id <= 0 || !exists(id as u64) {
                        return Err(Reply::err("ERR The client ID you want redirect to does not exist"));
                    }
                    options.redirect = id as u64;
                }
                "bcast" => options.bcast = true,
                "optin" => options.optin = true,
                "optout" => options.optout = true,
                "noloop" => options.noloop = true,
                "prefix" if more => {
                    i += 1;
                    options.prefixes.push(args[i].clone());
                }
                _ => return Err(Reply::err("ERR syntax error")),
            }
            i += 1;
        }
        Ok(options)
    }

    /// Whether this client's next read is remembered: not in BCAST mode, and not left
    /// out by OPTIN (no `CLIENT CACHING yes` before it) or OPTOUT (`CLIENT CACHING no`).
    pub fn remembers(&self, caching_given: bool) -> bool {
        let opted_out = if self.optin { !caching_given } else { self.optout && caching_given };
        !self.bcast && !opted_out
    }
}

/// A tracking client as the table knows it.
struct Tracker {
    options: Options,
    info: Arc<ClientInfo>,
    /// The redirect client was gone when an invalidation was due (told once).
    broken: bool,
}

/// A client that read a key.
#[derive(Default, Clone, Copy)]
struct Reader {
    /// Its reads of the key that have no reply yet.
    in_flight: u32,
    /// The log index its finished reads may have seen writes up to.
    seen: u64,
}

#[derive(Default)]
struct Inner {
    clients: HashMap<ClientId, Tracker>,
    /// Default mode: key → the clients that read it.
    keys: HashMap<Bytes, HashMap<ClientId, Reader>>,
    /// BCAST: prefix → the clients listening under it.
    prefixes: BTreeMap<Bytes, HashSet<ClientId>>,
}

#[derive(Default)]
pub struct Tracking {
    inner: Mutex<Inner>,
    /// Clients tracking now.
    tracking: AtomicUsize,
    /// The store's `tracking_on`: it records modified keys while any client tracks.
    /// Set under `inner`'s lock, so concurrent ON and OFF leave it right; on before
    /// CLIENT TRACKING ON answers, so no entry applied after that goes unrecorded.
    recording: Arc<AtomicBool>,
    /// Some client tracks with NOLOOP: writes carry their client (`Entry::origins`).
    noloop: AtomicBool,
    /// The store's `applied_index`: the last entry applied here.
    applied: Arc<AtomicU64>,
}

/// INFO's figures.
pub struct Counts {
    pub clients: usize,
    pub keys: usize,
    pub items: usize,
    pub prefixes: usize,
}

impl Tracking {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn new(recording: Arc<AtomicBool>, applied: Arc<AtomicU64>) -> Tracking {
        Tracking { recording, applied, ..Tracking::default() }
    }

    /// Whether writes must say which client sent them (a NOLOOP client tracks).
    pub fn wants_origins(&self) -> bool {
        self.noloop.load(Ordering::Relaxed)
    }

    /// How many clients track keys.
    pub fn active(&self) -> usize {
        self.tracking.load(Ordering::Relaxed)
    }

    /// CLIENT TRACKING ON for `info`'s client, which tracks (`current`) or not: checks
    /// the options against each other and against its current mode, as Redis does.
    pub fn enable(&self, info: &Arc<ClientInfo>, options: Options) -> Result<Options, Reply> {
        if !options.bcast && !options.prefixes.is_empty() {
            return Err(Reply::err("ERR PREFIX option requires BCAST mode to be enabled"));
        }
        let mut inner = self.lock();
        let current = inner.clients.get(&info.id).map(|t| t.options.clone());
        if let Some(current) = &current {
            if current.bcast != options.bcast {
                return Err(Reply::err(
                    "ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.",
                ));
            }
        }
        if options.bcast && (options.optin || options.optout) {
            return Err(Reply::err("ERR OPTIN and OPTOUT are not compatible with BCAST"));
        }
        if options.optin && options.optout {
            return Err(Reply::err("ERR You can't specify both OPTIN mode and OPTOUT mode"));
        }
        if let Some(current) = &current {
            if (options.optin && current.optout) || (options.optout && current.optin) {
                return Err(Reply::err(
                    "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.",
                ));
            }
        }
        let existing: &[Bytes] = current.as_ref().map_or(&[], |c| &c.prefixes);
        let mut added = options.prefixes.clone();
        if options.bcast && added.is_empty() {
            added.push(Bytes::new());
        }
        added.dedup();
        for (i, prefix) in added.iter().enumerate() {
            if let Some(old) = existing.iter().find(|old| overlap(old, prefix) && *old != prefix) {
                return Err(Reply::error(format!(
                    "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(prefix),
                    String::from_utf8_lossy(old)
                )));
            }
            if let Some(other) = added[i + 1..].iter().find(|other| overlap(prefix, other)) {
                return Err(Reply::error(format!(
                    "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(prefix),
                    String::from_utf8_lossy(other)
                )));
            }
        }
        let mut prefixes = existing.to_vec();
        for prefix in added {
            if !prefixes.contains(&prefix) {
                inner.prefixes.entry(prefix.clone()).or_default().insert(info.id);
                prefixes.push(prefix);
            }
        }
        let options = Options { prefixes, ..options };
        if current.is_none() {
            self.tracking.fetch_add(1, Ordering::Relaxed);
        }
        self.recording.store(true, Ordering::Release);
        info.set_tracking(Some(&options), false);
        inner.clients.insert(info.id, Tracker { options: options.clone(), info: info.clone(), broken: false });
        self.noloop.store(inner.clients.values().any(|t| t.options.noloop), Ordering::Relaxed);
        Ok(options)
    }

    /// CLIENT TRACKING OFF, or the client disconnected. The keys it read stay in the
    /// table until they change (as in Redis): nothing is sent for them any more.
    pub fn disable(&self, id: ClientId) {
        let mut inner = self.lock();
        let Some(tracker) = inner.clients.remove(&id) else { return };
        self.tracking.fetch_sub(1, Ordering::Relaxed);
        self.noloop.store(inner.clients.values().any(|t| t.options.noloop), Ordering::Relaxed);
        tracker.info.set_tracking(None, false);
        for prefix in &tracker.options.prefixes {
            if let Some(clients) = inner.prefixes.get_mut(prefix) {
                clients.remove(&id);
                if clients.is_empty() {
                    inner.prefixes.remove(prefix);
                }
            }
        }
        // Nobody tracks: nothing remembered can be sent any more (and the store stops
        // recording, so a FLUSHALL would not clear it).
        if inner.clients.is_empty() {
            Self::forget_older(&mut inner, u64::MAX);
            self.recording.store(false, Ordering::Release);
        }
    }

    /// Remembers that `client` is about to read `keys` (see the module's notes). Past
    /// `max_keys` remembered keys, some are forgotten, their readers told.
    pub fn reading(&self, clients: &Clients, client: ClientId, keys: &[Bytes], max_keys: usize) {
        let mut inner = self.lock();
        for key in keys {
            inner.keys.entry(key.clone()).or_default().entry(client).or_default().in_flight += 1;
        }
        if inner.keys.len() > max_keys {
            Self::evict(&mut inner, clients, max_keys);
        }
    }

    /// Remembers `keys` for `client` if it tracks them, as read at log index `seen`:
    /// a script's declared keys, after it called a read-only command (in log order,
    /// or under the store's lock). OPTIN/OPTOUT are not asked here (what CLIENT
    /// CACHING said is the connection's): remembering more is only an extra
    /// invalidation, never a stale copy.
    pub fn remember(&self, client: ClientId, keys: &[Bytes], seen: u64) {
        let mut inner = self.lock();
        if inner.clients.get(&client).is_none_or(|t| t.options.bcast) {
            return;
        }
        for key in keys {
            let reader = inner.keys.entry(key.clone()).or_default().entry(client).or_default();
            reader.seen = reader.seen.max(seen);
        }
    }

    /// Tells `client` at once that `keys` may change (keys it read that this server
    /// cannot follow: another stripe's).
    pub fn invalidate_for(&self, clients: &Clients, client: ClientId, mut keys: Vec<Bytes>) {
        keys.dedup();
        let mut inner = self.lock();
        Self::send_keys(&mut inner, clients, client, keys);
    }

    /// The reads of `keys` by `client` have their replies: they ran on a state no
    /// later than the entry applied now (`applied`).
    pub fn read_done(&self, client: ClientId, keys: &[Bytes]) {
        let applied = self.applied.load(Ordering::Acquire);
        let mut inner = self.lock();
        for key in keys {
            if let Some(reader) = inner.keys.get_mut(key).and_then(|readers| readers.get_mut(&client)) {
                reader.in_flight = reader.in_flight.saturating_sub(1);
                reader.seen = reader.seen.max(applied);
            }
        }
    }

    /// Forgets remembered keys (their readers told) until at most `max_keys` are left;
    /// keys with reads in flight stay (CONFIG SET tracking-table-max-keys, a read).
    pub fn limit(&self, clients: &Clients, max_keys: usize) {
        let mut inner = self.lock();
        if inner.keys.len() > max_keys {
            Self::evict(&mut inner, clients, max_keys);
        }
    }

    fn evict(inner: &mut Inner, clients: &Clients, max_keys: usize) {
        let excess = inner.keys.len().saturating_sub(max_keys);
        let victims: Vec<Bytes> = inner
            .keys
            .iter()
            .filter(|(_, readers)| readers.values().all(|r| r.in_flight == 0))
            .map(|(k, _)| k.clone())
            .take(excess)
            .collect();
        for key in victims {
            if let Some(readers) = inner.keys.remove(&key) {
                for id in readers.into_keys() {
                    Self::send_keys(inner, clients, id, vec![key.clone()]);
                }
            }
        }
    }

    /// Sends the invalidations for what applying modified: `touched` (each key with
    /// its entry's index and the client of this server that wrote it), and, with
    /// `all`, everything as of that index.
    pub fn invalidate(&self, clients: &Clients, touched: &[Touch], all: Option<u64>) {
        let mut inner = self.lock();
        if inner.clients.is_empty() && inner.keys.is_empty() {
            return;
        }
        if let Some(index) = all {
            Self::forget_older(&mut inner, index);
            Self::tell_all(&mut inner, clients);
        }
        // BCAST: one message per client and prefix, with every key under it.
        if !inner.prefixes.is_empty() {
            // Per client and prefix: its keys in order, each once.
            let mut batches: BTreeMap<(ClientId, Bytes), (Vec<Bytes>, HashSet<Bytes>)> = BTreeMap::new();
            for touch in touched {
                let key = &touch.key;
                // The prefixes a key may be under: looked up by the key's own
                // prefixes when there are more prefixes than the key is long.
                let under: Vec<(&Bytes, &HashSet<ClientId>)> = if inner.prefixes.len() > key.len() {
                    (0..=key.len()).filter_map(|n| inner.prefixes.get_key_value(&key[..n])).collect()
                } else {
                    inner.prefixes.iter().filter(|(p, _)| key.starts_with(p)).collect()
                };
                for (prefix, ids) in under {
                    for id in ids {
                        let noloop = inner.clients.get(id).is_some_and(|t| t.options.noloop);
                        if noloop && touch.origin == *id {
                            continue;
                        }
                        let (keys, seen) = batches.entry((*id, prefix.clone())).or_default();
                        if seen.insert(key.clone()) {
                            keys.push(key.clone());
                        }
                    }
                }
            }
            for ((id, _), (keys, _)) in batches {
                Self::send_keys(&mut inner, clients, id, keys);
            }
        }
        // Default mode: one message per key, to each client that read it. A reader
        // is forgotten only if its read is done and ran before this write (see the
        // module's notes): otherwise its copy may hold this write, and the next one
        // must reach it too.
        for touch in touched {
            let Some(readers) = inner.keys.get_mut(&touch.key) else { continue };
            let told: Vec<ClientId> = readers.keys().copied().collect();
            readers.retain(|_, r| r.in_flight > 0 || r.seen >= touch.index);
            if readers.is_empty() {
                inner.keys.remove(&touch.key);
            }
            for id in told {
                let Some(tracker) = inner.clients.get(&id) else { continue };
                if tracker.options.bcast || (tracker.options.noloop && touch.origin == id) {
                    continue;
                }
                Self::send_keys(&mut inner, clients, id, vec![touch.key.clone()]);
            }
        }
    }

    /// Tells every tracking client that anything may have changed (a null
    /// invalidation): a new active. Nothing is forgotten (its reads' copies may
    /// already hold what the new active applies next).
    pub fn flush_all(&self, clients: &Clients) {
        let mut inner = self.lock();
        Self::tell_all(&mut inner, clients);
    }

    /// Forgets the remembered keys whose reads are done and ran before `index`
    /// (FLUSHALL, a snapshot installed at `index`; `u64::MAX`: every settled one).
    fn forget_older(inner: &mut Inner, index: u64) {
        inner.keys.retain(|_, readers| {
            readers.retain(|_, r| r.in_flight > 0 || r.seen >= index);
            !readers.is_empty()
        });
    }

    fn tell_all(inner: &mut Inner, clients: &Clients) {
        let ids: Vec<ClientId> = inner.clients.keys().copied().collect();
        for id in ids {
            Self::send(inner, clients, id, None);
        }
    }

    fn send_keys(inner: &mut Inner, clients: &Clients, id: ClientId, keys: Vec<Bytes>) {
        Self::send(inner, clients, id, Some(keys));
    }

    /// One invalidation (`None`: of everything) for the tracking client `id`: to the
    /// client itself in RESP3, or to its REDIRECT client (a RESP3 push, or a RESP2
    /// subscriber's message on `__redis__:invalidate`). A RESP2 client that does not
    /// redirect gets nothing, as in Redis. A redirect client that is gone is reported
    /// once to a RESP3 tracking client (`tracking-redir-broken`).
    fn send(inner: &mut Inner, clients: &Clients, id: ClientId, keys: Option<Vec<Bytes>>) {
        let Some(tracker) = inner.clients.get_mut(&id) else { return };
        let redirect = tracker.options.redirect;
        let target = if redirect == 0 { Some(tracker.info.clone()) } else { clients.get(redirect) };
        let Some(target) = target else {
            if !tracker.broken {
                tracker.broken = true;
                tracker.info.set_tracking(Some(&tracker.options), true);
                if tracker.info.resp3() {
                    if let Some(outbox) = tracker.info.outbox() {
                        outbox.send(Reply::Push(vec![Reply::bulk(b"tracking-redir-broken"), Reply::Int(redirect as i64)]), 64);
                    }
                }
            }
            return;
        };
        let Some(outbox) = target.outbox() else { return };
        let size = keys.as_ref().map_or(0, |k| k.iter().map(|k| k.len() + 16).sum::<usize>()) + 64;
        let keys = match keys {
            Some(keys) => Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
            None => Reply::Nil,
        };
        if target.resp3() {
            outbox.send(Reply::Push(vec![Reply::bulk(b"invalidate"), keys]), size);
        } else if redirect != 0 && target.subscribed() {
            outbox.send(Reply::Push(vec![Reply::bulk(b"message"), Reply::bulk(INVALIDATE_CHANNEL), keys]), size);
        }
    }

    /// CLIENT TRACKINGINFO's flags besides on/off: whether its redirect is broken.
    pub fn broken(&self, id: ClientId) -> bool {
        self.lock().clients.get(&id).is_some_and(|t| t.broken)
    }

    pub fn counts(&self) -> Counts {
        let inner = self.lock();
        Counts {
            clients: inner.clients.len(),
            keys: inner.keys.len(),
            items: inner.keys.values().map(HashMap::len).sum(),
            prefixes: inner.prefixes.len(),
        }
    }
}

/// Whether one of two prefixes starts the other (a key could match both).
fn overlap(a: &[u8], b: &[u8]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

#[cfg(test)]
mod tests {
    use super::super::pubsub::Outbox;
    use super::*;
    use tokio::sync::mpsc;

    fn client(clients: &Clients, resp3: bool) -> (Arc<ClientInfo>, mpsc::UnboundedReceiver<Reply>) {
        let info = clients.register("127.0.0.1:1".into(), "127.0.0.1:2".into());
        let (tx, rx) = mpsc::unbounded_channel();
        let outbox = Outbox { tx, queued_bytes: Arc::new(AtomicUsize::new(0)), kill: info.kill.clone() };
        info.set_outbox(outbox);
        info.resp.store(if resp3 { 3 } else { 2 }, Ordering::Relaxed);
        (info, rx)
    }

    fn k(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// A write of `key` by `origin`, at an index after every read so far.
    fn touch(origin: u64, key: Bytes) -> Touch {
        Touch { index: 1, origin, key }
    }

    fn invalidated(rx: &mut mpsc::UnboundedReceiver<Reply>) -> Vec<Reply> {
        let mut out = Vec::new();
        while let Ok(r) = rx.try_recv() {
            out.push(r);
        }
        out
    }

    fn push(keys: &[&str]) -> Reply {
        Reply::Push(vec![Reply::bulk(b"invalidate"), Reply::Array(keys.iter().map(|s| Reply::Bulk(k(s))).collect())])
    }

    #[test]
    fn a_read_key_is_invalidated_once_and_forgotten() {
        let clients = Clients::default();
        let tracking = Tracking::default();
        let (a, mut rx) = client(&clients, true);
        tracking.enable(&a, Options::default()).unwrap();
        tracking.reading(&clients, a.id, &[k("x")], 100);
        tracking.read_done(a.id, &[k("x")]);
        tracking.invalidate(&clients, &[touch(0, k("y"))], None);
        assert!(invalidated(&mut rx).is_empty(), "a key not read is not sent");
        tracking.invalidate(&clients, &[touch(0, k("x"))], None);
        assert_eq!(invalidated(&mut rx), vec![push(&["x"])]);
        tracking.invalidate(&clients, &[touch(0, k("x"))], None);
        assert!(invalidated(&mut rx).is_empty(), "sent once, then forgotten until read again");
    }

    /// The race the module's notes describe: a write applied while a read is in
    /// flight does not make the key forgotten, so the next write still reaches the
    /// client.
    #[test]
    fn a_key_read_in_flight_stays_remembered_through_an_invalidation() {
        let clients = Clients::default();
        let tracking = Tracking::default();
        let (a, mut rx) = client(&clients, true);
        tracking.enable(&a, Options::default()).unwrap();
        tracking.reading(&clients, a.id, &[k("x")], 100);
        tracking.invalidate(&clients, &[touch(0, k("x"))], None);
        tracking.read_done(a.id, &[k("x")]);
        tracking.invalidate(&clients, &[touch(0, k("x"))], None);
        assert_eq!(invalidated(&mut rx), vec![push(&["x"]), push(&["x"])]);
        tracking.flush_all(&clients);
        assert_eq!(invalidated(&mut rx), vec![Reply::Push(vec![Reply::bulk(b"invalidate"), Reply::Nil])]);
    }

    /// A write applied before a read ran, whose invalidation is handled only after
    /// the read's reply, does not make the key forgotten: the read may hold that
    /// write, and the next write must reach the client too (a REDIRECT client may
    /// see the first invalidation before the reply).
    #[test]
    fn a_write_the_finished_read_may_have_seen_does_not_forget_the_key() {
        let clients = Clients::default();
        let applied = Arc::new(AtomicU64::new(0));
        let tracking = Tracking::new(Arc::default(), applied.clone());
        let (a, mut rx) = client(&clients, true);
        tracking.enable(&a, Options::default()).unwrap();
        tracking.reading(&clients, a.id, &[k("x")], 100);
        applied.store(5, Ordering::Release);
        tracking.read_done(a.id, &[k("x")]);
        tracking.invalidate(&clients, &[Touch { index: 4, origin: 0, key: k("x") }], None);
        tracking.invalidate(&clients, &[Touch { index: 6, origin: 0, key: k("x") }], None);
        tracking.invalidate(&clients, &[Touch { index: 7, origin: 0, key: k("x") }], None);
        assert_eq!(invalidated(&mut rx), vec![push(&["x"]), push(&["x"])], "kept through 4, told and forgotten at 6");
        // FLUSHALL at an index the read saw keeps it too; a later one forgets it.
        tracking.reading(&clients, a.id, &[k("y")], 100);
        applied.store(9, Ordering::Release);
        tracking.read_done(a.id, &[k("y")]);
        tracking.invalidate(&clients, &[], Some(8));
        assert_eq!(tracking.counts().keys, 1);
        tracking.invalidate(&clients, &[], Some(10));
        assert_eq!(tracking.counts().keys, 0);
    }

    #[test]
    fn bcast_prefixes_noloop_and_redirection() {
        let clients = Clients::default();
        let tracking = Tracking::default();
        let (a, mut rx_a) = client(&clients, false);
        let (sub, mut rx_sub) = client(&clients, false);
        sub.subscriptions.store(1, Ordering::Relaxed);
        let options = Options { bcast: true, prefixes: vec![k("a:"), k("b:")], noloop: true, redirect: sub.id, ..Options::default() };
        tracking.enable(&a, options).unwrap();
        tracking.invalidate(
            &clients,
            &[touch(0, k("a:1")), touch(0, k("a:2")), touch(0, k("c:1")), touch(a.id, k("b:1")), touch(7, k("b:2"))],
            None,
        );
        assert!(invalidated(&mut rx_a).is_empty(), "RESP2 redirecting: nothing to the client itself");
        let message = |keys: &[&str]| {
            Reply::Push(vec![
                Reply::bulk(b"message"),
                Reply::bulk(INVALIDATE_CHANNEL),
                Reply::Array(keys.iter().map(|s| Reply::Bulk(k(s))).collect()),
            ])
        };
        assert_eq!(invalidated(&mut rx_sub), vec![message(&["a:1", "a:2"]), message(&["b:2"])]);
        let overlap = Options { bcast: true, prefixes: vec![k("a:x")], ..Options::default() };
        assert!(matches!(tracking.enable(&a, overlap), Err(Reply::Error(e)) if e.contains("overlaps with an existing prefix 'a:'")));
        clients.unregister(sub.id);
        tracking.invalidate(&clients, &[touch(0, k("a:1"))], None);
        assert!(tracking.broken(a.id));
        tracking.disable(a.id);
        assert_eq!((tracking.active(), tracking.counts().prefixes), (0, 0));
    }

    #[test]
    fn past_the_table_limit_keys_are_forgotten_and_their_readers_told() {
        let clients = Clients::default();
        let tracking = Tracking::default();
        let (a, mut rx) = client(&clients, true);
        tracking.enable(&a, Options::default()).unwrap();
        let keys: Vec<Bytes> = (0..10).map(|i| k(&format!("k{i}"))).collect();
        tracking.reading(&clients, a.id, &keys, 100);
        tracking.read_done(a.id, &keys);
        tracking.limit(&clients, 3);
        assert_eq!(invalidated(&mut rx).len(), 7);
        assert_eq!(tracking.counts().keys, 3);
    }
}
