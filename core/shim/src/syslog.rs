//! Docker's syslog log driver's messages (sent by [`crate::ship`]).
//!
//! Each line of output (without its newline) is one message, stdout at
//! severity info and stderr at err; empty lines are not sent. Every
//! message ends with a newline, on every transport, as dockerd's do.
//!
//! The message forms, byte for byte as dockerd 20.10 writes them (the
//! process id is the shim's, where dockerd gives its own):
//! - "" (default): `<30>Dec  7 17:08:34 TAG[PID]: MSG`
//! - rfc3164:      `<30>Dec  7 17:08:34 HOST TAG[PID]: MSG`
//! - rfc5424:      `<30>1 2026-12-07T17:08:35Z HOST TAG PID TAG - MSG`
//! - rfc5424micro: the same with microseconds (trailing zeros dropped).
//!
//! Times are local, as dockerd's are.

#![allow(unsafe_code)] // localtime_r: the zone offset of an instant

use std::time::{SystemTime, UNIX_EPOCH};

use berth_proto::shim::{Syslog as Target, SyslogTls};
use berth_proto::timefmt::Civil;

/// Severities (RFC 5424).
const INFO: u8 = 6;
const ERR: u8 = 3;

/// A container's syslog settings, and what every message names.
pub struct Form {
    target: Target,
    hostname: String,
    pid: u32,
}

impl Form {
    pub fn new(target: &Target) -> Form {
        Form {
            target: target.clone(),
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            pid: std::process::id(),
        }
    }

    pub fn tls(&self) -> Option<&SyslogTls> {
        self.target.tls.as_ref()
    }

    /// The message of a line; dockerd sends no empty ones. Over tcp+tls
    /// the RFC 5424 forms go with RFC 5425's octet counting (the length,
    /// a space, the message), as dockerd frames them; everything else is
    /// ended by its newline alone.
    pub fn message(&self, stream: u8, line: &[u8], now: SystemTime) -> Option<Vec<u8>> {
        if line.is_empty() {
            return None;
        }
        let severity = if stream == 2 { ERR } else { INFO };
        let mut msg = Vec::with_capacity(line.len() + 80);
        format_message(
            &mut msg,
            &self.target,
            self.target.facility * 8 + severity,
            instant(now),
            &self.hostname,
            self.pid,
            line,
        );
        // The engine gives TLS settings exactly for tcp+tls:// addresses.
        if self.target.tls.is_some() && self.target.format.starts_with("rfc5424") {
            let mut framed = format!("{} ", msg.len()).into_bytes();
            framed.extend_from_slice(&msg);
            return Some(framed);
        }
        Some(msg)
    }
}

/// An instant: seconds since the epoch, microseconds, and the local zone's
/// offset from UTC then, in seconds.
#[derive(Debug, Clone, Copy)]
struct Instant {
    secs: i64,
    micros: u32,
    offset: i64,
}

/// `at` with the local zone's offset then.
fn instant(at: SystemTime) -> Instant {
    let d = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    Instant {
        secs,
        micros: d.subsec_micros(),
        offset: local_offset(secs),
    }
}

/// The local zone's offset from UTC at `secs` (TZ, else /etc/localtime).
fn local_offset(secs: i64) -> i64 {
    let t = secs as libc::time_t;
    let mut tm = std::mem::MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: both pointers are valid for the call; localtime_r is the
    // thread-safe form and fills `tm` when it returns non-null.
    let filled = unsafe { !libc::localtime_r(&t, tm.as_mut_ptr()).is_null() };
    if filled {
        // SAFETY: localtime_r succeeded, so `tm` is initialised.
        unsafe { tm.assume_init() }.tm_gmtoff
    } else {
        0
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// One message in `target`'s format, newline included.
fn format_message(
    out: &mut Vec<u8>,
    target: &Target,
    priority: u8,
    at: Instant,
    hostname: &str,
    pid: u32,
    line: &[u8],
) {
    let local = Civil::of(at.secs + at.offset);
    // Go's time.Stamp: "Jan _2 15:04:05" (the day padded with a space).
    let stamp = || {
        format!(
            "{} {:>2} {:02}:{:02}:{:02}",
            MONTHS[(local.month - 1) as usize],
            local.day,
            local.hour,
            local.minute,
            local.second
        )
    };
    let tag = &target.tag;
    let head = match target.format.as_str() {
        "rfc3164" => format!("<{priority}>{} {hostname} {tag}[{pid}]: ", stamp()),
        "rfc5424" | "rfc5424micro" => {
            let micro = target.format == "rfc5424micro";
            format!(
                "<{priority}>1 {} {hostname} {tag} {pid} {tag} - ",
                rfc3339(local, at, micro)
            )
        }
        _ => format!("<{priority}>{} {tag}[{pid}]: ", stamp()),
    };
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(line);
    out.push(b'\n');
}

/// Go's RFC 3339 layout, with ".999999" (trailing zeros dropped) for micro.
fn rfc3339(local: Civil, at: Instant, micro: bool) -> String {
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        local.year, local.month, local.day, local.hour, local.minute, local.second
    );
    if micro && at.micros > 0 {
        let digits = format!("{:06}", at.micros);
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
    if at.offset == 0 {
        s.push('Z');
    } else {
        let sign = if at.offset < 0 { '-' } else { '+' };
        let minutes = at.offset.abs() / 60;
        s.push_str(&format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(format: &str, at: Instant, line: &str) -> String {
        let target = Target {
            address: String::new(),
            format: format.into(),
            facility: 3,
            tag: "c227462ff832".into(),
            ..Default::default()
        };
        let mut out = Vec::new();
        format_message(&mut out, &target, 30, at, "vm", 16697, line.as_bytes());
        String::from_utf8(out).unwrap()
    }

    /// The forms dockerd 20.10 sent for the same lines (captured from it).
    #[test]
    fn messages_read_as_dockerds() {
        // 2026-12-07T17:08:34.307980Z
        let at = Instant {
            secs: 1_796_663_314,
            micros: 307_980,
            offset: 0,
        };
        assert_eq!(
            message("", at, "out"),
            "<30>Dec  7 17:08:34 c227462ff832[16697]: out\n"
        );
        assert_eq!(
            message("rfc3164", at, "out"),
            "<30>Dec  7 17:08:34 vm c227462ff832[16697]: out\n"
        );
        assert_eq!(
            message("rfc5424", at, "out"),
            "<30>1 2026-12-07T17:08:34Z vm c227462ff832 16697 c227462ff832 - out\n"
        );
        assert_eq!(
            message("rfc5424micro", at, "out"),
            "<30>1 2026-12-07T17:08:34.30798Z vm c227462ff832 16697 c227462ff832 - out\n"
        );
        let east = Instant {
            offset: 5 * 3600 + 30 * 60,
            ..at
        };
        assert_eq!(
            message("rfc5424", east, "x"),
            "<30>1 2026-12-07T22:38:34+05:30 vm c227462ff832 16697 c227462ff832 - x\n"
        );
    }
}
