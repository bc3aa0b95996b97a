//! Durations on command lines and in config: the one rule every Waymark tool uses.

use std::time::Duration;

/// Parses a duration such as `5s`, `500ms`, `1.5s` or `2m`. A unit is required (a bare
/// `5` could mean seconds or milliseconds), decimals are allowed, and the value must
/// be positive. Errors are plain strings so clap can show them next to the flag.
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
}
