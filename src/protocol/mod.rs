//! The Redis protocol: requests in ([`request`]), replies out ([`reply`]), and a general
//! RESP2/RESP3 frame parser ([`frame`]) for reading what another server replies.

pub mod frame;
pub mod reply;
pub mod request;
