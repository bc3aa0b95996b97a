//! Pure parsers for command-line values: durations, `--meta K=V`, server addresses.
//! They return plain `String` errors so clap can show them next to the flag.

use std::collections::HashMap;
use std::time::Duration;

/// Parses a duration such as `5s`, `500ms`, `1.5s` or `2m`. A unit is required (a bare
/// `5` could mean seconds or milliseconds) and the value must be positive.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let examples = "expected a number with a unit: ms, s or m (e.g. 500ms, 5s, 1.5s, 2m)";
    let split = s
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| examples.to_string())?;
    let (number, unit) = s.split_at(split);
    // Only plain decimals: `f64::from_str` would also take "inf", "NaN" and exponents.
    if number.is_empty()
        || !number.chars().all(|c| c.is_ascii_digit() || c == '.')
        || number.matches('.').count() > 1
    {
        return Err(examples.to_string());
    }
    let value: f64 = number.parse().map_err(|_| examples.to_string())?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit {unit:?}; {examples}")),
    };
    let d = Duration::try_from_secs_f64(secs).map_err(|_| "out of range".to_string())?;
    if d.is_zero() {
        return Err("must be positive".to_string());
    }
    Ok(d)
}

/// Whole milliseconds for the wire, rounded up so a tiny positive bound never turns
/// into 0 (which the API reads as "no bound").
pub fn duration_to_ms(d: Duration) -> u64 {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if Duration::from_millis(ms) < d {
        ms.saturating_add(1)
    } else {
        ms
    }
}

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

/// Turns `HOST:PORT` or `http://HOST:PORT` into the URI tonic dials. Rejects other
/// schemes (the API has no TLS yet) and a missing port, so the error names the flag
/// instead of surfacing as an opaque transport error.
pub fn normalize_addr(addr: &str) -> Result<String, String> {
    let trimmed = addr.trim();
    let rest = match trimmed.split_once("://") {
        Some(("http", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "scheme {scheme:?} is not supported (the API has no TLS yet); use HOST:PORT or http://HOST:PORT"
            ))
        }
        None => trimmed,
    };
    let rest = rest.trim_end_matches('/');
    let bad = || "expected HOST:PORT or http://HOST:PORT, e.g. 127.0.0.1:8500".to_string();
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains('/') || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad());
    }
    Ok(format!("http://{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_units() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration(" 10ms "), Ok(Duration::from_millis(10)));
    }

    #[test]
    fn durations_rejected() {
        for bad in [
            "", "5", "s", "-5s", "5h", "5 s", "1e3ms", "inf s", "nans", "0s", "0ms", "1.2.3s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        let err = parse_duration("5").unwrap_err();
        assert!(err.contains("unit"), "{err}");
    }

    #[test]
    fn millis_round_up() {
        assert_eq!(duration_to_ms(Duration::from_millis(35)), 35);
        assert_eq!(duration_to_ms(Duration::from_micros(100)), 1);
        assert_eq!(duration_to_ms(Duration::from_micros(1500)), 2);
    }

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

    #[test]
    fn addresses() {
        assert_eq!(
            normalize_addr("127.0.0.1:8500"),
            Ok("http://127.0.0.1:8500".into())
        );
        assert_eq!(
            normalize_addr("http://127.0.0.1:8501"),
            Ok("http://127.0.0.1:8501".into())
        );
        assert_eq!(
            normalize_addr("http://node-2:8500/"),
            Ok("http://node-2:8500".into())
        );
        assert_eq!(normalize_addr("[::1]:8500"), Ok("http://[::1]:8500".into()));
        for bad in [
            "",
            "localhost",
            "127.0.0.1:",
            ":8500",
            "host:0",
            "host:99999",
            "https://h:1",
            "h:1/x",
        ] {
            assert!(normalize_addr(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
