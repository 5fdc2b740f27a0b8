//! The management port of one server against hostile and careless HTTP clients, its
//! documented routes, and its metrics checked by Prometheus's own `promtool`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::management::{http, require_program, TOKEN};
use support::{binary, free_ports, wait_until};

/// A development-topology server with its management port on.
struct Single {
    child: Child,
    client_port: u16,
    management_port: u16,
    _dir: tempfile::TempDir,
}

impl Single {
    fn start() -> Single {
        let dir = tempfile::tempdir().expect("tempdir");
        let [client_port, group_port, management_port] = free_ports(3)[..] else { unreachable!("three ports") };
        let config = dir.path().join("tandem.toml");
        let text = format!(
            "[cluster]\nname = \"test\"\nmanagement-token = \"{TOKEN}\"\n\n[[stripe]]\nname = \"A\"\n\n[[stripe.server]]\nname = \"server1\"\nclient-port = {client_port}\ngroup-port = {group_port}\nmanagement-port = {management_port}\ndata = \"data/server1\"\n"
        );
        std::fs::write(&config, text).expect("write the config");
        let child = Command::new(binary())
            .args(["server", "--name", "server1", "--config"])
            .arg(&config)
            .current_dir(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tandem");
        let single = Single { child, client_port, management_port, _dir: dir };
        let ready = wait_until(Duration::from_secs(20), || http().get(single.url("/readyz")).send().is_ok_and(|r| r.status() == 200));
        assert!(ready, "the server did not become ready");
        single
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.management_port)
    }

    fn redis(&self) -> redis::Connection {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.client_port)).expect("client");
        let con = client.get_connection().expect("connect");
        con.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        con
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Single {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (status, JSON body) of a request.
fn json(request: reqwest::blocking::RequestBuilder) -> (u16, serde_json::Value) {
    let answer = request.send().expect("an answer");
    let status = answer.status().as_u16();
    let body = answer.json::<serde_json::Value>().expect("a JSON body");
    (status, body)
}

#[test]
fn bad_input_gets_json_errors_and_never_disturbs_clients() {
    let mut server = Single::start();
    let client = http();
    let cases: Vec<(&str, reqwest::blocking::RequestBuilder, u16, &str)> = vec![
        ("unknown server", client.get(server.url("/api/v1/servers/nobody")), 404, "unknown_server"),
        ("unknown server's clients", client.get(server.url("/api/v1/servers/nobody/clients")), 404, "unknown_server"),
        ("unknown stripe", client.get(server.url("/api/v1/stripes/Z")), 404, "unknown_stripe"),
        ("unknown route", client.get(server.url("/api/v2/cluster")), 404, "no_route"),
        ("wrong method", client.delete(server.url("/api/v1/cluster")), 405, "method_not_allowed"),
        ("bad query", client.get(server.url("/readyz?role=voter")), 400, "bad_request"),
        ("bad number", client.get(server.url("/api/v1/events?limit=-3")), 400, "bad_request"),
        ("unknown query field", client.get(server.url("/api/v1/events?sinse=3")), 400, "bad_request"),
        // The token is checked first: a caller without it learns nothing from its body.
        ("malformed JSON, no token", client.post(server.url("/api/v1/shutdown")).body("{not json"), 401, "unauthorized"),
        ("malformed JSON", client.post(server.url("/api/v1/shutdown")).bearer_auth(TOKEN).body("{not json"), 400, "bad_request"),
        (
            "unknown field",
            client.post(server.url("/api/v1/servers/server1/stop")).bearer_auth(TOKEN).body("{\"forse\": true}"),
            400,
            "bad_request",
        ),
        (
            "wrong type",
            client.post(server.url("/api/v1/servers/server1/stop")).bearer_auth(TOKEN).body("{\"force\": \"yes\"}"),
            400,
            "bad_request",
        ),
        // Over the 64 KiB limit, small enough to be sent whole before the answer.
        ("huge body", client.post(server.url("/api/v1/shutdown")).bearer_auth(TOKEN).body(vec![b'x'; 128 << 10]), 413, "body_too_large"),
    ];
    for (what, request, status, code) in cases {
        let (got, body) = json(request);
        assert_eq!((got, body["error"]["code"].as_str()), (status, Some(code)), "{what}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
    }
    let mut con = server.redis();
    let pong: String = redis::cmd("PING").query(&mut con).expect("PING");
    assert_eq!(pong, "PONG");

    // Slow clients: each holds a connection; the server answers everyone else meanwhile.
    let mut slow: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", server.management_port)).expect("connect");
            s.write_all(b"GET /api/v1/clu").expect("a first piece");
            s
        })
        .collect();
    let mut slow_body = TcpStream::connect(("127.0.0.1", server.management_port)).expect("connect");
    slow_body.write_all(b"POST /api/v1/shutdown HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{").expect("headers");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let _: String = redis::cmd("SET").arg("k").arg("v").query(&mut con).expect("SET while slow clients hang on");
        let (status, _) = json(http().get(server.url("/healthz")));
        assert_eq!(status, 200);
    }
    // The body never completes: a JSON 408 once the body's time is up.
    slow_body.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut answer = String::new();
    let _ = slow_body.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"timeout\""), "{answer}");
    // Headers that never complete: the connection is closed.
    for s in slow.iter_mut() {
        s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let mut buf = [0u8; 256];
        let closed = matches!(s.read(&mut buf), Ok(0) | Err(_)) || matches!(s.read(&mut buf), Ok(0) | Err(_));
        assert!(closed, "a client that never finished its headers still holds a connection");
    }
    assert!(server.alive(), "the server died");
    let (status, _) = json(http().get(server.url("/api/v1/cluster")));
    assert_eq!(status, 200);
}

#[test]
fn every_documented_route_is_served_and_every_route_documented() {
    let server = Single::start();
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).expect("docs/api.md");
    let (_, index) = json(http().get(server.url("/api/v1")));
    let routes = index["routes"].as_array().expect("the route list");
    let documented: Vec<String> =
        docs.lines().filter_map(|l| l.strip_prefix("### `")).filter_map(|l| l.strip_suffix('`')).map(str::to_string).collect();
    let served: Vec<String> = routes.iter().map(|r| format!("{} {}", r["method"].as_str().unwrap(), r["path"].as_str().unwrap())).collect();
    assert_eq!(documented, served, "docs/api.md's `### `METHOD path`` headings must match the route table");
    for route in routes {
        let (method, path) = (route["method"].as_str().unwrap(), route["path"].as_str().unwrap());
        let path = path.replace("{server}", "server1").replace("{stripe}", "A");
        let request = match method {
            "GET" if path == "/api/v1/live" => continue, // a stream: covered by the console test
            "GET" => http().get(server.url(&path)),
            // Without a token: answered (401), not "no such route".
            _ => http().post(server.url(&path)),
        };
        let answer = request.send().expect("an answer");
        let status = answer.status().as_u16();
        assert!(status == 200 || (method == "POST" && status == 401), "{method} {path}: {status}");
    }
}

#[test]
fn metrics_pass_promtool_check_metrics() {
    let promtool = require_program("promtool");
    let server = Single::start();
    let mut con = server.redis();
    for i in 0..100 {
        let _: () = redis::cmd("SET").arg(format!("k{i}")).arg(i).query(&mut con).expect("SET");
    }
    let _: redis::RedisResult<()> = redis::cmd("LPUSH").arg("k1").arg("x").query(&mut con);
    let text = http().get(server.url("/metrics")).send().expect("a scrape").text().expect("text");
    for name in [
        "tandem_commands_total{command=\"set\"} 100",
        "tandem_command_errors_total{command=\"lpush\",error=\"WRONGTYPE\"} 1",
        "tandem_keys 100",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    // Every metric the Grafana dashboard plots is one the server exports.
    let dashboard = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/grafana/tandem.json")).expect("the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    for expr in exprs {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("tandem_")) {
            let family = ["_bucket", "_sum", "_count"].iter().find_map(|suffix| word.strip_suffix(suffix)).unwrap_or(word);
            assert!(text.contains(&format!("# TYPE {family} ")), "the dashboard plots {word}, which /metrics does not export");
        }
    }
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    check.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("feed promtool");
    let out = check.wait_with_output().expect("promtool's verdict");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- scrape:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
