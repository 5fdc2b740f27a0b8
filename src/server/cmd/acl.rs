//! ACL's subcommands served by this server: what reads the users this server has
//! applied (GETUSER, LIST, USERS, DRYRUN, CAT), this connection (WHOAMI), this
//! server's log (LOG) and its aclfile (LOAD proposes the file's users to the stripe
//! through the log; SAVE writes them). SETUSER and DELUSER are writes (`commands::acl`).

use bytes::Bytes;

use super::text;
use crate::acl::registry::{category_bit, registry, CATEGORIES};
use crate::acl::user::Selector;
use crate::acl::User;
use crate::commands::{self, acl::ACL_LOAD_COMMAND, args::*};
use crate::protocol::reply::Reply;
use crate::server::connection::Connection;

const GENPASS_BITS_MAX: i64 = 4096;

const ERR_NO_ACLFILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

const HELP: &[&str] = &[
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Print this help.",
];

impl Connection {
    pub(super) async fn acl(&mut self, args: &[Bytes]) -> Reply {
        let sub = text(&args[1]).to_ascii_lowercase();
        let requirepass = self.shared.settings.requirepass();
        let users = self.shared.core.acl.users();
        match (sub.as_str(), args.len()) {
            ("whoami", 2) => Reply::bulk_str(&self.session.acl.name),
            ("users", 2) => Reply::Array(users.all(requirepass.as_deref()).iter().map(|u| Reply::bulk_str(&u.name)).collect()),
            ("list", 2) => Reply::Array(users.lines(requirepass.as_deref()).iter().map(|l| Reply::bulk_str(l)).collect()),
            ("getuser", 3) => match users.get(&args[2], requirepass.as_deref()) {
                Some(user) => getuser(&user),
                None => Reply::Nil,
            },
            ("cat", 2) => Reply::Array(CATEGORIES.iter().map(|c| Reply::bulk_str(c)).collect()),
            ("cat", 3) => match category_bit(&args[2]) {
                Some(bit) => Reply::Array(registry().in_category(bit).map(|c| Reply::bulk_str(&c.name)).collect()),
                None => Reply::error(format!("ERR Unknown category '{}'", text(&args[2]).chars().take(128).collect::<String>())),
            },
            ("genpass", 2 | 3) => genpass(args),
            ("log", 2 | 3) => self.acl_log(args),
            ("dryrun", n) if n >= 4 => match users.get(&args[2], requirepass.as_deref()) {
                Some(user) => dryrun(&user, &args[3..]),
                None => Reply::error(format!("ERR User '{}' not found", text(&args[2]))),
            },
            ("help", 2) => Reply::Array(HELP.iter().map(|l| Reply::status(l)).collect()),
            ("load", 2) => self.acl_load().await,
            ("save", 2) => self.acl_save(&users.lines(requirepass.as_deref())),
            // A known subcommand with arguments its handler does not take (Redis's
            // addReplySubcommandSyntaxError).
            _ => Reply::error(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try ACL HELP.",
                text(&args[1]).chars().take(128).collect::<String>()
            )),
        }
    }

    /// After `CONFIG SET requirepass <pw>` succeeded: as in Redis, the `default` user's
    /// passwords become that one (`nopass` for ""). While the stripe holds no default
    /// user, `requirepass` already is its password; once it holds one, the change
    /// goes through the log (as its hash) so every server enforces it.
    pub(super) async fn requirepass_to_default_user(&mut self, args: &[Bytes]) -> Reply {
        let pairs = args.get(2..).unwrap_or_default().chunks_exact(2);
        let Some(value) = pairs.filter(|p| is(&p[0], "requirepass")).map(|p| p[1].clone()).last() else { return Reply::ok() };
        if !is(&args[1], "set") || self.shared.core.acl.users().pristine() {
            return Reply::ok();
        }
        if !self.shared.view().local_is_active() {
            return Reply::err(
                "ERR requirepass is the stripe's default user's password once ACL holds that user: set it on the stripe's active",
            );
        }
        let password = if value.is_empty() {
            Bytes::from_static(b"nopass")
        } else {
            Bytes::from(format!("#{}", crate::acl::user::hash_password(&value)))
        };
        let cmd = ["acl", "setuser", "default", "resetpass"].iter().map(|a| Bytes::from_static(a.as_bytes())).chain([password]);
        let op = crate::store::Op::command(&cmd.collect::<Vec<_>>());
        match self.shared.core.propose(vec![op]).await {
            Ok(mut replies) => replies.pop().unwrap_or_else(Reply::ok),
            Err(e) => crate::server::errors::write_reply(&e),
        }
    }

    fn acl_log(&mut self, args: &[Bytes]) -> Reply {
        let mut log = self.shared.core.acl.log.lock().unwrap_or_else(|e| e.into_inner());
        let count = match args.get(2) {
            None => 10,
            Some(a) if is(a, "reset") => {
                log.reset();
                return Reply::ok();
            }
            Some(a) => match parse_i64(a) {
                Some(n) => usize::try_from(n).unwrap_or(0),
                None => return Reply::err(ERR_NOT_INT),
            },
        };
        log.reply(count, crate::clock::wall_ms())
    }

    /// ACL LOAD: the aclfile's users replace the stripe's, through the log.
    async fn acl_load(&mut self) -> Reply {
        let Some(path) = self.shared.settings.aclfile.clone() else { return Reply::err(ERR_NO_ACLFILE) };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => return Reply::error(format!("ERR Error loading ACLs, opening file '{path}': {e}")),
        };
        // Checked here first, so that a bad file is refused without a log entry.
        if let Err(e) = crate::acl::Users::default().load(&text) {
            return Reply::error(format!("ERR {e}"));
        }
        self.shared.core.configured_default_first(&self.shared.settings).await;
        let op = crate::store::Op::command(&[Bytes::from_static(ACL_LOAD_COMMAND.as_bytes()), Bytes::from(text)]);
        match self.shared.core.propose(vec![op]).await {
            Ok(mut replies) => replies.pop().unwrap_or_else(Reply::ok),
            Err(e) => crate::server::errors::write_reply(&e),
        }
    }

    /// ACL SAVE: the users as ACL LIST shows them, written whole (temporary file,
    /// fsync, rename) to the aclfile.
    fn acl_save(&self, lines: &[String]) -> Reply {
        let Some(path) = self.shared.settings.aclfile.clone() else { return Reply::err(ERR_NO_ACLFILE) };
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        match write_whole(&path, body.as_bytes()) {
            Ok(()) => Reply::ok(),
            Err(e) => {
                tracing::warn!(file = %path, error = %e, "ACL SAVE failed");
                Reply::err("ERR There was an error trying to save the ACLs. Please check the server logs for more information")
            }
        }
    }
}

fn write_whole(path: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = format!("{path}.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn selector_fields(s: &Selector) -> Vec<(Reply, Reply)> {
    vec![
        (Reply::bulk(b"commands"), Reply::bulk_str(&s.describe_commands())),
        (Reply::bulk(b"keys"), Reply::bulk_str(&s.describe_keys())),
        (Reply::bulk(b"channels"), Reply::bulk_str(&s.describe_channels())),
    ]
}

/// ACL GETUSER's map, in Redis's order.
fn getuser(user: &User) -> Reply {
    let mut fields = vec![
        (Reply::bulk(b"flags"), Reply::Set(user.flags().iter().map(|f| Reply::bulk_str(f)).collect())),
        (Reply::bulk(b"passwords"), Reply::Array(user.passwords.iter().map(|p| Reply::bulk_str(p)).collect())),
    ];
    fields.extend(selector_fields(&user.root));
    let selectors = user.selectors.iter().map(|s| Reply::Map(selector_fields(s))).collect();
    fields.push((Reply::bulk(b"selectors"), Reply::Array(selectors)));
    Reply::Map(fields)
}

fn genpass(args: &[Bytes]) -> Reply {
    let bits = match args.get(2) {
        None => 256,
        Some(a) => match parse_i64(a) {
            Some(n) => n,
            None => return Reply::err(ERR_NOT_INT),
        },
    };
    if bits <= 0 || bits > GENPASS_BITS_MAX {
        return Reply::error(format!(
            "ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to {GENPASS_BITS_MAX}"
        ));
    }
    let chars = ((bits + 3) / 4) as usize;
    // The thread's generator is a CSPRNG seeded from the OS: fit for passwords.
    let hex: String = (0..chars).map(|_| char::from(b"0123456789abcdef"[rand::random::<usize>() % 16])).collect();
    Reply::bulk_str(&hex)
}

fn dryrun(user: &User, command: &[Bytes]) -> Reply {
    let Some(spec) = commands::resolve(command).filter(|s| !s.has(commands::flags::INTERNAL)) else {
        return Reply::error(format!("ERR Command '{}' not found", text(&command[0])));
    };
    let name = crate::acl::command_name(spec, command);
    if !spec.arity_ok(command.len()) {
        return Reply::error(format!("ERR wrong number of arguments for '{name}' command"));
    }
    match crate::acl::check(user, spec, command) {
        Ok(()) => Reply::ok(),
        Err(denied) => Reply::bulk_str(&denied.dryrun(&name, command)),
    }
}

/// How long a starting server waits to learn whether it is the stripe's active
/// before it leaves loading the aclfile to the server that is.
const FIRST_START_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The aclfile at first start: once this server is the stripe's active, if the
/// stripe's users were never set, the file's users are proposed to it (every
/// server shares the config, so whichever is active loads the same file; a second
/// proposal replaces them with the same users).
pub(crate) async fn load_at_first_start(shared: std::sync::Arc<crate::server::Shared>, path: String) {
    let deadline = tokio::time::Instant::now() + FIRST_START_WAIT;
    while !shared.view().local_is_active() {
        if tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if !shared.core.acl.users().pristine() {
        return;
    }
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(file = %path, error = %e, "aclfile: cannot read it; the stripe keeps its default user");
            return;
        }
    };
    if let Err(e) = crate::acl::Users::default().load(&text) {
        tracing::error!(file = %path, error = %e, "aclfile: refused; the stripe keeps its default user");
        return;
    }
    // requirepass first: a file without `default` keeps it (acl::Users::load).
    shared.core.configured_default_first(&shared.settings).await;
    let op = crate::store::Op::command(&[Bytes::from_static(ACL_LOAD_COMMAND.as_bytes()), Bytes::from(text)]);
    match shared.core.propose(vec![op]).await {
        Ok(_) => tracing::info!(file = %path, "aclfile: users loaded into the stripe"),
        Err(e) => tracing::error!(file = %path, error = %e, "aclfile: the users could not be logged"),
    }
}
