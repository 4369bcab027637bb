//! One error type for everything a client can get wrong, each with its HTTP status and a stable
//! JSON code. Both runtimes turn a [`GatewayError`] into the same response.

use thiserror::Error;

/// An error answered to the client as `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GatewayError {
    #[error("no topic given: send the x-sse-topic header or ?topic=")]
    MissingTopic,
    #[error("{0}")]
    InvalidTopic(String),
    #[error("{given} topics given, at most {max} are allowed")]
    TooManyTopics { given: usize, max: usize },
    #[error("the x-sse-id header is required")]
    MissingId,
    #[error("x-sse-id: {0}")]
    InvalidId(String),
    #[error("x-sse-event: {0}")]
    InvalidEvent(String),
    #[error("envelope must be \"json\" when given")]
    InvalidEnvelope,
    #[error("limit must be an integer from 1 to {max}")]
    InvalidLimit { max: usize },
    #[error("cursor was not issued by this gateway")]
    InvalidCursor,
    #[error("{0}")]
    InvalidRequest(String),
    #[error("a valid API key is required (authorization: Bearer <key> or x-api-key)")]
    Unauthorized,
    /// A private topic was requested without a subscriber token.
    #[error("a subscriber token is required for private topics (authorization: Bearer <token>, ?token= or the cookie)")]
    TokenRequired,
    /// The subscriber token is refused; the text is a [`crate::token::TokenError`].
    #[error("invalid subscriber token: {0}")]
    InvalidToken(String),
    /// A valid subscriber token that does not grant a requested private topic.
    #[error("{0}")]
    Forbidden(String),
    #[error("no such endpoint")]
    NotFound,
    #[error("method not allowed; allowed: {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("body larger than {max} bytes")]
    PayloadTooLarge { max: usize },
    #[error("the body must be UTF-8 text")]
    UnsupportedBody,
    #[error("the body did not arrive within {ms} ms")]
    BodyTimeout { ms: u64 },
    #[error("request headers larger than {max} bytes")]
    HeadersTooLarge { max: usize },
    #[error("this endpoint needs a WebSocket upgrade")]
    UpgradeRequired,
    #[error("{0}")]
    ConnectionLimit(String),
    #[error("publish rate limit of this API key reached; retry in {retry_after_ms} ms")]
    RateLimited { retry_after_ms: u64 },
    #[error("{what} is unavailable; retry later")]
    Unavailable { what: String, retry_after_s: u64 },
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        use GatewayError::*;
        match self {
            MissingTopic
            | InvalidTopic(_)
            | TooManyTopics { .. }
            | MissingId
            | InvalidId(_)
            | InvalidEvent(_)
            | InvalidEnvelope
            | InvalidLimit { .. }
            | InvalidCursor
            | InvalidRequest(_) => 400,
            Unauthorized | TokenRequired | InvalidToken(_) => 401,
            Forbidden(_) => 403,
            BodyTimeout { .. } => 408,
            NotFound => 404,
            MethodNotAllowed { .. } => 405,
            PayloadTooLarge { .. } => 413,
            UnsupportedBody => 415,
            UpgradeRequired => 426,
            HeadersTooLarge { .. } => 431,
            RateLimited { .. } => 429,
            ConnectionLimit(_) | Unavailable { .. } => 503,
            Internal(_) => 500,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        use GatewayError::*;
        match self {
            MissingTopic => "missing_topic",
            InvalidTopic(_) => "invalid_topic",
            TooManyTopics { .. } => "too_many_topics",
            MissingId => "missing_id",
            InvalidId(_) => "invalid_id",
            InvalidEvent(_) => "invalid_event",
            InvalidEnvelope => "invalid_envelope",
            InvalidLimit { .. } => "invalid_limit",
            InvalidCursor => "invalid_cursor",
            InvalidRequest(_) => "invalid_request",
            Unauthorized => "unauthorized",
            TokenRequired => "token_required",
            InvalidToken(_) => "invalid_token",
            Forbidden(_) => "forbidden",
            NotFound => "not_found",
            MethodNotAllowed { .. } => "method_not_allowed",
            PayloadTooLarge { .. } => "payload_too_large",
            UnsupportedBody => "unsupported_body",
            BodyTimeout { .. } => "body_timeout",
            UpgradeRequired => "upgrade_required",
            HeadersTooLarge { .. } => "headers_too_large",
            ConnectionLimit(_) => "connection_limit",
            RateLimited { .. } => "rate_limited",
            Unavailable { .. } => "unavailable",
            Internal(_) => "internal",
        }
    }

    /// Extra response headers this error must carry.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            GatewayError::MethodNotAllowed { allow } => vec![("allow", (*allow).to_string())],
            GatewayError::ConnectionLimit(_) => vec![("retry-after", "5".to_string())],
            GatewayError::RateLimited { retry_after_ms } => {
                vec![("retry-after", crate::limits::retry_after_secs(*retry_after_ms).to_string())]
            }
            GatewayError::Unavailable { retry_after_s, .. } => vec![("retry-after", (*retry_after_s).max(1).to_string())],
            // RFC 6750 §3: no error code when no token was sent; the reason when one was refused.
            GatewayError::TokenRequired => vec![("www-authenticate", "Bearer".to_string())],
            GatewayError::InvalidToken(why) => {
                vec![("www-authenticate", format!("Bearer error=\"invalid_token\", error_description=\"{}\"", description(why)))]
            }
            GatewayError::Forbidden(_) => vec![("www-authenticate", "Bearer error=\"insufficient_scope\"".to_string())],
            _ => Vec::new(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        serde_json::json!({"error": {"code": self.code(), "message": self.to_string()}}).to_string()
    }
}

/// `text` as an RFC 6750 `error_description`: printable ASCII without `"` and `\` (others
/// become `?`).
fn description(text: &str) -> String {
    text.chars().map(|c| if c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\') { c } else { '?' }).collect()
}

pub type Result<T, E = GatewayError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_json_with_code_and_message() {
        let e = GatewayError::TooManyTopics { given: 65, max: 64 };
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "too_many_topics");
        assert_eq!(v["error"]["message"], "65 topics given, at most 64 are allowed");
        assert_eq!(e.status(), 400);
    }

    #[test]
    fn statuses_match_codes() {
        assert_eq!(GatewayError::Unauthorized.status(), 401);
        assert_eq!(GatewayError::PayloadTooLarge { max: 1 }.status(), 413);
        assert_eq!(GatewayError::UnsupportedBody.status(), 415);
        assert_eq!((GatewayError::BodyTimeout { ms: 5 }.status(), GatewayError::BodyTimeout { ms: 5 }.code()), (408, "body_timeout"));
        let e = GatewayError::MethodNotAllowed { allow: "POST, OPTIONS" };
        assert_eq!(e.status(), 405);
        assert_eq!(e.headers(), vec![("allow", "POST, OPTIONS".to_string())]);
        assert_eq!(GatewayError::ConnectionLimit("x".into()).headers()[0].0, "retry-after");
        let r = GatewayError::RateLimited { retry_after_ms: 1_200 };
        assert_eq!((r.status(), r.code(), r.headers()), (429, "rate_limited", vec![("retry-after", "2".to_string())]));
        assert_eq!(
            (GatewayError::HeadersTooLarge { max: 1 }.status(), GatewayError::HeadersTooLarge { max: 1 }.code()),
            (431, "headers_too_large")
        );
        let u = GatewayError::Unavailable { what: "redis".into(), retry_after_s: 2 };
        assert_eq!((u.status(), u.code(), u.headers()), (503, "unavailable", vec![("retry-after", "2".to_string())]));
    }

    #[test]
    fn subscriber_token_errors_carry_www_authenticate() {
        let r = GatewayError::TokenRequired;
        assert_eq!((r.status(), r.code(), r.headers()), (401, "token_required", vec![("www-authenticate", "Bearer".to_string())]));
        let i = GatewayError::InvalidToken("the token has expired".into());
        assert_eq!((i.status(), i.code()), (401, "invalid_token"));
        assert_eq!(i.to_string(), "invalid subscriber token: the token has expired");
        assert_eq!(
            i.headers(),
            vec![("www-authenticate", "Bearer error=\"invalid_token\", error_description=\"the token has expired\"".to_string())]
        );
        let odd = GatewayError::InvalidToken("a \"quoted\" \\ é\r\n".into());
        assert_eq!(odd.headers()[0].1, "Bearer error=\"invalid_token\", error_description=\"a ?quoted? ? ???\"");
        let f = GatewayError::Forbidden("the token does not grant topic \"x\"".into());
        assert_eq!((f.status(), f.code()), (403, "forbidden"));
        assert_eq!(f.headers(), vec![("www-authenticate", "Bearer error=\"insufficient_scope\"".to_string())]);
    }
}
