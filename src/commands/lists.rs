//! (to be written)

use super::*;

pub static COMMANDS: &[CommandSpec] = &[];
