//! One client command, parsed once: its spec looked up in the command table, its
//! arguments, and the slot of its keys. Everything after parsing (admission, routing,
//! execution) reads this instead of looking the command up again.

use bytes::Bytes;

use crate::cluster::route::Keys;
use crate::cluster::slot::key_slot;
use crate::cluster::view::ClusterView;
use crate::commands::{self, flags, CommandSpec, Srv};
use crate::protocol::reply::Reply;

pub struct Request {
    pub spec: &'static CommandSpec,
    pub args: Vec<Bytes>,
    /// The slot of the first key (`None`: the command has no keys).
    pub slot: Option<u16>,
    /// Some key is in another slot than the first.
    pub other_slots: bool,
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
        if spec.arity_ok(args.len()) {
            for key in spec.keys(&args) {
                let s = key_slot(key);
                match slot {
                    None => slot = Some(s),
                    Some(first) => other_slots |= first != s,
                }
            }
        }
        Ok(Request { spec, args, slot, other_slots })
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
