//! Clock and timestamp formatting: the only place that reads the wall clock.

use crate::model::Millis;

/// Now, in milliseconds since the Unix epoch.
pub fn now_millis() -> Millis {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map(|d| d.as_millis() as Millis).unwrap_or(0)
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-29T01:02:03.456Z`.
pub fn rfc3339(millis: Millis) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(millis as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format).unwrap_or_default()
}

/// Parses an RFC 3339 timestamp (any precision, any offset) into milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<Millis> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some((at.unix_timestamp_nanos() / 1_000_000) as Millis)
}

/// Parses an RFC 3339 timestamp into microseconds since the Unix epoch.
pub fn parse_rfc3339_micros(text: &str) -> Option<i64> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some((at.unix_timestamp_nanos() / 1_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_at_millisecond_precision() {
        let text = rfc3339(1_764_379_323_456);
        assert_eq!(text, "2025-11-29T01:22:03.456Z");
        assert_eq!(parse_rfc3339(&text), Some(1_764_379_323_456));
        assert_eq!(parse_rfc3339("2023-08-16T18:57:08.36078514Z"), Some(1_692_212_228_360));
        assert_eq!(parse_rfc3339("nope"), None);
    }
}
