//! A stripe of real `tandem` processes for high-availability tests: the launcher of
//! `tandem::check::cluster`, started with the binary cargo built for these tests.

use std::ops::{Deref, DerefMut};

pub use tandem::check::cluster::*;

use super::binary;

/// `tandem::check::cluster::Cluster`, started with this build's `tandem`.
pub struct Cluster(tandem::check::cluster::Cluster);

impl Cluster {
    /// Writes the config and starts every member; returns once the stripe is formed
    /// (one ACTIVE-COORDINATOR, every other member PASSIVE-STANDBY).
    pub fn start(spec: Spec) -> Cluster {
        Cluster(tandem::check::cluster::Cluster::start(binary(), spec))
    }

    /// Writes the config without starting anything.
    pub fn configure(spec: Spec) -> Cluster {
        Cluster(tandem::check::cluster::Cluster::configure(binary(), spec))
    }
}

/// One line of `tandem status`.
#[derive(Debug, Clone, Default)]
pub struct StatusRow {
    pub name: String,
    pub state: String,
    pub light: String,
    pub commit: Option<u64>,
    pub applied: Option<u64>,
    /// As the active sees it.
    pub lag: Option<u64>,
    pub purged: Option<u64>,
}

impl Cluster {
    /// `tandem status`, line by line (members that do not answer show STOPPED).
    pub fn rows(&self) -> Vec<StatusRow> {
        let (_, text) = self.ctl(&["status"]);
        let number = |s: &str| s.parse().ok();
        text.lines()
            .skip(1)
            .filter_map(|line| {
                let c: Vec<&str> = line.split_whitespace().collect();
                (c.len() == 11 && c[0] == "A").then(|| StatusRow {
                    name: c[1].to_string(),
                    state: c[3].to_string(),
                    light: c[4].to_string(),
                    commit: number(c[6]),
                    applied: number(c[7]),
                    lag: number(c[8]),
                    purged: number(c[10]),
                })
            })
            .collect()
    }

    /// Member `i`'s line of `tandem status`.
    pub fn row(&self, i: usize) -> StatusRow {
        self.rows().into_iter().find(|r| r.name == self.members[i].name).unwrap_or_default()
    }
}

impl Deref for Cluster {
    type Target = tandem::check::cluster::Cluster;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Cluster {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}
