//! JWT verification for `Acl.Login`, on `jsonwebtoken`: an auth method's keys (a JWKS
//! document and PEM public keys, each pinned to the algorithms its key type can
//! verify; a JWKS fetched from a `jwks_url` is parsed here too), and `verify_with`,
//! which checks a compact JWT's signature, `exp`, `nbf`, `iss` and `aud` and says
//! exactly why it refuses one. Runs on the node that received the login, before
//! anything is proposed; never inside apply.

use std::str::FromStr;

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use waymark_proto::ValidationError;

use crate::model::JwtMethod;

const RSA: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];
/// An EC key from PEM: the curve decides which of the two verifies; either way
/// nothing but ECDSA does.
const EC: &[Algorithm] = &[Algorithm::ES256, Algorithm::ES384];

/// One verification key and the only algorithms it is used with (so a JWT can never
/// pick HMAC with a public key as the secret, or `none`).
struct Key {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

/// An auth method's keys, parsed.
pub struct Keys(Vec<Key>);

impl Keys {
    /// Parses a method's JWKS document (may be empty) and PEM public keys, at least
    /// one key in all; the error names the field (`method.jwks`,
    /// `method.public_keys[i]`) and what is wrong.
    pub fn parse(jwks: &str, public_keys: &[String]) -> Result<Keys, ValidationError> {
        let keys = Keys::inline(jwks, public_keys)?;
        if keys.0.is_empty() {
            return Err(ValidationError::new(
                "method.jwks",
                "no keys: give a JWKS with at least one key, or a PEM public key",
            ));
        }
        Ok(keys)
    }

    /// A method's inline keys, checked as strictly as `parse` but possibly none (a
    /// method with a `jwks_url` may have no inline keys).
    pub fn inline(jwks: &str, public_keys: &[String]) -> Result<Keys, ValidationError> {
        let mut keys = Vec::new();
        if !jwks.trim().is_empty() {
            let bad = |rule: String| ValidationError::new("method.jwks", rule);
            let doc: Value =
                serde_json::from_str(jwks).map_err(|e| bad(format!("not a JSON document: {e}")))?;
            let Some(list) = doc.get("keys").and_then(Value::as_array) else {
                return Err(bad(
                    "not a JSON Web Key Set: expected {\"keys\": [...]}".into()
                ));
            };
            for (i, v) in list.iter().enumerate() {
                keys.push(jwk_key(v).map_err(|rule| bad(format!("keys[{i}]: {rule}")))?);
            }
        }
        for (i, pem) in public_keys.iter().enumerate() {
            keys.push(
                pem_key(pem).map_err(|rule| {
                    ValidationError::new(format!("method.public_keys[{i}]"), rule)
                })?,
            );
        }
        Ok(Keys(keys))
    }

    /// A JWKS document fetched from a `jwks_url`. Leaner than an inline one: an
    /// identity provider's set may hold keys Waymark cannot use (an encryption key, an
    /// unsupported curve) beside the signing keys; those are skipped and returned as
    /// reasons, and only a set with no usable key at all is refused.
    pub fn fetched(doc: &[u8]) -> Result<(Keys, Vec<String>), String> {
        let doc: Value =
            serde_json::from_slice(doc).map_err(|e| format!("not a JSON document: {e}"))?;
        let Some(list) = doc.get("keys").and_then(Value::as_array) else {
            return Err("not a JSON Web Key Set: expected {\"keys\": [...]}".into());
        };
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (i, v) in list.iter().enumerate() {
            match jwk_key(v) {
                Ok(k) => keys.push(k),
                Err(why) => skipped.push(format!("keys[{i}]: {why}")),
            }
        }
        if keys.is_empty() {
            return Err(match skipped.first() {
                None => "the JWKS has no keys".into(),
                Some(first) => format!(
                    "the JWKS has no usable signing key ({} skipped; {first})",
                    skipped.len()
                ),
            });
        }
        Ok((Keys(keys), skipped))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The `kid` in a compact JWT's header, if it has one (for a cache deciding whether
/// an unknown key warrants a refetch; verification reads the header itself).
pub fn header_kid(jwt: &str) -> Option<String> {
    let header = b64_json(jwt.trim().split('.').next()?)?;
    header.get("kid")?.as_str().map(String::from)
}

fn jwk_key(v: &Value) -> Result<Key, String> {
    match v.get("kty").and_then(Value::as_str) {
        Some("oct") => {
            return Err("symmetric (kty \"oct\") keys are refused: every node would hold a secret that can mint logins; use an RSA, EC or Ed25519 public key".into())
        }
        Some("EC" | "RSA" | "OKP") => {}
        other => return Err(format!("unsupported kty {other:?} (RSA, EC or OKP)")),
    }
    let jwk: Jwk = serde_json::from_value(v.clone()).map_err(|e| format!("not a JWK: {e}"))?;
    if let Some(PublicKeyUse::Encryption) = jwk.common.public_key_use {
        return Err("an encryption key (use \"enc\"), not a signing key".into());
    }
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => RSA,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            ref c => return Err(format!("unsupported EC curve {c:?} (P-256 or P-384)")),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => &[Algorithm::EdDSA],
            ref c => return Err(format!("unsupported OKP curve {c:?} (Ed25519)")),
        },
        AlgorithmParameters::OctetKey(_) => return Err("symmetric keys are refused".into()),
    };
    let algorithms = match jwk.common.key_algorithm {
        None => family.to_vec(),
        Some(named) => {
            let alg = Algorithm::from_str(&named.to_string())
                .ok()
                .filter(|a| family.contains(a))
                .ok_or_else(|| format!("alg {named} does not fit its key type"))?;
            vec![alg]
        }
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable key: {e}"))?;
    Ok(Key {
        kid: jwk.common.key_id.clone(),
        algorithms,
        key,
    })
}

fn pem_key(pem: &str) -> Result<Key, String> {
    if pem.contains("PRIVATE KEY") {
        return Err("a private key: give the issuer's public key (never its private key)".into());
    }
    let bytes = pem.as_bytes();
    let (key, algorithms) = if let Ok(k) = DecodingKey::from_ec_pem(bytes) {
        (k, EC)
    } else if let Ok(k) = DecodingKey::from_ed_pem(bytes) {
        (k, &[Algorithm::EdDSA][..])
    } else if let Ok(k) = DecodingKey::from_rsa_pem(bytes) {
        (k, RSA)
    } else {
        return Err("not a PEM public key (EC P-256/P-384, Ed25519 or RSA)".into());
    };
    Ok(Key {
        kid: None,
        algorithms: algorithms.to_vec(),
        key,
    })
}

/// A JWT whose signature and claims checked out.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub claims: Map<String, Value>,
    /// Its `exp`, in Unix milliseconds: a login's token never outlives it.
    pub exp_unix_ms: u64,
}

impl Verified {
    /// The `sub` claim, if it is a string.
    pub fn subject(&self) -> Option<&str> {
        self.claims.get("sub").and_then(Value::as_str)
    }
}

/// Why a JWT was refused; the text is what the caller is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed JWT: {0}")]
    Malformed(String),
    #[error(
        "unsigned JWT (alg \"none\") refused: it must be signed by a key of auth method {0:?}"
    )]
    Unsigned(String),
    #[error("algorithm {alg} is not accepted by the keys of auth method {method:?} (they verify {accepted})")]
    Algorithm {
        alg: String,
        method: String,
        accepted: String,
    },
    #[error("no key with kid {kid} in auth method {method:?}")]
    UnknownKid { kid: String, method: String },
    #[error("bad signature: the JWT is not signed by any key of auth method {0:?}")]
    Signature(String),
    #[error("JWT expired: exp {exp} is {ago_s} s ago (clock skew allowed: {skew_s} s)")]
    Expired { exp: u64, ago_s: u64, skew_s: u64 },
    #[error("JWT not valid yet: nbf {nbf} is {in_s} s from now (clock skew allowed: {skew_s} s)")]
    NotYetValid { nbf: u64, in_s: u64, skew_s: u64 },
    #[error("wrong issuer: the JWT's iss is {got}, auth method {method:?} requires {want:?}")]
    Issuer {
        got: String,
        want: String,
        method: String,
    },
    #[error("wrong audience: the JWT's aud is {got}, auth method {method:?} accepts {want:?}")]
    Audience {
        got: String,
        want: Vec<String>,
        method: String,
    },
    #[error("the JWT has no valid {0:?} claim (exp, iss and aud are required)")]
    MissingClaim(String),
    #[error("auth method {0:?} has unusable keys: {1}")]
    MethodKeys(String, String),
}

fn b64_json(part: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `s` cut to at most `max` bytes, on a character boundary (claims are the caller's
/// text: they are cut before they go into messages or token descriptions).
pub fn shorten(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// A claim for a message: JSON text, cut short.
fn shown(v: Option<&Value>) -> String {
    let Some(v) = v else {
        return "absent".into();
    };
    let text = v.to_string();
    let long = text.len() > 128;
    let mut s = shorten(text, 128);
    if long {
        s.push('…');
    }
    s
}

fn seconds(v: Option<&Value>) -> Option<u64> {
    let v = v?;
    v.as_u64().or_else(|| v.as_f64().map(|f| f.max(0.0) as u64))
}

/// Verifies `jwt` for auth method `method_name` with its inline keys only.
pub fn verify(
    method_name: &str,
    method: &JwtMethod,
    jwt: &str,
    now_unix_ms: u64,
) -> Result<Verified, Refusal> {
    let keys = Keys::parse(&method.jwks, &method.public_keys)
        .map_err(|e| Refusal::MethodKeys(method_name.into(), e.to_string()))?;
    verify_with(method_name, method, &[&keys], jwt, now_unix_ms)
}

/// Verifies `jwt` for auth method `method_name` with settings `method`, against every
/// key of `key_sets` (its inline keys, and those fetched from its `jwks_url`).
/// `now_unix_ms` only words the refusal (`jsonwebtoken` checks `exp` and `nbf` by its
/// own clock).
pub fn verify_with(
    method_name: &str,
    method: &JwtMethod,
    key_sets: &[&Keys],
    jwt: &str,
    now_unix_ms: u64,
) -> Result<Verified, Refusal> {
    let all: Vec<&Key> = key_sets.iter().flat_map(|k| k.0.iter()).collect();
    let jwt = jwt.trim();
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err(Refusal::Malformed(format!(
            "expected header.payload.signature, got {} part(s)",
            parts.len()
        )));
    }
    let header = b64_json(parts[0])
        .ok_or_else(|| Refusal::Malformed("the header is not base64url JSON".into()))?;
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| Refusal::Malformed("the header has no \"alg\"".into()))?;
    if alg_name.eq_ignore_ascii_case("none") || parts[2].is_empty() {
        return Err(Refusal::Unsigned(method_name.into()));
    }
    let accepted = |keys: &[&Key]| {
        let mut names: Vec<String> = keys
            .iter()
            .flat_map(|k| k.algorithms.iter().map(|a| format!("{a:?}")))
            .collect();
        names.sort();
        names.dedup();
        names.join(", ")
    };
    let by_kid: Vec<&Key> = match header.get("kid").and_then(Value::as_str) {
        Some(kid) => all
            .iter()
            .copied()
            .filter(|k| k.kid.as_deref().is_none_or(|k| k == kid))
            .collect(),
        None => all.clone(),
    };
    if by_kid.is_empty() {
        return Err(Refusal::UnknownKid {
            kid: shown(header.get("kid")),
            method: method_name.into(),
        });
    }
    let refuse_alg = || Refusal::Algorithm {
        alg: shown(header.get("alg")),
        method: method_name.into(),
        accepted: accepted(by_kid.as_slice()),
    };
    let alg = Algorithm::from_str(alg_name).map_err(|_| refuse_alg())?;
    let candidates: Vec<&Key> = by_kid
        .iter()
        .copied()
        .filter(|k| k.algorithms.contains(&alg))
        .collect();
    if candidates.is_empty() {
        return Err(refuse_alg());
    }

    let skew_s = method.clock_skew_ms.div_ceil(1000);
    let mut validation = Validation::new(alg);
    validation.algorithms = vec![alg];
    validation.set_issuer(&[&method.issuer]);
    validation.set_audience(&method.audiences);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.leeway = skew_s;

    for key in candidates {
        match jsonwebtoken::decode::<Map<String, Value>>(jwt, &key.key, &validation) {
            Ok(data) => {
                let exp = seconds(data.claims.get("exp"))
                    .ok_or_else(|| Refusal::MissingClaim("exp".into()))?;
                return Ok(Verified {
                    exp_unix_ms: exp.saturating_mul(1000),
                    claims: data.claims,
                });
            }
            // Not this key's signature: another key (key rotation) may have signed it.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::InvalidSignature
                        | ErrorKind::InvalidEcdsaKey
                        | ErrorKind::InvalidRsaKey(_)
                        | ErrorKind::InvalidAlgorithm
                        | ErrorKind::Crypto(_)
                ) =>
            {
                continue
            }
            // The signature checked out (it is verified first); a claim did not.
            Err(e) => {
                let claims = b64_json(parts[1]).unwrap_or(Value::Null);
                return Err(claim_refusal(
                    e.kind(),
                    &claims,
                    method_name,
                    method,
                    now_unix_ms / 1000,
                    skew_s,
                ));
            }
        }
    }
    Err(Refusal::Signature(method_name.into()))
}

fn claim_refusal(
    kind: &ErrorKind,
    claims: &Value,
    method_name: &str,
    method: &JwtMethod,
    now_s: u64,
    skew_s: u64,
) -> Refusal {
    match kind {
        ErrorKind::ExpiredSignature => {
            let exp = seconds(claims.get("exp")).unwrap_or(0);
            Refusal::Expired {
                exp,
                ago_s: now_s.saturating_sub(exp),
                skew_s,
            }
        }
        ErrorKind::ImmatureSignature => {
            let nbf = seconds(claims.get("nbf")).unwrap_or(0);
            Refusal::NotYetValid {
                nbf,
                in_s: nbf.saturating_sub(now_s),
                skew_s,
            }
        }
        ErrorKind::InvalidIssuer => Refusal::Issuer {
            got: shown(claims.get("iss")),
            want: method.issuer.clone(),
            method: method_name.into(),
        },
        ErrorKind::InvalidAudience => Refusal::Audience {
            got: shown(claims.get("aud")),
            want: method.audiences.clone(),
            method: method_name.into(),
        },
        ErrorKind::MissingRequiredClaim(c) => Refusal::MissingClaim(c.clone()),
        other => Refusal::Malformed(format!("{other:?}")),
    }
}

#[cfg(test)]
pub(crate) mod tests;
