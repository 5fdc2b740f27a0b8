//! The stripe's users (replicated state, changed only by applied log entries) and
//! the permission check every request passes through.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::registry::{registry, Command, KeyAccess};
use super::user::{Selector, User};
use crate::commands::{CommandSpec, Srv};

/// The users of a stripe. The `default` user is held here once something set it
/// (ACL SETUSER default, ACL LOAD, the aclfile); until then it is Redis's default
/// user with the configured `requirepass` as its password (see [`Users::default_user`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Users {
    users: BTreeMap<String, User>,
}

impl Users {
    /// Whether the users were ever set (ACL SETUSER, DELUSER, LOAD): the aclfile
    /// loads only into a stripe whose users were never set.
    pub fn pristine(&self) -> bool {
        self.users.is_empty()
    }

    /// The default user as configured: `on ~* &* +@all`, `requirepass` as its
    /// password, or `nopass` without one.
    pub fn configured_default(requirepass: Option<&str>) -> User {
        let mut u = User::default_user();
        if let Some(password) = requirepass {
            let _ = u.apply(b"resetpass");
            let _ = u.apply(format!(">{password}").as_bytes());
        }
        u
    }

    pub fn get(&self, name: &[u8], requirepass: Option<&str>) -> Option<User> {
        match self.users.get(std::str::from_utf8(name).ok()?) {
            Some(u) => Some(u.clone()),
            None if name == b"default" => Some(Users::configured_default(requirepass)),
            None => None,
        }
    }

    /// Every user in name order, `default` included.
    pub fn all(&self, requirepass: Option<&str>) -> Vec<User> {
        let mut all: Vec<User> = self.users.values().cloned().collect();
        if !self.users.contains_key("default") {
            all.push(Users::configured_default(requirepass));
            all.sort_by(|a, b| a.name.cmp(&b.name));
        }
        all
    }

    /// ACL SETUSER: rules applied all or nothing to the user (created if new).
    pub fn set_user(&mut self, name: &[u8], rules: &[&[u8]], requirepass: Option<&str>) -> Result<(), String> {
        if super::user::has_spaces(name) {
            return Err("Usernames can't contain spaces or null characters".into());
        }
        let text = String::from_utf8_lossy(name).into_owned();
        let mut user = self.get(name, requirepass).unwrap_or_else(|| User::new(&text));
        user.apply_all(rules)?;
        self.users.insert(text, user);
        self.touch_default(requirepass);
        Ok(())
    }

    /// ACL DELUSER: how many of `names` existed.
    pub fn delete(&mut self, names: &[&[u8]], requirepass: Option<&str>) -> Result<i64, String> {
        if names.iter().any(|n| *n == b"default") {
            return Err("The 'default' user cannot be removed".into());
        }
        let mut deleted = 0;
        for name in names {
            if self.users.remove(String::from_utf8_lossy(name).as_ref()).is_some() {
                deleted += 1;
            }
        }
        self.touch_default(requirepass);
        Ok(deleted)
    }

    /// Replaces every user (ACL LOAD, the aclfile): lines `user <name> <rules…>`,
    /// all checked before any is taken; a file without `default` keeps the one held.
    pub fn load(&mut self, text: &str) -> Result<(), String> {
        let mut users = BTreeMap::new();
        let mut errors = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split_ascii_whitespace().collect();
            let (Some(&"user"), Some(name)) = (words.first(), words.get(1)) else {
                errors.push(format!("/{}: line should start with user keyword", n + 1));
                continue;
            };
            if users.contains_key(*name) {
                errors.push(format!("{}: Duplicate user '{name}' found", n + 1));
                continue;
            }
            let mut user = User::new(name);
            let rules: Vec<&[u8]> = words.get(2..).unwrap_or_default().iter().map(|w| w.as_bytes()).collect();
            match user.apply_all(&rules) {
                Ok(()) => {
                    users.insert(name.to_string(), user);
                }
                Err(e) => errors.push(format!("{}: {e}", n + 1)),
            }
        }
        if !errors.is_empty() {
            return Err(errors.join(". "));
        }
        // A file without `default` keeps the default user the stripe holds (its
        // `requirepass` was logged before the load: `server::core`), not Redis's
        // open `nopass` one: a file must not unlock the server by leaving it out.
        let default = self.users.get("default").cloned().unwrap_or_else(User::default_user);
        users.entry("default".to_string()).or_insert(default);
        self.users = users;
        Ok(())
    }

    /// Once any user is set, `default` is held here too, so the table no longer
    /// reads as pristine and `requirepass` no longer decides its password.
    fn touch_default(&mut self, requirepass: Option<&str>) {
        if !self.users.contains_key("default") {
            self.users.insert("default".into(), Users::configured_default(requirepass));
        }
    }

    /// The users held (not the configured default), one `user <name> <rules>` line
    /// each: how snapshots carry them.
    pub fn held_lines(&self) -> Vec<String> {
        self.users.values().map(|u| format!("user {} {}", u.name, u.describe())).collect()
    }

    /// The users of [`Users::held_lines`] back (a snapshot's record).
    pub fn from_held_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Result<Users, String> {
        let mut users = BTreeMap::new();
        for line in lines {
            let words: Vec<&str> = line.split_ascii_whitespace().collect();
            let (Some(&"user"), Some(name)) = (words.first(), words.get(1)) else { return Err(format!("bad user line {line:?}")) };
            let mut user = User::new(name);
            let rules: Vec<&[u8]> = words.get(2..).unwrap_or_default().iter().map(|w| w.as_bytes()).collect();
            user.apply_all(&rules)?;
            users.insert(name.to_string(), user);
        }
        Ok(Users { users })
    }

    /// The users as ACL LIST lines (also the snapshot's and ACL SAVE's form).
    pub fn lines(&self, requirepass: Option<&str>) -> Vec<String> {
        self.all(requirepass).iter().map(|u| format!("user {} {}", u.name, u.describe())).collect()
    }
}

/// Why a command was refused (Redis's ACL_DENIED_*), with the argument at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Command,
    Key(usize),
    Channel(usize),
}

impl Denied {
    fn rank(self) -> (u8, usize) {
        match self {
            Denied::Command => (0, 0),
            Denied::Key(i) => (1, i),
            Denied::Channel(i) => (2, i),
        }
    }

    /// The `-NOPERM` error of Redis 7.0 for a refused command.
    pub fn error(self, command: &str) -> String {
        match self {
            Denied::Command => format!("NOPERM this user has no permissions to run the '{command}' command"),
            Denied::Key(_) => "NOPERM this user has no permissions to access one of the keys used as arguments".into(),
            Denied::Channel(_) => "NOPERM this user has no permissions to access one of the channels used as arguments".into(),
        }
    }

    /// The reason as a script's error and Redis's getAclErrorMessage put it.
    pub fn message(self) -> &'static str {
        match self {
            Denied::Command => "can't run this command or subcommand",
            Denied::Key(_) => "can't access at least one of the keys mentioned in the command arguments",
            Denied::Channel(_) => "can't publish to the channel mentioned in the command",
        }
    }

    /// ACL DRYRUN's sentence.
    pub fn dryrun(self, command: &str, args: &[Bytes]) -> String {
        let arg = |i: usize| args.get(i).map(|a| String::from_utf8_lossy(a).into_owned()).unwrap_or_default();
        match self {
            Denied::Command => format!("This user has no permissions to run the '{command}' command"),
            Denied::Key(i) => format!("This user has no permissions to access the '{}' key", arg(i)),
            Denied::Channel(i) => format!("This user has no permissions to access the '{}' channel", arg(i)),
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Denied::Command => "command",
            Denied::Key(_) => "key",
            Denied::Channel(_) => "channel",
        }
    }

    /// The object ACL LOG records: the command's name, or the key or channel.
    pub fn object(self, command: &str, args: &[Bytes]) -> String {
        match self {
            Denied::Command => command.to_string(),
            Denied::Key(i) | Denied::Channel(i) => args.get(i).map(|a| String::from_utf8_lossy(a).into_owned()).unwrap_or_default(),
        }
    }
}

/// The ACL name of a request (`get`, `client|kill`): what `-NOPERM` and the log name.
pub fn command_name(spec: &CommandSpec, args: &[Bytes]) -> String {
    let r = registry();
    r.id_of_request(spec, args).and_then(|id| r.commands.get(id)).map_or_else(|| spec.name.to_string(), |c| c.name.clone())
}

/// Whether `user` may run `args` (ACLCheckAllUserCommandPerm): one selector must
/// allow all of it; otherwise the most relevant refusal (a channel over a key over
/// the command, the later argument first).
pub fn check(user: &User, spec: &CommandSpec, args: &[Bytes]) -> Result<(), Denied> {
    let r = registry();
    let Some(id) = r.id_of_request(spec, args) else { return Ok(()) };
    let mut worst = Denied::Command;
    for selector in user.selectors() {
        match check_selector(selector, id, spec, args) {
            Ok(()) => return Ok(()),
            Err(d) if d.rank() > worst.rank() => worst = d,
            Err(_) => {}
        }
    }
    Err(worst)
}

/// Whether `user` may stay subscribed to `channel` (a pattern when `pattern`,
/// matched literally then), as Redis's ACLUserCheckChannelPerm.
pub fn channel_allowed(user: &User, channel: &[u8], pattern: bool) -> bool {
    user.selectors().any(|s| {
        s.all_channels
            || s.channels.iter().any(|c| if pattern { c[..] == *channel } else { crate::commands::args::glob_match(c, channel, false) })
    })
}

/// SORT's BY (with a pattern) and GET read keys no key spec names: Redis allows them
/// only to a user with read access to every key for this command (sortCommand's
/// `user_has_full_key_access`). The error of the first such option, or `None`.
pub fn sort_option_refused(user: &User, spec: &CommandSpec, args: &[Bytes]) -> Option<&'static str> {
    let r = registry();
    let id = r.id_of_request(spec, args)?;
    if !matches!(r.commands.get(id)?.name.as_str(), "sort" | "sort_ro") {
        return None;
    }
    let full = user
        .selectors()
        .any(|s| check_selector(s, id, spec, args).is_ok() && (s.all_keys || s.patterns.iter().any(|p| p.read && p.pattern == b"*")));
    if full {
        return None;
    }
    let mut i = 2;
    while i < args.len() {
        let arg = &args[i];
        let has_value = i + 1 < args.len();
        if arg.eq_ignore_ascii_case(b"limit") {
            i += 3;
            continue;
        }
        if arg.eq_ignore_ascii_case(b"by") && has_value && args[i + 1].contains(&b'*') {
            return Some("ERR BY option of SORT denied due to insufficient ACL permissions.");
        }
        if arg.eq_ignore_ascii_case(b"get") && has_value {
            return Some("ERR GET option of SORT denied due to insufficient ACL permissions.");
        }
        i += if has_value && (arg.eq_ignore_ascii_case(b"by") || arg.eq_ignore_ascii_case(b"store")) { 2 } else { 1 };
    }
    None
}

/// Whether the user may run every command with every key and channel: such users
/// (the default one, usually) skip the per-request work.
pub fn unrestricted(user: &User) -> bool {
    user.selectors().any(|s| s.all_commands && s.all_keys && s.all_channels)
}

fn check_selector(s: &Selector, id: usize, spec: &CommandSpec, args: &[Bytes]) -> Result<(), Denied> {
    let r = registry();
    let command = r.commands.get(id).ok_or(Denied::Command)?;
    if !s.all_commands && !command.no_auth && !s.bit(id) {
        // A first argument may be allowed alone (`+select|0`).
        let at = if command.parent.is_some() { 2 } else { 1 };
        let first = args.get(at).ok_or(Denied::Command)?;
        let allowed = s.firstargs.get(&id).is_some_and(|l| l.iter().any(|a| a.as_bytes().eq_ignore_ascii_case(first)));
        if !allowed {
            return Err(Denied::Command);
        }
    }
    if !s.all_keys && !spec.srv().is_some_and(Srv::shard_channels) {
        for key in spec.keys(args) {
            let at = args.iter().position(|a| std::ptr::eq(a, key)).unwrap_or(0);
            let access = key_access_at(command, args, at);
            let ok = s.patterns.iter().any(|p| {
                (p.read || !access.read) && (p.write || !access.write) && crate::commands::args::glob_match(&p.pattern, key, false)
            });
            if !ok {
                return Err(Denied::Key(at));
            }
        }
    }
    if !s.all_channels {
        for (at, pattern) in channels(spec, args) {
            let channel = &args[at];
            let ok =
                s.channels
                    .iter()
                    .any(|c| if pattern { c[..] == channel[..] } else { crate::commands::args::glob_match(c, channel, false) });
            if !ok {
                return Err(Denied::Channel(at));
            }
        }
    }
    Ok(())
}

/// How the key at argument `at` of `args` is touched, as Redis finds it: the key
/// spec that begins there; else, when every spec is found by position, the last one
/// before it; else the last spec found by a keyword (SORT's and GEORADIUS's STORE,
/// MIGRATE's KEYS, XREAD's STREAMS: the only keys past the positional ones); and for
/// Redis's VARIABLE_FLAGS commands the access their arguments give.
pub fn key_access_at(command: &Command, args: &[Bytes], at: usize) -> KeyAccess {
    variable_access(&command.name, args, spec_at(&command.keys, at))
}

fn spec_at(specs: &[KeyAccess], at: usize) -> KeyAccess {
    if let Some(exact) = specs.iter().find(|k| k.begin == Some(at)) {
        return *exact;
    }
    if let Some(before) = specs.iter().filter(|k| k.begin.is_some_and(|b| b <= at)).max_by_key(|k| k.begin) {
        if specs.iter().all(|k| k.begin.is_some()) {
            return *before;
        }
    }
    if let Some(keyword) = specs.iter().rev().find(|k| k.begin.is_none()) {
        return *keyword;
    }
    KeyAccess { begin: None, read: true, write: true, flags: &[] }
}

/// Redis's VARIABLE_FLAGS commands, whose access depends on their arguments (its
/// `setGetKeys`, `bitfieldGetKeys`): SET reads its key only with GET (else it only
/// overwrites it); BITFIELD reads with a GET operation and writes with SET or INCRBY.
fn variable_access(name: &str, args: &[Bytes], access: KeyAccess) -> KeyAccess {
    let has = |word: &str| args.iter().skip(3).any(|a| a.eq_ignore_ascii_case(word.as_bytes()));
    const READ_WRITE: &[&str] = &["RW", "access", "update"];
    match name {
        "set" if has("get") => KeyAccess { read: true, write: true, flags: READ_WRITE, ..access },
        "set" => KeyAccess { read: false, write: true, flags: &["OW", "update"], ..access },
        "bitfield" if bitfield_read_only(args) => KeyAccess { read: true, write: false, flags: &["RO", "access"], ..access },
        "bitfield" => KeyAccess { read: true, write: true, flags: READ_WRITE, ..access },
        _ => access,
    }
}

/// Redis's `bitfieldGetKeys`: only GET and OVERFLOW operations (anything it cannot
/// parse counts as a write).
fn bitfield_read_only(args: &[Bytes]) -> bool {
    let mut i = 2;
    while i < args.len() {
        let rest = args.len() - i - 1;
        let arg = &args[i];
        if arg.eq_ignore_ascii_case(b"get") && rest >= 2 {
            i += 3;
        } else if arg.eq_ignore_ascii_case(b"overflow") && rest >= 1 {
            i += 2;
        } else {
            return false;
        }
    }
    true
}

/// The channels a command publishes or subscribes to: (argument, is a pattern).
fn channels(spec: &CommandSpec, args: &[Bytes]) -> Vec<(usize, bool)> {
    match spec.srv() {
        Some(Srv::Publish | Srv::Spublish) => vec![(1, false)],
        Some(Srv::Subscribe | Srv::Ssubscribe) => (1..args.len()).map(|i| (i, false)).collect(),
        Some(Srv::Psubscribe) => (1..args.len()).map(|i| (i, true)).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()
    }

    fn check_as(rules: &[&str], cmd: &[&str]) -> Result<(), Denied> {
        let mut u = User::new("u");
        let ops: Vec<&[u8]> = rules.iter().map(|r| r.as_bytes()).collect();
        u.apply_all(&ops).expect("rules");
        let a = args(cmd);
        let spec = commands::resolve(&a).expect("known command");
        check(&u, spec, &a)
    }

    #[test]
    fn commands_categories_and_subcommands_are_checked() {
        assert_eq!(check_as(&[], &["get", "k"]), Err(Denied::Command));
        assert_eq!(check_as(&["+get"], &["get", "k"]), Err(Denied::Key(1)), "no key patterns");
        assert_eq!(check_as(&["+@read", "~*"], &["get", "k"]), Ok(()));
        assert_eq!(check_as(&["+@all", "-flushall", "~*"], &["flushall"]), Err(Denied::Command));
        assert_eq!(check_as(&["+@all", "-client|kill"], &["client", "kill", "x"]), Err(Denied::Command));
        assert_eq!(check_as(&["+@all", "-client|kill"], &["client", "id"]), Ok(()));
        assert_eq!(check_as(&["-@all", "+select|0"], &["select", "0"]), Ok(()));
        assert_eq!(check_as(&["-@all", "+select|0"], &["select", "1"]), Err(Denied::Command));
        assert_eq!(check_as(&[], &["auth", "a", "b"]), Ok(()), "no_auth commands are never refused");
    }

    #[test]
    fn key_patterns_honour_read_and_write_permissions() {
        assert_eq!(check_as(&["+@all", "~foo:*"], &["set", "foo:1", "v"]), Ok(()));
        assert_eq!(check_as(&["+@all", "~foo:*"], &["mset", "foo:1", "v", "zap", "v"]), Err(Denied::Key(3)));
        assert_eq!(check_as(&["+@all", "%R~r*"], &["get", "r1"]), Ok(()));
        assert_eq!(check_as(&["+@all", "%R~r*"], &["set", "r1", "v"]), Err(Denied::Key(1)));
        assert_eq!(check_as(&["+@all", "%W~w*"], &["lpush", "w1", "v"]), Ok(()));
        assert_eq!(check_as(&["+@all", "%W~w*"], &["set", "w1", "get"]), Ok(()), "SET reads only with GET");
        assert_eq!(check_as(&["+@all", "%W~w*"], &["set", "w1", "v", "ex", "get"]), Err(Denied::Key(1)));
        assert_eq!(check_as(&["+@all", "%R~r*"], &["bitfield", "r1", "get", "u8", "0"]), Ok(()));
        assert_eq!(check_as(&["+@all", "%W~w*"], &["bitfield", "w1", "set", "u4", "0", "1"]), Err(Denied::Key(1)));
        assert_eq!(check_as(&["+@all", "%R~src", "%W~dst"], &["copy", "src", "dst"]), Ok(()));
        assert_eq!(check_as(&["+@all", "%R~src", "%W~dst"], &["copy", "dst", "src"]), Err(Denied::Key(1)), "the first key refused");
    }

    /// Keys found by a keyword take that keyword's spec (as `ACL DRYRUN` answers on
    /// redis-server 7.0.15): a STORE destination needs write access only, and
    /// GEORADIUS's destination is checked at all.
    #[test]
    fn keyword_keys_take_their_own_spec() {
        let rules = ["+@all", "%R~src", "%W~dst", "%R~g", "%W~d"];
        assert_eq!(check_as(&rules, &["sort", "src", "store", "dst"]), Ok(()));
        assert_eq!(check_as(&rules, &["sort", "src", "store", "src"]), Err(Denied::Key(3)));
        assert_eq!(check_as(&rules, &["georadius", "g", "0", "0", "1", "km", "store", "d"]), Ok(()));
        assert_eq!(check_as(&rules, &["georadius", "g", "0", "0", "1", "km", "storedist", "d"]), Ok(()));
        assert_eq!(check_as(&rules, &["georadius", "g", "0", "0", "1", "km", "store", "other"]), Err(Denied::Key(7)));
        assert_eq!(check_as(&rules, &["georadiusbymember", "g", "m", "1", "km", "count", "2", "store", "other"]), Err(Denied::Key(8)));
    }

    #[test]
    fn channels_match_patterns_and_subscribed_patterns_match_literally() {
        assert_eq!(check_as(&["+@all"], &["publish", "ch", "m"]), Err(Denied::Channel(1)));
        assert_eq!(check_as(&["+@all", "&ch*"], &["publish", "ch1", "m"]), Ok(()));
        assert_eq!(check_as(&["+@all", "&ch*"], &["subscribe", "ch1", "other"]), Err(Denied::Channel(2)));
        assert_eq!(check_as(&["+@all", "&ch*"], &["psubscribe", "ch1"]), Err(Denied::Channel(1)));
        assert_eq!(check_as(&["+@all", "&ch*"], &["psubscribe", "ch*"]), Ok(()));
    }

    #[test]
    fn sort_by_and_get_need_read_access_to_every_key() {
        let refused = |rules: &[&str], cmd: &[&str]| {
            let mut u = User::new("u");
            let ops: Vec<&[u8]> = rules.iter().map(|r| r.as_bytes()).collect();
            u.apply_all(&ops).expect("rules");
            let a = args(cmd);
            sort_option_refused(&u, commands::resolve(&a).expect("sort"), &a)
        };
        assert_eq!(
            refused(&["(+sort ~mylist)"], &["sort", "mylist", "by", "v*"]),
            Some("ERR BY option of SORT denied due to insufficient ACL permissions.")
        );
        assert_eq!(
            refused(&["(+sort ~mylist %W~*)"], &["sort", "mylist", "get", "v*"]),
            Some("ERR GET option of SORT denied due to insufficient ACL permissions.")
        );
        assert_eq!(refused(&["(+sort ~mylist)"], &["sort", "mylist", "by", "nosort"]), None, "a constant BY reads no key");
        assert_eq!(refused(&["(+sort ~mylist %R~*)"], &["sort", "mylist", "by", "v*"]), None);
    }

    #[test]
    fn a_selector_allows_what_the_root_does_not() {
        assert_eq!(check_as(&["+set", "~a*", "(+get ~b*)"], &["get", "b1"]), Ok(()));
        assert_eq!(check_as(&["+set", "~a*", "(+get ~b*)"], &["get", "a1"]), Err(Denied::Key(1)));
        assert_eq!(check_as(&["+set", "~a*", "(+get ~b*)"], &["set", "b1", "v"]), Err(Denied::Key(1)));
    }

    #[test]
    fn users_load_replace_all_and_refuse_duplicates() {
        let mut users = Users::default();
        assert!(users.pristine());
        users.load("user alice on >a ~* +@all\nuser bob off\n").expect("loads");
        assert_eq!(users.all(None).iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["alice", "bob", "default"]);
        let before = users.clone();
        assert!(users.load("user x on\nuser x off\n").unwrap_err().contains("Duplicate user 'x'"));
        assert_eq!(users, before);
        assert_eq!(users.delete(&[b"default"], None), Err("The 'default' user cannot be removed".to_string()));
        assert_eq!(users.delete(&[b"alice", b"nobody"], None), Ok(1));
    }

    #[test]
    fn a_file_without_default_keeps_the_default_user_held() {
        let mut users = Users::default();
        users.set_user(b"default", &[b"resetpass", b">pw"], None).expect("set");
        users.load("user app on nopass\n").expect("loads");
        assert!(users.get(b"default", None).is_some_and(|d| d.password_ok(b"pw") && !d.nopass));
    }

    #[test]
    fn requirepass_is_the_default_users_password_until_acl_sets_it() {
        let mut users = Users::default();
        let d = users.get(b"default", Some("pw")).expect("default");
        assert!(d.password_ok(b"pw") && !d.password_ok(b"other"));
        users.set_user(b"default", &[b">other"], Some("pw")).expect("set");
        let d = users.get(b"default", None).expect("default");
        assert!(d.password_ok(b"pw") && d.password_ok(b"other"), "held now, whatever requirepass says");
    }
}
