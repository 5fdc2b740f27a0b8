//! The array: hash slots, the cluster view (stripes, their actives, which stripe owns
//! each slot) and routing — where a request goes. Pure: no sockets, no Raft; the
//! server builds the view from the replication layer and asks `route` per request.

pub mod route;
pub mod slot;
pub mod topology;
pub mod view;
