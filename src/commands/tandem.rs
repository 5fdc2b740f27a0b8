//! Clustering primitives for application servers (DESIGN.md §6, §8): client
//! sessions with a reconnect window, fenced locks and group membership. The state
//! is `store::prims`; these are the commands that change and read it, all decided
//! in apply.
//!
//! What clients send, and what the server they are connected to adds before the
//! command is routed (so the logged form is explicit and applies alike everywhere):
//!
//! ```text
//! TANDEM.SESSION OPEN                 → id          (the server adds ID <id> WINDOW <ms>)
//! TANDEM.SESSION RESUME id            → OK | -NOSESSION
//! TANDEM.SESSION CLOSE [id]           → 1 | 0       (the connection's session if no id)
//! TANDEM.SESSION INFO [id]            → map | -NOSESSION
//! TANDEM.SESSION RENEW id [id …]      → renewed count (what servers send for their connections)
//! TANDEM.LOCK name [TTL ms] [WAIT ms] → token | nil (the server adds SESSION <id> …)
//! TANDEM.UNLOCK name token            → 1 | 0
//! TANDEM.LOCKS [pattern]              → [[name, token, session, pttl, waiting] …]
//! TANDEM.FENCED name token command [arg …] → the command's reply | -FENCED …
//! TANDEM.GROUP JOIN group member [info]   → 1 (joined) | 0 (already, info replaced)
//! TANDEM.GROUP LEAVE group member         → 1 | 0
//! TANDEM.GROUP MEMBERS group              → map member → info, in join order
//! ```
//!
//! Errors: `-NOSESSION no session '<id>': …` (closed, window over, or never opened);
//! `-FENCED the lock '<name>' is held with a newer token than <t>`, `-FENCED the lock
//! '<name>' is not held: token <t> is stale`, `-FENCED token <t> is not the current
//! token of the lock '<name>'` (nothing applied); `-ERR member '<m>' of group '<g>'
//! belongs to another session`; Redis's texts for syntax, integers and arity.
//! Group events: `join <member>` / `leave <member>` on `__tandem__:group:<group>`.
//!
//! Session-bound commands (LOCK, GROUP JOIN) take a trailing `SESSION <id>`, and
//! `SESSION <id> IMPLICIT <window-ms>` for a connection that opened no session (its
//! implicit session is created on first use). A waiting LOCK is logged with
//! `QUEUE <ms>` in place of `WAIT <ms>` (the session joins the FIFO queue) and its
//! end with `WITHDRAW` (leaves it, or answers the token granted meanwhile); inside
//! MULTI a LOCK never waits. Internal, proposed by the active only:
//! `TANDEM.SESSIONEXPIRED id …` and `TANDEM.LOCKEXPIRED name token …`.

use bytes::Bytes;

use super::flags::*;
use super::*;
use crate::protocol::reply::Reply;
use crate::store::prims::{Acquired, Effects, Fence, Joined};

const G: &str = "tandem";

pub const ERR_NOSESSION: &str = "NOSESSION";
pub const SESSION_OPEN: &str = "tandem.session|open";
pub const SESSION_RESUME: &str = "tandem.session|resume";
pub const SESSION_CLOSE: &str = "tandem.session|close";
pub const SESSION_INFO: &str = "tandem.session|info";
pub const SESSION_RENEW: &str = "tandem.session|renew";
pub const SESSION_EXPIRED: &str = "tandem.sessionexpired";
pub const LOCK_EXPIRED: &str = "tandem.lockexpired";
pub const FENCED: &str = "tandem.fenced";
/// The longest reconnect window a session may ask for (a day): a session is a
/// lease, and a lease without a bound is a leak.
pub const WINDOW_MS_MAX: u64 = 86_400_000;
/// The longest lock lease (TTL) and wait: a year, so deadlines cannot overflow.
const DURATION_MS_MAX: u64 = 365 * 86_400_000;

static SESSION_SUBS: &[CommandSpec] = &[
    spec(
        SESSION_OPEN,
        -2,
        WRITE | DENYOOM | NOSCRIPT | NO_MULTI | SESSION_CONTROL,
        (0, 0, 0),
        G,
        "Opens a client session.",
        Handler::Write(open),
    ),
    spec(
        SESSION_RESUME,
        3,
        WRITE | NOSCRIPT | NO_MULTI | FAST | SESSION_CONTROL,
        (0, 0, 0),
        G,
        "Attaches this connection to a session.",
        Handler::Write(resume),
    ),
    spec(
        SESSION_CLOSE,
        -2,
        WRITE | NOSCRIPT | NO_MULTI | SESSION_CONTROL,
        (0, 0, 0),
        G,
        "Ends a session, releasing its locks and memberships.",
        Handler::Write(close),
    ),
    spec(SESSION_INFO, -2, READONLY | NOSCRIPT | SESSION_CONTROL, (0, 0, 0), G, "Describes a session.", Handler::Read(info)),
    spec(SESSION_RENEW, -3, WRITE | NOSCRIPT | FAST, (0, 0, 0), G, "Renews sessions for another window.", Handler::Write(renew)),
];

static GROUP_SUBS: &[CommandSpec] = &[
    spec(
        "tandem.group|join",
        -4,
        WRITE | DENYOOM | NOSCRIPT | SESSION_BOUND,
        (2, 2, 1),
        G,
        "Joins a group as a member of this session.",
        Handler::Write(join),
    ),
    spec("tandem.group|leave", 4, WRITE | NOSCRIPT, (2, 2, 1), G, "Removes a member from a group.", Handler::Write(leave)),
    spec("tandem.group|members", 3, READONLY | NOSCRIPT, (2, 2, 1), G, "Lists a group's members and their info.", Handler::Read(members)),
];

pub static LOCK_WAIT: WaitSpec =
    WaitSpec { timeout_ms: lock_wait_ms, prepare: prepare_lock, resend_after_failover: true, withdraw: Some(withdraw_lock) };

pub static COMMANDS: &[CommandSpec] = &[
    container("tandem.session", NOSCRIPT, G, "Client sessions with a reconnect window.", SESSION_SUBS),
    spec(
        "tandem.lock",
        -2,
        WRITE | DENYOOM | NOSCRIPT | BLOCKING | SESSION_BOUND,
        (1, 1, 1),
        G,
        "Takes a fenced lock, waiting in FIFO order.",
        Handler::Write(lock),
    )
    .waits(&LOCK_WAIT),
    spec("tandem.unlock", 3, WRITE | NOSCRIPT | FAST, (1, 1, 1), G, "Releases a lock held with a token.", Handler::Write(unlock)),
    spec("tandem.locks", -1, READONLY | NOSCRIPT, (0, 0, 0), G, "Lists locks, their holders and waiters.", Handler::Read(locks)),
    spec(FENCED, -4, WRITE | DENYOOM | NOSCRIPT, (0, 0, 0), G, "Runs a command only if a lock's token is current.", Handler::Write(fenced))
        .movable(fenced_keys),
    container("tandem.group", NOSCRIPT, G, "Group membership tied to sessions.", GROUP_SUBS),
    spec(
        SESSION_EXPIRED,
        -2,
        WRITE | INTERNAL | NOSCRIPT,
        (0, 0, 0),
        G,
        "Ends sessions whose window is over.",
        Handler::Write(sessions_expired),
    ),
    spec(LOCK_EXPIRED, -3, WRITE | INTERNAL | NOSCRIPT, (0, 0, 0), G, "Releases locks whose lease is over.", Handler::Write(locks_expired)),
];

fn nosession(id: &[u8]) -> Reply {
    Reply::error(format!(
        "{ERR_NOSESSION} no session '{}': it ended (closed, or its reconnect window ran out) or never existed",
        String::from_utf8_lossy(id)
    ))
}

fn ms_arg(arg: &[u8], max: u64) -> Result<u64, Reply> {
    match parse_i64(arg) {
        Some(n) if n >= 0 && (n as u64) <= max => Ok(n as u64),
        Some(n) if n < 0 => Err(Reply::err("ERR milliseconds must not be negative")),
        _ => Err(Reply::err(ERR_NOT_INT)),
    }
}

/// The session a session-bound command runs for: `SESSION id` must exist (and is
/// renewed); `SESSION id IMPLICIT window` is created if it does not.
fn bound_session(ctx: &mut WriteCtx, id: Option<&Bytes>, implicit_window: Option<u64>) -> Result<Bytes, Reply> {
    let Some(id) = id else { return Err(Reply::err("ERR this command needs a session (SESSION <id>)")) };
    let now = ctx.now_ms;
    let prims = &mut ctx.db.prims;
    if prims.touch(id, now) {
        return Ok(id.clone());
    }
    match implicit_window {
        Some(window) => {
            let mut fx = Effects::default();
            // An implicit session whose window ran out while its connection lived (its
            // server could not renew it) ends now and starts again: what it held is
            // released first, at this position in the log.
            prims.end(id, now, &mut fx);
            prims.open(id, window, now);
            apply_effects(ctx, fx);
            Ok(id.clone())
        }
        None => Err(nosession(id)),
    }
}

fn apply_effects(ctx: &mut WriteCtx, fx: Effects) {
    ctx.ready_keys.extend(fx.granted);
    if !fx.messages.is_empty() {
        *ctx.dirty += 1;
    }
    ctx.db.messages.extend(fx.messages);
}

/// `TANDEM.SESSION OPEN [ID id] [WINDOW ms]` (the server fills in what is missing).
fn open(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (mut id, mut window) = (None, None);
    let mut i = 2;
    while i < args.len() {
        let value = args.get(i + 1).ok_or(Reply::err(ERR_SYNTAX))?;
        match () {
            _ if is(&args[i], "id") && !value.is_empty() => id = Some(value),
            _ if is(&args[i], "window") => window = Some(ms_arg(value, WINDOW_MS_MAX)?).filter(|w| *w > 0),
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        i += 2;
    }
    let (Some(id), Some(window)) = (id, window) else {
        return Err(Reply::err("ERR TANDEM.SESSION OPEN needs ID and a positive WINDOW (the server adds them)"));
    };
    if !ctx.db.prims.open(id, window, ctx.now_ms) {
        return Err(Reply::error(format!("ERR session '{}' exists already", String::from_utf8_lossy(id))));
    }
    *ctx.dirty += 1;
    Ok(Reply::Bulk(id.clone()))
}

fn resume(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    if ctx.db.prims.touch(&args[2], ctx.now_ms) {
        Ok(Reply::ok())
    } else {
        Err(nosession(&args[2]))
    }
}

fn close(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let Some(id) = args.get(2) else { return Err(Reply::err("ERR no session to close: this connection has none")) };
    if args.len() > 3 {
        return Err(Reply::err(ERR_SYNTAX));
    }
    let mut fx = Effects::default();
    let ended = ctx.db.prims.end(id, ctx.now_ms, &mut fx);
    apply_effects(ctx, fx);
    *ctx.dirty += u64::from(ended);
    Ok(Reply::Int(i64::from(ended)))
}

fn renew(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let now = ctx.now_ms;
    let renewed = args[2..].iter().filter(|id| ctx.db.prims.touch(id, now)).count();
    Ok(Reply::Int(renewed as i64))
}

fn info(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let Some(id) = args.get(2) else { return Err(Reply::err("ERR this connection has no session")) };
    let prims = &ctx.db.prims;
    let now = ctx.now_ms;
    let Some(session) = prims.sessions.get(id).filter(|s| s.expires_at_ms > now) else { return Err(nosession(id)) };
    let locks: Vec<Reply> = prims
        .locks
        .iter()
        .filter_map(|(name, _)| prims.holder(name, now).filter(|h| h.session == *id).map(|h| (name, h.token)))
        .map(|(name, token)| Reply::Array(vec![Reply::Bulk(name.clone()), Reply::Int(token as i64)]))
        .collect();
    let groups: Vec<Reply> = prims
        .groups
        .iter()
        .flat_map(|(group, members)| members.iter().filter(|(_, m)| m.session == *id).map(move |(name, _)| (group, name)))
        .map(|(group, name)| Reply::Array(vec![Reply::Bulk(group.clone()), Reply::Bulk(name.clone())]))
        .collect();
    let field = |s: &str| Reply::bulk(s.as_bytes());
    Ok(Reply::Map(vec![
        (field("id"), Reply::Bulk(id.clone())),
        (field("window-ms"), Reply::Int(session.window_ms as i64)),
        (field("expires-in-ms"), Reply::Int(session.expires_at_ms.saturating_sub(now) as i64)),
        (field("locks"), Reply::Array(locks)),
        (field("groups"), Reply::Array(groups)),
    ]))
}

fn sessions_expired(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let now = ctx.now_ms;
    let mut fx = Effects::default();
    let mut ended = 0;
    for id in &args[1..] {
        // Checked again: a renewal applied after the active chose it wins.
        if ctx.db.prims.sessions.get(id).is_some_and(|s| s.expires_at_ms <= now) && ctx.db.prims.end(id, now, &mut fx) {
            ended += 1;
        }
    }
    apply_effects(ctx, fx);
    *ctx.dirty += ended;
    Ok(Reply::Int(ended as i64))
}

fn locks_expired(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(wrong_args(LOCK_EXPIRED));
    }
    let now = ctx.now_ms;
    let mut fx = Effects::default();
    let mut released = 0;
    for pair in args[1..].chunks(2) {
        let token = parse_i64(&pair[1]).and_then(|t| u64::try_from(t).ok()).ok_or(Reply::err(ERR_NOT_INT))?;
        released += i64::from(ctx.db.prims.expire_lock(&pair[0], token, now, &mut fx));
    }
    apply_effects(ctx, fx);
    Ok(Reply::Int(released))
}

/// The options of `TANDEM.LOCK name …`.
#[derive(Default)]
struct LockArgs<'a> {
    ttl_ms: u64,
    /// WAIT as the client sent it (a wait inside MULTI never blocks).
    wait_ms: Option<u64>,
    /// QUEUE: the blocking path's form of WAIT (the session joins the queue).
    queue_ms: Option<u64>,
    withdraw: bool,
    session: Option<&'a Bytes>,
    implicit_window: Option<u64>,
}

fn lock_args(args: &[Bytes]) -> Result<LockArgs<'_>, Reply> {
    let mut parsed = LockArgs::default();
    let mut i = 2;
    while i < args.len() {
        let opt = &args[i];
        if is(opt, "withdraw") {
            parsed.withdraw = true;
            i += 1;
            continue;
        }
        let value = args.get(i + 1).ok_or(Reply::err(ERR_SYNTAX))?;
        match () {
            _ if is(opt, "ttl") => parsed.ttl_ms = ms_arg(value, DURATION_MS_MAX)?,
            _ if is(opt, "wait") => parsed.wait_ms = Some(ms_arg(value, DURATION_MS_MAX)?),
            _ if is(opt, "queue") => parsed.queue_ms = Some(ms_arg(value, DURATION_MS_MAX)?),
            _ if is(opt, "session") => parsed.session = Some(value),
            _ if is(opt, "implicit") => parsed.implicit_window = Some(ms_arg(value, WINDOW_MS_MAX)?).filter(|w| *w > 0),
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        i += 2;
    }
    Ok(parsed)
}

/// Whether a session-bound command names its session already (`SESSION <id>`).
pub fn names_session(spec: &CommandSpec, args: &[Bytes]) -> bool {
    if spec.wait.is_some_and(|w| std::ptr::eq(w, &LOCK_WAIT)) {
        return lock_args(args).is_ok_and(|a| a.session.is_some());
    }
    session_suffix(args).is_ok_and(|(_, id, _)| id.is_some())
}

/// How long a LOCK waits: WAIT's time (QUEUE, the server's own form, waits alike if
/// a client sends it, so no session is ever queued by a client that does not wait).
fn lock_wait_ms(args: &[Bytes]) -> Result<Option<u64>, Reply> {
    let parsed = lock_args(args)?;
    Ok(parsed.wait_ms.or(parsed.queue_ms).filter(|_| !parsed.withdraw))
}

/// A waiting LOCK joins the queue: `WAIT ms` becomes `QUEUE ms`.
fn prepare_lock(_: &Db, _: u64, args: &[Bytes]) -> Prepared {
    let queued: Vec<Bytes> = args.iter().map(|a| if is(a, "wait") { Bytes::from_static(b"QUEUE") } else { a.clone() }).collect();
    Prepared { first: queued.clone(), woken: queued }
}

/// Whether the waiting LOCK `args` has been granted its lock in `db` at `now_ms`:
/// the blocking task asks only such a waiter to take it (one entry per grant, not
/// one per waiter).
pub fn lock_granted(db: &Db, now_ms: u64, args: &[Bytes]) -> bool {
    let (Some(name), Ok(parsed)) = (args.get(1), lock_args(args)) else { return true };
    let Some(session) = parsed.session else { return true };
    db.prims.holder(name, now_ms).is_some_and(|h| h.session == *session)
}

/// A wait that ends unserved leaves the queue, or learns it was granted the lock.
fn withdraw_lock(args: &[Bytes]) -> Vec<Bytes> {
    let mut out = vec![args[0].clone(), args[1].clone()];
    if let Some(at) = args.iter().position(|a| is(a, "session")) {
        out.extend(args[at..].iter().take(2).cloned());
    }
    out.push(Bytes::from_static(b"WITHDRAW"));
    out
}

fn lock(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let name = &args[1];
    let parsed = lock_args(args)?;
    let now = ctx.now_ms;
    if parsed.withdraw {
        let Some(session) = parsed.session else { return Err(Reply::err(ERR_SYNTAX)) };
        let mut fx = Effects::default();
        let token = ctx.db.prims.withdraw(name, session, now, &mut fx);
        apply_effects(ctx, fx);
        return Ok(token.map_or(Reply::Nil, |t| Reply::Int(t as i64)));
    }
    let session = bound_session(ctx, parsed.session, parsed.implicit_window)?;
    let mut fx = Effects::default();
    let outcome = ctx.db.prims.lock(name, &session, parsed.ttl_ms, parsed.queue_ms, now, &mut fx);
    apply_effects(ctx, fx);
    Ok(match outcome {
        Acquired::Token(token) => {
            *ctx.dirty += 1;
            Reply::Int(token as i64)
        }
        Acquired::Busy => Reply::Nil,
        Acquired::Queued => Reply::WouldBlock,
    })
}

fn token_arg(arg: &[u8]) -> Result<u64, Reply> {
    parse_i64(arg).and_then(|t| u64::try_from(t).ok()).ok_or(Reply::err("ERR the token is not a non-negative integer"))
}

fn unlock(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let token = token_arg(&args[2])?;
    let mut fx = Effects::default();
    let released = ctx.db.prims.unlock(&args[1], token, ctx.now_ms, &mut fx);
    apply_effects(ctx, fx);
    *ctx.dirty += u64::from(released);
    Ok(Reply::Int(i64::from(released)))
}

fn locks(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    if args.len() > 2 {
        return Err(Reply::err(ERR_SYNTAX));
    }
    let pattern = args.get(1);
    let now = ctx.now_ms;
    let prims = &ctx.db.prims;
    let rows = prims
        .locks
        .iter()
        .filter(|(name, _)| pattern.is_none_or(|p| glob_match(p, name, false)))
        .filter_map(|(name, lock)| {
            let holder = prims.holder(name, now)?;
            let pttl = if holder.expires_at_ms == 0 { -1 } else { holder.expires_at_ms.saturating_sub(now) as i64 };
            Some(Reply::Array(vec![
                Reply::Bulk(name.clone()),
                Reply::Int(holder.token as i64),
                Reply::Bulk(holder.session.clone()),
                Reply::Int(pttl),
                Reply::Int(lock.waiters.len() as i64),
            ]))
        })
        .collect();
    Ok(Reply::Array(rows))
}

/// FENCED's keys: the lock's name, then the inner command's keys.
fn fenced_keys(args: &[Bytes]) -> Vec<usize> {
    let mut keys = vec![1];
    if let Some(inner) = args.get(3..).filter(|a| !a.is_empty()) {
        if let Some(spec) = resolve(inner) {
            keys.extend(spec.keys(inner).iter().filter_map(|k| inner.iter().position(|a| std::ptr::eq(a, *k))).map(|i| i + 3));
        }
    }
    keys
}

/// The command a FENCED wraps, if `spec`/`args` are a FENCED (admission checks its
/// ACL rules too).
pub fn fenced_inner<'a>(spec: &CommandSpec, args: &'a [Bytes]) -> Option<&'a [Bytes]> {
    (spec.name == FENCED).then(|| args.get(3..)).flatten()
}

fn fence_refusal(name: &[u8], token: u64, why: Fence) -> Reply {
    let name = String::from_utf8_lossy(name);
    Reply::error(match why {
        Fence::NotHeld => format!("FENCED the lock '{name}' is not held: token {token} is stale"),
        Fence::Newer => format!("FENCED the lock '{name}' is held with a newer token than {token}"),
        Fence::NotCurrent => format!("FENCED token {token} is not the current token of the lock '{name}'"),
    })
}

fn fenced(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (name, token) = (&args[1], token_arg(&args[2])?);
    let inner = &args[3..];
    let spec = resolve(inner).filter(|s| !s.has(INTERNAL)).ok_or_else(|| unknown_command(inner))?;
    let runs_here = matches!(spec.handler, Handler::Write(_) | Handler::Read(_))
        && !spec.has(BLOCKING)
        && !spec.has(SCRIPT)
        && !spec.has(NOSCRIPT)
        && !spec.has(PUBSUB);
    if !runs_here {
        return Err(Reply::error(format!("ERR '{}' cannot run fenced: only data commands can", spec.name)));
    }
    if !spec.arity_ok(inner.len()) {
        return Err(wrong_args(spec.name));
    }
    ctx.db.prims.fence(name, token, ctx.now_ms).map_err(|why| fence_refusal(name, token, why))?;
    match spec.handler {
        Handler::Write(f) => f(ctx, inner),
        Handler::Read(f) => f(
            &mut ReadCtx {
                db: ctx.db,
                now_ms: ctx.now_ms,
                rng: ctx.rng,
                engine: None,
                local: &crate::store::encoding::LocalSettings::DETERMINISTIC,
                acl_user: None,
                acl_view: None,
                in_script: false,
            },
            inner,
        ),
        Handler::Server(_) => Err(unknown_command(inner)),
    }
}

/// `JOIN group member [info] [SESSION id [IMPLICIT window]]`: the session suffix is
/// read from the end (the server appends it).
fn join(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (rest, id, implicit) = session_suffix(args)?;
    let (group, member) = (&args[2], &args[3]);
    let info = match rest {
        4 => Bytes::new(),
        5 => args[4].clone(),
        _ => return Err(Reply::err(ERR_SYNTAX)),
    };
    let session = bound_session(ctx, id, implicit)?;
    let mut fx = Effects::default();
    let joined = ctx.db.prims.join(group, member, &info, &session, &mut fx);
    apply_effects(ctx, fx);
    match joined {
        Joined::New => Ok(Reply::Int(1)),
        Joined::Again => Ok(Reply::Int(0)),
        Joined::Taken => Err(Reply::error(format!(
            "ERR member '{}' of group '{}' belongs to another session",
            String::from_utf8_lossy(member),
            String::from_utf8_lossy(group)
        ))),
    }
}

/// Splits `… SESSION id [IMPLICIT window]` off the end: (arguments before it, id, window).
fn session_suffix(args: &[Bytes]) -> Result<(usize, Option<&Bytes>, Option<u64>), Reply> {
    let n = args.len();
    if n >= 8 && is(&args[n - 4], "session") && is(&args[n - 2], "implicit") {
        let window = ms_arg(&args[n - 1], WINDOW_MS_MAX)?;
        return Ok((n - 4, Some(&args[n - 3]), Some(window).filter(|w| *w > 0)));
    }
    if n >= 6 && is(&args[n - 2], "session") {
        return Ok((n - 2, Some(&args[n - 1]), None));
    }
    Ok((n, None, None))
}

fn leave(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let mut fx = Effects::default();
    let left = ctx.db.prims.leave(&args[2], &args[3], &mut fx);
    apply_effects(ctx, fx);
    Ok(Reply::Int(i64::from(left)))
}

fn members(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let Some(members) = ctx.db.prims.groups.get(&args[2]) else { return Ok(Reply::Map(Vec::new())) };
    Ok(Reply::Map(members.iter().map(|(name, m)| (Reply::Bulk(name.clone()), Reply::Bulk(m.info.clone()))).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_support::{bulk, err, run, run_applied};
    use crate::store::Store;

    const T: u64 = 1_700_000_000_000;

    fn open(st: &mut Store, t: u64, id: &str, window_ms: u64) {
        assert_eq!(run(st, t, &["tandem.session", "open", "id", id, "window", &window_ms.to_string()]), bulk(id));
    }

    fn lock(st: &mut Store, t: u64, name: &str, session: &str, extra: &[&str]) -> Reply {
        let mut cmd = vec!["tandem.lock", name];
        cmd.extend_from_slice(extra);
        cmd.extend(["session", session]);
        run(st, t, &cmd)
    }

    /// Two sessions, `a` holding lock `l`, `b` queued behind it.
    fn held_and_queued(st: &mut Store) -> i64 {
        open(st, T, "a", 1_000);
        open(st, T, "b", 1_000);
        let Reply::Int(token) = lock(st, T, "l", "a", &[]) else { panic!("a takes the free lock") };
        assert_eq!(lock(st, T, "l", "b", &["queue", "0"]), Reply::WouldBlock);
        token
    }

    #[test]
    fn tokens_only_grow_and_every_store_hands_out_the_same() {
        let script = |st: &mut Store| -> Vec<Reply> {
            open(st, T, "a", 10_000);
            open(st, T, "b", 10_000);
            let mut seen = Vec::new();
            for round in 0..5 {
                let who = if round % 2 == 0 { "a" } else { "b" };
                let token = lock(st, T + round, "l", who, &[]);
                seen.push(token.clone());
                let Reply::Int(t) = token else { panic!("{token:?}") };
                assert_eq!(run(st, T + round, &["tandem.unlock", "l", &t.to_string()]), Reply::Int(1));
            }
            seen
        };
        let (mut one, mut two) = (Store::new(), Store::new());
        let tokens = script(&mut one);
        assert_eq!(tokens, script(&mut two));
        assert!(tokens.windows(2).all(|w| matches!((&w[0], &w[1]), (Reply::Int(x), Reply::Int(y)) if x < y)), "{tokens:?}");
        assert_eq!(one.digest(), two.digest());
    }

    #[test]
    fn a_release_grants_the_lock_to_waiters_in_fifo_order() {
        let mut st = Store::new();
        let first = held_and_queued(&mut st);
        open(&mut st, T, "c", 1_000);
        assert_eq!(lock(&mut st, T, "l", "c", &["queue", "0"]), Reply::WouldBlock);
        assert_eq!(lock(&mut st, T, "l", "c", &["queue", "0"]), Reply::WouldBlock, "asking again keeps its place");
        let applied = run_applied(&mut st, T + 1, &["tandem.unlock", "l", &first.to_string()]);
        assert_eq!(applied.replies, vec![Reply::Int(1)]);
        assert_eq!(applied.ready_keys, vec![Bytes::from_static(b"l")], "the waiters are woken");
        // c's attempt comes first on this server: it still waits; b was granted it.
        assert_eq!(lock(&mut st, T + 1, "l", "c", &["queue", "0"]), Reply::WouldBlock);
        assert_eq!(lock(&mut st, T + 1, "l", "b", &["queue", "0"]), Reply::Int(first + 1));
        assert_eq!(lock(&mut st, T + 1, "l", "a", &[]), Reply::Nil, "no wait: nil");
        assert_eq!(run(&mut st, T + 1, &["tandem.unlock", "l", &first.to_string()]), Reply::Int(0), "a stale token releases nothing");
    }

    #[test]
    fn a_session_ends_by_entry_when_its_window_is_over_and_its_lock_goes_to_the_waiter() {
        let mut st = Store::new();
        let first = held_and_queued(&mut st);
        run(&mut st, T, &["tandem.group", "join", "g", "m-a", "info", "session", "a"]);
        run(&mut st, T + 600, &["tandem.session", "renew", "b"]);
        assert_eq!(run(&mut st, T + 999, &["tandem.sessionexpired", "a"]), Reply::Int(0), "not due yet");
        let applied = run_applied(&mut st, T + 1_000, &["tandem.sessionexpired", "a", "b"]);
        assert_eq!(applied.replies, vec![Reply::Int(1)], "b was renewed: only a ends");
        assert_eq!(applied.messages, vec![(Bytes::from_static(b"__tandem__:group:g"), Bytes::from_static(b"leave m-a"))]);
        assert_eq!(lock(&mut st, T + 1_000, "l", "b", &["queue", "0"]), Reply::Int(first + 1), "granted with a larger token");
        assert_eq!(
            run(&mut st, T + 1_000, &["tandem.session", "resume", "a"]),
            err("NOSESSION no session 'a': it ended (closed, or its reconnect window ran out) or never existed")
        );
        assert_eq!(run(&mut st, T + 1_000, &["tandem.group", "members", "g"]), Reply::Map(vec![]));
    }

    #[test]
    fn a_fenced_write_applies_only_with_the_current_token() {
        let mut st = Store::new();
        let first = held_and_queued(&mut st);
        let t1 = first.to_string();
        assert_eq!(run(&mut st, T, &["tandem.fenced", "l", &t1, "set", "doc", "v1"]), Reply::ok());
        assert_eq!(run(&mut st, T, &["tandem.fenced", "l", &t1, "get", "doc"]), bulk("v1"), "reads run fenced too");
        run(&mut st, T, &["tandem.unlock", "l", &t1]);
        assert_eq!(
            run(&mut st, T, &["tandem.fenced", "l", &t1, "set", "doc", "stale"]),
            err(&format!("FENCED the lock 'l' is held with a newer token than {first}"))
        );
        assert_eq!(
            run(&mut st, T, &["tandem.fenced", "l", "999", "set", "doc", "x"]),
            err("FENCED token 999 is not the current token of the lock 'l'")
        );
        assert_eq!(
            run(&mut st, T, &["tandem.fenced", "free", "1", "set", "doc", "x"]),
            err("FENCED the lock 'free' is not held: token 1 is stale")
        );
        assert_eq!(run(&mut st, T, &["get", "doc"]), bulk("v1"), "no refused write applied");
    }

    #[test]
    fn a_lease_ends_at_its_ttl_and_fencing_knows_before_the_entry_applies() {
        let mut st = Store::new();
        open(&mut st, T, "a", 60_000);
        assert_eq!(lock(&mut st, T, "l", "a", &["ttl", "100"]), Reply::Int(1));
        assert_eq!(run(&mut st, T + 99, &["tandem.lockexpired", "l", "1"]), Reply::Int(0), "not due yet");
        assert_eq!(run(&mut st, T + 99, &["tandem.fenced", "l", "1", "set", "k", "v"]), Reply::ok());
        assert_eq!(
            run(&mut st, T + 100, &["tandem.fenced", "l", "1", "set", "k", "v"]),
            err("FENCED the lock 'l' is not held: token 1 is stale")
        );
        assert_eq!(run(&mut st, T + 100, &["tandem.lockexpired", "l", "1"]), Reply::Int(1));
        assert_eq!(run(&mut st, T + 100, &["tandem.locks"]), Reply::Array(vec![]));
    }

    #[test]
    fn a_withdrawn_wait_leaves_the_queue_or_learns_its_grant() {
        let mut st = Store::new();
        let first = held_and_queued(&mut st);
        assert_eq!(run(&mut st, T, &["tandem.lock", "l", "session", "b", "withdraw"]), Reply::Nil);
        run(&mut st, T, &["tandem.unlock", "l", &first.to_string()]);
        assert_eq!(run(&mut st, T, &["tandem.locks"]), Reply::Array(vec![]), "nobody was waiting any more");
        held_and_queued_again(&mut st);
        assert_eq!(run(&mut st, T, &["tandem.lock", "l", "session", "b", "withdraw"]), Reply::Int(first + 2), "granted before it gave up");
    }

    fn held_and_queued_again(st: &mut Store) {
        let Reply::Int(token) = lock(st, T, "l", "a", &[]) else { panic!() };
        assert_eq!(lock(st, T, "l", "b", &["queue", "0"]), Reply::WouldBlock);
        run(st, T, &["tandem.unlock", "l", &token.to_string()]);
    }

    #[test]
    fn an_implicit_session_is_created_on_first_use_and_an_unknown_one_is_refused() {
        let mut st = Store::new();
        assert_eq!(
            run(&mut st, T, &["tandem.lock", "l", "session", "x"]),
            err("NOSESSION no session 'x': it ended (closed, or its reconnect window ran out) or never existed")
        );
        assert_eq!(run(&mut st, T, &["tandem.lock", "l", "session", "x", "implicit", "500"]), Reply::Int(1));
        assert_eq!(run(&mut st, T + 1, &["tandem.lock", "l", "session", "x"]), Reply::Int(1), "the holder asking again gets its token");
        assert_eq!(
            run(&mut st, T, &["tandem.locks", "l*"]),
            Reply::Array(vec![Reply::Array(vec![bulk("l"), Reply::Int(1), bulk("x"), Reply::Int(-1), Reply::Int(0)])])
        );
    }

    #[test]
    fn groups_publish_joins_and_leaves_in_order_and_members_belong_to_one_session() {
        let mut st = Store::new();
        open(&mut st, T, "a", 1_000);
        open(&mut st, T, "b", 1_000);
        let joined = run_applied(&mut st, T, &["tandem.group", "join", "g", "n1", "10.0.0.1:8080", "session", "a"]);
        assert_eq!(joined.replies, vec![Reply::Int(1)]);
        assert_eq!(joined.messages, vec![(Bytes::from_static(b"__tandem__:group:g"), Bytes::from_static(b"join n1"))]);
        assert_eq!(run(&mut st, T, &["tandem.group", "join", "g", "n1", "again", "session", "a"]), Reply::Int(0));
        assert_eq!(run(&mut st, T, &["tandem.group", "join", "g", "n2", "session", "b"]), Reply::Int(1));
        assert_eq!(
            run(&mut st, T, &["tandem.group", "join", "g", "n1", "session", "b"]),
            err("ERR member 'n1' of group 'g' belongs to another session")
        );
        assert_eq!(
            run(&mut st, T, &["tandem.group", "members", "g"]),
            Reply::Map(vec![(bulk("n1"), bulk("again")), (bulk("n2"), bulk(""))])
        );
        let left = run_applied(&mut st, T, &["tandem.group", "leave", "g", "n1"]);
        assert_eq!(left.messages, vec![(Bytes::from_static(b"__tandem__:group:g"), Bytes::from_static(b"leave n1"))]);
        assert_eq!(run(&mut st, T, &["tandem.session", "close", "b"]), Reply::Int(1));
        assert_eq!(run(&mut st, T, &["tandem.session", "close", "b"]), Reply::Int(0));
        assert_eq!(run(&mut st, T, &["tandem.group", "members", "g"]), Reply::Map(vec![]));
    }

    #[test]
    fn bad_arguments_get_clear_errors() {
        let mut st = Store::new();
        open(&mut st, T, "a", 1_000);
        let cases: &[(&[&str], &str)] = &[
            (&["tandem.lock", "l", "ttl", "-1", "session", "a"], "ERR milliseconds must not be negative"),
            (&["tandem.lock", "l", "ttl", "soon", "session", "a"], ERR_NOT_INT),
            (&["tandem.lock", "l", "wait", "99999999999999999999", "session", "a"], ERR_NOT_INT),
            (&["tandem.lock", "l", "ttl", "99999999999999", "session", "a"], ERR_NOT_INT),
            (&["tandem.lock", "l", "ttl"], ERR_SYNTAX),
            (&["tandem.lock", "l", "bogus", "1"], ERR_SYNTAX),
            (&["tandem.lock", "l"], "ERR this command needs a session (SESSION <id>)"),
            (&["tandem.unlock", "l", "-3"], "ERR the token is not a non-negative integer"),
            (&["tandem.fenced", "l", "x", "set", "k", "v"], "ERR the token is not a non-negative integer"),
            (&["tandem.fenced", "l", "1", "nosuch", "k"], "ERR unknown command 'nosuch', with args beginning with: 'k' "),
            (&["tandem.fenced", "l", "1", "blpop", "k", "0"], "ERR 'blpop' cannot run fenced: only data commands can"),
            (
                &["tandem.fenced", "l", "1", "tandem.fenced", "l", "1", "get", "k"],
                "ERR 'tandem.fenced' cannot run fenced: only data commands can",
            ),
            (&["tandem.fenced", "l", "1", "set", "k"], "ERR wrong number of arguments for 'set' command"),
            (&["tandem.session", "open", "id"], "ERR syntax error"),
            (&["tandem.session", "open", "id", "b"], "ERR TANDEM.SESSION OPEN needs ID and a positive WINDOW (the server adds them)"),
            (
                &["tandem.session", "open", "id", "b", "window", "0"],
                "ERR TANDEM.SESSION OPEN needs ID and a positive WINDOW (the server adds them)",
            ),
            (&["tandem.session", "open", "id", "a", "window", "10"], "ERR session 'a' exists already"),
            (&["tandem.session", "open", "id", "b", "window", "999999999999"], ERR_NOT_INT),
            (&["tandem.group", "join", "g", "m"], "ERR this command needs a session (SESSION <id>)"),
            (&["tandem.group", "join", "g", "m", "i", "x", "session", "a"], ERR_SYNTAX),
        ];
        for (cmd, expected) in cases {
            assert_eq!(run(&mut st, T, cmd), err(expected), "{cmd:?}");
        }
        assert_eq!(run(&mut st, T, &["tandem.locks"]), Reply::Array(vec![]), "nothing was taken");
    }

    /// Random primitives with random (often bad) arguments, at times that move on:
    /// nothing panics, and two stores that apply the same entries agree on everything.
    #[test]
    fn random_primitives_never_panic_and_apply_alike_everywhere() {
        use rand_core::{RngCore, SeedableRng};
        let seed = std::env::var("TANDEM_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random::<u64>);
        println!("seed {seed} (replay with TANDEM_TEST_SEED={seed})");
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        let words = [
            "a",
            "b",
            "l",
            "m",
            "g",
            "0",
            "1",
            "2",
            "5",
            "-1",
            "x",
            "99999999999999999999",
            "session",
            "implicit",
            "queue",
            "wait",
            "ttl",
            "withdraw",
            "set",
            "get",
            "k",
            "info",
            "window",
        ];
        let heads: [&[&str]; 16] = [
            &["tandem.session", "open", "id", "a", "window", "200"],
            &["tandem.session", "open", "id", "b", "window", "300"],
            &["tandem.session", "resume", "a"],
            &["tandem.session", "close", "b"],
            &["tandem.session", "renew", "a", "b"],
            &["tandem.session", "info", "a"],
            &["tandem.lock", "l", "session", "a"],
            &["tandem.lock", "l", "ttl", "40", "queue", "100", "session", "b", "implicit", "300"],
            &["tandem.lock", "m", "queue", "0", "session", "c", "implicit", "100"],
            &["tandem.lock", "l", "session", "b", "withdraw"],
            &["tandem.unlock", "l"],
            &["tandem.locks"],
            &["tandem.fenced", "l", "2", "set", "k"],
            &["tandem.group", "join", "g", "m", "session", "a"],
            &["tandem.group", "leave", "g"],
            &["tandem.sessionexpired", "a", "b", "c"],
        ];
        let (mut one, mut two) = (Store::new(), Store::new());
        let mut now = T;
        for step in 0..5_000 {
            now += rng.next_u64() % 50;
            let mut cmd: Vec<&str> = heads[(rng.next_u64() % heads.len() as u64) as usize].to_vec();
            for _ in 0..rng.next_u64() % 3 {
                cmd.push(words[(rng.next_u64() % words.len() as u64) as usize]);
            }
            let (r1, r2) = (run(&mut one, now, &cmd), run(&mut two, now, &cmd));
            assert_eq!(r1, r2, "seed {seed} step {step}: {cmd:?}");
        }
        assert_eq!(one.digest(), two.digest(), "seed {seed}");
        assert_eq!(one.db.prims, two.db.prims, "seed {seed}");
        assert!(one.db.prims.last_token > 10, "seed {seed}: the run took locks ({})", one.db.prims.last_token);
        // What a snapshot holds of it reads back, and every cut or flipped byte is
        // refused or read without a panic.
        let mut bytes = Vec::new();
        one.db.prims.encode(&mut bytes);
        let decode = |b: &[u8]| crate::store::prims::Prims::decode(&mut crate::store::codec::Decoder::new(b));
        assert_eq!(decode(&bytes).ok().as_ref(), Some(&one.db.prims), "seed {seed}");
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "seed {seed}: a cut at {cut} must not read as whole");
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0xff;
            let _ = decode(&flipped);
        }
    }

    #[test]
    fn fenced_finds_the_keys_of_the_command_it_runs() {
        let args: Vec<Bytes> =
            ["tandem.fenced", "lk", "3", "mset", "a", "1", "b", "2"].iter().map(|s| Bytes::from(s.to_string())).collect();
        assert_eq!(fenced_keys(&args), vec![1, 4, 6]);
        let spec = lookup(b"tandem.fenced").unwrap();
        assert_eq!(fenced_inner(spec, &args).map(|a| a.len()), Some(5));
        assert_eq!(fenced_inner(lookup(b"get").unwrap(), &args), None);
    }

    #[test]
    fn the_new_commands_have_acl_categories() {
        let r = crate::acl::registry::registry();
        let cats = |name: &[u8]| r.commands[r.id(name).unwrap()].categories;
        let bit = |c: &str| crate::acl::registry::category_bit(c.as_bytes()).unwrap();
        assert_eq!(cats(b"tandem.lock") & (bit("write") | bit("blocking")), bit("write") | bit("blocking"));
        assert_ne!(cats(b"tandem.locks") & bit("read"), 0);
        assert_ne!(cats(b"tandem.session|info") & bit("read"), 0);
        assert_ne!(cats(b"tandem.group|join") & bit("write"), 0);
        assert!(r.id(b"tandem.sessionexpired").is_none(), "internal commands are no ACL names");
    }
}
