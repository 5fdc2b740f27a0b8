//! HAProxy in front of a stripe, health-checking each server's `/readyz`: when the
//! active is killed, HAProxy stops sending to it, and the backend that checks
//! `/readyz?role=active` switches to the new active.

mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use support::cluster::{wait_until, Cluster, Spec};
use support::free_ports;
use support::haproxy::server_lines;
use support::management::stripe_with_token;

struct Haproxy {
    process: support::haproxy::Haproxy,
    any_port: u16,
    active_port: u16,
}

impl Haproxy {
    fn start(cluster: &Cluster) -> Haproxy {
        let dir = support::haproxy::Haproxy::dir();
        let socket = dir.path().join("admin.sock");
        let [any_port, active_port] = free_ports(2)[..] else { unreachable!("two ports") };
        let servers = |backend: &str| -> String { server_lines(cluster) + &format!("  # {backend}\n") };
        let config = format!(
            "global\n  maxconn 256\n  stats socket {} level admin\n\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n  retries 2\n  option redispatch\n\n\
             backend any\n  option httpchk GET /readyz\n  http-check expect status 200\n{}\n\
             backend active\n  option httpchk GET /readyz?role=active\n  http-check expect status 200\n{}\n\
             frontend fe_any\n  bind 127.0.0.1:{any_port}\n  default_backend any\n\n\
             frontend fe_active\n  bind 127.0.0.1:{active_port}\n  default_backend active\n",
            socket.display(),
            servers("any: every ready server"),
            servers("active: the active only"),
        );
        Haproxy { process: support::haproxy::Haproxy::start(dir, &config), any_port, active_port }
    }

    /// HAProxy's own view: `status` of `server` in `backend` ("UP", "DOWN"…).
    fn status(&self, backend: &str, server: &str) -> Option<String> {
        let mut s = UnixStream::connect(self.process.path("admin.sock")).ok()?;
        s.write_all(b"show stat\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        text.lines()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|c| c.len() > 17 && c[0] == backend && c[1] == server)
            .map(|c| c[17].to_string())
    }

    /// A fresh connection through the frontend on `port`.
    fn conn(&self, port: u16) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
        let con = client.get_connection_with_timeout(Duration::from_secs(2))?;
        con.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(con)
    }

    /// ROLE's first word on a fresh connection through `port` ("master" on the active).
    fn role(&self, port: u16) -> Option<String> {
        let mut con = self.conn(port).ok()?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut con).ok()?;
        match role.first()? {
            redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            redis::Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        }
    }
}

#[test]
fn haproxy_follows_readyz_through_a_kill_of_the_active() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let mut cluster = stripe_with_token(Spec::servers(3));
    let active = cluster.wait_formed();
    let names: Vec<String> = cluster.members.iter().map(|m| m.name.clone()).collect();
    let haproxy = Haproxy::start(&cluster);

    tracing::info!("--- HAProxy sees every server ready, and only the active as active");
    let settled = wait_until(Duration::from_secs(20), || {
        (0..3).all(|i| haproxy.status("any", &names[i]).as_deref() == Some("UP"))
            && (0..3).all(|i| haproxy.status("active", &names[i]).as_deref() == Some(if i == active { "UP" } else { "DOWN" }))
    });
    assert!(
        settled,
        "HAProxy's view: {:?}",
        (0..3).map(|i| (haproxy.status("any", &names[i]), haproxy.status("active", &names[i]))).collect::<Vec<_>>()
    );
    assert_eq!(haproxy.role(haproxy.active_port).as_deref(), Some("master"));
    let mut con = haproxy.conn(haproxy.any_port).expect("through HAProxy");
    let _: () = redis::cmd("SET").arg("before").arg("1").query(&mut con).expect("a write through any server");

    tracing::info!("--- kill -9 the active: HAProxy marks it down and the active backend moves");
    cluster.kill9(active);
    let down = wait_until(Duration::from_secs(10), || {
        haproxy.status("any", &names[active]).is_some_and(|s| s.starts_with("DOWN"))
            && haproxy.status("active", &names[active]).is_some_and(|s| s.starts_with("DOWN"))
    });
    assert!(down, "HAProxy still sends to the dead server: {:?}", haproxy.status("any", &names[active]));
    let mut new_active = None;
    let moved = wait_until(Duration::from_secs(20), || {
        new_active = (0..3).find(|&i| haproxy.status("active", &names[i]).as_deref() == Some("UP"));
        new_active.is_some_and(|i| i != active) && haproxy.role(haproxy.active_port).as_deref() == Some("master")
    });
    assert!(
        moved,
        "the active backend did not move: {:?}\n{}",
        (0..3).map(|i| haproxy.status("active", &names[i])).collect::<Vec<_>>(),
        cluster.all_stderr()
    );
    tracing::info!(new_active = %names[new_active.expect("found")], "HAProxy's active backend switched");
    for i in 0..20 {
        let mut con = haproxy.conn(haproxy.active_port).unwrap_or_else(|e| panic!("connection {i} through HAProxy: {e}"));
        let _: () = redis::cmd("SET").arg(format!("after{i}")).arg(i).query(&mut con).expect("a write on the new active");
        let mut con = haproxy.conn(haproxy.any_port).unwrap_or_else(|e| panic!("connection {i} through HAProxy: {e}"));
        let before: String = redis::cmd("GET").arg("before").query(&mut con).expect("a read through a live server");
        assert_eq!(before, "1");
    }
}
