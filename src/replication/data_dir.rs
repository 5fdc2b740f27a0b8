//! A server's data directory: a lock (a second server on the same directory refuses
//! to start and names the process holding it), a format version, and the paths of
//! the log and snapshots. Clearing it is explicit (`tandem clear-data`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Bumped when the layout or an on-disk format changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

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
        Ok(DataDir { path: path.to_path_buf(), _lock: lock })
    }

    /// This member's Raft node id, kept in `NODE_ID`: made by `fresh` (and stored
    /// durably) the first time, the same on every restart after.
    pub fn node_id(&self, fresh: impl FnOnce() -> u64) -> Result<u64, DataDirError> {
        let path = self.path.join("NODE_ID");
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

    /// Removes everything in the directory (it must not be in use).
    pub fn clear(path: &Path) -> Result<(), DataDirError> {
        let dir = DataDir::open(path)?;
        let io = |source| DataDirError::Io { dir: path.to_path_buf(), source };
        for sub in ["raft", "snapshots"] {
            let p = dir.path.join(sub);
            if p.exists() {
                std::fs::remove_dir_all(&p).map_err(io)?;
            }
        }
        // Cleared data is a new member: it must not vote under its old id.
        match std::fs::remove_file(dir.path.join("NODE_ID")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        Ok(())
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

    #[test]
    fn an_unknown_format_version_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("FORMAT"), "99").unwrap();
        let err = DataDir::open(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("format version 99"), "{err}");
    }
}
