//! Durations and times as people type them on the command line: `7d`, `24h`, `1h30m`, and
//! ISO-8601 times with or without fraction, zone or time of day.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// A point in time given either as a duration back from now or as a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Since {
    /// That long before now.
    Ago(Duration),
    /// That time.
    At(DateTime<Utc>),
}

impl Since {
    /// The time this names, taking `now` as now.
    pub fn resolve(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Since::Ago(duration) => ago(now, duration),
            Since::At(time) => time,
        }
    }
}

/// `now` minus `duration`, or the earliest time chrono can hold when that is further back.
pub fn ago(now: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(duration)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Reads a duration: one or more `<number><unit>` with units `s`, `m`, `h`, `d`, `w`
/// (`90m`, `24h`, `7d`, `1h30m`).
///
/// # Errors
///
/// A message naming what is wrong, for clap to show.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration (write it like 90m, 24h or 7d)".to_owned());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "invalid duration {text:?}: expected a number at {rest:?} (write it like 90m, 24h or 7d)"
            ));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
        let seconds = match &rest[..unit_len] {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 604_800,
            "" => {
                return Err(format!(
                    "invalid duration {text:?}: {number} needs a unit: s, m, h, d or w"
                ))
            }
            other => {
                return Err(format!(
                    "invalid duration {text:?}: unknown unit {other:?} (use s, m, h, d or w)"
                ))
            }
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(seconds)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| format!("invalid duration {text:?}: too long"))?;
    }
    Ok(Duration::from_secs(total))
}

/// Reads a time: RFC 3339 (`2026-11-28T05:03:02Z`, `...02.5+01:00`), or without a zone
/// (`2026-11-28T05:03:02`, `2026-11-28 05:03`), taken as UTC, or a date (`2026-11-28`),
/// taken as its start in UTC.
///
/// # Errors
///
/// A message naming the forms it takes.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    // RFC 3339 with a space for the T, or a zone written +0100.
    for format in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
    ] {
        if let Ok(time) = DateTime::parse_from_str(text, format) {
            return Ok(time.with_timezone(&Utc));
        }
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(time.and_utc());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    Err(format!(
        "invalid time {text:?}: expected ISO-8601 such as 2026-11-28T05:03:02Z, 2026-11-28T05:03 (UTC) or 2026-11-28"
    ))
}

/// Reads `--since`: a duration back from now (`7d`) or a time (`2026-11-28`).
///
/// # Errors
///
/// A message saying both forms it takes.
pub fn parse_since(text: &str) -> Result<Since, String> {
    let starts_like_a_date = text.trim().len() >= 10
        && text.trim().as_bytes()[4] == b'-'
        && text.trim()[..4].chars().all(|c| c.is_ascii_digit());
    if starts_like_a_date {
        parse_time(text).map(Since::At)
    } else {
        parse_duration(text)
            .map(Since::Ago)
            .map_err(|e| format!("{e}; or give a time such as 2026-11-28T05:03:02Z"))
    }
}

/// A duration for people: `42s`, `5m 3s`, `2h 5m`, `3d 4h`.
pub fn human_duration(duration: chrono::Duration) -> String {
    let seconds = duration.num_seconds().max(0);
    let (days, hours, minutes, secs) = (
        seconds / 86_400,
        seconds % 86_400 / 3_600,
        seconds % 3_600 / 60,
        seconds % 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, _) => format!("{minutes}m {secs}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

/// A stored time as the reports print it: UTC with milliseconds, as SQLite keeps it.
pub fn iso(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn durations_take_each_unit_and_combinations() {
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(1_209_600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "7", "d", "7x", "7 days", "-1h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("7").unwrap_err().contains("needs a unit"));
    }

    #[test]
    fn times_take_iso_8601_with_and_without_fraction_zone_or_time() {
        let whole = Utc.with_ymd_and_hms(2026, 11, 28, 5, 3, 2).unwrap();
        assert_eq!(parse_time("2026-11-28T05:03:02Z"), Ok(whole));
        assert_eq!(parse_time("2026-11-28T05:03:02"), Ok(whole));
        assert_eq!(parse_time("2026-11-28 05:03:02"), Ok(whole));
        assert_eq!(parse_time("2026-11-28T07:03:02+02:00"), Ok(whole));
        assert_eq!(parse_time("2026-11-28T07:03:02+0200"), Ok(whole));
        assert_eq!(
            parse_time("2026-11-28T05:03:02.123Z"),
            Ok(whole + chrono::Duration::milliseconds(123))
        );
        assert_eq!(
            parse_time("2026-11-28T05:03"),
            Ok(whole - chrono::Duration::seconds(2))
        );
        assert_eq!(
            parse_time("2026-11-28"),
            Ok(Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap())
        );
        assert!(parse_time("28/11/2026").is_err());
    }

    #[test]
    fn since_is_a_duration_back_from_now_or_a_time() {
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        assert_eq!(
            parse_since("24h").unwrap().resolve(now),
            Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
        );
        assert_eq!(
            parse_since("2026-11-01").unwrap().resolve(now),
            Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
        );
        let error = parse_since("yesterday").unwrap_err();
        assert!(
            error.contains("90m") && error.contains("2026-11-28"),
            "{error}"
        );
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(human_duration(chrono::Duration::seconds(42)), "42s");
        assert_eq!(human_duration(chrono::Duration::seconds(303)), "5m 3s");
        assert_eq!(human_duration(chrono::Duration::seconds(7_500)), "2h 5m");
        assert_eq!(human_duration(chrono::Duration::seconds(273_600)), "3d 4h");
    }
}
