//! The `--to-datetime` parser: `YYYY-MM-DDTHH:MM:SS[.sss][Z|±HH:MM]` to
//! milliseconds since the Unix epoch, like Kafka's
//! `kafka-consumer-groups.sh --to-datetime`. A time without a zone is UTC
//! (Kafka takes the local zone; a CLI that ignores `TZ` is the simpler and
//! reproducible choice, and `Z` or an offset can always be given).
//!
//! Owns the calendar arithmetic only (proleptic Gregorian, no leap seconds);
//! it must not read the clock or the local time zone.

/// Milliseconds since 1970-01-01T00:00:00Z of `s`, or why it is not a time.
pub fn parse_ms(s: &str) -> Result<i64, String> {
    let bad = |why: &str| format!("{s:?}: {why} (expected YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM])");
    let (date, time) = s.split_once('T').ok_or_else(|| bad("no 'T' between date and time"))?;
    let d: Vec<&str> = date.split('-').collect();
    if d.len() != 3 || d[0].len() != 4 || d[1].len() != 2 || d[2].len() != 2 {
        return Err(bad("bad date"));
    }
    let year: i64 = digits(d[0]).ok_or_else(|| bad("bad year"))?;
    let month: i64 = digits(d[1]).ok_or_else(|| bad("bad month"))?;
    let day: i64 = digits(d[2]).ok_or_else(|| bad("bad day"))?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(bad("no such date"));
    }
    // The zone: Z, +HH:MM or -HH:MM after the seconds.
    let (clock, offset_min) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0)
    } else if let Some(at) = time.rfind(['+', '-']) {
        let (c, zone) = time.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':').ok_or_else(|| bad("bad zone offset"))?;
        let (h, m): (i64, i64) = (
            digits(h).filter(|_| h.len() == 2).ok_or_else(|| bad("bad zone offset"))?,
            digits(m).filter(|_| m.len() == 2).ok_or_else(|| bad("bad zone offset"))?,
        );
        if h > 18 || m > 59 {
            return Err(bad("bad zone offset"));
        }
        (c, sign * (h * 60 + m))
    } else {
        (time, 0)
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (clock, None),
    };
    let t: Vec<&str> = hms.split(':').collect();
    if t.len() != 3 || t.iter().any(|x| x.len() != 2) {
        return Err(bad("bad time"));
    }
    let (h, m, sec): (i64, i64, i64) = (
        digits(t[0]).ok_or_else(|| bad("bad hour"))?,
        digits(t[1]).ok_or_else(|| bad("bad minute"))?,
        digits(t[2]).ok_or_else(|| bad("bad second"))?,
    );
    if h > 23 || m > 59 || sec > 59 {
        return Err(bad("no such time"));
    }
    let ms = match frac {
        None => 0,
        Some(f) if (1..=3).contains(&f.len()) => {
            let v: i64 = digits(f).ok_or_else(|| bad("bad milliseconds"))?;
            v * 10i64.pow(3 - f.len() as u32)
        }
        Some(_) => return Err(bad("milliseconds take 1 to 3 digits")),
    };
    let days = days_from_civil(year, month, day);
    Ok(((days * 24 + h) * 60 + m - offset_min) * 60_000 + sec * 1000 + ms)
}

fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(parse_ms("1970-01-01T00:00:00"), Ok(0));
        assert_eq!(parse_ms("1970-01-01T00:00:00Z"), Ok(0));
        // date -u -d 2026-12-01T10:00:00 +%s
        assert_eq!(parse_ms("2026-12-01T10:00:00"), Ok(1_796_119_200_000));
        assert_eq!(parse_ms("2026-12-01T10:00:00.5Z"), Ok(1_796_119_200_500));
        assert_eq!(parse_ms("2026-12-01T10:00:00.123"), Ok(1_796_119_200_123));
        assert_eq!(parse_ms("2026-12-01T12:00:00+02:00"), Ok(1_796_119_200_000));
        assert_eq!(parse_ms("2026-12-01T09:30:00-00:30"), Ok(1_796_119_200_000));
        assert_eq!(parse_ms("2000-02-29T00:00:00Z"), Ok(951_782_400_000));
        assert_eq!(parse_ms("1969-12-31T23:59:59.999Z"), Ok(-1));
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in [
            "2026-12-01",
            "2026-13-01T00:00:00",
            "2026-02-29T00:00:00",
            "2026-12-01T24:00:00",
            "2026-12-01T10:00",
            "2026-12-01T10:00:00.1234",
            "2026-12-01T10:00:00+2:00",
            "26-12-01T10:00:00",
            "2026-12-01T10:00:00Q",
        ] {
            assert!(parse_ms(bad).is_err(), "{bad}");
        }
    }
}
