//! One client command, parsed once: its spec looked up in the command table, its
//! arguments, and the slot of its keys. Everything after parsing (admission, routing,
//! execution) reads this instead of looking the command up again.

use bytes::Bytes;

use crate::cluster::route::Keys;
use crate::cluster::slot::key_slot;
use crate::cluster::view::ClusterView;
use crate::commands::{self, flags, CommandSpec, Srv};
use crate::protocol::reply::Reply;
use crate::store::once::Tag;

pub struct Request {
    pub spec: &'static CommandSpec,
    pub args: Vec<Bytes>,
    /// The slot of the first key (`None`: the command has no keys).
    pub slot: Option<u16>,
    /// Some key is in another slot than the first.
    pub other_slots: bool,
    /// A forwarded write's tag (`store::once`): from `TANDEM.ONCE` on the active, or
    /// given by the mirror that forwards it (and keeps it when it sends it again).
    pub once: Option<Tag>,
    /// Sent to an active already: it may have been applied, so an answer that says
    /// "not applied" would be wrong for it.
    pub sent: bool,
}

/// The internal command a mirror wraps a forwarded write in:
/// `TANDEM.ONCE <origin> <sequence> <acknowledged> <command…>`. Only a forwarding
/// connection may send it; to anyone else it is an unknown command.
pub const ONCE_COMMAND: &str = "tandem.once";

const ERR_ONCE_SYNTAX: &str =
    "ERR TANDEM.ONCE takes an origin, a sequence and an acknowledged sequence (unsigned integers), then a command";

/// [`Request::unless_sent`] for a command that was (`sent`) or was not sent yet.
pub fn unless_sent(sent: bool, write: bool, reply: Reply) -> Reply {
    let retry = |text: &str| ["TRYAGAIN", "CLUSTERDOWN", "MOVED", "ASK"].iter().any(|code| text.starts_with(code));
    match &reply {
        // A read changed nothing either way: its answer stands.
        Reply::Error(text) if sent && write && retry(text) => crate::server::errors::lost_in_flight(write),
        _ => reply,
    }
}

impl Request {
    /// Looks the command up; an unknown one (or an internal one a client may not
    /// call) is answered with Redis's error.
    pub fn parse(args: Vec<Bytes>) -> Result<Request, (Reply, Vec<Bytes>)> {
        // Containers (SCRIPT, FUNCTION) resolve to their subcommand's spec.
        let spec = commands::resolve(&args).filter(|s| !s.has(flags::INTERNAL));
        let Some(spec) = spec else { return Err((commands::unknown_command(&args), args)) };
        let mut slot = None;
        let mut other_slots = false;
        let single_key = spec.key_finder.is_none() && spec.numkeys_at == 0 && spec.first_key > 0 && spec.first_key == spec.last_key;
        if single_key && spec.arity_ok(args.len()) {
            // The common shape (GET, SET, INCR…): no key list to build.
            slot = args.get(spec.first_key as usize).map(|key| key_slot(key));
        } else if spec.arity_ok(args.len()) {
            for key in spec.keys(&args) {
                let s = key_slot(key);
                match slot {
                    None => slot = Some(s),
                    Some(first) => other_slots |= first != s,
                }
            }
        }
        Ok(Request { spec, args, slot, other_slots, once: None, sent: false })
    }

    /// [`Request::parse`] for a forwarding connection's command, unwrapping
    /// `TANDEM.ONCE` (see [`ONCE_COMMAND`]); `window_ms` is how long the stripe keeps
    /// the origin's record.
    pub fn parse_forwarded(mut args: Vec<Bytes>, window_ms: u64) -> Result<Request, (Reply, Vec<Bytes>)> {
        if !args.first().is_some_and(|n| n.eq_ignore_ascii_case(ONCE_COMMAND.as_bytes())) {
            return Request::parse(args);
        }
        let number = |a: Option<&Bytes>| a.and_then(|a| std::str::from_utf8(a).ok()).and_then(|a| a.parse::<u64>().ok());
        let (Some(origin), Some(seq), Some(acked)) = (number(args.get(1)), number(args.get(2)), number(args.get(3))) else {
            return Err((Reply::err(ERR_ONCE_SYNTAX), args));
        };
        if args.len() < 5 {
            return Err((Reply::err(ERR_ONCE_SYNTAX), args));
        }
        let inner = args.split_off(4);
        let mut request = Request::parse(inner)?;
        // Only what applies through the log is recorded: a write, or EXEC.
        if (request.spec.is_write() && !request.spec.blocks(&request.args)) || request.srv() == Some(Srv::Exec) {
            request.once = Some(Tag { origin, seq, acked, window_ms });
        }
        Ok(request)
    }

    /// `reply`, unless it says "not applied, retry" (TRYAGAIN, CLUSTERDOWN, a
    /// redirection) to a request that was sent to an active already: its first copy
    /// may have been applied, so the answer is that its outcome is unknown.
    pub fn unless_sent(&self, reply: Reply) -> Reply {
        unless_sent(self.sent, self.spec.is_write(), reply)
    }

    pub fn srv(&self) -> Option<Srv> {
        self.spec.srv()
    }

    pub fn arity_ok(&self) -> bool {
        self.spec.arity_ok(self.args.len())
    }

    /// What routing needs of the keys: their slot, or that they span stripes. Keys in
    /// different slots of one stripe are served together (the stripe applies them in
    /// one entry); only keys of different stripes are a cross-slot request.
    pub fn keys(&self, view: &ClusterView) -> Keys {
        let Some(slot) = self.slot else { return Keys::None };
        if !self.other_slots || view.stripes.len() <= 1 {
            return Keys::Slot(slot);
        }
        let stripe = view.owner(slot);
        if self.spec.keys(&self.args).iter().all(|k| view.owner(key_slot(k)) == stripe) {
            Keys::Slot(slot)
        } else {
            Keys::CrossSlot
        }
    }
}
