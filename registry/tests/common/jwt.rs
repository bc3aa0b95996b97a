//! A test JWT issuer: a fresh ES256 (or Ed25519) key pair made at test time with
//! `ring` (no private key is ever committed), its public half as a JWKS document or a
//! PEM, and JWTs it signs with `jsonwebtoken`. Shared by the registry's unit tests
//! (`acl/jwt/tests.rs` includes this file) and its integration tests.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

/// SPKI DER prefix of a P-256 public key (the uncompressed point follows).
const P256_SPKI_PREFIX: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200";
/// SPKI DER prefix of an Ed25519 public key (the 32-byte key follows).
const ED25519_SPKI_PREFIX: &str = "302a300506032b6570032100";

pub struct Issuer {
    alg: Algorithm,
    kid: String,
    pkcs8: Vec<u8>,
    public: Vec<u8>,
}

impl Issuer {
    /// A new ES256 key pair named `kid`.
    pub fn es256(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("generating a P-256 key")
            .as_ref()
            .to_vec();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .expect("reading the P-256 key back");
        Self {
            alg: Algorithm::ES256,
            kid: kid.into(),
            public: pair.public_key().as_ref().to_vec(),
            pkcs8,
        }
    }

    /// A new Ed25519 key pair named `kid`.
    pub fn ed25519(kid: &str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .expect("generating an Ed25519 key")
            .as_ref()
            .to_vec();
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).expect("reading the Ed25519 key back");
        Self {
            alg: Algorithm::EdDSA,
            kid: kid.into(),
            public: pair.public_key().as_ref().to_vec(),
            pkcs8,
        }
    }

    /// The public key as one JWK (with `kid`, `use: sig` and `alg`).
    pub fn jwk(&self) -> Value {
        match self.alg {
            Algorithm::ES256 => json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&self.public[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&self.public[33..65]),
                "kid": self.kid,
                "use": "sig",
                "alg": "ES256",
            }),
            _ => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(&self.public),
                "kid": self.kid,
                "use": "sig",
                "alg": "EdDSA",
            }),
        }
    }

    /// A JWKS document holding this key.
    pub fn jwks(&self) -> String {
        json!({ "keys": [self.jwk()] }).to_string()
    }

    /// The public key as a PEM `PUBLIC KEY` (SPKI).
    pub fn public_pem(&self) -> String {
        let prefix = match self.alg {
            Algorithm::ES256 => P256_SPKI_PREFIX,
            _ => ED25519_SPKI_PREFIX,
        };
        let mut der = hex::decode(prefix).expect("constant hex");
        der.extend_from_slice(&self.public);
        let b64 = STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// `claims` signed by this key, the header naming its `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        self.sign_with(header, claims)
    }

    /// `claims` signed by this key under `header` (its `alg` must be this key's).
    pub fn sign_with(&self, header: Header, claims: &Value) -> String {
        let key = match self.alg {
            Algorithm::ES256 => EncodingKey::from_ec_der(&self.pkcs8),
            _ => EncodingKey::from_ed_der(&self.pkcs8),
        };
        jsonwebtoken::encode(&header, claims, &key).expect("signing a JWT")
    }
}

/// `claims` as an unsigned JWT: `alg: none` and an empty signature.
pub fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// Seconds since the Unix epoch.
pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_secs()
}

/// Claims from `iss` for `aud`, expiring `exp_in_s` from now (negative: past), with
/// `extra` claims merged in.
pub fn claims(iss: &str, aud: &str, exp_in_s: i64, extra: Value) -> Value {
    let now = now_s() as i64;
    let mut c = json!({
        "iss": iss,
        "aud": aud,
        "iat": now,
        "exp": now + exp_in_s,
    });
    if let (Some(c), Value::Object(extra)) = (c.as_object_mut(), extra) {
        c.extend(extra);
    }
    c
}
