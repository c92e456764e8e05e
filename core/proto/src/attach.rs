//! The shim's attach socket: how a client (the engine) reads a container's
//! live output and writes its stdin.
//!
//! A client connects to `attach.sock` in the task's state directory and writes
//! one request line, `stdin=0|1 stdout=0|1 stderr=0|1\n`. From then on:
//!
//! - the shim sends frames in Docker's stdcopy layout: an 8-byte header
//!   `[stream, 0, 0, 0, len (u32 big-endian)]` followed by `len` bytes, where
//!   stream 1 is stdout and 2 is stderr (with a terminal everything is 1);
//! - the client's further bytes are the container's stdin; shutting down its
//!   write side closes the container's stdin when the task was created with
//!   `stdin_once`;
//! - the shim closes the connection after the container exited and all its
//!   output was sent.
//!
//! Using the stdcopy layout means the engine forwards frames unchanged to a
//! Docker client that expects a multiplexed stream.

pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// The streams an attach client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttachRequest {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

impl AttachRequest {
    pub fn to_line(self) -> String {
        format!(
            "stdin={} stdout={} stderr={}\n",
            self.stdin as u8, self.stdout as u8, self.stderr as u8
        )
    }

    /// Parses a request line (without its newline); unknown words are ignored
    /// so that newer clients can ask for more.
    pub fn parse(line: &str) -> Option<Self> {
        let mut req = AttachRequest::default();
        for word in line.split_whitespace() {
            let (key, value) = word.split_once('=')?;
            let on = match value {
                "1" => true,
                "0" => false,
                _ => return None,
            };
            match key {
                "stdin" => req.stdin = on,
                "stdout" => req.stdout = on,
                "stderr" => req.stderr = on,
                _ => {}
            }
        }
        Some(req)
    }
}

/// Writes a stdcopy frame header for `len` bytes of `stream`.
pub fn frame_header(stream: u8, len: usize) -> [u8; 8] {
    let n = (len as u32).to_be_bytes();
    [stream, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

/// Parses a frame header into (stream, payload length).
pub fn parse_header(h: &[u8; 8]) -> (u8, usize) {
    (h[0], u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_line_round_trips() {
        let r = AttachRequest {
            stdin: true,
            stdout: true,
            stderr: false,
        };
        let line = r.to_line();
        assert_eq!(AttachRequest::parse(line.trim_end()), Some(r));
        assert_eq!(AttachRequest::parse("stdout=yes"), None);
    }

    #[test]
    fn header_round_trips() {
        let h = frame_header(STDERR, 70_000);
        assert_eq!(h, [2, 0, 0, 0, 0, 1, 0x11, 0x70]);
        assert_eq!(parse_header(&h), (STDERR, 70_000));
    }
}
