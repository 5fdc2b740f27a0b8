//! Feeds arbitrary ACL rules to a user, as ACL SETUSER and an aclfile give them.
//!
//! The input is cut into rules at 0x00 bytes (at most 64). Checked: no rule panics;
//! a refused set of rules changes nothing (all or nothing); an accepted user is
//! described (ACL LIST) in rules that give back the same user; the permission check
//! of a few commands never panics; the users survive a snapshot line round trip.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tandem::acl::{check, User, Users};
use tandem::commands;

fuzz_target!(|data: &[u8]| {
    let rules: Vec<&[u8]> = data.split(|&b| b == 0).take(64).collect();
    let mut user = User::new("fuzz");
    let before = user.clone();
    match user.apply_all(&rules) {
        Err(_) => assert_eq!(user, before, "a refused SETUSER changed the user"),
        Ok(()) => {
            let described = user.describe();
            let mut again = User::new("fuzz");
            let words: Vec<&[u8]> = described.split(' ').map(str::as_bytes).collect();
            // Patterns and channels are kept as bytes, described as text: only a
            // description that is the user's own bytes must round-trip.
            if rules.iter().all(|r| std::str::from_utf8(r).is_ok()) {
                again.apply_all(&words).expect("a description applies");
                assert_eq!(again.describe(), described, "a description gives back the same user");
            }
            for cmd in [&["get", "k"][..], &["set", "k", "v", "get"], &["publish", "ch", "m"], &["psubscribe", "c*"], &["client", "kill", "x"]] {
                let args: Vec<Bytes> = cmd.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
                if let Some(spec) = commands::resolve(&args) {
                    let _ = check(&user, spec, &args);
                }
            }
        }
    }
    let mut users = Users::default();
    if users.set_user(b"fuzz", &rules, None).is_ok() {
        let lines = users.held_lines();
        if let Ok(back) = Users::from_held_lines(lines.iter().map(String::as_str)) {
            assert_eq!(back.held_lines(), lines, "users survive a snapshot's lines");
        }
    }
});
