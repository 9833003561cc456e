//! Record time and partition paths: epoch milliseconds or seconds, or an
//! ISO-8601 / `YYYY-MM-DD HH:MM:SS[.ffffff]` string, always UTC, formatted
//! with strftime-like tokens (`ordertime=%Y%m%d%H`).
//!
//! Owns: parsing a time value into epoch seconds and formatting partition
//! directories (cached per hour: consecutive orders share one). Must not:
//! know about records or files.

use crate::flatten::ValueKind;

/// Epoch seconds of a JSON value holding a time, or why not.
#[inline]
pub fn parse_time(raw: &[u8], kind: ValueKind) -> Result<i64, String> {
    match kind {
        ValueKind::Number => parse_epoch(raw),
        ValueKind::String => parse_datetime(&raw[1..raw.len() - 1]),
        _ => Err(format!("is {}, not a time", String::from_utf8_lossy(raw))),
    }
}

/// Epoch milliseconds (13 digits and more) or seconds; a fraction is dropped.
/// One pass over the integer digits (the flattener has already checked the
/// number's grammar; this runs once per record).
#[inline]
fn parse_epoch(raw: &[u8]) -> Result<i64, String> {
    let (neg, digits) = match raw.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let mut v: i64 = 0;
    let mut n = 0;
    while let Some(&d) = digits.get(n) {
        if !d.is_ascii_digit() {
            break;
        }
        v = v.wrapping_mul(10).wrapping_add(i64::from(d - b'0'));
        n += 1;
    }
    if n == 0 || n > 18 || digits.get(n).is_some_and(|&b| b != b'.') {
        return Err(format!(
            "{} is not an epoch time in seconds or milliseconds",
            String::from_utf8_lossy(raw)
        ));
    }
    // 1e11 seconds is the year 5138; anything larger is milliseconds.
    let secs = if v >= 100_000_000_000 { v / 1000 } else { v };
    Ok(if neg { -secs } else { secs })
}

fn num(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |v, &d| v * 10 + i64::from(d - b'0')))
}

/// `YYYY-MM-DD[T ]HH:MM[:SS[.f*]][Z|±HH:MM]`, or a bare date.
fn parse_datetime(s: &[u8]) -> Result<i64, String> {
    let bad = || {
        format!(
            "\"{}\" is not an ISO-8601 time (YYYY-MM-DD HH:MM:SS, UTC)",
            String::from_utf8_lossy(s)
        )
    };
    if s.len() < 10 || s[4] != b'-' || s[7] != b'-' {
        return Err(bad());
    }
    let (y, m, d) = (
        num(&s[0..4]).ok_or_else(bad)?,
        num(&s[5..7]).ok_or_else(bad)?,
        num(&s[8..10]).ok_or_else(bad)?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    let rest = &s[10..];
    if rest.is_empty() {
        return Ok(secs);
    }
    if !(rest[0] == b'T' || rest[0] == b' ') || rest.len() < 6 || rest[3] != b':' {
        return Err(bad());
    }
    let (h, mi) = (
        num(&rest[1..3]).ok_or_else(bad)?,
        num(&rest[4..6]).ok_or_else(bad)?,
    );
    let mut i = 6;
    let mut sec = 0;
    if rest.get(i) == Some(&b':') {
        sec = num(rest.get(i + 1..i + 3).ok_or_else(bad)?).ok_or_else(bad)?;
        i += 3;
        if rest.get(i) == Some(&b'.') {
            i += 1;
            while rest.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
    }
    if h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    secs += h * 3600 + mi * 60 + sec;
    match &rest[i..] {
        b"" | b"Z" | b"z" => Ok(secs),
        [sign @ (b'+' | b'-'), oh1, oh2, b':', om1, om2]
        | [sign @ (b'+' | b'-'), oh1, oh2, om1, om2] => {
            let off = num(&[*oh1, *oh2]).ok_or_else(bad)? * 3600
                + num(&[*om1, *om2]).ok_or_else(bad)? * 60;
            Ok(if *sign == b'+' {
                secs - off
            } else {
                secs + off
            })
        }
        _ => Err(bad()),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of days since the epoch.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Formats partition directories; formats each hour once.
pub struct Partitioner {
    format: String,
    cached_hour: Option<i64>,
    cached: String,
}

impl Partitioner {
    /// `format` uses %Y %m %d %H %j %% (checked by `lakectl validate`).
    pub fn new(format: &str) -> Self {
        Partitioner {
            format: format.to_string(),
            cached_hour: None,
            cached: String::new(),
        }
    }

    /// The partition directory of a time (epoch seconds, UTC).
    pub fn partition(&mut self, epoch_secs: i64) -> &str {
        let hour = epoch_secs.div_euclid(3600);
        if self.cached_hour != Some(hour) {
            self.cached = format_hour(&self.format, hour);
            self.cached_hour = Some(hour);
        }
        &self.cached
    }
}

/// The partition directory of an hour (hours since the epoch, UTC).
pub fn format_hour(format: &str, hour: i64) -> String {
    let days = hour.div_euclid(24);
    let (y, m, d) = civil_from_days(days);
    let h = hour.rem_euclid(24);
    let yday = days - days_from_civil(y, 1, 1) + 1;
    let mut out = String::with_capacity(format.len() + 8);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&format!("{y:04}")),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('H') => out.push_str(&format!("{h:02}")),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Result<i64, String> {
        if s.starts_with('"') {
            parse_time(s.as_bytes(), ValueKind::String)
        } else {
            parse_time(s.as_bytes(), ValueKind::Number)
        }
    }

    #[test]
    fn every_time_form_is_utc() {
        let h = 1_573_657_200; // 2019-11-13T15:00:00Z
        assert_eq!(t("1573657200000"), Ok(h));
        assert_eq!(t("1573657200"), Ok(h));
        assert_eq!(t("1573657200.75"), Ok(h));
        assert_eq!(t("\"2019-11-13T15:00:00Z\""), Ok(h));
        assert_eq!(t("\"2019-11-13 15:00:00.123456\""), Ok(h));
        assert_eq!(t("\"2019-11-13T17:00:00+02:00\""), Ok(h));
        assert_eq!(t("\"2019-11-13T10:00-0500\""), Ok(h));
        assert_eq!(t("\"2019-11-13\""), Ok(h - 15 * 3600));
        assert!(t("\"13/11/2019\"").is_err());
        assert!(t("\"2019-13-01\"").is_err());
        assert!(t("1e12").is_err());
        assert!(parse_time(b"true", ValueKind::True)
            .unwrap_err()
            .contains("not a time"));
    }

    #[test]
    fn partitions_format_hours() {
        let mut p = Partitioner::new("ordertime=%Y%m%d%H");
        assert_eq!(p.partition(1_573_657_200 + 3599), "ordertime=2019111315");
        let mut p = Partitioner::new("dt=%Y-%m-%d/hour=%H/doy=%j");
        assert_eq!(p.partition(951_782_400), "dt=2000-02-29/hour=00/doy=060");
        assert_eq!(p.partition(-1), "dt=1969-12-31/hour=23/doy=365");
    }

    #[test]
    fn civil_roundtrip() {
        for days in [-800_000, -1, 0, 59, 60, 11_016, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
