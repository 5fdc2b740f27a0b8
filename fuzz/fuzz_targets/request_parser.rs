//! Feeds bytes to the client request parser as a connection would: parse commands
//! off the front of the buffer until it asks for more or reports an error.
//!
//! Checked: it never panics; every parsed command consumes bytes (a connection can
//! never spin on its buffer); "need more" leaves the buffer as it was; no argument
//! is longer than the limits allow; and parsing is incremental: a result given on a
//! prefix of the bytes is the same result the whole bytes give.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tandem::limits::INLINE_BYTES_MAX;
use tandem::protocol::request::{parse_command, ParseLimits};

/// Small limits let short inputs reach the "over the limit" paths.
const SMALL: ParseLimits = ParseLimits {
    bulk_bytes_max: 64,
    args_max: 16,
};

fuzz_target!(|data: &[u8]| {
    let limits = match data.first() {
        Some(b) if b & 1 == 1 => SMALL,
        _ => ParseLimits::default(),
    };
    prefix_gives_the_same_answer(data, &limits);
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.clone();
        match parse_command(&mut buf, &limits) {
            Ok(Some(args)) => {
                assert!(
                    buf.len() < before.len(),
                    "a parsed command consumed nothing"
                );
                let arg_max = limits.bulk_bytes_max.max(INLINE_BYTES_MAX);
                assert!(
                    args.iter().all(|a| a.len() <= arg_max),
                    "argument over the limit"
                );
            }
            Ok(None) => {
                assert_eq!(buf, before, "'need more' changed the buffer");
                break;
            }
            Err(_) => break,
        }
    }
});

/// If the first command is decided on a prefix, the whole input decides it the same
/// way: the same arguments, or an error (which error may differ: a header line cut
/// short is "too long", the same line whole is "invalid length").
fn prefix_gives_the_same_answer(data: &[u8], limits: &ParseLimits) {
    let Some(&cut) = data.last() else { return };
    let cut = usize::from(cut) % (data.len() + 1);
    let mut prefix = BytesMut::from(&data[..cut]);
    let early = parse_command(&mut prefix, limits);
    if matches!(early, Ok(None)) {
        return;
    }
    let mut whole = BytesMut::from(data);
    let late = parse_command(&mut whole, limits);
    match (&early, &late) {
        (Ok(Some(a)), Ok(Some(b))) => {
            assert_eq!(a, b, "prefix of {cut} bytes parsed differently");
            assert_eq!(
                prefix.len() + (data.len() - cut),
                whole.len(),
                "consumed a different amount"
            );
        }
        (Err(_), Err(_)) => {}
        _ => panic!("prefix of {cut} bytes gave {early:?}, the whole {late:?}"),
    }
}
