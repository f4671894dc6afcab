//! Room tokens: HMAC-SHA256 over room, scope and expiry.
//!
//! A token is `base64url(payload) "." base64url(mac)` with the payload
//! `v1|<scope>|<expiry unix seconds>|<room>` (the room is last, so it may
//! hold any character) and `mac = HMAC-SHA256(secret, payload)`. Tokens are
//! opaque to clients: they get one from their app's server, which mints it
//! with the relay's secret (`minidote-relay token …` does the same).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a token lets its holder do in its room.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scope {
    /// Receive the room's transactions; anything sent is refused.
    Read,
    /// Receive and send.
    Write,
}

impl Scope {
    /// The scope's name in tokens and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            other => Err(format!("unknown scope {other:?}: use read or write")),
        }
    }
}

/// Why a token was refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum TokenError {
    /// The peer sent no token, and the relay requires one.
    #[error("a token is required for this relay")]
    Missing,
    /// Not a token at all.
    #[error("malformed token")]
    Malformed,
    /// The signature does not match: forged, or minted with another secret.
    #[error("invalid token signature")]
    BadSignature,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
    /// Minted for another room.
    #[error("token is for room {0:?}")]
    WrongRoom(String),
}

/// The claims a valid token carries.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Claims {
    /// The room it opens.
    pub room: String,
    /// What it allows.
    pub scope: Scope,
    /// Expiry, in seconds since the Unix epoch.
    pub expires: u64,
}

fn mac(secret: &[u8], payload: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(payload);
    m
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Mints a token for `room` and `scope` that expires at `expires` (Unix
/// seconds).
pub fn mint(secret: &[u8], room: &str, scope: Scope, expires: u64) -> String {
    let payload = format!("v1|{}|{expires}|{room}", scope.name());
    let tag = mac(secret, payload.as_bytes()).finalize().into_bytes();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload.as_bytes()),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

/// Checks a token's signature and expiry (at `now`) and that it is for
/// `room`. The signature is compared in constant time.
pub fn verify(secret: &[u8], token: &str, room: &str, now: u64) -> Result<Claims, TokenError> {
    let (p, t) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|_| TokenError::Malformed)?;
    let tag = URL_SAFE_NO_PAD
        .decode(t)
        .map_err(|_| TokenError::Malformed)?;
    mac(secret, &payload)
        .verify_slice(&tag)
        .map_err(|_| TokenError::BadSignature)?;
    let payload = String::from_utf8(payload).map_err(|_| TokenError::Malformed)?;
    let mut parts = payload.splitn(4, '|');
    let (Some("v1"), Some(scope), Some(expires), Some(token_room)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let scope: Scope = scope.parse().map_err(|_| TokenError::Malformed)?;
    let expires: u64 = expires.parse().map_err(|_| TokenError::Malformed)?;
    if token_room != room {
        return Err(TokenError::WrongRoom(token_room.to_owned()));
    }
    if expires <= now {
        return Err(TokenError::Expired);
    }
    Ok(Claims {
        room: token_room.to_owned(),
        scope,
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_verifies_for_its_room_only_until_it_expires() {
        let t = mint(b"s3cret", "demo|x", Scope::Write, 1_000);
        let c = verify(b"s3cret", &t, "demo|x", 999).unwrap();
        assert_eq!(c.scope, Scope::Write);
        assert_eq!(c.room, "demo|x");
        assert_eq!(
            verify(b"s3cret", &t, "demo", 999),
            Err(TokenError::WrongRoom("demo|x".into()))
        );
        assert_eq!(
            verify(b"s3cret", &t, "demo|x", 1_000),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(b"other", &t, "demo|x", 999),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tampered_and_garbage_tokens_are_refused() {
        let t = mint(b"k", "r", Scope::Read, u64::MAX);
        // Upgrade the scope without the secret.
        let (_, tag) = t.split_once('.').unwrap();
        let forged = format!(
            "{}.{tag}",
            URL_SAFE_NO_PAD.encode(format!("v1|write|{}|r", u64::MAX))
        );
        assert_eq!(verify(b"k", &forged, "r", 0), Err(TokenError::BadSignature));
        for g in ["", ".", "abc", "a.b", "!!.!!", "YQ.YQ"] {
            assert!(verify(b"k", g, "r", 0).is_err(), "{g}");
        }
    }
}
