//! Minidote room tokens: standard JWTs (RFC 7519), so an app's own server
//! can mint them with any JWT library in any language. The relay checks
//! them at every `Hello`, and so do Python listeners (`listen(addr,
//! auth_secret=...)`).
//!
//! Claims: `room` (string), `scope` (`read` | `write` | `forward` |
//! `snapshot`), an optional `replica` (16 hex digits: the only replica id
//! the holder may announce) and `exp` (Unix seconds). Tokens are signed
//! HS256 with the relay's shared secret, or EdDSA (Ed25519) with a private
//! key whose public half the relay holds (`--auth-public-key`), so a relay
//! can verify tokens without being able to mint them.
//!
//! Scopes are ordered, each allowing what the one before it does:
//! * `read`: receive the room; anything sent is refused;
//! * `write`: also send transactions, each of which must originate from
//!   the link's own replica id;
//! * `forward`: also carry other replicas' transactions (a relay feeding a
//!   relay, a mesh node that forwards);
//! * `snapshot`: also send whole-state snapshots, which speak for every
//!   origin they cover.

#![forbid(unsafe_code)]

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use minidote_core::ReplicaId;
use serde::{Deserialize, Serialize};

/// What a token lets its holder do in its room (ordered: each scope allows
/// everything the smaller ones do).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Scope {
    /// Receive the room's transactions; anything sent is refused.
    Read,
    /// Receive, and send transactions of the link's own replica id.
    Write,
    /// Also carry other replicas' transactions.
    Forward,
    /// Also send whole-state snapshots.
    Snapshot,
}

impl Scope {
    /// The scope's name in tokens and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Forward => "forward",
            Scope::Snapshot => "snapshot",
        }
    }

    /// True if this scope allows sending transactions at all.
    pub fn can_write(self) -> bool {
        self >= Scope::Write
    }

    /// True if this scope allows other replicas' transactions.
    pub fn can_forward(self) -> bool {
        self >= Scope::Forward
    }

    /// True if this scope allows snapshots.
    pub fn can_snapshot(self) -> bool {
        self >= Scope::Snapshot
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
            "forward" => Ok(Scope::Forward),
            "snapshot" => Ok(Scope::Snapshot),
            other => Err(format!(
                "unknown scope {other:?}: use read, write, forward or snapshot"
            )),
        }
    }
}

/// Why a token was refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum TokenError {
    /// The peer sent no token, and the relay requires one.
    #[error("a token is required for this relay")]
    Missing,
    /// Not a JWT with the claims this relay needs.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The signature does not match: forged, or minted with another key.
    #[error("invalid token signature")]
    BadSignature,
    /// Signed with an algorithm this relay has no key for.
    #[error("token algorithm {0} is not accepted here (this relay checks {1})")]
    Algorithm(String, String),
    /// Past its expiry.
    #[error("token expired")]
    Expired,
    /// Minted for another room.
    #[error("token is for room {0:?}")]
    WrongRoom(String),
    /// Minted for another replica id.
    #[error("token is for replica {0}, the Hello announced {1}")]
    WrongReplica(String, ReplicaId),
}

/// The claims a valid token carries.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Claims {
    /// The room it opens.
    pub room: String,
    /// What it allows.
    pub scope: Scope,
    /// The only replica id its holder may announce, if bound.
    pub replica: Option<ReplicaId>,
    /// Expiry, in seconds since the Unix epoch.
    pub expires: u64,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    room: String,
    scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replica: Option<String>,
    exp: u64,
}

/// How tokens are signed when minting.
#[derive(Clone, Copy, Debug)]
pub enum SigningKey<'a> {
    /// HS256 with a shared secret.
    Secret(&'a [u8]),
    /// EdDSA with an Ed25519 private key in PKCS#8 PEM.
    Ed25519Pem(&'a [u8]),
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Mints a token. `replica` binds it to one replica id.
pub fn mint_with(
    key: SigningKey<'_>,
    room: &str,
    scope: Scope,
    replica: Option<ReplicaId>,
    expires: u64,
) -> Result<String, String> {
    let claims = Wire {
        room: room.to_owned(),
        scope: scope.name().to_owned(),
        replica: replica.map(|r| r.to_string()),
        exp: expires,
    };
    let (alg, key) = match key {
        SigningKey::Secret(s) => (Algorithm::HS256, EncodingKey::from_secret(s)),
        SigningKey::Ed25519Pem(p) => (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(p).map_err(|e| format!("Ed25519 private key: {e}"))?,
        ),
    };
    jsonwebtoken::encode(&Header::new(alg), &claims, &key).map_err(|e| e.to_string())
}

/// Mints an HS256 token for `room` and `scope` that expires at `expires`.
pub fn mint(secret: &[u8], room: &str, scope: Scope, expires: u64) -> String {
    mint_with(SigningKey::Secret(secret), room, scope, None, expires)
        .expect("HS256 signing cannot fail")
}

/// Checks tokens: HS256 with a shared secret, EdDSA with a public key, or
/// both.
#[derive(Clone)]
pub struct Verifier {
    secret: Option<DecodingKey>,
    public: Option<DecodingKey>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("hs256", &self.secret.is_some())
            .field("eddsa", &self.public.is_some())
            .finish()
    }
}

impl Verifier {
    /// A verifier for either or both keys; `None` if neither is given.
    /// `public_pem` is an Ed25519 public key in SPKI PEM.
    pub fn new(secret: Option<&[u8]>, public_pem: Option<&[u8]>) -> Result<Option<Self>, String> {
        let public = match public_pem {
            Some(p) => {
                Some(DecodingKey::from_ed_pem(p).map_err(|e| format!("Ed25519 public key: {e}"))?)
            }
            None => None,
        };
        let secret = secret.map(DecodingKey::from_secret);
        if secret.is_none() && public.is_none() {
            return Ok(None);
        }
        Ok(Some(Self { secret, public }))
    }

    fn accepts(&self) -> String {
        let mut v = Vec::new();
        if self.secret.is_some() {
            v.push("HS256");
        }
        if self.public.is_some() {
            v.push("EdDSA");
        }
        v.join(" and ")
    }

    /// Checks a token's signature, its expiry (at `now`), that it is for
    /// `room`, and, if it binds a replica id, that it is `replica`. Only
    /// the algorithm of a configured key is accepted (no `none`, no
    /// algorithm confusion); signatures are compared in constant time by
    /// the JWT library's HMAC and Ed25519 implementations.
    pub fn verify(
        &self,
        token: &str,
        room: &str,
        replica: ReplicaId,
        now: u64,
    ) -> Result<Claims, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        let key = match header.alg {
            Algorithm::HS256 => self.secret.as_ref(),
            Algorithm::EdDSA => self.public.as_ref(),
            _ => None,
        }
        .ok_or_else(|| TokenError::Algorithm(format!("{:?}", header.alg), self.accepts()))?;
        let mut v = Validation::new(header.alg);
        // Expiry is checked below against `now`, with no leeway, so it is
        // testable and the same rule the live link applies.
        v.validate_exp = false;
        v.leeway = 0;
        v.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Wire>(token, key, &v).map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::InvalidAlgorithm => {
                TokenError::Algorithm(format!("{:?}", header.alg), self.accepts())
            }
            _ => TokenError::Malformed(e.to_string()),
        })?;
        let w = data.claims;
        let scope: Scope = w.scope.parse().map_err(TokenError::Malformed)?;
        let bound = match &w.replica {
            None => None,
            Some(s) => Some(parse_replica(s).map_err(TokenError::Malformed)?),
        };
        if w.room != room {
            return Err(TokenError::WrongRoom(w.room));
        }
        if w.exp <= now {
            return Err(TokenError::Expired);
        }
        if let Some(b) = bound.filter(|b| *b != replica) {
            return Err(TokenError::WrongReplica(b.to_string(), replica));
        }
        Ok(Claims {
            room: w.room,
            scope,
            replica: bound,
            expires: w.exp,
        })
    }
}

/// Parses 16 hex digits as a replica id.
pub fn parse_replica(s: &str) -> Result<ReplicaId, String> {
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("replica id {s:?} is not 16 hex digits"));
    }
    u64::from_str_radix(s, 16)
        .map(ReplicaId)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_PRIVATE: &[u8] = b"-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEICphiBdyobM62EclXotSobLWe3yB9Z/KW/FsFVnViKwJ
-----END PRIVATE KEY-----
";
    const ED_PUBLIC: &[u8] = b"-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA6ooFt6BZAJ6rhSpckuYvBVLtB7SLakjj7T4yzrYncKo=
-----END PUBLIC KEY-----
";

    fn hs(secret: &[u8]) -> Verifier {
        Verifier::new(Some(secret), None).unwrap().unwrap()
    }

    const R: ReplicaId = ReplicaId(0xabc);

    #[test]
    fn a_minted_token_verifies_for_its_room_only_until_it_expires() {
        let t = mint(b"s3cret", "demo|x", Scope::Write, 1_000);
        assert_eq!(t.matches('.').count(), 2, "a JWT: header.claims.signature");
        let c = hs(b"s3cret").verify(&t, "demo|x", R, 999).unwrap();
        assert_eq!(c.scope, Scope::Write);
        assert_eq!(c.room, "demo|x");
        assert_eq!(c.replica, None);
        assert_eq!(
            hs(b"s3cret").verify(&t, "demo", R, 999),
            Err(TokenError::WrongRoom("demo|x".into()))
        );
        assert_eq!(
            hs(b"s3cret").verify(&t, "demo|x", R, 1_000),
            Err(TokenError::Expired)
        );
        assert_eq!(
            hs(b"other").verify(&t, "demo|x", R, 999),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_token_bound_to_a_replica_admits_that_replica_only() {
        let t = mint_with(SigningKey::Secret(b"k"), "r", Scope::Write, Some(R), 10).unwrap();
        assert_eq!(hs(b"k").verify(&t, "r", R, 0).unwrap().replica, Some(R));
        assert!(matches!(
            hs(b"k").verify(&t, "r", ReplicaId(1), 0),
            Err(TokenError::WrongReplica(..))
        ));
    }

    #[test]
    fn eddsa_tokens_verify_with_the_public_key_only() {
        let t = mint_with(
            SigningKey::Ed25519Pem(ED_PRIVATE),
            "r",
            Scope::Snapshot,
            None,
            10,
        )
        .unwrap();
        let ed = Verifier::new(None, Some(ED_PUBLIC)).unwrap().unwrap();
        assert_eq!(ed.verify(&t, "r", R, 0).unwrap().scope, Scope::Snapshot);
        // A relay with only a secret does not take EdDSA tokens, and one
        // with only the public key does not take HS256 tokens.
        assert!(matches!(
            hs(b"k").verify(&t, "r", R, 0),
            Err(TokenError::Algorithm(..))
        ));
        let h = mint(b"k", "r", Scope::Write, 10);
        assert!(matches!(
            ed.verify(&h, "r", R, 0),
            Err(TokenError::Algorithm(..))
        ));
    }

    #[test]
    fn tampered_unsigned_and_garbage_tokens_are_refused() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        let t = mint(b"k", "r", Scope::Read, u64::MAX / 2);
        let parts: Vec<&str> = t.split('.').collect();
        // Upgrade the scope without the secret.
        let forged_claims = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"room":"r","scope":"write","exp":{}}}"#,
            u64::MAX / 2
        ));
        let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
        assert_eq!(
            hs(b"k").verify(&forged, "r", R, 0),
            Err(TokenError::BadSignature)
        );
        // alg "none".
        let none = format!(
            "{}.{forged_claims}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
        );
        assert!(hs(b"k").verify(&none, "r", R, 0).is_err());
        for g in ["", ".", "abc", "a.b", "a.b.c", "!!.!!.!!", "YQ.YQ.YQ"] {
            assert!(hs(b"k").verify(g, "r", R, 0).is_err(), "{g}");
        }
        // A well-signed token with a scope this relay does not know.
        let odd = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Wire {
                room: "r".into(),
                scope: "admin".into(),
                replica: None,
                exp: 10,
            },
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        assert!(matches!(
            hs(b"k").verify(&odd, "r", R, 0),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn scopes_are_ordered() {
        assert!(!Scope::Read.can_write());
        assert!(Scope::Write.can_write() && !Scope::Write.can_forward());
        assert!(Scope::Forward.can_forward() && !Scope::Forward.can_snapshot());
        assert!(Scope::Snapshot.can_snapshot() && Scope::Snapshot.can_forward());
    }
}
