//! Token secrets and accessor ids: 128 random bits from the OS's generator, as hex;
//! only the SHA-256 of a secret is ever stored or replicated.

use rand::RngCore;
use sha2::{Digest, Sha256};

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A new token secret (32 hex digits). Shown to its creator once.
pub fn new_secret() -> String {
    random_hex()
}

/// A new public accessor id (32 hex digits).
pub fn new_accessor_id() -> String {
    random_hex()
}

/// What is stored for `secret`: a plain SHA-256 suffices (no salt, no stretching)
/// because secrets are 128 random bits, not passwords a dictionary could guess.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `s` looks like an accessor id (so a typo is a clear error, not NotFound).
pub fn is_accessor_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_fresh_and_only_their_hash_is_kept() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(is_accessor_id(&new_accessor_id()));
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), hash_secret(&b));
        assert!(!hash_secret(&a).contains(&a));
        assert!(!is_accessor_id("XYZ"));
    }
}
