//! Docker's json-file log, written by the shim and read by the engine: one
//! JSON object a line, `{"log":"…","stream":"stdout","time":"…"}`, and the
//! rotated files `<log>.1` (newest) to `<log>.<max-file - 1>` (oldest).
//! Both sides' code is here so that the format has one definition.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// The `n`th rotated file of a log (1 is the newest).
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    PathBuf::from(format!("{}.{n}", path.display()))
}

/// One entry as a line of JSON (invalid UTF-8 becomes U+FFFD, as in
/// Docker); `valid`: the caller knows `text` is UTF-8.
pub fn append_entry(out: &mut Vec<u8>, stream: u8, text: &[u8], time: &str, valid: bool) {
    out.extend_from_slice(b"{\"log\":\"");
    if valid || std::str::from_utf8(text).is_ok() {
        escape_into(text, out);
    } else {
        escape_into(String::from_utf8_lossy(text).as_bytes(), out);
    }
    out.extend_from_slice(if stream == 2 {
        b"\",\"stream\":\"stderr\",\"time\":\""
    } else {
        b"\",\"stream\":\"stdout\",\"time\":\""
    });
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(b"\"}\n");
}

/// JSON string escaping (RFC 8259) of valid UTF-8: quote, backslash and
/// control characters; runs of other bytes are copied as they are.
fn escape_into(s: &[u8], out: &mut Vec<u8>) {
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        // Eight bytes at a time while none needs escaping: this loop is
        // where a chatty container's shim spends its time.
        if let Some(chunk) = s.get(i..i + 8) {
            if !needs_escape(u64::from_le_bytes(chunk.try_into().unwrap_or_default())) {
                i += 8;
                continue;
            }
        }
        let b = s[i];
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&s[start..i]);
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]);
        } else {
            out.extend_from_slice(short);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&s[start..]);
}

/// Whether any of 8 bytes is below 0x20, a quote or a backslash (the
/// classic "has a zero byte" bit trick, applied three times).
fn needs_escape(x: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGH != 0;
    let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH != 0;
    below_space || zero_in(x ^ (ONES * b'"' as u64)) || zero_in(x ^ (ONES * b'\\' as u64))
}

/// One decoded log entry.
pub struct Entry<'a> {
    /// 1 stdout, 2 stderr.
    pub stream: u8,
    pub log: Cow<'a, [u8]>,
    /// RFC 3339, as written.
    pub time: Cow<'a, str>,
}

#[derive(serde::Deserialize)]
struct JsonEntry {
    log: String,
    stream: String,
    time: String,
}

impl<'a> Entry<'a> {
    /// A line of a json-file log; the shim's layout is read without
    /// serde, anything else through it.
    pub fn parse(line: &'a [u8]) -> Option<Entry<'a>> {
        Self::parse_fast(line).or_else(|| {
            let j: JsonEntry = serde_json::from_slice(line).ok()?;
            Some(Entry {
                stream: if j.stream == "stderr" { 2 } else { 1 },
                log: Cow::Owned(j.log.into_bytes()),
                time: Cow::Owned(j.time),
            })
        })
    }

    /// The shim's own layout; `None` for anything else.
    fn parse_fast(line: &'a [u8]) -> Option<Entry<'a>> {
        let rest = line.strip_prefix(b"{\"log\":\"")?;
        let (log, used) = unescape(rest)?;
        let rest = rest[used..].strip_prefix(b",\"stream\":\"")?;
        let (stream, rest) = if let Some(r) = rest.strip_prefix(b"stdout\"") {
            (1, r)
        } else {
            (2, rest.strip_prefix(b"stderr\"")?)
        };
        let rest = rest.strip_prefix(b",\"time\":\"")?;
        let end = memchr::memchr(b'"', rest)?;
        if !rest[end..].starts_with(b"\"}") {
            return None;
        }
        let time = std::str::from_utf8(&rest[..end]).ok()?;
        Some(Entry {
            stream,
            log,
            time: Cow::Borrowed(time),
        })
    }
}

/// Decodes a JSON string body up to its closing quote; returns it and the
/// bytes consumed (the quote included). Borrowed when it has no escapes.
fn unescape(s: &[u8]) -> Option<(Cow<'_, [u8]>, usize)> {
    let first = memchr::memchr2(b'"', b'\\', s)?;
    if s[first] == b'"' {
        return Some((Cow::Borrowed(&s[..first]), first + 1));
    }
    let mut out = s[..first].to_vec();
    let mut i = first;
    loop {
        match *s.get(i)? {
            b'"' => return Some((Cow::Owned(out), i + 1)),
            b'\\' => {
                let c = *s.get(i + 1)?;
                i += 2;
                match c {
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'/' | b'\\' | b'"' => out.push(c),
                    b'u' => {
                        let hex = |at: usize| {
                            std::str::from_utf8(s.get(at..at + 4)?)
                                .ok()
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                        };
                        let mut cp = hex(i)?;
                        i += 4;
                        if (0xD800..0xDC00).contains(&cp) && s.get(i..i + 2) == Some(b"\\u") {
                            let low = hex(i + 2)?;
                            cp = 0x10000
                                + ((cp - 0xD800) << 10)
                                + (low.wrapping_sub(0xDC00) & 0x3FF);
                            i += 6;
                        }
                        let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                        out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                    }
                    _ => return None,
                }
            }
            _ => {
                let next = memchr::memchr2(b'"', b'\\', &s[i..])? + i;
                out.extend_from_slice(&s[i..next]);
                i = next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format_entry(stream: u8, text: &[u8], time: &str) -> String {
        let mut out = Vec::with_capacity(text.len() + 64);
        append_entry(&mut out, stream, text, time, false);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn long_runs_escape_like_short_ones() {
        for text in [
            "plain ascii text, longer than eight",
            "x\"yyyyyyyy\\zzzzzzzz\u{1}é€ and \t tabs\n",
            "12345678\n",
        ] {
            let mut fast = Vec::new();
            escape_into(text.as_bytes(), &mut fast);
            let want = serde_json_like(text);
            assert_eq!(String::from_utf8(fast).unwrap(), want, "{text:?}");
        }
    }

    /// The escaping rules, one character at a time.
    fn serde_json_like(s: &str) -> String {
        s.chars()
            .map(|c| match c {
                '"' => "\\\"".to_string(),
                '\\' => "\\\\".to_string(),
                '\n' => "\\n".to_string(),
                '\r' => "\\r".to_string(),
                '\t' => "\\t".to_string(),
                c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32),
                c => c.to_string(),
            })
            .collect()
    }

    #[test]
    fn entries_are_valid_docker_json_lines() {
        let e = format_entry(2, b"a \"q\" \\ \t\x01\n", "T");
        assert_eq!(
            e,
            "{\"log\":\"a \\\"q\\\" \\\\ \\t\\u0001\\n\",\"stream\":\"stderr\",\"time\":\"T\"}\n"
        );
    }

    #[test]
    fn fast_and_slow_decoding_agree() {
        let lines: &[&[u8]] = &[
            br#"{"log":"plain\n","stream":"stdout","time":"2026-01-01T00:00:00.000000001Z"}"#,
            br#"{"log":"q\"b\\t\t\u0001\u00e9\ud83d\ude00\n","stream":"stderr","time":"T"}"#,
            br#"{"stream":"stdout","log":"other order\n","time":"T"}"#,
        ];
        for line in lines {
            let fast = Entry::parse(line).unwrap();
            let slow: JsonEntry = serde_json::from_slice(line).unwrap();
            assert_eq!(fast.log.as_ref(), slow.log.as_bytes());
            assert_eq!(fast.time, slow.time);
            assert_eq!(fast.stream, if slow.stream == "stderr" { 2 } else { 1 });
        }
    }

    #[test]
    fn written_entries_read_back() {
        for (stream, text) in [(1u8, &b"plain\n"[..]), (2, b"q\"\\\t\x01\xc3\xa9 \xff\n")] {
            let line = format_entry(stream, text, "2026-12-06T16:00:00.000000001Z");
            let e = Entry::parse(line.trim_end().as_bytes()).unwrap();
            assert_eq!(e.stream, stream);
            assert_eq!(e.log.as_ref(), String::from_utf8_lossy(text).as_bytes());
            assert_eq!(e.time, "2026-12-06T16:00:00.000000001Z");
        }
        assert_eq!(
            rotated(Path::new("/l/c-json.log"), 2),
            PathBuf::from("/l/c-json.log.2")
        );
    }
}
