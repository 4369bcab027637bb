//! `probe`: asks a topic's owner whether it takes event `id` (the drop rule, decided by the
//! owner, which also tells its tails of a drop). Sent by the Worker before it reads the body of
//! a publish to several topics, as the path and query of an internal request (`/live?…`); the
//! owner answers [`crate::protocol::ObjectAnswer::Live`].

use crate::error::{GatewayError, Result};
use crate::names;
use crate::protocol::attach::escape;
use crate::request::Query;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRequest {
    pub topic: String,
    pub id: String,
}

impl ProbeRequest {
    pub const PATH: &'static str = "/live";

    /// The path and query of the internal request.
    pub fn encode(&self) -> String {
        format!("{}?topic={}&id={}", Self::PATH, escape(&self.topic), escape(&self.id))
    }

    pub fn decode(q: &Query) -> Result<ProbeRequest> {
        let get = |k: &str| q.get(k).ok_or_else(|| GatewayError::InvalidRequest(format!("probe: missing {k}")));
        let (topic, id) = (get("topic")?, get("id")?);
        names::check_topic(topic)?;
        names::check_id(id)?;
        Ok(ProbeRequest { topic: topic.to_string(), id: id.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks() {
        let p = ProbeRequest { topic: "user:42".into(), id: "e.1".into() };
        let enc = p.encode();
        let (path, q) = enc.split_once('?').unwrap();
        assert_eq!(path, ProbeRequest::PATH);
        assert_eq!(ProbeRequest::decode(&Query::parse(q).unwrap()).unwrap(), p);
        assert_eq!(ProbeRequest::decode(&Query::parse("topic=a").unwrap()).unwrap_err().status(), 400);
        assert_eq!(ProbeRequest::decode(&Query::parse("topic=a&id=%0A").unwrap()).unwrap_err().status(), 400);
    }
}
