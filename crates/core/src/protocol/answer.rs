//! A topic owner's answer to a probe, a publish or a deliver, as JSON: `{"live":bool}`,
//! `{"dropped":true}`, `{"delivered":n}` or `{"delivered":n,"retained":true}`. An error is the
//! gateway's JSON error with its status; [`decode_error`] rebuilds it on the caller's side.

use serde_json::{json, Value};

use crate::error::GatewayError;
use crate::protocol::plan::TopicResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectAnswer {
    /// To a probe: whether the topic takes the event.
    Live(bool),
    /// To a publish or deliver: what the owner did with the event.
    Done(TopicResult),
    /// To an attach: this topic's object is full; attach to its shard `i`
    /// ([`crate::protocol::shards`]).
    Shard(u32),
}

impl ObjectAnswer {
    pub fn encode(&self) -> String {
        match self {
            ObjectAnswer::Live(live) => json!({"live": live}),
            ObjectAnswer::Done(TopicResult::Dropped) => json!({"dropped": true}),
            ObjectAnswer::Done(TopicResult::Delivered(n)) => json!({"delivered": n}),
            ObjectAnswer::Done(TopicResult::Retained(n)) => json!({"delivered": n, "retained": true}),
            ObjectAnswer::Shard(i) => json!({"shard": i}),
        }
        .to_string()
    }

    /// Reads a `200` answer.
    pub fn decode(body: &str) -> Result<ObjectAnswer, GatewayError> {
        let v: Value = serde_json::from_str(body).map_err(|e| GatewayError::Internal(format!("topic owner answer: {e}")))?;
        if let Some(live) = v["live"].as_bool() {
            return Ok(ObjectAnswer::Live(live));
        }
        if let Some(i) = v["shard"].as_u64().and_then(|i| u32::try_from(i).ok()) {
            return Ok(ObjectAnswer::Shard(i));
        }
        let delivered = v["delivered"].as_u64().map(|n| n as usize);
        if v["retained"].as_bool() == Some(true) {
            return Ok(ObjectAnswer::Done(TopicResult::Retained(delivered.unwrap_or(0))));
        }
        match (delivered, v["dropped"].as_bool()) {
            (Some(n), None | Some(false)) => Ok(ObjectAnswer::Done(TopicResult::Delivered(n))),
            (_, Some(true)) => Ok(ObjectAnswer::Done(TopicResult::Dropped)),
            _ => Err(GatewayError::Internal(format!("topic owner answer not understood: {}", body.chars().take(200).collect::<String>()))),
        }
    }

    /// The answer read as a topic result (a probe's `live: false` is a drop).
    pub fn result(&self) -> TopicResult {
        match self {
            ObjectAnswer::Live(true) => TopicResult::Delivered(0),
            ObjectAnswer::Live(false) => TopicResult::Dropped,
            ObjectAnswer::Done(r) => *r,
            ObjectAnswer::Shard(_) => TopicResult::Delivered(0),
        }
    }
}

/// The error a topic owner answered with `status` and its JSON error `body` (it runs with the
/// same configuration: `max_body_bytes` is the limit it applied).
pub fn decode_error(status: u16, body: &str, max_body_bytes: usize) -> GatewayError {
    let v: Value = serde_json::from_str(body).unwrap_or_default();
    let msg = v["error"]["message"].as_str().unwrap_or(body).to_string();
    match (status, v["error"]["code"].as_str()) {
        (503, _) => GatewayError::ConnectionLimit(msg),
        (413, _) => GatewayError::PayloadTooLarge { max: max_body_bytes },
        (415, _) => GatewayError::UnsupportedBody,
        (400, Some("missing_id")) => GatewayError::MissingId,
        (400, _) => GatewayError::InvalidRequest(msg),
        _ => GatewayError::Internal(format!("topic owner answered {status}: {msg}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_round_trips() {
        for a in [
            ObjectAnswer::Live(true),
            ObjectAnswer::Live(false),
            ObjectAnswer::Done(TopicResult::Dropped),
            ObjectAnswer::Done(TopicResult::Delivered(0)),
            ObjectAnswer::Done(TopicResult::Delivered(12)),
            ObjectAnswer::Done(TopicResult::Retained(0)),
            ObjectAnswer::Done(TopicResult::Retained(3)),
            ObjectAnswer::Shard(2),
        ] {
            assert_eq!(ObjectAnswer::decode(&a.encode()).unwrap(), a);
        }
        assert_eq!(ObjectAnswer::Live(false).result(), TopicResult::Dropped);
        assert!(ObjectAnswer::decode("{}").is_err());
        assert!(ObjectAnswer::decode("not json").is_err());
    }

    #[test]
    fn errors_come_back_as_they_were() {
        for e in [
            GatewayError::ConnectionLimit("topic t already has 1 connections".into()),
            GatewayError::PayloadTooLarge { max: 10 },
            GatewayError::UnsupportedBody,
            GatewayError::InvalidRequest("x".into()),
            GatewayError::MissingId,
        ] {
            let back = decode_error(e.status(), &e.body(), 10);
            assert_eq!((back.status(), back.code(), back.to_string()), (e.status(), e.code(), e.to_string()));
        }
        assert_eq!(decode_error(500, "oops", 10).status(), 500);
    }
}
