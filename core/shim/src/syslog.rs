//! Docker's syslog log driver, carried out by the shim so that lines keep
//! flowing while berthd is down or being replaced.
//!
//! Each line of output (without its newline) is one message, stdout at
//! severity info and stderr at err; empty lines are not sent, and a line
//! longer than [`MAX_PARTIAL`] goes out in pieces, as dockerd's copier
//! cuts it. Every message ends with a newline, on every transport, as
//! dockerd's sends them. A broken connection is made again for the next
//! message.
//!
//! Sockets are non-blocking and what the receiver does not take yet waits
//! in a queue, which the shim's poll loop writes out when the socket is
//! writable. In dockerd's blocking mode the shim stops reading the
//! container's output while anything waits ([`Syslog::holds_output`]), so
//! a slow receiver slows the container, as on dockerd, while the shim
//! still answers kill and attach. With `mode=non-blocking` the queue holds
//! at most `max-buffer-size` bytes and what does not fit is dropped.
//!
//! The message forms, byte for byte as dockerd 20.10 writes them (the
//! process id is the shim's, where dockerd gives its own):
//! - "" (default): `<30>Dec  7 17:08:34 TAG[PID]: MSG`
//! - rfc3164:      `<30>Dec  7 17:08:34 HOST TAG[PID]: MSG`
//! - rfc5424:      `<30>1 2026-12-07T17:08:35Z HOST TAG PID TAG - MSG`
//! - rfc5424micro: the same with microseconds (trailing zeros dropped).
//!
//! Times are local, as dockerd's are.

#![allow(unsafe_code)] // localtime_r (a zone's offset) and poll (the exit's last sends)

use std::collections::VecDeque;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_proto::shim::{Syslog as Target, LOGGING_FAILED};
use berth_proto::timefmt::Civil;

use crate::log_writer::MAX_PARTIAL;

/// Where the host's own syslog listens when no address is given, in the
/// order dockerd tries them.
const LOCAL_SOCKETS: &[&str] = &["/dev/log", "/var/run/syslog", "/var/run/log"];

/// Severities (RFC 5424).
const INFO: u8 = 6;
const ERR: u8 = 3;

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Stream(UnixStream),
    Datagram(UnixDatagram),
}

impl Conn {
    /// Bytes taken: a datagram goes whole or not at all, a stream may take
    /// part of a message.
    fn send(&mut self, msg: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Udp(s) => s.send(msg),
            Conn::Tcp(s) => s.write(msg),
            Conn::Stream(s) => s.write(msg),
            Conn::Datagram(s) => s.send(msg),
        }
    }

    fn fd(&self) -> RawFd {
        match self {
            Conn::Udp(s) => s.as_raw_fd(),
            Conn::Tcp(s) => s.as_raw_fd(),
            Conn::Stream(s) => s.as_raw_fd(),
            Conn::Datagram(s) => s.as_raw_fd(),
        }
    }

    fn set_nonblocking(&self) -> std::io::Result<()> {
        match self {
            Conn::Udp(s) => s.set_nonblocking(true),
            Conn::Tcp(s) => s.set_nonblocking(true),
            Conn::Stream(s) => s.set_nonblocking(true),
            Conn::Datagram(s) => s.set_nonblocking(true),
        }
    }
}

pub struct Syslog {
    target: Target,
    conn: Option<Conn>,
    hostname: String,
    pid: u32,
    /// Bytes of an unfinished line, per stream (0 = stdout, 1 = stderr).
    partial: [Vec<u8>; 2],
    /// Messages the receiver has not taken (wholly) yet, oldest first;
    /// `sent` bytes of the first are out, `queued` bytes in all.
    queue: VecDeque<Vec<u8>>,
    sent: usize,
    queued: usize,
    /// The first message failed once already.
    retried: bool,
    /// mode=non-blocking: the queue's limit (messages beyond it are
    /// dropped); `None`: blocking mode.
    limit: Option<usize>,
    /// Messages dropped since the last one that got through.
    dropped: u64,
}

impl Syslog {
    /// Connects as dockerd does when a container starts: a receiver that
    /// cannot be reached fails the start, in dockerd's words.
    pub fn connect(target: &Target) -> Result<Syslog, String> {
        let conn = dial(&target.address).map_err(|e| format!("{LOGGING_FAILED}: {e}"))?;
        Ok(Syslog {
            target: target.clone(),
            conn: Some(conn),
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            pid: std::process::id(),
            partial: [Vec::new(), Vec::new()],
            queue: VecDeque::new(),
            sent: 0,
            queued: 0,
            retried: false,
            limit: (target.max_buffer > 0).then_some(target.max_buffer as usize),
            dropped: 0,
        })
    }

    /// Blocking mode with messages waiting: the container's output is not
    /// read until the receiver took them.
    pub fn holds_output(&self) -> bool {
        self.limit.is_none() && !self.queue.is_empty()
    }

    /// The socket to poll for writability, while messages wait for it.
    pub fn waiting_fd(&self) -> Option<RawFd> {
        match (&self.conn, self.queue.is_empty()) {
            (Some(conn), false) => Some(conn.fd()),
            _ => None,
        }
    }

    /// Writes out what waits, as far as the receiver takes it now. As
    /// dockerd's writer does, a message that fails is tried once more on a
    /// new connection, then dropped (a stream's half-sent message too).
    pub fn drain(&mut self) {
        while !self.queue.is_empty() {
            if self.conn.is_none() {
                match dial(&self.target.address) {
                    Ok(conn) => self.conn = Some(conn),
                    Err(e) => {
                        eprintln!("berth-shim: syslog: {e}");
                        self.drop_front();
                        continue;
                    }
                }
            }
            let (Some(conn), Some(front)) = (&mut self.conn, self.queue.front()) else {
                return;
            };
            match conn.send(&front[self.sent..]) {
                Ok(n) if self.sent + n < front.len() => self.sent += n,
                Ok(_) => self.drop_front(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    eprintln!("berth-shim: syslog: {e}");
                    self.conn = None;
                    if self.retried || self.sent > 0 {
                        self.drop_front();
                    } else {
                        self.retried = true;
                    }
                }
            }
        }
    }

    /// The first message is done with: sent, or given up.
    fn drop_front(&mut self) {
        if let Some(m) = self.queue.pop_front() {
            self.queued -= m.len();
        }
        self.sent = 0;
        self.retried = false;
    }

    /// At exit: what still waits gets until `deadline` to go out.
    pub fn finish(&mut self, deadline: std::time::Instant) {
        self.flush();
        while !self.queue.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                eprintln!(
                    "berth-shim: syslog: {} messages not delivered at exit",
                    self.queue.len()
                );
                return;
            }
            // Without a connection, drain dials again (or drops what it cannot send).
            if let Some(fd) = self.waiting_fd() {
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, exclusively borrowed for the call.
                unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(100) as i32) };
            }
            self.drain();
        }
    }

    /// Takes output of `stream` (1 stdout, 2 stderr) as it was read.
    pub fn write(&mut self, stream: u8, mut data: &[u8]) {
        let idx = usize::from(stream == 2);
        while let Some(pos) = memchr::memchr(b'\n', data) {
            if self.partial[idx].is_empty() {
                self.send(stream, &data[..pos]);
            } else {
                let mut line = std::mem::take(&mut self.partial[idx]);
                line.extend_from_slice(&data[..pos]);
                self.send(stream, &line);
                line.clear();
                self.partial[idx] = line;
            }
            data = &data[pos + 1..];
        }
        self.partial[idx].extend_from_slice(data);
        while self.partial[idx].len() >= MAX_PARTIAL {
            let rest = self.partial[idx].split_off(MAX_PARTIAL);
            let piece = std::mem::replace(&mut self.partial[idx], rest);
            self.send(stream, &piece);
        }
    }

    /// Sends what is left of unfinished lines (a stream closed).
    pub fn flush(&mut self) {
        for (idx, stream) in [(0, 1u8), (1, 2u8)] {
            let piece = std::mem::take(&mut self.partial[idx]);
            self.send(stream, &piece);
        }
    }

    fn send(&mut self, stream: u8, line: &[u8]) {
        if line.is_empty() {
            return;
        }
        let severity = if stream == 2 { ERR } else { INFO };
        let mut msg = Vec::with_capacity(line.len() + 80);
        format_message(
            &mut msg,
            &self.target,
            self.target.facility * 8 + severity,
            now(),
            &self.hostname,
            self.pid,
            line,
        );
        if let Some(limit) = self.limit {
            if self.queued + msg.len() > limit {
                self.dropped += 1;
                if self.dropped == 1 {
                    eprintln!("berth-shim: syslog: buffer full, dropping messages");
                }
                return;
            }
        }
        self.dropped = 0;
        self.queued += msg.len();
        self.queue.push_back(msg);
        if self.queue.len() == 1 {
            self.drain();
        }
    }
}

/// Opens the connection `address` names (see [`Target::address`]),
/// non-blocking once made; errors read like Go's (`dial tcp
/// 127.0.0.1:5599: connect: connection refused`).
fn dial(address: &str) -> Result<Conn, String> {
    let conn = dial_blocking(address)?;
    conn.set_nonblocking()
        .map_err(|e| format!("dial {address}: {}", go_reason(&e)))?;
    Ok(conn)
}

fn dial_blocking(address: &str) -> Result<Conn, String> {
    if address.is_empty() {
        return dial_local();
    }
    let (proto, rest) = address
        .split_once("://")
        .ok_or_else(|| format!("bad syslog address {address}"))?;
    let failed = |e: std::io::Error| format!("dial {proto} {rest}: connect: {}", go_reason(&e));
    match proto {
        "udp" => {
            let to = rest
                .to_socket_addrs()
                .map_err(failed)?
                .next()
                .ok_or_else(|| format!("dial udp {rest}: no address"))?;
            let any = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
            let socket = UdpSocket::bind(any).map_err(failed)?;
            socket.connect(to).map_err(failed)?;
            Ok(Conn::Udp(socket))
        }
        "tcp" => TcpStream::connect(rest).map(Conn::Tcp).map_err(failed),
        "unix" => UnixStream::connect(rest).map(Conn::Stream).map_err(failed),
        "unixgram" => {
            let socket = UnixDatagram::unbound().map_err(failed)?;
            socket.connect(rest).map_err(failed)?;
            Ok(Conn::Datagram(socket))
        }
        other => Err(format!("unsupported syslog protocol {other}")),
    }
}

/// The host's syslog socket: datagram first, then stream, at each place.
fn dial_local() -> Result<Conn, String> {
    for path in LOCAL_SOCKETS {
        if let Ok(socket) = UnixDatagram::unbound() {
            if socket.connect(path).is_ok() {
                return Ok(Conn::Datagram(socket));
            }
        }
        if let Ok(stream) = UnixStream::connect(path) {
            return Ok(Conn::Stream(stream));
        }
    }
    Err("Unix syslog delivery error".into())
}

/// Go prints a system error as the C library's text, first letter small.
fn go_reason(e: &std::io::Error) -> String {
    let text = match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
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

fn now() -> Instant {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
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

    /// Lines split at newlines; empty ones are not sent; what is left
    /// goes at flush; a connection that broke is made again.
    #[test]
    fn lines_become_messages_over_a_datagram_socket() {
        let dir = std::env::temp_dir().join(format!("berth-shim-syslog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let target = Target {
            address: format!("unixgram://{}", path.display()),
            format: "rfc3164".into(),
            facility: 16,
            tag: "web".into(),
            ..Default::default()
        };
        let mut s = Syslog::connect(&target).unwrap();
        s.write(1, b"one\n\ntw");
        s.write(2, b"err\n");
        s.write(1, b"o\nthree");
        s.flush();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        receiver.set_nonblocking(true).unwrap();
        while let Ok(n) = receiver.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let (pri, rest) = text.split_once('>').unwrap();
            let body = rest.split_once("]: ").unwrap().1;
            got.push(format!("{pri}> {body}"));
        }
        assert_eq!(
            got,
            ["<134> one\n", "<131> err\n", "<134> two\n", "<134> three\n"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A receiver that does not read: in blocking mode the shim holds the
    /// container's output and loses nothing; in non-blocking mode it keeps
    /// reading and drops what overflows the buffer.
    #[test]
    fn a_lagging_receiver_holds_output_or_loses_what_overflows() {
        use std::io::Read;
        use std::os::unix::net::UnixListener;
        let dir = std::env::temp_dir().join(format!("berth-shim-lag-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stream.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let mut line = vec![b'x'; 999];
        line.push(b'\n');
        for max_buffer in [0, 10_000] {
            let target = Target {
                address: format!("unix://{}", path.display()),
                tag: "t".into(),
                max_buffer,
                ..Default::default()
            };
            let mut s = Syslog::connect(&target).unwrap();
            let (mut peer, _) = listener.accept().unwrap();
            // 1,000 messages of about 1 KB: more than a socket buffers.
            for _ in 0..1000 {
                s.write(1, &line);
            }
            let reader = std::thread::spawn(move || {
                let mut all = Vec::new();
                peer.read_to_end(&mut all).unwrap();
                all.iter().filter(|b| **b == b'\n').count()
            });
            if max_buffer == 0 {
                assert!(s.holds_output());
            } else {
                assert!(!s.holds_output());
                assert!(s.queued <= 10_000);
            }
            s.finish(std::time::Instant::now() + std::time::Duration::from_secs(10));
            assert!(s.queue.is_empty());
            drop(s);
            let received = reader.join().unwrap();
            if max_buffer == 0 {
                assert_eq!(received, 1000);
            } else {
                assert!(received < 1000, "{received}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unreachable_receiver_fails_in_dockerds_words() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let target = Target {
            address: format!("tcp://{addr}"),
            ..Default::default()
        };
        let err = Syslog::connect(&target).err().unwrap();
        assert_eq!(
            err,
            format!(
                "failed to initialize logging driver: dial tcp {addr}: connect: connection refused"
            )
        );
    }
}
