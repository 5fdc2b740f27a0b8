//! ACL: the writes that change the stripe's users (SETUSER, DELUSER, and ACL LOAD's
//! internal `TANDEM.ACLLOAD`) run in apply, from the log; everything that reads the
//! users or this connection (GETUSER, LIST, WHOAMI, LOG, DRYRUN…) is served by the
//! server (`server::cmd::acl`) from the users it has applied.

use std::sync::Arc;

use super::flags::*;
use super::*;

const G: &str = "server";
const SRV: Handler = Handler::Server(Srv::Acl);

/// The internal command ACL LOAD and the aclfile propose: the file's text.
pub const ACL_LOAD_COMMAND: &str = "tandem.aclload";

static SUBCOMMANDS: &[CommandSpec] = &[
    spec("acl|cat", -2, NOSCRIPT | LOADING | STALE, (0, 0, 0), G, "Lists the ACL categories, or the commands inside a category.", SRV),
    spec(
        "acl|deluser",
        -3,
        WRITE | ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        G,
        "Deletes ACL users, and terminates their connections.",
        Handler::Write(deluser),
    ),
    spec(
        "acl|dryrun",
        -4,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        G,
        "Simulates the execution of a command by a user, without executing it.",
        SRV,
    ),
    spec(
        "acl|genpass",
        -2,
        NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        G,
        "Generates a pseudorandom, secure password that can be used to identify ACL users.",
        SRV,
    ),
    spec("acl|getuser", 3, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), G, "Lists the ACL rules of a user.", SRV),
    spec("acl|help", 2, LOADING | STALE, (0, 0, 0), G, "Returns helpful text about the different subcommands.", SRV),
    spec("acl|list", 2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), G, "Dumps the effective rules in ACL file format.", SRV),
    spec("acl|load", 2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), G, "Reloads the rules from the configured ACL file.", SRV),
    spec("acl|log", -2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), G, "Lists recent security events generated due to ACL rules.", SRV),
    spec("acl|save", 2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), G, "Saves the effective ACL rules in the configured ACL file.", SRV),
    spec(
        "acl|setuser",
        -3,
        WRITE | ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        G,
        "Creates and modifies an ACL user and its rules.",
        Handler::Write(setuser),
    ),
    spec("acl|users", 2, ADMIN | NOSCRIPT | LOADING | STALE, (0, 0, 0), G, "Lists all ACL users.", SRV),
    spec("acl|whoami", 2, NOSCRIPT | LOADING | STALE, (0, 0, 0), G, "Returns the authenticated username of the current connection.", SRV),
];

pub static COMMANDS: &[CommandSpec] = &[
    container("acl", NOSCRIPT | LOADING | STALE, G, "A container for Access List Control commands.", SUBCOMMANDS),
    spec(
        ACL_LOAD_COMMAND,
        2,
        WRITE | INTERNAL | NOSCRIPT,
        (0, 0, 0),
        G,
        "Replaces every ACL user (ACL LOAD, aclfile).",
        Handler::Write(load),
    ),
];

/// Whether `spec` changes the stripe's users (the server logs the configured
/// default user before the first such change: `server::core`).
pub fn changes_users(spec: &CommandSpec) -> bool {
    spec.is_write() && SUBCOMMANDS.iter().chain(COMMANDS).any(|s| std::ptr::eq(s, spec))
}

/// ACL SETUSER name rule…: all rules or none. Applied from the log: a pristine
/// `default` starts as Redis's (`nopass`); the active proposes the configured
/// `requirepass` as its password first (`server::core`).
fn setuser(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let rules: Vec<&[u8]> = args[3..].iter().map(|a| &a[..]).collect();
    let mut users = (*ctx.db.acl).clone();
    users.set_user(&args[2], &rules, None).map_err(|e| Reply::error(format!("ERR {e}")))?;
    ctx.db.acl = Arc::new(users);
    *ctx.dirty += 1;
    Ok(Reply::ok())
}

fn deluser(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let names: Vec<&[u8]> = args[2..].iter().map(|a| &a[..]).collect();
    let mut users = (*ctx.db.acl).clone();
    let deleted = users.delete(&names, None).map_err(|e| Reply::error(format!("ERR {e}")))?;
    if deleted > 0 {
        ctx.db.acl = Arc::new(users);
        *ctx.dirty += 1;
    }
    Ok(Reply::Int(deleted))
}

fn load(ctx: &mut WriteCtx, args: &[Bytes]) -> CmdResult {
    let text = std::str::from_utf8(&args[1]).map_err(|_| Reply::err("ERR the ACL file is not UTF-8"))?;
    let mut users = (*ctx.db.acl).clone();
    users.load(text).map_err(|e| Reply::error(format!("ERR {e}")))?;
    ctx.db.acl = Arc::new(users);
    *ctx.dirty += 1;
    Ok(Reply::ok())
}

#[cfg(test)]
mod tests {
    use crate::commands::test_support::{err, run};
    use crate::protocol::reply::Reply;
    use crate::store::Store;

    #[test]
    fn setuser_and_deluser_change_the_stores_users_all_or_nothing() {
        let mut s = Store::new();
        assert_eq!(run(&mut s, 0, &["acl", "setuser", "alice", "on", ">pw", "+get", "~k*"]), Reply::ok());
        assert!(s.db.acl.get(b"alice", None).is_some_and(|u| u.password_ok(b"pw")));
        assert_eq!(
            run(&mut s, 0, &["acl", "setuser", "alice", "+set", "+nosuch"]),
            err("ERR Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL")
        );
        assert_eq!(run(&mut s, 0, &["acl", "setuser", "a a"]), err("ERR Usernames can't contain spaces or null characters"));
        assert_eq!(run(&mut s, 0, &["acl", "deluser", "default"]), err("ERR The 'default' user cannot be removed"));
        assert_eq!(run(&mut s, 0, &["acl", "deluser", "alice", "bob"]), Reply::Int(1));
        assert!(s.db.acl.get(b"alice", None).is_none());
    }

    #[test]
    fn a_change_is_published_to_connections() {
        let mut s = Store::new();
        let epoch = s.acl_view.epoch();
        run(&mut s, 0, &["get", "k"]);
        assert_eq!(s.acl_view.epoch(), epoch, "nothing changed, nothing published");
        run(&mut s, 0, &["acl", "setuser", "bob", "on"]);
        assert!(s.acl_view.epoch() > epoch);
        assert!(s.acl_view.user(b"bob", None).is_some());
    }
}
