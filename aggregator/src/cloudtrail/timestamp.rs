//! `eventTime` to milliseconds: a fast path for the form CloudTrail writes
//! (`2024-07-31T12:50:02Z`, optionally with a fraction), which also takes the form some
//! exports write (`2024-11-25 17:51:21.000000000`: a space, no zone, meaning UTC), and
//! RFC 3339 for anything else.

/// Days from 1970-01-01 to a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn digits(b: &[u8]) -> Option<i64> {
    let mut v = 0i64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

fn fast(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let (head, rest) = b.split_first_chunk::<19>()?;
    if head[4] != b'-'
        || head[7] != b'-'
        || !matches!(head[10], b'T' | b' ')
        || head[13] != b':'
        || head[16] != b':'
    {
        return None;
    }
    let y = digits(&head[0..4])?;
    let mo = digits(&head[5..7])?;
    let d = digits(&head[8..10])?;
    let h = digits(&head[11..13])?;
    let mi = digits(&head[14..16])?;
    let sec = digits(&head[17..19])?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let zoneless = head[10] == b' ';
    let rest = match rest {
        [body @ .., b'Z'] => body,
        body if zoneless => body,
        _ => return None,
    };
    let ms = match rest {
        [] => 0,
        [b'.', frac @ ..] if !frac.is_empty() && frac.len() <= 9 => {
            let mut v = digits(frac)?;
            for _ in frac.len()..3 {
                v *= 10;
            }
            for _ in 3..frac.len() {
                v /= 10;
            }
            v
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms)
}

/// Milliseconds since the epoch of an RFC 3339 time; `None` when it is not one.
pub fn parse_time_ms(s: &str) -> Option<i64> {
    fast(s).or_else(|| {
        crate::findings::model::Timestamp::parse(s.trim())
            .ok()
            .map(|t| t.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_path_agrees_with_rfc3339_parsing() {
        for s in [
            "2024-07-31T12:50:02Z",
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59Z",
            "2024-07-31T12:50:02.5Z",
            "2024-07-31T12:50:02.123456Z",
        ] {
            let slow = crate::findings::model::Timestamp::parse(s)
                .expect("rfc3339")
                .0;
            assert_eq!(fast(s), Some(slow), "{s}");
        }
    }

    #[test]
    fn offsets_use_the_slow_path_and_garbage_is_none() {
        assert_eq!(
            parse_time_ms("2024-07-31T14:50:02+02:00"),
            parse_time_ms("2024-07-31T12:50:02Z")
        );
        assert_eq!(parse_time_ms("yesterday"), None);
        assert_eq!(
            parse_time_ms("2024-11-25 17:51:21.000000000"),
            parse_time_ms("2024-11-25T17:51:21Z")
        );
        assert_eq!(parse_time_ms("2024-11-25T17:51:21"), None);
        assert_eq!(parse_time_ms("2024-13-01T00:00:00Z"), None);
    }
}
