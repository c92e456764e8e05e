//! Attach clients of the shim (see `berth_proto::attach` for the protocol).
//!
//! Output to a client is buffered and written without blocking; while any
//! client has more than [`HIGH_WATER`] bytes queued the shim stops reading
//! the container's output, which gives an attached client the same
//! back-pressure Docker gives it. With nobody attached the shim always drains.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use berth_proto::attach::{frame_header, AttachRequest};

pub const HIGH_WATER: usize = 1 << 20;

pub struct Client {
    pub conn: UnixStream,
    pub req: AttachRequest,
    pub out: Vec<u8>,
    /// The client shut down its write side (or never sends stdin).
    pub read_closed: bool,
    pub broken: bool,
}

impl Client {
    /// Reads the request line with a short timeout, then switches to
    /// non-blocking mode for the poll loop.
    pub fn accept(conn: UnixStream) -> Option<Client> {
        conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while line.len() < 256 {
            match (&conn).read(&mut byte) {
                Ok(1) if byte[0] == b'\n' => break,
                Ok(1) => line.push(byte[0]),
                _ => return None,
            }
        }
        let req = AttachRequest::parse(std::str::from_utf8(&line).ok()?)?;
        conn.set_nonblocking(true).ok()?;
        Some(Client {
            conn,
            req,
            out: Vec::new(),
            read_closed: false,
            broken: false,
        })
    }

    pub fn wants(&self, stream: u8) -> bool {
        if stream == 2 {
            self.req.stderr
        } else {
            self.req.stdout
        }
    }

    pub fn queue(&mut self, stream: u8, data: &[u8]) {
        if self.broken || !self.wants(stream) {
            return;
        }
        self.out
            .extend_from_slice(&frame_header(stream, data.len()));
        self.out.extend_from_slice(data);
        self.flush();
    }

    /// Writes what it can without blocking.
    pub fn flush(&mut self) {
        while !self.out.is_empty() && !self.broken {
            match (&self.conn).write(&self.out) {
                Ok(0) => self.broken = true,
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => self.broken = true,
            }
        }
    }

    /// At exit: the rest of the output, waiting a bounded time for a slow reader.
    pub fn finish(mut self) {
        if self.broken {
            return;
        }
        let _ = self.conn.set_nonblocking(false);
        let _ = self.conn.set_write_timeout(Some(Duration::from_secs(5)));
        let _ = self.conn.write_all(&self.out);
        let _ = self.conn.shutdown(std::net::Shutdown::Both);
    }
}
