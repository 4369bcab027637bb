//! Admin-listing cursors: `registry::decode_cursor` on arbitrary text never panics; a cursor it
//! accepts names a valid key and is exactly what `encode_cursor` gives for that key (one cursor
//! per position, so an altered cursor is refused); every valid key round-trips through
//! encode → decode; a cursor of one kind is refused as another kind.
//!
//! Input: byte 0 = the kind (0: connections `c`, 1: topics `t`, else the first character of
//! field 2); then, separated by 0xFF: the cursor text, a key, another kind.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use common::{after, byte, check_error, is_name, Fields};
use libfuzzer_sys::fuzz_target;
use sse_core::registry::{decode_cursor, encode_cursor, CONN_CURSOR, TOPIC_CURSOR};

struct Input {
    kind: u8,
    other_kind: char,
    raw: String,
    key: String,
}

impl Input {
    fn new(data: &[u8]) -> Self {
        let f = Fields::split(after(data, 1));
        Input {
            kind: byte(data, 0),
            raw: f.text(0).into_owned(),
            key: f.text(1).into_owned(),
            other_kind: f.text(2).chars().next().unwrap_or('x'),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let input = Input::new(data);
    let kind = match input.kind % 3 {
        0 => CONN_CURSOR,
        1 => TOPIC_CURSOR,
        _ => input.other_kind,
    };

    // Arbitrary text as a cursor.
    match decode_cursor(kind, &input.raw) {
        Ok(key) => {
            assert!(
                is_name(&key),
                "decoded a bad key {key:?} from {:?}",
                input.raw
            );
            assert_eq!(
                encode_cursor(kind, &key),
                input.raw,
                "accepted a cursor that is not the canonical one for its key"
            );
        }
        Err(e) => {
            check_error(&e);
            assert_eq!(e.code(), "invalid_cursor");
        }
    }

    // A key through encode → decode.
    let cursor = encode_cursor(kind, &input.key);
    match decode_cursor(kind, &cursor) {
        Ok(key) => assert_eq!(key, input.key),
        Err(e) => {
            assert_eq!(e.code(), "invalid_cursor");
            assert!(
                !is_name(&input.key),
                "valid key {:?} did not round-trip",
                input.key
            );
        }
    }
    // Never accepted as a cursor of another kind.
    for other in [CONN_CURSOR, TOPIC_CURSOR, input.other_kind] {
        if other != kind {
            assert!(
                decode_cursor(other, &cursor).is_err(),
                "{kind:?} cursor accepted as {other:?}"
            );
        }
    }
});
