//! Lines of a container's output shipped to a log receiver (Docker's
//! syslog and journald drivers), by the shim, so that they keep flowing
//! while berthd is down or being replaced.
//!
//! Output is cut into lines as dockerd's copier cuts it (at newlines, and
//! in pieces of [`MAX_PARTIAL`] bytes); each line becomes one message in
//! the driver's [`Form`]. Sockets are non-blocking and what the receiver
//! does not take yet waits in a queue, which the shim's poll loop writes
//! out when the socket is writable. In dockerd's blocking mode the shim
//! stops reading the container's output while anything waits
//! ([`Shipper::holds_output`]), so a slow receiver slows the container, as
//! on dockerd, while the shim still answers kill and attach. With
//! `mode=non-blocking` the queue holds at most `max-buffer-size` bytes and
//! what does not fit is dropped. A message that fails is tried once more on
//! a new connection, then dropped, as dockerd's writers do.

#![allow(unsafe_code)] // poll: the exit's last sends

use std::collections::VecDeque;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};

use berth_proto::shim::{SyslogTls, LOGGING_FAILED};

use crate::log_writer::MAX_PARTIAL;
use crate::tls::Tls;
use crate::{journald, syslog};

/// Where the host's own syslog listens when no address is given, in the
/// order dockerd tries them.
const LOCAL_SOCKETS: &[&str] = &["/dev/log", "/var/run/syslog", "/var/run/log"];

/// How a line becomes a message.
pub enum Form {
    Syslog(syslog::Form),
    Journald(journald::Form),
}

impl Form {
    /// The message of one line of `stream` (1 stdout, 2 stderr); `None`
    /// when the driver sends nothing for it.
    fn message(&self, stream: u8, line: &[u8], partial: bool) -> Option<Vec<u8>> {
        match self {
            Form::Syslog(f) => f.message(stream, line),
            Form::Journald(f) => Some(f.message(stream, line, partial)),
        }
    }

    /// The TLS settings of a `tcp+tls://` receiver.
    fn tls(&self) -> Option<&SyslogTls> {
        match self {
            Form::Syslog(f) => f.tls(),
            Form::Journald(_) => None,
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

impl Shipper {
    /// Connects as dockerd does when a container starts: a receiver that
    /// cannot be reached fails the start, in dockerd's words.
    pub fn connect(form: Form, address: &str, max_buffer: u64) -> Result<Shipper, String> {
        let conn = dial(address, form.tls()).map_err(|e| format!("{LOGGING_FAILED}: {e}"))?;
        Ok(Shipper {
            form,
            address: address.to_string(),
            conn: Some(conn),
            partial: [Vec::new(), Vec::new()],
            queue: VecDeque::new(),
            sent: 0,
            queued: 0,
            retried: false,
            limit: (max_buffer > 0).then_some(max_buffer as usize),
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
        match &self.conn {
            Some(conn) if !self.queue.is_empty() || conn.backlog() => Some(conn.fd()),
            _ => None,
        }
    }

    /// Nothing waits, here or in the connection.
    fn done(&self) -> bool {
        self.queue.is_empty() && !self.conn.as_ref().is_some_and(Conn::backlog)
    }

    /// Writes out what waits, as far as the receiver takes it now. As
    /// dockerd's writer does, a message that fails is tried once more on a
    /// new connection, then dropped (a stream's half-sent message too).
    pub fn drain(&mut self) {
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
                    eprintln!("berth-shim: log receiver: {e}");
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
        while !self.done() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                eprintln!(
                    "berth-shim: {} log messages not delivered at exit",
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
                self.send(stream, &data[..pos], false);
            } else {
                let mut line = std::mem::take(&mut self.partial[idx]);
                line.extend_from_slice(&data[..pos]);
                self.send(stream, &line, false);
                line.clear();
                self.partial[idx] = line;
            }
            data = &data[pos + 1..];
        }
        self.partial[idx].extend_from_slice(data);
        while self.partial[idx].len() >= MAX_PARTIAL {
            let rest = self.partial[idx].split_off(MAX_PARTIAL);
            let piece = std::mem::replace(&mut self.partial[idx], rest);
            self.send(stream, &piece, true);
        }
    }

    /// Sends what is left of unfinished lines (a stream closed).
    pub fn flush(&mut self) {
        self.flush_stream(1);
        self.flush_stream(2);
    }

    /// Sends the unfinished line of one stream (it closed; the other may
    /// still be mid-line).
    pub fn flush_stream(&mut self, stream: u8) {
        let piece = std::mem::take(&mut self.partial[usize::from(stream == 2)]);
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
        if let Some(limit) = self.limit {
            if self.queued + msg.len() > limit {
                self.dropped += 1;
                if self.dropped == 1 {
                    eprintln!("berth-shim: log buffer full, dropping messages");
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

/// Opens the connection `address` names (`udp://host:port`, `tcp://…`,
/// `unix:///path`, `unixgram:///path`; empty: the host's syslog socket),
/// non-blocking once made; errors read like Go's (`dial tcp
/// 127.0.0.1:5599: connect: connection refused`).
fn dial(address: &str, tls: Option<&SyslogTls>) -> Result<Conn, String> {
    let conn = dial_blocking(address, tls)?;
    conn.set_nonblocking()
        .map_err(|e| format!("dial {address}: {}", go_reason(&e)))?;
    Ok(conn)
}

fn dial_blocking(address: &str, tls: Option<&SyslogTls>) -> Result<Conn, String> {
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
        "tcp+tls" => {
            let sock = TcpStream::connect(rest)
                .map_err(|e| format!("dial tcp {rest}: connect: {}", go_reason(&e)))?;
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
            Shipper::connect(Form::Syslog(syslog::Form::new(&target)), &address, 0).unwrap();
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
            let mut s = Shipper::connect(form, &address, max_buffer).unwrap();
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
        let form = Form::Syslog(syslog::Form::new(&Target::default()));
        let err = Shipper::connect(form, &format!("tcp://{addr}"), 0)
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
