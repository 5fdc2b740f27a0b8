//! Feeds bytes to the general RESP2/RESP3 frame parser, frame after frame.
//!
//! Checked: it never panics (nesting, counts and lengths are bounded); every frame
//! consumes bytes and no more than there are; encoding a parsed frame and parsing
//! that again gives the same encoding; and a frame decided on a prefix of the bytes
//! is decided the same way on the whole.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tandem::protocol::frame::{parse_frame, Frame};
use tandem::protocol::request::ParseLimits;

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
    let mut rest = data;
    while let Ok(Some((frame, used))) = parse_frame(rest, &limits) {
        assert!(
            used > 0 && used <= rest.len(),
            "consumed {used} of {}",
            rest.len()
        );
        encoding_is_stable(&frame, &limits);
        rest = &rest[used..];
    }
});

fn encode(frame: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    out
}

/// Compared through their encoding, as NaN is not equal to itself.
fn encoding_is_stable(frame: &Frame, limits: &ParseLimits) {
    let once = encode(frame);
    let reparsed = parse_frame(&once, limits);
    let Ok(Some((again, used))) = reparsed else {
        panic!("own encoding {once:?} did not parse: {reparsed:?}");
    };
    assert_eq!(used, once.len(), "own encoding parsed short");
    assert_eq!(encode(&again), once, "encoding changed on a round trip");
}

fn prefix_gives_the_same_answer(data: &[u8], limits: &ParseLimits) {
    let Some(&cut) = data.last() else { return };
    let cut = usize::from(cut) % (data.len() + 1);
    let early = parse_frame(&data[..cut], limits);
    if matches!(early, Ok(None)) {
        return;
    }
    let late = parse_frame(data, limits);
    match (early, late) {
        (Ok(Some((a, n))), Ok(Some((b, m)))) => {
            assert_eq!(n, m, "prefix of {cut} bytes consumed differently");
            assert_eq!(
                encode(&a),
                encode(&b),
                "prefix of {cut} bytes parsed differently"
            );
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "prefix of {cut} bytes failed differently"),
        (early, late) => panic!("prefix of {cut} bytes gave {early:?}, the whole {late:?}"),
    }
}
