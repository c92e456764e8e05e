//! RFC 3339 timestamps with nanoseconds in UTC, as Docker writes them
//! ("2026-11-22T05:30:56.123456789Z"). Written by hand to keep a date library
//! out of the shim (its only user besides the core); the civil-from-days conversion is Howard Hinnant's
//! well-known algorithm.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format(d.as_secs() as i64, d.subsec_nanos())
}

pub fn format(secs: i64, nanos: u32) -> String {
    let c = Civil::of(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Go's `time.RFC3339Nano`, which the CRI's log lines use: like
/// [`format`] but the fraction loses its trailing zeros, and goes
/// altogether when it is zero ("2026-11-22T05:30:56.1234Z").
pub fn format_trimmed(secs: i64, nanos: u32) -> String {
    let mut s = format(secs, nanos);
    s.pop(); // the Z
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    s.push('Z');
    s
}

/// A calendar date and time of day (of whatever zone `secs` was shifted to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Civil {
    /// The date and time `secs` seconds after 1970-01-01T00:00:00.
    pub fn of(secs: i64) -> Civil {
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let rem = secs.rem_euclid(86_400) as u32;
        Civil {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: (rem % 3600) / 60,
            second: rem % 60,
        }
    }
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(format(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(
            format(1_795_325_456, 123_456_789),
            "2026-11-22T05:30:56.123456789Z"
        );
    }

    #[test]
    fn the_trimmed_form_is_gos_rfc3339nano() {
        assert_eq!(format_trimmed(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_trimmed(1_795_325_456, 123_400_000),
            "2026-11-22T05:30:56.1234Z"
        );
        assert_eq!(
            format_trimmed(1_795_325_450, 5),
            "2026-11-22T05:30:50.000000005Z"
        );
    }
}
