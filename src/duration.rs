//! Human durations for flags: `500us`, `2ms`, `1.5s`, `0`.
//!
//! Small enough to write here rather than pull in a crate; used by `--work` and the timeouts.
//! A leaf at the top because every layer reads or prints durations: the account's work, the
//! HTTP layer's problem documents, the binary's flags and the load generator.

use std::time::Duration;

/// Parses `N` followed by `ns`, `us`, `ms`, `s` or `m`; a bare `0` is zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{text}` needs a unit: ns, us, ms, s or m (e.g. `2ms`)"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number"))?;
    let nanos_per_unit = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        _ => return Err(format!("`{unit}` is not a unit: use ns, us, ms, s or m")),
    };
    let nanos = value * nanos_per_unit;
    if !nanos.is_finite() || nanos > 3_600e9 {
        return Err(format!("`{text}` is longer than an hour"));
    }
    // Finite, not negative (the text has no sign) and at most an hour: the cast is exact.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "checked above: a whole number of nanoseconds from 0 to an hour's"
    )]
    let nanos = nanos.round() as u64;
    Ok(Duration::from_nanos(nanos))
}

/// Formats a duration the way [`parse_duration`] reads it, in the largest unit that keeps it whole.
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0ms".to_string();
    }
    for (unit, size) in [("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)] {
        if nanos.is_multiple_of(size) {
            return format!("{}{unit}", nanos / size);
        }
    }
    format!("{nanos}ns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_round_trips() {
        for (text, nanos) in [
            ("0", 0),
            ("250ns", 250),
            ("500us", 500_000),
            ("2ms", 2_000_000),
            ("1.5s", 1_500_000_000),
            ("1m", 60_000_000_000),
        ] {
            let parsed = parse_duration(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed.as_nanos(), nanos, "{text}");
            assert_eq!(
                parse_duration(&format_duration(parsed)).unwrap(),
                parsed,
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_missing_units_and_garbage() {
        for text in ["5", "ms", "2 hours", "-1ms", "1e9s", "9999m"] {
            assert!(parse_duration(text).is_err(), "{text} should be refused");
        }
    }
}
