//! A client's MULTI/WATCH state: one machine whatever the stripe that will run it.
//! Commands are queued here, on the server the client is connected to; EXEC then
//! runs the whole transaction where its keys live — as one entry of this server's
//! stripe, or shipped in one piece (MULTI … EXEC) to another server's active. WATCH
//! is taken where the keys live too: on this server's store, or on the upstream to
//! that stripe's active, which holds it until EXEC.

use bytes::Bytes;

use super::request::Request;
use crate::protocol::reply::Reply;
use crate::store::watch::WatchStamp;

/// EXEC refused as a whole (a busy script, no room under `maxmemory`): Redis's
/// EXECABORT naming the reason; the transaction is discarded.
pub fn exec_refused(why: Reply) -> Reply {
    match why {
        Reply::Error(why) => Reply::error(format!("EXECABORT Transaction discarded because of: {why}")),
        other => other,
    }
}

/// Commands queued since MULTI.
#[derive(Default)]
pub struct Queue {
    pub cmds: Vec<Request>,
    /// A command was refused while queueing: EXEC answers EXECABORT.
    pub failed: bool,
    /// EXEC itself was refused (a busy script): it answers EXECABORT naming why, and
    /// the transaction is gone, as in Redis.
    pub refused_exec: Option<Reply>,
}

/// Where the keys a client watches are watched.
#[derive(Debug, Default)]
pub enum Watch {
    #[default]
    None,
    /// On this server's store, each key with the stamp of what this server (the
    /// active) had applied at WATCH; EXEC's entry carries them and apply decides
    /// (`store::watch`).
    Local(Vec<(Bytes, WatchStamp)>),
    /// On the upstream to `stripe`'s active (the connection with this generation):
    /// if that upstream is gone, so is the watch.
    Remote { stripe: usize, generation: u64 },
    /// The watched keys can no longer be checked (the server that held the watch
    /// changed): the next EXEC answers nil, as if a key had changed.
    Lost,
}

#[derive(Default)]
pub struct Transaction {
    pub queue: Option<Queue>,
    pub watch: Watch,
}

impl Transaction {
    pub fn in_multi(&self) -> bool {
        self.queue.is_some()
    }

    /// MULTI.
    pub fn open(&mut self) -> Result<(), &'static str> {
        if self.queue.is_some() {
            return Err("ERR MULTI calls can not be nested");
        }
        self.queue = Some(Queue::default());
        Ok(())
    }

    /// A command refused while queueing dooms the transaction.
    pub fn fail(&mut self) {
        if let Some(queue) = &mut self.queue {
            queue.failed = true;
        }
    }

    /// EXEC was refused with `why`: EXEC ends the transaction with EXECABORT.
    pub fn refuse_exec(&mut self, why: Reply) {
        if let Some(queue) = &mut self.queue {
            queue.refused_exec = Some(why);
        }
    }

    pub fn push(&mut self, request: Request) {
        if let Some(queue) = &mut self.queue {
            queue.cmds.push(request);
        }
    }

    /// Ends MULTI (EXEC, DISCARD): the queue, if one was open.
    pub fn take(&mut self) -> Option<Queue> {
        self.queue.take()
    }
}
