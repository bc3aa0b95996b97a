//! Pure parsers for command-line values: `--meta K=V`. They return plain `String`
//! errors so clap can show them next to the flag. (Durations and addresses follow
//! `waymark-client`'s rules, shared with every other tool.)

use std::collections::HashMap;

/// Parses one `--meta KEY=VALUE`. The value may be empty and may contain `=`; which
/// keys are allowed is the server's rule, so it is checked there.
pub fn parse_meta_entry(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        Some(_) => Err("the key before '=' is empty".to_string()),
        None => Err("expected KEY=VALUE, e.g. version=1.2".to_string()),
    }
}

/// Collects `--meta` entries, rejecting a key given twice rather than silently keeping
/// one of the values.
pub fn collect_meta(entries: Vec<(String, String)>) -> Result<HashMap<String, String>, String> {
    let mut meta = HashMap::with_capacity(entries.len());
    for (key, value) in entries {
        if meta.contains_key(&key) {
            return Err(format!("--meta key {key:?} given more than once"));
        }
        meta.insert(key, value);
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_entries() {
        assert_eq!(
            parse_meta_entry("version=1.2"),
            Ok(("version".into(), "1.2".into()))
        );
        assert_eq!(parse_meta_entry("k="), Ok(("k".into(), String::new())));
        assert_eq!(parse_meta_entry("q=a=b"), Ok(("q".into(), "a=b".into())));
        assert!(parse_meta_entry("novalue")
            .unwrap_err()
            .contains("KEY=VALUE"));
        assert!(parse_meta_entry("=v").unwrap_err().contains("empty"));
    }

    #[test]
    fn meta_duplicates_rejected() {
        let ok = collect_meta(vec![("a".into(), "1".into()), ("b".into(), "2".into())]);
        assert_eq!(ok.map(|m| m.len()), Ok(2));
        let dup = collect_meta(vec![("a".into(), "1".into()), ("a".into(), "2".into())]);
        assert!(dup.unwrap_err().contains("\"a\""));
    }
}
