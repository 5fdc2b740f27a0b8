//! The cluster view: what this server knows of the array right now — its stripes, who
//! is active in each, and which stripe owns each slot. Routing reads it; it is built
//! from the replication layer's state and rebuilt when that changes, never computed
//! per request.

use super::slot::SLOTS;

/// Where a stripe's active is, as this server knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Active {
    /// This server is the stripe's active.
    Here,
    /// Another server is: its name and client address.
    There { name: String, client_addr: String },
    /// None is known (an election, or this server is not in contact).
    Unknown,
}

/// One stripe as routing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeView {
    pub name: String,
    pub active: Active,
}

/// The array as this server sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    /// In config order; a stripe is named by its position here.
    pub stripes: Vec<StripeView>,
    /// The stripe this server belongs to.
    pub local: usize,
    /// `owner[slot]`: the stripe owning each slot.
    owner: std::sync::Arc<[u16]>,
}

impl ClusterView {
    /// An array of one stripe: every slot is its.
    pub fn single(name: &str, active: Active) -> ClusterView {
        ClusterView {
            stripes: vec![StripeView { name: name.to_string(), active }],
            local: 0,
            owner: std::iter::repeat_n(0u16, usize::from(SLOTS)).collect(),
        }
    }

    /// Stripes owning slots by ranges (`start..=end`, stripe index); slots not named
    /// belong to the local stripe.
    pub fn with_ranges(stripes: Vec<StripeView>, local: usize, ranges: &[(u16, u16, usize)]) -> ClusterView {
        let mut owner = vec![local as u16; usize::from(SLOTS)];
        for &(start, end, stripe) in ranges {
            for slot in start..=end.min(SLOTS - 1) {
                owner[usize::from(slot)] = stripe as u16;
            }
        }
        ClusterView { stripes, local, owner: owner.into() }
    }

    /// The stripe that owns `slot`.
    pub fn owner(&self, slot: u16) -> usize {
        self.owner.get(usize::from(slot)).map_or(self.local, |s| usize::from(*s))
    }

    /// The same view with the local stripe's active replaced (a failover seen here).
    pub fn with_local_active(&self, active: Active) -> ClusterView {
        let mut view = self.clone();
        if let Some(stripe) = view.stripes.get_mut(self.local) {
            stripe.active = active;
        }
        view
    }

    /// True while this server is its stripe's active: the one place that question is
    /// answered for the request path.
    pub fn local_is_active(&self) -> bool {
        self.stripes.get(self.local).is_some_and(|s| s.active == Active::Here)
    }

    pub fn active(&self, stripe: usize) -> &Active {
        self.stripes.get(stripe).map_or(&Active::Unknown, |s| &s.active)
    }
}
