//! Feeds sequences of commands with arbitrary arguments to the state machine, as
//! log entries: the path every client write and every mirror's apply takes.
//!
//! The input is cut into commands at 0x00 bytes and into arguments at 0x01 bytes;
//! the first argument picks a command from the table by index (so every command is
//! reached) or is taken as a name. Checked: no command panics, whatever its
//! arguments; applying the same entries to two stores gives the same replies and
//! the same digest (apply is deterministic); reads change nothing; a snapshot of
//! the result decodes to the same data. Commands with a number over 10^6 among
//! their arguments are skipped (see below).

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use tandem::commands::{self, Handler};
use tandem::replication::snapshot;
use tandem::store::{digest, Entry, Op, Store};

fuzz_target!(|data: &[u8]| {
    let table: Vec<_> = commands::all().collect();
    let mut one = Store::new();
    let mut two = Store::new();
    for (step, command) in data.split(|&b| b == 0).take(64).enumerate() {
        let mut args: Vec<Bytes> = command.split(|&b| b == 1).map(Bytes::copy_from_slice).collect();
        let Some(first) = args.first() else { continue };
        if let [pick] = first.as_ref() {
            args[0] = Bytes::from_static(table[usize::from(*pick) % table.len()].name.as_bytes());
        }
        // Legal, but an offset like SETRANGE's may allocate up to 512 MB
        // (proto-max-bulk-len), beyond libFuzzer's memory limit: skipped.
        if args.iter().skip(1).any(|a| std::str::from_utf8(a).ok().and_then(|t| t.parse::<i64>().ok()).is_some_and(|n| n > 1_000_000)) {
            continue;
        }
        let time_ms = 1_700_000_000_000 + step as u64 * 1_000;
        let spec = commands::lookup(&args[0]);
        if let Some(spec) = spec.filter(|s| matches!(s.handler, Handler::Read(_))) {
            let before = one.digest();
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(step as u64);
            let a = one.read(spec, &args, time_ms, &mut rng);
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(step as u64);
            let b = two.read(spec, &args, time_ms, &mut rng);
            assert_eq!(a, b, "a read answered differently on equal stores");
            assert_eq!(before, one.digest(), "a read changed the data");
            continue;
        }
        let entry = Entry { time_ms, seed: step as u64, ops: vec![Op::Command(args)].into(), origins: None, summary: None };
        let a = one.apply(&entry);
        let b = two.apply(&entry);
        assert_eq!(a.replies, b.replies, "apply answered differently on equal stores");
        assert_eq!(one.digest(), two.digest(), "apply is not deterministic");
    }
    let meta = Default::default();
    let bytes = snapshot::encode(&one.db, &meta);
    let (_, db) = snapshot::decode(&bytes, "fuzz", 0).expect("a snapshot of applied data decodes");
    assert_eq!(digest(&db), one.digest(), "a snapshot changed the data");
});
