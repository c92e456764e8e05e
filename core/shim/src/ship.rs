//! Lines of a container's output shipped to a log receiver (Docker's
//! syslog, journald, fluentd and gelf drivers), by the shim, so that they
//! keep flowing while berthd is down or being replaced.
//!
//! Output is cut into lines as dockerd's copier cuts it (at newlines, and
//! in pieces of [`crate::lines::MAX_PARTIAL`] bytes); each line becomes one message in
//! the driver's [`Form`]. Sockets are non-blocking and what the receiver
//! does not take yet waits in a queue, which the shim's poll loop writes
//! out when the socket is writable. In dockerd's blocking mode the shim
//! stops reading the container's output while anything waits
//! ([`Shipper::holds_output`]), so a slow receiver slows the container, as
//! on dockerd, while the shim still answers kill and attach. With
//! `mode=non-blocking` (and fluentd's `fluentd-async`) the queue holds at
//! most `max-buffer-size` bytes and what does not fit is dropped. A message
//! that fails is tried again on a new connection as the driver's library
//! in dockerd does ([`Retry`]: syslog and journald once at once, fluentd
//! up to `fluentd-max-retries` times with growing waits, gelf over TCP up
//! to `gelf-tcp-max-reconnect` times), then dropped.

#![allow(unsafe_code)] // poll: the exit's last sends

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::{Duration, Instant};

use berth_proto::os_error::go_text;
use berth_proto::shim::{SyslogTls, LOGGING_FAILED};

use crate::lines::{Cut, Lines};
use crate::tls::Tls;
use crate::{fluentd, gelf, journald, syslog};

/// Where the host's own syslog listens when no address is given, in the
/// order dockerd tries them.
const LOCAL_SOCKETS: &[&str] = &["/dev/log", "/var/run/syslog", "/var/run/log"];

/// How a line becomes a message.
pub enum Form {
    Syslog(syslog::Form),
    Journald(journald::Form),
    Fluentd(fluentd::Form, Retry),
    Gelf(gelf::Form, Retry),
}

impl Form {
    /// The message of one line of `stream` (1 stdout, 2 stderr); `None`
    /// when the driver sends nothing for it.
    fn message(&mut self, stream: u8, line: &[u8], partial: bool) -> Option<Vec<u8>> {
        let now = std::time::SystemTime::now();
        match self {
            Form::Syslog(f) => f.message(stream, line, now),
            Form::Journald(f) => Some(f.message(stream, line, partial)),
            Form::Fluentd(f, _) => Some(f.message(stream, line, partial, now)),
            Form::Gelf(f, _) => f.message(stream, line, now),
        }
    }

    /// What goes out for a message: itself, or GELF's chunks.
    fn datagrams(&self, msg: Vec<u8>) -> Vec<Vec<u8>> {
        match self {
            Form::Gelf(f, _) => f.datagrams(msg),
            _ => vec![msg],
        }
    }

    /// The TLS settings of a `tcp+tls://` receiver.
    fn tls(&self) -> Option<&SyslogTls> {
        match self {
            Form::Syslog(f) => f.tls(),
            _ => None,
        }
    }

    /// The acknowledgement a sent message waits for (fluentd's
    /// `fluentd-request-ack`), if any.
    fn ack_id<'m>(&self, msg: &'m [u8]) -> Option<&'m [u8]> {
        match self {
            Form::Fluentd(f, _) => f.ack_id(msg),
            _ => None,
        }
    }

    fn retry(&self) -> Retry {
        match self {
            Form::Fluentd(_, r) | Form::Gelf(_, r) => *r,
            // dockerd's syslog writer dials once more, at once; journald's
            // datagrams fail only when journald is gone.
            Form::Syslog(_) | Form::Journald(_) => Retry::ONCE,
        }
    }

    /// A receiver that cannot be reached at start, in dockerd's words.
    fn unreachable(&self, address: &str, e: String) -> String {
        match self {
            Form::Gelf(..) => {
                let endpoint = address.split_once("://").map_or(address, |(_, a)| a);
                format!("{LOGGING_FAILED}: gelf: cannot connect to GELF endpoint: {endpoint} {e}")
            }
            _ => format!("{LOGGING_FAILED}: {e}"),
        }
    }
}

/// How a message that failed is tried again: up to `dials` more
/// connections, the first after `wait`, each next one after half as long
/// again when `grows` (fluent-logger's backoff, at most a minute).
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub dials: u64,
    pub wait: Duration,
    pub grows: bool,
}

impl Retry {
    const ONCE: Retry = Retry {
        dials: 1,
        wait: Duration::ZERO,
        grows: false,
    };
    const LONGEST_WAIT: Duration = Duration::from_secs(60);
    /// After the first new try, the least wait: a receiver that stays
    /// away must not keep the shim dialling in a loop (`fluentd-retry-wait
    /// 0s` with dockerd's unbounded retries), deaf to its other work.
    const SHORTEST_LATER_WAIT: Duration = Duration::from_millis(10);

    /// The wait before the `n`th new try (from 1).
    fn wait_before(&self, n: u64) -> Duration {
        let wait = if self.grows {
            let factor = 1.5f64.powi(n.saturating_sub(1).min(64) as i32);
            self.wait.mul_f64(factor).min(Self::LONGEST_WAIT)
        } else {
            self.wait
        };
        if n > 1 {
            wait.max(Self::SHORTEST_LATER_WAIT)
        } else {
            wait
        }
    }
}

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Stream(UnixStream),
    Datagram(UnixDatagram),
    Tls(Box<Tls>),
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
            Conn::Tls(s) => s.send(msg),
        }
    }

    /// What the receiver answered (an acknowledgement), as far as it came.
    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::Read;
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Stream(s) => s.read(buf),
            _ => Err(std::io::ErrorKind::Unsupported.into()),
        }
    }

    /// Bytes accepted but not yet on the wire (TLS records).
    fn backlog(&self) -> bool {
        matches!(self, Conn::Tls(s) if s.backlog())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Tls(s) => s.flush(),
            _ => Ok(()),
        }
    }

    fn fd(&self) -> RawFd {
        match self {
            Conn::Udp(s) => s.as_raw_fd(),
            Conn::Tcp(s) => s.as_raw_fd(),
            Conn::Stream(s) => s.as_raw_fd(),
            Conn::Datagram(s) => s.as_raw_fd(),
            Conn::Tls(s) => s.socket().as_raw_fd(),
        }
    }

    fn set_nonblocking(&self) -> std::io::Result<()> {
        match self {
            Conn::Udp(s) => s.set_nonblocking(true),
            Conn::Tcp(s) => s.set_nonblocking(true),
            Conn::Stream(s) => s.set_nonblocking(true),
            Conn::Datagram(s) => s.set_nonblocking(true),
            Conn::Tls(s) => s.socket().set_nonblocking(true),
        }
    }
}

pub struct Shipper {
    form: Form,
    address: String,
    conn: Option<Conn>,
    /// The lines of the output.
    lines: Lines,
    /// Messages the receiver has not taken (wholly) yet, oldest first;
    /// `sent` bytes of the first are out, `queued` bytes in all.
    queue: VecDeque<Vec<u8>>,
    sent: usize,
    queued: usize,
    /// The first message went out and waits for the receiver's
    /// acknowledgement; what it answered so far.
    awaiting_ack: bool,
    answer: Vec<u8>,
    /// Times the first message failed, and when to try it again.
    failures: u64,
    retry_at: Option<Instant>,
    /// mode=non-blocking: the queue's limit (messages beyond it are
    /// dropped); `None`: blocking mode.
    limit: Option<usize>,
    /// Messages dropped since the last one that got through.
    dropped: u64,
}

impl Shipper {
    /// Connects as dockerd does when a container starts: a receiver that
    /// cannot be reached fails the start, in dockerd's words; unless
    /// `lazy` (fluentd-async), when the first message dials.
    pub fn connect(
        form: Form,
        address: &str,
        max_buffer: u64,
        lazy: bool,
    ) -> Result<Shipper, String> {
        let conn = match dial(address, form.tls()) {
            Ok(conn) => Some(conn),
            Err(e) if lazy => {
                eprintln!("berth-shim: log receiver: {e}");
                None
            }
            Err(e) => return Err(form.unreachable(address, e)),
        };
        Ok(Shipper {
            form,
            address: address.to_string(),
            conn,
            lines: Lines::default(),
            queue: VecDeque::new(),
            sent: 0,
            queued: 0,
            failures: 0,
            retry_at: None,
            awaiting_ack: false,
            answer: Vec::new(),
            limit: (max_buffer > 0).then_some(max_buffer as usize),
            dropped: 0,
        })
    }

    /// How long until a message that failed is due to be tried again.
    pub fn wake_in(&self) -> Option<Duration> {
        self.retry_at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Tries again what failed, when its wait is over.
    pub fn on_timer(&mut self) {
        if self.wake_in().is_some_and(|d| d.is_zero()) {
            self.drain();
        }
    }

    /// Blocking mode with messages waiting: the container's output is not
    /// read until the receiver took them.
    pub fn holds_output(&self) -> bool {
        self.limit.is_none() && !self.queue.is_empty()
    }

    /// The socket to poll and for what: readable while an acknowledgement
    /// is due, writable while messages wait.
    pub fn waiting(&self) -> Option<(RawFd, i16)> {
        match &self.conn {
            Some(conn) if self.awaiting_ack => Some((conn.fd(), libc::POLLIN)),
            Some(conn) if !self.queue.is_empty() || conn.backlog() => {
                Some((conn.fd(), libc::POLLOUT))
            }
            _ => None,
        }
    }

    /// Nothing waits, here or in the connection.
    fn done(&self) -> bool {
        self.queue.is_empty() && !self.conn.as_ref().is_some_and(Conn::backlog)
    }

    /// Writes out what waits, as far as the receiver takes it now; a
    /// message that fails goes again whole on a new connection, as the
    /// driver's [`Retry`] says, or is dropped.
    pub fn drain(&mut self) {
        if let Some(at) = self.retry_at {
            if Instant::now() < at {
                return;
            }
            self.retry_at = None;
        }
        if let Some(conn) = &mut self.conn {
            match conn.flush() {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    eprintln!("berth-shim: log receiver: {e}");
                    self.conn = None;
                }
            }
        }
        while !self.queue.is_empty() {
            if self.conn.is_none() {
                match dial(&self.address, self.form.tls()) {
                    Ok(conn) => self.conn = Some(conn),
                    Err(e) => {
                        eprintln!("berth-shim: log receiver: {e}");
                        if self.failed() {
                            continue;
                        }
                        return;
                    }
                }
            }
            let (Some(conn), Some(front)) = (&mut self.conn, self.queue.front()) else {
                return;
            };
            if self.awaiting_ack {
                let mut buf = [0u8; 256];
                let lost = match conn.recv(&mut buf) {
                    Ok(0) => "the receiver closed the connection before it acknowledged".into(),
                    Ok(n) => {
                        self.answer.extend_from_slice(&buf[..n]);
                        let id = self.form.ack_id(front).unwrap_or_default();
                        if self.answer.windows(id.len()).any(|w| w == id) {
                            self.drop_front();
                        }
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                    Err(e) => e.to_string(),
                };
                eprintln!("berth-shim: log receiver: {lost}");
                self.conn = None;
                self.awaiting_ack = false;
                self.answer.clear();
                if !self.failed() {
                    return;
                }
                continue;
            }
            match conn.send(&front[self.sent..]) {
                Ok(n) if self.sent + n < front.len() => self.sent += n,
                Ok(_) if self.form.ack_id(front).is_some() => {
                    self.sent = 0;
                    self.awaiting_ack = true;
                }
                Ok(_) => self.drop_front(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    eprintln!("berth-shim: log receiver: {e}");
                    self.conn = None;
                    self.sent = 0;
                    if !self.failed() {
                        return;
                    }
                }
            }
        }
    }

    /// The first message failed: it is given up once its retries are
    /// spent, else tried again after the wait. Whether to go on now.
    fn failed(&mut self) -> bool {
        self.failures += 1;
        let retry = self.form.retry();
        if self.failures > retry.dials {
            eprintln!(
                "berth-shim: log receiver: message dropped after {} tries",
                self.failures
            );
            self.drop_front();
            return true;
        }
        let wait = retry.wait_before(self.failures);
        if wait.is_zero() {
            return true;
        }
        self.retry_at = Some(Instant::now() + wait);
        false
    }

    /// The first message is done with: sent, or given up.
    fn drop_front(&mut self) {
        if let Some(m) = self.queue.pop_front() {
            self.queued -= m.len();
        }
        self.sent = 0;
        self.failures = 0;
        self.awaiting_ack = false;
        self.answer.clear();
    }

    /// At exit: what still waits gets until `deadline` to go out.
    pub fn finish(&mut self, deadline: Instant) {
        self.flush();
        while !self.done() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                eprintln!(
                    "berth-shim: {} log messages not delivered at exit",
                    self.queue.len()
                );
                return;
            }
            // Without a connection, drain dials again (or drops what it
            // cannot send) once a retry's wait is over.
            if let Some(wait) = self.wake_in() {
                std::thread::sleep(wait.min(left).min(Duration::from_millis(100)));
            } else if let Some((fd, events)) = self.waiting() {
                let mut pfd = libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, exclusively borrowed for the call.
                unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(100) as i32) };
            }
            self.drain();
        }
    }

    /// Takes output of `stream` (1 stdout, 2 stderr) as it was read.
    pub fn write(&mut self, stream: u8, data: &[u8]) {
        let mut lines = std::mem::take(&mut self.lines);
        lines.cut(stream, data, |Cut { text, ended, .. }| {
            let line = if ended { &text[..text.len() - 1] } else { text };
            self.send(stream, line, !ended);
        });
        self.lines = lines;
    }

    /// Sends what is left of unfinished lines (a stream closed).
    pub fn flush(&mut self) {
        self.flush_stream(1);
        self.flush_stream(2);
    }

    /// Sends the unfinished line of one stream (it closed; the other may
    /// still be mid-line).
    pub fn flush_stream(&mut self, stream: u8) {
        let piece = self.lines.take_rest(stream);
        if !piece.is_empty() {
            self.send(stream, &piece, true);
        }
    }

    /// Queues the message of one line (`partial`: not ended by a newline)
    /// and sends it if nothing waits before it.
    fn send(&mut self, stream: u8, line: &[u8], partial: bool) {
        let Some(msg) = self.form.message(stream, line, partial) else {
            return;
        };
        let datagrams = self.form.datagrams(msg);
        let size: usize = datagrams.iter().map(Vec::len).sum();
        if let Some(limit) = self.limit {
            if self.queued + size > limit {
                self.dropped += 1;
                if self.dropped == 1 {
                    eprintln!("berth-shim: log buffer full, dropping messages");
                }
                return;
            }
        }
        self.dropped = 0;
        let idle = self.queue.is_empty();
        self.queued += size;
        self.queue.extend(datagrams);
        if idle {
            self.drain();
        }
    }
}

/// Opens the connection `address` names (`udp://host:port`, `tcp://…`,
/// `unix:///path`, `unixgram:///path`; empty: the host's syslog socket),
/// non-blocking once made; errors read like Go's (`dial tcp
/// 127.0.0.1:5599: connect: connection refused`).
fn dial(address: &str, tls: Option<&SyslogTls>) -> Result<Conn, String> {
    let conn = dial_blocking(address, tls)?;
    conn.set_nonblocking()
        .map_err(|e| format!("dial {address}: {}", go_text(&e)))?;
    Ok(conn)
}

fn dial_blocking(address: &str, tls: Option<&SyslogTls>) -> Result<Conn, String> {
    if address.is_empty() {
        return dial_local();
    }
    let (proto, rest) = address
        .split_once("://")
        .ok_or_else(|| format!("bad syslog address {address}"))?;
    let failed = |e: std::io::Error| format!("dial {proto} {rest}: connect: {}", go_text(&e));
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
        "tcp+tls" => {
            let sock = TcpStream::connect(rest)
                .map_err(|e| format!("dial tcp {rest}: connect: {}", go_text(&e)))?;
            let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
            let settings = tls.cloned().unwrap_or_default();
            Tls::connect(sock, host, &settings).map(|t| Conn::Tls(Box::new(t)))
        }
        "unix" => UnixStream::connect(rest).map(Conn::Stream).map_err(failed),
        "unixgram" => {
            let socket = UnixDatagram::unbound().map_err(failed)?;
            socket.connect(rest).map_err(failed)?;
            Ok(Conn::Datagram(socket))
        }
        other => Err(format!("unsupported syslog protocol {other}")),
    }
}

/// Random bytes (ids of GELF chunks and of fluentd's partial lines).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if let Err(e) = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut out)) {
        eprintln!("berth-shim: /dev/urandom: {e}");
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::shim::Syslog as Target;

    /// Lines split at newlines; empty ones are not sent; what is left
    /// goes at flush; a connection that broke is made again.
    #[test]
    fn lines_become_messages_over_a_datagram_socket() {
        let dir = std::env::temp_dir().join(format!("berth-shim-syslog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let target = Target {
            format: "rfc3164".into(),
            facility: 16,
            tag: "web".into(),
            ..Default::default()
        };
        let address = format!("unixgram://{}", path.display());
        let mut s =
            Shipper::connect(Form::Syslog(syslog::Form::new(&target)), &address, 0, false).unwrap();
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
                tag: "t".into(),
                ..Default::default()
            };
            let form = Form::Syslog(syslog::Form::new(&target));
            let address = format!("unix://{}", path.display());
            let mut s = Shipper::connect(form, &address, max_buffer, false).unwrap();
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

    /// Waits between new tries: as configured (growing by half for
    /// fluentd), never more than a minute, and after the first never
    /// none at all.
    #[test]
    fn retries_wait_and_never_spin() {
        let grows = Retry {
            dials: u64::MAX,
            wait: Duration::from_millis(100),
            grows: true,
        };
        assert_eq!(grows.wait_before(1), Duration::from_millis(100));
        assert_eq!(grows.wait_before(3), Duration::from_millis(225));
        assert_eq!(grows.wait_before(40), Duration::from_secs(60));
        let eager = Retry {
            wait: Duration::ZERO,
            ..grows
        };
        assert_eq!(eager.wait_before(1), Duration::ZERO);
        assert_eq!(eager.wait_before(2), Duration::from_millis(10));
        // Against a receiver that is not there, a line costs two dials
        // and then waits, rather than dialling on and on.
        let form = Form::Fluentd(fluentd::Form::new(&Default::default()), eager);
        let mut s = Shipper::connect(form, "unix:///nonexistent/forward.sock", 0, true).unwrap();
        s.write(1, b"line\n");
        assert_eq!(s.failures, 2);
        assert!(s.wake_in().is_some());
    }

    /// fluentd-request-ack: a record stays first until the receiver
    /// acknowledges it; one whose connection closed unacknowledged goes
    /// again, whole, on a new connection.
    #[test]
    fn an_unacknowledged_record_goes_again_on_a_new_connection() {
        use berth_proto::shim::Fluentd;
        use std::io::{Read, Write};
        use std::os::unix::net::UnixListener;
        let dir = std::env::temp_dir().join(format!("berth-shim-ack-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("forward.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let settings = Fluentd {
            tag: "t".into(),
            request_ack: true,
            ..Default::default()
        };
        let retry = Retry {
            dials: 3,
            wait: Duration::ZERO,
            grows: false,
        };
        let form = Form::Fluentd(fluentd::Form::new(&settings), retry);
        let mut s =
            Shipper::connect(form, &format!("unix://{}", path.display()), 0, false).unwrap();
        let (mut first, _) = listener.accept().unwrap();
        s.write(1, b"one\n");
        assert!(s.holds_output());
        let mut got = vec![0u8; 256];
        let n = first.read(&mut got).unwrap();
        got.truncate(n);
        drop(first);
        let again = std::thread::spawn(move || {
            let (mut second, _) = listener.accept().unwrap();
            let mut msg = vec![0u8; 256];
            let n = second.read(&mut msg).unwrap();
            msg.truncate(n);
            let mut ack = b"\x81\xa3ack\xb8".to_vec();
            ack.extend_from_slice(&msg[msg.len() - 24..]);
            second.write_all(&ack).unwrap();
            // Held open until the shim is done with it.
            let _ = second.read(&mut [0u8; 1]);
            msg
        });
        s.finish(Instant::now() + Duration::from_secs(10));
        assert!(s.queue.is_empty());
        drop(s);
        assert_eq!(again.join().unwrap(), got);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unreachable_receiver_fails_in_dockerds_words() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let form = Form::Syslog(syslog::Form::new(&Target::default()));
        let err = Shipper::connect(form, &format!("tcp://{addr}"), 0, false)
            .err()
            .unwrap();
        assert_eq!(
            err,
            format!(
                "failed to initialize logging driver: dial tcp {addr}: connect: connection refused"
            )
        );
    }
}
