//! The on-disk format of Berth's `local` log driver, written by the shim and
//! read by the engine.
//!
//! Docker documents its own `local` driver's files as internal, so Berth
//! chose one that costs little to write: a record per read of the
//! container's output (whole lines, or a piece of a line longer than the
//! shim buffers), not a record per line. A chatty container's 500 MB of
//! short lines become about 500 MB on disk, where json-file writes three
//! times that and spends its time escaping. A record:
//!
//! ```text
//! u32 BE  payload length N
//! u8      stream: 1 stdout, 2 stderr
//! u8      flags: bit 0 set when the payload ends inside a line
//! i64 BE  time the output was read, nanoseconds since the epoch
//! N bytes the output as the container wrote it
//! u32 BE  N again, so that `--tail` can walk the file backwards
//! ```

/// Bytes before the payload.
pub const HEADER: usize = 14;
/// Bytes after the payload.
pub const TRAILER: usize = 4;

/// A record's header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub len: u32,
    pub stream: u8,
    /// The payload's last line goes on in the next record of its stream.
    pub partial: bool,
    pub time_nanos: i64,
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER] {
        let mut h = [0u8; HEADER];
        h[..4].copy_from_slice(&self.len.to_be_bytes());
        h[4] = self.stream;
        h[5] = u8::from(self.partial);
        h[6..].copy_from_slice(&self.time_nanos.to_be_bytes());
        h
    }

    /// `None` unless the bytes look like a header Berth wrote.
    pub fn decode(b: &[u8]) -> Option<Header> {
        let b: &[u8; HEADER] = b.get(..HEADER)?.try_into().ok()?;
        let stream = b[4];
        if !(stream == 1 || stream == 2) || b[5] > 1 {
            return None;
        }
        Some(Header {
            len: u32::from_be_bytes(b[..4].try_into().ok()?),
            stream,
            partial: b[5] == 1,
            time_nanos: i64::from_be_bytes(b[6..].try_into().ok()?),
        })
    }

    /// The whole record's size on disk.
    pub fn record_len(&self) -> u64 {
        (HEADER + TRAILER) as u64 + u64::from(self.len)
    }
}

pub fn trailer(len: u32) -> [u8; TRAILER] {
    len.to_be_bytes()
}

/// Nanoseconds since the epoch, now.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_garbage_is_refused() {
        let h = Header {
            len: 70000,
            stream: 2,
            partial: true,
            time_nanos: 1_790_000_000_123_456_789,
        };
        assert_eq!(Header::decode(&h.encode()), Some(h));
        assert_eq!(h.record_len(), 70018);
        assert_eq!(Header::decode(b"{\"log\":\"hello\\n\""), None);
        assert_eq!(Header::decode(&[0u8; 5]), None);
    }
}
