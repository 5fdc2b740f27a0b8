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

    /// An array: `stripes` in config order, slots split evenly among them
    /// ([`super::slot::even_ranges`]).
    pub fn array(stripes: Vec<StripeView>, local: usize) -> ClusterView {
        let ranges: Vec<(u16, u16, usize)> =
            super::slot::even_ranges(stripes.len()).into_iter().enumerate().map(|(i, (start, end))| (start, end, i)).collect();
        ClusterView::with_ranges(stripes, local, &ranges)
    }

    /// The slot ranges `stripe` owns, in order (inclusive).
    pub fn ranges_of(&self, stripe: usize) -> Vec<(u16, u16)> {
        let mut out: Vec<(u16, u16)> = Vec::new();
        for (slot, owner) in self.owner.iter().enumerate() {
            if usize::from(*owner) != stripe {
                continue;
            }
            let slot = slot as u16;
            match out.last_mut() {
                Some((_, end)) if *end + 1 == slot => *end = slot,
                _ => out.push((slot, slot)),
            }
        }
        out
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
        self.with_active(self.local, active)
    }

    /// The same view with `stripe`'s active replaced.
    pub fn with_active(&self, stripe: usize, active: Active) -> ClusterView {
        let mut view = self.clone();
        if let Some(stripe) = view.stripes.get_mut(stripe) {
            stripe.active = active;
        }
        view
    }

    /// True when the array has more than one stripe.
    pub fn is_array(&self) -> bool {
        self.stripes.len() > 1
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stripes(n: usize) -> Vec<StripeView> {
        (0..n).map(|i| StripeView { name: format!("S{i}"), active: Active::Unknown }).collect()
    }

    #[test]
    fn an_array_owns_the_even_ranges_and_gives_them_back() {
        let view = ClusterView::array(stripes(3), 1);
        assert_eq!((view.owner(0), view.owner(5460), view.owner(5461), view.owner(10923), view.owner(16383)), (0, 0, 1, 2, 2));
        assert_eq!(view.ranges_of(0), vec![(0, 5460)]);
        assert_eq!(view.ranges_of(1), vec![(5461, 10922)]);
        assert_eq!(view.ranges_of(2), vec![(10923, 16383)]);
        assert!(view.is_array());
        assert!(!ClusterView::single("A", Active::Here).is_array());
        assert_eq!(ClusterView::single("A", Active::Here).ranges_of(0), vec![(0, 16383)]);
    }

    #[test]
    fn one_stripes_active_changes_alone() {
        let there = Active::There { name: "b2".into(), client_addr: "127.0.0.1:7002".into() };
        let view = ClusterView::array(stripes(2), 0).with_active(1, there.clone());
        assert_eq!(view.active(1), &there);
        assert_eq!(view.active(0), &Active::Unknown);
        assert!(!view.local_is_active());
        assert!(view.with_local_active(Active::Here).local_is_active());
    }
}
