//! Runs generated Lua scripts through `Store::apply` on two stores, as EVAL entries.
//!
//! Odd first byte: the rest of the input is the script's source as is. Even: the rest
//! picks fragments from a vocabulary of Lua and Redis API pieces (one per byte), so most
//! inputs are scripts that parse and call commands. Every script runs under a small
//! instruction budget and memory bound (set through the log, like any client would).
//! Checked: no panic; both stores answer alike and hold the same data (digest) after
//! every script, whatever it did (determinism of the sandbox, the budget, the
//! libraries); a snapshot of the result decodes to the same data.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tandem::replication::snapshot;
use tandem::store::{digest, Entry, Op, Store};

const FRAGMENTS: &[&str] = &[
    "redis.call('set', KEYS[1], ARGV[1]) ",
    "redis.call('incr', KEYS[2]) ",
    "redis.pcall('incr', KEYS[1]) ",
    "redis.call('rpush', KEYS[2], math.random(100)) ",
    "redis.call('sadd', KEYS[1], 'a', 'b', 'c') redis.call('spop', KEYS[1]) ",
    "redis.call('get', 'undeclared') ",
    "local t = {} ",
    "t[#t+1] = tostring({}) ",
    "for i = 1, 10 do ",
    "while true do ",
    "end ",
    "if math.random() > 0.5 then ",
    "else ",
    "pcall(function() ",
    "end) ",
    "return ",
    "redis.call('time') ",
    "cjson.encode({1, 2, {a = 'b'}}) ",
    "cjson.decode('[1,2,{\"a\":null}]') ",
    "cmsgpack.unpack(cmsgpack.pack({1, 'x', true})) ",
    "struct.pack('>I2', 258) ",
    "bit.band(0xff, 0x0f) ",
    "redis.sha1hex('x') ",
    "string.rep('x', 1000) ",
    "setmetatable({}, {__mode = 'k'}) ",
    "collectgarbage('count') ",
    "coroutine.wrap(function() while true do end end)() ",
    "error({err = 'ERR x'}) ",
    "redis.setresp(3) ",
    "x = 1 ",
    "t ",
    "1 ",
];

fn script(data: &[u8]) -> Vec<u8> {
    match data.split_first() {
        Some((first, rest)) if first % 2 == 1 => rest.to_vec(),
        Some((_, rest)) => rest.iter().flat_map(|b| FRAGMENTS[usize::from(*b) % FRAGMENTS.len()].bytes()).collect(),
        None => Vec::new(),
    }
}

fn command(args: &[&[u8]]) -> Op {
    Op::Command(args.iter().map(|a| Bytes::copy_from_slice(a)).collect())
}

fuzz_target!(|data: &[u8]| {
    let source = script(data);
    let mut one = Store::new();
    let mut two = Store::new();
    let limits = command(&[b"tandem.scriptlimits", b"instructions", b"200000", b"memory", b"4000000"]);
    let setup = Entry { time_ms: 1_700_000_000_000, seed: 1, ops: vec![limits].into(), origins: None, summary: None };
    one.apply(&setup);
    two.apply(&setup);
    for step in 0..3u64 {
        let eval = command(&[b"eval", &source, b"2", b"k1", b"k2", b"v"]);
        let entry = Entry { time_ms: 1_700_000_000_000 + step, seed: step, ops: vec![eval].into(), origins: None, summary: None };
        let a = one.apply(&entry);
        let b = two.apply(&entry);
        assert_eq!(a.replies, b.replies, "a script answered differently on equal stores");
        assert_eq!(one.digest(), two.digest(), "a script left different data on equal stores");
    }
    let bytes = snapshot::encode(&one.db, &Default::default());
    let (_, db) = snapshot::decode(&bytes, "fuzz", 0).expect("a snapshot of applied data decodes");
    assert_eq!(digest(&db), one.digest(), "a snapshot changed the data");
});
