//! Parsing of the request headers that change how a create behaves: `Prefer: wait[=N]` (sync
//! mode) and `Cancel-After: <duration>` (deadline). Pure string parsing, no IO.

use std::time::Duration;

use crate::problem::ApiError;

/// A parsed `Prefer: wait` header: how long to block and what to echo in `Preference-Applied`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitPreference {
    pub seconds: u64,
    pub applied: String,
}

/// Parses a `Prefer` value against the pattern of Replicate's OpenAPI description,
/// `^wait(=([1-9]|[1-9][0-9]|60))?$`.
pub fn parse_prefer(value: &str) -> Result<WaitPreference, ApiError> {
    let value = value.trim();
    let invalid = || ApiError::Unprocessable {
        title: "Invalid Prefer header",
        detail: format!("Prefer header {value:?} must match ^wait(=([1-9]|[1-9][0-9]|60))?$"),
    };
    if value == "wait" {
        return Ok(WaitPreference {
            seconds: 60,
            applied: "wait".into(),
        });
    }
    let n = value.strip_prefix("wait=").ok_or_else(invalid)?;
    if n.is_empty() || n.starts_with('0') || !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let seconds: u64 = n.parse().map_err(|_| invalid())?;
    if !(1..=60).contains(&seconds) {
        return Err(invalid());
    }
    Ok(WaitPreference {
        seconds,
        applied: format!("wait={seconds}"),
    })
}

/// Parses a `Cancel-After` duration: one or more `<number><unit>` parts, units `ns`, `us`,
/// `ms`, `s`, `m`, `h` (Go's `time.ParseDuration` grammar, without signs). Zero is rejected.
pub fn parse_cancel_after(value: &str) -> Result<Duration, ApiError> {
    let value = value.trim();
    let invalid = || ApiError::Unprocessable {
        title: "Invalid Cancel-After header",
        detail: format!(
            "Cancel-After header {value:?} must be a positive duration such as 30s, 5m, 1h or 1m30s"
        ),
    };
    let mut rest = value;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    if !(total > 0.0 && total.is_finite()) {
        return Err(invalid());
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_accepts_wait_and_wait_n() {
        assert_eq!(parse_prefer("wait").unwrap().seconds, 60);
        assert_eq!(parse_prefer("wait=1").unwrap().applied, "wait=1");
        assert_eq!(parse_prefer("wait=60").unwrap().seconds, 60);
        for bad in [
            "wait=0",
            "wait=61",
            "wait=05",
            "wait=",
            "wait=x",
            "respond-async",
        ] {
            assert!(parse_prefer(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn cancel_after_accepts_unit_suffixed_durations() {
        assert_eq!(parse_cancel_after("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_cancel_after("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_cancel_after("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(
            parse_cancel_after("1m30s").unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(
            parse_cancel_after("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            parse_cancel_after("1.5h").unwrap(),
            Duration::from_secs(5400)
        );
        for bad in ["", "30", "s", "0s", "-5s", "5 m", "5d", "1m30"] {
            assert!(parse_cancel_after(bad).is_err(), "{bad} should be rejected");
        }
    }
}
