//! Plain clients see one database (DESIGN.md §7): a multi-key command whose keys
//! live in several stripes (MGET, MSET, DEL, UNLINK, EXISTS, TOUCH) is split into
//! one command per stripe, each routed as any command is (served here, or over the
//! client's upstream to that stripe's active, so it runs after what the client sent
//! there before), and the replies are joined into the one Redis would give.
//!
//! Keyless commands that are about the whole database (DBSIZE, KEYS, SCAN,
//! RANDOMKEY, FLUSHALL, FLUSHDB) go to every stripe the same way and are joined; a
//! SCAN cursor carries the stripe it is in (`inner × stripes + stripe`), so one
//! scan visits every stripe in turn.
//!
//! Across stripes the parts are not atomic: a failure in one stripe leaves the
//! others' parts done, and the client gets that stripe's error. Within one stripe a
//! part is one command, as atomic as ever. Slot-routing clients never get here: they
//! split by slot themselves, and their requests spanning stripes are `-CROSSSLOT`.

use bytes::{Bytes, BytesMut};

use super::connection::Connection;
use super::pipeline::Place;
use super::request::Request;
use crate::cluster::route::{Access, Keys};
use crate::cluster::slot::key_slot;
use crate::protocol::frame::{parse_frame, Frame};
use crate::protocol::reply::Reply;

/// How a command's parts are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// MGET: the values, back in the order of the keys.
    Values,
    /// DEL, UNLINK, EXISTS, TOUCH: the sum of the counts.
    Sum,
    /// MSET: OK when every part says OK.
    AllOk,
}

/// A keyless command about the whole database, and how its stripes' answers join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whole {
    /// DBSIZE: the sum.
    Sum,
    /// KEYS: every stripe's keys.
    Concat,
    /// FLUSHALL, FLUSHDB: OK when every stripe says OK.
    AllOk,
    /// RANDOMKEY: a key of a stripe that has one.
    Any,
    /// SCAN: one stripe at a time, the cursor saying which.
    Scan,
    /// ACL DELUSER: the most any stripe counted (each holds the array's users).
    Max,
}

/// How keyless `name` covers the whole array, if it is about the whole database.
pub fn whole_array(name: &str) -> Option<Whole> {
    match name {
        "dbsize" => Some(Whole::Sum),
        "keys" | "tandem.locks" => Some(Whole::Concat),
        "flushall" | "flushdb" => Some(Whole::AllOk),
        "randomkey" => Some(Whole::Any),
        "scan" => Some(Whole::Scan),
        "acl|setuser" => Some(Whole::AllOk),
        "acl|deluser" => Some(Whole::Max),
        _ => None,
    }
}

/// ACL's writes: the users are the array's, so on an array these go to every stripe
/// whichever port the client came through (Redis Cluster leaves each node its own
/// users, to be set on each; a client of one server here reaches every stripe's keys
/// as its user, so that user must exist everywhere).
pub fn users_write(name: &str) -> bool {
    matches!(name, "acl|setuser" | "acl|deluser")
}

/// Whether `name`, keyless, goes to every stripe for this client: a plain client's
/// commands about the whole database, and everyone's ACL writes.
pub fn whole_array_for(name: &str, slot_routing: bool) -> Option<Whole> {
    whole_array(name).filter(|_| !slot_routing || users_write(name))
}

/// Joins the stripes' answers to a keyless command (not SCAN).
pub fn join_whole(how: Whole, replies: Vec<Reply>) -> Reply {
    // A key from any stripe will do, whatever the others answered.
    if how == Whole::Any {
        if let Some(key) = replies.iter().find(|r| matches!(r, Reply::Bulk(_))) {
            return key.clone();
        }
    }
    if let Some(error) = replies.iter().find(|r| matches!(r, Reply::Error(_))) {
        return error.clone();
    }
    match how {
        Whole::Sum => Reply::Int(replies.iter().map(|r| if let Reply::Int(n) = r { *n } else { 0 }).sum()),
        Whole::Concat => Reply::Array(
            replies.into_iter().flat_map(|r| if let Reply::Array(items) = r.expanded() { items } else { Vec::new() }).collect(),
        ),
        Whole::AllOk => Reply::ok(),
        Whole::Max => Reply::Int(replies.iter().map(|r| if let Reply::Int(n) = r { *n } else { 0 }).max().unwrap_or(0)),
        Whole::Any | Whole::Scan => replies.into_iter().find(|r| !matches!(r, Reply::Nil)).unwrap_or(Reply::Nil),
    }
}

/// An array-wide SCAN cursor: (stripe, that stripe's own cursor).
pub fn scan_cursor(cursor: u64, stripes: usize) -> (usize, u64) {
    let n = stripes.max(1) as u64;
    ((cursor % n) as usize, cursor / n)
}

/// The array-wide cursor after `stripe` answered `next` (its own next cursor):
/// the same stripe further on, the next stripe from its start, or 0 when the last
/// stripe is done. `None` when the cursor would not fit in 64 bits.
pub fn next_scan_cursor(stripe: usize, next: u64, stripes: usize) -> Option<u64> {
    let n = stripes.max(1) as u64;
    match next {
        0 if stripe as u64 + 1 >= n => Some(0),
        0 => Some(stripe as u64 + 1),
        next => next.checked_mul(n)?.checked_add(stripe as u64),
    }
}

/// Why `request` may not be queued in a transaction on an array (a transaction runs
/// in one stripe, as in Redis Cluster): keys of several stripes (`-CROSSSLOT`, as
/// Redis Cluster answers at queue time), or, for a plain client, a command about the
/// whole database, which inside a transaction could only cover one stripe.
pub fn refused_in_multi(request: &Request, session: &super::session::Session, view: &crate::cluster::view::ClusterView) -> Option<Reply> {
    if !view.is_array() || session.forwarded_in {
        return None;
    }
    if request.keys(view) == Keys::CrossSlot {
        return Some(Reply::err(super::pipeline::ERR_CROSSSLOT));
    }
    if request.slot.is_none() && whole_array_for(request.spec.name, session.slot_routing).is_some() {
        return Some(Reply::error(format!(
            "ERR {} inside MULTI would cover one stripe of the array only (a transaction runs in one stripe): run it outside the transaction",
            request.spec.name.to_ascii_uppercase()
        )));
    }
    None
}

/// How `name` is split, if it may be: (join, arguments per key).
pub fn splittable(name: &str) -> Option<(Join, usize)> {
    match name {
        "mget" => Some((Join::Values, 1)),
        "del" | "unlink" | "exists" | "touch" => Some((Join::Sum, 1)),
        "mset" => Some((Join::AllOk, 2)),
        _ => None,
    }
}

/// The parts of a command with `per_key` arguments per key after its name: per
/// stripe (in order of first appearance), its arguments and the positions of its keys
/// in the original command. `owner` gives a slot's stripe.
pub fn parts(args: &[Bytes], per_key: usize, owner: impl Fn(u16) -> usize) -> Vec<(usize, Vec<Bytes>, Vec<usize>)> {
    let mut out: Vec<(usize, Vec<Bytes>, Vec<usize>)> = Vec::new();
    for (position, group) in args.get(1..).unwrap_or_default().chunks(per_key.max(1)).enumerate() {
        let stripe = owner(key_slot(&group[0]));
        let at = match out.iter().position(|(s, _, _)| *s == stripe) {
            Some(at) => at,
            None => {
                out.push((stripe, vec![args[0].clone()], Vec::new()));
                out.len() - 1
            }
        };
        out[at].1.extend(group.iter().cloned());
        out[at].2.push(position);
    }
    out
}

/// Joins the parts' replies (`replies[i]` answers `parts[i]`); `keys` is how many
/// keys the command had.
pub fn join(how: Join, keys: usize, parts: &[(usize, Vec<Bytes>, Vec<usize>)], replies: Vec<Reply>) -> Reply {
    if let Some(error) = replies.iter().find(|r| matches!(r, Reply::Error(_))) {
        return error.clone();
    }
    match how {
        Join::Sum => Reply::Int(replies.iter().map(|r| if let Reply::Int(n) = r { *n } else { 0 }).sum()),
        Join::AllOk => Reply::ok(),
        Join::Values => {
            let mut values = vec![Reply::Nil; keys];
            for ((_, _, positions), reply) in parts.iter().zip(replies) {
                let reply = reply.expanded();
                let Reply::Array(items) = reply else {
                    return Reply::error(format!("ERR a stripe answered MGET with {reply:?}"));
                };
                for (&position, item) in positions.iter().zip(items) {
                    if let Some(slot) = values.get_mut(position) {
                        *slot = item;
                    }
                }
            }
            Reply::Array(values)
        }
    }
}

/// For a write run as parts on `stripes` (`replies[i]` from `stripes[i]`): when some
/// part failed after others were applied, the error says which stripes applied
/// theirs (a stripe's own error may say "nothing was applied" of its part alone).
pub fn partial(view: &crate::cluster::view::ClusterView, stripes: &[usize], replies: &[Reply]) -> Option<Reply> {
    let failed = replies.iter().position(|r| matches!(r, Reply::Error(_)))?;
    let name = |s: usize| view.stripes.get(s).map_or("?", |v| v.name.as_str()).to_string();
    let applied: Vec<String> = stripes.iter().zip(replies).filter(|(_, r)| !matches!(r, Reply::Error(_))).map(|(s, _)| name(*s)).collect();
    if applied.is_empty() {
        return None;
    }
    let Reply::Error(text) = &replies[failed] else { return None };
    Some(Reply::error(format!(
        "ERR this command ran as one part per stripe and is not atomic across them: stripe {} applied its part; stripe {} answered: {text}",
        applied.join(", "),
        name(stripes[failed])
    )))
}

/// A reply read back from its encoding (what a forwarded part relayed).
pub fn reply_of(frame: Frame) -> Reply {
    let text = |b: Bytes| String::from_utf8_lossy(&b).into_owned();
    let all = |items: Vec<Frame>| items.into_iter().map(reply_of).collect();
    let pairs = |items: Vec<(Frame, Frame)>| items.into_iter().map(|(k, v)| (reply_of(k), reply_of(v))).collect();
    match frame {
        Frame::Simple(b) => Reply::Status(text(b).into()),
        Frame::Error(b) | Frame::BulkError(b) => Reply::Error(text(b).into()),
        Frame::Int(n) => Reply::Int(n),
        Frame::Bulk(b) => Reply::Bulk(b),
        Frame::Null | Frame::NullBulk => Reply::Nil,
        Frame::NullArray => Reply::NilArray,
        Frame::Array(items) => Reply::Array(all(items)),
        Frame::Set(items) => Reply::Set(all(items)),
        Frame::Push(items) => Reply::Push(all(items)),
        Frame::Map(items) => Reply::Map(pairs(items)),
        Frame::Double(d) => Reply::Double(d),
        Frame::Bool(b) => Reply::Bool(b),
        Frame::BigNumber(b) => Reply::BigNumber(b),
        Frame::Verbatim { text, .. } => Reply::Verbatim(text),
        Frame::Attribute { frame, .. } => reply_of(*frame),
    }
}

impl Connection {
    /// Runs a command whose keys span stripes as one part per stripe, and answers
    /// with the joined reply.
    pub(super) async fn split_command(&mut self, request: Request, how: Join, per_key: usize) {
        // Checked whole before anything runs: MSET's arity lets an odd count through.
        if !(request.args.len() - 1).is_multiple_of(per_key.max(1)) {
            return self.reply(crate::commands::wrong_args(request.spec.name));
        }
        let view = self.shared.view();
        let parts = parts(&request.args, per_key, |slot| view.owner(slot));
        let stripes: Vec<usize> = parts.iter().map(|(s, _, _)| *s).collect();
        let write = request.spec.is_write();
        if write {
            if let Err(down) = self.every_stripe_up(&stripes).await {
                return self.reply(down);
            }
        }
        let keys = (request.args.len() - 1) / per_key.max(1);
        let mut replies = Vec::with_capacity(parts.len());
        for (_, args, _) in &parts {
            let part = match Request::parse(args.clone()) {
                Ok(part) => part,
                Err((reply, _)) => return self.reply(reply),
            };
            let keys = part.slot.map_or(Keys::None, Keys::Slot);
            replies.push(self.captured(part, keys).await);
        }
        let reply = if write { partial(&view, &stripes, &replies) } else { None };
        self.reply(reply.unwrap_or_else(|| join(how, keys, &parts, replies)));
    }

    /// Waits (as a single command would) for each of `stripes` to have an active, so
    /// that a write split over them starts only when every part can be sent; the
    /// `-CLUSTERDOWN` of the first that has none, nothing having run.
    async fn every_stripe_up(&mut self, stripes: &[usize]) -> Result<(), Reply> {
        for &stripe in stripes {
            if self.shared.wait_for_active(stripe, self.shared.active_wait()).await == crate::cluster::view::Active::Unknown {
                return Err(self.shared.no_active(stripe));
            }
        }
        Ok(())
    }

    /// Runs a keyless command about the whole database on every stripe, and answers
    /// with the joined reply.
    pub(super) async fn whole_array_command(&mut self, request: Request, how: Whole) {
        let view = self.shared.view();
        let stripes = view.stripes.len();
        let first_slot = |s: usize| view.ranges_of(s).first().map_or(0, |r| r.0);
        if how == Whole::Scan {
            let cursor = std::str::from_utf8(&request.args[1]).ok().and_then(|c| c.parse::<u64>().ok());
            let Some(cursor) = cursor else {
                // Not a cursor: the stripe here answers with Redis's error.
                let reply = self.captured(request, Keys::None).await;
                return self.reply(reply);
            };
            let (stripe, inner) = scan_cursor(cursor, stripes);
            let mut args = request.args.clone();
            args[1] = Bytes::from(inner.to_string());
            let reply = match Request::parse(args) {
                Ok(part) => self.captured(part, Keys::Slot(first_slot(stripe))).await,
                Err((reply, _)) => reply,
            };
            let joined = match reply {
                Reply::Array(mut items) if items.len() == 2 => {
                    let next = match &items[0] {
                        Reply::Bulk(b) => std::str::from_utf8(b).ok().and_then(|c| c.parse::<u64>().ok()),
                        _ => None,
                    };
                    match next.and_then(|next| next_scan_cursor(stripe, next, stripes)) {
                        Some(next) => {
                            items[0] = Reply::Bulk(Bytes::from(next.to_string()));
                            Reply::Array(items)
                        }
                        None => Reply::err("ERR the array's SCAN cursor would not fit in 64 bits; start the scan again"),
                    }
                }
                other => other,
            };
            return self.reply(joined);
        }
        let mut order: Vec<usize> = (0..stripes).collect();
        let write = request.spec.is_write();
        if write {
            if let Err(down) = self.every_stripe_up(&order).await {
                return self.reply(down);
            }
        }
        if how == Whole::Any {
            use rand::seq::SliceRandom;
            order.shuffle(&mut rand::thread_rng());
        }
        let mut replies = Vec::with_capacity(stripes);
        for &stripe in &order {
            let part = match Request::parse(request.args.clone()) {
                Ok(part) => part,
                Err((reply, _)) => return self.reply(reply),
            };
            let reply = self.captured(part, Keys::Slot(first_slot(stripe))).await;
            let found = how == Whole::Any && matches!(reply, Reply::Bulk(_));
            replies.push(reply);
            if found {
                break;
            }
        }
        let reply = if write { partial(&view, &order, &replies) } else { None };
        self.reply(reply.unwrap_or_else(|| join_whole(how, replies)));
    }

    /// Whether the client's user may run `request`, an ACL write about to reach every
    /// stripe, on each other stripe as that stripe's users say: asked with ACL DRYRUN
    /// before anything runs (a forwarded part runs as the forwarding server, which
    /// ACL does not check; this stripe's own check was admission's). The refusal, if
    /// any, naming the stripe.
    pub(super) async fn users_write_refused_elsewhere(&mut self, request: &Request) -> Option<Reply> {
        // Logged in with the forward token: ACL does not check this connection here
        // either.
        if self.session.acl.forwarder {
            return None;
        }
        let view = self.shared.view();
        for stripe in (0..view.stripes.len()).filter(|&s| s != view.local) {
            let name = view.stripes.get(stripe).map_or("?", |v| v.name.as_str()).to_string();
            let mut args = vec![Bytes::from_static(b"acl"), Bytes::from_static(b"dryrun"), Bytes::from(self.session.acl.name.clone())];
            // `ACL SETUSER <name>` is all the check reads: the rules (passwords among
            // them) do not travel, nor land in another server's slow log.
            args.extend(request.args.iter().take(3).cloned());
            let part = match Request::parse(args) {
                Ok(part) => part,
                Err((reply, _)) => return Some(reply),
            };
            let first_slot = view.ranges_of(stripe).first().map_or(0, |r| r.0);
            match self.captured(part, Keys::Slot(first_slot)).await {
                Reply::Status(ok) if ok == "OK" => {}
                Reply::Bulk(why) => {
                    return Some(Reply::error(format!(
                        "NOPERM on stripe {name}: {} (the array's users decide on every stripe)",
                        String::from_utf8_lossy(&why)
                    )))
                }
                Reply::Error(e) => return Some(Reply::error(format!("{e} (asked of stripe {name}, which this ACL change would reach)"))),
                other => return Some(Reply::error(format!("ERR stripe {name} answered an ACL check with {other:?}"))),
            }
        }
        None
    }

    /// Runs one command routed as any (here, forwarded, or answered) as if it touched
    /// `keys`, and returns its reply instead of sending it to the client.
    pub(super) async fn captured(&mut self, request: Request, keys: Keys) -> Reply {
        let access = if request.spec.is_write() { Access::Write } else { Access::Read };
        let saved = std::mem::replace(&mut self.frames.out, BytesMut::new());
        // The part's reply is read whatever CLIENT REPLY says; that applies to the one
        // reply the client gets, sent by the caller after this.
        let silenced = (std::mem::take(&mut self.session.reply_off), std::mem::take(&mut self.session.replies_to_skip));
        let mut request = Some(request);
        // A part that could not be sent (the active moved first) is routed again, as
        // the pipeline routes any command again, within the same bound.
        for _ in 0..=super::pipeline::REROUTES_MAX {
            let Some(mut part) = request.take() else { break };
            match self.place_keys(keys, access).await {
                Place::Answer(reply) => self.reply(part.unless_sent(reply)),
                Place::Local => self.execute_run(std::slice::from_mut(&mut part)).await,
                Place::Forward(stripe) => request = self.forward_run(stripe, vec![part]).await.into_iter().next(),
            }
        }
        if request.is_some() {
            self.reply(Reply::err(super::errors::ERR_LEADERSHIP_FLAPPING));
        }
        let out = std::mem::replace(&mut self.frames.out, saved);
        (self.session.reply_off, self.session.replies_to_skip) = silenced;
        let limits = super::upstream::relay_limits(self.shared.settings.bulk_bytes_max.load(std::sync::atomic::Ordering::Relaxed));
        match parse_frame(&out, &limits) {
            Ok(Some((frame, _))) => reply_of(frame),
            _ => Reply::err("ERR a stripe's reply to part of this command could not be read"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(parts: &[&str]) -> Vec<Bytes> {
        parts.iter().map(|p| Bytes::copy_from_slice(p.as_bytes())).collect()
    }

    /// Two stripes split at slot 8192: `foo` (12182) is the second's, `bar` (5061)
    /// and `hello` (866) the first's.
    fn owner(slot: u16) -> usize {
        usize::from(slot >= 8192)
    }

    #[test]
    fn keys_are_grouped_per_stripe_in_order_of_first_appearance() {
        let p = parts(&args(&["MGET", "foo", "bar", "hello", "foo"]), 1, owner);
        assert_eq!(p, vec![(1, args(&["MGET", "foo", "foo"]), vec![0, 3]), (0, args(&["MGET", "bar", "hello"]), vec![1, 2])]);
        let p = parts(&args(&["MSET", "bar", "1", "foo", "2"]), 2, owner);
        assert_eq!(p, vec![(0, args(&["MSET", "bar", "1"]), vec![0]), (1, args(&["MSET", "foo", "2"]), vec![1])]);
    }

    #[test]
    fn replies_are_joined_as_one_server_would_answer() {
        let p = parts(&args(&["MGET", "foo", "bar", "hello", "foo"]), 1, owner);
        let replies = vec![Reply::Array(vec![Reply::bulk(b"F"), Reply::bulk(b"F")]), Reply::Array(vec![Reply::Nil, Reply::bulk(b"H")])];
        assert_eq!(
            join(Join::Values, 4, &p, replies),
            Reply::Array(vec![Reply::bulk(b"F"), Reply::Nil, Reply::bulk(b"H"), Reply::bulk(b"F")])
        );
        assert_eq!(join(Join::Sum, 3, &p, vec![Reply::Int(2), Reply::Int(1)]), Reply::Int(3));
        assert_eq!(join(Join::AllOk, 2, &p, vec![Reply::ok(), Reply::ok()]), Reply::ok());
        let down = Reply::err("CLUSTERDOWN stripe B has no active");
        assert_eq!(join(Join::Sum, 3, &p, vec![Reply::Int(2), down.clone()]), down);
    }

    #[test]
    fn scan_cursors_walk_every_stripe_in_turn() {
        // Stripe 0 from its start; its own cursor 5 next; then stripe 1; then done.
        assert_eq!(scan_cursor(0, 2), (0, 0));
        assert_eq!(next_scan_cursor(0, 5, 2), Some(10));
        assert_eq!(scan_cursor(10, 2), (0, 5));
        assert_eq!(next_scan_cursor(0, 0, 2), Some(1));
        assert_eq!(scan_cursor(1, 2), (1, 0));
        assert_eq!(next_scan_cursor(1, 7, 2), Some(15));
        assert_eq!(scan_cursor(15, 2), (1, 7));
        assert_eq!(next_scan_cursor(1, 0, 2), Some(0), "the last stripe done: the scan is over");
        assert_eq!(next_scan_cursor(2, 0, 3), Some(0));
        assert_eq!(next_scan_cursor(0, u64::MAX, 2), None);
        // One stripe: cursors pass through unchanged.
        assert_eq!((scan_cursor(42, 1), next_scan_cursor(0, 43, 1)), ((0, 42), Some(43)));
    }

    #[test]
    fn whole_array_answers_are_joined() {
        assert_eq!(join_whole(Whole::Sum, vec![Reply::Int(3), Reply::Int(4)]), Reply::Int(7));
        assert_eq!(
            join_whole(Whole::Concat, vec![Reply::Array(vec![Reply::bulk(b"a")]), Reply::Array(vec![Reply::bulk(b"b")])]),
            Reply::Array(vec![Reply::bulk(b"a"), Reply::bulk(b"b")])
        );
        // A stripe's own answer may hold its strings in wire form.
        let local = Reply::Bulks([&b"a"[..]].into_iter().collect());
        assert_eq!(
            join_whole(Whole::Concat, vec![local, Reply::Array(vec![Reply::bulk(b"b")])]),
            Reply::Array(vec![Reply::bulk(b"a"), Reply::bulk(b"b")])
        );
        assert_eq!(join_whole(Whole::Any, vec![Reply::Nil, Reply::bulk(b"k")]), Reply::bulk(b"k"));
        assert_eq!(join_whole(Whole::Any, vec![Reply::Nil, Reply::Nil]), Reply::Nil);
        assert_eq!(join_whole(Whole::AllOk, vec![Reply::ok(), Reply::err("ERR x")]), Reply::err("ERR x"));
        assert_eq!(whole_array("flushdb"), Some(Whole::AllOk));
        assert_eq!(whole_array("get"), None);
    }

    #[test]
    fn a_write_that_failed_in_one_stripe_after_another_applied_says_so() {
        use crate::cluster::view::{Active, ClusterView, StripeView};
        let view = ClusterView::array(
            vec![StripeView { name: "A".into(), active: Active::Here }, StripeView { name: "B".into(), active: Active::Unknown }],
            0,
        );
        let down = Reply::err("CLUSTERDOWN stripe B has no active; nothing was applied; retry");
        let Some(Reply::Error(text)) = partial(&view, &[0, 1], &[Reply::Int(1), down.clone()]) else { panic!("no partial error") };
        assert!(
            text.starts_with("ERR this command ran as one part per stripe")
                && text.contains("stripe A applied its part; stripe B answered: CLUSTERDOWN")
        );
        assert_eq!(partial(&view, &[1, 0], &[down.clone(), Reply::err("ERR x")]), None, "nothing applied: the stripe's own error");
        assert_eq!(partial(&view, &[0, 1], &[Reply::Int(1), Reply::Int(2)]), None);
    }

    #[test]
    fn only_the_commands_of_design_7_are_split() {
        assert_eq!(splittable("mset"), Some((Join::AllOk, 2)));
        assert_eq!(splittable("unlink"), Some((Join::Sum, 1)));
        assert_eq!(splittable("msetnx"), None, "all or nothing cannot span stripes");
        assert_eq!(splittable("sunion"), None);
    }

    #[test]
    fn acl_writes_reach_every_stripe_from_any_port_and_the_rest_only_for_plain_clients() {
        assert_eq!(whole_array_for("acl|setuser", true), Some(Whole::AllOk));
        assert_eq!(whole_array_for("acl|deluser", false), Some(Whole::Max));
        assert_eq!(whole_array_for("acl|getuser", false), None, "each stripe holds the same users");
        assert_eq!(whole_array_for("dbsize", false), Some(Whole::Sum));
        assert_eq!(whole_array_for("dbsize", true), None, "a cluster client asks each node itself");
        assert_eq!(join_whole(Whole::Max, vec![Reply::Int(1), Reply::Int(0)]), Reply::Int(1));
    }
}
