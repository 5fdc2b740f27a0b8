//! Replication: each stripe is a Raft group. This module holds the log storage
//! (`log_file`: segmented, CRC-framed, group-committed) and, as it lands, the glue
//! between openraft and the state machine.

pub mod log_file;
pub mod log_store;
pub mod record;
pub mod snapshot;
pub mod snapshot_health;
pub mod state_machine;
pub mod stripe;
pub mod types;

#[cfg(test)]
mod conformance {
    //! openraft's storage conformance suite against our log store and state machine,
    //! in memory and on disk.

    use std::sync::{Arc, Mutex};

    use openraft::testing::log::{StoreBuilder, Suite};
    use openraft::StorageError;

    use super::log_store::LogStore;
    use super::state_machine::StateMachine;
    use super::types::TypeConfig;
    use crate::store::Store;

    struct InMemory;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, ()> for InMemory {
        async fn build(&self) -> Result<((), LogStore, StateMachine), StorageError<TypeConfig>> {
            let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
            let sm = StateMachine::new(Arc::new(Mutex::new(Store::new())), None, tx).expect("no snapshot dir");
            Ok(((), LogStore::in_memory(), sm))
        }
    }

    struct OnDisk;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for OnDisk {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
            let dir = tempfile::tempdir().expect("tempdir");
            let (log, _) = LogStore::open(dir.path()).expect("open log");
            let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
            let sm = StateMachine::new(Arc::new(Mutex::new(Store::new())), Some(dir.path().join("snapshots")), tx).expect("open snapshots");
            Ok((dir, log, sm))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_memory_log_passes_the_openraft_storage_suite() -> Result<(), StorageError<TypeConfig>> {
        Suite::test_all(InMemory).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn file_log_passes_the_openraft_storage_suite() -> Result<(), StorageError<TypeConfig>> {
        Suite::test_all(OnDisk).await
    }
}
pub mod broadcast;
pub mod control;
mod crc_range;
pub mod data_dir;
pub mod errors;
pub mod explain;
pub mod group;
pub mod group_tls;
mod handshakes;
pub mod membership;
pub mod network;
pub mod replica;
#[cfg(test)]
mod sim;
pub mod transport;
pub mod wire;
