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
