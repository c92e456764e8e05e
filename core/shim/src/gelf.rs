//! Docker's gelf log driver's messages (sent by [`crate::ship`]): GELF 1.1
//! JSON, as dockerd 20.10 writes them, byte for byte before compression:
//!
//! `{"version":"1.1","host":H,"short_message":LINE,"timestamp":T,"level":L,`
//! then the additional fields (`_command`, `_container_id`,
//! `_container_name`, `_created`, `_image_id`, `_image_name`, `_tag` and
//! the attributes) sorted by name, and `}`.
//!
//! The level is 6 for stdout and 3 for stderr, the timestamp seconds with
//! milliseconds. Empty lines are not sent. Over UDP a message is
//! compressed (gzip by default, or zlib, or not) and cut into GELF chunks
//! when it is longer than a datagram dockerd sends; over TCP it goes as
//! it is, ended by a NUL byte.
//!
//! Strings are escaped as Go's encoding/json escapes them (`<`, `>` and `&`
//! as \u escapes, each byte that is not UTF-8 as `\ufffd`), which serde_json
//! does not do; hence the hand-written writer.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_proto::shim::Gelf;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// The longest datagram, and the part of a chunk that is data (the rest is
/// the chunk header: magic, message id, number, count), as dockerd's.
const CHUNK_SIZE: usize = 1420;
const CHUNK_DATA: usize = CHUNK_SIZE - 12;
/// GELF's limit on the chunks of one message.
const MAX_CHUNKS: usize = 128;

#[derive(Clone, Copy)]
enum Packing {
    Gzip,
    Zlib,
    Plain,
}

pub struct Form {
    /// Everything before the line, and everything after the level.
    head: Vec<u8>,
    tail: Vec<u8>,
    /// UDP: compression and chunks; `None` for TCP (NUL-ended messages).
    udp: Option<Packing>,
    /// The deflate state (a few hundred KiB), made once and reset for
    /// each message rather than allocated and freed per line.
    deflate: Option<Compress>,
}

impl Form {
    pub fn new(settings: &Gelf) -> Form {
        let mut head = br#"{"version":"1.1","host":"#.to_vec();
        json_str(&mut head, settings.host.as_bytes());
        head.extend_from_slice(br#","short_message":"#);
        let mut tail = Vec::new();
        for (key, value) in &settings.fields {
            tail.push(b',');
            json_str(&mut tail, key.as_bytes());
            tail.push(b':');
            json_str(&mut tail, value.as_bytes());
        }
        tail.push(b'}');
        let packing = match settings.compression.as_str() {
            "zlib" => Packing::Zlib,
            "none" => Packing::Plain,
            _ => Packing::Gzip,
        };
        let udp = settings.address.starts_with("udp://").then_some(packing);
        // -1 is Go's default level, as flate2's default.
        let level = match u32::try_from(settings.level) {
            Ok(n) => Compression::new(n.min(9)),
            Err(_) => Compression::default(),
        };
        let deflate = match udp {
            Some(Packing::Gzip) => Some(Compress::new(level, false)),
            Some(Packing::Zlib) => Some(Compress::new(level, true)),
            _ => None,
        };
        Form {
            head,
            tail,
            udp,
            deflate,
        }
    }

    /// The message of one line of `stream` (1 stdout, 2 stderr), read at
    /// `now`; `None` for an empty line.
    pub fn message(&mut self, stream: u8, line: &[u8], now: SystemTime) -> Option<Vec<u8>> {
        if line.is_empty() {
            return None;
        }
        let mut json = Vec::with_capacity(self.head.len() + line.len() + self.tail.len() + 48);
        json.extend_from_slice(&self.head);
        json_str(&mut json, line);
        let millis = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        // Go writes a float64 in its shortest form, as Rust's Display does.
        let level = if stream == 2 { 3 } else { 6 };
        let _ = write!(
            json,
            r#","timestamp":{},"level":{level}"#,
            millis as f64 / 1000.0
        );
        json.extend_from_slice(&self.tail);
        let Some(packing) = self.udp else {
            json.push(0);
            return Some(json);
        };
        let Some(deflate) = &mut self.deflate else {
            return Some(json);
        };
        let mut out = Vec::with_capacity(json.len() / 2 + 64);
        if matches!(packing, Packing::Gzip) {
            // RFC 1952's header as Go writes it: no name, no time, OS unknown.
            out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        }
        deflated(deflate, &json, &mut out);
        if matches!(packing, Packing::Gzip) {
            let mut crc = Crc::new();
            crc.update(&json);
            out.extend_from_slice(&crc.sum().to_le_bytes());
            out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        }
        Some(out)
    }

    /// The datagrams of a message: itself, or GELF chunks when it is too
    /// long for one (none when it would need more than GELF allows, as
    /// dockerd's writer refuses it).
    pub fn datagrams(&self, msg: Vec<u8>) -> Vec<Vec<u8>> {
        if self.udp.is_none() || msg.len() <= CHUNK_SIZE {
            return vec![msg];
        }
        let count = msg.len().div_ceil(CHUNK_DATA);
        if count > MAX_CHUNKS {
            eprintln!("berth-shim: gelf: msg too large, would need {count} chunks");
            return Vec::new();
        }
        let id = crate::ship::random_bytes::<8>();
        msg.chunks(CHUNK_DATA)
            .enumerate()
            .map(|(seq, data)| {
                let mut chunk = Vec::with_capacity(12 + data.len());
                chunk.extend_from_slice(&[0x1e, 0x0f]);
                chunk.extend_from_slice(&id);
                chunk.extend_from_slice(&[seq as u8, count as u8]);
                chunk.extend_from_slice(data);
                chunk
            })
            .collect()
    }
}

/// `input` compressed whole onto `out` (a zlib stream when `deflate` was
/// made with its header, raw deflate otherwise); `deflate` is reset after.
fn deflated(deflate: &mut Compress, input: &[u8], out: &mut Vec<u8>) {
    let start_in = deflate.total_in();
    loop {
        out.reserve(input.len() / 2 + 64);
        let taken = (deflate.total_in() - start_in) as usize;
        match deflate.compress_vec(&input[taken..], out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("berth-shim: gelf: compressing: {e}");
                break;
            }
        }
    }
    deflate.reset();
}

/// A JSON string as Go's encoding/json writes one.
fn json_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        // Go writes the escape once per byte it cannot decode.
        for _ in chunk.invalid() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::time::Duration;

    fn settings(address: &str) -> Gelf {
        Gelf {
            address: address.into(),
            host: "vm".into(),
            fields: vec![
                ("_FOO".into(), "bar".into()),
                ("_a".into(), "b".into()),
                ("_command".into(), "sh -c echo err >&2".into()),
            ],
            ..Default::default()
        }
    }

    /// dockerd 20.10's message for a line of stderr (captured over TCP).
    #[test]
    fn a_line_as_dockerd_sends_it() {
        let mut f = Form::new(&settings("tcp://127.0.0.1:12201"));
        let at = UNIX_EPOCH + Duration::from_millis(1_796_674_547_956);
        let got = f.message(2, b"err", at).unwrap();
        let want = concat!(
            r#"{"version":"1.1","host":"vm","short_message":"err","timestamp":1796674547.956,"#,
            r#""level":3,"_FOO":"bar","_a":"b","_command":"sh -c echo err \u003e\u00262"}"#,
            "\0"
        );
        assert_eq!(String::from_utf8(got).unwrap(), want);
        assert!(f.message(1, b"", at).is_none());
    }

    #[test]
    fn udp_messages_are_gzipped_and_chunked_when_long() {
        let mut f = Form::new(&settings("udp://127.0.0.1:12201"));
        let msg = f.message(1, b"hello", UNIX_EPOCH).unwrap();
        assert_eq!(&msg[..3], &[0x1f, 0x8b, 0x08]);
        let mut json = String::new();
        flate2::read::GzDecoder::new(&msg[..])
            .read_to_string(&mut json)
            .unwrap();
        assert!(json.contains(r#""short_message":"hello","timestamp":0,"level":6"#));
        // The deflate state is reused: the next message reads as well.
        let next = f.message(2, b"again", UNIX_EPOCH).unwrap();
        let mut json = String::new();
        flate2::read::GzDecoder::new(&next[..])
            .read_to_string(&mut json)
            .unwrap();
        assert!(json.contains(r#""short_message":"again""#), "{json}");
        let mut zlib = Form::new(&Gelf {
            compression: "zlib".into(),
            ..settings("udp://127.0.0.1:12201")
        });
        for line in [&b"one"[..], b"two"] {
            let msg = zlib.message(1, line, UNIX_EPOCH).unwrap();
            let mut json = String::new();
            flate2::read::ZlibDecoder::new(&msg[..])
                .read_to_string(&mut json)
                .unwrap();
            assert!(json.contains(&format!(
                r#""short_message":"{}""#,
                String::from_utf8_lossy(line)
            )));
        }
        // Random bytes do not compress: a long line needs chunks.
        let noise: Vec<u8> = (0..4000u32)
            .map(|i| b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26)
            .collect();
        let long = f.message(1, &noise, UNIX_EPOCH).unwrap();
        let chunks = f.datagrams(long);
        assert!(chunks.len() > 1);
        for (i, c) in chunks.iter().enumerate() {
            assert!(c.len() <= CHUNK_SIZE);
            assert_eq!(&c[..2], &[0x1e, 0x0f]);
            assert_eq!(c[2..10], chunks[0][2..10]);
            assert_eq!((c[10], c[11]), (i as u8, chunks.len() as u8));
        }
    }

    #[test]
    fn strings_are_escaped_as_go_does() {
        let mut out = Vec::new();
        json_str(&mut out, b"a\"\\\n\x01<&>\xff\xe2\x80\xa8z");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"\\\\\\n\\u0001\\u003c\\u0026\\u003e\\ufffd\\u2028z\""
        );
    }
}
