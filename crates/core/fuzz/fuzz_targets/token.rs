//! Subscriber tokens: `token::verify` on arbitrary text never panics and accepts only what a key
//! holder signed; a token the harness signs (HS256, the fixed secret) with arbitrary header and
//! claims text gets exactly the answer of a model of the documented rules and their order; a
//! changed signature, a missing one and an HS256 MAC keyed with a configured public key (algorithm
//! confusion) never verify; `check_subscribe` follows the all-or-nothing rule; `Grant::allows`
//! agrees with a model of the pattern syntax.
//!
//! Input: byte 0 = settings (bit 0: audience `sse-gateway` required; bits 1-2: leeway 0, 30,
//! 300 or 3600 s); then, separated by 0xFF: a raw token, the claims text to sign, the header
//! text to sign (empty: `{"alg":"HS256","typ":"JWT"}`), a topic list to subscribe to, and
//! `PRIVATE_TOPICS`.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::{after, byte, check_error, Fields};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use sha2::Sha256;
use sse_core::names::parse_topic_list;
use sse_core::token::{self, Alg, Grant, Part, PrivateTopics, TokenError, TokenSettings};

/// The clock of every check.
const NOW: u64 = 1_763_784_000;
/// The HS256 secret tokens are signed with (the seeds use it too).
const SECRET: &str = "fuzz-seed-secret-0123456789abcdef";
/// The test keys of `sse_core::token`'s unit tests: an ES256 key `es-1`, an EdDSA key `ed-1`.
const ES_PUB: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEK/5EZpMCVg8dL0v1TNB9RK7kvF1LJuyPKAq1EK6KHjrQYPDnQer/HCN2LYZ/suHoxE8ZGVBjGhRphbuoTt76aw==";
const ED_PUB: &str = "MCowBQYDK2VwAyEAaUuVrdTm2Fd4wFkHh6KUTLRp4iZKMSfPsYU72FIgJtU=";
const DEFAULT_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
const LEEWAYS: [u64; 4] = [0, 30, 300, 3600];

struct Input {
    audience: bool,
    leeway: u64,
    raw: String,
    claims: Vec<u8>,
    header: Vec<u8>,
    topics: String,
    private: String,
}

impl Input {
    fn new(data: &[u8]) -> Self {
        let flags = byte(data, 0);
        let f = Fields::split(after(data, 1));
        let header = f.bytes(2).unwrap_or_default();
        Input {
            audience: flags & 1 != 0,
            leeway: LEEWAYS[usize::from(flags >> 1) & 3],
            raw: f.text(0).into_owned(),
            claims: f.bytes(1).unwrap_or_default().to_vec(),
            header: if header.is_empty() {
                DEFAULT_HEADER.as_bytes().to_vec()
            } else {
                header.to_vec()
            },
            topics: f.text(3).into_owned(),
            private: f.text(4).into_owned(),
        }
    }
}

fn settings(input: &Input) -> TokenSettings {
    let leeway = input.leeway.to_string();
    let audience = input.audience.then_some("sse-gateway");
    TokenSettings::from_lookup(|k| match k {
        "SUBSCRIBER_TOKEN_SECRETS" => Some(SECRET.to_string()),
        "SUBSCRIBER_TOKEN_PUBLIC_KEYS" => Some(format!("es-1:ES256:{ES_PUB},ed-1:EdDSA:{ED_PUB}")),
        "SUBSCRIBER_TOKEN_LEEWAY_S" => Some(leeway.clone()),
        "SUBSCRIBER_TOKEN_AUDIENCE" => audience.map(str::to_string),
        _ => None,
    })
    .expect("fixed settings")
}

fn mac(key: &[u8], signed: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    m.update(signed);
    m.finalize().into_bytes().to_vec()
}

/// `header.claims.MAC`, each part base64url without padding.
fn sign(key: &[u8], header: &[u8], claims: &[u8]) -> String {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig = mac(key, signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// The error text goes into a quoted `error_description`: printable ASCII, no quote, no backslash.
fn check_description(e: &TokenError) {
    let text = e.to_string();
    assert!(
        text.bytes()
            .all(|b| b == b' ' || (b.is_ascii_graphic() && b != b'"' && b != b'\\')),
        "{text:?}"
    );
}

/// The pattern syntax, restated as a dynamic programme: `*` matches any run of bytes.
fn model_glob(pattern: &[u8], text: &[u8]) -> bool {
    // m[j] = pattern[..i] matches text[..j].
    let mut m = vec![false; text.len() + 1];
    m[0] = true;
    for &p in pattern {
        let mut next = vec![false; text.len() + 1];
        if p == b'*' {
            let mut any = false;
            for j in 0..=text.len() {
                any |= m[j];
                next[j] = any;
            }
        } else {
            for j in 1..=text.len() {
                next[j] = m[j - 1] && text[j - 1] == p;
            }
        }
        m = next;
    }
    m[text.len()]
}

/// A pattern: 1-128 bytes of `A-Z a-z 0-9 _ - . :` and `*`.
fn is_pattern(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= common::MAX_NAME
        && s.bytes()
            .all(|b| b == b'*' || common::ALPHABET.contains(&b))
}

/// A NumericDate: a JSON number, as whole seconds (fraction dropped, saturating).
fn model_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i128>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            let v = if let Some(i) = n.as_i64() {
                i128::from(i)
            } else if let Some(u) = n.as_u64() {
                i128::from(u).min(i128::from(i64::MAX))
            } else {
                let f = n.as_f64().ok_or(TokenError::ClaimType(name))?;
                // Saturating at the i64 range (`as` saturates; 2^63 itself is out of it).
                i128::from(f.floor() as i64)
            };
            Ok(Some(v))
        }
        Some(_) => Err(TokenError::ClaimType(name)),
    }
}

/// The documented claim rules, in their order.
fn model_claims(claims: &[u8], input: &Input) -> Result<Grant, TokenError> {
    let claims: Map<String, Value> = match serde_json::from_slice::<Value>(claims) {
        Ok(Value::Object(m)) => m,
        _ => return Err(TokenError::Json(Part::Claims)),
    };
    let exp = model_date(&claims, "exp")?.ok_or(TokenError::MissingExp)?;
    let nbf = model_date(&claims, "nbf")?;
    let iat = model_date(&claims, "iat")?;
    let (now, leeway) = (i128::from(NOW), i128::from(input.leeway));
    if now >= exp + leeway {
        return Err(TokenError::Expired);
    }
    if nbf.is_some_and(|n| n > now + leeway) {
        return Err(TokenError::NotYetValid);
    }
    if iat.is_some_and(|i| i > now + leeway) {
        return Err(TokenError::IssuedInFuture);
    }
    if input.audience {
        let ours = Value::String("sse-gateway".into());
        match claims.get("aud") {
            None => return Err(TokenError::MissingAudience),
            Some(a @ Value::String(_)) if *a == ours => {}
            Some(Value::Array(items)) if items.contains(&ours) => {}
            Some(Value::String(_) | Value::Array(_)) => return Err(TokenError::WrongAudience),
            Some(_) => return Err(TokenError::ClaimType("aud")),
        }
    }
    let sub = match claims.get("sub") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(TokenError::ClaimType("sub")),
    };
    let topics = match claims.get("topics") {
        None => return Err(TokenError::MissingTopics),
        Some(Value::Array(items)) => {
            let mut topics = Vec::new();
            for t in items {
                match t.as_str() {
                    Some(t) if is_pattern(t) => topics.push(t.to_string()),
                    _ => return Err(TokenError::BadTopics),
                }
            }
            topics
        }
        Some(_) => return Err(TokenError::BadTopics),
    };
    Ok(Grant {
        sub,
        topics,
        exp: u64::try_from(exp).unwrap_or(0),
    })
}

/// The documented rules for a token whose signature is an HS256 MAC with the configured secret.
fn model_signed(
    token: &str,
    header: &[u8],
    claims: &[u8],
    input: &Input,
) -> Result<Grant, TokenError> {
    if token.len() > token::MAX_TOKEN_BYTES {
        return Err(TokenError::TooLong);
    }
    let header: Map<String, Value> = match serde_json::from_slice::<Value>(header) {
        Ok(Value::Object(m)) => m,
        _ => return Err(TokenError::Json(Part::Header)),
    };
    if header.contains_key("crit") {
        return Err(TokenError::Crit);
    }
    let alg = match header.get("alg") {
        None => return Err(TokenError::MissingAlg),
        Some(Value::String(a)) => match a.as_str() {
            "HS256" => Alg::Hs256,
            "ES256" => Alg::Es256,
            "EdDSA" | "Ed25519" => Alg::EdDsa,
            a if a.to_ascii_lowercase() == "none" => return Err(TokenError::AlgNone),
            _ => return Err(TokenError::UnsupportedAlg),
        },
        Some(_) => return Err(TokenError::HeaderType("alg")),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(TokenError::HeaderType("kid")),
    };
    // One key per public algorithm: es-1 (ES256) and ed-1 (EdDSA). A 32-byte MAC is no
    // signature of either.
    let (own, other) = match alg {
        Alg::Hs256 => return model_claims(claims, input),
        Alg::Es256 => ("es-1", "ed-1"),
        Alg::EdDsa => ("ed-1", "es-1"),
    };
    Err(match kid {
        Some(k) if k == other => TokenError::KidAlgMismatch(alg),
        Some(k) if k != own => TokenError::UnknownKid,
        _ => TokenError::BadSignature,
    })
}

/// The header of a raw token, if it decodes to a JSON object.
fn header_of(token: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(token.split('.').next()?).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn check_grant(g: &Grant, input: &Input) {
    assert!(
        g.topics.iter().all(|t| is_pattern(t)),
        "bad pattern in {g:?}"
    );
    assert!(g.exp + input.leeway > NOW, "expired grant {g:?}");
}

fuzz_target!(|data: &[u8]| {
    let input = Input::new(data);
    let settings = settings(&input);

    // 1. Arbitrary text as a token.
    match token::verify(&input.raw, &settings, NOW) {
        Ok(g) => {
            check_grant(&g, &input);
            assert!(input.raw.len() <= token::MAX_TOKEN_BYTES);
            let parts: Vec<&str> = input.raw.split('.').collect();
            assert_eq!(parts.len(), 3, "accepted {:?}", input.raw);
            let header = header_of(&input.raw).expect("an accepted token has a JSON header");
            assert!(!header.contains_key("crit"));
            if header.get("alg") == Some(&Value::String("HS256".into())) {
                let signed = &input.raw[..parts[0].len() + 1 + parts[1].len()];
                let sig = URL_SAFE_NO_PAD
                    .decode(parts[2])
                    .expect("base64url signature");
                assert_eq!(
                    sig,
                    mac(SECRET.as_bytes(), signed.as_bytes()),
                    "HS256 not signed with the secret"
                );
            }
        }
        Err(e) => check_description(&e),
    }

    // 2. Header and claims signed with the secret: exactly the model's answer.
    let signed = sign(SECRET.as_bytes(), &input.header, &input.claims);
    let got = token::verify(&signed, &settings, NOW);
    let want = model_signed(&signed, &input.header, &input.claims, &input);
    assert_eq!(got, want, "token {signed}");
    if let Ok(g) = &got {
        check_grant(g, &input);
    }

    // 3. Never accepted: a changed signature, none at all, or an HS256 MAC keyed with a
    // configured public key (as DER or as its base64 text).
    if signed.len() <= token::MAX_TOKEN_BYTES {
        let (signing_input, sig) = signed.rsplit_once('.').expect("three parts");
        let flip = byte(data, data.len().saturating_sub(1)) as usize % sig.len();
        let mut changed = sig.as_bytes().to_vec();
        changed[flip] = if changed[flip] == b'A' { b'B' } else { b'A' };
        let changed = format!(
            "{signing_input}.{}",
            String::from_utf8(changed).expect("ASCII")
        );
        assert!(
            token::verify(&changed, &settings, NOW).is_err(),
            "changed signature accepted"
        );
        assert!(token::verify(&format!("{signing_input}."), &settings, NOW).is_err());
        for key in [ES_PUB, ED_PUB] {
            let der = STANDARD.decode(key).expect("test key");
            for secret in [der.as_slice(), key.as_bytes()] {
                let confused = sign(secret, &input.header, &input.claims);
                assert!(
                    token::verify(&confused, &settings, NOW).is_err(),
                    "algorithm confusion"
                );
            }
        }
    }

    // 4. The subscribe rule, with the signed token, with no token, and the grant's patterns.
    let (Ok(topics), Ok(private)) = (
        parse_topic_list(&input.topics, 64),
        PrivateTopics::parse(&input.private),
    ) else {
        return;
    };
    let any_private = topics.iter().any(|t| private.is_private(t));
    for t in &topics {
        let expected = private
            .patterns()
            .iter()
            .any(|p| model_glob(p.as_bytes(), t.as_bytes()));
        assert_eq!(private.is_private(t), expected, "is_private({t:?})");
        if let Ok(g) = &got {
            let expected = g
                .topics
                .iter()
                .any(|p| model_glob(p.as_bytes(), t.as_bytes()));
            assert_eq!(g.allows(t), expected, "allows({t:?}) with {:?}", g.topics);
        }
    }
    let anonymous = token::check_subscribe(&private, &settings, &topics, None, NOW);
    let with_token = token::check_subscribe(&private, &settings, &topics, Some(&signed), NOW);
    if !any_private {
        assert_eq!(anonymous, Ok(None));
        assert_eq!(with_token, Ok(None));
        return;
    }
    let e = anonymous.expect_err("a private topic without a token");
    check_error(&e);
    assert_eq!((e.status(), e.code()), (401, "token_required"));
    match (&got, with_token) {
        (Err(_), Err(e)) => {
            check_error(&e);
            assert_eq!((e.status(), e.code()), (401, "invalid_token"));
        }
        (Ok(g), Ok(Some(granted))) => {
            assert_eq!(g, &granted);
            for t in topics.iter().filter(|t| private.is_private(t)) {
                assert!(granted.allows(t), "{t:?} not granted but subscribed");
            }
        }
        (Ok(g), Err(e)) => {
            check_error(&e);
            assert_eq!((e.status(), e.code()), (403, "forbidden"));
            assert!(topics.iter().any(|t| private.is_private(t) && !g.allows(t)));
        }
        (got, answer) => panic!("verify {got:?} but check_subscribe {answer:?}"),
    }
});
