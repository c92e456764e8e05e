//! Small helpers shared by several modules.

/// 64 hex characters of randomness, the shape of Docker's ids.
pub fn random_id() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// Key-value pairs as the map options come in (tests' shorthand).
#[cfg(test)]
pub fn string_map(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
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
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Whether `path` is a mount point, from /proc/self/mountinfo.
pub fn is_mountpoint(path: &std::path::Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = path.display().to_string();
    info.lines()
        .any(|l| l.split(' ').nth(4).map(unescape_mountinfo).as_deref() == Some(wanted.as_str()))
}

fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_filters_accept_unix_and_rfc3339() {
        assert_eq!(parse_time_filter("10"), Some(10_000_000_000));
        assert_eq!(parse_time_filter("10.5"), Some(10_500_000_000));
        assert_eq!(
            parse_time_filter("1970-01-01T00:00:10Z"),
            Some(10_000_000_000)
        );
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

/// A prune filter's `until`: a timestamp as [`parse_time_filter`] reads
/// it, or a Go duration ("24h", "1h30m", "90s") back from now.
pub fn parse_until(s: &str) -> Option<i128> {
    if let Some(t) = parse_time_filter(s) {
        return Some(t);
    }
    let mut total: f64 = 0.0;
    let mut num = String::new();
    let mut rest = s;
    while !rest.is_empty() {
        let c = rest.chars().next()?;
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            rest = &rest[1..];
            continue;
        }
        let (unit, len) = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .iter()
            .find(|u| rest.starts_with(**u))
            .map(|u| (*u, u.len()))?;
        let factor = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            _ => 3600.0,
        };
        total += num.parse::<f64>().ok()? * factor;
        num.clear();
        rest = &rest[len..];
    }
    if !num.is_empty() {
        return None;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos() as i128;
    Some(now - (total * 1e9) as i128)
}

#[cfg(test)]
mod until_tests {
    #[test]
    fn durations_count_back_from_now() {
        let now = super::unix_now() as i128 * 1_000_000_000;
        let t = super::parse_until("1h30m").unwrap();
        assert!((now - t - 5_400_000_000_000).abs() < 5_000_000_000);
        assert_eq!(
            super::parse_until("1700000000"),
            Some(1_700_000_000_000_000_000)
        );
        assert!(super::parse_until("soon").is_none());
    }
}

/// Bytes used by the files under `path` (hard links counted once), as
/// `docker system df` reports sizes.
pub fn dir_size(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fn walk(p: &std::path::Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
        let Ok(rd) = std::fs::read_dir(p) else {
            return 0;
        };
        let mut total = 0;
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                total += walk(&e.path(), seen);
            } else if m.nlink() <= 1 || seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
        total
    }
    walk(path, &mut std::collections::HashSet::new())
}

/// The messages of a channel as a stream (what request bodies and gRPC
/// client streams take), ending when every sender is gone.
pub fn channel_stream<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) })
}

/// go-units' RAMInBytes: "10m", "1.5g", "512k", "100" (1024-based).
pub fn parse_size(s: &str) -> Option<u64> {
    let lower = s.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    let v = n * mult as f64;
    (v >= 1.0).then_some(v as u64)
}
