//! The drop rule: a topic takes an event when someone subscribes to it (tails, the admin's
//! observers, do not count) or when it retains events (`RETENTION`: the event is stored for
//! replay with nobody connected). Otherwise the event is dropped, its body never read, and one
//! log line records it: [`log_line`], written from nowhere else.

/// Whether a topic takes an event. `subscribed`: a subscriber (not a tail) is connected
/// wherever the runtime looks (this object, this node, or any node of the cluster).
pub fn takes(subscribed: bool, retained: bool) -> bool {
    subscribed || retained
}

/// The one structured log line of an event dropped on a topic with no subscriber.
pub fn log_line(topic: &str, id: &str) -> String {
    serde_json::json!({"level": "info", "msg": "event dropped: no subscribers", "topic": topic, "id": id}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retained_topic_takes_every_event() {
        assert!(takes(true, false));
        assert!(takes(false, true));
        assert!(takes(true, true));
        assert!(!takes(false, false));
    }

    #[test]
    fn the_log_line_names_topic_and_id_and_cannot_be_split() {
        let v: serde_json::Value = serde_json::from_str(&log_line("t", "e")).unwrap();
        assert_eq!(
            (v["topic"].as_str(), v["id"].as_str(), v["msg"].as_str()),
            (Some("t"), Some("e"), Some("event dropped: no subscribers"))
        );
        assert!(!log_line("a\nb", "c").contains('\n'));
    }
}
