//! Docker's fluentd log driver's messages (sent by [`crate::ship`]), in
//! the forward protocol's message mode: one MessagePack array
//! `[tag, time, record, {}]` a line, as dockerd 20.10 writes them.
//!
//! The record maps `container_id`, `container_name` (with dockerd's
//! leading `/`), the `labels`/`env` attributes, `source` (stdout or
//! stderr) and `log` (the line without its newline; empty lines are sent
//! too) to strings. A line longer than the copier's pieces goes as several
//! messages with `partial_message`, `partial_id` (one per line),
//! `partial_ordinal` (from 1) and `partial_last`. The time is whole
//! seconds, or with `fluentd-sub-second-precision` the protocol's
//! EventTime (MessagePack extension 0: seconds and nanoseconds). With
//! `fluentd-request-ack` the options ask for an acknowledgement,
//! `{"chunk": ID}` (24 characters: 16 random bytes in base64, as dockerd's),
//! which the receiver answers with `{"ack": ID}`.
//!
//! MessagePack is written here by hand: four kinds of value (array, map,
//! string, integer, and one extension) do not warrant a library in a
//! process that runs once per container.

use std::time::{SystemTime, UNIX_EPOCH};

use berth_proto::shim::Fluentd;

pub struct Form {
    tag: String,
    /// The record's fixed entries, encoded once.
    fields: Vec<u8>,
    field_count: usize,
    sub_second: bool,
    request_ack: bool,
    /// Per stream (stdout, stderr): the id of the line being sent in
    /// pieces and the pieces sent so far.
    pieces: [Option<(String, u32)>; 2],
}

impl Form {
    pub fn new(settings: &Fluentd) -> Form {
        let mut fields = Vec::new();
        for (key, value) in &settings.fields {
            str(&mut fields, key.as_bytes());
            str(&mut fields, value.as_bytes());
        }
        Form {
            tag: settings.tag.clone(),
            fields,
            field_count: settings.fields.len(),
            sub_second: settings.sub_second,
            request_ack: settings.request_ack,
            pieces: [None, None],
        }
    }

    /// The message of one line of `stream` (1 stdout, 2 stderr), read at
    /// `now`; `partial`: a piece of a line that goes on.
    pub fn message(&mut self, stream: u8, line: &[u8], partial: bool, now: SystemTime) -> Vec<u8> {
        let idx = usize::from(stream == 2);
        // A piece of a long line, or the end of one sent in pieces.
        let piece = if partial || self.pieces[idx].is_some() {
            let (id, ordinal) = self.pieces[idx].get_or_insert_with(|| (partial_id(), 0));
            *ordinal += 1;
            let piece = (id.clone(), *ordinal, !partial);
            if !partial {
                self.pieces[idx] = None;
            }
            Some(piece)
        } else {
            None
        };
        let mut out = Vec::with_capacity(line.len() + self.fields.len() + self.tag.len() + 64);
        out.push(0x94);
        str(&mut out, self.tag.as_bytes());
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        if self.sub_second {
            out.extend_from_slice(&[0xd7, 0x00]);
            out.extend_from_slice(&(since.as_secs() as u32).to_be_bytes());
            out.extend_from_slice(&since.subsec_nanos().to_be_bytes());
        } else {
            int(&mut out, since.as_secs() as i64);
        }
        map_header(
            &mut out,
            self.field_count + 2 + if piece.is_some() { 4 } else { 0 },
        );
        out.extend_from_slice(&self.fields);
        str(&mut out, b"source");
        str(&mut out, if stream == 2 { b"stderr" } else { b"stdout" });
        str(&mut out, b"log");
        str(&mut out, line);
        if let Some((id, ordinal, last)) = piece {
            str(&mut out, b"partial_message");
            str(&mut out, b"true");
            str(&mut out, b"partial_id");
            str(&mut out, id.as_bytes());
            str(&mut out, b"partial_ordinal");
            str(&mut out, ordinal.to_string().as_bytes());
            str(&mut out, b"partial_last");
            str(&mut out, if last { b"true" } else { b"false" });
        }
        if self.request_ack {
            out.push(0x81);
            str(&mut out, b"chunk");
            str(&mut out, &base64(&crate::ship::random_bytes::<16>()));
        } else {
            // The options: none.
            out.push(0x80);
        }
        out
    }

    /// The acknowledgement a sent message waits for: its chunk id, the
    /// last bytes of the message.
    pub fn ack_id<'m>(&self, msg: &'m [u8]) -> Option<&'m [u8]> {
        self.request_ack
            .then(|| msg.get(msg.len().saturating_sub(CHUNK_ID_LEN)..))
            .flatten()
    }
}

/// 16 bytes in base64.
const CHUNK_ID_LEN: usize = 24;

/// Standard base64 with padding (the chunk id's 16 bytes: nothing more
/// needs it, so no crate).
fn base64(bytes: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

/// dockerd's partial id: 32 random bytes in hex.
fn partial_id() -> String {
    crate::ship::random_bytes::<32>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A string, in the smallest form that holds it (fixstr, str8, str16,
/// str32), as Go's msgp writes it; bytes that are not UTF-8 go as they are.
fn str(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else if n <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

fn map_header(out: &mut Vec<u8>, n: usize) {
    if n < 16 {
        out.push(0x80 | n as u8);
    } else {
        out.push(0xde);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    }
}

/// A signed integer in the smallest form msgp uses for a Go int64.
fn int(out: &mut Vec<u8>, v: i64) {
    if (0..128).contains(&v) {
        out.push(v as u8);
    } else if let Ok(v) = i32::try_from(v) {
        out.push(0xd2);
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn form(sub_second: bool) -> Form {
        Form::new(&Fluentd {
            tag: "4cd5eb938728".into(),
            sub_second,
            fields: vec![("container_name".into(), "/flcap".into())],
            ..Default::default()
        })
    }

    /// The bytes dockerd 20.10 sent for `echo hi` (captured), with its
    /// record's entries in Berth's order (Go's map order is random).
    #[test]
    fn a_line_as_dockerd_sends_it() {
        let at = UNIX_EPOCH + Duration::from_secs(0x6b17_13c7);
        let got = form(false).message(1, b"hi", false, at);
        let mut want = vec![0x94, 0xac];
        want.extend_from_slice(b"4cd5eb938728");
        want.extend_from_slice(&[0xd2, 0x6b, 0x17, 0x13, 0xc7, 0x83]);
        want.extend_from_slice(
            b"\xaecontainer_name\xa6/flcap\xa6source\xa6stdout\xa3log\xa2hi\x80",
        );
        assert_eq!(got, want);
    }

    #[test]
    fn sub_second_times_are_event_times() {
        let at = UNIX_EPOCH + Duration::new(0x6b17_13c7, 5);
        let got = form(true).message(2, b"", false, at);
        assert_eq!(
            &got[14..24],
            &[0xd7, 0x00, 0x6b, 0x17, 0x13, 0xc7, 0, 0, 0, 5]
        );
    }

    #[test]
    fn long_lines_go_in_numbered_pieces() {
        let mut f = form(false);
        let at = UNIX_EPOCH;
        let first = f.message(1, b"aaa", true, at);
        let last = f.message(1, b"b", false, at);
        let next = f.message(1, b"c", false, at);
        let at_key = |m: &[u8], key: &[u8]| {
            let start = m.windows(key.len()).position(|w| w == key).unwrap() + key.len();
            m[start..].to_vec()
        };
        assert!(at_key(&first, b"partial_ordinal").starts_with(b"\xa11"));
        assert!(at_key(&first, b"partial_last").starts_with(b"\xa5false"));
        assert!(at_key(&last, b"partial_ordinal").starts_with(b"\xa12"));
        assert!(at_key(&last, b"partial_last").starts_with(b"\xa4true"));
        assert!(!next.windows(7).any(|w| w == b"partial"));
        let id = |m: &[u8]| at_key(m, b"partial_id")[..66].to_vec();
        assert_eq!(id(&first)[..2], [0xd9, 64]);
        assert_eq!(id(&first), id(&last));
    }

    #[test]
    fn acknowledged_messages_carry_a_chunk_id() {
        let mut f = Form::new(&Fluentd {
            tag: "t".into(),
            request_ack: true,
            ..Default::default()
        });
        let msg = f.message(1, b"hi", false, UNIX_EPOCH);
        let id = f.ack_id(&msg).unwrap().to_vec();
        assert_eq!(id.len(), 24);
        assert!(id.ends_with(b"=="));
        let tail = &msg[msg.len() - 32..];
        assert_eq!(&tail[..8], b"\x81\xa5chunk\xb8");
        assert_eq!(base64(b"ABCDEFGHIJKLMNOP"), b"QUJDREVGR0hJSktMTU5PUA==");
        assert_eq!(base64(b"ab"), b"YWI=");
        assert!(form(false).ack_id(&msg).is_none());
    }

    #[test]
    fn strings_take_the_smallest_form() {
        let mut out = Vec::new();
        str(&mut out, &[b'x'; 64]);
        assert_eq!(&out[..2], &[0xd9, 64]);
        out.clear();
        str(&mut out, &[b'x'; 300]);
        assert_eq!(&out[..3], &[0xda, 0x01, 0x2c]);
        out.clear();
        int(&mut out, 5_000_000_000);
        assert_eq!(out[0], 0xd3);
    }
}
