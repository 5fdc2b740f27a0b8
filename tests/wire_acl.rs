//! ACL users through a real client and raw RESP: Redis 7.0's rules, errors and log.

mod support;

use std::time::Duration;

use redis::{Connection, Value};
use support::{closed_by_server, exchange, Server};

fn ok(con: &mut Connection, args: &[&str]) {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let _: () = cmd.query(con).unwrap_or_else(|e| panic!("{args:?}: {e}"));
}

fn err(con: &mut Connection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<Value>(con) {
        Ok(v) => panic!("{args:?} answered {v:?}, expected an error"),
        Err(e) => format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or("")),
    }
}

fn login(server: &Server, user: &str, pass: &str) -> Connection {
    let mut con = server.conn();
    ok(&mut con, &["AUTH", user, pass]);
    con
}

#[test]
fn a_user_runs_only_its_commands_keys_and_channels_with_redis_errors() {
    let server = Server::start();
    let mut admin = server.conn();
    ok(
        &mut admin,
        &["ACL", "SETUSER", "app", "on", ">apppw", "+@read", "+set", "+acl|whoami", "-flushall", "~app:*", "%R~shared:*", "&news.*"],
    );
    let mut app = login(&server, "app", "apppw");
    let who: String = redis::cmd("ACL").arg("WHOAMI").query(&mut app).unwrap();
    assert_eq!(who, "app");
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut admin).unwrap();
    assert!(list.contains(" user=app ") && list.contains(" user=default "), "{list}");
    ok(&mut app, &["SET", "app:1", "v"]);
    let got: Option<String> = redis::cmd("GET").arg("shared:x").query(&mut app).unwrap();
    assert_eq!(got, None, "a read of a %R~ key");
    assert_eq!(err(&mut app, &["SET", "shared:x", "v"]), "NOPERM this user has no permissions to access one of the keys used as arguments");
    assert_eq!(err(&mut app, &["SET", "other", "v"]), "NOPERM this user has no permissions to access one of the keys used as arguments");
    assert_eq!(err(&mut app, &["DEL", "app:1"]), "NOPERM this user has no permissions to run the 'del' command");
    assert_eq!(err(&mut app, &["FLUSHALL"]), "NOPERM this user has no permissions to run the 'flushall' command");
    assert_eq!(err(&mut app, &["CONFIG", "SET", "maxmemory", "1"]), "NOPERM this user has no permissions to run the 'config|set' command");
    assert_eq!(err(&mut app, &["PUBLISH", "other", "m"]), "NOPERM this user has no permissions to run the 'publish' command");
    ok(&mut admin, &["ACL", "SETUSER", "app", "+publish"]);
    assert_eq!(
        err(&mut app, &["PUBLISH", "other", "m"]),
        "NOPERM this user has no permissions to access one of the channels used as arguments"
    );
    let n: i64 = redis::cmd("PUBLISH").arg("news.today").arg("m").query(&mut app).unwrap();
    assert_eq!(n, 0);
    assert_eq!(err(&mut admin, &["AUTH", "app", "wrong"]), "WRONGPASS invalid username-password pair or user is disabled.");
}

#[test]
fn acl_log_records_denials_and_failed_logins_with_redis_fields() {
    let server = Server::start();
    let mut admin = server.conn();
    ok(&mut admin, &["ACL", "SETUSER", "antirez", "on", ">foo", "+set", "~object:1234", "+multi", "+exec"]);
    let mut user = login(&server, "antirez", "foo");
    for _ in 0..3 {
        err(&mut user, &["GET", "foo"]);
    }
    err(&mut user, &["SET", "somekeynotallowed", "1"]);
    err(&mut admin, &["AUTH", "antirez", "wrong-password"]);
    let log: Vec<Vec<Value>> = redis::cmd("ACL").arg("LOG").query(&mut admin).unwrap();
    let field = |entry: &Vec<Value>, name: &str| -> String {
        let at = entry.iter().position(|v| matches!(v, Value::BulkString(b) if b == name.as_bytes())).expect(name);
        match &entry[at + 1] {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::Int(n) => n.to_string(),
            other => format!("{other:?}"),
        }
    };
    assert_eq!(log.len(), 3);
    assert_eq!(
        (field(&log[0], "reason"), field(&log[0], "object"), field(&log[0], "username")),
        ("auth".into(), "AUTH".into(), "antirez".into())
    );
    assert_eq!((field(&log[1], "reason"), field(&log[1], "object")), ("key".into(), "somekeynotallowed".into()));
    assert_eq!((field(&log[2], "reason"), field(&log[2], "object"), field(&log[2], "count")), ("command".into(), "get".into(), "3".into()));
    assert_eq!(field(&log[2], "context"), "toplevel");
    assert!(field(&log[2], "client-info").contains("id="), "client-info is CLIENT LIST's line");
    let short: Vec<Value> = redis::cmd("ACL").arg("LOG").arg(1).query(&mut admin).unwrap();
    assert_eq!(short.len(), 1);
    ok(&mut admin, &["ACL", "LOG", "RESET"]);
    let empty: Vec<Value> = redis::cmd("ACL").arg("LOG").query(&mut admin).unwrap();
    assert!(empty.is_empty());
    // Inside MULTI the denial dooms the transaction and is logged in that context.
    let mut s = server.raw();
    let got = exchange(&mut s, b"AUTH antirez foo\r\nMULTI\r\nINCR foo\r\nEXEC\r\n", Duration::from_millis(500));
    assert_eq!(
        String::from_utf8_lossy(&got),
        "+OK\r\n+OK\r\n-NOPERM this user has no permissions to run the 'incr' command\r\n-EXECABORT Transaction discarded because of previous errors.\r\n"
    );
    let log: Vec<Vec<Value>> = redis::cmd("ACL").arg("LOG").query(&mut admin).unwrap();
    assert_eq!(field(&log[0], "context"), "multi");
}

#[test]
fn getuser_list_users_and_cat_describe_users_as_redis_does() {
    let server = Server::start();
    let mut con = server.conn();
    ok(&mut con, &["ACL", "SETUSER", "u1", "on", ">p", "~a*", "%R~b*", "&ch", "+get", "-@all", "+set", "(+get ~x*)"]);
    let list: Vec<String> = redis::cmd("ACL").arg("LIST").query(&mut con).unwrap();
    assert_eq!(
        list,
        [
            "user default on nopass ~* &* +@all",
            "user u1 on #148de9c5a7a44d19e56cd9ae1a554bf67847afb0c58f6e12fa29ac7ddfca9940 ~a* %R~b* resetchannels &ch -@all +set (~x* resetchannels -@all +get)"
        ]
    );
    let users: Vec<String> = redis::cmd("ACL").arg("USERS").query(&mut con).unwrap();
    assert_eq!(users, ["default", "u1"]);
    let user: Vec<Value> = redis::cmd("ACL").arg("GETUSER").arg("u1").query(&mut con).unwrap();
    let text = format!("{user:?}");
    assert!(text.contains("148de9c5a7a44d19e56cd9ae1a554bf67847afb0c58f6e12fa29ac7ddfca9940") && !text.contains("\"p\""), "{text}");
    let none: Value = redis::cmd("ACL").arg("GETUSER").arg("nobody").query(&mut con).unwrap();
    assert_eq!(none, Value::Nil);
    let cats: Vec<String> = redis::cmd("ACL").arg("CAT").query(&mut con).unwrap();
    assert_eq!(cats.len(), 21);
    let tx: Vec<String> = redis::cmd("ACL").arg("CAT").arg("transaction").query(&mut con).unwrap();
    assert!(tx.contains(&"multi".to_string()) && !tx.contains(&"get".to_string()));
    assert_eq!(err(&mut con, &["ACL", "CAT", "NON_EXISTS"]), "ERR Unknown category 'NON_EXISTS'");
    let pass: String = redis::cmd("ACL").arg("GENPASS").query(&mut con).unwrap();
    assert_eq!(pass.len(), 64);
    let pass: String = redis::cmd("ACL").arg("GENPASS").arg(5).query(&mut con).unwrap();
    assert_eq!(pass.len(), 2);
    assert!(err(&mut con, &["ACL", "GENPASS", "5000"]).contains("ACL GENPASS argument must be the number of bits"));
    let dry: String = redis::cmd("ACL").arg("DRYRUN").arg("u1").arg("get").arg("zzz").query(&mut con).unwrap();
    assert_eq!(dry, "This user has no permissions to access the 'zzz' key");
    ok(&mut con, &["ACL", "DRYRUN", "u1", "set", "a1", "v"]);
    assert_eq!(err(&mut con, &["ACL", "DRYRUN", "nobody", "get", "x"]), "ERR User 'nobody' not found");
    assert_eq!(err(&mut con, &["ACL", "HELP", "xxx"]), "ERR wrong number of arguments for 'acl|help' command");
    assert_eq!(err(&mut con, &["ACL", "SAVE"]).split('.').next(), Some("ERR This Redis instance is not configured to use an ACL file"));
}

#[test]
fn bad_rules_are_refused_whole_and_hostile_ones_never_hurt_the_server() {
    let server = Server::start();
    let mut con = server.conn();
    assert_eq!(
        err(&mut con, &["ACL", "SETUSER", "x", "on", "+nosuchcommand"]),
        "ERR Error in ACL SETUSER modifier '+nosuchcommand': Unknown command or category name in ACL"
    );
    let users: Vec<String> = redis::cmd("ACL").arg("USERS").query(&mut con).unwrap();
    assert_eq!(users, ["default"], "nothing of a refused SETUSER applied");
    assert_eq!(err(&mut con, &["ACL", "SETUSER", "a a"]), "ERR Usernames can't contain spaces or null characters");
    assert!(err(&mut con, &["ACL", "SETUSER", "x", "(+get", "~a"]).contains("Unmatched parenthesis in acl selector starting at '(+get'."));
    assert_eq!(err(&mut con, &["ACL", "DELUSER", "default"]), "ERR The 'default' user cannot be removed");
    // A huge password, a huge pattern, binary junk: refused or stored, never a crash.
    let huge = "p".repeat(1 << 20);
    let _: Value = redis::cmd("ACL").arg("SETUSER").arg("big").arg(format!(">{huge}")).arg(format!("~{huge}")).query(&mut con).unwrap();
    let _ = redis::cmd("ACL").arg("SETUSER").arg("junk").arg(&b"\x00\xff(\xfe"[..]).arg(&b"%\xff~x"[..]).query::<Value>(&mut con);
    let _ = redis::cmd("ACL").arg("SETUSER").arg("junk").arg("(").arg(")").arg("((").arg("))").query::<Value>(&mut con);
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn default_user_off_or_restricted_and_deleted_users_behave_as_in_redis() {
    let server = Server::start();
    let mut admin = server.conn();
    ok(&mut admin, &["ACL", "SETUSER", "root", "on", ">rootpw", "+@all", "~*", "&*"]);
    let mut admin = login(&server, "root", "rootpw");
    ok(&mut admin, &["ACL", "SETUSER", "default", "off"]);
    let mut s = server.raw();
    let got = exchange(&mut s, b"GET k\r\n", Duration::from_millis(300));
    assert_eq!(String::from_utf8_lossy(&got), "-NOAUTH Authentication required.\r\n", "a new connection is not logged in");
    let got = exchange(&mut s, b"HELLO 2 AUTH root rootpw\r\nACL WHOAMI\r\n", Duration::from_millis(300));
    assert!(String::from_utf8_lossy(&got).ends_with("$4\r\nroot\r\n"));
    ok(&mut admin, &["ACL", "SETUSER", "default", "on", "nopass", "-@all"]);
    let mut d = server.conn();
    assert_eq!(err(&mut d, &["GET", "k"]), "NOPERM this user has no permissions to run the 'get' command");
    // A connection whose user is deleted is closed.
    ok(&mut admin, &["ACL", "SETUSER", "temp", "on", "nopass", "+@all"]);
    let mut t = server.raw();
    let got = exchange(&mut t, b"AUTH temp x\r\n", Duration::from_millis(300));
    assert_eq!(String::from_utf8_lossy(&got), "+OK\r\n");
    let n: i64 = redis::cmd("ACL").arg("DELUSER").arg("temp").query(&mut admin).unwrap();
    assert_eq!(n, 1);
    assert!(closed_by_server(&mut t, Duration::from_secs(5)), "closed when its user is deleted, without a command");
    // A client that deletes its own user gets the reply, then is closed.
    ok(&mut admin, &["ACL", "SETUSER", "self", "on", "nopass", "+@all"]);
    let mut me = server.raw();
    let got = exchange(&mut me, b"AUTH self x\r\nACL DELUSER self\r\n", Duration::from_millis(300));
    assert_eq!(String::from_utf8_lossy(&got), "+OK\r\n:1\r\n");
    assert!(closed_by_server(&mut me, Duration::from_secs(5)));
}

#[test]
fn requirepass_is_the_default_users_password_and_acl_can_take_it_over() {
    let server = Server::start();
    let mut admin = server.conn();
    ok(&mut admin, &["CONFIG", "SET", "requirepass", "s3cret"]);
    let mut s = server.raw();
    let got = exchange(&mut s, b"GET k\r\nAUTH default s3cret\r\nACL LIST\r\n", Duration::from_millis(300));
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("-NOAUTH Authentication required.\r\n+OK\r\n"), "{text}");
    // The password is shown as its hash, never as text.
    assert!(text.contains("user default on #") && !text.contains("s3cret"), "{text}");
    // The first ACL change logs the configured default user first: its password stays.
    let got = exchange(&mut s, b"ACL SETUSER default >second\r\nAUTH s3cret\r\nAUTH second\r\n", Duration::from_millis(500));
    assert_eq!(String::from_utf8_lossy(&got), "+OK\r\n+OK\r\n+OK\r\n");
    // CONFIG SET requirepass then replaces the default user's passwords, as in Redis.
    let got = exchange(&mut s, b"CONFIG SET requirepass third\r\nAUTH second\r\nAUTH third\r\n", Duration::from_millis(500));
    assert_eq!(String::from_utf8_lossy(&got), "+OK\r\n-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n");
    let got = exchange(&mut s, b"CONFIG SET requirepass \"\"\r\nACL GETUSER default\r\n", Duration::from_millis(500));
    assert!(
        String::from_utf8_lossy(&got).starts_with("+OK\r\n*12\r\n$5\r\nflags\r\n*2\r\n$2\r\non\r\n$6\r\nnopass\r\n"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn scripts_calls_are_checked_against_the_callers_user() {
    let server = Server::start();
    let mut admin = server.conn();
    ok(&mut admin, &["ACL", "SETUSER", "scr", "on", "nopass", "+eval", "+eval_ro", "+get", "~a*"]);
    let mut scr = login(&server, "scr", "x");
    let e = err(&mut scr, &["EVAL", "return redis.call('incr','a1')", "0"]);
    assert!(e.starts_with("ERR The user executing the script can't run this command or subcommand"), "{e}");
    let e = err(&mut scr, &["EVAL", "return redis.call('get','b1')", "0"]);
    assert!(e.contains("can't access at least one of the keys mentioned in the command arguments"), "{e}");
    let got: Option<String> = redis::cmd("EVAL").arg("return redis.call('get','a1')").arg(0).query(&mut scr).unwrap();
    assert_eq!(got, None);
    let e = err(&mut scr, &["EVAL_RO", "return redis.call('get','b1')", "0"]);
    assert!(e.contains("can't access at least one of the keys"), "{e}");
    // The wrapper cannot be used to run a script as someone else.
    let e = err(&mut scr, &["TANDEM.ASUSER", "default", "EVAL", "return 1", "0"]);
    assert!(e.starts_with("NOPERM"), "{e}");
}

/// A restartable server whose config names an aclfile.
fn server_with_aclfile(users: &str) -> (tempfile::TempDir, support::ConfigServer, u16) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, port) = support::write_single_server_config(dir.path(), true);
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, text.replace("[cluster]\n", "[cluster]\naclfile = \"users.acl\"\n")).expect("config");
    std::fs::write(dir.path().join("users.acl"), users).expect("aclfile");
    let server = support::ConfigServer::start(dir.path(), &config, "server1", port);
    (dir, server, port)
}

fn raw_exchange(port: u16, bytes: &[u8]) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    String::from_utf8_lossy(&exchange(&mut s, bytes, Duration::from_millis(400))).into_owned()
}

#[test]
fn the_aclfile_loads_at_first_start_and_acl_save_and_load_use_it() {
    const USERS: &str = "user admin on >adminpw ~* &* +@all\nuser default on nopass -@all +ping\n";
    let (dir, mut server, port) = server_with_aclfile(USERS);
    let loaded = || raw_exchange(port, b"AUTH admin adminpw\r\n") == "+OK\r\n";
    assert!(support::wait_until(Duration::from_secs(10), loaded), "the file's users are the stripe's");
    assert_eq!(raw_exchange(port, b"GET k\r\n"), "-NOPERM this user has no permissions to run the 'get' command\r\n");
    assert_eq!(raw_exchange(port, b"AUTH admin adminpw\r\nACL SETUSER extra on nopass +get ~*\r\nACL SAVE\r\n"), "+OK\r\n+OK\r\n+OK\r\n");
    let saved = std::fs::read_to_string(dir.path().join("users.acl")).expect("saved");
    assert!(saved.contains("user extra on nopass ~* resetchannels -@all +get\n"), "{saved}");
    std::fs::write(dir.path().join("users.acl"), USERS).expect("rewrite");
    assert_eq!(
        raw_exchange(port, b"AUTH admin adminpw\r\nACL LOAD\r\nACL USERS\r\n"),
        "+OK\r\n+OK\r\n*2\r\n$5\r\nadmin\r\n$7\r\ndefault\r\n"
    );
    std::fs::write(dir.path().join("users.acl"), "user bad on +nosuch\n").expect("rewrite");
    let refused = raw_exchange(port, b"AUTH admin adminpw\r\nACL LOAD\r\nACL USERS\r\n");
    assert!(
        refused.starts_with("+OK\r\n-ERR 1: Error in ACL SETUSER modifier '+nosuch'") && refused.ends_with("$7\r\ndefault\r\n"),
        "{refused}"
    );
    // Restarted from its data, the stripe keeps its users: the file is read only at first start.
    std::fs::write(dir.path().join("users.acl"), "user other on nopass +@all ~*\n").expect("rewrite");
    server.restart();
    assert_eq!(raw_exchange(port, b"AUTH admin adminpw\r\nACL USERS\r\n"), "+OK\r\n*2\r\n$5\r\nadmin\r\n$7\r\ndefault\r\n");
}

#[test]
fn subscribers_are_closed_when_their_channels_are_revoked_and_kept_otherwise() {
    let server = Server::start();
    let mut admin = server.conn();
    ok(&mut admin, &["ACL", "SETUSER", "psuser", "on", "nopass", "+@all", "resetchannels", "&foo", "&bar*"]);
    let mut sub = server.raw();
    let got = exchange(&mut sub, b"AUTH psuser x\r\nSUBSCRIBE foo\r\nPSUBSCRIBE bar*\r\n", Duration::from_millis(400));
    assert!(String::from_utf8_lossy(&got).ends_with("*3\r\n$10\r\npsubscribe\r\n$4\r\nbar*\r\n:2\r\n"));
    // Keeping the literal permissions (and gaining more) pardons the subscriber.
    ok(&mut admin, &["ACL", "SETUSER", "psuser", "&other"]);
    let n: i64 = redis::cmd("PUBLISH").arg("foo").arg("still").query(&mut admin).unwrap();
    assert_eq!(n, 1, "the subscriber is still there");
    ok(&mut admin, &["ACL", "SETUSER", "psuser", "resetchannels", "&foo"]);
    assert!(closed_by_server(&mut sub, Duration::from_secs(5)), "its pattern was revoked");
}

#[test]
fn an_aclfile_without_default_keeps_requirepass_as_its_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, port) = support::write_single_server_config(dir.path(), true);
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace("[cluster]\n", "[cluster]\naclfile = \"users.acl\"\nrequirepass = \"s3cret\"\n");
    std::fs::write(&config, text).expect("config");
    std::fs::write(dir.path().join("users.acl"), "user app on >apppw +get ~*\n").expect("aclfile");
    let _server = support::ConfigServer::start_unready(dir.path(), &config, "server1", port);
    let loaded = || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && raw_exchange(port, b"AUTH app apppw\r\n") == "+OK\r\n";
    assert!(support::wait_until(Duration::from_secs(20), loaded), "the file's users are the stripe's");
    assert_eq!(raw_exchange(port, b"GET k\r\n"), "-NOAUTH Authentication required.\r\n", "default still needs its password");
    assert_eq!(raw_exchange(port, b"AUTH default s3cret\r\nACL WHOAMI\r\n"), "+OK\r\n$7\r\ndefault\r\n");
}

/// `redis.acl_check_cmd` answers for the user running the script (Redis's scripting
/// unit "Script ACL check"); it answered true for any known command.
#[test]
fn acl_check_cmd_answers_for_the_scripts_user() {
    let server = Server::start();
    let mut admin = server.conn();
    ok(&mut admin, &["ACL", "SETUSER", "bob", "on", ">123", "+@scripting", "+set", "~x*"]);
    let mut bob = login(&server, "bob", "123");
    let check = |con: &mut Connection, script: &str, keys: &[&str]| -> Value {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script).arg(keys.len());
        for k in keys {
            cmd.arg(*k);
        }
        cmd.query(con).unwrap_or_else(|e| panic!("{script}: {e}"))
    };
    assert_eq!(check(&mut bob, "return redis.acl_check_cmd('set','xx',1)", &["xx"]), Value::Int(1));
    assert_eq!(check(&mut bob, "return redis.acl_check_cmd('hset','xx','f',1)", &["xx"]), Value::Nil);
    assert_eq!(check(&mut bob, "return redis.acl_check_cmd('set','yy',1)", &[]), Value::Nil);
    let e = err(&mut bob, &["EVAL", "return redis.acl_check_cmd('invalid-cmd','arg')", "0"]);
    assert!(e.starts_with("ERR ") && e.contains("Invalid command passed to redis.acl_check_cmd()"), "{e}");
    // The default user may run everything.
    assert_eq!(check(&mut admin, "return redis.acl_check_cmd('hset','yy','f',1)", &[]), Value::Int(1));
}
