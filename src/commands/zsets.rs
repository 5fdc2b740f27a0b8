//! Sorted-set commands: ZADD and ZINCRBY, removals, scores and ranks, ranges by
//! rank, score and lex (ZRANGE and its older spellings, ZRANGESTORE, ZCOUNT,
//! ZLEXCOUNT, ZREMRANGEBY*), ZPOPMIN/ZPOPMAX and ZSCAN.
//!
//! The container is [`ZSet`] (a member → score map plus a `(score, member)` B-tree);
//! this module adds the range selection Redis's skiplist gives for free: by rank
//! (a walk from either end), by score (a B-tree range between score bounds) and by
//! lex (a B-tree range when every score is equal, which is the only case Redis
//! specifies; a filter otherwise). It knows nothing of blocking pops beyond
//! signalling that a key gained members.

use std::ops::Bound;

use bytes::Bytes;

use super::flags::*;
use super::scan;
use super::*;
use crate::protocol::reply::Reply;
use crate::store::value::{Blob, Score, Value, ZSet};

const G: &str = "sorted-set";

pub static COMMANDS: &[CommandSpec] = &[
    spec("zadd", -4, WRITE | DENYOOM | FAST, (1, 1, 1), G, "Adds members to a sorted set, or updates their scores.", Handler::Write(zadd)),
    spec("zincrby", 4, WRITE | DENYOOM | FAST, (1, 1, 1), G, "Increments the score of a member in a sorted set.", Handler::Write(zincrby)),
    spec("zrem", -3, WRITE | FAST, (1, 1, 1), G, "Removes members from a sorted set.", Handler::Write(zrem)),
    spec("zscore", 3, READONLY | FAST, (1, 1, 1), G, "Returns the score of a member in a sorted set.", Handler::Read(zscore)),
    spec("zmscore", -3, READONLY | FAST, (1, 1, 1), G, "Returns the scores of members in a sorted set.", Handler::Read(zmscore)),
    spec("zcard", 2, READONLY | FAST, (1, 1, 1), G, "Returns the number of members in a sorted set.", Handler::Read(zcard)),
    spec("zcount", 4, READONLY | FAST, (1, 1, 1), G, "Counts the members of a sorted set within a range of scores.", Handler::Read(zcount)),
    spec(
        "zlexcount",
        4,
        READONLY | FAST,
        (1, 1, 1),
        G,
        "Counts the members of a sorted set within a lexicographical range.",
        Handler::Read(zlexcount),
    ),
    spec(
        "zrange",
        -4,
        READONLY,
        (1, 1, 1),
        G,
        "Returns members of a sorted set within a range of indexes, scores or names.",
        Handler::Read(zrange),
    ),
    spec(
        "zrangestore",
        -5,
        WRITE | DENYOOM,
        (1, 2, 1),
        G,
        "Stores a range of members of a sorted set in another key.",
        Handler::Write(zrangestore),
    ),
    spec(
        "zrangebyscore",
        -4,
        READONLY,
        (1, 1, 1),
        G,
        "Returns members of a sorted set within a range of scores.",
        Handler::Read(zrangebyscore),
    ),
    spec(
        "zrevrangebyscore",
        -4,
        READONLY,
        (1, 1, 1),
        G,
        "Returns members of a sorted set within a range of scores, highest first.",
        Handler::Read(zrevrangebyscore),
    ),
    spec(
        "zrevrange",
        -4,
        READONLY,
        (1, 1, 1),
        G,
        "Returns members of a sorted set within a range of indexes, highest first.",
        Handler::Read(zrevrange),
    ),
    spec(
        "zrangebylex",
        -4,
        READONLY,
        (1, 1, 1),
        G,
        "Returns members of a sorted set within a lexicographical range.",
        Handler::Read(zrangebylex),
    ),
    spec(
        "zrevrangebylex",
        -4,
        READONLY,
        (1, 1, 1),
        G,
        "Returns members of a sorted set within a lexicographical range, reversed.",
        Handler::Read(zrevrangebylex),
    ),
    spec(
        "zrank",
        -3,
        READONLY | FAST,
        (1, 1, 1),
        G,
        "Returns the index of a member in a sorted set ordered by ascending score.",
        Handler::Read(zrank),
    ),
    spec(
        "zrevrank",
        -3,
        READONLY | FAST,
        (1, 1, 1),
        G,
        "Returns the index of a member in a sorted set ordered by descending score.",
        Handler::Read(zrevrank),
    ),
    spec(
        "zremrangebyscore",
        4,
        WRITE,
        (1, 1, 1),
        G,
        "Removes the members of a sorted set within a range of scores.",
        Handler::Write(zremrangebyscore),
    ),
    spec(
        "zremrangebyrank",
        4,
        WRITE,
        (1, 1, 1),
        G,
        "Removes the members of a sorted set within a range of indexes.",
        Handler::Write(zremrangebyrank),
    ),
    spec(
        "zremrangebylex",
        4,
        WRITE,
        (1, 1, 1),
        G,
        "Removes the members of a sorted set within a lexicographical range.",
        Handler::Write(zremrangebylex),
    ),
    spec("zpopmin", -2, WRITE | FAST, (1, 1, 1), G, "Removes and returns the members with the lowest scores.", Handler::Write(zpopmin)),
    spec("zpopmax", -2, WRITE | FAST, (1, 1, 1), G, "Removes and returns the members with the highest scores.", Handler::Write(zpopmax)),
    spec("zscan", -3, READONLY, (1, 1, 1), G, "Iterates over members and scores of a sorted set.", Handler::Read(zscan)),
    spec("zrandmember", -2, READONLY, (1, 1, 1), G, "Returns one or more random members from a sorted set.", Handler::Read(zrandmember)),
];

const ERR_XX_NX: &str = "ERR XX and NX options at the same time are not compatible";
const ERR_GT_LT_NX: &str = "ERR GT, LT, and/or NX options at the same time are not compatible";
const ERR_INCR_PAIR: &str = "ERR INCR option supports a single increment-element pair";
const ERR_SCORE_RANGE: &str = "ERR min or max is not a float";
const ERR_LEX_RANGE: &str = "ERR min or max not valid string range item";
const ERR_LIMIT_RANK: &str = "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX";
const ERR_WITHSCORES_LEX: &str = "ERR syntax error, WITHSCORES not supported in combination with BYLEX";

/// Entries borrowed from a sorted set, in either direction.
type Entries<'a> = crate::store::zset::Sorted<'a>;

/// The sorted set at `key` for a read, `None` if absent, WRONGTYPE if not a zset.
fn read_zset<'a>(ctx: &mut ReadCtx<'a>, key: &[u8]) -> Result<Option<&'a ZSet>, Reply> {
    ctx.get(key).map(Value::as_zset).transpose()
}

fn empty_array() -> Reply {
    Reply::Array(Vec::new())
}

// --- score ranges ---

/// `min max` of ZRANGEBYSCORE and friends: `(` makes an end exclusive.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ScoreRange {
    min: f64,
    min_ex: bool,
    max: f64,
    max_ex: bool,
}

/// One end of a score range, as Redis's zslParseRange reads it with strtod: leading
/// spaces are skipped and an empty text is 0; NaN and trailing garbage are refused.
fn parse_score_bound(arg: &[u8]) -> Option<(f64, bool)> {
    let (text, exclusive) = match arg.strip_prefix(b"(") {
        Some(rest) => (rest, true),
        None => (arg, false),
    };
    let start = text.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(text.len());
    let text = text.get(start..).unwrap_or_default();
    let value = if text.is_empty() { 0.0 } else { parse_f64(text)? };
    // One zero: the B-tree orders -0 before 0, users do not.
    Some((if value == 0.0 { 0.0 } else { value }, exclusive))
}

impl ScoreRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<ScoreRange, Reply> {
        let bad = || Reply::err(ERR_SCORE_RANGE);
        let (min, min_ex) = parse_score_bound(min).ok_or_else(bad)?;
        let (max, max_ex) = parse_score_bound(max).ok_or_else(bad)?;
        Ok(ScoreRange { min, min_ex, max, max_ex })
    }

    fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.min_ex || self.max_ex))
    }

    /// The members in range, ascending.
    fn entries<'a>(&self, z: &'a ZSet) -> Entries<'a> {
        if self.is_empty() || (self.min_ex && self.min == f64::INFINITY) {
            return Box::new(std::iter::empty());
        }
        // The empty member sorts first, so `(s, "")` is the lowest entry with score s.
        let at = |score: f64| (Score(score), Blob::default());
        let low = Bound::Included(at(if self.min_ex { next_up(self.min) } else { self.min }));
        let high = match (self.max_ex, self.max == f64::INFINITY) {
            (true, _) => Bound::Excluded(at(self.max)),
            (false, true) => Bound::Unbounded,
            (false, false) => Bound::Excluded(at(next_up(self.max))),
        };
        z.range(low, high)
    }
}

/// The least double above `x` (std's `f64::next_up` is newer than our MSRV).
fn next_up(x: f64) -> f64 {
    if x.is_nan() || x == f64::INFINITY {
        x
    } else if x == 0.0 {
        f64::from_bits(1)
    } else if x > 0.0 {
        f64::from_bits(x.to_bits() + 1)
    } else {
        f64::from_bits(x.to_bits() - 1)
    }
}

// --- lex ranges ---

/// One end of a lex range: `-` and `+` are the infinities, `[` inclusive, `(` exclusive.
#[derive(Debug, Clone, PartialEq)]
enum LexBound {
    Min,
    Max,
    Inclusive(Blob),
    Exclusive(Blob),
}

impl LexBound {
    fn parse(arg: &[u8]) -> Option<LexBound> {
        match arg.split_first()? {
            (b'-', []) => Some(LexBound::Min),
            (b'+', []) => Some(LexBound::Max),
            (b'[', rest) => Some(LexBound::Inclusive(Blob::from(rest))),
            (b'(', rest) => Some(LexBound::Exclusive(Blob::from(rest))),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct LexRange {
    min: LexBound,
    max: LexBound,
}

impl LexRange {
    fn parse(min: &[u8], max: &[u8]) -> Result<LexRange, Reply> {
        match (LexBound::parse(min), LexBound::parse(max)) {
            (Some(min), Some(max)) => Ok(LexRange { min, max }),
            _ => Err(Reply::err(ERR_LEX_RANGE)),
        }
    }

    fn is_empty(&self) -> bool {
        use LexBound::*;
        match (&self.min, &self.max) {
            (Max, _) | (_, Min) => true,
            (Min, _) | (_, Max) => false,
            (Inclusive(a), Inclusive(b)) => a > b,
            (Inclusive(a) | Exclusive(a), Inclusive(b) | Exclusive(b)) => a >= b,
        }
    }

    fn contains(&self, member: &[u8]) -> bool {
        let above_min = match &self.min {
            LexBound::Min => true,
            LexBound::Max => false,
            LexBound::Inclusive(b) => member >= &b[..],
            LexBound::Exclusive(b) => member > &b[..],
        };
        let below_max = match &self.max {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Inclusive(b) => member <= &b[..],
            LexBound::Exclusive(b) => member < &b[..],
        };
        above_min && below_max
    }

    /// The members in range, ascending. Redis defines lex ranges only when every
    /// score is equal; then members are in byte order and a B-tree range finds them.
    /// With mixed scores, every member in range is returned, in score order.
    fn entries<'a>(&self, z: &'a ZSet) -> Entries<'a> {
        let (Some(first), Some(last)) = (z.first(), z.last()) else {
            return Box::new(std::iter::empty());
        };
        if self.is_empty() {
            return Box::new(std::iter::empty());
        }
        if first.0 != last.0 {
            let range = self.clone();
            return Box::new(z.sorted().filter(move |(_, m)| range.contains(m)));
        }
        let score = first.0;
        let at = |member: &Blob| (score, member.clone());
        let low = match &self.min {
            LexBound::Inclusive(m) => Bound::Included(at(m)),
            LexBound::Exclusive(m) => Bound::Excluded(at(m)),
            LexBound::Min | LexBound::Max => Bound::Unbounded,
        };
        let high = match &self.max {
            LexBound::Inclusive(m) => Bound::Included(at(m)),
            LexBound::Exclusive(m) => Bound::Excluded(at(m)),
            LexBound::Min | LexBound::Max => Bound::Unbounded,
        };
        z.range(low, high)
    }
}

// --- rank ranges ---

/// Redis's index arithmetic for `start stop`: negatives count from the end, the
/// result is clamped; `None` when nothing is selected, else (first, count).
fn rank_span(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let start = if start < 0 { start.saturating_add(len) } else { start }.max(0);
    let stop = if stop < 0 { stop.saturating_add(len) } else { stop };
    if start > stop || start >= len {
        return None;
    }
    let stop = stop.min(len - 1);
    Some((start as usize, (stop - start + 1) as usize))
}

// --- ZRANGE and its spellings ---

#[derive(Debug, Clone, Copy, PartialEq)]
enum RangeKind {
    Auto,
    Rank,
    Score,
    Lex,
}

#[derive(Debug, Clone, PartialEq)]
enum Span {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// A parsed range request. `offset`/`limit` follow Redis: a negative offset selects
/// nothing, a negative limit means no limit, -1 means LIMIT was not given.
#[derive(Debug, Clone, PartialEq)]
struct RangeQuery {
    span: Span,
    rev: bool,
    offset: i64,
    limit: i64,
    with_scores: bool,
}

/// Parses `min max [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]` with
/// `min` at `args[min_at]`. The older commands fix `kind` and `rev` beforehand, which
/// makes those options syntax errors for them, as in Redis.
fn parse_range_query(args: &[Bytes], min_at: usize, mut kind: RangeKind, mut rev: Option<bool>, store: bool) -> Result<RangeQuery, Reply> {
    let (mut with_scores, mut offset, mut limit) = (false, 0, -1);
    let mut j = min_at + 2;
    while let Some(opt) = args.get(j) {
        match (args.get(j + 1), args.get(j + 2)) {
            _ if !store && is(opt, "withscores") => with_scores = true,
            (Some(o), Some(l)) if is(opt, "limit") => {
                offset = int_arg(o)?;
                limit = int_arg(l)?;
                j += 2;
            }
            _ if rev.is_none() && is(opt, "rev") => rev = Some(true),
            _ if kind == RangeKind::Auto && is(opt, "bylex") => kind = RangeKind::Lex,
            _ if kind == RangeKind::Auto && is(opt, "byscore") => kind = RangeKind::Score,
            _ => return Err(Reply::err(ERR_SYNTAX)),
        }
        j += 1;
    }
    let rev = rev.unwrap_or(false);
    if kind == RangeKind::Auto {
        kind = RangeKind::Rank;
    }
    if limit != -1 && kind == RangeKind::Rank {
        return Err(Reply::err(ERR_LIMIT_RANK));
    }
    if with_scores && kind == RangeKind::Lex {
        return Err(Reply::err(ERR_WITHSCORES_LEX));
    }
    let (mut low, mut high) = (&args[min_at], &args[min_at + 1]);
    // Reversed score and lex ranges are written `max min`.
    if rev && kind != RangeKind::Rank {
        std::mem::swap(&mut low, &mut high);
    }
    let span = match kind {
        RangeKind::Score => Span::Score(ScoreRange::parse(low, high)?),
        RangeKind::Lex => Span::Lex(LexRange::parse(low, high)?),
        RangeKind::Rank | RangeKind::Auto => Span::Rank(int_arg(low)?, int_arg(high)?),
    };
    Ok(RangeQuery { span, rev, offset, limit, with_scores })
}

/// The entries `query` selects from `z`, in reply order.
fn select<'a>(z: &'a ZSet, query: &RangeQuery) -> Vec<(Score, &'a [u8])> {
    let (entries, skip, take): (Entries<'a>, usize, usize) = match &query.span {
        Span::Rank(start, stop) => match rank_span(*start, *stop, z.len()) {
            Some((first, count)) => (z.sorted(), first, count),
            None => return Vec::new(),
        },
        // LIMIT: a negative offset selects nothing, a negative count is no limit.
        _ if query.offset < 0 => return Vec::new(),
        Span::Score(range) => (range.entries(z), to_usize(query.offset), to_usize(query.limit)),
        Span::Lex(range) => (range.entries(z), to_usize(query.offset), to_usize(query.limit)),
    };
    if query.rev {
        entries.rev().skip(skip).take(take).collect()
    } else {
        entries.skip(skip).take(take).collect()
    }
}

/// A non-negative i64 as usize; negatives (and anything too large) saturate to usize::MAX.
fn to_usize(n: i64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Members, or member/score pairs (flat in RESP2, nested in RESP3, as Redis 7).
fn entries_reply(entries: &[(Score, &[u8])], with_scores: bool) -> Reply {
    if with_scores {
        Reply::Pairs(entries.iter().map(|(s, m)| (Reply::bulk(m), Reply::Double(s.0))).collect())
    } else {
        Reply::Array(entries.iter().map(|(_, m)| Reply::bulk(m)).collect())
    }
}

fn range_command(ctx: &mut ReadCtx, args: &[Bytes], kind: RangeKind, rev: Option<bool>) -> CmdResult {
    let query = parse_range_query(args, 2, kind, rev, false)?;
    let Some(z) = read_zset(ctx, &args[1])? else {
        return Ok(empty_array());
    };
    Ok(entries_reply(&select(z, &query), query.with_scores))
}

fn zrange(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    range_command(ctx, args, RangeKind::Auto, None)
}

fn zrevrange(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    range_command(ctx, args, RangeKind::Rank, Some(true))
}

fn zrangebyscore(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    range_command(ctx, args, RangeKind::Score, Some(false))
}

fn zrevrangebyscore(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    range_command(ctx, args, RangeKind::Score, Some(true))
}

fn zrangebylex(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    range_command(ctx, args, RangeKind::Lex, Some(false))
}

fn zrevrangebylex(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    range_command(ctx, args, RangeKind::Lex, Some(true))
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]: the
/// selection replaces `dst` whatever it held; an empty selection deletes `dst`.
fn zrangestore(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let query = parse_range_query(args, 3, RangeKind::Auto, None, true)?;
    let (dst, src) = (&args[1], &args[2]);
    let mut picked = ZSet::new();
    if let Some(value) = ctx.get(src) {
        for (score, member) in select(value.as_zset()?, &query) {
            picked.insert(member, score.0);
        }
    }
    let count = picked.len();
    if count == 0 {
        if ctx.delete(dst) {
            ctx.notify(b'g', "del", dst);
        }
        return Ok(Reply::Int(0));
    }
    ctx.set(dst, Value::ZSet(picked));
    ctx.notify(b'z', "zrangestore", dst);
    Ok(Reply::Int(count as i64))
}

// --- ZADD / ZINCRBY ---

#[derive(Debug, Default, Clone, Copy)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// What adding one pair did, with the member's resulting score.
enum Added {
    New(f64),
    Changed(f64),
    Same(f64),
    /// NX, XX, GT or LT held it back.
    Skipped,
}

/// Redis's zsetAdd for one pair.
fn add_one(z: &mut ZSet, score: f64, member: &[u8], flags: AddFlags) -> Result<Added, Reply> {
    let Some(current) = z.score(member) else {
        if flags.xx {
            return Ok(Added::Skipped);
        }
        z.insert(member, score);
        return Ok(Added::New(score));
    };
    if flags.nx {
        return Ok(Added::Skipped);
    }
    let score = if flags.incr { score + current } else { score };
    if score.is_nan() {
        return Err(Reply::err(ERR_NAN));
    }
    if (flags.lt && score >= current) || (flags.gt && score <= current) {
        return Ok(Added::Skipped);
    }
    if score == current {
        return Ok(Added::Same(score));
    }
    z.insert(member, score);
    Ok(Added::Changed(score))
}

/// Applies score/member pairs to the sorted set at `key` and replies as ZADD (or
/// ZINCRBY with `flags.incr`). A NaN stops the loop with an error, keeping the
/// pairs applied before it, as Redis does.
fn add_pairs(ctx: &mut WriteCtx, key: &[u8], flags: AddFlags, pairs: &[(f64, &[u8])]) -> CmdResult {
    let skipped_reply = if flags.incr { Reply::Nil } else { Reply::Int(0) };
    if flags.xx && ctx.get(key).map(Value::as_zset).transpose()?.is_none() {
        return Ok(skipped_reply);
    }
    let z = ctx.get_checked_or_insert(key, |v| v.as_zset().map(drop), || Value::ZSet(ZSet::default()))?.as_zset_mut()?;
    let (mut added, mut changed, mut last) = (0i64, 0i64, None);
    let mut failure = None;
    for &(score, member) in pairs {
        match add_one(z, score, member, flags) {
            Ok(Added::New(s)) => (added, last) = (added + 1, Some(s)),
            Ok(Added::Changed(s)) => (changed, last) = (changed + 1, Some(s)),
            Ok(Added::Same(s)) => last = Some(s),
            Ok(Added::Skipped) => {}
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if z.is_empty() {
        // Only a failed first pair on a new key leaves it empty: it never existed.
        ctx.db.remove(key);
    }
    if added + changed > 0 {
        ctx.notify(b'z', if flags.incr { "zincr" } else { "zadd" }, key);
        ctx.signal_ready(key);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(match (flags.incr, last) {
        (true, Some(score)) => Reply::Double(score),
        (true, None) => skipped_reply,
        (false, _) => Reply::Int(if flags.ch { added + changed } else { added }),
    })
}

/// ZADD; GEOADD hands its converted arguments here.
pub(super) fn zadd(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let mut flags = AddFlags::default();
    let mut i = 2;
    while let Some(opt) = args.get(i) {
        match () {
            _ if is(opt, "nx") => flags.nx = true,
            _ if is(opt, "xx") => flags.xx = true,
            _ if is(opt, "gt") => flags.gt = true,
            _ if is(opt, "lt") => flags.lt = true,
            _ if is(opt, "ch") => flags.ch = true,
            _ if is(opt, "incr") => flags.incr = true,
            _ => break,
        }
        i += 1;
    }
    let rest = args.get(i..).unwrap_or_default();
    if rest.is_empty() || rest.len() % 2 != 0 {
        return Err(Reply::err(ERR_SYNTAX));
    }
    if flags.nx && flags.xx {
        return Err(Reply::err(ERR_XX_NX));
    }
    if (flags.nx && (flags.gt || flags.lt)) || (flags.gt && flags.lt) {
        return Err(Reply::err(ERR_GT_LT_NX));
    }
    if flags.incr && rest.len() > 2 {
        return Err(Reply::err(ERR_INCR_PAIR));
    }
    // Every score is parsed before anything changes: ZADD applies fully or not at all.
    let pairs = rest.chunks_exact(2).map(|pair| Ok((float_arg(&pair[0])?, &pair[1][..]))).collect::<Result<Vec<_>, Reply>>()?;
    add_pairs(ctx, &args[1], flags, &pairs)
}

fn zincrby(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let increment = float_arg(&args[2])?;
    let flags = AddFlags { incr: true, ..AddFlags::default() };
    add_pairs(ctx, &args[1], flags, &[(increment, &args[3][..])])
}

// --- removals ---

fn zrem(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    let Some(value) = ctx.get_mut(key) else {
        return Ok(Reply::Int(0));
    };
    let z = value.as_zset_mut()?;
    let mut removed = 0;
    for member in &args[2..] {
        if z.remove(member).is_some() {
            removed += 1;
        }
    }
    if removed > 0 {
        ctx.notify(b'z', "zrem", key);
        ctx.remove_if_empty(key);
    }
    Ok(Reply::Int(removed))
}

/// Removes the members `choose` picks from the sorted set at `key`, recording
/// `event`, and replies with how many went.
fn remove_chosen(ctx: &mut WriteCtx, key: &[u8], event: &'static str, choose: impl FnOnce(&ZSet) -> Vec<Blob>) -> CmdResult {
    let Some(value) = ctx.get_mut(key) else {
        return Ok(Reply::Int(0));
    };
    let z = value.as_zset_mut()?;
    let chosen = choose(z);
    for member in &chosen {
        z.remove(member);
    }
    if !chosen.is_empty() {
        ctx.notify(b'z', event, key);
        ctx.remove_if_empty(key);
    }
    Ok(Reply::Int(chosen.len() as i64))
}

fn members(entries: Entries<'_>) -> Vec<Blob> {
    entries.map(|(_, m)| Blob::from(m)).collect()
}

fn zremrangebyscore(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let range = ScoreRange::parse(&args[2], &args[3])?;
    remove_chosen(ctx, &args[1], "zremrangebyscore", |z| members(range.entries(z)))
}

fn zremrangebylex(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let range = LexRange::parse(&args[2], &args[3])?;
    remove_chosen(ctx, &args[1], "zremrangebylex", |z| members(range.entries(z)))
}

fn zremrangebyrank(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let (start, stop) = (int_arg(&args[2])?, int_arg(&args[3])?);
    remove_chosen(ctx, &args[1], "zremrangebyrank", |z| match rank_span(start, stop, z.len()) {
        Some((first, count)) => z.sorted().skip(first).take(count).map(|(_, m)| Blob::from(m)).collect(),
        None => Vec::new(),
    })
}

/// ZPOPMIN/ZPOPMAX key [count]: without a count the reply is one flat
/// `[member, score]`; with one it is pairs (nested in RESP3), as Redis 7.
fn zpop(ctx: &mut WriteCtx, args: &[Bytes], max: bool) -> CmdResult {
    let name = if max { "zpopmax" } else { "zpopmin" };
    if args.len() > 3 {
        return Err(wrong_args(name));
    }
    let count = args.get(2).map(|c| non_negative(c, ERR_NOT_POSITIVE)).transpose()?;
    let key = &args[1];
    let Some(value) = ctx.get_mut(key) else {
        return Ok(empty_array());
    };
    let z = value.as_zset_mut()?;
    if count == Some(0) {
        return Ok(empty_array());
    }
    let mut popped = Vec::new();
    for _ in 0..count.unwrap_or(1).min(z.len()) {
        let end = if max { z.last() } else { z.first() };
        let Some((score, member)) = end.map(|(s, m)| (s, Blob::from(m))) else {
            break;
        };
        z.remove(&member);
        popped.push((Reply::Bulk(Bytes::from(member.into_vec())), Reply::Double(score.0)));
    }
    ctx.notify(b'z', name, key);
    ctx.remove_if_empty(key);
    Ok(match count {
        Some(_) => Reply::Pairs(popped),
        None => Reply::Array(popped.into_iter().flat_map(|(m, s)| [m, s]).collect()),
    })
}

fn zpopmin(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    zpop(ctx, args, false)
}

fn zpopmax(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    zpop(ctx, args, true)
}

// --- reads ---

/// ZRANDMEMBER key [count [WITHSCORES]]: the picks follow SRANDMEMBER's rules (a
/// negative count may repeat); which members come up is this server's own draw.
fn zrandmember(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    if args.len() == 2 {
        let Some(z) = read_zset(ctx, key)? else { return Ok(Reply::Nil) };
        let pick = super::sets::random_index(ctx.rng, z.len()).and_then(|i| z.get_index(i));
        return Ok(pick.map_or(Reply::Nil, |(m, _)| Reply::bulk(m)));
    }
    let count = super::sets::random_count_arg(&args[2])?;
    let with_scores = match args.get(3) {
        None => false,
        Some(opt) if args.len() == 4 && is(opt, "withscores") => true,
        Some(_) => return Err(Reply::err(ERR_SYNTAX)),
    };
    if with_scores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Err(Reply::err("ERR value is out of range"));
    }
    let Some(z) = read_zset(ctx, key)? else { return Ok(empty_array()) };
    // Asking for the whole set (or more) answers it in score order, as Redis does
    // for a listpack.
    let picks: Vec<(&[u8], f64)> = if count >= 0 && usize::try_from(count).is_ok_and(|c| c >= z.len()) {
        z.sorted().map(|(s, m)| (m, s.0)).collect()
    } else {
        let indexed = z.indexed();
        super::sets::pick_indices(ctx.rng, z.len(), count)?.into_iter().filter_map(|i| indexed.get(i)).collect()
    };
    Ok(if with_scores {
        Reply::Pairs(picks.into_iter().map(|(m, s)| (Reply::bulk(m), Reply::Double(s))).collect())
    } else {
        Reply::Array(picks.into_iter().map(|(m, _)| Reply::bulk(m)).collect())
    })
}

fn zscore(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let score = read_zset(ctx, &args[1])?.and_then(|z| z.score(&args[2]));
    Ok(score.map_or(Reply::Nil, Reply::Double))
}

fn zmscore(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let z = read_zset(ctx, &args[1])?;
    let scores = args[2..].iter().map(|m| z.and_then(|z| z.score(m)).map_or(Reply::Nil, Reply::Double));
    Ok(Reply::Array(scores.collect()))
}

fn zcard(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(read_zset(ctx, &args[1])?.map_or(0, |z| z.len() as i64)))
}

fn zcount(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let range = ScoreRange::parse(&args[2], &args[3])?;
    Ok(Reply::Int(read_zset(ctx, &args[1])?.map_or(0, |z| range.entries(z).count() as i64)))
}

fn zlexcount(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let range = LexRange::parse(&args[2], &args[3])?;
    Ok(Reply::Int(read_zset(ctx, &args[1])?.map_or(0, |z| range.entries(z).count() as i64)))
}

/// ZRANK/ZREVRANK key member [WITHSCORE].
fn rank_command(ctx: &mut ReadCtx, args: &[Bytes], rev: bool) -> CmdResult {
    if args.len() > 4 {
        return Err(wrong_args(if rev { "zrevrank" } else { "zrank" }));
    }
    let with_score = match args.get(3) {
        Some(opt) if is(opt, "withscore") => true,
        Some(_) => return Err(Reply::err(ERR_SYNTAX)),
        None => false,
    };
    let missing = if with_score { Reply::NilArray } else { Reply::Nil };
    let Some(z) = read_zset(ctx, &args[1])? else {
        return Ok(missing);
    };
    let (Some(rank), Some(score)) = (z.rank(&args[2]), z.score(&args[2])) else {
        return Ok(missing);
    };
    let rank = (if rev { z.len() - 1 - rank } else { rank }) as i64;
    Ok(if with_score { Reply::Array(vec![Reply::Int(rank), Reply::Double(score)]) } else { Reply::Int(rank) })
}

fn zrank(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    rank_command(ctx, args, false)
}

fn zrevrank(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    rank_command(ctx, args, true)
}

/// ZSCAN key cursor [MATCH pattern] [COUNT n]: flat member, score (as a bulk
/// string in RESP3 too, as Redis) pairs.
fn zscan(ctx: &mut ReadCtx, args: &[Bytes]) -> CmdResult {
    let cursor = scan::parse_cursor(&args[2])?;
    let Some(z) = read_zset(ctx, &args[1])? else {
        return Ok(scan::reply(0, Vec::new()));
    };
    let opts = scan::parse_options(&args[3..], false, false)?;
    let (positions, next) = scan::step(z.len(), cursor, opts.count);
    let mut items = Vec::new();
    let indexed = z.indexed();
    for i in positions.rev() {
        let Some((member, score)) = indexed.get(i) else {
            continue;
        };
        if opts.pattern.as_ref().is_some_and(|p| !glob_match(p, member, false)) {
            continue;
        }
        items.push(Reply::bulk(member));
        items.push(Reply::bulk_double(score));
    }
    Ok(scan::reply(next, items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_support::{bulk, err, run, run_applied};
    use crate::store::Store;

    const T: u64 = 1_000;

    fn exec(store: &mut Store, cmd: &[&str]) -> Reply {
        run(store, T, cmd)
    }

    /// A store holding `key` with the given (score, member) pairs.
    fn with_zset(key: &str, pairs: &[(&str, &str)]) -> Store {
        let mut store = Store::new();
        let mut cmd = vec!["zadd", key];
        for (score, member) in pairs {
            cmd.push(score);
            cmd.push(member);
        }
        assert_eq!(exec(&mut store, &cmd), Reply::Int(pairs.len() as i64));
        store
    }

    fn abc() -> Store {
        with_zset("z", &[("1", "a"), ("2", "b"), ("3", "c")])
    }

    fn names(items: &[&str]) -> Reply {
        Reply::Array(items.iter().map(|m| bulk(m)).collect())
    }

    fn scored(items: &[(&str, f64)]) -> Reply {
        Reply::Pairs(items.iter().map(|(m, s)| (bulk(m), Reply::Double(*s))).collect())
    }

    fn events(store: &mut Store, cmd: &[&str]) -> Vec<(u8, &'static str)> {
        run_applied(store, T, cmd).events.iter().map(|e| (e.class, e.event)).collect()
    }

    fn exists(store: &Store, key: &str) -> bool {
        store.db.get(key.as_bytes(), T).is_some()
    }

    fn string_key() -> Store {
        let mut store = Store::new();
        exec(&mut store, &["set", "s", "v"]);
        store
    }

    fn wrongtype() -> Reply {
        err(crate::store::value::WRONGTYPE)
    }

    // --- ZADD ---

    #[test]
    fn zadd_counts_new_members_only_unless_ch() {
        let mut store = abc();
        assert_eq!(exec(&mut store, &["zadd", "z", "10", "a", "4", "d"]), Reply::Int(1));
        assert_eq!(exec(&mut store, &["zadd", "z", "CH", "11", "a", "4", "d", "5", "e"]), Reply::Int(2));
        assert_eq!(exec(&mut store, &["zscore", "z", "a"]), Reply::Double(11.0));
    }

    #[test]
    fn zadd_nx_adds_only_and_xx_updates_only() {
        let mut store = abc();
        assert_eq!(exec(&mut store, &["zadd", "z", "nx", "9", "a", "4", "d"]), Reply::Int(1));
        assert_eq!(exec(&mut store, &["zscore", "z", "a"]), Reply::Double(1.0));
        assert_eq!(exec(&mut store, &["zadd", "z", "xx", "ch", "9", "a", "5", "e"]), Reply::Int(1));
        assert_eq!(exec(&mut store, &["zscore", "z", "a"]), Reply::Double(9.0));
        assert_eq!(exec(&mut store, &["zscore", "z", "e"]), Reply::Nil);
    }

    #[test]
    fn zadd_xx_on_missing_key_creates_nothing() {
        let mut store = Store::new();
        assert_eq!(exec(&mut store, &["zadd", "z", "xx", "1", "a"]), Reply::Int(0));
        assert!(!exists(&store, "z"));
        assert_eq!(exec(&mut store, &["zadd", "z", "xx", "incr", "1", "a"]), Reply::Nil);
        assert!(!exists(&store, "z"));
    }

    #[test]
    fn zadd_gt_and_lt_only_move_scores_one_way_but_still_add() {
        let mut store = abc();
        assert_eq!(exec(&mut store, &["zadd", "z", "gt", "ch", "0", "a", "5", "b", "7", "n"]), Reply::Int(2));
        assert_eq!(exec(&mut store, &["zscore", "z", "a"]), Reply::Double(1.0));
        assert_eq!(exec(&mut store, &["zscore", "z", "b"]), Reply::Double(5.0));
        assert_eq!(exec(&mut store, &["zadd", "z", "lt", "ch", "0", "a", "9", "c"]), Reply::Int(1));
        assert_eq!(exec(&mut store, &["zscore", "z", "a"]), Reply::Double(0.0));
        assert_eq!(exec(&mut store, &["zscore", "z", "c"]), Reply::Double(3.0));
        assert_eq!(exec(&mut store, &["zadd", "z", "xx", "gt", "ch", "8", "c", "1", "new"]), Reply::Int(1));
        assert_eq!(exec(&mut store, &["zscore", "z", "new"]), Reply::Nil);
    }

    #[test]
    fn zadd_refuses_incompatible_options_with_redis_errors() {
        let mut store = Store::new();
        assert_eq!(exec(&mut store, &["zadd", "z", "nx", "xx", "1", "a"]), err(ERR_XX_NX));
        assert_eq!(exec(&mut store, &["zadd", "z", "gt", "lt", "1", "a"]), err(ERR_GT_LT_NX));
        assert_eq!(exec(&mut store, &["zadd", "z", "nx", "gt", "1", "a"]), err(ERR_GT_LT_NX));
        assert_eq!(exec(&mut store, &["zadd", "z", "nx", "lt", "1", "a"]), err(ERR_GT_LT_NX));
        assert_eq!(exec(&mut store, &["zadd", "z", "incr", "1", "a", "2", "b"]), err(ERR_INCR_PAIR));
        assert_eq!(exec(&mut store, &["zadd", "z", "1", "a", "2"]), err(ERR_SYNTAX));
        assert_eq!(exec(&mut store, &["zadd", "z", "nx", "ch"]), err(ERR_SYNTAX));
        assert_eq!(exec(&mut store, &["zadd", "z"]), err("ERR wrong number of arguments for 'zadd' command"));
        assert!(!exists(&store, "z"));
    }

    #[test]
    fn zadd_bad_score_changes_nothing() {
        let mut store = abc();
        assert_eq!(exec(&mut store, &["zadd", "z", "5", "d", "x", "e"]), err(ERR_NOT_FLOAT));
        assert_eq!(exec(&mut store, &["zadd", "z", "5", "d", "nan", "e"]), err(ERR_NOT_FLOAT));
        assert_eq!(exec(&mut store, &["zadd", "z", "5", "d", " 1", "e"]), err(ERR_NOT_FLOAT));
        assert_eq!(exec(&mut store, &["zcard", "z"]), Reply::Int(3));
    }

    #[test]
    fn zadd_accepts_infinities_and_exponents() {
        let mut store = Store::new();
        assert_eq!(exec(&mut store, &["zadd", "z", "-inf", "lo", "+inf", "hi", "1e3", "k"]), Reply::Int(3));
        assert_eq!(
            exec(&mut store, &["zrange", "z", "0", "-1", "withscores"]),
            scored(&[("lo", f64::NEG_INFINITY), ("k", 1000.0), ("hi", f64::INFINITY)])
        );
    }

    #[test]
    fn zadd_incr_replies_new_score_or_nil_when_held_back() {
        let mut store = abc();
        assert_eq!(exec(&mut store, &["zadd", "z", "incr", "2.5", "a"]), Reply::Double(3.5));
        assert_eq!(exec(&mut store, &["zadd", "z", "incr", "2", "new"]), Reply::Double(2.0));
        assert_eq!(exec(&mut store, &["zadd", "z", "nx", "incr", "2", "a"]), Reply::Nil);
        assert_eq!(exec(&mut store, &["zadd", "z", "gt", "incr", "-1", "a"]), Reply::Nil);
        assert_eq!(exec(&mut store, &["zadd", "z", "incr", "0", "a"]), Reply::Double(3.5));
    }

    #[test]
    fn incr_to_nan_is_an_error_and_keeps_the_score() {
        let mut store = with_zset("z", &[("inf", "a")]);
        assert_eq!(exec(&mut store, &["zadd", "z", "incr", "-inf", "a"]), err(ERR_NAN));
        assert_eq!(exec(&mut store, &["zincrby", "z", "-inf", "a"]), err(ERR_NAN));
        assert_eq!(exec(&mut store, &["zscore", "z", "a"]), Reply::Double(f64::INFINITY));
    }

    #[test]
    fn zadd_on_a_string_is_wrongtype() {
        let mut store = string_key();
        assert_eq!(exec(&mut store, &["zadd", "s", "1", "a"]), wrongtype());
        assert_eq!(exec(&mut store, &["zincrby", "s", "1", "a"]), wrongtype());
    }

    #[test]
    fn zadd_records_one_event_and_signals_ready_only_on_change() {
        let mut store = Store::new();
        let applied = run_applied(&mut store, T, &["zadd", "z", "1", "a", "2", "b"]);
        assert_eq!(applied.events.iter().map(|e| (e.class, e.event)).collect::<Vec<_>>(), vec![(b'z', "zadd")]);
        assert_eq!(applied.ready_keys, vec![Bytes::from_static(b"z")]);
        let applied = run_applied(&mut store, T, &["zadd", "z", "1", "a"]);
        assert!(applied.events.is_empty());
        assert!(applied.ready_keys.is_empty());
        assert_eq!(events(&mut store, &["zadd", "z", "incr", "1", "a"]), vec![(b'z', "zincr")]);
        assert_eq!(events(&mut store, &["zincrby", "z", "1", "a"]), vec![(b'z', "zincr")]);
    }

    #[test]
    fn zadd_stores_negative_zero_as_zero() {
        let mut store = with_zset("z", &[("-0", "a"), ("0", "b")]);
        assert_eq!(exec(&mut store, &["zadd", "z", "ch", "0", "a"]), Reply::Int(0));
        assert_eq!(exec(&mut store, &["zrangebyscore", "z", "0", "0"]), names(&["a", "b"]));
        assert_eq!(exec(&mut store, &["zrangebyscore", "z", "(-0", "+inf"]), names(&[]));
    }

    // --- ZINCRBY ---

    #[test]
    fn zincrby_creates_and_increments() {
        let mut store = Store::new();
        assert_eq!(exec(&mut store, &["zincrby", "z", "1.5", "a"]), Reply::Double(1.5));
        assert_eq!(exec(&mut store, &["zincrby", "z", "-4", "a"]), Reply::Double(-2.5));
        assert_eq!(exec(&mut store, &["zincrby", "z", "x", "a"]), err(ERR_NOT_FLOAT));
        let ready = run_applied(&mut store, T, &["zincrby", "z", "1", "b"]).ready_keys;
        assert_eq!(ready, vec![Bytes::from_static(b"z")]);
    }

    // --- ZREM ---

    #[test]
    fn zrem_counts_removed_and_deletes_the_emptied_key() {
        let mut store = abc();
        assert_eq!(exec(&mut store, &["zrem", "z", "a", "x"]), Reply::Int(1));
        assert_eq!(events(&mut store, &["zrem", "z", "nope"]), vec![]);
        assert_eq!(events(&mut store, &["zrem", "z", "b", "c"]), vec![(b'z', "zrem"), (b'g', "del")]);
        assert!(!exists(&store, "z"));
        assert_eq!(exec(&mut store, &["zrem", "z", "a"]), Reply::Int(0));
    }

    #[test]
    fn zrem_on_a_string_is_wrongtype() {
        let mut store = string_key();
        assert_eq!(exec(&mut store, &["zrem", "s", "a"]), wrongtype());
    }

    // --- ZSCORE / ZMSCORE / ZCARD ---

    #[test]
    fn zscore_and_zmscore_reply_doubles_or_nils() {
        let mut store = with_zset("z", &[("1.5", "a")]);
        assert_eq!(exec(&mut store, &["zscore", "z", "a"]), Reply::Double(1.5));
        assert_eq!(exec(&mut store, &["zscore", "z", "x"]), Reply::Nil);
        assert_eq!(exec(&mut store, &["zscore", "nokey", "a"]), Reply::Nil);
        assert_eq!(exec(&mut store, &["zmscore", "z", "a", "x"]), Reply::Array(vec![Reply::Double(1.5), Reply::Nil]));
        assert_eq!(exec(&mut store, &["zmscore", "nokey", "a", "b"]), Reply::Array(vec![Reply::Nil, Reply::Nil]));
    }

    #[test]
    fn reads_on_a_string_are_wrongtype() {
        let mut store = string_key();
        for cmd in [
            &["zscore", "s", "a"][..],
            &["zmscore", "s", "a"],
            &["zcard", "s"],
            &["zcount", "s", "0", "1"],
            &["zlexcount", "s", "-", "+"],
            &["zrange", "s", "0", "-1"],
            &["zrangebyscore", "s", "0", "1"],
            &["zrangebylex", "s", "-", "+"],
            &["zrank", "s", "a"],
            &["zrevrank", "s", "a"],
            &["zscan", "s", "0"],
            &["zpopmin", "s"],
            &["zremrangebyrank", "s", "0", "1"],
            &["zrangestore", "d", "s", "0", "-1"],
        ] {
            assert_eq!(exec(&mut store, cmd), wrongtype(), "{cmd:?}");
        }
    }

    #[test]
    fn zcard_counts_members() {
        let mut store = abc();
        assert_eq!(exec(&mut store, &["zcard", "z"]), Reply::Int(3));
        assert_eq!(exec(&mut store, &["zcard", "nokey"]), Reply::Int(0));
    }

    // --- score ranges ---

    #[test]
    fn zcount_honours_exclusive_and_infinite_bounds() {
        let mut store = abc();
        assert_eq!(exec(&mut store, &["zcount", "z", "-inf", "+inf"]), Reply::Int(3));
        assert_eq!(exec(&mut store, &["zcount", "z", "1", "3"]), Reply::Int(3));
        assert_eq!(exec(&mut store, &["zcount", "z", "(1", "3"]), Reply::Int(2));
        assert_eq!(exec(&mut store, &["zcount", "z", "(1", "(3"]), Reply::Int(1));
        assert_eq!(exec(&mut store, &["zcount", "z", "1.5", "2.5"]), Reply::Int(1));
        assert_eq!(exec(&mut store, &["zcount", "z", "3", "1"]), Reply::Int(0));
        assert_eq!(exec(&mut store, &["zcount", "z", "(2", "2"]), Reply::Int(0));
        assert_eq!(exec(&mut store, &["zcount", "z", "(2", "(2"]), Reply::Int(0));
        assert_eq!(exec(&mut store, &["zcount", "nokey", "0", "1"]), Reply::Int(0));
    }

    #[test]
    fn bad_score_bounds_are_refused_before_the_key_is_read() {
        let mut store = string_key();
        for (min, max) in [("x", "1"), ("1", "nan"), ("((1", "2"), ("1", "2x")] {
            assert_eq!(exec(&mut store, &["zcount", "s", min, max]), err(ERR_SCORE_RANGE), "{min} {max}");
        }
        assert_eq!(exec(&mut store, &["zrangebyscore", "s", "a", "1"]), err(ERR_SCORE_RANGE));
        assert_eq!(exec(&mut store, &["zremrangebyscore", "s", "a", "1"]), err(ERR_SCORE_RANGE));
    }

    #[test]
    fn infinite_exclusive_bounds_do_not_wrap() {
        let mut store = with_zset("z", &[("-inf", "lo"), ("1", "mid"), ("+inf", "hi")]);
        assert_eq!(exec(&mut store, &["zrangebyscore", "z", "(-inf", "(+inf"]), names(&["mid"]));
        assert_eq!(exec(&mut store, &["zrangebyscore", "z", "(+inf", "+inf"]), names(&[]));
        assert_eq!(exec(&mut store, &["zrangebyscore", "z", "+inf", "+inf"]), names(&["hi"]));
        assert_eq!(exec(&mut store, &["zrangebyscore", "z", "-inf", "(-inf"]), names(&[]));
        assert_eq!(exec(&mut store, &["zrangebyscore", "z", "-inf", "-inf"]), names(&["lo"]));
    }

    #[test]
    fn empty_member_at_a_bound_score_is_found() {
        let mut store = with_zset("z", &[("1", ""), ("2", "x")]);
        assert_eq!(exec(&mut store, &["zadd", "z", "2", ""]), Reply::Int(0));
        assert_eq!(exec(&mut store, &["zrangebyscore", "z", "2", "2"]), names(&["", "x"]));
        assert_eq!(exec(&mut store, &["zrangebyscore", "z", "-inf", "(2"]), names(&[]));
    }

    #[test]
    fn zrangebyscore_with_limit_and_scores() {
        let mut store = with_zset("z", &[("1", "a"), ("2", "b"), ("3", "c"), ("4", "d")]);
        assert_eq!(exec(&mut store, &["zrangebyscore", "z", "2", "+inf"]), names(&["b", "c", "d"]));
        assert_eq!(exec(&mut store, &["zrangebyscore", "z", "-inf", "+inf", "limit", "1", "2"]), names(&["b", "c"]));
        assert_eq!(exec(&mut store, &["zrangebyscore", "z", "-inf", "+inf", "LIMIT", "3", "-1"]), names(&["d"]));
        assert_eq!(exec(&mut store, &["zrangebyscore", "z", "-inf", "+inf", "limit", "-1", "2"]), names(&[]));
        assert_eq!(exec(&mut store, &["zrangebyscore", "z", "-inf", "+inf", "limit", "9", "2"]), names(&[]));
        assert_eq!(exec(&mut store, &["zrangebyscore", "z", "-inf", "+inf", "limit", "0", "0"]), names(&[]));
        assert_eq!(exec(&mut store, &["zrangebyscore", "z", "(1", "3", "withscores"]), scored(&[("b", 2.0), ("c", 3.0)]));
        assert_eq!(exec(&mut store, &["zrangebyscore", "z", "0", "9", "limit", "x", "1"]), err(ERR_NOT_INT));
        assert_eq!(exec(&mut store, &["zrangebyscore", "z", "0", "9", "limit", "1"]), err(ERR_SYNTAX));
        assert_eq!(exec(&mut store, &["zrangebyscore", "z", "0", "9", "rev"]), err(ERR_SYNTAX));
        assert_eq!(exec(&mut store, &["zrangebyscore", "z", "0", "9", "bylex"]), err(ERR_SYNTAX));
    }

    #[test]
    fn zrevrangebyscore_takes_max_then_min() {
        let mut store = with_zset("z", &[("1", "a"), ("2", "b"), ("3", "c"), ("4", "d")]);
        assert_eq!(exec(&mut store, &["zrevrangebyscore", "z", "+inf", "-inf"]), names(&["d", "c", "b", "a"]));
        assert_eq!(exec(&mut store, &["zrevrangebyscore", "z", "3", "(1"]), names(&["c", "b"]));
        assert_eq!(exec(&mut store, &["zrevrangebyscore", "z", "1", "3"]), names(&[]));
        assert_eq!(
            exec(&mut store, &["zrevrangebyscore", "z", "+inf", "-inf", "withscores", "limit", "1", "2"]),
            scored(&[("c", 3.0), ("b", 2.0)])
        );
    }

    #[test]
    fn equal_scores_order_by_member() {
        let mut store = with_zset("z", &[("1", "b"), ("1", "a"), ("1", "c"), ("0", "z")]);
        assert_eq!(exec(&mut store, &["zrange", "z", "0", "-1"]), names(&["z", "a", "b", "c"]));
        assert_eq!(exec(&mut store, &["zrevrangebyscore", "z", "1", "1"]), names(&["c", "b", "a"]));
    }

    // --- rank ranges ---

    #[test]
    fn zrange_by_rank_handles_negative_and_out_of_range_indexes() {
        let mut store = abc();
        assert_eq!(exec(&mut store, &["zrange", "z", "0", "-1"]), names(&["a", "b", "c"]));
        assert_eq!(exec(&mut store, &["zrange", "z", "-2", "-1"]), names(&["b", "c"]));
        assert_eq!(exec(&mut store, &["zrange", "z", "-100", "1"]), names(&["a", "b"]));
        assert_eq!(exec(&mut store, &["zrange", "z", "1", "100"]), names(&["b", "c"]));
        assert_eq!(exec(&mut store, &["zrange", "z", "2", "1"]), names(&[]));
        assert_eq!(exec(&mut store, &["zrange", "z", "3", "5"]), names(&[]));
        assert_eq!(exec(&mut store, &["zrange", "z", "-9223372036854775808", "9223372036854775807"]), names(&["a", "b", "c"]));
        assert_eq!(exec(&mut store, &["zrange", "z", "0", "x"]), err(ERR_NOT_INT));
        assert_eq!(exec(&mut store, &["zrange", "nokey", "0", "-1"]), names(&[]));
    }

    #[test]
    fn zrange_withscores_replies_pairs() {
        let mut store = abc();
        assert_eq!(exec(&mut store, &["zrange", "z", "0", "1", "WITHSCORES"]), scored(&[("a", 1.0), ("b", 2.0)]));
        assert_eq!(exec(&mut store, &["zrange", "z", "0", "0", "rev", "withscores"]), scored(&[("c", 3.0)]));
    }

    #[test]
    fn zrevrange_counts_from_the_highest_score() {
        let mut store = abc();
        assert_eq!(exec(&mut store, &["zrevrange", "z", "0", "1"]), names(&["c", "b"]));
        assert_eq!(exec(&mut store, &["zrevrange", "z", "-1", "-1", "withscores"]), scored(&[("a", 1.0)]));
        assert_eq!(exec(&mut store, &["zrevrange", "z", "0", "-1", "rev"]), err(ERR_SYNTAX));
        assert_eq!(exec(&mut store, &["zrevrange", "z", "0", "-1", "byscore"]), err(ERR_SYNTAX));
        assert_eq!(exec(&mut store, &["zrevrange", "z", "0", "-1", "limit", "0", "1"]), err(ERR_LIMIT_RANK));
    }

    #[test]
    fn zrange_byscore_and_bylex_with_rev_take_max_first() {
        let mut store = with_zset("z", &[("1", "a"), ("2", "b"), ("3", "c")]);
        assert_eq!(exec(&mut store, &["zrange", "z", "(1", "+inf", "byscore"]), names(&["b", "c"]));
        assert_eq!(exec(&mut store, &["zrange", "z", "+inf", "(1", "BYSCORE", "REV"]), names(&["c", "b"]));
        assert_eq!(exec(&mut store, &["zrange", "z", "0", "10", "byscore", "limit", "1", "1", "withscores"]), scored(&[("b", 2.0)]));
        let mut lex = with_zset("l", &[("0", "a"), ("0", "b"), ("0", "c")]);
        assert_eq!(exec(&mut lex, &["zrange", "l", "[c", "(a", "bylex", "rev"]), names(&["c", "b"]));
        assert_eq!(exec(&mut lex, &["zrange", "l", "-", "+", "bylex", "limit", "1", "5"]), names(&["b", "c"]));
    }

    #[test]
    fn zrange_option_conflicts_use_redis_errors() {
        let mut store = abc();
        assert_eq!(exec(&mut store, &["zrange", "z", "0", "-1", "limit", "0", "1"]), err(ERR_LIMIT_RANK));
        assert_eq!(exec(&mut store, &["zrange", "z", "-", "+", "bylex", "withscores"]), err(ERR_WITHSCORES_LEX));
        assert_eq!(exec(&mut store, &["zrangebylex", "z", "-", "+", "withscores"]), err(ERR_WITHSCORES_LEX));
        assert_eq!(exec(&mut store, &["zrange", "z", "0", "1", "byscore", "bylex"]), err(ERR_SYNTAX));
        assert_eq!(exec(&mut store, &["zrange", "z", "0", "1", "rev", "rev"]), err(ERR_SYNTAX));
        assert_eq!(exec(&mut store, &["zrange", "z", "0", "1", "bogus"]), err(ERR_SYNTAX));
        assert_eq!(exec(&mut store, &["zrange", "z", "x", "1", "byscore"]), err(ERR_SCORE_RANGE));
        assert_eq!(exec(&mut store, &["zrange", "z", "x", "1", "bylex"]), err(ERR_LEX_RANGE));
        // Redis only notices LIMIT when its count is not the default -1.
        assert_eq!(exec(&mut store, &["zrange", "z", "0", "0", "limit", "0", "-1"]), names(&["a"]));
    }

    // --- lex ranges ---

    fn letters() -> Store {
        with_zset("l", &[("0", "a"), ("0", "b"), ("0", "c"), ("0", "d"), ("0", "e")])
    }

    #[test]
    fn zrangebylex_honours_inclusive_exclusive_and_infinite_bounds() {
        let mut store = letters();
        assert_eq!(exec(&mut store, &["zrangebylex", "l", "-", "+"]), names(&["a", "b", "c", "d", "e"]));
        assert_eq!(exec(&mut store, &["zrangebylex", "l", "[b", "[d"]), names(&["b", "c", "d"]));
        assert_eq!(exec(&mut store, &["zrangebylex", "l", "(b", "(d"]), names(&["c"]));
        assert_eq!(exec(&mut store, &["zrangebylex", "l", "[bb", "+"]), names(&["c", "d", "e"]));
        assert_eq!(exec(&mut store, &["zrangebylex", "l", "-", "(c", "limit", "1", "5"]), names(&["b"]));
        assert_eq!(exec(&mut store, &["zrangebylex", "l", "+", "-"]), names(&[]));
        assert_eq!(exec(&mut store, &["zrangebylex", "l", "[d", "[b"]), names(&[]));
        assert_eq!(exec(&mut store, &["zrangebylex", "l", "(b", "[b"]), names(&[]));
        assert_eq!(exec(&mut store, &["zrangebylex", "l", "[b", "[b"]), names(&["b"]));
        assert_eq!(exec(&mut store, &["zrangebylex", "l", "-", "-"]), names(&[]));
        assert_eq!(exec(&mut store, &["zrangebylex", "l", "[", "+"]), names(&["a", "b", "c", "d", "e"]));
    }

    #[test]
    fn zrevrangebylex_takes_max_then_min() {
        let mut store = letters();
        assert_eq!(exec(&mut store, &["zrevrangebylex", "l", "+", "-"]), names(&["e", "d", "c", "b", "a"]));
        assert_eq!(exec(&mut store, &["zrevrangebylex", "l", "[d", "(b", "limit", "0", "1"]), names(&["d"]));
        assert_eq!(exec(&mut store, &["zrevrangebylex", "l", "-", "+"]), names(&[]));
    }

    #[test]
    fn bad_lex_bounds_are_refused() {
        let mut store = letters();
        for (min, max) in [("a", "+"), ("-", "c"), ("", "+"), ("--", "+"), ("-", "+x")] {
            assert_eq!(exec(&mut store, &["zrangebylex", "l", min, max]), err(ERR_LEX_RANGE), "{min} {max}");
        }
        assert_eq!(exec(&mut store, &["zlexcount", "l", "x", "+"]), err(ERR_LEX_RANGE));
        assert_eq!(exec(&mut store, &["zremrangebylex", "l", "x", "+"]), err(ERR_LEX_RANGE));
    }

    #[test]
    fn lex_ranges_over_mixed_scores_return_matching_members_in_score_order() {
        let mut store = with_zset("m", &[("2", "a"), ("1", "b"), ("3", "c")]);
        assert_eq!(exec(&mut store, &["zrangebylex", "m", "[a", "[b"]), names(&["b", "a"]));
        assert_eq!(exec(&mut store, &["zlexcount", "m", "-", "+"]), Reply::Int(3));
    }

    #[test]
    fn zlexcount_counts_members_in_range() {
        let mut store = letters();
        assert_eq!(exec(&mut store, &["zlexcount", "l", "-", "+"]), Reply::Int(5));
        assert_eq!(exec(&mut store, &["zlexcount", "l", "(a", "[c"]), Reply::Int(2));
        assert_eq!(exec(&mut store, &["zlexcount", "nokey", "-", "+"]), Reply::Int(0));
    }

    // --- ZRANK / ZREVRANK ---

    #[test]
    fn zrank_and_zrevrank_with_and_without_score() {
        let mut store = abc();
        assert_eq!(exec(&mut store, &["zrank", "z", "a"]), Reply::Int(0));
        assert_eq!(exec(&mut store, &["zrevrank", "z", "a"]), Reply::Int(2));
        assert_eq!(exec(&mut store, &["zrank", "z", "c", "withscore"]), Reply::Array(vec![Reply::Int(2), Reply::Double(3.0)]));
        assert_eq!(exec(&mut store, &["zrevrank", "z", "c", "WITHSCORE"]), Reply::Array(vec![Reply::Int(0), Reply::Double(3.0)]));
        assert_eq!(exec(&mut store, &["zrank", "z", "x"]), Reply::Nil);
        assert_eq!(exec(&mut store, &["zrank", "z", "x", "withscore"]), Reply::NilArray);
        assert_eq!(exec(&mut store, &["zrank", "nokey", "x", "withscore"]), Reply::NilArray);
        assert_eq!(exec(&mut store, &["zrank", "z", "a", "bogus"]), err(ERR_SYNTAX));
        assert_eq!(exec(&mut store, &["zrank", "z", "a", "withscore", "x"]), err("ERR wrong number of arguments for 'zrank' command"));
    }

    // --- ZREMRANGEBY* ---

    #[test]
    fn zremrangebyscore_removes_the_range_and_records_events() {
        let mut store = with_zset("z", &[("1", "a"), ("2", "b"), ("3", "c"), ("4", "d")]);
        assert_eq!(exec(&mut store, &["zremrangebyscore", "z", "(1", "3"]), Reply::Int(2));
        assert_eq!(exec(&mut store, &["zrange", "z", "0", "-1"]), names(&["a", "d"]));
        assert_eq!(events(&mut store, &["zremrangebyscore", "z", "10", "20"]), vec![]);
        assert_eq!(events(&mut store, &["zremrangebyscore", "z", "-inf", "+inf"]), vec![(b'z', "zremrangebyscore"), (b'g', "del")]);
        assert!(!exists(&store, "z"));
        assert_eq!(exec(&mut store, &["zremrangebyscore", "z", "-inf", "+inf"]), Reply::Int(0));
    }

    #[test]
    fn zremrangebyrank_removes_by_index() {
        let mut store = with_zset("z", &[("1", "a"), ("2", "b"), ("3", "c"), ("4", "d")]);
        assert_eq!(exec(&mut store, &["zremrangebyrank", "z", "1", "2"]), Reply::Int(2));
        assert_eq!(exec(&mut store, &["zrange", "z", "0", "-1"]), names(&["a", "d"]));
        assert_eq!(exec(&mut store, &["zremrangebyrank", "z", "5", "9"]), Reply::Int(0));
        assert_eq!(exec(&mut store, &["zremrangebyrank", "z", "x", "9"]), err(ERR_NOT_INT));
        assert_eq!(events(&mut store, &["zremrangebyrank", "z", "-1", "-1"]), vec![(b'z', "zremrangebyrank")]);
        assert_eq!(events(&mut store, &["zremrangebyrank", "z", "0", "-1"]), vec![(b'z', "zremrangebyrank"), (b'g', "del")]);
        assert!(!exists(&store, "z"));
    }

    #[test]
    fn zremrangebylex_removes_by_name() {
        let mut store = letters();
        assert_eq!(exec(&mut store, &["zremrangebylex", "l", "[b", "(d"]), Reply::Int(2));
        assert_eq!(exec(&mut store, &["zrange", "l", "0", "-1"]), names(&["a", "d", "e"]));
        assert_eq!(events(&mut store, &["zremrangebylex", "l", "-", "+"]), vec![(b'z', "zremrangebylex"), (b'g', "del")]);
    }

    // --- ZPOPMIN / ZPOPMAX ---

    #[test]
    fn zpop_without_count_replies_one_flat_pair() {
        let mut store = abc();
        assert_eq!(exec(&mut store, &["zpopmin", "z"]), Reply::Array(vec![bulk("a"), Reply::Double(1.0)]));
        assert_eq!(exec(&mut store, &["zpopmax", "z"]), Reply::Array(vec![bulk("c"), Reply::Double(3.0)]));
        assert_eq!(exec(&mut store, &["zpopmin", "nokey"]), names(&[]));
    }

    #[test]
    fn zpop_with_count_replies_pairs_and_deletes_the_emptied_key() {
        let mut store = abc();
        assert_eq!(exec(&mut store, &["zpopmax", "z", "2"]), scored(&[("c", 3.0), ("b", 2.0)]));
        assert_eq!(events(&mut store, &["zpopmin", "z", "10"]), vec![(b'z', "zpopmin"), (b'g', "del")]);
        assert!(!exists(&store, "z"));
        assert_eq!(exec(&mut store, &["zpopmin", "z", "3"]), names(&[]));
    }

    #[test]
    fn zpop_count_zero_negative_or_extra_args() {
        let mut store = abc();
        assert_eq!(exec(&mut store, &["zpopmin", "z", "0"]), names(&[]));
        assert_eq!(exec(&mut store, &["zpopmin", "z", "-1"]), err(ERR_NOT_POSITIVE));
        // Redis reads the count with getPositiveLongFromObjectOrReply: not a number
        // is the same error.
        assert_eq!(exec(&mut store, &["zpopmax", "z", "x"]), err(ERR_NOT_POSITIVE));
        assert_eq!(exec(&mut store, &["zpopmax", "z", "1", "2"]), err("ERR wrong number of arguments for 'zpopmax' command"));
        assert_eq!(exec(&mut store, &["zcard", "z"]), Reply::Int(3));
        assert_eq!(events(&mut store, &["zpopmax", "z", "1"]), vec![(b'z', "zpopmax")]);
    }

    // --- ZRANGESTORE ---

    #[test]
    fn zrangestore_replaces_the_destination() {
        let mut store = abc();
        exec(&mut store, &["set", "d", "old"]);
        assert_eq!(events(&mut store, &["zrangestore", "d", "z", "(1", "+inf", "byscore"]), vec![(b'z', "zrangestore")]);
        assert_eq!(exec(&mut store, &["zrange", "d", "0", "-1", "withscores"]), scored(&[("b", 2.0), ("c", 3.0)]));
        assert_eq!(exec(&mut store, &["zrangestore", "d", "z", "0", "0", "rev"]), Reply::Int(1));
        assert_eq!(exec(&mut store, &["zrange", "d", "0", "-1"]), names(&["c"]));
        assert_eq!(exec(&mut store, &["zrangestore", "d", "z", "0", "-1", "withscores"]), err(ERR_SYNTAX));
    }

    #[test]
    fn zrangestore_of_nothing_deletes_the_destination() {
        let mut store = abc();
        exec(&mut store, &["zadd", "d", "1", "x"]);
        assert_eq!(events(&mut store, &["zrangestore", "d", "nokey", "0", "-1"]), vec![(b'g', "del")]);
        assert!(!exists(&store, "d"));
        assert_eq!(exec(&mut store, &["zrangestore", "d", "z", "5", "9"]), Reply::Int(0));
        assert!(!exists(&store, "d"));
    }

    // --- ZSCAN ---

    #[test]
    fn zscan_returns_members_with_scores_as_bulk_strings() {
        let mut store = with_zset("z", &[("1.5", "a"), ("2", "b")]);
        let Reply::Array(parts) = exec(&mut store, &["zscan", "z", "0"]) else { panic!("not an array") };
        assert_eq!(parts[0], bulk("0"));
        let Reply::Array(items) = &parts[1] else { panic!("no items") };
        let mut pairs: Vec<(Reply, Reply)> = items.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
        pairs.sort_by_key(|(m, _)| format!("{m:?}"));
        assert_eq!(pairs, vec![(bulk("a"), bulk("1.5")), (bulk("b"), bulk("2"))]);
    }

    #[test]
    fn zscan_walks_every_member_with_match_and_count() {
        let mut store = Store::new();
        for i in 0..25 {
            exec(&mut store, &["zadd", "z", &i.to_string(), &format!("m{i}")]);
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut cursor = "0".to_string();
        loop {
            let Reply::Array(parts) = exec(&mut store, &["zscan", "z", &cursor, "match", "m1*", "count", "4"]) else { panic!() };
            let Reply::Bulk(next) = &parts[0] else { panic!() };
            let Reply::Array(items) = &parts[1] else { panic!() };
            for pair in items.chunks(2) {
                let Reply::Bulk(m) = &pair[0] else { panic!() };
                seen.insert(String::from_utf8(m.to_vec()).unwrap());
            }
            cursor = String::from_utf8(next.to_vec()).unwrap();
            if cursor == "0" {
                break;
            }
        }
        let expected: std::collections::BTreeSet<String> =
            ["m1", "m10", "m11", "m12", "m13", "m14", "m15", "m16", "m17", "m18", "m19"].iter().map(|s| s.to_string()).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn zscan_errors_and_missing_key() {
        let mut store = abc();
        assert_eq!(exec(&mut store, &["zscan", "z", "x"]), err("ERR invalid cursor"));
        assert_eq!(exec(&mut store, &["zscan", "z", "0", "count", "0"]), err(ERR_SYNTAX));
        assert_eq!(exec(&mut store, &["zscan", "z", "0", "bogus"]), err(ERR_SYNTAX));
        assert_eq!(exec(&mut store, &["zscan", "nokey", "0"]), Reply::Array(vec![bulk("0"), Reply::Array(vec![])]));
    }

    // --- wire shape ---

    #[test]
    fn withscores_is_flat_in_resp2_and_nested_in_resp3() {
        let mut store = with_zset("z", &[("1.5", "a")]);
        let reply = exec(&mut store, &["zrange", "z", "0", "-1", "withscores"]);
        let mut out = bytes::BytesMut::new();
        reply.encode(&mut out, false);
        assert_eq!(&out[..], b"*2\r\n$1\r\na\r\n$3\r\n1.5\r\n");
        out.clear();
        reply.encode(&mut out, true);
        assert_eq!(&out[..], b"*1\r\n*2\r\n$1\r\na\r\n,1.5\r\n");
    }

    // --- helpers ---

    #[test]
    fn rank_span_matches_redis_index_arithmetic() {
        assert_eq!(rank_span(0, -1, 3), Some((0, 3)));
        assert_eq!(rank_span(-1, -1, 3), Some((2, 1)));
        assert_eq!(rank_span(1, 0, 3), None);
        assert_eq!(rank_span(0, -1, 0), None);
        assert_eq!(rank_span(i64::MIN, i64::MAX, 3), Some((0, 3)));
        assert_eq!(rank_span(5, 9, 3), None);
    }

    #[test]
    fn score_bounds_parse_like_strtod() {
        assert_eq!(parse_score_bound(b"(1.5"), Some((1.5, true)));
        assert_eq!(parse_score_bound(b"-inf"), Some((f64::NEG_INFINITY, false)));
        assert_eq!(parse_score_bound(b"(+inf"), Some((f64::INFINITY, true)));
        assert_eq!(parse_score_bound(b" 2"), Some((2.0, false)));
        assert_eq!(parse_score_bound(b""), Some((0.0, false)));
        assert_eq!(parse_score_bound(b"(nan"), None);
        assert_eq!(parse_score_bound(b"1 "), None);
    }

    #[test]
    fn next_up_steps_to_the_next_double() {
        assert_eq!(next_up(1.0), 1.0 + f64::EPSILON);
        assert!(next_up(0.0) > 0.0);
        assert_eq!(next_up(f64::MAX), f64::INFINITY);
        assert_eq!(next_up(f64::NEG_INFINITY), f64::MIN);
        assert!(next_up(-1.0) > -1.0);
    }

    // --- ZRANDMEMBER ---

    #[test]
    fn zrandmember_picks_members_with_redis_count_rules() {
        let mut store = abc();
        let Reply::Bulk(m) = exec(&mut store, &["zrandmember", "z"]) else { panic!("not a member") };
        assert!([&b"a"[..], b"b", b"c"].contains(&&m[..]));
        assert_eq!(exec(&mut store, &["zrandmember", "z", "5", "withscores"]), scored(&[("a", 1.0), ("b", 2.0), ("c", 3.0)]));
        let Reply::Array(two) = exec(&mut store, &["zrandmember", "z", "2"]) else { panic!() };
        assert_eq!(two.len(), 2);
        assert_ne!(two[0], two[1], "a positive count never repeats");
        let Reply::Pairs(five) = exec(&mut store, &["zrandmember", "z", "-5", "withscores"]) else { panic!() };
        assert_eq!(five.len(), 5);
        assert_eq!(exec(&mut store, &["zrandmember", "z", "0"]), names(&[]));
        assert_eq!(exec(&mut store, &["zrandmember", "nokey"]), Reply::Nil);
        assert_eq!(exec(&mut store, &["zrandmember", "nokey", "3"]), names(&[]));
        assert_eq!(exec(&mut store, &["zrandmember", "z", "1", "bogus"]), err(ERR_SYNTAX));
        assert_eq!(exec(&mut store, &["zrandmember", "z", "x"]), err(ERR_NOT_INT));
        assert_eq!(exec(&mut store, &["zrandmember", "z", "-9223372036854775807", "withscores"]), err("ERR value is out of range"));
    }
}
