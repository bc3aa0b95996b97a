//! JWT login verification (`waymark_registry::acl::jwt`): an auth method's key text
//! (`Keys::parse`, JWKS and PEM) and `verify` of a compact JWT against fixed keys and
//! a fixed method. The first byte picks what the rest is:
//!
//! - `% 3 == 0`: key text, tried as a JWKS document and as a PEM public key;
//! - `% 3 == 1`: a compact JWT, verified as it arrives (the signature stops most);
//! - `% 3 == 2`: `header JSON \n claims`, base64url-encoded and signed here with the
//!   method's own Ed25519 key, so the checks behind the signature (alg, kid, exp,
//!   nbf, iss, aud, claim types, the refusal wording) see arbitrary claims too.
//!
//! Refusals are fine; panics are bugs. The key is derived from a fixed seed at start
//! (no private key is committed) so the seed corpus's JWTs stay valid across runs.
#![no_main]

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use ring::signature::{Ed25519KeyPair, KeyPair};
use waymark_registry::acl::jwt::{verify, Keys};
use waymark_registry::model::JwtMethod;

/// SPKI DER prefix of an Ed25519 public key (the 32-byte key follows).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

struct Env {
    key: Ed25519KeyPair,
    method: JwtMethod,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let key = Ed25519KeyPair::from_seed_unchecked(&[0x57; 32]).expect("ed25519 seed");
        let public = key.public_key().as_ref();
        let jwks = serde_json::json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "kid": "k1", "use": "sig", "alg": "EdDSA",
            "x": URL_SAFE_NO_PAD.encode(public),
        }]})
        .to_string();
        // The same key again as a PEM without a kid: JWTs naming another kid, or
        // none, still find a candidate.
        let spki = [&ED25519_SPKI_PREFIX[..], public].concat();
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(spki)
        );
        let method = JwtMethod {
            issuer: "https://issuer.example".into(),
            audiences: vec!["waymark".into(), "other".into()],
            jwks,
            public_keys: vec![pem],
            max_token_ttl_ms: 600_000,
            clock_skew_ms: 30_000,
        };
        Env { key, method }
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let env = env();
    match mode % 3 {
        0 => {
            let _ = Keys::parse(text, &[]);
            let _ = Keys::parse("", &[text.to_string()]);
        }
        1 => {
            let _ = verify("fuzz", &env.method, text, now_ms());
        }
        _ => {
            let (header, claims) = text.split_once('\n').unwrap_or((text, ""));
            let signing_input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(claims)
            );
            let signature = env.key.sign(signing_input.as_bytes());
            let jwt = format!(
                "{signing_input}.{}",
                URL_SAFE_NO_PAD.encode(signature.as_ref())
            );
            let _ = verify("fuzz", &env.method, &jwt, now_ms());
        }
    }
});
