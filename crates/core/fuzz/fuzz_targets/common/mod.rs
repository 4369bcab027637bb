//! Helpers shared by the fuzz targets: the documented name rules restated independently of
//! `sse_core::names`, and checks every error must pass.
#![allow(dead_code)]

use std::borrow::Cow;

use sse_core::GatewayError;

/// The inputs are plain bytes, so that seeds and crash reproducers can be written and read by
/// hand: a few leading parameter bytes, then fields separated by 0xFF (a byte that never occurs
/// in UTF-8). Missing fields are `None`.
pub struct Fields<'a>(Vec<&'a [u8]>);

impl<'a> Fields<'a> {
    pub fn split(data: &'a [u8]) -> Self {
        Self(data.split(|b| *b == 0xFF).collect())
    }

    pub fn bytes(&self, i: usize) -> Option<&'a [u8]> {
        self.0.get(i).copied()
    }

    /// Field `i` as text (invalid UTF-8 replaced by U+FFFD); "" when missing.
    pub fn text(&self, i: usize) -> Cow<'a, str> {
        String::from_utf8_lossy(self.bytes(i).unwrap_or_default())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Byte `i` of `data`, 0 when missing.
pub fn byte(data: &[u8], i: usize) -> u8 {
    data.get(i).copied().unwrap_or(0)
}

/// `data` less its first `n` bytes.
pub fn after(data: &[u8], n: usize) -> &[u8] {
    data.get(n..).unwrap_or_default()
}

/// The name alphabet, written out: `A-Z a-z 0-9 _ - . :`.
pub const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:";

/// Longest topic / id / event type, in bytes (documented: 128).
pub const MAX_NAME: usize = 128;

/// Whether `s` is a valid topic, event id or event type by the documented rules.
pub fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME && s.bytes().all(|b| ALPHABET.contains(&b))
}

/// A valid name made from arbitrary bytes (1 to 128 characters of the alphabet).
pub fn name_from(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "0".into();
    }
    bytes
        .iter()
        .take(MAX_NAME)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Error messages are echoed to clients and written to logs: never a control character.
pub fn check_error(e: &GatewayError) {
    let msg = e.to_string();
    assert!(
        !msg.chars().any(char::is_control),
        "control character in error message {msg:?}"
    );
    assert!((400..600).contains(&e.status()), "{e:?}");
}

/// The topic-list rules, restated: every list is split at `,`; items are trimmed of spaces and
/// tabs; each must be a valid name; duplicates keep their first position; no list at all is
/// `missing_topic`; more than `max` distinct topics is `too_many_topics`.
pub fn model_topic_lists(lists: &[&str], max: usize) -> Result<Vec<String>, &'static str> {
    if lists.is_empty() {
        return Err("missing_topic");
    }
    let mut out: Vec<String> = Vec::new();
    for list in lists {
        for item in list.split(',') {
            let t = item.trim_matches(|c| c == ' ' || c == '\t');
            if !is_name(t) {
                return Err("invalid_topic");
            }
            if !out.iter().any(|o| o == t) {
                out.push(t.to_string());
            }
        }
    }
    if out.len() > max {
        return Err("too_many_topics");
    }
    Ok(out)
}

/// Compares a core result with the model's: same value, or same error code.
pub fn same<T: PartialEq + std::fmt::Debug>(
    core: &Result<T, GatewayError>,
    model: &Result<T, &'static str>,
    what: &str,
) {
    match (core, model) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{what}: accepted values differ"),
        (Err(e), Err(code)) => {
            check_error(e);
            assert_eq!(e.code(), *code, "{what}: {e}");
        }
        (a, b) => panic!("{what}: core says {a:?}, model says {b:?}"),
    }
}

/// Checks a list the core accepted against the documented rules directly.
pub fn check_topics(topics: &[String], max: usize) {
    assert!(!topics.is_empty(), "an accepted list is never empty");
    assert!(topics.len() <= max, "{} topics > max {max}", topics.len());
    for (i, t) in topics.iter().enumerate() {
        assert!(is_name(t), "accepted bad topic {t:?}");
        assert!(!topics[..i].contains(t), "duplicate topic {t:?}");
    }
}
