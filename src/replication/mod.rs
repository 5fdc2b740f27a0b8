//! Replication: each stripe is a Raft group. This module holds the log storage
//! (`log_file`: segmented, CRC-framed, group-committed) and, as it lands, the glue
//! between openraft and the state machine.

pub mod log_file;
pub mod record;
pub mod types;
