//! The runtime openraft runs on in unit tests: tokio, with openraft's randomness drawn
//! from a seed (`DeterministicRng`), and a watch channel that wakes its receivers in
//! the order they started waiting.
//!
//! tokio's own watch channel spreads its waiters over eight queues and picks one
//! with the runtime's RNG, which nothing outside tokio can seed (short of building
//! with `--cfg tokio_unstable`). openraft wakes its heartbeat workers through a
//! watch, so under tokio's watch two followers' heartbeats left in an order no seed
//! decides, and the simulation did not replay (found by the replay test). This
//! watch has one queue; everything else is delegated unchanged.

use std::fmt;
use std::future::Future;
use std::io;
use std::ops::Deref;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::{Poll, Waker};
use std::time::Duration;

use openraft_rt::deterministic_rng::DeterministicRng;
use openraft_rt::watch::{RecvError, SendError, Watch, WatchReceiver, WatchSender};
use openraft_rt::{AsyncRuntime, OptionalSend, OptionalSync};
use openraft_rt_tokio::TokioRuntime;

type Inner = DeterministicRng<TokioRuntime>;

/// `DeterministicRng<TokioRuntime>` with [`FifoWatch`] for its watch channels.
#[derive(Debug)]
pub struct SimRuntime(Inner);

impl SimRuntime {
    /// Runs `f` with `seed` as the root of the randomness of every task it spawns.
    pub fn scope<F: Future>(seed: u64, f: F) -> impl Future<Output = F::Output> {
        Inner::scope(seed, f)
    }
}

impl AsyncRuntime for SimRuntime {
    type JoinError = <Inner as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <Inner as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <Inner as AsyncRuntime>::Sleep;
    type Instant = <Inner as AsyncRuntime>::Instant;
    type TimeoutError = <Inner as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = <Inner as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = <Inner as AsyncRuntime>::ThreadLocalRng;
    type Mpsc = <Inner as AsyncRuntime>::Mpsc;
    type Watch = FifoWatch;
    type Oneshot = <Inner as AsyncRuntime>::Oneshot;
    type Mutex<T: OptionalSend + 'static> = <Inner as AsyncRuntime>::Mutex<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        Inner::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        Inner::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        Inner::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(duration: Duration, future: F) -> Self::Timeout<R, F> {
        Inner::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(deadline: Self::Instant, future: F) -> Self::Timeout<R, F> {
        Inner::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        Inner::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        Inner::thread_rng()
    }

    fn new(threads: usize) -> Self {
        SimRuntime(Inner::new(threads))
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.0.block_on(future)
    }

    fn spawn_blocking<F, T>(f: F) -> impl Future<Output = Result<T, io::Error>> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Inner::spawn_blocking(f)
    }
}

/// A watch channel whose receivers are woken in the order they began to wait.
pub struct FifoWatch;

struct State<T> {
    value: T,
    version: u64,
    senders: usize,
    receivers: usize,
    waiting: Vec<Waker>,
}

struct Shared<T> {
    state: RwLock<State<T>>,
}

impl<T> Shared<T> {
    fn read(&self) -> RwLockReadGuard<'_, State<T>> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State<T>> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes every waiting receiver, first come first woken, outside the lock.
    fn wake_all(&self, mut state: RwLockWriteGuard<'_, State<T>>) {
        let waiting = std::mem::take(&mut state.waiting);
        drop(state);
        waiting.into_iter().for_each(Waker::wake);
    }
}

pub struct FifoSender<T>(Arc<Shared<T>>);

pub struct FifoReceiver<T> {
    shared: Arc<Shared<T>>,
    seen: u64,
}

/// A read view of the current value; like tokio's, never hold it across an `.await`.
pub struct FifoRef<'a, T>(RwLockReadGuard<'a, State<T>>);

impl<T> Deref for FifoRef<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0.value
    }
}

impl<T> fmt::Debug for FifoSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FifoSender")
    }
}

impl Watch for FifoWatch {
    type Sender<T: OptionalSend + OptionalSync> = FifoSender<T>;
    type Receiver<T: OptionalSend + OptionalSync> = FifoReceiver<T>;
    type Ref<'a, T: OptionalSend + 'a> = FifoRef<'a, T>;

    fn channel<T: OptionalSend + OptionalSync>(init: T) -> (FifoSender<T>, FifoReceiver<T>) {
        let state = State { value: init, version: 0, senders: 1, receivers: 1, waiting: Vec::new() };
        let shared = Arc::new(Shared { state: RwLock::new(state) });
        (FifoSender(shared.clone()), FifoReceiver { shared, seen: 0 })
    }
}

impl<T> Clone for FifoSender<T> {
    fn clone(&self) -> Self {
        self.0.write().senders += 1;
        FifoSender(self.0.clone())
    }
}

impl<T> Drop for FifoSender<T> {
    fn drop(&mut self) {
        let mut state = self.0.write();
        state.senders -= 1;
        if state.senders == 0 {
            // Receivers learn that the channel closed.
            self.0.wake_all(state);
        }
    }
}

impl<T> Clone for FifoReceiver<T> {
    fn clone(&self) -> Self {
        self.shared.write().receivers += 1;
        FifoReceiver { shared: self.shared.clone(), seen: self.seen }
    }
}

impl<T> Drop for FifoReceiver<T> {
    fn drop(&mut self) {
        self.shared.write().receivers -= 1;
    }
}

impl<T: OptionalSend + OptionalSync> WatchSender<FifoWatch, T> for FifoSender<T> {
    fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut state = self.0.write();
        if state.receivers == 0 {
            return Err(SendError(value));
        }
        state.value = value;
        state.version += 1;
        self.0.wake_all(state);
        Ok(())
    }

    fn send_if_modified<F>(&self, modify: F) -> bool
    where
        F: FnOnce(&mut T) -> bool,
    {
        let mut state = self.0.write();
        if !modify(&mut state.value) {
            return false;
        }
        state.version += 1;
        self.0.wake_all(state);
        true
    }

    fn borrow_watched(&self) -> FifoRef<'_, T> {
        FifoRef(self.0.read())
    }

    fn subscribe(&self) -> FifoReceiver<T> {
        let mut state = self.0.write();
        state.receivers += 1;
        let seen = state.version;
        drop(state);
        FifoReceiver { shared: self.0.clone(), seen }
    }
}

impl<T: OptionalSend + OptionalSync> WatchReceiver<FifoWatch, T> for FifoReceiver<T> {
    async fn changed(&mut self) -> Result<(), RecvError> {
        std::future::poll_fn(|cx| {
            let mut state = self.shared.write();
            if state.version != self.seen {
                self.seen = state.version;
                return Poll::Ready(Ok(()));
            }
            if state.senders == 0 {
                return Poll::Ready(Err(RecvError(())));
            }
            if !state.waiting.iter().any(|w| w.will_wake(cx.waker())) {
                state.waiting.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    fn borrow_watched(&self) -> FifoRef<'_, T> {
        FifoRef(self.shared.read())
    }

    fn borrow_and_update(&mut self) -> FifoRef<'_, T> {
        let state = self.shared.read();
        self.seen = state.version;
        FifoRef(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn receivers_see_every_change_and_the_close() {
        let (tx, mut rx) = FifoWatch::channel(1);
        let mut late = tx.subscribe();
        tx.send(2).unwrap();
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow_and_update(), 2);
        assert!(!tx.send_if_modified(|v| std::mem::replace(v, 2) != 2));
        assert!(tx.send_if_modified(|v| std::mem::replace(v, 3) != 3));
        late.changed().await.unwrap();
        assert_eq!(*late.borrow_watched(), 3);
        let waiter = tokio::spawn(async move { rx.changed().await.map(|_| ()) });
        tokio::task::yield_now().await;
        drop(tx);
        // rx had seen 2; 3 arrived before the close, so it still reports a change.
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert_eq!(late.changed().await, Err(RecvError(())));
    }
}
