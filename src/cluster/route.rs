//! Routing: where one request goes, as a pure function of what it touches, who sent
//! it and the cluster view (DESIGN.md §4). No I/O, no clock: the request pipeline
//! calls it once per request and does what it says.

use super::view::{Active, ClusterView};

/// What a request touches, as far as routing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// No keys: the local stripe's data (DBSIZE, SCAN, FLUSHALL…).
    None,
    /// Every key is in this slot.
    Slot(u16),
    /// Keys in different slots.
    CrossSlot,
}

/// The kind of data access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    /// Waits for data (BLPOP, XREAD BLOCK…): only the active can wake it.
    Blocking,
}

/// What the client has said about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Client {
    /// READONLY: reads of this server's own stripe may be served here, possibly stale.
    pub readonly: bool,
    /// The client routes by slot itself (a cluster client): another stripe's slot is
    /// answered `-MOVED` instead of being forwarded.
    pub slot_routing: bool,
    /// The client is another server forwarding its own clients' commands: forwarding
    /// once more could bounce a request between two servers with stale views.
    pub forwarded_in: bool,
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Served here, from this server's state machine.
    Local,
    /// To the active of this stripe (by position in the view), over an upstream.
    Forward(usize),
    /// `-MOVED slot addr`: the slot's stripe is served elsewhere, and this client
    /// routes by slot itself.
    Moved { slot: u16, stripe: usize },
    /// `-CROSSSLOT`: the keys are in different slots.
    CrossSlot,
    /// The stripe has no known active: wait for one (bounded), then `-CLUSTERDOWN`.
    Down(usize),
    /// Sent by a forwarding server to a server that is not the active either.
    Bounce,
}

/// Routes one data request (connection commands never get here: they are always
/// served by the server the client is connected to).
pub fn route(keys: Keys, access: Access, client: Client, view: &ClusterView) -> Route {
    let slot = match keys {
        Keys::CrossSlot => return Route::CrossSlot,
        Keys::Slot(slot) => Some(slot),
        Keys::None => None,
    };
    let stripe = slot.map_or(view.local, |s| view.owner(s));
    if stripe == view.local && client.readonly && access == Access::Read {
        return Route::Local;
    }
    match view.active(stripe) {
        Active::Here => Route::Local,
        _ if client.forwarded_in => Route::Bounce,
        Active::Unknown => Route::Down(stripe),
        Active::There { .. } => match slot {
            Some(slot) if client.slot_routing && stripe != view.local => Route::Moved { slot, stripe },
            _ => Route::Forward(stripe),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::view::StripeView;

    fn there(name: &str) -> Active {
        Active::There { name: name.into(), client_addr: format!("127.0.0.1:{}", 9500 + name.len()) }
    }

    /// Two stripes: A owns 0..=8191, B the rest; this server is in A.
    fn two(a: Active, b: Active) -> ClusterView {
        let stripes = vec![StripeView { name: "A".into(), active: a }, StripeView { name: "B".into(), active: b }];
        ClusterView::with_ranges(stripes, 0, &[(0, 8191, 0), (8192, 16383, 1)])
    }

    const PLAIN: Client = Client { readonly: false, slot_routing: false, forwarded_in: false };
    const READONLY: Client = Client { readonly: true, slot_routing: false, forwarded_in: false };
    const CLUSTER: Client = Client { readonly: false, slot_routing: true, forwarded_in: false };
    const FORWARDER: Client = Client { readonly: false, slot_routing: false, forwarded_in: true };

    #[test]
    fn routes_as_the_table_says() {
        use Access::*;
        let a = Keys::Slot(100);
        let b = Keys::Slot(9000);
        #[rustfmt::skip]
        let table: Vec<(&str, Keys, Access, Client, ClusterView, Route)> = vec![
            // One stripe.
            ("active serves a read",           a, Read,     PLAIN,     ClusterView::single("A", Active::Here), Route::Local),
            ("active serves a write",          a, Write,    PLAIN,     ClusterView::single("A", Active::Here), Route::Local),
            ("active serves a keyless read",   Keys::None, Read, PLAIN, ClusterView::single("A", Active::Here), Route::Local),
            ("mirror forwards a read",         a, Read,     PLAIN,     ClusterView::single("A", there("s2")), Route::Forward(0)),
            ("mirror forwards a write",        a, Write,    PLAIN,     ClusterView::single("A", there("s2")), Route::Forward(0)),
            ("READONLY read stays on mirror",  a, Read,     READONLY,  ClusterView::single("A", there("s2")), Route::Local),
            ("READONLY write still forwarded", a, Write,    READONLY,  ClusterView::single("A", there("s2")), Route::Forward(0)),
            ("READONLY blocking forwarded",    a, Blocking, READONLY,  ClusterView::single("A", there("s2")), Route::Forward(0)),
            ("READONLY read, no active",       a, Read,     READONLY,  ClusterView::single("A", Active::Unknown), Route::Local),
            ("no active: down",                a, Write,    PLAIN,     ClusterView::single("A", Active::Unknown), Route::Down(0)),
            ("forwarder on the active",        a, Write,    FORWARDER, ClusterView::single("A", Active::Here), Route::Local),
            ("forwarder on a mirror bounces",  a, Write,    FORWARDER, ClusterView::single("A", there("s2")), Route::Bounce),
            ("forwarder, no active: bounces",  a, Write,    FORWARDER, ClusterView::single("A", Active::Unknown), Route::Bounce),
            ("cross slot",                     Keys::CrossSlot, Read, PLAIN, ClusterView::single("A", Active::Here), Route::CrossSlot),
            // Two stripes, this server in A.
            ("own slot on the active",         a, Write,    PLAIN,     two(Active::Here, there("b1")), Route::Local),
            ("other stripe's slot: forward",   b, Write,    PLAIN,     two(Active::Here, there("b1")), Route::Forward(1)),
            ("other stripe's read: forward",   b, Read,     READONLY,  two(Active::Here, there("b1")), Route::Forward(1)),
            ("other stripe, cluster client",   b, Read,     CLUSTER,   two(Active::Here, there("b1")), Route::Moved { slot: 9000, stripe: 1 }),
            ("own stripe, cluster client, mirror", a, Write, CLUSTER,  two(there("a2"), there("b1")), Route::Forward(0)),
            ("other stripe down",              b, Write,    PLAIN,     two(Active::Here, Active::Unknown), Route::Down(1)),
            ("other stripe down, cluster",     b, Write,    CLUSTER,   two(Active::Here, Active::Unknown), Route::Down(1)),
            ("keyless, cluster client, mirror", Keys::None, Read, CLUSTER, two(there("a2"), Active::Here), Route::Forward(0)),
            ("keyless stays in own stripe",    Keys::None, Write, PLAIN, two(there("a2"), Active::Here), Route::Forward(0)),
        ];
        for (what, keys, access, client, view, expected) in table {
            assert_eq!(route(keys, access, client, &view), expected, "{what}");
        }
    }

    #[test]
    fn slots_belong_to_the_stripes_of_their_ranges() {
        let view = two(Active::Here, there("b1"));
        assert_eq!(view.owner(0), 0);
        assert_eq!(view.owner(8191), 0);
        assert_eq!(view.owner(8192), 1);
        assert_eq!(view.owner(16383), 1);
        assert!(view.local_is_active());
        assert!(!two(there("a2"), Active::Here).local_is_active());
    }
}
