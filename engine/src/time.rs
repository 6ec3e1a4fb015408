//! Clock and timestamp formatting: the only place that reads the wall clock.

use crate::model::Millis;

/// Now, in milliseconds since the Unix epoch.
pub fn now_millis() -> Millis {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map(|d| d.as_millis() as Millis).unwrap_or(0)
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-29T01:02:03.456Z`. Every task rendered
/// formats several, so years 1970 to 9999 take a direct path (`time`'s formatter interprets
/// a format description at every call); the rest go through `time`.
pub fn rfc3339(millis: Millis) -> String {
    const MS_PER_DAY: i64 = 86_400_000;
    let (days, ms_of_day) = (millis.div_euclid(MS_PER_DAY), millis.rem_euclid(MS_PER_DAY));
    let (year, month, day) = civil_from_days(days);
    if !(1970..=9999).contains(&year) {
        return rfc3339_by_time(millis);
    }
    let (secs, ms) = (ms_of_day / 1000, ms_of_day % 1000);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn rfc3339_by_time(millis: Millis) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(millis as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format).unwrap_or_default()
}

/// Parses an RFC 3339 timestamp (any precision, any offset) into milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<Millis> {
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some((at.unix_timestamp_nanos() / 1_000_000) as Millis)
}

/// Parses an RFC 3339 timestamp into microseconds since the Unix epoch.
pub fn parse_rfc3339_micros(text: &str) -> Option<i64> {
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
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
        assert_eq!(
            parse_rfc3339("2023-08-16T18:57:08.36078514Z"),
            Some(1_692_212_228_360)
        );
        assert_eq!(parse_rfc3339("nope"), None);
    }

    #[test]
    fn the_direct_path_formats_as_time_does() {
        // Edges (the epoch, leap days, century rules, year ends, the last millisecond
        // handled directly, the fallback on both sides), then a spread of instants.
        let mut samples = vec![
            0,
            -1,
            951_782_400_000,     // 2000-02-29
            4_107_542_399_999,   // 2100-02-28T23:59:59.999
            4_107_542_400_000,   // 2100-03-01
            1_767_225_599_999,   // 2025-12-31T23:59:59.999
            253_402_300_799_999, // 9999-12-31T23:59:59.999
            253_402_300_800_000, // 10000-01-01: the fallback
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            samples.push((x >> 16) as i64 % 253_402_300_800_000);
        }
        for millis in samples {
            assert_eq!(rfc3339(millis), rfc3339_by_time(millis), "{millis}");
        }
    }
}
