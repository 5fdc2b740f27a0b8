//! The instruction budget: a Lua count hook, set with the C API so that coroutines a
//! script creates inherit it (Lua 5.1 copies a thread's hook to the threads it
//! creates; mlua's own hook would ignore them). The count is of Lua VM instructions,
//! identical on every server for the same script and state; `redis.call` adds a fixed
//! charge ([`charge`]). Once the budget is spent — or a kill was accepted — the hook
//! fires at every instruction and raises each time, so `pcall` cannot swallow it.
//!
//! The hook's state is per thread: a script runs on one thread from start to end.

use std::cell::Cell;
use std::sync::Arc;

use mlua::ffi;

use super::status::Status;

/// Why the hook stopped a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Budget(u64),
    Killed,
}

impl Stop {
    pub fn message(&self) -> String {
        match self {
            Stop::Budget(max) => format!(
                "Script stopped after {max} instructions (the stripe's script budget, TANDEM.SCRIPTLIMITS); its writes so far stay applied"
            ),
            Stop::Killed => "Script killed by user with SCRIPT KILL...".to_string(),
        }
    }
}

thread_local! {
    static USED: Cell<u64> = const { Cell::new(0) };
    static MAX: Cell<u64> = const { Cell::new(u64::MAX) };
    static STOPPED: Cell<Option<Stop>> = const { Cell::new(None) };
    static STATUS: std::cell::RefCell<Option<Arc<Status>>> = const { std::cell::RefCell::new(None) };
    static PERIOD: Cell<u32> = const { Cell::new(crate::limits::SCRIPT_HOOK_INSTRUCTIONS) };
}

/// Starts counting on this thread for one script: `max` instructions, and kill
/// requests read from `status` (none for FUNCTION LOAD's registration run).
pub fn start(max: u64, status: Option<Arc<Status>>) {
    USED.with(|u| u.set(0));
    MAX.with(|m| m.set(max));
    STOPPED.with(|s| s.set(None));
    STATUS.with(|s| *s.borrow_mut() = status);
}

/// Ends counting; returns why the script was stopped, if it was, and the count.
pub fn finish() -> (Option<Stop>, u64) {
    STATUS.with(|s| *s.borrow_mut() = None);
    MAX.with(|m| m.set(u64::MAX));
    (STOPPED.with(|s| s.take()), USED.with(|u| u.get()))
}

/// Adds `instructions` to the count (a `redis.call`); `Err` once the budget is spent.
pub fn charge(instructions: u64) -> Result<(), Stop> {
    let used = USED.with(|u| {
        let v = u.get().saturating_add(instructions);
        u.set(v);
        v
    });
    check(used)
}

fn check(used: u64) -> Result<(), Stop> {
    if let Some(stop) = STOPPED.with(|s| s.get()) {
        return Err(stop);
    }
    let max = MAX.with(|m| m.get());
    let killed = STATUS.with(|s| s.borrow().as_ref().is_some_and(|st| st.kill_requested()));
    let stop = if killed {
        Some(Stop::Killed)
    } else if used > max {
        Some(Stop::Budget(max))
    } else {
        None
    };
    match stop {
        Some(stop) => {
            STOPPED.with(|s| s.set(Some(stop)));
            Err(stop)
        }
        None => Ok(()),
    }
}

/// Sets the count hook on `state` (the main thread, before a script runs).
///
/// # Safety
/// `state` must be a valid Lua state of the calling thread.
pub unsafe fn install(state: *mut ffi::lua_State) {
    let period = PERIOD.with(|p| p.get()) as std::os::raw::c_int;
    ffi::lua_sethook(state, Some(count_hook), ffi::LUA_MASKCOUNT, period);
}

/// Removes the hook.
///
/// # Safety
/// As [`install`].
pub unsafe fn remove(state: *mut ffi::lua_State) {
    ffi::lua_sethook(state, None, 0, 0);
}

unsafe extern "C-unwind" fn count_hook(state: *mut ffi::lua_State, _ar: *mut ffi::lua_Debug) {
    let period = PERIOD.with(|p| p.get()) as u64;
    let used = USED.with(|u| {
        let v = u.get().saturating_add(period);
        u.set(v);
        v
    });
    if let Err(stop) = check(used) {
        // From now on, at every instruction: a pcall in the script cannot outlast it.
        ffi::lua_sethook(state, Some(count_hook), ffi::LUA_MASKCOUNT, 1);
        let message = stop.message();
        ffi::lua_pushlstring(state, message.as_ptr() as *const _, message.len());
        // Nothing that needs dropping may live in this frame when lua_error unwinds it.
        drop(message);
        ffi::lua_error(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_stop_at_the_budget_and_stay_stopped() {
        start(250, None);
        assert!(charge(100).is_ok());
        assert!(charge(100).is_ok());
        assert_eq!(charge(100), Err(Stop::Budget(250)));
        assert_eq!(charge(0), Err(Stop::Budget(250)));
        assert_eq!(finish(), (Some(Stop::Budget(250)), 300));
        start(10, None);
        assert!(charge(10).is_ok());
        assert_eq!(finish().0, None);
    }
}
