//! The array's topology: how keys map to stripes. Today only the slot function
//! exists ([`slot`]); routing by slot builds on it once the array has several stripes.

pub mod slot;
