//! The container's log in Docker's json-file format: one JSON object a line,
//! `{"log":"hello\n","stream":"stdout","time":"2026-11-22T05:30:56.123456789Z"}`.
//!
//! Like Docker, output is cut into entries at newlines; a line longer than
//! [`MAX_PARTIAL`] is written in pieces without a trailing newline, and what
//! is left when a stream closes is written as it is. Each entry goes out in
//! one `write(2)` on an O_APPEND file, so readers never see half an entry.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use berth_proto::timefmt;

/// Docker's json-file logger buffers at most 16 KiB of a line.
pub const MAX_PARTIAL: usize = 16 * 1024;

pub struct LogWriter {
    file: Option<File>,
    /// Bytes of an unfinished line, per stream (0 = stdout, 1 = stderr).
    partial: [Vec<u8>; 2],
}

impl LogWriter {
    /// Opens (creating) the log; an empty path means "do not log".
    pub fn open(path: &Path) -> std::io::Result<LogWriter> {
        let file = if path.as_os_str().is_empty() {
            None
        } else {
            use std::os::unix::fs::OpenOptionsExt;
            Some(
                File::options()
                    .create(true)
                    .append(true)
                    .mode(0o640)
                    .open(path)?,
            )
        };
        Ok(LogWriter {
            file,
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Takes output of `stream` (1 stdout, 2 stderr) as it was read.
    pub fn write(&mut self, stream: u8, mut data: &[u8]) {
        if self.file.is_none() {
            return;
        }
        let idx = usize::from(stream == 2);
        while let Some(pos) = data.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.partial[idx]);
            line.extend_from_slice(&data[..=pos]);
            self.entry(stream, &line);
            data = &data[pos + 1..];
        }
        self.partial[idx].extend_from_slice(data);
        while self.partial[idx].len() >= MAX_PARTIAL {
            let rest = self.partial[idx].split_off(MAX_PARTIAL);
            let piece = std::mem::replace(&mut self.partial[idx], rest);
            self.entry(stream, &piece);
        }
    }

    /// Writes out unfinished lines (at stream close or exit).
    pub fn flush(&mut self) {
        for (idx, stream) in [(0, 1u8), (1, 2u8)] {
            let piece = std::mem::take(&mut self.partial[idx]);
            if !piece.is_empty() {
                self.entry(stream, &piece);
            }
        }
    }

    fn entry(&mut self, stream: u8, text: &[u8]) {
        let line = format_entry(stream, text, &timefmt::now());
        if let Some(f) = &mut self.file {
            if let Err(e) = f.write_all(line.as_bytes()) {
                eprintln!("berth-shim: writing log: {e}");
            }
        }
    }
}

pub fn format_entry(stream: u8, text: &[u8], time: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    out.push_str("{\"log\":\"");
    escape_into(&String::from_utf8_lossy(text), &mut out);
    out.push_str("\",\"stream\":\"");
    out.push_str(if stream == 2 { "stderr" } else { "stdout" });
    out.push_str("\",\"time\":\"");
    out.push_str(time);
    out.push_str("\"}\n");
    out
}

/// JSON string escaping (RFC 8259): quote, backslash and control characters.
fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_valid_docker_json_lines() {
        let e = format_entry(2, b"a \"q\" \\ \t\x01\n", "T");
        assert_eq!(
            e,
            "{\"log\":\"a \\\"q\\\" \\\\ \\t\\u0001\\n\",\"stream\":\"stderr\",\"time\":\"T\"}\n"
        );
    }

    #[test]
    fn splits_at_newlines_and_keeps_partials_until_flush() {
        let dir = std::env::temp_dir().join(format!("berth-shim-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c-json.log");
        let mut w = LogWriter::open(&path).unwrap();
        w.write(1, b"one\ntw");
        w.write(1, b"o\nthree");
        let before = std::fs::read_to_string(&path).unwrap();
        assert_eq!(before.lines().count(), 2);
        assert!(before.contains("\"log\":\"two\\n\""));
        w.flush();
        let after = std::fs::read_to_string(&path).unwrap();
        assert!(after
            .lines()
            .last()
            .unwrap()
            .starts_with("{\"log\":\"three\",\"stream\":\"stdout\""));
        let long = vec![b'x'; MAX_PARTIAL + 10];
        w.write(2, &long);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 4);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
