//! HAProxy run by a test: the config it is given, in a directory of its own, killed
//! when dropped. Needs haproxy (`bash scripts/test-deps.sh` installs it).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::cluster::Cluster;

pub struct Haproxy {
    child: Child,
    dir: tempfile::TempDir,
}

impl Haproxy {
    /// A directory for the config and whatever it names (an admin socket): HAProxy
    /// is started in it by [`Haproxy::start`].
    pub fn dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    /// Writes `config` into `dir` and runs HAProxy on it in the foreground (`-db`).
    pub fn start(dir: tempfile::TempDir, config: &str) -> Haproxy {
        let program = super::management::require_program("haproxy");
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).expect("write haproxy.cfg");
        let child =
            Command::new(program).arg("-db").arg("-f").arg(&path).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("run haproxy");
        Haproxy { child, dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A backend's `server` lines for every member of `cluster`: its client port, health
/// checked on its management port every 200 ms (one failure marks it down, one
/// success up).
pub fn server_lines(cluster: &Cluster) -> String {
    cluster
        .members
        .iter()
        .map(|m| format!("  server {} {}:{} check port {} inter 200 fall 1 rise 1\n", m.name, m.host, m.client_port, m.management_port))
        .collect()
}
