//! A server's data directory: a lock (a second server on the same directory refuses
//! to start and names the process holding it), a format version, and the paths of
//! the log and snapshots. Clearing it is explicit (`tandem clear-data`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Bumped when the layout or an on-disk format changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;
/// This member's Raft node id (see [`DataDir::node_id`]).
const NODE_ID: &str = "NODE_ID";
/// Present while `clear-data` runs: a start that finds it finishes the clear.
const CLEARING: &str = "CLEARING";

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("data directory {dir} is in use by another Tandem server (pid {pid}); servers never share a data directory")]
    Locked { dir: PathBuf, pid: String },
    #[error("data directory {dir} has format version {found}; this build reads version {FORMAT_VERSION}")]
    Version { dir: PathBuf, found: String },
    #[error("data directory {dir}: {source}")]
    Io { dir: PathBuf, source: std::io::Error },
}

/// An open, locked data directory. The lock is released when this is dropped (or
/// the process dies, which is what makes it safe after `kill -9`).
#[derive(Debug)]
pub struct DataDir {
    pub path: PathBuf,
    _lock: File,
}

impl DataDir {
    pub fn open(path: &Path) -> Result<DataDir, DataDirError> {
        let io = |source| DataDirError::Io { dir: path.to_path_buf(), source };
        std::fs::create_dir_all(path).map_err(io)?;
        let mut lock = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path.join("LOCK")).map_err(io)?;
        if lock.try_lock().is_err() {
            let mut pid = String::new();
            let _ = lock.read_to_string(&mut pid);
            return Err(DataDirError::Locked { dir: path.to_path_buf(), pid: pid.trim().to_string() });
        }
        lock.set_len(0).and_then(|_| lock.rewind()).and_then(|_| write!(lock, "{}", std::process::id())).map_err(io)?;
        let format = path.join("FORMAT");
        match std::fs::read_to_string(&format) {
            Ok(found) if found.trim() == FORMAT_VERSION.to_string() => {}
            Ok(found) => return Err(DataDirError::Version { dir: path.to_path_buf(), found: found.trim().to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                super::log_store::write_atomically(&format, FORMAT_VERSION.to_string().as_bytes()).map_err(io)?;
            }
            Err(e) => return Err(io(e)),
        }
        let dir = DataDir { path: path.to_path_buf(), _lock: lock };
        if dir.path.join(CLEARING).exists() {
            tracing::warn!(dir = %path.display(), "an earlier clear-data was interrupted; finishing it");
            dir.clear_locked()?;
        }
        Ok(dir)
    }

    /// This member's Raft node id, kept in `NODE_ID`: made by `fresh` (and stored
    /// durably) the first time, the same on every restart after.
    pub fn node_id(&self, fresh: impl FnOnce() -> u64) -> Result<u64, DataDirError> {
        let path = self.path.join(NODE_ID);
        let io = |source| DataDirError::Io { dir: self.path.clone(), source };
        match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map_err(|_| {
                io(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} does not hold a node id: {text:?}", path.display())))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = fresh();
                super::log_store::write_atomically(&path, id.to_string().as_bytes()).map_err(io)?;
                Ok(id)
            }
            Err(e) => Err(io(e)),
        }
    }

    pub fn raft_dir(&self) -> PathBuf {
        self.path.join("raft")
    }

    pub fn snapshot_dir(&self) -> PathBuf {
        self.path.join("snapshots")
    }

    /// Removes the server's data: its node id, log and snapshots (the directory must
    /// not be in use).
    pub fn clear(path: &Path) -> Result<(), DataDirError> {
        DataDir::open(path)?.clear_locked()
    }

    /// Clears in an order that a crash at any point leaves safe, each step made
    /// durable (directory fsync) before the next:
    ///
    /// 1. `CLEARING` is written: from now on any start finishes the clear first.
    /// 2. `NODE_ID` goes. Cleared data is a new member and must never vote under its
    ///    old id; were the log (which holds the vote) removed first, a crash would
    ///    leave the old id with no record of its vote, free to vote twice in a term.
    /// 3. The log and snapshots go.
    /// 4. `CLEARING` goes.
    fn clear_locked(&self) -> Result<(), DataDirError> {
        let io = |source| DataDirError::Io { dir: self.path.clone(), source };
        let sync = || super::log_file::sync_dir(&self.path).map_err(|e| io(std::io::Error::other(e.to_string())));
        let marker = self.path.join(CLEARING);
        if !marker.exists() {
            super::log_store::write_atomically(&marker, b"clear-data in progress\n").map_err(io)?;
        }
        remove_if_present(&self.path.join(NODE_ID)).map_err(io)?;
        sync()?;
        for sub in [self.raft_dir(), self.snapshot_dir()] {
            if sub.exists() {
                std::fs::remove_dir_all(&sub).map_err(io)?;
            }
        }
        sync()?;
        remove_if_present(&marker).map_err(io)?;
        sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_the_same_directory_is_refused_with_the_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let first = DataDir::open(tmp.path()).unwrap();
        // File locks are per open file description: a second open in this process conflicts too.
        let err = DataDir::open(tmp.path()).unwrap_err();
        assert!(err.to_string().contains(&format!("pid {}", std::process::id())), "{err}");
        drop(first);
        assert!(DataDir::open(tmp.path()).is_ok());
    }

    /// Finding 6 of issue 9: `clear-data` removed `raft/` before `NODE_ID`. Failing
    /// the step after the node id shows the order: the old id must already be gone.
    #[test]
    fn issue_9_clear_data_removes_the_node_id_before_the_log() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let dir = DataDir::open(tmp.path()).unwrap();
            assert_eq!(dir.node_id(|| 42).unwrap(), 42);
        }
        // A `raft` that is a file, not a directory: removing the log fails.
        std::fs::write(tmp.path().join("raft"), b"in the way").unwrap();
        assert!(DataDir::clear(tmp.path()).is_err(), "removing a file as a directory must fail");
        assert!(!tmp.path().join(NODE_ID).exists(), "the node id outlived a failed removal of the log");
        // The next start finishes the interrupted clear before anything else.
        std::fs::remove_file(tmp.path().join("raft")).unwrap();
        std::fs::create_dir_all(tmp.path().join("raft")).unwrap();
        std::fs::write(tmp.path().join("raft").join("log-00000000000000000001.seg"), b"old log").unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        assert!(!dir.raft_dir().exists(), "the interrupted clear was not finished");
        assert!(!tmp.path().join(CLEARING).exists());
        assert_eq!(dir.node_id(|| 43).unwrap(), 43, "a cleared directory gets a new node id");
    }

    #[test]
    fn clear_data_removes_node_id_log_and_snapshots() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let dir = DataDir::open(tmp.path()).unwrap();
            dir.node_id(|| 42).unwrap();
            std::fs::create_dir_all(dir.raft_dir()).unwrap();
            std::fs::create_dir_all(dir.snapshot_dir()).unwrap();
        }
        DataDir::clear(tmp.path()).unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        assert!(!dir.raft_dir().exists() && !dir.snapshot_dir().exists() && !tmp.path().join(CLEARING).exists());
        assert_eq!(dir.node_id(|| 7).unwrap(), 7);
    }

    #[test]
    fn an_unknown_format_version_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("FORMAT"), "99").unwrap();
        let err = DataDir::open(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("format version 99"), "{err}");
    }
}
