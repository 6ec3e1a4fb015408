//! Durations in config, read one way for every key: a string with units (`"500ms"`, `"90s"`,
//! `"10m"`, `"1h30m"`, `"7d"`) or a bare number in the unit the key's name promises
//! (milliseconds for `*_ms` keys, seconds for the others). Errors name the key and the forms
//! it accepts. No IO in here.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::time::Duration;

/// What a bare number means for a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Millis,
    Seconds,
}

impl Unit {
    fn millis(self) -> u64 {
        match self {
            Unit::Millis => 1,
            Unit::Seconds => 1000,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Millis => "milliseconds",
            Unit::Seconds => "seconds",
        }
    }
}

/// A duration key: the name errors give and how it reads.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub name: &'static str,
    pub bare: Unit,
    /// Whether zero is a valid setting (it is not for a timeout or a retention).
    pub zero: bool,
}

impl Key {
    /// What the key accepts, for messages.
    fn forms(&self) -> String {
        format!(
            "use a string like \"500ms\", \"2s\", \"10m\", \"1h\" or \"1h30m\", or a whole number of {}",
            self.bare.name()
        )
    }
}

/// `text` as a duration, bare numbers in `bare`; `None` when it is not one. Zero is a duration.
pub fn parse(text: &str, bare: Unit) -> Option<Duration> {
    let text = text.trim();
    if let Ok(number) = text.parse::<u64>() {
        return number.checked_mul(bare.millis()).map(Duration::from_millis);
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        total = total.checked_add(number.checked_mul(unit)?)?;
        rest = &rest[unit_len..];
    }
    (!text.is_empty()).then(|| Duration::from_millis(total))
}

/// The shortest text `parse` reads back to the same duration, whatever the key's unit.
pub fn format(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// A whole number of milliseconds, for the `*_ms` fields the engine reads.
pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Reads the value of `key`: the one deserializer of every duration in config.
pub fn read<'de, D: Deserializer<'de>>(d: D, key: Key) -> Result<Duration, D::Error> {
    d.deserialize_any(KeyVisitor(key))
}

struct KeyVisitor(Key);

impl KeyVisitor {
    fn checked<E: de::Error>(&self, duration: Duration) -> Result<Duration, E> {
        if duration.is_zero() && !self.0.zero {
            return Err(E::custom(format!(
                "`{}` must be more than zero",
                self.0.name
            )));
        }
        Ok(duration)
    }

    fn not_a_duration<E: de::Error>(&self, shown: &str) -> E {
        E::custom(format!(
            "`{}` = {shown} is not a duration; {}",
            self.0.name,
            self.0.forms()
        ))
    }
}

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a duration for `{}`: {}", self.0.name, self.0.forms())
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Duration, E> {
        let millis = number.checked_mul(self.0.bare.millis());
        let duration = millis.ok_or_else(|| self.not_a_duration(&number.to_string()))?;
        self.checked(Duration::from_millis(duration))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Duration, E> {
        match u64::try_from(number) {
            Ok(number) => self.visit_u64(number),
            Err(_) => Err(self.not_a_duration(&number.to_string())),
        }
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        let duration =
            parse(text, self.0.bare).ok_or_else(|| self.not_a_duration(&format!("{text:?}")))?;
        self.checked(duration)
    }
}

pub fn write<S: serde::Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*duration))
}

pub fn write_optional<S: serde::Serializer>(
    duration: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => write(duration, s),
        None => s.serialize_none(),
    }
}

/// The keys read with `deserialize_with`, one function each so that errors can name them.
pub mod keys {
    use super::{read, Key, Unit};
    use serde::Deserializer;
    use std::time::Duration;

    /// `deserialize_with` functions returning `Option<Duration>`, for fields that default to
    /// `None` when absent.
    macro_rules! optional_keys {
        ($($function:ident: $name:literal, $bare:ident, zero: $zero:literal;)*) => {$(
            pub fn $function<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
                let key = Key { name: $name, bare: Unit::$bare, zero: $zero };
                read(d, key).map(Some)
            }
        )*};
    }

    optional_keys! {
        step_timeout: "step_timeout", Seconds, zero: false;
        stage_step_timeout: "stages[].step_timeout", Seconds, zero: false;
        task_timeout: "task_timeout", Seconds, zero: false;
        poll_initial: "replicate.poll_initial", Seconds, zero: true;
        poll_initial_ms: "replicate.poll_initial_ms", Millis, zero: true;
        poll_max: "replicate.poll_max", Seconds, zero: true;
        poll_max_ms: "replicate.poll_max_ms", Millis, zero: true;
        connect_timeout: "replicate.connect_timeout", Seconds, zero: true;
        connect_timeout_ms: "replicate.connect_timeout_ms", Millis, zero: true;
        request_timeout: "replicate.request_timeout", Seconds, zero: true;
        request_timeout_ms: "replicate.request_timeout_ms", Millis, zero: true;
        retry_initial: "replicate.retry_initial", Seconds, zero: true;
        retry_initial_ms: "replicate.retry_initial_ms", Millis, zero: true;
        retry_max: "replicate.retry_max", Seconds, zero: true;
        retry_max_ms: "replicate.retry_max_ms", Millis, zero: true;
        safety_poll: "replicate.safety_poll", Seconds, zero: true;
        safety_poll_ms: "replicate.safety_poll_ms", Millis, zero: true;
    }

    pub fn retention<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let key = Key {
            name: "storage.retention",
            bare: Unit::Seconds,
            zero: false,
        };
        read(d, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::value::{Error, I64Deserializer, StrDeserializer};
    use serde::de::IntoDeserializer;

    const KEY: Key = Key {
        name: "section.key",
        bare: Unit::Seconds,
        zero: false,
    };

    fn from_str(text: &str, key: Key) -> Result<Duration, String> {
        let d: StrDeserializer<Error> = text.into_deserializer();
        read(d, key).map_err(|e| e.to_string())
    }

    fn from_int(number: i64, key: Key) -> Result<Duration, String> {
        let d: I64Deserializer<Error> = number.into_deserializer();
        read(d, key).map_err(|e| e.to_string())
    }

    #[test]
    fn strings_read_with_units_and_bare_numbers_in_the_keys_unit() {
        let ms = |n| Some(Duration::from_millis(n));
        for (text, bare, expected) in [
            ("500ms", Unit::Seconds, ms(500)),
            ("1s", Unit::Millis, ms(1000)),
            ("2m", Unit::Seconds, ms(120_000)),
            ("1h", Unit::Seconds, ms(3_600_000)),
            ("1h30m", Unit::Seconds, ms(5_400_000)),
            ("7d", Unit::Seconds, ms(604_800_000)),
            (" 90s ", Unit::Seconds, ms(90_000)),
            ("12", Unit::Seconds, ms(12_000)),
            ("12", Unit::Millis, ms(12)),
            ("0s", Unit::Seconds, ms(0)),
        ] {
            assert_eq!(parse(text, bare), expected, "{text:?} {bare:?}");
        }
        for bad in [
            "",
            "10x",
            "m",
            "1.5h",
            "5 parsecs",
            "-1s",
            "1 h",
            "99999999999999999999d",
        ] {
            assert_eq!(parse(bad, Unit::Seconds), None, "{bad:?}");
        }
    }

    #[test]
    fn format_gives_the_shortest_text_that_reads_back() {
        for (duration, text) in [
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_secs(7200), "2h"),
            (Duration::from_secs(7 * 86_400), "7d"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(format(duration), text);
            assert_eq!(parse(text, Unit::Millis), Some(duration), "{text}");
        }
    }

    #[test]
    fn the_reader_takes_strings_and_whole_numbers_and_names_the_key_when_it_refuses() {
        assert_eq!(from_str("2m", KEY), Ok(Duration::from_secs(120)));
        assert_eq!(from_int(3, KEY), Ok(Duration::from_secs(3)));
        let millis = Key {
            bare: Unit::Millis,
            zero: true,
            ..KEY
        };
        assert_eq!(from_int(3, millis), Ok(Duration::from_millis(3)));
        assert_eq!(from_int(0, millis), Ok(Duration::ZERO));

        let bad = from_str("5 parsecs", KEY).unwrap_err();
        assert!(
            bad.starts_with("`section.key` = \"5 parsecs\" is not a duration"),
            "{bad}"
        );
        assert!(bad.ends_with("or a whole number of seconds"), "{bad}");
        let negative = from_int(-5, millis).unwrap_err();
        assert!(
            negative.contains("`section.key` = -5 is not a duration"),
            "{negative}"
        );
        assert!(
            negative.ends_with("whole number of milliseconds"),
            "{negative}"
        );
        let zero = from_str("0s", KEY).unwrap_err();
        assert_eq!(zero, "`section.key` must be more than zero");
    }
}
