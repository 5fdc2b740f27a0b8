//! Generic key commands: existence, deletion, renaming and copying, expiry and TTLs,
//! enumeration (KEYS, SCAN, RANDOMKEY), flushing, DUMP/RESTORE, and the two internal
//! commands through which the active's expiry and eviction decisions enter the log.
//!
//! These commands look at keys and their TTLs, never inside values (DUMP/RESTORE
//! hand values to [`crate::store::codec`]).

use bytes::Bytes;

use super::flags::*;
use super::*;
use crate::protocol::reply::{Reply, OK};
use crate::store::codec;

const G: &str = "generic";
const S: &str = "server";
const T: &str = "tandem";

pub static COMMANDS: &[CommandSpec] = &[
    spec("del", -2, WRITE, (1, -1, 1), G, "Deletes one or more keys.", Handler::Write(del)),
    spec("unlink", -2, WRITE | FAST, (1, -1, 1), G, "Asynchronously deletes one or more keys.", Handler::Write(unlink)),
    spec("exists", -2, READONLY | FAST, (1, -1, 1), G, "Determines whether one or more keys exist.", Handler::Read(exists)),
    spec("type", 2, READONLY | FAST, (1, 1, 1), G, "Determines the type of value stored at a key.", Handler::Read(type_cmd)),
    spec("rename", 3, WRITE, (1, 2, 1), G, "Renames a key and overwrites the destination.", Handler::Write(rename)),
    spec("renamenx", 3, WRITE | FAST, (1, 2, 1), G, "Renames a key only when the target key name doesn't exist.", Handler::Write(renamenx)),
    spec("copy", -3, WRITE | DENYOOM, (1, 2, 1), G, "Copies the value of a key to a new key.", Handler::Write(copy)),
    spec("expire", -3, WRITE | FAST, (1, 1, 1), G, "Sets the expiration time of a key in seconds.", Handler::Write(expire)),
    spec("pexpire", -3, WRITE | FAST, (1, 1, 1), G, "Sets the expiration time of a key in milliseconds.", Handler::Write(pexpire)),
    spec("expireat", -3, WRITE | FAST, (1, 1, 1), G, "Sets the expiration time of a key to a Unix timestamp.", Handler::Write(expireat)),
    spec(
        "pexpireat",
        -3,
        WRITE | FAST,
        (1, 1, 1),
        G,
        "Sets the expiration time of a key to a Unix milliseconds timestamp.",
        Handler::Write(pexpireat),
    ),
    spec("ttl", 2, READONLY | FAST, (1, 1, 1), G, "Returns the expiration time in seconds of a key.", Handler::Read(ttl)),
    spec("pttl", 2, READONLY | FAST, (1, 1, 1), G, "Returns the expiration time in milliseconds of a key.", Handler::Read(pttl)),
    spec(
        "expiretime",
        2,
        READONLY | FAST,
        (1, 1, 1),
        G,
        "Returns the expiration time of a key as a Unix timestamp.",
        Handler::Read(expiretime),
    ),
    spec(
        "pexpiretime",
        2,
        READONLY | FAST,
        (1, 1, 1),
        G,
        "Returns the expiration time of a key as a Unix milliseconds timestamp.",
        Handler::Read(pexpiretime),
    ),
    spec("persist", 2, WRITE | FAST, (1, 1, 1), G, "Removes the expiration time of a key.", Handler::Write(persist)),
    spec(
        "touch",
        -2,
        READONLY | FAST,
        (1, -1, 1),
        G,
        "Returns the number of existing keys out of those specified after updating the time they were last accessed.",
        Handler::Read(touch),
    ),
    spec("keys", 2, READONLY, (0, 0, 0), G, "Returns all key names that match a pattern.", Handler::Read(keys)),
    spec("scan", -2, READONLY, (0, 0, 0), G, "Iterates over the key names in the database.", Handler::Read(scan)),
    spec("randomkey", 1, READONLY, (0, 0, 0), G, "Returns a random key name from the database.", Handler::Read(randomkey)),
    spec(
        "tandem.digest",
        1,
        READONLY | FAST,
        (0, 0, 0),
        S,
        "Returns a digest of this server's data: equal on servers that applied the same entries.",
        Handler::Read(digest),
    ),
    spec("dbsize", 1, READONLY | FAST, (0, 0, 0), S, "Returns the number of keys in the database.", Handler::Read(dbsize)),
    spec("flushdb", -1, WRITE, (0, 0, 0), S, "Removes all keys from the current database.", Handler::Write(flush)),
    spec("flushall", -1, WRITE, (0, 0, 0), S, "Removes all keys from all databases.", Handler::Write(flush)),
    spec("dump", 2, READONLY, (1, 1, 1), G, "Returns a serialized representation of the value stored at a key.", Handler::Read(dump)),
    spec(
        "migrate",
        -6,
        WRITE | MOVABLE_KEYS,
        (3, 3, 1),
        G,
        "Atomically transfers a key from one Redis instance to another.",
        Handler::Server(Srv::Migrate),
    )
    .movable(migrate_keys),
    spec(
        "restore",
        -4,
        WRITE | DENYOOM,
        (1, 1, 1),
        G,
        "Creates a key from the serialized representation of a value.",
        Handler::Write(restore),
    ),
    spec(
        "tandem.expired",
        -2,
        WRITE | INTERNAL,
        (1, -1, 1),
        T,
        "Deletes keys the active found expired (internal).",
        Handler::Write(tandem_expired),
    ),
    spec(
        "tandem.evict",
        -2,
        WRITE | INTERNAL,
        (1, -1, 1),
        T,
        "Deletes keys unconditionally (internal; only in logs written before TANDEM.EVICTIF).",
        Handler::Write(tandem_evict),
    ),
    spec(
        "tandem.evictif",
        -4,
        WRITE | INTERNAL,
        (3, -1, 1),
        T,
        "Deletes keys the active chose to evict that still qualify (internal).",
        Handler::Write(tandem_evictif),
    ),
];

/// MIGRATE's keys: those after KEYS, or its key argument unless empty.
fn migrate_keys(args: &[Bytes]) -> Vec<usize> {
    match args.iter().skip(6).position(|a| a.eq_ignore_ascii_case(b"keys")) {
        Some(at) => (6 + at + 1..args.len()).collect(),
        None if args.get(3).is_some_and(|k| !k.is_empty()) => vec![3],
        None => Vec::new(),
    }
}

const ERR_SAME_OBJECT: &str = "ERR source and destination objects are the same";
const ERR_DB_RANGE: &str = "ERR DB index is out of range";
const ERR_NX_XX_GT_LT: &str = "ERR NX and XX, GT or LT options at the same time are not compatible";
const ERR_GT_LT: &str = "ERR GT and LT options at the same time are not compatible";
const ERR_BUSYKEY: &str = "BUSYKEY Target key name already exists.";
const ERR_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";
const ERR_BAD_DATA: &str = "ERR Bad data format";
const ERR_TTL_NEGATIVE: &str = "ERR Invalid TTL value, must be >= 0";
const ERR_IDLETIME: &str = "ERR Invalid IDLETIME value, must be >= 0";
const ERR_FREQ: &str = "ERR Invalid FREQ value, must be >= 0 and <= 255";

/// RANDOMKEY's attempts to land on a live key before answering nil: a read cannot
/// delete the expired keys it meets, so the search must stop somewhere (Redis, on a
/// replica, likewise gives up after 100 tries).
const RANDOMKEY_TRIES_MAX: usize = 100;

// --- existence and deletion ---

/// DEL and UNLINK: memory is freed in the same way, so they are one handler.
fn del(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let mut deleted = 0;
    for key in &args[1..] {
        if ctx.delete(key) {
            ctx.notify(b'g', "del", key);
            deleted += 1;
        }
    }
    Ok(Reply::Int(deleted))
}

/// DEL whose large values are freed on the background thread ([`crate::store::lazyfree`]).
fn unlink(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let mut deleted = 0;
    for key in &args[1..] {
        if let Some(value) = ctx.take(key) {
            crate::store::lazyfree::free(value);
            ctx.notify(b'g', "del", key);
            deleted += 1;
        }
    }
    Ok(Reply::Int(deleted))
}

/// Counts live keys; a key named twice counts twice. Does not touch access times.
fn exists(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(args[1..].iter().filter(|key| ctx.item(key).is_some()).count() as i64))
}

fn type_cmd(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    Ok(Reply::status(ctx.item(&args[1]).map_or("none", |item| item.value.type_name())))
}

fn touch(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(args[1..].iter().filter(|key| ctx.get(key).is_some()).count() as i64))
}

// --- rename and copy ---

fn rename(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    rename_generic(ctx, &args[1], &args[2], false).map(|_| OK)
}

fn renamenx(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    rename_generic(ctx, &args[1], &args[2], true).map(|done| Reply::Int(done as i64))
}

/// Moves `src` to `dst` with its TTL and access metadata; false if `nx` and `dst`
/// exists. Renaming a key onto itself succeeds without changing anything (RENAMENX
/// answers 0 there, as Redis).
fn rename_generic(ctx: &mut WriteCtx, src: &[u8], dst: &[u8], nx: bool) -> Result<bool, Reply> {
    if ctx.get(src).is_none() {
        return Err(Reply::err(ERR_NO_KEY));
    }
    if src == dst {
        return Ok(!nx);
    }
    ctx.expire_if_needed(dst);
    if nx && ctx.db.item(dst).is_some() {
        return Ok(false);
    }
    let Some(item) = ctx.db.remove(src) else {
        return Err(Reply::err(ERR_NO_KEY));
    };
    // Overwriting the destination emits no `del` of its own: rename_to says it.
    ctx.db.remove(dst);
    ctx.set(dst, item.value);
    if item.expire_at_ms != 0 {
        ctx.db.set_expire(dst, item.expire_at_ms);
    }
    if let Some(moved) = ctx.db.item_mut(dst) {
        moved.access = item.access;
    }
    ctx.notify(b'g', "rename_from", src);
    ctx.notify(b'g', "rename_to", dst);
    Ok(true)
}

/// COPY source destination [DB destination-db] [REPLACE]. Only database 0 exists.
fn copy(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (src, dst) = (&args[1], &args[2]);
    let mut replace = false;
    let mut i = 3;
    while let Some(opt) = args.get(i) {
        match args.get(i + 1) {
            _ if is(opt, "replace") => replace = true,
            Some(db) if is(opt, "db") => {
                if int_arg(db)? != 0 {
                    return Err(Reply::err(ERR_DB_RANGE));
                }
                i += 1;
            }
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        i += 1;
    }
    if src == dst {
        return Err(Reply::err(ERR_SAME_OBJECT));
    }
    let Some(value) = ctx.get(src).cloned() else {
        return Ok(Reply::Int(0));
    };
    let expire_at_ms = ctx.db.item(src).map_or(0, |item| item.expire_at_ms);
    ctx.expire_if_needed(dst);
    if ctx.db.item(dst).is_some() && !replace {
        return Ok(Reply::Int(0));
    }
    ctx.db.remove(dst);
    ctx.set(dst, value);
    if expire_at_ms != 0 {
        ctx.db.set_expire(dst, expire_at_ms);
    }
    ctx.notify(b'g', "copy_to", dst);
    Ok(Reply::Int(1))
}

// --- expiry ---

fn expire(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let base = ctx.now_ms;
    expire_generic(ctx, args, base, 1000, "expire")
}

fn pexpire(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let base = ctx.now_ms;
    expire_generic(ctx, args, base, 1, "pexpire")
}

fn expireat(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    expire_generic(ctx, args, 0, 1000, "expireat")
}

fn pexpireat(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    expire_generic(ctx, args, 0, 1, "pexpireat")
}

/// Which of NX / XX / GT / LT were given.
#[derive(Default)]
struct ExpireCondition {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

impl ExpireCondition {
    fn parse(options: &[Bytes]) -> Result<ExpireCondition, Reply> {
        let mut c = ExpireCondition::default();
        for opt in options {
            match () {
                _ if is(opt, "nx") => c.nx = true,
                _ if is(opt, "xx") => c.xx = true,
                _ if is(opt, "gt") => c.gt = true,
                _ if is(opt, "lt") => c.lt = true,
                _ => return Err(Reply::error(format!("ERR Unsupported option {}", String::from_utf8_lossy(opt)))),
            }
        }
        if c.nx && (c.xx || c.gt || c.lt) {
            return Err(Reply::err(ERR_NX_XX_GT_LT));
        }
        if c.gt && c.lt {
            return Err(Reply::err(ERR_GT_LT));
        }
        Ok(c)
    }

    /// Whether a new expiry `when` may replace `current` (None = no TTL, which GT
    /// and LT treat as infinite, as Redis 7 does).
    fn allows(&self, current: Option<i64>, when: i64) -> bool {
        match current {
            None => !self.xx && !self.gt,
            Some(at) => !(self.nx || (self.gt && when <= at) || (self.lt && when >= at)),
        }
    }
}

/// EXPIRE and friends: `args[2]` in `unit_ms` units, added to `base_ms` (now for
/// relative forms, 0 for absolute ones). A time not after now deletes the key.
fn expire_generic(ctx: &mut WriteCtx, args: &[Bytes], base_ms: u64, unit_ms: i64, command: &str) -> CmdResult {
    let key = &args[1];
    let condition = ExpireCondition::parse(&args[3..])?;
    let amount = int_arg(&args[2])?;
    let invalid = || Reply::error(format!("ERR invalid expire time in '{command}' command"));
    let when = amount.checked_mul(unit_ms).and_then(|ms| ms.checked_add(base_ms as i64)).ok_or_else(invalid)?;
    ctx.expire_if_needed(key);
    let Some(item) = ctx.db.item(key) else {
        return Ok(Reply::Int(0));
    };
    let current = (item.expire_at_ms != 0).then_some(item.expire_at_ms as i64);
    if !condition.allows(current, when) {
        return Ok(Reply::Int(0));
    }
    if when <= ctx.now_ms as i64 {
        ctx.db.remove(key);
        ctx.notify(b'g', "del", key);
    } else {
        ctx.db.set_expire(key, when as u64);
        ctx.notify(b'g', "expire", key);
    }
    Ok(Reply::Int(1))
}

fn persist(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    ctx.expire_if_needed(key);
    if !ctx.db.persist(key) {
        return Ok(Reply::Int(0));
    }
    ctx.notify(b'g', "persist", key);
    Ok(Reply::Int(1))
}

fn ttl(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    Ok(ttl_generic(ctx, &args[1], false, false))
}

fn pttl(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    Ok(ttl_generic(ctx, &args[1], true, false))
}

fn expiretime(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    Ok(ttl_generic(ctx, &args[1], false, true))
}

fn pexpiretime(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    Ok(ttl_generic(ctx, &args[1], true, true))
}

/// -2 for a missing key, -1 for no TTL; otherwise the remaining time (or the
/// absolute time), seconds rounded to nearest as Redis does.
fn ttl_generic(ctx: &ReadCtx, key: &[u8], in_ms: bool, absolute: bool) -> Reply {
    let Some(item) = ctx.item(key) else {
        return Reply::Int(-2);
    };
    if item.expire_at_ms == 0 {
        return Reply::Int(-1);
    }
    let ms = if absolute { item.expire_at_ms } else { item.expire_at_ms.saturating_sub(ctx.now_ms) };
    let out = if in_ms { ms } else { ms.saturating_add(500) / 1000 };
    Reply::Int(i64::try_from(out).unwrap_or(i64::MAX))
}

// --- enumeration ---

fn keys(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let pattern = &args[1];
    let all = pattern.as_ref() == b"*";
    let found = ctx
        .db
        .iter()
        .filter(|(key, item)| !item.is_expired(ctx.now_ms) && (all || glob_match(pattern, key, false)))
        .map(|(key, _)| Reply::bulk(key))
        .collect();
    Ok(Reply::Array(found))
}

fn scan(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let cursor = scan::parse_cursor(&args[1])?;
    let opts = scan::parse_options(&args[2..], true, false)?;
    let (range, next) = scan::step(ctx.db.len(), cursor, opts.count);
    let mut found = Vec::new();
    for i in range.rev() {
        let Some((key, item)) = ctx.db.get_index(i) else {
            continue;
        };
        if item.is_expired(ctx.now_ms) {
            continue;
        }
        if opts.pattern.as_ref().is_some_and(|p| !glob_match(p, key, false)) {
            continue;
        }
        if opts.type_name.as_ref().is_some_and(|t| t != item.value.type_name()) {
            continue;
        }
        found.push(Reply::bulk(key));
    }
    Ok(scan::reply(next, found))
}

fn randomkey(ctx: &mut ReadCtx, _args: &[Bytes]) -> CmdResult {
    let len = ctx.db.len() as u64;
    if len == 0 {
        return Ok(Reply::Nil);
    }
    for _ in 0..RANDOMKEY_TRIES_MAX {
        let index = rand_core::RngCore::next_u64(ctx.rng) % len;
        if let Some((key, item)) = ctx.db.get_index(index as usize) {
            if !item.is_expired(ctx.now_ms) {
                return Ok(Reply::bulk(key));
            }
        }
    }
    Ok(Reply::Nil)
}

fn digest(ctx: &mut ReadCtx, _args: &[Bytes]) -> CmdResult {
    Ok(Reply::Bulk(Bytes::from(format!("{:016x}", crate::store::digest(ctx.db)))))
}

fn dbsize(ctx: &mut ReadCtx, _args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(ctx.db.len() as i64))
}

/// FLUSHDB and FLUSHALL [ASYNC|SYNC]: one database, so they are the same. Redis 7
/// emits no per-key events for a flush; WATCHes fail through the flush epoch.
fn flush(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let lazy = match args.get(1..).unwrap_or_default() {
        [] => false,
        [mode] if is(mode, "async") => true,
        [mode] if is(mode, "sync") => false,
        _ => return Err(Reply::err(ERR_SYNTAX)),
    };
    let removed = ctx.db.len() as u64;
    if lazy {
        ctx.db.clear_async();
    } else {
        ctx.db.clear();
    }
    *ctx.dirty = ctx.dirty.saturating_add(removed).saturating_add(1);
    Ok(OK)
}

// --- DUMP / RESTORE ---

fn dump(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    Ok(ctx.get(&args[1]).map_or(Reply::Nil, |value| Reply::Bulk(Bytes::from(codec::dump_payload(value)))))
}

/// RESTORE's options.
#[derive(Default)]
struct RestoreOptions {
    replace: bool,
    absttl: bool,
    idle_seconds: Option<u64>,
    freq: Option<u32>,
}

impl RestoreOptions {
    fn parse(args: &[Bytes]) -> Result<RestoreOptions, Reply> {
        let mut o = RestoreOptions::default();
        let mut i = 0;
        while let Some(opt) = args.get(i) {
            let value = args.get(i + 1);
            match value {
                _ if is(opt, "replace") => o.replace = true,
                _ if is(opt, "absttl") => o.absttl = true,
                Some(v) if is(opt, "idletime") && o.freq.is_none() => {
                    let idle = int_arg(v)?;
                    o.idle_seconds = Some(u64::try_from(idle).map_err(|_| Reply::err(ERR_IDLETIME))?);
                    i += 1;
                }
                Some(v) if is(opt, "freq") && o.idle_seconds.is_none() => {
                    let freq = int_arg(v)?;
                    o.freq = Some(u32::try_from(freq).ok().filter(|f| *f <= 255).ok_or(Reply::err(ERR_FREQ))?);
                    i += 1;
                }
                _ => return Err(Reply::err(ERR_SYNTAX)),
            }
            i += 1;
        }
        Ok(o)
    }
}

/// RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f], checking in
/// Redis's order: options, existing key, TTL, payload integrity, payload contents.
fn restore(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let opts = RestoreOptions::parse(&args[4..])?;
    ctx.expire_if_needed(key);
    let exists = ctx.db.item(key).is_some();
    if exists && !opts.replace {
        return Err(Reply::err(ERR_BUSYKEY));
    }
    let ttl = int_arg(&args[2])?;
    let ttl = u64::try_from(ttl).map_err(|_| Reply::err(ERR_TTL_NEGATIVE))?;
    let value = codec::restore_dump(&args[3]).map_err(|e| match e {
        codec::DumpError::Payload(_) => Reply::err(ERR_PAYLOAD),
        codec::DumpError::Data(_) => Reply::err(ERR_BAD_DATA),
    })?;
    // An absurd relative TTL saturates to "far future" rather than wrapping.
    let expire_at_ms = match ttl {
        0 => 0,
        t if opts.absttl => t,
        t => ctx.now_ms.saturating_add(t).min(i64::MAX as u64),
    };
    if exists {
        ctx.db.remove(key);
    }
    if expire_at_ms != 0 && expire_at_ms <= ctx.now_ms {
        if exists {
            ctx.notify(b'g', "del", key);
        }
        return Ok(OK);
    }
    let value = ctx.db.fitted(value);
    ctx.set(key, value);
    if expire_at_ms != 0 {
        ctx.db.set_expire(key, expire_at_ms);
    }
    apply_access_options(ctx, key, &opts);
    ctx.notify(b'g', "restore", key);
    Ok(OK)
}

/// IDLETIME sets the LRU clock back; FREQ sets the LFU counter (the low 8 bits of
/// `Item::access`, per its layout).
fn apply_access_options(ctx: &mut WriteCtx, key: &[u8], opts: &RestoreOptions) {
    let now_ms = ctx.now_ms;
    let Some(item) = ctx.db.item_mut(key) else {
        return;
    };
    if let Some(idle) = opts.idle_seconds {
        // `touch` with the largest chance never bumps the counter: it only sets the clock.
        item.touch(now_ms.saturating_sub(idle.saturating_mul(1000)), u32::MAX);
    }
    if let Some(freq) = opts.freq {
        let access = item.access.get_mut();
        *access = (*access & !0xff) | freq;
    }
}

// --- internal: the active's expiry and eviction ---

/// Deletes each key that is expired at the entry's time; others are skipped, so a
/// key whose TTL changed after the active decided is left alone on every replica.
fn tandem_expired(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let mut deleted = 0;
    for key in &args[1..] {
        if ctx.db.remove_if_expired(key, ctx.now_ms) {
            ctx.notify(b'x', "expired", key);
            deleted += 1;
        }
    }
    Ok(Reply::Int(deleted))
}

/// The eviction entry the active proposes: `TANDEM.EVICTIF <chosen-at> <scope> key…`,
/// where `chosen-at` is the log index the active had applied when it chose the
/// victims and `scope` is [`EVICT_VOLATILE`] or [`EVICT_ALLKEYS`] (the policy's).
pub const EVICT_COMMAND: &str = "tandem.evictif";
pub const EVICT_VOLATILE: &str = "volatile";
pub const EVICT_ALLKEYS: &str = "allkeys";

/// Deletes each victim that still qualifies. Entries already in flight apply between
/// the choice and this entry: a victim they modified (written, re-created, its TTL
/// set or removed) is not the key the policy judged, and a volatile-* policy never
/// deletes a key without an expiry. Such victims are skipped on every member alike.
fn tandem_evictif(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let chosen_at = parse_i64(&args[1]).and_then(|n| u64::try_from(n).ok()).ok_or_else(|| Reply::err(ERR_NOT_INT))?;
    let volatile = if is(&args[2], EVICT_VOLATILE) {
        true
    } else if is(&args[2], EVICT_ALLKEYS) {
        false
    } else {
        return Err(Reply::err(ERR_SYNTAX));
    };
    let mut deleted = 0;
    for key in &args[3..] {
        let volatile_ok = ctx.db.item(key).is_some_and(|item| !volatile || item.expire_at_ms != 0);
        let qualifies = volatile_ok && !ctx.db.modified_after(key, chosen_at);
        if qualifies && ctx.db.remove(key).is_some() {
            ctx.notify(b'e', "evicted", key);
            deleted += 1;
        }
    }
    Ok(Reply::Int(deleted))
}

/// Deletes each key unconditionally: how evictions were logged before
/// [`EVICT_COMMAND`]; kept so those logs replay as they applied then.
fn tandem_evict(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let mut deleted = 0;
    for key in &args[1..] {
        if ctx.db.remove(key).is_some() {
            ctx.notify(b'e', "evicted", key);
            deleted += 1;
        }
    }
    Ok(Reply::Int(deleted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_support::{bulk, err, run, run_applied};
    use crate::store::value::{HashValue, ListValue, SetValue, Value, ZSet};
    use crate::store::{Applied, Entry, Op, Store};

    const T0: u64 = 1_000_000;

    fn events(applied: &Applied) -> Vec<(u8, &'static str, String)> {
        applied.events.iter().map(|e| (e.class, e.event, String::from_utf8_lossy(&e.key).into_owned())).collect()
    }

    fn ev(class: u8, event: &'static str, key: &str) -> (u8, &'static str, String) {
        (class, event, key.to_string())
    }

    /// Runs a command whose arguments may be binary (RESTORE payloads).
    fn run_raw(store: &mut Store, time_ms: u64, args: Vec<Bytes>) -> Applied {
        store.apply(&Entry { time_ms, seed: 7, ops: vec![Op::Command(args)].into(), origins: None, summary: None })
    }

    fn restore_args(key: &str, ttl: &str, payload: &[u8], opts: &[&str]) -> Vec<Bytes> {
        let mut args = vec![Bytes::from_static(b"restore"), Bytes::copy_from_slice(key.as_bytes()), Bytes::copy_from_slice(ttl.as_bytes())];
        args.push(Bytes::copy_from_slice(payload));
        args.extend(opts.iter().map(|o| Bytes::copy_from_slice(o.as_bytes())));
        args
    }

    fn dump_of(store: &mut Store, key: &str) -> Bytes {
        match run(store, T0, &["dump", key]) {
            Reply::Bulk(b) => b,
            other => panic!("DUMP {key} gave {other:?}"),
        }
    }

    /// A store holding one key of every type: s, l, h, st, z.
    fn store_with_every_type() -> Store {
        let mut st = Store::new();
        st.db.insert(b"s", Value::Str(b"v".to_vec()), T0);
        let list: ListValue = ["a", "b", "a"].iter().map(|s| s.as_bytes()).collect();
        st.db.insert(b"l", Value::List(list), T0);
        let mut hash = HashValue::default();
        hash.insert(b"f", b"v", crate::store::hash::Packing::DEFAULT);
        st.db.insert(b"h", Value::Hash(hash), T0);
        let mut set = SetValue::default();
        set.insert(b"m", crate::store::set::SetPacking::DEFAULT);
        st.db.insert(b"st", Value::Set(set), T0);
        let mut zset = ZSet::new();
        zset.insert(b"m", 1.5);
        zset.insert(b"n", -2.0);
        st.db.insert(b"z", Value::ZSet(zset), T0);
        st
    }

    fn set_with_px(st: &mut Store, key: &str, px: u64) {
        run(st, T0, &["set", key, "v"]);
        assert_eq!(run(st, T0, &["pexpire", key, &px.to_string()]), Reply::Int(1));
    }

    fn pttl(st: &mut Store, time_ms: u64, key: &str) -> Reply {
        run(st, time_ms, &["pttl", key])
    }

    // --- DEL / UNLINK / EXISTS / TYPE / TOUCH ---

    #[test]
    fn del_counts_deleted_keys_and_emits_del_for_each() {
        let mut st = Store::new();
        run(&mut st, T0, &["set", "a", "1"]);
        run(&mut st, T0, &["set", "b", "2"]);
        let applied = run_applied(&mut st, T0, &["del", "a", "b", "c", "a"]);
        assert_eq!(applied.replies[0], Reply::Int(2));
        assert_eq!(events(&applied), vec![ev(b'g', "del", "a"), ev(b'g', "del", "b")]);
        assert_eq!(st.db.len(), 0);
        assert_eq!(run(&mut st, T0, &["del"]), err("ERR wrong number of arguments for 'del' command"));
    }

    #[test]
    fn unlink_deletes_like_del() {
        let mut st = Store::new();
        run(&mut st, T0, &["set", "a", "1"]);
        let applied = run_applied(&mut st, T0, &["unlink", "a", "b"]);
        assert_eq!(applied.replies[0], Reply::Int(1));
        assert_eq!(events(&applied), vec![ev(b'g', "del", "a")]);
    }

    #[test]
    fn del_of_an_expired_key_reports_expired_and_counts_nothing() {
        let mut st = Store::new();
        set_with_px(&mut st, "k", 10);
        let applied = run_applied(&mut st, T0 + 10, &["del", "k"]);
        assert_eq!(applied.replies[0], Reply::Int(0));
        assert_eq!(events(&applied), vec![ev(b'x', "expired", "k")]);
        assert_eq!(st.db.len(), 0);
    }

    #[test]
    fn exists_counts_duplicates_and_ignores_expired_keys() {
        let mut st = Store::new();
        run(&mut st, T0, &["set", "a", "1"]);
        set_with_px(&mut st, "e", 5);
        assert_eq!(run(&mut st, T0, &["exists", "a", "a", "nope", "e"]), Reply::Int(3));
        assert_eq!(run(&mut st, T0 + 5, &["exists", "a", "a", "nope", "e"]), Reply::Int(2));
    }

    #[test]
    fn type_names_every_type_and_none_for_missing() {
        let mut st = store_with_every_type();
        for (key, name) in [("s", "string"), ("l", "list"), ("h", "hash"), ("st", "set"), ("z", "zset"), ("missing", "none")] {
            assert_eq!(run(&mut st, T0, &["type", key]), Reply::status(name), "{key}");
        }
    }

    #[test]
    fn touch_counts_live_keys() {
        let mut st = store_with_every_type();
        assert_eq!(run(&mut st, T0, &["touch", "s", "l", "nope", "s"]), Reply::Int(3));
    }

    // --- RENAME / RENAMENX ---

    #[test]
    fn rename_moves_value_and_ttl_and_emits_from_and_to() {
        let mut st = Store::new();
        set_with_px(&mut st, "a", 5000);
        let applied = run_applied(&mut st, T0, &["rename", "a", "b"]);
        assert_eq!(applied.replies[0], OK);
        assert_eq!(events(&applied), vec![ev(b'g', "rename_from", "a"), ev(b'g', "rename_to", "b")]);
        assert_eq!(run(&mut st, T0, &["get", "b"]), bulk("v"));
        assert_eq!(run(&mut st, T0, &["exists", "a"]), Reply::Int(0));
        assert_eq!(pttl(&mut st, T0 + 1000, "b"), Reply::Int(4000));
        assert_eq!(st.db.expires_count(), 1);
    }

    #[test]
    fn rename_overwrites_the_destination_and_its_ttl() {
        let mut st = Store::new();
        run(&mut st, T0, &["set", "a", "new"]);
        set_with_px(&mut st, "b", 5000);
        let applied = run_applied(&mut st, T0, &["rename", "a", "b"]);
        assert_eq!(events(&applied), vec![ev(b'g', "rename_from", "a"), ev(b'g', "rename_to", "b")]);
        assert_eq!(run(&mut st, T0, &["get", "b"]), bulk("new"));
        assert_eq!(pttl(&mut st, T0, "b"), Reply::Int(-1));
        assert_eq!(st.db.expires_count(), 0);
        assert_eq!(st.db.len(), 1);
    }

    #[test]
    fn rename_of_a_missing_or_expired_key_is_an_error() {
        let mut st = Store::new();
        assert_eq!(run(&mut st, T0, &["rename", "a", "b"]), err("ERR no such key"));
        assert_eq!(run(&mut st, T0, &["renamenx", "a", "b"]), err("ERR no such key"));
        assert_eq!(run(&mut st, T0, &["rename", "a", "a"]), err("ERR no such key"));
        set_with_px(&mut st, "e", 1);
        assert_eq!(run(&mut st, T0 + 1, &["rename", "e", "b"]), err("ERR no such key"));
    }

    #[test]
    fn rename_onto_itself_succeeds_without_events() {
        let mut st = Store::new();
        run(&mut st, T0, &["set", "a", "1"]);
        let applied = run_applied(&mut st, T0, &["rename", "a", "a"]);
        assert_eq!(applied.replies[0], OK);
        assert!(applied.events.is_empty());
        assert_eq!(run(&mut st, T0, &["renamenx", "a", "a"]), Reply::Int(0));
        assert_eq!(run(&mut st, T0, &["get", "a"]), bulk("1"));
    }

    #[test]
    fn renamenx_refuses_a_live_destination_but_not_an_expired_one() {
        let mut st = Store::new();
        run(&mut st, T0, &["set", "a", "1"]);
        run(&mut st, T0, &["set", "b", "2"]);
        assert_eq!(run(&mut st, T0, &["renamenx", "a", "b"]), Reply::Int(0));
        assert_eq!(run(&mut st, T0, &["get", "a"]), bulk("1"));
        assert_eq!(run(&mut st, T0, &["get", "b"]), bulk("2"));
        set_with_px(&mut st, "e", 10);
        let applied = run_applied(&mut st, T0 + 10, &["renamenx", "a", "e"]);
        assert_eq!(applied.replies[0], Reply::Int(1));
        assert_eq!(events(&applied), vec![ev(b'x', "expired", "e"), ev(b'g', "rename_from", "a"), ev(b'g', "rename_to", "e")]);
        assert_eq!(run(&mut st, T0 + 10, &["get", "e"]), bulk("1"));
        assert_eq!(pttl(&mut st, T0 + 10, "e"), Reply::Int(-1));
    }

    #[test]
    fn rename_keeps_every_type() {
        let mut st = store_with_every_type();
        run(&mut st, T0, &["rename", "z", "z2"]);
        assert_eq!(run(&mut st, T0, &["type", "z2"]), Reply::status("zset"));
        assert_eq!(st.db.item(b"z2").unwrap().value.as_zset().unwrap().score(b"m"), Some(1.5));
    }

    // --- COPY ---

    #[test]
    fn copy_duplicates_value_and_ttl_and_emits_copy_to() {
        let mut st = Store::new();
        set_with_px(&mut st, "a", 3000);
        let applied = run_applied(&mut st, T0, &["copy", "a", "b"]);
        assert_eq!(applied.replies[0], Reply::Int(1));
        assert_eq!(events(&applied), vec![ev(b'g', "copy_to", "b")]);
        assert_eq!(pttl(&mut st, T0, "b"), Reply::Int(3000));
        // The copy is independent of the original.
        run(&mut st, T0, &["append", "a", "x"]);
        assert_eq!(run(&mut st, T0, &["get", "a"]), bulk("vx"));
        assert_eq!(run(&mut st, T0, &["get", "b"]), bulk("v"));
    }

    #[test]
    fn copy_refuses_an_existing_destination_unless_replace() {
        let mut st = store_with_every_type();
        assert_eq!(run(&mut st, T0, &["copy", "h", "s"]), Reply::Int(0));
        assert_eq!(run(&mut st, T0, &["type", "s"]), Reply::status("string"));
        assert_eq!(run(&mut st, T0, &["copy", "h", "s", "REPLACE"]), Reply::Int(1));
        assert_eq!(run(&mut st, T0, &["type", "s"]), Reply::status("hash"));
        assert_eq!(st.db.item(b"s").unwrap().value, st.db.item(b"h").unwrap().value);
    }

    #[test]
    fn copy_of_a_missing_key_returns_zero() {
        let mut st = Store::new();
        let applied = run_applied(&mut st, T0, &["copy", "nope", "b"]);
        assert_eq!(applied.replies[0], Reply::Int(0));
        assert!(applied.events.is_empty());
    }

    #[test]
    fn copy_accepts_only_database_zero() {
        let mut st = Store::new();
        run(&mut st, T0, &["set", "a", "1"]);
        assert_eq!(run(&mut st, T0, &["copy", "a", "b", "db", "1"]), err("ERR DB index is out of range"));
        assert_eq!(run(&mut st, T0, &["copy", "a", "b", "DB", "x"]), err(ERR_NOT_INT));
        assert_eq!(run(&mut st, T0, &["copy", "a", "b", "db"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut st, T0, &["copy", "a", "b", "bogus"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut st, T0, &["copy", "a", "a"]), err("ERR source and destination objects are the same"));
        assert_eq!(run(&mut st, T0, &["copy", "a", "b", "DB", "0", "replace"]), Reply::Int(1));
    }

    // --- EXPIRE family ---

    #[test]
    fn expire_sets_a_ttl_and_emits_expire() {
        let mut st = Store::new();
        run(&mut st, T0, &["set", "k", "v"]);
        let applied = run_applied(&mut st, T0, &["expire", "k", "10"]);
        assert_eq!(applied.replies[0], Reply::Int(1));
        assert_eq!(events(&applied), vec![ev(b'g', "expire", "k")]);
        assert_eq!(st.db.item(b"k").unwrap().expire_at_ms, T0 + 10_000);
        assert_eq!(run(&mut st, T0, &["ttl", "k"]), Reply::Int(10));
    }

    #[test]
    fn each_expire_form_computes_the_same_absolute_time() {
        let at = T0 + 20_000;
        for cmd in [["expire", "k", "20"], ["pexpire", "k", "20000"], ["expireat", "k", "1020"], ["pexpireat", "k", "1020000"]] {
            let mut st = Store::new();
            run(&mut st, T0, &["set", "k", "v"]);
            assert_eq!(run(&mut st, T0, &cmd), Reply::Int(1), "{cmd:?}");
            assert_eq!(st.db.item(b"k").unwrap().expire_at_ms, at, "{cmd:?}");
        }
    }

    #[test]
    fn expire_on_a_missing_key_returns_zero() {
        let mut st = Store::new();
        assert_eq!(run(&mut st, T0, &["expire", "k", "10"]), Reply::Int(0));
        assert_eq!(run(&mut st, T0, &["pexpireat", "k", "1"]), Reply::Int(0));
    }

    #[test]
    fn expire_in_the_past_deletes_the_key_with_a_del_event() {
        for cmd in [["expire", "k", "-1"], ["pexpire", "k", "0"], ["expireat", "k", "1"], ["pexpireat", "k", "1000000"]] {
            let mut st = Store::new();
            run(&mut st, T0, &["set", "k", "v"]);
            let applied = run_applied(&mut st, T0, &cmd);
            assert_eq!(applied.replies[0], Reply::Int(1), "{cmd:?}");
            assert_eq!(events(&applied), vec![ev(b'g', "del", "k")], "{cmd:?}");
            assert_eq!(st.db.len(), 0, "{cmd:?}");
        }
    }

    #[test]
    fn expire_overflow_is_an_invalid_expire_time() {
        let mut st = Store::new();
        run(&mut st, T0, &["set", "k", "v"]);
        let max = i64::MAX.to_string();
        let min = i64::MIN.to_string();
        assert_eq!(run(&mut st, T0, &["expire", "k", &max]), err("ERR invalid expire time in 'expire' command"));
        assert_eq!(run(&mut st, T0, &["expire", "k", &min]), err("ERR invalid expire time in 'expire' command"));
        assert_eq!(run(&mut st, T0, &["pexpire", "k", &max]), err("ERR invalid expire time in 'pexpire' command"));
        let just_over = (i64::MAX / 1000 + 1).to_string();
        assert_eq!(run(&mut st, T0, &["expireat", "k", &just_over]), err("ERR invalid expire time in 'expireat' command"));
        // The largest absolute millisecond time is fine.
        assert_eq!(run(&mut st, T0, &["pexpireat", "k", &max]), Reply::Int(1));
        assert_eq!(run(&mut st, T0, &["pexpiretime", "k"]), Reply::Int(i64::MAX));
        assert_eq!(run(&mut st, T0, &["expire", "k", "ten"]), err(ERR_NOT_INT));
    }

    #[test]
    fn expire_options_follow_redis_7_semantics() {
        // (current TTL in seconds or None, options, new TTL, expected reply)
        let cases: &[(Option<u64>, &[&str], &str, i64)] = &[
            (None, &["nx"], "10", 1),
            (Some(5), &["nx"], "10", 0),
            (None, &["xx"], "10", 0),
            (Some(5), &["xx"], "10", 1),
            (None, &["gt"], "10", 0),
            (Some(5), &["gt"], "10", 1),
            (Some(5), &["gt"], "5", 0),
            (Some(5), &["gt"], "3", 0),
            (None, &["lt"], "10", 1),
            (Some(5), &["lt"], "3", 1),
            (Some(5), &["lt"], "5", 0),
            (Some(5), &["lt"], "10", 0),
            (Some(5), &["xx", "gt"], "10", 1),
            (None, &["xx", "lt"], "10", 0),
            (Some(5), &["LT", "xx"], "3", 1),
        ];
        for (current, opts, secs, expected) in cases {
            let mut st = Store::new();
            run(&mut st, T0, &["set", "k", "v"]);
            if let Some(c) = current {
                run(&mut st, T0, &["expire", "k", &c.to_string()]);
            }
            let mut cmd = vec!["expire", "k", secs];
            cmd.extend_from_slice(opts);
            assert_eq!(run(&mut st, T0, &cmd), Reply::Int(*expected), "{current:?} {opts:?} {secs}");
            let want_ttl = if *expected == 1 { Some(secs.parse::<u64>().unwrap()) } else { *current };
            let got = st.db.item(b"k").unwrap().expire_at_ms;
            assert_eq!(got, want_ttl.map_or(0, |s| T0 + s * 1000), "{current:?} {opts:?} {secs}");
        }
    }

    #[test]
    fn expire_option_conflicts_and_unknown_options_are_errors() {
        let mut st = Store::new();
        run(&mut st, T0, &["set", "k", "v"]);
        let nx_err = err("ERR NX and XX, GT or LT options at the same time are not compatible");
        assert_eq!(run(&mut st, T0, &["expire", "k", "10", "nx", "xx"]), nx_err);
        assert_eq!(run(&mut st, T0, &["expire", "k", "10", "nx", "gt"]), nx_err);
        assert_eq!(run(&mut st, T0, &["pexpire", "k", "10", "lt", "nx"]), nx_err);
        assert_eq!(run(&mut st, T0, &["expire", "k", "10", "gt", "lt"]), err("ERR GT and LT options at the same time are not compatible"));
        assert_eq!(run(&mut st, T0, &["expire", "k", "10", "foo"]), err("ERR Unsupported option foo"));
        // Options are checked before the number, as Redis does.
        assert_eq!(run(&mut st, T0, &["expire", "k", "x", "foo"]), err("ERR Unsupported option foo"));
        assert_eq!(st.db.item(b"k").unwrap().expire_at_ms, 0);
    }

    #[test]
    fn expire_on_an_expired_key_reports_expired_and_returns_zero() {
        let mut st = Store::new();
        set_with_px(&mut st, "k", 10);
        let applied = run_applied(&mut st, T0 + 10, &["expire", "k", "100"]);
        assert_eq!(applied.replies[0], Reply::Int(0));
        assert_eq!(events(&applied), vec![ev(b'x', "expired", "k")]);
    }

    // --- TTL family and PERSIST ---

    #[test]
    fn ttl_is_minus_two_for_missing_and_minus_one_without_expiry() {
        let mut st = Store::new();
        run(&mut st, T0, &["set", "k", "v"]);
        for cmd in ["ttl", "pttl", "expiretime", "pexpiretime"] {
            assert_eq!(run(&mut st, T0, &[cmd, "nope"]), Reply::Int(-2), "{cmd}");
            assert_eq!(run(&mut st, T0, &[cmd, "k"]), Reply::Int(-1), "{cmd}");
        }
    }

    #[test]
    fn ttl_rounds_seconds_to_nearest_as_redis() {
        let mut st = Store::new();
        set_with_px(&mut st, "a", 1499);
        set_with_px(&mut st, "b", 1500);
        assert_eq!(run(&mut st, T0, &["ttl", "a"]), Reply::Int(1));
        assert_eq!(run(&mut st, T0, &["ttl", "b"]), Reply::Int(2));
        assert_eq!(pttl(&mut st, T0 + 499, "a"), Reply::Int(1000));
        assert_eq!(run(&mut st, T0 + 1000, &["ttl", "a"]), Reply::Int(0));
        // Past its time the key is gone for readers.
        assert_eq!(pttl(&mut st, T0 + 1499, "a"), Reply::Int(-2));
    }

    #[test]
    fn expiretime_reports_the_absolute_time() {
        let mut st = Store::new();
        run(&mut st, T0, &["set", "k", "v"]);
        run(&mut st, T0, &["pexpireat", "k", "2000500"]);
        assert_eq!(run(&mut st, T0, &["pexpiretime", "k"]), Reply::Int(2_000_500));
        assert_eq!(run(&mut st, T0, &["expiretime", "k"]), Reply::Int(2001));
    }

    #[test]
    fn persist_removes_the_ttl_once_and_emits_persist() {
        let mut st = Store::new();
        set_with_px(&mut st, "k", 5000);
        let applied = run_applied(&mut st, T0, &["persist", "k"]);
        assert_eq!(applied.replies[0], Reply::Int(1));
        assert_eq!(events(&applied), vec![ev(b'g', "persist", "k")]);
        assert_eq!(pttl(&mut st, T0, "k"), Reply::Int(-1));
        let again = run_applied(&mut st, T0, &["persist", "k"]);
        assert_eq!(again.replies[0], Reply::Int(0));
        assert!(again.events.is_empty());
        assert_eq!(run(&mut st, T0, &["persist", "nope"]), Reply::Int(0));
    }

    #[test]
    fn persist_cannot_revive_an_expired_key() {
        let mut st = Store::new();
        set_with_px(&mut st, "k", 10);
        let applied = run_applied(&mut st, T0 + 10, &["persist", "k"]);
        assert_eq!(applied.replies[0], Reply::Int(0));
        assert_eq!(events(&applied), vec![ev(b'x', "expired", "k")]);
        assert_eq!(st.db.len(), 0);
    }

    // --- KEYS / SCAN / RANDOMKEY / DBSIZE ---

    fn sorted_bulks(reply: &Reply) -> Vec<String> {
        let Reply::Array(items) = reply else { panic!("not an array: {reply:?}") };
        let mut names: Vec<String> = items
            .iter()
            .map(|r| match r {
                Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                other => panic!("not a bulk: {other:?}"),
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn keys_matches_the_pattern_and_skips_expired_keys() {
        let mut st = Store::new();
        for k in ["user:1", "user:2", "session:1"] {
            run(&mut st, T0, &["set", k, "v"]);
        }
        set_with_px(&mut st, "user:3", 10);
        assert_eq!(sorted_bulks(&run(&mut st, T0, &["keys", "user:*"])), ["user:1", "user:2", "user:3"]);
        assert_eq!(sorted_bulks(&run(&mut st, T0 + 10, &["keys", "user:*"])), ["user:1", "user:2"]);
        assert_eq!(sorted_bulks(&run(&mut st, T0 + 10, &["keys", "*"])), ["session:1", "user:1", "user:2"]);
        assert_eq!(sorted_bulks(&run(&mut st, T0, &["keys", "nothing*"])), Vec::<String>::new());
    }

    /// Runs a full SCAN with the given options; returns every key seen and the number of calls.
    fn full_scan(st: &mut Store, time_ms: u64, opts: &[&str]) -> (Vec<String>, usize) {
        let mut cursor = "0".to_string();
        let mut seen = Vec::new();
        let mut calls = 0;
        loop {
            let mut cmd = vec!["scan", cursor.as_str()];
            cmd.extend_from_slice(opts);
            let reply = run(st, time_ms, &cmd);
            calls += 1;
            let Reply::Array(parts) = reply else { panic!("{reply:?}") };
            let Reply::Bulk(next) = &parts[0] else { panic!("{parts:?}") };
            seen.extend(sorted_bulks(&parts[1]));
            cursor = String::from_utf8_lossy(next).into_owned();
            if cursor == "0" {
                break;
            }
            assert!(calls < 1000, "scan does not terminate");
        }
        seen.sort();
        (seen, calls)
    }

    #[test]
    fn scan_visits_every_live_key_once() {
        let mut st = Store::new();
        let mut want: Vec<String> = (0..57).map(|i| format!("k{i}")).collect();
        for k in &want {
            run(&mut st, T0, &["set", k, "v"]);
        }
        set_with_px(&mut st, "gone", 1);
        want.sort();
        let (seen, calls) = full_scan(&mut st, T0 + 1, &["COUNT", "10"]);
        assert_eq!(seen, want);
        assert_eq!(calls, 6);
    }

    #[test]
    fn scan_filters_by_match_and_type() {
        let mut st = store_with_every_type();
        run(&mut st, T0, &["set", "s2", "v"]);
        assert_eq!(full_scan(&mut st, T0, &["MATCH", "s*"]).0, ["s", "s2", "st"]);
        assert_eq!(full_scan(&mut st, T0, &["TYPE", "string"]).0, ["s", "s2"]);
        assert_eq!(full_scan(&mut st, T0, &["match", "s*", "type", "SET"]).0, ["st"]);
        assert_eq!(full_scan(&mut st, T0, &["TYPE", "nosuchtype"]).0, Vec::<String>::new());
    }

    #[test]
    fn scan_rejects_bad_cursors_and_options() {
        let mut st = Store::new();
        assert_eq!(run(&mut st, T0, &["scan", "-1"]), err("ERR invalid cursor"));
        assert_eq!(run(&mut st, T0, &["scan", "abc"]), err("ERR invalid cursor"));
        assert_eq!(run(&mut st, T0, &["scan", "0", "COUNT", "0"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut st, T0, &["scan", "0", "MATCH"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut st, T0, &["scan", "0", "NOVALUES"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut st, T0, &["scan", "0"]), scan::reply(0, Vec::new()));
    }

    #[test]
    fn randomkey_is_nil_when_empty_or_all_expired() {
        let mut st = Store::new();
        assert_eq!(run(&mut st, T0, &["randomkey"]), Reply::Nil);
        set_with_px(&mut st, "e", 1);
        assert_eq!(run(&mut st, T0 + 1, &["randomkey"]), Reply::Nil);
    }

    #[test]
    fn randomkey_returns_a_live_key() {
        let mut st = Store::new();
        for i in 0..5 {
            set_with_px(&mut st, &format!("e{i}"), 1);
        }
        run(&mut st, T0, &["set", "live", "v"]);
        assert_eq!(run(&mut st, T0 + 1, &["randomkey"]), bulk("live"));
    }

    #[test]
    fn dbsize_counts_keys() {
        let mut st = store_with_every_type();
        assert_eq!(run(&mut st, T0, &["dbsize"]), Reply::Int(5));
        assert_eq!(run(&mut st, T0, &["dbsize", "x"]), err("ERR wrong number of arguments for 'dbsize' command"));
    }

    // --- FLUSHDB / FLUSHALL ---

    #[test]
    fn flush_removes_everything_without_key_events() {
        for cmd in [&["flushall"][..], &["flushdb"], &["flushall", "ASYNC"], &["flushdb", "sync"]] {
            let mut st = store_with_every_type();
            set_with_px(&mut st, "t", 100);
            let applied = run_applied(&mut st, T0, cmd);
            assert_eq!(applied.replies[0], OK, "{cmd:?}");
            assert!(applied.events.is_empty(), "{cmd:?}");
            assert_eq!(st.db.len(), 0);
            assert_eq!(st.db.expires_count(), 0);
        }
    }

    #[test]
    fn flush_rejects_unknown_modes() {
        let mut st = store_with_every_type();
        assert_eq!(run(&mut st, T0, &["flushall", "now"]), err(ERR_SYNTAX));
        assert_eq!(run(&mut st, T0, &["flushdb", "async", "sync"]), err(ERR_SYNTAX));
        assert_eq!(st.db.len(), 5);
    }

    #[test]
    fn flush_fails_watches_on_present_keys_not_on_absent_ones() {
        let mut st = store_with_every_type();
        let stamp = crate::store::watch::WatchStamp { index: st.db.index(), time_ms: T0 };
        run(&mut st, T0, &["flushall"]);
        assert!(!st.db.unchanged_since(b"s", stamp, T0));
        // Redis touches only the keys that existed (multi.tcl).
        assert!(st.db.unchanged_since(b"never-there", stamp, T0));
    }

    // --- DUMP / RESTORE ---

    #[test]
    fn dump_of_a_missing_key_is_nil() {
        let mut st = Store::new();
        assert_eq!(run(&mut st, T0, &["dump", "nope"]), Reply::Nil);
    }

    #[test]
    fn dump_and_restore_round_trip_every_type() {
        let mut st = store_with_every_type();
        for key in ["s", "l", "h", "st", "z"] {
            let payload = dump_of(&mut st, key);
            let target = format!("{key}-copy");
            let applied = run_raw(&mut st, T0, restore_args(&target, "0", &payload, &[]));
            assert_eq!(applied.replies[0], OK, "{key}");
            assert_eq!(events(&applied), vec![ev(b'g', "restore", &target)]);
            let original = st.db.item(key.as_bytes()).unwrap().value.clone();
            assert_eq!(st.db.item(target.as_bytes()).unwrap().value, original, "{key}");
            assert_eq!(pttl(&mut st, T0, &target), Reply::Int(-1));
        }
    }

    #[test]
    fn restore_refuses_an_existing_key_unless_replace() {
        let mut st = store_with_every_type();
        let payload = dump_of(&mut st, "h");
        let applied = run_raw(&mut st, T0, restore_args("s", "0", &payload, &[]));
        assert_eq!(applied.replies[0], err("BUSYKEY Target key name already exists."));
        let applied = run_raw(&mut st, T0, restore_args("s", "0", &payload, &["REPLACE"]));
        assert_eq!(applied.replies[0], OK);
        assert_eq!(events(&applied), vec![ev(b'g', "restore", "s")]);
        assert_eq!(run(&mut st, T0, &["type", "s"]), Reply::status("hash"));
    }

    #[test]
    fn restore_sets_relative_or_absolute_ttls() {
        let mut st = store_with_every_type();
        let payload = dump_of(&mut st, "s");
        run_raw(&mut st, T0, restore_args("rel", "5000", &payload, &[]));
        assert_eq!(st.db.item(b"rel").unwrap().expire_at_ms, T0 + 5000);
        let abs = (T0 + 7000).to_string();
        run_raw(&mut st, T0, restore_args("abs", &abs, &payload, &["absttl"]));
        assert_eq!(st.db.item(b"abs").unwrap().expire_at_ms, T0 + 7000);
    }

    #[test]
    fn restore_with_a_past_absolute_ttl_stores_nothing() {
        let mut st = store_with_every_type();
        let payload = dump_of(&mut st, "s");
        let applied = run_raw(&mut st, T0, restore_args("new", "1", &payload, &["ABSTTL"]));
        assert_eq!(applied.replies[0], OK);
        assert!(applied.events.is_empty());
        assert!(st.db.item(b"new").is_none());
        // Replacing an existing key with an already-expired one deletes it.
        let applied = run_raw(&mut st, T0, restore_args("h", "1", &payload, &["ABSTTL", "REPLACE"]));
        assert_eq!(applied.replies[0], OK);
        assert_eq!(events(&applied), vec![ev(b'g', "del", "h")]);
        assert!(st.db.item(b"h").is_none());
    }

    #[test]
    fn restore_checks_ttl_and_payload_with_redis_errors() {
        let mut st = store_with_every_type();
        let payload = dump_of(&mut st, "l");
        let reply = |st: &mut Store, args| run_raw(st, T0, args).replies.remove(0);
        assert_eq!(reply(&mut st, restore_args("n", "-1", &payload, &[])), err("ERR Invalid TTL value, must be >= 0"));
        assert_eq!(reply(&mut st, restore_args("n", "x", &payload, &[])), err(ERR_NOT_INT));
        let mut flipped = payload.to_vec();
        flipped[1] ^= 0xff;
        assert_eq!(reply(&mut st, restore_args("n", "0", &flipped, &[])), err("ERR DUMP payload version or checksum are wrong"));
        assert_eq!(reply(&mut st, restore_args("n", "0", b"short", &[])), err("ERR DUMP payload version or checksum are wrong"));
        // A correct footer around a body that is not a value.
        let mut garbage = vec![9u8, 1, 2];
        garbage.extend_from_slice(&codec::DUMP_VERSION.to_le_bytes());
        let crc = codec::crc64(&garbage);
        garbage.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(reply(&mut st, restore_args("n", "0", &garbage, &[])), err("ERR Bad data format"));
        assert!(st.db.item(b"n").is_none());
        // BUSYKEY is checked before the TTL.
        assert_eq!(reply(&mut st, restore_args("l", "-1", &payload, &[])), err("BUSYKEY Target key name already exists."));
    }

    #[test]
    fn restore_options_are_validated() {
        let mut st = store_with_every_type();
        let payload = dump_of(&mut st, "s");
        let reply = |st: &mut Store, opts: &[&str]| run_raw(st, T0, restore_args("n", "0", &payload, opts)).replies.remove(0);
        assert_eq!(reply(&mut st, &["IDLETIME", "-1"]), err("ERR Invalid IDLETIME value, must be >= 0"));
        assert_eq!(reply(&mut st, &["FREQ", "256"]), err("ERR Invalid FREQ value, must be >= 0 and <= 255"));
        assert_eq!(reply(&mut st, &["FREQ", "-1"]), err("ERR Invalid FREQ value, must be >= 0 and <= 255"));
        assert_eq!(reply(&mut st, &["IDLETIME", "1", "FREQ", "1"]), err(ERR_SYNTAX));
        assert_eq!(reply(&mut st, &["FREQ", "1", "IDLETIME", "1"]), err(ERR_SYNTAX));
        assert_eq!(reply(&mut st, &["IDLETIME"]), err(ERR_SYNTAX));
        assert_eq!(reply(&mut st, &["bogus"]), err(ERR_SYNTAX));
        assert_eq!(reply(&mut st, &["FREQ", "x"]), err(ERR_NOT_INT));
        assert!(st.db.item(b"n").is_none());
    }

    #[test]
    fn restore_sets_idle_time_and_frequency() {
        let mut st = store_with_every_type();
        let payload = dump_of(&mut st, "s");
        run_raw(&mut st, T0, restore_args("idle", "0", &payload, &["IDLETIME", "300"]));
        assert_eq!(st.db.item(b"idle").unwrap().idle_seconds(T0), 300);
        run_raw(&mut st, T0, restore_args("hot", "0", &payload, &["FREQ", "200"]));
        assert_eq!(st.db.item(b"hot").unwrap().lfu_counter(T0), 200);
    }

    // --- internal expiry and eviction ---

    #[test]
    fn tandem_expired_deletes_only_keys_expired_at_the_entry_time() {
        let mut st = Store::new();
        set_with_px(&mut st, "due", 10);
        set_with_px(&mut st, "later", 1000);
        run(&mut st, T0, &["set", "forever", "v"]);
        let applied = run_applied(&mut st, T0 + 10, &["tandem.expired", "due", "later", "forever", "missing"]);
        assert_eq!(applied.replies[0], Reply::Int(1));
        assert_eq!(events(&applied), vec![ev(b'x', "expired", "due")]);
        assert_eq!(st.db.len(), 2);
        assert_eq!(st.expired_keys, 1);
    }

    #[test]
    fn tandem_evict_deletes_unconditionally() {
        let mut st = store_with_every_type();
        let applied = run_applied(&mut st, T0, &["tandem.evict", "s", "z", "missing"]);
        assert_eq!(applied.replies[0], Reply::Int(2));
        assert_eq!(events(&applied), vec![ev(b'e', "evicted", "s"), ev(b'e', "evicted", "z")]);
        assert_eq!(st.db.len(), 3);
        assert_eq!(st.evicted_keys, 2);
    }

    #[test]
    fn internal_commands_are_flagged_internal_writes() {
        for name in ["tandem.expired", "tandem.evict"] {
            let spec = lookup(name.as_bytes()).unwrap();
            assert!(spec.has(flags::INTERNAL) && spec.has(flags::WRITE), "{name}");
        }
        assert!(!lookup(b"del").unwrap().has(flags::INTERNAL));
    }
}
