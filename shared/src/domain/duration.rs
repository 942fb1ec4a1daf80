//! Durations in the forms spec 002 writes them: Go `time.Duration` nanosecond
//! strings (`"3600000000000"`), JSON numbers of nanoseconds, and unit strings
//! (`"1h30m"`, `"500ms"`).

use serde::Deserialize;

/// A duration as a request may spell it; [`DurationInput::nanos`] reads it.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DurationInput {
    Nanos(u64),
    Text(String),
}

impl DurationInput {
    pub fn nanos(&self) -> Result<u64, String> {
        match self {
            Self::Nanos(n) => Ok(*n),
            Self::Text(s) => parse_duration_ns(s),
        }
    }
}

/// Parses a bare count of nanoseconds or a Go duration string such as `1h30m` or `1.5s`.
pub fn parse_duration_ns(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| format!("{s:?} is too large"));
    }
    let mut rest = s;
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().map_err(|_| invalid(s))?;
        let unit_len = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        total += value * unit_nanos(unit).ok_or_else(|| invalid(s))?;
        rest = tail;
    }
    if total > u64::MAX as f64 {
        return Err(format!("{s:?} is too large"));
    }
    Ok(total.round() as u64)
}

fn unit_nanos(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" => 1.0,
        "us" | "µs" | "μs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    })
}

fn invalid(s: &str) -> String {
    format!("{s:?} is not a duration: use nanoseconds (\"3600000000000\") or units (\"1h\", \"30s\", \"500ms\")")
}

/// Formats milliseconds the way the spec's figures read: `5ms`, `0.42ms`.
pub fn format_duration_ms(ms: f64) -> String {
    let rounded = (ms * 100.0).round() / 100.0;
    format!("{rounded}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_documented_form() {
        assert_eq!(parse_duration_ns("3600000000000"), Ok(3_600_000_000_000));
        assert_eq!(parse_duration_ns("1h"), Ok(3_600_000_000_000));
        assert_eq!(parse_duration_ns("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration_ns("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration_ns("500ms"), Ok(500_000_000));
        assert_eq!(parse_duration_ns("24h"), Ok(86_400_000_000_000));
        assert_eq!(DurationInput::Nanos(7).nanos(), Ok(7));
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in ["", "abc", "1x", "h", "1h-2m", "1..2s"] {
            assert!(parse_duration_ns(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_milliseconds_like_the_spec() {
        assert_eq!(format_duration_ms(5.0), "5ms");
        assert_eq!(format_duration_ms(0.4249), "0.42ms");
    }
}
