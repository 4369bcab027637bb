//! Topic, event-id and event-type validation, and topic-list parsing. One function each, used by
//! every runtime and every endpoint.

use crate::error::{GatewayError, Result};

/// Longest topic, event id or event type, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Whether `b` is in the name alphabet `A-Z a-z 0-9 _ - . :`.
#[inline]
pub fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')
}

/// Checks a topic, event id or event type. The error text names the first bad byte, escaped,
/// so it is safe to echo back.
pub fn check_name(value: &str) -> std::result::Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > MAX_NAME_LEN {
        return Err(format!("is {} bytes long, at most {MAX_NAME_LEN} are allowed", value.len()));
    }
    match value.bytes().position(|b| !is_name_byte(b)) {
        None => Ok(()),
        Some(at) => Err(format!("{:?} has a character outside A-Z a-z 0-9 _ - . : at byte {at}", value.escape_default().to_string())),
    }
}

/// A validated topic.
pub fn check_topic(value: &str) -> Result<()> {
    check_name(value).map_err(|m| GatewayError::InvalidTopic(format!("topic {m}")))
}

/// A validated event id (`x-sse-id`).
pub fn check_id(value: &str) -> Result<()> {
    check_name(value).map_err(GatewayError::InvalidId)
}

/// A validated event type (`x-sse-event`).
pub fn check_event(value: &str) -> Result<()> {
    check_name(value).map_err(GatewayError::InvalidEvent)
}

/// Parses one or more comma-separated topic lists (a header value, or each `?topic=` value).
/// Items are trimmed of spaces and tabs; an empty item is an error; duplicates are merged
/// keeping the first position; more than `max` distinct topics is an error.
pub fn parse_topic_lists<'a, I>(lists: I, max: usize) -> Result<Vec<String>>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut topics: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut any = false;
    for list in lists {
        any = true;
        for item in list.split(',') {
            let item = item.trim_matches(|c| c == ' ' || c == '\t');
            if item.is_empty() {
                return Err(GatewayError::InvalidTopic("the topic list has an empty item".into()));
            }
            check_topic(item)?;
            if seen.insert(item) {
                topics.push(item.to_string());
            }
        }
    }
    if !any {
        return Err(GatewayError::MissingTopic);
    }
    if topics.len() > max {
        return Err(GatewayError::TooManyTopics { given: topics.len(), max });
    }
    Ok(topics)
}

/// Parses one comma-separated topic list.
pub fn parse_topic_list(list: &str, max: usize) -> Result<Vec<String>> {
    parse_topic_lists([list], max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_alphabet() {
        assert!(check_topic("user:42").is_ok());
        assert!(check_topic("orders.eu-west_1").is_ok());
        assert!(check_topic(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn rejects_bad_names() {
        for bad in ["", "a b", "a/b", "é", "a\r\nb", "a\0", "a,b", &"a".repeat(129)] {
            let e = check_topic(bad).unwrap_err();
            assert_eq!(e.code(), "invalid_topic", "{bad:?}");
        }
        assert_eq!(check_id("x\ny").unwrap_err().code(), "invalid_id");
        assert_eq!(check_event("x y").unwrap_err().code(), "invalid_event");
    }

    #[test]
    fn error_text_escapes_control_characters() {
        let e = check_topic("a\r\nevil: 1").unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains('\r') && !msg.contains('\n'), "{msg:?}");
    }

    #[test]
    fn list_trims_merges_and_keeps_order() {
        assert_eq!(parse_topic_list(" b , a,\tb ", 64).unwrap(), vec!["b", "a"]);
        assert_eq!(parse_topic_lists(["a,b", "c", "a"], 64).unwrap(), vec!["a", "b", "c"]);
    }

    #[test]
    fn list_errors() {
        assert_eq!(parse_topic_list("a,,b", 64).unwrap_err().code(), "invalid_topic");
        assert_eq!(parse_topic_list("a,", 64).unwrap_err().code(), "invalid_topic");
        assert_eq!(parse_topic_list("", 64).unwrap_err().code(), "invalid_topic");
        assert_eq!(parse_topic_lists([], 64).unwrap_err().code(), "missing_topic");
        let many: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
        assert_eq!(parse_topic_list(&many.join(","), 64).unwrap_err().code(), "too_many_topics");
        // Duplicates do not count against the limit.
        let dup = vec!["x"; 100].join(",");
        assert_eq!(parse_topic_list(&dup, 1).unwrap(), vec!["x"]);
    }

    proptest! {
        #[test]
        fn valid_names_roundtrip_through_lists(names in proptest::collection::vec("[A-Za-z0-9_.:-]{1,20}", 1..10)) {
            let parsed = parse_topic_list(&names.join(" , "), 64).unwrap();
            let mut expected: Vec<String> = Vec::new();
            for n in &names { if !expected.contains(n) { expected.push(n.clone()); } }
            prop_assert_eq!(parsed, expected);
        }

        #[test]
        fn accepted_lists_never_contain_bad_bytes(s in "\\PC{0,60}") {
            if let Ok(topics) = parse_topic_list(&s, 64) {
                for t in topics {
                    prop_assert!(!t.is_empty() && t.len() <= MAX_NAME_LEN);
                    prop_assert!(t.bytes().all(is_name_byte));
                }
            }
        }
    }
}
