//! Feeds bytes to the group port's message decoders: what a member (or anyone who
//! got past the handshake) can send. Checked: decoding never panics, and a message
//! that decodes encodes to bytes that decode to the same message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem::replication::wire::{Request, Response};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = Request::decode(data) {
        let bytes = request.encode();
        let again = Request::decode(&bytes).expect("an encoded request decodes");
        assert_eq!(again.encode(), bytes, "request changed on a round trip");
    }
    if let Ok(response) = Response::decode(data) {
        let bytes = response.encode();
        let again = Response::decode(&bytes).expect("an encoded response decodes");
        assert_eq!(again.encode(), bytes, "response changed on a round trip");
    }
});
