//! Validation of config entry keys, prefixes and values.

use crate::validate::{check_dns_label, ValidationError};

/// Longest config key, in bytes.
pub const MAX_CONFIG_KEY_LEN: usize = 512;
/// Largest config value, in bytes.
pub const MAX_CONFIG_VALUE_LEN: usize = 64 * 1024;

/// A key: `/`-separated segments, each a DNS label.
pub fn check_config_key(field: &str, key: &str) -> Result<(), ValidationError> {
    if key.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if key.len() > MAX_CONFIG_KEY_LEN {
        return Err(ValidationError::new(
            field,
            format!(
                "must be at most {MAX_CONFIG_KEY_LEN} bytes (got {})",
                key.len()
            ),
        ));
    }
    for (i, segment) in key.split('/').enumerate() {
        check_dns_label(&format!("{field} segment {}", i + 1), segment).map_err(|e| {
            ValidationError::new(
                field,
                format!(
                    "{key:?} is not '/'-separated DNS labels: segment {} {}",
                    i + 1,
                    e.rule
                ),
            )
        })?;
    }
    Ok(())
}

/// A prefix: empty (everything) or a key.
pub fn check_config_prefix(field: &str, prefix: &str) -> Result<(), ValidationError> {
    if prefix.is_empty() {
        return Ok(());
    }
    check_config_key(field, prefix)
}

pub fn check_config_value(value: &[u8]) -> Result<(), ValidationError> {
    if value.len() > MAX_CONFIG_VALUE_LEN {
        return Err(ValidationError::new(
            "value",
            format!(
                "must be at most {MAX_CONFIG_VALUE_LEN} bytes (got {})",
                value.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_slash_separated_labels() {
        assert!(check_config_key("key", "proxy/web/timeouts").is_ok());
        assert!(check_config_key("key", "a").is_ok());
        for bad in ["", "/a", "a/", "a//b", "A/b", "a/b_c", "a b"] {
            let e = check_config_key("key", bad).unwrap_err();
            assert_eq!(e.field, "key", "{bad:?}");
        }
        let long = vec!["a"; 300].join("/");
        assert!(check_config_key("key", &long)
            .unwrap_err()
            .rule
            .contains("at most 512"));
    }

    #[test]
    fn prefix_may_be_empty_and_values_are_bounded() {
        assert!(check_config_prefix("prefix", "").is_ok());
        assert_eq!(
            check_config_prefix("prefix", "a/").unwrap_err().field,
            "prefix"
        );
        assert!(check_config_value(&vec![0; MAX_CONFIG_VALUE_LEN]).is_ok());
        let e = check_config_value(&vec![0; MAX_CONFIG_VALUE_LEN + 1]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value: must be at most 65536 bytes (got 65537)"
        );
    }
}
