//! JWT verification against keys made at test time: a good JWT passes (JWKS and PEM,
//! ES256 and Ed25519, key rotation), and each bad one is refused with its reason:
//! expired, not yet valid, wrong issuer, wrong audience, unsigned, wrongly signed, an
//! algorithm its key does not verify, missing claims; bad key material is refused
//! when the method is written.

use jsonwebtoken::Header;
use serde_json::json;

use super::*;

#[path = "../../../tests/common/jwt.rs"]
mod issuer;
use issuer::{claims, now_s, unsigned, Issuer};

const ISS: &str = "https://ci.example";

fn method(jwks: String, public_keys: Vec<String>) -> JwtMethod {
    JwtMethod {
        issuer: ISS.into(),
        audiences: vec!["waymark".into(), "other".into()],
        jwks,
        public_keys,
        jwks_url: String::new(),
        jwks_ca_cert: String::new(),
        max_token_ttl_ms: 60_000,
        clock_skew_ms: 0,
    }
}

fn check(m: &JwtMethod, jwt: &str) -> Result<Verified, Refusal> {
    verify("ci", m, jwt, now_s() * 1000)
}

#[test]
fn a_good_jwt_passes_with_its_claims() {
    let key = Issuer::es256("k1");
    let m = method(key.jwks(), vec![]);
    let jwt = key.sign(&claims(
        ISS,
        "waymark",
        600,
        json!({"sub": "ci-7", "groups": ["ops"]}),
    ));
    let v = check(&m, &jwt).unwrap();
    assert_eq!(v.subject(), Some("ci-7"));
    assert_eq!(v.claims["groups"], json!(["ops"]));
    assert!(v.exp_unix_ms >= (now_s() + 590) * 1000);
    // The same key as a PEM, and an Ed25519 key beside it.
    let ed = Issuer::ed25519("k2");
    let m = method(String::new(), vec![key.public_pem(), ed.public_pem()]);
    check(&m, &jwt).expect("ES256 from the PEM");
    let jwt = ed.sign(&claims(ISS, "other", 600, json!({})));
    check(&m, &jwt).expect("EdDSA from the PEM");
    // An audience array passes when it names one of the method's.
    let jwt = key.sign(&claims(ISS, "x", 600, json!({"aud": ["x", "waymark"]})));
    check(&m, &jwt).expect("aud array");
}

#[test]
fn a_rotated_key_set_verifies_by_kid_or_by_trying_each() {
    let (old, new) = (Issuer::es256("old"), Issuer::es256("new"));
    let jwks = json!({"keys": [old.jwk(), new.jwk()]}).to_string();
    let m = method(jwks, vec![]);
    for key in [&old, &new] {
        check(&m, &key.sign(&claims(ISS, "waymark", 60, json!({})))).unwrap();
    }
    // Without a kid every key of the algorithm is tried.
    let jwt = new.sign_with(
        Header::new(Algorithm::ES256),
        &claims(ISS, "waymark", 60, json!({})),
    );
    check(&m, &jwt).unwrap();
    // A kid the set does not have.
    let other = Issuer::es256("gone");
    let e = check(&m, &other.sign(&claims(ISS, "waymark", 60, json!({})))).unwrap_err();
    assert!(matches!(e, Refusal::UnknownKid { .. }), "{e}");
    assert!(e.to_string().contains("\"gone\""), "{e}");
}

#[test]
fn each_bad_jwt_is_refused_with_its_reason() {
    let key = Issuer::es256("k1");
    let m = method(key.jwks(), vec![]);
    let ok = |c| key.sign(&c);

    let e = check(&m, &ok(claims(ISS, "waymark", -600, json!({})))).unwrap_err();
    assert!(
        matches!(e, Refusal::Expired { ago_s, .. } if ago_s >= 599),
        "{e}"
    );
    assert!(e.to_string().starts_with("JWT expired"), "{e}");

    let nbf = now_s() + 600;
    let e = check(&m, &ok(claims(ISS, "waymark", 900, json!({"nbf": nbf})))).unwrap_err();
    assert!(matches!(e, Refusal::NotYetValid { .. }), "{e}");

    let e = check(
        &m,
        &ok(claims("https://evil.example", "waymark", 60, json!({}))),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("wrong issuer: the JWT's iss is \"https://evil.example\", auth method \"ci\" requires \"{ISS}\"")
    );

    let e = check(&m, &ok(claims(ISS, "someone-else", 60, json!({})))).unwrap_err();
    assert!(matches!(e, Refusal::Audience { .. }), "{e}");
    assert!(e.to_string().contains("\"someone-else\""), "{e}");

    let e = check(&m, &unsigned(&claims(ISS, "waymark", 60, json!({})))).unwrap_err();
    assert_eq!(e, Refusal::Unsigned("ci".into()));
    // A good header and payload with the signature cut off is unsigned too.
    let good = ok(claims(ISS, "waymark", 60, json!({})));
    let cut = &good[..good.rfind('.').unwrap() + 1];
    assert_eq!(check(&m, cut).unwrap_err(), Refusal::Unsigned("ci".into()));

    // Signed by another key under the same kid.
    let impostor = Issuer::es256("k1");
    let e = check(&m, &impostor.sign(&claims(ISS, "waymark", 60, json!({})))).unwrap_err();
    assert_eq!(e, Refusal::Signature("ci".into()));
    // A payload changed after signing.
    let mut parts: Vec<String> = good.split('.').map(String::from).collect();
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(claims(ISS, "waymark", 6000, json!({"sub": "admin"})).to_string());
    assert_eq!(
        check(&m, &parts.join(".")).unwrap_err(),
        Refusal::Signature("ci".into())
    );

    // HS256 "signed" with the public key as the secret: the key verifies only ES256.
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(ISS, "waymark", 60, json!({})),
        &jsonwebtoken::EncodingKey::from_secret(key.jwks().as_bytes()),
    )
    .unwrap();
    let e = check(&m, &hs).unwrap_err();
    assert!(matches!(e, Refusal::Algorithm { .. }), "{e}");
    assert!(e.to_string().contains("ES256"), "{e}");

    let mut c = claims(ISS, "waymark", 60, json!({}));
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        check(&m, &ok(c)).unwrap_err(),
        Refusal::MissingClaim("exp".into())
    );
    for junk in ["", "a.b", "not.a.jwt", "a.b.c.d"] {
        assert!(
            matches!(check(&m, junk).unwrap_err(), Refusal::Malformed(_)),
            "{junk}"
        );
    }
}

#[test]
fn clock_skew_lets_a_just_expired_jwt_through() {
    let key = Issuer::es256("k1");
    let mut m = method(key.jwks(), vec![]);
    let jwt = key.sign(&claims(ISS, "waymark", -5, json!({})));
    assert!(matches!(check(&m, &jwt), Err(Refusal::Expired { .. })));
    m.clock_skew_ms = 60_000;
    check(&m, &jwt).expect("within the skew");
}

#[test]
fn bad_key_material_is_refused_naming_the_field() {
    let key = Issuer::es256("k1");
    let field = |jwks: &str, pems: Vec<String>| Keys::parse(jwks, &pems).err().map(|e| e.field);
    assert_eq!(field(&key.jwks(), vec![]), None);
    assert_eq!(field("", vec![key.public_pem()]), None);
    assert_eq!(field("", vec![]), Some("method.jwks".into()));
    assert_eq!(field("{", vec![]), Some("method.jwks".into()));
    assert_eq!(field(r#"{"keys":[]}"#, vec![]), Some("method.jwks".into()));
    let oct = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#;
    let e = Keys::parse(oct, &[]).err().unwrap();
    assert!(e.rule.contains("symmetric"), "{e}");
    let mut mismatched = key.jwk();
    mismatched["alg"] = json!("RS256");
    let e = Keys::parse(&json!({"keys": [mismatched]}).to_string(), &[])
        .err()
        .unwrap();
    assert!(e.rule.contains("keys[0]"), "{e}");
    assert_eq!(
        field("", vec![key.public_pem(), "hello".into()]),
        Some("method.public_keys[1]".into())
    );
    let private = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    let e = Keys::parse("", &[private.into()]).err().unwrap();
    assert!(e.rule.contains("private key"), "{e}");
}

#[test]
fn a_fetched_jwks_skips_keys_it_cannot_use_but_needs_one() {
    let key = Issuer::es256("sig");
    let mut enc = Issuer::es256("enc").jwk();
    enc["use"] = json!("enc");
    let doc = json!({"keys": [enc, {"kty": "oct", "k": "AA"}, key.jwk()]}).to_string();
    let (keys, skipped) = Keys::fetched(doc.as_bytes()).unwrap();
    assert_eq!((keys.len(), skipped.len()), (1, 2), "{skipped:?}");
    assert!(
        skipped[0].starts_with("keys[0]: an encryption key"),
        "{skipped:?}"
    );
    let m = method(String::new(), vec![]);
    let jwt = key.sign(&claims(ISS, "waymark", 60, json!({})));
    assert_eq!(header_kid(&jwt).as_deref(), Some("sig"));
    verify_with("ci", &m, &[&keys], &jwt, now_s() * 1000).expect("the usable key");
    for (doc, says) in [
        ("<html>", "not a JSON document"),
        (r#"{"issuer":"x"}"#, "not a JSON Web Key Set"),
        (r#"{"keys":[]}"#, "no keys"),
        (
            r#"{"keys":[{"kty":"oct","k":"AA"}]}"#,
            "no usable signing key",
        ),
    ] {
        let e = Keys::fetched(doc.as_bytes()).err().unwrap();
        assert!(e.contains(says), "{doc}: {e}");
    }
}
