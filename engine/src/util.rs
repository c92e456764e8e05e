//! Small helpers shared by several modules.

/// 64 hex characters of randomness, the shape of Docker's ids.
pub fn random_id() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// Now as RFC 3339 with nanoseconds, UTC.
pub fn now_rfc3339() -> String {
    berth_proto::timefmt::now()
}

/// Parses an RFC 3339 time into (seconds, nanoseconds) since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<(i64, u32)> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    Some((t.timestamp(), t.timestamp_subsec_nanos()))
}

/// Docker's "since"/"until" values: unix seconds with an optional fraction,
/// or an RFC 3339 time. Returns nanoseconds since the epoch.
pub fn parse_time_filter(s: &str) -> Option<i128> {
    if let Some((secs, nanos)) = parse_rfc3339(s) {
        return Some(secs as i128 * 1_000_000_000 + nanos as i128);
    }
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = whole.parse().ok()?;
    let mut frac = frac.to_string();
    if frac.len() > 9 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    while frac.len() < 9 {
        frac.push('0');
    }
    Some(secs as i128 * 1_000_000_000 + frac.parse::<i128>().ok()?)
}

/// go-units' HumanDuration, which `docker ps` shows ("Up 3 minutes").
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        _ if s < 3600 => format!("{} minutes", s / 60),
        _ if s < 7200 => "About an hour".into(),
        _ if s < 48 * 3600 => format!("{} hours", s / 3600),
        _ if s < 7 * 24 * 3600 * 2 => format!("{} days", s / (24 * 3600)),
        _ if s < 30 * 24 * 3600 * 3 => format!("{} weeks", s / (7 * 24 * 3600)),
        _ if s < 365 * 24 * 3600 * 2 => format!("{} months", s / (30 * 24 * 3600)),
        _ => format!("{} years", s / (365 * 24 * 3600)),
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_filters_accept_unix_and_rfc3339() {
        assert_eq!(parse_time_filter("10"), Some(10_000_000_000));
        assert_eq!(parse_time_filter("10.5"), Some(10_500_000_000));
        assert_eq!(parse_time_filter("1970-01-01T00:00:10Z"), Some(10_000_000_000));
        assert_eq!(parse_time_filter("yesterday"), None);
    }

    #[test]
    fn human_durations_match_go_units() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(5000), "About an hour");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }
}
