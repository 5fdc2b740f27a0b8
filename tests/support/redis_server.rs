//! A redis-server 7.0.15 of a test's own on a free port, for differential tests
//! (killed on drop). REDIS_SERVER names the binary (default: /usr/bin/redis-server,
//! then PATH).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, wait_until};

pub struct RedisServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_binary() -> PathBuf {
    if let Ok(path) = std::env::var("REDIS_SERVER") {
        return PathBuf::from(path);
    }
    let default = PathBuf::from("/usr/bin/redis-server");
    if default.exists() {
        return default;
    }
    let found = Command::new("sh").arg("-c").arg("command -v redis-server").output().ok().filter(|o| o.status.success());
    match found {
        Some(o) => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        None => panic!("redis-server not found: install it (scripts/test-deps.sh does) or set REDIS_SERVER"),
    }
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let child = Command::new(redis_binary())
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let server = RedisServer { child, port, _dir: dir };
        let url = server.url(2);
        assert!(
            wait_until(Duration::from_secs(10), || redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection())
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok()),
            "redis-server did not answer PING"
        );
        server
    }

    pub fn url(&self, protocol: u8) -> String {
        format!("redis://127.0.0.1:{}/?protocol=resp{protocol}", self.port)
    }
}
